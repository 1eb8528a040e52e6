"""Stable hashes for tie-breaking: the same on every agent, every run and every Python.

Python's `hash()` of a string is salted per process, so it must never decide anything that two
agents have to agree on. These use BLAKE2b.
"""

from __future__ import annotations

import hashlib

_MASK = (1 << 64) - 1


def stable_hash(*parts: str) -> int:
    """A 64-bit hash of the parts (joined with a separator no name contains)."""
    data = "\x1f".join(parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def mix(a: int, b: int) -> int:
    """Combine two 64-bit hashes into a well-spread 64-bit score (splitmix64 finaliser).

    Rendezvous scores are `mix(hash(project), hash(node))`: as good as hashing the pair, but a
    node's hash is computed once, which keeps a placement over thousands of nodes cheap.
    """
    z = (a ^ (b * 0x9E3779B97F4A7C15)) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)
