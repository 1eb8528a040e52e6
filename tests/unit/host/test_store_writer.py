"""The durable writer: batched commits off the caller's thread, failures retried and reported
(never raised into a loop), a reopen that reads everything written, a corrupt file named."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from node.store_writer import (
    CorruptStore,
    DurableWriter,
    StorageError,
    open_db,
    release,
    storage_status,
    writer_for,
)


async def _until(check: Callable[[], bool], timeout_s: float = 10) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if check():
            return
        await trio.sleep(0.02)
    raise AssertionError("timed out")


def _table(path: Path) -> DurableWriter:
    writer = writer_for(path)
    writer.db.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY)")
    return writer


async def test_queued_writes_commit_in_batches_and_sync_waits_for_them(tmp_path: Path) -> None:
    writer = _table(tmp_path / "w.db")
    commits: list[int] = []
    gate = threading.Event()
    real = writer._commit

    def counting(batch: Any) -> None:
        gate.wait(5)  # hold the first commit so the rest queue up behind it
        commits.append(len(batch))
        real(batch)

    writer._commit = counting  # type: ignore[method-assign]
    for k in range(50):
        writer.submit([("INSERT INTO t VALUES (?)", (k,))])
    gate.set()
    with trio.fail_after(10):
        await writer.sync()
    assert sum(commits) == 50 and len(commits) <= 2  # one fsync for many writes
    check = sqlite3.connect(str(tmp_path / "w.db"))
    assert check.execute("SELECT COUNT(*) FROM t").fetchone() == (50,)
    check.close()
    release(writer)


async def test_a_failing_disk_is_reported_retried_and_recovers(tmp_path: Path) -> None:
    writer = _table(tmp_path / "w.db")
    failures: list[str] = []
    writer.on_failure = failures.append
    real = writer._commit
    broken = True

    def flaky(batch: Any) -> None:
        if broken:
            raise sqlite3.OperationalError("disk I/O error")
        real(batch)

    writer._commit = flaky  # type: ignore[method-assign]
    writer.submit([("INSERT INTO t VALUES (1)", ())])
    await _until(lambda: writer.error is not None)
    assert storage_status(writer) == "error: disk I/O error"
    with pytest.raises(StorageError):
        await writer.sync()
    broken = False
    await _until(lambda: writer.error is None)
    await writer.sync()
    assert failures and all(f == "error: disk I/O error" for f in failures)
    assert storage_status(writer) == "ok"
    assert writer.db.execute("SELECT k FROM t").fetchall() == [(1,)]
    release(writer)


def test_a_reopen_shares_the_writer_and_reads_what_was_queued(tmp_path: Path) -> None:
    first = _table(tmp_path / "w.db")
    first.commit_delay_s = 0.2
    first.submit([("INSERT INTO t VALUES (7)", ())])
    second = writer_for(tmp_path / "w.db")  # waits for the queue before anyone reads
    assert second is first
    assert second.db.execute("SELECT k FROM t").fetchall() == [(7,)]
    release(first)
    release(second)
    with pytest.raises(StorageError):
        second.submit([("INSERT INTO t VALUES (8)", ())])  # closed with its last user


def test_a_corrupt_file_is_named_with_what_to_do(tmp_path: Path) -> None:
    bad = tmp_path / "host.db"
    bad.write_bytes(b"not a database at all" * 200)
    with pytest.raises(CorruptStore, match=r"host\.db is not a readable Shoal store"):
        open_db(bad)


async def test_a_bad_statement_of_ours_is_dropped_not_retried_forever(tmp_path: Path) -> None:
    """A programming error (here a constraint violation) must not wedge every later write
    behind it, as a disk error rightly does: the good groups of its batch still commit."""
    writer = _table(tmp_path / "w.db")
    gate = threading.Event()
    real = writer._commit

    def held(batch: Any) -> None:
        gate.wait(5)  # let all three queue into one batch
        real(batch)

    writer._commit = held  # type: ignore[method-assign]
    writer.submit([("INSERT INTO t VALUES (1)", ())])
    writer.submit([("INSERT INTO t VALUES (1)", ())])  # duplicate key: IntegrityError
    writer.submit([("INSERT INTO t VALUES (2)", ())])
    gate.set()
    with trio.fail_after(10):
        await writer.sync()
    assert writer.error is None and writer.dropped == 1
    assert writer.db.execute("SELECT k FROM t ORDER BY k").fetchall() == [(1,), (2,)]
    release(writer)
