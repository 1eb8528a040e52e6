"""The event journal: monotonic ids that survive a restart, a bounded ring, resumable reads,
and fan-out that never blocks on a slow subscriber."""

from __future__ import annotations

import pytest
import trio

from node.event_diff import MemberSnap, Snapshot
from node.events import (
    MAX_SUBSCRIBERS,
    SUBSCRIBER_BUFFER,
    ClusterWatcher,
    EventJournal,
    TooManySubscribers,
)


def journal(first_id: int = 100, capacity: int = 10) -> EventJournal:
    return EventJournal(capacity=capacity, clock_ms=lambda: 1_764_000_000_123, first_id=first_id)


def test_ids_grow_by_one_and_events_render_as_json() -> None:
    j = journal()
    a = j.emit("member.dead", "b1 is dead", node="b1")
    b = j.emit("servo.moved", "moved", servo="s2")
    assert (a.id, b.id, j.last_id) == (100, 101, 101)
    assert a.to_dict() == {
        "id": 100,
        "at": "2025-11-24T16:00:00.123Z",
        "kind": "member.dead",
        "text": "b1 is dead",
        "node": "b1",
    }


def test_a_restarted_agent_numbers_above_its_previous_run() -> None:
    first = EventJournal(clock_ms=lambda: 5_000)
    for _ in range(3):
        first.emit("x.y", "t")
    second = EventJournal(clock_ms=lambda: 6_000)  # a second later
    assert second.emit("x.y", "t").id > first.last_id


def test_the_ring_keeps_the_newest_capacity_events() -> None:
    j = journal(capacity=3)
    for i in range(5):
        j.emit("x.y", str(i))
    assert [e.text for e in j.since()] == ["2", "3", "4"]


def test_since_resumes_after_an_id_and_limits_to_the_newest() -> None:
    j = journal()
    for i in range(5):
        j.emit("x.y", str(i))
    assert [e.id for e in j.since(102)] == [103, 104]
    assert [e.id for e in j.since(104)] == []
    assert [e.id for e in j.since(None, limit=2)] == [103, 104]
    # an id beyond the newest is a client of an earlier run of this agent: it gets everything
    assert [e.id for e in j.since(10_000)] == [100, 101, 102, 103, 104]


async def test_a_subscriber_gets_the_backlog_then_live_events_nothing_lost() -> None:
    j = journal()
    j.emit("x.y", "old")
    j.emit("x.y", "seen-already")
    with j.subscribe(after_id=100) as (backlog, channel):
        assert [e.text for e in backlog] == ["seen-already"]
        j.emit("x.y", "live")
        assert (await channel.receive()).text == "live"
    assert j.subscribers == 0


async def test_a_slow_subscriber_is_dropped_and_the_others_keep_going() -> None:
    j = journal(capacity=1000)
    with j.subscribe() as (_, slow), j.subscribe() as (_, fast):
        for i in range(SUBSCRIBER_BUFFER):
            j.emit("x.y", str(i))
            assert (await fast.receive()).text == str(i)
        j.emit("x.y", "one too many for the slow one")  # must not block
        assert (await fast.receive()).text == "one too many for the slow one"
        drained = [await slow.receive() for _ in range(SUBSCRIBER_BUFFER)]
        assert len(drained) == SUBSCRIBER_BUFFER
        with pytest.raises(trio.EndOfChannel):
            await slow.receive()  # its stream ends; it reconnects with its last id
        assert j.subscribers == 1


def test_subscribers_are_bounded() -> None:
    j = journal()
    from contextlib import ExitStack

    with ExitStack() as stack:
        for _ in range(MAX_SUBSCRIBERS):
            stack.enter_context(j.subscribe())
        with pytest.raises(TooManySubscribers), j.subscribe():
            pass
    assert j.subscribers == 0


def test_the_watcher_takes_its_first_look_as_the_baseline() -> None:
    looks = iter(
        [
            Snapshot({"a": MemberSnap("alive", "eu", "eu-1")}),
            Snapshot({"a": MemberSnap("alive", "eu", "eu-1"), "b": MemberSnap("alive", "us", "u")}),
            Snapshot({"a": MemberSnap("dead", "eu", "eu-1"), "b": MemberSnap("alive", "us", "u")}),
        ]
    )
    j = journal()
    watcher = ClusterWatcher(j, lambda: next(looks))
    assert watcher.step() == []
    assert [e.kind for e in watcher.step()] == ["member.joined"]
    assert [e.kind for e in watcher.step()] == ["member.dead"]
    assert [e.kind for e in j.since()] == ["member.joined", "member.dead"]


def test_an_unchanged_key_skips_the_look_and_a_changed_one_diffs_again() -> None:
    looked: list[int] = []
    views = [
        Snapshot({"a": MemberSnap("alive", "eu", "eu-1")}),
        Snapshot({"a": MemberSnap("dead", "eu", "eu-1")}),
    ]
    key = ["k1"]

    def look() -> Snapshot:
        looked.append(1)
        return views[min(len(looked) - 1, 1)]

    watcher = ClusterWatcher(journal(), look, key=lambda: key[0])
    watcher.step()
    assert watcher.step() == [] and len(looked) == 1  # same key: not looked at again
    key[0] = "k2"
    assert [e.kind for e in watcher.step()] == ["member.dead"] and len(looked) == 2
    key[0] = None  # type: ignore[assignment]  # unknown: always look
    watcher.step()
    watcher.step()
    assert len(looked) == 4
