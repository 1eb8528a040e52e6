"""What one (survivor, lost member) pair costs the gossip core after a region outage: a new
suspicion, a confirmation, a duplicate, a death by the survivor's own timer. A simulated
10,000-agent region outage makes 22 million such pairs (3,334 lost x 6,666 survivors), each
going through a suspicion, up to two confirmations and a death, on one core: this bench times
those steps on real `gossip.core.Gossip` cores holding a converged 10,000-member table, with
no simulated network, fleet or report around them.

    .venv/bin/python bench/pair_cost.py [--members 10000] [--cores 300]

More cores means less of their state in the CPU's caches, as in a full run. Figures only.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossip.core import ALIVE, Gossip, Member, MemberRecords
from gossip.messages import Msg, MsgType

PER_PACKET = 44  # SUSPECTs in a full packet after an outage (bench/sim_traffic.py)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--cores", type=int, default=300)
    a = parser.parse_args()
    records = MemberRecords()
    names = [f"a{i:05d}" for i in range(a.members)]
    table: dict[str, Member] = {n: records.get(n, (n, 1), 0, ALIVE, {}, 1) for n in names}
    cores = []
    for name in names[: a.cores]:
        core = Gossip(name, (name, 1), {}, random.Random(name), 0.0, records=records)
        core.preload(0.0, table)
        cores.append(core)
    lost = names[a.cores :: 3]  # a third of the others
    pairs = len(lost) * len(cores)

    def packets(accuser: str) -> list[list[Msg]]:
        msgs: list[Msg] = [[MsgType.SUSPECT, n, 0, accuser] for n in lost]
        return [msgs[i : i + PER_PACKET] for i in range(0, len(msgs), PER_PACKET)]

    def deliver(now: float, accuser: str) -> float:
        started = time.perf_counter()
        for packet in packets(accuser):
            for core in cores:
                core.handle(now, ("x", 1), "x", packet)
                core.events.clear()
        return (time.perf_counter() - started) / pairs * 1e6

    print(f"{a.cores} cores of {a.members} members, {len(lost)} of them suspected by each")
    print(f"  new suspicion          {deliver(1.0, names[-1]):6.2f} us a pair")
    print(f"  confirmation           {deliver(1.5, names[-2]):6.2f} us a pair")
    deliver(1.6, names[-3])  # the k-th confirmation: the timeouts are now the minimum
    print(f"  duplicate              {deliver(1.7, names[-2]):6.2f} us a pair")
    started = time.perf_counter()
    for core in cores:
        core.tick(100.0)  # past every deadline
        core.events.clear()
    took = (time.perf_counter() - started) / pairs * 1e6
    print(f"  death by its own timer {took:6.2f} us a pair")
    if any(len(core.suspicions) for core in cores):
        raise SystemExit("some suspicion is still open: the figures above are not what they say")


if __name__ == "__main__":
    main()
