"""Carrying out the convergence engine's actions: the placement service of the PaaS Shoal is
modelled on, with the deciding taken out (it is `placement.converge`).

A converge plans from this agent's view (gossip plus its own recent actions), asks the chosen
hosts to create or remove servos, and plans again with what it learnt: a host that refused is
excluded and its answer (its fresh capacity and servos) replaces its gossip row, a host that did
not answer is excluded. Nobody else is asked anything: a deploy costs one request per servo
whatever the size of the cluster. Deterministic ids make a retry, or a race with the project's
owner doing the same, harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import trio

from node.cluster import LIVE_SERVO_STATES, Peer, ServoEntry, engine_inputs, servos_of
from node.health import HealthCheck
from node.logfmt import get_logger
from node.membership import wall_ms
from node.peers import PeerClient, PeerError, PeerRefused
from node.projects import Project
from node.runtime import ServoSpec
from placement.converge import Create, Plan, Remove, Rollout, ServoView, converge
from placement.model import ClusterView

log = get_logger("node.executor")

RETRY_HOSTS_PER_SERVO = 3
OVERLAY_TTL_S = 60.0


@attrs.define
class Outcome:
    """What a converge did, what is missing and why (the API's answer)."""

    project: str
    desired: int
    servos: list[ServoEntry] = attrs.field(factory=list)
    created: list[str] = attrs.field(factory=list)
    removed: list[str] = attrs.field(factory=list)
    failures: list[dict[str, str]] = attrs.field(factory=list)
    explanation: dict[str, Any] = attrs.field(factory=dict)
    actions: list[dict[str, object]] = attrs.field(factory=list)
    missing: int = 0
    rollout: Rollout | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "desired": self.desired,
            "running": len([s for s in self.servos if s.state in LIVE_SERVO_STATES]),
            "created": self.created,
            "removed": self.removed,
            "missing": self.missing,
            "failures": self.failures,
            "actions": self.actions,
            "placement": self.explanation,
        }


def servo_wire_spec(project: Project, create: Create) -> dict[str, Any]:
    return ServoSpec(
        servo_id=create.servo_id,
        project=project.name,
        image=project.image,
        memory_mb=project.memory_mb,
        millicpus=project.millicpus,
        ports=project.ports,
        env=project.env,
        command=project.command,
        max_per_host=project.max_per_host,
        generation=create.generation,
        slot=create.slot,
        health=HealthCheck.from_wire(dict(project.health)) if project.health else None,
        secrets=project.secrets_box,  # sealed: only the host's runtime opens it
        writable_root=project.writable_root,
    ).to_wire()


@attrs.define
class Overlay:
    """This agent's own recent actions that gossip may not show yet.

    Laid over the view so that a listing right after a deploy shows the servos just created and
    the next deploy does not place onto memory already promised. Each entry holds the host's
    inventory version its answer carried; it goes as soon as the host's gossip row is at least
    that new (whatever that row says: another agent may have removed the servo since), and
    after `OVERLAY_TTL_S` in any case. So a later change by another agent is never masked.
    """

    # servo id -> (expires at, the servo, the host's inventory version after the action)
    added: dict[str, tuple[float, ServoEntry, int]] = attrs.field(factory=dict)
    removed: dict[str, tuple[float, ServoEntry, int]] = attrs.field(factory=dict)

    def apply(self, peers: list[Peer], now: float) -> list[Peer]:
        seen = {p.name: p.inventory for p in peers}
        self.prune(lambda node: seen.get(node, 0), now)
        if not self.added and not self.removed:
            return peers
        return [self.over(p) for p in peers]

    def prune(self, inventory: Callable[[str], int], now: float) -> None:
        """Drop the entries gossip has caught up with (the host's row, at `inventory(host)`,
        is as new as the action's answer) or that expired. `apply` in two steps, so that a
        planner holding a view already (the simulator's) lays the overlay on the few hosts it
        names (`nodes`, `over`) instead of walking every peer."""

        def pending(entry: tuple[float, ServoEntry, int]) -> bool:
            expires, servo, version = entry
            return expires > now and inventory(servo.node) < version

        self.added = {k: v for k, v in self.added.items() if pending(v)}
        self.removed = {k: v for k, v in self.removed.items() if pending(v)}

    def nodes(self) -> set[str]:
        """The hosts this overlay changes the rows of."""
        return {e.node for _, e, _ in (*self.added.values(), *self.removed.values())}

    def over(self, p: Peer) -> Peer:
        """One peer with this overlay's entries for it laid over (the peer itself if none)."""
        gone = [e for _, e, _ in self.removed.values() if e.node == p.name]
        extra = [e for _, e, _ in self.added.values() if e.node == p.name]
        if not gone and not extra:
            return p
        gone_ids = {e.servo_id for e in gone}
        have = {s.servo_id for s in p.servos}
        extra = [e for e in extra if e.servo_id not in have]
        servos = [s for s in p.servos if s.servo_id not in gone_ids] + extra
        mem = sum(e.memory_mb for e in extra) - sum(e.memory_mb for e in gone if e.servo_id in have)
        cpu = sum(e.millicpus for e in extra) - sum(e.millicpus for e in gone if e.servo_id in have)
        return attrs.evolve(
            p,
            servos=tuple(servos),
            memory_free_mb=p.memory_free_mb - mem,
            millicpus_free=p.millicpus_free - cpu,
        )


def peer_with_state(peer: Peer, state: Any) -> Peer:
    """`peer` as its own fresh answer describes it (a refusal carries one); unchanged when the
    answer is not a state."""
    try:
        cap = state["capacity"]
        servos = tuple(ServoEntry.from_record(peer.name, r) for r in state["servos"])
        return attrs.evolve(
            peer,
            memory_total_mb=int(cap["memory_total_mb"]),
            memory_free_mb=int(cap["memory_free_mb"]),
            millicpus_total=int(cap["millicpus_total"]),
            millicpus_free=int(cap["millicpus_free"]),
            servos=servos,
        )
    except (KeyError, TypeError, ValueError):
        return peer


class Executor:
    def __init__(
        self,
        me: str,
        peers: Callable[[], list[Peer]],
        client: PeerClient,
        clock: Callable[[], float] = trio.current_time,
        on_retry: Callable[[str], None] = lambda reason: None,
        on_create_seconds: Callable[[float], None] = lambda s: None,
        wall_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.me = me
        self.wall_ms = wall_ms
        self._peers = peers
        self._client = client
        self._clock = clock
        self._on_retry = on_retry
        self._on_create_seconds = on_create_seconds
        self.overlay = Overlay()
        self._locks: dict[str, trio.Lock] = {}
        self._inputs: tuple[list[Peer], ClusterView, list[ServoView]] | None = None

    def peers(self) -> list[Peer]:
        """The membership view with this agent's own recent actions laid over it."""
        return self.overlay.apply(self._peers(), self._clock())

    def plan(self, project: Project, peers: list[Peer] | None = None) -> Plan:
        if peers is None:
            peers = self.peers()
        # an owner round plans every project it owns from one list of peers: build the
        # engine's inputs from it once (the whole cluster's servos), not once per project
        if self._inputs is None or self._inputs[0] is not peers:
            self._inputs = (peers, *engine_inputs(peers))
        _, view, servos = self._inputs
        return converge(project.desired(), view, servos, now_ms=self.wall_ms())

    async def converge(
        self, project: Project, retries_per_servo: int = RETRY_HOSTS_PER_SERVO
    ) -> Outcome:
        lock = self._locks.setdefault(project.name, trio.Lock())
        async with lock:
            return await self._converge(project, retries_per_servo)

    async def _converge(self, project: Project, retries_per_servo: int) -> Outcome:
        desired = project.desired()
        outcome = Outcome(project.name, desired.count)
        excluded: set[str] = set()
        answered: dict[str, Peer] = {}  # hosts' own fresh word, fresher than gossip
        budget = max(1, desired.count) * retries_per_servo
        plan: Plan | None = None
        for _ in range(2 + budget):
            peers = [answered.get(p.name, p) for p in self.peers()]
            view, servos = engine_inputs(peers)
            plan = converge(desired, view, servos, exclude=excluded, now_ms=self.wall_ms())
            if plan.decision is not None:
                outcome.explanation = plan.decision.to_dict()
            if not plan.actions:
                break
            outcome.actions.extend(plan.explain())
            by_name = {p.name: p for p in peers}
            failed: list[tuple[str, PeerError]] = []
            # removals first: in a rolling update the old servo goes before the next new one
            # comes, so the project never holds more than replicas + surge
            async with trio.open_nursery() as nursery:
                for remove in plan.removes:
                    nursery.start_soon(self._remove, remove, by_name[remove.node], outcome)
            async with trio.open_nursery() as nursery:
                for create in plan.creates:
                    nursery.start_soon(
                        self._create, project, create, by_name[create.node], outcome, failed
                    )
            for node, exc in failed:
                excluded.add(node)
                self._on_retry(exc.reason)
                if isinstance(exc, PeerRefused) and exc.state is not None:
                    answered[node] = peer_with_state(by_name[node], exc.state)
            budget -= len(failed)
            if budget < 0:
                break
        outcome.missing = plan.missing if plan is not None else 0
        outcome.rollout = plan.rollout if plan is not None else None
        final = [answered.get(p.name, p) for p in self.peers()]
        outcome.servos = servos_of(project.name, final)
        return outcome

    async def _create(
        self,
        project: Project,
        action: Create,
        peer: Peer,
        outcome: Outcome,
        failed: list[tuple[str, PeerError]],
    ) -> None:
        started = self._clock()
        try:
            record = await self._client.create_servo(
                peer.name,
                peer.api,
                servo_wire_spec(project, action),
                action.servo_id,
                replaces=action.replaces,
            )
        except PeerError as exc:
            log.warning(
                "deploy.servo_failed",
                project=project.name,
                node=peer.name,
                reason=exc.reason,
                detail=exc.detail,
            )
            outcome.failures.append(
                {
                    "node": peer.name,
                    "servo": action.servo_id,
                    "reason": exc.reason,
                    "detail": exc.detail,
                }
            )
            failed.append((peer.name, exc))
            return
        self._on_create_seconds(self._clock() - started)
        try:
            entry = ServoEntry.from_record(peer.name, record)
        except (KeyError, TypeError, ValueError):
            entry = ServoEntry(action.servo_id, project.name, peer.name, "starting")
        entry = attrs.evolve(
            entry,
            memory_mb=entry.memory_mb or project.memory_mb,
            millicpus=entry.millicpus or project.millicpus,
        )
        version = int(record.get("inventory", 0) or 0)
        self.overlay.added[action.servo_id] = (self._clock() + OVERLAY_TTL_S, entry, version)
        if record.get("existed"):
            return  # planned by another agent (or an earlier try) too: nothing new was made
        outcome.created.append(action.servo_id)
        log.info(
            "deploy.servo_created",
            project=project.name,
            node=peer.name,
            servo=action.servo_id,
            why=action.why,
        )

    async def _remove(self, action: Remove, peer: Peer, outcome: Outcome) -> None:
        try:
            answer = await self._client.remove_servo(peer.name, peer.api, action.servo_id)
        except PeerError as exc:
            if exc.reason == "not_found":  # already gone: the wanted state, nothing to do
                self.overlay.added.pop(action.servo_id, None)
                return
            outcome.failures.append(
                {
                    "node": peer.name,
                    "servo": action.servo_id,
                    "reason": exc.reason,
                    "detail": exc.detail,
                }
            )
            return
        # a servo this agent made may not have reached its view yet: forget it either way
        self.overlay.added.pop(action.servo_id, None)
        entry = next((s for s in peer.servos if s.servo_id == action.servo_id), None)
        if entry is not None:
            version = int(answer.get("inventory", 0) or 0)
            self.overlay.removed[action.servo_id] = (
                self._clock() + OVERLAY_TTL_S,
                entry,
                version,
            )
        outcome.removed.append(action.servo_id)
        log.info("servo.removed", servo=action.servo_id, node=peer.name, why=action.why)
