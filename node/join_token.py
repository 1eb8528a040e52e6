"""Join tokens: one short-lived line that carries everything a new host needs to join, so the
join command an agent prints works verbatim on another machine (no key file copied by hand).

    shoal-join1.<base64url(msgpack {"v": 1, "s": [seeds], "k": [keys], "e": expiry}) + mac>

- `s`: gossip addresses (`HOST:PORT`) of members to contact first, the issuer's own first.
- `k`: the cluster key ring, primary first. The joiner cannot hold a key yet, so the token must
  carry it: **the token is a secret** for as long as the key is (treat it like the key file),
  which is why it is only handed to callers with the API token (or on loopback) and why it
  expires.
- `e`: expiry, unix seconds. A joiner refuses an expired token unless it already holds the key
  from an earlier join (a restart with the same command then works: addresses are not secret).
- mac: the first 8 bytes of HMAC-SHA256 under the primary key it carries. It cannot stop a
  forgery (whoever hands you a token could hand you any command); it catches a token cut short
  or mistyped when pasted, with a clear error instead of a cluster that never forms.

Pure: time is passed in. Errors are `JoinTokenError`, a `ValueError` with a one-line message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

import attrs
import msgpack

PREFIX = "shoal-join1."
VERSION = 1
MAC_BYTES = 8
MAX_TOKEN_CHARS = 4096  # bound what we decode: a token is a few hundred characters
MAX_SEEDS = 5
MAX_TTL_S = 7 * 24 * 3600
DEFAULT_TTL_S = 3600.0
KEY_SIZES = (16, 24, 32)


class JoinTokenError(ValueError):
    """The token is malformed, damaged, or expired; `str()` says which, for the operator."""


@attrs.frozen
class JoinToken:
    seeds: tuple[str, ...]
    keys: tuple[bytes, ...]
    expires_at_s: int

    def expired(self, now_s: float) -> bool:
        return now_s >= self.expires_at_s


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, b"shoal-join|" + payload, hashlib.sha256).digest()[:MAC_BYTES]


def issue(seeds: Sequence[str], keys: Sequence[bytes], now_s: float, ttl_s: float) -> str:
    """A token for `seeds` (the first few) and the whole key ring, valid `ttl_s` from `now_s`."""
    if not seeds:
        raise JoinTokenError("a join token needs at least one seed address")
    if not keys or any(len(k) not in KEY_SIZES for k in keys):
        raise JoinTokenError("a join token needs the cluster key ring (16, 24 or 32-byte keys)")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise JoinTokenError(f"ttl must be between 1 s and {MAX_TTL_S // 86400} days")
    body = {
        "v": VERSION,
        "s": list(seeds)[:MAX_SEEDS],
        "k": list(keys),
        "e": int(now_s + ttl_s),
    }
    payload: bytes = msgpack.packb(body, use_bin_type=True)
    blob = payload + _mac(keys[0], payload)
    return PREFIX + base64.urlsafe_b64encode(blob).decode().rstrip("=")


def parse(text: str) -> JoinToken:
    """The token's content, checked for shape and damage (not for expiry: see `JoinToken`)."""
    text = text.strip()
    if len(text) > MAX_TOKEN_CHARS:
        raise JoinTokenError("join token is too long to be one")
    if not text.startswith(PREFIX):
        raise JoinTokenError(f"not a Shoal join token (it starts with {PREFIX!r})")
    encoded = text[len(PREFIX) :]
    try:
        blob = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        raise JoinTokenError("join token is damaged (not base64): copy it again") from None
    payload, mac = blob[:-MAC_BYTES], blob[-MAC_BYTES:]
    try:
        body = msgpack.unpackb(payload, raw=False, strict_map_key=True, max_bin_len=1024)
    except Exception:  # msgpack raises several unrelated types on garbage
        raise JoinTokenError("join token is damaged: copy it again") from None
    token = _from_body(body)
    if not hmac.compare_digest(_mac(token.keys[0], payload), mac):
        raise JoinTokenError("join token is damaged (checksum mismatch): copy it again")
    return token


def _from_body(body: Any) -> JoinToken:
    if not isinstance(body, dict):
        raise JoinTokenError("join token is damaged: copy it again")
    if body.get("v") != VERSION:
        raise JoinTokenError(f"join token version {body.get('v')!r} is not one this agent reads")
    seeds, keys, expires = body.get("s"), body.get("k"), body.get("e")
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, str) and s for s in seeds)
        or not isinstance(keys, list)
        or not keys
        or not all(isinstance(k, bytes) and len(k) in KEY_SIZES for k in keys)
        or not isinstance(expires, int)
    ):
        raise JoinTokenError("join token is damaged: copy it again")
    return JoinToken(tuple(seeds[:MAX_SEEDS]), tuple(keys), expires)


def seeds_for(own: str, peers: Sequence[tuple[str, str]]) -> list[str]:
    """The issuer's gossip address first, then other live members' (status, addr), so a joiner
    still finds the cluster when the issuer is down."""
    seeds = [own]
    for status, addr in sorted(peers, key=lambda p: p[1]):
        if status == "alive" and addr and addr not in seeds:
            seeds.append(addr)
    return seeds[:MAX_SEEDS]


def join_command(token: str, runtime: str, region: str) -> str:
    """The command a new host runs, verbatim: the token carries seeds and keys; the host's own
    name (its hostname), addresses and capacity are found on that host."""
    return f"shoal agent --join-token {token} --runtime {runtime} --region {region}"
