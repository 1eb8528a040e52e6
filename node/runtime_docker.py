"""The real runtime: Docker Engine through the `docker` SDK, every blocking call in a Trio
worker thread under a deadline.

Engine errors are translated at this boundary (as httpx translates its transports'): an image
that is not there, a command that cannot run, a name conflict become `ServoFailed` with the
engine's message; a refused connection or a call past its deadline becomes `RuntimeUnavailable`.

Containers are made with the SDK's low-level `APIClient` (create + start, two engine calls):
the high-level `containers.run` adds an inspect, and pulls from a registry when the image is
missing, which here only wastes time (no registry is reachable; images are built locally).

The event stream (`GET /events`) is a blocking, endless HTTP response. It is read by one plain
thread per subscription, on its own client, which hands each event to Trio through a bounded
memory channel (`trio.from_thread.run`, so a slow consumer slows the reader rather than growing
a queue). Leaving the subscription closes the response's socket, which ends the thread's read
at once: no thread outlives the agent.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import trio

from node.health import HealthCheck, network_probe
from node.logfmt import get_logger
from node.runtime import (
    CONTAINER_ACTIONS,
    ContainerEvent,
    ContainerStatus,
    RuntimeUnavailable,
    ServoFailed,
    ServoSpec,
)
from node.secret_box import SecretBox, SecretError

log = get_logger("node.runtime_docker")

T = TypeVar("T")
PIDS_LIMIT = 256
ENGINE_TIMEOUT_S = 30.0
LOG_MAX_SIZE = "10m"  # bounded logs: json-file, 3 files of 10 MB per container
LOG_MAX_FILES = "3"
# A read-only root filesystem (unless the spec has `writable_root`): an app (or an intruder in
# it) writes to its volume at /data or to this small tmpfs, nowhere else
TMPFS = {"/tmp": "rw,nosuid,nodev,size=64m"}
# One bridge network per project on each host: servos of a project reach each other, not the
# servos of other projects (Docker's default bridge joins every container). Made with the
# project's first servo here, removed with its last; volumes are never touched by it. Named for
# the agent too: Docker does not refuse a second network of the same name, so two agents on one
# engine (tests, a laptop) making "the" network of a project at once made two, and every later
# create failed on an ambiguous name.
NETWORK_PREFIX = "shoal-net-"
EVENT_BUFFER = 256  # events in flight between the reader thread and Trio
VOLUME_SIZES_TIMEOUT_S = 10.0  # `docker system df` walks every volume; never wait longer
VOLUME_SIZES_CACHE_S = 60.0  # and never ask more than once a minute
THREAD_JOIN_S = 2.0


def _engine_message(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()


def project_network(node: str, project: str) -> str:
    return f"{NETWORK_PREFIX}{node}-{project}"


def parse_event(raw: Mapping[str, Any]) -> ContainerEvent | None:
    """A Docker event (`/events` JSON) as a ContainerEvent, or None if it is not one we follow."""
    if raw.get("Type", "container") != "container":
        return None
    action = str(raw.get("Action") or raw.get("status") or "")
    action, _, detail = action.partition(":")
    if action not in CONTAINER_ACTIONS:
        return None
    attributes = (raw.get("Actor") or {}).get("Attributes") or {}
    name = attributes.get("name")
    if not isinstance(name, str) or not name:
        return None
    exit_code: int | None = None
    with contextlib.suppress(KeyError, TypeError, ValueError):
        exit_code = int(attributes["exitCode"])
    return ContainerEvent(name, action, exit_code, detail.strip())


@attrs.define
class DockerRuntime:
    base_url: str | None = None
    timeout_s: float = ENGINE_TIMEOUT_S
    extra_labels: Mapping[str, str] = attrs.field(factory=dict)
    fake: bool = False
    # opens the servos' sealed secrets (node.secret_box) as their containers are made; None:
    # an agent with no key ring (tests that make no secrets)
    secret_box: SecretBox | None = None
    _client: Any = None
    _sizes: tuple[float, dict[str, int | None]] | None = None  # (taken at, sizes) cache
    _locks: dict[str, trio.Lock] = attrs.field(factory=dict)  # per project: its network

    def _new_client(self) -> Any:
        import docker

        try:
            if self.base_url:
                return docker.DockerClient(base_url=self.base_url, timeout=int(self.timeout_s))
            return docker.from_env(timeout=int(self.timeout_s))
        except Exception as exc:
            raise RuntimeUnavailable(f"Docker Engine unreachable: {_engine_message(exc)}") from None

    def _docker(self) -> Any:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _api(self) -> Any:
        return self._docker().api

    async def _call(self, what: str, fn: Callable[[], T], timeout_s: float | None = None) -> T:
        import docker.errors
        import requests.exceptions

        deadline_s = self.timeout_s if timeout_s is None else timeout_s
        try:
            with trio.fail_after(deadline_s):
                return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)
        except trio.TooSlowError:
            raise RuntimeUnavailable(
                f"Docker Engine did not answer {what} within {deadline_s:.0f} s"
            ) from None
        except docker.errors.ImageNotFound as exc:
            raise ServoFailed(_engine_message(exc), "image_missing") from None
        except docker.errors.NotFound as exc:
            raise ServoFailed(_engine_message(exc), "missing") from None
        except docker.errors.APIError as exc:
            reason = "conflict" if exc.status_code == 409 else "engine_error"
            raise ServoFailed(_engine_message(exc), reason) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise RuntimeUnavailable(f"Docker Engine unreachable: {exc}") from None
        except docker.errors.DockerException as exc:
            raise RuntimeUnavailable(f"Docker Engine unreachable: {_engine_message(exc)}") from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # --- volumes ----------------------------------------------------------------------------
    async def ensure_volume(self, name: str, labels: Mapping[str, str]) -> bool:
        all_labels = {**labels, **self.extra_labels}

        def create() -> bool:
            import docker.errors

            api = self._api()
            try:
                api.inspect_volume(name)
                return False
            except docker.errors.NotFound:
                api.create_volume(name=name, labels=all_labels)
                return True

        return await self._call("volume create", create)

    async def volume_exists(self, name: str) -> bool:
        def exists() -> bool:
            import docker.errors

            try:
                self._api().inspect_volume(name)
                return True
            except docker.errors.NotFound:
                return False

        return await self._call("volume inspect", exists)

    async def volume_sizes(self, names: Sequence[str]) -> dict[str, int | None]:
        """Sizes from the engine's disk-usage report (`docker system df -v`), cached a minute.

        The report walks every volume, so it is bounded by a deadline and asked rarely; a volume
        it does not measure (size -1) or a report that does not come in time is None.
        """
        now = trio.current_time()
        if self._sizes is None or now - self._sizes[0] > VOLUME_SIZES_CACHE_S:

            def df() -> dict[str, int | None]:
                sizes: dict[str, int | None] = {}
                for v in self._api().df().get("Volumes") or []:
                    size = (v.get("UsageData") or {}).get("Size")
                    sizes[str(v.get("Name"))] = (
                        int(size) if isinstance(size, int) and size >= 0 else None
                    )
                return sizes

            try:
                self._sizes = (now, await self._call("df", df, VOLUME_SIZES_TIMEOUT_S))
            except (ServoFailed, RuntimeUnavailable) as exc:
                log.warning("volume_sizes.unavailable", detail=exc.detail)
                return dict.fromkeys(names)
        known = self._sizes[1]
        return {n: known.get(n) for n in names}

    async def remove_volume(self, name: str) -> None:
        def rm() -> None:
            import docker.errors

            with contextlib.suppress(docker.errors.NotFound):
                self._api().remove_volume(name, force=True)

        await self._call("volume remove", rm)
        self._sizes = None

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
        from docker.types import LogConfig

        env = {
            **dict(spec.env),
            **self._secrets(spec),
            "SHOAL_PROJECT": spec.project,
            "SHOAL_SERVO": spec.servo_id,
        }

        node = str(labels.get("shoal.node", ""))
        network = project_network(node, spec.project)

        def create_and_start() -> None:
            api = self._api()
            self._ensure_network(api, network, spec.project, node)
            host_config = api.create_host_config(
                binds={volume: {"bind": "/data", "mode": "rw"}},
                port_bindings={f"{c}/tcp": (host_addr, h) for c, h in host_ports},
                mem_limit=f"{spec.memory_mb}m",
                nano_cpus=spec.millicpus * 1_000_000,
                pids_limit=PIDS_LIMIT,
                security_opt=["no-new-privileges"],
                cap_drop=["ALL"],
                log_config=LogConfig(
                    type="json-file", config={"max-size": LOG_MAX_SIZE, "max-file": LOG_MAX_FILES}
                ),
                read_only=not spec.writable_root,
                tmpfs=dict(TMPFS),
                network_mode=network,
            )
            created = api.create_container(
                spec.image,
                command=list(spec.command) if spec.command else None,
                name=name,
                user=spec.user,
                detach=True,
                ports=[f"{c}/tcp" for c, _ in host_ports],
                environment=env,
                labels={**labels, **self.extra_labels},
                host_config=host_config,
                networking_config=api.create_networking_config(
                    {network: api.create_endpoint_config()}
                ),
                use_config_proxy=False,
            )
            api.start(created["Id"])

        async with self._network_lock(spec.project):
            await self._call("container run", create_and_start)

    def _ensure_network(self, api: Any, network: str, project: str, node: str) -> None:
        import docker.errors

        try:
            api.inspect_network(network)
        except docker.errors.NotFound:
            # shoal.node: the agent that made it (a sweep after a crash finds it by that)
            labels = {"shoal.project": project, "shoal.node": node, **self.extra_labels}
            try:
                api.create_network(network, driver="bridge", labels=labels, check_duplicate=True)
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # made meanwhile by another agent on this engine
                    raise

    def _network_lock(self, project: str) -> trio.Lock:
        """Creating a project's network and removing it when its last servo goes must not
        interleave on one host (a servo would be created on a network being removed)."""
        return self._locks.setdefault(project, trio.Lock())

    async def _drop_network_if_unused(self, node: str, project: str) -> None:
        """Remove the project's network when no container is attached to it any more; the
        engine refuses while one is (another servo of it here, or another agent's on this
        engine), which is the answer we want."""
        import docker.errors

        network = project_network(node, project)

        def drop() -> None:
            api = self._api()
            try:
                info = api.inspect_network(network)
            except docker.errors.NotFound:
                return
            if info.get("Containers"):
                return
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                api.remove_network(network)

        async with self._network_lock(project):
            try:
                await self._call("network remove", drop)
            except (ServoFailed, RuntimeUnavailable) as exc:
                log.warning("network.remove_failed", network=network, detail=exc.detail)

    def _secrets(self, spec: ServoSpec) -> dict[str, str]:
        """The servo's secrets in clear, for its container's environment only (never logged)."""
        if not spec.secrets:
            return {}
        if self.secret_box is None:
            raise ServoFailed("this agent has no cluster key to open secrets with", "secrets")
        try:
            return self.secret_box.open(spec.project, spec.secrets)
        except SecretError as exc:
            raise ServoFailed(str(exc), "secrets") from None

    async def status(self, name: str) -> ContainerStatus:
        def inspect() -> ContainerStatus:
            import docker.errors

            try:
                info = self._api().inspect_container(name)
            except docker.errors.NotFound:
                return ContainerStatus("missing")
            st = info.get("State") or {}
            state = "running" if st.get("Running") else str(st.get("Status") or "exited")
            return ContainerStatus(
                state, st.get("ExitCode"), str(st.get("Error") or ""), bool(st.get("OOMKilled"))
            )

        return await self._call("inspect", inspect)

    async def start(self, name: str) -> None:
        await self._call("start", lambda: self._api().start(name))

    async def stop(self, name: str) -> None:
        await self._call("stop", lambda: self._api().stop(name, timeout=5))

    async def remove(self, name: str) -> None:
        def rm() -> tuple[str, str] | None:
            import docker.errors

            api = self._api()
            try:
                labels = (api.inspect_container(name).get("Config") or {}).get("Labels") or {}
            except docker.errors.NotFound:
                return None
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(name, force=True)
            node, project = labels.get("shoal.node"), labels.get("shoal.project")
            ok = isinstance(node, str) and isinstance(project, str)
            return (str(node), str(project)) if ok else None

        owner = await self._call("remove", rm)
        if owner is not None:
            await self._drop_network_if_unused(*owner)

    async def list_managed(self, node: str) -> list[str]:
        def ls() -> list[str]:
            flt = {"label": f"shoal.node={node}"}
            found = self._api().containers(all=True, filters=flt)
            return sorted(str(c["Names"][0]).lstrip("/") for c in found if c.get("Names"))

        return await self._call("list", ls)

    async def logs_tail(self, name: str, lines: int = 20, timestamps: bool = False) -> str:
        def logs() -> str:
            raw = self._api().logs(name, tail=max(1, min(lines, 1000)), timestamps=timestamps)
            return raw.decode(errors="replace").strip() if isinstance(raw, bytes) else str(raw)

        try:
            return await self._call("logs", logs)
        except (ServoFailed, RuntimeUnavailable):
            return ""

    async def probe(self, check: HealthCheck, host: str, port: int) -> bool:
        """A real request to the port Docker published: what a client of the servo would see."""
        return await network_probe(check, host, port)

    # --- events -----------------------------------------------------------------------------
    @asynccontextmanager
    async def events(self, node: str) -> AsyncIterator[AsyncIterator[ContainerEvent]]:
        """This node's container events. Subscribed when entered; the stream ends if the engine
        drops it. Leaving closes the response, which ends the reader thread's blocking read."""
        filters = {
            "type": ["container"],
            "label": [f"shoal.node={node}"],
            "event": list(CONTAINER_ACTIONS),
        }
        client = await self._call("events client", self._new_client)
        try:
            stream = await self._call(
                "events", lambda: client.api.events(decode=True, filters=filters)
            )
        except BaseException:
            client.close()
            raise
        send, recv = trio.open_memory_channel[ContainerEvent](EVENT_BUFFER)
        token = trio.lowlevel.current_trio_token()
        closing = threading.Event()

        def pump() -> None:
            try:
                for raw in stream:
                    event = parse_event(raw) if isinstance(raw, dict) else None
                    if event is not None:
                        trio.from_thread.run(send.send, event, trio_token=token)
            except (trio.RunFinishedError, trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the subscriber is gone
            except Exception as exc:  # the engine went away mid-read: the stream just ends
                if not closing.is_set():
                    log.warning("events.broken", detail=_engine_message(exc))
            with contextlib.suppress(trio.RunFinishedError, trio.Cancelled):
                trio.from_thread.run_sync(send.close, trio_token=token)

        reader = threading.Thread(target=pump, name=f"docker-events-{node}", daemon=True)
        reader.start()
        try:
            async with recv:
                yield recv
        finally:
            closing.set()
            with contextlib.suppress(Exception):
                stream.close()  # shuts the socket down: the reader's read returns at once
            with contextlib.suppress(Exception):
                client.close()
            with trio.move_on_after(THREAD_JOIN_S, shield=True):
                await trio.to_thread.run_sync(reader.join, abandon_on_cancel=True)
