"""The servo inventory replicated by deltas: receivers converge whatever the order, notice a
lost delta from the digest, and repair by pulling the whole inventory."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.core import check_meta
from gossip.messages import META_MAX_BYTES, MetaTooLarge
from gossip.wire import encoded_size
from node.cluster import build_meta, servo_from_wire
from node.inventory import (
    META_CLAIM_GRACE_S,
    PULL_GRACE_S,
    ClusterDelegate,
    InventoryReplica,
    OwnInventory,
    key_of,
)


def record(sid: str, state: str = "running", restarts: int = 0) -> dict[str, Any]:
    return {
        "id": sid,
        "project": sid.split("-")[0],
        "state": state,
        "endpoints": [{"container_port": 8080, "host": "10.0.0.1", "host_port": 30000}],
        "generation": 1,
        "slot": 0,
        "restarts": restarts,
        "created_ms": 1,
        "memory_mb": 64,
        "millicpus": 100,
    }


def host_with(n: int) -> tuple[OwnInventory, dict[str, dict[str, Any]]]:
    own = OwnInventory("h1", InventoryReplica())
    return own, {f"p{i}-1-0-abcd": record(f"p{i}-1-0-abcd") for i in range(n)}


def receiver() -> ClusterDelegate:
    return ClusterDelegate(OwnInventory("r", InventoryReplica()))


def test_publish_yields_one_delta_per_change_and_none_when_nothing_changed() -> None:
    own, records = host_with(3)
    first = own.publish(0.0, records.values(), 0)
    assert [d[4] for d in first] == sorted(records)
    assert own.publish(0.1, records.values(), 0) == []
    records["p1-1-0-abcd"] = record("p1-1-0-abcd", state="restarting", restarts=1)
    del records["p2-1-0-abcd"]
    second = own.publish(0.2, records.values(), 0)
    assert [(d[4], d[5] is None) for d in second] == [("p1-1-0-abcd", False), ("p2-1-0-abcd", True)]
    assert second[1][2] > second[0][2] > first[-1][2]  # versions only grow


def test_versions_never_fall_below_the_hosts_counter() -> None:
    """The placer compares the version in a host's metadata with the one its answer carried."""
    own, records = host_with(1)
    own.publish(0.0, records.values(), 5_000)
    assert own.version >= 5_000
    own.publish(0.1, records.values(), 9_000)  # no visible change, a newer host counter
    assert own.version < 9_000  # no version without a delta: peers would see a gap and pull
    records["p0-1-0-abcd"] = record("p0-1-0-abcd", restarts=1)
    (delta,) = own.publish(0.2, records.values(), 9_000)
    assert delta[2] == own.version >= 9_000


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 25))
def test_any_delivery_order_converges_to_the_hosts_digest(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    own, records = host_with(4)
    deltas = own.publish(0.0, records.values(), 0)
    for step in range(steps):
        sid = f"p{rng.randrange(6)}-1-0-abcd"
        if sid in records and rng.random() < 0.3:
            del records[sid]
        else:
            records[sid] = record(sid, restarts=step + 1)
        deltas += own.publish(float(step), records.values(), 0)
    rng.shuffle(deltas)
    r = receiver()
    for d in deltas:
        r.notify(1.0, d)
    inv = r.replica.hosts["h1"]
    assert inv.digest == own.digest
    assert {s.servo_id for s in r.replica.servos("h1")} == set(records)
    r.replica.note_claim(2.0, "h1", own.version, own.digest)
    assert r.replica.consistent("h1")
    assert r.replica.due_pulls(100.0, lambda _h: True) == []


def test_a_lost_delta_is_noticed_and_repaired_by_a_pull() -> None:
    own, records = host_with(3)
    deltas = own.publish(0.0, records.values(), 0)
    r = receiver()
    for d in deltas[:1] + deltas[2:]:  # the middle one is lost
        assert r.notify(10.0, d)
    assert not r.replica.consistent("h1")
    assert r.replica.due_pulls(10.0 + PULL_GRACE_S / 2, lambda _h: True) == []  # maybe reordered
    assert r.replica.due_pulls(10.0 + PULL_GRACE_S, lambda _h: True) == ["h1"]
    r.merge_remote_state(12.0, "h1", {"i": own.full_state()}, False)
    assert r.replica.consistent("h1")
    assert {s.servo_id for s in r.replica.servos("h1")} == set(records)
    # the lost delta arriving late changes nothing: the whole inventory is newer
    assert r.notify(13.0, deltas[1]) is False
    assert r.replica.hosts["h1"].digest == own.digest


def test_a_late_delta_within_the_grace_closes_the_gap_without_a_pull() -> None:
    own, records = host_with(3)
    deltas = own.publish(0.0, records.values(), 0)
    r = receiver()
    r.notify(0.0, deltas[0])
    r.notify(0.0, deltas[2])
    r.notify(0.5, deltas[1])
    assert r.replica.consistent("h1")
    assert r.replica.due_pulls(60.0, lambda _h: True) == []


def test_metadata_ahead_of_the_copy_asks_for_a_pull_of_a_reachable_host_only() -> None:
    own, records = host_with(2)
    own.publish(0.0, records.values(), 0)  # every delta lost
    r = receiver()
    r.replica.note_claim(0.0, "h1", own.version, own.digest)
    assert r.replica.due_pulls(5.0, lambda _h: False) == []  # dead: nobody to ask
    assert r.replica.due_pulls(20.0, lambda _h: True) == ["h1"]


def test_a_stale_whole_inventory_does_not_undo_newer_deltas() -> None:
    own, records = host_with(2)
    r = receiver()
    for d in own.publish(0.0, records.values(), 0):
        r.notify(0.0, d)
    old_state = own.full_state()
    records["p9-1-0-abcd"] = record("p9-1-0-abcd")
    for d in own.publish(1.0, records.values(), 0):
        r.notify(1.0, d)
    r.merge_remote_state(2.0, "h1", {"i": old_state}, False)
    assert "p9-1-0-abcd" in {s.servo_id for s in r.replica.servos("h1")}


def test_only_the_host_itself_is_believed_about_its_whole_inventory() -> None:
    own, records = host_with(2)
    own.publish(0.0, records.values(), 0)
    r = receiver()
    r.merge_remote_state(0.0, "mallory", {"i": own.full_state()}, False)
    assert r.replica.servos("h1") == ()


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        ["i"],
        ["i", "h1", "x", 0, "s", None],
        ["i", 5, 1, 0, "s", None],
        ["i", "h1", 1, 0, "s", ["only-id"]],
        ["s", "not-a-dict"],
        ["z", 1, 2],
        {"i": 1},
    ],
)
def test_malformed_payloads_are_dropped_and_counted(payload: Any) -> None:
    r = receiver()
    assert r.notify(0.0, payload) is False
    assert sum(r.replica.counters.values()) == 1


def test_own_news_relayed_back_is_not_news() -> None:
    own, records = host_with(1)
    d = ClusterDelegate(own)
    for payload in own.publish(0.0, records.values(), 0):
        assert d.notify(0.0, payload) is False


def test_a_newer_change_of_a_servo_replaces_the_older_one_in_the_queue() -> None:
    own, records = host_with(1)
    first = own.publish(0.0, records.values(), 0)[0]
    records["p0-1-0-abcd"] = record("p0-1-0-abcd", restarts=1)
    second = own.publish(1.0, records.values(), 0)[0]
    assert key_of(first) == key_of(second)
    assert key_of(["s", {"name": "web"}]) != key_of(first)


def test_metadata_stays_small_whatever_the_host_runs() -> None:
    own, records = host_with(500)
    own.publish(0.0, records.values(), 0)
    meta = build_meta(
        region="eu-west-with-a-long-name",
        zone="eu-west-with-a-long-name-zone-b",
        addr="203.0.113.250:7946",
        api="http://203.0.113.250:7070",
        runtime="docker",
        capacity={
            "memory_total_mb": 1 << 40,
            "memory_free_mb": 1 << 40,
            "millicpus_total": 1 << 30,
            "millicpus_free": 1 << 30,
        },
        draining=True,
        stopping_ms=1 << 42,
        inventory=own.version,
        digest=own.digest,
        servos=own.count,
    )
    check_meta(meta)
    assert encoded_size([meta]) <= META_MAX_BYTES
    with pytest.raises(MetaTooLarge, match="512"):
        check_meta({**meta, "region": "x" * 600})


def test_a_push_pull_with_a_differing_spec_registry_asks_for_a_pull() -> None:
    r = receiver()
    r.spec_digest = lambda: "aaaa"
    asked: list[tuple[str, str]] = []
    r.on_spec_digest = lambda peer, digest: asked.append((peer, digest))
    r.merge_remote_state(0.0, "h1", {"i": None, "s": "aaaa"}, False)
    assert asked == []
    r.merge_remote_state(0.0, "h1", {"i": None, "s": "bbbb"}, False)
    assert asked == [("h1", "bbbb")]
    assert r.local_state(False)["s"] == "aaaa"


@pytest.mark.parametrize("state", [None, [], "x", {"i": 5}, {"i": ["i", "h1", 1, [["s", 1]]]}])
def test_a_malformed_push_pull_state_is_dropped_and_counted(state: Any) -> None:
    r = receiver()
    r.merge_remote_state(0.0, "h1", state, False)
    assert sum(r.replica.counters.values()) == 1
    assert r.replica.servos("h1") == ()


def test_a_duplicate_delta_is_refused_before_its_record_is_parsed() -> None:
    own, records = host_with(1)
    (delta,) = own.publish(0.0, records.values(), 0)
    r = receiver()
    assert r.notify(0.0, delta)
    garbled = [*delta[:5], ["not", "a", "record"]]  # same version: never looked at
    assert r.notify(0.1, garbled) is False
    assert r.replica.counters == {}


def test_replicas_preloaded_with_shared_records_share_each_change_and_never_write_it() -> None:
    """The simulator's many observers: a shared record is copied on the first change, and a
    second replica applying the same change moves to that same copy (one record per host and
    version, not one per observer); the preloaded record itself is never changed."""
    own, records = host_with(2)
    deltas = own.publish(0.0, records.values(), 0)
    seed = InventoryReplica()
    for d in deltas:
        seed.apply_delta(0.0, "h1", d[2], d[3], d[4], None if d[5] is None else _entry(d))
    base = seed.hosts["h1"]
    base.shared = True
    before = (base.version, base.digest, dict(base.servos))
    a, b = receiver(), receiver()
    a.replica.preload({"h1": base})
    b.replica.preload({"h1": base})
    assert a.replica.servos("h1") is b.replica.servos("h1")
    records["p2-1-0-abcd"] = record("p2-1-0-abcd")
    (delta,) = own.publish(1.0, records.values(), 0)
    assert a.notify(1.0, delta) and b.notify(1.0, delta)
    assert (base.version, base.digest, dict(base.servos)) == before
    assert a.replica.get("h1") is b.replica.get("h1") is not base
    assert a.replica.servos("h1") is b.replica.servos("h1")
    assert {s.servo_id for s in a.replica.servos("h1")} == set(records)
    a.replica.note_claim(1.0, "h1", own.version, own.digest)
    assert a.replica.consistent("h1")
    # a replica that missed the delta is behind the same claim, and only it
    c = receiver()
    c.replica.preload({"h1": base})
    c.replica.note_claim(1.0, "h1", own.version, own.digest)
    assert not c.replica.consistent("h1")
    assert c.replica.next_pull_at() == 1.0 + META_CLAIM_GRACE_S
    assert c.replica.due_pulls(1.0 + META_CLAIM_GRACE_S, lambda _h: True) == ["h1"]
    c.merge_remote_state(2.0, "h1", {"i": own.full_state()}, False)
    assert c.replica.consistent("h1") and c.replica.next_pull_at() is None
    assert {s.servo_id for s in c.replica.servos("h1")} == set(records)


def _entry(delta: list[Any]) -> Any:
    return servo_from_wire(delta[1], delta[5])


def test_a_claim_from_metadata_waits_longer_than_a_gap_between_deltas() -> None:
    """Metadata claims a new version as it is published and may travel ahead of the deltas it
    claims; a gap seen between deltas is a delta really missing (or reordered)."""
    own = OwnInventory("h1", InventoryReplica())
    d1, d2 = (
        own.publish(0.0, [record("s1")], 0)[0],
        own.publish(0.0, [record("s1"), record("s2")], 0)[0],
    )
    meta_only = receiver()
    meta_only.replica.note_claim(10.0, "h1", own.version, own.digest)
    assert meta_only.replica.next_pull_at() == 10.0 + META_CLAIM_GRACE_S
    meta_only.notify(11.0, d1)  # still behind; a delta gap now: the earlier deadline wins
    meta_only.notify(11.0, d2)
    assert meta_only.replica.consistent("h1") and meta_only.replica.next_pull_at() is None
    gap = receiver()
    gap.notify(10.0, d2)  # d1 missing: its digest does not match yet
    assert gap.replica.next_pull_at() == 10.0 + PULL_GRACE_S
    gap.replica.note_claim(10.5, "h1", own.version, own.digest)  # never pushes it later
    assert gap.replica.next_pull_at() == 10.0 + PULL_GRACE_S
