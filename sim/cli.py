"""`shoal sim SCENARIO ...`: run a scenario and print the report (text, `--json`, `--report`).

With `--from-cluster URL` the fleet is the live cluster's (`sim.from_cluster`): its agents,
regions, zones, capacities and projects, and `--region`/`--zone` name what fails."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from sim.from_cluster import FromClusterError, fetch_layout
from sim.layout import FleetLayout
from sim.report import to_html, to_json, to_text
from sim.run import SCENARIOS, SimArgs, simulate


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shoal sim", description=__doc__)
    p.add_argument("scenario", choices=SCENARIOS)
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--regions", type=int, default=3)
    p.add_argument("--zones", type=int, default=2, help="zones per region")
    p.add_argument("--projects", type=int, default=100)
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--memory", type=int, default=8192, help="MiB per agent")
    p.add_argument("--servo-memory", type=int, default=256, help="MiB per servo")
    p.add_argument("--loss", type=float, default=0.0, help="packet loss fraction, e.g. 0.05")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--duration", type=float, default=120.0, help="simulated seconds after warm-up")
    p.add_argument("--fail-at", type=float, default=30.0, help="when the failure starts (s)")
    p.add_argument(
        "--heal-after", type=float, default=30.0, help="region-partition: heal after (s)"
    )
    p.add_argument("--interval", type=float, default=10.0, help="rolling-failures: gap (s)")
    p.add_argument("--failures", type=int, default=5, help="rolling-failures: how many")
    p.add_argument("--stall", type=float, default=3.0, help="slow-nodes: stall length (s)")
    p.add_argument(
        "--cross-region-ms",
        type=float,
        default=40.0,
        help="one-way latency between regions (same region: 0.5 ms); 0.5 models one machine",
    )
    p.add_argument(
        "--from-cluster",
        metavar="URL",
        help="simulate the live cluster of the agent at URL (its members and projects) instead "
        "of a generated fleet; --agents/--regions/--zones/--projects/--replicas/--memory no "
        "longer apply",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("SHOAL_API_TOKEN"),
        help="--from-cluster: the API token (default: $SHOAL_API_TOKEN)",
    )
    p.add_argument(
        "--region",
        help="--from-cluster: the region that goes down (default: the one with most agents)",
    )
    p.add_argument(
        "--zone", help="--from-cluster: the zone that goes down (default: the region's first)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--report", type=Path, help="also write a self-contained HTML report")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    layout: FleetLayout | None = None
    if a.from_cluster:
        try:
            layout = fetch_layout(a.from_cluster, a.token, a.region, a.zone)
        except FromClusterError as exc:
            print(f"shoal sim: {exc}", file=sys.stderr)
            return 2
    shape = _shape(layout) if layout else {}
    try:
        args = SimArgs(
            scenario=a.scenario,
            agents=shape.get("agents", a.agents),
            regions=shape.get("regions", a.regions),
            zones=shape.get("zones", a.zones),
            projects=shape.get("projects", a.projects),
            replicas=shape.get("replicas", a.replicas),
            memory_mb=a.memory,
            servo_memory_mb=a.servo_memory,
            loss=a.loss,
            seed=a.seed,
            duration_s=a.duration,
            fail_at_s=a.fail_at,
            heal_after_s=a.heal_after,
            interval_s=a.interval,
            failures=a.failures,
            stall_s=a.stall,
            cross_region_ms=a.cross_region_ms,
        )
    except ValueError as exc:
        print(f"shoal sim: {exc}", file=sys.stderr)
        return 2
    show = not a.no_progress and not a.json and sys.stderr.isatty()
    if show:
        with Progress(
            TextColumn("simulating {task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
            TimeElapsedColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task(a.scenario, total=1.0)
            result = simulate(
                args, lambda t, end: bar.update(task, completed=t, total=end), layout=layout
            )
    else:
        result = simulate(args, layout=layout)
    if layout is not None:
        result["fleet"] = {"source": layout.source, "notes": list(layout.notes)}
    if a.report:
        a.report.write_text(to_html(result))
    sys.stdout.write(to_json(result) if a.json else to_text(result))
    return 0


def _shape(layout: FleetLayout) -> dict[str, int]:
    """SimArgs' counts for a given fleet (the run reports them; the layout decides)."""
    regions = {h.region for h in layout.hosts}
    zones_per_region = max(len({h.zone for h in layout.hosts if h.region == r}) for r in regions)
    return {
        "agents": len(layout.hosts),
        "regions": len(regions),
        "zones": zones_per_region,
        "projects": len(layout.specs),
        "replicas": max((s.replicas for s in layout.specs), default=1),
    }


if __name__ == "__main__":
    sys.exit(main())
