"""Joining across machines with nothing but the command the first agent prints.

Three network namespaces stand for three machines (own address, own loopback, own hostname via
a UTS namespace, own working directory). The first agent runs with defaults; every later one is
started with exactly the `shoal agent ...` line parsed from the first agent's log: no key file
copied, no address typed. They must form a cluster, advertise their LAN addresses (never
0.0.0.0 or 127.0.0.1), keep the public API on loopback, and run a deploy across all three
(which needs each agent's /internal/ routes reachable at its advertised address).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RUN_ID
from tests.integration.agents import wait_until
from tests.integration.netns import Host, hosts

pytestmark = [pytest.mark.netns, pytest.mark.slow]

BIN = Path(sys.executable).parent
JOIN_LINE = re.compile(r'agent\.join_command command="((?:[^"\\]|\\.)*)"')


class Machine:
    """One namespace as a host: runs commands there, with its own hostname and directory."""

    def __init__(self, host: Host, hostname: str, home: Path) -> None:
        self.host, self.hostname, self.home = host, hostname, home
        home.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log = home / "agent.log"

    def prefix(self) -> list[str]:
        set_name = 'hostname "$0" && exec "$@"'
        return [*self.host.exec_prefix(), "unshare", "--uts", "sh", "-c", set_name, self.hostname]

    def env(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}

    def start(self, argv: list[str]) -> None:
        with open(self.log, "ab") as log:
            self.procs.append(
                subprocess.Popen(
                    [*self.prefix(), *argv],
                    cwd=self.home,
                    env=self.env(),
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            )

    def shoal(self, *args: str) -> Any:
        """A client command on this machine, against its own agent's loopback API."""
        proc = subprocess.run(
            [*self.host.exec_prefix(), str(BIN / "shoal"), *args, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env(),
        )
        if proc.returncode != 0:
            raise ValueError(proc.stderr.strip() or proc.stdout.strip())
        return json.loads(proc.stdout)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture
def machines(tmp_path: Path) -> Iterator[list[Machine]]:
    if os.geteuid() != 0:
        pytest.fail("network namespace tests need root")
    with hosts(3, subnet="10.231.79") as hs:
        made = [Machine(h, f"{RUN_ID}-m{i}", tmp_path / f"m{i}") for i, h in enumerate(hs)]
        try:
            yield made
        finally:
            for m in made:
                m.stop()


def printed_join_command(machine: Machine) -> str:
    match = JOIN_LINE.search(machine.log.read_text(errors="replace"))
    if not match:
        return ""
    return match.group(1).replace('\\"', '"').replace("\\\\", "\\")


def test_later_agents_join_with_only_the_printed_command(machines: list[Machine]) -> None:
    first = machines[0]
    first.start(["shoal", "agent", "--runtime", "fake", "--region", "eu"])
    command = wait_until("the first agent's join command", lambda: printed_join_command(first))
    argv = shlex.split(command)
    assert argv[:2] == ["shoal", "agent"] and "--join-token" in argv
    assert argv[argv.index("--runtime") + 1] == "fake"
    for m in machines[1:]:
        m.start(argv)

    names = {m.hostname for m in machines}

    def all_alive() -> bool:
        return all(
            {x["name"] for x in m.shoal("members") if x["status"] == "alive"} == names
            for m in machines
        )

    try:
        wait_until("three agents alive everywhere", all_alive, timeout_s=60)
    except AssertionError:
        print("\n".join(f"== {m.hostname}\n{m.log.read_text()[-3000:]}" for m in machines))
        raise

    members = {x["name"]: x for x in first.shoal("members")}
    for m in machines:
        assert members[m.hostname]["addr"] == f"{m.host.addr}:7946"
        assert members[m.hostname]["api"] == f"http://{m.host.addr}:7070"
        # the public API stayed on the machine's loopback: its LAN socket is agent-to-agent only
        r = httpx.get(f"http://{m.host.addr}:7070/v1/projects", timeout=10)
        assert r.status_code == 404 and "agent-to-agent" in r.json()["detail"]

    spec = ["--image", "shoal-servo:latest", "--replicas", "3", "--memory", "64M"]
    machines[1].shoal("deploy", "web", *spec, "--cpus", "0.1", "--spread", "host")

    def spread_over_all() -> bool:
        p = first.shoal("status", "web")
        return {s["node"] for s in p["servos"] if s["state"] == "running"} == names

    wait_until("the deploy's servos on all three machines", spread_over_all, timeout_s=60)
