"""The ingress with real agents, Traefik and containers: a project's host reaches its servos
through one agent's ingress, an unknown host gets the JSON 404, and when the agent hosting a
servo dies with its container, requests keep succeeding (Traefik retries a refused connect on
the other servo) and the dead servo leaves the routing table within seconds."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from node.ingress_proxy import CONFIG_PATH, TOKEN_HEADER
from tests.conftest import free_port
from tests.integration.agents import (
    Agent,
    Cluster,
    make_docker_cluster,
    wait_until,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SPEC = {"image": "shoal-servo:latest", "replicas": 2, "memory": "64M", "cpus": 0.1, "ports": [8080]}


@pytest.fixture
def cluster(tmp_path: Path, docker_client: Any) -> Iterator[Cluster]:
    yield from make_docker_cluster(tmp_path, docker_client)


def routing_table(agent: Agent) -> dict[str, Any]:
    """What Traefik pulls, fetched the way Traefik does: with the token from its static config."""
    static = json.loads((agent.data_dir / "ingress" / "traefik.json.yml").read_text())
    token = static["providers"]["http"]["headers"][TOKEN_HEADER]
    r = httpx.get(agent.api + CONFIG_PATH, headers={TOKEN_HEADER: token}, timeout=5)
    r.raise_for_status()
    table: dict[str, Any] = r.json()
    return table


def servers(agent: Agent, project: str) -> set[str]:
    service = routing_table(agent)["http"]["services"].get(f"project-{project}")
    return {s["url"] for s in service["loadBalancer"]["servers"]} if service else set()


def test_ingress_routes_by_host_answers_unknown_hosts_and_survives_a_dead_servo(
    cluster: Cluster, docker_client: Any
) -> None:
    port = free_port()
    a = cluster.add("i1", runtime="docker", extra=["--ingress-port", str(port)])
    others = [cluster.add(f"i{n}", runtime="docker", join=[a]) for n in (2, 3)]
    cluster.wait_healthy()
    cluster.wait_all_alive()
    r = httpx.put(f"{a.api}/v1/projects/site", json=SPEC, timeout=120)
    assert r.status_code == 200, r.text
    placed = r.json()["servos"]
    assert len(placed) == 2
    urls = {f"http://{s['endpoints'][0]['host']}:{s['endpoints'][0]['host_port']}" for s in placed}

    ingress = f"http://127.0.0.1:{port}/"
    site = {"Host": "site.shoal.localhost"}
    wait_until("both servos in the routing table", lambda: servers(a, "site") == urls)

    def page() -> str:
        r = httpx.get(ingress, headers=site, timeout=5)
        return r.text if r.status_code == 200 else ""

    first = wait_until("a page through the ingress", page)
    assert "of project site" in first
    ids = {s["id"] for s in placed}

    def round_robin() -> bool:
        # "shoal servo <id> of project site on ...": ten requests reach both servos. A servo
        # whose container runs but whose server is not listening yet is retried on the other
        # by the proxy, so on a loaded machine the first bursts may all land on one.
        pages = [page() for _ in range(10)]
        return {p.split()[2] for p in pages if p} == ids

    wait_until("ten requests through the ingress to reach both servos", round_robin)

    r = httpx.get(ingress + "anything", headers={"Host": "nope.shoal.localhost"}, timeout=5)
    assert r.status_code == 404
    assert r.json() == {"error": "not_found", "detail": "no project named nope on this cluster"}

    # the agent hosting a servo (not the ingress's) dies, and its container with it
    victim_servo = next(s for s in placed if s["node"] != a.name)
    victim = next(x for x in others if x.name == victim_servo["node"])
    victim.kill9()
    docker_client.containers.get(f"shoal-{victim.name}-{victim_servo['id']}").remove(force=True)
    dead_url = next(u for u in urls if u.endswith(f":{victim_servo['endpoints'][0]['host_port']}"))

    statuses = []
    deadline = time.monotonic() + 30
    while dead_url in servers(a, "site"):
        assert time.monotonic() < deadline, "the dead servo stayed in the routing table"
        statuses.append(httpx.get(ingress, headers=site, timeout=5).status_code)
    gone_s = 30 - (deadline - time.monotonic())
    statuses += [httpx.get(ingress, headers=site, timeout=5).status_code for _ in range(20)]
    assert set(statuses) == {200}, statuses
    print(f"dead servo out of the routing table after {gone_s:.1f}s; {len(statuses)} requests ok")
