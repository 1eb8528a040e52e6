"""Servo lifecycle across a real cluster on Docker: a graceful agent restart keeps every servo and
every volume, a container killed behind the agent's back runs again with its data, a crash loop
ends `failed` and is tried on another host, and a scale-down keeps the volumes it removes."""

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
    ours,
    wait_until,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SPEC = {"image": "shoal-servo:latest", "replicas": 3, "memory": "32M", "cpus": 0.1}


@pytest.fixture
def cluster(tmp_path: Path, docker_client: Any) -> Iterator[Cluster]:
    yield from make_docker_cluster(tmp_path, docker_client)


def four(cluster: Cluster) -> list[Agent]:
    a = cluster.add("l1", region="eu", runtime="docker", extra=["--restart-grace", "60"])
    for short, region in (("l2", "eu"), ("l3", "us"), ("l4", "ap")):
        cluster.add(short, region=region, runtime="docker", join=[a])
    cluster.wait_healthy(timeout_s=90)  # four Docker agents starting on two busy cores
    cluster.wait_all_alive(timeout_s=60)
    return cluster.agents


def live(agent: Agent, project: str) -> list[dict[str, Any]]:
    return [
        s
        for s in agent.get(f"/v1/projects/{project}")["servos"]
        if s["state"] in ("starting", "running", "restarting")
    ]


def volume_names(docker_client: Any) -> set[str]:
    return {v.name for v in ours(docker_client)[1]}


def test_graceful_restart_keeps_the_count_and_every_volume(
    cluster: Cluster, docker_client: Any
) -> None:
    agents = four(cluster)
    front = agents[0]
    r = httpx.put(f"{front.api}/v1/projects/keep", json=SPEC, timeout=120)
    assert r.status_code == 200 and r.json()["complete"], r.text
    original = {s["id"]: s["node"] for s in r.json()["servos"]}
    volumes = volume_names(docker_client)
    assert len(original) == 3 and len(volumes) == 3

    # restart (SIGINT, then the same command and data dir) an agent that runs one of them
    victim = next(a for a in agents[1:] if a.name in original.values())
    assert victim.stop() == 0
    time.sleep(15)  # past failure detection: peers must hold its servo for the grace
    assert {s["id"] for s in live(front, "keep")} == set(original)
    victim.start()
    wait_until(
        f"{victim.name} back with its servo running",
        lambda: any(
            s["node"] == victim.name and s["state"] == "running" and s["node_status"] == "alive"
            for s in front.get("/v1/projects/keep")["servos"]
        ),
        60,
    )
    time.sleep(5)  # recovery rounds ran meanwhile
    assert {s["id"]: s["node"] for s in live(front, "keep")} == original
    assert volumes <= volume_names(docker_client)  # nothing deleted


def test_killed_container_restarts_with_data_and_scale_down_keeps_volumes(
    cluster: Cluster, docker_client: Any
) -> None:
    agents = four(cluster)
    front = agents[0]
    r = httpx.put(f"{front.api}/v1/projects/kill", json=SPEC, timeout=120)
    assert r.json()["complete"], r.text
    servo = r.json()["servos"][0]

    def find() -> list[Any]:
        return [
            c
            for c in ours(docker_client)[0]
            if c.attrs["Labels"].get("shoal.servo") == servo["id"] and c.attrs["State"] == "running"
        ]

    sparse = wait_until(f"the container of {servo['id']}", find, 10)[0]
    container = docker_client.containers.get(sparse.id)
    assert container.exec_run(["sh", "-c", "echo precious > /data/file"]).exit_code == 0
    container.kill()
    killed = time.monotonic()
    wait_until(
        "the killed servo running again",
        lambda: docker_client.containers.get(container.id).status == "running",
        10,
        0.1,
    )
    assert time.monotonic() - killed < 5
    again = docker_client.containers.get(container.id)
    assert again.exec_run(["cat", "/data/file"]).output.strip() == b"precious"

    def restarted() -> dict[str, Any] | None:
        for s in front.get("/v1/projects/kill")["servos"]:
            if s["id"] == servo["id"] and s["restarts"] >= 1 and s["state"] == "running":
                return dict(s)
        return None

    seen = wait_until("the restart in the project's JSON", restarted, 15)
    assert seen["last_exit"]["reason"] == "killed" and seen["last_exit"]["code"] == 137
    host = next(a for a in agents if a.name == servo["node"])
    metrics = httpx.get(f"{host.api}/metrics", timeout=10).text
    assert 'shoal_servo_exits_total{reason="killed"} 1.0' in metrics

    before = volume_names(docker_client)
    everyone = {s["id"] for s in r.json()["servos"]}
    scaled = httpx.post(f"{front.api}/v1/projects/kill/scale", json={"replicas": 1}, timeout=120)
    assert scaled.status_code == 200, scaled.text
    wait_until("two containers gone", lambda: len(ours(docker_client)[0]) == 1, 30)

    def one_left() -> list[dict[str, Any]] | None:
        servos = live(front, "kill")
        return servos if len(servos) == 1 else None

    (left,) = wait_until("one live servo in the front's view", one_left, 15)
    assert left["slot"] == 0  # a scale-down removes the highest slots
    assert volume_names(docker_client) == before  # the volumes of removed servos are kept
    kept = wait_until("both kept volumes listed", lambda: front.get("/v1/volumes")["volumes"])
    assert sorted(v["servo"] for v in kept) == sorted(everyone - {left["id"]})


def test_crash_loop_ends_failed_and_is_tried_on_another_host(
    cluster: Cluster, docker_client: Any
) -> None:
    agents = four(cluster)
    front = agents[0]
    spec = {**SPEC, "replicas": 1, "command": ["sh", "-c", "sleep 1; echo bye; exit 3"]}
    r = httpx.put(f"{front.api}/v1/projects/crash", json=spec, timeout=120)
    assert r.status_code == 200, r.text
    first = r.json()["servos"][0]

    def failed_and_replaced() -> list[dict[str, Any]] | None:
        servos = front.get("/v1/projects/crash")["servos"]
        failed = [s for s in servos if s["id"] == first["id"] and s["state"] == "failed"]
        others = [s for s in servos if s["node"] != first["node"]]
        return servos if failed and others else None

    servos = wait_until("failed, then tried elsewhere", failed_and_replaced, 90, 0.5)
    old = next(s for s in servos if s["id"] == first["id"])
    assert old["restarts"] >= 4
    assert old["last_exit"]["code"] == 3 and old["last_exit"]["reason"] == "exited"
    logs = front.get("/v1/projects/crash/logs", params={"servo": first["id"]})
    assert "bye" in logs["servos"][0]["logs"]
