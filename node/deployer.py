"""Bringing a project to its desired count: place from the local view, ask the chosen agents to
create their servos, and on refusal, error or timeout exclude that host and place again.

This is the placement service of the PaaS Shoal is modelled on, run by whichever agent took the
request (deploy, scale, start) or by a project's recovery owner. Deciding is pure (`placement`);
this module is the loop that carries a decision out and explains the outcome.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from typing import Any

import attrs
import trio

from node.cluster import LIVE_SERVO_STATES, Peer, ServoEntry, cluster_view, servos_of
from node.logfmt import get_logger
from node.peers import PeerClient, PeerError, PeerFailed
from node.projects import Project
from node.runtime import ServoSpec
from placement import place
from placement.model import PlacementRequest, ServoRef
from placement.recovery import COUNTED_STATUSES, ProjectSpec, choose_scale_down

log = get_logger("node.deployer")

RETRY_HOSTS_PER_SERVO = 3
OVERLAY_TTL_S = 60.0


@attrs.define
class Outcome:
    """What a converge did, and what is missing and why (the API's answer)."""

    project: str
    desired: int
    servos: list[ServoEntry] = attrs.field(factory=list)
    created: list[str] = attrs.field(factory=list)
    removed: list[str] = attrs.field(factory=list)
    failures: list[dict[str, str]] = attrs.field(factory=list)
    explanation: dict[str, Any] = attrs.field(factory=dict)
    missing: int = 0
    # what this converge did so far, laid over the hosts' fresh state (see _Overlay)
    local: _Overlay = attrs.field(factory=lambda: _Overlay())

    def to_dict(self) -> dict[str, Any]:
        return {
            "desired": self.desired,
            "running": len([s for s in self.servos if s.state in LIVE_SERVO_STATES]),
            "created": self.created,
            "removed": self.removed,
            "missing": self.missing,
            "failures": self.failures,
            "placement": self.explanation,
        }


def to_placement_spec(project: Project) -> ProjectSpec:
    return ProjectSpec(
        name=project.name,
        replicas=0 if project.stopped else project.replicas,
        memory_mb=project.memory_mb,
        millicpus=project.millicpus,
        spread=project.spread,
        stopped=project.stopped,
        max_per_host=project.max_per_host,
    )


def servo_wire_spec(project: Project, servo_id: str) -> dict[str, Any]:
    return ServoSpec(
        servo_id=servo_id,
        project=project.name,
        image=project.image,
        memory_mb=project.memory_mb,
        millicpus=project.millicpus,
        ports=project.ports,
        env=project.env,
        command=project.command,
        max_per_host=project.max_per_host,
    ).to_wire()


@attrs.define
class _Overlay:
    """Servos this agent created or removed that a view may not show yet.

    Over gossip (which lags): without it a listing right after a deploy would miss the servos
    just created. An entry is dropped as soon as the view confirms it (the servo appears, or is
    gone), so a later change by another agent is never masked. Within one converge, a private
    overlay lays the servos created so far over the hosts' fresh state.
    """

    added: dict[str, tuple[float, ServoEntry]] = attrs.field(factory=dict)
    removed: dict[str, float] = attrs.field(factory=dict)

    def apply(self, peers: list[Peer], now: float) -> list[Peer]:
        self.added = {k: v for k, v in self.added.items() if v[0] > now}
        self.removed = {k: v for k, v in self.removed.items() if v > now}
        reported = {s.servo_id for p in peers for s in p.servos}
        self.added = {k: v for k, v in self.added.items() if k not in reported}
        self.removed = {k: v for k, v in self.removed.items() if k in reported}
        out = []
        for p in peers:
            servos = [s for s in p.servos if s.servo_id not in self.removed]
            extra = [
                e for _, e in self.added.values() if e.node == p.name and e.servo_id not in reported
            ]
            out.append(attrs.evolve(p, servos=tuple(servos + extra)))
        return out


class Deployer:
    def __init__(
        self,
        me: str,
        peers: Callable[[], list[Peer]],
        client: PeerClient,
        clock: Callable[[], float] = trio.current_time,
        on_retry: Callable[[str], None] = lambda reason: None,
        on_create_seconds: Callable[[float], None] = lambda s: None,
    ) -> None:
        self.me = me
        self._peers = peers
        self._client = client
        self._clock = clock
        self._on_retry = on_retry
        self._on_create_seconds = on_create_seconds
        self._overlay = _Overlay()
        self._locks: dict[str, trio.Lock] = {}

    async def fresh_peers(self) -> tuple[list[Peer], set[str]]:
        """Ask every alive host for its state now (gossip lags a deploy by a second or two), as
        the placement service of a PaaS does; hosts that do not answer are not placed on."""
        peers = self.peers()
        fresh: dict[str, Peer] = {}
        silent: set[str] = set()

        async def ask(peer: Peer) -> None:
            try:
                state = await self._client.get_state(peer.name, peer.api)
                cap = state["capacity"]
                servos = tuple(
                    ServoEntry(
                        str(r["id"]),
                        str(r["project"]),
                        peer.name,
                        str(r["state"]),
                        tuple(r.get("endpoints", ())),
                    )
                    for r in state["servos"]
                )
                fresh[peer.name] = attrs.evolve(
                    peer,
                    memory_total_mb=int(cap["memory_total_mb"]),
                    memory_free_mb=int(cap["memory_free_mb"]),
                    millicpus_total=int(cap["millicpus_total"]),
                    millicpus_free=int(cap["millicpus_free"]),
                    servos=servos,
                )
            except (PeerError, KeyError, TypeError, ValueError):
                silent.add(peer.name)

        async with trio.open_nursery() as nursery:
            for peer in peers:
                if peer.alive:
                    nursery.start_soon(ask, peer)
        return [fresh.get(p.name, p) for p in peers], silent

    def peers(self) -> list[Peer]:
        """Gossip's view with this agent's own recent actions laid over it."""
        return self._overlay.apply(self._peers(), self._clock())

    def _lock(self, project: str) -> trio.Lock:
        return self._locks.setdefault(project, trio.Lock())

    async def converge(
        self, project: Project, retries_per_servo: int = RETRY_HOSTS_PER_SERVO
    ) -> Outcome:
        async with self._lock(project.name):
            return await self._converge(project, retries_per_servo)

    async def _converge(self, project: Project, retries_per_servo: int) -> Outcome:
        desired = 0 if project.stopped else project.replicas
        outcome = Outcome(project.name, desired)
        peers, silent = await self.fresh_peers()
        counted = {p.name for p in peers if p.status in COUNTED_STATUSES}
        live = [
            s
            for s in servos_of(project.name, peers)
            if s.node in counted and s.state in LIVE_SERVO_STATES
        ]
        if len(live) > desired:
            await self._remove_extra(project, peers, len(live) - desired, outcome)
        elif len(live) < desired:
            await self._create_missing(
                project, desired - len(live), retries_per_servo, outcome, peers, silent
            )
        final = outcome.local.apply(peers, self._clock())
        outcome.servos = [s for s in servos_of(project.name, final) if s.node in counted]
        return outcome

    async def _remove_extra(
        self, project: Project, peers: list[Peer], n: int, outcome: Outcome
    ) -> None:
        victims = choose_scale_down(to_placement_spec(project), cluster_view(peers), n)
        by_name = {p.name: p for p in peers}
        async with trio.open_nursery() as nursery:
            for ref in victims:
                node = next(
                    (p for p in peers if any(s.servo_id == ref.servo_id for s in p.servos)), None
                )
                if node is None:
                    continue
                nursery.start_soon(
                    self._destroy_one, node.name, by_name[node.name].api, ref, outcome
                )

    async def _destroy_one(self, node: str, api: str, ref: ServoRef, outcome: Outcome) -> None:
        try:
            await self._client.destroy_servo(node, api, ref.servo_id)
        except PeerError as exc:
            outcome.failures.append(
                {"node": node, "servo": ref.servo_id, "reason": exc.reason, "detail": exc.detail}
            )
            return
        for overlay in (self._overlay, outcome.local):
            overlay.removed[ref.servo_id] = self._clock() + OVERLAY_TTL_S
        outcome.removed.append(ref.servo_id)

    async def _create_missing(
        self,
        project: Project,
        count: int,
        retries_per_servo: int,
        outcome: Outcome,
        fresh: list[Peer],
        silent: set[str],
    ) -> None:
        excluded: set[str] = set(silent)
        budget = count * retries_per_servo
        remaining = count
        while remaining > 0:
            peers = outcome.local.apply(fresh, self._clock())
            view = cluster_view(peers)
            existing = tuple(
                (s.servo_id, s.node)
                for s in servos_of(project.name, peers)
                if s.state in LIVE_SERVO_STATES
                and any(p.name == s.node and p.status in COUNTED_STATUSES for p in peers)
            )
            request = PlacementRequest(
                project=project.name,
                count=remaining,
                memory_mb=project.memory_mb,
                millicpus=project.millicpus,
                spread=project.spread,
                existing=existing,
                max_per_host=project.max_per_host,
            )
            decision = place(request, view, exclude=tuple(sorted(excluded)))
            outcome.explanation = decision.to_dict()
            if not decision.placements:
                break
            by_name = {p.name: p for p in peers}
            failed: list[str] = []
            async with trio.open_nursery() as nursery:
                for node in decision.placements:
                    servo_id = f"{project.name}-{secrets.token_hex(4)}"
                    nursery.start_soon(
                        self._create_one, project, by_name[node], servo_id, outcome, failed
                    )
            remaining -= len(decision.placements) - len(failed)
            excluded.update(failed)
            if failed:
                budget -= len(failed)
                if budget < 0:
                    break
                for f in outcome.failures[-len(failed) :]:
                    self._on_retry(f["reason"])
            elif decision.missing:
                break
        outcome.missing = max(0, remaining)

    async def _create_one(
        self, project: Project, peer: Peer, servo_id: str, outcome: Outcome, failed: list[str]
    ) -> None:
        started = self._clock()
        try:
            record = await self._client.create_servo(
                peer.name, peer.api, servo_wire_spec(project, servo_id), idempotency_key=servo_id
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
                {"node": peer.name, "servo": servo_id, "reason": exc.reason, "detail": exc.detail}
            )
            failed.append(peer.name)
            if isinstance(exc, PeerFailed):
                # the host keeps a failed record with the engine's message; we have it in the
                # outcome now, so clear it rather than leave a dead entry in the project
                with contextlib.suppress(PeerError):
                    await self._client.destroy_servo(peer.name, peer.api, servo_id)
            return
        self._on_create_seconds(self._clock() - started)
        entry = ServoEntry(
            servo_id=servo_id,
            project=project.name,
            node=peer.name,
            state=str(record.get("state", "running")),
            endpoints=tuple(record.get("endpoints", ())),
        )
        for overlay in (self._overlay, outcome.local):
            overlay.added[servo_id] = (self._clock() + OVERLAY_TTL_S, entry)
        outcome.created.append(servo_id)
        log.info("deploy.servo_created", project=project.name, node=peer.name, servo=servo_id)
