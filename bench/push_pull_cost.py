"""What one push-pull costs at fleet scale: bytes on the wire and CPU at both ends.

    .venv/bin/python bench/push_pull_cost.py [--members 1000 10000] [--servos 100] [--repeat 5]

Push-pull is SWIM's anti-entropy over TCP (memberlist's pushPull): an agent sends its whole
member table (every member's name, address, incarnation, status and metadata) and its own
application state (here: its servo inventory, `node.inventory.OwnInventory.full_state`), and
gets the peer's in return. This builds a converged table of `--members` agents with the metadata
a real agent publishes (`node.cluster.build_meta`: region, zone, addresses, capacity, inventory
version and digest) and an inventory of `--servos` servos with one port each, then measures,
with the agent's own code: the sealed frame's size (`gossip.wire` + AES-GCM-SIV), the time to
encode and seal it, to open and decode it (with every message validated), and to merge it
into a core that already holds the same table (the usual case: nothing new) and one that
holds none of it (a new agent's join). From those, per agent: the push-pull interval at that
size (memberlist's pushPullScale: `gossip.core.push_pull_interval_s`), and the bandwidth and
CPU that push-pull costs on average (each agent starts one exchange per interval and answers
one on average: two frames out, two in). Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossip.core import ALIVE, Gossip, GossipConfig, Member, push_pull_interval_s
from gossip.crypto import Keyring
from gossip.messages import MsgType
from gossip.wire import MAX_TCP_BYTES, DecodeError, decode, encode
from node.cluster import build_meta
from node.inventory import InventoryReplica, OwnInventory


def agent_meta(i: int, rng: random.Random) -> dict[str, Any]:
    """Metadata as a real agent of a large fleet publishes it."""
    region = f"eu-west-{i % 3 + 1}"
    ip = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
    return build_meta(
        region=region,
        zone=f"{region}{'abc'[i // 3 % 3]}",
        addr=f"{ip}:7946",
        api=f"http://{ip}:7947",
        runtime="docker",
        capacity={
            "memory_total_mb": 65536,
            "memory_free_mb": rng.randrange(65536),
            "millicpus_total": 32000,
            "millicpus_free": rng.randrange(32000),
        },
        inventory=1_764_000_000_000_000 + rng.randrange(10**9),
        digest=rng.getrandbits(63),
        servos=100,
    )


def own_inventory(servos: int) -> OwnInventory:
    own = OwnInventory("host-00000", InventoryReplica())
    records = [
        {
            "id": f"project-{k:04d}-3-{k % 5}-{k * 2654435761 % 2**32:08x}",
            "project": f"project-{k:04d}",
            "state": "running",
            "endpoints": [{"container_port": 8080, "host": "10.0.0.1", "host_port": 20000 + k}],
            "generation": 3,
            "slot": k % 5,
            "restarts": 0,
            "created_ms": 1_764_000_000_000 + k,
            "memory_mb": 256,
            "millicpus": 250,
            "ready_since_ms": 1_764_000_001_000 + k,
            "healthy": True,
        }
        for k in range(servos)
    ]
    own.publish(0.0, records, 1_764_000_000_000_000)
    return own


def core_with(members: int, rng: random.Random) -> Gossip:
    core = Gossip("host-00000", ("10.0.0.0", 7946), agent_meta(0, rng), random.Random(1), 0.0)
    table = {
        f"host-{i:05d}": Member(
            f"host-{i:05d}",
            (f"10.0.{i // 256 % 256}.{i % 256}", 7946),
            0,
            ALIVE,
            agent_meta(i, rng),
            1,
        )
        for i in range(1, members)
    }
    core.preload(0.0, table)
    return core


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def measure(members: int, servos: int, repeat: int) -> dict[str, Any]:
    rng = random.Random(members)
    keyring = Keyring([bytes(range(32))])
    core = core_with(members, rng)
    app = {"i": own_inventory(servos).full_state(), "s": "0" * 16}
    frame = [MsgType.PUSH_PULL, False, core.push_pull_state(), app]
    encode_s, sealed = timed(lambda: encode(keyring, core.name, [frame]), repeat)
    row: dict[str, Any] = {"members": members, "bytes": len(sealed), "encode_s": encode_s}
    try:
        decode_s, (_, msgs) = timed(lambda: decode(keyring, sealed, limit=MAX_TCP_BYTES), repeat)
    except DecodeError as exc:
        row["error"] = f"the receiver refuses the frame: {exc.reason}"
        return row
    states = msgs[0][2]
    same = core_with(members, random.Random(members))  # a peer holding the same table
    merge_same_s, _ = timed(lambda: same.merge_state(1.0, states), repeat)
    fresh_s = []
    for _ in range(max(1, repeat // 2)):
        newcomer = Gossip(
            "host-99999", ("10.9.9.9", 7946), agent_meta(99999, rng), random.Random(2), 0.0
        )
        t0 = time.perf_counter()
        newcomer.merge_state(1.0, states)
        fresh_s.append(time.perf_counter() - t0)
    interval = push_pull_interval_s(GossipConfig().push_pull_interval_s, members)
    per_exchange_cpu = 2 * encode_s + 2 * decode_s + 2 * merge_same_s  # both ends, both ways
    row.update(
        decode_s=decode_s,
        merge_same_s=merge_same_s,
        merge_join_s=statistics.median(fresh_s),
        interval_s=interval,
        # each agent starts one exchange per interval and answers one on average
        kbit_per_agent_s=2 * len(sealed) * 8 / 1000 / interval,
        cpu_per_agent_pct=100 * per_exchange_cpu / interval,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--servos", type=int, default=100, help="servos on the sending host")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(
        f"{'members':>8} {'frame kB':>9} {'encode ms':>10} {'decode ms':>10} "
        f"{'merge ms':>9} {'join ms':>8} {'interval s':>11} {'kbit/s/agent':>13} {'CPU/agent':>10}"
    )
    for n in args.members:
        r = measure(n, args.servos, args.repeat)
        if "error" in r:
            print(f"{n:>8} {r['bytes'] / 1000:>9.1f} {r['encode_s'] * 1000:>10.1f}  {r['error']}")
            continue
        print(
            f"{n:>8} {r['bytes'] / 1000:>9.1f} {r['encode_s'] * 1000:>10.1f} "
            f"{r['decode_s'] * 1000:>10.1f} {r['merge_same_s'] * 1000:>9.1f} "
            f"{r['merge_join_s'] * 1000:>8.1f} {r['interval_s']:>11.0f} "
            f"{r['kbit_per_agent_s']:>13.2f} {r['cpu_per_agent_pct']:>9.3f}%"
        )


if __name__ == "__main__":
    main()
