"""A host cut off by a network partition and healed: no servo is lost and counts converge.

Agents run in their own network namespaces with their own addresses, so the partition is real:
the cut host keeps running, sees everyone else dead, and must not make a mess on return.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.agents import Cluster, make_cluster, wait_until
from tests.integration.netns import Host, hosts

pytestmark = [pytest.mark.netns, pytest.mark.slow]

SPEC = {"image": "shoal-servo:latest", "replicas": 3, "memory": "64M", "cpus": 0.1}


@pytest.fixture
def four_hosts() -> Iterator[list[Host]]:
    if os.geteuid() != 0:
        pytest.fail("network namespace tests need root")
    with hosts(4) as hs:
        yield hs


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from make_cluster(tmp_path)


def live(project: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in project["servos"] if s["state"] == "running"]


def test_partitioned_host_heals_without_losing_servos(
    cluster: Cluster, four_hosts: list[Host]
) -> None:
    agents = []
    for i, h in enumerate(four_hosts):
        agents.append(
            cluster.add(
                f"n{i}",
                region="eu" if i < 2 else "us",
                bind=h.addr,
                prefix=h.exec_prefix(),
                join=agents[:1],
            )
        )
    cluster.wait_healthy(timeout_s=40)
    cluster.wait_all_alive(timeout_s=40)
    a0 = agents[0]
    body = httpx.put(f"{a0.api}/v1/projects/part", json=SPEC, timeout=60).json()
    hosts_used = {s["node"] for s in live(body)}
    assert len(hosts_used) == 3
    victim_i = next(i for i, a in enumerate(agents) if a.name in hosts_used and a is not a0)
    victim, host = agents[victim_i], four_hosts[victim_i]

    host.cut()
    wait_until(
        "the others to call the cut host dead", lambda: a0.members()[victim.name] == "dead", 30
    )

    def replaced() -> bool:
        p = a0.get("/v1/projects/part")
        nodes = {s["node"] for s in live(p) if s.get("node_status") == "alive"}
        return len(nodes) == 3 and victim.name not in nodes

    wait_until("the lost servo re-created on the spare host", replaced, timeout_s=40)
    time.sleep(2)
    host.heal()
    wait_until("the healed host alive again", lambda: a0.members()[victim.name] == "alive", 40)

    def converged() -> bool:
        counts = []
        for a in agents:
            p = a.get("/v1/projects/part")
            alive_live = [s for s in live(p) if s.get("node_status") == "alive"]
            counts.append(len(alive_live))
        return counts == [3, 3, 3, 3]

    wait_until("every agent to see exactly 3 running servos", converged, timeout_s=60)
    for a in agents:
        assert a.running(), a.log_text()[-2000:]
