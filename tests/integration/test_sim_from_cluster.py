"""`shoal sim SCENARIO --from-cluster URL` on a live cluster: in-process agents in two regions
with two projects; the simulated fleet must be theirs (agents, regions, zones, capacities,
projects and specs) and the outage must take down the region asked for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from node.config import AgentConfig
from sim.cli import main as sim_main
from sim.from_cluster import FromClusterError, fetch_layout, layout_from
from tests.conftest import RUN_ID, free_port
from tests.integration.inproc import InProcCluster, all_see_alive, make_key

WEB = {"image": "web:1", "replicas": 2, "memory": "256M", "cpus": 0.5, "spread": "region"}
DB = {"image": "db:1", "replicas": 1, "memory": 1024, "cpus": 1, "spread": "host"}


async def test_the_simulated_fleet_is_the_live_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        first = await cluster.add("e1", region="eu")
        await cluster.add("e2", region="eu", join=["e1"], zone="eu-2")
        seed = f"127.0.0.1:{first.config.gossip_port}"
        big = AgentConfig(
            name=f"{RUN_ID}-u1",
            region="us",
            gossip_port=free_port(),
            api_port=free_port(),
            data_dir=tmp_path / "u1",
            memory_mb=8192,
            millicpus=2000,
            join=(seed,),
            cluster_key_file=first.config.cluster_key_file,
        )
        await cluster.start(big)
        await all_see_alive(cluster, 3)
        url = f"http://127.0.0.1:{first.config.api_port}"
        async with httpx.AsyncClient(timeout=60) as http:
            for name, spec in (("web", WEB), ("db", DB)):
                r = await http.put(f"{url}/v1/projects/{name}", json=spec)
                assert r.status_code == 200, r.text

        layout = await trio.to_thread.run_sync(fetch_layout, url, None, "eu", None)
        hosts = {h.name: h for h in layout.hosts}
        assert {(h.region, h.zone, h.memory_mb, h.millicpus) for h in hosts.values()} == {
            ("eu", "eu-1", 4096, 4000),
            ("eu", "eu-2", 4096, 4000),
            ("us", "us-1", 8192, 2000),
        }
        specs = {s.name: s for s in layout.specs}
        assert (specs["web"].replicas, specs["web"].memory_mb, specs["web"].millicpus) == (
            2,
            256,
            500,
        )
        assert (specs["db"].spread, specs["db"].memory_mb, specs["db"].millicpus) == (
            "host",
            1024,
            1000,
        )
        assert layout.target_region == "eu" and layout.source == url

        report = tmp_path / "what-if.html"
        argv = [
            "region-outage",
            "--from-cluster",
            url,
            "--region",
            "eu",
            "--duration",
            "40",
            "--fail-at",
            "10",
            "--json",
            "--report",
            str(report),
        ]
        assert await trio.to_thread.run_sync(sim_main, argv) == 0
        text_argv = [a for a in argv if a != "--json"]
        text_argv[text_argv.index("--report") + 1] = str(tmp_path / "again.html")
        json_out = capsys.readouterr().out
        assert await trio.to_thread.run_sync(sim_main, text_argv) == 0
        text = capsys.readouterr().out
        assert f"fleet of {url}: What if region eu goes down?" in text
        nursery.cancel_scope.cancel()
    result: dict[str, Any] = json.loads(json_out)
    assert (result["agents"], result["regions"], result["recovery"]["projects"]) == (3, 2, 2)
    assert result["target"]["region"] == "eu"
    assert result["detection"]["failed"] == 2  # both eu agents, and only them
    before = result["capacity"]["before"]
    assert before["eu"]["memory_total_mb"] == 8192 and before["us"]["memory_total_mb"] == 8192
    assert result["capacity"]["after"]["eu"]["agents_up"] == 0
    assert result["fleet"]["source"] == url
    page = report.read_text()
    assert "What if region eu goes down?" in page and url in page


def member(name: str, region: str, status: str = "alive", memory: int = 4096) -> dict[str, Any]:
    return {
        "name": name,
        "status": status,
        "region": region,
        "zone": f"{region}-1",
        "capacity": {"memory_total_mb": memory, "millicpus_total": 4000},
    }


def test_members_that_take_no_servos_are_left_out_and_said_so() -> None:
    members = [
        member("a", "eu"),
        member("b", "eu", "dead"),
        member("c", "us"),
        member("d", "us", "left"),
        member("e", "us", memory=0),
    ]
    projects = [
        {"name": "ok", "spec": {"replicas": 1, "memory": 64, "cpus": 0.1}},
        {"name": "bad", "spec": {"replicas": 1, "memory": "lots", "cpus": 0.1}},
    ]
    layout = layout_from(members, projects)
    assert [h.name for h in layout.hosts] == ["a", "c"]
    assert [s.name for s in layout.specs] == ["ok"]
    notes = " ".join(layout.notes)
    assert "b left out: it is dead" in notes and "d left out: it is left" in notes
    assert "e left out: it reports no capacity" in notes and "project bad left out" in notes


def test_an_unknown_region_or_a_single_agent_is_an_error() -> None:
    with pytest.raises(FromClusterError, match="no region 'mars'"):
        layout_from([member("a", "eu"), member("b", "us")], [], region="mars")
    with pytest.raises(FromClusterError, match="1 agent"):
        layout_from([member("a", "eu")], [])
    assert (
        layout_from([member("a", "eu"), member("b", "us"), member("c", "us")], []).target_region
        == "us"
    )
