"""Simulator scale: wall time and peak memory of a region outage at 1,000 agents x 10
simulated minutes and 10,000 agents x 2 simulated minutes, each in a fresh process.

    .venv/bin/python bench/sim_scale.py                  # both runs
    .venv/bin/python bench/sim_scale.py --only 1000      # one of them
    .venv/bin/python bench/sim_scale.py --only 10000 --scenario rolling-failures

Target: the 1,000-agent run in under 60 s on one core, the 10,000-agent one in 20 minutes
and 12 GiB. Figures are printed, never asserted; progress (wall time and peak memory every 5
simulated seconds) goes to stderr. `--scenario` runs another scenario at the same sizes.
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

from sim.run import SCENARIOS, WARMUP_S, SimArgs, Tally, simulate  # noqa: E402

RUNS = {1000: 600.0, 10000: 120.0}


def child(agents: int, duration: float, scenario: str) -> None:
    t0 = time.perf_counter()
    last = [0.0]
    tally = Tally()

    def progress(now: float, end: float) -> None:
        """A line on stderr every 5 simulated seconds: wall time and memory so far."""
        if now - last[0] >= 5.0 or now >= end:
            last[0] = now
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"  {agents} agents: {now:6.1f}/{end:.0f} sim s,"
                f" {time.perf_counter() - t0:7.1f} wall s, peak {rss:,.0f} MiB"
                + (f"; {tally.line()}" if tally.lost else ""),
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
        tally=tally,
    )
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_mb = usage.ru_maxrss / 1024
    det = result["detection"]
    d = det["dead_everywhere_s"]
    print(
        json.dumps(
            {
                "agents": agents,
                "sim_s": duration,
                "wall_s": wall,
                # CPU beside wall: on a shared machine the wall time counts the others' load
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "peak_mb": peak_mb,
                "failed": det["failed"],
                "detected": det["detected"],
                "dead_p50": d["p50"],
                "dead_p99": d["p99"],
                "dead_max": d["max"],
                "false_dead": det["false_dead"],
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
    print(
        f"{'agents':>7} {'simulated':>10} {'wall s':>8} {'CPU s':>8} {'peak MiB':>9}"
        f" {'sim s per wall s':>17}  detection and recovery"
    )
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
            f"{agents:>7} {duration / 60:>8.0f} m {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f}"
            f" {r['peak_mb']:>9.0f} {(duration + WARMUP_S) / r['wall_s']:>17.2f}"
            f"  dead everywhere p50/p99/max {_s(r['dead_p50'])}/{_s(r['dead_p99'])}/"
            f"{_s(r['dead_max'])} ({r['detected']} of {r['failed']} detected),"
            f" all restored after {_s(r['restored_s'])}, false deaths {r['false_dead']}",
            flush=True,
        )


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


if __name__ == "__main__":
    main()
