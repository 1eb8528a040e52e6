"""Lifeguard's dynamic suspicion timeout (Dadgar et al., "Lifeguard: Local Health Awareness
for More Accurate Failure Detection", 2018, section IV-B; memberlist's suspicion.go).

A suspicion starts with the longest timeout and shrinks towards the shortest as independent
members confirm it: a real failure is seen by many quickly, a false one (a slow or briefly
stalled peer, or a suspicion raised by an unhealthy prober) is not, and the long initial
timeout gives the suspect time to refute.

After a region outage every survivor holds one open suspicion per lost member at once (3,333
each for 6,667 survivors in the simulator's 10,000-agent run), so a suspicion is kept small:
its bounds are one shared `SuspicionBounds` per cluster size, with the timeouts precomputed, and
its confirmers a tuple of at most k + 1 names rather than a set.
"""

from __future__ import annotations

import math

import attrs


def suspicion_bounds_s(
    suspicion_mult: int, max_timeout_mult: int, members: int, probe_interval_s: float
) -> tuple[float, float]:
    """(min, max) timeout: min = mult x max(1, log10(N)) x probe interval, max = 6 x min."""
    node_scale = max(1.0, math.log10(max(1, members)))
    low = suspicion_mult * node_scale * probe_interval_s
    return low, low * max_timeout_mult


def suspicion_timeout_s(confirmations: int, k: int, low: float, high: float) -> float:
    """Timeout after `confirmations` independent confirmations out of `k` expected.

    timeout = max(min, max - (max - min) * log(n + 1) / log(k + 1)): the first confirmations
    cut the most, and after k the timeout is the minimum.
    """
    if k < 1:
        return low
    frac = math.log(confirmations + 1) / math.log(k + 1)
    return max(low, high - (high - low) * frac)


@attrs.frozen
class SuspicionBounds:
    """What every suspicion started at one cluster size shares: `k` confirmations bring the
    timeout from `high_s` to `low_s`; `timeouts_s[n]` is the timeout after n of them."""

    k: int
    low_s: float
    high_s: float
    timeouts_s: tuple[float, ...] = attrs.field(init=False)

    @timeouts_s.default
    def _timeouts(self) -> tuple[float, ...]:
        return tuple(
            suspicion_timeout_s(n, self.k, self.low_s, self.high_s) for n in range(self.k + 1)
        )


@attrs.define(eq=False)
class Suspicion:
    """One open suspicion about member `name` at `incarnation`.

    `confirmers` holds who has suspected it, the first suspecter first; it stops growing at
    k + 1 names (the k-th confirmation brings the timeout to its minimum), so a repeated
    message from the same member does not count twice.
    """

    name: str
    incarnation: int
    started_s: float
    bounds: SuspicionBounds
    confirmers: tuple[str, ...]

    @property
    def confirmations(self) -> int:
        return len(self.confirmers) - 1

    @property
    def deadline_s(self) -> float:
        return self.started_s + self.bounds.timeouts_s[len(self.confirmers) - 1]

    def confirm(self, member: str) -> bool:
        """Count `member`'s independent suspicion; True when it shortened the timeout."""
        if len(self.confirmers) > self.bounds.k:
            return False  # already at the minimum timeout: later accusers change nothing
        if member in self.confirmers:
            return False
        self.confirmers = (*self.confirmers, member)
        return True
