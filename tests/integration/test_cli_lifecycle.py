"""The CLI against real agents, and the lifecycle around a deploy: scale, drain, metrics, and a
destroy that reaches an agent which was down at the time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.agents import Cluster, make_cluster, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from make_cluster(tmp_path)


def shoal(api: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOAL_API": api, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def live(project: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        s for s in project["servos"] if s["state"] == "running" and s.get("node_status") == "alive"
    ]


def test_cli_lifecycle_drain_metrics_and_late_destroy(cluster: Cluster) -> None:
    a = cluster.add("c1", region="eu")
    b = cluster.add("c2", region="eu", join=[a])
    c = cluster.add("c3", region="us", join=[a])
    d = cluster.add("c4", region="us", join=[a])
    cluster.wait_healthy()
    cluster.wait_all_alive()

    members = shoal(a.api, "members", "--json")
    assert members.returncode == 0, members.stderr
    assert {m["name"] for m in json.loads(members.stdout)} == {x.name for x in cluster.agents}
    table = shoal(a.api, "members")
    assert "alive" in table.stdout and a.name[:8] in table.stdout

    out = shoal(
        b.api,
        "deploy",
        "web",
        "--image",
        "shoal-servo:latest",
        "--replicas",
        "2",
        "--memory",
        "64M",
        "--cpus",
        "0.1",
        "--port",
        "8080",
        "--env",
        "A=1",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    assert len(live(json.loads(out.stdout))) == 2

    scaled = json.loads(shoal(c.api, "scale", "web", "4", "--json").stdout)
    assert len({s["node"] for s in live(scaled)}) == 4
    down = json.loads(shoal(a.api, "scale", "web", "2", "--json").stdout)
    nodes = [cluster_node(cluster, s["node"]).region for s in live(down)]
    assert sorted(nodes) == ["eu", "us"]  # scale-down keeps one per region

    listed = json.loads(shoal(d.api, "projects", "--json").stdout)
    assert [p["name"] for p in listed] == ["web"]
    assert shoal(d.api, "status", "web").returncode == 0

    # drain one host that runs a servo: its servo moves, the count stays 2
    host = next(x for x in cluster.agents if x.name in {s["node"] for s in live(down)})
    drained = shoal(a.api, "drain", host.name, "--json")
    assert drained.returncode == 0, drained.stderr
    assert json.loads(drained.stdout)["moved"] == 1

    def moved() -> bool:
        p = a.get("/v1/projects/web")
        running = [s for s in p["servos"] if s["state"] == "running"]
        return len(running) == 2 and host.name not in {s["node"] for s in running}

    wait_until("the drained servo replaced elsewhere", moved, 30)

    metrics = httpx.get(f"{a.api}/metrics", timeout=5).text
    for name in (
        'shoal_members{status="alive"}',
        "shoal_deploys_total",
        "shoal_servo_create_seconds",
        "shoal_gossip_packets_in_total",
        'shoal_servos{state="running"}',
    ):
        assert name in metrics, name

    # an agent that is down while the project is destroyed removes its servos when it returns
    victim = next(
        x
        for x in cluster.agents
        if x.name in {s["node"] for s in live(a.get("/v1/projects/web"))} and x is not a
    )
    victim.kill9()
    wait_until("victim dead", lambda: a.members()[victim.name] == "dead", 20)
    gone = shoal(a.api, "destroy", "web", "--json")
    assert gone.returncode == 0 and json.loads(gone.stdout)["destroyed"] is True
    victim.start()
    wait_until("victim back", lambda: a.members().get(victim.name) == "alive", 30)
    wait_until(
        "no servo of web anywhere", lambda: all(m["servos"] == 0 for m in a.get("/v1/members")), 30
    )

    missing = shoal(a.api, "status", "nope")
    assert missing.returncode == 1 and "not_found" in missing.stderr
    unreachable = shoal("http://127.0.0.1:1", "members")
    assert unreachable.returncode == 1 and "cannot connect" in unreachable.stderr


def cluster_node(cluster: Cluster, name: str) -> Any:
    return next(x for x in cluster.agents if x.name == name)
