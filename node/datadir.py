"""One agent per data dir: an exclusive `flock` on `<data-dir>/agent.lock`, held for the
process's life.

Why: two agents started on one `--data-dir` both ran, each adopting the other's servos from the
shared store and fighting over its containers. The lock is taken before any store is opened; a
second agent fails at once with a message naming the holder's pid. `flock` locks die with the
process (kill -9 included), so a crash never leaves a stale lock behind, unlike a pid file.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO, Any

LOCK_NAME = "agent.lock"


class DataDirLocked(Exception):
    """Another live process holds the data dir."""


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 - held open for the process's life
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise DataDirLocked(
                f"data dir {self.path.parent} is in use by another agent (pid {holder}); "
                "give each agent its own --data-dir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def open_data_dir(data_dir: Path, node: str, fake: bool) -> tuple[DataDirLock, Any, Any]:
    """Lock the data dir, then open its stores: (lock, host store, project registry). On any
    failure (locked, a corrupt file) whatever was opened is closed again before raising."""
    from node.projects import ProjectRegistry
    from node.store import HostStore

    lock = DataDirLock(data_dir)
    lock.acquire()
    opened: list[Any] = []
    try:
        opened.append(HostStore(data_dir / "host.db", node, fake=fake))
        opened.append(ProjectRegistry(data_dir / "projects.db"))
    except BaseException:
        for store in reversed(opened):
            store.close()
        lock.release()
        raise
    return lock, opened[0], opened[1]
