"""The use cases behind the project routes: deploy, scale, stop, start, destroy, and the reads.

Each writes the desired state first (durable here, pushed to every peer), then acts: a deploy or
start converges through the engine; stop and start also ask the hosts at once, which they would
do on their own anyway when they learn the spec (`RecoveryLoop.host_round`), so an agent that
misses the request still ends in the same state, and none re-stops a servo just started (the
newest spec wins everywhere).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from node.cluster import Peer, servos_of
from node.executor import Executor, Outcome
from node.logfmt import get_logger
from node.membership import wall_ms
from node.peers import PeerClient, PeerError
from node.projects import Entry, Project, ProjectRegistry
from node.specs import SpecReplicator
from placement.converge import recovery_owner

log = get_logger("node.projects")


class NotFound(LookupError):
    """No such project or member (the API's 404)."""


class PeerTrouble(RuntimeError):
    """A peer this request depends on did not answer (the API's 502)."""


class ProjectService:
    def __init__(
        self,
        me: str,
        registry: ProjectRegistry,
        specs: SpecReplicator,
        executor: Executor,
        client: PeerClient,
    ) -> None:
        self.me = me
        self.registry = registry
        self.specs = specs
        self.executor = executor
        self.client = client

    # --- reads ---------------------------------------------------------------------------------
    def get(self, name: str) -> Project:
        entry = self.registry.get(name)
        if entry is None or entry.project is None:
            raise NotFound(f"no project named {name!r}")
        return entry.project

    async def find(self, name: str) -> Project:
        """`get`, but a project this agent has not heard of is first asked of its peers: a
        write made through another agent a moment ago may still be on its way here."""
        if self.registry.get(name) is None:
            await self.specs.pull_round(peers=len(self.executor.peers()))
        return self.get(name)

    def view(self, project: Project, outcome: Outcome | None = None) -> dict[str, Any]:
        """DESIGN.md's project JSON, from this agent's view (and a deploy's own outcome, which
        is fresher than gossip)."""
        peers = self.executor.peers()
        status = {p.name: p.status for p in peers}
        runtime = {p.name: p.runtime for p in peers}
        listed = outcome.servos if outcome is not None else servos_of(project.name, peers)
        servos = []
        for s in listed:
            item = s.to_dict()
            item["node_status"] = status.get(s.node, "unknown")
            if runtime.get(s.node) == "fake":
                item["fake"] = True  # DESIGN.md: the fake runtime says so wherever it shows
            servos.append(item)
        body: dict[str, Any] = {
            "name": project.name,
            "spec": project.spec_wire() | {"stopped": project.stopped},
            "generation": project.generation,
            "rollout": self.rollout_view(project, peers),
            "servos": servos,
        }
        if outcome is not None:
            body["deploy"] = outcome.to_dict()
            body["complete"] = outcome.missing == 0
        return body

    def rollout_view(self, project: Project, peers: list[Peer]) -> dict[str, Any] | None:
        """DESIGN.md's rollout JSON: the stored record, with live counts from the engine."""
        record = project.rollout
        if record is None:
            return None
        live = self.executor.plan(project, peers).rollout
        state = record.state
        reason = record.reason
        if state == "in_progress" and live is not None and live.generation == record.generation:
            reason = live.reason or reason
            if live.state == "failed":
                # the owner records the end in a moment; with a rollback to come, it is not over
                rolls_back = project.update.auto_rollback and project.last_good
                state = "in_progress" if rolls_back else "failed"
                reason = f"{reason}; rolling back" if rolls_back else reason
        updated = healthy = 0
        if live is not None and live.generation == record.generation:
            updated, healthy = live.updated, live.healthy
        elif record.state == "succeeded" and record.generation == project.generation:
            updated = healthy = project.replicas
        return {
            "generation": record.generation,
            "state": state,
            "updated": updated,
            "healthy": healthy,
            "replicas": project.replicas,
            "reason": reason,
            "started_ms": record.started_ms,
        }

    def history(self, name: str) -> dict[str, Any]:
        project = self.get(name)
        return {
            "name": name,
            "generation": project.generation,
            "last_good": project.last_good,
            "history": [h.to_wire() for h in project.history],
        }

    async def rollback(self, name: str, to: int | None = None) -> tuple[Project, Outcome]:
        """Desire an older generation again (default: the last good one); it rolls out like any
        new version, health-gated, never below the count."""
        project = self.get(name)
        target = to if to is not None else project.last_good
        if not target:
            raise NotFound(f"{name} has no earlier good generation to roll back to")
        if target == project.generation:
            raise NotFound(f"{name} already runs generation {target}")
        try:
            back = project.rolled_back_to(target, wall_ms(), "asked by the operator")
        except KeyError as exc:
            raise NotFound(str(exc.args[0])) from None
        await self._spread(self.specs.write(name, back))
        return back, await self.executor.converge(back)

    def list_all(self) -> list[dict[str, Any]]:
        return [self.view(p) for p in self.registry.live()]

    # --- writes --------------------------------------------------------------------------------
    async def _record(self, project: Project) -> Project:
        """Write `project` as the successor of what is known (generation kept or bumped)."""
        entry = self.registry.get(project.name)
        prior = entry.project if entry is not None else None
        project = project.next_of(prior, wall_ms())
        if prior != project:
            await self._spread(self.specs.write(project.name, project))
        return project

    async def _spread(self, entry: Entry) -> None:
        """The project's owner acts on it on its own (recovery, rollouts): it must have the
        new desired state before this agent acts, or it would undo what we do next (recreate
        what a scale-down removed); everyone else learns it from gossip in the background."""
        await self.registry.sync()  # on disk here before it is spread or acknowledged
        alive = [p.name for p in self.executor.peers() if p.status == "alive"]
        owner = recovery_owner(entry.name, alive)
        if owner is not None and owner != self.me:
            await self.specs.push_to(entry, [owner])
        self.specs.push_soon(entry)

    async def deploy(self, project: Project) -> tuple[Project, Outcome]:
        project = await self._record(project)
        return project, await self.executor.converge(project)

    async def scale(self, name: str, replicas: int) -> tuple[Project, Outcome]:
        return await self.deploy(attrs.evolve(self.get(name), replicas=replicas))

    async def stop(self, name: str) -> Project:
        project = await self._record(attrs.evolve(self.get(name), stopped=True))
        await self._servo_actions(name, "stop", states=("starting", "running", "restarting"))
        return project

    async def start(self, name: str) -> tuple[Project, Outcome]:
        project = await self._record(attrs.evolve(self.get(name), stopped=False))
        await self._servo_actions(name, "start", states=("stopped",))
        return project, await self.executor.converge(project)

    async def destroy(self, name: str, keep_volumes: bool = False) -> int:
        """The one use case that deletes data (unless `keep_volumes`): the servos' volumes, and
        the volumes of this project kept earlier (scale-downs, moves) on every reachable host."""
        self.get(name)
        await self._spread(self.specs.write(name, None))
        removed = await self._servo_actions(name, "destroy", keep_volume=keep_volumes)
        if not keep_volumes:
            await self.prune_volumes(None, name, None)
        return removed

    async def _servo_actions(
        self,
        project: str,
        action: str,
        states: tuple[str, ...] | None = None,
        keep_volume: bool = False,
    ) -> int:
        peers = {p.name: p for p in self.executor.peers()}
        done = 0

        async def one(peer: Peer, servo_id: str) -> None:
            nonlocal done
            try:
                if action == "destroy":
                    await self.client.destroy_servo(peer.name, peer.api, servo_id, keep_volume)
                else:
                    await self.client.servo_action(peer.name, peer.api, servo_id, action)
                done += 1
            except PeerError as exc:  # that host reconciles when it learns the new spec
                log.info("servo.action_deferred", servo=servo_id, action=action, detail=exc.detail)

        async with trio.open_nursery() as nursery:
            for s in servos_of(project, peers.values()):
                if states is not None and s.state not in states:
                    continue
                if peers[s.node].reachable:
                    nursery.start_soon(one, peers[s.node], s.servo_id)
        return done

    # --- volumes and logs, gathered from the hosts that hold them ------------------------------
    async def _gather(
        self, node: str | None, ask: Callable[[Peer], Awaitable[list[Any]]]
    ) -> tuple[list[Any], list[str]]:
        """`ask` every reachable host (or just `node`) at once: what they answered, joined,
        and the hosts that did not answer."""
        found: list[Any] = []
        silent: list[str] = []

        async def one(peer: Peer) -> None:
            try:
                found.extend(await ask(peer))
            except PeerError:
                silent.append(peer.name)

        targets = self._targets(node)  # NotFound here, not wrapped in the nursery's group
        async with trio.open_nursery() as nursery:
            for peer in targets:
                nursery.start_soon(one, peer)
        return found, sorted(silent)

    async def volumes(self, node: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        """Every kept volume on every reachable host (or one), and the hosts that did not say."""
        found, silent = await self._gather(node, lambda p: self.client.volumes(p.name, p.api))
        found.sort(key=lambda v: (str(v.get("node")), str(v.get("volume"))))
        return found, silent

    async def prune_volumes(
        self, node: str | None, project: str | None, older_than_s: float | None
    ) -> tuple[list[str], list[str]]:
        pruned, silent = await self._gather(
            node, lambda p: self.client.prune_volumes(p.name, p.api, project, older_than_s)
        )
        return sorted(pruned), silent

    async def logs(self, name: str, servo_id: str | None, tail: int) -> list[dict[str, Any]]:
        self.get(name)
        peers = {p.name: p for p in self.executor.peers()}
        out: list[dict[str, Any]] = []
        for s in servos_of(name, peers.values()):
            if servo_id is not None and s.servo_id != servo_id:
                continue
            peer = peers[s.node]
            try:
                text = await self.client.logs(peer.name, peer.api, s.servo_id, tail)
            except PeerError as exc:
                text = f"(logs unavailable: {exc.detail})"
            out.append({"servo": s.servo_id, "node": s.node, "state": s.state, "logs": text})
        if servo_id is not None and not out:
            raise NotFound(f"no servo {servo_id!r} in project {name!r}")
        return out

    def _targets(self, node: str | None) -> list[Peer]:
        peers = [p for p in self.executor.peers() if p.reachable]
        if node is None:
            return peers
        found = [p for p in peers if p.name == node]
        if not found:
            raise NotFound(f"no reachable member named {node!r}")
        return found
