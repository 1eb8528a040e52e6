"""The replicated registry of project specs: last-writer-wins on a hybrid logical clock.

Any agent may write a spec (the one that took the request); every agent merges what it hears,
keeping per project the entry with the greatest timestamp. A destroy is a tombstone entry, so an
agent that was down when the project was destroyed learns it on return and removes its servos.
The registry is durable (SQLite, WAL, synchronous=FULL) so a restarted agent keeps the desired
state it had; anti-entropy with peers (push on write, pull when a peer's digest differs) fills the
rest.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from node.hlc import Timestamp
from placement.converge import Desired

SCHEMA_VERSION = 2
_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE projects (
        name TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        wall_ms INTEGER NOT NULL,
        counter INTEGER NOT NULL,
        writer TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0
    );
    """,
    2: """
    CREATE TABLE idempotency (
        key TEXT PRIMARY KEY,
        status INTEGER NOT NULL,
        body TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    """,
}
IDEMPOTENCY_KEEP = 10_000


@attrs.frozen
class Project:
    """The desired state of one project, normalised (memory in MiB, CPU in millicpus)."""

    name: str
    image: str
    replicas: int
    memory_mb: int
    millicpus: int
    ports: tuple[int, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    spread: str = "region"
    max_per_host: int = 1
    command: tuple[str, ...] | None = None
    stopped: bool = False
    # Bumped by every change that servos must be rebuilt for (image, env, command, resources,
    # ports); a change of replicas, spread or stopped alone is not a new generation.
    generation: int = 1

    def servo_fields(self) -> tuple[Any, ...]:
        return (self.image, self.env, self.command, self.memory_mb, self.millicpus, self.ports)

    def next_of(self, prior: Project | None) -> Project:
        """This spec as the successor of `prior`: same generation unless servos change."""
        if prior is None:
            return attrs.evolve(self, generation=max(1, self.generation))
        bump = prior.servo_fields() != self.servo_fields()
        return attrs.evolve(self, generation=prior.generation + (1 if bump else 0))

    def desired(self) -> Desired:
        return Desired(
            name=self.name,
            replicas=self.replicas,
            memory_mb=self.memory_mb,
            millicpus=self.millicpus,
            spread=self.spread,
            max_per_host=self.max_per_host,
            stopped=self.stopped,
            generation=self.generation,
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "replicas": self.replicas,
            "memory": self.memory_mb,
            "cpus": self.millicpus / 1000,
            "ports": list(self.ports),
            "env": dict(self.env),
            "spread": self.spread,
            "max_per_host": self.max_per_host,
            "command": list(self.command) if self.command is not None else None,
            "stopped": self.stopped,
            "generation": self.generation,
        }

    @classmethod
    def from_wire(cls, name: str, raw: Mapping[str, Any]) -> Project:
        command = raw.get("command")
        return cls(
            name=name,
            image=str(raw["image"]),
            replicas=int(raw["replicas"]),
            memory_mb=int(raw["memory"]),
            millicpus=round(float(raw["cpus"]) * 1000),
            ports=tuple(int(p) for p in raw.get("ports", ())),
            env=tuple(sorted((str(k), str(v)) for k, v in dict(raw.get("env", {})).items())),
            spread=str(raw.get("spread", "region")),
            max_per_host=int(raw.get("max_per_host", 1)),
            command=tuple(str(c) for c in command) if command else None,
            stopped=bool(raw.get("stopped", False)),
            generation=int(raw.get("generation", 1)),
        )

    def same_desired_state(self, other: Project) -> bool:
        return self == other


@attrs.frozen
class Entry:
    """One project's newest known write; `project` is None for a tombstone (destroyed)."""

    name: str
    ts: Timestamp
    project: Project | None

    @property
    def deleted(self) -> bool:
        return self.project is None

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ts": self.ts.to_wire(),
            "spec": self.project.to_wire() if self.project else None,
        }

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Entry:
        name = str(raw["name"])
        spec = raw.get("spec")
        return cls(
            name, Timestamp.from_wire(raw["ts"]), Project.from_wire(name, spec) if spec else None
        )


class ProjectRegistry:
    """Durable LWW map name -> Entry. Thread-safe; writes are on disk before they return."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()
        self._entries: dict[str, Entry] = {}
        for name, body, wall, counter, writer, deleted in self._db.execute(
            "SELECT name, body, wall_ms, counter, writer, deleted FROM projects"
        ):
            ts = Timestamp(wall, counter, writer)
            proj = None if deleted else Project.from_wire(name, json.loads(body))
            self._entries[name] = Entry(name, ts, proj)

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self._db.executescript(
                f"BEGIN; {_MIGRATIONS[target]} PRAGMA user_version={target}; COMMIT;"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, name: str) -> Entry | None:
        return self._entries.get(name)

    def live(self) -> list[Project]:
        """Projects that exist (not destroyed), sorted by name."""
        return [e.project for _, e in sorted(self._entries.items()) if e.project is not None]

    def entries(self) -> list[Entry]:
        return [e for _, e in sorted(self._entries.items())]

    def newest_ts(self) -> Timestamp | None:
        return max((e.ts for e in self._entries.values()), default=None)

    def merge(self, entries: Iterable[Entry]) -> list[Entry]:
        """Keep each entry that is newer than what we hold; returns the ones that won."""
        won: list[Entry] = []
        with self._lock:
            for entry in entries:
                mine = self._entries.get(entry.name)
                if mine is not None and mine.ts >= entry.ts:
                    continue
                body = json.dumps(entry.project.to_wire() if entry.project else {}, sort_keys=True)
                self._db.execute(
                    "INSERT OR REPLACE INTO projects VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        entry.name,
                        body,
                        entry.ts.wall_ms,
                        entry.ts.counter,
                        entry.ts.node,
                        int(entry.deleted),
                    ),
                )
                self._entries[entry.name] = entry
                won.append(entry)
        return won

    def recall(self, key: str) -> tuple[int, str] | None:
        """The stored answer of an operation already done under an Idempotency-Key."""
        with self._lock:
            row = self._db.execute(
                "SELECT status, body FROM idempotency WHERE key = ?", (key,)
            ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def remember(self, key: str, status: int, body: str) -> None:
        """Store an answer durably; the oldest keys beyond a bound are forgotten."""
        import time

        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?)",
                (key, status, body, int(time.time() * 1000)),
            )
            self._db.execute(
                "DELETE FROM idempotency WHERE key NOT IN "
                "(SELECT key FROM idempotency ORDER BY created_ms DESC LIMIT ?)",
                (IDEMPOTENCY_KEEP,),
            )

    def digest(self) -> str:
        """A short fingerprint of the whole registry: equal digests mean nothing to exchange."""
        h = hashlib.blake2b(digest_size=8)
        for name, entry in sorted(self._entries.items()):
            h.update(f"{name}\0{entry.ts.wall_ms}\0{entry.ts.counter}\0{entry.ts.node}\n".encode())
        return h.hexdigest()
