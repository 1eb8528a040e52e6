"""A virtual network between simulated agents: latency per region pair with jitter, random
loss, partitions between groups, and crashed or stalled hosts.

Every decision (drop or deliver, how late) is drawn from the simulation's one seeded RNG, in the
order packets are sent, so the same seed gives the same deliveries.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import attrs

from sim.engine import Engine

Deliver = Callable[[str, str, Any], None]


@attrs.define
class LinkProfile:
    """One-way latency between two regions: base plus uniform jitter, in seconds."""

    latency_s: float
    jitter_s: float


DEFAULT_SAME_REGION = LinkProfile(0.0005, 0.0005)
DEFAULT_CROSS_REGION = LinkProfile(0.040, 0.010)


@attrs.define
class NetworkStats:
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    partitioned: int = 0
    to_down_host: int = 0
    bytes_sent: int = 0


class Network:
    def __init__(
        self,
        engine: Engine,
        rng: random.Random,
        region_of: Callable[[str], str],
        loss: float = 0.0,
        same_region: LinkProfile = DEFAULT_SAME_REGION,
        cross_region: LinkProfile = DEFAULT_CROSS_REGION,
    ) -> None:
        self.engine = engine
        self.rng = rng
        self.region_of = region_of
        self._regions: dict[str, str] = {}  # region_of, asked once per host: it never changes
        self.loss = loss
        self.same_region = same_region
        self.cross_region = cross_region
        self.links: dict[tuple[str, str], LinkProfile] = {}
        self.down: set[str] = set()
        self._group: dict[str, int] = {}  # host -> partition group; hosts in no group reach all
        self.stats = NetworkStats()
        self.bytes_by_host: dict[str, int] = {}
        self.msgs_by_host: dict[str, int] = {}
        self._deliver: Deliver | None = None

    def attach(self, deliver: Deliver) -> None:
        self._deliver = deliver

    def set_link(self, region_a: str, region_b: str, profile: LinkProfile) -> None:
        self.links[(region_a, region_b)] = profile
        self.links[(region_b, region_a)] = profile

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Hosts in different groups cannot talk; hosts in no group talk to everyone."""
        self._group = {h: i for i, g in enumerate(groups) for h in g}

    def heal(self) -> None:
        self._group = {}

    def reachable(self, src: str, dst: str) -> bool:
        gs, gd = self._group.get(src), self._group.get(dst)
        return gs is None or gd is None or gs == gd

    def _region(self, host: str) -> str:
        region = self._regions.get(host)
        if region is None:
            region = self._regions[host] = self.region_of(host)
        return region

    def _profile(self, src: str, dst: str) -> LinkProfile:
        ra, rb = self._region(src), self._region(dst)
        link = self.links.get((ra, rb))
        if link is not None:
            return link
        return self.same_region if ra == rb else self.cross_region

    def send(self, src: str, dst: str, payload: Any, size: int, reliable: bool = False) -> None:
        """Queue a packet. `reliable` (TCP-like) ignores random loss, not partitions or crashes.

        Runs for every packet of every agent (hundreds of thousands a simulated minute after
        an outage): the usual case (no partition, region known) is answered inline, and the
        arrival is a `partial`, one Python frame fewer than a lambda calling `_arrive`."""
        stats = self.stats
        stats.sent += 1
        stats.bytes_sent += size
        by_host = self.bytes_by_host
        by_host[src] = by_host.get(src, 0) + size
        by_host = self.msgs_by_host
        by_host[src] = by_host.get(src, 0) + 1
        if src in self.down:
            return
        if self._group and not self.reachable(src, dst):
            stats.partitioned += 1
            return
        if not reliable and self.loss > 0 and self.rng.random() < self.loss:
            stats.lost += 1
            return
        prof = self._profile(src, dst)
        delay = prof.latency_s + (self.rng.random() * prof.jitter_s if prof.jitter_s else 0.0)
        if dst in self.down:
            # a crashed host never comes back (`down` only grows), so the packet would be
            # dropped on arrival: dropped now, after the same draws, without an event (after
            # a region outage one packet in N goes to a lost member)
            stats.to_down_host += 1
            return
        engine = self.engine
        # `at` keeps a delay below zero at now, as `after` would
        engine.at(engine.now + delay, partial(self._arrive, src, dst, payload))

    def _arrive(self, src: str, dst: str, payload: Any) -> None:
        if dst in self.down:
            self.stats.to_down_host += 1
            return
        if self._group and not self.reachable(src, dst):  # partitioned while in flight
            self.stats.partitioned += 1
            return
        self.stats.delivered += 1
        assert self._deliver is not None, "attach() a delivery function before sending"
        self._deliver(src, dst, payload)
