"""Issue 13, point 7: an Idempotency-Key's claim is written before the work runs; concurrent
requests with one key run the work once; a used key with another body is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from node.idempotency import STALE_MS, IdempotencyStore, KeyInFlight, KeyReused


def test_claims(tmp_path: Path) -> None:
    store = IdempotencyStore(tmp_path / "i.db")
    h = store.body_hash({"replicas": 2})
    assert store.claim("k", h, 1000).kind == "run"
    assert store.claim("k", h, 1001).kind == "pending"
    assert store.claim("k", store.body_hash({"replicas": 3}), 1001).kind == "mismatch"
    store.finish("k", 200, '{"ok": true}')
    again = store.claim("k", h, 1002)
    assert (again.kind, again.status, again.body) == ("replay", 200, '{"ok": true}')
    # an agent that died mid-request left a pending claim: the next request takes it over
    assert store.claim("dead", h, 0).kind == "run"
    assert store.claim("dead", h, STALE_MS + 1).kind == "run"
    store.release("dead")
    assert store.claim("dead", h, STALE_MS + 2).kind == "run"
    store.close()
    # durable, with the same salt: a restarted agent still recognises the body
    reopened = IdempotencyStore(tmp_path / "i.db")
    assert reopened.body_hash({"replicas": 2}) == h
    assert reopened.claim("k", h, 5000).kind == "replay"
    reopened.close()


def test_body_hash_is_keyed(tmp_path: Path) -> None:
    import hashlib
    import json

    store = IdempotencyStore(tmp_path / "i.db")
    body = {"secrets": {"DB_PASSWORD": "hunter2"}}
    plain = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    assert store.body_hash(body) != plain
    assert IdempotencyStore(tmp_path / "j.db").body_hash(body) != store.body_hash(body)
    store.close()


async def test_concurrent_requests_with_one_key_run_once(tmp_path: Path) -> None:
    # finding: two concurrent requests with one Idempotency-Key both ran
    store = IdempotencyStore(tmp_path / "i.db")
    runs = 0
    results: list[tuple[int, Any, bool]] = []

    async def work() -> tuple[int, Any]:
        nonlocal runs
        runs += 1
        await trio.sleep(0.3)
        return 200, {"n": runs}

    async def call() -> None:
        results.append(await store.once("k", {"a": 1}, lambda: 1, work))

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(call)
    assert runs == 1
    assert sorted(r[2] for r in results) == [False, True, True]
    assert all(r[1] == {"n": 1} for r in results)
    # finding: a different body with a used key replayed the old answer
    with pytest.raises(KeyReused):
        await store.once("k", {"a": 2}, lambda: 2, work)
    store.close()


async def test_failed_work_releases_the_key(tmp_path: Path) -> None:
    store = IdempotencyStore(tmp_path / "i.db")

    async def boom() -> tuple[int, Any]:
        raise RuntimeError("peer down")

    async def ok() -> tuple[int, Any]:
        return 200, {"ok": True}

    with pytest.raises(RuntimeError):
        await store.once("k", None, lambda: 1, boom)
    assert await store.once("k", None, lambda: 2, ok) == (200, {"ok": True}, False)
    store.close()


async def test_a_key_held_too_long_is_a_409(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.abc.Clock
) -> None:
    import node.idempotency

    monkeypatch.setattr(node.idempotency, "WAIT_S", 1.0)
    store = IdempotencyStore(tmp_path / "i.db")
    h = store.body_hash(None)
    assert store.claim("k", h, 1).kind == "run"  # another run of this agent holds it

    async def ok() -> tuple[int, Any]:
        return 200, {}

    with pytest.raises(KeyInFlight):
        await store.once("k", None, lambda: 2, ok)
    store.close()
