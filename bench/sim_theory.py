"""The simulator against theory: first detection (SWIM: e/(e-1) = 1.58 probe periods expected)
and dissemination (Serf's convergence model for gossip every 200 ms to 3 peers: 99.99 % of
agents hold an update within 2.2 / 3.0 / 4.4 s at 1,000 agents and 2.6 / 3.4 / 5.0 s at 10,000,
at 0 / 25 / 50 % packet loss).

    .venv/bin/python bench/sim_theory.py [--sizes 1000] [--updates 5]

Dissemination: after the cluster has converged, one agent changes its metadata (a broadcast on
the piggyback queue, exactly what a capacity change is); we time until 99.99 % of the other
agents hold the new version. Figures only.
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
from sim.engine import fewer_collections
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print("agents holding an update (median over updates), simulated vs Serf's model (99.99 %)")
    print(f"{'agents':>7} {'loss':>5} {'99 %':>7} {'99.99 %':>8} {'serf model':>11}  [wall]")
    for n in args.sizes:
        for k, loss in enumerate(LOSSES):
            t0 = time.perf_counter()
            with fewer_collections():
                times = dissemination(n, loss, args.updates, args.seed)
            model = SERF.get(n, (float("nan"),) * 3)[k]
            print(
                f"{n:>7} {loss * 100:>4.0f}% {statistics.median(times[0.99]):>6.2f}s"
                f" {statistics.median(times[0.9999]):>7.2f}s {model:>10.1f}s"
                f"  [{time.perf_counter() - t0:.0f} s]",
                flush=True,
            )


if __name__ == "__main__":
    main()
