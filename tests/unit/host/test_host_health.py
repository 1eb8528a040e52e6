"""Health checks run by the host, on the fake runtime and Trio's autojump clock: the probe is the
fake's (a container passes unless the test put it in `runtime.unhealthy`) or one the test
injects, so every time below is exact and no test sleeps for real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from node.health import HealthCheck
from node.host import HostService, container_name
from node.runtime import ServoSpec
from node.runtime_fake import FakeRuntime
from tests.unit.host.test_host_lifecycle import NODE, make_host, rec, state, until, watched

HTTP = HealthCheck("http", 8080, "/ready", interval_s=2.0, timeout_s=1.0, threshold=3, grace_s=5.0)


def spec(sid: str, health: HealthCheck | None = HTTP, **kw: Any) -> ServoSpec:
    return ServoSpec(sid, "web", "shoal-servo:latest", 64, 100, ports=(8080,), health=health, **kw)


class Probe:
    """An injected probe: passes from `pass_from_s` on (virtual time), and records each call."""

    def __init__(self, pass_from_s: float = 0.0) -> None:
        self.pass_from_s = pass_from_s
        self.calls: list[tuple[float, str, str, int]] = []

    async def __call__(self, check: HealthCheck, host: str, port: int) -> bool:
        self.calls.append((trio.current_time(), check.path, host, port))
        return trio.current_time() >= self.pass_from_s


def fake(host: HostService) -> FakeRuntime:
    runtime = host.runtime
    assert isinstance(runtime, FakeRuntime)
    return runtime


async def test_without_a_check_a_servo_is_running_at_once_and_never_probed(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    probe = Probe()
    host, _ = make_host(tmp_path, probe=probe)
    await watched(nursery, host)
    record = await host.create_servo(spec("n1", health=None))
    assert (record.state, record.healthy) == ("running", None)
    assert record.to_dict()["healthy"] is None
    await trio.sleep(60)
    assert probe.calls == [] and state(host, "n1") == "running"


async def test_a_passing_http_check_makes_it_running_starting_before(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    probe = Probe(pass_from_s=3.0)
    host, seen = make_host(tmp_path, probe=probe)
    await watched(nursery, host)
    record = await host.create_servo(spec("h1"))
    assert (record.state, record.healthy) == ("starting", False)
    assert record.to_dict()["healthy"] is False
    changes = seen.changes
    await until(lambda: state(host, "h1") == "running")
    # probed at 0 and 2 s (failing, in the grace), passing at 4 s: running from then
    assert trio.current_time() == pytest.approx(4.0, abs=0.01)
    port = dict(rec(host, "h1").host_ports)[8080]
    assert probe.calls == [(t, "/ready", "127.0.0.1", port) for t in (0.0, 2.0, 4.0)]
    assert rec(host, "h1").healthy is True and rec(host, "h1").to_dict()["healthy"] is True
    assert seen.changes == changes + 1  # the flip is published
    assert host.store.get("h1") == rec(host, "h1")  # the check is persisted with the spec
    assert rec(host, "h1").spec.health == HTTP
    await trio.sleep(60)  # it keeps being checked, every 2 s, and stays running
    assert len(probe.calls) == 3 + 30 and state(host, "h1") == "running"
    assert rec(host, "h1").restarts == 0 and seen.exits == []


async def test_three_failures_after_the_grace_restart_it_as_unhealthy(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    host, seen = make_host(tmp_path)
    await watched(nursery, host)
    await host.create_servo(spec("u1"))
    await until(lambda: state(host, "u1") == "running")
    assert trio.current_time() == pytest.approx(0.0, abs=0.01)  # the fake's probe passes at once
    name = container_name(NODE, "u1")
    await trio.sleep(9.5)
    fake(host).unhealthy.add(name)  # probes at 10, 12, 14 s fail; 14 s is the third in a row
    await until(lambda: state(host, "u1") == "restarting")
    assert trio.current_time() == pytest.approx(14.0, abs=0.01)
    assert seen.exits == [(14.0, "u1", "unhealthy")]
    record = rec(host, "u1")
    assert record.last_exit is not None and record.last_exit.reason == "unhealthy"
    assert record.last_exit.code == 0  # the fake's stop; Docker's says 137 or 143
    assert record.healthy is False and record.restarts == 0
    fake(host).unhealthy.discard(name)
    # restarted after the 1 s backoff, as after a crash; `starting` until its check passes
    await until(lambda: rec(host, "u1").restarts == 1)
    assert trio.current_time() == pytest.approx(15.0, abs=0.01)
    await until(lambda: state(host, "u1") == "running")
    assert trio.current_time() == pytest.approx(15.0, abs=0.01)
    assert not seen.failed


async def test_failures_within_the_grace_do_not_count(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # (a grace off the probes' times: which side of it a probe falls is not a float's whim)
    check = HealthCheck("tcp", 8080, interval_s=1.0, timeout_s=0.5, threshold=3, grace_s=4.5)
    probe = Probe(pass_from_s=4.5)
    host, seen = make_host(tmp_path, probe=probe)
    await watched(nursery, host)
    await host.create_servo(spec("g1", check))
    # five failures (0 to 4 s) inside the grace: more than the threshold, and nothing happens
    await until(lambda: state(host, "g1") == "running")
    assert trio.current_time() == pytest.approx(5.0, abs=0.01)
    assert seen.exits == [] and rec(host, "g1").restarts == 0

    # never passing: 0..4 s are in the grace, 5, 6, 7 s are the three that count
    host2, seen2 = make_host(tmp_path / "2", probe=Probe(pass_from_s=1e9))
    await watched(nursery, host2)
    t0 = trio.current_time()
    await host2.create_servo(spec("g2", check))
    await until(lambda: state(host2, "g2") == "restarting")
    assert trio.current_time() - t0 == pytest.approx(7.0, abs=0.01)
    assert [(round(t - t0, 6), r) for t, _, r in seen2.exits] == [(7.0, "unhealthy")]
    assert rec(host2, "g2").state == "restarting"  # it never passed: starting, then this


async def test_repeated_unhealthy_backs_off_then_fails(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    check = HealthCheck("http", 8080, "/", interval_s=1.0, timeout_s=0.5, threshold=3, grace_s=4.5)
    probe = Probe(pass_from_s=1e9)
    host, seen = make_host(tmp_path, probe=probe)
    await watched(nursery, host)
    await host.create_servo(spec("f1", check))
    await until(lambda: state(host, "f1") == "failed", limit_s=600)
    # each run is judged 7 s after its start; the restarts wait 1, 2, 4, 8 s: exits at
    # 7, 8+7, 17+7, 28+7, 43+7 s, and the fifth within 10 minutes fails it
    assert [t for t, _, _ in seen.exits] == pytest.approx([7, 15, 24, 35, 50], abs=0.01)
    assert {r for _, _, r in seen.exits} == {"unhealthy"}
    assert seen.failed == [("f1", "unhealthy")]
    record = rec(host, "f1")
    assert record.restarts == 4 and record.healthy is False
    assert record.error is not None and "failing its health check" in record.error
    assert host.capacity_snapshot()["memory_free_mb"] == 1024  # failed holds no reservation
    # its checker ended with it
    probes = len(probe.calls)
    await trio.sleep(600)
    assert len(probe.calls) == probes and state(host, "f1") == "failed"


async def test_a_crash_of_a_checked_servo_is_an_exit_and_it_starts_unhealthy(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    host, seen = make_host(tmp_path)
    await watched(nursery, host)
    await host.create_servo(spec("c1"))
    await until(lambda: state(host, "c1") == "running")
    await trio.sleep(30)
    fake(host).crash(container_name(NODE, "c1"), exit_code=3)
    await until(lambda: rec(host, "c1").restarts == 1)
    assert [r for _, _, r in seen.exits] == ["exited"]
    await until(lambda: state(host, "c1") == "running")


async def test_the_checker_stops_with_the_servo_and_starts_with_it_again(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    probe = Probe()
    host, seen = make_host(tmp_path, probe=probe)
    await watched(nursery, host)
    await host.create_servo(spec("s1"))
    await until(lambda: state(host, "s1") == "running")
    await host.stop_servo("s1")
    probes = len(probe.calls)
    await trio.sleep(60)
    assert len(probe.calls) == probes and rec(host, "s1").healthy is False
    record = await host.start_servo("s1")
    assert record.state == "starting"
    await until(lambda: state(host, "s1") == "running")
    await host.remove_servo("s1")
    probes = len(probe.calls)
    await trio.sleep(60)
    assert len(probe.calls) == probes and seen.exits == []


async def test_a_servo_created_before_the_watcher_is_checked_once_it_runs(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    host, _ = make_host(tmp_path)
    await host.create_servo(spec("w1"))
    await trio.sleep(10)
    assert state(host, "w1") == "starting"  # nobody checks it yet
    await watched(nursery, host)
    await until(lambda: state(host, "w1") == "running")
    assert trio.current_time() == pytest.approx(10.0, abs=0.01)


async def test_after_a_reboot_a_checked_servo_is_checked_again_before_running(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    host, _ = make_host(tmp_path)
    async with trio.open_nursery() as n:
        await n.start(host.run_watcher)
        await host.create_servo(spec("r1"))
        await until(lambda: state(host, "r1") == "running")
        n.cancel_scope.cancel()
    runtime = fake(host)
    host.store.close()
    # the agent restarts; its container kept running but no longer answers
    runtime.unhealthy.add(container_name(NODE, "r1"))
    host2, seen2 = make_host(tmp_path, runtime)
    await nursery.start(host2.run_reconciler)
    assert state(host2, "r1") == "starting"  # not taken as healthy on the old record's word
    t0 = trio.current_time()
    await watched(nursery, host2)
    await until(lambda: state(host2, "r1") == "restarting")
    assert trio.current_time() - t0 == pytest.approx(10.0, abs=0.01)  # 0, 2, 4 s in the grace
    assert [r for _, _, r in seen2.exits] == ["unhealthy"]


async def test_a_probe_that_hangs_or_raises_has_failed(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    answers = ["hang", "raise", "hang", "raise", "pass"]

    async def probe(check: HealthCheck, host: str, port: int) -> bool:
        answer = answers.pop(0) if answers else "pass"
        if answer == "hang":
            await trio.sleep_forever()
        if answer == "raise":
            raise RuntimeError("a broken probe")
        return True

    check = HealthCheck("http", 8080, interval_s=2.0, timeout_s=1.0, threshold=10, grace_s=0)
    host, _ = make_host(tmp_path, probe=probe)
    await watched(nursery, host)
    await host.create_servo(spec("p1", check))
    await until(lambda: state(host, "p1") == "running")
    assert trio.current_time() == pytest.approx(8.0, abs=0.01)  # the fifth probe, every 2 s
