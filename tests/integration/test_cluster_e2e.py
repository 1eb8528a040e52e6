"""End to end with real agent processes: deploy through any agent, kill -9 a host and watch the
survivors bring its servo back, restart it and watch the count stay exact, and the API's refusals.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.agents import Agent, Cluster, make_cluster, wait_until

pytestmark = pytest.mark.slow

SPEC = {"image": "shoal-servo:latest", "replicas": 3, "memory": "64M", "cpus": 0.1, "ports": [8080]}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from make_cluster(tmp_path)


def running(project: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        s for s in project["servos"] if s["state"] == "running" and s.get("node_status") == "alive"
    ]


def test_deploy_recover_after_kill9_and_converge_after_return(cluster: Cluster) -> None:
    seed = cluster.add("a1", region="eu")
    others = [cluster.add(f"a{i}", region="eu" if i < 3 else "us", join=[seed]) for i in (2, 3, 4)]
    cluster.wait_healthy()
    cluster.wait_all_alive()
    via = others[0]

    r = httpx.put(f"{via.api}/v1/projects/web", json=SPEC, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["complete"] is True
    hosts = [s["node"] for s in running(body)]
    assert len(hosts) == 3 and len(set(hosts)) == 3, body
    assert {a.region for a in cluster.agents if a.name in hosts} == {"eu", "us"}
    first_ids = {s["id"] for s in running(body)}

    again = httpx.put(f"{seed.api}/v1/projects/web", json=SPEC, timeout=60).json()
    assert again["deploy"]["created"] == [] and {s["id"] for s in running(again)} == first_ids

    victim = next(a for a in cluster.agents if a.name in hosts and a is not via)
    victim.kill9()
    survivors = [a for a in cluster.agents if a is not victim]

    def recovered() -> list[dict[str, Any]] | None:
        p = via.get("/v1/projects/web")
        live = running(p)
        nodes = [s["node"] for s in live]
        ok = len(live) == 3 and len(set(nodes)) == 3 and victim.name not in nodes
        return live if ok else None

    # detection (suspicion minimum ~4-6 s on a 4-node LAN) + recovery grace + 10 s
    live = wait_until("a replacement servo on another host", recovered, timeout_s=45)
    assert {s["id"] for s in live} != first_ids
    for a in survivors:
        wait_until(
            f"{a.name} to see the victim dead", lambda a=a: a.members()[victim.name] == "dead"
        )

    victim.start()
    wait_until("the victim to rejoin", lambda: via.members().get(victim.name) == "alive", 30)

    def exact() -> bool:
        p = seed.get("/v1/projects/web")
        everywhere = [s for s in p["servos"] if s["state"] in ("running", "starting")]
        return len(everywhere) == 3 and len(running(p)) == 3

    wait_until("the project back at exactly 3 servos", exact, timeout_s=45)


def test_bad_requests_get_named_4xx_errors(cluster: Cluster) -> None:
    agent = cluster.add("t1", extra=["--api-token", "s3cret"])
    cluster.wait_healthy()
    auth = {"Authorization": "Bearer s3cret"}

    r = httpx.put(f"{agent.api}/v1/projects/web", json=SPEC, timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    r = httpx.put(f"{agent.api}/v1/projects/web", json=SPEC, headers={"Authorization": "Bearer no"})
    assert r.status_code == 401

    bad = {**SPEC, "replicas": -1, "memory": "lots"}
    r = httpx.put(f"{agent.api}/v1/projects/web", json=bad, headers=auth, timeout=10)
    assert r.status_code == 422
    assert set(r.json()["fields"]) == {"replicas", "memory"}
    assert "replicas" in r.json()["detail"]

    r = httpx.put(f"{agent.api}/v1/projects/Bad_Name", json=SPEC, headers=auth, timeout=10)
    assert r.status_code == 422 and "name" in r.json()["detail"]

    r = httpx.get(f"{agent.api}/v1/projects/nope", headers=auth, timeout=10)
    assert r.status_code == 404 and r.json()["error"] == "not_found"

    r = httpx.post(f"{agent.api}/internal/servos", json={"spec": {}}, timeout=10)
    assert r.status_code == 401

    r = httpx.get(f"{agent.api}/openapi.json", headers=auth, timeout=10)
    assert "/v1/projects/{name}" in r.json()["paths"]


def test_repeated_put_and_idempotency_key_create_nothing_new(cluster: Cluster) -> None:
    a = cluster.add("i1")
    b = cluster.add("i2", join=[a])
    cluster.wait_healthy()
    cluster.wait_all_alive()
    spec = {**SPEC, "replicas": 2}
    key = {"Idempotency-Key": "deploy-42"}
    first = httpx.put(f"{a.api}/v1/projects/api", json=spec, headers=key, timeout=60)
    replay = httpx.put(f"{a.api}/v1/projects/api", json=spec, headers=key, timeout=60)
    assert replay.headers.get("Idempotent-Replay") == "true"
    assert replay.json() == first.json()
    again = httpx.put(f"{b.api}/v1/projects/api", json=spec, timeout=60).json()
    assert again["deploy"]["created"] == []
    assert len(running(again)) == 2


def agent_by_name(cluster: Cluster, name: str) -> Agent:
    return next(a for a in cluster.agents if a.name == name)
