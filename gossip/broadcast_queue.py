"""The transmit-limited broadcast queue (memberlist's queue.go).

Each broadcast is about one member and is piggybacked on outgoing packets until it has been sent
retransmit_mult x ceil(log10(N + 1)) times; a newer broadcast about the same member replaces the
older one at once, so the queue holds at most one entry per member. The least-sent broadcasts
go first, newest first among equals, as long as they fit the packet's remaining bytes.

Entries are kept in buckets by how often they were sent, so filling a packet looks at the few
entries it takes rather than sorting the whole queue (which, after a region outage, holds a
broadcast for every lost member).
"""

from __future__ import annotations

import math
from typing import Any

import attrs

MIN_ENTRY_BYTES = 8  # no broadcast is smaller: below this much room, stop looking


@attrs.define
class _Item:
    key: str
    msg: list[Any]
    size: int
    sent: int = 0


def retransmit_limit(mult: int, members: int) -> int:
    return mult * max(1, math.ceil(math.log10(members + 1)))


@attrs.define
class BroadcastQueue:
    retransmit_mult: int = 4
    _items: dict[str, _Item] = attrs.field(factory=dict)
    # sent count -> {key: item}, oldest first (dicts keep insertion order)
    _buckets: dict[int, dict[str, _Item]] = attrs.field(factory=dict)

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: str, msg: list[Any], size: int) -> None:
        """Queue `msg` about member `key`, replacing any older broadcast about it."""
        old = self._items.get(key)
        if old is not None:
            self._unbucket(old)
        item = _Item(key, msg, size)
        self._items[key] = item
        self._buckets.setdefault(0, {})[key] = item

    def _unbucket(self, item: _Item) -> None:
        bucket = self._buckets[item.sent]
        del bucket[item.key]
        if not bucket:
            del self._buckets[item.sent]

    def take(self, budget_bytes: int, members: int, per_msg_overhead: int = 2) -> list[list[Any]]:
        """Broadcasts that fit in `budget_bytes`; each counts as one more transmission."""
        if not self._items or budget_bytes <= 0:
            return []
        limit = retransmit_limit(self.retransmit_mult, members)
        chosen: list[_Item] = []
        spent = 0
        for sent in sorted(self._buckets):
            for item in reversed(self._buckets[sent].values()):
                cost = item.size + per_msg_overhead
                if spent + cost <= budget_bytes:
                    spent += cost
                    chosen.append(item)
                if budget_bytes - spent < MIN_ENTRY_BYTES + per_msg_overhead:
                    break
            else:
                continue
            break
        for item in chosen:
            self._unbucket(item)
            item.sent += 1
            if item.sent >= limit:
                del self._items[item.key]
            else:
                self._buckets.setdefault(item.sent, {})[item.key] = item
        return [item.msg for item in chosen]
