"""Placement's data: plain frozen values, so a view of the cluster can be built by an agent from
gossip, by the simulator from its virtual agents, or by a test from a table.

Units: memory in whole MiB, CPU in whole millicpus. Integers keep every comparison exact, which
is what lets every agent reach the same decision.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

ALIVE = "alive"
SPREAD_LEVELS = ("region", "zone", "host")
STRATEGIES = ("spread", "binpack")


class Refusal(enum.StrEnum):
    """Why a node was not used; the values appear in explanations and are stable."""

    NOT_ALIVE = "not_alive"
    EXCLUDED = "excluded"
    INSUFFICIENT_MEMORY = "insufficient_memory"
    INSUFFICIENT_CPU = "insufficient_cpu"
    ALREADY_RUNS_PROJECT = "already_runs_project"
    SPREAD_PREFERRED_ELSEWHERE = "spread_preferred_elsewhere"


@attrs.frozen
class ServoRef:
    project: str
    servo_id: str


@attrs.frozen
class NodeView:
    name: str
    region: str
    zone: str
    status: str  # "alive" | "suspect" | "dead" | "left" (and "draining"): only alive is eligible
    memory_total_mb: int
    memory_free_mb: int
    millicpus_total: int
    millicpus_free: int
    servos: tuple[ServoRef, ...] = ()


@attrs.frozen
class ClusterView:
    nodes: tuple[NodeView, ...]

    def by_name(self) -> dict[str, NodeView]:
        return {n.name: n for n in self.nodes}


def _existing(value: Any) -> tuple[tuple[str, str], ...]:
    """Accept (servo_id, node) pairs; sorted so the request's meaning ignores their order."""
    return tuple(sorted((str(s), str(n)) for s, n in value))


@attrs.frozen
class PlacementRequest:
    """Place `count` new servos of `project`, each needing `memory_mb` and `millicpus`.

    `existing` lists the project's current servos as (servo_id, node) pairs (for scale-up and
    recovery); they count towards spread and anti-affinity. `max_per_host` > 1 explicitly allows
    several servos of the project on one host. `survive` ("region" or "zone") accepts the result
    only if the loss of any single region (zone) could be absorbed by the others.
    """

    project: str
    count: int
    memory_mb: int
    millicpus: int
    spread: str = "region"
    existing: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_existing)
    max_per_host: int = 1
    strategy: str = "spread"
    survive: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.spread not in SPREAD_LEVELS:
            raise ValueError(f"spread must be one of {SPREAD_LEVELS}, not {self.spread!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {self.strategy!r}")
        if self.survive not in (None, "region", "zone"):
            raise ValueError(f"survive must be region, zone or None, not {self.survive!r}")
        if self.count < 0 or self.memory_mb < 0 or self.millicpus < 0 or self.max_per_host < 1:
            raise ValueError("count, memory and cpu must be >= 0 and max_per_host >= 1")


@attrs.frozen
class Decision:
    """The chosen node per new servo (in order), what is missing, and why.

    `refusals` maps each node that was not used to its reason, filled in when the decision is
    partial (the placement-failure report); `headroom` is filled when `survive` was asked.
    """

    project: str
    placements: tuple[str, ...]
    missing: int
    refusals: tuple[tuple[str, str], ...] = ()
    headroom: tuple[tuple[str, int], ...] = ()
    survive_failed: str | None = None
    considered: int = 0

    @property
    def complete(self) -> bool:
        return self.missing == 0

    def reasons(self) -> dict[str, str]:
        return dict(self.refusals)

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, reason in self.refusals:
            out[reason] = out.get(reason, 0) + 1
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "project": self.project,
            "placements": list(self.placements),
            "missing": self.missing,
            "considered": self.considered,
        }
        if self.refusals:
            body["reasons"] = self.reasons()
            body["refused_by_reason"] = self.summary()
        if self.headroom:
            body["headroom"] = dict(self.headroom)
        if self.survive_failed:
            body["survive_failed"] = self.survive_failed
        return body
