"""20-100 cores on the in-memory network: loss, delay, partitions, deterministically."""

from __future__ import annotations

import pytest

from sim.gossip_net import GossipNet
from sim.network import LinkProfile


@pytest.mark.parametrize("n", [20, 60, 100])
def test_crash_detected_everywhere_with_loss_and_no_false_positives(n: int) -> None:
    dead_seen: list[tuple[str, str]] = []
    net = GossipNet(
        seed=n,
        loss=0.05,
        on_event=lambda o, e: dead_seen.append((o, e.name)) if e.kind == "dead" else None,
    )
    net.network.set_link("r0", "r1", LinkProfile(0.05, 0.02))
    for i in range(n):
        net.add(f"m{i}", region=f"r{i % 2}")
    net.join_all("m0")
    net.run(10)
    victim = f"m{n // 2}"
    net.crash(victim)
    net.run(40)
    assert {o for o, name in dead_seen if name == victim} == set(net.agents) - {victim}
    assert [d for d in dead_seen if d[1] != victim] == []


def test_partition_each_side_sees_the_other_dead_then_heals() -> None:
    net = GossipNet(seed=5)
    for i in range(30):
        net.add(f"m{i}", region="r0" if i < 15 else "r1")
    net.join_all("m0")
    net.run(10)
    left = [f"m{i}" for i in range(15)]
    right = [f"m{i}" for i in range(15, 30)]
    net.network.partition([left, right])
    net.run(60)
    assert net.view("m0")["m20"] == "dead" and net.view("m20")["m0"] == "dead"
    assert net.view("m0")["m1"] == "alive"
    net.network.heal()
    net.push_pull(net.agents["m0"], "m20")
    net.run(60)
    for name in net.agents:
        assert set(net.view(name).values()) == {"alive"}
