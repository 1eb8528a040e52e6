"""Issue 13 against a live agent (fake runtime, the real Hypercorn server): auth, limits,
input validation and idempotency, each finding of the issue reproduced and now refused."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import api.errors
import api.server
from node.context import AgentContext
from node.secret_box import SecretBox
from tests.integration.inproc import InProcCluster, all_see_alive, make_key, wait_for
from tests.integration.test_events_api import RawStream

TOKEN = "write-token-1"
READ = "read-token-1"
SPEC = {"image": "shoal-servo:latest", "replicas": 1, "memory": "64M", "cpus": 0.1}


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[AgentContext]:
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        ctx = await cluster.add("h1", api_token=TOKEN, api_read_token=READ)
        yield ctx
        nursery.cancel_scope.cancel()


def client(ctx: AgentContext, token: str | None = TOKEN) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=ctx.api_url, headers=headers, timeout=20)


async def test_token_guards_reads_and_writes(agent: AgentContext) -> None:
    async with client(agent) as admin, client(agent, None) as anon, client(agent, READ) as ro:
        assert (await admin.put("/v1/projects/web", json=SPEC)).status_code == 200
        for path in ("/v1/projects/web", "/v1/projects", "/metrics", "/openapi.json", "/docs"):
            r = await anon.get(path)
            assert r.status_code == 401, path
            assert r.json()["error"] == "unauthorized"
            assert (await ro.get(path)).status_code == 200, path
        assert (await anon.get("/v1/health")).status_code == 200
        r = await ro.post("/v1/projects/web/stop")
        assert (r.status_code, r.json()["error"]) == (403, "read_only_token")
        # an EventSource or a page load: the token as a cookie or a query parameter
        assert (await anon.get("/v1/projects/web", params={"token": READ})).status_code == 200
        anon.cookies.set("shoal_token", TOKEN)
        assert (await anon.get("/v1/projects/web")).status_code == 200
        assert (await anon.post("/v1/projects/web/stop")).status_code == 401  # never for writes


async def test_csrf_and_dns_rebinding_are_refused(agent: AgentContext) -> None:
    async with client(agent) as admin:
        assert (await admin.put("/v1/projects/web", json=SPEC)).status_code == 200
        # the request: a form on evil.example posting text/plain
        r = await admin.post(
            "/v1/projects/web/stop",
            headers={"Origin": "http://evil.example", "Content-Type": "text/plain"},
            content=b"x",
        )
        assert (r.status_code, r.json()["error"]) == (403, "forbidden_origin")
        r = await admin.post(
            "/v1/projects/web/scale", headers={"Content-Type": "text/plain"}, content=b"{}"
        )
        assert (r.status_code, r.json()["error"]) == (415, "unsupported_media_type")
        r = await admin.get("/v1/projects/web", headers={"Host": "evil.example"})
        assert (r.status_code, r.json()["error"]) == (400, "bad_host")
        assert not agent.registry.get("web").project.stopped  # type: ignore[union-attr]


async def test_a_trickled_body_is_cut_off(
    agent: AgentContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # finding: clients trickling a PUT body kept their connections as long as they liked
    monkeypatch.setattr(api.errors, "BODY_DEADLINE_S", 1.0)
    host, port = agent.api_url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    head = (
        f"PUT /v1/projects/slow HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    await stream.send_all(head.encode())
    answer = b""
    with trio.fail_after(8):
        for _ in range(20):
            try:
                await stream.send_all(b" ")
            except trio.BrokenResourceError:
                break
            with trio.move_on_after(0.3):
                answer += await stream.receive_some(4096)
            if b"}" in answer:
                break
    await stream.aclose()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"body_timeout" in answer


async def test_connections_beyond_the_cap_wait_in_the_backlog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api.server, "MAX_CONNECTIONS", 3)
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        ctx = await cluster.add("h1")
        host, port = ctx.api_url.removeprefix("http://").split(":")
        idle = [await trio.open_tcp_stream(host, int(port)) for _ in range(3)]
        async with httpx.AsyncClient(base_url=ctx.api_url, timeout=1.0) as c:
            with pytest.raises(httpx.TimeoutException):
                await c.get("/v1/health")  # accepted only when a slot frees
            await idle[0].aclose()
            with trio.fail_after(5):
                while True:  # the server notices the close at its next read
                    try:
                        r = await c.get("/v1/health")
                        break
                    except httpx.TimeoutException:
                        continue
            assert r.status_code == 200
        for s in idle[1:]:
            await s.aclose()
        nursery.cancel_scope.cancel()


async def test_open_api_beyond_loopback_warns_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="api.server")
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        await cluster.add("h1", bind="0.0.0.0", api_bind="0.0.0.0", advertise="127.0.0.1")
        nursery.cancel_scope.cancel()
    assert any(r.getMessage() == "api.UNPROTECTED" for r in caplog.records)


async def test_bad_input_gets_4xx_never_500(agent: AgentContext) -> None:
    # the list, each once a 500 or stored garbage
    async with client(agent) as c:
        for change in (
            {"memory": "9" * 400},
            {"memory": "9" * 30 + "T"},
            {"cpus": "inf"},
            {"memory": 10**19},
            {"image": "x\n\x00y"},
        ):
            r = await c.put("/v1/projects/web", json={**SPEC, **change})
            assert r.status_code == 422, (change, r.text)
            assert r.json()["error"] == "invalid_request"
        # more than the largest host (4 GiB) has: valid, but the cluster can never run it
        r = await c.put("/v1/projects/web", json={**SPEC, "memory": "100G"})
        assert (r.status_code, r.json()["error"]) == (409, "larger_than_any_host")
        r = await c.put("/v1/projects/abc%0A", json=SPEC)
        assert r.status_code == 422, r.text
        assert agent.registry.live() == []
        r = await c.post("/v1/projects/abc%0A/stop")
        assert r.status_code == 422
        r = await c.delete("/v1/projects/abc%0A")
        assert r.status_code == 422


async def test_pushed_invalid_or_future_entries_are_never_merged(agent: AgentContext) -> None:
    async with client(agent) as c:
        assert (await c.put("/v1/projects/web", json=SPEC)).status_code == 200
        entry = agent.registry.get("web")
        assert entry is not None and entry.project is not None
        good = entry.to_wire()
        bad_spec = {**good["spec"], "replicas": 10**9, "memory": -1}
        ts = [good["ts"][0] + 1, 0, "forger"]
        assert agent.specs.merge([{**good, "ts": ts, "spec": bad_spec}], sender="x") == 0
        future = [2**63, 0, "forger"]  # once made every later PUT fail
        assert agent.specs.merge([{**good, "ts": future}], sender="x") == 0
        assert agent.registry.get("web") == entry
        r = await c.put("/v1/projects/web", json={**SPEC, "replicas": 2})
        assert r.status_code == 200, r.text
        assert agent.registry.get("web").project.replicas == 2  # type: ignore[union-attr]


async def test_one_bad_project_never_stops_planning_for_the_others(
    agent: AgentContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client(agent) as c:
        for name in ("aaa", "zzz"):
            assert (await c.put(f"/v1/projects/{name}", json=SPEC)).status_code == 200
    real_plan = agent.executor.plan

    def plan(project: Any, peers: Any) -> Any:
        if project.name == "aaa":
            raise RuntimeError("a bug that only this project's spec triggers")
        return real_plan(project, peers)

    monkeypatch.setattr(agent.executor, "plan", plan)
    # zzz's servo is lost: only the owner round brings it back
    (servo,) = [r for r in agent.host.servo_records() if r["project"] == "zzz"]
    await agent.host.destroy_servo(str(servo["id"]))
    # every round meets "aaa" first (projects go in name order); before, its exception ended
    # the round, so "zzz" was never brought back
    await agent.recovery.owner_round()
    await wait_for(
        "zzz's servo back",
        lambda: any(r["project"] == "zzz" for r in agent.host.servo_records()),
        timeout_s=10,
    )


async def test_idempotency_key_over_http(
    agent: AgentContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploys = 0
    real = agent.projects.deploy

    async def slow_deploy(project: Any) -> Any:
        nonlocal deploys
        deploys += 1
        await trio.sleep(0.5)
        return await real(project)

    monkeypatch.setattr(agent.projects, "deploy", slow_deploy)
    answers: list[httpx.Response] = []
    async with client(agent) as c:

        async def put() -> None:
            headers = {"Idempotency-Key": "deploy-1"}
            answers.append(await c.put("/v1/projects/web", json=SPEC, headers=headers))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(put)
            nursery.start_soon(put)
        assert deploys == 1
        assert [a.status_code for a in answers] == [200, 200]
        assert sorted(a.headers.get("Idempotent-Replay", "") for a in answers) == ["", "true"]
        r = await c.put(
            "/v1/projects/web",
            json={**SPEC, "replicas": 2},
            headers={"Idempotency-Key": "deploy-1"},
        )
        assert (r.status_code, r.json()["error"]) == (422, "idempotency_key_reused")
        assert deploys == 1


async def test_secrets_are_never_shown_stored_or_sent_in_clear(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    value = "s3cr3t-" + tmp_path.name  # unique: found anywhere means leaked
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        a = await cluster.add("h1", api_token=TOKEN)
        b = await cluster.add("h2", api_token=TOKEN, join=["h1"])
        await all_see_alive(cluster, 2)
        spec = {**SPEC, "replicas": 2, "max_per_host": 1, "secrets": {"DB_PASSWORD": value}}
        async with client(a) as ca, client(b) as cb:
            r = await ca.put("/v1/projects/web", json=spec)
            assert r.status_code == 200, r.text
            await wait_for("b has the spec", lambda: b.registry.get("web") is not None)
            answers = [
                r,
                await cb.get("/v1/projects/web"),
                await cb.get("/v1/projects"),
                await cb.get("/v1/projects/web/history"),
                await ca.get("/v1/projects/web/history"),
            ]
            for answer in answers:
                assert answer.status_code == 200
                assert value not in answer.text
            assert (await cb.get("/v1/projects/web")).json()["spec"]["secrets"] == ["DB_PASSWORD"]
            # the servo on each host got the box, and only the box
            for ctx in (a, b):
                (record,) = [s for s in ctx.host.list_servos() if s.project == "web"]
                assert record.spec.secrets and value not in record.spec.secrets
                opened = SecretBox(ctx.keys).open("web", record.spec.secrets)
                assert opened == {"DB_PASSWORD": value}
        nursery.cancel_scope.cancel()
    # at rest: no file of either agent holds the value (registry, host store, WAL, journal)
    assert _files_holding(tmp_path, value.encode()) == []
    assert all(value not in r.getMessage() + str(r.__dict__) for r in caplog.records)


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_silence_cuts_a_request_still_arriving_never_an_answer_under_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hypercorn's read timeout also fired while an answer was under way (a slow deploy, every
    event stream): only the keep-alive timer, which runs until a request's headers are in,
    and the body deadline may end a connection."""
    monkeypatch.setattr(api.server, "KEEP_ALIVE_S", 1.0)
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        ctx = await cluster.add("h1", api_token=TOKEN)
        assert api.server.hypercorn_config(ctx).read_timeout is None
        host, port = ctx.api_url.removeprefix("http://").split(":")
        trickler = await trio.open_tcp_stream(host, int(port))
        await trickler.send_all(f"GET /v1/health HTTP/1.1\r\nHost: {host}\r\n".encode())
        with trio.fail_after(5):
            assert await trickler.receive_some(4096) == b""  # closed after the keep-alive
        await trickler.aclose()
        raw = await RawStream.open(
            ctx.config.api_port, "/v1/events/stream", {"Authorization": f"Bearer {TOKEN}"}
        )
        assert raw.status == 200
        await trio.sleep(2.5)  # silent client, nothing new: the stream stays open
        async with client(ctx) as c:
            assert (await c.put("/v1/projects/late", json=SPEC)).status_code == 200
        with trio.fail_after(10):
            while "late" not in await raw.line():
                pass
        await raw.aclose()
        await wait_for("the stream to end", lambda: ctx.events.subscribers == 0, 10)
        nursery.cancel_scope.cancel()
