"""Host duties, the same behaviour tests against the fake runtime and the real Docker Engine."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from node.capacity import Capacity
from node.host import HostService, container_name, volume_name
from node.runtime import AdmissionRefused, RuntimeUnavailable, ServoFailed, ServoSpec
from node.runtime_docker import DockerRuntime
from node.runtime_fake import FakeRuntime
from node.store import SCHEMA_VERSION, HostStore
from tests.conftest import RUN_ID, SERVO_IMAGE

Factory = Callable[..., HostService]


@pytest.fixture(params=["fake", pytest.param("docker", marks=pytest.mark.docker)])
def runtime(request: pytest.FixtureRequest, run_labels: dict[str, str]) -> Any:
    if request.param == "fake":
        return FakeRuntime()
    request.getfixturevalue("docker_client")
    return DockerRuntime(extra_labels=run_labels)


@pytest.fixture
async def make_host(runtime: Any, tmp_path: Path) -> AsyncIterator[Factory]:
    made: list[HostService] = []
    node = f"{RUN_ID}-h{uuid.uuid4().hex[:4]}"

    def factory(memory_mb: int = 1024, millicpus: int = 2000) -> HostService:
        store = HostStore(tmp_path / "host.db", node, fake=runtime.fake)
        host = HostService(node, runtime, store, Capacity(memory_mb, millicpus))
        made.append(host)
        return host

    yield factory
    for host in made[-1:]:
        for record in host.list_servos():
            await host.destroy_servo(record.servo_id)
    for host in made:
        host.close()


def spec(sid: str, project: str = "web", **kw: Any) -> ServoSpec:
    base: dict[str, Any] = {
        "image": SERVO_IMAGE,
        "memory_mb": 64,
        "millicpus": 100,
        "ports": (8080,),
    }
    base.update(kw)
    return ServoSpec(servo_id=sid, project=project, **base)


async def test_create_runs_and_is_durable(make_host: Factory) -> None:
    host = make_host()
    a = await host.create_servo(spec("s1", "web"))
    b = await host.create_servo(spec("s2", "api"))
    assert a.state == b.state == "running"
    assert a.endpoints[0].host_port != b.endpoints[0].host_port
    assert (await host.runtime.status(container_name(host.node, "s1"))).state == "running"
    assert host.capacity_snapshot()["memory_free_mb"] == 1024 - 128
    again = await host.create_servo(spec("s1", "web"))  # idempotent
    assert again == a
    reopened = make_host()  # a new service on the same store file: what a restart sees
    assert {r.servo_id for r in reopened.store.all()} == {"s1", "s2"}
    assert reopened.capacity_snapshot()["memory_free_mb"] == 1024 - 128
    assert host.store.schema_version == SCHEMA_VERSION


async def test_admission_refuses_before_any_engine_call(make_host: Factory) -> None:
    host = make_host(memory_mb=100)
    with pytest.raises(AdmissionRefused) as exc:
        await host.create_servo(spec("big", memory_mb=200))
    assert exc.value.reason == "insufficient_memory"
    await host.create_servo(spec("w1", "web"))
    with pytest.raises(AdmissionRefused) as exc:
        await host.create_servo(spec("w2", "web"))
    assert exc.value.reason == "already_runs_project"
    assert [r.servo_id for r in host.list_servos()] == ["w1"]


async def test_concurrent_creates_never_over_commit(make_host: Factory) -> None:
    host = make_host(memory_mb=100)
    results: list[str] = []

    async def attempt(sid: str) -> None:
        try:
            await host.create_servo(spec(sid, project=sid, memory_mb=64))
            results.append("ok")
        except AdmissionRefused as exc:
            results.append(exc.reason)

    async with trio.open_nursery() as nursery:
        for sid in ("c1", "c2", "c3"):
            nursery.start_soon(attempt, sid)
    assert sorted(results) == ["insufficient_memory", "insufficient_memory", "ok"]
    assert host.capacity_snapshot()["memory_free_mb"] == 36


@pytest.mark.parametrize("kept_before", [False, True])
async def test_failed_create_leaves_nothing_but_a_volume_that_was_there(
    make_host: Factory, kept_before: bool
) -> None:
    """A create the engine refuses was never acknowledged: no record, no container, no
    reservation, and no volume unless it existed before this attempt (then it is data)."""
    host = make_host()
    image = "missing/nothing:here" if host.runtime.fake else f"shoal-no-such-image-{RUN_ID}:x"
    volume = volume_name(host.node, "f1")
    if kept_before:
        await host.runtime.ensure_volume(volume, {"shoal.node": host.node})
    with pytest.raises(ServoFailed) as exc:
        await host.create_servo(spec("f1", image=image))
    assert exc.value.reason == "image_missing"
    assert exc.value.retry_elsewhere
    assert host.get("f1") is None and host.store.get("f1") is None
    assert host.capacity_snapshot()["memory_free_mb"] == 1024
    assert (await host.runtime.status(container_name(host.node, "f1"))).state == "missing"
    assert await host.runtime.list_managed(host.node) == []
    assert await host.runtime.volume_exists(volume) is kept_before
    if kept_before:
        await host.runtime.remove_volume(volume)


async def test_a_container_that_exits_at_once_is_created_then_restarted(
    make_host: Factory,
) -> None:
    """No start-up sleep: create answers when the engine says started; the exit that follows
    is the watcher's business (it restarts it with backoff), not a create failure."""
    host = make_host()
    cmd = ("false",) if host.runtime.fake else ("sh", "-c", "exit 1")
    record = await host.create_servo(spec("x1", command=cmd))
    assert record.state == "running" and record.restarts == 0
    assert (await host.create_servo(spec("x1", command=cmd))).servo_id == "x1"  # same request


async def test_reconcile_recreates_missing_and_removes_orphans(make_host: Factory) -> None:
    host = make_host()
    await host.create_servo(spec("r1"))
    await host.runtime.remove(container_name(host.node, "r1"))
    orphan = spec("orphan", project="ghost")
    labels = {"shoal.node": host.node, "shoal.servo": "orphan", "shoal.project": "ghost"}
    await host.runtime.ensure_volume(volume_name(host.node, "orphan"), labels)
    await host.runtime.run(
        container_name(host.node, "orphan"),
        orphan,
        volume_name(host.node, "orphan"),
        "127.0.0.1",
        (),
        labels,
    )
    report = await host.reconcile()
    assert report.recreated == ["r1"]
    assert report.removed_orphans == [container_name(host.node, "orphan")]
    assert (await host.runtime.status(container_name(host.node, "r1"))).state == "running"
    await host.runtime.remove_volume(volume_name(host.node, "orphan"))


async def test_stop_start_destroy(make_host: Factory) -> None:
    host = make_host()
    await host.create_servo(spec("l1"))
    assert (await host.stop_servo("l1")).state == "stopped"
    assert (await host.reconcile()).recreated == []  # a stopped servo stays stopped
    assert (await host.runtime.status(container_name(host.node, "l1"))).state != "running"
    assert (await host.start_servo("l1")).state == "running"
    await host.destroy_servo("l1")
    assert host.get("l1") is None
    assert host.capacity_snapshot()["memory_free_mb"] == 1024
    assert await host.runtime.list_managed(host.node) == []


async def test_engine_unreachable_is_reported_and_releases(tmp_path: Path) -> None:
    runtime = DockerRuntime(base_url="unix:///nonexistent/docker.sock", timeout_s=5)
    host = HostService("n", runtime, HostStore(tmp_path / "h.db", "n"), Capacity(512, 1000))
    try:
        with pytest.raises(RuntimeUnavailable):
            await host.create_servo(spec("u1"))
        assert host.capacity_snapshot()["memory_free_mb"] == 512
        assert host.get("u1") is None  # never acknowledged, so not kept
    finally:
        host.close()
