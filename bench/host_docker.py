"""Host duties on the real Docker Engine: create-to-running latency for 20 servos one at a time
and 20 at once, and destroy latency. Uses the locally built `shoal-servo:latest` image.

    .venv/bin/python bench/host_docker.py [--count 20]

"Running" is what `HostService.create_servo` returns: admitted, volume created, container
created and started, and still up after the start-up check. Figures only; target p50 < 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.capacity import Capacity
from node.host import HostService
from node.runtime import ServoSpec
from node.runtime_docker import DockerRuntime
from node.store import HostStore


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench(count: int) -> list[tuple[str, list[float]]]:
    node = f"bench-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        host = HostService(
            node, DockerRuntime(), HostStore(Path(tmp) / "h.db", node), Capacity(64 * 1024, 64_000)
        )
        rows: list[tuple[str, list[float]]] = []
        try:
            seq: list[float] = []
            for i in range(count):
                spec = ServoSpec(f"s{i}", f"p{i}", "shoal-servo:latest", 32, 50, ports=(8080,))
                t0 = time.perf_counter()
                await host.create_servo(spec)
                seq.append(time.perf_counter() - t0)
            rows.append((f"create, {count} one at a time", seq))
            destroy: list[float] = []
            for i in range(count):
                t0 = time.perf_counter()
                await host.destroy_servo(f"s{i}")
                destroy.append(time.perf_counter() - t0)
            par: list[float] = []

            async def one(i: int) -> None:
                spec = ServoSpec(f"c{i}", f"q{i}", "shoal-servo:latest", 32, 50, ports=(8080,))
                t0 = time.perf_counter()
                await host.create_servo(spec)
                par.append(time.perf_counter() - t0)

            async with trio.open_nursery() as nursery:
                for i in range(count):
                    nursery.start_soon(one, i)
            rows.append((f"create, {count} at once", par))
            rows.append(("destroy, one at a time", destroy))
        finally:
            for record in host.list_servos():
                await host.destroy_servo(record.servo_id)
            host.close()
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    rows = trio.run(bench, args.count)
    print(f"{'operation':<28} {'p50 s':>7} {'p95 s':>7} {'max s':>7}")
    for label, values in rows:
        p50, p95 = statistics.median(values), pct(values, 0.95)
        print(f"{label:<28} {p50:>7.2f} {p95:>7.2f} {max(values):>7.2f}")


if __name__ == "__main__":
    main()
