"""Deploy throughput and latency on a 5-agent loopback cluster with the fake runtime.

    .venv/bin/python bench/deploy.py [--projects 200] [--replicas 3]

Prints deploys per second through one agent (one request at a time) and through all five at
once (concurrent clients), with p50/p99 deploy latency. Figures only; nothing is asserted.
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

from tests.integration.agents import Cluster, make_cluster


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spec(replicas: int) -> dict[str, object]:
    return {"image": "shoal-servo:latest", "replicas": replicas, "memory": "16M", "cpus": 0.01}


async def run_phase(
    apis: list[str], names: list[str], replicas: int, per_agent: int
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

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for api in apis:
            for _ in range(per_agent):
                nursery.start_soon(worker, api)
    return time.perf_counter() - t0, latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=int, default=4, help="clients per agent in the all-agents phase"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        gen = make_cluster(Path(tmp))
        cluster: Cluster = next(gen)
        try:
            seed = cluster.add("b0", region="eu", memory="256G", cpus="256")
            for i in range(1, 5):
                cluster.add(
                    f"b{i}", region="eu" if i < 3 else "us", join=[seed], memory="256G", cpus="256"
                )
            cluster.wait_healthy()
            cluster.wait_all_alive(timeout_s=60)
            apis = [a.api for a in cluster.agents]
            rows = []
            one = [f"one-{i}" for i in range(args.projects)]
            wall, lat = trio.run(run_phase, apis[:1], one, args.replicas, 1)
            rows.append(("one agent, 1 client", len(lat) / wall, lat))
            many = [f"all-{i}" for i in range(args.projects)]
            wall, lat = trio.run(run_phase, apis, many, args.replicas, args.concurrency)
            rows.append((f"five agents, {args.concurrency} clients each", len(lat) / wall, lat))
            print(f"\n5 agents, fake runtime, {args.projects} projects x {args.replicas} replicas")
            print(f"{'phase':<34} {'deploys/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
            for label, rate, lat in rows:
                p50, p99 = statistics.median(lat) * 1000, pct(lat, 0.99) * 1000
                print(f"{label:<34} {rate:>10.1f} {p50:>8.1f} {p99:>8.1f}")
        finally:
            cluster.stop_all()
            with contextlib.suppress(StopIteration):
                next(gen)


if __name__ == "__main__":
    main()
