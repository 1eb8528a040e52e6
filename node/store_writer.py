"""Durable SQLite writes off the Trio loop: one writer thread per database file, batched commits.

Why: a commit with `synchronous=FULL` waits for fsync. On the Trio loop, a slow disk (seconds
per fsync under load, a dying drive, a full NFS server) froze everything else the loop does,
gossip probes included, and peers declared a healthy agent dead. Here the stores keep their
state in memory (reads never touch the disk after start), and hand each change to the writer as
SQL statements; the writer thread takes everything queued, runs it in one transaction (one
fsync for the batch, as group commit does) and tells the waiters. A caller that must not answer
before its change is on disk (a servo acknowledged to a placer, a pushed spec) awaits `sync()`,
which parks the Trio task, never the loop, and uses no worker thread.

Failures: a commit that raises (`sqlite3.OperationalError`: disk full, I/O error, read-only
file system) is rolled back and retried with backoff (0.1 s doubling to 10 s), the batch kept
in order; meanwhile `error` says why (the agent reports itself unhealthy in /v1/health and
/metrics) and `sync()` raises `StorageError` instead of waiting forever. Nothing raises into a
background loop, so a full disk cannot kill the agent. When the disk recovers the batch commits
and `error` clears.

One writer per file per process (`writer_for`): a second store object opened on the same file
(a restart inside a test) shares it and first waits for what is queued, so it reads everything
written before. Across processes the data-dir lock (`node.datadir`) keeps one agent per file.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import trio

from node.logfmt import get_logger
from node.runtime import HostError

log = get_logger("node.store")

Statement = tuple[str, Sequence[Any]]
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 10.0
_OUR_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)
MAX_BATCH = 1000  # statement groups per transaction: bounds one commit's time and memory


class StorageError(HostError):
    """A durable write failed (and is being retried): the caller's change is in memory but
    not known to be on disk. Retrying elsewhere is right for a servo creation."""

    reason = "storage_error"


class CorruptStore(Exception):
    """The database file cannot be opened as a Shoal store: said once, clearly, at start."""


def open_db(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with fsync on commit; a file that is not a SQLite database (or
    is damaged) becomes `CorruptStore` naming the file and what to do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        (check,) = db.execute("PRAGMA quick_check").fetchone()
    except sqlite3.DatabaseError as exc:
        raise CorruptStore(
            f"{path} is not a readable Shoal store ({exc}); move it aside to start empty "
            "(servos on this host are then found again by the reconciler) or restore a backup"
        ) from None
    if check != "ok":
        db.close()
        raise CorruptStore(f"{path} is damaged ({check}); move it aside or restore a backup")
    return db


class DurableWriter:
    """The writer thread of one database file. Thread-safe `submit`; async `sync`."""

    # Fault injection for tests (a slow disk): seconds to sleep in the writer thread before
    # each commit. Never set in production code.
    commit_delay_s: float = 0.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_db(path)
        self._cond = threading.Condition()
        self._pending: list[tuple[int, list[Statement]]] = []  # (seq, statements), in order
        self._submitted = 0  # seq of the newest submission
        self._committed = 0  # every seq up to this one is on disk
        self._closing = False
        self.error: str | None = None  # why the last commit failed; None when healthy
        self.failures = 0  # failed commits since start (a counter for /metrics)
        self.dropped = 0  # statement groups dropped as our own bug (never the disk's fault)
        self._users = 0
        self._trio_token: trio.lowlevel.TrioToken | None = None
        self._changed: trio.Event | None = None
        self.on_failure: Callable[[str], None] = lambda detail: None
        self._thread = threading.Thread(
            target=self._run, name=f"shoal-writer-{path.name}", daemon=True
        )
        self._thread.start()

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for migrations and loading at open (before any submission)."""
        return self._db

    # --- the callers' side ------------------------------------------------------------------
    def submit(self, statements: list[Statement]) -> int:
        """Queue statements to commit together; returns the ticket `sync` waits for."""
        with self._cond:
            if self._closing:
                raise StorageError(f"store {self.path.name} is closed")
            self._submitted += 1
            self._pending.append((self._submitted, statements))
            self._cond.notify()
            return self._submitted

    async def sync(self, ticket: int | None = None) -> None:
        """Wait until `ticket` (default: everything submitted so far) is on disk. Raises
        `StorageError` while commits fail, rather than wait for a disk that may not recover."""
        with self._cond:
            target = self._submitted if ticket is None else ticket
        self._trio_token = trio.lowlevel.current_trio_token()
        while True:
            with self._cond:
                if self._committed >= target:
                    return
                if self.error is not None:
                    raise StorageError(f"store {self.path.name}: {self.error}")
                if self._changed is None:
                    self._changed = trio.Event()
                changed = self._changed
            await changed.wait()

    def flush_blocking(self, timeout_s: float = 30.0) -> bool:
        """Block the calling thread until the queue is empty (at close and reopen)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending and time.monotonic() < deadline:
                self._cond.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            return not self._pending

    def close(self) -> None:
        if not self.flush_blocking():
            log.error("store.unflushed", path=str(self.path), pending=len(self._pending))
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self._db.close()

    # --- the writer thread ------------------------------------------------------------------
    def _notify_trio(self) -> None:
        token = self._trio_token
        if token is None:
            return
        try:
            token.run_sync_soon(self._wake_waiters)
        except trio.RunFinishedError:
            self._trio_token = None

    def _wake_waiters(self) -> None:
        with self._cond:
            changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                batch = self._pending[:MAX_BATCH]
            try:
                try:
                    self._commit(batch)
                except _OUR_BUGS:
                    # not the disk: a statement of ours is wrong, and retrying would wedge
                    # every later write behind it; commit the groups one by one, drop the bad
                    # ones (logged, counted). Replaying committed groups is harmless: every
                    # statement is an upsert or a delete.
                    self._isolate(batch)
            except sqlite3.Error as exc:
                detail = f"error: {exc}"
                with self._cond:
                    first = self.error is None
                    self.error = detail
                    self.failures += 1
                    self._cond.notify_all()
                if first:
                    log.error("store.write_failed", path=str(self.path), detail=str(exc))
                self.on_failure(detail)
                self._notify_trio()
                with self._cond:
                    if self._closing:
                        return  # close gave up waiting: what is queued is lost, said above
                    self._cond.wait(backoff)
                backoff = min(BACKOFF_MAX_S, backoff * 2)
                continue
            backoff = BACKOFF_MIN_S
            with self._cond:
                del self._pending[: len(batch)]
                self._committed = batch[-1][0]
                if self.error is not None:
                    log.info("store.write_recovered", path=str(self.path))
                self.error = None
                self._cond.notify_all()
            self._notify_trio()

    def _isolate(self, batch: list[tuple[int, list[Statement]]]) -> None:
        for group in batch:
            try:
                self._commit([group])
            except _OUR_BUGS as exc:
                self.dropped += 1
                log.error("store.write_dropped", path=str(self.path), detail=str(exc))

    def _commit(self, batch: list[tuple[int, list[Statement]]]) -> None:
        if self.commit_delay_s:
            time.sleep(self.commit_delay_s)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for _seq, statements in batch:
                for sql, params in statements:
                    db.execute(sql, params)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


_writers: dict[Path, DurableWriter] = {}
_writers_lock = threading.Lock()


def writer_for(path: Path) -> DurableWriter:
    """The process's writer of `path` (made on first use); each user must `release` it."""
    key = path.resolve()
    with _writers_lock:
        writer = _writers.get(key)
        if writer is None:
            writer = _writers[key] = DurableWriter(path)
        writer._users += 1
    writer.flush_blocking()  # a reopen reads everything written before it
    return writer


def release(writer: DurableWriter) -> None:
    key = writer.path.resolve()
    with _writers_lock:
        writer._users -= 1
        if writer._users > 0:
            return
        _writers.pop(key, None)
    writer.close()


class _Watched(Protocol):
    @property
    def error(self) -> str | None: ...


def watch_storage(metrics: Any, host_store: Any, registry: Any) -> None:
    """Failed durable writes are counted and shown (/metrics, /v1/health), never raised into
    a loop: the writer threads retry them with backoff."""
    stores: dict[str, _Watched] = {"host": host_store, "projects": registry}
    for label, writer in (("host", host_store.writer), ("projects", registry._writer)):
        counter = metrics.storage_errors.labels(label)
        writer.on_failure = lambda detail, counter=counter: counter.inc()
    metrics.attach_storage(lambda: {label: s.error for label, s in stores.items()})


def storage_status(*stores: _Watched) -> str:
    """ "ok", or the first store's write error ("error: ..."), for /v1/health."""
    return next((s.error for s in stores if s.error is not None), "ok")
