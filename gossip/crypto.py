"""The cluster key ring and sealing: AES-256-GCM-SIV (RFC 8452) under keys derived with HKDF.

Why GCM-SIV and not plain AES-GCM with random 96-bit nonces: every agent seals every gossip
packet with the same cluster key for the cluster's whole life, so random nonces collide after
about 2^32 packets cluster-wide (the birthday bound), and one GCM nonce collision leaks the
authentication key. A busy 1,000-agent cluster reaches that in months. GCM-SIV derives a fresh
per-nonce key and is nonce-misuse resistant: a repeated nonce only shows that two identical
packets are identical. It needs no per-sender counter or salt state (a counter scheme must never
restart from zero after a crash; a salt scheme keeps per-sender derived keys a flood of forged
salts could churn). See docs/gossip.md, "Security".

Each purpose (gossip packets, gossip TCP frame headers, internal HTTP requests and responses)
gets its own sub-key: `HKDF-SHA256(cluster key, info="shoal/v2/<purpose>")`, so a sealed
gossip packet can never be replayed as an HTTP body or the other way round, and 16/24/32-byte
cluster keys all become the 32-byte keys GCM-SIV wants.

Every packet is sealed with the primary key and opened with whichever installed key works, so a
key rotation needs no downtime (Serf's keyring): install the new key everywhere, `use` it
(make it primary) everywhere, remove the old one. A sealed packet is
`magic(1) | nonce(12) | ciphertext+tag(16)`; the magic and the caller's associated data are
authenticated with it. Packets of the previous format (magic 0xa7, AES-GCM straight under the
cluster key) are still opened during a rolling upgrade, never sent.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESGCMSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"\xa8"
LEGACY_MAGIC = b"\xa7"  # AES-GCM under the raw key: opened (rolling upgrade), never sent
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = len(MAGIC) + NONCE_BYTES + TAG_BYTES
KEY_SIZES = (16, 24, 32)
MAX_KEYS = 8  # a ring is tried key by key on open: bound the work a forged packet costs

GOSSIP = b"gossip"  # purpose of UDP packets and TCP frame bodies


class OpenError(ValueError):
    """Why a packet could not be opened: `reason` is a drop counter's name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeyringError(ValueError):
    """A key operation the ring refuses (unknown key, removing the primary, a bad size)."""


def fingerprint(key: bytes) -> str:
    """A key's public name: enough to tell keys apart in `shoal keys list`, useless to an
    attacker (a truncated SHA-256)."""
    return hashlib.sha256(b"shoal key fingerprint\0" + key).hexdigest()[:16]


def check_key(key: bytes) -> None:
    if len(key) not in KEY_SIZES:
        raise KeyringError(f"cluster keys are 16, 24 or 32 bytes, not {len(key)}")


def _subkey(key: bytes, purpose: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"shoal/v2/" + purpose)
    return hkdf.derive(key)


class Keyring:
    """The installed cluster keys, the primary first. One instance is shared by the gossip
    transport and the internal HTTP client and server, so `use` switches all three at once."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise KeyringError("a key ring needs at least one key")
        self._keys: list[bytes] = []
        self._ciphers: dict[tuple[bytes, bytes], AESGCMSIV] = {}
        self._legacy: dict[bytes, AESGCM] = {}
        for k in keys:
            self.install(bytes(k))

    # --- the ring ---------------------------------------------------------------------------
    @property
    def keys(self) -> list[bytes]:
        return list(self._keys)

    @property
    def primary(self) -> bytes:
        return self._keys[0]

    def install(self, key: bytes) -> bool:
        """Add a key (accepted on receive, not yet used to send). False when already there."""
        check_key(key)
        if key in self._keys:
            return False
        if len(self._keys) >= MAX_KEYS:
            raise KeyringError(f"the ring holds {MAX_KEYS} keys already: remove one first")
        self._keys.append(key)
        return True

    def use(self, key: bytes) -> None:
        """Make an installed key the primary: everything sent from now on is sealed with it."""
        if key not in self._keys:
            raise KeyringError("key is not installed here: install it first")
        self._keys.remove(key)
        self._keys.insert(0, key)

    def remove(self, key: bytes) -> bool:
        """Drop a key that is not the primary. False when it was not installed."""
        if key not in self._keys:
            return False
        if key == self._keys[0]:
            raise KeyringError("the primary key cannot be removed: `use` another key first")
        self._keys.remove(key)
        self._ciphers = {ck: c for ck, c in self._ciphers.items() if ck[0] != key}
        self._legacy.pop(key, None)
        return True

    def _cipher(self, key: bytes, purpose: bytes) -> AESGCMSIV:
        cipher = self._ciphers.get((key, purpose))
        if cipher is None:
            cipher = self._ciphers[(key, purpose)] = AESGCMSIV(_subkey(key, purpose))
        return cipher

    # --- sealing ----------------------------------------------------------------------------
    def seal(self, plaintext: bytes, aad: bytes = b"", purpose: bytes = GOSSIP) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        cipher = self._cipher(self._keys[0], purpose)
        return MAGIC + nonce + cipher.encrypt(nonce, plaintext, MAGIC + aad)

    def open(self, packet: bytes, aad: bytes = b"", purpose: bytes = GOSSIP) -> bytes:
        if len(packet) < OVERHEAD:
            raise OpenError("truncated")
        magic = packet[:1]
        nonce, body = packet[1 : 1 + NONCE_BYTES], packet[1 + NONCE_BYTES :]
        if magic == MAGIC:
            for key in self._keys:
                try:
                    return self._cipher(key, purpose).decrypt(nonce, body, MAGIC + aad)
                except InvalidTag:
                    continue
            raise OpenError("bad_key_or_tag")
        if magic == LEGACY_MAGIC and purpose == GOSSIP and not aad:
            for key in self._keys:
                legacy = self._legacy.get(key)
                if legacy is None:
                    legacy = self._legacy[key] = AESGCM(key)
                try:
                    return legacy.decrypt(nonce, body, LEGACY_MAGIC)
                except InvalidTag:
                    continue
            raise OpenError("bad_key_or_tag")
        raise OpenError("bad_magic")
