"""`GET /v1/events`, `GET /v1/events/stream` (SSE) and the page at `/`, on a real agent (the
whole `run_agent` in this Trio run, fake runtime) behind an API token."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio

from node.context import AgentContext
from node.projects import Project
from placement.converge import UpdatePolicy
from tests.integration.inproc import InProcCluster, make_key, wait_for

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[AgentContext]:
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        ctx = await cluster.add("e0", api_token=TOKEN)
        yield ctx
        nursery.cancel_scope.cancel()


def url(ctx: AgentContext, path: str) -> str:
    return f"http://127.0.0.1:{ctx.config.api_port}{path}"


class RawStream:
    """A bare HTTP/1.1 GET over a Trio socket, read line by line: the test holds the stream
    open and closes the socket itself, as a browser tab that goes away does (httpx's nested
    response generators outlive an early exit and trip the unraisable-warning check)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""
        self.status = 0
        self.headers: dict[str, str] = {}

    @classmethod
    async def open(cls, port: int, path: str, headers: dict[str, str]) -> RawStream:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n"
        await stream.send_all(request.encode())
        raw = cls(stream)
        status_line = await raw.line()
        raw.status = int(status_line.split()[1])
        while header := await raw.line():
            key, _, value = header.partition(":")
            raw.headers[key.strip().lower()] = value.strip()
        return raw

    async def line(self) -> str:
        while b"\n" not in self.buffer:
            with trio.fail_after(10):
                data = await self.stream.receive_some(65536)
            if not data:
                raise AssertionError("the stream ended")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode().rstrip("\r")

    async def messages(self, n: int) -> list[dict[str, Any]]:
        """The next `n` SSE messages (chunked framing lines are skipped: they are not `id:` or
        `data:` lines, and SSE's own blank line ends a message)."""
        out: list[dict[str, Any]] = []
        current: dict[str, Any] = {}
        while len(out) < n:
            line = await self.line()
            if line.startswith("id: "):
                current["id"] = int(line[4:])
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line == "" and "data" in current:
                out.append(current)
                current = {}
        return out

    async def aclose(self) -> None:
        await self.stream.aclose()


async def test_recent_events_need_the_token_and_filter_by_id_and_kind(agent: AgentContext) -> None:
    first = agent.events.emit("member.dead", "b1 is dead", node="b1")
    agent.events.emit("servo.moved", "web moved", servo="s2", project="web")
    agent.events.emit("servo.created", "web created", servo="s3", project="web")
    async with httpx.AsyncClient(timeout=10) as http:
        refused = await http.get(url(agent, "/v1/events"))
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthorized"

        everything = (await http.get(url(agent, "/v1/events"), headers=AUTH)).json()
        ours = [e for e in everything if e["id"] >= first.id]
        assert [e["kind"] for e in ours] == ["member.dead", "servo.moved", "servo.created"]
        assert ours[0]["node"] == "b1" and ours[0]["text"] == "b1 is dead"
        assert ours[0]["at"].endswith("Z")

        after = await http.get(url(agent, f"/v1/events?since={first.id}"), headers=AUTH)
        assert [e["kind"] for e in after.json()] == ["servo.moved", "servo.created"]
        servo_only = await http.get(url(agent, "/v1/events?kind=servo&limit=1"), headers=AUTH)
        assert [e["kind"] for e in servo_only.json()] == ["servo.created"]

        bad = await http.get(url(agent, "/v1/events?since=minus-one"), headers=AUTH)
        assert bad.status_code == 422
        assert bad.json()["error"] == "invalid_request"
        assert "since" in bad.json()["detail"]


async def test_the_stream_sends_new_events_resumes_and_lets_go_on_disconnect(
    agent: AgentContext,
) -> None:
    port = agent.config.api_port
    before = agent.events.emit("member.joined", "x joined", node="x")
    # the token as a query parameter, as an EventSource sends it
    raw = await RawStream.open(port, f"/v1/events/stream?token={TOKEN}", {})
    assert raw.status == 200
    assert raw.headers["content-type"].startswith("text/event-stream")
    await wait_for("the stream to subscribe", lambda: agent.events.subscribers == 1)
    live = agent.events.emit("servo.failed", "web: servo s1 failed", servo="s1")
    (message,) = await raw.messages(1)
    assert message["id"] == live.id
    assert message["data"]["kind"] == "servo.failed"
    assert message["data"]["servo"] == "s1"
    await raw.aclose()
    # the client went away: its subscription must not stay behind
    await wait_for("the subscription to end", lambda: agent.events.subscribers == 0, 10)

    # a reconnecting EventSource sends Last-Event-ID: it gets what it missed, in order
    missed = agent.events.emit("member.dead", "x is dead", node="x")
    raw = await RawStream.open(port, "/v1/events/stream", {**AUTH, "Last-Event-ID": str(before.id)})
    got = await raw.messages(2)
    await raw.aclose()
    assert [m["id"] for m in got] == [live.id, missed.id]

    async with httpx.AsyncClient(timeout=10) as http:
        refused = await http.get(url(agent, "/v1/events/stream"))
        assert refused.status_code == 401
        bad = await http.get(
            url(agent, "/v1/events/stream"), headers={**AUTH, "Last-Event-ID": "abc"}
        )
        assert bad.status_code == 422
        assert bad.json()["error"] == "invalid_request"


async def test_a_deploy_shows_as_events(agent: AgentContext) -> None:
    start = agent.events.last_id
    await agent.projects.deploy(Project("web", "shoal-servo:latest", 1, 64, 100))

    def kinds() -> list[str]:
        return [e.kind for e in agent.events.since(start)]

    await wait_for("the deploy's events", lambda: "servo.created" in kinds(), 10)
    assert kinds()[0] == "project.created"
    assert all(e.fields.get("project") == "web" for e in agent.events.since(start))


async def test_the_page_is_served_without_the_token_and_its_data_is_not(
    agent: AgentContext,
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        page = await http.get(url(agent, "/"))
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert '<script src="/ui/app.js"' in page.text
        script = await http.get(url(agent, "/ui/app.js"))
        assert script.status_code == 200
        assert "EventSource" in script.text
        assert (await http.get(url(agent, "/ui/style.css"))).status_code == 200
        missing = await http.get(url(agent, "/ui/secrets.txt"), headers=AUTH)
        assert missing.status_code == 404
        assert missing.json()["error"] == "not_found"
        assert (await http.get(url(agent, "/v1/members"))).status_code == 401


async def test_a_rolling_update_shows_as_rollout_events(agent: AgentContext) -> None:
    quick = UpdatePolicy(healthy_for_s=0.5)
    web = Project("web", "shoal-servo:latest", 1, 64, 100, update=quick)
    await agent.projects.deploy(web)
    start = agent.events.last_id
    await agent.projects.deploy(attrs.evolve(web, env=(("V", "2"),)))

    def kinds() -> list[str]:
        return [e.kind for e in agent.events.since(start)]

    await wait_for("the rollout to end", lambda: "rollout.succeeded" in kinds(), 30)
    rollout = [e for e in agent.events.since(start) if e.kind.startswith("rollout.")]
    assert rollout[0].kind == "rollout.started"
    assert rollout[-1].kind == "rollout.succeeded"
    assert {e.fields["generation"] for e in rollout} == {2}
    # the new generation's servo came, the old one went (its host is up: removed, not lost)

    def servo_events() -> set[tuple[str, str]]:
        found = [e for e in agent.events.since(start) if "servo" in e.fields]
        return {(e.kind, str(e.fields["servo"]).split("-")[1]) for e in found}

    await wait_for("the old servo's removal", lambda: ("servo.removed", "1") in servo_events())
    assert ("servo.created", "2") in servo_events()
