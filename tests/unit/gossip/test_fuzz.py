"""Every decoder gets random and mutated input and must reject it cleanly (DESIGN.md, Tests)."""

from __future__ import annotations

import contextlib
import random

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.core import Gossip
from gossip.crypto import Keyring
from gossip.messages import MsgType
from gossip.service import GossipService
from gossip.wire import DecodeError, decode, encode, pack_messages

KEY, OTHER = b"k" * 32, b"o" * 32


def service() -> GossipService:
    svc = GossipService("me", ("127.0.0.1", 1), ("127.0.0.1", 1), Keyring([KEY]), {})
    svc.core = Gossip("me", ("127.0.0.1", 1), {}, random.Random(0), 0.0)
    return svc


def valid_packets() -> list[bytes]:
    msgs = [
        [[MsgType.ALIVE, "peer", 3, ("127.0.0.2", 7946), 2, {"region": "eu"}]],
        [[MsgType.PING, 7, "me", "peer"]],
        [[MsgType.SUSPECT, "peer", 3, "x"], [MsgType.ACK, 1, "peer"]],
        [[MsgType.DEAD, "ghost", 1, "peer", False]],
    ]
    return [encode(Keyring([KEY]), "peer", m) for m in msgs]


async def test_ten_thousand_random_and_mutated_packets_leave_the_agent_healthy() -> None:
    svc = service()
    rng = random.Random(2026)
    good = valid_packets()
    wrong_key = encode(
        Keyring([OTHER]), "evil", [[MsgType.ALIVE, "evil", 0, ("1.2.3.4", 1), 1, {}]]
    )
    for i in range(10_000):
        kind = i % 5
        if kind == 0:
            packet = rng.randbytes(rng.randint(0, 1500))
        elif kind == 1:  # bit flips in a valid packet
            buf = bytearray(rng.choice(good))
            for _ in range(rng.randint(1, 8)):
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
            packet = bytes(buf)
        elif kind == 2:  # truncation
            p = rng.choice(good)
            packet = p[: rng.randrange(len(p))]
        elif kind == 3:
            packet = wrong_key
        else:  # well sealed but nonsense inside
            junk = rng.choice(
                [
                    b"\xc1",
                    msgpack.packb([9, "x", []]),
                    msgpack.packb({"a": 1}),
                    msgpack.packb([1, "x", [[99]]]),
                    msgpack.packb([1, "x", [[1, "a"]]]),
                    rng.randbytes(40),
                ]
            )
            packet = Keyring([KEY]).seal(junk)
        svc.handle_packet(packet, ("127.0.0.9", 9))
    dropped = svc.counters()["dropped"]
    assert sum(dropped.values()) >= 9_000
    assert {"bad_key_or_tag", "truncated", "malformed_msgpack"} <= set(dropped)
    assert "internal_error" not in dropped
    assert "evil" not in svc.core.members if svc.core else False
    # still healthy: a valid packet is processed normally afterwards
    svc.handle_packet(good[0], ("127.0.0.2", 7946))
    assert svc.core is not None and svc.core.members["peer"].meta == {"region": "eu"}


def test_oversized_and_wrong_version_are_named() -> None:
    ring = Keyring([KEY])
    for packet, reason in (
        (b"x" * 70_000, "oversized"),
        (ring.seal(msgpack.packb([99, "p", []])), "bad_version"),
        (ring.seal(b"\x93\x01"), "malformed_msgpack"),
    ):
        try:
            decode(ring, packet)
        except DecodeError as exc:
            assert exc.reason == reason
        else:
            raise AssertionError(f"{reason} accepted")


def test_key_ring_accepts_any_installed_key_for_rotation() -> None:
    old_only = Keyring([OTHER])
    both = Keyring([KEY, OTHER])
    packet = encode(old_only, "peer", [[MsgType.ACK, 1, "peer"]])
    assert decode(both, packet)[0] == "peer"


anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=500)
@given(anything)
def test_decoder_rejects_any_structure_cleanly(value: object) -> None:
    raw = (
        msgpack.packb([1, "p", [value]])
        if not isinstance(value, list)
        else pack_messages("p", [value])
    )
    with contextlib.suppress(DecodeError):
        decode(None, raw)
