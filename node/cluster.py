"""What this agent believes about the cluster, derived from gossip: peers, their capacity, the
servos each reports, and the placement view built from them.

Every agent alone writes its own gossip metadata (`build_meta`: identity, capacity, and the
version and digest of its servo inventory, within 512 bytes) and its own inventory, which
travels as deltas (`node.inventory`); the servo registry is the union of what each agent says it
runs. Reading it is pure: the recovery planner and the simulator get the same view from the same
membership.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from placement.converge import LIVE_STATES as LIVE_SERVO_STATES
from placement.converge import ServoView
from placement.model import ClusterView, NodeView, ServoRef

__all__ = ["LIVE_SERVO_STATES", "Peer", "ServoEntry", "build_meta", "cluster_view"]


class MemberLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def meta(self) -> Mapping[str, Any]: ...


@attrs.frozen
class ServoEntry:
    servo_id: str
    project: str
    node: str
    state: str
    endpoints: tuple[Mapping[str, Any], ...] = ()
    generation: int = 1
    slot: int = 0
    restarts: int = 0
    created_ms: int = 0
    last_exit: Mapping[str, Any] | None = None
    memory_mb: int = 0
    millicpus: int = 0
    ready_since_ms: int = 0  # running (and passing its health check, if any) since then
    healthy: bool | None = None  # None: no health check

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.servo_id,
            "node": self.node,
            "state": self.state,
            "healthy": self.healthy,
            "generation": self.generation,
            "slot": self.slot,
            "restarts": self.restarts,
            "last_exit": dict(self.last_exit) if self.last_exit else None,
            "endpoints": [dict(e) for e in self.endpoints],
        }

    def view(self) -> ServoView:
        return ServoView(
            self.servo_id,
            self.project,
            self.node,
            self.state,
            self.generation,
            self.slot,
            self.created_ms,
            self.ready_since_ms if self.state == "running" and self.healthy is not False else 0,
        )

    @classmethod
    def from_record(cls, node: str, r: Mapping[str, Any]) -> ServoEntry:
        """From a host's servo record (`ServoRecord.to_dict()`)."""
        return cls(
            servo_id=str(r["id"]),
            project=str(r["project"]),
            node=node,
            state=str(r["state"]),
            endpoints=tuple(r.get("endpoints", ())),
            generation=int(r.get("generation", 1)),
            slot=int(r.get("slot", 0)),
            restarts=int(r.get("restarts", 0)),
            created_ms=int(r.get("created_ms", 0)),
            last_exit=r.get("last_exit"),
            memory_mb=int(r.get("memory_mb", 0)),
            millicpus=int(r.get("millicpus", 0)),
            ready_since_ms=int(r.get("ready_since_ms", r.get("running_since_ms", 0)) or 0),
            healthy=r.get("healthy"),
        )


@attrs.frozen
class Peer:
    name: str
    status: str
    region: str
    zone: str
    addr: str
    api: str
    memory_total_mb: int
    memory_free_mb: int
    millicpus_total: int
    millicpus_free: int
    servos: tuple[ServoEntry, ...]
    runtime: str = ""
    draining: bool = False
    stopping_ms: int = 0  # set in the last words of an agent stopping gracefully
    inventory: int = 0  # the host's inventory version its servo list is as of
    digest: int = 0  # and that inventory's digest (node.inventory)

    @property
    def alive(self) -> bool:
        return self.status == "alive"

    @property
    def reachable(self) -> bool:
        """Answers requests: alive, or alive and draining."""
        return self.status in ("alive", "draining")

    def capacity(self) -> dict[str, int]:
        return {
            "memory_total_mb": self.memory_total_mb,
            "memory_free_mb": self.memory_free_mb,
            "millicpus_total": self.millicpus_total,
            "millicpus_free": self.millicpus_free,
        }

    def to_member_dict(self) -> dict[str, Any]:
        """DESIGN.md's member JSON."""
        return {
            "name": self.name,
            "status": self.status,
            "region": self.region,
            "zone": self.zone,
            "addr": self.addr,
            "api": self.api,
            "runtime": self.runtime,
            "capacity": self.capacity(),
            "servos": len(self.servos),
        }


def build_meta(
    *,
    region: str,
    zone: str,
    addr: str,
    api: str,
    runtime: str,
    capacity: Mapping[str, int],
    draining: bool = False,
    stopping_ms: int = 0,
    inventory: int = 0,
    digest: int = 0,
    servos: int = 0,
) -> dict[str, Any]:
    """This agent's own gossip metadata: what stays small whatever the host runs (its servos
    travel on the APP channel; `inv`/`dig` say which of their versions this state goes with,
    `n` how many there are, for tables that need no more)."""
    return {
        "region": region,
        "zone": zone,
        "addr": addr,
        "api": api,
        "runtime": runtime,
        "cap": [
            int(capacity["memory_total_mb"]),
            int(capacity["memory_free_mb"]),
            int(capacity["millicpus_total"]),
            int(capacity["millicpus_free"]),
        ],
        "draining": draining,
        "stopping": stopping_ms,
        "inv": inventory,
        "dig": digest,
        "n": servos,
    }


def servo_wire(s: Mapping[str, Any]) -> list[Any]:
    """A servo on the APP channel: positional, the fields peers plan and report with."""
    exit_ = s.get("last_exit")
    return [
        s["id"],
        s["project"],
        s["state"],
        [_endpoint_wire(e) for e in s.get("endpoints", ())],
        int(s.get("generation", 1)),
        int(s.get("slot", 0)),
        int(s.get("restarts", 0)),
        int(s.get("created_ms", 0)),
        [int(exit_["code"]), str(exit_["reason"]), str(exit_["at"])] if exit_ else None,
        int(s.get("memory_mb", 0)),
        int(s.get("millicpus", 0)),
        int(s.get("ready_since_ms", s.get("running_since_ms", 0)) or 0),
        s.get("healthy"),
    ]


def servo_from_wire(node: str, s: Sequence[Any]) -> ServoEntry:
    exit_ = s[8] if len(s) > 8 else None
    return ServoEntry(
        str(s[0]),
        str(s[1]),
        node,
        str(s[2]),
        tuple(_endpoint_dict(e) for e in s[3]),
        generation=int(s[4]) if len(s) > 4 else 1,
        slot=int(s[5]) if len(s) > 5 else 0,
        restarts=int(s[6]) if len(s) > 6 else 0,
        created_ms=int(s[7]) if len(s) > 7 else 0,
        last_exit={"code": int(exit_[0]), "reason": str(exit_[1]), "at": str(exit_[2])}
        if exit_
        else None,
        memory_mb=int(s[9]) if len(s) > 9 else 0,
        millicpus=int(s[10]) if len(s) > 10 else 0,
        ready_since_ms=int(s[11]) if len(s) > 11 else 0,
        healthy=None if len(s) <= 12 or s[12] is None else bool(s[12]),
    )


def _endpoint_wire(e: Mapping[str, Any]) -> list[Any]:
    return [int(e.get("container_port", 0)), str(e.get("host", "")), int(e.get("host_port", 0))]


def _endpoint_dict(raw: Sequence[Any]) -> dict[str, Any]:
    return {"container_port": raw[0], "host": raw[1], "host_port": raw[2]}


def peer_from_member(
    member: MemberLike, servos: tuple[ServoEntry, ...] = (), inventory: int = 0
) -> Peer | None:
    """None when a member's metadata is missing or malformed (a peer still joining).
    `servos` and `inventory`: the host's inventory as this agent's replica holds it, and the
    version that servo list is as of. Only the replica's: the metadata's `inv` may already
    claim a change whose delta has not arrived, and the executor's overlay drops its own
    record of a servo as soon as the row is that new (the servo was then in neither for a
    moment, and the next round created it again)."""
    meta = member.meta
    try:
        cap = meta["cap"]
        return Peer(
            name=member.name,
            status=member.status,
            region=str(meta.get("region", "default")),
            zone=str(meta.get("zone", "")),
            addr=str(meta.get("addr", "")),
            api=str(meta.get("api", "")),
            memory_total_mb=int(cap[0]),
            memory_free_mb=int(cap[1]),
            millicpus_total=int(cap[2]),
            millicpus_free=int(cap[3]),
            servos=servos,
            runtime=str(meta.get("runtime", "")),
            draining=bool(meta.get("draining", False)),
            stopping_ms=int(meta.get("stopping", 0) or 0),
            inventory=inventory,
            digest=int(meta.get("dig", 0) or 0),
        )
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def node_view(peer: Peer) -> NodeView:
    return NodeView(
        name=peer.name,
        region=peer.region,
        zone=peer.zone,
        status=peer.status,
        memory_total_mb=peer.memory_total_mb,
        memory_free_mb=peer.memory_free_mb,
        millicpus_total=peer.millicpus_total,
        millicpus_free=peer.millicpus_free,
        servos=tuple(
            ServoRef(s.project, s.servo_id) for s in peer.servos if s.state in LIVE_SERVO_STATES
        ),
    )


def cluster_view(peers: Iterable[Peer]) -> ClusterView:
    return ClusterView(nodes=tuple(node_view(p) for p in peers))


def servos_of(project: str, peers: Iterable[Peer]) -> list[ServoEntry]:
    """Every servo of a project any peer reports, alive peers' first, sorted for stable output."""
    out = [s for p in peers for s in p.servos if s.project == project]
    return sorted(out, key=lambda s: (s.servo_id, s.node))


def engine_inputs(peers: Iterable[Peer]) -> tuple[ClusterView, list[ServoView]]:
    """What the convergence engine plans from: the placement view and every servo reported."""
    peers = list(peers)
    return cluster_view(peers), [s.view() for p in peers for s in p.servos]
