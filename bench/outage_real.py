"""Region outage on real agents: 9 `shoal agent` processes, kill -9 of one region, time to recover.

    .venv/bin/python bench/outage_real.py                 # 10 runs, table + median / worst
    .venv/bin/python bench/outage_real.py --runs 3 --json results.json

Each run starts 9 agents on loopback (fake runtime, 4 GiB / 4 CPUs each) in 3 regions of 3,
all joined through the first, waits until every agent sees every other alive, deploys 9
projects x 3 replicas spread by region through the HTTP API and waits until each has 3 servos.
Then it kill -9's the 3 agents of one region (their whole process groups) and polls every
survivor every ~0.1 s (`GET /v1/members`, `GET /v1/projects`), recording:

- suspect / dead: when the first and the last survivor marked each victim suspect and dead;
- back: when, at every survivor, every project had >= replicas servos starting or running on
  nodes that survivor sees alive (and, after a settling wait, whether it is exactly replicas).

All times are seconds from the kill. The kill follows the deploy by `--settle-before-s` (2 s;
no agent holds back recovering a project written moments ago any more: the convergence engine's
deterministic servo ids made that grace unnecessary). The machine's cores are shared by the 9
Python agents (and this poller): that load is part of what is measured. Every process started
is killed on exit (also on Ctrl-C) and the temporary directories are removed. Figures are
printed, never asserted. The bench only uses the public HTTP API, so it measures whatever node/
does today.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import attrs
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.cli import keygen  # noqa: E402
from tests.conftest import free_port  # noqa: E402

T = TypeVar("T")

REGIONS = ("r0", "r1", "r2")
PER_REGION = 3
PROJECTS = 9
REPLICAS = 3
SPEC = {"image": "shoal-servo:latest", "replicas": REPLICAS, "memory": "64M", "cpus": 0.1}
LIVE_STATES = ("starting", "running")
POLL_EVERY_S = 0.1
HTTP_TIMEOUT_S = 5.0


def wait_until(
    what: str, check: Callable[[], T | None], timeout_s: float, agents: list[Agent] | None = None
) -> T:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        for a in agents or ():
            if a.proc is not None and a.proc.poll() is not None:
                tail = a.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"agent {a.name} exited ({a.proc.returncode}):\n{tail}")
        try:
            result = check()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}; last: {last!r}")


@attrs.define(eq=False)
class Agent:
    name: str
    region: str
    api_port: int
    gossip_port: int
    args: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "agent", *self.args],
                stdout=log,
                stderr=log,
                cwd=ROOT,
                start_new_session=True,  # its own process group: killpg reaches its children
            )

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Cluster:
    """The agents of one run, in a temporary directory; `close` kills them and removes it."""

    def __init__(self, log_level: str) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="shoal-outage-"))
        self.key_file = self.base / "cluster.key"
        self.key_file.write_text(keygen() + "\n")
        self.log_level = log_level
        self.agents: list[Agent] = []

    def add(self, short: str, region: str, join: Agent | None) -> Agent:
        api_port, gossip_port = free_port(), free_port()
        args = [
            *("--name", short, "--region", region, "--bind", "127.0.0.1"),
            *("--api-port", str(api_port), "--gossip-port", str(gossip_port)),
            *("--data-dir", str(self.base / short), "--runtime", "fake"),
            *("--cluster-key-file", str(self.key_file), "--memory", "4G", "--cpus", "4"),
            *("--log-level", self.log_level),
        ]
        if join is not None:
            args += ["--join", f"127.0.0.1:{join.gossip_port}"]
        agent = Agent(short, region, api_port, gossip_port, args, self.base / f"{short}.log")
        self.agents.append(agent)
        agent.start()
        return agent

    def close(self, keep_logs: Path | None) -> None:
        for a in self.agents:
            a.kill9()
        if keep_logs is not None:
            keep_logs.mkdir(parents=True, exist_ok=True)
            for a in self.agents:
                if a.log_path.exists():
                    shutil.copy(a.log_path, keep_logs / a.log_path.name)
        shutil.rmtree(self.base, ignore_errors=True)


def get(client: httpx.Client, agent: Agent, path: str) -> Any:
    r = client.get(agent.api + path, timeout=HTTP_TIMEOUT_S)
    r.raise_for_status()
    return r.json()


def projects_back(projects: list[dict[str, Any]], alive: set[str]) -> tuple[bool, bool]:
    """(every project has >= replicas live servos on alive nodes, ... exactly replicas)."""
    at_least = exactly = True
    names = {p["name"] for p in projects}
    if len(names) < PROJECTS:
        return False, False
    for p in projects:
        want = int(p["spec"]["replicas"])
        live = [s for s in p["servos"] if s["state"] in LIVE_STATES and s["node"] in alive]
        at_least &= len(live) >= want
        exactly &= len(live) == want
    return at_least, exactly


def one_run(index: int, args: argparse.Namespace) -> dict[str, Any]:
    cluster = Cluster(args.log_level)
    keep = Path(args.keep_logs) / f"run{index}" if args.keep_logs else None
    try:
        seed: Agent | None = None
        for r, region in enumerate(REGIONS):
            for i in range(PER_REGION):
                a = cluster.add(f"a{r}{i}", region, seed)
                seed = seed or a
        agents = cluster.agents
        names = {a.name for a in agents}
        with httpx.Client() as client:
            wait_until(
                "every agent to see every other alive",
                lambda: all(
                    names
                    <= {m["name"] for m in get(client, a, "/v1/members") if m["status"] == "alive"}
                    for a in agents
                ),
                60,
                agents,
            )
            for p in range(PROJECTS):
                target = agents[p % len(agents)]
                resp = client.put(
                    f"{target.api}/v1/projects/p{p}",
                    json={**SPEC, "spread": "region"},
                    timeout=30,
                )
                resp.raise_for_status()

            def deployed() -> bool:
                return all(projects_back(get(client, a, "/v1/projects"), names)[1] for a in agents)

            wait_until("every project at 3 servos at every agent", deployed, 60, agents)
            time.sleep(args.settle_before_s)
        victims = [a for a in agents if a.region == REGIONS[index % len(REGIONS)]]
        survivors = [a for a in agents if a not in victims]
        victim_names = {v.name for v in victims}
        # (survivor, victim) -> first time seen suspect / dead
        suspect_at: dict[tuple[str, str], float] = {}
        dead_at: dict[tuple[str, str], float] = {}
        back_at: dict[str, float] = {}  # survivor -> every project back at its count
        exact_at: dict[str, float] = {}
        pool = ThreadPoolExecutor(max_workers=len(survivors))
        clients = {s.name: httpx.Client() for s in survivors}

        def poll(s: Agent, t0: float) -> None:
            c = clients[s.name]
            members = get(c, s, "/v1/members")
            now = time.monotonic() - t0
            status = {m["name"]: m["status"] for m in members}
            for v in victim_names:
                st = status.get(v, "dead")  # reaped: long dead
                if st in ("suspect", "dead", "left"):
                    suspect_at.setdefault((s.name, v), now)
                if st in ("dead", "left"):
                    dead_at.setdefault((s.name, v), now)
            alive = {n for n, st in status.items() if st == "alive"}
            projects = get(c, s, "/v1/projects")
            now = time.monotonic() - t0
            at_least, exactly = projects_back(projects, alive)
            if at_least:
                back_at.setdefault(s.name, now)
            else:
                back_at.pop(s.name, None)  # must hold from then on
            if exactly:
                exact_at.setdefault(s.name, now)
            else:
                exact_at.pop(s.name, None)

        try:
            t0 = time.monotonic()
            for v in victims:
                v.kill9()
            kill_s = time.monotonic() - t0
            deadline = t0 + args.timeout_s
            settled_since: float | None = None
            while time.monotonic() < deadline:
                tick = time.monotonic()
                futures = [pool.submit(poll, s, t0) for s in survivors]
                for f in futures:
                    with contextlib.suppress(httpx.HTTPError):
                        f.result()
                done = len(dead_at) == len(survivors) * len(victims) and len(back_at) == len(
                    survivors
                )
                if done and settled_since is None:
                    settled_since = time.monotonic()
                if not done:
                    settled_since = None
                if settled_since is not None and time.monotonic() - settled_since > args.settle_s:
                    break
                time.sleep(max(0.0, POLL_EVERY_S - (time.monotonic() - tick)))
        finally:
            pool.shutdown(wait=True)
            for c in clients.values():
                c.close()

        def first_last(table: dict[tuple[str, str], float]) -> tuple[float, float]:
            expected = len(survivors) * len(victims)
            if not table:
                return float("inf"), float("inf")
            last = max(table.values()) if len(table) == expected else float("inf")
            return min(table.values()), last

        back = max(back_at.values()) if len(back_at) == len(survivors) else float("inf")
        exact = len(exact_at) == len(survivors)
        return {
            "run": index,
            "victim_region": victims[0].region,
            "kill_s": kill_s,
            "suspect_first_s": first_last(suspect_at)[0],
            "suspect_last_s": first_last(suspect_at)[1],
            "dead_first_s": first_last(dead_at)[0],
            "dead_last_s": first_last(dead_at)[1],
            "back_s": back,
            "exact_after_settle": exact,
            "dead_by_survivor_s": {
                s.name: max(dead_at.get((s.name, v), float("inf")) for v in victim_names)
                for s in survivors
            },
            "back_by_survivor_s": {s.name: back_at.get(s.name, float("inf")) for s in survivors},
        }
    finally:
        cluster.close(keep)


def fmt(x: float) -> str:
    return f"{x:6.1f}" if x != float("inf") else "   inf"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--timeout-s", type=float, default=90.0, help="give up on a run after")
    parser.add_argument("--settle-s", type=float, default=3.0, help="hold 'back' this long")
    parser.add_argument("--settle-before-s", type=float, default=2.0)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--keep-logs", default="", help="copy agent logs under this directory")
    parser.add_argument("--json", default="", help="also write the results to this file")
    args = parser.parse_args()
    # SIGTERM ends the bench like Ctrl-C: the `finally` blocks kill every agent started.
    signal.signal(signal.SIGTERM, _interrupt)

    results: list[dict[str, Any]] = []
    print(
        "run region | suspect first/last | dead first/last | back (every project at count,"
        " every survivor) | exact"
    )
    try:
        for i in range(args.runs):
            r = one_run(i, args)
            results.append(r)
            print(
                f"{i:>3} {r['victim_region']:>6} | {fmt(r['suspect_first_s'])} /"
                f" {fmt(r['suspect_last_s'])}  | {fmt(r['dead_first_s'])} / {fmt(r['dead_last_s'])}"
                f" | {fmt(r['back_s'])} s{'':37} | {'yes' if r['exact_after_settle'] else 'no'}",
                flush=True,
            )
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    if results:
        backs = [r["back_s"] for r in results]
        deads = [r["dead_last_s"] for r in results]
        print(
            f"back:      median {statistics.median(backs):.1f} s, worst {max(backs):.1f} s"
            f" ({len(results)} runs)\n"
            f"dead last: median {statistics.median(deads):.1f} s, worst {max(deads):.1f} s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
