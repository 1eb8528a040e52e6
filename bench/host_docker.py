"""Host duties on the real Docker Engine, side by side with a raw `docker run` in the same run.

    .venv/bin/python bench/host_docker.py [--count 20] [--no-api]

Rows, each over `--count` servos of the locally built `shoal-servo:latest`, interleaved so
every path sees the same engine:

- raw `docker run -d` with the same limits a servo gets (memory, cpus, pids, no capabilities,
  no-new-privileges, user 10001, a published port, a named volume at /data, bounded logs), to
  the moment the CLI returns (the container started);
- `HostService.create_servo` in-process, to the moment it answers (admitted, persisted with
  fsync, volume created, container created and started: no start-up sleep any more);
- unless `--no-api`: `PUT /v1/projects/{name}` (one replica) to one agent process started with
  `--runtime docker`, to its answer (the deploy through the HTTP API and placement);
- destroy through the host, one at a time, and creates through the host, `--count` at once.

Prints p50/p95/max and each path's p50 as a ratio of raw `docker run`'s (target for the host:
at most 1.5). Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.capacity import Capacity
from node.host import HostService, pick_free_port
from node.runtime import ServoSpec
from node.runtime_docker import LOG_MAX_FILES, LOG_MAX_SIZE, PIDS_LIMIT, DockerRuntime
from node.store import HostStore

IMAGE = "shoal-servo:latest"
MEMORY_MB = 32
MILLICPUS = 50
BENCH_LABEL = "shoal.bench"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def raw_run_args(run: str, i: int, port: int) -> list[str]:
    """`docker run` with the limits `DockerRuntime.run` gives a servo."""
    return [
        "docker",
        "run",
        "-d",
        "--name",
        f"raw-{run}-{i}",
        "--label",
        f"{BENCH_LABEL}={run}",
        "--memory",
        f"{MEMORY_MB}m",
        "--cpus",
        f"{MILLICPUS / 1000}",
        "--pids-limit",
        str(PIDS_LIMIT),
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--user",
        "10001",
        "--log-driver",
        "json-file",
        "--log-opt",
        f"max-size={LOG_MAX_SIZE}",
        "--log-opt",
        f"max-file={LOG_MAX_FILES}",
        "-p",
        f"127.0.0.1:{port}:8080",
        "-v",
        f"raw-{run}-{i}-data:/data",
        "-e",
        f"SHOAL_PROJECT=raw{i}",
        "-e",
        f"SHOAL_SERVO=raw-{i}",
        IMAGE,
    ]


def sweep_label(label: str) -> None:
    """Remove every container and volume carrying `label`."""
    for kind, rm in (
        (["ps", "-aq"], ["rm", "-f"]),
        (["volume", "ls", "-q"], ["volume", "rm", "-f"]),
    ):
        found = subprocess.run(
            ["docker", *kind, "--filter", f"label={label}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if found:
            subprocess.run(["docker", *rm, *found], capture_output=True, check=False)


def sweep_raw(run: str) -> None:
    sweep_label(f"{BENCH_LABEL}={run}")
    volumes = subprocess.run(
        ["docker", "volume", "ls", "-q", "--filter", f"name=raw-{run}-"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if volumes:
        subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True, check=False)


@contextlib.contextmanager
def one_docker_agent(base: Path) -> Iterator[str]:
    """One agent process with the Docker runtime (the integration tests' harness)."""
    from tests.integration.agents import make_cluster

    base.mkdir(parents=True, exist_ok=True)
    gen = make_cluster(base)
    cluster = next(gen)
    agent = cluster.add("bench", runtime="docker", memory="16G", cpus="16")
    try:
        cluster.wait_healthy(timeout_s=60)
        yield agent.api
    finally:
        cluster.stop_all()
        with contextlib.suppress(StopIteration):
            next(gen)
        sweep_label(f"shoal.node={agent.name}")  # whatever the agent left (kept volumes too)


async def api_deploy(client: object, name: str) -> float:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    body = {"image": IMAGE, "replicas": 1, "memory": MEMORY_MB, "cpus": MILLICPUS / 1000}
    t0 = time.perf_counter()
    r = await client.put(f"/v1/projects/{name}", json=body)
    took = time.perf_counter() - t0
    r.raise_for_status()
    return took


async def bench(count: int, with_api: bool) -> tuple[list[tuple[str, list[float]]], str]:
    run = uuid.uuid4().hex[:6]
    node = f"bench-{run}"
    rows: list[tuple[str, list[float]]] = []
    note = ""
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        api_url = None
        if with_api:
            try:
                api_url = stack.enter_context(one_docker_agent(Path(tmp) / "agent"))
            except Exception as exc:
                note = f"HTTP API path unavailable: {exc}"
        host = HostService(
            node,
            DockerRuntime(),
            HostStore(Path(tmp) / "h.db", node),
            Capacity(64 * 1024, 64_000),
        )
        raw: list[float] = []
        via_host: list[float] = []
        via_api: list[float] = []
        import httpx

        client = httpx.AsyncClient(base_url=api_url or "http://127.0.0.1:1", timeout=120)
        try:
            # one of each first, unmeasured: the engine's caches, the image's layers
            warm = await trio.run_process(
                raw_run_args(run, 9999, pick_free_port("127.0.0.1", set())), capture_stdout=True
            )
            assert warm.returncode == 0
            await host.create_servo(ServoSpec("warm", "warm", IMAGE, MEMORY_MB, MILLICPUS))
            for i in range(count):
                port = pick_free_port("127.0.0.1", set())
                t0 = time.perf_counter()
                await trio.run_process(raw_run_args(run, i, port), capture_stdout=True)
                raw.append(time.perf_counter() - t0)
                spec = ServoSpec(f"s{i}", f"p{i}", IMAGE, MEMORY_MB, MILLICPUS, ports=(8080,))
                t0 = time.perf_counter()
                await host.create_servo(spec)
                via_host.append(time.perf_counter() - t0)
                if api_url is not None:
                    try:
                        via_api.append(await api_deploy(client, f"bench{run}{i}"))
                    except Exception as exc:
                        note = f"HTTP API path failed: {exc}"
                        api_url = None
            rows.append((f"raw docker run, {count}", raw))
            rows.append((f"host create, {count}", via_host))
            if via_api:
                rows.append((f"API deploy (1 agent), {len(via_api)}", via_api))
            destroy: list[float] = []
            for i in range(count):
                t0 = time.perf_counter()
                await host.destroy_servo(f"s{i}")
                destroy.append(time.perf_counter() - t0)
            par: list[float] = []

            async def one(i: int) -> None:
                spec = ServoSpec(f"c{i}", f"q{i}", IMAGE, MEMORY_MB, MILLICPUS, ports=(8080,))
                t0 = time.perf_counter()
                await host.create_servo(spec)
                par.append(time.perf_counter() - t0)

            async with trio.open_nursery() as nursery:
                for i in range(count):
                    nursery.start_soon(one, i)
            rows.append((f"host create, {count} at once", par))
            rows.append(("host destroy, one at a time", destroy))
        finally:
            for record in host.list_servos():
                await host.destroy_servo(record.servo_id)
            if api_url is not None:
                for i in range(len(via_api)):
                    with contextlib.suppress(Exception):
                        await client.delete(f"/v1/projects/bench{run}{i}")
            await client.aclose()
            host.close()
            await trio.to_thread.run_sync(sweep_raw, run)
    return rows, note


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--no-api", action="store_true", help="skip the HTTP API path")
    args = parser.parse_args()
    rows, note = trio.run(bench, args.count, not args.no_api)
    raw_p50 = statistics.median(rows[0][1])
    print(f"{'operation':<34} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'p50/raw':>8}")
    for label, values in rows:
        p50, p95 = statistics.median(values), pct(values, 0.95)
        print(f"{label:<34} {p50:>7.3f} {p95:>7.3f} {max(values):>7.3f} {p50 / raw_p50:>8.2f}")
    if note:
        print(note)


if __name__ == "__main__":
    main()
