"""Packets on the wire: a versioned msgpack envelope holding several messages (a compound
packet), sealed by the key ring. Decoding never raises anything but `DecodeError`, whose reason
names the drop counter to bump.

    envelope = [version, sender_name, [message, ...]]

A TCP frame is `sealed header | sealed body`. The header has a fixed size (`TCP_HEADER_BYTES`)
and holds the body's size and the sender's clock; the body is sealed with the header as
associated data, so it cannot be spliced behind another header. A receiver reads the header
alone, opens it, and only then reads (and buffers) the body it announces: a connection without
the cluster key costs the receiver `TCP_HEADER_BYTES`, never an announced 8 MiB. A header older
than `TCP_HEADER_SKEW_MS` is refused, so a captured one cannot be replayed later.
"""

from __future__ import annotations

import struct
import threading
from typing import Any

import msgpack

from gossip.crypto import OVERHEAD, Keyring, OpenError
from gossip.messages import (
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    MalformedMessage,
    Msg,
    validate,
)

MAX_UDP_BYTES = 65_000
MAX_TCP_BYTES = 8 * 1024 * 1024
MAX_MESSAGES = 256
TCP_HEADER = b"gossip-tcp-header"  # the sealing purpose of TCP frame headers
_HEADER_PLAIN = struct.Struct(">IQ")  # body size, sender's wall clock in ms
TCP_HEADER_BYTES = _HEADER_PLAIN.size + OVERHEAD
TCP_HEADER_SKEW_MS = 300_000


class DecodeError(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Packers(threading.local):
    """One reusable Packer per thread: `msgpack.packb` builds a new Packer on every call, which
    costs more than packing a small gossip message, and a Packer must not be shared by threads."""

    def __init__(self) -> None:
        self.packer = msgpack.Packer(use_bin_type=True)


_packers = _Packers()


def pack_messages(sender: str, msgs: list[Msg]) -> bytes:
    return _packers.packer.pack([PROTOCOL_VERSION, sender, msgs])  # type: ignore[no-any-return]


def encoded_size(msg: Msg) -> int:
    return len(_packers.packer.pack(msg))


class PacketSizer:
    """`len(pack_messages(sender, msgs))` from the messages' encoded sizes summed, for the
    simulator, which counts the bytes of every packet it passes: packing each whole was its
    largest single cost after an outage. The gossip core knows each message's size already
    (it fills packets to a byte budget) and hands the sum on with each packet (`Gossip.outbox`);
    what is left is the envelope (version, sender) and the list's header, by its length.
    `tests/unit/gossip/test_packet_sizer.py` holds it to packing, for random packets and for
    every packet of simulated outages with metadata and inventory traffic."""

    def __init__(self) -> None:
        self._envelopes: dict[str, int] = {}

    def size(self, sender: str, count: int, msg_bytes: int) -> int:
        envelope = self._envelopes.get(sender)
        if envelope is None:
            # the empty list's one-byte header is replaced by the real one below
            envelope = self._envelopes[sender] = len(pack_messages(sender, [])) - 1
        header = 1 if count < 16 else 3 if count < 65_536 else 5
        return envelope + header + msg_bytes


def encode(keyring: Keyring | None, sender: str, msgs: list[Msg], aad: bytes = b"") -> bytes:
    raw = pack_messages(sender, msgs)
    return keyring.seal(raw, aad) if keyring is not None else raw


def seal_tcp_header(keyring: Keyring, body_bytes: int, now_ms: int) -> bytes:
    header = keyring.seal(_HEADER_PLAIN.pack(body_bytes, now_ms), purpose=TCP_HEADER)
    assert len(header) == TCP_HEADER_BYTES
    return header


def open_tcp_header(keyring: Keyring, header: bytes, now_ms: int) -> int:
    """The size of the body a TCP frame header announces, once it proved it holds the key."""
    try:
        size, sent_ms = _HEADER_PLAIN.unpack(keyring.open(header, purpose=TCP_HEADER))
    except OpenError:
        raise DecodeError("tcp_bad_header") from None
    if abs(now_ms - sent_ms) > TCP_HEADER_SKEW_MS:
        raise DecodeError("tcp_stale_header")
    if size > MAX_TCP_BYTES:
        raise DecodeError("oversized")
    return int(size)


def decode(
    keyring: Keyring | None, packet: bytes, limit: int = MAX_UDP_BYTES, aad: bytes = b""
) -> tuple[str, list[Msg]]:
    if len(packet) > limit:
        raise DecodeError("oversized")
    if keyring is not None:
        try:
            packet = keyring.open(packet, aad)
        except OpenError as exc:
            raise DecodeError(exc.reason) from None
    try:
        env: Any = msgpack.unpackb(
            packet,
            raw=False,
            strict_map_key=True,
            max_bin_len=limit,
            max_str_len=limit,
            # a push-pull carries one entry per member: a fixed cap here would refuse every
            # exchange (joins included) in a cluster past that many agents
            max_array_len=max(10_000, limit // 8),
            max_map_len=max(10_000, limit // 8),
        )
    except Exception:  # msgpack raises a zoo of exceptions on garbage
        raise DecodeError("malformed_msgpack") from None
    if not isinstance(env, list) or len(env) != 3:
        raise DecodeError("bad_envelope")
    version, sender, msgs = env
    if not isinstance(version, int) or not MIN_PROTOCOL_VERSION <= version <= PROTOCOL_VERSION:
        raise DecodeError("bad_version")
    if not isinstance(sender, str) or not sender or not isinstance(msgs, list):
        raise DecodeError("bad_envelope")
    if len(msgs) > MAX_MESSAGES:
        raise DecodeError("too_many_messages")
    try:
        return sender, [validate(m) for m in msgs]
    except MalformedMessage:
        raise DecodeError("malformed_message") from None
