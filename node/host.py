"""Host duties: the agent runs servos, keeps them durable, and restores them after a reboot.

The order of a creation is the PaaS host agent's: admit (reserve memory, CPU, anti-affinity) ->
persist the record -> create the data volume -> create and start the container -> confirm it
stays up. Any failure after admission undoes what was made (no orphan container, no leaked
reservation) and leaves a `failed` record holding the engine's message, so the placer can retry
elsewhere and an operator can see why. The reconciler makes the engine match the store: on start
and every 30 s, missing containers are re-created with the same volume (a reboot's story),
exited ones restarted with backoff, and containers of this node that the store does not know are
removed.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio

from node.admission import Admission
from node.capacity import Capacity
from node.logfmt import get_logger
from node.runtime import (
    HostError,
    Runtime,
    ServoFailed,
    ServoRecord,
    ServoSpec,
)
from node.store import HostStore

log = get_logger("node.host")

STARTUP_CHECK_S = 0.3
RECONCILE_INTERVAL_S = 30.0
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 300.0


def container_name(node: str, servo_id: str) -> str:
    return f"shoal-{node}-{servo_id}"


def volume_name(node: str, servo_id: str) -> str:
    return f"shoal-{node}-{servo_id}-data"


def pick_free_port(host: str, avoid: set[int]) -> int:
    """An unused TCP port on `host`, asked of the kernel and not already promised to a servo."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, 0))
            except OSError:
                s.bind(("0.0.0.0", 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port
    raise ServoFailed("no free host port found", "no_ports")


@attrs.define
class ReconcileReport:
    checked: int = 0
    recreated: list[str] = attrs.field(factory=list)
    restarted: list[str] = attrs.field(factory=list)
    removed_orphans: list[str] = attrs.field(factory=list)
    failed: list[str] = attrs.field(factory=list)
    backing_off: list[str] = attrs.field(factory=list)


class HostService:
    def __init__(
        self,
        node: str,
        runtime: Runtime,
        store: HostStore,
        capacity: Capacity,
        host_addr: str = "127.0.0.1",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.runtime = runtime
        self.store = store
        self.capacity = capacity
        self.host_addr = host_addr
        self.admission = Admission(capacity)
        self._clock = clock
        self._locks: dict[str, trio.Lock] = {}
        self._crashes: dict[str, tuple[int, float]] = {}  # servo -> (restarts, next try at)
        self._records: dict[str, ServoRecord] = {}
        for record in store.all():
            self._records[record.servo_id] = record
            if record.state != "failed":
                self.admission.restore(record.spec)

    def close(self) -> None:
        self.runtime.close()
        self.store.close()

    # --- views for gossip metadata ----------------------------------------------------------
    def capacity_snapshot(self) -> dict[str, int]:
        free_mem, free_cpu = self.admission.free()
        return {
            "memory_total_mb": self.capacity.memory_mb,
            "memory_free_mb": free_mem,
            "millicpus_total": self.capacity.millicpus,
            "millicpus_free": free_cpu,
        }

    def servo_records(self) -> list[dict[str, Any]]:
        return [r.to_dict() for _, r in sorted(self._records.items())]

    def get(self, servo_id: str) -> ServoRecord | None:
        return self._records.get(servo_id)

    def list_servos(self) -> list[ServoRecord]:
        return [r for _, r in sorted(self._records.items())]

    def _save(self, record: ServoRecord) -> ServoRecord:
        self.store.put(record)
        self._records[record.servo_id] = record
        return record

    def _lock(self, servo_id: str) -> trio.Lock:
        return self._locks.setdefault(servo_id, trio.Lock())

    # --- lifecycle --------------------------------------------------------------------------
    async def create_servo(
        self, spec: ServoSpec, idempotency_key: str | None = None
    ) -> ServoRecord:
        if idempotency_key:
            known = self.store.servo_for_key(idempotency_key)
            if known and known in self._records and self._records[known].state != "failed":
                return self._records[known]
        existing = self._records.get(spec.servo_id)
        if existing is not None and existing.state != "failed":
            return existing
        self.admission.reserve(spec)  # raises AdmissionRefused before any engine call
        async with self._lock(spec.servo_id):
            used_ports = {h for r in self._records.values() for _, h in r.host_ports}
            ports = []
            for c in spec.ports:
                port = pick_free_port(self.host_addr, used_ports)
                used_ports.add(port)
                ports.append((c, port))
            record = self._save(
                ServoRecord(
                    spec=spec,
                    node=self.node,
                    state="starting",
                    host_ports=tuple(ports),
                    host_addr=self.host_addr,
                    fake=self.runtime.fake,
                    created_ms=int(time.time() * 1000),
                )
            )
            if idempotency_key:
                self.store.remember_key(idempotency_key, spec.servo_id)
            try:
                await self._launch(record)
            except HostError as exc:
                await self._undo(record)
                self.admission.release(spec.servo_id)
                self._save(attrs.evolve(record, state="failed", error=exc.detail))
                log.warning(
                    "servo.failed", servo=spec.servo_id, reason=exc.reason, detail=exc.detail
                )
                raise
            record = self._save(attrs.evolve(record, state="running", error=None))
            log.info("servo.running", servo=spec.servo_id, project=spec.project)
            return record

    async def _launch(self, record: ServoRecord) -> None:
        labels = {
            "shoal.project": record.project,
            "shoal.servo": record.servo_id,
            "shoal.node": self.node,
        }
        name = container_name(self.node, record.servo_id)
        await self.runtime.ensure_volume(volume_name(self.node, record.servo_id), labels)
        await self.runtime.remove(name)  # a leftover of an earlier attempt must not conflict
        await self.runtime.run(
            name,
            record.spec,
            volume_name(self.node, record.servo_id),
            self.host_addr,
            record.host_ports,
            labels,
        )
        await trio.sleep(STARTUP_CHECK_S if not self.runtime.fake else 0)
        status = await self.runtime.status(name)
        if status.state != "running":
            tail = await self.runtime.logs_tail(name)
            detail = f"container exited at once (status {status.exit_code})"
            raise ServoFailed(f"{detail}: {tail}" if tail else detail, "exited")

    async def _undo(self, record: ServoRecord) -> None:
        try:
            await self.runtime.remove(container_name(self.node, record.servo_id))
            await self.runtime.remove_volume(volume_name(self.node, record.servo_id))
        except HostError as exc:  # the reconciler removes what is left once the engine answers
            log.warning("servo.cleanup_failed", servo=record.servo_id, detail=exc.detail)

    def _known(self, servo_id: str) -> ServoRecord:
        record = self._records.get(servo_id)
        if record is None:
            raise KeyError(servo_id)
        return record

    async def stop_servo(self, servo_id: str) -> ServoRecord:
        async with self._lock(servo_id):
            record = self._known(servo_id)
            await self.runtime.stop(container_name(self.node, servo_id))
            return self._save(attrs.evolve(record, state="stopped"))

    async def start_servo(self, servo_id: str) -> ServoRecord:
        async with self._lock(servo_id):
            record = self._known(servo_id)
            name = container_name(self.node, servo_id)
            if (await self.runtime.status(name)).state == "missing":
                await self._launch(record)
            else:
                await self.runtime.start(name)
            self._crashes.pop(servo_id, None)
            return self._save(attrs.evolve(record, state="running", error=None))

    async def destroy_servo(self, servo_id: str, keep_volume: bool = False) -> None:
        async with self._lock(servo_id):
            record = self._known(servo_id)
            await self.runtime.remove(container_name(self.node, servo_id))
            if not keep_volume:
                await self.runtime.remove_volume(volume_name(self.node, servo_id))
            self.store.delete(servo_id)
            self._records.pop(servo_id, None)
            self.admission.release(servo_id)
            self._crashes.pop(servo_id, None)
            log.info(
                "servo.destroyed", servo=servo_id, project=record.project, kept_volume=keep_volume
            )

    # --- reconciliation ---------------------------------------------------------------------
    async def reconcile(self) -> ReconcileReport:
        report = ReconcileReport()
        wanted = {container_name(self.node, sid) for sid in self._records}
        for name in await self.runtime.list_managed(self.node):
            if name not in wanted:
                await self.runtime.remove(name)
                report.removed_orphans.append(name)
        now = self._clock()
        for record in self.list_servos():
            if record.state not in ("starting", "running"):
                continue
            report.checked += 1
            sid = record.servo_id
            name = container_name(self.node, sid)
            async with self._lock(sid):
                status = await self.runtime.status(name)
                if status.state == "running":
                    if record.state != "running":
                        self._save(attrs.evolve(record, state="running"))
                    continue
                restarts, next_at = self._crashes.get(sid, (0, 0.0))
                if now < next_at:
                    report.backing_off.append(sid)
                    continue
                try:
                    if status.state == "missing":
                        await self._launch(record)
                        report.recreated.append(sid)
                    else:
                        await self.runtime.start(name)
                        report.restarted.append(sid)
                    if restarts:
                        delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**restarts)
                        self._crashes[sid] = (restarts + 1, now + delay)
                    else:
                        self._crashes[sid] = (1, now + BACKOFF_BASE_S)
                except HostError as exc:
                    delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (restarts + 1))
                    self._crashes[sid] = (restarts + 1, now + delay)
                    report.failed.append(sid)
                    log.warning("reconcile.failed", servo=sid, detail=exc.detail)
        if report.recreated or report.restarted or report.removed_orphans or report.failed:
            log.info(
                "reconcile.done",
                checked=report.checked,
                recreated=len(report.recreated),
                restarted=len(report.restarted),
                removed_orphans=len(report.removed_orphans),
                failed=len(report.failed),
            )
        else:
            log.debug("reconcile.done", checked=report.checked)
        return report

    async def run_reconciler(
        self,
        interval_s: float = RECONCILE_INTERVAL_S,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Reconcile once before reporting started (so a rebooted host is whole), then forever."""
        try:
            await self.reconcile()
        except HostError as exc:
            log.warning("reconcile.unavailable", detail=exc.detail)
        task_status.started()
        while True:
            await trio.sleep(interval_s)
            try:
                await self.reconcile()
            except HostError as exc:
                log.warning("reconcile.unavailable", detail=exc.detail)
