"""The real runtime: Docker Engine through the `docker` SDK, every blocking call in a Trio
worker thread under a deadline.

Engine errors are translated at this boundary (as httpx translates its transports'): an image
that is not there, a command that cannot run, a name conflict become `ServoFailed` with the
engine's message; a refused connection or a call past its deadline becomes `RuntimeUnavailable`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import trio

from node.runtime import ContainerStatus, RuntimeUnavailable, ServoFailed, ServoSpec

T = TypeVar("T")
PIDS_LIMIT = 256
ENGINE_TIMEOUT_S = 30.0


def _engine_message(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()


@attrs.define
class DockerRuntime:
    base_url: str | None = None
    timeout_s: float = ENGINE_TIMEOUT_S
    extra_labels: Mapping[str, str] = attrs.field(factory=dict)
    fake: bool = False
    _client: Any = None

    def _docker(self) -> Any:
        if self._client is None:
            import docker

            try:
                if self.base_url:
                    self._client = docker.DockerClient(
                        base_url=self.base_url, timeout=int(self.timeout_s)
                    )
                else:
                    self._client = docker.from_env(timeout=int(self.timeout_s))
            except Exception as exc:
                raise RuntimeUnavailable(
                    f"Docker Engine unreachable: {_engine_message(exc)}"
                ) from None
        return self._client

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        import docker.errors
        import requests.exceptions

        def guarded() -> T:
            return fn()

        try:
            with trio.fail_after(self.timeout_s):
                return await trio.to_thread.run_sync(guarded, abandon_on_cancel=True)
        except trio.TooSlowError:
            raise RuntimeUnavailable(
                f"Docker Engine did not answer {what} within {self.timeout_s:.0f} s"
            ) from None
        except docker.errors.ImageNotFound as exc:
            raise ServoFailed(_engine_message(exc), "image_missing") from None
        except docker.errors.NotFound as exc:
            raise ServoFailed(_engine_message(exc), "missing") from None
        except docker.errors.APIError as exc:
            raise ServoFailed(_engine_message(exc), "engine_error") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise RuntimeUnavailable(f"Docker Engine unreachable: {exc}") from None
        except docker.errors.DockerException as exc:
            raise RuntimeUnavailable(f"Docker Engine unreachable: {_engine_message(exc)}") from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def ensure_volume(self, name: str, labels: Mapping[str, str]) -> None:
        all_labels = {**labels, **self.extra_labels}

        def create() -> None:
            import docker.errors

            client = self._docker()
            try:
                client.volumes.get(name)
            except docker.errors.NotFound:
                client.volumes.create(name=name, labels=all_labels)

        await self._call("volume create", create)

    async def run(
        self,
        name: str,
        spec: ServoSpec,
        volume: str,
        host_addr: str,
        host_ports: tuple[tuple[int, int], ...],
        labels: Mapping[str, str],
    ) -> None:
        env = {**dict(spec.env), "SHOAL_PROJECT": spec.project, "SHOAL_SERVO": spec.servo_id}
        kwargs: dict[str, Any] = {
            "name": name,
            "detach": True,
            "labels": {**labels, **self.extra_labels},
            "environment": env,
            "user": spec.user,
            "mem_limit": f"{spec.memory_mb}m",
            "nano_cpus": spec.millicpus * 1_000_000,
            "pids_limit": PIDS_LIMIT,
            "security_opt": ["no-new-privileges"],
            "cap_drop": ["ALL"],
            "ports": {f"{c}/tcp": (host_addr, h) for c, h in host_ports},
            "volumes": {volume: {"bind": "/data", "mode": "rw"}},
        }
        if spec.command:
            kwargs["command"] = list(spec.command)

        def create_and_start() -> None:
            self._docker().containers.run(spec.image, **kwargs)

        await self._call("container run", create_and_start)

    async def status(self, name: str) -> ContainerStatus:
        def inspect() -> ContainerStatus:
            import docker.errors

            try:
                c = self._docker().containers.get(name)
            except docker.errors.NotFound:
                return ContainerStatus("missing")
            st = c.attrs.get("State", {})
            state = "running" if st.get("Running") else str(c.status)
            return ContainerStatus(state, st.get("ExitCode"), str(st.get("Error") or ""))

        return await self._call("inspect", inspect)

    async def start(self, name: str) -> None:
        await self._call("start", lambda: self._docker().containers.get(name).start())

    async def stop(self, name: str) -> None:
        await self._call("stop", lambda: self._docker().containers.get(name).stop(timeout=5))

    async def remove(self, name: str) -> None:
        def rm() -> None:
            import docker.errors

            with contextlib.suppress(docker.errors.NotFound):
                self._docker().containers.get(name).remove(force=True)

        await self._call("remove", rm)

    async def remove_volume(self, name: str) -> None:
        def rm() -> None:
            import docker.errors

            with contextlib.suppress(docker.errors.NotFound):
                self._docker().volumes.get(name).remove(force=True)

        await self._call("volume remove", rm)

    async def list_managed(self, node: str) -> list[str]:
        def ls() -> list[str]:
            flt = {"label": f"shoal.node={node}"}
            return sorted(c.name for c in self._docker().containers.list(all=True, filters=flt))

        return await self._call("list", ls)

    async def logs_tail(self, name: str) -> str:
        def logs() -> str:
            raw = self._docker().containers.get(name).logs(tail=5)
            return raw.decode(errors="replace").strip() if isinstance(raw, bytes) else str(raw)

        try:
            return await self._call("logs", logs)
        except (ServoFailed, RuntimeUnavailable):
            return ""
