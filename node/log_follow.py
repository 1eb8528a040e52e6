"""`shoal logs --follow`: a project's log lines as they come, from whichever hosts run it.

The agent that takes the request asks each host of the project's servos for the tail of that
servo's log every `POLL_S`, with Docker's per-line timestamps, and passes on the lines newer
than the last it passed on for that servo. Servos that appear later (a replacement after a
host died, a rollout's new generation) are followed from their first look. Polling the tail
keeps the host side a plain, bounded, signed request (no long-lived agent-to-agent streams to
supervise); the price is that a servo writing more than `WINDOW_LINES` lines between two polls
loses the excess, which the stream says (`"skipped": true` on the first line after the gap).

A resumed follow (`since`, the time of the last line the client printed) starts after that
time, so a client reconnecting after a dropped connection neither repeats nor misses lines.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import attrs
import trio

from node.cluster import Peer, servos_of
from node.peers import PeerClient, PeerError

POLL_S = 1.0
WINDOW_LINES = 500  # asked for on every poll after the first


def time_key(stamp: str) -> str:
    """An RFC 3339 time as a string that sorts by time: Docker trims trailing zeros of the
    fraction (`.5Z` and `.123456789Z` both occur), so the fraction is padded to nanoseconds."""
    stamp = stamp.strip()
    if not stamp.endswith("Z"):
        return stamp
    whole, dot, fraction = stamp[:-1].partition(".")
    return f"{whole}.{(fraction if dot else '').ljust(9, '0')[:9]}Z"


def split_stamped(text: str) -> list[tuple[str, str]]:
    """`"<time> <line>"` lines as (sortable time, line); a line without a time (a runtime that
    gave none) gets the empty time, which sorts before any other."""
    out = []
    for raw in text.splitlines():
        stamp, sep, line = raw.partition(" ")
        if sep and stamp[:4].isdigit() and "T" in stamp:
            out.append((time_key(stamp), line))
        else:
            out.append(("", raw))
    return out


@attrs.define
class Cursor:
    """Where a follow stands on one servo: the newest time passed on, and the lines at that
    very time already passed on (two lines may share a timestamp)."""

    last: str = ""
    at_last: list[str] = attrs.field(factory=list)
    # a resumed follow: every line at `last` itself was printed before the connection dropped
    all_at_last: bool = False

    def take(self, lines: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """The lines of a fresh tail not yet passed on, oldest first; moves the cursor."""
        fresh = []
        for stamp, line in lines:
            if stamp < self.last:
                continue
            if stamp == self.last:
                if self.all_at_last or line in self.at_last:
                    continue
                self.at_last.append(line)
            else:
                self.last, self.at_last, self.all_at_last = stamp, [line], False
            fresh.append((stamp, line))
        return fresh


@attrs.frozen
class LogLine:
    servo: str
    node: str
    at: str
    line: str
    skipped: bool = False  # lines were lost before this one (more than a window per poll)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"servo": self.servo, "node": self.node, "at": self.at}
        body["line"] = self.line
        if self.skipped:
            body["skipped"] = True
        return body


async def follow(
    project: str,
    peers: Callable[[], Iterable[Peer]],
    client: PeerClient,
    *,
    servo_id: str | None = None,
    tail: int = 50,
    since: str | None = None,
    poll_s: float = POLL_S,
) -> AsyncIterator[LogLine]:
    """Every new log line of the project's servos (or one), until the caller stops reading.
    The first look at a servo passes on its last `tail` lines, or those after `since`."""
    cursors: dict[str, Cursor] = {}
    resume = time_key(since) if since else None
    while True:
        found: list[LogLine] = []
        known = {p.name: p for p in peers()}

        async def one(servo: str, peer: Peer, found: list[LogLine]) -> None:
            first = servo not in cursors
            window = tail if first and resume is None else WINDOW_LINES
            try:
                text = await client.logs(peer.name, peer.api, servo, window, timestamps=True)
            except PeerError:
                return  # its host is away: its lines come when it answers again
            lines = split_stamped(text)
            if first:
                cursors[servo] = Cursor(resume, all_at_last=True) if resume else Cursor()
            cursor = cursors[servo]
            was = cursor.last
            fresh = cursor.take(lines)
            # a full window whose oldest line is newer than where we were: lines were lost
            gap = not first and len(lines) >= window and bool(lines) and lines[0][0] > was
            for i, (stamp, line) in enumerate(fresh):
                found.append(LogLine(servo, peer.name, stamp, line, skipped=gap and i == 0))

        async with trio.open_nursery() as nursery:
            for s in servos_of(project, known.values()):
                if servo_id is not None and s.servo_id != servo_id:
                    continue
                peer = known.get(s.node)
                if peer is not None and peer.reachable:
                    nursery.start_soon(one, s.servo_id, peer, found)
        for line in sorted(found, key=lambda x: (x.at, x.servo)):
            yield line
        await trio.sleep(poll_s)
