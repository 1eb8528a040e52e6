"""Does one servo fit on one host? The one copy of that rule.

The placer asks it of every candidate (from gossip, optimistic), the host's admission asks it
before any engine call (final), and the simulator's hosts ask it too, so a refusal on a real host
and a refusal in a simulated one are the same decision. Checked in a fixed order, so the reason
given is the same wherever it is asked.
"""

from __future__ import annotations

from placement.model import Refusal


def refusal(
    *,
    memory_free_mb: int,
    millicpus_free: int,
    same_project: int,
    memory_mb: int,
    millicpus: int,
    max_per_host: int,
) -> Refusal | None:
    """Why a servo needing `memory_mb` / `millicpus` does not fit a host with the given free
    resources that already runs `same_project` servos of its project; None when it fits."""
    if same_project >= max_per_host:
        return Refusal.ALREADY_RUNS_PROJECT
    if memory_free_mb < memory_mb:
        return Refusal.INSUFFICIENT_MEMORY
    if millicpus_free < millicpus:
        return Refusal.INSUFFICIENT_CPU
    return None
