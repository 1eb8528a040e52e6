"""Five real agent processes on loopback: join through one seed, a 60 s steady run with no false
death, kill -9 detected by every survivor within 10 s, graceful leave shown as left within 2 s,
and an agent with the wrong cluster key never admitted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.cli import keygen
from tests.integration.agents import Cluster, make_cluster, wait_until

pytestmark = pytest.mark.slow

STEADY_S = 60.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from make_cluster(tmp_path)


def test_steady_run_kill9_and_graceful_leave(cluster: Cluster) -> None:
    seed = cluster.add("g1")
    for i in range(2, 6):
        # g4 leaves when stopped; a plain stop is a restart, not a departure
        extra = ["--leave-on-stop"] if i == 4 else []
        cluster.add(f"g{i}", region="eu" if i % 2 else "us", join=[seed], extra=extra)
    cluster.wait_healthy()
    cluster.wait_all_alive(timeout_s=30)

    deadline = time.monotonic() + STEADY_S
    while time.monotonic() < deadline:
        for a in cluster.agents:
            bad = {n: s for n, s in a.members().items() if s != "alive"}
            assert not bad, f"{a.name} sees {bad} during a steady run"
        time.sleep(1.0)

    victim, leaver = cluster.agents[2], cluster.agents[3]
    survivors = [a for a in cluster.agents if a not in (victim, leaver)]
    victim.kill9()
    killed_at = time.monotonic()
    for a in [*survivors, leaver]:
        remaining = max(0.1, killed_at + 10.0 - time.monotonic())
        wait_until(
            f"{a.name} to call {victim.name} dead",
            lambda a=a: a.members()[victim.name] == "dead",
            remaining,
            0.1,
        )

    leaver_name = leaver.name
    assert leaver.stop() == 0
    left_at = time.monotonic()
    for a in survivors:
        remaining = max(0.1, left_at + 2.0 - time.monotonic())
        wait_until(
            f"{a.name} to see {leaver_name} left",
            lambda a=a: a.members()[leaver_name] == "left",
            remaining,
            0.05,
        )
    for a in survivors:
        assert {n: s for n, s in a.members().items() if n not in (victim.name, leaver_name)} == {
            s.name: "alive" for s in survivors
        }


def test_wrong_cluster_key_is_never_admitted(cluster: Cluster, tmp_path: Path) -> None:
    seed = cluster.add("k1")
    other = cluster.add("k2", join=[seed])
    cluster.wait_healthy()
    cluster.wait_all_alive()
    wrong = tmp_path / "wrong.key"
    wrong.write_text(keygen() + "\n")
    intruder = cluster.add("k3", join=[seed], key_file=wrong)
    cluster.wait_healthy([intruder])
    end = time.monotonic() + 8
    while time.monotonic() < end:
        for a in (seed, other):
            assert intruder.name not in a.members()
        time.sleep(0.5)
    assert set(intruder.members()) == {intruder.name}

    metrics = httpx.get(f"{seed.api}/metrics", timeout=5).text
    # the intruder knows nobody yet: its only attempts are join push-pulls over TCP, whose
    # sealed header does not open under the cluster's key (UDP with a wrong key counts as
    # bad_key_or_tag)
    assert any(
        f'shoal_gossip_packets_dropped_total{{reason="{reason}"}}' in metrics
        for reason in ("tcp_bad_header", "bad_key_or_tag")
    ), metrics
