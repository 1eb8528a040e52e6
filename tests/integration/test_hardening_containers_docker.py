"""Issue 13, points 9 and 2 on the real Docker Engine: bounded logs, a read-only root with a
tmpfs /tmp (unless the spec asks otherwise), one network per project made with its first servo
on a host and removed with its last (its volumes untouched), and secrets in the container's env
opened from the sealed box by the runtime alone."""

from __future__ import annotations

import secrets as random_secrets
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from node.capacity import Capacity
from node.host import HostService, container_name, volume_name
from node.runtime import ServoSpec
from node.runtime_docker import DockerRuntime, project_network
from node.secret_box import SecretBox
from node.store import HostStore
from tests.conftest import RUN_ID, RUN_LABEL, SERVO_IMAGE

pytestmark = pytest.mark.docker

KEY = random_secrets.token_bytes(32)


async def docker(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


@pytest.fixture
async def host(
    docker_client: Any, run_labels: dict[str, str], tmp_path: Path
) -> AsyncIterator[HostService]:
    node = f"{RUN_ID}-hc{uuid.uuid4().hex[:4]}"
    made = HostService(
        node,
        DockerRuntime(extra_labels=run_labels, secret_box=SecretBox([KEY])),
        HostStore(tmp_path / f"{node}.db", node),
        Capacity(1024, 2000),
    )
    yield made
    for record in made.list_servos():
        await made.destroy_servo(record.servo_id)
    await made.prune_volumes()
    made.close()
    flt = {"label": f"{RUN_LABEL}={RUN_ID}"}
    for net in await docker(lambda: docker_client.networks.list(filters=flt)):
        await docker(net.remove)


def spec(sid: str, project: str, **extra: Any) -> ServoSpec:
    return ServoSpec(sid, project, SERVO_IMAGE, 64, 100, ports=(8080,), **extra)


async def inspect(docker_client: Any, host: HostService, sid: str) -> Any:
    container = await docker(lambda: docker_client.containers.get(container_name(host.node, sid)))
    return container


async def test_logs_bounded_root_read_only_tmp_writable(
    docker_client: Any, host: HostService
) -> None:
    project = f"{RUN_ID}-ro"
    await host.create_servo(spec("ro1", project))
    container = await inspect(docker_client, host, "ro1")
    hc = container.attrs["HostConfig"]
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}
    assert hc["ReadonlyRootfs"] is True
    assert "/tmp" in hc["Tmpfs"]
    code, _ = await docker(lambda: container.exec_run(["touch", "/etc/owned"]))
    assert code != 0  # the root filesystem refuses writes
    code, out = await docker(lambda: container.exec_run(["touch", "/tmp/ok", "/data/ok"]))
    assert code == 0, out
    code, out = await docker(lambda: container.exec_run(["cat", "/tmp/www/index.html"]))
    assert code == 0 and f"project {project}" in out.decode()  # the servo's page is served


async def test_writable_root_when_the_spec_asks(docker_client: Any, host: HostService) -> None:
    await host.create_servo(spec("rw1", f"{RUN_ID}-rw", writable_root=True))
    container = await inspect(docker_client, host, "rw1")
    assert container.attrs["HostConfig"]["ReadonlyRootfs"] is False
    code, out = await docker(lambda: container.exec_run(["touch", "/www/x"]))
    assert code == 0, out


async def test_a_network_per_project_made_first_removed_last(
    docker_client: Any, host: HostService
) -> None:
    web, api = f"{RUN_ID}-web", f"{RUN_ID}-api"
    await host.create_servo(spec("w1", web, max_per_host=2))
    await host.create_servo(spec("w2", web, slot=1, max_per_host=2))
    await host.create_servo(spec("a1", api))
    nets = {}
    for sid in ("w1", "w2", "a1"):
        container = await inspect(docker_client, host, sid)
        nets[sid] = set(container.attrs["NetworkSettings"]["Networks"])
    assert nets["w1"] == nets["w2"] == {project_network(host.node, web)}
    assert nets["a1"] == {project_network(host.node, api)}  # projects do not share a network

    def network_exists(name: str) -> bool:
        return bool(docker_client.networks.list(names=[name]))

    await host.remove_servo("w1", deregister_s=0)
    assert await docker(lambda: network_exists(project_network(host.node, web)))  # w2 still uses it
    await host.remove_servo("w2", deregister_s=0)
    assert not await docker(lambda: network_exists(project_network(host.node, web)))
    # a removed servo's volume is kept: the network's removal never touches volumes
    for sid in ("w1", "w2"):
        volume = volume_name(host.node, sid)
        assert await docker(lambda v=volume: docker_client.volumes.get(v))  # type: ignore[misc]
    assert await docker(lambda: network_exists(project_network(host.node, api)))


async def test_secrets_reach_the_container_env_only(
    docker_client: Any, host: HostService, tmp_path: Path
) -> None:
    value = "v-" + uuid.uuid4().hex
    project = f"{RUN_ID}-sec"
    box = SecretBox([KEY]).seal(project, {"DB_PASSWORD": value})
    await host.create_servo(spec("s1", project, secrets=box))
    container = await inspect(docker_client, host, "s1")
    assert f"DB_PASSWORD={value}" in container.attrs["Config"]["Env"]
    assert _files_holding(tmp_path, value.encode()) == []  # the host's store has the box only


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_two_agents_on_one_engine_make_a_project_network_each(
    docker_client: Any, run_labels: dict[str, str], tmp_path: Path
) -> None:
    # found by the ingress test: two agents making "the" network of a project at once made two
    # networks of one name (Docker allows it), and every later create failed as ambiguous
    hosts = []
    for n in range(2):
        node = f"{RUN_ID}-dup{n}{uuid.uuid4().hex[:4]}"
        runtime = DockerRuntime(extra_labels=run_labels)
        hosts.append(
            HostService(node, runtime, HostStore(tmp_path / f"{n}.db", node), Capacity(1024, 2000))
        )
    project = f"{RUN_ID}-both"
    try:
        async with trio.open_nursery() as nursery:
            for n, h in enumerate(hosts):
                nursery.start_soon(h.create_servo, spec(f"d{n}", project))
        for n, h in enumerate(hosts):
            record = h.get(f"d{n}")
            assert record is not None and record.state in ("starting", "running"), record
            container = await inspect(docker_client, h, f"d{n}")
            assert set(container.attrs["NetworkSettings"]["Networks"]) == {
                project_network(h.node, project)
            }
    finally:
        for h in hosts:
            for record in h.list_servos():
                await h.destroy_servo(record.servo_id)
            h.close()
