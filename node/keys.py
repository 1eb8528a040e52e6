"""Loading the cluster key ring: a file of base64 keys, one per line, the first one primary.

Sending uses the primary key; receiving accepts any key in the ring, so operators rotate keys by
installing the new one everywhere, making it primary, then removing the old one.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path


class KeyFileError(ValueError):
    """The key file is missing, empty or holds something that is not a 16/24/32-byte key."""


def parse_keys(text: str, source: str = "key file") -> list[bytes]:
    keys: list[bytes] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise KeyFileError(f"{source} line {lineno}: not base64") from None
        if len(key) not in (16, 24, 32):
            raise KeyFileError(
                f"{source} line {lineno}: key is {len(key)} bytes, need 16, 24 or 32"
            )
        keys.append(key)
    if not keys:
        raise KeyFileError(f"{source} holds no key (make one with `shoal keygen`)")
    return keys


def load_keys(path: Path | None) -> tuple[list[bytes], bool]:
    """The key ring from `path`, or a fresh ephemeral key (second value True) when no file."""
    if path is None:
        return [secrets.token_bytes(32)], True
    try:
        text = path.read_text()
    except OSError as exc:
        raise KeyFileError(f"cannot read cluster key file {path}: {exc.strerror}") from None
    return parse_keys(text, str(path)), False
