"""Failure detection on the in-memory network and a virtual clock (no real time involved).

    .venv/bin/python bench/gossip_detect.py               # 10 and 100 members, 10 simulated min
    .venv/bin/python bench/gossip_detect.py --sizes 10 100 500 --minutes 10

For each cluster size, loss rate, with and without 10 % of members stalling 500 ms at random
times, and with Lifeguard (awareness + dynamic suspicion + buddy system) on and off: one member
is crashed every 30 s (and replaced, so the size stays put); we report median and p99 time from
a crash to its first suspicion anywhere and to "dead" at every member, the false positives (a
live member declared dead by anyone), and messages and bytes sent per member per second.
Figures are printed, never asserted.

A second table isolates what Lifeguard is for (its paper's experiment): 10 % of members are
slow, handling every packet D seconds after it arrives while their timers fire on time (a
CPU-starved process); we count suspicions of healthy members, healthy members declared dead
(false positives) and slow members declared dead, Lifeguard on and off.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossip.core import GossipConfig, MemberEvent
from sim.gossip_net import GossipNet

CRASH_EVERY_S = 30.0
STALL_S = 0.5
STALL_MEAN_GAP_S = 10.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def joined_cluster(
    n: int, lifeguard: bool, loss: float, seed: int, on_event: Callable[[str, MemberEvent], None]
) -> GossipNet:
    """n members in three regions, all joined through m0 and settled for 15 s."""
    net = GossipNet(
        seed=seed, config=GossipConfig(lifeguard=lifeguard), loss=loss, on_event=on_event
    )
    for i in range(n):
        net.add(f"m{i}", region=f"r{i % 3}")
    net.join_all("m0")
    net.run(15)
    return net


def run(
    n: int, loss: float, stalls: bool, lifeguard: bool, minutes: float, seed: int
) -> dict[str, float]:
    crashed_at: dict[str, float] = {}
    first_suspect: dict[str, float] = {}
    dead_by: dict[str, set[str]] = {}
    false_dead = 0

    def on_event(observer: str, ev: MemberEvent) -> None:
        nonlocal false_dead
        if ev.kind == "suspect" and ev.name in crashed_at and ev.name not in first_suspect:
            first_suspect[ev.name] = ev.at_s - crashed_at[ev.name]
        elif ev.kind == "dead":
            if ev.name in crashed_at:
                dead_by.setdefault(ev.name, set()).add(observer)
                dead_times.setdefault(ev.name, []).append(ev.at_s - crashed_at[ev.name])
            else:
                false_dead += 1

    dead_times: dict[str, list[float]] = {}
    net = joined_cluster(n, lifeguard, loss, seed, on_event)
    rng = random.Random(seed)
    stallers = rng.sample(sorted(net.agents), max(1, n // 10)) if stalls else []
    start = net.engine.now
    end = start + minutes * 60
    msgs0, bytes0 = net.network.stats.sent, net.network.stats.bytes_sent

    def stall_loop(name: str) -> None:
        if name in crashed_at:
            return
        net.stall(name, STALL_S)
        net.engine.after(rng.expovariate(1 / STALL_MEAN_GAP_S), lambda: stall_loop(name))

    for name in stallers:
        net.engine.after(rng.random() * STALL_MEAN_GAP_S, lambda name=name: stall_loop(name))
    next_id = n
    t = start + CRASH_EVERY_S / 2
    while t < end:
        net.engine.run_until(t)
        candidates = sorted(a for a in net.agents if a not in crashed_at and a not in stallers)
        victim = rng.choice(candidates[1:])
        crashed_at[victim] = net.engine.now
        net.crash(victim)
        fresh = net.add(f"m{next_id}", region=f"r{next_id % 3}")  # keep the size steady
        next_id += 1
        net.push_pull(fresh, "m0")
        t += CRASH_EVERY_S
    net.engine.run_until(end + 40)
    duration = end - start
    everywhere: list[float] = []
    after_suspect: list[float] = []
    joined_later = {f"m{i}" for i in range(n, next_id)}
    for victim in crashed_at:
        observers = {a for a, ag in net.agents.items() if not ag.crashed and a != victim}
        if observers - dead_by.get(victim, set()) - joined_later:
            everywhere.append(float("inf"))  # some member never learned of it
            continue
        last = max(dead_times[victim])
        everywhere.append(last)
        if victim in first_suspect:
            after_suspect.append(last - first_suspect[victim])
    sent = net.network.stats.sent - msgs0
    sent_bytes = net.network.stats.bytes_sent - bytes0
    return {
        "suspect_p50": statistics.median(first_suspect.values()) if first_suspect else float("nan"),
        "suspect_p99": pct(list(first_suspect.values()), 0.99),
        "dead_p50": statistics.median(everywhere),
        "dead_p99": pct(everywhere, 0.99),
        "after_suspect_p99": pct(after_suspect, 0.99),
        "false_dead": false_dead,
        "msgs_per_member_s": sent / n / duration,
        "kbit_per_member_s": sent_bytes * 8 / 1000 / n / duration,
        "crashes": len(crashed_at),
    }


def run_slow(n: int, delay_s: float, lifeguard: bool, minutes: float, seed: int) -> dict[str, int]:
    slow: set[str] = set()
    counts = {"healthy_suspected": 0, "healthy_dead": 0, "slow_dead": 0}

    def on_event(observer: str, ev: MemberEvent) -> None:
        if ev.kind == "suspect" and ev.name not in slow:
            counts["healthy_suspected"] += 1
        elif ev.kind == "dead":
            counts["slow_dead" if ev.name in slow else "healthy_dead"] += 1

    net = joined_cluster(n, lifeguard, 0.0, seed, on_event)
    for name in random.Random(seed).sample(sorted(net.agents), max(1, n // 10)):
        slow.add(name)
        net.slow(name, delay_s)
    net.run(minutes * 60)
    return counts


def slow_table(sizes: list[int], delays: list[float], minutes: float, seed: int) -> None:
    print(
        f"\n10 % of members slow (every packet handled D s late), {minutes:g} simulated min:"
        "\nmembers     D | healthy suspected on/off | healthy declared dead on/off"
        " | slow declared dead on/off"
    )
    for n in sizes:
        for delay in delays:
            t0 = time.perf_counter()
            on = run_slow(n, delay, True, minutes, seed)
            off = run_slow(n, delay, False, minutes, seed)
            print(
                f"{n:>7} {delay:>4g} s |"
                f" {on['healthy_suspected']:>9} / {off['healthy_suspected']:<9}     |"
                f" {on['healthy_dead']:>9} / {off['healthy_dead']:<9}        |"
                f" {on['slow_dead']:>7} / {off['slow_dead']:<7}"
                f" [{time.perf_counter() - t0:.0f} s wall]",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--losses", type=float, nargs="+", default=[0.0, 0.01, 0.05])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--slow-delays", type=float, nargs="*", default=[1.0, 2.0, 4.0, 8.0], metavar="D"
    )
    parser.add_argument("--slow-sizes", type=int, nargs="+", default=[10, 30])
    args = parser.parse_args()
    print(
        "members  loss stalls lifeguard | first suspect p50/p99 | dead everywhere p50/p99"
        " (from suspect p99) | false dead | per member: msgs/s kbit/s"
    )
    for n in args.sizes:
        for loss in args.losses:
            for stalls in (False, True):
                for lifeguard in (True, False):
                    t0 = time.perf_counter()
                    r = run(n, loss, stalls, lifeguard, args.minutes, args.seed)
                    wall = time.perf_counter() - t0
                    flags = f"{'yes' if stalls else 'no':>6} {'on' if lifeguard else 'off':>9}"
                    print(
                        f"{n:>7} {loss * 100:>4.0f}% {flags} |"
                        f" {r['suspect_p50']:>8.2f} / {r['suspect_p99']:>5.2f} s  |"
                        f" {r['dead_p50']:>8.2f} / {r['dead_p99']:>5.2f} s"
                        f" ({r['after_suspect_p99']:>5.2f} s)       |"
                        f" {r['false_dead']:>10} | {r['msgs_per_member_s']:>6.1f}"
                        f" {r['kbit_per_member_s']:>6.1f}   [{wall:.0f} s wall]",
                        flush=True,
                    )
    if args.slow_delays:
        slow_table(args.slow_sizes, args.slow_delays, args.minutes, args.seed)


if __name__ == "__main__":
    main()
