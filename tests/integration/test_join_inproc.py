"""Joining with a token, the API kept on loopback while gossip listens everywhere, and the
agent-to-agent routes served on the advertised address: in-process agents, no namespaces.

127.0.0.2 stands for a LAN address (all of 127/8 is local on Linux), so "the API listens on
127.0.0.1 only" and "peers reach /internal/ at 127.0.0.2" are two different sockets."""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import httpx
import trio

from api.app import create_app
from api.cli import main as cli_main
from node.agent import KEY_FILE_NAME
from node.config import AgentConfig
from node.join_token import parse
from tests.conftest import RUN_ID, free_port
from tests.integration.inproc import InProcCluster, all_see_alive, make_key, wait_for

SPEC = {"image": "busybox", "replicas": 2, "memory": "64M", "cpus": 0.1, "spread": "host"}


def config(tmp_path: Path, short: str, **kw: object) -> AgentConfig:
    return AgentConfig(
        name=f"{RUN_ID}-{short}",
        region="eu",
        gossip_port=free_port(),
        api_port=free_port(),
        data_dir=tmp_path / short,
        runtime="fake",
        memory_mb=4096,
        millicpus=4000,
        **kw,  # type: ignore[arg-type]
    )


async def test_a_token_joins_and_peers_use_the_internal_only_listener(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=30) as http:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path / "unused"))
        first = config(tmp_path, "j1", bind="0.0.0.0", advertise="127.0.0.2")
        c1 = await cluster.start(first)
        api1 = f"http://127.0.0.1:{first.api_port}"
        assert c1.config.cluster_key_file == tmp_path / "j1" / KEY_FILE_NAME  # made, kept

        r = await http.post(f"{api1}/v1/join-token", json={"ttl_s": 600})
        assert r.status_code == 200, r.text
        body = r.json()
        token = parse(body["token"])
        assert token.seeds == (f"127.0.0.2:{first.gossip_port}",)
        assert list(token.keys) == c1.keys
        assert body["command"].startswith(f"shoal agent --join-token {body['token']} ")
        assert "--runtime fake --region eu" in body["command"]

        # `shoal join-token` prints the token alone on stdout, one line, for `T=$(...)`
        argv = ["join-token", "--api", api1, "--ttl", "10m"]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert await trio.to_thread.run_sync(cli_main, argv) == 0
        printed = out.getvalue().splitlines()
        assert len(printed) == 1
        short = parse(printed[0])
        assert short.seeds == token.seeds and 590 <= short.expires_at_s - time.time() <= 600

        # the advertised address answers agent-to-agent routes only
        r = await http.get(f"http://127.0.0.2:{first.api_port}/v1/health")
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        r = await http.get(f"http://127.0.0.2:{first.api_port}/internal/state")
        assert r.status_code == 401  # reached the internal routes: unsigned, refused

        second = config(tmp_path, "j2", bind="0.0.0.0", join_token=body["token"])
        c2 = await cluster.start(second)
        assert c2.keys == c1.keys
        await all_see_alive(cluster, 2)

        # a deploy through the second agent needs the first's /internal/ at 127.0.0.2
        r = await http.put(f"http://127.0.0.1:{second.api_port}/v1/projects/web", json=SPEC)
        assert r.status_code == 200, r.text
        await wait_for(
            "a servo on each agent",
            lambda: len(c1.host.servo_records()) == 1 and len(c2.host.servo_records()) == 1,
        )
        nursery.cancel_scope.cancel()


async def test_join_tokens_go_to_loopback_callers_only_without_an_api_token(
    tmp_path: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        ctx = await cluster.add("t1")
        app = create_app(ctx)
        far = httpx.ASGITransport(app=app, client=("10.0.0.9", 5000))
        async with httpx.AsyncClient(transport=far, base_url="http://127.0.0.1") as http:
            r = await http.post("/v1/join-token", json={})
            assert r.status_code == 403 and r.json()["error"] == "forbidden"
        near = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=near, base_url="http://127.0.0.1") as http:
            r = await http.post("/v1/join-token", json={"ttl_s": 0})
            assert r.status_code == 422 and r.json()["error"] == "invalid_request"
            r = await http.post("/v1/join-token", json={"ttl_s": 60})
            assert r.status_code == 200 and parse(r.json()["token"]).keys == tuple(ctx.keys)
            # a key installed at run time (rotation) travels in the next token
            rotated = bytes(range(32))
            ctx.client.ring.install(rotated)
            r = await http.post("/v1/join-token", json={"ttl_s": 60})
            assert parse(r.json()["token"]).keys == (*ctx.keys, rotated)
        nursery.cancel_scope.cancel()


async def test_with_an_api_token_a_join_token_needs_it(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        ctx = await cluster.add("t2", api_token="s3cret")
        transport = httpx.ASGITransport(app=create_app(ctx), client=("10.0.0.9", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            r = await http.post("/v1/join-token", json={})
            assert r.status_code == 401
            r = await http.post(
                "/v1/join-token", json={}, headers={"Authorization": "Bearer s3cret"}
            )
            assert r.status_code == 200, r.text
        nursery.cancel_scope.cancel()
