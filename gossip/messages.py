"""Gossip message types and their shapes on the wire.

WARNING: the numbers of `MsgType` are part of the protocol. Append only; never renumber or
reuse one, or agents of different versions will misread each other.

Messages are plain lists (cheap for msgpack, cheap for the simulator to pass around without
encoding):

    PING           [1, seq, target, from]
    INDIRECT_PING  [2, seq, target, target_addr, from, from_addr]
    ACK            [3, seq, from]
    NACK           [4, seq, from]
    SUSPECT        [5, name, incarnation, from]
    ALIVE          [6, name, incarnation, addr, meta_version, meta]
    DEAD           [7, name, incarnation, from, left]
    PUSH_PULL      [8, join, [member_state, ...], app_state]   (TCP only; app_state optional)
    APP            [9, key, payload]                     (an application broadcast)
    APP_PULL       [10, from]                            (TCP only: "your application state?")
    APP_STATE      [11, from, app_state]                 (TCP only: the answer)

APP carries the application's own news (a host's servo inventory deltas, project specs) beside
SWIM's, retransmitted with the same bound (memberlist's delegate broadcasts, Serf's user
events); `key` names what a newer broadcast replaces in the queue. The core does not look
inside `payload` or `app_state`: the application's delegate validates them.

An address is [host, port]; a member state in push-pull is
[name, addr, incarnation, status, meta_version, meta].
"""

from __future__ import annotations

import enum
from typing import Any

PROTOCOL_VERSION = 1
MIN_PROTOCOL_VERSION = 1

Msg = list[Any]
Addr = tuple[str, int]


class MsgType(enum.IntEnum):
    PING = 1
    INDIRECT_PING = 2
    ACK = 3
    NACK = 4
    SUSPECT = 5
    ALIVE = 6
    DEAD = 7
    PUSH_PULL = 8
    APP = 9
    APP_PULL = 10
    APP_STATE = 11


# memberlist's MetaMaxSize: a member's metadata rides in every ALIVE message, which must fit one
# UDP packet beside others; what grows with a host (its servos) goes on the APP channel.
META_MAX_BYTES = 512


class MetaTooLarge(ValueError):
    """This agent's own metadata would not fit META_MAX_BYTES: a programming or config error
    (e.g. a very long region name), said clearly at the source rather than never broadcast."""


class Status(enum.StrEnum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"


STATUS_CODES = {Status.ALIVE: 0, Status.SUSPECT: 1, Status.DEAD: 2, Status.LEFT: 3}
STATUS_BY_CODE = {v: k for k, v in STATUS_CODES.items()}


class MalformedMessage(ValueError):
    """A peer sent a message whose shape is wrong: drop it and count it, never crash."""


def _addr(raw: Any) -> Addr:
    if (
        not isinstance(raw, list | tuple)
        or len(raw) != 2
        or not isinstance(raw[0], str)
        or not isinstance(raw[1], int)
        or not 0 < raw[1] < 65536
    ):
        raise MalformedMessage(f"bad address {raw!r}")
    return (raw[0], raw[1])


def _str(raw: Any) -> str:
    if not isinstance(raw, str) or not raw or len(raw) > 256:
        raise MalformedMessage(f"bad name {raw!r}")
    return raw


def _int(raw: Any) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0 or raw >= 1 << 63:
        raise MalformedMessage(f"bad integer {raw!r}")
    return raw


_ARITY = {
    MsgType.PING: 4,
    MsgType.INDIRECT_PING: 6,
    MsgType.ACK: 3,
    MsgType.NACK: 3,
    MsgType.SUSPECT: 4,
    MsgType.ALIVE: 6,
    MsgType.DEAD: 5,
    MsgType.PUSH_PULL: 3,
    MsgType.APP: 3,
    MsgType.APP_PULL: 2,
    MsgType.APP_STATE: 3,
}


def validate(msg: Any) -> Msg:
    """Check a decoded message's shape and normalise it (addresses become tuples)."""
    if not isinstance(msg, list) or not msg or not isinstance(msg[0], int):
        raise MalformedMessage("message is not a typed list")
    try:
        kind = MsgType(msg[0])
    except ValueError:
        raise MalformedMessage(f"unknown message type {msg[0]}") from None
    if len(msg) != _ARITY[kind] and not (kind is MsgType.PUSH_PULL and len(msg) == 4):
        raise MalformedMessage(f"{kind.name} has {len(msg)} fields, wants {_ARITY[kind]}")
    if kind is MsgType.PING:
        return [kind, _int(msg[1]), _str(msg[2]), _str(msg[3])]
    if kind is MsgType.INDIRECT_PING:
        return [kind, _int(msg[1]), _str(msg[2]), _addr(msg[3]), _str(msg[4]), _addr(msg[5])]
    if kind in (MsgType.ACK, MsgType.NACK):
        return [kind, _int(msg[1]), _str(msg[2])]
    if kind is MsgType.SUSPECT:
        return [kind, _str(msg[1]), _int(msg[2]), _str(msg[3])]
    if kind is MsgType.ALIVE:
        if not isinstance(msg[5], dict):
            raise MalformedMessage("ALIVE meta is not a map")
        return [kind, _str(msg[1]), _int(msg[2]), _addr(msg[3]), _int(msg[4]), msg[5]]
    if kind is MsgType.DEAD:
        if not isinstance(msg[4], bool):
            raise MalformedMessage("DEAD left flag is not a bool")
        return [kind, _str(msg[1]), _int(msg[2]), _str(msg[3]), msg[4]]
    if kind is MsgType.APP:
        return [kind, _str(msg[1]), msg[2]]
    if kind is MsgType.APP_PULL:
        return [kind, _str(msg[1])]
    if kind is MsgType.APP_STATE:
        return [kind, _str(msg[1]), msg[2]]
    if not isinstance(msg[1], bool) or not isinstance(msg[2], list):
        raise MalformedMessage("bad PUSH_PULL")
    app = msg[3] if len(msg) == 4 else None
    return [kind, msg[1], [validate_state(s) for s in msg[2]], app]


def validate_state(raw: Any) -> Msg:
    if not isinstance(raw, list) or len(raw) != 6:
        raise MalformedMessage("bad member state")
    status = raw[3]
    if status not in STATUS_BY_CODE or not isinstance(raw[5], dict):
        raise MalformedMessage("bad member state")
    return [_str(raw[0]), _addr(raw[1]), _int(raw[2]), status, _int(raw[4]), raw[5]]
