"""Issue 13, point 4: key rotation as a cluster operation (`shoal keys`, Serf's keyring) on three
real in-process agents, through the CLI and the API: install everywhere, use everywhere, remove
everywhere, with the unsafe orders refused before any agent changes."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from api.cli import keygen
from api.cli import main as cli_main
from gossip.crypto import Keyring, fingerprint
from node.context import AgentContext
from node.internal_auth import HEADER, SEALED_TYPE, seal_request
from node.keys import parse_keys
from node.membership import wall_ms
from node.projects import Project
from tests.integration.inproc import InProcCluster, all_see_alive, make_key, wait_for


@pytest.fixture
async def trio_cluster(tmp_path: Path) -> AsyncIterator[InProcCluster]:
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        a = await cluster.add("a")
        await cluster.add("b", join=["a"])
        await cluster.add("c", join=["a"])
        await all_see_alive(cluster, 3)
        assert a.config.cluster_key_file is not None
        yield cluster
        nursery.cancel_scope.cancel()


async def shoal(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    """The real CLI (`shoal keys ... --json`), in a thread: it blocks, the agents must not."""
    code = await trio.to_thread.run_sync(cli_main, [*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def _rings(cluster: InProcCluster) -> dict[str, list[bytes]]:
    return {c.name: c.client.ring.keys for c in cluster.contexts()}


async def test_rotation_install_use_remove_everywhere(
    trio_cluster: InProcCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    a = trio_cluster.ctx("a")
    api = ["--api", a.api_url]
    old = a.client.ring.primary
    new_text = keygen()
    new = base64.b64decode(new_text)

    code, listing = await shoal("keys", "list", *api, capsys=capsys)
    assert code == 0 and listing["agents"] == 3
    assert listing["keys"] == [{"key": fingerprint(old), "agents": 3, "primary_on": 3}]

    # use before install: refused as a whole, nobody switched
    code, refused = await shoal("keys", "use", new_text, *api, capsys=capsys)
    assert code == 1 and refused["error"] == "key_refused"
    assert set(refused["results"]) == {c.name for c in trio_cluster.contexts()}
    assert all(ring == [old] for ring in _rings(trio_cluster).values())

    code, installed = await shoal("keys", "install", new_text, *api, capsys=capsys)
    assert code == 0 and installed["ok"], installed
    assert all(ring == [old, new] for ring in _rings(trio_cluster).values())

    # the primary cannot be removed anywhere
    code, refused = await shoal(
        "keys", "remove", base64.b64encode(old).decode(), *api, capsys=capsys
    )
    assert code == 1 and refused["error"] == "key_refused"
    assert all(ring == [old, new] for ring in _rings(trio_cluster).values())

    code, used = await shoal("keys", "use", new_text, *api, capsys=capsys)
    assert code == 0 and used["ok"], used
    assert all(ring == [new, old] for ring in _rings(trio_cluster).values())
    assert a.config.cluster_key_file is not None
    assert parse_keys(a.config.cluster_key_file.read_text()) == [new, old]  # survives a restart

    code, removed = await shoal(
        "keys", "remove", base64.b64encode(old).decode(), *api, capsys=capsys
    )
    assert code == 0 and removed["ok"], removed
    assert all(ring == [new] for ring in _rings(trio_cluster).values())
    assert a.keys == [new]  # the context's list (join tokens, the secret box) follows

    # the cluster still works on the new key alone: gossip and sealed spec pushes
    await trio.sleep(2)
    await all_see_alive(trio_cluster, 3)
    b, c = trio_cluster.ctx("b"), trio_cluster.ctx("c")
    b.specs.write(
        "rotated",
        Project.from_wire(
            "rotated", {"image": "busybox", "replicas": 0, "memory": 64, "cpus": 0.1}
        ),
    )
    await wait_for(
        "the spec to reach a and c",
        lambda: all(x.registry.get("rotated") is not None for x in (a, c)),
        15,
    )
    # and the old key opens nothing any more
    await _refused_with(a, Keyring([old]))


async def _refused_with(target: AgentContext, ring: Keyring) -> None:
    header, _, sealed = seal_request(ring, target.name, wall_ms(), "GET", "/internal/state", b"")
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.request(
            "GET",
            f"{target.api_url}/internal/state",
            headers={HEADER: header, "Content-Type": SEALED_TYPE},
            content=sealed,
        )
    assert r.status_code == 401


async def test_a_bad_key_is_a_422_and_changes_nothing(
    trio_cluster: InProcCluster,
) -> None:
    a = trio_cluster.ctx("a")
    async with httpx.AsyncClient(timeout=10) as http:
        for bad in ("not base64!", base64.b64encode(b"short").decode()):
            r = await http.post(f"{a.api_url}/v1/keys/install", json={"key": bad})
            assert r.status_code == 422, r.text
            # refused by the documented schema (a base64 key of 16, 24 or 32 bytes)
            assert r.json()["error"] in ("invalid_request", "invalid_key")
            assert "key" in r.json()["detail"]
    assert all(len(ring) == 1 for ring in _rings(trio_cluster).values())
