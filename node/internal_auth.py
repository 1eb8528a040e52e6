"""Agent-to-agent HTTP (`/internal/` routes): every request and every answer is sealed with the
cluster key ring (AES-GCM-SIV, see `gossip.crypto`), bound to its destination, and used once.

Why an AEAD channel keyed from the cluster key ring rather than TLS with a cluster CA: the ring
is already the cluster's one secret, distributed, rotated (`shoal keys`) and checked by gossip;
TLS would add a CA, per-agent certificates, their expiry and a second rotation procedure, all
for two parties that already share a key. The channel gives what the issue asks: bodies
encrypted both ways (specs carry env values), the destination and a nonce bound into each
request, a replay window. What it does not give: forward secrecy (a stolen cluster key opens
recorded traffic; rotate keys) and hiding of paths and header sizes.

A request carries `X-Shoal-Auth: <unix_ms>:<nonce hex>` and a sealed body whose associated data
is `time, nonce, METHOD, raw path, destination agent name`. The receiver rebuilds it with *its
own* name and the ASGI raw path (never `request.url`, which a crafted Host header can poison),
so a request captured on its way to agent A does not open on agent B, nor on another route. A
request older than `MAX_SKEW_MS` is refused; a younger one is refused when its nonce was seen
(`ReplayWindow`), so a captured request cannot be replayed to A either. Only authentic requests
enter the window, so forgeries cannot fill it.

The answer is sealed under `resp, nonce, status`: a man in the middle cannot swap answers or
forge a success. Errors are split by fault: `AuthError` is the peer's (a 401, counted).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict

from gossip.crypto import Keyring, OpenError

HEADER = "X-Shoal-Auth"
SEALED_TYPE = "application/x-shoal-sealed"
MAX_SKEW_MS = 60_000  # the clock skew tolerated between agents (as before the seal)
NONCE_HEX = 32  # 128-bit random nonce per request
WINDOW_MAX = 200_000  # nonces remembered at most (~10 MiB): bounds memory under any load
REQUEST = b"internal-request"
RESPONSE = b"internal-response"


class AuthError(Exception):
    """The request is not authentic, stale or replayed: the peer's fault, answered with 401."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason  # a counter label
        self.detail = detail


def _request_aad(ts_ms: int, nonce: str, method: str, path: str, dest: str) -> bytes:
    return f"{ts_ms}\n{nonce}\n{method.upper()}\n{path}\n{dest}".encode()


def seal_request(
    ring: Keyring, dest: str, now_ms: int, method: str, path: str, body: bytes
) -> tuple[str, str, bytes]:
    """(header value, nonce, sealed body) of a request for agent `dest`."""
    nonce = secrets.token_hex(NONCE_HEX // 2)
    aad = _request_aad(now_ms, nonce, method, path, dest)
    return f"{now_ms}:{nonce}", nonce, ring.seal(body, aad, REQUEST)


def seal_response(ring: Keyring, nonce: str, status: int, body: bytes) -> bytes:
    return ring.seal(body, f"{nonce}\n{status}".encode(), RESPONSE)


def open_response(ring: Keyring, nonce: str, status: int, sealed: bytes) -> bytes:
    """The answer's plaintext; `OpenError` when it was not sealed for this request."""
    return ring.open(sealed, f"{nonce}\n{status}".encode(), RESPONSE)


class ReplayWindow:
    """Nonces seen in the last `MAX_SKEW_MS` (older requests are refused by their time, so
    nothing older needs remembering). Bounded: when full, the oldest are forgotten only if they
    have expired; otherwise new requests are refused (fail closed) until some expire."""

    def __init__(self, max_entries: int = WINDOW_MAX) -> None:
        self._seen: OrderedDict[str, int] = OrderedDict()  # nonce -> expiry ms, oldest first
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._seen)

    def admit(self, nonce: str, ts_ms: int, now_ms: int) -> str | None:
        """Record `nonce`; None when it is fresh, otherwise why it is refused."""
        while self._seen:
            oldest, expiry = next(iter(self._seen.items()))
            if expiry > now_ms:
                break
            del self._seen[oldest]
        if nonce in self._seen:
            return "replayed"
        if len(self._seen) >= self._max:
            return "replay_window_full"
        # remember it until its time could no longer pass the skew check
        self._seen[nonce] = max(now_ms, ts_ms) + MAX_SKEW_MS + 1
        return None


def open_request(
    ring: Keyring,
    window: ReplayWindow,
    me: str,
    header: str | None,
    now_ms: int,
    method: str,
    path: str,
    sealed: bytes,
) -> tuple[str, bytes]:
    """(nonce, plaintext body) of an authentic, fresh request for agent `me`; else `AuthError`."""
    if not header:
        raise AuthError("missing", "missing cluster-key seal")
    ts_text, _, nonce = header.partition(":")
    if (
        not ts_text.isascii()
        or not ts_text.isdigit()
        or len(ts_text) > 15
        or len(nonce) != NONCE_HEX
        or not all(c in "0123456789abcdef" for c in nonce)
    ):
        raise AuthError("malformed", "malformed cluster-key seal")
    ts_ms = int(ts_text)
    if abs(now_ms - ts_ms) > MAX_SKEW_MS:
        raise AuthError("stale", "cluster-key seal is stale (check the clocks)")
    try:
        body = ring.open(sealed, _request_aad(ts_ms, nonce, method, path, me), REQUEST)
    except OpenError:
        raise AuthError(
            "bad_seal", "request is not sealed for this agent with an installed cluster key"
        ) from None
    problem = window.admit(nonce, ts_ms, now_ms)
    if problem is not None:
        raise AuthError(problem, f"request refused: {problem.replace('_', ' ')}")
    return nonce, body


def asgi_path(raw_path: bytes | None, path: str, query: bytes) -> str:
    """The request target as received, from the ASGI scope (never from the Host header):
    `raw_path` holds the path (Hypercorn) or path and query (httpx's ASGI transport)."""
    target = (raw_path or path.encode()).partition(b"?")[0]
    if query:
        target += b"?" + query
    return target.decode("latin-1")
