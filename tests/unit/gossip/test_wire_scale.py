"""A push-pull frame carries one entry per member: it must open in clusters of any size the TCP
frame limit allows, while UDP packets keep their tight caps."""

from __future__ import annotations

import msgpack
import pytest

from gossip.crypto import Keyring
from gossip.messages import MsgType
from gossip.wire import MAX_TCP_BYTES, DecodeError, decode, encode

RING = Keyring([bytes(range(32))])


def member(i: int) -> list[object]:
    return [f"h{i:05d}", [f"10.0.{i // 256 % 256}.{i % 256}", 7946], 0, 0, 1, {"region": "r"}]


def test_a_push_pull_of_a_12000_member_cluster_opens() -> None:
    states = [member(i) for i in range(12_000)]
    frame = encode(RING, "h00000", [[MsgType.PUSH_PULL, False, states, None]])
    sender, msgs = decode(RING, frame, limit=MAX_TCP_BYTES)
    assert sender == "h00000"
    assert len(msgs[0][2]) == 12_000


def test_a_udp_packet_still_refuses_a_huge_array() -> None:
    # a tiny packet claiming a 20,000-element array must not be taken at its word
    raw = msgpack.packb([1, "x", [[MsgType.PING, 1, "y", "x"]]])
    bomb = raw[:-1] + b"\xdc\x4e\x20"  # array16 header: 20,000 elements that are not there
    with pytest.raises(DecodeError):
        decode(RING, RING.seal(bomb))
