"""Rolling updates with real containers: a new version rolls out health-checked and never below
the count; a broken version (its process exits at once) rolls back by itself while the old
version keeps serving."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.agents import (
    Agent,
    Cluster,
    make_docker_cluster,
    wait_until,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

V1 = {
    "image": "shoal-servo:latest",
    "replicas": 3,
    "memory": "32M",
    "cpus": 0.1,
    "ports": [8080],
    "env": {"V": "1"},
    "health": {"type": "http", "port": 8080, "interval_s": 0.5, "timeout_s": 0.5, "grace_s": 1},
    "update": {"healthy_for_s": 2},
}


@pytest.fixture
def cluster(tmp_path: Path, docker_client: Any) -> Iterator[Cluster]:
    yield from make_docker_cluster(tmp_path, docker_client)


def three(cluster: Cluster) -> Agent:
    a = cluster.add("o1", region="eu", runtime="docker")
    cluster.add("o2", region="us", runtime="docker", join=[a])
    cluster.add("o3", region="ap", runtime="docker", join=[a])
    cluster.wait_healthy(timeout_s=90)
    cluster.wait_all_alive(timeout_s=60)
    r = httpx.put(f"{a.api}/v1/projects/roll", json=V1, timeout=120)
    assert r.status_code == 200, r.text
    wait_until("3 healthy servos", lambda: len(serving(a)) == 3, 60)
    return a


def serving(agent: Agent) -> list[dict[str, Any]]:
    return [
        s
        for s in agent.get("/v1/projects/roll")["servos"]
        if s["state"] == "running" and s["node_status"] == "alive"
    ]


def follow(agent: Agent, until: set[str], timeout_s: float) -> tuple[dict[str, Any], list[int]]:
    """Poll the project until its rollout reaches a state in `until`; the serving counts seen."""
    counts = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = agent.get("/v1/projects/roll")
        counts.append(sum(1 for s in body["servos"] if s["state"] == "running"))
        if body["rollout"] and body["rollout"]["state"] in until:
            return body, counts
        time.sleep(0.2)
    raise AssertionError(f"rollout did not reach {until} in {timeout_s}s")


def test_a_new_version_rolls_out_and_never_drops_below_replicas(cluster: Cluster) -> None:
    front = three(cluster)
    r = httpx.put(f"{front.api}/v1/projects/roll", json={**V1, "env": {"V": "2"}}, timeout=120)
    assert r.status_code == 200 and r.json()["generation"] == 2, r.text
    body, counts = follow(front, {"succeeded", "failed", "rolled_back"}, 120)
    assert body["rollout"]["state"] == "succeeded", body["rollout"]
    assert min(counts) >= 3, counts
    wait_until(
        "only generation 2 serving",
        lambda: sorted(s["generation"] for s in serving(front)) == [2, 2, 2],
        30,
    )
    for s in serving(front):
        (ep,) = s["endpoints"]
        page = httpx.get(f"http://{ep['host']}:{ep['host_port']}/", timeout=5).text
        assert f"servo {s['id']}" in page


def test_a_broken_version_rolls_back_and_the_old_one_keeps_serving(cluster: Cluster) -> None:
    front = three(cluster)
    broken = {**V1, "env": {"V": "2"}, "command": ["sh", "-c", "exit 1"]}
    r = httpx.put(f"{front.api}/v1/projects/roll", json=broken, timeout=120)
    assert r.status_code == 200, r.text
    body, counts = follow(front, {"succeeded", "failed", "rolled_back"}, 150)
    assert body["rollout"]["state"] == "rolled_back", body["rollout"]
    assert body["rollout"]["generation"] == 2 and body["generation"] == 1
    assert min(counts) >= 3, counts
    assert sorted(s["generation"] for s in serving(front)) == [1, 1, 1]
    history = front.get("/v1/projects/roll/history")
    assert "rolled back from 2" in history["history"][-1]["change"]
