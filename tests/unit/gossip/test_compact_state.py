"""The core's compact bookkeeping for large outages (grouped timers, the sorted list of members
not alive, helpers found by position) must give exactly what the plain walks gave."""

from __future__ import annotations

import math
import random

from gossip.core import ALIVE, Gossip, GossipConfig, MemberEvent, Status
from gossip.messages import MsgType
from sim.gossip_net import GossipNet


def _check_views(core: Gossip, went_down: dict[tuple[str, str], float]) -> None:
    others = [n for n in core.members if n != core.name]
    assert sorted(core._names) == sorted(others)
    assert core._down == sorted(n for n in others if core.members[n].status is not ALIVE)
    assert list(core._down_since) == [
        math.inf if core.members[n].status is Status.SUSPECT else went_down[(core.name, n)]
        for n in core._down
    ]
    statuses = [m.status for m in core.members.values()]
    assert core.status_counts() == (
        statuses.count(ALIVE),
        statuses.count(Status.SUSPECT),
        statuses.count(Status.DEAD) + statuses.count(Status.LEFT),
    )
    alive = sorted(n for n in others if core.members[n].status is ALIVE)
    for skip in (None, *alive[:3]):
        expected = [n for n in alive if n != skip]
        assert [core._nth_alive(j, skip) for j in range(len(expected))] == expected


def test_views_follow_an_outage_with_revivals() -> None:
    """A third of 30 members crash and are reaped, one rejoins, another is suspected and
    refutes: each core's sorted list of members not alive matches its table, and its j-th
    alive helper is the j-th of the sorted alive members."""
    went_down: dict[tuple[str, str], float] = {}

    def note(observer: str, ev: MemberEvent) -> None:
        if ev.kind in ("dead", "left"):
            went_down[(observer, ev.name)] = ev.at_s

    net = GossipNet(seed=5, config=GossipConfig(reap_after_s=30.0), on_event=note)
    for i in range(30):
        net.add(f"n{i:02d}", region=f"r{i % 3}")
    net.preload_converged()
    net.run(5.0)
    victims = [n for n in net.agents if net.agents[n].region == "r0"]
    for v in victims:
        net.crash(v)
    downs = 0
    for _ in range(12):
        net.run(5.0)
        for name, agent in net.agents.items():
            if name not in victims:
                _check_views(agent.core, went_down)
                downs += len(agent.core._down)
    assert downs > 0, "the outage was never seen"
    for name, agent in net.agents.items():
        if name not in victims:
            members = agent.core.members
            assert all(v not in members or members[v].status is Status.DEAD for v in victims)
    # a reaped member rejoins, an alive one is suspected: both lists follow
    core = net.agents["n01"].core
    back = victims[1]
    assert core.counters.get("reaped", 0) > 0 and back not in core.members
    core.handle(net.engine.now, (back, 1), back, [[MsgType.ALIVE, back, 9, (back, 1), 1, {}]])
    assert core.members[back].status is Status.ALIVE
    net.agents["n01"].flush()
    _check_views(core, went_down)
    dead = victims[2]
    core.handle(net.engine.now, (dead, 1), dead, [[MsgType.SUSPECT, "n02", 0, dead]])
    assert core.members["n02"].status is Status.SUSPECT
    net.agents["n01"].flush()
    _check_views(core, went_down)
    core.handle(net.engine.now, ("n02", 1), "n02", [[MsgType.ALIVE, "n02", 1, ("n02", 1), 1, {}]])
    assert core.members["n02"].status is Status.ALIVE  # refuted
    net.agents["n01"].flush()
    _check_views(core, went_down)


def test_suspicions_started_together_die_together_in_order() -> None:
    """Suspicions one packet starts share a timer (their first check, then their deadline):
    all are declared dead at their deadline, in the order the packet named them; one refuted
    in between is not."""
    g = Gossip("me", ("me", 1), {}, random.Random(1), 0.0, GossipConfig(probe_interval_s=1000.0))
    peers = [f"p{i}" for i in range(10)]
    for p in peers:
        g.handle(0.0, (p, 1), p, [[MsgType.ALIVE, p, 0, (p, 1), 1, {}]])
    accused = ["p5", "p2", "p7"]
    g.handle(1.0, ("p0", 1), "p0", [[MsgType.SUSPECT, p, 0, "p0"] for p in accused])
    deadlines = {g.suspicions[p].deadline_s for p in accused}
    assert len(deadlines) == 1
    assert [t[2] for t in g._timers if "check" in t[2] or t[2] == "suspicion"] == ["first_checks"]
    g.handle(2.0, ("p2", 1), "p2", [[MsgType.ALIVE, "p2", 1, ("p2", 1), 1, {}]])  # refutes
    g.events.clear()
    g.tick(g.suspicions["p5"].earliest_s)  # the first check: not confirmed, not yet
    assert {"p5", "p7"} <= g.suspicions.keys() and "p2" not in g.suspicions
    assert not [e for e in g.events if e.kind == "dead"]
    assert len([t for t in g._timers if t[2] == "suspicion"]) == 1  # the two, together
    g.tick(deadlines.pop())
    dead = [(e.kind, e.name) for e in g.events if e.kind == "dead"]
    assert dead == [("dead", "p5"), ("dead", "p7")]
    assert g.members["p2"].status is Status.ALIVE
    assert not g.suspicions.keys() & set(accused)


def test_a_suspicion_out_of_time_order_still_gets_its_first_check() -> None:
    """First checks wait in a FIFO in the order suspicions started; one started at an earlier
    instant than the FIFO's last (time handed in out of order) gets a timer of its own, and
    both are still declared dead at their own deadlines (without Lifeguard, a suspicion's
    first check is its deadline: one checked late would die late)."""
    config = GossipConfig(probe_interval_s=1000.0, lifeguard=False)
    g = Gossip("me", ("me", 1), {}, random.Random(1), 0.0, config)
    for p in ("p1", "p2", "p3", "p4", "p5"):
        g.handle(0.0, (p, 1), p, [[MsgType.ALIVE, p, 0, (p, 1), 1, {}]])
    g.handle(5.0, ("p1", 1), "p1", [[MsgType.SUSPECT, "p4", 0, "p1"]])
    g.handle(3.0, ("p2", 1), "p2", [[MsgType.SUSPECT, "p5", 0, "p2"]])
    late, early = g.suspicions["p4"], g.suspicions["p5"]
    assert late.bounds is early.bounds and early.earliest_s < late.earliest_s
    assert early.deadline_s == early.earliest_s
    g.events.clear()
    for when in sorted((late.deadline_s, early.deadline_s)):
        g.tick(when)
    dead = {e.name: e.at_s for e in g.events if e.kind == "dead"}
    assert dead == {"p5": early.deadline_s, "p4": late.deadline_s}


def test_members_are_reaped_in_the_order_and_at_the_time_they_went_down() -> None:
    """Reaps wait in one FIFO with a timer at its head: each member still goes exactly
    `reap_after_s` after it went down here, and one that came back first is kept."""
    g = Gossip("me", ("me", 1), {}, random.Random(1), 0.0, GossipConfig(reap_after_s=10.0))
    names = [f"p{i}" for i in range(40)]
    for n in names:
        g.handle(0.0, (n, 1), n, [[MsgType.ALIVE, n, 0, (n, 1), 1, {}]])
    # declared dead at 1.0, 1.5, 2.0, ...: five at a time, one packet per instant
    went_down: dict[str, float] = {}
    for step in range(8):
        now = 1.0 + step / 2
        batch = names[step * 5 : step * 5 + 5]
        g.handle(now, ("x", 1), "x", [[MsgType.DEAD, n, 0, "x", False] for n in batch])
        went_down.update(dict.fromkeys(batch, now))
    back = names[7]  # refutes with a higher incarnation before its reap
    g.handle(5.0, (back, 1), back, [[MsgType.ALIVE, back, 1, (back, 1), 1, {}]])
    reaped_at: dict[str, float] = {}
    now = 5.0
    while now < 30.0:
        now = min(g.next_deadline(), 30.0)
        before = set(g.members)
        g.tick(now)
        reaped_at.update(dict.fromkeys(before - set(g.members), now))
    # (it never answers a probe, so it goes down again: reaped 10 s after that, not before)
    last_down = {ev.name: ev.at_s for ev in g.events if ev.kind == "dead"}
    assert last_down[back] > 5.0
    assert {n: t for n, t in last_down.items() if n != back} == {
        n: t for n, t in went_down.items() if n != back
    }
    assert reaped_at == {n: t + 10.0 for n, t in last_down.items()}
    assert len(g._reaps) == 0 and "reaps" not in {t[2] for t in g._timers}
