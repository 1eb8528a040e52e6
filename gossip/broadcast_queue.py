"""The transmit-limited broadcast queue (memberlist's queue.go).

Each broadcast is about one member and is piggybacked on outgoing packets until it has been sent
retransmit_mult x ceil(log10(N + 1)) times; a newer broadcast about the same member replaces the
older one at once, so the queue holds at most one entry per member. The least-sent broadcasts
go first, newest first among equals, as long as they fit the packet's remaining bytes.
"""

from __future__ import annotations

import math
from typing import Any

import attrs


@attrs.define
class _Item:
    key: str
    msg: list[Any]
    size: int
    order: int
    sent: int = 0


def retransmit_limit(mult: int, members: int) -> int:
    return mult * max(1, math.ceil(math.log10(members + 1)))


@attrs.define
class BroadcastQueue:
    retransmit_mult: int = 4
    _items: dict[str, _Item] = attrs.field(factory=dict)
    _order: int = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: str, msg: list[Any], size: int) -> None:
        """Queue `msg` about member `key`, replacing any older broadcast about it."""
        self._order += 1
        self._items[key] = _Item(key, msg, size, self._order)

    def take(self, budget_bytes: int, members: int, per_msg_overhead: int = 2) -> list[list[Any]]:
        """Broadcasts that fit in `budget_bytes`; each counts as one more transmission."""
        if not self._items or budget_bytes <= 0:
            return []
        limit = retransmit_limit(self.retransmit_mult, members)
        out: list[list[Any]] = []
        spent = 0
        for item in sorted(self._items.values(), key=lambda i: (i.sent, -i.order)):
            cost = item.size + per_msg_overhead
            if spent + cost > budget_bytes:
                continue
            spent += cost
            out.append(item.msg)
            item.sent += 1
            if item.sent >= limit:
                del self._items[item.key]
        return out
