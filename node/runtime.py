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

from collections.abc import Mapping
from typing import Any, Protocol

import attrs

SERVO_STATES = ("starting", "running", "stopped", "failed")
DEFAULT_USER = "10001"


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

    def to_wire(self) -> dict[str, Any]:
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

    @property
    def servo_id(self) -> str:
        return self.spec.servo_id

    @property
    def project(self) -> str:
        return self.spec.project

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


class Runtime(Protocol):
    """The engine a host drives. Implementations translate their errors into `HostError`s."""

    fake: bool

    def close(self) -> None: ...

    async def ensure_volume(self, name: str, labels: Mapping[str, str]) -> None: ...

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

    async def logs_tail(self, name: str) -> str: ...
