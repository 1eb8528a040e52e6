"""Issue 13, point 6: the data-dir lock (two real processes), a corrupt database at start, storage
errors that never kill an agent, and a slow disk that never makes an agent look dead."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from node.peers import PeerFailed
from node.projects import Project
from node.store_writer import DurableWriter, StorageError
from tests.conftest import docker_required
from tests.integration.agents import Cluster, make_cluster, wait_until
from tests.integration.inproc import InProcCluster, all_see_alive, make_key, wait_for


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from make_cluster(tmp_path)


def test_a_second_agent_on_one_data_dir_exits_at_once_with_a_clear_message(
    cluster: Cluster,
) -> None:
    """The issue's repro: two agents on one --data-dir both ran and adopted each other's
    servos. Now the second exits (code 2) naming the holder, and the first keeps running."""
    first = cluster.add("a")
    cluster.wait_healthy([first])
    second = cluster.add("b", extra=["--data-dir", str(first.data_dir)])
    assert second.proc is not None
    started = time.monotonic()
    assert second.proc.wait(timeout=20) == 2
    assert time.monotonic() - started < 20
    assert first.proc is not None
    assert f"is in use by another agent (pid {first.proc.pid})" in second.log_text()
    assert first.get("/v1/health")["name"] == first.name
    # a crash leaves no stale lock: after kill -9 the dir is free again
    first.kill9()
    third = cluster.add("c", extra=["--data-dir", str(first.data_dir)])
    cluster.wait_healthy([third])


def test_a_corrupt_database_gives_a_clear_message_at_start(cluster: Cluster) -> None:
    data_dir = cluster.base / "bad"
    data_dir.mkdir(parents=True)
    (data_dir / "host.db").write_bytes(b"this is not a database, it is a dog" * 100)
    agent = cluster.add("bad")
    assert agent.proc is not None
    assert agent.proc.wait(timeout=20) == 2
    text = agent.log_text()
    assert "host.db is not a readable Shoal store" in text
    assert "Traceback" not in text


@pytest.fixture
async def trio_cluster(tmp_path: Path) -> AsyncIterator[InProcCluster]:
    async with trio.open_nursery() as nursery:
        yield InProcCluster(nursery, tmp_path, make_key(tmp_path))
        nursery.cancel_scope.cancel()


def _project(name: str) -> Project:
    return Project.from_wire(name, {"image": "busybox", "replicas": 0, "memory": 64, "cpus": 0.1})


class _FullDisk:
    """The writers' commits fail as on a full disk (`ulimit -f` gives the same error)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._mp = monkeypatch
        self._real = DurableWriter._commit

    def __enter__(self) -> None:
        def full(writer: DurableWriter, batch: Any) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        self._mp.setattr(DurableWriter, "_commit", full)

    def __exit__(self, *exc: object) -> None:
        self._mp.setattr(DurableWriter, "_commit", self._real)


async def test_storage_errors_make_the_agent_unhealthy_never_dead_and_it_recovers(
    trio_cluster: InProcCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's repro: a full disk killed the agent through an unhandled
    sqlite3.OperationalError in a background loop."""
    a = await trio_cluster.add("a")
    b = await trio_cluster.add("b", join=["a"])
    await all_see_alive(trio_cluster, 2)
    with _FullDisk(monkeypatch):
        b.specs.write("web", _project("web"))  # the spec loop pushes it to a, whose disk is full
        await wait_for("a's writer to fail", lambda: a.registry.error is not None, 10)
        async with httpx.AsyncClient(timeout=10) as http:
            health = (await http.get(f"{a.api_url}/v1/health")).json()
            metrics = (await http.get(f"{a.api_url}/metrics")).text
        assert health["status"] == "unhealthy"
        assert health["storage"] == "error: database or disk is full"
        assert 'shoal_storage_healthy{store="projects"} 0.0' in metrics
        assert 'shoal_storage_errors_total{store="projects"}' in metrics
        with pytest.raises(StorageError):
            await a.registry.sync()
        # a push is refused (not acknowledged) while nothing reaches the disk
        with pytest.raises(PeerFailed) as err:
            await b.client.push_specs(a.name, a.api_url, [b.registry.entries()[0].to_wire()])
        assert err.value.reason == "storage_error"
        await trio.sleep(1.0)  # background loops keep running: gossip still sees a alive
        assert {p.name: p.status for p in b.peers()}[a.name] == "alive"
    # the disk is back: the queued write commits with the next retry and health clears
    await wait_for("a's writer to recover", lambda: a.registry.error is None, 15)
    await a.registry.sync()
    async with httpx.AsyncClient(timeout=10) as http:
        health = (await http.get(f"{a.api_url}/v1/health")).json()
    assert (health["status"], health["storage"]) == ("ok", "ok")
    assert a.registry.get("web") is not None


async def test_an_agent_whose_store_takes_2s_per_commit_is_never_suspected(
    tmp_path: Path,
) -> None:
    """Durable writes used to fsync on the Trio loop that answers probes: a slow disk made a
    healthy agent look dead. Now they run in the writer thread; the loop stays free. The slow
    agent runs in this process (its store is slowed); its peers are real processes, so a
    blocked loop here would show as missed probes there."""
    async with trio.open_nursery() as nursery:
        inproc = InProcCluster(nursery, tmp_path / "in", make_key(tmp_path / "in"))
        slow = await inproc.add("slow")
        (tmp_path / "out").mkdir()
        procs = Cluster(tmp_path / "out", inproc.key_file)
        seed = ["--join", f"127.0.0.1:{slow.config.gossip_port}"]
        try:
            peers = [procs.add(f"p{i}", extra=seed) for i in range(2)]
            names = {slow.name, *(p.name for p in peers)}
            async with httpx.AsyncClient(timeout=5) as http:

                async def views() -> list[dict[str, str]]:
                    return [
                        {
                            m["name"]: m["status"]
                            for m in (await http.get(f"{p.api}/v1/members")).json()
                        }
                        for p in peers
                    ]

                with trio.fail_after(30):
                    while True:
                        try:
                            if all(
                                {n for n, st in v.items() if st == "alive"} >= names
                                for v in await views()
                            ):
                                break
                        except httpx.HTTPError:
                            pass
                        await trio.sleep(0.2)
                for writer in (slow.host.store.writer, slow.registry._writer):
                    writer.commit_delay_s = 2.0
                refutations = slow.gossip.counters()["core"].get("refutations", 0)
                deadline = trio.current_time() + 12
                n = 0
                while trio.current_time() < deadline:
                    slow.specs.write(f"p{n}", _project(f"p{n}"))  # each queues a 2 s commit
                    n += 1
                    for view in await views():
                        assert view[slow.name] == "alive", view
                    await trio.sleep(0.2)
                with trio.fail_after(10):
                    await slow.registry.sync()  # the writes did reach the disk, batched
            assert slow.gossip.counters()["core"].get("refutations", 0) == refutations
            assert len(slow.registry.entries()) == n
        finally:
            for p in procs.agents:
                p.kill9()
            nursery.cancel_scope.cancel()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real full disk: a 512 KiB tmpfs (root only; CI runs as root and must not skip)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        msg = "a real full disk needs root and mount(8)"
        if docker_required():
            pytest.fail(msg + " [SHOAL_REQUIRE_DOCKER=1]")
        pytest.skip(msg)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_makes_a_real_agent_unhealthy_not_dead_until_space_returns(
    cluster: Cluster, small_disk: Path
) -> None:
    """The issue's repro (a full disk killed the agent through an unhandled OperationalError in
    a background loop), on a real process whose data dir is a tiny tmpfs."""
    agent = cluster.add("full", extra=["--data-dir", str(small_disk)])
    cluster.wait_healthy([agent])
    spec = {"image": "busybox", "replicas": 1, "memory": 64, "cpus": 0.1}
    big = {"BLOB": "x" * 30_000}
    refused = None
    for i in range(60):  # far more than 512 KiB of WAL pages
        r = httpx.put(f"{agent.api}/v1/projects/p{i}", json={**spec, "env": big}, timeout=30)
        if r.status_code >= 500:
            refused = r
            break
        assert r.status_code == 200, r.text
    # a write is acknowledged only once on disk: the one that found the disk full is a 503
    assert refused is not None and refused.status_code == 503, refused
    assert refused.json()["error"] == "storage_error"
    health = wait_until(
        "the agent to report its full disk",
        lambda: (h := agent.get("/v1/health"))["status"] == "unhealthy" and h,
        30,
    )
    assert health["storage"].startswith("error: "), health
    assert "full" in health["storage"] or "I/O" in health["storage"], health
    metrics = httpx.get(f"{agent.api}/metrics", timeout=10).text
    assert "shoal_storage_healthy{store=" in metrics and "} 0.0" in metrics
    time.sleep(2)  # the background loops keep running into the full disk
    assert agent.running(), agent.log_text()[-3000:]
    assert agent.get("/v1/members")[0]["status"] == "alive"
    # space comes back: the queued writes commit, health clears, nothing was lost
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    wait_until("the agent to recover", lambda: agent.get("/v1/health")["storage"] == "ok", 30)
    assert "Traceback" not in agent.log_text()
    assert agent.stop() == 0
    again = cluster.add("again", extra=["--data-dir", str(small_disk)])
    cluster.wait_healthy([again])
    names = {p["name"] for p in again.get("/v1/projects")}
    assert "p0" in names
