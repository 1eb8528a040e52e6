"""What a simulated outage's gossip carries: broadcast messages sent, by kind, per 10 simulated
seconds, beside the packets and the wall time each window took.

    .venv/bin/python bench/sim_traffic.py [--agents 1000] [--duration 200] [--fail-at 60]

After a region outage every survivor must move every lost agent to suspect and then to dead, and
hears each change many times over (SWIM piggybacks it on ~4 x log10(N) packets per agent that
passes it on); then every recovered servo's inventory delta and its host's new metadata spread
the same way. This bench shows how long each kind keeps the packets full, which is what a
simulated region outage spends its time on (docs/simulator.md). Figures only.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossip.messages import Msg, MsgType
from sim.run import SCENARIOS, SimArgs, simulate

WINDOW_S = 10.0
SHOWN = (MsgType.SUSPECT, MsgType.DEAD, MsgType.ALIVE, MsgType.APP)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=200.0)
    parser.add_argument("--fail-at", type=float, default=60.0)
    parser.add_argument("--scenario", default="region-outage", choices=SCENARIOS)
    a = parser.parse_args()
    by_window: dict[int, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    packets: collections.Counter[int] = collections.Counter()
    wall: dict[int, float] = {}
    t0 = time.perf_counter()

    def on_packet(now: float, msgs: list[Msg]) -> None:
        window = int(now // WINDOW_S)
        packets[window] += 1
        by_window[window].update(int(m[0]) for m in msgs)

    def progress(now: float, _end: float) -> None:
        wall[int(now // WINDOW_S)] = time.perf_counter() - t0

    result = simulate(
        SimArgs(
            a.scenario,
            agents=a.agents,
            projects=a.agents // 3,
            duration_s=a.duration,
            fail_at_s=a.fail_at,
        ),
        progress,
        on_packet=on_packet,
    )
    names = [k.name for k in SHOWN]
    print(f"{a.scenario}, {a.agents} agents, failure at {a.fail_at + 10:.0f} s (10 s warm-up)")
    print(
        f"{'sim s':>9} {'wall s':>7} {'packets':>9} {'msgs/pkt':>8} "
        + " ".join(f"{n:>10}" for n in names)
    )
    previous = 0.0
    for window in sorted(packets):
        counts = by_window[window]
        took = wall.get(window, previous) - previous
        previous = wall.get(window, previous)
        carried = sum(counts[k] for k in SHOWN)
        print(
            f"{window * WINDOW_S:>4.0f}-{(window + 1) * WINDOW_S:<4.0f} {took:>7.1f}"
            f" {packets[window]:>9,} {carried / packets[window]:>8.1f} "
            + " ".join(f"{counts[k]:>10,}" for k in SHOWN)
        )
    det, rec = result["detection"], result["recovery"]
    dead = det["dead_everywhere_s"]
    print(
        f"detected {det['detected']} of {det['failed']}, dead everywhere p50/p99/max"
        f" {_s(dead['p50'])}/{_s(dead['p99'])}/{_s(dead['max'])}, false deaths"
        f" {det['false_dead']}; all restored after {_s(rec['all_restored_s'])},"
        f" {rec['created']} servos created, {result['load']['inventory_pulls']} inventories"
        f" pulled, {result['load']['kbit_per_agent_s']:.1f} kbit/s per agent"
    )


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


if __name__ == "__main__":
    main()
