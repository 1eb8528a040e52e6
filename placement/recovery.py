"""Leaderless recovery planning: a pure function of the membership view and the desired
projects, so every survivor computes the same plan and the simulator runs the same code.

For each project exactly one alive agent is its owner: the highest rendezvous score
mix(hash(project), hash(agent)) among alive agents. Owners spread across agents, and when one
dies only the projects it owned move. The owner compares live servos (on alive nodes, starting or
running) with the desired count: it creates what is missing through `place` (with the live
servos as `existing`, so anti-affinity and spread hold) and removes extras - typically after a
dead agent returns with servos that were already replaced - choosing them with
`choose_scale_down`. Servo ids of planned creations are derived from the plan's inputs, so two
agents that briefly both believe they own a project plan the same ids, and the hosts' idempotent
creation makes the duplicate harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from placement.hashing import mix, stable_hash
from placement.model import ALIVE, ClusterView, Decision, PlacementRequest, ServoRef
from placement.place import PlacementIndex


@attrs.frozen
class ProjectSpec:
    name: str
    replicas: int
    memory_mb: int
    millicpus: int
    spread: str = "region"
    stopped: bool = False
    max_per_host: int = 1

    @property
    def desired(self) -> int:
        return 0 if self.stopped else self.replicas


@attrs.frozen
class Action:
    kind: str  # "create" | "remove"
    project: str
    servo_id: str
    node: str


@attrs.frozen
class ProjectPlan:
    project: str
    live: tuple[tuple[str, str], ...]  # (servo_id, node) on alive nodes
    creates: tuple[tuple[str, str], ...]  # (node, servo_id)
    removes: tuple[ServoRef, ...]
    decision: Decision | None = None

    @property
    def missing(self) -> int:
        return self.decision.missing if self.decision else 0

    def actions(self, view: ClusterView) -> list[Action]:
        where = {ref.servo_id: n.name for n in view.nodes for ref in n.servos}
        out = [Action("create", self.project, sid, node) for node, sid in self.creates]
        out += [Action("remove", self.project, r.servo_id, where[r.servo_id]) for r in self.removes]
        return out


def recovery_owner(project: str, alive_nodes: Iterable[str]) -> str | None:
    """The alive agent that repairs `project`: highest rendezvous score, None if nobody alive."""
    ph = stable_hash(project)
    best: tuple[int, str] | None = None
    for name in alive_nodes:
        score = (mix(ph, stable_hash(name)), name)
        if best is None or score > best:
            best = score
    return best[1] if best else None


COUNTED_STATUSES = frozenset({ALIVE, "suspect"})


def live_servos(project: str, view: ClusterView) -> list[tuple[str, str]]:
    """Servos that still count: on alive nodes and on suspect ones. A suspect may refute;
    replacing its servos during the suspicion would only create extras to remove again, so
    recovery waits for "dead" (new servos still only go to alive nodes)."""
    return sorted(
        (ref.servo_id, n.name)
        for n in view.nodes
        if n.status in COUNTED_STATUSES
        for ref in n.servos
        if ref.project == project
    )


def servo_id_for(project: str, live: Sequence[tuple[str, str]], slot: int) -> str:
    """A deterministic id: the same on every agent that plans from the same live set."""
    basis = ",".join(sid for sid, _ in live)
    return f"{project}-{stable_hash(project, basis, str(slot)) & 0xFFFFFFFF:08x}"


def choose_scale_down(spec: ProjectSpec, view: ClusterView, n: int) -> list[ServoRef]:
    """Which `n` live servos to remove so the ones left keep the best spread.

    Repeatedly take one from the region (then zone) holding the most servos of the project,
    and within it from the most loaded node; ties by rendezvous score. Deterministic.
    """
    index = PlacementIndex(view)
    ph = stable_hash(spec.name)
    live = live_servos(spec.name, view)
    victims: list[ServoRef] = []
    for _ in range(min(n, len(live))):
        regions: dict[str, int] = {}
        zones: dict[tuple[str, str], int] = {}
        for _, node in live:
            nd = index.nodes[node]
            regions[nd.region] = regions.get(nd.region, 0) + 1
            zones[(nd.region, nd.zone)] = zones.get((nd.region, nd.zone), 0) + 1

        def badness(
            item: tuple[str, str],
            regions: dict[str, int] = regions,
            zones: dict[tuple[str, str], int] = zones,
        ) -> tuple[int, int, int, int, str]:
            nd = index.nodes[item[1]]
            by_region = regions[nd.region] if spec.spread == "region" else 0
            by_zone = zones[(nd.region, nd.zone)] if spec.spread in ("region", "zone") else 0
            return (by_region, by_zone, -nd.key, mix(ph, nd.h), item[0])

        victim = max(live, key=badness)
        live.remove(victim)
        victims.append(ServoRef(spec.name, victim[0]))
    return victims


def plan_project(
    spec: ProjectSpec,
    view: ClusterView,
    exclude: Iterable[str] = (),
    index: PlacementIndex | None = None,
) -> ProjectPlan:
    """What brings `spec` back to its desired count in `view`. `index`, when given, must be
    `PlacementIndex(view)` (a caller planning many projects on one view builds it once)."""
    live = tuple(live_servos(spec.name, view))
    want = spec.desired
    if len(live) < want:
        request = PlacementRequest(
            project=spec.name,
            count=want - len(live),
            memory_mb=spec.memory_mb,
            millicpus=spec.millicpus,
            spread=spec.spread,
            existing=live,
            max_per_host=spec.max_per_host,
        )
        decision = (index or PlacementIndex(view)).place(request, exclude)
        creates = tuple(
            (node, servo_id_for(spec.name, live, i)) for i, node in enumerate(decision.placements)
        )
        return ProjectPlan(spec.name, live, creates, (), decision)
    if len(live) > want:
        return ProjectPlan(
            spec.name, live, (), tuple(choose_scale_down(spec, view, len(live) - want))
        )
    return ProjectPlan(spec.name, live, (), ())


def plan_recovery(specs: Iterable[ProjectSpec], view: ClusterView, me: str) -> list[Action]:
    """The actions `me` owes: repairs of the projects it owns whose live count is off."""
    alive = sorted(n.name for n in view.nodes if n.status == ALIVE)
    actions: list[Action] = []
    for spec in sorted(specs, key=lambda s: s.name):
        if recovery_owner(spec.name, alive) != me:
            continue
        plan = plan_project(spec, view)
        actions.extend(plan.actions(view))
    return actions
