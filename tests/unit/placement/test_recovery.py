from __future__ import annotations

import random

from placement import ClusterView, ServoRef
from placement.recovery import (
    ProjectSpec,
    choose_scale_down,
    plan_project,
    plan_recovery,
    recovery_owner,
)
from tests.unit.placement.test_place import node

WEB = ProjectSpec("web", 3, 100, 100)


def cluster(dead: str | None = None, extra: bool = False) -> ClusterView:
    nodes = []
    for i, region in enumerate(["eu", "eu", "us", "us", "ap"]):
        servos = (ServoRef("web", f"w{i}"),) if i < 3 else ()
        if extra and i == 4:
            servos = (ServoRef("web", "w-returned"),)
        name = f"n{i}"
        nodes.append(node(name, region, status="dead" if name == dead else "alive", servos=servos))
    return ClusterView(tuple(nodes))


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


def test_dead_nodes_servo_is_recreated_elsewhere_by_its_owner_only() -> None:
    view = cluster(dead="n1")
    plan = plan_project(WEB, view)
    assert len(plan.creates) == 1
    target, servo_id = plan.creates[0]
    assert target in {"n3", "n4"}  # not a host already running web, not the dead one
    alive = [n.name for n in view.nodes if n.status == "alive"]
    owner = recovery_owner("web", alive)
    for me in alive:
        actions = plan_recovery([WEB], view, me)
        assert bool(actions) == (me == owner)
    assert plan_project(WEB, view).creates[0][1] == servo_id  # same ids on every planner


def test_returned_node_extras_are_removed_to_the_exact_count() -> None:
    view = cluster(extra=True)
    plan = plan_project(WEB, view)
    assert plan.creates == () and len(plan.removes) == 1
    # the servos left keep one per region where possible: the removed one is in a doubled region
    left = {"w0": "eu", "w1": "eu", "w2": "us", "w-returned": "ap"}
    del left[plan.removes[0].servo_id]
    assert sorted(left.values()) == ["ap", "eu", "us"]


def test_stopped_project_wants_nothing_and_capacity_short_plan_is_partial() -> None:
    stopped = ProjectSpec("web", 3, 100, 100, stopped=True)
    assert len(plan_project(stopped, cluster()).removes) == 3
    huge = ProjectSpec("web", 5, 100, 100)
    plan = plan_project(huge, cluster())
    assert len(plan.creates) == 2 and plan.missing == 0
    bigger = ProjectSpec("web", 7, 100, 100)
    assert plan_project(bigger, cluster()).missing == 2


def test_scale_down_keeps_spread() -> None:
    view = cluster(extra=True)
    victims = choose_scale_down(WEB, view, 2)
    assert len(victims) == 2 and len({v.servo_id for v in victims}) == 2
    assert choose_scale_down(WEB, view, 2) == victims
