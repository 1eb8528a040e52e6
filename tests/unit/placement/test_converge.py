"""The convergence engine: each rule of `placement.converge` as a small table of views."""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from placement import ClusterView, ServoRef
from placement.converge import (
    Create,
    Desired,
    Remove,
    ServoView,
    Start,
    Stop,
    UpdatePolicy,
    converge,
    effective_status,
    host_actions,
    recovery_owner,
    servo_id_for,
)
from tests.unit.placement.test_place import node

WEB = Desired("web", 3, 100, 100)
REGIONS = ["eu", "eu", "us", "us", "ap"]


def world(
    servos: list[ServoView], statuses: dict[str, str] | None = None
) -> tuple[ClusterView, list[ServoView]]:
    """Five nodes in three regions; each node's live servos are attached for placement."""
    statuses = statuses or {}
    nodes = []
    for i, region in enumerate(REGIONS):
        name = f"n{i}"
        here = tuple(
            ServoRef(s.project, s.servo_id)
            for s in servos
            if s.node == name and s.state in ("starting", "running", "restarting")
        )
        nodes.append(node(name, region, status=statuses.get(name, "alive"), servos=here))
    return ClusterView(tuple(nodes)), servos


def running(slot: int, node: str, created: int = 0, state: str = "running") -> ServoView:
    return ServoView(f"web-1-{slot}-{node}", "web", node, state, 1, slot, created)


def three() -> list[ServoView]:
    return [running(0, "n0"), running(1, "n2"), running(2, "n4")]


def test_owner_is_the_same_whatever_the_order_and_moves_only_when_it_dies() -> None:
    names = [f"n{i}" for i in range(10)]
    owner = recovery_owner("web", names)
    shuffled = names[:]
    random.Random(1).shuffle(shuffled)
    assert recovery_owner("web", shuffled) == owner
    others = {p: recovery_owner(p, names) for p in (f"p{i}" for i in range(50))}
    assert len(set(others.values())) > 3
    survivors = [n for n in names if n != owner]
    moved = {p for p, o in others.items() if recovery_owner(p, survivors) != o}
    assert all(others[p] == owner for p in moved)
    assert recovery_owner("web", []) is None


def test_fresh_deploy_places_every_slot_with_deterministic_ids() -> None:
    plan = converge(WEB, *world([]))
    assert [a.slot for a in plan.creates] == [0, 1, 2]
    assert {a.node for a in plan.creates} & {"n0", "n2", "n4"}  # one per region first
    regions = {REGIONS[int(a.node[1])] for a in plan.creates}
    assert regions == {"eu", "us", "ap"}
    assert all(a.servo_id == servo_id_for("web", 1, a.slot, a.node) for a in plan.creates)
    assert converge(WEB, *world([])) == plan  # another agent plans the very same ids


def test_dead_nodes_servo_is_replaced_in_its_slot_elsewhere() -> None:
    view, servos = world(three(), {"n2": "dead"})
    plan = converge(WEB, view, servos)
    (create,) = plan.actions
    assert isinstance(create, Create) and create.slot == 1
    assert create.node == "n3"  # us again: spread, not a node already running web
    assert "n2 is dead" in create.why


def test_suspect_and_restarting_nodes_still_count() -> None:
    for status in ("suspect", "restarting"):
        assert converge(WEB, *world(three(), {"n2": status})).actions == ()


def test_a_returning_node_keeps_its_original_and_the_replacement_goes() -> None:
    servos = [*three(), running(1, "n3", created=50)]  # slot 1 replaced while n2 was away
    plan = converge(WEB, *world(servos))
    assert plan.actions == (
        Remove("web", "web-1-1-n3", "n3", "slot 1 held twice; the original stays"),
    )


def test_scale_down_removes_the_highest_slots_and_never_deletes_data() -> None:
    servos = [*three(), running(3, "n1"), running(4, "n3")]
    plan = converge(WEB, *world(servos))
    assert [(type(a), a.servo_id) for a in plan.actions] == [
        (Remove, "web-1-4-n3"),
        (Remove, "web-1-3-n1"),
    ]


def test_failed_servo_is_replaced_elsewhere_then_removed() -> None:
    servos = [running(0, "n0"), running(1, "n2", state="failed"), running(2, "n4")]
    view, _ = world(servos)
    plan = converge(WEB, view, servos)
    (create,) = plan.actions
    assert isinstance(create, Create) and create.node == "n3" and create.slot == 1
    # n2 is excluded for it even when n3 cannot take it
    full = ClusterView(
        tuple(
            node(n.name, n.region, free_mem=0, servos=n.servos) if n.name == "n3" else n
            for n in view.nodes
        )
    )
    assert converge(WEB, full, servos).creates[0].node == "n1"
    # once the replacement counts, the failed one stays listed (its logs are why) until a new
    # generation replaces it; its node stays excluded meanwhile
    after = [*servos, running(1, "n3", created=9)]
    assert converge(WEB, *world(after)).actions == ()
    newer = Desired("web", 3, 100, 100, generation=2)
    assert Remove("web", "web-1-1-n2", "n2", "failed in an older generation") in (
        converge(newer, *world(after)).actions
    )


def test_drain_replaces_first_and_removes_after() -> None:
    view, servos = world(three(), {"n2": "draining"})
    plan = converge(WEB, view, servos)
    assert [type(a) for a in plan.actions] == [Create]
    assert plan.creates[0].node == "n3"
    moved = [*servos, running(1, "n3", created=9)]
    view, _ = world(moved, {"n2": "draining"})
    assert converge(WEB, view, moved).actions == (
        Remove("web", "web-1-1-n2", "n2", "n2 draining; replaced"),
    )


def test_no_room_means_missing_explained_and_nothing_removed() -> None:
    huge = Desired("web", 3, 10_000, 100)
    plan = converge(huge, *world([]))
    assert plan.creates == () and plan.missing == 3
    assert plan.decision is not None and plan.decision.summary() == {"insufficient_memory": 5}


def test_stopped_project_plans_nothing_at_the_owner_and_stopped_servos_hold_slots() -> None:
    assert converge(Desired("web", 3, 100, 100, stopped=True), *world(three())).actions == ()
    servos = [running(0, "n0", state="stopped"), *three()[1:]]
    assert converge(WEB, *world(servos)).actions == ()


def test_host_actions_follow_the_desired_state() -> None:
    here = [running(0, "n0"), ServoView("db-1-0-x", "db", "n0", "stopped"), running(5, "n0")]
    desired = {"web": Desired("web", 3, 1, 1, stopped=True), "db": Desired("db", 1, 1, 1)}
    actions = host_actions("n0", here, desired)
    assert [type(a) for a in actions] == [Start, Stop, Stop]
    assert [type(a) for a in host_actions("n0", here, {"web": None})] == [Remove, Remove]
    assert host_actions("n0", here, {}) == []  # never act on a project not heard of


def test_effective_status() -> None:
    assert effective_status("alive") == "alive"
    assert effective_status("alive", draining=True) == "draining"
    graceful = {"stopping_ms": 1_000, "grace_ms": 60_000}
    assert effective_status("dead", now_ms=30_000, **graceful) == "restarting"
    assert effective_status("dead", now_ms=61_001, **graceful) == "dead"
    assert effective_status("left", now_ms=30_000, **graceful) == "left"
    assert effective_status("dead", now_ms=30_000) == "dead"


@settings(max_examples=200, deadline=None)
@given(
    replicas=st.integers(0, 6),
    held=st.lists(
        st.tuples(
            st.integers(0, 7),
            st.sampled_from(["n0", "n1", "n2", "n3", "n4"]),
            st.sampled_from(["running", "failed", "stopped", "restarting"]),
            st.integers(0, 3),
        ),
        max_size=8,
        unique_by=lambda t: (t[0], t[1]),
    ),
    dead=st.sets(st.sampled_from(["n0", "n1", "n2", "n3", "n4"]), max_size=2),
)
def test_applying_the_plan_reaches_the_count_when_there_is_room(
    replicas: int, held: list[tuple[int, str, str, int]], dead: set[str]
) -> None:
    """Carry out the plan (creates succeed, removes happen) until it is empty: the project
    ends at exactly its count of counted servos, and never more than 4 rounds."""
    desired = Desired("web", replicas, 100, 100, max_per_host=2)
    servos = [
        ServoView(f"s{slot}-{n}", "web", n, state, 1, slot, created)
        for slot, n, state, created in held
    ]
    statuses = {n: "dead" for n in dead}
    for _ in range(4):
        view, _ = world(servos, statuses)
        plan = converge(desired, view, servos)
        if not plan.actions:
            break
        gone = {a.servo_id for a in plan.removes}
        servos = [s for s in servos if s.servo_id not in gone]
        servos += [
            ServoView(a.servo_id, "web", a.node, "running", 1, a.slot, 99) for a in plan.creates
        ]
    view, _ = world(servos, statuses)
    final = converge(desired, view, servos)
    assert final.actions == ()
    counted = [s for s in servos if s.node not in dead and s.state != "failed"]
    assert len(counted) == replicas or (len(counted) < replicas and final.missing > 0)
    assert len({s.servo_id for s in servos}) == len(servos)


def roll(
    desired: Desired,
    servos: list[ServoView],
    statuses: dict[str, str],
    start_ms: int,
    outcome: Callable[[ServoView], ServoView],
) -> tuple[list[ServoView], list[int], int]:
    """Carry out plans every second from `start_ms`; new servos become running at once and
    `outcome(servo)` decides their state. Returns the servos, the counted-running series and
    the time the rollout ended."""
    series = []
    now = start_ms
    for _ in range(200):
        view, _ = world(servos, statuses)
        plan = converge(desired, view, servos, now_ms=now)
        assert plan.rollout is not None
        if plan.rollout.state != "in_progress":
            return servos, series, now
        gone = {a.servo_id for a in plan.removes}
        servos = [s for s in servos if s.servo_id not in gone]
        for a in plan.creates:
            servos.append(
                outcome(
                    ServoView(a.servo_id, "web", a.node, "running", a.generation, a.slot, now, now)
                )
            )
        series.append(
            sum(1 for s in servos if s.state == "running" and statuses.get(s.node) != "dead")
        )
        now += 1000
    raise AssertionError("the rollout never ended")


def test_rolling_update_surges_one_at_a_time_even_with_no_spare_host() -> None:
    v1 = [running(0, "n0"), running(1, "n2"), running(2, "n4")]
    v1 = [attrs.evolve(s, ready_since_ms=1) for s in v1]
    only_three = {"n1": "dead", "n3": "dead"}
    v2 = Desired("web", 3, 100, 100, generation=2, rollout_started_ms=1000)
    servos, series, ended = roll(v2, v1, only_three, 1000, lambda s: s)
    assert sorted((s.generation, s.slot) for s in servos) == [(2, 0), (2, 1), (2, 2)]
    assert min(series) >= 3 and max(series) <= 4  # never below replicas, surge 1
    assert {s.node for s in servos} == {"n0", "n2", "n4"}  # each new one beside its old one
    assert 15_000 <= ended - 1000 <= 25_000  # three steps of 5 s proven health


def test_a_broken_version_fails_the_rollout_and_old_servos_stay() -> None:
    v1 = [attrs.evolve(s, ready_since_ms=1) for s in three()]
    v2 = Desired("web", 3, 100, 100, generation=2, rollout_started_ms=1000)

    def crashes(s: ServoView) -> ServoView:
        return attrs.evolve(s, state="failed", ready_since_ms=0)

    servos, _, _ = roll(v2, v1, {}, 1000, crashes)
    view, _ = world(servos)
    plan = converge(v2, view, servos, now_ms=5000)
    assert plan.rollout is not None and plan.rollout.state == "failed"
    assert "failed" in plan.rollout.reason and plan.actions == ()
    assert sum(1 for s in servos if s.generation == 1 and s.state == "running") == 3
    # rolling back is desiring generation 1 again: the failed new servo goes, nothing else
    back = Desired("web", 3, 100, 100, generation=1)
    assert [type(a) for a in converge(back, view, servos, now_ms=5000).actions] == [Remove]


def test_a_rollout_that_never_gets_healthy_fails_at_its_deadline() -> None:
    v1 = [attrs.evolve(s, ready_since_ms=1) for s in three()]
    policy = UpdatePolicy(deadline_s=30)
    v2 = Desired("web", 3, 100, 100, generation=2, update=policy, rollout_started_ms=1000)

    def never_healthy(s: ServoView) -> ServoView:
        return attrs.evolve(s, state="starting", ready_since_ms=0)

    _, _, ended = roll(v2, v1, {}, 1000, never_healthy)
    assert ended - 1000 > 30_000
    plan = converge(v2, *world(three()), now_ms=ended)
    assert plan.rollout is not None and "after 30 s" in plan.rollout.reason
