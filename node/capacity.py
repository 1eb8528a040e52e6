"""What this host can give to servos: detected totals minus a reserve for the agent itself.

Memory is in MiB and CPU in millicpus (integers), so capacity arithmetic is exact everywhere,
including in placement, which must give the same answer on every agent.
"""

from __future__ import annotations

import os

import attrs

AGENT_RESERVE_MEMORY_MB = 256
AGENT_RESERVE_MILLICPUS = 100


@attrs.frozen
class Capacity:
    memory_mb: int
    millicpus: int

    def as_dict(self) -> dict[str, int]:
        return {"memory_mb": self.memory_mb, "millicpus": self.millicpus}


def detect_memory_mb() -> int:
    pages = os.sysconf("SC_PHYS_PAGES")
    page_size = os.sysconf("SC_PAGE_SIZE")
    return int(pages * page_size // (1024 * 1024))


def detect_millicpus() -> int:
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        count = os.cpu_count() or 1
    return count * 1000


def host_capacity(memory_mb: int | None = None, millicpus: int | None = None) -> Capacity:
    """Totals servos may use: explicit values as given, detected ones minus the agent's reserve."""
    mem = memory_mb if memory_mb is not None else detect_memory_mb() - AGENT_RESERVE_MEMORY_MB
    cpu = millicpus if millicpus is not None else detect_millicpus() - AGENT_RESERVE_MILLICPUS
    return Capacity(memory_mb=max(0, mem), millicpus=max(0, cpu))
