"""The operator's event journal: what happened in the cluster, as this agent saw it, kept in a
bounded ring and fanned out to live subscribers (the page's feed, `shoal events --follow`).

- **Ids** grow by one per event and start at the agent's boot time in milliseconds, so the ids
  of a restarted agent are above those of its previous run (unless it averaged more than one
  event per millisecond), and a client resuming with `Last-Event-ID` after a restart gets the
  new run's events rather than nothing. `since(id)` with an id above the newest is such a
  resume: everything kept is returned.
- **Bounds**: the ring keeps `capacity` events; each subscriber has a buffer of
  `SUBSCRIBER_BUFFER` events, and one that falls that far behind is dropped (its stream ends;
  it reconnects with the last id it saw and catches up from the ring) rather than slowing
  everyone, at most `MAX_SUBSCRIBERS` at once.
- **Sources**: `ClusterWatcher` diffs the cluster view every `WATCH_INTERVAL_S`
  (`node.event_diff`), so every agent shows every member, servo, project and rollout change;
  other code may `emit` what only it knows.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import attrs
import trio

from node.event_diff import Change, Snapshot, diff
from node.logfmt import get_logger

log = get_logger("node.events")

JOURNAL_CAPACITY = 2000
SUBSCRIBER_BUFFER = 256
MAX_SUBSCRIBERS = 64
WATCH_INTERVAL_S = 0.5


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ms % 1000:03d}Z"
    )


@attrs.frozen
class Event:
    id: int
    at_ms: int
    kind: str
    text: str
    fields: Mapping[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.fields,
            "id": self.id,
            "at": iso_ms(self.at_ms),
            "kind": self.kind,
            "text": self.text,
        }


class TooManySubscribers(RuntimeError):
    """`MAX_SUBSCRIBERS` streams are open already (the API's 503)."""


class EventJournal:
    def __init__(
        self,
        capacity: int = JOURNAL_CAPACITY,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        first_id: int | None = None,
    ) -> None:
        assert capacity > 0
        self._clock_ms = clock_ms
        self._ring: deque[Event] = deque(maxlen=capacity)
        self._next_id = first_id if first_id is not None else clock_ms()
        self._subscribers: set[trio.MemorySendChannel[Event]] = set()

    @property
    def last_id(self) -> int:
        """The id of the newest event (one below the first id when there is none yet)."""
        return self._next_id - 1

    def emit(self, kind: str, text: str, **fields: Any) -> Event:
        """Record an event and hand it to every subscriber; never blocks, never raises."""
        event = Event(self._next_id, self._clock_ms(), kind, text, fields)
        self._next_id += 1
        self._ring.append(event)
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:  # too slow: it resumes from the ring when it reconnects
                self._subscribers.discard(channel)
                channel.close()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.discard(channel)
        return event

    def record(self, changes: list[Change]) -> list[Event]:
        return [self.emit(c.kind, c.text, **c.fields) for c in changes]

    def since(self, after_id: int | None = None, limit: int = JOURNAL_CAPACITY) -> list[Event]:
        """Events newer than `after_id` (all kept ones for None, or for an id above the newest:
        a client of this agent's previous run), oldest first, the newest `limit` of them."""
        if after_id is None or after_id > self.last_id:
            found = list(self._ring)
        else:
            found = [e for e in self._ring if e.id > after_id]
        return found[-limit:] if limit > 0 else []

    @contextmanager
    def subscribe(
        self, after_id: int | None = None
    ) -> Iterator[tuple[list[Event], trio.MemoryReceiveChannel[Event]]]:
        """The backlog after `after_id` and a channel of every event from then on, with nothing
        lost or repeated between them (both taken in one step of the Trio loop)."""
        if len(self._subscribers) >= MAX_SUBSCRIBERS:
            raise TooManySubscribers(f"{MAX_SUBSCRIBERS} event streams are open already")
        send, receive = trio.open_memory_channel[Event](SUBSCRIBER_BUFFER)
        backlog = self.since(after_id) if after_id is not None else []
        self._subscribers.add(send)
        try:
            with receive:
                yield backlog, receive
        finally:
            self._subscribers.discard(send)
            send.close()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)


class ClusterWatcher:
    """Diffs the cluster view every `interval_s` and records what changed. The first look is
    the baseline (an agent that starts does not announce every member and servo as news)."""

    def __init__(
        self,
        journal: EventJournal,
        look: Callable[[], Snapshot],
        interval_s: float = WATCH_INTERVAL_S,
        key: Callable[[], object] = lambda: None,
    ) -> None:
        self.journal = journal
        self._look = look
        self.interval_s = interval_s
        self._last: Snapshot | None = None
        # `key` names what a look depends on (None: unknown, always look); an unchanged key
        # means an unchanged view, so an idle agent does not snapshot the whole cluster's
        # servos twice a second to find nothing new
        self._key = key
        self._last_key: object = None

    def step(self) -> list[Event]:
        key = self._key()
        if key is not None and key == self._last_key and self._last is not None:
            return []
        self._last_key = key
        now = self._look()
        before, self._last = self._last, now
        return [] if before is None else self.journal.record(diff(before, now))

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.step()
        task_status.started()
        while True:
            await trio.sleep(self.interval_s)
            try:
                self.step()
            except Exception:  # a bug in one look must not end the feed for good
                log.exception("events.watch_failed")
