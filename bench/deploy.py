"""Deploy throughput and latency on loopback clusters of several sizes, fake runtime.

    .venv/bin/python bench/deploy.py [--agents 5 40] [--projects 100] [--replicas 3]

For each cluster size, in the same run: deploys through one agent, one request at a time
(latency p50/p99, and the ratio of each size's p50 to the first size's: a deploy must not cost
more on a larger cluster, since it asks only the hosts it places on), then through every agent
at once with `--concurrency` clients each. Also the CPU the agents spent (user + system, every
agent process, from /proc) per deploy, in all and per agent: on one machine every agent's share
of the gossip that carries each change lands on the same cores, so this tells whether the
latency of a larger cluster is the deploy path's or the machine's. Figures only; nothing is
asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.agents import cpu_seconds, running_cluster


def cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spec(replicas: int) -> dict[str, object]:
    return {"image": "shoal-servo:latest", "replicas": replicas, "memory": "16M", "cpus": 0.01}


async def run_phase(
    apis: list[str], names: list[str], replicas: int, per_agent: int, gap_s: float = 0.0
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = list(names)

    async def worker(api: str) -> None:
        async with httpx.AsyncClient(base_url=api, timeout=60) as client:
            while queue:
                name = queue.pop()
                t0 = time.perf_counter()
                r = await client.put(f"/v1/projects/{name}", json=spec(replicas))
                r.raise_for_status()
                assert r.json()["deploy"]["missing"] == 0, r.text
                latencies.append(time.perf_counter() - t0)
                if gap_s:
                    await trio.sleep(gap_s)

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for api in apis:
            for _ in range(per_agent):
                nursery.start_soon(worker, api)
    return time.perf_counter() - t0, latencies


def measure(
    base: Path, size: int, args: argparse.Namespace
) -> list[tuple[str, float, list[float], float]]:
    with running_cluster(base) as cluster:
        cluster.add_fleet(size, "b", memory="256G", cpus="256")
        time.sleep(3)  # let the joins' gossip settle before timing
        apis = [a.api for a in cluster.agents]
        pids = [a.proc.pid for a in cluster.agents if a.proc is not None]
        rows = []
        one = [f"one-{i}" for i in range(args.projects)]
        cpu0 = cpu_s(pids)
        wall, lat = trio.run(run_phase, apis[:1], one, args.replicas, 1)
        cpu = (cpu_s(pids) - cpu0) / len(lat)
        rows.append((f"{size} agents: one agent, 1 client", len(lat) / wall, lat, cpu))
        if args.gap:
            paced = [f"paced-{i}" for i in range(args.projects)]
            cpu0 = cpu_s(pids)
            wall, lat = trio.run(run_phase, apis[:1], paced, args.replicas, 1, args.gap)
            cpu = (cpu_s(pids) - cpu0) / len(lat)
            rows.append(
                (f"{size} agents: one agent, {args.gap:g} s apart", len(lat) / wall, lat, cpu)
            )
        if args.concurrency:
            many = [f"all-{i}" for i in range(args.projects)]
            some = apis[: min(len(apis), 5)]
            cpu0 = cpu_s(pids)
            wall, lat = trio.run(run_phase, some, many, args.replicas, args.concurrency)
            cpu = (cpu_s(pids) - cpu0) / len(lat)
            rows.append(
                (
                    f"{size} agents: {len(some)} agents x {args.concurrency} clients",
                    len(lat) / wall,
                    lat,
                    cpu,
                )
            )
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, nargs="+", default=[5, 40])
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=4,
        help="clients per agent in the concurrent phase (through up to 5 agents; 0 skips it)",
    )
    parser.add_argument(
        "--gap",
        type=float,
        default=1.0,
        help="seconds between one deploy's answer and the next request in the paced phase "
        "(a person deploying, not a load generator; 0 skips it)",
    )
    args = parser.parse_args()
    rows = []
    for size in args.agents:
        with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
            rows += measure(Path(tmp), size, args)
    print(f"\nfake runtime, {args.projects} projects x {args.replicas} replicas per phase")
    print(
        f"{'phase':<42} {'deploys/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'p50 / first':>12} "
        f"{'CPU ms/deploy':>14} {'per agent':>10}"
    )
    firsts: dict[str, float] = {}  # each phase's p50 at the first size
    for label, rate, lat, cpu in rows:
        p50, p99 = statistics.median(lat), pct(lat, 0.99)
        base = firsts.setdefault(label.split(": ", 1)[1], p50)
        ratio = f"{p50 / base:.2f}" if " x " not in label else ""
        size = int(label.split()[0])
        print(
            f"{label:<42} {rate:>10.1f} {p50 * 1000:>8.1f} {p99 * 1000:>8.1f} {ratio:>12} "
            f"{cpu * 1000:>14.1f} {cpu * 1000 / size:>10.2f}"
        )


if __name__ == "__main__":
    main()
