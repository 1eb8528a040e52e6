"""The membership view: who this agent believes is in the cluster, in what state, running what,
and what it tells the others about itself.

Statuses are the engine's (`placement.converge.effective_status`): a draining peer is
`draining`, a peer that announced a graceful stop and went quiet is `restarting` for the
restart grace, so nobody replaces its servos while it reboots. This agent's own draining flag
applies to its own row at once, without waiting for gossip to carry it back.

Servo lists come from the inventory replica (`node.inventory`), fed by deltas on gossip's APP
channel; member metadata says only which inventory version and digest a host is at, and
`repair` pulls a host's whole inventory when this agent's copy stays behind that.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs

from node.cluster import Peer, build_meta, peer_from_member
from node.inventory import ClusterDelegate, InventoryReplica, OwnInventory, key_of
from placement.converge import effective_status

DEFAULT_RESTART_GRACE_S = 60.0
REPAIR_INTERVAL_S = 0.5
# Metadata that changed only with the inventory (free capacity, inventory version and digest)
# goes out at most this often: each servo change is already a delta, and every metadata change
# is an ALIVE every agent relays, sent three times as often as other news (own news). In a
# stream of deploys that doubled the gossip each servo change cost everyone.
INVENTORY_META_GAP_S = 1.0
_INVENTORY_FIELDS = ("inv", "dig", "n")


def wall_ms() -> int:
    return int(time.time() * 1000)


class GossipLike(Protocol):
    def members(self) -> list[Any]: ...
    def set_meta(self, meta: dict[str, Any]) -> None: ...
    def broadcast_app(self, key: str, payload: Any) -> None: ...
    async def pull_app_state(self, name: str) -> bool: ...


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
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.me = me
        self.replica = InventoryReplica()
        self.own = OwnInventory(me.name, self.replica)
        self.delegate = ClusterDelegate(self.own)
        self._monotonic_s = monotonic_s
        self.gossip = gossip
        self.host = host
        self._draining = draining
        self.restart_grace_ms = int(restart_grace_s * 1000)
        self._clock_ms = clock_ms
        self.stopping_ms = 0
        self._last_meta: dict[str, Any] = {}
        self._parsed: dict[str, tuple[Any, str, Any, Peer]] = {}
        self._meta_at = float("-inf")

    @property
    def name(self) -> str:
        return self.me.name

    def peers(self) -> list[Peer]:
        """Every known peer with the status convergence uses, sorted by name."""
        now = self._clock_ms()
        out = []
        cache: dict[str, tuple[Any, str, Any, Peer]] = {}
        for m in self.gossip.members():
            servos = self.replica.servos(m.name)
            hit = self._parsed.get(m.name)
            # the gossip core replaces a member's metadata dict when it changes, and the
            # replica its servo tuple: the same objects mean the same peer, parsed once
            if hit is not None and hit[0] is m.meta and hit[1] == m.status and hit[2] is servos:
                p: Peer | None = hit[3]
            else:
                p = peer_from_member(m, servos, self.replica.version(m.name))
            if p is None:
                continue
            cache[m.name] = (m.meta, m.status, servos, p)
            draining = p.draining or (p.name == self.name and self._draining())
            status = effective_status(
                p.status,
                draining=draining,
                stopping_ms=p.stopping_ms,
                now_ms=now,
                grace_ms=self.restart_grace_ms,
            )
            out.append(
                p
                if (status, draining) == (p.status, p.draining)
                else attrs.evolve(p, status=status, draining=draining)
            )
        self._parsed = cache
        return sorted(out, key=lambda p: p.name)

    def members_by_status(self) -> Mapping[str, int]:
        return Counter(str(m.status) for m in self.gossip.members())

    def publish(self) -> None:
        """Put this agent's current state into its gossip metadata (if it changed)."""
        deltas = self.own.publish(
            self._monotonic_s(), self.host.servo_records(), self.host.inventory_version
        )
        for payload in deltas:  # before the metadata that claims them: fewer needless pulls
            self.gossip.broadcast_app(key_of(payload), payload)
        meta = build_meta(
            region=self.me.region,
            zone=self.me.zone,
            addr=self.me.addr,
            api=self.me.api,
            runtime=self.me.runtime,
            capacity=self.host.capacity_snapshot(),
            draining=self._draining(),
            stopping_ms=self.stopping_ms,
            inventory=self.own.version,
            digest=self.own.digest,
            servos=self.own.count,
        )
        if meta == self._last_meta:
            return
        now = self._monotonic_s()
        if _inventory_only(self._last_meta, meta) and now - self._meta_at < INVENTORY_META_GAP_S:
            return  # the next publish (a change, or the refresh every 2 s) carries it
        self._last_meta, self._meta_at = meta, now
        self.gossip.set_meta(meta)

    def repair_round(self) -> list[str]:
        """Note every alive member's claimed inventory version; the hosts to pull now."""
        now = self._monotonic_s()
        alive = set()
        for m in self.gossip.members():
            if m.name == self.name:
                continue
            if m.status == "alive":
                alive.add(m.name)
            self.replica.note_meta(now, m.name, m.meta)
        return self.replica.due_pulls(now, alive.__contains__)

    async def repair(self) -> None:
        """Pull the whole inventory of each host whose copy here stayed behind its claims."""
        for host in self.repair_round():
            await self.gossip.pull_app_state(host)

    def announce_stop(self) -> None:
        """Last words of a graceful stop: peers hold this agent's servos for the grace."""
        self.stopping_ms = self._clock_ms()
        self.publish()


def _inventory_only(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Did only what follows the inventory change (free capacity, version, digest, count)?"""
    if not old or old.keys() != new.keys():
        return False
    for key in new:
        if key in _INVENTORY_FIELDS:
            continue
        if key == "cap":
            if (old[key][0], old[key][2]) != (new[key][0], new[key][2]):  # totals
                return False
        elif old[key] != new[key]:
            return False
    return True
