"""`place(request, view, exclude)`: choose nodes for new servos, deterministically, with hard
anti-affinity, spread across regions then zones, and an explanation of every refusal.

How a servo is placed, in order (Nomad's and Borg's feasibility-then-ranking, made pure):
1. Feasibility: the node is alive, not excluded, runs fewer than `max_per_host` servos of the
   project, and has the memory and CPU free.
2. Spread: among zones holding a feasible node, prefer the region (then zone) holding the fewest
   servos of the project, so region skew stays at most 1 whenever capacity allows.
3. Rank: `spread` prefers the least-loaded node (largest free share of its scarcer resource),
   `binpack` the most loaded that still fits.
4. Ties: nodes with the same rank are ordered by a stable hash of their name, and the project's
   own hash picks where it starts looking; among up to `WINDOW` tied candidates the highest
   rendezvous score mix(hash(project), hash(node)) wins. Tied nodes are therefore not all chosen
   by every project (no herd onto one host), and the cost per servo stays bounded however many
   nodes tie (which they all do on a fresh cluster).

`PlacementIndex` keeps nodes bucketed by rank so a decision costs little more than the zones it
looks at; `place()` builds one for the call, the C1M benchmark keeps one and `apply()`s each
decision. Both paths run the same code, so they agree by construction.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable

from placement.fit import refusal
from placement.hashing import mix, stable_hash
from placement.model import (
    ALIVE,
    ClusterView,
    Decision,
    NodeView,
    PlacementRequest,
    Refusal,
)

WINDOW = 16
_SCALE = 10_000
_NAME_HASHES: dict[str, int] = {}  # node name -> stable hash; names are few, hashing is not free


def name_hash(name: str) -> int:
    """`stable_hash(name)`, cached: node names are few and hashed over and over."""
    return _name_hash(name)


def _name_hash(name: str) -> int:
    h = _NAME_HASHES.get(name)
    if h is None:
        if len(_NAME_HASHES) > 1_000_000:
            _NAME_HASHES.clear()
        h = _NAME_HASHES[name] = stable_hash(name)
    return h


class _Node:
    __slots__ = (
        "alive",
        "cpu_free",
        "cpu_total",
        "h",
        "key",
        "mem_free",
        "mem_total",
        "name",
        "projects",
        "region",
        "zone",
    )

    def __init__(self, view: NodeView) -> None:
        self.name = view.name
        self.region = view.region
        self.zone = view.zone
        self.alive = view.status == ALIVE
        self.mem_total = view.memory_total_mb
        self.mem_free = view.memory_free_mb
        self.cpu_total = view.millicpus_total
        self.cpu_free = view.millicpus_free
        self.h = _name_hash(view.name)
        self.projects: dict[str, int] = {}
        for ref in view.servos:
            self.projects[ref.project] = self.projects.get(ref.project, 0) + 1
        self.key = self.rank_key()

    def rank_key(self) -> int:
        """Free share of the scarcer resource, in 1/10,000 (higher = less loaded)."""
        m = self.mem_free * _SCALE // self.mem_total if self.mem_total > 0 else 0
        c = self.cpu_free * _SCALE // self.cpu_total if self.cpu_total > 0 else 0
        return min(m, c)


class _Zone:
    """Alive nodes of one (region, zone), bucketed by rank key; buckets sorted by node hash."""

    __slots__ = ("buckets", "h", "keys", "region", "zone")

    def __init__(self, region: str, zone: str) -> None:
        self.region = region
        self.zone = zone
        self.h = stable_hash(region, zone)
        self.keys: list[int] = []
        self.buckets: dict[int, list[tuple[int, str]]] = {}

    def add(self, node: _Node) -> None:
        bucket = self.buckets.get(node.key)
        if bucket is None:
            bucket = self.buckets[node.key] = []
            insort(self.keys, node.key)
        insort(bucket, (node.h, node.name))

    def remove(self, node: _Node) -> None:
        bucket = self.buckets[node.key]
        del bucket[bisect_left(bucket, (node.h, node.name))]
        if not bucket:
            del self.buckets[node.key]
            del self.keys[bisect_left(self.keys, node.key)]


class PlacementIndex:
    """A view of the cluster organised for fast placement. Mutated only by `apply`."""

    def __init__(self, view: ClusterView) -> None:
        self.nodes: dict[str, _Node] = {}
        self.zones: dict[tuple[str, str], _Zone] = {}
        # project -> {node: servos of it there}: a decision touches only its project's nodes
        self.project_nodes: dict[str, dict[str, int]] = {}
        for nv in sorted(view.nodes, key=lambda n: n.name):
            node = _Node(nv)
            self.nodes[node.name] = node
            for project, count in node.projects.items():
                self.project_nodes.setdefault(project, {})[node.name] = count
            if node.alive:
                zk = (node.region, node.zone)
                zone = self.zones.get(zk)
                if zone is None:
                    zone = self.zones[zk] = _Zone(node.region, node.zone)
                zone.add(node)
        self._zone_list = [self.zones[k] for k in sorted(self.zones)]

    # --- mutation ------------------------------------------------------------------------
    def _adjust(self, name: str, project: str, mem: int, cpu: int, delta: int) -> None:
        node = self.nodes[name]
        zone = self.zones.get((node.region, node.zone)) if node.alive else None
        if zone is not None:
            zone.remove(node)
        node.mem_free -= mem * delta
        node.cpu_free -= cpu * delta
        count = node.projects.get(project, 0) + delta
        where = self.project_nodes.setdefault(project, {})
        if count > 0:
            node.projects[project] = count
            where[name] = count
        else:
            node.projects.pop(project, None)
            where.pop(name, None)
            if not where:
                del self.project_nodes[project]
        node.key = node.rank_key()
        if zone is not None:
            zone.add(node)

    def apply(self, request: PlacementRequest, decision: Decision) -> None:
        """Reserve what a decision placed, as the chosen hosts' admission would."""
        for name in decision.placements:
            self._adjust(name, request.project, request.memory_mb, request.millicpus, +1)

    def release(self, name: str, project: str, memory_mb: int, millicpus: int) -> None:
        """Forget one servo of `project` on `name` and free its resources."""
        self._adjust(name, project, memory_mb, millicpus, -1)

    def replace(self, view: NodeView) -> None:
        """Put a newer row of a node already indexed in place of its old one, leaving the index
        as `PlacementIndex` of the changed view would build it. A planner that goes from one
        view to a slightly different one (the simulator, from one observer to the next)
        patches the rows that differ instead of indexing every node again."""
        name = view.name
        old = self.nodes[name]
        if old.alive:
            zk = (old.region, old.zone)
            zone = self.zones[zk]
            zone.remove(old)
            if not zone.keys:
                del self.zones[zk]
                self._zone_list = [self.zones[k] for k in sorted(self.zones)]
        for project in old.projects:
            where = self.project_nodes[project]
            del where[name]
            if not where:
                del self.project_nodes[project]
        node = self.nodes[name] = _Node(view)
        for project, count in node.projects.items():
            self.project_nodes.setdefault(project, {})[name] = count
        if node.alive:
            zk = (node.region, node.zone)
            into = self.zones.get(zk)
            if into is None:
                into = self.zones[zk] = _Zone(node.region, node.zone)
                self._zone_list = [self.zones[k] for k in sorted(self.zones)]
            into.add(node)

    # --- decision ------------------------------------------------------------------------
    def place(self, request: PlacementRequest, exclude: Iterable[str] = ()) -> Decision:
        excluded = frozenset(exclude)
        project = request.project
        ph = stable_hash(project)
        mem, cpu = request.memory_mb, request.millicpus
        limit = request.max_per_host
        nodes = self.nodes

        # node -> servos of the project (existing + placed now)
        counts: dict[str, int] = dict(self.project_nodes.get(project, {}))
        for _, name in request.existing:
            if name in nodes and project not in nodes[name].projects:
                counts[name] = counts.get(name, 0) + 1
        region_count: dict[str, int] = {}
        zone_count: dict[tuple[str, str], int] = {}
        for name, c in counts.items():
            node = nodes[name]
            if node.alive:
                region_count[node.region] = region_count.get(node.region, 0) + c
                zk = (node.region, node.zone)
                zone_count[zk] = zone_count.get(zk, 0) + c

        used_mem: dict[str, int] = {}
        used_cpu: dict[str, int] = {}
        binpack = request.strategy == "binpack"

        def eligible(name: str) -> bool:
            if name in excluded:
                return False
            node = nodes[name]
            return (
                refusal(
                    memory_free_mb=node.mem_free - used_mem.get(name, 0),
                    millicpus_free=node.cpu_free - used_cpu.get(name, 0),
                    same_project=counts.get(name, 0),
                    memory_mb=mem,
                    millicpus=cpu,
                    max_per_host=limit,
                )
                is None
            )

        def find(zone: _Zone) -> str | None:
            keys = zone.keys if binpack else reversed(zone.keys)
            for key in keys:
                bucket = zone.buckets[key]
                size = len(bucket)
                start = ph % size
                found: list[tuple[int, str]] = []
                for i in range(size):
                    h, name = bucket[(start + i) % size]
                    if eligible(name):
                        found.append((mix(ph, h), name))
                        if len(found) == WINDOW:
                            break
                if found:
                    return max(found)[1]
            return None

        spread = request.spread
        placements: list[str] = []
        for _ in range(request.count):

            def zone_order(z: _Zone) -> tuple[int, int, int, int]:
                rc = region_count.get(z.region, 0)
                zc = zone_count.get((z.region, z.zone), 0)
                top = (z.keys[0] if binpack else -z.keys[-1]) if z.keys else 0
                if spread == "region":
                    return (rc, zc, top, -mix(ph, z.h))
                if spread == "zone":
                    return (zc, rc, top, -mix(ph, z.h))
                return (0, 0, top, -mix(ph, z.h))

            chosen = None
            for zone in sorted(self._zone_list, key=zone_order):
                chosen = find(zone)
                if chosen is not None:
                    break
            if chosen is None:
                break
            placements.append(chosen)
            node = nodes[chosen]
            counts[chosen] = counts.get(chosen, 0) + 1
            used_mem[chosen] = used_mem.get(chosen, 0) + mem
            used_cpu[chosen] = used_cpu.get(chosen, 0) + cpu
            region_count[node.region] = region_count.get(node.region, 0) + 1
            zk = (node.region, node.zone)
            zone_count[zk] = zone_count.get(zk, 0) + 1

        missing = request.count - len(placements)
        refusals: tuple[tuple[str, str], ...] = ()
        if missing:
            refusals = self._refusals(request, excluded, counts, used_mem, used_cpu, placements)
        decision = Decision(
            project=project,
            placements=tuple(placements),
            missing=missing,
            refusals=refusals,
            considered=len(nodes),
        )
        if request.survive:
            decision = self._check_survive(request, decision, counts, used_mem, used_cpu)
        return decision

    def _refusals(
        self,
        request: PlacementRequest,
        excluded: frozenset[str],
        counts: dict[str, int],
        used_mem: dict[str, int],
        used_cpu: dict[str, int],
        placements: list[str],
    ) -> tuple[tuple[str, str], ...]:
        """Why each node not used this time was not used, checked in a fixed order."""
        chosen = set(placements)
        out = []
        for name, node in self.nodes.items():
            if name in chosen:
                continue
            if not node.alive:
                reason = Refusal.NOT_ALIVE
            elif name in excluded:
                reason = Refusal.EXCLUDED
            else:
                why = refusal(
                    memory_free_mb=node.mem_free - used_mem.get(name, 0),
                    millicpus_free=node.cpu_free - used_cpu.get(name, 0),
                    same_project=counts.get(name, 0),
                    memory_mb=request.memory_mb,
                    millicpus=request.millicpus,
                    max_per_host=request.max_per_host,
                )
                # a feasible node is always found before giving up
                assert why is not None, f"{name} was feasible but not chosen"
                reason = why
            out.append((name, reason.value))
        return tuple(out)

    def _check_survive(
        self,
        request: PlacementRequest,
        decision: Decision,
        counts: dict[str, int],
        used_mem: dict[str, int],
        used_cpu: dict[str, int],
    ) -> Decision:
        """Accept only if losing any one region (zone) leaves room to re-place its servos."""
        level = request.survive
        assert level in ("region", "zone")

        def domain(node: _Node) -> str:
            return node.region if level == "region" else f"{node.region}/{node.zone}"

        alive = [n for n in self.nodes.values() if n.alive]
        domains = sorted({domain(n) for n in alive})
        headroom: list[tuple[str, int]] = []
        failed = None
        for d in domains:
            needed = sum(counts.get(n.name, 0) for n in alive if domain(n) == d)
            slots = 0
            for n in alive:
                if domain(n) == d:
                    continue
                free_m = n.mem_free - used_mem.get(n.name, 0)
                free_c = n.cpu_free - used_cpu.get(n.name, 0)
                by_mem = free_m // request.memory_mb if request.memory_mb else request.max_per_host
                by_cpu = free_c // request.millicpus if request.millicpus else request.max_per_host
                slots += max(0, min(request.max_per_host - counts.get(n.name, 0), by_mem, by_cpu))
            headroom.append((d, slots - needed))
            if slots < needed and failed is None:
                failed = d
        if failed is None:
            return Decision(
                project=decision.project,
                placements=decision.placements,
                missing=decision.missing,
                refusals=decision.refusals,
                headroom=tuple(headroom),
                considered=decision.considered,
            )
        return Decision(
            project=decision.project,
            placements=(),
            missing=request.count,
            refusals=decision.refusals,
            headroom=tuple(headroom),
            survive_failed=f"losing {request.survive} {failed} would leave servos with no room",
            considered=decision.considered,
        )


def place(request: PlacementRequest, view: ClusterView, exclude: Iterable[str] = ()) -> Decision:
    """The pure entry point: same request and view give the same decision on every agent."""
    return PlacementIndex(view).place(request, exclude)
