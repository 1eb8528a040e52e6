"""The transmit-limited broadcast queue (memberlist's queue.go).

Each broadcast is about one member and is piggybacked on outgoing packets until it has been sent
retransmit_mult x ceil(log10(N + 1)) times; a newer broadcast about the same member replaces the
older one at once, so the queue holds at most one entry per member. The least-sent broadcasts
go first, and among equals the one that reached that count last (so fresh broadcasts go newest
first), as long as they fit the packet's remaining bytes.

Entries are kept in buckets by how often they were sent, so filling a packet looks at the few
entries it takes rather than sorting the whole queue (which, after a region outage, holds a
broadcast for every lost member).
"""

from __future__ import annotations

import math
from typing import Any

import attrs

MIN_ENTRY_BYTES = 8  # no broadcast is smaller: below this much room, stop looking
PER_MSG_OVERHEAD = 2  # what one more message adds to the packet's list beyond its own bytes
MIN_COST = MIN_ENTRY_BYTES + PER_MSG_OVERHEAD


@attrs.define
class _Item:
    key: str
    msg: list[Any]
    cost: int  # encoded size plus the per-message overhead of the packet's list
    sent: int = 0
    mult: int = 1  # times the usual retransmit limit this broadcast is sent


def retransmit_limit(mult: int, members: int) -> int:
    return mult * max(1, math.ceil(math.log10(members + 1)))


@attrs.define
class BroadcastQueue:
    retransmit_mult: int = 4
    _items: dict[str, _Item] = attrs.field(factory=dict)
    # sent count -> {key: item}, oldest first (dicts keep insertion order)
    _buckets: dict[int, dict[str, _Item]] = attrs.field(factory=dict)
    # sent count -> no more than the smallest cost in that bucket (a bound: kept on removal),
    # so a nearly full packet stops looking in a bucket none of whose entries can fit
    _floors: dict[int, int] = attrs.field(factory=dict)

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: str, msg: list[Any], size: int, limit_mult: int = 1) -> None:
        """Queue `msg` about member `key`, replacing any older broadcast about it; it is sent
        `limit_mult` times the usual retransmit limit (an agent's news about itself: nobody
        else can start that epidemic again, so it is worth a few more packets)."""
        old = self._items.get(key)
        if old is not None:
            self._unbucket(old)
        item = _Item(key, msg, size + PER_MSG_OVERHEAD, 0, max(1, limit_mult))
        self._items[key] = item
        self._bucket(item)

    def _bucket(self, item: _Item) -> None:
        bucket = self._buckets.get(item.sent)
        if bucket is None:
            self._buckets[item.sent] = {item.key: item}
            self._floors[item.sent] = item.cost
        else:
            bucket[item.key] = item
            if item.cost < self._floors[item.sent]:
                self._floors[item.sent] = item.cost

    def _unbucket(self, item: _Item) -> None:
        bucket = self._buckets[item.sent]
        del bucket[item.key]
        if not bucket:
            del self._buckets[item.sent]
            del self._floors[item.sent]

    def _choose(self, budget_bytes: int) -> list[_Item]:
        """The broadcasts the next packet carries: least sent first, newest first among equals,
        as long as they fit `budget_bytes`."""
        if not self._items or budget_bytes < MIN_COST:
            return []
        buckets, floors = self._buckets, self._floors
        chosen: list[_Item] = []
        spent = 0
        for sent in sorted(buckets):
            smallest = floors[sent]
            if budget_bytes - spent < smallest:
                continue
            for item in reversed(buckets[sent].values()):
                if spent + item.cost <= budget_bytes:
                    spent += item.cost
                    chosen.append(item)
                if budget_bytes - spent < smallest:
                    break
            if budget_bytes - spent < MIN_COST:
                break
        return chosen

    def peek(self, budget_bytes: int) -> list[list[Any]]:
        """What `take` would return, without counting a transmission: for packets to members
        not believed alive, which cannot pass a broadcast on (see `Gossip._gossip`)."""
        return [item.msg for item in self._choose(budget_bytes)]

    def take(self, budget_bytes: int, members: int) -> list[list[Any]]:
        """Broadcasts that fit in `budget_bytes`; each counts as one more transmission."""
        chosen = self._choose(budget_bytes)
        if not chosen:
            return []
        limit = retransmit_limit(self.retransmit_mult, members)
        buckets, floors = self._buckets, self._floors
        items = self._items
        for item in chosen:  # _unbucket, then _bucket one level up, inlined: the hot path
            key, sent = item.key, item.sent
            bucket = buckets[sent]
            del bucket[key]
            if not bucket:
                del buckets[sent]
                del floors[sent]
            sent += 1
            item.sent = sent
            if sent >= limit * item.mult:
                del items[key]
                continue
            upper = buckets.get(sent)
            if upper is None:
                buckets[sent] = {key: item}
                floors[sent] = item.cost
            else:
                upper[key] = item
                if item.cost < floors[sent]:
                    floors[sent] = item.cost
        return [item.msg for item in chosen]
