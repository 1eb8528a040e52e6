"""The host's durable memory: servo records, idempotency keys and kept volumes in SQLite.

WAL with synchronous=FULL. The tables are mirrored in memory (loaded at open): reads never touch
the disk, and writes change the mirror at once and go to the file's writer thread
(`node.store_writer`), batched, off the Trio loop. A caller that acknowledges a servo awaits
`sync()` first, so a servo acknowledged to a caller is on disk before the answer leaves. The
schema is versioned (`PRAGMA user_version`) and migrated step by step from the first version on;
a step only adds, so rows written by an older agent read back with defaults.
Reservations are not stored apart: they are derived from the servo records (every servo not
failed holds its memory and CPU), so a crash can never leak one.

Kept volumes are the data volumes of servos removed from this host for any reason but an
explicit destroy (scale-down, drain, replacement of a failed servo): a volume is never deleted
implicitly, so they are remembered here until a prune or their retention removes them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from node.runtime import ExitInfo, ServoRecord, ServoSpec
from node.store_writer import DurableWriter, Statement, release, writer_for

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
        self.writer: DurableWriter = writer_for(path)
        self._closed = False
        db = self.writer.db
        try:
            self._migrate()
            rows = db.execute(f"SELECT {self._COLS} FROM servos ORDER BY servo_id").fetchall()
            self._servos = {str(r[0]): self._record(r) for r in rows}
            self._keys = {
                str(k): str(s) for k, s in db.execute("SELECT key, servo_id FROM idempotency")
            }
            self._kept = {
                str(v): KeptVolume(str(v), str(p), str(s), int(t))
                for v, p, s, t in db.execute(
                    "SELECT volume, project, servo_id, since_ms FROM kept_volumes"
                )
            }
        except BaseException:
            self.close()
            raise

    def _migrate(self) -> None:
        db = self.writer.db
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"store schema {version} is newer than this agent ({SCHEMA_VERSION})"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            db.executescript(f"BEGIN; {MIGRATIONS[target]} PRAGMA user_version={target}; COMMIT;")

    @property
    def schema_version(self) -> int:
        return int(self.writer.db.execute("PRAGMA user_version").fetchone()[0])

    @property
    def error(self) -> str | None:
        """Why durable writes fail right now (they are retried); None when healthy."""
        return self.writer.error

    async def sync(self) -> None:
        """Wait until every change made so far is on disk (`StorageError` while it fails)."""
        await self.writer.sync()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            release(self.writer)

    def _write(self, *statements: Statement) -> None:
        self.writer.submit(list(statements))

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
        # the mirror holds what a reload would read back (no fields beyond the columns)
        row = (
            record.servo_id,
            json.dumps(record.spec.to_wire(), sort_keys=True),
            record.state,
            json.dumps([list(p) for p in record.host_ports]),
            record.host_addr,
            record.error,
            record.created_ms,
            record.restarts,
            json.dumps(last_exit.to_wire()) if last_exit is not None else None,
            record.running_since_ms,
        )
        self._servos[record.servo_id] = self._record(row)
        self._write(
            (
                "INSERT OR REPLACE INTO servos (servo_id, project, spec, state, host_ports,"
                " host_addr, error, created_ms, restarts, last_exit, running_since_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row[0], record.project, *row[1:]),
            )
        )

    def get(self, servo_id: str) -> ServoRecord | None:
        return self._servos.get(servo_id)

    def all(self) -> list[ServoRecord]:
        return [self._servos[k] for k in sorted(self._servos)]

    def delete(self, servo_id: str) -> None:
        self._servos.pop(servo_id, None)
        self._keys = {k: s for k, s in self._keys.items() if s != servo_id}
        self._write(
            ("DELETE FROM servos WHERE servo_id = ?", (servo_id,)),
            ("DELETE FROM idempotency WHERE servo_id = ?", (servo_id,)),
        )

    def remember_key(self, key: str, servo_id: str) -> None:
        self._keys[key] = servo_id
        self._write(("INSERT OR REPLACE INTO idempotency VALUES (?, ?)", (key, servo_id)))

    def servo_for_key(self, key: str) -> str | None:
        return self._keys.get(key)

    # --- kept volumes -----------------------------------------------------------------------
    def keep_volume(self, kept: KeptVolume) -> None:
        self._kept[kept.volume] = kept
        self._write(
            (
                "INSERT OR REPLACE INTO kept_volumes VALUES (?, ?, ?, ?)",
                (kept.volume, kept.project, kept.servo_id, kept.since_ms),
            )
        )

    def forget_volume(self, volume: str) -> None:
        self._kept.pop(volume, None)
        self._write(("DELETE FROM kept_volumes WHERE volume = ?", (volume,)))

    def kept_volume(self, volume: str) -> KeptVolume | None:
        return self._kept.get(volume)

    def kept_volumes(self) -> list[KeptVolume]:
        return [self._kept[v] for v in sorted(self._kept)]
