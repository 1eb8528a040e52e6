"""Authentication of agent-to-agent HTTP (`/internal/` routes) with the cluster key.

A request carries `X-Shoal-Auth: <unix_ms>:<hex hmac>` where the HMAC-SHA256 (keyed by a cluster
key) covers the time, method, path and a hash of the body. Any installed key is accepted, so a key
rotation needs no downtime (the same key ring as gossip); a stale time (beyond the skew window)
is refused so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

HEADER = "X-Shoal-Auth"
MAX_SKEW_MS = 60_000


def _mac(key: bytes, ts_ms: int, method: str, path: str, body: bytes) -> str:
    msg = f"{ts_ms}\n{method.upper()}\n{path}\n{hashlib.sha256(body).hexdigest()}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def sign(key: bytes, now_ms: int, method: str, path: str, body: bytes) -> str:
    return f"{now_ms}:{_mac(key, now_ms, method, path, body)}"


def verify(
    keys: Sequence[bytes], header: str | None, now_ms: int, method: str, path: str, body: bytes
) -> str | None:
    """None when the request is authentic; otherwise why not (for the 401 detail and counters)."""
    if not header:
        return "missing cluster-key signature"
    ts_text, _, mac = header.partition(":")
    if not ts_text.isdigit() or not mac:
        return "malformed cluster-key signature"
    ts_ms = int(ts_text)
    if abs(now_ms - ts_ms) > MAX_SKEW_MS:
        return "cluster-key signature is stale"
    for key in keys:
        if hmac.compare_digest(_mac(key, ts_ms, method, path, body), mac):
            return None
    return "cluster-key signature does not match any installed key"
