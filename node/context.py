"""The agent's parts, wired together once (the composition root's data; `node.agent` runs it).

Each job has its own object: `MembershipView` (who is who, and what we tell them),
`Executor` (carries out the engine's actions), `SpecReplicator` (desired state everywhere),
`RecoveryLoop` (owner and host rounds), `Drainer`, and `ProjectService` (the use cases the
routes call). This holds them and starts their loops in the agent's nursery; it decides nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio

from node.config import AgentConfig
from node.drain import Drainer, DrainState
from node.event_diff import Snapshot, snapshot
from node.events import ClusterWatcher, EventJournal
from node.executor import Executor
from node.hlc import HybridClock
from node.logfmt import get_logger
from node.membership import REPAIR_INTERVAL_S, Identity, MembershipView
from node.metrics import Metrics
from node.peers import PeerClient
from node.project_service import ProjectService
from node.projects import ProjectRegistry
from node.recovery import RecoveryLoop
from node.specs import SpecReplicator

log = get_logger("node.context")

META_REFRESH_S = 2.0


@attrs.frozen(eq=False)
class _Same:
    """Equal only to a wrapper of the very same objects, one by one (peers compared by
    identity, not field by field, and kept alive so no id can be reused)."""

    items: tuple[object, ...]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Same)
            and len(other.items) == len(self.items)
            and all(a is b for a, b in zip(self.items, other.items, strict=True))
        )

    def __hash__(self) -> int:
        return hash(tuple(map(id, self.items)))


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
    membership: MembershipView = attrs.field(init=False)
    executor: Executor = attrs.field(init=False)
    specs: SpecReplicator = attrs.field(init=False)
    recovery: RecoveryLoop = attrs.field(init=False)
    drainer: Drainer = attrs.field(init=False)
    projects: ProjectService = attrs.field(init=False)
    events: EventJournal = attrs.field(init=False)  # the operator's feed (`node.events`)
    watcher: ClusterWatcher = attrs.field(init=False)
    _publish_due: trio.Event = attrs.field(factory=trio.Event)
    # set by the agent: ends the process (after the answer to `shoal leave` is sent)
    on_shutdown: Callable[[], None] = lambda: None

    def __attrs_post_init__(self) -> None:
        cfg = self.config
        drain_state = DrainState(cfg.data_dir)
        self.membership = MembershipView(
            Identity(
                name=cfg.name,
                region=cfg.region,
                zone=cfg.zone_or_default,
                addr=f"{cfg.advertise_addr}:{cfg.gossip_port}",
                api=self.api_url,
                runtime=cfg.runtime,
            ),
            self.gossip,
            self.host,
            lambda: drain_state.draining,
            restart_grace_s=cfg.restart_grace_s,
            monotonic_s=trio.current_time,
        )
        # the gossip core, started after this, hands APP news to the membership's delegate
        self.gossip.delegate = self.membership.delegate
        self.executor = Executor(
            cfg.name,
            self.membership.peers,
            self.client,
            on_retry=lambda reason: self.metrics.placement_retries.labels(reason).inc(),
            on_create_seconds=self.metrics.create_seconds.observe,
        )
        self.specs = SpecReplicator(
            cfg.name,
            self.registry,
            self.hlc,
            self.client,
            self.membership.peers,
            on_merged=self._on_specs_merged,
            broadcast=self.gossip.broadcast_app,
        )
        self.membership.delegate.on_spec = self.specs.merge_broadcast
        self.membership.delegate.spec_digest = self.specs.digest
        self.membership.delegate.on_spec_digest = self.specs.note_digest
        self.recovery = RecoveryLoop(
            cfg.name,
            self.registry,
            self.executor,
            self.host,
            lambda: drain_state.draining,
            on_action=lambda kind, n: self.metrics.recovery_actions.labels(kind).inc(n),
            on_change=self.publish_meta,
            write=self._write_project,
        )
        self.drainer = Drainer(
            drain_state,
            self.host,
            self.registry,
            self.executor,
            self.publish_meta,
            catch_up=lambda: self.specs.pull_round(peers=len(self.peers())),
        )
        self.projects = ProjectService(
            cfg.name, self.registry, self.specs, self.executor, self.client
        )
        self.events = EventJournal()
        self.watcher = ClusterWatcher(self.events, self._look, key=self._look_key)
        self.host.on_change = self.publish_soon
        self.host.on_exit = lambda servo, reason: self.metrics.servo_exits.labels(reason).inc()
        self.host.on_failed = lambda servo, reason: self.metrics.servo_failures.labels(reason).inc()
        self.metrics.attach_live(
            self.membership.members_by_status, self.servos_by_state, self.gossip_counters
        )

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def api_url(self) -> str:
        return f"http://{self.config.advertise_addr}:{self.config.api_port}"

    @property
    def draining(self) -> bool:
        return self.drainer.state.draining

    def peers(self) -> list[Any]:
        return self.membership.peers()

    def servos_by_state(self) -> Mapping[str, int]:
        return Counter(str(r["state"]) for r in self.host.servo_records())

    def gossip_counters(self) -> Mapping[str, Mapping[str, int]]:
        counters: Callable[[], Mapping[str, Mapping[str, int]]] | None = getattr(
            self.gossip, "counters", None
        )
        out = dict(counters()) if counters else {}
        out["inventory"] = dict(self.membership.replica.counters)
        return out

    def _look_key(self) -> object:
        """What `_look` depends on: the peers (`MembershipView.peers` hands out the same Peer
        object while a member's state is unchanged) and the registry's change count; None
        while a rollout is live, whose counts move with the clock."""
        live = self.registry.live()
        if any(p.rollout is not None and p.rollout.state == "in_progress" for p in live):
            return None
        return _Same(tuple(self.peers())), self.registry.changes

    def _look(self) -> Snapshot:
        peers = self.peers()
        return snapshot(peers, self.registry.live(), lambda p: self.projects.rollout_view(p, peers))

    def publish_meta(self) -> None:
        self.membership.publish()

    def publish_soon(self) -> None:
        """A servo changed: republish now (from outside the loop's task) and wake recovery."""
        self._publish_due.set()

    async def _write_project(self, project: Any) -> None:
        self.specs.push_soon(self.specs.write(project.name, project))

    def _on_specs_merged(self, entries: list[Any]) -> None:
        self.recovery.note_writes(entries)
        self.recovery.wake()

    def on_membership_event(self, kind: str) -> None:
        # not "updated": every servo change anywhere is one, and waking every agent's
        # recovery for each would make a deploy cost a round on every agent; the periodic
        # round (2 s) picks up failed servos and rollout progress on other hosts
        if kind in ("dead", "left", "joined", "alive", "suspect"):
            self.recovery.wake()

    async def leave(self) -> dict[str, Any]:
        """`shoal leave`: move the servos off (replacements first), leave the cluster for good
        (peers see `left`, not a restart), then stop this agent."""
        moved = await self.drainer.drain()
        await self.gossip.leave()
        log.info("agent.left", **moved)
        self.on_shutdown()
        return {"ok": True, "node": self.name, "left": True, **moved}

    # --- loops -------------------------------------------------------------------------------
    async def run_loops(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self.publish_meta()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._meta_loop)
            nursery.start_soon(self._repair_loop)
            await nursery.start(self.specs.run)
            await nursery.start(self.recovery.run)
            await nursery.start(self.watcher.run)
            task_status.started()

    async def _repair_loop(self) -> None:
        while True:
            await trio.sleep(REPAIR_INTERVAL_S)
            await self.membership.repair()

    async def _meta_loop(self) -> None:
        while True:
            with trio.move_on_after(META_REFRESH_S):
                await self._publish_due.wait()
            if self._publish_due.is_set():
                self._publish_due = trio.Event()
                self.recovery.wake()
            self.publish_meta()
