"""`shoal logs P [--servo ID] [--follow] [--tail N]` and `shoal events [--follow]` as a user runs
them (the real CLI, as a process) against real agents (in this Trio run, fake runtime, behind
an API token): lines come from whichever hosts run the project, through the agent asked."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from node.cluster import servos_of
from node.context import AgentContext
from node.host import container_name
from node.projects import Project
from tests.integration.inproc import InProcCluster, all_see_alive, make_key, wait_for

TOKEN = "logs-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@attrs.define
class Fleet:
    front: AgentContext  # the agent the CLI talks to
    hosts: dict[str, AgentContext]
    servos: dict[str, str]  # servo id -> node

    def write(self, servo: str, text: str) -> None:
        node = self.servos[servo]
        self.hosts[node].host.runtime.write_log(container_name(node, servo), text)

    def cli(self, *args: str) -> list[str]:
        api = f"http://127.0.0.1:{self.front.config.api_port}"
        return [sys.executable, "-m", "api.cli", *args, "--api", api, "--token", TOKEN]


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        a0 = await cluster.add("l0", region="eu", api_token=TOKEN)
        a1 = await cluster.add("l1", region="us", join=["l0"], api_token=TOKEN)
        await all_see_alive(cluster, 2)
        await a0.projects.deploy(Project("web", "shoal-servo:latest", 2, 64, 100))
        await wait_for(
            "both servos in the front's view", lambda: len(servos_of("web", a0.peers())) == 2
        )
        servos = {s.servo_id: s.node for s in servos_of("web", a0.peers())}
        assert len(set(servos.values())) == 2  # one on each host: two hosts to gather from
        yield Fleet(a0, {a0.name: a0, a1.name: a1}, servos)
        nursery.cancel_scope.cancel()


class Lines:
    """A CLI process's stdout, line by line."""

    def __init__(self, proc: trio.Process) -> None:
        assert proc.stdout is not None
        self.proc, self.stdout, self.buffer = proc, proc.stdout, b""

    async def next(self, timeout_s: float = 20) -> str:
        with trio.fail_after(timeout_s):
            while b"\n" not in self.buffer:
                data = await self.stdout.receive_some(65536)
                if not data:
                    raise AssertionError(f"the CLI ended; it said: {self.buffer!r}")
                self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()

    async def until(self, wanted: set[str], timeout_s: float = 20) -> list[str]:
        """Lines until each of `wanted` has been seen in one of them."""
        seen: list[str] = []
        while not all(any(w in line for line in seen) for w in wanted):
            seen.append(await self.next(timeout_s))
        return seen


async def test_logs_gathers_every_host_and_one_servo(fleet: Fleet) -> None:
    one, two = sorted(fleet.servos)
    fleet.write(one, "first line\nsecond line")
    fleet.write(two, "other host line")
    done = await trio.run_process(fleet.cli("logs", "web", "--tail", "1"), capture_stdout=True)
    out = done.stdout.decode()
    assert f"==> {one} on {fleet.servos[one]} (running) <==" in out
    assert f"==> {two} on {fleet.servos[two]} (running) <==" in out
    assert "second line" in out and "other host line" in out
    assert "first line" not in out  # --tail 1

    only = await trio.run_process(
        fleet.cli("logs", "web", "--servo", two, "--json"), capture_stdout=True
    )
    body = json.loads(only.stdout)
    assert [s["servo"] for s in body["servos"]] == [two]
    assert body["servos"][0]["logs"] == "other host line"


async def test_logs_follow_streams_new_lines_from_every_host(fleet: Fleet) -> None:
    one, two = sorted(fleet.servos)
    fleet.write(one, "old one\nlast one")
    fleet.write(two, "last two")
    proc = await trio.lowlevel.open_process(
        fleet.cli("logs", "web", "--follow", "--tail", "1"), stdout=subprocess.PIPE
    )
    try:
        lines = Lines(proc)
        first = await lines.until({f"{one} | last one", f"{two} | last two"})
        assert not any("old one" in line for line in first)
        fleet.write(two, "new two")
        fleet.write(one, "new one")
        assert len(await lines.until({f"{one} | new one", f"{two} | new two"})) == 2
        proc.send_signal(signal.SIGINT)  # Ctrl-C ends a follow, status 0
        with trio.fail_after(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_events_lists_and_follows(fleet: Fleet) -> None:
    done = await trio.run_process(fleet.cli("events", "--json"), capture_stdout=True)
    kinds = [e["kind"] for e in json.loads(done.stdout)]
    assert "project.created" in kinds and "servo.created" in kinds
    assert all(
        e["project"] == "web" for e in json.loads(done.stdout) if e["kind"] == "servo.created"
    )

    proc = await trio.lowlevel.open_process(
        fleet.cli("events", "--follow", "--limit", "1"), stdout=subprocess.PIPE
    )
    try:
        lines = Lines(proc)
        await lines.next()  # the most recent event first, as without --follow
        fleet.front.events.emit("member.dead", "l9 is dead (was suspect)", node="l9")
        assert any(
            "member.dead" in line and "l9 is dead" in line for line in await lines.until({"l9"})
        )
        proc.send_signal(signal.SIGINT)
        with trio.fail_after(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_bad_log_requests_get_json_errors(fleet: Fleet) -> None:
    base = f"http://127.0.0.1:{fleet.front.config.api_port}/v1/projects"
    async with httpx.AsyncClient(timeout=10) as http:
        cases = [
            (f"{base}/nope/logs/stream", AUTH, 404, "not_found"),
            (f"{base}/web/logs/stream?servo=web-9-9-x", AUTH, 404, "not_found"),
            (f"{base}/web/logs/stream?since=yesterday", AUTH, 422, "invalid_request"),
            (f"{base}/web/logs/stream?tail=0", AUTH, 422, "invalid_request"),
            (f"{base}/web/logs/stream", {}, 401, "unauthorized"),
        ]
        for url, headers, status, error in cases:
            resp = await http.get(url, headers=headers)
            assert (resp.status_code, resp.json()["error"]) == (status, error), url
    done = await trio.run_process(
        fleet.cli("logs", "nope", "--follow"), capture_stderr=True, check=False
    )
    assert done.returncode == 1
    assert b"not_found" in done.stderr
