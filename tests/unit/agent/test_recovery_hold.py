"""The owner leaves a project to the agent that just wrote it, for a moment, then takes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from node.hlc import Timestamp
from node.projects import Entry, Project, ProjectRegistry
from node.recovery import WRITER_HOLD_S, RecoveryLoop

WEB = Project(name="web", image="img", replicas=3, memory_mb=64, millicpus=100)


class Planner:
    """An executor whose every plan has work: records which projects were converged."""

    def __init__(self) -> None:
        self.converged: list[str] = []

    def peers(self) -> list[Any]:
        return []

    def plan(self, project: Project, peers: list[Any]) -> Any:
        class Plan:
            rollout = None
            actions = ["create"]

        return Plan()

    async def converge(self, project: Project) -> Any:
        self.converged.append(project.name)

        class Outcome:
            created: list[str] = []
            removed: list[str] = []
            failures: list[str] = []
            missing = 0

        return Outcome()


def loop(tmp_path: Path, planner: Planner) -> RecoveryLoop:
    registry = ProjectRegistry(tmp_path / "p.db")
    registry.merge([Entry("web", Timestamp(5, 0, "front"), WEB)])
    r = RecoveryLoop("me", registry, planner, host=None, draining=lambda: False)  # type: ignore[arg-type]
    r.owner = lambda project, alive: "me"  # type: ignore[method-assign]
    return r


async def test_a_project_another_agent_just_wrote_is_left_to_it_then_taken_over(
    tmp_path: Path, autojump_clock: Any
) -> None:
    planner = Planner()
    r = loop(tmp_path, planner)
    r.note_writes([Entry("web", Timestamp(5, 0, "front"), WEB)])
    assert await r.owner_round() == []  # the writer is placing it now
    assert planner.converged == []
    await trio.sleep(WRITER_HOLD_S)
    assert await r.owner_round() == ["web"]  # the writer may have died: the owner finishes
    assert planner.converged == ["web"]


async def test_the_owners_own_writes_and_destroys_are_not_held(
    tmp_path: Path, autojump_clock: Any
) -> None:
    planner = Planner()
    r = loop(tmp_path, planner)
    r.note_writes(
        [Entry("web", Timestamp(6, 0, "me"), WEB), Entry("db", Timestamp(6, 0, "x"), None)]
    )
    assert await r.owner_round() == ["web"]
    assert not r.held("db", trio.current_time())
