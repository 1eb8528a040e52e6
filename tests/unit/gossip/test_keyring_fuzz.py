"""Fuzz the decoders this issue added: a TCP frame header, a sealed internal request and a
sealed answer, from random and mutated bytes, must be refused cleanly (their one error type)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.crypto import Keyring, OpenError
from gossip.wire import TCP_HEADER_BYTES, DecodeError, open_tcp_header, seal_tcp_header
from node.internal_auth import AuthError, ReplayWindow, open_request, open_response, seal_request

KEY = b"f" * 32
RING = Keyring([KEY])
NOW = 1_700_000_000_000
HEADER = seal_tcp_header(RING, 100, NOW)
AUTH, NONCE, SEALED = seal_request(RING, "a", NOW, "POST", "/internal/servos", b"{}")


def _mutate(data: bytes, at: int, bit: int) -> bytes:
    i = at % len(data)
    return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2 * TCP_HEADER_BYTES), st.integers(0, 10_000), st.integers(0, 7))
def test_tcp_headers_from_junk_or_flipped_bits_are_refused(junk: bytes, at: int, bit: int) -> None:
    for candidate in (junk, _mutate(HEADER, at, bit)):
        try:
            open_tcp_header(RING, candidate, NOW)
        except DecodeError:
            continue
        raise AssertionError(f"opened {candidate!r}")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.binary(max_size=200), st.integers(0, 10_000), st.integers(0, 7))
def test_sealed_requests_from_junk_or_flipped_bits_are_refused(
    header: str, body: bytes, at: int, bit: int
) -> None:
    cases = [(header, body), (AUTH, _mutate(SEALED, at, bit)), (header, SEALED)]
    for h, b in cases:
        if (h, b) == (AUTH, SEALED):
            continue
        try:
            open_request(RING, ReplayWindow(), "a", h, NOW, "POST", "/internal/servos", b)
        except AuthError:
            continue
        raise AssertionError(f"opened {h!r} {b!r}")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.integers(100, 599))
def test_answers_from_junk_are_refused(body: bytes, status: int) -> None:
    try:
        open_response(RING, NONCE, status, body)
    except OpenError:
        return
    raise AssertionError("opened junk")
