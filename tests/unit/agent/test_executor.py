"""The executor's view of its own recent actions: what it made and then removed before gossip
ever showed it must not linger (an agent would report, and plan around, a servo that is gone)."""

from __future__ import annotations

from typing import Any

import attrs
import trio

from node.cluster import Peer
from node.executor import Executor
from node.peers import PeerFailed
from node.projects import Project

WEB = Project("web", "shoal-servo:latest", 3, 64, 100)


def peer(name: str, region: str) -> Peer:
    return Peer(
        name, "alive", region, f"{region}-1", "", f"http://{name}", 4096, 4096, 4000, 4000, ()
    )


class FakeClient:
    """Hosts that admit everything and forget on removal; gossip (the peers list) never moves."""

    def __init__(self) -> None:
        self.hosts: dict[str, set[str]] = {}
        self.version = 0

    async def create_servo(
        self,
        node: str,
        api: str,
        spec: dict[str, Any],
        key: str | None = None,
        replaces: str | None = None,
    ) -> dict[str, Any]:
        self.hosts.setdefault(node, set()).add(spec["servo_id"])
        self.version += 1
        return {
            "id": spec["servo_id"],
            "project": spec["project"],
            "state": "running",
            "inventory": self.version,
        }

    async def remove_servo(self, node: str, api: str, servo_id: str) -> dict[str, Any]:
        if servo_id not in self.hosts.get(node, set()):
            raise PeerFailed(node, f"no servo {servo_id}", "not_found")
        self.hosts[node].discard(servo_id)
        self.version += 1
        return {"ok": True, "inventory": self.version}


async def test_a_servo_made_and_removed_before_gossip_shows_it_is_forgotten() -> None:
    client = FakeClient()
    peers = [peer("a", "eu"), peer("b", "us"), peer("c", "ap"), peer("d", "eu")]
    ex = Executor("a", lambda: peers, client, clock=trio.current_time)  # type: ignore[arg-type]
    outcome = await ex.converge(WEB)
    assert len(outcome.created) == 3 and outcome.missing == 0
    shown = {s.servo_id for p in ex.peers() for s in p.servos}
    assert shown == set().union(*client.hosts.values())  # its own creations, before gossip

    scaled = await ex.converge(Project("web", "shoal-servo:latest", 1, 64, 100))
    assert len(scaled.removed) == 2
    shown = {s.servo_id for p in ex.peers() for s in p.servos}
    assert shown == set().union(*client.hosts.values()) and len(shown) == 1
    again = await ex.converge(Project("web", "shoal-servo:latest", 1, 64, 100))
    assert again.actions == [] and again.failures == []


async def test_an_own_creation_goes_once_the_hosts_gossip_is_newer_whatever_it_says() -> None:
    """Another agent removed the servo this one made before gossip showed it: the host's newer
    inventory (without it) is the truth, and the overlay must not keep it alive."""
    client = FakeClient()
    peers = [peer("a", "eu"), peer("b", "us"), peer("c", "ap")]
    ex = Executor("a", lambda: peers, client, clock=trio.current_time)  # type: ignore[arg-type]
    await ex.converge(WEB)
    assert sum(len(p.servos) for p in ex.peers()) == 3
    newer = client.version + 1
    peers[:] = [attrs.evolve(p, inventory=newer) for p in peers]  # gossip caught up: empty
    assert sum(len(p.servos) for p in ex.peers()) == 0


async def test_metadata_claiming_a_newer_inventory_does_not_hide_a_servo_not_yet_seen() -> None:
    """The host's metadata may claim the version that holds a new servo before the delta that
    brings it: the row's servo list is as of the replica's version, and the overlay keeps the
    servo this agent made until that list is at least as new (else it is in neither, and the
    next round creates it again)."""
    from node.cluster import peer_from_member

    class Member:
        name, status = "b", "alive"
        meta = {"cap": [4096, 4096, 4000, 4000], "region": "us", "api": "http://b", "inv": 99}

    client = FakeClient()
    peers = [peer_from_member(Member(), (), inventory=0)]
    assert peers[0] is not None and peers[0].inventory == 0
    ex = Executor("a", lambda: peers, client, clock=trio.current_time)  # type: ignore[arg-type]
    await ex.converge(Project("web", "shoal-servo:latest", 1, 64, 100))
    assert [s.servo_id for p in ex.peers() for s in p.servos] == sorted(client.hosts["b"])
