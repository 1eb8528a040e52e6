"""Placement speed: one decision at 100 / 1,000 / 10,000 nodes, and a C1M-style run.

    .venv/bin/python bench/placement.py            # full: C1M places 1,000,000 servos
    .venv/bin/python bench/placement.py --quick    # C1M scaled down to 100,000 servos

Single decisions go through `place(request, view)` (which builds the index from the view, as an
agent does for a request). The C1M-style run keeps one `PlacementIndex` over 5,000 nodes in 3
regions and applies each decision (3 servos per project) before the next, as Nomad's C1M did.
Figures are printed, never asserted. Target: >= 3,750 servos/s on one core.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from placement import ClusterView, NodeView, PlacementIndex, PlacementRequest, place


def make_view(
    n: int, regions: int = 3, zones: int = 3, mem: int = 65536, cpu: int = 32000
) -> ClusterView:
    nodes = []
    for i in range(n):
        r = i % regions
        nodes.append(
            NodeView(
                f"node-{i:05d}",
                f"r{r}",
                f"r{r}-z{(i // regions) % zones}",
                "alive",
                mem,
                mem,
                cpu,
                cpu,
            )
        )
    return ClusterView(tuple(nodes))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def single_decisions(sizes: list[int], reps: int) -> list[tuple[int, float, float, float]]:
    rows = []
    for n in sizes:
        view = make_view(n)
        times = []
        for i in range(reps):
            req = PlacementRequest(f"p{i}", 3, 256, 250)
            t0 = time.perf_counter()
            place(req, view)
            times.append(time.perf_counter() - t0)
        index = PlacementIndex(view)
        t0 = time.perf_counter()
        k = 0
        while time.perf_counter() - t0 < 1.0:
            index.place(PlacementRequest(f"q{k}", 3, 256, 250))
            k += 1
        rate = k / (time.perf_counter() - t0)
        rows.append((n, rate, statistics.median(times) * 1000, pct(times, 0.99) * 1000))
    return rows


def c1m(servos: int, nodes: int = 5000) -> tuple[float, int, int]:
    # 1,000,000 servos of 256 MiB / 0.25 CPU need 256 GiB per 1,000 servos-ish: size the nodes so
    # the whole run fits (200 servos per node), as C1M's clients did.
    per_node = -(-servos // nodes) + 10
    index = PlacementIndex(make_view(nodes, mem=256 * per_node, cpu=250 * per_node))
    placed = missing = 0
    t0 = time.perf_counter()
    for p in range(servos // 3):
        req = PlacementRequest(f"job-{p}", 3, 256, 250)
        decision = index.place(req)
        index.apply(req, decision)
        placed += len(decision.placements)
        missing += decision.missing
    return time.perf_counter() - t0, placed, missing


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="C1M with 100,000 servos")
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()
    print("one decision (3 servos, spread=region), place() builds the index from the view")
    print(f"{'nodes':>7} {'decisions/s (index kept)':>26} {'place() p50 ms':>15} {'p99 ms':>8}")
    for n, rate, p50, p99 in single_decisions([100, 1000, 10000], args.reps):
        print(f"{n:>7} {rate:>26.0f} {p50:>15.2f} {p99:>8.2f}")
    total = 100_000 if args.quick else 1_000_000
    wall, placed, missing = c1m(total)
    print(f"\nC1M-style: {placed:,} servos placed ({missing} missing) on 5,000 nodes in 3 regions")
    print(f"total {wall:.1f} s, {placed / wall:,.0f} servos/s on one core (target >= 3,750)")


if __name__ == "__main__":
    main()
