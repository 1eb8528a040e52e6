"""`shoal logs --follow` on real containers: two hosts each run a servo that counts out loud;
the stream from the agent asked carries every number of both, in order, none twice, none
missing (Docker's per-line timestamps are the follow's cursor)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.client import ShoalClient
from tests.integration.agents import Cluster, make_docker_cluster, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]

COUNT = ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]


@pytest.fixture
def cluster(tmp_path: Path, docker_client: Any) -> Iterator[Cluster]:
    yield from make_docker_cluster(tmp_path, docker_client)


def test_follow_carries_every_line_of_every_host_once_in_order(cluster: Cluster) -> None:
    a = cluster.add("g1", region="eu", runtime="docker")
    b = cluster.add("g2", region="us", runtime="docker", join=[a])
    cluster.wait_healthy()
    cluster.wait_all_alive()
    spec = {"image": "shoal-servo:latest", "replicas": 2, "memory": "32M", "cpus": 0.1}
    resp = httpx.put(f"{b.api}/v1/projects/count", json=spec | {"command": COUNT}, timeout=120)
    assert resp.status_code == 200, resp.text
    servos = {s["id"]: s["node"] for s in resp.json()["servos"]}
    assert len(set(servos.values())) == 2, servos
    wait_until(
        "both servos running in a's view",
        lambda: sum(s["state"] == "running" for s in a.get("/v1/projects/count")["servos"]) == 2,
        60,
    )

    numbers: dict[str, list[int]] = {sid: [] for sid in servos}
    with ShoalClient(a.api) as client:
        for line in client.follow_logs("count", None, 3, None):
            assert servos[line["servo"]] == line["node"]
            numbers[line["servo"]].append(int(line["line"].split()[1]))
            if all(len(seen) >= 25 for seen in numbers.values()):
                break  # ~5 s of both hosts' output: several polls of each
    for sid, seen in numbers.items():
        assert seen == list(range(seen[0], seen[0] + len(seen))), (sid, seen)
