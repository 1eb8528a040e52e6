"""A fleet given from outside the simulator (`shoal sim --from-cluster`, `sim.from_cluster`),
and the per-region capacity figures every run reports.

`sim.run` generates a synthetic fleet from its arguments; a `FleetLayout` replaces that with
named hosts (region, zone, capacity) and project specs, and names the region and zone the
outage scenarios take down, so the question is asked of the operator's own fleet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import attrs

from placement.converge import Desired


@attrs.frozen
class HostSpec:
    name: str
    region: str
    zone: str
    memory_mb: int
    millicpus: int


@attrs.frozen
class FleetLayout:
    hosts: tuple[HostSpec, ...]
    specs: tuple[Desired, ...]
    target_region: str  # region-outage, capacity-crunch, region-partition take this region
    target_zone: str  # zone-outage takes this zone
    source: str = ""  # where it came from (a URL), for the report
    notes: tuple[str, ...] = ()  # what was left out and why, for the report


class _HostLike(Protocol):
    name: str
    region: str
    memory_total_mb: int
    memory_free_mb: int
    millicpus_total: int
    millicpus_free: int


def region_capacity(
    hosts: Iterable[_HostLike], up: Any = lambda name: True
) -> dict[str, dict[str, int]]:
    """Per region: agents up of all, and memory/CPU of the hosts that are up, total and in use."""
    out: dict[str, dict[str, int]] = {}
    for h in hosts:
        r = out.setdefault(
            h.region,
            {
                "agents": 0,
                "agents_up": 0,
                "memory_total_mb": 0,
                "memory_used_mb": 0,
                "millicpus_total": 0,
                "millicpus_used": 0,
            },
        )
        r["agents"] += 1
        if not up(h.name):
            continue
        r["agents_up"] += 1
        r["memory_total_mb"] += h.memory_total_mb
        r["memory_used_mb"] += h.memory_total_mb - h.memory_free_mb
        r["millicpus_total"] += h.millicpus_total
        r["millicpus_used"] += h.millicpus_total - h.millicpus_free
    return dict(sorted(out.items()))


def largest_region(hosts: Sequence[HostSpec]) -> str:
    """The default outage target: the region with the most agents (ties: first by name)."""
    counts: dict[str, int] = {}
    for h in hosts:
        counts[h.region] = counts.get(h.region, 0) + 1
    return min(counts, key=lambda r: (-counts[r], r))
