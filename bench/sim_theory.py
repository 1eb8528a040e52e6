"""The simulator against theory: first detection (SWIM: e/(e-1) = 1.58 probe periods expected)
and dissemination (Serf's convergence model for gossip every 200 ms to 3 peers: 99.99 % of
agents hold an update within 2.2 / 3.0 / 4.4 s at 1,000 agents and 2.6 / 3.4 / 5.0 s at 10,000,
at 0 / 25 / 50 % packet loss).

    .venv/bin/python bench/sim_theory.py [--sizes 1000] [--updates 5] [--what meta|servo]

Dissemination: after the cluster has converged, one agent changes its metadata (`meta`: a
broadcast on the piggyback queue, exactly what a capacity change is) or one of its servos
(`servo`: the agent's own inventory path, `node.inventory.OwnInventory` publishing a delta on
the APP channel and every other agent's `ClusterDelegate` applying it to its replica); we time
until 99.99 % of the other agents hold the new version. Figures only.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossip.core import MemberEvent
from placement.converge import Desired
from sim.engine import fewer_collections
from sim.fleet import Fleet
from sim.gossip_net import GossipNet

SERF = {1000: (2.2, 3.0, 4.4), 10000: (2.6, 3.4, 5.0)}
LOSSES = (0.0, 0.25, 0.5)


def dissemination(
    n: int, loss: float, updates: int, seed: int, shares: tuple[float, ...] = (0.99, 0.9999)
) -> dict[float, list[float]]:
    """Per share, per update: seconds until that share of the other agents hold the update
    (inf: not within the 15 s each update is given)."""
    got: dict[int, set[str]] = {}
    started: dict[int, float] = {}
    done: dict[tuple[float, int], float] = {}
    need = {share: math.ceil(share * (n - 1)) for share in shares}

    def on_event(observer: str, ev: MemberEvent) -> None:
        # Any event about m0 may carry the new metadata: "updated", but also "alive" for an
        # observer that had m0 suspect (under loss, m0 is suspected and refutes, and its
        # refutation carries its current metadata) or "joined" for one that had it dead.
        if ev.name != "m0" or ev.kind not in ("updated", "alive", "joined"):
            return
        holds = net.agents[observer].core.members["m0"].meta_version
        for version, t0 in started.items():
            if version <= holds:
                seen = got.setdefault(version, set())
                seen.add(observer)
                for share, count in need.items():
                    if len(seen) >= count and (share, version) not in done:
                        done[share, version] = ev.at_s - t0

    net = GossipNet(seed=seed, loss=0.0, on_event=on_event, count_bytes=False)
    for i in range(n):
        net.add(f"m{i}", region="r0")
    net.preload_converged()
    net.run(5)
    net.network.loss = loss
    source = net.agents["m0"]
    for u in range(updates):
        source.core.set_meta(net.engine.now, {"update": u})
        started[source.core.me.meta_version] = net.engine.now
        source.flush()
        net.run(15)
    return {share: [done.get((share, v), float("inf")) for v in started] for share in shares}


def servo_dissemination(
    n: int, loss: float, updates: int, seed: int, shares: tuple[float, ...] = (0.99, 0.9999)
) -> dict[float, list[float]]:
    """As `dissemination`, for a servo added on m0, through the simulated fleet (`sim.fleet`):
    m0 publishes with the agent's own `MembershipView` (an APP delta, then metadata claiming
    the new inventory version), every agent applies it with its own `ClusterDelegate`, and a
    copy left behind the claim pulls m0's inventory, as an agent does. An agent holds the
    update once the servo is in its replica of m0 (looked at every 10 ms)."""
    net = GossipNet(seed=seed, loss=0.0, count_bytes=False)
    specs = [Desired(f"web{u}", 1, 256, 250, "host") for u in range(updates)]
    fleet = Fleet(net, specs)
    for i in range(n):
        fleet.add_host(f"m{i}", "r0", "r0-a", 1 << 20, 1 << 20)
    fleet.preload_converged()
    net.run(5)
    net.network.loss = loss
    need = {share: math.ceil(share * (n - 1)) for share in shares}
    out: dict[float, list[float]] = {share: [] for share in shares}
    others = [v.replica for name, v in fleet.views.items() if name != "m0"]
    for u in range(updates):
        t0 = net.engine.now
        sid = f"web{u}-1-0-0badc0de"
        assert fleet._admit("m0", specs[u], sid, 0)  # the host's create: published
        done: dict[float, float] = {}
        while net.engine.now - t0 < 15 and len(done) < len(shares):
            net.run(0.01)
            holding = sum(1 for r in others if any(s.servo_id == sid for s in r.servos("m0")))
            for share, count in need.items():
                if holding >= count and share not in done:
                    done[share] = net.engine.now - t0
        for share in shares:
            out[share].append(done.get(share, float("inf")))
        net.run(max(0.0, 15 - (net.engine.now - t0)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--what",
        choices=("meta", "servo"),
        default="meta",
        help="the update: a metadata change, or a servo change on the APP channel",
    )
    args = parser.parse_args()
    spread = servo_dissemination if args.what == "servo" else dissemination
    print(
        f"agents holding a {args.what} update (median over updates), "
        "simulated vs Serf's model (99.99 %)"
    )
    print(f"{'agents':>7} {'loss':>5} {'99 %':>7} {'99.99 %':>8} {'serf model':>11}  [wall]")
    for n in args.sizes:
        for k, loss in enumerate(LOSSES):
            t0 = time.perf_counter()
            with fewer_collections():
                times = spread(n, loss, args.updates, args.seed)
            model = SERF.get(n, (float("nan"),) * 3)[k]
            print(
                f"{n:>7} {loss * 100:>4.0f}% {statistics.median(times[0.99]):>6.2f}s"
                f" {statistics.median(times[0.9999]):>7.2f}s {model:>10.1f}s"
                f"  [{time.perf_counter() - t0:.0f} s]",
                flush=True,
            )


if __name__ == "__main__":
    main()
