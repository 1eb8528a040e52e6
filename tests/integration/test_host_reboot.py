"""The reboot story, for real: data written in a servo survives losing its container."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from node.capacity import Capacity
from node.host import HostService, container_name
from node.runtime import ServoSpec
from node.runtime_docker import DockerRuntime
from node.store import HostStore
from tests.conftest import RUN_ID, SERVO_IMAGE
from tests.integration.agents import wait_until

pytestmark = pytest.mark.docker


async def test_container_lost_in_a_reboot_comes_back_with_its_data(
    docker_client: Any, run_labels: dict[str, str], tmp_path: Path
) -> None:
    node = f"{RUN_ID}-reboot"
    spec = ServoSpec("rb1", "notes", SERVO_IMAGE, 64, 100, ports=(8080,))

    def boot() -> HostService:
        return HostService(
            node,
            DockerRuntime(extra_labels=run_labels),
            HostStore(tmp_path / "host.db", node),
            Capacity(1024, 1000),
        )

    host = boot()
    record = await host.create_servo(spec)
    name = container_name(node, "rb1")
    code, out = docker_client.containers.get(name).exec_run(
        ["sh", "-c", "echo 'kept across reboots' > /data/hello.txt"]
    )
    assert code == 0, out
    host.close()  # the agent stops...
    docker_client.containers.get(name).remove(force=True)  # ...and the reboot loses the container

    host = boot()
    try:
        report = await host.reconcile()
        assert report.recreated == ["rb1"]
        c = docker_client.containers.get(name)
        code, out = c.exec_run(["cat", "/data/hello.txt"])
        assert (code, out.decode().strip()) == (0, "kept across reboots")
        port = record.endpoints[0].host_port
        page = wait_until(
            "the page", lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text
        )
        assert "kept across reboots" in page  # same host port, same volume
    finally:
        await host.destroy_servo("rb1")
        host.close()
