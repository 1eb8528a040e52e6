"""The simulated fleet: every agent's real gossip core (via `sim.gossip_net`), simulated hosts
that admit servos with the agent's own fit rule (`placement.fit`), and leaderless recovery that
executes the agent's own convergence engine (`placement.converge`): the same owner rule, the
same plan, the same deterministic ids. This module only carries the actions out.

What simulated agents plan from: their own view, built from gossip over the agent's own
inventory path. Each simulated host publishes its servo changes through a real
`node.membership.MembershipView`: deltas on gossip's APP channel (`node.inventory.OwnInventory`),
metadata from `node.cluster.build_meta` (capacity, inventory version and digest), metadata that
changed only with the inventory at most once a second, and a refresh 2 s after a change, as the
agent's meta loop does. Every agent's core holds a real `ClusterDelegate` and `InventoryReplica`:
deltas, each side's whole inventory in push-pull, and a pull of a host's inventory (a reliable
round trip) when a copy stays behind the host's metadata. An owner plans from what the agent's
`engine_inputs` would give it: capacity from its copy of each member's metadata, servos from its
own replica (`node.cluster.peer_from_member`), its own recent actions laid over them (the
executor's `Overlay`), and a refusing host's fresh state on the retry (`peer_with_state`). So
the real metadata and inventory bytes are in the load figures, and a late delta shapes recovery
as it would.

What is simplified, and why: admission is the host's own state (the ground truth), one round
trip to the chosen host; a refusal excludes that host and the owner plans that slot again, at
most 3 more hosts per servo, as the agent's executor does. A recovery round runs 1 s after an
agent hears of a membership change (dead, joined, alive) or a change in its copy of an
inventory, rather than on those and every 2 s: in these scenarios nothing else asks for one.
Claims are noted when a member's metadata changes (the agent reads every member's every 0.5 s:
the same claims, sooner). Pull and push-pull payloads are not in the byte figures (TCP; the
push-pull's size is an estimate). Hosts neither drain nor stop gracefully, and servos never
fail on their own.

A simulated fleet holds thousands of copies of the same data: observers share one member
table (`GossipNet.preload_converged`) and one inventory record per host and version
(`InventoryReplica.preload`); each parses a host's row once per (metadata, status, inventory)
whoever plans from it; an owner plans from the last inputs built, with the rows that differ
rebuilt (`sim.planning`); and a recovery round looks only at the projects whose owner or count
of live servos can have changed in the observer's view (`Fleet._to_look_at`), the same projects
a full scan finds (`Fleet.full_scan`, compared in tests/sim).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

import attrs

from gossip.core import ALIVE, Member, MemberEvent
from gossip.messages import Status
from node.cluster import (
    Peer,
    ServoEntry,
    build_meta,
    node_view,
    peer_from_member,
)
from node.executor import OVERLAY_TTL_S, Overlay
from node.inventory import ClusterDelegate, HostInventory, InventoryReplica
from node.membership import Identity, MembershipView
from placement.converge import (
    COUNTED_STATUSES,
    Create,
    Desired,
    Remove,
    ServoView,
    converge,
    counts,
    servo_id_for,
)
from placement.fit import refusal
from placement.hashing import mix, stable_hash
from placement.model import ClusterView, NodeView, PlacementRequest, ServoRef
from placement.place import PlacementIndex
from sim.gossip_net import GossipNet, SimAgent
from sim.planning import Planner

RECOVERY_DELAY_S = 1.0  # coalesce a burst of dead events into one recovery round per agent
RETRY_HOSTS_PER_SERVO = 3
OWNER_DEPTH = 8
ROW_VARIANTS = 8  # per host, the placement rows kept (`Fleet._row`)
PLANNERS = 8  # owners whose planning inputs are kept (`Fleet._planning_inputs`)
META_REFRESH_S = 2.0  # as node.context: the agent republishes its metadata this often
# the gossip core's own statuses that placement.converge counts (for identity tests)
COUNTED = tuple(s for s in Status if s in COUNTED_STATUSES)
# membership changes that can move a project's owner or its count of live servos
_STATUS_KINDS = frozenset(("suspect", "dead", "alive", "joined", "left"))
_META_KINDS = frozenset(("updated", "alive", "joined"))


@attrs.define
class Host:
    """A simulated host's own state: the ground truth its admission decides on, and what its
    agent publishes (`node.membership.HostLike`)."""

    name: str
    region: str
    zone: str
    memory_total_mb: int
    millicpus_total: int
    memory_free_mb: int
    millicpus_free: int
    servos: dict[str, str] = attrs.field(factory=dict)  # servo_id -> project
    per_project: dict[str, int] = attrs.field(factory=dict)
    records: dict[str, dict[str, Any]] = attrs.field(factory=dict)  # servo_id -> its record
    inventory_version: int = 0

    def capacity_snapshot(self) -> dict[str, int]:
        return {
            "memory_total_mb": self.memory_total_mb,
            "memory_free_mb": self.memory_free_mb,
            "millicpus_total": self.millicpus_total,
            "millicpus_free": self.millicpus_free,
        }

    def servo_records(self) -> list[dict[str, Any]]:
        return list(self.records.values())

    def state(self) -> dict[str, Any]:
        """What the host answers a refused create with (`node.executor.peer_with_state`)."""
        return {"capacity": self.capacity_snapshot(), "servos": self.servo_records()}


@attrs.define
class Counters:
    created: int = 0
    removed: int = 0
    conflicts: int = 0
    retries: int = 0
    recovery_rounds: int = 0
    pulls: int = 0


class _CoreGossip:
    """`node.membership.GossipLike` over a simulated agent's core, on the virtual clock."""

    def __init__(self, agent: SimAgent) -> None:
        self.agent = agent

    def members(self) -> list[Any]:
        return list(self.agent.core.members.values())

    def set_meta(self, meta: dict[str, Any]) -> None:
        self.agent.core.set_meta(self.agent.net.engine.now, meta)

    def broadcast_app(self, key: str, payload: Any) -> None:
        self.agent.core.broadcast_app(self.agent.net.engine.now, key, payload)

    async def pull_app_state(self, name: str) -> bool:
        raise NotImplementedError("the fleet pulls on the virtual network (Fleet._pull)")


class _Delegate:
    """The agent's `ClusterDelegate`, telling the fleet which hosts' inventories changed in
    this agent's view (their projects need a look at its next recovery round) and when its copy
    fell behind (a pull is then due)."""

    def __init__(self, fleet: Fleet, name: str, inner: ClusterDelegate) -> None:
        self.fleet = fleet
        self.name = name
        self.inner = inner
        self.replica = inner.replica
        # the core calls the agent's own `notify` (one call per APP copy, not two), which
        # tells the fleet of inventory news
        self.notify = inner.notify
        inner.on_inventory_news = partial(fleet._inventory_changed, name)

    def local_state(self, join: bool) -> Any:
        return self.inner.local_state(join)

    def _as_of(self, host: str) -> tuple[int, int, int] | None:
        inv = self.replica.get(host)
        return None if inv is None else (inv.version, inv.floor, inv.digest)

    def merge_remote_state(self, now: float, sender: str, state: Any, join: bool) -> None:
        before = self._as_of(sender)
        self.inner.merge_remote_state(now, sender, state, join)
        if self._as_of(sender) != before:
            self.fleet._inventory_changed(self.name, sender)
        elif self.replica.pull_at:
            self.fleet._pull_soon(self.name)


class Fleet:
    # look at every project in every round: the reference `_to_look_at` is checked against
    full_scan = False

    def __init__(self, net: GossipNet, specs: list[Desired]) -> None:
        self.net = net
        self.specs = {s.name: s for s in specs}
        self._order = {name: i for i, name in enumerate(self.specs)}
        self.hosts: dict[str, Host] = {}
        self.views: dict[str, MembershipView] = {}  # each agent's own membership view
        self.counters = Counters()
        self.where: dict[str, list[str]] = {name: [] for name in self.specs}  # project -> hosts
        # project -> servo id -> the servo as its host has it (the figures' ground truth)
        self.servos: dict[str, dict[str, ServoView]] = {name: {} for name in self.specs}
        # every host a project ever had a servo on, and the reverse: the only hosts whose
        # inventory in anyone's view can hold a servo of the project
        self._ever_hosts: dict[str, set[str]] = {name: set() for name in self.specs}
        self._ever_projects: dict[str, set[str]] = {}
        self._pending: set[str] = set()
        self._ranking: dict[str, list[str]] = {}
        self._candidate_map: dict[str, list[str]] | None = None
        self._node_hash: dict[str, int] = {}
        # per observer, whose status changed in its view since its last recovery round
        # (`_recover`), repeats and all: a list, because after a region outage each of
        # 6,667 survivors hears 3,333 suspicions before its next round (at 10,000 agents, a
        # set each was 0.9 GB)
        self._status_changed: dict[str, list[str]] = {}
        self._inventory_touched: dict[str, set[str]] = {}
        self._deep: dict[str, set[str]] = {}  # projects whose top OWNER_DEPTH are all down
        self._carry: dict[str, list[str]] = {}  # last round's projects to repair
        self._first_round: set[str] = set()  # observers that have not had a round yet
        self._my_candidates: dict[str, frozenset[str]] = {}  # projects where it ranks high
        self._initially_short: set[str] = set()
        self._overlays: dict[str, Overlay] = {}
        self._overlay_version = 0
        # the last owners to plan, each with its planning inputs (least recent first), and
        # for each the members whose rows changed in its view since (`_planning_inputs`)
        self._planners: dict[str, Planner] = {}
        self._dirty: dict[str, set[str]] = {}
        # host -> (incarnation, meta version, status, servo list, inventory version) -> the
        # list, its peer and node view
        self._peer_cache: dict[str, dict[tuple[Any, ...], tuple[Any, Peer, NodeView]]] = {}
        self._pull_wake: dict[str, float] = {}
        self._refresh_due: set[str] = set()
        # a project's servos were created or removed (the report's exact restore time)
        self.on_change: Callable[[str], None] = lambda _project: None
        net._on_event = self._on_event

    def add_host(self, name: str, region: str, zone: str, memory_mb: int, millicpus: int) -> None:
        host = Host(name, region, zone, memory_mb, millicpus, memory_mb, millicpus)
        self.hosts[name] = host
        self._ranking.clear()
        self._candidate_map = None
        self._my_candidates.clear()
        meta = build_meta(
            region=region,
            zone=zone,
            addr=name,
            api="",
            runtime="sim",
            capacity=host.capacity_snapshot(),
        )
        agent = self.net.add(name, region=region, zone=zone, meta=meta)
        view = MembershipView(
            Identity(name, region, zone, name, "", "sim"),
            _CoreGossip(agent),
            host,
            draining=lambda: False,
            clock_ms=lambda: int(self.net.engine.now * 1000),
            monotonic_s=lambda: self.net.engine.now,
        )
        view._last_meta = meta  # what the core was created with
        self.views[name] = view
        agent.core.delegate = _Delegate(self, name, view.delegate)
        self._node_hash[name] = stable_hash(name)
        self._ever_projects[name] = set()
        self._first_round.add(name)

    # --- ground truth --------------------------------------------------------------------------
    def up(self, name: str) -> bool:
        return not self.net.agents[name].crashed

    def live_count(self, project: str) -> int:
        return sum(1 for host in self.where[project] if self.up(host))

    def live_counts(self) -> dict[str, int]:
        return {project: self.live_count(project) for project in self.specs}

    def view_for(self, observer: str | None) -> ClusterView:
        """The cluster as `observer` plans from it (its own gossip view), or as it really is
        (None: every host's own state, for the figures)."""
        if observer is not None:
            return self._planning_inputs(observer, {}).view
        nodes = []
        for h in self.hosts.values():
            nodes.append(
                NodeView(
                    h.name,
                    h.region,
                    h.zone,
                    "alive" if self.up(h.name) else "dead",
                    h.memory_total_mb,
                    h.memory_free_mb,
                    h.millicpus_total,
                    h.millicpus_free,
                    tuple(ServoRef(p, sid) for sid, p in sorted(h.servos.items())),
                )
            )
        return ClusterView(tuple(nodes))

    # --- initial deployment (the real placement, one project after another) -----------------------
    def deploy_all(self) -> int:
        """The initial deployment: the engine's placement for every project on an empty fleet,
        one index kept across projects (what a deploy per project would do, much faster)."""
        index = PlacementIndex(self.view_for(None))
        missing = 0
        for spec in self.specs.values():
            req = PlacementRequest(
                spec.name, spec.count, spec.memory_mb, spec.millicpus, spec.spread
            )
            decision = index.place(req)
            index.apply(req, decision)
            for slot, node in enumerate(decision.placements):
                sid = servo_id_for(spec.name, spec.generation, slot, node)
                self._admit(node, spec, sid, slot, publish=False)
            if decision.missing:
                self._initially_short.add(spec.name)
            missing += decision.missing
        for name in self.hosts:
            self._publish(name)
        return missing

    def preload_converged(self) -> None:
        """Every agent knows every other as alive and holds every host's inventory, as after a
        long quiet run: the gossip cores share one member table (`GossipNet.preload_converged`)
        and the replicas one record per host (`InventoryReplica.preload`), each copied on its
        first change."""
        self.net.preload_converged()
        base: dict[str, HostInventory] = {}
        for name, view in self.views.items():
            own = view.replica.get(name)
            if own is not None:
                own.shared = True
                base[name] = own
        for view in self.views.values():
            view.replica.preload(base)

    # --- a host's duties: admission, and publishing its state -----------------------------------
    def _admit(
        self, node: str, spec: Desired, servo_id: str, slot: int, publish: bool = True
    ) -> bool:
        """The host's admission: the agent's fit rule; a second create of an id is the same
        request (answered yes, nothing added)."""
        h = self.hosts[node]
        if not self.up(node):
            return False
        if servo_id in h.servos:
            return True
        why = refusal(
            memory_free_mb=h.memory_free_mb,
            millicpus_free=h.millicpus_free,
            same_project=h.per_project.get(spec.name, 0),
            memory_mb=spec.memory_mb,
            millicpus=spec.millicpus,
            max_per_host=spec.max_per_host,
        )
        if why is not None:
            return False
        created_ms = int(self.net.engine.now * 1000)
        h.servos[servo_id] = spec.name
        h.per_project[spec.name] = h.per_project.get(spec.name, 0) + 1
        h.records[servo_id] = {
            "id": servo_id,
            "project": spec.name,
            "state": "running",
            "generation": spec.generation,
            "slot": slot,
            "created_ms": created_ms,
            "memory_mb": spec.memory_mb,
            "millicpus": spec.millicpus,
        }
        h.inventory_version += 1
        self.where[spec.name].append(node)
        self._ever_hosts[spec.name].add(node)
        self._ever_projects[node].add(spec.name)
        self.servos[spec.name][servo_id] = ServoView(
            servo_id, spec.name, node, "running", spec.generation, slot, created_ms
        )
        h.memory_free_mb -= spec.memory_mb
        h.millicpus_free -= spec.millicpus
        if publish:
            self._publish(node)
        return True

    def _remove(self, node: str, servo_id: str) -> bool:
        h = self.hosts[node]
        if not self.up(node):
            return False
        project = h.servos.pop(servo_id, None)
        if project is not None:
            del h.records[servo_id]
            h.inventory_version += 1
            self.where[project].remove(node)
            self.servos[project].pop(servo_id, None)
            h.per_project[project] -= 1
            spec = self.specs[project]
            h.memory_free_mb += spec.memory_mb
            h.millicpus_free += spec.millicpus
            self._publish(node)
        return project is not None

    def _publish(self, node: str) -> None:
        """The agent's meta loop after a servo change: deltas now, metadata now or (an
        inventory-only change within a second of the last) at the refresh 2 s later."""
        agent = self.net.agents[node]
        if agent.crashed:
            return
        self.views[node].publish()
        self._inventory_changed(node, node)
        agent.flush()
        if node not in self._refresh_due:
            self._refresh_due.add(node)
            self.net.engine.after(META_REFRESH_S, lambda: self._refresh(node))

    def _refresh(self, node: str) -> None:
        self._refresh_due.discard(node)
        agent = self.net.agents[node]
        if not agent.crashed:
            self.views[node].publish()
            agent.flush()

    # --- gossip news about inventories ------------------------------------------------------------
    def _inventory_changed(self, observer: str, host: str) -> None:
        dirty = self._dirty.get(observer)
        if dirty is not None:
            dirty.add(host)
        touched = self._inventory_touched.get(observer)
        if touched is None:
            touched = self._inventory_touched[observer] = set()
        touched.add(host)
        self._round_soon(observer)
        if self.views[observer].replica.pull_at:
            self._pull_soon(observer)

    def _note_claim(self, observer: str, host: str) -> None:
        """A member's metadata changed in `observer`'s view: note the inventory it claims
        (the agent's repair round does this for every member every 0.5 s)."""
        m = self.net.agents[observer].core.members.get(host)
        if m is None or host == observer:
            return
        replica = self.views[observer].replica
        replica.note_meta(self.net.engine.now, host, m.meta)
        if replica.pull_at:
            self._pull_soon(observer)

    def _pull_soon(self, observer: str) -> None:
        at = self.views[observer].replica.next_pull_at()
        if at is None:
            return
        at = max(at, self.net.engine.now)
        if self._pull_wake.get(observer, float("inf")) <= at:
            return
        self._pull_wake[observer] = at
        self.net.engine.at(at, lambda: self._pull_due(observer, at))

    def _pull_due(self, observer: str, at: float) -> None:
        if self._pull_wake.get(observer) != at:
            return
        del self._pull_wake[observer]
        agent = self.net.agents[observer]
        if agent.crashed:
            return
        members = agent.core.members

        def alive(host: str) -> bool:
            m = members.get(host)
            return m is not None and m.status is ALIVE

        for host in self.views[observer].replica.due_pulls(self.net.engine.now, alive):
            self.counters.pulls += 1
            self._rpc(observer, host, self._pull_answer(observer, host))
        self._pull_soon(observer)

    def _pull_answer(self, observer: str, host: str) -> Callable[[], None]:
        return lambda: self._pulled(observer, host)

    def _pulled(self, observer: str, host: str) -> None:
        """A pull's answer (`GossipService.pull_app_state`): the host's whole inventory."""
        me, target = self.net.agents[observer], self.net.agents[host]
        if me.crashed or target.crashed or not self.net.network.reachable(observer, host):
            return
        now = self.net.engine.now
        me.core.merge_app_state(now, host, target.core.app_state(False), False)
        me.flush()

    # --- leaderless recovery -------------------------------------------------------------------
    def _on_event(self, observer: str, ev: MemberEvent) -> None:
        dirty = self._dirty.get(observer)
        if dirty is not None:
            dirty.add(ev.name)
        if ev.kind in _META_KINDS:
            self._note_claim(observer, ev.name)
        if ev.kind in _STATUS_KINDS:
            changed = self._status_changed.get(observer)
            if changed is None:
                changed = self._status_changed[observer] = []
            changed.append(ev.name)
        if ev.kind in ("dead", "joined", "alive"):
            self._round_soon(observer)
        self.on_event(observer, ev)

    def _round_soon(self, observer: str) -> None:
        if observer not in self._pending:
            self._pending.add(observer)
            self.net.engine.after(RECOVERY_DELAY_S, lambda: self._recover(observer))

    def on_event(self, observer: str, ev: MemberEvent) -> None:
        """Hook for the report's recorder."""

    def _rank(self, project: str) -> list[str]:
        """All hosts by rendezvous score for `project`, best first (computed once)."""
        ranking = self._ranking.get(project)
        if ranking is None:
            ph = stable_hash(project)
            ranking = sorted(
                self.hosts, key=lambda n: (mix(ph, self._node_hash[n]), n), reverse=True
            )
            self._ranking[project] = ranking
        return ranking

    def _candidates(self) -> dict[str, list[str]]:
        """Per host, the projects where it ranks within the first OWNER_DEPTH hosts."""
        if self._candidate_map is None:
            cmap: dict[str, list[str]] = {}
            for project in self.specs:
                for node in self._rank(project)[:OWNER_DEPTH]:
                    cmap.setdefault(node, []).append(project)
            self._candidate_map = cmap
        return self._candidate_map

    def owner(self, project: str, members: Mapping[str, Member]) -> str | None:
        """`placement.converge.recovery_owner(project, hosts alive in members)`, computed by
        walking the ranking (the same maximum, found without hashing every host each time)."""
        for node in self._rank(project):
            m = members.get(node)
            if m is not None and m.status is ALIVE:
                return node
        return None

    def _owner_depth(self, project: str, members: Mapping[str, Member]) -> tuple[str | None, int]:
        """`owner`, and how deep in the ranking it was found."""
        for depth, node in enumerate(self._rank(project)):
            m = members.get(node)
            if m is not None and m.status is ALIVE:
                return node, depth
        return None, len(self.hosts)

    def _to_look_at(self, me: str) -> Iterable[str]:
        """The projects whose owner or count of live servos can have changed in `me`'s view
        since its last round. The owner: those where a host whose status changed ranks within
        the first OWNER_DEPTH (the owner is the first alive host there), and those whose first
        OWNER_DEPTH hosts were all down (`_deep`: the owner is further down, where any change can
        move it). The count: those with a servo (ever) on a host whose status or inventory
        changed, kept only where `me` can be the owner (it ranks within the first OWNER_DEPTH,
        or the project is deep), and those with actions of `me` still laid over its view (they
        count until gossip shows them). And last round's to-do (a refused create changes
        nothing anyone sees). Any other project's owner and count are what they were when `me`
        last looked: not its to-do then, not now. A full scan finds the same set (`full_scan`,
        compared in tests/sim)."""
        status = set(self._status_changed.pop(me, ()))
        touched = self._inventory_touched.pop(me, set())
        deep = self._deep.setdefault(me, set())
        out: set[str] = set(self._carry.pop(me, ()))
        out |= deep
        if me in self._first_round:
            self._first_round.discard(me)
            out |= self._initially_short
        overlay = self._overlays.get(me)
        if overlay is not None:
            out.update(e.project for _, e, _ in overlay.added.values())
            out.update(e.project for _, e, _ in overlay.removed.values())
        cmap = self._candidates()
        counted: set[str] = set()
        for host in status:
            out.update(cmap.get(host, ()))
            counted |= self._ever_projects[host]
        for host in touched:
            counted |= self._ever_projects[host]
        mine = self._my_candidates.get(me)
        if mine is None:
            mine = self._my_candidates[me] = frozenset(cmap.get(me, ()))
        out |= counted & (mine | deep)
        if self.full_scan:
            return list(self.specs)
        return sorted(out, key=self._order.__getitem__)

    def _live(self, me: str, project: str, members: Mapping[str, Member]) -> int:
        """The project's servos that count in `me`'s own view (the engine's counting rule), its
        own recent actions laid over it (`Overlay.apply`, on the few hosts concerned)."""
        replica = self.views[me].replica
        overlay = self._overlays.get(me)
        recent = (
            [
                e
                for _, e, _ in (*overlay.added.values(), *overlay.removed.values())
                if e.project == project
            ]
            if overlay is not None
            else []
        )
        if recent and overlay is not None:
            hosts = sorted(self._ever_hosts[project] | {e.node for e in recent})
            peers = []
            for node in hosts:
                m = members.get(node)
                row = None if m is None else self._row(m, replica)
                if row is not None:
                    peers.append(row[0])
            peers = overlay.apply(peers, self.net.engine.now)
            return sum(
                1
                for p in peers
                for s in p.servos
                if s.project == project and counts(p.status, s.state)
            )
        live = 0
        for node in self._ever_hosts[project]:
            m = members.get(node)
            if m is None:
                continue
            for s in replica.servos(node):
                if s.project == project and counts(m.status, s.state):
                    live += 1
        return live

    def _row(self, m: Member, replica: InventoryReplica) -> tuple[Peer, NodeView] | None:
        """A member as a peer and a placement row (`node.cluster.peer_from_member`), parsed
        once per (metadata, status, inventory) whoever looks: the last few variants of each
        host are kept, since after an outage observers hold a host's inventory at different
        versions, and owners planning one after another alternate between them."""
        servos = replica.servos(m.name)
        version = replica.version(m.name)
        variants = self._peer_cache.get(m.name)
        if variants is None:
            variants = self._peer_cache[m.name] = {}
        # (the servo list's id is a key only while the entry holds the list itself)
        vkey = (m.incarnation, m.meta_version, m.status, id(servos), version)
        hit = variants.get(vkey)
        if hit is not None:
            return hit[1], hit[2]
        p = peer_from_member(m, servos, version)
        if p is None:
            return None
        row = node_view(p)
        if len(variants) >= ROW_VARIANTS:
            del variants[next(iter(variants))]
        variants[vkey] = (servos, p, row)
        return p, row

    def _recover(self, me: str) -> None:
        """One recovery round of agent `me`: for the projects it owns in its own view, compare
        live servos with the desired count and repair with `converge`. Only the projects whose
        owner or count can have changed in its view are looked at (`_to_look_at`)."""
        self._pending.discard(me)
        agent = self.net.agents[me]
        if agent.crashed:
            return
        members = agent.core.members
        todo = []
        projects = self._to_look_at(me)
        deep = self._deep[me]
        for project in projects:
            owner, depth = self._owner_depth(project, members)
            if depth >= OWNER_DEPTH:
                deep.add(project)
            else:
                deep.discard(project)
            if owner != me:
                continue
            # the engine's own counting rule, to skip projects with nothing to do cheaply
            if self._live(me, project, members) != self.specs[project].count:
                todo.append(project)
        self._carry[me] = todo
        if not todo:
            return
        self.counters.recovery_rounds += 1
        for project in todo:
            self._repair(me, self.specs[project], set(), {})

    def _repair(
        self,
        me: str,
        spec: Desired,
        excluded: set[str],
        answered: dict[str, dict[str, Any]],
        only_slot: int | None = None,
    ) -> None:
        """Carry out `me`'s plan for one project. A retry (`only_slot`) re-plans and carries
        out just the slot that was refused: the others are still on their way."""
        inputs = self._planning_inputs(me, answered)
        servos = [s.view() for s in inputs.servos_of(spec.name, self._ever_hosts[spec.name])]
        plan = converge(spec, inputs.view, servos, excluded, inputs.index, status=inputs.status)
        acted = False
        for action in plan.actions:
            if isinstance(action, Remove):
                if only_slot is not None:
                    continue
                self._removed_by(me, action)
                acted = True
            elif isinstance(action, Create):
                if only_slot is not None and action.slot != only_slot:
                    continue

                def create(action: Create = action) -> None:
                    self._create(me, spec, action, excluded, answered)

                self._rpc(me, action.node, create)
                acted = True
        if acted:
            self.on_change(spec.name)

    def _removed_by(self, me: str, action: Remove) -> None:
        """A removal (one call to the host), remembered in `me`'s overlay as the executor does."""
        held = self.views[me].replica.servos(action.node)
        entry = next((s for s in held if s.servo_id == action.servo_id), None)
        if not self.net.network.reachable(me, action.node):
            return  # the call fails: the next round plans again
        if not self._remove(action.node, action.servo_id):
            return  # already gone (another owner's removal came first): the host says not found
        self.counters.removed += 1
        overlay = self._overlay(me)
        overlay.added.pop(action.servo_id, None)
        if entry is not None:
            version = self.views[action.node].own.version
            overlay.removed[action.servo_id] = (self.net.engine.now + OVERLAY_TTL_S, entry, version)

    def _overlay(self, me: str) -> Overlay:
        self._overlay_version += 1
        overlay = self._overlays.get(me)
        if overlay is None:
            overlay = self._overlays[me] = Overlay()
        return overlay

    def _planning_inputs(self, me: str, answered: Mapping[str, Mapping[str, Any]]) -> Planner:
        """What `me`'s executor plans from (`sim.planning`): its peers (each member's metadata,
        its replica's servos: `node.cluster.peer_from_member`), its own recent actions laid over
        them, and a refusing host's own answer in place of its row. Built once per simulator
        event while its overlay stands still (a round repairing many projects plans them all
        from one).

        The last PLANNERS owners keep their inputs, and the fleet notes which members' rows
        changed in their views since (every membership event and inventory change reaches
        `_on_event` or `_inventory_changed`): an owner planning again, as it does for each
        refused create, rebuilds only those rows (after a region outage at 10,000 agents, most
        sampled plans were such re-plans). Another owner takes the least recent inputs and
        rebuilds the rows that differ from its own view, found by comparing every row."""
        key = (me, self.net.engine.events_run, self._overlay_version)
        planner = self._planners.pop(me, None)
        changed: set[str] | None = None  # None: compare every row
        if planner is not None:
            self._planners[me] = planner
            if not answered and planner.key == key:
                return planner
            dirty = changed = self._dirty[me]
            dirty.add(me)  # (its own metadata changes without an event)
        else:
            if len(self._planners) < PLANNERS:
                planner = Planner(self._row)
            else:
                oldest = next(iter(self._planners))
                planner = self._planners.pop(oldest)
                del self._dirty[oldest]
            self._planners[me] = planner
            self._dirty[me] = dirty = set()
        planner.build(
            self.net.agents[me].core.members,
            self.views[me].replica,
            self._overlays.get(me),
            self.net.engine.now,
            answered,
            changed,
        )
        dirty.clear()
        planner.key = None if answered else key
        return planner

    def _rpc(self, src: str, dst: str, then: Callable[[], None]) -> None:
        """One request/response between agents: a reliable round trip on the virtual network."""
        net = self.net.network
        if not net.reachable(src, dst):
            then()
            return
        rtt = 2 * net._profile(src, dst).latency_s
        self.net.engine.after(rtt, then)

    def _create(
        self,
        me: str,
        spec: Desired,
        action: Create,
        excluded: set[str],
        answered: dict[str, dict[str, Any]],
    ) -> None:
        if self.net.agents[me].crashed:
            return
        reachable = self.net.network.reachable(me, action.node)
        if reachable and self._admit(action.node, spec, action.servo_id, action.slot):
            self.counters.created += 1
            record = self.hosts[action.node].records[action.servo_id]
            entry = ServoEntry.from_record(action.node, record)
            version = self.views[action.node].own.version
            self._overlay(me).added[action.servo_id] = (
                self.net.engine.now + OVERLAY_TTL_S,
                entry,
                version,
            )
            self.on_change(spec.name)
            return
        self.counters.conflicts += 1
        if len(excluded) < RETRY_HOSTS_PER_SERVO:
            self.counters.retries += 1
            if reachable and self.up(action.node):
                # the host refused: its answer carries its fresh state, which the retry uses
                answered = {**answered, action.node: self.hosts[action.node].state()}
            self._repair(me, spec, excluded | {action.node}, answered, only_slot=action.slot)


def make_specs(
    count: int, replicas: int, memory_mb: int, millicpus: int, spread: str, rng: random.Random
) -> list[Desired]:
    del rng  # sizes are uniform; kept for future mixes
    return [Desired(f"p{i:05d}", replicas, memory_mb, millicpus, spread) for i in range(count)]
