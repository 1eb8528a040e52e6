"""The convergence engine: from a project's desired state and a view of the cluster, the ordered
actions that bring the cluster to it, each with the reason it is needed.

Every use case that changes where servos run is this one function: deploy, scale, start,
recovery after a node dies, replacing a failed servo, draining a node, and cleaning up the
over-count left when a node that was thought lost comes back. The agent's executor carries the
actions out over HTTP; the simulator carries the same actions out on its simulated hosts. Neither
decides anything of its own, so a change here changes both (a test pins that).

Rules, in the order they are applied:

- A servo *counts* when its node counts (alive, suspect, or restarting within its grace: a
  suspect may refute, a gracefully restarting agent comes back with its servos) and the servo is
  live (starting, running, restarting in place) or stopped (its host starts it again when the
  project runs: making a new one instead would only leave an extra to remove).
- Too few: the missing slots (0..replicas-1 not held by a counted servo) are placed with `place`
  (the counted servos as `existing`, so spread and anti-affinity hold; nodes where the project
  has a failed servo excluded). Servo ids are deterministic, `project-generation-slot-nodehash`,
  so two agents that race with the same view plan the same ids, and a host treats the second
  create of an id as the same request.
- Too many: first the later duplicates of a slot go (when a node thought lost comes back, its
  servo is the original, with the data, and the replacement made in its absence goes), then the
  highest slots (a scale-down from 5 to 3 removes slots 4 and 3).
- Once the project is at its count: servos on draining nodes go (replacement first, removal
  after, so a drain never drops below the count). A failed servo of the current generation stays
  listed, holding no resources, with its stopped container and its logs for the operator, and
  its node stays excluded for the project (a crash loop is not carried from host to host
  forever); a new generation, a destroy or an explicit removal clears it.
- A removal never deletes data: the host keeps the volume (listed, pruned only after a
  retention or by an explicit prune).

Pure: no clock, no I/O; statuses come in already derived (`effective_status`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from placement.hashing import mix, stable_hash
from placement.model import ALIVE, ClusterView, Decision, PlacementRequest
from placement.place import PlacementIndex, name_hash

LIVE_STATES = frozenset({"starting", "running", "restarting"})
# A stopped servo of a running project is started again by its host: it still holds its slot.
HELD_STATES = LIVE_STATES | {"stopped"}
COUNTED_STATUSES = frozenset({ALIVE, "suspect", "restarting"})
DRAINING = "draining"


@attrs.frozen
class UpdatePolicy:
    """How a new generation replaces the old one (Kubernetes' maxSurge/maxUnavailable=0 and
    Nomad's update stanza): `surge` servos above `replicas` at most, `parallel` new servos not
    yet proven at a time, each proven by `healthy_for_s` of running (healthy) before an old one
    goes; a new servo that fails, or a rollout not done within `deadline_s`, fails it."""

    parallel: int = 1
    surge: int = 1
    healthy_for_s: float = 5.0
    deadline_s: float = 120.0
    auto_rollback: bool = True


@attrs.frozen
class Rollout:
    """Where the current generation's rollout stands, derived from the view."""

    generation: int
    state: str  # in_progress | succeeded | failed
    updated: int  # counted servos of the new generation
    healthy: int  # of those, proven (running for healthy_for_s)
    reason: str = ""


@attrs.frozen
class Desired:
    """A project's desired state, as the engine needs it (units: MiB, millicpus)."""

    name: str
    replicas: int
    memory_mb: int
    millicpus: int
    spread: str = "region"
    max_per_host: int = 1
    stopped: bool = False
    generation: int = 1
    update: UpdatePolicy = attrs.field(factory=UpdatePolicy)
    # when the current generation's rollout began (ms, wall clock); 0 when none is under way
    rollout_started_ms: int = 0
    # set when this generation's rollout already failed and is held (no automatic rollback):
    # nothing more of it is started
    rollout_failed: str = ""

    @property
    def count(self) -> int:
        return 0 if self.stopped else self.replicas


@attrs.frozen
class ServoView:
    """One servo as its host reports it."""

    servo_id: str
    project: str
    node: str
    state: str  # starting | running | restarting | failed | stopped
    generation: int = 1
    slot: int = 0
    created_ms: int = 0
    ready_since_ms: int = 0  # running (and healthy, when checked) since then; 0: not ready


@attrs.frozen
class Create:
    project: str
    servo_id: str
    node: str
    slot: int
    generation: int
    why: str
    replaces: str | None = None  # the old servo it takes over from; it may share its host


@attrs.frozen
class Remove:
    """Remove the servo's container; its volume is kept."""

    project: str
    servo_id: str
    node: str
    why: str


@attrs.frozen
class Stop:
    project: str
    servo_id: str
    node: str
    why: str


@attrs.frozen
class Start:
    project: str
    servo_id: str
    node: str
    why: str


Action = Create | Remove | Stop | Start


@attrs.frozen
class Plan:
    """What the engine wants done for one project, and the facts it decided from."""

    project: str
    desired: int
    counted: int
    actions: tuple[Action, ...]
    decision: Decision | None = None
    rollout: Rollout | None = None

    @property
    def missing(self) -> int:
        return self.decision.missing if self.decision else 0

    @property
    def creates(self) -> tuple[Create, ...]:
        return tuple(a for a in self.actions if isinstance(a, Create))

    @property
    def removes(self) -> tuple[Remove, ...]:
        return tuple(a for a in self.actions if isinstance(a, Remove))

    def explain(self) -> list[dict[str, object]]:
        return [
            {"action": type(a).__name__.lower(), "servo": a.servo_id, "node": a.node, "why": a.why}
            for a in self.actions
        ]


def effective_status(
    gossip_status: str,
    *,
    draining: bool = False,
    stopping_ms: int = 0,
    now_ms: int = 0,
    grace_ms: int = 0,
) -> str:
    """A node's status for convergence. Draining nodes take no servos and their servos are not
    counted; an agent that announced a graceful stop (`stopping_ms`) and is now unreachable is
    `restarting` for `grace_ms`: its servos still count, so nobody replaces them while it reboots
    (a graceful stop is not a departure)."""
    if draining and gossip_status in (ALIVE, "suspect"):
        return DRAINING
    if gossip_status in ("suspect", "dead") and stopping_ms and now_ms < stopping_ms + grace_ms:
        return "restarting"
    return gossip_status


def servo_id_for(project: str, generation: int, slot: int, node: str) -> str:
    """Deterministic: the same on every agent that places this slot on this node. The node is
    part of it so that a slot placed on two nodes by two agents with different views makes two
    distinct servos (one of which the engine later removes), never one id on two hosts."""
    return f"{project}-{generation}-{slot}-{stable_hash(project, node) & 0xFFFFFFFF:08x}"


def counts(status: str, state: str) -> bool:
    """Whether a servo in `state` on a node with `status` holds its slot (the first rule)."""
    return status in COUNTED_STATUSES and state in HELD_STATES


def tie_break(servo: ServoView) -> tuple[int, str]:
    """Which of two servos holding one slot is the original (kept): the older, then by id."""
    return (servo.created_ms, servo.servo_id)


def converge(
    desired: Desired,
    view: ClusterView,
    servos: Sequence[ServoView],
    exclude: Iterable[str] = (),
    index: PlacementIndex | None = None,
    now_ms: int = 0,
    status: Mapping[str, str] | None = None,
) -> Plan:
    """The actions that bring `desired` about in `view`.

    `view` gives every node's status and free capacity, and (for placement) the live servos of
    every project on it; `servos` lists this project's servos in detail, wherever reported.
    `exclude` names nodes not to place on this time (they refused or did not answer); `index`,
    when given, must be `PlacementIndex(view)` (a caller planning many projects builds it once).
    `now_ms` (wall clock) is compared with servos' `ready_since_ms` and the rollout's deadline.
    `status`, when given, must be every node's status in `view` by name (a caller planning
    from views that change a few rows at a time keeps it, rather than a walk of the view
    per plan).
    """
    if status is None:
        status = {n.name: n.status for n in view.nodes}
    mine = sorted(
        (s for s in servos if s.project == desired.name and s.node in status),
        key=lambda s: (s.slot, *tie_break(s)),
    )
    counted = [s for s in mine if counts(status[s.node], s.state)]
    want = desired.count
    actions: list[Action] = []
    decision: Decision | None = None
    if desired.stopped:
        return Plan(desired.name, want, len(counted), ())
    rollout = _rollout_status(desired, mine, counted, now_ms)
    if rollout is not None and rollout.state == "failed":
        # nothing more of this generation: the caller rolls back (a new desired state) or holds
        return Plan(desired.name, want, len(counted), (), None, rollout)
    if any(s.generation != desired.generation for s in counted):
        actions, decision = _rolling(desired, view, mine, counted, exclude, now_ms)
        return Plan(desired.name, want, len(counted), tuple(actions), decision, rollout)

    if len(counted) < want:
        held = {s.slot for s in counted}
        slots = [s for s in range(want + len(counted)) if s not in held][: want - len(counted)]
        failed_on = {
            s.node for s in mine if s.state == "failed" and s.generation == desired.generation
        }
        request = PlacementRequest(
            project=desired.name,
            count=len(slots),
            memory_mb=desired.memory_mb,
            millicpus=desired.millicpus,
            spread=desired.spread,
            existing=tuple((s.servo_id, s.node) for s in counted),
            max_per_host=desired.max_per_host,
        )
        decision = (index or PlacementIndex(view)).place(
            request, tuple(sorted({*exclude, *failed_on}))
        )
        lost = {s.slot: s for s in mine if s not in counted}
        for slot, node in zip(slots, decision.placements, strict=False):
            before = lost.get(slot)
            why = (
                f"slot {slot} missing: {before.servo_id} on {before.node} is "
                f"{before.state if before.state == 'failed' else status[before.node]}"
                if before is not None
                else f"slot {slot} missing ({len(counted)} of {want} counted)"
            )
            actions.append(
                Create(
                    desired.name,
                    servo_id_for(desired.name, desired.generation, slot, node),
                    node,
                    slot,
                    desired.generation,
                    why,
                )
            )
    elif len(counted) > want:
        actions.extend(_extras(desired, counted, len(counted) - want))
    else:
        for s in mine:
            if s.state == "failed" and s.generation != desired.generation:
                actions.append(
                    Remove(desired.name, s.servo_id, s.node, "failed in an older generation")
                )
            elif status[s.node] == DRAINING and s.state in HELD_STATES:
                actions.append(
                    Remove(desired.name, s.servo_id, s.node, f"{s.node} draining; replaced")
                )
    return Plan(desired.name, want, len(counted), tuple(actions), decision, rollout)


def ready(servo: ServoView, policy: UpdatePolicy, now_ms: int) -> bool:
    """Proven: running (healthy, when checked) for the policy's `healthy_for_s`."""
    return (
        servo.state == "running"
        and servo.ready_since_ms > 0
        and now_ms - servo.ready_since_ms >= policy.healthy_for_s * 1000
    )


def _rollout_status(
    desired: Desired, mine: list[ServoView], counted: list[ServoView], now_ms: int
) -> Rollout | None:
    gen = desired.generation
    new = [s for s in counted if s.generation == gen]
    proven = [s for s in new if ready(s, desired.update, now_ms)]
    if desired.rollout_failed:
        return Rollout(gen, "failed", len(new), len(proven), desired.rollout_failed)
    if not desired.rollout_started_ms:
        return None
    failed = [s for s in mine if s.generation == gen and s.state == "failed"]
    old = [s for s in counted if s.generation != gen]
    if failed:
        reason = f"servo {failed[0].servo_id} on {failed[0].node} failed"
        return Rollout(gen, "failed", len(new), len(proven), reason)
    if len(proven) >= desired.count and not old:
        return Rollout(gen, "succeeded", len(new), len(proven))
    if now_ms > desired.rollout_started_ms + desired.update.deadline_s * 1000:
        reason = (
            f"{len(proven)} of {desired.count} new servos healthy after "
            f"{desired.update.deadline_s:g} s"
        )
        return Rollout(gen, "failed", len(new), len(proven), reason)
    return Rollout(gen, "in_progress", len(new), len(proven))


def _rolling(
    desired: Desired,
    view: ClusterView,
    mine: list[ServoView],
    counted: list[ServoView],
    exclude: Iterable[str],
    now_ms: int,
) -> tuple[list[Action], Decision | None]:
    """One step of a rolling update: old servos whose slot has a proven new one go; new servos
    are started for slots still on the old generation, within `surge` and `parallel`; slots
    lost meanwhile are filled with the new generation. Never fewer than `replicas` counted."""
    gen, want, policy = desired.generation, desired.count, desired.update
    actions: list[Action] = []
    new = {s.slot: s for s in reversed(counted) if s.generation == gen}  # the original wins
    old: dict[int, list[ServoView]] = {}
    for s in counted:
        if s.generation != gen:
            old.setdefault(s.slot, []).append(s)
    for s in mine:
        if s.state == "failed" and s.generation != gen:
            actions.append(
                Remove(desired.name, s.servo_id, s.node, "failed in an older generation")
            )
    # old servos whose slot has a proven replacement, and old servos beyond the count once
    # every slot below it is proven
    gone: set[str] = set()
    for slot, olds in sorted(old.items()):
        successor = new.get(slot)
        if slot < want and successor is not None and ready(successor, policy, now_ms):
            for s in olds:
                gone.add(s.servo_id)
                actions.append(
                    Remove(
                        desired.name,
                        s.servo_id,
                        s.node,
                        f"replaced by {successor.servo_id} (generation {gen}, healthy)",
                    )
                )
    all_proven = all(slot in new and ready(new[slot], policy, now_ms) for slot in range(want))
    for slot, olds in sorted(old.items()):
        if slot >= want and all_proven:
            for s in olds:
                if s.servo_id not in gone:
                    gone.add(s.servo_id)
                    actions.append(
                        Remove(desired.name, s.servo_id, s.node, f"scale-down to {want}")
                    )
    remaining = [s for s in counted if s.servo_id not in gone]
    in_flight = sum(1 for slot, s in new.items() if slot in old and not ready(s, policy, now_ms))
    room = min(policy.parallel - in_flight, want + policy.surge - len(remaining))
    todo: list[tuple[int, ServoView | None]] = [
        (slot, None) for slot in range(want) if slot not in new and slot not in old
    ]  # lost slots first: they are below the count
    todo += [
        (slot, olds[0]) for slot, olds in sorted(old.items()) if slot < want and slot not in new
    ][: max(0, room)]
    decision: Decision | None = None
    failed_on = {s.node for s in mine if s.state == "failed" and s.generation == gen}
    placed: list[tuple[str, str]] = []
    for slot, predecessor in todo:
        # the new servo may share a host with the old one it replaces (so a rollout with no
        # spare host never gets stuck): that old servo is left out of the view it is placed in
        others = [s for s in remaining if predecessor is None or s.servo_id != predecessor.servo_id]
        step_view = view
        if predecessor is not None:
            step_view = ClusterView(
                tuple(
                    attrs.evolve(
                        n,
                        servos=tuple(r for r in n.servos if r.servo_id != predecessor.servo_id),
                    )
                    if n.name == predecessor.node
                    else n
                    for n in view.nodes
                )
            )
        request = PlacementRequest(
            project=desired.name,
            count=1,
            memory_mb=desired.memory_mb,
            millicpus=desired.millicpus,
            spread=desired.spread,
            existing=tuple((s.servo_id, s.node) for s in others) + tuple(placed),
            max_per_host=desired.max_per_host,
        )
        decision = PlacementIndex(step_view).place(request, tuple(sorted({*exclude, *failed_on})))
        for node in decision.placements:
            sid = servo_id_for(desired.name, gen, slot, node)
            placed.append((sid, node))
            why = (
                f"generation {gen} for slot {slot}, replacing {predecessor.servo_id}"
                if predecessor is not None
                else f"slot {slot} missing"
            )
            actions.append(
                Create(
                    desired.name,
                    sid,
                    node,
                    slot,
                    gen,
                    why,
                    predecessor.servo_id if predecessor is not None else None,
                )
            )
    return actions, decision


def _extras(desired: Desired, counted: list[ServoView], n: int) -> list[Remove]:
    """The `n` servos to remove: later duplicates of a slot first, then the highest slots."""
    seen: set[int] = set()
    duplicates: list[ServoView] = []
    for s in counted:  # sorted by (slot, created, id): the first of each slot is the original
        if s.slot in seen:
            duplicates.append(s)
        seen.add(s.slot)
    out = [
        Remove(desired.name, s.servo_id, s.node, f"slot {s.slot} held twice; the original stays")
        for s in sorted(duplicates, key=tie_break, reverse=True)
    ][:n]
    rest = sorted(
        (s for s in counted if s not in duplicates), key=lambda s: (s.slot, *tie_break(s))
    )
    while len(out) < n and rest:
        s = rest.pop()
        out.append(
            Remove(
                desired.name,
                s.servo_id,
                s.node,
                f"scale-down to {desired.count}: slot {s.slot} goes",
            )
        )
    return out


def host_actions(
    node: str,
    servos_here: Iterable[ServoView],
    desired: Mapping[str, Desired | None],
) -> list[Action]:
    """What a host does to its own servos from the desired state it knows: a stopped project's
    servos stop, a running project's stopped servos start, a destroyed project's servos go
    (their volumes kept: the explicit destroy deleted them where it reached; a host that missed
    it keeps the data until the retention or a prune). Projects it has not heard of are left
    alone: its registry may simply be behind."""
    out: list[Action] = []
    for s in sorted(servos_here, key=lambda s: s.servo_id):
        if s.project not in desired:
            continue
        want = desired[s.project]
        if want is None:
            out.append(Remove(s.project, s.servo_id, node, "project destroyed"))
        elif want.stopped and s.state in LIVE_STATES:
            out.append(Stop(s.project, s.servo_id, node, "project stopped"))
        elif not want.stopped and s.state == "stopped":
            out.append(Start(s.project, s.servo_id, node, "project started"))
    return out


def recovery_owner(project: str, alive_nodes: Iterable[str]) -> str | None:
    """The alive agent that converges `project` on its own (recovery, failed servos, drains):
    the highest rendezvous score mix(hash(project), hash(agent)). Owners spread across agents,
    and when one dies only the projects it owned move. Two agents that briefly both believe
    they own a project plan the same ids, and hosts make the duplicate create harmless."""
    ph = stable_hash(project)
    best: tuple[int, str] | None = None
    for name in alive_nodes:
        score = (mix(ph, name_hash(name)), name)
        if best is None or score > best:
            best = score
    return best[1] if best else None
