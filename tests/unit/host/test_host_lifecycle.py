"""The host's watcher, restart policy, kept volumes and reboot, on the fake runtime and
Trio's autojump clock: minutes of backoff run in milliseconds, and the times are exact."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from node.capacity import Capacity
from node.health import Probe
from node.host import HostService, container_name, volume_name
from node.runtime import ExitInfo, ServoFailed, ServoRecord, ServoSpec
from node.runtime_fake import CRASHING_COMMAND, FakeRuntime
from node.servo_lifecycle import RestartPolicy
from node.store import MIGRATIONS, SCHEMA_VERSION, HostStore

NODE = "n1"


def spec(sid: str, project: str = "web", image: str = "shoal-servo:latest", **kw: Any) -> ServoSpec:
    return ServoSpec(sid, project, image, 64, 100, ports=(8080,), **kw)


def virtual_wall_ms() -> int:
    return 1_700_000_000_000 + int(trio.current_time() * 1000)


@attrs.define
class Seen:
    """What the hooks reported, with the (virtual) time of each."""

    changes: int = 0
    exits: list[tuple[float, str, str]] = attrs.field(factory=list)
    failed: list[tuple[str, str]] = attrs.field(factory=list)
    running_at: list[float] = attrs.field(factory=list)


def make_host(
    tmp_path: Path,
    runtime: FakeRuntime | None = None,
    memory_mb: int = 1024,
    policy: RestartPolicy | None = None,
    probe: Probe | None = None,
) -> tuple[HostService, Seen]:
    runtime = runtime if runtime is not None else FakeRuntime()
    store = HostStore(tmp_path / "host.db", NODE, fake=True)
    host = HostService(
        NODE,
        runtime,
        store,
        Capacity(memory_mb, 4000),
        policy=policy,
        wall_ms=virtual_wall_ms,
        probe=probe,
    )
    seen = Seen()

    def changed() -> None:
        seen.changes += 1
        for r in host.list_servos():
            if r.state == "running" and r.running_since_ms == virtual_wall_ms():
                seen.running_at.append(trio.current_time())

    host.on_change = changed
    host.on_exit = lambda sid, reason: seen.exits.append((trio.current_time(), sid, reason))
    host.on_failed = lambda sid, reason: seen.failed.append((sid, reason))
    return host, seen


async def until(what: Callable[[], bool], limit_s: float = 3600) -> None:
    """Wait (on the virtual clock, in 1 ms steps) until `what` holds: the host's own hooks
    record exact times, so the polling does not blur what the tests measure."""
    with trio.fail_after(limit_s):
        while not what():  # noqa: ASYNC110
            await trio.sleep(0.001)


def state(host: HostService, sid: str) -> str | None:
    record = host.get(sid)
    return record.state if record is not None else None


def rec(host: HostService, sid: str) -> ServoRecord:
    record = host.get(sid)
    assert record is not None
    return record


async def watched(nursery: trio.Nursery, host: HostService) -> HostService:
    await nursery.start(host.run_watcher)
    return host


async def test_crash_loop_backs_off_1_2_4_8_then_fails(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    host, seen = make_host(tmp_path)
    await watched(nursery, host)
    t0 = trio.current_time()
    record = await host.create_servo(spec("c1", command=CRASHING_COMMAND))
    assert record.state == "running"  # the engine said started; exiting is the watcher's news
    await until(lambda: state(host, "c1") == "failed")
    assert [round(t - t0, 6) for t, _, _ in seen.exits] == [0, 1, 3, 7, 15]
    assert {reason for _, _, reason in seen.exits} == {"exited"}
    assert seen.failed == [("c1", "exited")]
    failed = rec(host, "c1")
    assert failed.restarts == 4
    assert failed.last_exit == ExitInfo(1, "exited", virtual_wall_ms())
    assert failed.error is not None and "exited 5 times within 600 s" in failed.error
    assert "fake: exited with status 1" in failed.error  # its last log lines
    assert await host.logs_tail("c1") == "fake: exited with status 1"
    # a failed servo holds no reservation; its volume and (stopped) container stay
    assert host.capacity_snapshot()["memory_free_mb"] == 1024
    assert host.admission.holds("c1") is False
    assert host.runtime.containers[container_name(NODE, "c1")].state == "exited"  # type: ignore[attr-defined]
    assert volume_name(NODE, "c1") in host.runtime.volumes  # type: ignore[attr-defined]
    # nothing more happens to it
    await trio.sleep(3600)
    assert len(seen.exits) == 5 and state(host, "c1") == "failed"
    # persisted as it is shown
    assert host.store.get("c1") == failed
    body = failed.to_dict()
    assert body["restarts"] == 4 and body["state"] == "failed"
    assert body["last_exit"]["code"] == 1 and body["last_exit"]["reason"] == "exited"
    assert body["last_exit"]["at"].endswith("Z")


async def test_backoff_resets_after_ten_minutes_of_running(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    host, seen = make_host(tmp_path)
    await watched(nursery, host)
    await host.create_servo(spec("r1"))
    runtime: FakeRuntime = host.runtime  # type: ignore[assignment]
    name = container_name(NODE, "r1")
    delays: list[float] = []
    for run_s in (0.0, 0.0, 0.0, 600.0, 0.0):
        await trio.sleep(run_s)
        crashed_at = trio.current_time()
        runtime.crash(name, exit_code=2)
        await until(lambda: state(host, "r1") == "restarting")
        await until(lambda: state(host, "r1") == "running")
        delays.append(round(seen.running_at[-1] - crashed_at, 6))
    assert delays == [1, 2, 4, 1, 2]
    assert rec(host, "r1").restarts == 5
    assert not seen.failed


@pytest.mark.parametrize(
    ("crash", "code", "reason"),
    [
        ({"oom": True}, 137, "oom"),
        ({"exit_code": 137}, 137, "killed"),
        ({"exit_code": 3}, 3, "exited"),
        ({"exit_code": 0}, 0, "exited"),
    ],
)
async def test_exit_reasons(
    tmp_path: Path,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    crash: dict[str, Any],
    code: int,
    reason: str,
) -> None:
    host, seen = make_host(tmp_path)
    await watched(nursery, host)
    await host.create_servo(spec("o1"))
    host.runtime.crash(container_name(NODE, "o1"), **crash)  # type: ignore[attr-defined]
    await until(lambda: rec(host, "o1").restarts == 1)
    assert seen.exits == [(0, "o1", reason)]
    last = rec(host, "o1").last_exit
    assert last is not None and (last.code, last.reason) == (code, reason)


async def test_a_restart_the_engine_refuses_fails_the_servo_at_once(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    host, seen = make_host(tmp_path)
    await watched(nursery, host)
    await host.create_servo(spec("s1"))
    name = container_name(NODE, "s1")
    runtime: FakeRuntime = host.runtime  # type: ignore[assignment]
    runtime.refuse_start.add(name)
    runtime.crash(name)
    await until(lambda: state(host, "s1") == "failed")
    assert trio.current_time() == pytest.approx(1.0, abs=0.01)  # after the first backoff, not five
    assert [r for _, _, r in seen.exits] == ["exited", "start_failed"]
    assert seen.failed == [("s1", "start_failed")]
    last = rec(host, "s1").last_exit
    assert last is not None and (last.code, last.reason) == (-1, "start_failed")
    assert host.capacity_snapshot()["memory_free_mb"] == 1024


async def test_an_engine_that_does_not_answer_delays_the_restart_without_failing(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    host, seen = make_host(tmp_path)
    await watched(nursery, host)
    await host.create_servo(spec("u1"))
    runtime: FakeRuntime = host.runtime  # type: ignore[assignment]
    runtime.crash(container_name(NODE, "u1"))
    await until(lambda: state(host, "u1") == "restarting")
    runtime.reachable = False
    await trio.sleep(30)
    assert state(host, "u1") == "restarting" and not seen.failed
    runtime.reachable = True
    await until(lambda: state(host, "u1") == "running")
    assert rec(host, "u1").restarts == 1


async def test_deliberate_stops_are_not_exits(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    host, seen = make_host(tmp_path)
    await watched(nursery, host)
    for sid, project in (("d1", "a"), ("d2", "b"), ("d3", "c")):
        await host.create_servo(spec(sid, project))
    assert (await host.stop_servo("d1")).state == "stopped"
    await host.remove_servo("d2")
    await host.destroy_servo("d3")
    await trio.sleep(60)
    assert seen.exits == [] and state(host, "d1") == "stopped"
    assert (await host.reconcile()).restarted == []
    assert (await host.start_servo("d1")).state == "running"
    assert rec(host, "d1").restarts == 0


async def test_stop_during_backoff_cancels_the_restart(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    host, _ = make_host(tmp_path)
    await watched(nursery, host)
    await host.create_servo(spec("b1"))
    host.runtime.crash(container_name(NODE, "b1"))  # type: ignore[attr-defined]
    await until(lambda: state(host, "b1") == "restarting")
    await host.stop_servo("b1")
    await trio.sleep(60)
    assert state(host, "b1") == "stopped"
    assert host.runtime.containers[container_name(NODE, "b1")].state == "exited"  # type: ignore[attr-defined]


async def test_remove_keeps_the_volume_destroy_deletes_it(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    host, _ = make_host(tmp_path)
    runtime: FakeRuntime = host.runtime  # type: ignore[assignment]
    await host.create_servo(spec("k1", "keep"))
    await host.create_servo(spec("k2", "gone"))
    await trio.sleep(10)
    nursery.start_soon(host.remove_servo, "k1")
    await trio.sleep(1)  # deregistering: reported stopped (out of rotation), still running
    (leaving,) = [r for r in host.servo_records() if r["id"] == "k1"]
    assert leaving["state"] == "stopped" and container_name(NODE, "k1") in runtime.containers
    await trio.sleep(2)
    assert host.get("k1") is None and host.store.get("k1") is None
    assert container_name(NODE, "k1") not in runtime.containers
    assert volume_name(NODE, "k1") in runtime.volumes
    assert host.capacity_snapshot()["memory_free_mb"] == 1024 - 64
    await host.destroy_servo("k2")
    assert volume_name(NODE, "k2") not in runtime.volumes
    kept = await host.kept_volumes()
    assert kept == [
        {
            "node": NODE,
            "project": "keep",
            "servo": "k1",
            "volume": volume_name(NODE, "k1"),
            "size_bytes": None,
            "since": "2023-11-14T22:13:32.000Z",  # the virtual wall clock at t = 12 s
        }
    ]
    # the same id created here again takes its volume back, and it is no longer kept
    runtime.volumes[volume_name(NODE, "k1")]["written"] = "by the first k1"
    await host.create_servo(spec("k1", "keep"))
    assert runtime.volumes[volume_name(NODE, "k1")]["written"] == "by the first k1"
    assert runtime.containers[container_name(NODE, "k1")].volume == volume_name(NODE, "k1")
    assert await host.kept_volumes() == []
    # destroy with keep_volume keeps it too
    await host.destroy_servo("k1", keep_volume=True)
    assert [k["servo"] for k in await host.kept_volumes()] == ["k1"]
    assert volume_name(NODE, "k1") in runtime.volumes


async def test_a_failed_recreate_keeps_a_kept_volume(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    host, _ = make_host(tmp_path)
    await host.create_servo(spec("v1"))
    await host.remove_servo("v1")
    with pytest.raises(ServoFailed, match="No such image"):
        await host.create_servo(spec("v1", image="missing/x"))
    assert volume_name(NODE, "v1") in host.runtime.volumes  # type: ignore[attr-defined]
    assert [k["servo"] for k in await host.kept_volumes()] == ["v1"]


async def test_prune_by_project_and_age(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    host, _ = make_host(tmp_path)
    runtime: FakeRuntime = host.runtime  # type: ignore[assignment]
    for sid, project in (("p1", "a"), ("p2", "a"), ("p3", "b"), ("p4", "c")):
        await host.create_servo(spec(sid, project, max_per_host=2))
    await host.remove_servo("p1")
    await trio.sleep(100)
    await host.remove_servo("p3")
    await host.remove_servo("p4")
    await trio.sleep(100)
    await host.remove_servo("p2")
    assert await host.prune_volumes(older_than_s=150) == [volume_name(NODE, "p1")]
    assert await host.prune_volumes(project="b") == [volume_name(NODE, "p3")]
    assert volume_name(NODE, "p3") not in runtime.volumes
    assert sorted(await host.prune_volumes()) == [volume_name(NODE, "p2"), volume_name(NODE, "p4")]
    assert await host.kept_volumes() == []
    assert await host.prune_volumes() == []


async def test_retention_loop_prunes_old_kept_volumes_hourly(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    host, _ = make_host(tmp_path)
    await host.create_servo(spec("t1"))
    await host.remove_servo("t1")
    await nursery.start(host.run_retention, 1800.0)
    assert len(await host.kept_volumes()) == 1  # at start it is younger than the retention
    await trio.sleep(3600 + 1)
    assert await host.kept_volumes() == []
    assert volume_name(NODE, "t1") not in host.runtime.volumes  # type: ignore[attr-defined]


async def test_a_second_create_of_an_id_is_the_same_request(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    host, _ = make_host(tmp_path)
    await watched(nursery, host)
    runtime: FakeRuntime = host.runtime  # type: ignore[assignment]
    results: list[ServoRecord] = []

    async def create() -> None:
        results.append(await host.create_servo(spec("i1"), idempotency_key="k"))

    async with trio.open_nursery() as n:
        n.start_soon(create)
        n.start_soon(create)
    assert results[0] == results[1] and runtime.calls.count("run") == 1
    # a failed servo is known too: a second create returns it rather than starting another
    await host.create_servo(spec("i2", "other", command=CRASHING_COMMAND))
    await until(lambda: state(host, "i2") == "failed")
    runs = runtime.calls.count("run")
    again = await host.create_servo(spec("i2", "other", command=CRASHING_COMMAND))
    assert again.state == "failed" and runtime.calls.count("run") == runs
    # an operator's start admits it again and starts it afresh
    assert (await host.start_servo("i2")).state == "running"
    assert host.admission.holds("i2")


async def test_the_watcher_reconnects_and_catches_up(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    host, seen = make_host(tmp_path)
    await watched(nursery, host)
    runtime: FakeRuntime = host.runtime  # type: ignore[assignment]
    await host.create_servo(spec("w1"))
    await trio.testing.wait_all_tasks_blocked()  # the watcher has looked at its `start` event
    runtime.break_events()
    runtime.crash(container_name(NODE, "w1"))  # nobody is subscribed: the event is lost
    await until(lambda: rec(host, "w1").restarts == 1)
    # seen at the re-subscription (0.5 s later), restarted after the 1 s backoff
    assert trio.current_time() == pytest.approx(1.5, abs=0.01)
    assert [r for _, _, r in seen.exits] == ["exited"]
    runtime.crash(container_name(NODE, "w1"))  # and the new stream delivers events again
    await until(lambda: rec(host, "w1").restarts == 2)


async def test_reboot_reconcile_makes_the_host_whole(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    host, _ = make_host(tmp_path)
    await watched_host_lifecycle(host)
    runtime: FakeRuntime = host.runtime  # type: ignore[assignment]
    # the host is rebooted: containers that survive are exited (one is lost entirely),
    # volumes survive, and a new agent opens the same store
    rebooted = FakeRuntime(volumes=dict(runtime.volumes))
    for name, c in runtime.containers.items():
        if name != container_name(NODE, "lost"):
            rebooted.containers[name] = attrs.evolve(c, state="exited", exit_code=255)
    before = {r.servo_id: r for r in host.list_servos()}
    host2, seen2 = make_host(tmp_path, rebooted)
    assert host2.capacity_snapshot()["memory_free_mb"] == 1024 - 4 * 64  # failed holds none
    await nursery.start(host2.run_reconciler)
    after = {r.servo_id: r for r in host2.list_servos()}
    assert {sid: r.state for sid, r in after.items()} == {
        "lost": "running",
        "up": "running",
        "backoff": "running",
        "halted": "stopped",
        "broken": "failed",
    }
    assert after["lost"].host_ports == before["lost"].host_ports  # same address as before
    assert after["up"].restarts == 0  # a reboot is not the app's doing
    assert seen2.exits == []
    assert rebooted.containers[container_name(NODE, "halted")].state == "exited"
    assert container_name(NODE, "broken") in rebooted.containers  # left for its logs


async def watched_host_lifecycle(host: HostService) -> None:
    """Five servos in each state a reboot can find."""
    runtime: FakeRuntime = host.runtime  # type: ignore[assignment]
    async with trio.open_nursery() as n:
        await n.start(host.run_watcher)
        for sid in ("lost", "up", "backoff", "halted"):
            await host.create_servo(spec(sid, sid))
        await host.create_servo(spec("broken", "broken", command=CRASHING_COMMAND))
        await host.stop_servo("halted")
        runtime.crash(container_name(NODE, "backoff"))
        await until(lambda: state(host, "broken") == "failed")
        runtime.crash(container_name(NODE, "backoff"))  # up again by now: a second exit
        await until(lambda: state(host, "backoff") == "restarting")
        n.cancel_scope.cancel()
    host.store.close()


async def test_old_store_rows_read_back_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(str(path), isolation_level=None)
    for version in (1, 2):
        db.executescript(f"BEGIN; {MIGRATIONS[version]} PRAGMA user_version={version}; COMMIT;")
    old_spec = (
        '{"servo_id": "old", "project": "p", "image": "i", "memory_mb": 64, "millicpus": 100,'
        ' "ports": [8080], "env": {}, "command": null, "max_per_host": 1, "user": "10001"}'
    )
    db.execute(
        "INSERT INTO servos VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ("old", "p", old_spec, "running", "[[8080, 41000]]", "127.0.0.1", None, 5),
    )
    db.close()
    store = HostStore(path, NODE)
    assert store.schema_version == SCHEMA_VERSION == 3
    record = store.get("old")
    assert record is not None
    assert (record.restarts, record.last_exit, record.running_since_ms) == (0, None, 0)
    assert (record.spec.generation, record.spec.slot) == (1, 0)
    assert store.kept_volumes() == []
    # and the new fields round-trip
    newer = attrs.evolve(
        record,
        spec=attrs.evolve(record.spec, generation=3, slot=2),
        restarts=7,
        last_exit=ExitInfo(137, "oom", 1_700_000_000_000),
        running_since_ms=42,
    )
    store.put(newer)
    assert store.get("old") == newer
    assert ServoSpec.from_wire(newer.spec.to_wire()) == newer.spec
    body = newer.to_dict()
    assert (body["generation"], body["slot"], body["created_ms"]) == (3, 2, 5)
    assert body["last_exit"] == {"code": 137, "reason": "oom", "at": "2023-11-14T22:13:20.000Z"}
    store.close()
