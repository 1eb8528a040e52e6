"""The same flow with real containers: deploy through one agent onto three hosts, reach every
servo's endpoint, stop and start, then destroy and find no container or volume left."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.agents import Cluster, make_docker_cluster, ours, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def cluster(tmp_path: Path, docker_client: Any) -> Iterator[Cluster]:
    yield from make_docker_cluster(tmp_path, docker_client)


def test_docker_deploy_serves_pages_and_destroy_leaves_nothing(
    cluster: Cluster, docker_client: Any
) -> None:
    a = cluster.add("d1", region="eu", runtime="docker")
    cluster.add("d2", region="eu", runtime="docker", join=[a])
    c = cluster.add("d3", region="us", runtime="docker", join=[a])
    cluster.wait_healthy()
    cluster.wait_all_alive()
    spec = {
        "image": "shoal-servo:latest",
        "replicas": 3,
        "memory": "64M",
        "cpus": 0.1,
        "ports": [8080],
        "env": {"GREETING": "hello"},
    }
    r = httpx.put(f"{c.api}/v1/projects/site", json=spec, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["complete"], body
    nodes = {s["node"] for s in body["servos"]}
    assert len(nodes) == 3
    for s in body["servos"]:
        (ep,) = s["endpoints"]
        url = f"http://{ep['host']}:{ep['host_port']}/"
        page = wait_until(f"page of {s['id']}", lambda url=url: httpx.get(url, timeout=2).text)
        assert f"servo {s['id']} of project site" in page

    stopped = httpx.post(f"{a.api}/v1/projects/site/stop", timeout=60).json()
    assert stopped["spec"]["stopped"] is True
    wait_until(
        "servos stopped",
        lambda: all(s["state"] == "stopped" for s in a.get("/v1/projects/site")["servos"]),
    )
    started = httpx.post(f"{a.api}/v1/projects/site/start", timeout=120).json()
    assert started["complete"], started

    r = httpx.delete(f"{a.api}/v1/projects/site", timeout=120)
    assert r.status_code == 200
    wait_until("no container or volume left", lambda: ours(docker_client) == ([], []), 30)
