"""A runtime that keeps servos as records only: no processes, no Docker.

For the simulator, demos and machines without an engine. It behaves like the Docker runtime as
far as the host service can tell (containers exist, run, stop, vanish), and lets tests inject
the engine's failures: a missing image, a container that exits at once, an unreachable engine.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from node.runtime import ContainerStatus, RuntimeUnavailable, ServoFailed, ServoSpec

MISSING_IMAGE_PREFIX = "missing/"
CRASHING_COMMAND = ("false",)


@attrs.define
class _Container:
    spec: ServoSpec
    labels: dict[str, str]
    volume: str
    state: str = "running"
    exit_code: int | None = None


@attrs.define
class FakeRuntime:
    fake: bool = True
    containers: dict[str, _Container] = attrs.field(factory=dict)
    volumes: dict[str, dict[str, str]] = attrs.field(factory=dict)
    reachable: bool = True
    calls: list[str] = attrs.field(factory=list)

    def _check(self, what: str) -> None:
        self.calls.append(what)
        if not self.reachable:
            raise RuntimeUnavailable("fake engine unreachable")

    def close(self) -> None:
        """Nothing to release; here so both runtimes close the same way."""

    async def ensure_volume(self, name: str, labels: Mapping[str, str]) -> None:
        self._check("ensure_volume")
        self.volumes.setdefault(name, dict(labels))

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
        crashing = spec.command == CRASHING_COMMAND
        self.containers[name] = _Container(
            spec,
            dict(labels),
            volume,
            state="exited" if crashing else "running",
            exit_code=1 if crashing else None,
        )

    async def status(self, name: str) -> ContainerStatus:
        self._check("status")
        c = self.containers.get(name)
        if c is None:
            return ContainerStatus("missing")
        return ContainerStatus(c.state, c.exit_code)

    async def start(self, name: str) -> None:
        self._check("start")
        c = self.containers.get(name)
        if c is None:
            raise ServoFailed(f"No such container: {name}", "missing")
        if c.spec.command != CRASHING_COMMAND:
            c.state, c.exit_code = "running", None

    async def stop(self, name: str) -> None:
        self._check("stop")
        c = self.containers.get(name)
        if c is not None:
            c.state, c.exit_code = "exited", 0

    async def remove(self, name: str) -> None:
        self._check("remove")
        self.containers.pop(name, None)

    async def remove_volume(self, name: str) -> None:
        self._check("remove_volume")
        self.volumes.pop(name, None)

    async def list_managed(self, node: str) -> list[str]:
        self._check("list")
        return sorted(n for n, c in self.containers.items() if c.labels.get("shoal.node") == node)

    async def logs_tail(self, name: str) -> str:
        c = self.containers.get(name)
        return "fake: exited with status 1" if c is not None and c.exit_code else ""
