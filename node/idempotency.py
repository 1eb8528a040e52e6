"""`Idempotency-Key`: an operation runs once per key, and a retry gets the first answer.

The row is claimed **before** the work runs (state pending, with a keyed hash of the request
body), in one SQLite transaction, so of two concurrent requests with one key only one runs: the
other waits for the first to finish and replays its answer, or gets `KeyInFlight` (the API's
409) if it takes too long. A used key with a different body is `KeyReused` (422): replaying the
old answer to a new request would tell the client that something happened which did not. Work
that fails releases the claim, so a retry may run it. A pending row older than `STALE_MS` is
one whose agent died mid-request: the next request with the key takes it over.

The table is per agent. A retry through *another* agent (the first one died) runs the
operation again there, which is safe by construction: a spec write is declarative (the same
spec keeps its generation, `Project.next_of`), scale/stop/start set absolute states, and the
servos the engine creates have deterministic ids (project, generation, slot) that a host treats
as the same request. So the key saves work and keeps answers consistent; correctness does not
depend on it crossing agents (Stripe's keys are per API host for the same reason).

Body hashes are HMAC-SHA256 under a random salt kept in the same file: a body may hold
secrets, and a plain hash of a short password is a dictionary lookup away from it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

KEEP = 10_000  # answers remembered; the oldest go first
STALE_MS = 10 * 60_000  # a claim this old was abandoned by a crash
WAIT_S = 30.0  # how long a concurrent request with the same key waits for the first
POLL_S = 0.05
MAX_KEY_CHARS = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    key TEXT PRIMARY KEY,
    body_hash TEXT NOT NULL,
    status INTEGER NOT NULL,      -- 0 while pending
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
"""


class KeyReused(Exception):
    """The key was used with a different request body."""


class KeyInFlight(Exception):
    """Another request with this key is still running."""


@attrs.frozen
class Claim:
    kind: str  # run | replay | pending | mismatch
    status: int = 0
    body: str = ""


class IdempotencyStore:
    """Durable key -> answer map with claims; every method is blocking SQLite (call them from a
    worker thread, as `once` does)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE name = 'salt'").fetchone()
        if row is None:
            salt = secrets.token_hex(32)
            self._db.execute("INSERT INTO meta VALUES ('salt', ?)", (salt,))
        else:
            salt = str(row[0])
        self._salt = bytes.fromhex(salt)
        self._events: dict[str, trio.Event] = {}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def body_hash(self, body: Any) -> str:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        return hmac.new(self._salt, canonical.encode(), hashlib.sha256).hexdigest()

    def claim(self, key: str, body_hash: str, now_ms: int) -> Claim:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT body_hash, status, body, created_ms FROM keys WHERE key = ?", (key,)
                ).fetchone()
                if row is None or (int(row[1]) == 0 and now_ms - int(row[3]) > STALE_MS):
                    self._db.execute(
                        "INSERT OR REPLACE INTO keys VALUES (?, ?, 0, '', ?)",
                        (key, body_hash, now_ms),
                    )
                    claim = Claim("run")
                elif not hmac.compare_digest(str(row[0]), body_hash):
                    claim = Claim("mismatch")
                elif int(row[1]) == 0:
                    claim = Claim("pending")
                else:
                    claim = Claim("replay", int(row[1]), str(row[2]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return claim

    def finish(self, key: str, status: int, body: str) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "UPDATE keys SET status = ?, body = ? WHERE key = ?", (status, body, key)
                )
                self._db.execute(
                    "DELETE FROM keys WHERE key NOT IN "
                    "(SELECT key FROM keys ORDER BY created_ms DESC LIMIT ?)",
                    (KEEP,),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def release(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM keys WHERE key = ? AND status = 0", (key,))

    async def once(
        self,
        key: str,
        body: Any,
        now_ms: Callable[[], int],
        work: Callable[[], Awaitable[tuple[int, Any]]],
    ) -> tuple[int, Any, bool]:
        """Run `work` once for `key`: (status, result, replayed). Raises KeyReused or
        KeyInFlight (see the module doc)."""
        digest = self.body_hash(body)
        deadline = trio.current_time() + WAIT_S
        while True:
            claim = await trio.to_thread.run_sync(self.claim, key, digest, now_ms())
            if claim.kind == "mismatch":
                raise KeyReused(key)
            if claim.kind == "replay":
                return claim.status, json.loads(claim.body), True
            if claim.kind == "run":
                break
            if trio.current_time() > deadline:
                raise KeyInFlight(key)
            event = self._events.get(key)
            if event is None:  # claimed by an earlier run of this agent: look again soon
                await trio.sleep(POLL_S)
                continue
            with trio.move_on_at(deadline):
                await event.wait()
        done = self._events[key] = trio.Event()
        try:
            try:
                status, result = await work()
            except BaseException:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self.release, key)
                raise
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.finish, key, status, json.dumps(result))
        finally:  # waiters wake to the answer on disk (or to a released claim: their turn)
            self._events.pop(key, None)
            done.set()
        return status, result, False
