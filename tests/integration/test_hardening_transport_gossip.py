"""Issue 13, point 4, against a real gossip service on loopback: a TCP flood without the key
costs a fixed header per connection, a connection cap holds, and real peers still join."""

from __future__ import annotations

import struct
from pathlib import Path

import trio

from gossip.crypto import Keyring
from gossip.service import MAX_TCP_CONNECTIONS, TCP_HEADER_TIMEOUT_S, GossipService
from gossip.wire import TCP_HEADER_BYTES
from tests.shell.test_gossip_service import next_event, udp_tcp_port

KEY = b"k" * 32
FLOOD_CONNECTIONS = 40
ANNOUNCED_BYTES = 8 * 1024 * 1024


def rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096


async def _flood_one(port: int, sent: list[int]) -> None:
    """The issue's repro: announce an 8 MiB frame and send it, with no key."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    junk = b"\x00" * 65536
    try:
        await stream.send_all(struct.pack(">I", ANNOUNCED_BYTES))
        with trio.move_on_after(5):
            for _ in range(ANNOUNCED_BYTES // len(junk)):
                await stream.send_all(junk)
                sent[0] += len(junk)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the agent hung up: what we want
    finally:
        await stream.aclose()


async def test_forty_unkeyed_8mib_frames_cost_a_header_each_not_370mib() -> None:
    port = udp_tcp_port()
    svc = GossipService("a", ("127.0.0.1", port), ("127.0.0.1", port), Keyring([KEY]), {})
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.run)
        before = rss_bytes()
        sent = [0]
        async with trio.open_nursery() as flood:
            for _ in range(FLOOD_CONNECTIONS):
                flood.start_soon(_flood_one, port, sent)
        grown = rss_bytes() - before
        dropped = svc.counters()["dropped"]
        # every connection was refused at its header (or at the cap), none was read further
        assert dropped.get("tcp_bad_header", 0) + dropped.get("tcp_connection_cap", 0) == (
            FLOOD_CONNECTIONS
        ), dropped
        assert svc.counters()["totals"]["bytes_in"] == 0  # no frame body was ever buffered
        # the attackers could only push what the kernel buffers take before the reset
        assert sent[0] < FLOOD_CONNECTIONS * ANNOUNCED_BYTES // 4
        assert grown < 48 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"
        nursery.cancel_scope.cancel()


async def test_silent_connections_beyond_the_cap_are_closed_and_slots_free_up() -> None:
    pa, pb = udp_tcp_port(), udp_tcp_port()
    a = GossipService("a", ("127.0.0.1", pa), ("127.0.0.1", pa), Keyring([KEY]), {})
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        idle = [await trio.open_tcp_stream("127.0.0.1", pa) for _ in range(MAX_TCP_CONNECTIONS + 8)]
        await trio.sleep(0.5)
        assert a.counters()["dropped"].get("tcp_connection_cap") == 8
        # the held slots time out at the header deadline, then a real peer joins over TCP
        await trio.sleep(TCP_HEADER_TIMEOUT_S + 0.5)
        assert a.counters()["dropped"].get("tcp_incomplete") == MAX_TCP_CONNECTIONS
        b = GossipService(
            "b", ("127.0.0.1", pb), ("127.0.0.1", pb), Keyring([KEY]), {}, seeds=[("127.0.0.1", pa)]
        )
        await nursery.start(b.run)
        await next_event(a, "joined", "b")
        for s in idle:
            await s.aclose()
        nursery.cancel_scope.cancel()


async def test_a_peer_with_another_key_is_dropped_at_the_header() -> None:
    pa, pb = udp_tcp_port(), udp_tcp_port()
    a = GossipService("a", ("127.0.0.1", pa), ("127.0.0.1", pa), Keyring([KEY]), {})
    stranger = GossipService(
        "s",
        ("127.0.0.1", pb),
        ("127.0.0.1", pb),
        Keyring([b"z" * 32]),
        {},
        seeds=[("127.0.0.1", pa)],
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(stranger.run)
        for _ in range(200):
            if a.counters()["dropped"].get("tcp_bad_header", 0):
                break
            await trio.sleep(0.05)
        assert a.counters()["dropped"].get("tcp_bad_header", 0) >= 1
        assert [m.name for m in a.members()] == ["a"]
        assert TCP_HEADER_BYTES < 64
        nursery.cancel_scope.cancel()
