"""Shoal's gossip against HashiCorp Serf (Debian's `serf`: memberlist SWIM + Lifeguard), side
by side in one run on this machine, 5 agents each on loopback, both encrypted:

  1. detection: time from `kill -9` of one agent until every survivor calls it dead (Serf:
     "failed"), repeated;
  2. false deaths while one agent is frozen (SIGSTOP) for a few seconds, then thawed (SIGCONT);
  3. idle CPU per agent over a quiet interval, from /proc/PID/stat.

    .venv/bin/python bench/serf_compare.py [--rounds 3] [--idle 30]

Needs `serf` on PATH (apt-get install serf). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import free_port
from tests.integration.agents import cpu_seconds

N = 5


class System:
    name = ""
    dead_word = ""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.procs: list[subprocess.Popen[bytes]] = []
        self.names: list[str] = []

    def start(self) -> None: ...

    def statuses(self, i: int) -> dict[str, str]: ...

    def restart(self, i: int) -> None: ...

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


class Serf(System):
    name = "serf"
    dead_word = "failed"

    def start(self) -> None:
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        self.ports = [(free_port(), free_port()) for _ in range(N)]
        self.key = key
        for i in range(N):
            self.names.append(f"serf{i}")
            self.procs.append(self._spawn(i))
            if i == 0:
                time.sleep(1.0)  # serf exits if its -join fails: let the seed listen first

    def _spawn(self, i: int) -> subprocess.Popen[bytes]:
        bind, rpc = self.ports[i]
        cmd = [
            "serf",
            "agent",
            f"-node=serf{i}",
            f"-bind=127.0.0.1:{bind}",
            f"-rpc-addr=127.0.0.1:{rpc}",
            f"-encrypt={self.key}",
            "-log-level=err",
        ]
        if i:
            cmd.append(f"-join=127.0.0.1:{self.ports[0][0]}")
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def restart(self, i: int) -> None:
        self.procs[i] = self._spawn(i)

    def statuses(self, i: int) -> dict[str, str]:
        out = subprocess.run(
            ["serf", "members", f"-rpc-addr=127.0.0.1:{self.ports[i][1]}", "-format=json"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        return {m["name"]: m["status"] for m in json.loads(out or '{"members": []}')["members"]}


class Shoal(System):
    name = "shoal"
    dead_word = "dead"

    def start(self) -> None:
        from api.cli import keygen

        self.key = self.base / "key"
        self.key.write_text(keygen() + "\n")
        self.ports = [(free_port(), free_port()) for _ in range(N)]
        for i in range(N):
            self.names.append(f"shoal{i}")
            self.procs.append(self._spawn(i))

    def _spawn(self, i: int) -> subprocess.Popen[bytes]:
        gossip, api = self.ports[i]
        cmd = [
            sys.executable,
            "-m",
            "api.cli",
            "agent",
            "--name",
            f"shoal{i}",
            "--gossip-port",
            str(gossip),
            "--api-port",
            str(api),
            "--runtime",
            "fake",
            "--data-dir",
            str(self.base / f"d{i}"),
            "--cluster-key-file",
            str(self.key),
            "--log-level",
            "warning",
        ]
        if i:
            cmd += ["--join", f"127.0.0.1:{self.ports[0][0]}"]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def restart(self, i: int) -> None:
        self.procs[i] = self._spawn(i)

    def statuses(self, i: int) -> dict[str, str]:
        r = httpx.get(f"http://127.0.0.1:{self.ports[i][1]}/v1/members", timeout=5)
        return {m["name"]: m["status"] for m in r.json()}


def wait(
    what: str, check: Callable[[], bool], timeout_s: float = 60, every_s: float = 0.05
) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            if check():
                return time.monotonic() - t0
        except (httpx.HTTPError, subprocess.SubprocessError, ValueError, KeyError):
            pass
        time.sleep(every_s)
    raise TimeoutError(what)


def all_alive(s: System, among: list[int]) -> bool:
    return all(all(s.statuses(i).get(s.names[j]) == "alive" for j in among) for i in among)


def measure(s: System, rounds: int, freeze_s: list[float], idle_s: float) -> dict[str, object]:
    s.start()
    everyone = list(range(N))
    wait("cluster", lambda: all_alive(s, everyone), 60, 0.2)
    time.sleep(3)
    # idle CPU first, while the cluster is quiet
    cpu0 = [cpu_seconds(p.pid) for p in s.procs]
    time.sleep(idle_s)
    cpu1 = [cpu_seconds(p.pid) for p in s.procs]
    idle = statistics.mean((b - a) / idle_s * 100 for a, b in zip(cpu0, cpu1, strict=True))
    # false deaths while frozen
    false_deaths = 0
    for k, freeze in enumerate(freeze_s):
        victim = 1 + k % (N - 1)
        others = [i for i in everyone if i != victim]
        os.kill(s.procs[victim].pid, signal.SIGSTOP)
        end = time.monotonic() + freeze
        seen_dead = False
        while time.monotonic() < end:
            seen_dead |= any(s.statuses(i).get(s.names[victim]) == s.dead_word for i in others)
            time.sleep(0.1)
        os.kill(s.procs[victim].pid, signal.SIGCONT)
        end = time.monotonic() + 5
        while time.monotonic() < end:
            seen_dead |= any(s.statuses(i).get(s.names[victim]) == s.dead_word for i in others)
            time.sleep(0.1)
        false_deaths += int(seen_dead)
        wait("recovery after thaw", lambda: all_alive(s, everyone), 60, 0.2)
    # detection after kill -9
    detect = []
    for r in range(rounds):
        victim = 1 + r % (N - 1)
        others = [i for i in everyone if i != victim]
        os.kill(s.procs[victim].pid, signal.SIGKILL)
        s.procs[victim].wait()
        detect.append(
            wait(
                "dead everywhere",
                lambda victim=victim, others=others: all(
                    s.statuses(i).get(s.names[victim]) == s.dead_word for i in others
                ),
                60,
            )
        )
        s.restart(victim)
        wait("rejoin", lambda: all_alive(s, everyone), 90, 0.2)
        time.sleep(2)
    s.stop()
    return {
        "detect": detect,
        "false_deaths": false_deaths,
        "freezes": len(freeze_s),
        "idle_cpu": idle,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--freeze", type=float, nargs="+", default=[2.0, 3.0, 4.0])
    args = parser.parse_args()
    if not shutil.which("serf"):
        sys.exit("serf is not installed: apt-get install serf")
    rows = []
    with tempfile.TemporaryDirectory(prefix="shoal-vs-serf-") as tmp:
        for cls in (Serf, Shoal):
            system = cls(Path(tmp) / cls.name)
            (Path(tmp) / cls.name).mkdir()
            try:
                rows.append((cls.name, measure(system, args.rounds, args.freeze, args.idle)))
            finally:
                system.stop()
    print(f"\n{N} agents each on loopback; kill -9 x{args.rounds}; SIGSTOP for {args.freeze} s")
    print("system  detect median s  detect max s  false deaths  idle CPU %/agent")
    for name, r in rows:
        d = r["detect"]
        assert isinstance(d, list)
        print(
            f"{name:<7} {statistics.median(d):>15.2f} {max(d):>13.2f}"
            f" {r['false_deaths']!s:>9}/{r['freezes']!s:<3} {r['idle_cpu']:>17.2f}"
        )


if __name__ == "__main__":
    main()
