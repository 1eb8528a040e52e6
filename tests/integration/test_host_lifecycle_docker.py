"""Servo lifecycle on the real Docker Engine: a HostService driven in-process, watching the
engine's event stream. Everything it makes is labelled with the run id (swept at the end)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from node.capacity import Capacity
from node.host import HostService, container_name, volume_name
from node.runtime import ServoSpec
from node.runtime_docker import DockerRuntime
from node.servo_lifecycle import RestartPolicy
from node.store import HostStore
from tests.conftest import RUN_ID, SERVO_IMAGE

pytestmark = pytest.mark.docker


def spec(sid: str, project: str, command: tuple[str, ...] | None = None) -> ServoSpec:
    return ServoSpec(sid, project, SERVO_IMAGE, 64, 100, ports=(8080,), command=command)


async def until(what: Callable[[], bool], limit_s: float, why: str) -> None:
    with trio.move_on_after(limit_s):
        while not what():  # noqa: ASYNC110 (the engine, not our code, changes the answer)
            await trio.sleep(0.05)
        return
    pytest.fail(f"not within {limit_s} s: {why}")


async def docker(fn: Callable[[], Any]) -> Any:
    """A blocking SDK call off the Trio thread (the watcher needs the loop meanwhile)."""
    return await trio.to_thread.run_sync(fn)


@pytest.fixture
async def host_factory(
    docker_client: Any, run_labels: dict[str, str], tmp_path: Path
) -> AsyncIterator[Callable[..., HostService]]:
    made: list[HostService] = []

    def make(policy: RestartPolicy | None = None) -> HostService:
        node = f"{RUN_ID}-lc{uuid.uuid4().hex[:4]}"
        host = HostService(
            node,
            DockerRuntime(extra_labels=run_labels),
            HostStore(tmp_path / f"{node}.db", node),
            Capacity(1024, 2000),
            policy=policy,
        )
        made.append(host)
        return host

    yield make
    for host in made:
        for record in host.list_servos():
            await host.destroy_servo(record.servo_id)
        await host.prune_volumes()
        host.close()


async def test_a_killed_servo_runs_again_within_5_s_with_its_data(
    docker_client: Any, host_factory: Callable[..., HostService]
) -> None:
    host = host_factory()
    exits: list[str] = []
    host.on_exit = lambda sid, reason: exits.append(reason)
    async with trio.open_nursery() as nursery:
        await nursery.start(host.run_watcher)
        await host.create_servo(spec("k1", "killme"))
        name = container_name(host.node, "k1")
        container = await docker(lambda: docker_client.containers.get(name))
        code, out = await docker(
            lambda: container.exec_run(["sh", "-c", "echo still here > /data/note.txt"])
        )
        assert code == 0, out
        killed_at = trio.current_time()
        await docker(container.kill)

        def back() -> bool:
            record = host.get("k1")
            return record is not None and record.state == "running" and record.restarts == 1

        await until(back, 5.0, "the killed servo running again")
        took_s = trio.current_time() - killed_at
        record = host.get("k1")
        assert record is not None and record.last_exit is not None
        assert (record.last_exit.code, record.last_exit.reason) == (137, "killed")
        assert exits == ["killed"]
        code, out = await docker(lambda: container.exec_run(["cat", "/data/note.txt"]))
        assert (code, out.decode().strip()) == (0, "still here")
        assert took_s < 5.0
        nursery.cancel_scope.cancel()
    # leaving the watcher closed its event stream: no reader thread is left behind
    await until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("docker-events-")],
        3.0,
        "the event reader thread to end",
    )


async def test_a_crash_looping_servo_backs_off_then_fails(
    host_factory: Callable[..., HostService],
) -> None:
    host = host_factory(RestartPolicy(backoff_initial_s=1.0, max_exits=4, window_s=120.0))
    exits: list[float] = []
    running: list[tuple[float, int]] = []  # (when, restarts) each time it is running
    failed: list[tuple[str, str]] = []
    host.on_exit = lambda sid, reason: exits.append(trio.current_time())
    host.on_failed = lambda sid, reason: failed.append((sid, reason))

    def changed() -> None:
        record = host.get("e3")
        if record is not None and record.state == "running":
            running.append((trio.current_time(), record.restarts))

    host.on_change = changed
    async with trio.open_nursery() as nursery:
        await nursery.start(host.run_watcher)
        await host.create_servo(spec("e3", "exit3", ("sh", "-c", "sleep 2; exit 3")))

        def is_failed() -> bool:
            record = host.get("e3")
            return record is not None and record.state == "failed"

        await until(is_failed, 60.0, "the crash-looping servo failed")
        nursery.cancel_scope.cancel()
    record = host.get("e3")
    assert record is not None and record.last_exit is not None
    assert (record.last_exit.code, record.last_exit.reason) == (3, "exited")
    assert record.restarts == 3
    assert [r for _, r in running] == [0, 1, 2, 3]  # restarts counts up with each restart
    assert failed == [("e3", "exited")]
    assert len(exits) == 4
    # each restart waits its backoff (1, 2, 4 s) after the exit before it, and the waits grow
    waits = [running[i + 1][0] - exits[i] for i in range(3)]
    assert waits[0] >= 1.0 and waits[1] >= 2.0 and waits[2] >= 4.0, waits
    assert waits[0] < waits[1] < waits[2], waits
    assert record.error is not None and "exited 4 times" in record.error
    assert host.capacity_snapshot()["memory_free_mb"] == 1024  # failed holds no reservation


async def test_remove_keeps_the_volume_destroy_deletes_it(
    docker_client: Any, host_factory: Callable[..., HostService]
) -> None:
    host = host_factory()
    await host.create_servo(spec("v1", "kept"))
    await host.create_servo(spec("v2", "destroyed"))
    name = container_name(host.node, "v1")
    code, out = await docker(
        lambda: docker_client.containers.get(name).exec_run(
            ["sh", "-c", "head -c 100000 /dev/zero > /data/blob; echo kept > /data/note.txt"]
        )
    )
    assert code == 0, out

    await host.remove_servo("v1")
    assert host.get("v1") is None
    volumes = await docker(lambda: [v.name for v in docker_client.volumes.list()])
    assert volume_name(host.node, "v1") in volumes
    kept = await host.kept_volumes()
    assert [(k["servo"], k["project"], k["volume"]) for k in kept] == [
        ("v1", "kept", volume_name(host.node, "v1"))
    ]
    size = kept[0]["size_bytes"]
    assert isinstance(size, int) and size >= 100_000, kept  # Docker's df measures local volumes

    # the same id created here again finds its data
    await host.create_servo(spec("v1", "kept"))
    code, out = await docker(
        lambda: docker_client.containers.get(name).exec_run(["cat", "/data/note.txt"])
    )
    assert (code, out.decode().strip()) == (0, "kept")
    assert await host.kept_volumes() == []

    await host.destroy_servo("v2")
    volumes = await docker(lambda: [v.name for v in docker_client.volumes.list()])
    assert volume_name(host.node, "v2") not in volumes
    assert await host.kept_volumes() == []

    # and a kept volume is gone once pruned
    await host.remove_servo("v1")
    assert await host.prune_volumes(project="kept") == [volume_name(host.node, "v1")]
    volumes = await docker(lambda: [v.name for v in docker_client.volumes.list()])
    assert volume_name(host.node, "v1") not in volumes
