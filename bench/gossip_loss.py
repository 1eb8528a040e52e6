"""Shoal's gossip beside HashiCorp Serf under real packet loss (issue 14, point 6).

Ten Shoal agents (fake runtime) and ten Serf agents (Debian's `serf`: memberlist SWIM +
Lifeguard, LAN defaults), all encrypted, run in ONE network namespace whose loopback drops a
random share of every packet, UDP and TCP alike (`iptables -m statistic --mode random` on
INPUT; `tc netem` does not work on this kernel's loopback; see tests/integration/lossy_netns.py).
Both clusters run at the same time, so they see the same loss and the same busy machine. For
each loss level, in order:

  1. idle: IDLE seconds unpolled, for the CPU per agent that gossip alone costs (/proc);
     then quiet: both clusters polled every 0.5 s for QUIET seconds; a false death is an
     (observer, member) pair where a live member is called dead (Serf: failed). The agents'
     own logs are counted as well, over both intervals (Shoal `member.dead`, Serf
     `EventMemberFailed`), so a death that flips back between two polls is not missed, and so
     are refutations, i.e. live members suspected (Serf: "Refuting a suspect message"; Shoal:
     incarnations gained, as Shoal does not log a refutation at info level). CPU
     per agent is also given for the polled interval (it includes answering the poller: Shoal
     over HTTP, Serf over its msgpack RPC);
  2. ROUNDS times: kill -9 one Shoal and one Serf agent at the same moment; the time until
     every survivor calls the victim dead is the latest of the survivors' first "dead"
     answers; any other member called dead meanwhile is a false death too; then both victims
     are restarted and both clusters must be whole again before the next round;
  3. with --frozen S: one agent of each system SIGSTOPped for S seconds (a host gone without
     a word, unlike kill -9 on loopback, which answers with ICMP/RST), the others polled for
     false deaths of live members meanwhile; then thawed, and both clusters whole again;
  4. with --freeze-rounds N: N rounds as in 2, but the victim is SIGSTOPped instead of killed
     (no RST answers a probe, as for a host whose power is cut), timed until every survivor
     calls it dead, then thawed: it finds itself declared dead, refutes and is taken back.
     Shoal starts a suspicion when a TCP probe is refused (a killed agent on a live host);
     these rounds measure detection without that signal.

The poller's own TCP ports (Shoal's API, Serf's RPC) are exempt from the drop so the figures do
not include the poller's retransmits; the gossip ports, UDP and TCP, are not.

    .venv/bin/python bench/gossip_loss.py [--agents 10] [--losses 0 0.1 0.2] [--rounds 5]
        [--idle 20] [--quiet 60] [--frozen 0] [--freeze-rounds 0] [--json]

Needs root, `ip`, `iptables` and `serf` (apt-get install serf). Figures are printed, never
asserted; tests/integration/test_gossip_loss_netns.py pins the no-false-death half.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import free_port
from tests.integration.agents import Cluster, cpu_seconds
from tests.integration.lossy_netns import LossyNamespace, inside, lossy_namespace

POLL_EVERY_S = 0.5


class SerfRpc:
    """Serf's agent RPC (msgpack header + body over TCP): one connection, `members` only.

    Cheaper than a `serf members` process per question, which at 20 questions a second would
    cost the machine more than the agents do."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        # Addr comes as raw bytes: keep whatever does not decode
        self.unpacker = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape")
        self.seq = 0
        self._call("handshake", {"Version": 1})

    def _next(self) -> Any:
        while True:
            for obj in self.unpacker:
                return obj
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("serf closed the RPC connection")
            self.unpacker.feed(chunk)

    def _call(self, command: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        self.seq += 1
        out = msgpack.packb({"Command": command, "Seq": self.seq})
        self.sock.sendall(out + (msgpack.packb(body) if body is not None else b""))
        header = self._next()
        if header.get("Error"):
            raise ConnectionError(f"serf {command}: {header['Error']}")
        return header  # type: ignore[no-any-return]

    def members(self) -> dict[str, str]:
        self._call("members")
        return {m["Name"]: m["Status"] for m in self._next()["Members"]}

    def close(self) -> None:
        self.sock.close()


class SerfCluster:
    """N `serf agent` processes in the namespace, encrypted, LAN profile (Serf's default)."""

    dead_word = "failed"
    log_dead = re.compile(r"EventMemberFailed: (\S+)")
    log_refute = re.compile(r"Refuting a (?:suspect|dead) message")

    def refutations(self, before: list[str], since: list[str]) -> int:
        """memberlist logs each refutation once, at the member that refutes."""
        del before
        return sum(len(self.log_refute.findall(text)) for text in since)

    def __init__(self, ns: LossyNamespace, base: Path, n: int) -> None:
        self.ns, self.base, self.n = ns, base, n
        self.key = base64.b64encode(secrets.token_bytes(32)).decode()
        self.ports = [(free_port(), free_port()) for _ in range(n)]
        self.names = [f"serf{i}" for i in range(n)]
        self.procs: list[subprocess.Popen[bytes]] = [self._spawn(i) for i in range(n)]
        self.rpcs: dict[int, SerfRpc] = {}

    def log_path(self, i: int) -> Path:
        return self.base / f"serf{i}.log"

    def _spawn(self, i: int) -> subprocess.Popen[bytes]:
        bind, rpc = self.ports[i]
        cmd = [
            *self.ns.exec_prefix(),
            "serf",
            "agent",
            f"-node={self.names[i]}",
            f"-bind=127.0.0.1:{bind}",
            f"-rpc-addr=127.0.0.1:{rpc}",
            f"-encrypt={self.key}",
            "-log-level=info",
            "-retry-interval=1s",  # -retry-join, unlike -join, does not exit if the seed is late
        ]
        cmd += [f"-retry-join=127.0.0.1:{self.ports[j][0]}" for j in range(min(i, 3))]
        with open(self.log_path(i), "ab") as log:
            return subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)

    def api_ports(self) -> list[int]:
        return [rpc for _, rpc in self.ports]

    def statuses(self, i: int) -> dict[str, str]:
        """Call only inside the namespace (the RPC socket is opened there)."""
        try:
            if i not in self.rpcs:
                self.rpcs[i] = SerfRpc(self.ports[i][1])
            return self.rpcs[i].members()
        except (OSError, ValueError, KeyError):
            rpc = self.rpcs.pop(i, None)
            if rpc is not None:
                rpc.close()  # reconnect on the next question
            raise

    def pid(self, i: int) -> int:
        return self.procs[i].pid

    def kill9(self, i: int) -> None:
        os.killpg(self.procs[i].pid, signal.SIGKILL)
        self.procs[i].wait()
        rpc = self.rpcs.pop(i, None)
        if rpc is not None:
            rpc.close()

    def restart(self, i: int) -> None:
        self.procs[i] = self._spawn(i)

    def stop(self) -> None:
        for rpc in self.rpcs.values():
            rpc.close()
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


class ShoalCluster:
    """N `shoal agent --runtime fake` processes in the namespace (tests/integration/agents.py)."""

    dead_word = "dead"
    log_dead = re.compile(r"member\.dead\b.*?member=(\S+)")
    log_incarnation = re.compile(r"member\.\w+ member=(\S+) incarnation=(\d+)")

    def refutations(self, before: list[str], since: list[str]) -> int:
        """Incarnations gained since the mark, summed over members: each is a refutation (or
        a metadata change, which a quiet fake-runtime cluster does not make)."""

        def highest(texts: list[str]) -> dict[str, int]:
            top: dict[str, int] = {}
            for text in texts:
                for m in self.log_incarnation.finditer(text):
                    top[m.group(1)] = max(top.get(m.group(1), 0), int(m.group(2)))
            return top

        old, new = highest(before), highest(before + since)
        return sum(inc - old.get(name, inc) for name, inc in new.items())

    def __init__(self, ns: LossyNamespace, base: Path, n: int) -> None:
        key = base / "cluster.key"
        from api.cli import keygen

        key.write_text(keygen() + "\n")
        self.cluster = Cluster(base, key)
        quiet = ["--log-level", "info"]  # member.dead is logged at info
        first = self.cluster.add("s0", prefix=ns.exec_prefix(), extra=quiet)
        seeds = [first]
        for i in range(1, n):
            a = self.cluster.add(f"s{i}", join=seeds, prefix=ns.exec_prefix(), extra=quiet)
            if len(seeds) < 3:
                seeds.append(a)
        self.agents = self.cluster.agents
        self.names = [a.name for a in self.agents]
        self.http = httpx.Client(timeout=10)

    def log_path(self, i: int) -> Path:
        return self.agents[i].log_path

    def api_ports(self) -> list[int]:
        return [a.api_port for a in self.agents]

    def statuses(self, i: int) -> dict[str, str]:
        r = self.http.get(self.agents[i].api + "/v1/members")
        r.raise_for_status()
        return {m["name"]: m["status"] for m in r.json()}

    def pid(self, i: int) -> int:
        proc = self.agents[i].proc
        assert proc is not None
        return proc.pid

    def kill9(self, i: int) -> None:
        self.agents[i].kill9()

    def restart(self, i: int) -> None:
        self.agents[i].start()

    def stop(self) -> None:
        self.http.close()
        for a in self.agents:
            a.kill9()


System = SerfCluster | ShoalCluster


class Observer:
    """Polls one system's agents (inside the namespace), keeps every dead call it saw."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.false_pairs: set[tuple[str, str]] = set()
        self.unanswered = 0
        self.log_offsets: dict[int, int] = {}

    def poll(self, among: list[int], killed: set[str]) -> dict[int, tuple[float, dict[str, str]]]:
        views: dict[int, tuple[float, dict[str, str]]] = {}
        for i in among:
            try:
                view = self.system.statuses(i)
            except (httpx.HTTPError, OSError, ValueError, KeyError):
                self.unanswered += 1
                continue
            views[i] = (time.monotonic(), view)
            for member, status in view.items():
                if status == self.system.dead_word and member not in killed:
                    self.false_pairs.add((self.system.names[i], member))
        return views

    def mark_logs(self) -> None:
        n = len(self.system.names)
        self.log_offsets = {i: self._size(i) for i in range(n)}

    def _size(self, i: int) -> int:
        path = self.system.log_path(i)
        return path.stat().st_size if path.exists() else 0

    def logs(self) -> tuple[list[str], list[str]]:
        """Each agent's log before mark_logs() and since."""
        before, since = [], []
        for i, start in self.log_offsets.items():
            text = self.system.log_path(i).read_bytes()
            before.append(text[:start].decode(errors="replace"))
            since.append(text[start:].decode(errors="replace"))
        return before, since

    def logged_deaths(self) -> list[str]:
        """Every member any agent's log has called dead since mark_logs(), once per call."""
        return [m.group(1) for text in self.logs()[1] for m in self.system.log_dead.finditer(text)]

    def dead_lines(self, spare: set[str]) -> list[str]:
        """The log lines (agent: line) that call a member not in `spare` dead: the evidence."""
        out = []
        for i, text in enumerate(self.logs()[1]):
            for line in text.splitlines():
                m = self.system.log_dead.search(line)
                if m and m.group(1) not in spare:
                    out.append(f"{self.system.names[i]}: {line.strip()}")
        return out

    def logged_refutations(self) -> int:
        return self.system.refutations(*self.logs())


def wait_whole(observers: list[Observer], timeout_s: float) -> None:
    """Until every agent of every system sees all of its cluster alive."""
    deadline = time.monotonic() + timeout_s
    unanswered = [ob.unanswered for ob in observers]  # a restarting agent is expected to be mute
    while time.monotonic() < deadline:
        for ob, u in zip(observers, unanswered, strict=True):
            ob.unanswered = u
        whole = True
        for ob in observers:
            names = set(ob.system.names)
            views = ob.poll(list(range(len(names))), set(names))
            whole &= len(views) == len(names) and all(
                all(v.get(m) == "alive" for m in names) for _, v in views.values()
            )
        if whole:
            for ob, u in zip(observers, unanswered, strict=True):
                ob.unanswered = u
            return
        time.sleep(POLL_EVERY_S)
    raise TimeoutError("a cluster did not become whole again")


def mean_cpu_pct(ob: Observer, before: list[float], elapsed_s: float) -> float:
    used = [cpu_seconds(ob.system.pid(i)) - b for i, b in enumerate(before)]
    return statistics.mean(used) / elapsed_s * 100


def quiet_interval(
    observers: list[Observer], idle_s: float, seconds: float
) -> dict[str, dict[str, Any]]:
    """`idle_s` unpolled (CPU of gossip alone; deaths from the logs), then `seconds` polled."""
    out: dict[str, dict[str, Any]] = {}
    for ob in observers:
        ob.false_pairs.clear()
        ob.unanswered = 0
        ob.mark_logs()
    everyone = list(range(len(observers[0].system.names)))
    idle0 = [[cpu_seconds(ob.system.pid(i)) for i in everyone] for ob in observers]
    time.sleep(idle_s)
    idle = [mean_cpu_pct(ob, b, idle_s) for ob, b in zip(observers, idle0, strict=True)]
    cpu0 = [[cpu_seconds(ob.system.pid(i)) for i in everyone] for ob in observers]
    t0 = time.monotonic()
    k = 0
    while time.monotonic() - t0 < seconds:
        for ob in observers:
            ob.poll(everyone, set())
        k += 1
        time.sleep(max(0.0, t0 + k * POLL_EVERY_S - time.monotonic()))
    elapsed = time.monotonic() - t0
    for ob, before, idle_pct in zip(observers, cpu0, idle, strict=True):
        out[type(ob.system).__name__] = {
            "false_pairs": len(ob.false_pairs),
            "false_logged": len(ob.logged_deaths()),
            "false_lines": ob.dead_lines(set()),
            "refutations": ob.logged_refutations(),
            "idle_cpu_pct": idle_pct,
            "cpu_pct": mean_cpu_pct(ob, before, elapsed),
            "unanswered": ob.unanswered,
        }
    return out


def frozen_interval(observers: list[Observer], seconds: float) -> dict[str, dict[str, Any]]:
    """The last agent of each system frozen (SIGSTOP) for `seconds`: a host that vanished
    without a word, as a power cut does (a kill -9 on loopback answers with ICMP and RST
    instead). The others are polled: is any live member called dead while a dead one is in
    the table? Then the frozen agents are thawed and must be taken back."""
    out: dict[str, dict[str, Any]] = {}
    frozen = len(observers[0].system.names) - 1
    others = list(range(frozen))
    for ob in observers:
        ob.false_pairs.clear()
        ob.unanswered = 0
        ob.mark_logs()
        os.kill(ob.system.pid(frozen), signal.SIGSTOP)
    t0 = time.monotonic()
    k = 0
    try:
        while time.monotonic() - t0 < seconds:
            for ob in observers:
                ob.poll(others, {ob.system.names[frozen]})
            k += 1
            time.sleep(max(0.0, t0 + k * POLL_EVERY_S - time.monotonic()))
    finally:
        for ob in observers:
            os.kill(ob.system.pid(frozen), signal.SIGCONT)
    for ob in observers:
        name = ob.system.names[frozen]
        out[type(ob.system).__name__] = {
            "false_pairs": len(ob.false_pairs),
            "false_logged": sum(m != name for m in ob.logged_deaths()),
            "frozen_deaths_logged": sum(m == name for m in ob.logged_deaths()),
            "false_lines": ob.dead_lines({name}),
            "refutations": ob.logged_refutations(),
            "unanswered": ob.unanswered,
        }
    wait_whole(observers, 180)
    return out


def kill_round(
    observers: list[Observer], victim: int, timeout_s: float, freeze: bool = False
) -> dict[str, float]:
    """Kill `victim` in every system at once (kill -9; `freeze`: SIGSTOP, a host gone without
    a word); seconds until each system's survivors all say dead. Then the victims come back:
    restarted, or thawed (they find themselves declared dead and refute)."""
    n = len(observers[0].system.names)
    survivors = [i for i in range(n) if i != victim]
    first_dead: list[dict[int, float]] = [{} for _ in observers]
    t0 = time.monotonic()
    for ob in observers:
        if freeze:
            os.kill(ob.system.pid(victim), signal.SIGSTOP)
        else:
            ob.system.kill9(victim)
    detect: dict[str, float] = {}
    while len(detect) < len(observers) and time.monotonic() - t0 < timeout_s:
        for k, ob in enumerate(observers):
            name = type(ob.system).__name__
            if name in detect:
                continue
            victim_name = ob.system.names[victim]
            for i, (at, view) in ob.poll(survivors, {victim_name}).items():
                if view.get(victim_name) == ob.system.dead_word:
                    first_dead[k].setdefault(i, at - t0)
            if len(first_dead[k]) == len(survivors):
                detect[name] = max(first_dead[k].values())
        time.sleep(0.05)
    for ob in observers:
        detect.setdefault(type(ob.system).__name__, float("nan"))  # not seen within the timeout
        if freeze:
            os.kill(ob.system.pid(victim), signal.SIGCONT)
        else:
            ob.system.restart(victim)
    return detect


def victim_rounds(
    observers: list[Observer], args: argparse.Namespace, level: int, freeze: bool
) -> dict[str, Any]:
    """`args.rounds` (or `args.freeze_rounds`) kills or freezes, each victim back and both
    clusters whole before the next: detection times, and any other member called dead."""
    rounds = args.freeze_rounds if freeze else args.rounds
    for ob in observers:
        ob.false_pairs.clear()
        ob.unanswered = 0
        ob.mark_logs()
    detect: dict[str, list[float]] = {"ShoalCluster": [], "SerfCluster": []}
    victims: set[str] = set()
    for r in range(rounds):
        victim = 1 + (r + level * rounds) % (args.agents - 1)
        victims |= {ob.system.names[victim] for ob in observers}
        for name, s in kill_round(observers, victim, 60, freeze).items():
            detect[name].append(s)
        wait_whole(observers, 180)
        time.sleep(3)
    out: dict[str, Any] = {"detect": detect}
    for o in observers:
        key = type(o.system).__name__
        logged = o.logged_deaths()
        out[key] = {
            "false_pairs": len(o.false_pairs),
            "false_logged": sum(m not in victims for m in logged),
            # evidence the log count works: (agents - 1) x rounds when all is well
            "victim_deaths_logged": sum(m in victims for m in logged),
            "false_lines": o.dead_lines(victims),
            "unanswered": o.unanswered,
        }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    if not shutil.which("serf"):
        sys.exit("serf is not installed: apt-get install serf")
    tag = uuid.uuid4().hex[:8]
    results: dict[str, Any] = {"args": vars(args)}
    with contextlib.ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="shoal-loss-")))
        ns = stack.enter_context(lossy_namespace(f"shoal-loss-b{tag}"))
        (base / "serf").mkdir()
        (base / "shoal").mkdir()
        serf = SerfCluster(ns, base / "serf", args.agents)
        stack.callback(serf.stop)
        shoal = ShoalCluster(ns, base / "shoal", args.agents)
        stack.callback(shoal.stop)
        ns.exempt(serf.api_ports() + shoal.api_ports())
        observers = [Observer(shoal), Observer(serf)]
        stack.enter_context(inside(ns.name))
        wait_whole(observers, 120)
        levels: list[dict[str, Any]] = []
        for loss in args.losses:
            ns.set_drop(loss)
            dropped0 = ns.dropped_packets()
            time.sleep(5)
            row: dict[str, Any] = {"loss": loss}
            row["quiet"] = quiet_interval(observers, args.idle, args.quiet)
            if args.frozen > 0:
                row["frozen"] = frozen_interval(observers, args.frozen)
            kills = victim_rounds(observers, args, len(levels), freeze=False)
            row["detect"] = kills.pop("detect")
            row["kill"] = kills
            if args.freeze_rounds > 0:
                freezes = victim_rounds(observers, args, len(levels), freeze=True)
                row["freeze_detect"] = freezes.pop("detect")
                row["freeze"] = freezes
            row["dropped_packets"] = ns.dropped_packets() - dropped0
            levels.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        results["levels"] = levels
    return results


def fmt(xs: list[float]) -> str:
    ok = [x for x in xs if x == x]
    missed = len(xs) - len(ok)
    text = f"{statistics.median(ok):.2f} / {max(ok):.2f} s" if ok else "-"
    return text + (f" ({missed} not seen)" if missed else "")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--losses", type=float, nargs="+", default=[0.0, 0.1, 0.2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=float, default=20.0, help="unpolled seconds per level")
    parser.add_argument("--quiet", type=float, default=60.0, help="polled seconds per level")
    parser.add_argument(
        "--frozen", type=float, default=0.0, help="seconds per level with one agent SIGSTOPped"
    )
    parser.add_argument(
        "--freeze-rounds",
        type=int,
        default=0,
        help="per level, rounds where the victim is SIGSTOPped (no RST: a lost host) instead",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run(args)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"\n{args.agents} agents per system in one netns, kill -9 x{args.rounds} per level,"
        f" idle {args.idle:.0f} s then quiet {args.quiet:.0f} s (polled) per level"
    )
    print(
        "| loss | system | kill -9 until every survivor says dead: median / max"
        " | false deaths, quiet (polled pairs / logged) | false deaths during kills"
        " | refutations, quiet | CPU per agent, idle / polled 2x/s |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    labels = {"ShoalCluster": "shoal", "SerfCluster": "serf"}
    for row in results["levels"]:
        for key, label in labels.items():
            q = row["quiet"][key]
            print(
                f"| {row['loss']:.0%} | {label} | {fmt(row['detect'][key])}"
                f" | {q['false_pairs']} / {q['false_logged']}"
                f" | {row['kill'][key]['false_pairs']} / {row['kill'][key]['false_logged']}"
                f" | {q['refutations']} | {q['idle_cpu_pct']:.2f} / {q['cpu_pct']:.2f} % |"
            )
    if args.freeze_rounds:
        print(
            f"\nSIGSTOP x{args.freeze_rounds} per level (a host gone without a word: no RST)\n"
            "| loss | system | frozen until every survivor says dead: median / max"
            " | false deaths (polled pairs / logged) |"
        )
        print("|---:|---|---:|---:|")
        for row in results["levels"]:
            for key, label in labels.items():
                f = row["freeze"][key]
                print(
                    f"| {row['loss']:.0%} | {label} | {fmt(row['freeze_detect'][key])}"
                    f" | {f['false_pairs']} / {f['false_logged']} |"
                )
    for row in results["levels"]:
        evidence = ", ".join(
            f"{labels[k]} {v['victim_deaths_logged']} victim deaths logged,"
            f" {v['unanswered'] + row['quiet'][k]['unanswered']} polls unanswered"
            for k, v in row["kill"].items()
        )
        print(f"{row['loss']:.0%}: {row['dropped_packets']} packets dropped; {evidence}")
    for row in results["levels"]:
        for key, f in row.get("frozen", {}).items():
            print(
                f"{row['loss']:.0%}, one agent frozen {args.frozen:.0f} s: {labels[key]}"
                f" false deaths {f['false_pairs']} polled pairs / {f['false_logged']} logged,"
                f" {f['refutations']} refutations, frozen agent's deaths logged"
                f" {f['frozen_deaths_logged']}"
            )


if __name__ == "__main__":
    main()
