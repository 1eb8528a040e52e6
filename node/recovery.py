"""The two loops that keep the cluster at its desired state without anyone asking.

- Owner rounds: for each project this agent owns (highest rendezvous score among the members it
  sees alive), the engine's plan is carried out: servos lost with a dead node, failed servos,
  servos on draining nodes and the over-count after a node comes back. Nobody else acts on that
  project meanwhile except the agent that took a request for it, and deterministic ids make
  that race harmless; the owner still leaves a project another agent has just written to that
  agent for `WRITER_HOLD_S` (2 s), so a deploy's creates are not sent twice (cost, not
  correctness: see docs/architecture.md).
- Host rounds: each host brings its own servos to the desired state it knows
  (`placement.converge.host_actions`): stop, start, and the removal of a destroyed project's
  servos when this host missed the destroy (volumes kept).

Both are woken at once by membership changes, spec merges and servo changes, and run at least
every `ROUND_S` in any case.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

from node.executor import Executor
from node.logfmt import get_logger
from node.membership import wall_ms
from node.projects import Entry, Project, ProjectRegistry
from placement.converge import (
    Remove,
    Rollout,
    ServoView,
    Start,
    Stop,
    host_actions,
    recovery_owner,
)

log = get_logger("node.recovery")

ROUND_S = 2.0
MIN_GAP_S = 0.2  # coalesce a burst of wake-ups (a region's deaths arrive one by one)
# How long the owner leaves a project alone after another agent wrote it: that agent is
# converging it right now (a deploy pushes the spec to the owner and then places), and the
# owner planning the same servos at the same moment doubles every create on the hosts the
# request waits for. Not needed for correctness (deterministic ids make the race harmless), so
# short: if the writer died mid-deploy, the owner finishes its work this much later.
WRITER_HOLD_S = 2.0


class HostDuties(Protocol):
    def servo_records(self) -> list[dict[str, Any]]: ...
    async def stop_servo(self, servo_id: str) -> Any: ...
    async def start_servo(self, servo_id: str) -> Any: ...
    async def remove_servo(self, servo_id: str) -> Any: ...


class RecoveryLoop:
    def __init__(
        self,
        me: str,
        registry: ProjectRegistry,
        executor: Executor,
        host: HostDuties,
        draining: Callable[[], bool],
        on_action: Callable[[str, int], None] = lambda kind, n: None,
        on_change: Callable[[], None] = lambda: None,
        write: Callable[[Project], Awaitable[None]] | None = None,
    ) -> None:
        self.me = me
        self.registry = registry
        self.executor = executor
        self.host = host
        self._draining = draining
        self._on_action = on_action
        self._on_change = on_change
        self._write = write
        self._wake = trio.Event()
        # project -> owner, for one set of alive members: every round asks about every
        # project, and rendezvous hashing costs one hash per member per project (at 40 agents
        # and a few hundred projects that was most of an idle agent's CPU)
        self._owners: dict[str, str | None] = {}
        self._owners_of: tuple[str, ...] = ()
        self._held: dict[str, float] = {}  # project -> until when its writer converges it

    def note_writes(self, entries: list[Entry]) -> None:
        """Specs just merged: those another agent wrote are its to converge for a moment."""
        until = trio.current_time() + WRITER_HOLD_S
        for entry in entries:
            if entry.ts.node != self.me and entry.project is not None:
                self._held[entry.name] = until

    def held(self, project: str, now: float) -> bool:
        return now < self._held.get(project, -math.inf)

    def owner(self, project: str, alive: list[str]) -> str | None:
        key = tuple(alive)
        if key != self._owners_of:
            self._owners, self._owners_of = {}, key
        if project not in self._owners:
            self._owners[project] = recovery_owner(project, alive)
        return self._owners[project]

    def wake(self) -> None:
        self._wake.set()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            with trio.move_on_after(ROUND_S):
                await self._wake.wait()
            self._wake = trio.Event()
            try:
                await self.host_round()
                await self.owner_round()
            except Exception:  # a bug in one round must not end recovery for good
                log.exception("recovery.round_failed")
            await trio.sleep(MIN_GAP_S)

    async def host_round(self) -> int:
        """Bring this host's own servos to the desired state this agent knows."""
        desired = {}
        servos = []
        for r in self.host.servo_records():
            project = str(r["project"])
            entry = self.registry.get(project)
            if entry is None:
                continue
            desired[project] = entry.project.desired() if entry.project else None
            servos.append(
                ServoView(
                    str(r["id"]), project, self.me, str(r["state"]), slot=int(r.get("slot", 0))
                )
            )
        done = 0
        for action in host_actions(self.me, servos, desired):
            try:
                if isinstance(action, Stop):
                    await self.host.stop_servo(action.servo_id)
                elif isinstance(action, Start):
                    await self.host.start_servo(action.servo_id)
                elif isinstance(action, Remove):
                    await self.host.remove_servo(action.servo_id)
                done += 1
                log.info("servo.reconciled", servo=action.servo_id, why=action.why)
            except Exception as exc:  # one servo's trouble must not stop the others
                log.warning("servo.reconcile_failed", servo=action.servo_id, detail=str(exc))
        if done:
            self._on_change()
        return done

    async def owner_round(self) -> list[str]:
        """Converge every project this agent owns whose plan is not empty, and record how its
        rollout ended (succeeded; failed, and rolled back when the policy says so)."""
        if self._draining():
            return []
        peers = self.executor.peers()
        alive = [p.name for p in peers if p.status == "alive"]
        touched = []
        now = trio.current_time()
        # holds that ran out go (one per project another agent wrote, owned here or not)
        self._held = {name: until for name, until in self._held.items() if now < until}
        for project in self.registry.live():
            if project.stopped or self.owner(project.name, alive) != self.me:
                continue
            if self.held(project.name, now):
                continue
            try:
                acted = await self._own_one(project, peers)
            except Exception:  # one bad project must not stop planning for the others
                log.exception("recovery.project_failed", project=project.name)
                acted = True  # what it did before failing may be news too
            else:
                if acted:
                    touched.append(project.name)
            if acted:
                # what was just done is news for the next project's plan; a round with nothing
                # to do plans every project from one view (and one set of engine inputs)
                peers = self.executor.peers()
        return touched

    async def _own_one(self, project: Project, peers: list[Any]) -> bool:
        """One owner-round step for one project; True when the engine had something to do."""
        plan = self.executor.plan(project, peers)
        settled = await self.settle_rollout(project, plan.rollout)
        if settled is not project:
            project, plan = settled, self.executor.plan(settled, peers)
        if not plan.actions:
            return False
        outcome = await self.executor.converge(project)
        if outcome.created:
            self._on_action("create", len(outcome.created))
        if outcome.removed:
            self._on_action("remove", len(outcome.removed))
        if outcome.created or outcome.removed or outcome.failures or outcome.missing:
            log.info(
                "recovery.converged",
                project=project.name,
                created=len(outcome.created),
                removed=len(outcome.removed),
                failures=len(outcome.failures),
                missing=outcome.missing,
            )
        return True

    async def settle_rollout(self, project: Project, rollout: Rollout | None) -> Project:
        """The stored rollout record follows what the engine sees: a rollout is desired state,
        so whichever agent owns the project when it ends writes how it ended."""
        record = project.rollout
        if (
            self._write is None
            or rollout is None
            or record is None
            or record.state != "in_progress"
            or record.generation != project.generation
            or rollout.state == "in_progress"
        ):
            return project
        if rollout.state == "succeeded":
            settled = project.with_rollout("succeeded")
        elif project.update.auto_rollback and project.last_good:
            settled = project.rolled_back_to(project.last_good, wall_ms(), rollout.reason)
        else:
            settled = project.with_rollout("failed", rollout.reason)
        log.info(
            "rollout.ended",
            project=project.name,
            generation=project.generation,
            state=settled.rollout.state if settled.rollout else "",
            reason=rollout.reason,
        )
        await self._write(settled)
        return settled
