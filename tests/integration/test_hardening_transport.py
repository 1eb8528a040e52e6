"""Issue 13, point 3, against real in-process agents (HTTP on loopback, Hypercorn):
agent-to-agent requests are sealed for one destination, used once, and encrypted both ways."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from node.context import AgentContext
from node.internal_auth import HEADER, SEALED_TYPE, seal_request
from node.membership import wall_ms
from node.peers import PeerClient, PeerRefused
from tests.integration.inproc import InProcCluster, make_key

SECRET = "hunter2-do-not-leak"


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[AgentContext, AgentContext]]:
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        a = await cluster.add("a")
        b = await cluster.add("b", join=["a"])
        yield a, b
        nursery.cancel_scope.cancel()


async def test_a_captured_drain_replays_neither_to_another_agent_nor_to_its_own(
    pair: tuple[AgentContext, AgentContext],
) -> None:
    """The issue's repro: a signed POST /internal/drain for A, replayed to B 20 s later, drained
    B. Now it opens on A once; B refuses it (not sealed for B), A refuses it again (replayed)."""
    a, b = pair
    header, _nonce, sealed = seal_request(
        a.client.ring, a.name, wall_ms(), "POST", "/internal/drain", b"{}"
    )
    headers = {HEADER: header, "Content-Type": SEALED_TYPE}
    async with httpx.AsyncClient(timeout=10) as http:
        to_b = await http.post(f"{b.api_url}/internal/drain", content=sealed, headers=headers)
        assert to_b.status_code == 401, to_b.text
        assert to_b.json()["error"] == "unauthorized"
        assert not b.draining
        first = await http.post(f"{a.api_url}/internal/drain", content=sealed, headers=headers)
        assert first.status_code == 200
        assert first.headers["content-type"].startswith(SEALED_TYPE)
        assert a.draining
        a.drainer.undrain()
        again = await http.post(f"{a.api_url}/internal/drain", content=sealed, headers=headers)
        assert again.status_code == 401
        assert "replayed" in again.json()["detail"]
        assert not a.draining
    refused = a.metrics.render().decode()
    assert 'shoal_internal_refused_total{reason="replayed"} 1.0' in refused
    assert 'shoal_internal_refused_total{reason="bad_seal"} 1.0' in b.metrics.render().decode()


@pytest.mark.parametrize(
    "host",
    ["evil.example/internal/x?", "localhost/", "localhost:1/v1/health?a=", "a b", "x#/internal"],
)
async def test_an_unsigned_internal_read_with_a_crafted_host_is_refused(
    pair: tuple[AgentContext, AgentContext], host: str
) -> None:
    """The issue's repro: unsigned GET /internal/state with a crafted Host header -> 200."""
    a, _b = pair
    stream = await trio.open_tcp_stream("127.0.0.1", a.config.api_port)
    async with stream:
        await stream.send_all(
            f"GET /internal/state HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert status in (400, 401), answer[:300]
    assert b'"servos"' not in answer


class _Recorder(httpx.AsyncBaseTransport):
    """Keeps every byte that crossed the wire, both ways."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.seen: list[bytes] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(bytes(request.url.raw_path) + b"\n" + request.content)
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        self.seen.append(body)
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_specs_with_env_cross_between_agents_only_encrypted(
    pair: tuple[AgentContext, AgentContext],
) -> None:
    a, b = pair
    entry = {
        "name": "web",
        "ts": [wall_ms(), 0, a.name],
        "spec": {
            "image": "busybox",
            "replicas": 1,
            "memory": 64,
            "cpus": 0.1,
            "env": {"PASSWORD": SECRET},
        },
    }
    recorder = _Recorder()
    client = PeerClient(a.client.ring, me=a.name, transport=recorder)
    try:
        await client.push_specs(b.name, b.api_url, [entry])
        pulled = await client.pull_specs(b.name, b.api_url)
    finally:
        await client.aclose()
    assert any(e["name"] == "web" and e["spec"]["env"]["PASSWORD"] == SECRET for e in pulled)
    assert len(recorder.seen) == 4
    for wire in recorder.seen:
        assert SECRET.encode() not in wire
        assert b"PASSWORD" not in wire


async def test_a_request_sealed_for_another_agent_is_refused_through_the_client(
    pair: tuple[AgentContext, AgentContext],
) -> None:
    """The client names the destination: asking B at A's address fails closed."""
    a, b = pair
    with pytest.raises(PeerRefused) as err:
        await a.client.get_state(b.name, a.api_url)
    assert err.value.reason == "unauthorized"
    state = await a.client.get_state(b.name, b.api_url)
    assert state["name"] == b.name


def test_the_dependency_floors_are_past_the_host_header_bypass() -> None:
    """Starlette before 1.0.1 let a crafted Host header poison `request.url.path`
    (CVE-2026-48710); the floor and the constraints file must both be past it."""
    import tomllib
    from importlib.metadata import version

    root = Path(__file__).resolve().parents[2]
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    floor = next(d for d in deps if d.startswith("starlette>="))
    assert tuple(int(p) for p in floor.removeprefix("starlette>=").split(".")) >= (1, 0, 1)
    pins = dict(
        line.split("==", 1)
        for line in (root / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert tuple(int(p) for p in pins["starlette"].split(".")[:3]) >= (1, 0, 1)
    assert tuple(int(p) for p in version("starlette").split(".")[:3]) >= (1, 0, 1)


async def test_a_non_ascii_seal_header_is_a_json_401_and_logged(
    pair: tuple[AgentContext, AgentContext],
) -> None:
    """The issue: a non-ASCII X-Shoal-Auth gave a plain-text 500 with no log line."""
    a, _b = pair
    stream = await trio.open_tcp_stream("127.0.0.1", a.config.api_port)
    async with stream:
        await stream.send_all(
            b"POST /internal/drain HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"X-Shoal-Auth: \xff\xfe\xe9:\xd9\xa1\r\nContent-Length: 2\r\n\r\n{}"
        )
        answer = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"401", answer[:300]
    assert b"application/json" in head.lower()
    assert json.loads(body)["error"] == "unauthorized"
    assert not a.draining
    metrics = a.metrics.render().decode()
    assert 'shoal_internal_refused_total{reason="malformed"} 1.0' in metrics


async def test_unkeyed_gossip_tcp_is_dropped_and_shown_in_metrics(
    pair: tuple[AgentContext, AgentContext],
) -> None:
    a, _b = pair
    stream = await trio.open_tcp_stream("127.0.0.1", a.config.gossip_port)
    async with stream:
        await stream.send_all(b"\x00\x80\x00\x00" + b"\x00" * 100)  # "8 MiB follow", no key
        # closed after the header (or reset: the rest was never read)
        with trio.fail_after(5), contextlib.suppress(trio.BrokenResourceError):
            assert await stream.receive_some(10) == b""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{a.api_url}/metrics")).text
    assert 'shoal_gossip_packets_dropped_total{reason="tcp_bad_header"} 1.0' in text
