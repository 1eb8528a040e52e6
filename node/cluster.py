"""What this agent believes about the cluster, derived from gossip: peers, their capacity, the
servos each reports, and the placement view built from them.

Every agent alone writes its own gossip metadata (`build_meta`), so the servo registry is the
union of what each agent says it runs. Reading it is pure: the recovery planner and the simulator
get the same view from the same membership.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from placement.model import ClusterView, NodeView, ServoRef

LIVE_SERVO_STATES = frozenset({"starting", "running"})


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.servo_id,
            "node": self.node,
            "state": self.state,
            "endpoints": [dict(e) for e in self.endpoints],
        }


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
    specs_digest: str = ""
    runtime: str = ""
    draining: bool = False

    @property
    def alive(self) -> bool:
        return self.status == "alive"

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
    name: str,
    region: str,
    zone: str,
    addr: str,
    api: str,
    runtime: str,
    capacity: Mapping[str, int],
    servos: Iterable[Mapping[str, Any]],
    specs_digest: str,
    draining: bool = False,
) -> dict[str, Any]:
    """This agent's own gossip metadata. Servo records are trimmed to what peers need."""
    return {
        "name": name,
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
        "servos": [
            [s["id"], s["project"], s["state"], [_endpoint_wire(e) for e in s.get("endpoints", ())]]
            for s in servos
        ],
        "specs": specs_digest,
        "draining": draining,
    }


def _endpoint_wire(e: Mapping[str, Any]) -> list[Any]:
    return [int(e.get("container_port", 0)), str(e.get("host", "")), int(e.get("host_port", 0))]


def _endpoint_dict(raw: Sequence[Any]) -> dict[str, Any]:
    return {"container_port": raw[0], "host": raw[1], "host_port": raw[2]}


def peer_from_member(member: MemberLike) -> Peer | None:
    """None when a member's metadata is missing or malformed (a peer still joining)."""
    meta = member.meta
    try:
        cap = meta["cap"]
        servos = tuple(
            ServoEntry(
                str(s[0]),
                str(s[1]),
                member.name,
                str(s[2]),
                tuple(_endpoint_dict(e) for e in s[3]),
            )
            for s in meta.get("servos", ())
        )
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
            specs_digest=str(meta.get("specs", "")),
            runtime=str(meta.get("runtime", "")),
            draining=bool(meta.get("draining", False)),
        )
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def peers_from_members(members: Iterable[MemberLike]) -> list[Peer]:
    peers = [p for p in (peer_from_member(m) for m in members) if p is not None]
    return sorted(peers, key=lambda p: p.name)


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
