"""Hybrid logical clock (Kulkarni et al., 2014) for last-writer-wins on project specs.

A timestamp is (wall_ms, counter, node): it follows physical time when clocks agree and still
orders causally related writes when they do not, so a spec written after seeing another always
wins over it. The node name breaks exact ties, identically on every agent. Pure: the caller passes
the physical time in.
"""

from __future__ import annotations

import attrs


@attrs.frozen(order=True)
class Timestamp:
    wall_ms: int
    counter: int
    node: str

    def to_wire(self) -> list[object]:
        return [self.wall_ms, self.counter, self.node]

    @classmethod
    def from_wire(cls, raw: object) -> Timestamp:
        if (
            not isinstance(raw, list | tuple)
            or len(raw) != 3
            or not isinstance(raw[0], int)
            or not isinstance(raw[1], int)
            or not isinstance(raw[2], str)
        ):
            raise ValueError(f"not an HLC timestamp: {raw!r}")
        return cls(raw[0], raw[1], raw[2])


ZERO = Timestamp(0, 0, "")


@attrs.define
class HybridClock:
    node: str
    last: Timestamp = ZERO

    def now(self, physical_ms: int) -> Timestamp:
        """A timestamp for a local write, later than anything this clock has seen."""
        if physical_ms > self.last.wall_ms:
            self.last = Timestamp(physical_ms, 0, self.node)
        else:
            self.last = Timestamp(self.last.wall_ms, self.last.counter + 1, self.node)
        return self.last

    def observe(self, remote: Timestamp, physical_ms: int) -> None:
        """Advance past a timestamp received from a peer (so our next write orders after it)."""
        wall = max(physical_ms, remote.wall_ms, self.last.wall_ms)
        if wall == self.last.wall_ms == remote.wall_ms:
            counter = max(self.last.counter, remote.counter) + 1
        elif wall == self.last.wall_ms:
            counter = self.last.counter + 1
        elif wall == remote.wall_ms:
            counter = remote.counter + 1
        else:
            counter = 0
        self.last = Timestamp(wall, counter, self.node)
