"""One engine: the agents and the simulator execute `placement.converge`, so a change there shows
up in both; and two agents converging one project at once make no extra servo."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

import placement.converge as engine
from node.projects import Project
from placement.converge import Desired
from sim.fleet import Fleet
from sim.gossip_net import GossipNet
from tests.integration.inproc import InProcCluster, all_see_alive, make_key, wait_for

pytestmark = pytest.mark.slow


def marked_ids(project: str, generation: int, slot: int, node: str) -> str:
    return f"{project}-changed-{slot}-{node[-2:]}"


def simulated_recovery_ids() -> list[str]:
    """Servo ids the simulator's owners create after a region of 9 hosts goes down."""
    net = GossipNet(seed=5)
    fleet = Fleet(net, [Desired(f"p{i}", 3, 100, 100) for i in range(6)])
    for i in range(9):
        fleet.add_host(f"h{i}", f"r{i % 3}", f"r{i % 3}-a", 1000, 4000)
    fleet.deploy_all()
    net.join_all("h0")
    net.run(5)
    before = {sid for servos in fleet.servos.values() for sid in servos}
    for name in ("h0", "h3", "h6"):
        net.crash(name)
    net.run(60)
    assert all(c == 3 for c in fleet.live_counts().values()), fleet.live_counts()
    return sorted({sid for servos in fleet.servos.values() for sid in servos} - before)


WEB = Project("web", "shoal-servo:latest", 3, 64, 100)


async def deployed_ids(tmp_path: Path) -> list[str]:
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        await cluster.add("a0", region="eu")
        await cluster.add("a1", region="us", join=["a0"])
        await cluster.add("a2", region="ap", join=["a0"])
        await all_see_alive(cluster, 3)
        _, outcome = await cluster.ctx("a1").projects.deploy(WEB)
        assert outcome.missing == 0, outcome.failures
        nursery.cancel_scope.cancel()
    return sorted(s.servo_id for s in outcome.servos)


async def test_an_engine_change_shows_in_the_agent_and_in_the_simulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not any("-changed-" in sid for sid in simulated_recovery_ids())
    assert not any("-changed-" in sid for sid in await deployed_ids(tmp_path / "before"))

    monkeypatch.setattr(engine, "servo_id_for", marked_ids)

    recovered = simulated_recovery_ids()
    assert len(recovered) == 6 and all("-changed-" in sid for sid in recovered)
    created = await deployed_ids(tmp_path / "after")
    assert len(created) == 3 and all("-changed-" in sid for sid in created)


async def test_two_agents_converging_one_project_at_once_make_no_extra_servo(
    tmp_path: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        a = await cluster.add("r0", region="eu")
        b = await cluster.add("r1", region="us", join=["r0"])
        await cluster.add("r2", region="ap", join=["r0"])
        await cluster.add("r3", region="eu", join=["r0"])
        await all_see_alive(cluster, 4)
        entry = a.specs.write("web", WEB)
        await a.specs.push(entry)
        await wait_for("b to learn the spec", lambda: b.registry.get("web") is not None)
        async with trio.open_nursery() as race:
            race.start_soon(a.executor.converge, WEB)
            race.start_soon(b.executor.converge, WEB)

        def servos() -> list[str]:
            return sorted(r["id"] for ctx in cluster.contexts() for r in ctx.host.servo_records())

        await trio.sleep(3)  # recovery rounds of every agent ran meanwhile
        assert len(servos()) == 3, servos()
        nursery.cancel_scope.cancel()
