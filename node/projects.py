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
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from node.hlc import Timestamp
from node.spec_rules import (
    SpecError,
    check_int,
    check_project_name,
    check_spec_wire,
    check_text,
)
from node.store_writer import open_db, release, writer_for
from placement.converge import Desired, UpdatePolicy

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
MAX_WALL_MS = 2**53  # an HLC beyond this is no time of ours (2**63 once broke every later PUT)
MAX_HLC_COUNTER = 2**31
MAX_CLOCK_DRIFT_MS = 60_000  # a peer's entry further ahead of our clock is refused


HISTORY_KEEP = 10
SEALED_KEY = "sealed_secrets"  # in the registry's form only: {"box", "digest"}
HEALTH_DEFAULTS: dict[str, Any] = {
    "type": "none",
    "port": 0,
    "path": "/",
    "interval_s": 2.0,
    "timeout_s": 1.0,
    "threshold": 3,
    "grace_s": 5.0,
}


@attrs.frozen
class RolloutRecord:
    """The stored part of a rollout: which generation, since when, and how it ended (the live
    counts of updated and healthy servos are derived from the view)."""

    generation: int
    state: str  # in_progress | succeeded | failed | rolled_back
    started_ms: int
    reason: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "state": self.state,
            "started_ms": self.started_ms,
            "reason": self.reason,
        }

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any] | None) -> RolloutRecord | None:
        if not raw:
            return None
        return cls(
            int(raw["generation"]),
            str(raw["state"]),
            int(raw.get("started_ms", 0)),
            str(raw.get("reason", "")),
        )


@attrs.frozen
class HistoryEntry:
    """One generation as it was deployed: when, what changed, and its spec (to roll back to)."""

    generation: int
    at_ms: int
    change: str
    spec: str  # the generation's spec as canonical JSON (hashable, exact)

    def to_wire(self, sealed: bool = False) -> dict[str, Any]:
        """`sealed`: with the secrets' box (between agents); without it for every route."""
        spec = json.loads(self.spec)
        if not sealed:
            spec.pop(SEALED_KEY, None)
        return {
            "generation": self.generation,
            "at_ms": self.at_ms,
            "change": self.change,
            "spec": spec,
        }

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> HistoryEntry:
        return cls(
            int(raw["generation"]),
            int(raw["at_ms"]),
            str(raw.get("change", "")),
            json.dumps(raw.get("spec") or {}, sort_keys=True),
        )


def _update_wire(u: UpdatePolicy) -> dict[str, Any]:
    return {
        "parallel": u.parallel,
        "surge": u.surge,
        "healthy_for_s": u.healthy_for_s,
        "deadline_s": u.deadline_s,
        "auto_rollback": u.auto_rollback,
    }


def _update_from_wire(raw: Mapping[str, Any] | None) -> UpdatePolicy:
    d = UpdatePolicy()
    raw = raw or {}
    return UpdatePolicy(
        parallel=int(raw.get("parallel", d.parallel)),
        surge=int(raw.get("surge", d.surge)),
        healthy_for_s=float(raw.get("healthy_for_s", d.healthy_for_s)),
        deadline_s=float(raw.get("deadline_s", d.deadline_s)),
        auto_rollback=bool(raw.get("auto_rollback", d.auto_rollback)),
    )


def health_fields(raw: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """A spec's health check as the project keeps it (hashable); () for none."""
    return _health_from_wire(raw)


def _health_from_wire(raw: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    if not raw or raw.get("type", "none") == "none":
        return ()
    merged = {**HEALTH_DEFAULTS, **dict(raw)}
    return tuple(sorted(merged.items()))


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
    health: tuple[tuple[str, Any], ...] = ()  # the check's fields; () for none
    update: UpdatePolicy = attrs.field(factory=UpdatePolicy)
    # Write-only secrets (node.secret_box): their names (all that anyone is ever shown), the
    # sealed box (all that is ever stored or sent), and a keyed digest of the values (a change
    # of a value is a new generation, like a change of env).
    secret_names: tuple[str, ...] = ()
    secrets_box: str = ""
    secrets_digest: str = ""
    # the container's root filesystem is read-only (a tmpfs on /tmp) unless the spec says so
    writable_root: bool = False
    # Bumped by every change that servos must be rebuilt for (image, env, command, resources,
    # ports, health check); a change of replicas, spread or stopped alone is not a new
    # generation. Numbers are never reused: a rollback goes back to an older number, and the
    # next change takes the highest ever seen plus one.
    generation: int = 1
    last_good: int = 0  # the generation a failed rollout goes back to (0: none)
    rollout: RolloutRecord | None = None
    history: tuple[HistoryEntry, ...] = ()

    def servo_fields(self) -> tuple[Any, ...]:
        return (
            self.image,
            self.env,
            self.command,
            self.memory_mb,
            self.millicpus,
            self.ports,
            self.health,
            self.secrets_digest,
            self.writable_root,
        )

    def spec_wire(self) -> dict[str, Any]:
        """The user's spec: what `PUT` takes (and what a generation in the history holds)."""
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
            "health": dict(self.health) if self.health else {"type": "none"},
            "update": _update_wire(self.update),
            "secrets": list(self.secret_names),  # names only: values are write-only
            "writable_root": self.writable_root,
        }

    def sealed_wire(self) -> dict[str, Any]:
        """`spec_wire` and the secrets' box: what agents store and send, never a route."""
        if not self.secrets_box:
            return self.spec_wire()
        box = {"box": self.secrets_box, "digest": self.secrets_digest}
        return {**self.spec_wire(), SEALED_KEY: box}

    def change_from(self, prior: Project) -> str:
        names = (
            "image",
            "env",
            "command",
            "memory",
            "cpus",
            "ports",
            "health",
            "secrets",
            "writable_root",
        )
        changed = [
            n
            for n, a, b in zip(names, prior.servo_fields(), self.servo_fields(), strict=True)
            if a != b
        ]
        return "changed " + ", ".join(changed)

    def next_of(self, prior: Project | None, now_ms: int) -> Project:
        """This spec as the successor of `prior`: same generation unless servos change; a new
        generation starts a rollout (when there are servos to roll) and enters the history."""
        if prior is None:
            entry = HistoryEntry(1, now_ms, "created", self._spec_json())
            return attrs.evolve(self, generation=1, last_good=0, rollout=None, history=(entry,))
        if prior.servo_fields() == self.servo_fields():
            return attrs.evolve(
                self,
                generation=prior.generation,
                last_good=prior.last_good,
                rollout=prior.rollout,
                history=prior.history,
            )
        gen = max([prior.generation, *(h.generation for h in prior.history)]) + 1
        good = prior.rollout is None or prior.rollout.state in ("succeeded", "rolled_back")
        last_good = prior.generation if good else prior.last_good
        project = attrs.evolve(
            self,
            generation=gen,
            last_good=last_good,
            rollout=RolloutRecord(gen, "in_progress", now_ms),
            history=prior.history,
        )
        entry = HistoryEntry(gen, now_ms, self.change_from(prior), project._spec_json())
        return attrs.evolve(project, history=(*prior.history, entry)[-HISTORY_KEEP:])

    def _spec_json(self) -> str:
        return json.dumps(self.sealed_wire(), sort_keys=True)  # a rollback restores secrets

    def with_rollout(self, state: str, reason: str = "") -> Project:
        assert self.rollout is not None
        return attrs.evolve(self, rollout=attrs.evolve(self.rollout, state=state, reason=reason))

    def rolled_back_to(self, generation: int, now_ms: int, reason: str) -> Project:
        """This project with generation `generation`'s spec desired again (replicas, spread and
        stopped stay as they are now: a rollback changes the version, not the scale)."""
        entry = next((h for h in self.history if h.generation == generation), None)
        if entry is None:
            raise KeyError(f"generation {generation} is not in the history")
        old = Project.from_wire(self.name, json.loads(entry.spec))
        failed = self.rollout.generation if self.rollout else self.generation
        note = HistoryEntry(generation, now_ms, f"rolled back from {failed}: {reason}", entry.spec)
        return attrs.evolve(
            old,
            replicas=self.replicas,
            spread=self.spread,
            stopped=self.stopped,
            generation=generation,
            last_good=generation,
            rollout=RolloutRecord(
                failed, "rolled_back", self.rollout.started_ms if self.rollout else now_ms, reason
            ),
            history=(*self.history, note)[-HISTORY_KEEP:],
        )

    def desired(self) -> Desired:
        rollout = self.rollout
        live = rollout is not None and rollout.generation == self.generation
        return Desired(
            name=self.name,
            replicas=self.replicas,
            memory_mb=self.memory_mb,
            millicpus=self.millicpus,
            spread=self.spread,
            max_per_host=self.max_per_host,
            stopped=self.stopped,
            generation=self.generation,
            update=self.update,
            rollout_started_ms=rollout.started_ms
            if live and rollout is not None and rollout.state == "in_progress"
            else 0,
            rollout_failed=rollout.reason or "failed"
            if live and rollout is not None and rollout.state == "failed"
            else "",
        )

    def to_wire(self) -> dict[str, Any]:
        """The registry's form (stored, pushed, pulled): secrets sealed, never in clear."""
        return {
            **self.sealed_wire(),
            "stopped": self.stopped,
            "generation": self.generation,
            "last_good": self.last_good,
            "rollout": self.rollout.to_wire() if self.rollout else None,
            "history": [h.to_wire(sealed=True) for h in self.history],
        }

    @classmethod
    def from_wire(cls, name: str, raw: Mapping[str, Any]) -> Project:
        command = raw.get("command")
        sealed = raw.get(SEALED_KEY) or {}
        names = raw.get("secrets") or ()
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
            health=_health_from_wire(raw.get("health")),
            update=_update_from_wire(raw.get("update")),
            secret_names=tuple(sorted(str(n) for n in names)) if isinstance(names, list) else (),
            secrets_box=str(sealed.get("box", "")),
            secrets_digest=str(sealed.get("digest", "")),
            writable_root=raw.get("writable_root") is True,
            generation=int(raw.get("generation", 1)),
            last_good=int(raw.get("last_good", 0)),
            rollout=RolloutRecord.from_wire(raw.get("rollout")),
            history=tuple(HistoryEntry.from_wire(h) for h in raw.get("history") or ()),
        )


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
        """An entry from a peer (push or pull): the internal door, checked as strictly as the
        public one (`node.spec_rules`), so an invalid spec is refused (SpecError, a ValueError)
        and never merged."""
        if not isinstance(raw, Mapping):
            raise SpecError("an entry must be an object")
        name = check_project_name(raw["name"])
        ts = Timestamp.from_wire(raw["ts"])
        check_int(ts.wall_ms, "ts.wall_ms", 0, MAX_WALL_MS)
        check_int(ts.counter, "ts.counter", 0, MAX_HLC_COUNTER)
        check_text(ts.node, "ts.node", 253)
        spec = raw.get("spec")
        if spec:
            check_spec_wire(name, spec)
        return cls(name, ts, Project.from_wire(name, spec) if spec else None)


class ProjectRegistry:
    """Durable LWW map name -> Entry, held in memory. Thread-safe. A merge changes the map at
    once and hands its rows to the file's writer thread (`node.store_writer`): one batched
    commit, off the Trio loop; `await sync()` before acknowledging what must be on disk."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_db(path)  # a file that is not a store says so clearly (CorruptStore)
        self._migrate()
        self._writer = writer_for(path)
        self._entries: dict[str, Entry] = {}
        self.changes = 0  # bumped by every merge that changed something (a cheap "anything new?")
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
            release(self._writer)
            self._db.close()

    @property
    def error(self) -> str | None:
        """Why durable writes fail right now (they are retried); None when healthy."""
        return self._writer.error

    async def sync(self) -> None:
        """Wait until every merge so far is on disk (`StorageError` while writes fail)."""
        await self._writer.sync()

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
        """Keep each entry that is newer than what we hold; returns the ones that won. One
        transaction (one fsync) for the whole batch, written by the writer thread."""
        won: list[Entry] = []
        with self._lock:
            for entry in entries:
                mine = self._entries.get(entry.name)
                if mine is not None and mine.ts >= entry.ts:
                    continue
                if any(w.name == entry.name and w.ts >= entry.ts for w in won):
                    continue
                won = [w for w in won if w.name != entry.name] + [entry]
            if not won:
                return []
            rows = [
                (
                    e.name,
                    json.dumps(e.project.to_wire() if e.project else {}, sort_keys=True),
                    e.ts.wall_ms,
                    e.ts.counter,
                    e.ts.node,
                    int(e.deleted),
                )
                for e in won
            ]
            self._writer.submit(
                [("INSERT OR REPLACE INTO projects VALUES (?, ?, ?, ?, ?, ?)", r) for r in rows]
            )
            for e in won:
                self._entries[e.name] = e
            self.changes += 1
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
