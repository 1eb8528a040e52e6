"""Stop, start and drain are desired state: a host that missed a `start` starts its servos when it
learns the spec, and a drained agent stays drained across a restart until undrained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from node.context import AgentContext
from node.peers import PeerUnreachable
from node.projects import Project
from tests.integration.inproc import InProcCluster, all_see_alive, make_key, wait_for

pytestmark = pytest.mark.slow

WEB = Project("web", "shoal-servo:latest", 3, 64, 100)


def states(cluster: InProcCluster) -> list[str]:
    return sorted(
        str(r["state"])
        for ctx in cluster.contexts()
        for r in ctx.host.servo_records()
        if r["project"] == "web"
    )


async def three(cluster: InProcCluster) -> AgentContext:
    front = await cluster.add("d0", region="eu")
    await cluster.add("d1", region="us", join=["d0"])
    await cluster.add("d2", region="ap", join=["d0"])
    await cluster.add("d3", region="eu", join=["d0"])
    await all_see_alive(cluster, 4)
    _, outcome = await front.projects.deploy(WEB)
    assert outcome.missing == 0
    return front


async def test_a_host_that_missed_start_starts_its_servo_from_the_spec(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        front = await three(cluster)
        await front.projects.stop("web")
        await wait_for("every servo stopped", lambda: states(cluster) == ["stopped"] * 3)

        deaf = next(
            r["node"]
            for ctx in cluster.contexts()
            for r in ctx.host.servo_records()
            if r["node"] != front.name
        )
        real = front.client.servo_action

        async def lossy(node: str, api: str, servo_id: str, action: str) -> Any:
            if node == deaf:
                raise PeerUnreachable(node, "the start request was lost")
            return await real(node, api, servo_id, action)

        front.client.servo_action = lossy  # type: ignore[method-assign]
        await front.projects.start("web")
        await wait_for("every servo running", lambda: states(cluster) == ["running"] * 3, 10)
        await trio.sleep(2)  # no host re-stops a servo it just started, nothing extra made
        assert states(cluster) == ["running"] * 3
        nursery.cancel_scope.cancel()


async def test_drain_moves_servos_survives_a_restart_and_is_undone(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        front = await three(cluster)
        short = next(
            s
            for s in ("d1", "d2", "d3")
            if any(r["state"] == "running" for r in cluster.ctx(s).host.servo_records())
        )
        victim = cluster.ctx(short)
        result = await victim.drainer.drain()
        assert result["moved"] == 1 and result["kept"] == []
        assert victim.host.servo_records() == []
        assert states(cluster) == ["running"] * 3

        config = await cluster.stop(short)
        again = await cluster.start(config)
        assert again.draining
        await wait_for(
            "peers to see it draining",
            lambda: any(p.name == again.name and p.status == "draining" for p in front.peers()),
        )
        _, outcome = await front.projects.scale("web", 4)  # room only on the drained agent
        assert outcome.missing == 1
        assert all(r["project"] != "web" for r in again.host.servo_records())

        again.drainer.undrain()
        assert not again.draining
        await wait_for(
            "peers to see it alive",
            lambda: any(p.name == again.name and p.status == "alive" for p in front.peers()),
        )
        nursery.cancel_scope.cancel()
