"""What a host runs servos with: the `Runtime` protocol, the values that cross it, and the one
error hierarchy of host duties.

    HostError                    anything a host could not do
    ├── AdmissionRefused         refused before any engine call (capacity, anti-affinity)
    ├── ServoFailed              the engine could not create or start it (bad image, exits at once)
    └── RuntimeUnavailable       the engine is unreachable or too slow

Each carries `reason` (a short stable code) and `detail` (the engine's own words when there are
some). `retry_elsewhere` tells the placer whether another host might succeed: true for all three
here, since a missing image or a full host on one agent says nothing about the next.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

import attrs

from node.health import HealthCheck, check_ports

# The states of a servo; their transitions are the table in node/servo_lifecycle.py.
SERVO_STATES = ("starting", "running", "restarting", "failed", "stopped")
# Why a servo's container stopped: the OOM killer, a SIGKILL (exit 137) without OOM, any other
# exit, a restart the engine refused, or its health check failing `threshold` times in a row
# (the host stopped it; node/health.py).
EXIT_REASONS = ("exited", "oom", "killed", "start_failed", "unhealthy")
DEFAULT_USER = "10001"


def iso_utc(ms: int) -> str:
    """Milliseconds since the epoch as ISO-8601 UTC, e.g. `2026-11-25T10:00:00.000Z`."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HostError(Exception):
    reason = "host_error"
    retry_elsewhere = True

    def __init__(self, detail: str, reason: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if reason is not None:
            self.reason = reason


class AdmissionRefused(HostError):
    reason = "refused"


class ServoFailed(HostError):
    reason = "servo_failed"


class RuntimeUnavailable(HostError):
    reason = "runtime_unavailable"


def _a_check(check: HealthCheck | None) -> HealthCheck | None:
    """A check of type "none" is no check: the host then tests `health is None` only."""
    return None if check is None or check.type == "none" else check


@attrs.frozen
class ServoSpec:
    servo_id: str
    project: str
    image: str
    memory_mb: int
    millicpus: int
    ports: tuple[int, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] | None = None
    max_per_host: int = 1
    user: str = DEFAULT_USER
    generation: int = 1  # the project's spec generation this servo runs
    slot: int = 0  # its replica slot; (project, generation, slot) names it
    # checked by the host that runs it (node/health.py); None: running once started
    health: HealthCheck | None = attrs.field(default=None, converter=_a_check)
    # the project's secrets, sealed (node.secret_box): opened by the runtime only when it
    # builds the container's environment; stored and sent as this box alone
    secrets: str = ""
    writable_root: bool = False  # False: read-only root filesystem, a tmpfs on /tmp

    def __attrs_post_init__(self) -> None:
        check_ports(self.health, self.ports)  # ValueError: the caller's mistake

    def to_wire(self) -> dict[str, Any]:
        # "health" only when there is a check: a spec without one is on the wire (and in the
        # stores of older agents) exactly as before.
        extra: dict[str, Any] = {}
        if self.health is not None:
            extra["health"] = self.health.to_wire()
        if self.secrets:
            extra["secrets"] = self.secrets
        if self.writable_root:
            extra["writable_root"] = True
        return {
            "servo_id": self.servo_id,
            "project": self.project,
            "image": self.image,
            "memory_mb": self.memory_mb,
            "millicpus": self.millicpus,
            "ports": list(self.ports),
            "env": dict(self.env),
            "command": list(self.command) if self.command is not None else None,
            "max_per_host": self.max_per_host,
            "user": self.user,
            "generation": self.generation,
            "slot": self.slot,
            **extra,
        }

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> ServoSpec:
        command = raw.get("command")
        return cls(
            servo_id=str(raw["servo_id"]),
            project=str(raw["project"]),
            image=str(raw["image"]),
            memory_mb=int(raw["memory_mb"]),
            millicpus=int(raw["millicpus"]),
            ports=tuple(int(p) for p in raw.get("ports") or ()),
            env=tuple(sorted((str(k), str(v)) for k, v in dict(raw.get("env") or {}).items())),
            command=tuple(str(c) for c in command) if command else None,
            max_per_host=int(raw.get("max_per_host", 1)),
            user=str(raw.get("user", DEFAULT_USER)),
            generation=int(raw.get("generation", 1)),
            slot=int(raw.get("slot", 0)),
            health=HealthCheck.from_wire(raw.get("health")),
            secrets=str(raw.get("secrets") or ""),
            writable_root=raw.get("writable_root") is True,
        )


@attrs.frozen
class Endpoint:
    container_port: int
    host: str
    host_port: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "container_port": self.container_port,
            "host": self.host,
            "host_port": self.host_port,
        }


@attrs.frozen
class ExitInfo:
    """How a servo's container last stopped without being asked to."""

    code: int  # the container's exit code; -1 when it could not be started at all
    reason: str = attrs.field(validator=attrs.validators.in_(EXIT_REASONS))
    at_ms: int  # wall clock, ms since the epoch

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason, "at": iso_utc(self.at_ms)}

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason, "at_ms": self.at_ms}

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> ExitInfo:
        return cls(int(raw["code"]), str(raw["reason"]), int(raw.get("at_ms", 0)))


@attrs.frozen
class ServoRecord:
    """A servo as its host knows it; `to_dict` is DESIGN.md's servo JSON."""

    spec: ServoSpec
    node: str
    state: str
    host_ports: tuple[tuple[int, int], ...] = ()  # (container_port, host_port)
    host_addr: str = "127.0.0.1"
    error: str | None = None
    fake: bool = False
    created_ms: int = 0
    restarts: int = 0  # restarts in place since it was created (never reset, like the kubelet's)
    last_exit: ExitInfo | None = None
    running_since_ms: int = 0  # wall clock of its container's last start; 0 if it never ran
    # wall clock since when it is `running` (for a checked servo: since its check first
    # passed); 0 while it is not. Not stored (nor compared): after a reboot a servo proves
    # itself again.
    ready_since_ms: int = attrs.field(default=0, eq=False)

    @property
    def servo_id(self) -> str:
        return self.spec.servo_id

    @property
    def project(self) -> str:
        return self.spec.project

    @property
    def healthy(self) -> bool | None:
        """None: it has no health check. Otherwise whether it passes it, which is exactly
        whether it is `running` (a checked servo is `starting` until its first passing check,
        and is restarted after `threshold` failures in a row: node/health.py)."""
        return None if self.spec.health is None else self.state == "running"

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(Endpoint(c, self.host_addr, h) for c, h in self.host_ports)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.servo_id,
            "project": self.project,
            "node": self.node,
            "state": self.state,
            "endpoints": [e.to_dict() for e in self.endpoints],
            "memory_mb": self.spec.memory_mb,
            "millicpus": self.spec.millicpus,
            "healthy": self.healthy,
            "restarts": self.restarts,
            "last_exit": self.last_exit.to_dict() if self.last_exit is not None else None,
            "generation": self.spec.generation,
            "slot": self.spec.slot,
            "created_ms": self.created_ms,
            "ready_since_ms": self.ready_since_ms,
        }
        if self.error:
            body["error"] = self.error
        if self.fake:
            body["fake"] = True
        return body


@attrs.frozen
class ContainerStatus:
    state: str  # "running" | "exited" | "created" | "missing"
    exit_code: int | None = None
    detail: str = ""
    oom_killed: bool = False  # the engine says the OOM killer ended it (Docker's State.OOMKilled)


# The container events a host follows (Docker's names): `die` is an exit of any kind, `oom`
# precedes the `die` of an OOM kill, `start` a (re)start, `health_status` a health check's verdict.
CONTAINER_ACTIONS = ("die", "oom", "start", "health_status")


@attrs.frozen
class ContainerEvent:
    name: str  # the container's name
    action: str  # one of CONTAINER_ACTIONS
    exit_code: int | None = None  # on `die`, when the engine tells it
    detail: str = ""  # on `health_status`: "healthy" | "unhealthy" | "starting"


class Runtime(Protocol):
    """The engine a host drives. Implementations translate their errors into `HostError`s."""

    fake: bool

    def close(self) -> None: ...

    async def ensure_volume(self, name: str, labels: Mapping[str, str]) -> bool:
        """Create the volume unless it exists; true if this call created it."""
        ...

    async def volume_exists(self, name: str) -> bool: ...

    async def volume_sizes(self, names: Sequence[str]) -> dict[str, int | None]:
        """Bytes used by each named volume, None where the engine cannot tell (cheaply)."""
        ...

    def events(self, node: str) -> AbstractAsyncContextManager[AsyncIterator[ContainerEvent]]:
        """Subscribe to this node's container events: subscribed once entered, closed on exit.

        The stream ends (the iteration stops) if the engine drops it; the caller reconnects.
        """
        ...

    async def run(
        self,
        name: str,
        spec: ServoSpec,
        volume: str,
        host_addr: str,
        host_ports: tuple[tuple[int, int], ...],
        labels: Mapping[str, str],
    ) -> None: ...

    async def status(self, name: str) -> ContainerStatus: ...

    async def start(self, name: str) -> None: ...

    async def stop(self, name: str) -> None: ...

    async def remove(self, name: str) -> None: ...

    async def remove_volume(self, name: str) -> None: ...

    async def list_managed(self, node: str) -> list[str]:
        """Names of containers labelled as this node's."""
        ...

    async def logs_tail(self, name: str, lines: int = 20, timestamps: bool = False) -> str:
        """Its last `lines` lines; with `timestamps` each starts with its RFC 3339 time and a
        space, Docker's format (`shoal logs --follow` resumes from the last time it printed)."""
        ...

    async def probe(self, check: HealthCheck, host: str, port: int) -> bool:
        """Run one health check against a servo's port published at `host:port`.

        Docker: a real request (`node.health.network_probe`); the fake: its records' word."""
        ...
