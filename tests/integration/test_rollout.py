"""Rolling updates on real in-process agents (fake runtime): never below the count, ending on the
new generation; a version that never gets healthy rolls back by itself; and a rollout goes on
when the agent driving it dies, because it is desired state, not one agent's task."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio

from node.context import AgentContext
from node.projects import Project
from placement.converge import UpdatePolicy, recovery_owner
from tests.integration.inproc import InProcCluster, all_see_alive, make_key, wait_for

pytestmark = pytest.mark.slow

FAST = UpdatePolicy(healthy_for_s=1.0, deadline_s=60.0)
V1 = Project("web", "shoal-servo:latest", 3, 64, 100, env=(("V", "1"),), update=FAST)
V2 = attrs.evolve(V1, env=(("V", "2"),))


def running(cluster: InProcCluster) -> list[dict[str, object]]:
    return [
        r
        for ctx in cluster.contexts()
        for r in ctx.host.servo_records()
        if r["project"] == "web" and r["state"] == "running"
    ]


async def start(cluster: InProcCluster) -> AgentContext:
    front = await cluster.add("u0", region="eu")
    await cluster.add("u1", region="us", join=["u0"])
    await cluster.add("u2", region="ap", join=["u0"])
    await all_see_alive(cluster, 3)
    _, outcome = await front.projects.deploy(V1)
    assert outcome.missing == 0
    await wait_for("3 running", lambda: len(running(cluster)) == 3)
    return front


def rollout_state(ctx: AgentContext) -> str | None:
    project = ctx.projects.get("web")
    return project.rollout.state if project.rollout else None


async def watch_count(cluster: InProcCluster, low: list[int], done: trio.Event) -> None:
    while not done.is_set():
        low.append(len(running(cluster)))
        await trio.sleep(0.05)


async def test_a_rollout_never_drops_below_replicas_and_ends_on_the_new_generation(
    tmp_path: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        front = await start(cluster)  # 3 hosts, 3 replicas: no spare host at all
        counts: list[int] = []
        done = trio.Event()
        nursery.start_soon(watch_count, cluster, counts, done)
        project, _ = await front.projects.deploy(V2)
        assert project.generation == 2 and project.rollout is not None
        await wait_for("succeeded", lambda: rollout_state(front) == "succeeded", 60)
        done.set()
        final = running(cluster)
        assert sorted(int(r["generation"]) for r in final) == [2, 2, 2]  # type: ignore[call-overload]
        assert min(counts) >= 3 and max(counts) <= 4, counts
        view = front.projects.view(front.projects.get("web"))
        assert view["rollout"]["state"] == "succeeded" and view["generation"] == 2
        history = front.projects.history("web")["history"]
        assert [h["generation"] for h in history] == [1, 2]
        assert "changed env" in history[1]["change"]
        nursery.cancel_scope.cancel()


async def test_a_version_that_never_gets_healthy_is_rolled_back(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        front = await start(cluster)
        # healthy only after 100 s: never within the 3 s deadline
        slow = attrs.evolve(V2, update=UpdatePolicy(healthy_for_s=100.0, deadline_s=3.0))
        await front.projects.deploy(slow)
        await wait_for("rolled back", lambda: rollout_state(front) == "rolled_back", 30)
        project = front.projects.get("web")
        assert project.generation == 1 and project.env == (("V", "1"),)
        await wait_for(
            "only generation 1 running",
            lambda: sorted(int(r["generation"]) for r in running(cluster)) == [1, 1, 1],  # type: ignore[call-overload]
            30,
        )
        nursery.cancel_scope.cancel()


async def test_a_rollout_goes_on_when_its_driving_agent_dies(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        front = await start(cluster)
        await cluster.add("u3", region="eu", join=["u0"])
        await all_see_alive(cluster, 4)
        await front.projects.deploy(V2)
        owner = recovery_owner("web", [c.name for c in cluster.contexts()])
        assert owner is not None
        short = owner.rsplit("-", 1)[1]
        await trio.sleep(0.5)
        await cluster.stop(short, graceful=False)  # as kill -9: no last words
        survivor = next(iter(cluster.contexts()))
        await wait_for("succeeded", lambda: rollout_state(survivor) == "succeeded", 90)
        await wait_for(
            "exactly 3 of generation 2",
            lambda: (
                sorted(
                    int(r["generation"])  # type: ignore[call-overload]
                    for c in cluster.contexts()
                    for r in c.host.servo_records()
                    if r["project"] == "web" and r["state"] == "running"
                )
                == [2, 2, 2]
            ),
            60,
        )
        nursery.cancel_scope.cancel()
