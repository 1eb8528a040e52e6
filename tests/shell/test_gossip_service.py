"""The Trio shell: two services on loopback join, see each other's metadata, deliver membership
events on the channel, and a graceful leave arrives as `left`; a peer whose process is gone
refuses the TCP fallback probe, and is suspected on the refusal."""

from __future__ import annotations

import socket

import trio

from gossip.core import MemberEvent
from gossip.crypto import Keyring
from gossip.service import GossipService

KEY = b"s" * 32


def udp_tcp_port() -> int:
    while True:
        with socket.socket() as t, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(port)


async def next_event(svc: GossipService, kind: str, name: str) -> MemberEvent:
    with trio.fail_after(10):
        async for ev in svc.events:
            if ev.kind == kind and ev.name == name:
                return ev
    raise AssertionError("channel closed")


async def test_join_events_metadata_and_leave() -> None:
    pa, pb = udp_tcp_port(), udp_tcp_port()
    a = GossipService("a", ("127.0.0.1", pa), ("127.0.0.1", pa), Keyring([KEY]), {"r": "eu"})
    b = GossipService(
        "b",
        ("127.0.0.1", pb),
        ("127.0.0.1", pb),
        Keyring([KEY]),
        {"r": "us"},
        seeds=[("127.0.0.1", pa)],
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(b.run)
        await next_event(a, "joined", "b")
        await next_event(b, "joined", "a")
        assert {m.name: m.meta for m in b.members()} == {"a": {"r": "eu"}, "b": {"r": "us"}}
        b.set_meta({"r": "us", "free_mb": 10})
        await next_event(a, "updated", "b")
        assert next(m for m in a.members() if m.name == "b").meta["free_mb"] == 10
        await b.leave(timeout_s=1)
        ev = await next_event(a, "left", "b")
        assert ev.status == "left"
        assert a.counters()["totals"]["packets_in"] > 0
        nursery.cancel_scope.cancel()


async def test_a_peer_whose_agent_is_gone_is_suspected_on_the_refused_tcp_probe() -> None:
    pa, pb = udp_tcp_port(), udp_tcp_port()
    a = GossipService("a", ("127.0.0.1", pa), ("127.0.0.1", pa), Keyring([KEY]), {})
    b = GossipService(
        "b", ("127.0.0.1", pb), ("127.0.0.1", pb), Keyring([KEY]), {}, seeds=[("127.0.0.1", pa)]
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        async with trio.open_nursery() as inner:
            await inner.start(b.run)
            await next_event(a, "joined", "b")
            inner.cancel_scope.cancel()  # b's sockets close without a word: a crashed agent
        await next_event(a, "suspect", "b")
        assert a.counters()["core"]["probes_refused"] >= 1
        nursery.cancel_scope.cancel()
