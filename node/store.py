"""The host's durable memory: servo records, idempotency keys and kept volumes in SQLite.

WAL with synchronous=FULL, so a servo acknowledged to a caller is on disk before the answer
leaves. The schema is versioned (`PRAGMA user_version`) and migrated step by step from the first
version on; a step only adds, so rows written by an older agent read back with defaults.
Reservations are not stored apart: they are derived from the servo records (every servo not
failed holds its memory and CPU), so a crash can never leak one.

Kept volumes are the data volumes of servos removed from this host for any reason but an
explicit destroy (scale-down, drain, replacement of a failed servo): a volume is never deleted
implicitly, so they are remembered here until a prune or their retention removes them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import attrs

from node.runtime import ExitInfo, ServoRecord, ServoSpec

SCHEMA_VERSION = 3
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE servos (
        servo_id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        spec TEXT NOT NULL,
        state TEXT NOT NULL,
        host_ports TEXT NOT NULL,
        host_addr TEXT NOT NULL,
        error TEXT,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX servos_project ON servos(project);
    """,
    2: """
    CREATE TABLE idempotency (
        key TEXT PRIMARY KEY,
        servo_id TEXT NOT NULL
    );
    """,
    3: """
    ALTER TABLE servos ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE servos ADD COLUMN last_exit TEXT;
    ALTER TABLE servos ADD COLUMN running_since_ms INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE kept_volumes (
        volume TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        servo_id TEXT NOT NULL,
        since_ms INTEGER NOT NULL
    );
    CREATE INDEX kept_volumes_project ON kept_volumes(project);
    """,
}


@attrs.frozen
class KeptVolume:
    volume: str
    project: str
    servo_id: str
    since_ms: int  # wall clock of the servo's removal; retention counts from here


class HostStore:
    def __init__(self, path: Path, node: str, fake: bool = False) -> None:
        self.node = node
        self.fake = fake
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"store schema {version} is newer than this agent ({SCHEMA_VERSION})"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self._db.executescript(
                f"BEGIN; {MIGRATIONS[target]} PRAGMA user_version={target}; COMMIT;"
            )

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _record(self, row: tuple[Any, ...]) -> ServoRecord:
        spec_json, state, ports_json, host_addr, error, created = row[1:7]
        restarts, last_exit_json, running_since = row[7:]
        ports = tuple((int(c), int(h)) for c, h in json.loads(ports_json))
        last_exit = ExitInfo.from_wire(json.loads(last_exit_json)) if last_exit_json else None
        return ServoRecord(
            spec=ServoSpec.from_wire(json.loads(spec_json)),
            node=self.node,
            state=state,
            host_ports=ports,
            host_addr=host_addr,
            error=error,
            fake=self.fake,
            created_ms=created,
            restarts=int(restarts),
            last_exit=last_exit,
            running_since_ms=int(running_since),
        )

    _COLS = (
        "servo_id, spec, state, host_ports, host_addr, error, created_ms,"
        " restarts, last_exit, running_since_ms"
    )

    def put(self, record: ServoRecord) -> None:
        last_exit = record.last_exit
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO servos (servo_id, project, spec, state, host_ports,"
                " host_addr, error, created_ms, restarts, last_exit, running_since_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.servo_id,
                    record.project,
                    json.dumps(record.spec.to_wire(), sort_keys=True),
                    record.state,
                    json.dumps([list(p) for p in record.host_ports]),
                    record.host_addr,
                    record.error,
                    record.created_ms,
                    record.restarts,
                    json.dumps(last_exit.to_wire()) if last_exit is not None else None,
                    record.running_since_ms,
                ),
            )

    def get(self, servo_id: str) -> ServoRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {self._COLS} FROM servos WHERE servo_id = ?", (servo_id,)
            ).fetchone()
        return self._record(row) if row else None

    def all(self) -> list[ServoRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {self._COLS} FROM servos ORDER BY servo_id").fetchall()
        return [self._record(r) for r in rows]

    def delete(self, servo_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM servos WHERE servo_id = ?", (servo_id,))
            self._db.execute("DELETE FROM idempotency WHERE servo_id = ?", (servo_id,))

    def remember_key(self, key: str, servo_id: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO idempotency VALUES (?, ?)", (key, servo_id))

    def servo_for_key(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT servo_id FROM idempotency WHERE key = ?", (key,)
            ).fetchone()
        return str(row[0]) if row else None

    # --- kept volumes -----------------------------------------------------------------------
    def keep_volume(self, kept: KeptVolume) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO kept_volumes VALUES (?, ?, ?, ?)",
                (kept.volume, kept.project, kept.servo_id, kept.since_ms),
            )

    def forget_volume(self, volume: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM kept_volumes WHERE volume = ?", (volume,))

    def kept_volume(self, volume: str) -> KeptVolume | None:
        with self._lock:
            row = self._db.execute(
                "SELECT volume, project, servo_id, since_ms FROM kept_volumes WHERE volume = ?",
                (volume,),
            ).fetchone()
        return KeptVolume(str(row[0]), str(row[1]), str(row[2]), int(row[3])) if row else None

    def kept_volumes(self) -> list[KeptVolume]:
        with self._lock:
            rows = self._db.execute(
                "SELECT volume, project, servo_id, since_ms FROM kept_volumes ORDER BY volume"
            ).fetchall()
        return [KeptVolume(str(v), str(p), str(s), int(t)) for v, p, s, t in rows]
