"""The running agent's parts, held together for the API routes and the background loops.

`AgentContext` is built once in `node.agent` and owns no task itself: `run_loops` starts the
periodic work (publishing this agent's state to gossip, spec anti-entropy, leaderless recovery,
removal of destroyed projects' servos) in the agent's nursery.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs
import trio

from api.metrics import Metrics
from node.cluster import (
    LIVE_SERVO_STATES,
    MemberLike,
    Peer,
    build_meta,
    cluster_view,
    peers_from_members,
)
from node.config import AgentConfig
from node.deployer import Deployer, to_placement_spec
from node.hlc import HybridClock
from node.logfmt import get_logger
from node.peers import PeerClient, PeerError
from node.projects import Entry, Project, ProjectRegistry
from placement.recovery import plan_recovery

log = get_logger("node.context")

META_REFRESH_S = 2.0
ANTI_ENTROPY_S = 3.0
RECOVERY_S = 2.0
# A project written this recently is being converged by the agent that took the request; the
# recovery owner leaves it alone meanwhile so the two do not both create the missing servos.
RECOVERY_GRACE_MS = 15_000


class GossipLike(Protocol):
    def members(self) -> list[Any]: ...
    def set_meta(self, meta: dict[str, Any]) -> None: ...


class HostLike(Protocol):
    def capacity_snapshot(self) -> dict[str, int]: ...
    def servo_records(self) -> list[dict[str, Any]]: ...
    async def destroy_servo(self, servo_id: str, keep_volume: bool = False) -> Any: ...


def wall_ms() -> int:
    return int(time.time() * 1000)


@attrs.define(eq=False)
class AgentContext:
    config: AgentConfig
    keys: list[bytes]
    host: Any
    gossip: Any
    registry: ProjectRegistry
    client: PeerClient
    metrics: Metrics
    hlc: HybridClock
    deployer: Deployer = attrs.field(init=False)
    draining: bool = False
    wake_recovery: trio.Event = attrs.field(factory=trio.Event)
    _last_meta: dict[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self.deployer = Deployer(
            self.config.name,
            self.peers,
            self.client,
            on_retry=lambda reason: self.metrics.placement_retries.labels(reason).inc(),
            on_create_seconds=self.metrics.create_seconds.observe,
        )
        self.metrics.attach_live(self.members_by_status, self.servos_by_state, self.gossip_counters)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def api_url(self) -> str:
        return f"http://{self.config.advertise_addr}:{self.config.api_port}"

    # --- views -------------------------------------------------------------------------------
    def peers(self) -> list[Peer]:
        members: list[MemberLike] = list(self.gossip.members())
        peers = peers_from_members(members)
        return [
            attrs.evolve(p, status="draining")
            if p.alive and (p.draining or (p.name == self.name and self.draining))
            else p
            for p in peers
        ]

    def members_by_status(self) -> Mapping[str, int]:
        return Counter(str(m.status) for m in self.gossip.members())

    def servos_by_state(self) -> Mapping[str, int]:
        return Counter(str(r["state"]) for r in self.host.servo_records())

    def gossip_counters(self) -> Mapping[str, Mapping[str, int]]:
        counters: Callable[[], Mapping[str, Mapping[str, int]]] | None = getattr(
            self.gossip, "counters", None
        )
        return counters() if counters else {}

    # --- writes ------------------------------------------------------------------------------
    def write_project(self, name: str, project: Project | None) -> Entry:
        entry = Entry(name, self.hlc.now(wall_ms()), project)
        self.registry.merge([entry])
        self.publish_meta()
        return entry

    async def push_entry(self, entry: Entry) -> None:
        """Tell every alive peer about a write now, rather than at the next anti-entropy round."""
        body = [entry.to_wire()]
        async with trio.open_nursery() as nursery:
            for peer in self.peers():
                if peer.name != self.name and peer.status in ("alive", "draining"):
                    nursery.start_soon(self._push_quietly, peer, body)

    async def _push_quietly(self, peer: Peer, body: list[dict[str, Any]]) -> None:
        try:
            await self.client.push_specs(peer.name, peer.api, body)
        except PeerError as exc:
            log.debug("specs.push_failed", peer=peer.name, detail=exc.detail)

    def merge_entries(self, raw: list[dict[str, Any]]) -> int:
        entries = []
        for item in raw:
            try:
                entries.append(Entry.from_wire(item))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("specs.bad_entry", detail=str(exc))
        for e in entries:
            self.hlc.observe(e.ts, wall_ms())
        won = self.registry.merge(entries)
        if won:
            self.publish_meta()
            self.wake_recovery.set()
        return len(won)

    def publish_meta(self) -> None:
        meta = build_meta(
            name=self.name,
            region=self.config.region,
            zone=self.config.zone_or_default,
            addr=f"{self.config.advertise_addr}:{self.config.gossip_port}",
            api=self.api_url,
            runtime=self.config.runtime,
            capacity=self.host.capacity_snapshot(),
            servos=self.host.servo_records(),
            specs_digest=self.registry.digest(),
            draining=self.draining,
        )
        if meta != self._last_meta:
            self._last_meta = meta
            self.gossip.set_meta(meta)

    # --- loops -------------------------------------------------------------------------------
    async def run_loops(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self.publish_meta()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._meta_loop)
            nursery.start_soon(self._anti_entropy_loop)
            nursery.start_soon(self._recovery_loop)
            task_status.started()

    async def _meta_loop(self) -> None:
        while True:
            await trio.sleep(META_REFRESH_S)
            self.publish_meta()

    async def _anti_entropy_loop(self) -> None:
        while True:
            await trio.sleep(ANTI_ENTROPY_S)
            mine = self.registry.digest()
            for peer in self.peers():
                if peer.name == self.name or peer.status not in ("alive", "draining"):
                    continue
                if peer.specs_digest and peer.specs_digest != mine:
                    try:
                        raw = await self.client.pull_specs(peer.name, peer.api)
                    except PeerError as exc:
                        log.debug("specs.pull_failed", peer=peer.name, detail=exc.detail)
                        continue
                    if self.merge_entries(raw):
                        mine = self.registry.digest()

    async def _recovery_loop(self) -> None:
        while True:
            with trio.move_on_after(RECOVERY_S):
                await self.wake_recovery.wait()
            self.wake_recovery = trio.Event()
            try:
                await self.recover_once()
            except Exception:  # a bug in one round must not end recovery for good
                log.exception("recovery.round_failed")

    async def recover_once(self) -> None:
        await self._remove_destroyed()
        if self.draining:
            return
        peers = self.deployer.peers()
        now = wall_ms()
        projects = {p.name: p for p in self.registry.live() if not p.stopped}
        specs = [to_placement_spec(p) for p in projects.values()]
        actions = plan_recovery(specs, cluster_view(peers), self.name)
        todo = sorted({a.project for a in actions})
        for name in todo:
            entry = self.registry.get(name)
            if entry is None or entry.project is None or now - entry.ts.wall_ms < RECOVERY_GRACE_MS:
                continue
            outcome = await self.deployer.converge(entry.project)
            if outcome.created:
                self.metrics.recovery_actions.labels("create").inc(len(outcome.created))
            if outcome.removed:
                self.metrics.recovery_actions.labels("remove").inc(len(outcome.removed))
            if outcome.created or outcome.removed:
                log.info(
                    "recovery.converged",
                    project=name,
                    created=len(outcome.created),
                    removed=len(outcome.removed),
                    missing=outcome.missing,
                )

    async def _remove_destroyed(self) -> None:
        """Servos here whose project was destroyed (perhaps while this agent was down) go, and
        those of a stopped project stop: each host enforces the desired state on itself."""
        for record in self.host.servo_records():
            entry = self.registry.get(str(record["project"]))
            if (
                entry is not None
                and entry.project is not None
                and entry.project.stopped
                and record["state"] in LIVE_SERVO_STATES
            ):
                try:
                    await self.host.stop_servo(str(record["id"]))
                    log.info("servo.stopped_for_stopped_project", servo=record["id"])
                except Exception as exc:
                    log.warning("servo.stop_failed", servo=record["id"], detail=str(exc))
            if entry is not None and entry.deleted:
                try:
                    await self.host.destroy_servo(str(record["id"]))
                    log.info("servo.removed_destroyed_project", servo=record["id"])
                except Exception as exc:
                    log.warning("servo.remove_failed", servo=record["id"], detail=str(exc))
        self.publish_meta()

    async def drain(self) -> int:
        """Move every servo off this agent: replacements first, then the local ones go.

        While draining, this agent shows as `draining` in gossip, so no placement chooses it and
        its servos no longer count towards their projects' desired counts.
        """
        self.draining = True
        self.publish_meta()
        local = [r for r in self.host.servo_records() if r["state"] in LIVE_SERVO_STATES]
        moved = 0
        stuck: set[str] = set()
        for name in sorted({str(r["project"]) for r in local}):
            entry = self.registry.get(name)
            if entry is not None and entry.project is not None and not entry.project.stopped:
                outcome = await self.deployer.converge(entry.project)
                log.info(
                    "drain.replaced",
                    project=name,
                    created=len(outcome.created),
                    missing=outcome.missing,
                )
                if outcome.missing:
                    stuck.add(name)  # no room elsewhere: keep serving here rather than lose it
        for record in local:
            if str(record["project"]) in stuck:
                continue
            await self.host.destroy_servo(str(record["id"]))
            moved += 1
        self.publish_meta()
        log.info("drain.done", servos=moved)
        return moved

    def live_servo_count(self, project: str) -> int:
        return sum(
            1
            for p in self.deployer.peers()
            if p.alive
            for s in p.servos
            if s.project == project and s.state in LIVE_SERVO_STATES
        )
