"""The membership view: who this agent believes is in the cluster, in what state, running what,
and what it tells the others about itself.

Statuses are the engine's (`placement.converge.effective_status`): a draining peer is
`draining`, a peer that announced a graceful stop and went quiet is `restarting` for the
restart grace, so nobody replaces its servos while it reboots. This agent's own draining flag
applies to its own row at once, without waiting for gossip to carry it back.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs

from node.cluster import Peer, build_meta, peers_from_members
from placement.converge import effective_status

DEFAULT_RESTART_GRACE_S = 60.0


def wall_ms() -> int:
    return int(time.time() * 1000)


class GossipLike(Protocol):
    def members(self) -> list[Any]: ...
    def set_meta(self, meta: dict[str, Any]) -> None: ...


class HostLike(Protocol):
    inventory_version: int

    def capacity_snapshot(self) -> dict[str, int]: ...
    def servo_records(self) -> list[dict[str, Any]]: ...


@attrs.define(eq=False)
class Identity:
    """What this agent says about itself besides capacity and servos."""

    name: str
    region: str
    zone: str
    addr: str
    api: str
    runtime: str


class MembershipView:
    def __init__(
        self,
        me: Identity,
        gossip: GossipLike,
        host: HostLike,
        draining: Callable[[], bool],
        restart_grace_s: float = DEFAULT_RESTART_GRACE_S,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.me = me
        self.gossip = gossip
        self.host = host
        self._draining = draining
        self.restart_grace_ms = int(restart_grace_s * 1000)
        self._clock_ms = clock_ms
        self.stopping_ms = 0
        self._last_meta: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self.me.name

    def peers(self) -> list[Peer]:
        """Every known peer with the status convergence uses, sorted by name."""
        now = self._clock_ms()
        out = []
        for p in peers_from_members(self.gossip.members()):
            draining = p.draining or (p.name == self.name and self._draining())
            status = effective_status(
                p.status,
                draining=draining,
                stopping_ms=p.stopping_ms,
                now_ms=now,
                grace_ms=self.restart_grace_ms,
            )
            out.append(attrs.evolve(p, status=status, draining=draining))
        return out

    def members_by_status(self) -> Mapping[str, int]:
        return Counter(str(m.status) for m in self.gossip.members())

    def publish(self) -> None:
        """Put this agent's current state into its gossip metadata (if it changed)."""
        meta = build_meta(
            name=self.me.name,
            region=self.me.region,
            zone=self.me.zone,
            addr=self.me.addr,
            api=self.me.api,
            runtime=self.me.runtime,
            capacity=self.host.capacity_snapshot(),
            servos=self.host.servo_records(),
            draining=self._draining(),
            stopping_ms=self.stopping_ms,
            inventory=self.host.inventory_version,
        )
        if meta != self._last_meta:
            self._last_meta = meta
            self.gossip.set_meta(meta)

    def announce_stop(self) -> None:
        """Last words of a graceful stop: peers hold this agent's servos for the grace."""
        self.stopping_ms = self._clock_ms()
        self.publish()
