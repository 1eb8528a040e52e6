"""What happened between two looks at the cluster: the operator's events, as a pure diff.

Every agent already holds the whole cluster's state (gossip: members, their capacity and
servos; spec replication: projects and their rollouts), so the events an operator wants ("b1 is
dead", "web's servo moved from b1 to c1", "rollout of web generation 3 succeeded") are the
differences between two consecutive snapshots of that state. Diffing rather than hooking the
places where things change means one home for the rule, the same feed on every agent whichever
agent did the work, and no event code inside gossip, the engine or the host duties.

`snapshot` reads a view into plain frozen values; `diff(before, after)` returns `Change`s in a
stable order (members, then projects, then servos). Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

# statuses under which a node still answers: a servo that vanishes from one was removed; one
# that vanishes with its node (dead, left, forgotten) was not, it was lost
_REACHABLE = frozenset({"alive", "draining"})
# states of a servo that are news when a running servo enters them
_STATE_NEWS = {"failed": "servo.failed", "stopped": "servo.stopped"}


@attrs.frozen
class MemberSnap:
    status: str
    region: str
    zone: str


@attrs.frozen
class ServoSnap:
    project: str
    node: str
    state: str
    generation: int
    slot: int
    restarts: int
    exit_reason: str = ""


@attrs.frozen
class ProjectSnap:
    generation: int
    replicas: int
    stopped: bool
    rollout_generation: int = 0  # 0: no rollout recorded
    rollout_state: str = ""
    rollout_updated: int = 0
    rollout_healthy: int = 0
    rollout_reason: str = ""


@attrs.frozen
class Snapshot:
    members: Mapping[str, MemberSnap] = attrs.field(factory=dict)
    servos: Mapping[str, ServoSnap] = attrs.field(factory=dict)
    projects: Mapping[str, ProjectSnap] = attrs.field(factory=dict)


@attrs.frozen
class Change:
    """One event before it gets an id and a time: `kind` is `area.what` (`member.dead`),
    `text` one line for a person, `fields` what scripts filter on (node, project, servo...)."""

    kind: str
    text: str
    fields: Mapping[str, Any] = attrs.field(factory=dict)


def snapshot(
    peers: Iterable[Any],
    projects: Iterable[Any],
    rollout_of: Callable[[Any], Mapping[str, Any] | None] = lambda _p: None,
) -> Snapshot:
    """Plain values from `node.cluster.Peer`s and `node.projects.Project`s. `rollout_of` gives a
    project's live rollout counts (`ProjectService.rollout_view`); asked only while a rollout
    is in progress, as it costs a plan."""
    members: dict[str, MemberSnap] = {}
    servos: dict[str, ServoSnap] = {}
    for peer in peers:
        members[peer.name] = MemberSnap(peer.status, peer.region, peer.zone)
        for s in peer.servos:
            reason = str(s.last_exit.get("reason", "")) if s.last_exit else ""
            servos[s.servo_id] = ServoSnap(
                s.project, s.node, s.state, s.generation, s.slot, s.restarts, reason
            )
    out: dict[str, ProjectSnap] = {}
    for project in projects:
        record = project.rollout
        snap = ProjectSnap(project.generation, project.replicas, project.stopped)
        if record is not None:
            live = rollout_of(project) if record.state == "in_progress" else None
            snap = attrs.evolve(
                snap,
                rollout_generation=record.generation,
                rollout_state=str(live.get("state", record.state)) if live else record.state,
                rollout_updated=int(live.get("updated", 0)) if live else 0,
                rollout_healthy=int(live.get("healthy", 0)) if live else 0,
                rollout_reason=record.reason,
            )
        out[project.name] = snap
    return Snapshot(members, servos, out)


def diff(before: Snapshot, after: Snapshot) -> list[Change]:
    return [
        *_members(before.members, after.members),
        *_projects(before.projects, after.projects),
        *_servos(before, after),
    ]


def _members(before: Mapping[str, MemberSnap], after: Mapping[str, MemberSnap]) -> list[Change]:
    out = []
    for name, now in sorted(after.items()):
        fields = {"node": name, "status": now.status, "region": now.region, "zone": now.zone}
        was = before.get(name)
        if was is None:
            where = f"{now.region}/{now.zone}"
            out.append(Change("member.joined", f"{name} joined ({where}, {now.status})", fields))
        elif was.status != now.status:
            text = f"{name} is {now.status} (was {was.status})"
            out.append(Change(f"member.{now.status}", text, fields | {"was": was.status}))
    for name in sorted(set(before) - set(after)):
        fields = {"node": name, "status": "gone", "was": before[name].status}
        out.append(Change("member.forgotten", f"{name} is no longer listed", fields))
    return out


def _projects(before: Mapping[str, ProjectSnap], after: Mapping[str, ProjectSnap]) -> list[Change]:
    out: list[Change] = []
    for name, now in sorted(after.items()):
        was = before.get(name)
        base = {"project": name, "generation": now.generation}
        if was is None:
            text = f"{name} created: generation {now.generation}, {now.replicas} replica(s)"
            out.append(Change("project.created", text, base | {"replicas": now.replicas}))
            out.extend(_rollout(name, ProjectSnap(0, 0, False), now))
            continue
        if was.replicas != now.replicas:
            text = f"{name} scaled from {was.replicas} to {now.replicas}"
            out.append(Change("project.scaled", text, base | {"replicas": now.replicas}))
        if was.stopped != now.stopped:
            what = "stopped" if now.stopped else "started"
            out.append(Change(f"project.{what}", f"{name} {what}", base))
        out.extend(_rollout(name, was, now))
    for name in sorted(set(before) - set(after)):
        out.append(Change("project.destroyed", f"{name} destroyed", {"project": name}))
    return out


def _rollout(name: str, was: ProjectSnap, now: ProjectSnap) -> list[Change]:
    gen = now.rollout_generation
    if not gen:
        return []
    fields = {
        "project": name,
        "generation": gen,
        "state": now.rollout_state,
        "updated": now.rollout_updated,
        "healthy": now.rollout_healthy,
        "replicas": now.replicas,
    }
    new = gen != was.rollout_generation
    if new and now.rollout_state == "in_progress":
        text = f"{name}: rollout of generation {gen} started"
        return [Change("rollout.started", text, fields)]
    if not new and was.rollout_state == now.rollout_state:
        if now.rollout_state == "in_progress" and (
            (was.rollout_updated, was.rollout_healthy) != (now.rollout_updated, now.rollout_healthy)
        ):
            text = (
                f"{name}: generation {gen} {now.rollout_updated}/{now.replicas} updated, "
                f"{now.rollout_healthy} healthy"
            )
            return [Change("rollout.progress", text, fields)]
        return []
    if now.rollout_state in ("succeeded", "failed", "rolled_back"):
        why = f": {now.rollout_reason}" if now.rollout_reason else ""
        what = now.rollout_state.replace("_", " ")
        text = f"{name}: rollout of generation {gen} {what}{why}"
        return [
            Change(f"rollout.{now.rollout_state}", text, fields | {"reason": now.rollout_reason})
        ]
    return []


def _servos(before: Snapshot, after: Snapshot) -> list[Change]:
    out: list[Change] = []
    for sid, now in sorted(after.servos.items()):
        fields = {"servo": sid, "project": now.project, "node": now.node, "state": now.state}
        was = before.servos.get(sid)
        if was is None:
            origin = _moved_from(sid, now, before, after)
            if origin is not None:
                text = f"{now.project}: servo moved from {origin} to {now.node} ({sid})"
                out.append(Change("servo.moved", text, fields | {"from": origin}))
            else:
                text = f"{now.project}: servo {sid} created on {now.node}"
                out.append(Change("servo.created", text, fields))
            continue
        why = f" ({now.exit_reason})" if now.exit_reason else ""
        if now.restarts > was.restarts and now.state != "failed":
            text = f"{now.project}: servo {sid} restarted on {now.node}{why}, {now.restarts} so far"
            extra = {"restarts": now.restarts, "reason": now.exit_reason}
            out.append(Change("servo.restarted", text, fields | extra))
        if was.state != now.state:
            kind = _STATE_NEWS.get(now.state)
            if kind is None and was.state == "stopped" and now.state == "running":
                kind = "servo.started"
            if kind is not None:
                text = f"{now.project}: servo {sid} {now.state} on {now.node}"
                text += why if now.state == "failed" else ""
                out.append(Change(kind, text, fields | {"reason": now.exit_reason}))
    for sid, was in sorted(before.servos.items()):
        if sid in after.servos:
            continue
        host = after.members.get(was.node)
        if host is None or host.status not in _REACHABLE:
            continue  # lost with its node (reported as the node's death), not removed
        text = f"{was.project}: servo {sid} removed from {was.node}"
        fields = {"servo": sid, "project": was.project, "node": was.node, "state": "removed"}
        out.append(Change("servo.removed", text, fields))
    return out


def _moved_from(sid: str, now: ServoSnap, before: Snapshot, after: Snapshot) -> str | None:
    """The node a new servo replaces one on: same project, slot and generation, on another
    node that is no longer reachable (or draining), or whose servo failed."""
    for other_id, old in sorted(before.servos.items()):
        if other_id == sid or old.node == now.node:
            continue
        if (old.project, old.slot, old.generation) != (now.project, now.slot, now.generation):
            continue
        host = after.members.get(old.node)
        gone = host is None or host.status not in ("alive",)
        if gone or old.state == "failed" or other_id not in after.servos:
            return old.node
    return None
