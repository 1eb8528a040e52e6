"""Loading the cluster key ring: a file of base64 keys, one per line, the first one primary.

Sending uses the primary key; receiving accepts any key in the ring, so operators rotate keys by
installing the new one everywhere, making it primary, then removing the old one. `shoal keys`
does each step on every agent at once (`cluster_key_op`, Serf's keyring as the model): each agent
changes the ring shared by its gossip and internal channel and rewrites its key file, and the
unsafe orders (use before install, remove of a primary) are refused before any agent changes.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import trio

from gossip.crypto import Keyring, KeyringError, check_key, fingerprint
from node.logfmt import get_logger

log = get_logger("node.keys")


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


# --- `shoal keys`: rotation as a cluster operation (Serf's keyring) -------------------------

KEY_OPS = ("install", "use", "remove")
KEY_OP_TIMEOUT_S = 10.0


def key_from_text(text: str) -> bytes:
    """A key as operators pass it (base64, as `shoal keygen` prints it); `KeyFileError`."""
    keys = parse_keys(text.strip(), "key")
    if len(keys) != 1:
        raise KeyFileError("give exactly one key")
    return keys[0]


def write_keys(path: Path, keys: Sequence[bytes]) -> None:
    """Replace the key file atomically (0600, primary first): a crash mid-write leaves the old
    ring, never half a file, and a restart comes back with the ring as rotated."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(base64.b64encode(k).decode() + "\n" for k in keys))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class LocalKeys:
    """This agent's side of `shoal keys`: one operation on the ring shared by gossip and the
    internal channel, persisted to the key file the agent loaded, mirrored into `mirror` (the
    context's key list, which the secret box reads)."""

    def __init__(self, ring: Keyring, path: Path | None, mirror: list[bytes]) -> None:
        self.ring = ring
        self.path = path
        self.mirror = mirror

    def listing(self) -> dict[str, Any]:
        return {"primary": fingerprint(self.ring.primary), "keys": _fps(self.ring.keys)}

    def apply(self, op: str, key: bytes) -> dict[str, Any]:
        """Apply `op`; `KeyringError` when the ring refuses it (unknown op or key, the
        primary removed). `changed` is False for a repeat (install of a key held, ...)."""
        if op == "install":
            changed = self.ring.install(key)
        elif op == "use":
            changed = self.ring.primary != key
            self.ring.use(key)
        elif op == "remove":
            changed = self.ring.remove(key)
        else:
            raise KeyringError(f"unknown key operation {op!r}")
        self.mirror[:] = self.ring.keys
        persisted: str | bool = True
        if changed and self.path is not None:
            try:
                write_keys(self.path, self.ring.keys)
            except OSError as exc:  # the ring is changed; a restart would bring the old one
                persisted = f"not persisted: {exc.strerror}"
                log.error("keys.persist_failed", path=str(self.path), detail=exc.strerror)
        log.info("keys." + op, key=fingerprint(key), changed=changed)
        return {"ok": True, "changed": changed, "persisted": persisted, **self.listing()}


class KeyPeer(Protocol):
    name: str
    api: str
    status: str


class KeyClient(Protocol):
    async def keys(self, node: str, api: str) -> dict[str, Any]: ...

    async def key_op(self, node: str, api: str, op: str, key_b64: str) -> dict[str, Any]: ...


class KeyOpRefused(Exception):
    """The operation was checked against every agent first and would break the cluster."""

    def __init__(self, detail: str, results: dict[str, Any]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.results = results


def _fps(keys: Sequence[bytes]) -> list[str]:
    return [fingerprint(k) for k in keys]


async def _each(
    peers: Sequence[KeyPeer], call: Callable[[KeyPeer], Awaitable[dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    """`call` on every peer at once, each bounded; failures become `{"ok": False, "error"}`."""
    results: dict[str, dict[str, Any]] = {}

    async def one(peer: KeyPeer) -> None:
        try:
            with trio.fail_after(KEY_OP_TIMEOUT_S):
                results[peer.name] = await call(peer)
        except trio.TooSlowError:
            results[peer.name] = {"ok": False, "error": "no answer in time"}
        except Exception as exc:  # a peer's failure is its row, never the whole operation's
            results[peer.name] = {"ok": False, "error": str(exc)}

    async with trio.open_nursery() as nursery:
        for peer in peers:
            nursery.start_soon(one, peer)
    return results


async def cluster_keys(
    local: LocalKeys, me: str, peers: Sequence[KeyPeer], client: KeyClient
) -> dict[str, Any]:
    """`shoal keys list`: each agent's ring, and per key how many agents hold it (Serf's
    `keys -list`), so an operator sees when an install reached everyone."""
    others = [p for p in peers if p.name != me and p.status not in ("dead", "left")]
    results = {me: {"ok": True, **local.listing()}}
    results.update(await _each(others, lambda p: client.keys(p.name, p.api)))
    held: dict[str, int] = {}
    primaries: dict[str, int] = {}
    for row in results.values():
        if row.get("ok", True) and "keys" in row:
            for fp in row["keys"]:
                held[fp] = held.get(fp, 0) + 1
            primaries[row["primary"]] = primaries.get(row["primary"], 0) + 1
    return {
        "agents": len(results),
        "keys": [
            {"key": fp, "agents": n, "primary_on": primaries.get(fp, 0)}
            for fp, n in sorted(held.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "results": results,
        "ok": all(r.get("ok", True) for r in results.values()),
    }


async def cluster_key_op(
    op: str,
    key: bytes,
    local: LocalKeys,
    me: str,
    peers: Sequence[KeyPeer],
    client: KeyClient,
) -> dict[str, Any]:
    """`shoal keys install|use|remove KEY` on every agent, with per-agent results.

    `install` goes everywhere it can. `use` and `remove` are first checked against every
    agent's ring: `use` of a key some agent lacks would make the packets sealed with it
    unreadable there, and `remove` of a key some agent still sends with would cut that agent
    off; either is refused as a whole (`KeyOpRefused`) before any agent changes.
    """
    if op not in KEY_OPS:
        raise KeyringError(f"unknown key operation {op!r}: want one of {', '.join(KEY_OPS)}")
    check_key(key)
    fp = fingerprint(key)
    others = [p for p in peers if p.name != me and p.status not in ("dead", "left")]
    if op in ("use", "remove"):
        listing = await cluster_keys(local, me, peers, client)
        problems = {}
        for name, row in listing["results"].items():
            if not row.get("ok", True) or "keys" not in row:
                problems[name] = row.get("error", "no answer")
            elif op == "use" and fp not in row["keys"]:
                problems[name] = "key not installed there: `shoal keys install` it first"
            elif op == "remove" and row["primary"] == fp:
                problems[name] = "key is the primary there: `shoal keys use` another first"
        if problems:
            raise KeyOpRefused(
                f"{op} refused, no agent changed: "
                + "; ".join(f"{n}: {why}" for n, why in sorted(problems.items())),
                {n: {"ok": False, "error": why} for n, why in problems.items()},
            )
    results: dict[str, dict[str, Any]] = {}
    try:
        results[me] = local.apply(op, key)
    except KeyringError as exc:
        results[me] = {"ok": False, "error": str(exc)}
    encoded = base64.b64encode(key).decode()
    results.update(await _each(others, lambda p: client.key_op(p.name, p.api, op, encoded)))
    return {
        "op": op,
        "key": fp,
        "results": results,
        "ok": all(r.get("ok") for r in results.values()),
    }
