"""The transmit-limited broadcast queue (memberlist's queue.go).

Each broadcast is about one member and is piggybacked on outgoing packets until it has been sent
retransmit_mult x ceil(log10(N + 1)) times; a newer broadcast about the same member replaces the
older one at once, so the queue holds at most one entry per member. The least-sent broadcasts
go first, and among equals the one that reached that count last (so fresh broadcasts go newest
first), as long as they fit the packet's remaining bytes.

Entries are kept in buckets by how often they were sent, so filling a packet looks at the few
entries it takes rather than sorting the whole queue (which, after a region outage, holds a
broadcast for every lost member). Each bucket also keeps its small entries apart (membership
news without metadata: a SUSPECT or DEAD is 20-40 bytes, an inventory delta removing a servo
60-80; an ALIVE with metadata or a delta adding a servo over 120): once a packet's remaining
room is below every large entry's size, the rest of the bucket is walked among the small ones
only. In a 300-agent region outage three in four entries looked at were large ones that no
longer fit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import islice
from typing import Any

import attrs

MIN_ENTRY_BYTES = 8  # no broadcast is smaller: below this much room, stop looking
PER_MSG_OVERHEAD = 2  # what one more message adds to the packet's list beyond its own bytes
MIN_COST = MIN_ENTRY_BYTES + PER_MSG_OVERHEAD
# Entries costing no more than this are also kept in their bucket's `small` dict. Any value is
# correct (the choice is the same); this one parts membership news and servo removals from
# metadata and servo records. At 64, the few removals (65-80) held a bucket's large-entry floor
# below the rest (120-140) for as long as the bucket lived (a floor is kept on removal), and the
# walk of a packet's last hundred bytes went through every large entry: 4 % of a 600-agent run.
SMALL_COST = 100


@attrs.define(weakref_slot=False)  # 8 bytes an entry, and nothing refers to one weakly
class _Item:
    key: str
    msg: list[Any]
    cost: int  # encoded size plus the per-message overhead of the packet's list
    # the bucket it was put in, or one merged into that one since (`_Bucket.merged_into`)
    bucket: _Bucket | None = None


class _Bucket:
    """The entries sent the same number of times, oldest first (dicts keep insertion order).
    The count is the bucket's key in `BroadcastQueue._buckets`, not the entries': a bucket
    all of whose entries one packet takes moves up a level whole."""

    __slots__ = ("big_floor", "floor", "items", "merged_into", "sent", "small", "total")

    def __init__(self, sent: int) -> None:
        self.sent = sent  # its key in `BroadcastQueue._buckets` while it is there
        self.items: dict[str, _Item] = {}
        # the entries costing no more than SMALL_COST, in the same order: `items` itself
        # while the bucket has held no larger one. After a region outage the queues hold
        # only SUSPECT and DEAD news, a broadcast per (survivor, lost member): a second dict
        # slot each was 0.8 GB at 10,000 agents.
        self.small: dict[str, _Item] = self.items
        # no more than the smallest cost in the bucket, and in its large part (bounds: kept on
        # removal), so a nearly full packet stops looking where nothing can fit
        self.floor: float = math.inf
        self.big_floor: float = math.inf
        self.total = 0  # the entries' costs, summed (exact)
        # Entries know the bucket they were put in, and a bucket that moves up whole keeps
        # them (and changes `sent`). One merged whole into the bucket above points there, so
        # an entry finds its bucket in a step or two instead of a search through every
        # bucket: after an outage most puts replace a queued entry (a suspicion confirmed,
        # then the death), and the search was a sixth of a 5,000-agent run.
        self.merged_into: _Bucket | None = None

    def split(self) -> dict[str, _Item]:
        """Give `small` a dict of its own (before a large entry joins `items`)."""
        if self.small is self.items:
            self.small = dict(self.items)
        return self.small

    def add(self, item: _Item) -> None:
        key, cost = item.key, item.cost
        item.bucket = self
        if cost <= SMALL_COST:
            self.items[key] = item
            if self.small is not self.items:
                self.small[key] = item
        else:
            self.split()
            self.items[key] = item
            if cost < self.big_floor:
                self.big_floor = cost
        self.total += cost
        if cost < self.floor:
            self.floor = cost

    def remove(self, item: _Item) -> None:
        key = item.key
        del self.items[key]
        self.total -= item.cost
        if item.cost <= SMALL_COST and self.small is not self.items:
            del self.small[key]

    def merge(self, other: _Bucket) -> None:
        """Take in `other`'s entries after this bucket's own, newest first."""
        if other.small is not other.items:
            self.split().update(reversed(other.small.items()))
            self.items.update(reversed(other.items.items()))
        else:
            self.items.update(reversed(other.items.items()))
            if self.small is not self.items:
                self.small.update(reversed(other.items.items()))
        self.total += other.total
        self.floor = min(self.floor, other.floor)
        self.big_floor = min(self.big_floor, other.big_floor)


def retransmit_limit(mult: int, members: int) -> int:
    return mult * max(1, math.ceil(math.log10(members + 1)))


@attrs.define
class BroadcastQueue:
    retransmit_mult: int = 4
    _items: dict[str, _Item] = attrs.field(factory=dict)
    _buckets: dict[int, _Bucket] = attrs.field(factory=dict)  # by sent count
    # the encoded size of the messages the last `take` or `peek` returned, summed: the core
    # hands it on with each packet, so the simulator counts its bytes without packing them
    last_bytes: int = 0
    # the few broadcasts sent more than the usual limit, and how many times it (an agent's own
    # news, application news): kept aside, as a field of every entry it was 16 bytes each of
    # the 22 million SUSPECT and DEAD entries after a 10,000-agent region outage
    _mults: dict[str, int] = attrs.field(factory=dict)
    _limit_for: int = -1  # the member count `_limit` is the retransmit limit of
    _limit: int = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: str, msg: list[Any], size: int, limit_mult: int = 1) -> None:
        """Queue `msg` about member `key`, replacing any older broadcast about it; it is sent
        `limit_mult` times the usual retransmit limit (an agent's news about itself: nobody
        else can start that epidemic again, so it is worth a few more packets)."""
        cost = size + PER_MSG_OVERHEAD
        if limit_mult > 1:
            self._mults[key] = limit_mult
        elif self._mults:
            self._mults.pop(key, None)
        items = self._items
        item = items.get(key)
        if item is not None:
            # the replaced entry's record is reused: after an outage most puts replace one
            # (a suspicion confirmed, then the death), and an allocation was half a put
            self._unbucket(item)
            item.msg, item.cost = msg, cost
        else:
            item = items[key] = _Item(key, msg, cost)
        bucket = self._buckets.get(0)
        if bucket is None:
            bucket = self._buckets[0] = _Bucket(0)
        if cost <= SMALL_COST and bucket.small is bucket.items:
            # `_Bucket.add` inlined for the usual entry after an outage (a SUSPECT or DEAD
            # into a bucket of small ones): 88 million puts at 10,000 simulated agents
            item.bucket = bucket
            bucket.items[key] = item
            bucket.total += cost
            if cost < bucket.floor:
                bucket.floor = cost
        else:
            bucket.add(item)

    def discard(self, key: str) -> None:
        """Drop the broadcast queued under `key`, if any."""
        item = self._items.pop(key, None)
        if item is not None:
            self._unbucket(item)
            if self._mults:
                self._mults.pop(key, None)

    def _unbucket(self, item: _Item) -> None:
        bucket = item.bucket
        if bucket is not None:
            while bucket.merged_into is not None:
                bucket = bucket.merged_into
            item.bucket = bucket
            if bucket.items.get(item.key) is item:
                bucket.remove(item)
                if not bucket.items and self._buckets.get(bucket.sent) is bucket:
                    del self._buckets[bucket.sent]
                return
        raise AssertionError(f"queued broadcast {item.key!r} in no bucket")

    def _choose(self, budget_bytes: int) -> tuple[list[_Item], list[tuple[int, int, bool]]]:
        """The broadcasts the next packet carries: least sent first, newest first among equals,
        as long as they fit `budget_bytes`; and, per bucket they came from in the order taken,
        (sent count, where its run in the list ends, whether the run is the whole bucket)."""
        chosen: list[_Item] = []
        runs: list[tuple[int, int, bool]] = []
        if not self._items or budget_bytes < MIN_COST:
            self.last_bytes = 0
            return chosen, runs
        buckets = self._buckets
        room = budget_bytes
        for sent in sorted(buckets):
            bucket = buckets[sent]
            smallest = bucket.floor
            if room < smallest:
                continue
            if bucket.total <= room:
                # every entry fits: all of them, newest first (most runs after an outage)
                chosen.extend(reversed(bucket.items.values()))
                room -= bucket.total
                runs.append((sent, len(chosen), True))
                if room < MIN_COST:
                    break
                continue
            start = len(chosen)
            big_floor = bucket.big_floor
            # Small entries met while the room is at least `big_floor` (> SMALL_COST) all fit,
            # so they are the first `small_taken` of the small part in the same order.
            small_taken = 0
            rest: Iterator[_Item] | None = None
            for item in reversed(bucket.items.values()):
                if room < big_floor:  # no large entry fits any more: the small ones left
                    rest = islice(reversed(bucket.small.values()), small_taken, None)
                    break
                cost = item.cost
                if cost <= room:
                    room -= cost
                    chosen.append(item)
                    if cost <= SMALL_COST:
                        small_taken += 1
                    if room < smallest:
                        break
            if rest is not None:
                for item in rest:
                    cost = item.cost
                    if cost <= room:
                        room -= cost
                        chosen.append(item)
                        if room < smallest:
                            break
            if len(chosen) > start:
                runs.append((sent, len(chosen), False))
            if room < MIN_COST:
                break
        self.last_bytes = budget_bytes - room - PER_MSG_OVERHEAD * len(chosen)
        return chosen, runs

    def peek(self, budget_bytes: int) -> list[list[Any]]:
        """What `take` would return, without counting a transmission: for packets to members
        not believed alive, which cannot pass a broadcast on (see `Gossip._gossip`)."""
        return [item.msg for item in self._choose(budget_bytes)[0]]

    def take(self, budget_bytes: int, members: int) -> list[list[Any]]:
        """Broadcasts that fit in `budget_bytes`; each counts as one more transmission.

        Each run of entries moves up one level, the highest run first, so that a bucket
        moving whole holds only its own entries. A whole bucket moves with its dicts
        reversed (taken newest first, its entries reach the next count in that order) and
        merged or relabelled in C, rather than entry by entry: after an outage three in five
        entries taken are in a run that is a whole bucket."""
        chosen, runs = self._choose(budget_bytes)
        if not chosen:
            return []
        if members != self._limit_for:  # the count changes seldom: the limit is kept
            self._limit_for, self._limit = members, retransmit_limit(self.retransmit_mult, members)
        limit = self._limit
        buckets, items, mults = self._buckets, self._items, self._mults
        end = len(chosen)
        for i in range(len(runs) - 1, -1, -1):
            sent, end, whole = runs[i]
            start = runs[i - 1][1] if i else 0
            up = sent + 1
            bucket = buckets[sent]
            upper = buckets.get(up)
            if whole and up < limit:  # nothing retires: the bucket moves as it is
                del buckets[sent]
                if upper is None:
                    aliased = bucket.small is bucket.items
                    bucket.items = dict(reversed(bucket.items.items()))
                    if aliased:
                        bucket.small = bucket.items
                    else:
                        bucket.small = dict(reversed(bucket.small.items()))
                    bucket.sent = up
                    buckets[up] = bucket
                else:
                    upper.merge(bucket)
                    bucket.merged_into = upper  # its entries' way to where they are now
                    bucket.items = bucket.small = {}
                continue
            # entry by entry: `_Bucket.remove` and `add`, inlined (the hot path)
            if upper is None:
                upper = _Bucket(up)  # kept below if anything moves into it
            bitems, bsmall, uitems, usmall = bucket.items, bucket.small, upper.items, upper.small
            # (a `small` that is `items` is left alone: its entries come and go with `items`)
            b_apart, u_apart = bsmall is not bitems, usmall is not uitems
            taken = moved = 0
            floor, big_floor = upper.floor, upper.big_floor
            for item in chosen[start:end]:
                key, cost = item.key, item.cost
                taken += cost
                del bitems[key]
                if b_apart and cost <= SMALL_COST:
                    del bsmall[key]
                if up >= limit and up >= limit * mults.get(key, 1):
                    del items[key]
                    if mults:
                        mults.pop(key, None)
                    continue
                moved += cost
                item.bucket = upper
                if cost <= SMALL_COST:
                    uitems[key] = item
                    if u_apart:
                        usmall[key] = item
                else:
                    if not u_apart:
                        usmall, u_apart = upper.split(), True
                    uitems[key] = item
                    if cost < big_floor:
                        big_floor = cost
                if cost < floor:
                    floor = cost
            bucket.total -= taken
            if not bitems:
                del buckets[sent]
            if uitems:
                upper.total += moved
                upper.floor, upper.big_floor = floor, big_floor
                buckets[up] = upper
        return [item.msg for item in chosen]


class PriorityBroadcasts:
    """Failure news first, other news in the room left: two `BroadcastQueue`s, each with its
    own transmission counts, filling a packet in that order.

    The first lane holds what changes a member's status or incarnation (SUSPECT, DEAD, a
    refutation, a join); the second what changes nothing about who is alive (a member's new
    metadata at the same incarnation, application news: inventory deltas and specs). With one
    queue ordered by transmissions, a region outage starved the failure news: every recovered
    servo puts an inventory delta and its host's new metadata in the queue, fresh news goes
    first, and the DEADs already sent a few times waited behind it. At 2,000 simulated agents
    with a third of them lost, the lost agents took 40 s (p50) to be dead at every survivor,
    against 15 s at 1,000, and DEADs were still in flight 130 s after the outage
    (`bench/sim_traffic.py`). A refutation rides in the first lane, so it never waits behind
    metadata; a host's metadata and its inventory deltas share the second, so they still
    arrive together (a receiver that sees the metadata's inventory version ahead of its copy
    pulls the whole inventory: with the metadata in the first lane that was 66 times the pulls).

    A key lives in one lane at a time: news about a member replaces what either lane held about
    it (a DEAD replaces a queued metadata change)."""

    __slots__ = ("_lanes", "last_bytes")

    def __init__(self, retransmit_mult: int) -> None:
        self._lanes = (BroadcastQueue(retransmit_mult), BroadcastQueue(retransmit_mult))
        self.last_bytes = 0

    def __len__(self) -> int:
        return len(self._lanes[0]) + len(self._lanes[1])

    def put(
        self, key: str, msg: list[Any], size: int, limit_mult: int = 1, urgent: bool = True
    ) -> None:
        lane, other = self._lanes if urgent else reversed(self._lanes)
        if len(other):
            other.discard(key)
        lane.put(key, msg, size, limit_mult)

    def take(self, budget_bytes: int, members: int) -> list[list[Any]]:
        # inline for the usual cases (one lane holds news; after an outage, failure news that
        # fills the packet): every gossip round of every agent takes three packets
        first, second = self._lanes
        if len(first) and len(second):
            return self._fill(budget_bytes, members, count=True)
        lane = first if len(first) else second
        msgs = lane.take(budget_bytes, members)
        self.last_bytes = lane.last_bytes if msgs else 0
        return msgs

    def peek(self, budget_bytes: int) -> list[list[Any]]:
        """What `take` would return, without counting a transmission."""
        return self._fill(budget_bytes, 0, count=False)

    def _fill(self, budget_bytes: int, members: int, count: bool) -> list[list[Any]]:
        msgs: list[list[Any]] = []
        used = 0
        for lane in self._lanes:
            if not len(lane):
                continue
            room = budget_bytes - used - PER_MSG_OVERHEAD * len(msgs)
            if room < MIN_COST:
                break  # (the lane would choose nothing)
            more = lane.take(room, members) if count else lane.peek(room)
            if more:
                msgs = [*msgs, *more] if msgs else more
                used += lane.last_bytes
        self.last_bytes = used
        return msgs
