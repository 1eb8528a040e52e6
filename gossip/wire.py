"""Packets on the wire: a versioned msgpack envelope holding several messages (a compound
packet), sealed by the key ring. Decoding never raises anything but `DecodeError`, whose reason
names the drop counter to bump.

    envelope = [version, sender_name, [message, ...]]
"""

from __future__ import annotations

import threading
from typing import Any

import msgpack

from gossip.crypto import Keyring, OpenError
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


def encode(keyring: Keyring | None, sender: str, msgs: list[Msg]) -> bytes:
    raw = pack_messages(sender, msgs)
    return keyring.seal(raw) if keyring is not None else raw


def decode(
    keyring: Keyring | None, packet: bytes, limit: int = MAX_UDP_BYTES
) -> tuple[str, list[Msg]]:
    if len(packet) > limit:
        raise DecodeError("oversized")
    if keyring is not None:
        try:
            packet = keyring.open(packet)
        except OpenError as exc:
            raise DecodeError(exc.reason) from None
    try:
        env: Any = msgpack.unpackb(
            packet,
            raw=False,
            strict_map_key=True,
            max_bin_len=limit,
            max_str_len=limit,
            max_array_len=10_000,
            max_map_len=10_000,
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
