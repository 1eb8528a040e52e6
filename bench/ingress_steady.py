"""A steady client through one agent's ingress while the cluster changes under it: figures only.

    .venv/bin/python bench/ingress_steady.py [--rate 20] [--after-kill-s 30]

Four agents on loopback, Docker runtime, the first with an ingress; one project of 3 replicas of
the servo image with an http health check. A client sends `--rate` requests/s (one at a time,
paced, 5 s timeout each) to the ingress with `Host: steady.shoal.localhost` throughout:

1. a rolling update to a new generation (surge 1, proven healthy for 2 s before an old servo
   goes), until the rollout succeeds: target 0 failed requests;
2. then a kill -9 of the agent of another servo's host, its containers stopped with it (the
   whole host gone), and `--after-kill-s` more seconds: target <= 1 % failed.

A request fails when it does not answer 200 within its timeout. Needs Docker and `make image`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import free_port
from tests.integration.agents import make_cluster, wait_until

SPEC: dict[str, Any] = {
    "image": "shoal-servo:latest",
    "replicas": 3,
    "memory": "32M",
    "cpus": 0.1,
    "ports": [8080],
    "env": {"V": "1"},
    "health": {"type": "http", "port": 8080, "interval_s": 0.5, "timeout_s": 0.5, "grace_s": 1},
    "update": {"healthy_for_s": 2},
}
HOST = {"Host": "steady.shoal.localhost"}


class Client:
    """Paced requests at `rate` per second until stopped; counts answers by phase."""

    def __init__(self, url: str, rate: float) -> None:
        self.url, self.rate = url, rate
        self.phase = "warm-up"
        self.results: dict[str, list[bool]] = {}
        self.stop = trio.Event()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=5, headers=HOST) as client:
            next_at = trio.current_time()
            while not self.stop.is_set():
                try:
                    ok = (await client.get(self.url)).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.results.setdefault(self.phase, []).append(ok)
                next_at += 1 / self.rate
                await trio.sleep(max(0.0, next_at - trio.current_time()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--after-kill-s", type=float, default=30.0)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-steady-") as tmp:
        gen = make_cluster(Path(tmp))
        cluster = next(gen)
        import docker

        dc = docker.from_env()
        try:
            a = cluster.add(
                "s1", region="eu", runtime="docker", extra=["--ingress-port", str(port)]
            )
            for short, region in (("s2", "us"), ("s3", "ap"), ("s4", "eu")):
                cluster.add(short, region=region, runtime="docker", join=[a])
            cluster.wait_healthy(timeout_s=90)
            cluster.wait_all_alive(timeout_s=60)
            httpx.put(f"{a.api}/v1/projects/steady", json=SPEC, timeout=120).raise_for_status()
            url = f"http://127.0.0.1:{port}/"

            def serving() -> bool:
                try:
                    return httpx.get(url, headers=HOST, timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until("the ingress serving", serving, 60)
            time.sleep(2)

            async def scenario() -> dict[str, float]:
                client = Client(url, args.rate)
                marks: dict[str, float] = {}
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(client.run)
                    await trio.sleep(3)
                    client.phase = "rolling update"
                    t0 = trio.current_time()
                    async with httpx.AsyncClient(timeout=120) as api:
                        new = {**SPEC, "env": {"V": "2"}}
                        (await api.put(f"{a.api}/v1/projects/steady", json=new)).raise_for_status()
                        while True:
                            body = (await api.get(f"{a.api}/v1/projects/steady")).json()
                            if body["rollout"]["state"] != "in_progress":
                                marks["rollout_state_" + body["rollout"]["state"]] = 1
                                break
                            await trio.sleep(0.5)
                        marks["rollout_s"] = trio.current_time() - t0
                        servos = body["servos"]
                    victim_node = next(
                        s["node"] for s in servos if s["node"] != a.name and s["state"] == "running"
                    )
                    victim = next(x for x in cluster.agents if x.name == victim_node)
                    client.phase = "kill -9 of a servo's host"
                    victim.kill9()
                    for c in dc.containers.list(filters={"label": f"shoal.node={victim_node}"}):
                        c.kill()
                    await trio.sleep(args.after_kill_s)
                    client.stop.set()
                for phase, oks in client.results.items():
                    marks[f"{phase}|n"] = len(oks)
                    marks[f"{phase}|failed"] = oks.count(False)
                return marks

            marks = trio.run(scenario)
            print(f"\nsteady client at {args.rate:g} req/s through one agent's ingress")
            print(
                f"  rolling update of 3 replicas: {marks['rollout_s']:.1f} s, "
                f"{'succeeded' if 'rollout_state_succeeded' in marks else 'NOT succeeded'}"
            )
            for phase in ("warm-up", "rolling update", "kill -9 of a servo's host"):
                n = int(marks.get(f"{phase}|n", 0))
                bad = int(marks.get(f"{phase}|failed", 0))
                share = 100 * bad / n if n else 0.0
                print(f"  {phase:<28} {n:5d} requests, {bad:3d} failed ({share:.2f} %)")
            httpx.delete(f"{a.api}/v1/projects/steady", timeout=120)
        finally:
            cluster.stop_all()
            for c in dc.containers.list(all=True, filters={"label": "shoal.project=steady"}):
                c.remove(force=True)
            for v in dc.volumes.list(filters={"label": "shoal.project=steady"}):
                v.remove(force=True)
            dc.close()
            for _ in gen:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
