"""The simulator's heart: a virtual clock and one event heap, and nothing else.

Events are (time, sequence, callback). The sequence number makes ordering total, so two events at
the same instant always run in the order they were scheduled: with every random choice drawn from
one seeded `random.Random`, a run is a pure function of its seed and arguments (FoundationDB's
simulation, TigerBeetle's VOPR). Nothing here reads the wall clock.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
from collections.abc import Callable, Iterator

Callback = Callable[[], None]


class Engine:
    """A discrete-event loop on a virtual clock measured in seconds (floats)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Callback]] = []
        self._seq = 0
        self.events_run = 0

    def at(self, when: float, callback: Callback) -> None:
        """Run `callback` at virtual time `when` (never in the past)."""
        if when < self.now:
            when = self.now
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, callback))

    def after(self, delay: float, callback: Callback) -> None:
        self.at(self.now + max(0.0, delay), callback)

    def run_until(self, end: float, on_progress: Callable[[float], None] | None = None) -> None:
        """Run every event due before `end`, then leave the clock at `end`."""
        heap, pop = self._heap, heapq.heappop
        next_report = self.now
        while heap and heap[0][0] <= end:
            when, _, callback = pop(heap)
            self.now = when
            callback()
            self.events_run += 1
            if on_progress is not None and when >= next_report:
                on_progress(when)
                next_report = when + 1.0
        self.now = end
        if on_progress is not None:
            on_progress(end)

    def pending(self) -> int:
        return len(self._heap)


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Wrap a whole simulated run: it holds millions of long-lived objects (every agent's
    member table) and allocates small messages by the million, so at the default thresholds
    the cyclic collector re-walks that heap so often it costs a fifth of the run. Collect young
    objects less often, and the old generation never, for the run only: after a region outage
    at 10,000 agents the old generation holds some 10^8 objects, a full collection walks them
    all, and a run leaves no cyclic garbage to speak of (a 1,000-agent run peaks at the same
    memory with the collector off altogether)."""
    old = gc.get_threshold()
    gc.set_threshold(100_000, 50, 1_000_000)
    try:
        yield
    finally:
        gc.set_threshold(*old)
