"""Scenarios and the run that measures them.

A run: build the fleet (agents spread over regions and zones), deploy the projects with the real
placement, let gossip converge, inject the scenario's failure at `--fail-at`, and record what
happens until `--duration`: detection (first suspicion, dead at every survivor), false
positives, projects with zero or too few live servos over time, when every project is back at its
desired count (or which cannot be, and why), and the traffic per agent.
"""

from __future__ import annotations

import math
import random
import statistics
from array import array
from collections.abc import Callable
from typing import Any

import attrs

from gossip.core import GossipConfig, MemberEvent
from gossip.messages import Msg
from placement.converge import converge
from sim.engine import fewer_collections
from sim.fleet import Fleet, make_specs
from sim.gossip_net import GossipNet
from sim.layout import FleetLayout, HostSpec, region_capacity
from sim.network import LinkProfile

SCENARIOS = (
    "region-outage",
    "zone-outage",
    "region-partition",
    "rolling-failures",
    "slow-nodes",
    "capacity-crunch",
)
WARMUP_S = 10.0
# count every project's servos at every change, as the report once did (the tests compare)
RECOUNT_EVERY_CHANGE = False
SAMPLE_S = 1.0
MEMBER_SAMPLE_OBSERVERS = 50


@attrs.frozen
class SimArgs:
    scenario: str
    agents: int = 100
    regions: int = 3
    zones: int = 2
    projects: int = 100
    replicas: int = 3
    memory_mb: int = 8192  # per agent
    servo_memory_mb: int = 256
    loss: float = 0.0
    seed: int = 1
    duration_s: float = 120.0
    fail_at_s: float = 30.0
    heal_after_s: float = 30.0  # region-partition
    interval_s: float = 10.0  # rolling-failures: one crash every interval
    failures: int = 5  # rolling-failures
    stall_s: float = 3.0  # slow-nodes
    slow_fraction: float = 0.1  # slow-nodes
    cross_region_ms: float = 40.0

    def __attrs_post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(
                f"unknown scenario {self.scenario!r}; choose from {', '.join(SCENARIOS)}"
            )
        if self.agents < 2 or self.regions < 1 or self.zones < 1 or self.replicas < 1:
            raise ValueError("need at least 2 agents, 1 region, 1 zone and 1 replica")
        if not 0 <= self.loss < 1:
            raise ValueError("--loss is a fraction in [0, 1)")
        if self.fail_at_s >= self.duration_s:
            raise ValueError("--fail-at must come before the end of --duration")


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": statistics.median(values) if values else None,
        "p99": _pct(values, 0.99),
        "max": max(values) if values else None,
    }


@attrs.define
class Tally:
    """What a run has seen so far, kept as it goes: a long run (10,000 agents take an hour on
    this machine) shows its detection and recovery figures while it runs, so one stopped early
    still says how far detection and recovery had got."""

    lost: int = 0  # agents failed so far
    # per lost agent seen dead by every host up: seconds from its failure to the last of them
    dead_everywhere_s: list[float] = attrs.field(factory=list)
    restored_s: float | None = None  # every project back at its count, after the failure

    def line(self) -> str:
        seen = sorted(self.dead_everywhere_s)
        figures = f", p50 {statistics.median(seen):.1f} s, max {seen[-1]:.1f} s" if seen else ""
        restored = "-" if self.restored_s is None else f"{self.restored_s:.1f} s"
        return f"dead everywhere {len(seen)} of {self.lost}{figures}; all restored after {restored}"


def simulate(
    args: SimArgs,
    progress: Callable[[float, float], None] | None = None,
    layout: FleetLayout | None = None,
    tally: Tally | None = None,
    on_packet: Callable[[float, list[Msg]], None] | None = None,
) -> dict[str, Any]:
    """`layout`: a given fleet (hosts, specs, which region/zone fails) instead of the one
    generated from `args` (`shoal sim --from-cluster`: `sim.from_cluster`). `tally`: a new one,
    filled in as the run goes, for a caller's progress lines (the report is the exact account).
    `on_packet`: told the simulated time and messages of every gossip packet sent (what
    `bench/sim_traffic.py` counts by kind); it must not change them."""
    with fewer_collections():
        return _simulate(args, progress, layout, tally if tally is not None else Tally(), on_packet)


def _simulate(
    args: SimArgs,
    progress: Callable[[float, float], None] | None,
    layout: FleetLayout | None,
    tally: Tally,
    on_packet: Callable[[float, list[Msg]], None] | None = None,
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    crunch = args.scenario == "capacity-crunch"
    memory = args.memory_mb
    if crunch:
        # size hosts so the fleet is ~80 % full: losing a region leaves too little room
        demand = args.projects * args.replicas * args.servo_memory_mb
        memory = max(args.servo_memory_mb, int(demand / args.agents / 0.8))
    net = GossipNet(seed=rng.randrange(2**32), config=GossipConfig(), loss=args.loss)
    net.network.cross_region = LinkProfile(args.cross_region_ms / 1000, args.cross_region_ms / 4000)
    if on_packet is not None:
        send = net.send

        def told(src: str, dst: str, msgs: list[Msg], msg_bytes: int) -> None:
            on_packet(net.engine.now, msgs)
            send(src, dst, msgs, msg_bytes)

        # an attribute of this one network: a run without the hook pays nothing for it
        net.send = told  # type: ignore[method-assign]
    specs = make_specs(args.projects, args.replicas, args.servo_memory_mb, 100, "region", rng)
    # --- a given fleet (sim.layout) replaces the generated one: the hook ends below -------------
    hosts = layout.hosts if layout is not None else _generated_hosts(args, memory)
    if layout is not None:
        specs = list(layout.specs)
    target_region = layout.target_region if layout is not None else "r0"
    target_zone = layout.target_zone if layout is not None else "r0-z0"
    # ---------------------------------------------------------------------------------------------
    fleet = Fleet(net, specs)
    names = []
    for h in hosts:
        names.append(h.name)
        fleet.add_host(h.name, h.region, h.zone, h.memory_mb, h.millicpus)
    unplaced = fleet.deploy_all()
    capacity_before = region_capacity(fleet.hosts.values())
    fleet.preload_converged()  # a fleet that has been up a while: no join storm to pay for

    failed: dict[str, float] = {}
    first_suspect: dict[str, float] = {}
    # when each observer (by its place in `names`) last saw each lost agent dead, NaN before:
    # one array per lost agent, 8 bytes a pair (a dict of floats per lost agent was 1.4 GiB
    # of the 22 million pairs of a 10,000-agent region outage)
    dead_at: dict[str, array[float]] = {}
    position = {n: i for i, n in enumerate(names)}
    # for `tally`: how many hosts still up have seen each lost agent dead, and the lost agents
    # seen dead by every host up (a host that crashes since no longer counts either way)
    seen_by: dict[str, int] = {}
    everywhere_done: set[str] = set()

    def check_everywhere(victim: str, seen: array[float]) -> None:
        if victim not in everywhere_done and seen_by[victim] == len(names) - len(net.network.down):
            everywhere_done.add(victim)
            # the last of them, as the report takes it
            tally.dead_everywhere_s.append(max(t for t in seen if not math.isnan(t)))

    false_dead: list[tuple[str, str]] = []
    false_suspect = 0

    def record(observer: str, ev: MemberEvent) -> None:
        nonlocal false_suspect
        if ev.kind == "suspect":
            if ev.name in failed:
                first_suspect.setdefault(ev.name, ev.at_s - failed[ev.name])
            elif not partitioned():
                false_suspect += 1
        elif ev.kind == "dead":
            if ev.name in failed:
                seen = dead_at.get(ev.name)
                if seen is None:
                    seen = dead_at[ev.name] = array("d", [math.nan]) * len(names)
                    seen_by[ev.name] = 0
                at = position[observer]
                first = math.isnan(seen[at])
                seen[at] = ev.at_s - failed[ev.name]
                if first:
                    seen_by[ev.name] += 1
                    check_everywhere(ev.name, seen)
            elif not partitioned():
                false_dead.append((observer, ev.name))

    fleet.on_event = record  # type: ignore[method-assign]
    partition_window: list[float] = []

    def partitioned() -> bool:
        return bool(partition_window) and partition_window[0] <= net.engine.now

    t0 = WARMUP_S
    fail_t = t0 + args.fail_at_s
    end_t = t0 + args.duration_s
    cut: list[str] = []

    def crash(name: str) -> None:
        if name not in failed:
            failed[name] = net.engine.now
            net.crash(name)
            tally.lost = len(failed)
            at = position[name]
            for victim, seen in dead_at.items():
                if not math.isnan(seen[at]):
                    seen_by[victim] -= 1
                check_everywhere(victim, seen)

    def crash_all(group: list[str]) -> Callable[[], None]:
        def go() -> None:
            for n in group:
                crash(n)

        return go

    def later(fn: Callable[[str], None], name: str) -> Callable[[], None]:
        return lambda: fn(name)

    region0 = [n for n in names if fleet.hosts[n].region == target_region]
    if args.scenario in ("region-outage", "capacity-crunch"):
        net.engine.at(fail_t, crash_all(region0))
    elif args.scenario == "zone-outage":
        net.engine.at(fail_t, crash_all([n for n in names if fleet.hosts[n].zone == target_zone]))
    elif args.scenario == "region-partition":
        cut = region0

        def start_partition() -> None:
            partition_window.append(net.engine.now)
            net.network.partition([cut, [n for n in names if n not in cut]])

        net.engine.at(fail_t, start_partition)
        net.engine.at(fail_t + args.heal_after_s, net.network.heal)
    elif args.scenario == "rolling-failures":
        victims = rng.sample(names[1:], min(args.failures, len(names) - 2))
        for k, v in enumerate(victims):
            net.engine.at(fail_t + k * args.interval_s, later(crash, v))
    elif args.scenario == "slow-nodes":
        slow = rng.sample(names[1:], max(1, int(len(names) * args.slow_fraction)))

        def stall_loop(name: str) -> None:
            net.stall(name, args.stall_s)
            net.engine.after(args.stall_s + rng.expovariate(1 / 20.0), later(stall_loop, name))

        for n in slow:
            net.engine.at(fail_t + rng.random() * 10, later(stall_loop, n))

    series_projects: list[list[float]] = []
    series_members: list[list[float]] = []
    observers = sorted(rng.sample(names, min(MEMBER_SAMPLE_OBSERVERS, len(names))))

    def sample() -> None:
        now = net.engine.now
        counts = fleet.live_counts()
        zero = sum(1 for c in counts.values() if c == 0)
        under = sum(1 for p, c in counts.items() if c < fleet.specs[p].count)
        series_projects.append([round(now - t0, 3), zero, under])
        alive_obs = [o for o in observers if fleet.up(o)]
        if alive_obs:
            alive = suspect = dead = 0
            for o in alive_obs:
                a, s, d = net.agents[o].core.status_counts()
                alive, suspect, dead = alive + a, suspect + s, dead + d
            k = len(alive_obs)
            series_members.append([round(now - t0, 3), alive / k, suspect / k, dead / k])
        if now >= fail_t and tally.restored_s is None and under == 0 and failed_or_cut():
            tally.restored_s = now - fail_t
        if now + SAMPLE_S <= end_t:
            net.engine.after(SAMPLE_S, sample)

    def failed_or_cut() -> bool:
        return bool(failed) or bool(cut) or args.scenario == "slow-nodes"

    # the projects under their count, kept per change once the outage began (a count of the
    # whole fleet per change was 10,000 hosts walked for each of thousands of creates), and
    # counted again whenever a host has crashed since
    under: set[str] = set()
    counted_at_crashes = -1

    def on_change(project: str) -> None:
        """Every servo created or removed: note the exact moment the last project is whole
        again (the 1 s samples would round it up)."""
        nonlocal counted_at_crashes
        now = net.engine.now
        if now < fail_t or tally.restored_s is not None or not failed_or_cut():
            return
        if counted_at_crashes != len(net.network.down) or RECOUNT_EVERY_CHANGE:
            counted_at_crashes = len(net.network.down)
            under.clear()
            under.update(p for p, c in fleet.live_counts().items() if c < fleet.specs[p].count)
        elif fleet.live_count(project) < fleet.specs[project].count:
            under.add(project)
        else:
            under.discard(project)
        if not under:
            tally.restored_s = now - fail_t

    fleet.on_change = on_change

    net.engine.at(t0, sample)
    msgs0 = [0, 0]

    def mark_traffic() -> None:
        msgs0[0], msgs0[1] = net.network.stats.sent, net.network.stats.bytes_sent

    net.engine.at(t0, mark_traffic)
    net.engine.run_until(end_t, on_progress=(lambda t: progress(t, end_t)) if progress else None)

    survivors = [n for n in names if fleet.up(n)]
    everywhere = []
    undetected = 0
    for victim in failed:
        seen = dead_at.get(victim)
        if seen is None:
            if survivors:
                undetected += 1
            else:
                everywhere.append(0.0)
        elif all(not math.isnan(seen[position[s]]) for s in survivors):
            everywhere.append(max(t for t in seen if not math.isnan(t)))
        else:
            undetected += 1
    counts = fleet.live_counts()
    unrestorable = []
    truth = fleet.view_for(None)
    for project, c in sorted(counts.items()):
        spec = fleet.specs[project]
        if c < spec.count:
            plan = converge(spec, truth, list(fleet.servos[project].values()))
            why = plan.decision.summary() if plan.decision else {}
            if plan.creates or not why:
                reason = "recovery still in progress when the run ended"
            else:
                reason = "no host fits: " + ", ".join(f"{n} {r}" for r, n in why.items())
            unrestorable.append({"project": project, "missing": spec.count - c, "why": reason})
    duration = args.duration_s
    sent = net.network.stats.sent - msgs0[0]
    sent_bytes = net.network.stats.bytes_sent - msgs0[1]
    return {
        "scenario": args.scenario,
        "seed": args.seed,
        "agents": args.agents,
        "regions": args.regions,
        "zones": args.zones,
        "duration_s": float(args.duration_s),
        "args": attrs.asdict(args),
        "initially_unplaced": unplaced,
        "detection": {
            "failed": len(failed),
            "detected": len(failed) - undetected,
            "first_suspect_s": _summary(list(first_suspect.values())),
            "dead_everywhere_s": _summary(everywhere),
            # per failed agent, for the report's distribution (sim.report)
            "samples": {
                "first_suspect_s": sorted(first_suspect.values()),
                "dead_everywhere_s": sorted(everywhere),
            },
            "false_dead": len(false_dead),
            "false_suspect": false_suspect,
        },
        "recovery": {
            "projects": args.projects,
            "max_zero_live": max((p[1] for p in series_projects), default=0),
            "max_under_replicated": max((p[2] for p in series_projects), default=0),
            "all_restored_s": tally.restored_s,
            "unrestorable": unrestorable,
            "created": fleet.counters.created,
            "removed": fleet.counters.removed,
            "conflicts": fleet.counters.conflicts,
            "placement_retries": fleet.counters.retries,
        },
        "load": {
            "msgs_per_agent_s": sent / args.agents / duration,
            "bytes_per_agent_s": sent_bytes / args.agents / duration,
            "kbit_per_agent_s": sent_bytes * 8 / 1000 / args.agents / duration,
            # whole inventories pulled because a copy stayed behind a host's metadata (TCP, not
            # in the figures above)
            "inventory_pulls": fleet.counters.pulls,
        },
        "series": {"projects": series_projects, "members": series_members},
        "fail_at_s": float(args.fail_at_s),
        "target": {"region": target_region, "zone": target_zone},
        "capacity": {
            "before": capacity_before,
            "after": region_capacity(fleet.hosts.values(), fleet.up),
        },
    }


def _generated_hosts(args: SimArgs, memory_mb: int) -> list[HostSpec]:
    """The synthetic fleet: agents dealt round-robin over regions, then zones."""
    hosts = []
    for i in range(args.agents):
        region = f"r{i % args.regions}"
        zone = f"{region}-z{(i // args.regions) % args.zones}"
        hosts.append(HostSpec(f"a{i:05d}", region, zone, memory_mb, 64_000))
    return hosts
