"""Admission control: the host's final word on whether it takes a servo.

Placement elsewhere is optimistic (it works from gossip, which lags); this check runs on the
host itself, before any engine call, against what the host has actually promised. The check and
the reservation happen in one step under a lock, so two concurrent requests can never both take
the last of the memory.
"""

from __future__ import annotations

import threading

import attrs

from node.capacity import Capacity
from node.runtime import AdmissionRefused, ServoSpec
from placement.fit import refusal
from placement.model import Refusal


@attrs.frozen
class Reservation:
    project: str
    memory_mb: int
    millicpus: int


class Admission:
    def __init__(self, capacity: Capacity) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._held: dict[str, Reservation] = {}

    def used(self) -> tuple[int, int]:
        with self._lock:
            return (
                sum(r.memory_mb for r in self._held.values()),
                sum(r.millicpus for r in self._held.values()),
            )

    def free(self) -> tuple[int, int]:
        mem, cpu = self.used()
        return self.capacity.memory_mb - mem, self.capacity.millicpus - cpu

    def holds(self, servo_id: str) -> bool:
        with self._lock:
            return servo_id in self._held

    def reserve(self, spec: ServoSpec, replaces: str | None = None) -> None:
        """Check and reserve atomically; raise `AdmissionRefused` naming the reason.

        `replaces` names a servo of the same project that the new one takes over from in a
        rolling update: it does not count against anti-affinity (they may share this host
        until it goes), though its memory and CPU are still held."""
        with self._lock:
            if spec.servo_id in self._held:
                return
            same = sum(
                1 for sid, r in self._held.items() if r.project == spec.project and sid != replaces
            )
            mem_free = self.capacity.memory_mb - sum(r.memory_mb for r in self._held.values())
            cpu_free = self.capacity.millicpus - sum(r.millicpus for r in self._held.values())
            why = refusal(
                memory_free_mb=mem_free,
                millicpus_free=cpu_free,
                same_project=same,
                memory_mb=spec.memory_mb,
                millicpus=spec.millicpus,
                max_per_host=spec.max_per_host,
            )
            if why is Refusal.ALREADY_RUNS_PROJECT:
                raise AdmissionRefused(
                    f"already runs {same} servo(s) of {spec.project} "
                    f"(max {spec.max_per_host} per host)",
                    why.value,
                )
            if why is Refusal.INSUFFICIENT_MEMORY:
                raise AdmissionRefused(
                    f"needs {spec.memory_mb} MiB, {mem_free} MiB free", why.value
                )
            if why is not None:
                raise AdmissionRefused(
                    f"needs {spec.millicpus} millicpus, {cpu_free} free", why.value
                )
            self._held[spec.servo_id] = Reservation(spec.project, spec.memory_mb, spec.millicpus)

    def restore(self, spec: ServoSpec) -> None:
        """Re-hold a reservation found in the store at start (it was admitted before)."""
        with self._lock:
            self._held[spec.servo_id] = Reservation(spec.project, spec.memory_mb, spec.millicpus)

    def release(self, servo_id: str) -> None:
        with self._lock:
            self._held.pop(servo_id, None)
