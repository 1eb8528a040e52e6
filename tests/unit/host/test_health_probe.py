"""The network probe against a tiny in-process HTTP server on loopback (real sockets, no Docker:
milliseconds, except the one case that waits out a 0.1 s timeout)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from functools import partial

import pytest
import trio

from node.health import HealthCheck, network_probe

ANSWERS = {
    "/": b"200 OK",
    "/moved": b"302 Found\r\nLocation: /elsewhere",
    "/nope": b"404 Not Found",
    "/broken": b"500 Internal Server Error",
}


async def serve(stream: trio.SocketStream) -> None:
    async with stream:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            request += chunk
        path = request.split(b" ")[1].decode()
        if path == "/slow":
            await trio.sleep_forever()
        if path == "/hangup":
            return
        status = ANSWERS.get(path, b"404 Not Found")
        await stream.send_all(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")


@pytest.fixture
async def port(nursery: trio.Nursery) -> AsyncIterator[int]:
    listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
    yield int(listeners[0].socket.getsockname()[1])


def closed_port() -> int:
    """A port nothing listens on (it was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("path", "passed"),
    [("/", True), ("/moved", True), ("/nope", False), ("/broken", False), ("/hangup", False)],
)
async def test_http_passes_on_2xx_and_3xx_only(port: int, path: str, passed: bool) -> None:
    check = HealthCheck("http", 8080, path)
    assert await network_probe(check, "127.0.0.1", port) is passed
    assert await network_probe(check, "0.0.0.0", port) is passed  # a wildcard: loopback


async def test_http_fails_past_its_timeout_and_on_a_closed_port(port: int) -> None:
    slow = HealthCheck("http", 8080, "/slow", interval_s=1.0, timeout_s=0.1)
    with trio.fail_after(2):
        assert await network_probe(slow, "127.0.0.1", port) is False
    assert await network_probe(HealthCheck("http", 8080), "127.0.0.1", closed_port()) is False


async def test_tcp_passes_when_the_port_accepts(port: int) -> None:
    check = HealthCheck("tcp", 8080)
    assert await network_probe(check, "127.0.0.1", port) is True
    assert await network_probe(check, "127.0.0.1", closed_port()) is False
