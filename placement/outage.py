"""Beyond one placement: what a region (zone) outage would do now, and moves that would lower
the skew left behind when nodes join. Both are plans; nothing here executes anything.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from placement.hashing import mix, stable_hash
from placement.model import ALIVE, ClusterView, PlacementRequest
from placement.place import PlacementIndex

Sizes = Mapping[str, tuple[int, int]]  # project -> (memory_mb, millicpus) per servo


def _domain(region: str, zone: str, level: str) -> str:
    return region if level == "region" else f"{region}/{zone}"


@attrs.frozen
class OutageImpact:
    """If `domain` failed now: how many servos it holds and which projects could not be fully
    restored in the rest of the cluster (project, servos that would stay missing)."""

    domain: str
    servos_lost: int
    unrestorable: tuple[tuple[str, int], ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "servos_lost": self.servos_lost,
            "unrestorable": dict(self.unrestorable),
        }


def headroom(view: ClusterView, sizes: Sizes, level: str = "region") -> list[OutageImpact]:
    """For each region (zone): were it lost now, which projects can't be fully restored.

    Re-placement uses the same `PlacementIndex` the agents use, project by project in name
    order, so the answer is what recovery itself would achieve. Projects without a known size
    are skipped (they cannot be placed).
    """
    alive = [n for n in view.nodes if n.status == ALIVE]
    domains = sorted({_domain(n.region, n.zone, level) for n in alive})
    out = []
    for d in domains:
        lost_nodes = {n.name for n in alive if _domain(n.region, n.zone, level) == d}
        survivors = ClusterView(
            tuple(attrs.evolve(n, status="dead") if n.name in lost_nodes else n for n in view.nodes)
        )
        index = PlacementIndex(survivors)
        lost: dict[str, int] = {}
        for n in view.nodes:
            if n.name in lost_nodes:
                for ref in n.servos:
                    lost[ref.project] = lost.get(ref.project, 0) + 1
        unrestorable = []
        for project in sorted(lost):
            if project not in sizes:
                continue
            mem, cpu = sizes[project]
            request = PlacementRequest(project, lost[project], mem, cpu, spread=level)
            decision = index.place(request)
            index.apply(request, decision)
            if decision.missing:
                unrestorable.append((project, decision.missing))
        out.append(OutageImpact(d, sum(lost.values()), tuple(unrestorable)))
    return out


@attrs.frozen
class Move:
    project: str
    servo_id: str
    from_node: str
    to_node: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return attrs.asdict(self)


def rebalance(
    view: ClusterView, sizes: Sizes, level: str = "region", max_moves: int = 1000
) -> list[Move]:
    """Moves that bring each project's servo counts per region (zone) within 1 of each other.

    After nodes join a new region, the servos stay where they were placed; this proposes, per
    project, moving a servo from its fullest domain to its emptiest one until the skew is at
    most 1 or no move fits. Moves are planned against a working copy of capacity, so the plan
    as a whole fits.
    """
    index = PlacementIndex(view)
    by_name = view.by_name()
    alive_domains = sorted(
        {_domain(n.region, n.zone, level) for n in view.nodes if n.status == ALIVE}
    )
    placed: dict[str, list[tuple[str, str]]] = {}  # project -> [(servo_id, node)]
    for n in sorted(view.nodes, key=lambda n: n.name):
        if n.status == ALIVE:
            for ref in n.servos:
                placed.setdefault(ref.project, []).append((ref.servo_id, n.name))
    moves: list[Move] = []
    for project in sorted(placed):
        if project not in sizes:
            continue
        mem, cpu = sizes[project]
        servos = placed[project]
        while len(moves) < max_moves:
            per: dict[str, list[tuple[str, str]]] = {d: [] for d in alive_domains}
            for sid, node in servos:
                nv = by_name[node]
                per[_domain(nv.region, nv.zone, level)].append((sid, node))
            src = max(alive_domains, key=lambda d: (len(per[d]), d))
            dst_count = min(len(v) for v in per.values())
            if len(per[src]) - dst_count <= 1:
                break
            ph = stable_hash(project)
            sid, node = min(
                per[src],
                key=lambda s: (index.nodes[s[1]].key, -mix(ph, stable_hash(s[1])), s[0]),
            )
            keep = tuple(s for s in servos if s[0] != sid)
            outside = [
                n.name for n in view.nodes if len(per[_domain(n.region, n.zone, level)]) > dst_count
            ]
            request = PlacementRequest(project, 1, mem, cpu, spread=level, existing=keep)
            decision = index.place(request, exclude=outside)
            if not decision.placements:
                break
            target = decision.placements[0]
            index.apply(request, decision)
            index.release(node, project, mem, cpu)
            servos = [*keep, (sid, target)]
            moves.append(
                Move(project, sid, node, target, f"{level} skew {len(per[src])} vs {dst_count}")
            )
    return moves
