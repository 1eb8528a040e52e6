"""The cluster key ring: GCM-SIV sealing, purposes kept apart, rotation as Serf's keyring does
it (install, use, remove), and the fixed-size TCP frame header."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gossip.crypto import (
    GOSSIP,
    LEGACY_MAGIC,
    MAGIC,
    MAX_KEYS,
    NONCE_BYTES,
    OVERHEAD,
    Keyring,
    KeyringError,
    OpenError,
    fingerprint,
)
from gossip.wire import (
    MAX_TCP_BYTES,
    TCP_HEADER_BYTES,
    TCP_HEADER_SKEW_MS,
    DecodeError,
    open_tcp_header,
    seal_tcp_header,
)

OLD, NEW, OTHER = b"o" * 32, b"n" * 16, b"x" * 24


def test_seal_open_round_trip_for_every_key_size_with_fixed_overhead() -> None:
    for key in (OLD, NEW, OTHER):
        ring = Keyring([key])
        packet = ring.seal(b"hello", b"ad")
        assert packet[:1] == MAGIC and len(packet) == 5 + OVERHEAD
        assert ring.open(packet, b"ad") == b"hello"


def test_associated_data_purpose_and_key_must_all_match() -> None:
    ring = Keyring([OLD])
    packet = ring.seal(b"body", b"ad")
    for bad in (
        lambda: ring.open(packet, b"other"),
        lambda: ring.open(packet, b"ad", purpose=b"internal-request"),
        lambda: Keyring([NEW]).open(packet, b"ad"),
        lambda: ring.open(packet[:-1], b"ad"),
        lambda: ring.open(b"\x00" + packet[1:], b"ad"),
    ):
        with pytest.raises(OpenError):
            bad()


def test_the_same_plaintext_seals_differently_each_time() -> None:
    ring = Keyring([OLD])
    assert ring.seal(b"same") != ring.seal(b"same")


def test_rotation_install_use_remove_without_a_gap() -> None:
    """Serf's procedure: install NEW everywhere (both open), use NEW (sent with NEW, OLD still
    opens), remove OLD (only NEW opens)."""
    a, b = Keyring([OLD]), Keyring([OLD])
    assert a.install(NEW) and not a.install(NEW)
    b.install(NEW)
    from_old = a.seal(b"m")
    a.use(NEW)
    assert a.primary == NEW and a.keys == [NEW, OLD]
    from_new = a.seal(b"m")
    assert b.open(from_old) == b.open(from_new) == b"m"
    with pytest.raises(OpenError):
        Keyring([OLD]).open(from_new)  # sent with NEW indeed
    b.use(NEW)
    assert b.remove(OLD) and not b.remove(OLD)
    assert b.keys == [NEW]
    with pytest.raises(OpenError):
        b.open(from_old)


def test_the_ring_refuses_what_would_break_it() -> None:
    ring = Keyring([OLD])
    with pytest.raises(KeyringError):
        ring.remove(OLD)  # the primary
    with pytest.raises(KeyringError):
        ring.use(NEW)  # not installed
    with pytest.raises(KeyringError):
        ring.install(b"short")
    with pytest.raises(KeyringError):
        Keyring([])
    for i in range(MAX_KEYS - 1):
        ring.install(bytes([i]) * 32)
    with pytest.raises(KeyringError):
        ring.install(b"z" * 32)


def test_fingerprints_name_keys_without_showing_them() -> None:
    assert fingerprint(OLD) != fingerprint(NEW)
    assert len(fingerprint(OLD)) == 16 and OLD.hex()[:16] != fingerprint(OLD)


def test_packets_of_the_previous_format_still_open_during_an_upgrade() -> None:
    nonce = os.urandom(NONCE_BYTES)
    legacy = LEGACY_MAGIC + nonce + AESGCM(OLD).encrypt(nonce, b"old", LEGACY_MAGIC)
    assert Keyring([NEW, OLD]).open(legacy) == b"old"
    with pytest.raises(OpenError):
        Keyring([OLD]).open(legacy, purpose=b"internal-request")  # gossip packets only
    assert GOSSIP == b"gossip"


def test_a_tcp_header_has_a_fixed_size_and_must_be_fresh_and_keyed() -> None:
    ring = Keyring([OLD])
    header = seal_tcp_header(ring, 1234, 1_000_000)
    assert len(header) == TCP_HEADER_BYTES
    assert open_tcp_header(ring, header, 1_000_500) == 1234
    cases = {
        "tcp_bad_header": (Keyring([NEW]), header, 1_000_000),
        "tcp_stale_header": (ring, header, 1_000_000 + TCP_HEADER_SKEW_MS + 1),
        "oversized": (ring, seal_tcp_header(ring, MAX_TCP_BYTES + 1, 1_000_000), 1_000_000),
    }
    for reason, (r, h, now) in cases.items():
        with pytest.raises(DecodeError) as err:
            open_tcp_header(r, h, now)
        assert err.value.reason == reason
    # a header from the gossip packet purpose does not pass as a TCP header
    with pytest.raises(DecodeError):
        open_tcp_header(ring, ring.seal(b"\x00" * 12), 1_000_000)
