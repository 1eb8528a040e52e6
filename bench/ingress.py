"""Ingress overhead and throughput on loopback, Docker runtime: figures only, nothing asserted.

    .venv/bin/python bench/ingress.py [--requests 2000] [--concurrency 16]

Two agents (one runs the ingress), one project of two replicas of the servo image (busybox
httpd). In the same run: latency p50/p99 of one request at a time straight to a servo and
through the ingress, interleaved so both see the same machine; then requests/s with
`--concurrency` clients, straight to the servos and through the ingress; then how long a servo
whose host died (agent SIGKILLed, container removed) stays in the routing table, while every
request keeps succeeding. The client is Python (httpx), so requests/s are a floor set partly by
the client; the comparison is what matters. Needs Docker and `make image`; says so otherwise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.ingress_proxy import CONFIG_PATH, TOKEN_HEADER
from tests.conftest import free_port
from tests.integration.agents import Agent, make_cluster, wait_until

SPEC = {"image": "shoal-servo:latest", "replicas": 2, "memory": "64M", "cpus": 0.5, "ports": [8080]}
HOST = {"Host": "bench.shoal.localhost"}


def docker_ready() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        client.images.get(str(SPEC["image"]))
        client.close()
        return True
    except Exception:
        return False


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def routed(agent: Agent) -> set[str]:
    static = json.loads((agent.data_dir / "ingress" / "traefik.json.yml").read_text())
    token = static["providers"]["http"]["headers"][TOKEN_HEADER]
    table = httpx.get(agent.api + CONFIG_PATH, headers={TOKEN_HEADER: token}, timeout=5).json()
    service = table["http"]["services"].get("project-bench")
    return {s["url"] for s in service["loadBalancer"]["servers"]} if service else set()


def latency(direct: str, ingress: str, n: int) -> tuple[list[float], list[float]]:
    """One request at a time, alternating direct and ingress; keep-alive clients on both."""
    a: list[float] = []
    b: list[float] = []
    with httpx.Client(timeout=5) as c1, httpx.Client(timeout=5, headers=HOST) as c2:
        for _ in range(50):  # warm up both paths
            c1.get(direct).raise_for_status()
            c2.get(ingress).raise_for_status()
        for _ in range(n):
            t0 = time.perf_counter()
            c1.get(direct).raise_for_status()
            a.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            c2.get(ingress).raise_for_status()
            b.append(time.perf_counter() - t0)
    return a, b


async def throughput(urls: list[str], headers: dict[str, str], n: int, clients: int) -> float:
    left = n
    failures = 0

    async def worker(i: int) -> None:
        nonlocal left, failures
        async with httpx.AsyncClient(timeout=10, headers=headers) as c:
            while left > 0:
                left -= 1
                r = await c.get(urls[i % len(urls)])
                failures += r.status_code != 200

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(clients):
            nursery.start_soon(worker, i)
    wall = time.perf_counter() - t0
    if failures:
        print(f"  ({failures} non-200 answers)")
    return n / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    if not docker_ready():
        print("bench/ingress.py: no Docker Engine or servo image (make image): skipped")
        return 0
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-ingress-") as tmp:
        gen = make_cluster(Path(tmp))
        cluster = next(gen)
        try:
            a = cluster.add("g1", runtime="docker", extra=["--ingress-port", str(port)])
            b = cluster.add("g2", runtime="docker", join=[a])
            cluster.wait_healthy()
            cluster.wait_all_alive()
            r = httpx.put(f"{a.api}/v1/projects/bench", json=SPEC, timeout=120)
            r.raise_for_status()
            servos = r.json()["servos"]
            urls = [
                f"http://{s['endpoints'][0]['host']}:{s['endpoints'][0]['host_port']}/"
                for s in servos
            ]
            ingress = f"http://127.0.0.1:{port}/"
            wait_until("both servos routed", lambda: len(routed(a)) == 2, 30)
            time.sleep(1.5)  # one more poll: Traefik has applied the table

            d, i = latency(urls[0], ingress, args.requests)
            print(f"latency, one request at a time, {args.requests} each, interleaved (ms):")
            print(f"  {'path':<28} {'p50':>7} {'p99':>7} {'mean':>7}")
            for name, xs in (("direct to a servo", d), ("through the ingress", i)):
                print(
                    f"  {name:<28} {pct(xs, 0.5) * 1e3:7.2f} {pct(xs, 0.99) * 1e3:7.2f} "
                    f"{statistics.fmean(xs) * 1e3:7.2f}"
                )
            print(
                f"  ingress overhead: p50 +{(pct(i, 0.5) - pct(d, 0.5)) * 1e3:.2f} ms, "
                f"p99 +{(pct(i, 0.99) - pct(d, 0.99)) * 1e3:.2f} ms"
            )

            n, c = args.requests * 2, args.concurrency
            direct_rps = trio.run(throughput, urls, {}, n, c)
            ingress_rps = trio.run(throughput, [ingress], HOST, n, c)
            print(f"requests/s, {n} requests, {c} concurrent clients (one Python process):")
            print(f"  direct to the two servos    {direct_rps:8.0f}")
            print(f"  through one agent's ingress {ingress_rps:8.0f}")

            victim = next(s for s in servos if s["node"] == b.name)
            dead = next(u for u in urls if f":{victim['endpoints'][0]['host_port']}/" in u)
            b.kill9()
            import docker

            dc = docker.from_env()
            t0 = time.monotonic()
            dc.containers.get(f"shoal-{b.name}-{victim['id']}").remove(force=True)
            ok = bad = 0
            with httpx.Client(timeout=5, headers=HOST) as client:
                while dead.rstrip("/") in routed(a) and time.monotonic() - t0 < 60:
                    for _ in range(20):
                        if client.get(ingress).status_code == 200:
                            ok += 1
                        else:
                            bad += 1
            print(
                "a servo's host dies (agent SIGKILLed, container removed): "
                f"out of the routing table after {time.monotonic() - t0:.1f} s; "
                f"meanwhile {ok} requests answered 200, {bad} did not"
            )
            for v in dc.volumes.list(filters={"label": f"shoal.node={b.name}"}):
                v.remove(force=True)
            httpx.delete(f"{a.api}/v1/projects/bench", timeout=120)
            dc.close()
        finally:
            cluster.stop_all()
            for _ in gen:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
