"""The operator's events as the difference between two looks at the cluster (a table per area:
each row is a before, an after, and the kinds that must come out)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from node.cluster import Peer, ServoEntry
from node.event_diff import MemberSnap, ProjectSnap, ServoSnap, Snapshot, diff, snapshot
from node.projects import Project, RolloutRecord


def members(**statuses: str) -> dict[str, MemberSnap]:
    return {name: MemberSnap(status, "eu", "eu-1") for name, status in statuses.items()}


def servo(node: str, state: str = "running", slot: int = 0, **kw: Any) -> ServoSnap:
    return ServoSnap(
        kw.pop("project", "web"), node, state, kw.pop("generation", 1), slot,
        kw.pop("restarts", 0), **kw,
    )  # fmt: skip


def kinds(before: Snapshot, after: Snapshot) -> list[str]:
    return [c.kind for c in diff(before, after)]


MEMBER_CASES = [
    ({"a": "alive"}, {"a": "alive", "b": "alive"}, ["member.joined"]),
    ({"a": "alive"}, {"a": "suspect"}, ["member.suspect"]),
    ({"a": "suspect"}, {"a": "dead"}, ["member.dead"]),
    ({"a": "suspect"}, {"a": "alive"}, ["member.alive"]),
    ({"a": "alive"}, {"a": "left"}, ["member.left"]),
    ({"a": "alive"}, {"a": "draining"}, ["member.draining"]),
    ({"a": "alive"}, {"a": "restarting"}, ["member.restarting"]),
    ({"a": "dead"}, {}, ["member.forgotten"]),
    ({"a": "alive"}, {"a": "alive"}, []),
]


@pytest.mark.parametrize(("before", "after", "expected"), MEMBER_CASES)
def test_member_changes(before: dict[str, str], after: dict[str, str], expected: list[str]) -> None:
    assert kinds(Snapshot(members(**before)), Snapshot(members(**after))) == expected


def test_member_event_names_the_node_and_the_old_status() -> None:
    (change,) = diff(Snapshot(members(b1="suspect")), Snapshot(members(b1="dead")))
    assert change.fields["node"] == "b1"
    assert change.fields["was"] == "suspect"
    assert "b1 is dead" in change.text


SERVO_CASES: list[tuple[str, Snapshot, Snapshot, list[str]]] = [
    (
        "a new servo in a new slot is created",
        Snapshot(members(a="alive"), {}),
        Snapshot(members(a="alive"), {"s1": servo("a")}),
        ["servo.created"],
    ),
    (
        "a replacement for a dead node's servo moved",
        Snapshot(members(a="dead", b="alive"), {"s1": servo("a")}),
        Snapshot(members(a="dead", b="alive"), {"s1": servo("a"), "s2": servo("b")}),
        ["servo.moved"],
    ),
    (
        "a replacement for a failed servo moved",
        Snapshot(members(a="alive", b="alive"), {"s1": servo("a", "failed")}),
        Snapshot(members(a="alive", b="alive"), {"s1": servo("a", "failed"), "s2": servo("b")}),
        ["servo.moved"],
    ),
    (
        "a new generation in the same slot is a rollout's creation, not a move",
        Snapshot(members(a="alive", b="alive"), {"s1": servo("a")}),
        Snapshot(members(a="alive", b="alive"), {"s1": servo("a"), "s2": servo("b", generation=2)}),
        ["servo.created"],
    ),
    (
        "a servo gone from a live node was removed",
        Snapshot(members(a="alive"), {"s1": servo("a")}),
        Snapshot(members(a="alive"), {}),
        ["servo.removed"],
    ),
    (
        "a servo gone with its node was lost, not removed (the node's death says it)",
        Snapshot(members(a="dead"), {"s1": servo("a")}),
        Snapshot(members(), {}),
        ["member.forgotten"],
    ),
    (
        "an exit restarted in place",
        Snapshot(members(a="alive"), {"s1": servo("a", restarts=0)}),
        Snapshot(members(a="alive"), {"s1": servo("a", restarts=1, exit_reason="oom")}),
        ["servo.restarted"],
    ),
    (
        "too many exits: failed",
        Snapshot(members(a="alive"), {"s1": servo("a", "restarting", restarts=4)}),
        Snapshot(
            members(a="alive"), {"s1": servo("a", "failed", restarts=5, exit_reason="exited")}
        ),
        ["servo.failed"],
    ),
    (
        "stopped and started",
        Snapshot(members(a="alive"), {"s1": servo("a"), "s2": servo("a", "stopped", 1)}),
        Snapshot(members(a="alive"), {"s1": servo("a", "stopped"), "s2": servo("a", slot=1)}),
        ["servo.stopped", "servo.started"],
    ),
    (
        "starting to running is not news",
        Snapshot(members(a="alive"), {"s1": servo("a", "starting")}),
        Snapshot(members(a="alive"), {"s1": servo("a")}),
        [],
    ),
]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [case[1:] for case in SERVO_CASES],
    ids=[case[0] for case in SERVO_CASES],
)
def test_servo_changes(before: Snapshot, after: Snapshot, expected: list[str]) -> None:
    assert kinds(before, after) == expected


def test_a_move_names_where_from_and_to() -> None:
    before = Snapshot(members(a="dead", b="alive"), {"s1": servo("a")})
    after = Snapshot(members(a="dead", b="alive"), {"s1": servo("a"), "s2": servo("b")})
    (change,) = diff(before, after)
    assert (change.fields["from"], change.fields["node"], change.fields["servo"]) == (
        "a",
        "b",
        "s2",
    )
    assert "moved from a to b" in change.text


def test_a_failure_says_why() -> None:
    before = Snapshot(members(a="alive"), {"s1": servo("a", "restarting", restarts=4)})
    after = Snapshot(
        members(a="alive"), {"s1": servo("a", "failed", restarts=5, exit_reason="oom")}
    )
    (change,) = diff(before, after)
    assert change.fields["reason"] == "oom"
    assert "(oom)" in change.text


def project(**kw: Any) -> ProjectSnap:
    return ProjectSnap(**{"generation": 1, "replicas": 3, "stopped": False, **kw})


ROLLING = {"rollout_generation": 2, "rollout_state": "in_progress", "generation": 2}
PROJECT_CASES: list[tuple[str, dict[str, ProjectSnap], dict[str, ProjectSnap], list[str]]] = [
    ("created", {}, {"web": project()}, ["project.created"]),
    ("destroyed", {"web": project()}, {}, ["project.destroyed"]),
    ("scaled", {"web": project()}, {"web": project(replicas=5)}, ["project.scaled"]),
    ("stopped", {"web": project()}, {"web": project(stopped=True)}, ["project.stopped"]),
    ("rollout started", {"web": project()}, {"web": project(**ROLLING)}, ["rollout.started"]),
    (
        "rollout progress",
        {"web": project(**ROLLING)},
        {"web": project(**ROLLING, rollout_updated=1, rollout_healthy=1)},
        ["rollout.progress"],
    ),
    (
        "no progress, no event",
        {"web": project(**ROLLING, rollout_updated=1)},
        {"web": project(**ROLLING, rollout_updated=1)},
        [],
    ),
    (
        "rollout succeeded",
        {"web": project(**ROLLING)},
        {"web": project(**{**ROLLING, "rollout_state": "succeeded"})},
        ["rollout.succeeded"],
    ),
    (
        "rolled back: generation back to 1, the record names the failed 2",
        {"web": project(**ROLLING)},
        {"web": project(rollout_generation=2, rollout_state="rolled_back", rollout_reason="x")},
        ["rollout.rolled_back"],
    ),
    (
        "a new project whose first generation is rolling",
        {},
        {"web": project(rollout_generation=1, rollout_state="in_progress")},
        ["project.created", "rollout.started"],
    ),
]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [case[1:] for case in PROJECT_CASES],
    ids=[case[0] for case in PROJECT_CASES],
)
def test_project_and_rollout_changes(
    before: dict[str, ProjectSnap], after: dict[str, ProjectSnap], expected: list[str]
) -> None:
    assert kinds(Snapshot(projects=before), Snapshot(projects=after)) == expected


def test_the_same_look_twice_is_no_news() -> None:
    look = Snapshot(members(a="alive", b="dead"), {"s1": servo("a")}, {"web": project()})
    assert diff(look, look) == []


def test_snapshot_reads_peers_and_projects_and_asks_live_counts_only_while_rolling() -> None:
    entry = ServoEntry(
        "web-2-0-x", "web", "a", "running", generation=2, restarts=1,
        last_exit={"code": 137, "reason": "oom", "at": "t"},
    )  # fmt: skip
    peer = Peer("a", "alive", "eu", "eu-1", "", "", 100, 50, 1000, 500, (entry,))
    rolling = attrs.evolve(
        Project("web", "img", 3, 64, 100), generation=2, rollout=RolloutRecord(2, "in_progress", 0)
    )
    done = attrs.evolve(
        Project("db", "img", 1, 64, 100), generation=2, rollout=RolloutRecord(2, "succeeded", 0)
    )
    asked: list[str] = []

    def live(p: Project) -> dict[str, Any]:
        asked.append(p.name)
        return {"state": "in_progress", "updated": 2, "healthy": 1}

    snap = snapshot([peer], [rolling, done], live)
    assert snap.members == {"a": MemberSnap("alive", "eu", "eu-1")}
    assert snap.servos["web-2-0-x"] == ServoSnap("web", "a", "running", 2, 0, 1, "oom")
    assert asked == ["web"]
    assert (snap.projects["web"].rollout_updated, snap.projects["web"].rollout_healthy) == (2, 1)
    assert snap.projects["db"].rollout_state == "succeeded"
