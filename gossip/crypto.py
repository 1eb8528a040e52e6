"""The cluster key ring and packet sealing: AES-GCM via `cryptography`.

Every packet is sealed with the primary key and opened with whichever installed key works, so a
key rotation needs no downtime: install the new key everywhere, make it primary, remove the old
one. A sealed packet is `magic(1) | nonce(12) | ciphertext+tag`; the magic byte doubles as
associated data, binding the packet to this framing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"\xa7"
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = len(MAGIC) + NONCE_BYTES + TAG_BYTES


class OpenError(ValueError):
    """Why a packet could not be opened: `reason` is a drop counter's name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Keyring:
    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        for k in keys:
            if len(k) not in (16, 24, 32):
                raise ValueError(f"AES keys are 16, 24 or 32 bytes, not {len(k)}")
        self._ciphers = [AESGCM(bytes(k)) for k in keys]

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return MAGIC + nonce + self._ciphers[0].encrypt(nonce, plaintext, MAGIC)

    def open(self, packet: bytes) -> bytes:
        if len(packet) < OVERHEAD:
            raise OpenError("truncated")
        if packet[:1] != MAGIC:
            raise OpenError("bad_magic")
        nonce, body = packet[1 : 1 + NONCE_BYTES], packet[1 + NONCE_BYTES :]
        for cipher in self._ciphers:
            try:
                return cipher.decrypt(nonce, body, MAGIC)
            except InvalidTag:
                continue
        raise OpenError("bad_key_or_tag")
