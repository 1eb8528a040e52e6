"""The locally built servo image serves HTTP, writes to /data and runs as non-root."""

import time
from typing import Any

import httpx
import pytest

from tests.conftest import RUN_ID, SERVO_IMAGE


@pytest.mark.docker
def test_servo_image_serves_a_page_as_non_root(
    docker_client: Any, run_labels: dict[str, str]
) -> None:
    vol = docker_client.volumes.create(name=f"shoal-{RUN_ID}-img", labels=run_labels)
    c = docker_client.containers.run(
        SERVO_IMAGE,
        detach=True,
        name=f"shoal-{RUN_ID}-img",
        labels=run_labels,
        environment={"SHOAL_SERVO": "s-1", "SHOAL_PROJECT": "web"},
        ports={"8080/tcp": ("127.0.0.1", None)},
        volumes={vol.name: {"bind": "/data"}},
    )
    try:
        c.reload()
        port = int(c.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])
        deadline = time.monotonic() + 15
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=1).text
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert "servo s-1 of project web" in page
        code, out = c.exec_run(["sh", "-c", "id -u && echo hi > /data/x && cat /data/x"])
        assert code == 0, out
        assert out.decode().split() == ["10001", "hi"]
    finally:
        c.remove(force=True)
        vol.remove(force=True)
