"""Host duties: the agent runs servos, watches them, restarts them, and keeps their data.

The order of a creation is the PaaS host agent's: admit (reserve memory, CPU, anti-affinity) ->
persist the record -> create the data volume -> create and start the container, and answer as
soon as the engine says it started. A failure undoes what this attempt made (no orphan container,
no leaked reservation, no record: it was never acknowledged) and raises, so the placer can retry
elsewhere. A second create of an id this host knows is the same request: it gets the record back.

Servos are watched, not polled. `run_watcher` follows the engine's event stream (Docker's
`die`/`oom`/`start`), so an exit is seen within a second; `run_reconciler` looks at every stored
servo when the agent starts (a rebooted host is whole again before it serves) and then slowly,
as a safety net. Both feed the same `_observe`, which asks the pure policy of
`node/servo_lifecycle.py` what an exit means: restart in place after a backoff, or `failed`.

A servo with a health check (`ServoSpec.health`, node/health.py) is probed by this host, one
small Trio task per container run (`_check_health`, in the watcher's nursery), which feeds each
answer to the pure `on_probe` and carries out its verdict: `starting` -> `running` at the first
pass; after `threshold` failures in a row (past the grace) the container is stopped and the stop
is an exit with reason `unhealthy`, taken by the same `_exited` as a crash (backoff, crash loop,
`failed`). The checker starts with each (re)start of the container and is cancelled when the
servo exits, stops, fails or is removed.

A volume is never deleted implicitly. `remove_servo` (scale-down, drain, replacement) keeps it
and remembers it as kept; only `destroy_servo` (an explicit project destroy), `prune_volumes`
and the retention loop delete volumes. A servo re-created here with the same id gets its kept
volume back.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio

from node.admission import Admission
from node.capacity import Capacity
from node.health import HealthCheck, Probe, ProbeHistory, on_probe, probe_address
from node.logfmt import get_logger
from node.runtime import (
    ContainerStatus,
    ExitInfo,
    HostError,
    Runtime,
    RuntimeUnavailable,
    ServoFailed,
    ServoRecord,
    ServoSpec,
    iso_utc,
)
from node.servo_lifecycle import (
    HOLDING_STATES,
    LIVE_STATES,
    CrashHistory,
    RestartPolicy,
    backoff_s,
    exit_reason,
    on_exit,
    on_started,
    started_event,
    transition,
)
from node.store import HostStore, KeptVolume

log = get_logger("node.host")

RECONCILE_INTERVAL_S = 60.0  # a safety net only: exits arrive through the event stream
RETENTION_INTERVAL_S = 3600.0
DEREGISTER_S = 2.0  # a removed servo is out of rotation this long before it goes (ingress poll
# every 1 s, plus gossip)
DEFAULT_VOLUME_RETENTION_S = 7 * 24 * 3600  # the agent's --volume-retention default
WATCH_RETRY_MIN_S = 0.5  # reconnecting to a broken event stream: doubling up to the max
WATCH_RETRY_MAX_S = 10.0
ENGINE_RETRY_S = 5.0  # a due restart the engine could not even be asked about waits this long
LOGS_TAIL_MAX_LINES = 1000
ERROR_TAIL_CHARS = 1000  # of the last log lines kept in a failed servo's `error`


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


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _nothing() -> None:
    """The default hook: nobody is listening."""


def _nothing_for(servo_id: str, reason: str) -> None:
    """The default per-servo hook: nobody is listening."""


@attrs.define
class ReconcileReport:
    checked: int = 0
    recreated: list[str] = attrs.field(factory=list)
    restarted: list[str] = attrs.field(factory=list)
    removed_orphans: list[str] = attrs.field(factory=list)
    failed: list[str] = attrs.field(factory=list)
    backing_off: list[str] = attrs.field(factory=list)


class HostService:
    """One host's servos. Records are the truth (SQLite); the engine is made to match them.

    Hooks, all called synchronously and shielded from their own exceptions:
    `on_change()` after any record is created, changes state or restarts, or is deleted, and
    so whenever a servo's health flips, since `healthy` is `running` for a checked servo (the
    agent republishes its gossip state); `on_exit(servo_id, reason)` on every exit it did not
    ask for (and on an `unhealthy` verdict); `on_failed(servo_id, reason)` when a servo
    becomes `failed`.

    `probe` runs one health check (default: the runtime's own, a real request on Docker); tests
    pass theirs to decide what is healthy.
    """

    def __init__(
        self,
        node: str,
        runtime: Runtime,
        store: HostStore,
        capacity: Capacity,
        host_addr: str = "127.0.0.1",
        clock: Callable[[], float] = trio.current_time,
        policy: RestartPolicy | None = None,
        wall_ms: Callable[[], int] = _wall_ms,
        probe: Probe | None = None,
    ) -> None:
        self.node = node
        self.runtime = runtime
        self.store = store
        self.capacity = capacity
        self.host_addr = host_addr
        self.admission = Admission(capacity)
        self.policy = policy if policy is not None else RestartPolicy()
        self.on_change: Callable[[], None] = _nothing
        self.on_exit: Callable[[str, str], None] = _nothing_for
        self.on_failed: Callable[[str, str], None] = _nothing_for
        self._clock = clock  # monotonic seconds: backoff deadlines and the policy's window
        self._wall_ms = wall_ms  # epoch ms: what records and kept volumes show
        self._locks: dict[str, trio.Lock] = {}
        self._records: dict[str, ServoRecord] = {}
        # grows with every change of the servo records (from the wall clock in microseconds,
        # so a restarted agent never goes back): a peer that sees a version at least as new as
        # the one a create or remove answered with knows its gossip view includes that change
        self.inventory_version = 0
        self._leaving: set[str] = set()  # servos being removed, still running a moment
        self._history: dict[str, CrashHistory] = {}  # servo -> the policy's memory of it
        self._restart_at: dict[str, float] = {}  # restarting servo -> when (self._clock) to try
        self._oom_seen: set[str] = set()  # servos whose container had an `oom` event
        self._observing: set[str] = set()  # servos with an observe task under way
        self._observe_again: set[str] = set()  # ... and an event that came in meanwhile
        self._probe: Probe = probe if probe is not None else runtime.probe
        self._launches: dict[str, int] = {}  # servo -> count of its container's starts seen
        self._checkers: dict[str, trio.CancelScope] = {}  # servo -> its running health checker
        self._nursery: trio.Nursery | None = None  # the watcher's, where checkers run
        self._wake = trio.Event()  # set when a restart is scheduled
        self._restarter_running = False
        self._reconciled = False  # the first reconcile is the boot one
        for record in store.all():
            self._records[record.servo_id] = record
            if record.state in HOLDING_STATES:
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
        out = []
        for sid, r in sorted(self._records.items()):
            body = r.to_dict()
            if sid in self._leaving:  # on its way out: out of every ingress's rotation
                body["state"], body["healthy"], body["ready_since_ms"] = "stopped", False, 0
            out.append(body)
        return out

    def get(self, servo_id: str) -> ServoRecord | None:
        return self._records.get(servo_id)

    def list_servos(self) -> list[ServoRecord]:
        return [r for _, r in sorted(self._records.items())]

    async def logs_tail(self, servo_id: str, lines: int = 20, timestamps: bool = False) -> str:
        """The last lines its container logged (e.g. to show why a servo failed)."""
        self._known(servo_id)
        lines = max(1, min(lines, LOGS_TAIL_MAX_LINES))
        name = container_name(self.node, servo_id)
        return await self.runtime.logs_tail(name, lines, timestamps=timestamps)

    # --- bookkeeping ------------------------------------------------------------------------
    def _hook(self, fn: Callable[..., None], *args: str) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a listener's bug must not stop the host's duties
            log.warning("host.hook_failed", hook=getattr(fn, "__name__", "?"), detail=str(exc))

    def _save(self, record: ServoRecord) -> ServoRecord:
        before = self._records.get(record.servo_id)
        # ready: running (healthy, when checked) since when; what a rollout proves health by
        if record.state != "running":
            record = attrs.evolve(record, ready_since_ms=0)
        elif before is None or before.state != "running" or not before.ready_since_ms:
            record = attrs.evolve(record, ready_since_ms=self._wall_ms())
        else:
            record = attrs.evolve(record, ready_since_ms=before.ready_since_ms)
        self._bump()
        self.store.put(record)
        self._records[record.servo_id] = record
        if before is None or (before.state, before.restarts) != (record.state, record.restarts):
            self._hook(self.on_change)
        return record

    def _bump(self) -> None:
        self.inventory_version = max(self.inventory_version + 1, int(time.time() * 1_000_000))

    def _forget(self, servo_id: str) -> None:
        self._bump()
        self.store.delete(servo_id)
        self._records.pop(servo_id, None)
        self.admission.release(servo_id)
        self._history.pop(servo_id, None)
        self._restart_at.pop(servo_id, None)
        self._oom_seen.discard(servo_id)
        self._stop_checker(servo_id)
        self._launches.pop(servo_id, None)
        self._hook(self.on_change)

    def _lock(self, servo_id: str) -> trio.Lock:
        return self._locks.setdefault(servo_id, trio.Lock())

    def _known(self, servo_id: str) -> ServoRecord:
        record = self._records.get(servo_id)
        if record is None:
            raise KeyError(servo_id)
        return record

    def _labels(self, record: ServoRecord) -> dict[str, str]:
        return {
            "shoal.project": record.project,
            "shoal.servo": record.servo_id,
            "shoal.node": self.node,
        }

    def _running(self, record: ServoRecord, restarts: int | None = None) -> ServoRecord:
        """Its container runs from now: the one place a record becomes `running`, or, with a
        health check, `starting` with a fresh checker (`running` comes with its first pass)."""
        sid = record.servo_id
        self._history[sid] = on_started(self._history.get(sid, CrashHistory()), self._clock())
        self._restart_at.pop(sid, None)
        self._oom_seen.discard(sid)
        self._stop_checker(sid)
        self._launches[sid] = self._launches.get(sid, 0) + 1
        event = started_event(record.spec.health is not None)
        record = self._save(
            attrs.evolve(
                record,
                state=transition(record.state, event),
                error=None,
                running_since_ms=self._wall_ms(),
                restarts=record.restarts if restarts is None else restarts,
            )
        )
        self._ensure_checker(record)
        return record

    async def _run_container(self, record: ServoRecord) -> None:
        name = container_name(self.node, record.servo_id)
        args = (record.spec, volume_name(self.node, record.servo_id), self.host_addr)
        try:
            await self.runtime.run(name, *args, record.host_ports, self._labels(record))
        except ServoFailed as exc:
            if exc.reason != "conflict":
                raise
            # A leftover of an earlier attempt (a crash mid-create) holds the name: replace it.
            await self.runtime.remove(name)
            await self.runtime.run(name, *args, record.host_ports, self._labels(record))

    # --- lifecycle --------------------------------------------------------------------------
    async def create_servo(
        self, spec: ServoSpec, idempotency_key: str | None = None, replaces: str | None = None
    ) -> ServoRecord:
        """Admit, persist, create the volume (or take back a kept one), run; answer once the
        engine reports the container started. A known id returns its record, whatever state."""
        if idempotency_key:
            known = self.store.servo_for_key(idempotency_key)
            if known is not None and known in self._records:
                return self._records[known]
        sid = spec.servo_id
        async with self._lock(sid):
            existing = self._records.get(sid)
            if existing is not None:
                return existing
            # raises AdmissionRefused before any engine call
            self.admission.reserve(spec, replaces)
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
                    created_ms=self._wall_ms(),
                )
            )
            if idempotency_key:
                self.store.remember_key(idempotency_key, sid)
            volume = volume_name(self.node, sid)
            made_volume = False
            try:
                made_volume = await self.runtime.ensure_volume(volume, self._labels(record))
                await self._run_container(record)
            except HostError as exc:
                await self._undo(record, made_volume)
                log.warning("servo.create_failed", servo=sid, reason=exc.reason, detail=exc.detail)
                raise
            self.store.forget_volume(volume)  # a kept volume taken back is no longer kept
            record = self._running(record)
            log.info(
                "servo.started",
                servo=sid,
                project=spec.project,
                state=record.state,
                new_volume=made_volume,
            )
            return record

    async def _undo(self, record: ServoRecord, made_volume: bool) -> None:
        """Take back a create that failed: it was never acknowledged, so nothing of it stays
        but a volume that existed before this attempt (a kept one is someone's data)."""
        sid = record.servo_id
        try:
            await self.runtime.remove(container_name(self.node, sid))
            if made_volume:
                await self.runtime.remove_volume(volume_name(self.node, sid))
        except HostError as exc:  # the reconciler removes the container once the engine answers
            log.warning("servo.cleanup_failed", servo=sid, detail=exc.detail)
        self._forget(sid)

    async def stop_servo(self, servo_id: str) -> ServoRecord:
        """Stop its container (a deliberate stop: not an exit, never restarted)."""
        async with self._lock(servo_id):
            record = self._known(servo_id)
            state = transition(record.state, "stop")
            self._stop_checker(servo_id)
            if record.state != "failed":
                try:
                    await self.runtime.stop(container_name(self.node, servo_id))
                except ServoFailed as exc:
                    if exc.reason != "missing":
                        raise
            self._restart_at.pop(servo_id, None)
            self._history.pop(servo_id, None)
            return self._save(attrs.evolve(record, state=state))

    async def start_servo(self, servo_id: str) -> ServoRecord:
        """Start it now: a stopped servo, a failed one (admitted again), or one backing off."""
        async with self._lock(servo_id):
            record = self._known(servo_id)
            name = container_name(self.node, servo_id)
            status = await self.runtime.status(name)
            if record.state == "running" and status.state == "running":
                return record
            readmit = record.state == "failed"
            if readmit:
                self.admission.reserve(record.spec)
            try:
                if status.state == "missing":
                    await self.runtime.ensure_volume(
                        volume_name(self.node, servo_id), self._labels(record)
                    )
                    await self._run_container(record)
                elif status.state != "running":
                    await self.runtime.start(name)
            except HostError:
                if readmit:
                    self.admission.release(servo_id)
                raise
            if record.state in ("stopped", "failed"):
                record = attrs.evolve(record, state=transition(record.state, "start"))
            self._history[servo_id] = CrashHistory()  # an operator's start forgives the past
            return self._running(record)

    async def remove_servo(self, servo_id: str, deregister_s: float = DEREGISTER_S) -> None:
        """Remove its container and record, KEEP its volume (listed by `kept_volumes`).

        What scale-down, over-count, drain, rolling updates and the replacement of a failed
        servo use. A running servo that serves ports is first reported `stopped` for
        `deregister_s` while it keeps running, so every ingress takes it out of rotation
        before its container goes (a load balancer's deregistration delay): a request it is
        answering is not cut off mid-way."""
        record = self._known(servo_id)
        if deregister_s > 0 and record.state == "running" and record.host_ports:
            self._leaving.add(servo_id)
            self._hook(self.on_change)
            try:
                await trio.sleep(deregister_s)
            finally:
                self._leaving.discard(servo_id)
        await self._remove(servo_id, keep_volume=True)

    async def destroy_servo(self, servo_id: str, keep_volume: bool = False) -> None:
        """An explicit project destroy: container, record and (unless kept) volume go."""
        await self._remove(servo_id, keep_volume)

    async def _remove(self, servo_id: str, keep_volume: bool) -> None:
        async with self._lock(servo_id):
            record = self._known(servo_id)
            self._restart_at.pop(servo_id, None)
            await self.runtime.remove(container_name(self.node, servo_id))
            volume = volume_name(self.node, servo_id)
            if keep_volume:
                self.store.keep_volume(
                    KeptVolume(volume, record.project, servo_id, self._wall_ms())
                )
            else:
                await self.runtime.remove_volume(volume)
                self.store.forget_volume(volume)
            self._forget(servo_id)
            log.info(
                "servo.removed", servo=servo_id, project=record.project, kept_volume=keep_volume
            )

    # --- kept volumes -----------------------------------------------------------------------
    async def kept_volumes(self) -> list[dict[str, Any]]:
        kept = self.store.kept_volumes()
        sizes = await self.runtime.volume_sizes([k.volume for k in kept]) if kept else {}
        return [
            {
                "node": self.node,
                "project": k.project,
                "servo": k.servo_id,
                "volume": k.volume,
                "size_bytes": sizes.get(k.volume),
                "since": iso_utc(k.since_ms),
            }
            for k in kept
        ]

    async def prune_volumes(
        self, project: str | None = None, older_than_s: float | None = None
    ) -> list[str]:
        """Delete kept volumes: all, or one project's, or those kept longer than the age."""
        now_ms = self._wall_ms()
        removed: list[str] = []
        for kept in self.store.kept_volumes():
            if project is not None and kept.project != project:
                continue
            if older_than_s is not None and now_ms - kept.since_ms < older_than_s * 1000:
                continue
            async with self._lock(kept.servo_id):
                if kept.servo_id in self._records:  # taken back by a create meanwhile
                    continue
                try:
                    await self.runtime.remove_volume(kept.volume)
                except HostError as exc:
                    log.warning("volume.prune_failed", volume=kept.volume, detail=exc.detail)
                    continue
                self.store.forget_volume(kept.volume)
                removed.append(kept.volume)
        if removed:
            log.info(
                "volume.pruned", count=len(removed), project=project, older_than_s=older_than_s
            )
        return removed

    async def run_retention(
        self,
        retention_s: float = DEFAULT_VOLUME_RETENTION_S,
        interval_s: float = RETENTION_INTERVAL_S,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Prune kept volumes older than `retention_s`, once at start and then every hour."""
        started = False
        while True:
            try:
                await self.prune_volumes(older_than_s=retention_s)
            except HostError as exc:
                log.warning("retention.unavailable", detail=exc.detail)
            if not started:
                task_status.started()
                started = True
            await trio.sleep(interval_s)

    # --- exits and restarts: the one code path ----------------------------------------------
    async def _observe(
        self, servo_id: str, boot: bool = False, report: ReconcileReport | None = None
    ) -> None:
        """Make one servo's container match its record, after an event or in a reconcile.

        `boot`: the first look after the agent started. Containers that stopped while it was
        away are restarted at once, without counting as exits (a reboot is not the app's doing).
        """
        report = report if report is not None else ReconcileReport()
        async with self._lock(servo_id):
            record = self._records.get(servo_id)
            if record is None or record.state not in LIVE_STATES:
                self._restart_at.pop(servo_id, None)
                return
            report.checked += 1
            status = await self.runtime.status(container_name(self.node, servo_id))
            now = self._clock()
            if status.state == "running":
                if record.spec.health is None:
                    if record.state != "running":  # started by us earlier, or by someone else
                        self._running(record)
                elif self._history.get(servo_id, CrashHistory()).running_since_s is None:
                    self._running(record)  # a start we did not make: a reboot, someone else
                else:
                    self._ensure_checker(record)  # ours: checked from its start, if not yet
                return
            if record.state == "restarting":
                due_at = self._restart_at.get(servo_id)
                if boot or due_at is None or due_at <= now:
                    await self._restart(record, status, report)
                else:
                    report.backing_off.append(servo_id)
                return
            if boot or status.state == "missing":
                await self._restart(record, status, report)
                return
            await self._exited(record, status, now)

    async def _exited(
        self,
        record: ServoRecord,
        status: ContainerStatus,
        now: float,
        reason: str | None = None,
    ) -> None:
        """An exit it did not ask for (or, `reason="unhealthy"`, a stop its health check asked
        for): restart after the policy's backoff, or give up."""
        sid = record.servo_id
        self._stop_checker(sid)
        code = status.exit_code if status.exit_code is not None else -1
        oom = status.oom_killed or (sid in self._oom_seen and code == 137)
        self._oom_seen.discard(sid)
        info = ExitInfo(code, reason or exit_reason(code, oom), self._wall_ms())
        verdict = on_exit(self.policy, self._history.get(sid, CrashHistory()), now)
        self._history[sid] = verdict.history
        self._hook(self.on_exit, sid, info.reason)
        if verdict.restart_in_s is None:
            n, window = len(verdict.history.exits_s), self.policy.window_s
            why = f"exited {n} times within {window:.0f} s"
            if info.reason == "unhealthy":
                why += " (the last time stopped for failing its health check)"
            await self._fail(record, info, why)
            return
        self._restart_at[sid] = now + verdict.restart_in_s
        self._save(attrs.evolve(record, state=transition(record.state, "exited"), last_exit=info))
        self._wake.set()
        log.info(
            "servo.exited",
            servo=sid,
            code=code,
            reason=info.reason,
            restart_in_s=verdict.restart_in_s,
            restarts=record.restarts,
        )

    async def _restart(
        self, record: ServoRecord, status: ContainerStatus, report: ReconcileReport
    ) -> None:
        """Start its container again in place (re-create it, same volume and ports, if gone)."""
        sid = record.servo_id
        name = container_name(self.node, sid)
        counted = record.state == "restarting"  # after an exit, not after a reboot
        self._restart_at.pop(sid, None)
        try:
            if status.state == "missing":
                record = self._save(
                    attrs.evolve(record, state=transition(record.state, "relaunch"))
                )
                await self.runtime.ensure_volume(volume_name(self.node, sid), self._labels(record))
                await self._run_container(record)
                report.recreated.append(sid)
            else:
                await self.runtime.start(name)
                report.restarted.append(sid)
        except ServoFailed as exc:  # the engine refuses: this container cannot run here
            report.failed.append(sid)
            info = ExitInfo(-1, "start_failed", self._wall_ms())
            self._hook(self.on_exit, sid, info.reason)
            await self._fail(record, info, f"the engine refused to start it: {exc.detail}")
            return
        except RuntimeUnavailable as exc:  # says nothing about the servo: try again later
            report.failed.append(sid)
            step = max(1, self._history.get(sid, CrashHistory()).step)
            self._restart_at[sid] = self._clock() + backoff_s(self.policy, step)
            self._wake.set()
            log.warning("servo.restart_unavailable", servo=sid, detail=exc.detail)
            return
        self._running(record, restarts=record.restarts + 1 if counted else record.restarts)
        log.info("servo.restarted", servo=sid, restarts=self._records[sid].restarts)

    async def _fail(self, record: ServoRecord, info: ExitInfo, why: str) -> None:
        """Give up on it here: it holds no reservation, its container stays as it is (for its
        logs), its volume and record stay until someone calls `remove_servo`."""
        sid = record.servo_id
        self._stop_checker(sid)
        tail = await self.runtime.logs_tail(container_name(self.node, sid), 5)
        error = f"{why}; last log lines: {tail[-ERROR_TAIL_CHARS:]}" if tail else why
        self._restart_at.pop(sid, None)
        self.admission.release(sid)
        self._save(
            attrs.evolve(
                record, state=transition(record.state, "gave_up"), last_exit=info, error=error
            )
        )
        self._hook(self.on_failed, sid, info.reason)
        log.warning("servo.failed", servo=sid, reason=info.reason, detail=error)

    async def _observe_safely(self, servo_id: str) -> None:
        try:
            await self._observe(servo_id)
        except HostError as exc:  # the engine did not answer: look again a little later
            if servo_id in self._restart_at:
                self._restart_at[servo_id] = self._clock() + ENGINE_RETRY_S
            log.warning("servo.observe_failed", servo=servo_id, detail=exc.detail)

    async def _run_restarts(self) -> None:
        """Carry out restarts when their backoff ends. One runs per host, started by whichever
        of the watcher and the reconciler comes first (the reconciler also restarts overdue
        servos on its own passes, should this one be gone)."""
        if self._restarter_running:
            return
        self._restarter_running = True
        try:
            while True:
                self._wake = trio.Event()
                now = self._clock()
                due = sorted(sid for sid, at in self._restart_at.items() if at <= now)
                for sid in due:
                    await self._observe_safely(sid)
                    if self._restart_at.get(sid, math.inf) <= now:  # stale: never spin on it
                        self._restart_at.pop(sid, None)
                if due:
                    continue
                wait_s = min(self._restart_at.values(), default=math.inf) - now
                with trio.move_on_after(wait_s):
                    await self._wake.wait()
        finally:
            self._restarter_running = False

    # --- health checks ----------------------------------------------------------------------
    def _ensure_checker(self, record: ServoRecord) -> None:
        """Start checking a servo's health unless it has no check, is checked already, or no
        watcher runs yet (the watcher's catch-up look at every live servo starts it then)."""
        sid = record.servo_id
        check = record.spec.health
        if check is None or self._nursery is None or sid in self._checkers:
            return
        if record.state not in ("starting", "running"):
            return
        started_s = self._history.get(sid, CrashHistory()).running_since_s
        scope = trio.CancelScope()
        self._checkers[sid] = scope
        self._nursery.start_soon(
            self._check_health,
            sid,
            self._launches.get(sid, 0),
            check,
            self._clock() if started_s is None else started_s,
            scope,
        )

    def _stop_checker(self, servo_id: str) -> None:
        scope = self._checkers.pop(servo_id, None)
        if scope is not None:
            scope.cancel()

    async def _check_health(
        self, sid: str, launch: int, check: HealthCheck, started_s: float, scope: trio.CancelScope
    ) -> None:
        """Probe one container run of a servo every `interval_s` until it is found unhealthy
        or the host cancels `scope` (its exit, stop, failure or removal, or a new start).

        `launch` names the container run: a verdict about an earlier run is dropped."""
        unhealthy = False
        try:
            with scope:
                history = ProbeHistory()
                while True:
                    record = self._records.get(sid)
                    if record is None:
                        return
                    port = dict(record.host_ports).get(check.port)
                    assert port is not None, "ServoSpec checks that the port is published"
                    began = trio.current_time()
                    passed = await self._probe_once(check, record.host_addr, port)
                    verdict = on_probe(check, history, passed, self._clock() - started_s)
                    history = verdict.history
                    if not passed:
                        log.debug("servo.check_failed", servo=sid, failures=history.failures)
                    if verdict.action == "healthy":
                        await self._health_passed(sid, launch)
                    elif verdict.action == "unhealthy":
                        unhealthy = True
                        break
                    await trio.sleep_until(began + check.interval_s)
        finally:
            if self._checkers.get(sid) is scope:
                del self._checkers[sid]
        if unhealthy:  # outside the scope: the restart cancels the checker it ends
            await self._unhealthy(sid, launch, check)

    async def _probe_once(self, check: HealthCheck, host_addr: str, port: int) -> bool:
        """One probe, bounded by the check's timeout; a probe that raises has failed."""
        with trio.move_on_after(check.timeout_s):
            try:
                return bool(await self._probe(check, probe_address(host_addr), port))
            except Exception as exc:  # a bug in a probe must not end the host's watch
                log.warning("servo.probe_error", port=port, detail=repr(exc))
                return False
        return False

    async def _health_passed(self, sid: str, launch: int) -> None:
        async with self._lock(sid):
            record = self._records.get(sid)
            if record is None or self._launches.get(sid) != launch or record.state != "starting":
                return
            self._save(attrs.evolve(record, state=transition(record.state, "healthy")))
            log.info("servo.healthy", servo=sid, restarts=record.restarts)

    async def _unhealthy(self, sid: str, launch: int, check: HealthCheck) -> None:
        """Stop a servo its check gave up on, and take the stop as an exit (`unhealthy`)."""
        try:
            async with self._lock(sid):
                record = self._records.get(sid)
                if (
                    record is None
                    or self._launches.get(sid) != launch
                    or record.state not in ("starting", "running")
                ):
                    return
                name = container_name(self.node, sid)
                status = await self.runtime.status(name)
                reason: str | None = None  # exited by itself meanwhile: an ordinary exit
                if status.state == "running":
                    log.warning(
                        "servo.unhealthy",
                        servo=sid,
                        check=check.type,
                        failures=check.threshold,
                        state=record.state,
                    )
                    await self.runtime.stop(name)
                    status = await self.runtime.status(name)
                    reason = "unhealthy"
                await self._exited(record, status, self._clock(), reason)
        except HostError as exc:  # the engine did not answer: keep checking, judge again
            log.warning("servo.unhealthy_unavailable", servo=sid, detail=exc.detail)
            record = self._records.get(sid)
            if record is not None and self._launches.get(sid) == launch:
                self._ensure_checker(record)

    # --- the event watcher ------------------------------------------------------------------
    def _servo_of(self, name: str) -> str | None:
        prefix = container_name(self.node, "")
        sid = name[len(prefix) :] if name.startswith(prefix) else None
        return sid if sid in self._records else None

    async def _observe_task(self, servo_id: str) -> None:
        try:
            while True:
                self._observe_again.discard(servo_id)
                await self._observe_safely(servo_id)
                if servo_id not in self._observe_again:
                    return
        finally:
            self._observing.discard(servo_id)

    def _on_event(self, nursery: trio.Nursery, action: str, servo_id: str, detail: str) -> None:
        if action == "oom":
            self._oom_seen.add(servo_id)  # its `die` follows
            return
        if action == "health_status":
            log.info("servo.health", servo=servo_id, status=detail)
            return
        # `die` or `start`: look at it. At most one look per servo at a time (bounded), and one
        # more if something happened meanwhile, since the look may have come before it.
        if servo_id in self._observing:
            self._observe_again.add(servo_id)
            return
        self._observing.add(servo_id)
        nursery.start_soon(self._observe_task, servo_id)

    async def run_watcher(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Follow the engine's container events and act on exits within a second.

        After each (re)subscription every live servo is looked at once, so an exit that fell
        between two subscriptions is not missed. A broken stream is reopened after a short
        backoff; reports started after the first attempt, whether the engine answered or not.
        """
        retry_s = WATCH_RETRY_MIN_S
        started = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._run_restarts)
            self._nursery = nursery  # health checkers run here, and end with the watcher
            try:
                while True:
                    try:
                        async with self.runtime.events(self.node) as stream:
                            if not started:
                                task_status.started()
                                started = True
                            retry_s = WATCH_RETRY_MIN_S
                            for record in self.list_servos():
                                if record.state in LIVE_STATES:
                                    self._on_event(nursery, "die", record.servo_id, "catch-up")
                            async for event in stream:
                                sid = self._servo_of(event.name)
                                if sid is not None:
                                    self._on_event(nursery, event.action, sid, event.detail)
                        log.warning("watch.ended", detail="the engine closed the event stream")
                    except HostError as exc:
                        log.warning("watch.unavailable", detail=exc.detail, retry_s=retry_s)
                    if not started:
                        task_status.started()
                        started = True
                    await trio.sleep(retry_s)
                    retry_s = min(WATCH_RETRY_MAX_S, retry_s * 2)
            finally:
                self._nursery = None
                for scope in self._checkers.values():
                    scope.cancel()
                self._checkers.clear()

    # --- reconciliation ---------------------------------------------------------------------
    async def reconcile(self) -> ReconcileReport:
        """Make the engine match the store: every live servo looked at, orphans removed.

        The first reconcile of this service is the boot one (see `_observe`)."""
        report = ReconcileReport()
        boot = not self._reconciled
        wanted = {container_name(self.node, sid) for sid in self._records}
        for name in await self.runtime.list_managed(self.node):
            if name not in wanted:
                await self.runtime.remove(name)
                report.removed_orphans.append(name)
        for record in self.list_servos():
            if record.state in LIVE_STATES:
                await self._observe(record.servo_id, boot=boot, report=report)
        self._reconciled = True
        if report.recreated or report.restarted or report.removed_orphans or report.failed:
            log.info(
                "reconcile.done",
                boot=boot,
                checked=report.checked,
                recreated=len(report.recreated),
                restarted=len(report.restarted),
                removed_orphans=len(report.removed_orphans),
                failed=len(report.failed),
            )
        else:
            log.debug("reconcile.done", boot=boot, checked=report.checked)
        return report

    async def run_reconciler(
        self,
        interval_s: float = RECONCILE_INTERVAL_S,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Reconcile once before reporting started (so a rebooted host is whole), then slowly."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._run_restarts)
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
