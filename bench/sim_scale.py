"""Simulator scale: wall time and peak memory of a region outage at 1,000 agents x 10
simulated minutes and 10,000 agents x 2 simulated minutes, each in a fresh process.

    .venv/bin/python bench/sim_scale.py                  # both runs
    .venv/bin/python bench/sim_scale.py --only 1000      # one of them
    .venv/bin/python bench/sim_scale.py --only 10000 --scenario rolling-failures

Target: the 1,000-agent run in under 60 s on one core. Figures are printed, never asserted.
A region outage at 10,000 agents does not fit in this machine's memory (see docs/simulator.md);
`--scenario` runs another scenario at the same size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.run import SCENARIOS, WARMUP_S, SimArgs, simulate  # noqa: E402

RUNS = {1000: 600.0, 10000: 120.0}


def child(agents: int, duration: float, scenario: str) -> None:
    t0 = time.perf_counter()
    last = [0.0]

    def progress(now: float, end: float) -> None:
        """A line on stderr every 5 simulated seconds: wall time and memory so far."""
        if now - last[0] >= 5.0 or now >= end:
            last[0] = now
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"  {agents} agents: {now:6.1f}/{end:.0f} sim s,"
                f" {time.perf_counter() - t0:7.1f} wall s, peak {rss:,.0f} MiB",
                file=sys.stderr,
                flush=True,
            )

    result = simulate(
        SimArgs(
            scenario,
            agents=agents,
            projects=agents // 3,
            duration_s=duration,
            fail_at_s=min(60.0, duration / 4),
        ),
        progress,
    )
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    d = result["detection"]["dead_everywhere_s"]
    print(
        json.dumps(
            {
                "agents": agents,
                "sim_s": duration,
                "wall_s": wall,
                "peak_mb": peak_mb,
                "dead_p50": d["p50"],
                "restored_s": result["recovery"]["all_restored_s"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", type=int, choices=sorted(RUNS))
    parser.add_argument("--scenario", default="region-outage", choices=SCENARIOS)
    parser.add_argument("--child", nargs=2, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1], args.scenario)
        return
    print(f"scenario {args.scenario}")
    print(f"{'agents':>7} {'simulated':>10} {'wall s':>8} {'peak MiB':>9} {'sim s per wall s':>17}")
    for agents, duration in RUNS.items():
        if args.only and agents != args.only:
            continue
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(agents),
                str(duration),
                "--scenario",
                args.scenario,
            ],
            stdout=subprocess.PIPE,  # progress lines go straight to stderr
            text=True,
            check=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{agents:>7} {duration / 60:>8.0f} m {r['wall_s']:>8.1f} {r['peak_mb']:>9.0f}"
            f" {(duration + WARMUP_S) / r['wall_s']:>17.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
