"""Project secrets, sealed with the cluster key: written once, never shown again.

A spec's `"secrets": {"NAME": "value"}` is sealed by the agent that takes the `PUT` (AES-256-GCM,
the key derived with HKDF-SHA256 from the cluster key ring's primary key, a fresh 96-bit nonce
per seal, the project's name as associated data so a box cannot be moved to another project).
From then on only the box travels and rests: in the project's registry entry (SQLite, every
agent), in every push and pull between agents, in the servo spec sent to a host and in that
host's store. The host opens it only when it builds the container's environment
(`node.runtime_docker`). Every route, the CLI and the logs see the names alone.

Any key of the ring opens a box (the ring's rotation rule, `node.keys`): a box sealed before a
rotation stays readable until the old key is removed; a `PUT` after it reseals with the new one.

Whether the secrets changed (a new generation, rolled out like an env change) is decided on a
digest, HMAC-SHA256 of the canonical plaintext under a second HKDF-derived key: boxes differ on
every seal (fresh nonces), and a plain hash of a short password would be a dictionary lookup.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "v1"
_SEAL_INFO = b"shoal/secrets/aes-gcm/v1"
_DIGEST_INFO = b"shoal/secrets/digest/v1"
NONCE_BYTES = 12


class SecretError(ValueError):
    """A box that no installed key opens, or that is not a box at all."""


def _derive(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


class SecretBox:
    """Seals and opens project secrets with the cluster key ring (first key primary)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        """`keys` is the live ring (the agent's list, changed in place by `shoal keys`): read
        at every call, so a rotation reaches boxes sealed and opened from then on."""
        if not keys:
            raise ValueError("a secret box needs at least one cluster key")
        self._keys = keys
        self._derived: dict[bytes, tuple[AESGCM, bytes]] = {}

    def _for(self, key: bytes) -> tuple[AESGCM, bytes]:
        derived = self._derived.get(key)
        if derived is None:
            derived = (AESGCM(_derive(key, _SEAL_INFO)), _derive(key, _DIGEST_INFO))
            self._derived[key] = derived
        return derived

    def seal(self, project: str, secrets: Mapping[str, str]) -> str:
        """`secrets` as one box (text, safe in JSON); "" for no secrets."""
        if not secrets:
            return ""
        plain = json.dumps(dict(sorted(secrets.items())), separators=(",", ":")).encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._for(self._keys[0])[0].encrypt(nonce, plain, project.encode())
        return f"{VERSION}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, project: str, box: str) -> dict[str, str]:
        if not box:
            return {}
        version, _, body = box.partition(":")
        if version != VERSION:
            raise SecretError(f"unknown secret box version {version!r}")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise SecretError("a secret box is not base64") from None
        nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        for key in list(self._keys):
            aead = self._for(key)[0]
            try:
                plain = aead.decrypt(nonce, sealed, project.encode())
            except (InvalidTag, ValueError):
                continue
            opened = json.loads(plain)
            return {str(k): str(v) for k, v in opened.items()}
        raise SecretError(f"no installed cluster key opens {project}'s secrets")

    def digest(self, secrets: Mapping[str, str]) -> str:
        """Equal for equal secrets under the same primary key; "" for none."""
        if not secrets:
            return ""
        plain = json.dumps(dict(sorted(secrets.items())), separators=(",", ":")).encode()
        digest_key = self._for(self._keys[0])[1]
        return hmac.new(digest_key, plain, hashlib.sha256).hexdigest()[:32]
