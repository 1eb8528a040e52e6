"""Draining: this agent takes no new servos and its servos move elsewhere, replacement first.

The flag is durable (a file in the data dir, written and fsynced before the answer), so a
drained agent that restarts stays drained until `shoal undrain`. Admission refuses creates while
it is set. Moving the servos is the engine's job like every other move: with this node
`draining`, its servos no longer count, so the plan creates replacements, and once a project is
back at its count the plan removes the servo here (its volume kept). A project with no room
elsewhere keeps its servo here rather than lose it.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import trio
import trio.lowlevel

from node.executor import Executor
from node.logfmt import get_logger
from node.projects import ProjectRegistry
from placement.converge import HELD_STATES

log = get_logger("node.drain")

FLAG_FILE = "draining"
DRAIN_ROUNDS = 5
DRAIN_PATIENCE = 3  # rounds without progress before a servo is declared unmovable
DRAIN_RETRY_S = 1.0


class ServoSource(Protocol):
    def servo_records(self) -> list[dict[str, Any]]: ...


class DrainState:
    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / FLAG_FILE
        self.draining = self._path.exists()

    def set(self, draining: bool) -> None:
        if draining == self.draining:
            return
        if draining:
            with open(self._path, "w") as f:
                f.write("draining\n")
                f.flush()
                os.fsync(f.fileno())
        else:
            self._path.unlink(missing_ok=True)
        self.draining = draining


class Drainer:
    def __init__(
        self,
        state: DrainState,
        host: ServoSource,
        registry: ProjectRegistry,
        executor: Executor,
        publish: Callable[[], None],
        catch_up: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.state = state
        self.host = host
        self.registry = registry
        self.executor = executor
        self._publish = publish
        self._catch_up = catch_up

    def _held(self) -> list[dict[str, Any]]:
        return [r for r in self.host.servo_records() if r["state"] in HELD_STATES]

    async def drain(self) -> dict[str, Any]:
        """Mark this agent draining and move what can be moved; returns what moved and what
        stays (no room elsewhere)."""
        self.state.set(True)
        self._publish()
        before = {str(r["id"]) for r in self._held()}
        unknown = {str(r["project"]) for r in self._held()} - {p.name for p in self.registry.live()}
        if unknown and self._catch_up is not None:
            # servos of a project this agent has not heard of yet (deployed a moment ago
            # through another agent): learn the specs first, or they could not be moved
            await self._catch_up()
        idle = 0
        for _ in range(DRAIN_ROUNDS + DRAIN_PATIENCE):
            projects = sorted({str(r["project"]) for r in self._held()})
            if not projects:
                break
            progress = False
            for name in projects:
                entry = self.registry.get(name)
                if entry is None or entry.project is None or entry.project.stopped:
                    continue
                outcome = await self.executor.converge(entry.project)
                progress = progress or bool(outcome.created or outcome.removed)
            self._publish()
            if progress:
                idle = 0
            else:
                idle += 1
                if idle > DRAIN_PATIENCE:
                    break
            # nothing moved: gossip may still show room elsewhere as taken (a scale-down a
            # moment ago); look again shortly before saying a servo cannot move
            await trio.sleep(0 if progress else DRAIN_RETRY_S)
        left = self._held()
        moved = len(before - {str(r["id"]) for r in left})
        log.info("drain.done", moved=moved, kept=len(left))
        return {"moved": moved, "kept": sorted(str(r["id"]) for r in left)}

    def undrain(self) -> None:
        self.state.set(False)
        self._publish()
        log.info("drain.undone")
