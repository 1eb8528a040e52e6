"""Real `shoal agent` processes for integration tests: start, query, kill -9, restart, clean up.

Each agent gets free ports, its own data dir and a name carrying the run id, so Docker objects
and processes of one run never collide with another's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs
import httpx

from api.cli import keygen
from tests.conftest import RUN_ID, free_port

T = TypeVar("T")


def wait_until(
    what: str, check: Callable[[], T | None], timeout_s: float = 30, every_s: float = 0.2
) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")


@attrs.define
class Agent:
    name: str
    region: str
    api_port: int
    gossip_port: int
    data_dir: Path
    args: list[str]
    log_path: Path
    bind: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None
    prefix: Sequence[str] = ()

    @property
    def api(self) -> str:
        return f"http://{self.bind}:{self.api_port}"

    @property
    def gossip_addr(self) -> str:
        return f"{self.bind}:{self.gossip_port}"

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "api.cli", "agent", *self.args],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout_s: float = 20) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def get(self, path: str, **kw: Any) -> Any:
        r = httpx.get(self.api + path, timeout=10, **kw)
        r.raise_for_status()
        return r.json()

    def members(self) -> dict[str, str]:
        return {m["name"]: m["status"] for m in self.get("/v1/members")}

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@attrs.define
class Cluster:
    base: Path
    key_file: Path
    agents: list[Agent] = attrs.field(factory=list)
    log_level: str = "debug"  # tests keep every event for diagnosis; benchmarks run as users do

    def add(
        self,
        short: str,
        region: str = "eu",
        runtime: str = "fake",
        join: Sequence[Agent] = (),
        extra: Sequence[str] = (),
        key_file: Path | None = None,
        bind: str = "127.0.0.1",
        prefix: Sequence[str] = (),
        memory: str = "4G",
        cpus: str = "4",
    ) -> Agent:
        name = f"{RUN_ID}-{short}"
        api_port, gossip_port = (free_port(), free_port()) if bind == "127.0.0.1" else (7070, 7946)
        data_dir = self.base / short
        args = [
            "--name",
            name,
            "--region",
            region,
            "--bind",
            bind,
            "--api-port",
            str(api_port),
            "--gossip-port",
            str(gossip_port),
            "--data-dir",
            str(data_dir),
            "--runtime",
            runtime,
            "--cluster-key-file",
            str(key_file or self.key_file),
            "--memory",
            memory,
            "--cpus",
            cpus,
            "--log-level",
            self.log_level,
            *extra,
        ]
        for seed in join:
            args += ["--join", seed.gossip_addr]
        agent = Agent(
            name,
            region,
            api_port,
            gossip_port,
            data_dir,
            args,
            self.base / f"{short}.log",
            bind=bind,
            prefix=prefix,
        )
        self.agents.append(agent)
        agent.start()
        return agent

    def add_fleet(
        self, size: int, short: str, regions: int = 3, memory: str = "4G", cpus: str = "4"
    ) -> list[Agent]:
        """`size` agents named short0, short1, ... spread over `regions` regions, all joined
        through the first, once every one answers and sees every other alive."""
        seed = self.add(f"{short}0", region="r0", memory=memory, cpus=cpus)
        for i in range(1, size):
            self.add(f"{short}{i}", region=f"r{i % regions}", join=[seed], memory=memory, cpus=cpus)
        self.wait_healthy(timeout_s=120)
        self.wait_all_alive(timeout_s=180)
        return list(self.agents)

    def wait_healthy(self, agents: Sequence[Agent] | None = None, timeout_s: float = 30) -> None:
        for a in agents or self.agents:
            wait_until(f"{a.name} health", lambda a=a: a.get("/v1/health"), timeout_s)

    def wait_all_alive(self, agents: Sequence[Agent] | None = None, timeout_s: float = 30) -> None:
        group = list(agents or self.agents)
        names = {a.name for a in group}

        def check() -> bool:
            return all(names <= {n for n, s in a.members().items() if s == "alive"} for a in group)

        wait_until("every agent to see every other alive", check, timeout_s)

    def stop_all(self) -> None:
        for a in self.agents:
            a.stop()

    def logs(self) -> str:
        return "\n".join(f"==== {a.name}\n{a.log_text()[-4000:]}" for a in self.agents)


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has spent so far, from /proc (benchmarks' cost figures)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@contextlib.contextmanager
def running_cluster(base: Path, log_level: str = "info") -> Iterator[Cluster]:
    """`make_cluster` for scripts (benchmarks): agents log as a user's do (info, not the tests'
    debug, whose per-change lines are a cost of their own), every agent stopped gracefully at
    the end, then whatever still runs killed."""
    gen = make_cluster(base)
    cluster = next(gen)
    cluster.log_level = log_level
    try:
        yield cluster
    finally:
        cluster.stop_all()
        with contextlib.suppress(StopIteration):
            next(gen)


def make_cluster(tmp_path: Path) -> Iterator[Cluster]:
    key = tmp_path / "cluster.key"
    key.write_text(keygen() + "\n")
    cluster = Cluster(tmp_path, key)
    try:
        yield cluster
    finally:
        for a in cluster.agents:
            a.kill9() if a.running() else None


def ours(docker_client: Any) -> tuple[list[Any], list[Any]]:
    """Containers and volumes made by this run's agents (their node names carry the run id)."""
    # sparse: no inspect per container, so one that vanishes meanwhile is no error
    cs = [
        c
        for c in docker_client.containers.list(
            all=True, filters={"label": "shoal.node"}, sparse=True
        )
        if (c.attrs.get("Labels") or {}).get("shoal.node", "").startswith(RUN_ID)
    ]
    vs = [
        v
        for v in docker_client.volumes.list(filters={"label": "shoal.node"})
        if (v.attrs.get("Labels") or {}).get("shoal.node", "").startswith(RUN_ID)
    ]
    return cs, vs


def make_docker_cluster(tmp_path: Path, docker_client: Any) -> Iterator[Cluster]:
    """`make_cluster`, then every container and volume this run's agents made is removed."""
    yield from make_cluster(tmp_path)
    cs, vs = ours(docker_client)
    for c in cs:
        c.remove(force=True)
    for v in vs:
        v.remove(force=True)
    for n in docker_client.networks.list(filters={"label": "shoal.node"}):  # per project
        if (n.attrs.get("Labels") or {}).get("shoal.node", "").startswith(RUN_ID):
            n.remove()
