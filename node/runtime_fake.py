"""A runtime that keeps servos as records only: no processes, no Docker.

For the simulator, demos and machines without an engine. It behaves like the Docker runtime as
far as the host service can tell (containers exist, run, exit, stop, vanish, and every change
is announced on the event stream as Docker's `die`/`oom`/`start`), and lets tests inject the
engine's failures: a missing image, a container that exits right after each start
(`CRASHING_COMMAND`), a crash or OOM kill at a moment of their choosing (`crash`), a container
that can no longer be started (`refuse_start`), a broken event stream (`break_events`), an
unreachable engine (`reachable = False`), a servo whose health checks fail (`unhealthy`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import attrs
import trio

from node.health import HealthCheck
from node.runtime import (
    ContainerEvent,
    ContainerStatus,
    RuntimeUnavailable,
    ServoFailed,
    ServoSpec,
)

MISSING_IMAGE_PREFIX = "missing/"
CRASHING_COMMAND = ("false",)
EVENT_BUFFER = 1024  # per subscriber; past it events are dropped (the reconciler catches up)
FAKE_LOG_LINES = 1000  # kept per container, as Docker's bounded json-file log


def rfc3339_now() -> str:
    """Now as Docker stamps a log line (RFC 3339, nanoseconds, UTC)."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


@attrs.define
class _Container:
    spec: ServoSpec
    labels: dict[str, str]
    volume: str
    host_ports: tuple[tuple[int, int], ...] = ()  # (container_port, host_port)
    state: str = "running"
    exit_code: int | None = None
    oom_killed: bool = False
    output: list[tuple[str, str]] = attrs.field(factory=list)  # (RFC 3339 time, line)


@attrs.define
class FakeRuntime:
    fake: bool = True
    containers: dict[str, _Container] = attrs.field(factory=dict)
    volumes: dict[str, dict[str, str]] = attrs.field(factory=dict)
    reachable: bool = True
    calls: list[str] = attrs.field(factory=list)
    refuse_start: set[str] = attrs.field(factory=set)  # container names whose start fails
    unhealthy: set[str] = attrs.field(factory=set)  # container names whose health checks fail
    dropped_events: int = 0
    _subscribers: list[tuple[str, trio.MemorySendChannel[ContainerEvent]]] = attrs.field(
        factory=list
    )

    def _check(self, what: str) -> None:
        self.calls.append(what)
        if not self.reachable:
            raise RuntimeUnavailable("fake engine unreachable")

    def close(self) -> None:
        """Nothing to release; here so both runtimes close the same way."""

    # --- events -----------------------------------------------------------------------------
    def _emit(self, name: str, action: str, exit_code: int | None = None) -> None:
        c = self.containers.get(name)
        node = c.labels.get("shoal.node") if c is not None else None
        for sub_node, send in self._subscribers:
            if sub_node != node:
                continue
            try:
                send.send_nowait(ContainerEvent(name, action, exit_code))
            except trio.WouldBlock:
                self.dropped_events += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    @asynccontextmanager
    async def events(self, node: str) -> AsyncIterator[AsyncIterator[ContainerEvent]]:
        self._check("events")
        send, recv = trio.open_memory_channel[ContainerEvent](EVENT_BUFFER)
        entry = (node, send)
        self._subscribers.append(entry)
        try:
            async with recv:
                yield recv
        finally:
            if entry in self._subscribers:
                self._subscribers.remove(entry)
            send.close()

    def break_events(self) -> None:
        """End every open event stream, as an engine restart would."""
        for _, send in self._subscribers:
            send.close()
        self._subscribers.clear()

    def _exit(self, name: str, exit_code: int, oom: bool = False) -> None:
        c = self.containers[name]
        c.state, c.exit_code, c.oom_killed = "exited", exit_code, oom
        if oom:
            self._emit(name, "oom")
        self._emit(name, "die", exit_code)

    def _started(self, name: str) -> None:
        c = self.containers[name]
        c.state, c.exit_code, c.oom_killed = "running", None, False
        self._emit(name, "start")
        if c.spec.command == CRASHING_COMMAND:
            self._exit(name, 1)  # exits right after start, as `false` does

    def crash(self, name: str, exit_code: int = 1, oom: bool = False) -> None:
        """Make a running container exit; `oom`: killed by the OOM killer (137, flagged)."""
        c = self.containers[name]
        assert c.state == "running", f"{name} is {c.state}"
        self._exit(name, 137 if oom else exit_code, oom)

    # --- volumes ----------------------------------------------------------------------------
    async def ensure_volume(self, name: str, labels: Mapping[str, str]) -> bool:
        self._check("ensure_volume")
        if name in self.volumes:
            return False
        self.volumes[name] = dict(labels)
        return True

    async def volume_exists(self, name: str) -> bool:
        self._check("volume_exists")
        return name in self.volumes

    async def volume_sizes(self, names: Sequence[str]) -> dict[str, int | None]:
        return dict.fromkeys(names)  # records only: there are no bytes to count

    async def remove_volume(self, name: str) -> None:
        self._check("remove_volume")
        if any(c.volume == name for c in self.containers.values()):
            raise ServoFailed(f"remove {name}: volume is in use", "engine_error")
        self.volumes.pop(name, None)

    # --- containers -------------------------------------------------------------------------
    async def run(
        self,
        name: str,
        spec: ServoSpec,
        volume: str,
        host_addr: str,
        host_ports: tuple[tuple[int, int], ...],
        labels: Mapping[str, str],
    ) -> None:
        self._check("run")
        if spec.image.startswith(MISSING_IMAGE_PREFIX):
            raise ServoFailed(f"No such image: {spec.image}", "image_missing")
        if name in self.containers:
            raise ServoFailed(
                f"Conflict. The container name {name!r} is already in use", "conflict"
            )
        self.volumes.setdefault(volume, dict(labels))  # as Docker creates a named volume
        self.containers[name] = _Container(
            spec, dict(labels), volume, host_ports=host_ports, state="created"
        )
        self._started(name)

    async def status(self, name: str) -> ContainerStatus:
        self._check("status")
        c = self.containers.get(name)
        if c is None:
            return ContainerStatus("missing")
        return ContainerStatus(c.state, c.exit_code, oom_killed=c.oom_killed)

    async def start(self, name: str) -> None:
        self._check("start")
        c = self.containers.get(name)
        if c is None:
            raise ServoFailed(f"No such container: {name}", "missing")
        if name in self.refuse_start:
            raise ServoFailed(f"cannot start container {name}: fake refusal", "engine_error")
        if c.state != "running":
            self._started(name)

    async def stop(self, name: str) -> None:
        self._check("stop")
        c = self.containers.get(name)
        if c is not None and c.state == "running":
            self._exit(name, 0)

    async def remove(self, name: str) -> None:
        self._check("remove")
        c = self.containers.get(name)
        if c is not None and c.state == "running":
            self._exit(name, 137)  # a forced removal kills it first, as Docker's does
        self.containers.pop(name, None)

    async def list_managed(self, node: str) -> list[str]:
        self._check("list")
        return sorted(n for n, c in self.containers.items() if c.labels.get("shoal.node") == node)

    async def probe(self, check: HealthCheck, host: str, port: int) -> bool:
        """Passes while the container that published `port` runs and is not `unhealthy`: no
        process answers on the fake, so its records do (a check costs no time here)."""
        for name, c in self.containers.items():
            if any(h == port for _, h in c.host_ports):
                return c.state == "running" and name not in self.unhealthy
        return False

    def write_log(self, name: str, text: str) -> None:
        """What a container would print (tests, demos): kept with the time, the last
        `FAKE_LOG_LINES` lines of it."""
        c = self.containers[name]
        c.output.extend((rfc3339_now(), line) for line in text.splitlines())
        del c.output[:-FAKE_LOG_LINES]

    async def logs_tail(self, name: str, lines: int = 20, timestamps: bool = False) -> str:
        c = self.containers.get(name)
        if c is None:
            return ""
        if not c.output:
            return "" if c.exit_code is None else f"fake: exited with status {c.exit_code}"
        kept = c.output[-max(1, lines) :]
        return "\n".join(f"{at} {line}" if timestamps else line for at, line in kept)
