"""Following a project's logs by polling each servo's timestamped tail: times that sort, a
cursor that passes each line on once (repeated lines included), servos that come and go, and a
resumed follow that neither repeats nor misses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import trio
import trio.testing

from node.cluster import Peer, ServoEntry
from node.log_follow import Cursor, LogLine, follow, split_stamped, time_key
from node.peers import PeerUnreachable


def test_time_keys_sort_by_time_whatever_docker_trimmed() -> None:
    stamps = ["2026-11-25T10:00:00.5Z", "2026-11-25T10:00:00.123456789Z", "2026-11-25T10:00:00Z"]
    assert sorted(stamps, key=time_key) == [
        "2026-11-25T10:00:00Z",
        "2026-11-25T10:00:00.123456789Z",
        "2026-11-25T10:00:00.5Z",
    ]
    assert time_key("2026-11-25T10:00:00.5Z") == "2026-11-25T10:00:00.500000000Z"


def test_stamped_lines_split_and_unstamped_ones_keep_their_text() -> None:
    text = "2026-11-25T10:00:01.1Z hello world\nno stamp here\n2026-11-25T10:00:02Z  indented"
    assert split_stamped(text) == [
        ("2026-11-25T10:00:01.100000000Z", "hello world"),
        ("", "no stamp here"),
        ("2026-11-25T10:00:02.000000000Z", " indented"),
    ]


def t(second: int) -> str:
    return time_key(f"2026-11-25T10:00:{second:02d}Z")


def test_the_cursor_passes_each_line_once_even_identical_ones() -> None:
    cursor = Cursor()
    assert cursor.take([(t(1), "tick"), (t(2), "tick")]) == [(t(1), "tick"), (t(2), "tick")]
    # the next tail overlaps the last; the same text at a new time is a new line
    assert cursor.take([(t(2), "tick"), (t(3), "tick")]) == [(t(3), "tick")]
    # two lines with the same time: both pass, once
    assert cursor.take([(t(3), "tick"), (t(4), "a"), (t(4), "b")]) == [(t(4), "a"), (t(4), "b")]
    assert cursor.take([(t(4), "a"), (t(4), "b")]) == []


def test_a_resumed_cursor_skips_everything_up_to_and_at_its_time() -> None:
    cursor = Cursor(t(2), all_at_last=True)
    assert cursor.take([(t(1), "old"), (t(2), "printed"), (t(3), "new")]) == [(t(3), "new")]
    assert cursor.take([(t(3), "new"), (t(3), "same time, not seen")]) == [
        (t(3), "same time, not seen")
    ]


class FakeHosts:
    """The agent-to-agent client as far as `follow` uses it: each servo's log lines by host."""

    def __init__(self) -> None:
        self.lines: dict[str, list[tuple[str, str]]] = {}
        self.down: set[str] = set()
        self.asked: list[tuple[str, int]] = []

    async def logs(self, node: str, api: str, servo: str, tail: int, timestamps: bool) -> str:
        assert timestamps
        self.asked.append((servo, tail))
        if node in self.down:
            raise PeerUnreachable(node, "down")
        return "\n".join(f"{at} {line}" for at, line in self.lines.get(servo, [])[-tail:])


def peer(name: str, *servos: str, status: str = "alive") -> Peer:
    entries = tuple(ServoEntry(s, "web", name, "running") for s in servos)
    return Peer(name, status, "eu", "eu-1", "", f"http://{name}", 100, 100, 100, 100, entries)


async def take(lines: AsyncIterator[LogLine], n: int) -> list[tuple[str, str]]:
    got = []
    async for line in lines:
        got.append((line.servo, line.line))
        if len(got) == n:
            return got
    raise AssertionError("the follow ended")


async def test_follow_gives_the_tail_then_new_lines_from_every_host(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hosts = FakeHosts()
    hosts.lines = {"s1": [(f"2026-11-25T10:00:0{i}Z", f"one {i}") for i in range(5)]}
    hosts.lines["s2"] = [("2026-11-25T10:00:02.5Z", "two 0")]
    peers = [peer("a", "s1"), peer("b", "s2")]
    client: Any = hosts
    lines = follow("web", lambda: peers, client, tail=2)
    first = await take(lines, 3)
    # the last 2 lines of s1 and s2's one line, in time order across servos
    assert first == [("s2", "two 0"), ("s1", "one 3"), ("s1", "one 4")]
    assert ("s1", 2) in hosts.asked  # the first look asks for the tail only
    hosts.lines["s2"].append(("2026-11-25T10:00:09Z", "two 1"))
    hosts.lines["s1"].append(("2026-11-25T10:00:08Z", "one 5"))
    assert await take(lines, 2) == [("s1", "one 5"), ("s2", "two 1")]

    # a replacement servo on a new host is followed from its first look; a dead host is not
    # asked, and a host that does not answer costs nothing but its lines
    peers[:] = [peer("a", "s1"), peer("b", "s2", status="dead"), peer("c", "s3")]
    hosts.lines["s3"] = [("2026-11-25T10:00:10Z", "three 0")]
    hosts.down.add("a")
    assert await take(lines, 1) == [("s3", "three 0")]
    await lines.aclose()  # type: ignore[attr-defined]


async def test_a_resumed_follow_starts_after_its_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hosts = FakeHosts()
    hosts.lines = {"s1": [(f"2026-11-25T10:00:0{i}Z", f"line {i}") for i in range(6)]}
    client: Any = hosts
    lines = follow("web", lambda: [peer("a", "s1")], client, tail=1, since="2026-11-25T10:00:03Z")
    assert await take(lines, 2) == [("s1", "line 4"), ("s1", "line 5")]
    await lines.aclose()  # type: ignore[attr-defined]


async def test_one_servo_only(autojump_clock: trio.testing.MockClock) -> None:
    hosts = FakeHosts()
    hosts.lines = {"s1": [("2026-11-25T10:00:01Z", "one")], "s2": [("2026-11-25T10:00:00Z", "x")]}
    client: Any = hosts
    lines = follow("web", lambda: [peer("a", "s1", "s2")], client, servo_id="s1")
    assert await take(lines, 1) == [("s1", "one")]
    assert {servo for servo, _ in hosts.asked} == {"s1"}
    await lines.aclose()  # type: ignore[attr-defined]


async def test_lines_lost_between_polls_are_flagged(autojump_clock: trio.testing.MockClock) -> None:
    from node import log_follow

    hosts = FakeHosts()
    hosts.lines = {"s1": [("2026-11-25T10:00:00Z", "start")]}
    client: Any = hosts
    found: list[LogLine] = []
    window = log_follow.WINDOW_LINES
    lines = follow("web", lambda: [peer("a", "s1")], client)
    async for line in lines:
        found.append(line)
        if len(found) == 1:  # more than a window's worth arrives before the next poll
            hosts.lines["s1"] += [
                (f"2026-11-25T10:01:{i // 1000:02d}.{i % 1000:03d}Z", f"n{i}")
                for i in range(window + 10)
            ]
        if len(found) == 1 + window:
            break
    await lines.aclose()  # type: ignore[attr-defined]
    assert found[1].line == "n10" and found[1].skipped
    assert not any(x.skipped for x in found[2:])
