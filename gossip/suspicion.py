"""Lifeguard's dynamic suspicion timeout (Dadgar et al., "Lifeguard: Local Health Awareness
for More Accurate Failure Detection", 2018, section IV-B; memberlist's suspicion.go).

A suspicion starts with the longest timeout and shrinks towards the shortest as independent
members confirm it: a real failure is seen by many quickly, a false one (a slow or briefly
stalled peer, or a suspicion raised by an unhealthy prober) is not, and the long initial
timeout gives the suspect time to refute.
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


@attrs.define
class Suspicion:
    """One open suspicion about a member.

    `k` is how many confirmations bring the timeout to its minimum (suspicion_mult - 2, and 0 in
    clusters too small to provide them). `confirmers` holds who has suspected it (the first
    suspecter included, until the k-th confirmation), so a repeated message from the same
    member does not count twice.
    """

    incarnation: int
    started_s: float
    k: int
    low_s: float
    high_s: float
    confirmers: set[str] = attrs.field(factory=set)
    confirmations: int = 0

    @property
    def deadline_s(self) -> float:
        return self.started_s + suspicion_timeout_s(
            self.confirmations, self.k, self.low_s, self.high_s
        )

    def confirm(self, member: str) -> bool:
        """Count `member`'s independent suspicion; True when it shortened the timeout."""
        if self.confirmations >= self.k:
            return False  # already at the minimum timeout: later accusers change nothing
        if member in self.confirmers:
            return False
        self.confirmers.add(member)
        self.confirmations += 1
        return True
