"""What an agent tells the cluster about itself: each servo change as a delta at once, its
metadata only when it means something new, and inventory-only metadata at most once a second."""

from __future__ import annotations

from typing import Any

from node.membership import INVENTORY_META_GAP_S, Identity, MembershipView


class FakeGossip:
    def __init__(self) -> None:
        self.metas: list[dict[str, Any]] = []
        self.apps: list[tuple[str, Any]] = []

    def members(self) -> list[Any]:
        return []

    def set_meta(self, meta: dict[str, Any]) -> None:
        self.metas.append(meta)

    def broadcast_app(self, key: str, payload: Any) -> None:
        self.apps.append((key, payload))

    async def pull_app_state(self, name: str) -> bool:
        return False


class FakeHost:
    def __init__(self) -> None:
        self.inventory_version = 0
        self.records: list[dict[str, Any]] = []

    def capacity_snapshot(self) -> dict[str, int]:
        used = sum(int(r["memory_mb"]) for r in self.records)
        return {
            "memory_total_mb": 1024,
            "memory_free_mb": 1024 - used,
            "millicpus_total": 1000,
            "millicpus_free": 1000,
        }

    def servo_records(self) -> list[dict[str, Any]]:
        return self.records

    def add(self, sid: str) -> None:
        self.inventory_version += 1
        self.records.append(
            {"id": sid, "project": "p", "state": "running", "memory_mb": 64, "millicpus": 10}
        )


def view() -> tuple[MembershipView, FakeGossip, FakeHost, list[float], list[bool]]:
    clock = [100.0]
    draining = [False]
    gossip, host = FakeGossip(), FakeHost()
    me = Identity("a1", "eu", "eu-a", "127.0.0.1:7946", "http://127.0.0.1:7070", "fake")
    v = MembershipView(me, gossip, host, lambda: draining[0], monotonic_s=lambda: clock[0])
    return v, gossip, host, clock, draining


def test_every_servo_change_is_a_delta_at_once_and_metadata_follows_at_most_once_a_second() -> None:
    v, gossip, host, clock, _ = view()
    v.publish()
    assert len(gossip.metas) == 1
    clock[0] += 5
    host.add("p-1-0-aa")
    v.publish()
    assert len(gossip.apps) == 1 and len(gossip.metas) == 2  # a first change: at once
    for i in range(5):
        clock[0] += 0.1
        host.add(f"p-1-{i + 1}-aa")
        v.publish()
    assert len(gossip.apps) == 6  # every change as a delta
    assert len(gossip.metas) == 2  # the metadata waits
    clock[0] += INVENTORY_META_GAP_S
    v.publish()  # the refresh: the newest state, once
    assert len(gossip.metas) == 3
    assert gossip.metas[-1]["n"] == 6
    assert gossip.metas[-1]["inv"] == v.own.version
    v.publish()
    assert len(gossip.metas) == 3  # nothing new


def test_a_change_that_is_not_the_inventory_goes_out_at_once() -> None:
    v, gossip, host, _clock, draining = view()
    v.publish()
    host.add("p-1-0-aa")
    v.publish()
    assert len(gossip.metas) == 1  # an inventory change within the second waits
    host.add("p-1-1-aa")
    draining[0] = True
    v.publish()
    assert len(gossip.metas) == 2
    assert gossip.metas[-1]["n"] == 2
    assert gossip.metas[-1]["draining"] is True
    v.announce_stop()
    assert gossip.metas[-1]["stopping"] > 0
