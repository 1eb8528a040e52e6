"""Lifeguard's dynamic suspicion timeout (Dadgar et al., "Lifeguard: Local Health Awareness
for More Accurate Failure Detection", 2018, section IV-B; memberlist's suspicion.go).

A suspicion starts with the longest timeout and shrinks towards the shortest as independent
members confirm it: a real failure is seen by many quickly, a false one (a slow or briefly
stalled peer, or a suspicion raised by an unhealthy prober) is not, and the long initial
timeout gives the suspect time to refute.

After a region outage every survivor holds one open suspicion per lost member at once (3,333
each for 6,667 survivors in the simulator's 10,000-agent run), so a suspicion is kept small:
its bounds are one shared `SuspicionBounds` per cluster size, with the timeouts precomputed, and
its confirmers a tuple of at most k + 1 names rather than a set. Once k have confirmed (within
seconds of an outage, for nearly every lost member) who they were no longer matters: the names
give way to the bounds' one `full` tuple, shared by every suspicion at the minimum timeout.
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
    # the confirmers of every suspicion at the minimum timeout: k + 1 of them, names forgotten
    full: tuple[str, ...] = attrs.field(init=False)

    @timeouts_s.default
    def _timeouts(self) -> tuple[float, ...]:
        return tuple(
            suspicion_timeout_s(n, self.k, self.low_s, self.high_s) for n in range(self.k + 1)
        )

    @full.default
    def _full(self) -> tuple[str, ...]:
        return ("",) * (self.k + 1)


@attrs.define(eq=False, weakref_slot=False)  # 8 bytes a pair; nothing refers to one weakly
class Suspicion:
    """One open suspicion about member `name` (at the incarnation of its record: a member stays
    suspect only at the incarnation it was suspected at; 8 bytes a pair kept out of 22 million).

    `confirmers` holds who has suspected it, the first suspecter first, so a repeated
    message from the same member does not count twice; at k + 1 (the k-th confirmation brings
    the timeout to its minimum, and later accusers change nothing) it becomes `bounds.full`.
    """

    name: str
    started_s: float
    bounds: SuspicionBounds
    confirmers: tuple[str, ...]

    @property
    def confirmations(self) -> int:
        return len(self.confirmers) - 1

    @property
    def earliest_s(self) -> float:
        """The deadline once k have confirmed: no deadline is sooner."""
        return self.started_s + self.bounds.timeouts_s[-1]

    @property
    def deadline_s(self) -> float:
        return self.started_s + self.bounds.timeouts_s[len(self.confirmers) - 1]

    def confirm(self, member: str) -> bool:
        """Count `member`'s independent suspicion; True when it shortened the timeout."""
        if len(self.confirmers) > self.bounds.k:
            return False  # already at the minimum timeout: later accusers change nothing
        if member in self.confirmers:
            return False
        if len(self.confirmers) == self.bounds.k:
            self.confirmers = self.bounds.full
        else:
            self.confirmers = (*self.confirmers, member)
        return True
