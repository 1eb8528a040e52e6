"""Health checks on the real Docker Engine: a HostService driven in-process probes the servo
image's busybox httpd through the port Docker published. Everything it makes is labelled with
the run id (swept at the end)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from node.capacity import Capacity
from node.health import HealthCheck
from node.host import HostService
from node.runtime import ServoRecord, ServoSpec
from node.runtime_docker import DockerRuntime
from node.store import HostStore
from tests.conftest import RUN_ID, SERVO_IMAGE

pytestmark = pytest.mark.docker


def spec(sid: str, project: str, check: HealthCheck) -> ServoSpec:
    return ServoSpec(sid, project, SERVO_IMAGE, 64, 100, ports=(8080,), health=check)


async def until(what: Callable[[], bool], limit_s: float, why: str) -> None:
    with trio.move_on_after(limit_s):
        while not what():  # noqa: ASYNC110 (the engine and the checker change the answer)
            await trio.sleep(0.05)
        return
    pytest.fail(f"not within {limit_s} s: {why}")


@pytest.fixture
async def host(
    docker_client: Any, run_labels: dict[str, str], tmp_path: Path
) -> AsyncIterator[HostService]:
    node = f"{RUN_ID}-hc{uuid.uuid4().hex[:4]}"
    made = HostService(
        node,
        DockerRuntime(extra_labels=run_labels),
        HostStore(tmp_path / f"{node}.db", node),
        Capacity(1024, 2000),
    )
    yield made
    for record in made.list_servos():
        await made.destroy_servo(record.servo_id)
    made.close()


def record_of(host: HostService, sid: str) -> ServoRecord:
    record = host.get(sid)
    assert record is not None
    return record


async def test_a_servo_whose_http_check_passes_becomes_running(host: HostService) -> None:
    check = HealthCheck("http", 8080, "/", interval_s=0.5, timeout_s=0.5, threshold=3, grace_s=5)
    states: list[str] = []
    host.on_change = lambda: states.append(record_of(host, "ok1").state)
    async with trio.open_nursery() as nursery:
        await nursery.start(host.run_watcher)
        created = await host.create_servo(spec("ok1", "healthy", check))
        assert (created.state, created.healthy) == ("starting", False)
        await until(lambda: record_of(host, "ok1").state == "running", 10.0, "running")
        record = record_of(host, "ok1")
        assert record.healthy is True and record.to_dict()["healthy"] is True
        await trio.sleep(2.0)  # and it stays so while it answers
        record = record_of(host, "ok1")
        assert (record.state, record.restarts, record.last_exit) == ("running", 0, None)
        nursery.cancel_scope.cancel()
    assert states == ["starting", "running"]


async def test_a_servo_whose_check_gets_404_is_restarted_as_unhealthy(host: HostService) -> None:
    check = HealthCheck(
        "http", 8080, "/nope", interval_s=0.5, timeout_s=0.5, threshold=2, grace_s=1
    )
    exits: list[tuple[float, str]] = []
    host.on_exit = lambda sid, reason: exits.append((trio.current_time(), reason))
    async with trio.open_nursery() as nursery:
        await nursery.start(host.run_watcher)
        t0 = trio.current_time()
        await host.create_servo(spec("bad1", "unhealthy", check))
        await until(lambda: bool(exits), 10.0, "an unhealthy verdict")
        # probes at 0 and 0.5 s are in the grace; 1 and 1.5 s are the two that count
        assert exits[0][0] - t0 >= 1.5 and exits[0][1] == "unhealthy"
        assert record_of(host, "bad1").state != "running"  # it never passed
        await until(lambda: record_of(host, "bad1").restarts >= 1, 30.0, "restarted in place")
        nursery.cancel_scope.cancel()
    record = record_of(host, "bad1")
    assert record.last_exit is not None and record.last_exit.reason == "unhealthy"
    assert record.last_exit.code == 137  # httpd, as PID 1, ignores SIGTERM: killed after 5 s
    assert record.healthy is False
    assert {reason for _, reason in exits} == {"unhealthy"}
