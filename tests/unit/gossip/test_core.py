"""State transitions of the gossip core, driven in memory on a virtual clock."""

from __future__ import annotations

import math
import random

import pytest

from gossip.core import Gossip, GossipConfig, MemberEvent, MemberRecords
from gossip.messages import MsgType, Status
from sim.gossip_net import GossipNet


def cluster(n: int, seed: int = 7, **kw: object) -> GossipNet:
    net = GossipNet(seed=seed, **kw)  # type: ignore[arg-type]
    for i in range(n):
        net.add(f"m{i}", region=f"r{i % 2}")
    net.join_all("m0")
    net.run(5)
    return net


def statuses(net: GossipNet, target: str, crashed: set[str] = frozenset()) -> set[str]:  # type: ignore[assignment]
    return {net.view(a)[target] for a in net.agents if a != target and a not in crashed}


def test_join_through_one_seed_reaches_everyone() -> None:
    net = cluster(20)
    for name in net.agents:
        view = net.view(name)
        assert len(view) == 20 and set(view.values()) == {"alive"}


def test_crash_goes_alive_suspect_dead_everywhere() -> None:
    events: list[tuple[str, str, str]] = []
    net = cluster(10)
    net._on_event = lambda obs, ev: events.append((obs, ev.kind, ev.name))
    net.crash("m3")
    net.run(25)
    assert statuses(net, "m3", {"m3"}) == {"dead"}
    kinds = [k for _, k, n in events if n == "m3"]
    assert kinds.index("suspect") < kinds.index("dead")
    assert all(
        net.view(a)[b] == "alive" for a in net.agents if a != "m3" for b in net.agents if b != "m3"
    )


def test_stalled_member_refutes_and_is_never_declared_dead() -> None:
    net = cluster(10)
    net.stall("m4", 2.5)  # long enough to be suspected, far shorter than the suspicion timeout
    net.run(30)
    assert statuses(net, "m4") == {"alive"}
    assert net.agents["m4"].core.me.incarnation >= 1  # it had to refute
    assert net.agents["m4"].core.counters.get("refutations", 0) >= 1


def test_graceful_leave_is_left_not_dead() -> None:
    net = cluster(8)
    agent = net.agents["m2"]
    agent.core.leave(net.engine.now)
    agent.flush()
    net.run(1)
    net.crash("m2")
    net.run(30)
    assert statuses(net, "m2", {"m2"}) == {"left"}


def test_metadata_changes_reach_everyone() -> None:
    net = cluster(12)
    agent = net.agents["m5"]
    agent.core.set_meta(net.engine.now, {"free_mb": 100})
    agent.flush()
    net.run(3)
    for name in net.agents:
        assert net.agents[name].core.members["m5"].meta == {"free_mb": 100}


def test_partition_heals_through_reconnect_push_pull() -> None:
    net = cluster(6)
    side_a = ["m0", "m1", "m2"]
    net.network.partition([side_a, ["m3", "m4", "m5"]])
    net.run(40)
    assert net.view("m0")["m4"] == "dead"
    net.network.heal()
    net.push_pull(net.agents["m0"], "m4")  # what the shell's reconnect loop does
    net.run(20)
    for name in net.agents:
        assert set(net.view(name).values()) == {"alive"}, (name, net.view(name))


def test_same_seed_same_history() -> None:
    def trace(seed: int) -> list[tuple[float, str, str, str]]:
        out: list[tuple[float, str, str, str]] = []
        net = GossipNet(
            seed=seed, loss=0.05, on_event=lambda o, e: out.append((e.at_s, o, e.kind, e.name))
        )
        for i in range(30):
            net.add(f"m{i}")
        net.join_all("m0")
        net.run(5)
        net.crash("m7")
        net.run(20)
        return out

    assert trace(3) == trace(3)
    assert trace(3) != trace(4)


def core_with_peers(n: int, config: GossipConfig | None = None) -> Gossip:
    g = Gossip("me", ("me", 1), {}, random.Random(1), 0.0, config)
    for i in range(n):
        g.handle(0.0, ("p", 1), f"p{i}", [[MsgType.ALIVE, f"p{i}", 0, (f"p{i}", 1), 1, {}]])
    g.events.clear()
    return g


def _gossip_sends(g: Gossip, start: float, end: float, step: float = 0.01) -> list[float]:
    """Times in [start, end) at which `g` sent a packet without probing (gossip rounds)."""
    times = []
    t = start
    while t < end:
        g.tick(t)
        if any(msgs and msgs[0][0] != MsgType.PING for _, msgs, _ in g.outbox):
            times.append(round(t, 2))
        g.outbox.clear()
        t += step
    return times


def test_gossip_rounds_keep_their_grid_while_asleep() -> None:
    """Rounds sleep when there is nothing to spread, and a new broadcast goes out at the next
    point of the agent's grid (half an interval away on average), not a whole interval later."""
    cfg = GossipConfig(probe_interval_s=1000.0)  # no probes: only gossip rounds send
    g = Gossip("me", ("me", 1), {}, random.Random(1), 0.0, cfg)
    for i in range(5):
        g.handle(0.0, ("p", 1), f"p{i}", [[MsgType.ALIVE, f"p{i}", 0, (f"p{i}", 1), 1, {}]])
    rounds = _gossip_sends(g, 0.0, 30.0)  # spread the joins until the queue is empty
    assert rounds and not len(g.broadcasts)
    interval = cfg.gossip_interval_s
    asleep_at = rounds[-1] + 100 * interval - 0.03  # just before a point of the old grid
    g.set_meta(asleep_at, {"v": 2})
    sends = _gossip_sends(g, asleep_at, asleep_at + 1.0)
    assert sends, "the broadcast was never gossiped"
    assert sends[0] - asleep_at <= 0.04  # the grid's next point, not a whole interval later


def test_independent_confirmations_accelerate_suspicion() -> None:
    g = core_with_peers(20)
    g.handle(1.0, ("p1", 1), "p1", [[MsgType.SUSPECT, "p9", 0, "p1"]])
    slow = g.suspicions["p9"].deadline_s
    g.handle(1.1, ("p2", 1), "p2", [[MsgType.SUSPECT, "p9", 0, "p2"]])
    g.handle(1.2, ("p2", 1), "p2", [[MsgType.SUSPECT, "p9", 0, "p2"]])  # a repeat counts once
    mid = g.suspicions["p9"].deadline_s
    g.handle(1.3, ("p3", 1), "p3", [[MsgType.SUSPECT, "p9", 0, "p3"]])
    fast = g.suspicions["p9"].deadline_s
    assert slow > mid > fast
    assert fast == pytest.approx(1.0 + g.suspicions["p9"].bounds.low_s)
    g.tick(fast + 0.01)
    assert g.members["p9"].status == Status.DEAD


def _declared_dead_at(confirm_after: list[float]) -> tuple[float, float]:
    """A core of 21 suspects p9 at 1.0 and hears confirmations (from p2, p3, ...) the given
    seconds later; it runs as the simulator drives it (woken at each deadline, never in the
    past). When it declares p9 dead, and when the rule says it should: the first instant at
    or after the deadline for the confirmations heard by then."""
    g = core_with_peers(20)
    g.handle(1.0, ("p1", 1), "p1", [[MsgType.SUSPECT, "p9", 0, "p1"]])
    bounds = g.suspicions["p9"].bounds
    arrivals = [1.0 + d for d in confirm_after]
    now = 1.0
    dead_at = None
    while dead_at is None and now < 100.0:
        wake = max(now, g.next_deadline())
        if arrivals and arrivals[0] <= wake:
            now = arrivals.pop(0)
            accuser = f"p{10 - len(arrivals)}"
            g.handle(now, (accuser, 1), accuser, [[MsgType.SUSPECT, "p9", 0, accuser]])
        else:
            now = wake
        g.tick(now)
        dead_at = next((e.at_s for e in g.events if e.kind == "dead"), None)
    expected, heard = math.inf, 0
    times = [1.0 + d for d in confirm_after]
    for i, start in enumerate([1.0, *times]):
        heard = min(i, bounds.k)
        end = times[i] if i < len(times) else math.inf
        deadline = 1.0 + bounds.timeouts_s[heard]
        if deadline <= end:
            expected = max(deadline, start)
            break
    assert dead_at is not None
    return dead_at, expected


@pytest.mark.parametrize(
    "confirm_after",
    [
        [],  # the longest timeout
        [0.5],  # one confirmation: the middle one
        [0.5, 1.0],  # k of them early: the minimum, checked first
        [0.5, 8.0],  # the second after the minimum has passed: dead on hearing it
        [6.0, 7.0],  # both after the first check, the second past the minimum
        [6.0, 20.0],  # the first after the first check, the second after its deadline
        [0.5, 1.0, 2.0, 3.0],  # more than k: nothing changes after k
    ],
)
def test_a_suspect_is_declared_dead_at_its_deadline(confirm_after: list[float]) -> None:
    """Suspicions are checked first at the soonest their deadline can be, and confirmations
    arm a check only after that: a member is still declared dead at the very instant the
    Lifeguard rule gives, whatever the order of confirmations and checks."""
    dead_at, expected = _declared_dead_at(confirm_after)
    assert dead_at == pytest.approx(expected, abs=1e-9)


def test_refutation_by_incarnation_bump() -> None:
    g = core_with_peers(5)
    g.handle(1.0, ("p1", 1), "p1", [[MsgType.SUSPECT, "me", 0, "p1"]])
    assert g.me.incarnation == 1 and g.me.status == Status.ALIVE
    g.handle(1.0, ("p1", 1), "p1", [[MsgType.DEAD, "me", 1, "p1", False]])
    assert g.me.incarnation == 2
    # an older suspicion about a member that has since refuted is ignored
    g.handle(2.0, ("p2", 1), "p2", [[MsgType.ALIVE, "p3", 5, ("p3", 1), 1, {}]])
    g.handle(2.0, ("p2", 1), "p2", [[MsgType.SUSPECT, "p3", 4, "p2"]])
    assert g.members["p3"].status == Status.ALIVE


def test_ping_to_a_suspect_carries_the_suspicion() -> None:
    g = core_with_peers(1)
    g.handle(1.0, ("p1", 1), "p1", [[MsgType.SUSPECT, "p0", 0, "p1"]])
    g.outbox.clear()
    g.tick(5.0)  # the probe timer fires: the only member to probe is the suspect
    kinds = [[m[0] for m in msgs] for _, msgs, _ in g.outbox]
    assert [MsgType.PING, MsgType.SUSPECT] in kinds


def _probe_until_fallback(g: Gossip) -> tuple[int, float]:
    """Tick until a probe's TCP fallback is asked for: (its seq, the time)."""
    t = 0.0
    while not g.tcp_pings:
        t += 0.05
        g.tick(t)
    _addr, seq, _target = g.tcp_pings.pop()
    return seq, t


def test_a_refused_tcp_fallback_suspects_at_once_and_costs_no_awareness() -> None:
    g = core_with_peers(6)
    seq, t = _probe_until_fallback(g)
    target = g._probes[seq].target
    assert g.members[target].status == Status.ALIVE
    g.tcp_refused(t + 0.01, seq)
    assert g.members[target].status == Status.SUSPECT  # half a probe interval early
    assert g.suspicions[target].started_s == pytest.approx(t + 0.01)
    assert g.awareness.score == 0 and g.counters["probes_refused"] == 1
    g.tick(t + 1.0)  # the probe's end finds nothing left to judge
    assert g.awareness.score == 0 and g.counters.get("nacks_missed", 0) == 0


def test_a_refusal_after_an_ack_changes_nothing() -> None:
    g = core_with_peers(6)
    seq, t = _probe_until_fallback(g)
    target = g._probes[seq].target
    g.handle(t + 0.01, (target, 1), target, [[MsgType.ACK, seq, target]])
    g.tcp_refused(t + 0.02, seq)
    assert g.members[target].status == Status.ALIVE
    assert "probes_refused" not in g.counters


def test_awareness_rises_with_missed_nacks_and_stretches_probes() -> None:
    g = core_with_peers(6)
    for t in range(1, 6):  # nobody answers anything: probes fail and helpers never nack
        g.tick(float(t * 10))
        g.tick(float(t * 10) + 9)
    assert g.awareness.score > 0
    assert g.awareness.scale(1.0) > 1.0
    off = core_with_peers(6, GossipConfig(lifeguard=False))
    for t in range(1, 6):
        off.tick(float(t * 10))
        off.tick(float(t * 10) + 9)
    assert off.awareness.score == 0


def test_probing_a_dead_member_costs_a_healthy_prober_no_awareness() -> None:
    """The helpers' nacks come back before the probe period ends (they nack at 80 % of the
    probe timeout), so a healthy member that probes a crashed one is not taken for unhealthy."""
    net = GossipNet(seed=5)
    for i in range(10):
        net.add(f"m{i}", region="r0")
    net.join_all("m0")
    net.run(5)
    net.crash("m7")
    net.run(30)
    survivors = [a for name, a in net.agents.items() if name != "m7"]
    assert all(net.view(a.name)["m7"] == "dead" for a in survivors)
    assert sum(a.core.counters.get("suspicions", 0) for a in survivors) > 0  # m7 was probed
    assert sum(a.core.counters.get("nacks_missed", 0) for a in survivors) == 0
    assert [a.core.awareness.score for a in survivors] == [0] * len(survivors)


def test_cores_sharing_records_hold_one_record_per_state() -> None:
    """Simulated cores share `MemberRecords`: the converged table is one set of records, and
    after a crash every survivor's suspect and dead record for the lost member is one object
    (22 million pairs at 10,000 agents); a record never changes, so a snapshot taken before
    stays as it was."""
    net = GossipNet(seed=3)
    for i in range(6):
        net.add(f"m{i}", meta={"region": f"r{i % 2}"})
    net.preload_converged()
    a, b = net.agents["m1"].core, net.agents["m2"].core
    assert a.members["m5"] is b.members["m5"]  # one record, held by both
    assert len(a.members) == 6 and a.live_count() == 6 and a.members["m1"] is a.me
    before = a.snapshot()
    net.crash("m5")
    net.run(30)
    for name in ("m0", "m1", "m2", "m3", "m4"):
        assert net.view(name)["m5"] == "dead"
    assert a.members["m5"] is b.members["m5"]
    assert a.members["m5"].status is Status.DEAD and a.live_count() == 5
    assert [m.status for m in before] == [Status.ALIVE] * 6  # the snapshot did not move
    # a core without shared records (a real agent's) makes its own
    lone = Gossip("x", ("x", 1), {}, random.Random(1), 0.0)
    lone.handle(0.0, ("y", 1), "y", [[MsgType.ALIVE, "y", 0, ("y", 1), 1, {}]])
    other = Gossip("z", ("z", 1), {}, random.Random(2), 0.0)
    other.handle(0.0, ("y", 1), "y", [[MsgType.ALIVE, "y", 0, ("y", 1), 1, {}]])
    assert lone.members["y"] == other.members["y"] and lone.members["y"] is not other.members["y"]


def test_shared_records_do_not_merge_a_forged_address() -> None:
    """Two records under one (name, incarnation, status, metadata version) but different
    addresses stay apart: interning never hands a core a record it was not told about."""
    records = MemberRecords()
    first = records.get("y", ("10.0.0.1", 1), 0, Status.ALIVE, {}, 1)
    assert records.get("y", ("10.0.0.1", 1), 0, Status.ALIVE, {}, 1) is first
    forged = records.get("y", ("10.6.6.6", 1), 0, Status.ALIVE, {}, 1)
    assert forged.addr == ("10.6.6.6", 1) and forged is not first
    other_meta = records.get("y", ("10.0.0.1", 1), 0, Status.ALIVE, {"k": 1}, 1)
    assert other_meta.meta == {"k": 1}


def _healthy_declared_dead(lifeguard: bool) -> tuple[int, int]:
    """A 10-member cluster where m3 handles every packet 4 s late for 3 minutes: how often a
    healthy member is declared dead, and how often one is suspected."""
    dead = suspected = 0

    def on_event(observer: str, ev: MemberEvent) -> None:
        nonlocal dead, suspected
        if ev.name != "m3":
            dead += ev.kind == "dead"
            suspected += ev.kind == "suspect"

    net = cluster(10, config=GossipConfig(lifeguard=lifeguard))
    net._on_event = on_event
    net.slow("m3", 4.0)
    net.run(180)
    return dead, suspected


def test_lifeguard_keeps_a_slow_member_from_killing_healthy_ones() -> None:
    """Lifeguard's claim on the simulator's slow-member fault: the slow member's own missed
    acks raise its awareness (longer probe timeouts) and its lone suspicions start at the
    maximum timeout, so healthy members are never declared dead; plain SWIM kills them."""
    dead_on, suspected_on = _healthy_declared_dead(lifeguard=True)
    dead_off, suspected_off = _healthy_declared_dead(lifeguard=False)
    assert dead_on == 0
    assert dead_off > 0
    assert suspected_on * 5 < suspected_off
