"""Simulated agents plan from their own gossip view, built over the agent's inventory path
(deltas on the APP channel, metadata, pulls), and recovery looks only at what can have changed."""

from __future__ import annotations

from typing import Any

import pytest

from gossip.crypto import OVERHEAD
from gossip.messages import Msg, MsgType
from gossip.wire import pack_messages
from placement.converge import Desired
from sim.fleet import Fleet
from sim.gossip_net import GossipNet
from sim.report import to_json
from sim.run import SimArgs, simulate

EXTRA = Desired("extra", 1, 100, 100)


def quiet_fleet(seed: int = 4) -> Fleet:
    """Nine hosts over three regions, six projects deployed, a converged gossip view; no
    recovery (these tests add a servo by hand, which an owner would see as one too many)."""
    net = GossipNet(seed=seed)
    fleet = Fleet(net, [Desired(f"p{i}", 3, 100, 100) for i in range(6)] + [EXTRA])
    for i in range(9):
        fleet.add_host(f"h{i}", f"r{i % 3}", f"r{i % 3}-a", 1000, 4000)
    fleet.deploy_all()
    fleet.preload_converged()
    fleet._recover = lambda _me: None  # type: ignore[method-assign,assignment]
    net.run(5)
    return fleet


def planned_servos(fleet: Fleet, observer: str, host: str) -> set[str]:
    row = next(n for n in fleet.view_for(observer).nodes if n.name == host)
    return {s.servo_id for s in row.servos}


def free_memory(fleet: Fleet, observer: str, host: str) -> int:
    return next(n for n in fleet.view_for(observer).nodes if n.name == host).memory_free_mb


def test_an_observer_plans_a_host_change_only_once_gossip_brought_it() -> None:
    fleet = quiet_fleet()
    host, observer = "h4", "h8"
    before = planned_servos(fleet, observer, host)
    free = free_memory(fleet, observer, host)
    assert fleet._admit(host, EXTRA, "extra-1-0-h4", 0)
    # the host's own state has it at once; the observer's view does not yet
    assert "extra-1-0-h4" in fleet.hosts[host].servos
    assert planned_servos(fleet, observer, host) == before
    assert free_memory(fleet, observer, host) == free
    fleet.net.run(5)  # the delta spreads in gossip rounds, the metadata within the 2 s refresh
    assert planned_servos(fleet, observer, host) == before | {"extra-1-0-h4"}
    assert free_memory(fleet, observer, host) == free - EXTRA.memory_mb
    assert fleet.views[observer].replica.consistent(host)


def test_an_observer_that_missed_a_delta_pulls_the_hosts_inventory() -> None:
    fleet = quiet_fleet()
    host, observer = "h4", "h8"
    delegate: Any = fleet.net.agents[observer].core.delegate
    delegate.notify = lambda _now, _payload: False  # every APP delta to it is lost
    assert fleet._admit(host, EXTRA, "extra-1-0-h4", 0)
    fleet.net.run(10)
    assert fleet.counters.pulls >= 1
    assert "extra-1-0-h4" in planned_servos(fleet, observer, host)
    assert fleet.views[observer].replica.consistent(host)


def test_the_load_figures_count_the_inventory_deltas_bytes() -> None:
    fleet = quiet_fleet()
    net = fleet.net
    app_bytes = [0]
    send = net.send

    def counting(src: str, dst: str, msgs: list[Msg], msg_bytes: int) -> None:
        if any(m[0] == MsgType.APP for m in msgs):
            app_bytes[0] += len(pack_messages(src, msgs)) + OVERHEAD
        send(src, dst, msgs, msg_bytes)

    net.send = counting  # type: ignore[method-assign]
    before = net.network.stats.bytes_sent
    assert fleet._admit("h4", EXTRA, "extra-1-0-h4", 0)
    net.run(5)
    assert app_bytes[0] > 0
    assert net.network.stats.bytes_sent - before >= app_bytes[0]


def test_a_simulated_agents_metadata_is_the_agents_own() -> None:
    fleet = quiet_fleet()
    meta = fleet.net.agents["h8"].core.members["h4"].meta
    own = fleet.views["h4"].own
    h = fleet.hosts["h4"]
    assert meta["cap"] == [h.memory_total_mb, h.memory_free_mb, h.millicpus_total, h.millicpus_free]
    assert (meta["inv"], meta["dig"], meta["n"]) == (own.version, own.digest, len(h.servos))


@pytest.mark.parametrize("scenario", ["region-outage", "region-partition", "rolling-failures"])
def test_recovery_looking_only_at_what_changed_plans_what_a_full_scan_plans(
    scenario: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = SimArgs(scenario, seed=3, agents=45, projects=30, duration_s=90.0, fail_at_s=10.0)
    incremental = to_json(simulate(args))
    monkeypatch.setattr(Fleet, "full_scan", True)
    assert to_json(simulate(args)) == incremental, f"seed {args.seed}"
