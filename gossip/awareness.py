"""Lifeguard's local health awareness (LHA, section IV-A): how much this agent distrusts itself.

When this agent misses acks it should have got (its probes fail though the peers it asked to
help, via nacks, show the network works) or has to refute suspicions about itself, the fault
is likely its own: it is overloaded or stalled. Its score rises, and its probe interval and
timeouts stretch by (score + 1), so a sick agent stops accusing healthy peers. Successful
probes bring the score back down.
"""

from __future__ import annotations

import attrs


@attrs.define
class Awareness:
    max_score: int = 8  # the multiplier tops out at max_score (memberlist: AwarenessMaxMultiplier)
    score: int = 0
    enabled: bool = True

    def apply(self, delta: int) -> int:
        if self.enabled:
            self.score = min(self.max_score - 1, max(0, self.score + delta))
        return self.score

    def scale(self, duration_s: float) -> float:
        return duration_s * (self.score + 1)
