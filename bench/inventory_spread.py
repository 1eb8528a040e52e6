"""How fast one servo change reaches every agent's view, with a PaaS host's inventory.

    .venv/bin/python bench/inventory_spread.py [--agents 10] [--servos-per-host 200] [--changes 20]

Real agents on loopback (fake runtime). Every host is filled with `--servos-per-host` servos
(projects of one replica per host, `spread: host`), then one project at a time is scaled down
by one and back up: each change removes or adds one servo on one host. The time is from the
request until every agent's `GET /v1/projects/{name}` shows the new count (each agent polled
every 100 ms). Also printed: each agent's gossip bytes sent per second while idle (probes,
gossip, push-pull) and during the changes. Figures only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.host import DEREGISTER_S
from tests.integration.agents import running_cluster

POLL_S = 0.1  # a poll builds a view from every servo: polling faster loads the agents
DRAINED_BYTES_S = 2000  # per agent: probes and acks, and no backlog of broadcasts


def spec(replicas: int) -> dict[str, Any]:
    return {
        "image": "shoal-servo:latest",
        "replicas": replicas,
        "memory": "8M",
        "cpus": 0.01,
        "spread": "host",
        "ports": [8080],
    }


async def fill(api: str, projects: list[str], replicas: int) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=120) as client:
        for name in projects:
            r = await client.put(f"/v1/projects/{name}", json=spec(replicas))
            r.raise_for_status()


async def until_everyone_sees(apis: list[str], name: str, count: int, limit_s: float) -> float:
    """Seconds until every agent's view of `name` has `count` live servos."""
    t0 = time.perf_counter()
    seen: dict[str, float] = {}

    async def watch(api: str, client: httpx.AsyncClient) -> None:
        while time.perf_counter() - t0 < limit_s:
            r = await client.get(f"{api}/v1/projects/{name}")
            live = [s for s in r.json()["servos"] if s["state"] in ("starting", "running")]
            if len(live) == count:
                seen[api] = time.perf_counter() - t0
                return
            await trio.sleep(POLL_S)

    async with httpx.AsyncClient(timeout=30) as client, trio.open_nursery() as nursery:
        for api in apis:
            nursery.start_soon(watch, api, client)
    if len(seen) < len(apis):
        return float("inf")
    return max(seen.values())


async def change(apis: list[str], name: str, replicas: int, limit_s: float) -> float:
    async with httpx.AsyncClient(base_url=apis[0], timeout=60) as client:
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:

            async def put() -> None:
                r = await client.put(f"/v1/projects/{name}", json=spec(replicas))
                r.raise_for_status()

            nursery.start_soon(put)
        # from the request, not its answer: the answer comes after the host acted
        waited = await until_everyone_sees(apis, name, replicas, limit_s)
        return (time.perf_counter() - t0) if waited != float("inf") else waited


def gossip_bytes_out(api: str) -> float:
    text = httpx.get(f"{api}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("shoal_gossip_bytes_out_total"):
            return float(line.split()[-1])
    return 0.0


def run(base: Path, args: argparse.Namespace) -> None:
    with running_cluster(base) as cluster:
        cluster.add_fleet(args.agents, "c", memory="64G", cpus="64")
        apis = [a.api for a in cluster.agents]
        projects = [f"f{i}" for i in range(args.servos_per_host)]
        t0 = time.perf_counter()
        trio.run(fill, apis[0], projects, args.agents)
        print(f"filled {len(projects) * args.agents} servos in {time.perf_counter() - t0:.1f} s")

        def all_counted() -> bool:
            return all(
                all(m["servos"] == args.servos_per_host for m in a.get("/v1/members"))
                for a in cluster.agents
            )

        deadline = time.time() + 120
        while not all_counted() and time.time() < deadline:
            time.sleep(1)
        print(f"every agent counts {args.servos_per_host} servos on every host: {all_counted()}")
        # the fill's thousands of deltas are still being retransmitted (each by every agent,
        # a bounded number of times): wait for that backlog to drain before timing changes
        # or calling anything idle
        t_drain = time.perf_counter()
        while time.perf_counter() - t_drain < 180:
            before = {a: gossip_bytes_out(a) for a in apis}
            time.sleep(5)
            rate = statistics.mean(gossip_bytes_out(a) - before[a] for a in apis) / 5
            if rate < DRAINED_BYTES_S:
                break
        print(f"fill's gossip backlog drained after {time.perf_counter() - t_drain:.0f} s")
        before = {a: gossip_bytes_out(a) for a in apis}
        time.sleep(args.idle_s)
        idle = [(gossip_bytes_out(a) - before[a]) / args.idle_s for a in apis]
        times: list[float] = []
        removals: list[float] = []
        before = {a: gossip_bytes_out(a) for a in apis}
        t_changes = time.perf_counter()
        for k in range(args.changes):
            name = projects[k % len(projects)]
            down = trio.run(change, apis, name, args.agents - 1, args.limit_s)
            up = trio.run(change, apis, name, args.agents, args.limit_s)
            removals.append(down)
            times.append(up)
            print(f"  {name}: -1 servo seen everywhere after {down:.2f} s, +1 after {up:.2f} s")
        busy_s = time.perf_counter() - t_changes
        busy = [(gossip_bytes_out(a) - before[a]) / busy_s for a in apis]
        finite = [t for t in times if t != float("inf")]
        print(
            f"\n{args.agents} agents x {args.servos_per_host} servos per host, "
            f"{len(times)} creates and {len(removals)} removals"
        )
        print(
            f"  a new servo in every agent's view: p50 {statistics.median(finite):.2f} s, "
            f"max {max(times):.2f} s, over 2 s: {sum(1 for t in times if t > 2)}"
        )
        print(
            f"  a removed servo out of every view: p50 {statistics.median(removals):.2f} s, "
            f"max {max(removals):.2f} s (a running servo with ports is reported stopped and "
            f"kept {DEREGISTER_S:.0f} s before it goes: ingress deregistration)"
        )
        print(
            f"  gossip bytes out per agent: idle {statistics.mean(idle) / 1000:.1f} kB/s "
            f"({statistics.mean(idle) * 8 / 1000:.0f} kbit/s), during changes "
            f"{statistics.mean(busy) / 1000:.1f} kB/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--servos-per-host", type=int, default=200)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--limit-s", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        run(Path(tmp), args)


if __name__ == "__main__":
    main()
