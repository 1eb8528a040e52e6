"""The simulated fleet: every agent's real gossip core (via `sim.gossip_net`), simulated hosts
that admit servos with the agent's own fit rule (`placement.fit`), and leaderless recovery that
executes the agent's own convergence engine (`placement.converge`): the same owner rule, the
same plan, the same deterministic ids. This module only carries the actions out.

What is simplified, and why: capacities and servo lists are read from the hosts themselves (the
ground truth) rather than from each agent's copy of gossip metadata, which in a quiet cluster
is the same data a moment later; membership (who is alive, suspect, dead) is each agent's own,
from its own gossip core, so detection delays, false suspicions and partitions shape recovery
exactly as they would. A servo creation is one round trip to the chosen host; a refusal excludes
that host and the owner plans that slot again, at most 3 more hosts per servo, as the agent's
executor does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import attrs

from gossip.core import ALIVE, Member, MemberEvent
from gossip.messages import Status
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
from sim.gossip_net import GossipNet

RECOVERY_DELAY_S = 1.0  # coalesce a burst of dead events into one recovery round per agent
RETRY_HOSTS_PER_SERVO = 3
OWNER_DEPTH = 64
# the gossip core's own statuses that placement.converge counts (for identity tests)
COUNTED = tuple(s for s in Status if s in COUNTED_STATUSES)


@attrs.define
class Host:
    name: str
    region: str
    zone: str
    memory_total_mb: int
    millicpus_total: int
    memory_free_mb: int
    millicpus_free: int
    servos: dict[str, str] = attrs.field(factory=dict)  # servo_id -> project
    per_project: dict[str, int] = attrs.field(factory=dict)


@attrs.define
class Counters:
    created: int = 0
    removed: int = 0
    conflicts: int = 0
    retries: int = 0
    recovery_rounds: int = 0


class Fleet:
    def __init__(self, net: GossipNet, specs: list[Desired]) -> None:
        self.net = net
        self.specs = {s.name: s for s in specs}
        self.hosts: dict[str, Host] = {}
        self.counters = Counters()
        self.where: dict[str, list[str]] = {name: [] for name in self.specs}  # project -> hosts
        # project -> servo id -> the servo as its host reports it (the engine's input)
        self.servos: dict[str, dict[str, ServoView]] = {name: {} for name in self.specs}
        self._pending: set[str] = set()
        self._ranking: dict[str, list[str]] = {}
        self._candidate_map: dict[str, list[str]] | None = None
        self._node_hash: dict[str, int] = {}
        self._truth_version = 0  # bumped on every admit and removal
        self._view_cache: tuple[tuple[str, int, int], ClusterView, PlacementIndex] | None = None
        self.on_change: Callable[[], None] = lambda: None
        net._on_event = self._on_event

    def add_host(self, name: str, region: str, zone: str, memory_mb: int, millicpus: int) -> None:
        self.hosts[name] = Host(name, region, zone, memory_mb, millicpus, memory_mb, millicpus)
        self._ranking.clear()
        self._candidate_map = None
        self.net.add(name, region=region, zone=zone)
        self._node_hash[name] = stable_hash(name)

    # --- ground truth --------------------------------------------------------------------------
    def up(self, name: str) -> bool:
        return not self.net.agents[name].crashed

    def live_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.specs, 0)
        for h in self.hosts.values():
            if self.up(h.name):
                for project in h.servos.values():
                    counts[project] += 1
        return counts

    def view_for(self, observer: str | None) -> ClusterView:
        """The cluster as `observer` sees it: its own membership, the hosts' real capacity."""
        statuses = self.net.view(observer) if observer else {}
        nodes = []
        for h in self.hosts.values():
            status = (
                statuses.get(h.name, "dead")
                if observer
                else ("alive" if self.up(h.name) else "dead")
            )
            nodes.append(
                NodeView(
                    h.name,
                    h.region,
                    h.zone,
                    status,
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
                self._admit(node, spec, sid, slot)
            missing += decision.missing
        return missing

    def _admit(self, node: str, spec: Desired, servo_id: str, slot: int) -> bool:
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
        h.servos[servo_id] = spec.name
        h.per_project[spec.name] = h.per_project.get(spec.name, 0) + 1
        self._truth_version += 1
        self.where[spec.name].append(node)
        self.servos[spec.name][servo_id] = ServoView(
            servo_id,
            spec.name,
            node,
            "running",
            spec.generation,
            slot,
            int(self.net.engine.now * 1000),
        )
        h.memory_free_mb -= spec.memory_mb
        h.millicpus_free -= spec.millicpus
        return True

    def _remove(self, node: str, servo_id: str) -> None:
        h = self.hosts[node]
        project = h.servos.pop(servo_id, None)
        if project is not None:
            self._truth_version += 1
            self.where[project].remove(node)
            self.servos[project].pop(servo_id, None)
            h.per_project[project] -= 1
            spec = self.specs[project]
            h.memory_free_mb += spec.memory_mb
            h.millicpus_free += spec.millicpus

    # --- leaderless recovery -------------------------------------------------------------------
    def _on_event(self, observer: str, ev: MemberEvent) -> None:
        if ev.kind in ("dead", "joined", "alive") and observer not in self._pending:
            self._pending.add(observer)
            self.net.engine.after(RECOVERY_DELAY_S, lambda: self._recover(observer))
        self.on_event(observer, ev)

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

    def _recover(self, me: str) -> None:
        """One recovery round of agent `me`: for the projects it owns in its own view, compare
        live servos with the desired count and repair with `plan_project`."""
        self._pending.discard(me)
        agent = self.net.agents[me]
        if agent.crashed:
            return
        members = agent.core.members
        todo = []
        not_alive = len(self.hosts) - agent.core.live_count()  # dead, left or unknown to me
        suspects = len(agent.core.suspicions)
        if not_alive + suspects < OWNER_DEPTH:
            # the owner is the first alive host of a project's ranking: with fewer hosts down
            # than OWNER_DEPTH, only projects where I rank in the top OWNER_DEPTH can be mine
            projects = self._candidates().get(me, [])
        else:
            projects = list(self.specs)

        for project in projects:
            if self.owner(project, members) != me:
                continue
            # the engine's own counting rule, to skip projects with nothing to do cheaply
            live = 0
            for servo in self.servos[project].values():
                m = members.get(servo.node)
                if m is not None and counts(m.status, servo.state):
                    live += 1
            if live != self.specs[project].count:
                todo.append(project)
        if not todo:
            return
        self.counters.recovery_rounds += 1
        for project in todo:
            self._repair(me, self.specs[project], set())

    def _repair(
        self, me: str, spec: Desired, excluded: set[str], only_slot: int | None = None
    ) -> None:
        """Carry out `me`'s plan for one project. A retry (`only_slot`) re-plans and carries
        out just the slot that was refused: the others are still on their way."""
        view, index = self._planning_view(me)
        plan = converge(spec, view, list(self.servos[spec.name].values()), excluded, index)
        acted = False
        for action in plan.actions:
            if isinstance(action, Remove):
                if only_slot is not None:
                    continue
                self._remove(action.node, action.servo_id)
                self.counters.removed += 1
                acted = True
            elif isinstance(action, Create):
                if only_slot is not None and action.slot != only_slot:
                    continue

                def create(action: Create = action) -> None:
                    self._create(me, spec, action, excluded)

                self._rpc(me, action.node, create)
                acted = True
        if acted:
            self.on_change()

    def _planning_view(self, me: str) -> tuple[ClusterView, PlacementIndex]:
        """`me`'s view and its placement index, built once for every plan made within one
        simulator event while no servo has come or gone (a recovery round that repairs many
        projects would otherwise rebuild the whole fleet's view for each)."""
        key = (me, self._truth_version, self.net.engine.events_run)
        if self._view_cache is None or self._view_cache[0] != key:
            view = self.view_for(me)
            self._view_cache = (key, view, PlacementIndex(view))
        return self._view_cache[1], self._view_cache[2]

    def _rpc(self, src: str, dst: str, then: Callable[[], None]) -> None:
        """One request/response between agents: a reliable round trip on the virtual network."""
        net = self.net.network
        if not net.reachable(src, dst):
            then()
            return
        rtt = 2 * net._profile(src, dst).latency_s
        self.net.engine.after(rtt, then)

    def _create(self, me: str, spec: Desired, action: Create, excluded: set[str]) -> None:
        if self.net.agents[me].crashed:
            return
        reachable = self.net.network.reachable(me, action.node)
        if reachable and self._admit(action.node, spec, action.servo_id, action.slot):
            self.counters.created += 1
            self.on_change()
            return
        self.counters.conflicts += 1
        if len(excluded) < RETRY_HOSTS_PER_SERVO:
            self.counters.retries += 1
            self._repair(me, spec, excluded | {action.node}, only_slot=action.slot)


def make_specs(
    count: int, replicas: int, memory_mb: int, millicpus: int, spread: str, rng: random.Random
) -> list[Desired]:
    del rng  # sizes are uniform; kept for future mixes
    return [Desired(f"p{i:05d}", replicas, memory_mb, millicpus, spread) for i in range(count)]
