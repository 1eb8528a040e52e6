"""The SWIM + Lifeguard protocol core: a state machine with no I/O, clock or global random.

Inputs: `handle(now, src, sender, msgs)` for a decoded UDP packet, `tick(now)` when time passes,
`tcp_ack(now, seq)` when the shell's TCP ping fallback got through, `push_pull_state()` /
`merge_state(now, states, join)` for TCP anti-entropy, `set_meta`, `leave`, and
`broadcast_app(key, payload)` for the application's own news (its `AppDelegate` hears what
arrives and says what is new, which is then passed on like any broadcast).
Outputs, drained by the caller: `outbox` (UDP packets to send: address, messages, and their
encoded sizes summed, which the simulator counts as the packet's bytes),
`tcp_pings` (TCP fallback probes to try), `events` (membership changes), and `next_deadline()`.

Everything that affects membership state lives in this file, as h11 keeps its state machine in
one place. Sources: SWIM (Das et al., 2002) for the probe cycle, indirect probes and suspicion
with incarnation refutation; Lifeguard (Dadgar et al., 2018) for local health awareness, nacks,
dynamic suspicion and the buddy system; memberlist for defaults and push-pull state merging.
"""

from __future__ import annotations

import bisect
import heapq
import math
import operator
import random
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from itertools import compress, islice
from typing import Any, NamedTuple, Protocol

import attrs

from gossip.awareness import Awareness
from gossip.broadcast_queue import PriorityBroadcasts
from gossip.messages import (
    META_MAX_BYTES,
    STATUS_BY_CODE,
    STATUS_CODES,
    Addr,
    MetaTooLarge,
    Msg,
    MsgType,
    Status,
)
from gossip.suspicion import Suspicion, SuspicionBounds, suspicion_bounds_s
from gossip.wire import encoded_size

# Enum members bound once: in CPython 3.11 every `Status.X` lookup runs a descriptor, and these
# comparisons sit on the per-message path.
ALIVE, SUSPECT, DEAD, LEFT = Status.ALIVE, Status.SUSPECT, Status.DEAD, Status.LEFT
_PING, _INDIRECT_PING, _ACK, _NACK = MsgType.PING, MsgType.INDIRECT_PING, MsgType.ACK, MsgType.NACK
_SUSPECT, _ALIVE, _DEAD, _APP = MsgType.SUSPECT, MsgType.ALIVE, MsgType.DEAD, MsgType.APP
_STATUS_VALUES = {status: status.value for status in Status}
_new_tuple = tuple.__new__
# Application broadcasts are queued under keys no member name has (in the second lane of
# `PriorityBroadcasts`, after failure news).
APP_KEY_PREFIX = "\x1f"

# A relay nacks this fraction of the probe timeout after the indirect request reached it, so
# the nack is back before the requester's probe period ends (Lifeguard, footnote 5). Nacking at
# the full timeout, as memberlist does, lands just after the requester stopped counting: every
# probe of a dead member then reads as three missed nacks, the prober's awareness climbs and it
# probes slower exactly when failures are happening (swift-cluster-membership fixed the same
# with 80 %).
NACK_AFTER = 0.8

ENVELOPE_OVERHEAD = 64  # version, sender name, list header, AES-GCM framing (generous)


PUSH_PULL_SCALE_THRESHOLD = 32


def push_pull_interval_s(base_s: float, members: int) -> float:
    """memberlist's pushPullScale: beyond 32 members the full-state exchange slows down
    logarithmically, so its cost per member stays flat as the cluster grows."""
    if members <= PUSH_PULL_SCALE_THRESHOLD:
        return base_s
    extra = math.ceil(math.log2(members) - math.log2(PUSH_PULL_SCALE_THRESHOLD))
    return base_s * (extra + 1)


OWN_NEWS_MULT = 3
# Application news (servo inventory deltas, spec entries) is sent this many times the membership
# bound, by its origin and by every relay. Membership news has repairs of its own (a member that
# misses a DEAD still times out its own suspicion; a suspect refutes), application news does not:
# an agent that misses every copy of a delta and of the metadata claiming it waits for a
# push-pull, 180 s at 1,000 agents. At 50 % loss and the usual bound an agent gets about 8
# copies of a broadcast, and misses all of them with probability about e^-8: in 9 of 20 servo
# changes at 1,000 simulated agents some agent had not seen it after 15 s. At twice the bound
# (e^-16), none of 20 did, and every agent held it within 2 s (bench/sim_theory.py --what
# servo). The price is the deltas' bandwidth, measured in docs/gossip.md.
APP_RETRANSMIT_MULT = 2


@attrs.frozen
class GossipConfig:
    """LAN defaults (memberlist's DefaultLANConfig, with Lifeguard on)."""

    probe_interval_s: float = 1.0
    probe_timeout_s: float = 0.5
    indirect_checks: int = 3
    gossip_interval_s: float = 0.2
    gossip_nodes: int = 3
    suspicion_mult: int = 4
    suspicion_max_timeout_mult: int = 6
    retransmit_mult: int = 4
    push_pull_interval_s: float = 30.0
    gossip_to_the_dead_s: float = 30.0
    # at most this many suspect or recently dead members per gossip round, and those packets
    # do not count as transmissions (see Gossip._gossip)
    gossip_to_the_dead_nodes: int = 1
    reap_after_s: float = 3600.0
    awareness_max_multiplier: int = 8
    packet_budget_bytes: int = 1400
    lifeguard: bool = True  # off: fixed (minimum) suspicion timeout, no awareness, no buddy


class AppDelegate(Protocol):
    """The application's side of the APP channel (memberlist's Delegate, in a pure form)."""

    def notify(self, now: float, payload: Any) -> bool:
        """An APP payload arrived: apply it; True when it was news (it is then passed on).
        Must not raise for a malformed payload: return False (and count it)."""
        ...

    def local_state(self, join: bool) -> Any:
        """What this agent sends in a push-pull beside the member table."""
        ...

    def merge_remote_state(self, now: float, sender: str, state: Any, join: bool) -> None:
        """A peer's `local_state` from a push-pull or an APP_PULL answer."""
        ...


def check_meta(meta: dict[str, Any]) -> None:
    size = encoded_size([meta])
    if size > META_MAX_BYTES:
        raise MetaTooLarge(
            f"member metadata is {size} bytes, more than {META_MAX_BYTES}: keep names short, "
            f"and put what grows with the host on the application channel"
        )


@attrs.frozen
class Member:
    """One member's state as this agent knows it. A record never changes: a new state is a new
    record in the table (so a snapshot handed out stays what it was), and records with equal
    state may be one object held by many cores (`MemberRecords`). When a member went down is
    this core's own (`Gossip._down_since`), not the record's."""

    name: str
    addr: Addr
    incarnation: int
    status: Status
    meta: dict[str, Any]
    meta_version: int
    # this state as a push-pull row, built once: at 10,000 simulated agents every core sends
    # its whole table every 30 s or so, and rows of shared records are shared too
    row: tuple[str, Addr, int, int, int, dict[str, Any]] = attrs.field(
        init=False, eq=False, repr=False
    )

    @row.default
    def _row(self) -> tuple[str, Addr, int, int, int, dict[str, Any]]:
        return (
            self.name,
            self.addr,
            self.incarnation,
            STATUS_CODES[self.status],
            self.meta_version,
            self.meta,
        )

    def alive_msg(self) -> Msg:
        return [MsgType.ALIVE, self.name, self.incarnation, self.addr, self.meta_version, self.meta]


class MemberRecords:
    """Member records interned by state, for many cores in one process (the simulator).

    After a region outage every survivor moves each lost member to suspect and then to dead:
    22 million (observer, member) pairs at 10,000 agents, and one record copy per pair was 2 GiB.
    Cores given one `MemberRecords` hold the same record for the same state instead. A real
    agent has no use for one (a single table, and a process that must not keep every state it
    ever saw): its core creates each record."""

    def __init__(self) -> None:
        self._by_state: dict[tuple[str, int, Status, int], Member] = {}

    def get(
        self,
        name: str,
        addr: Addr,
        incarnation: int,
        status: Status,
        meta: dict[str, Any],
        meta_version: int,
    ) -> Member:
        key = (name, incarnation, status, meta_version)
        m = self._by_state.get(key)
        if m is not None and m.addr == addr and (m.meta is meta or m.meta == meta):
            return m
        made = Member(name, addr, incarnation, status, meta, meta_version)
        if m is None:  # a different record under the same key (a forged one) is not interned
            self._by_state[key] = made
        return made


class MemberEvent(NamedTuple):
    """A change in the member table. A named tuple rather than an attrs class: a region outage
    at 10,000 simulated agents makes some 45 million of them, and a tuple is built in C."""

    kind: str  # joined | suspect | alive | dead | left | updated
    name: str
    status: str
    incarnation: int
    at_s: float


class _ReapQueue:
    """Reaps in the order they fall due: names, incarnations and due times side by side (24
    bytes an entry, no object of its own), taken from the front by moving a head index; the
    taken part is cut off once it is half the lists."""

    __slots__ = ("_due", "_head", "_incarnations", "_names")

    def __init__(self) -> None:
        self._names: list[str] = []
        self._incarnations: list[int] = []
        self._due: array[float] = array("d")
        self._head = 0

    def __len__(self) -> int:
        return len(self._names) - self._head

    @property
    def last_due(self) -> float:
        return self._due[-1] if len(self) else -math.inf

    def push(self, due: float, name: str, incarnation: int) -> None:
        self._names.append(name)
        self._incarnations.append(incarnation)
        self._due.append(due)

    def head_due(self) -> float:
        return self._due[self._head]

    def pop(self) -> tuple[str, int]:
        i = self._head
        out = self._names[i], self._incarnations[i]
        self._head = i + 1
        if self._head * 2 >= len(self._names):
            del self._names[: self._head], self._incarnations[: self._head], self._due[: self._head]
            self._head = 0
        return out


@attrs.define
class _Probe:
    target: str
    started_s: float
    end_s: float
    acked: bool = False
    nacks: int = 0
    expected_nacks: int = 0
    indirect_sent: bool = False


@attrs.define
class _Relay:
    """An indirect probe we run for `requester`: ack or nack their `seq`."""

    requester_addr: Addr
    requester_seq: int
    done: bool = False


class Gossip:
    def __init__(
        self,
        name: str,
        addr: Addr,
        meta: dict[str, Any],
        rng: random.Random,
        now: float,
        config: GossipConfig | None = None,
        delegate: AppDelegate | None = None,
        records: MemberRecords | None = None,
    ) -> None:
        self.config = cfg = config or GossipConfig()
        check_meta(meta)
        self.delegate = delegate
        self.name = name
        self.rng = rng
        # a record of a state (name, addr, incarnation, status, meta, meta version): the shared
        # one when the cores share `MemberRecords`, else a new one
        self._record: Callable[[str, Addr, int, Status, dict[str, Any], int], Member] = (
            Member if records is None else records.get
        )
        self.me = self._record(name, addr, 0, ALIVE, dict(meta), 1)
        self.members: dict[str, Member] = {name: self.me}
        self._names: list[str] = []  # other members, for cheap random choices
        self._sorted_names: list[str] | None = None  # `_names` sorted, until a join or reap
        # Other members not alive (suspect, dead, left), sorted, and the latest time one was
        # declared dead or left: after an outage, the members a scan for "suspect or recently
        # dead" can find, without walking the whole table on every gossip round.
        self._down: list[str] = []
        # beside each of `_down`: when it was declared dead or left, +inf while it is suspect
        # (the members a gossip to the dead looks for are those past a horizon: a C-speed
        # filter of `_down`, see `_random_not_alive`)
        self._down_since: array[float] = array("d")
        self._newest_down_s = -math.inf
        # no later than any death or leave among `_down` (a bound: kept when one revives)
        self._oldest_down_s = math.inf
        self._live = 1
        self.awareness = Awareness(max_score=cfg.awareness_max_multiplier, enabled=cfg.lifeguard)
        self.broadcasts = PriorityBroadcasts(cfg.retransmit_mult)
        self.suspicions: dict[str, Suspicion] = {}
        # the suspicions waiting for their first check, one FIFO per bounds (`_first_check`)
        self._first_fifos: dict[int, deque[Suspicion]] = {}
        self.outbox: list[tuple[Addr, list[Msg], int]] = []
        self.tcp_pings: list[tuple[Addr, int, str]] = []  # (addr, seq, target)
        self.events: list[MemberEvent] = []
        self.counters: dict[str, int] = {}
        self.leaving = False
        self._seq = 0
        self._probes: dict[int, _Probe] = {}
        self._relays: dict[int, _Relay] = {}
        self._timers: list[tuple[float, int, str, Any]] = []
        self._timer_seq = 0
        # Timers many of which fall due at one instant (suspicions started by one packet)
        # share one heap entry: instant -> (kind, items). See `_grouped_timer`.
        self._groups: dict[float, tuple[str, list[Any]]] = {}
        # members declared dead or left, to reap `reap_after_s` later (`_reap_later`)
        self._reaps = _ReapQueue()
        self._bounds: tuple[int, SuspicionBounds] | None = None  # (live count, its bounds)
        self._probe_order: list[str] = []
        self._probe_pos = 0
        # a push-pull is due (`take_push_pull_due`), readable without the call
        self.push_pull_due = False
        self._timer(now + rng.random() * cfg.probe_interval_s, "probe", None)
        self._now = now  # the latest time an input brought; arms timers from outside tick()
        # Gossip rounds fall on a grid with this agent's own random phase; they sleep while
        # there is nothing to spread and wake on the grid's next point, so a new broadcast
        # waits half an interval on average, as with memberlist's always-running ticker.
        self._gossip_phase = now + rng.random() * cfg.gossip_interval_s
        self._timer(self._gossip_phase, "gossip", None)
        self._gossip_armed = True
        # The first exchange at a random point of the interval (memberlist's randStagger):
        # agents started together must not all push-pull at the same instant ever after.
        self._timer(now + rng.random() * cfg.push_pull_interval_s, "push_pull", None)
        self._queue_alive(self.me)

    # --- small helpers -----------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def _timer(self, when: float, kind: str, data: Any) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (when, self._timer_seq, kind, data))
        if self._groups:
            # a timer between two grouped ones at the same instant: later ones start a new
            # group, so that everything due at one instant still runs in the order it was set
            self._groups.pop(when, None)

    def _grouped_timer(self, when: float, kind: str, *item: Any) -> None:
        """A timer of `kind` for `item` at `when`, added to the group already due at that very
        instant if no other timer was set for it since (one heap entry, not one per item).

        After a region outage every survivor arms a suspicion timer (up to k + 1 of them as
        confirmations shorten it) and later a reap timer for each lost member: one heap tuple
        each was most of the simulator's memory at 10,000 agents. Suspicions started by one
        packet, and reaps of members declared dead together, fall due at the same instant.
        The group runs its items in the order they were added, at the same point among other
        timers as one entry each would have: timers still fire at the same times, in the same
        order."""
        group = self._groups.get(when)
        if group is not None and group[0] == kind:
            group[1].extend(item)
            return
        items = list(item)
        self._groups[when] = (kind, items)
        self._timer_seq += 1
        heapq.heappush(self._timers, (when, self._timer_seq, kind, items))

    def next_deadline(self) -> float:
        return self._timers[0][0] if self._timers else float("inf")

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _set(self, m: Member, status: Status, incarnation: int) -> Member:
        """`m` with a new status and incarnation, put in the table."""
        new = self._record(m.name, m.addr, incarnation, status, m.meta, m.meta_version)
        self.members[m.name] = new
        return new

    def _set_me(self, me: Member) -> None:
        self.me = self.members[self.name] = me

    def _next_gossip_round(self, now: float) -> float:
        """The first point of this agent's gossip grid after `now` (a round woken late skips
        the points it missed rather than running them back to back)."""
        interval = self.config.gossip_interval_s
        rounds = max(0, math.floor((now - self._gossip_phase) / interval) + 1)
        when = self._gossip_phase + rounds * interval
        return when if when > now + 1e-9 else when + interval  # float error at a grid point

    def _emit(self, kind: str, m: Member, now: float) -> None:
        # built as the tuple it is (`MemberEvent(...)` runs a Python-level `__new__`): one per
        # (survivor, lost member) and change after an outage
        event = (kind, m.name, _STATUS_VALUES[m.status], m.incarnation, now)
        self.events.append(_new_tuple(MemberEvent, event))

    def live_count(self) -> int:
        """Members alive or suspect, this agent included (kept up to date on every change, as
        it sizes retransmit limits and suspicion timeouts on every packet)."""
        return self._live

    def status_counts(self) -> tuple[int, int, int]:
        """(alive, suspect, dead or left) over the whole table, this agent included, from
        the counts kept on every change: the simulator samples 50 agents' views every
        simulated second, and walking 10,000 records for each was a measurable share."""
        suspect = len(self.suspicions)
        return self._live - suspect, suspect, len(self.members) - self._live

    def _queue(self, key: str, msg: Msg, limit_mult: int = 1, urgent: bool = True) -> None:
        """`urgent`: news of a member's status or incarnation, sent before other news (see
        `PriorityBroadcasts`)."""
        if not self._gossip_armed:  # asleep: wake at the grid's next point
            self._gossip_armed = True
            self._timer(self._next_gossip_round(self._now), "gossip", None)
        self.broadcasts.put(key, msg, encoded_size(msg), limit_mult, urgent)

    def _queue_alive(self, m: Member, urgent: bool = True) -> None:
        """`urgent`: False for new metadata at the same incarnation."""
        # An agent's own news (new metadata, a refutation) has one source: if its few copies
        # all miss a member, that member waits for a push-pull (30 s) to learn, say, that a lost
        # servo is back. Its own broadcasts go OWN_NEWS_MULT times as often as relayed ones.
        mult = OWN_NEWS_MULT if m is self.me else 1
        self._queue(m.name, m.alive_msg(), mult, urgent)

    def _send(self, addr: Addr, msg: Msg) -> None:
        """Send one message with as many broadcasts piggybacked as fit in the packet budget."""
        size = encoded_size(msg)
        budget = self.config.packet_budget_bytes - ENVELOPE_OVERHEAD - size
        queue = self.broadcasts
        extra = queue.take(budget, self.live_count())
        self.outbox.append((addr, [msg, *extra], size + queue.last_bytes))

    # --- the public inputs -------------------------------------------------------------------
    def snapshot(self) -> list[Member]:
        return sorted(self.members.values(), key=lambda m: m.name)

    def set_meta(self, now: float, meta: dict[str, Any]) -> None:
        """Replace this agent's own metadata (it alone writes it) and spread the change."""
        self._now = now
        if meta == self.me.meta:
            return
        check_meta(meta)
        me = self.me
        self._set_me(
            self._record(
                me.name, me.addr, me.incarnation, me.status, dict(meta), me.meta_version + 1
            )
        )
        self._queue_alive(self.me, urgent=False)

    def broadcast_app(self, now: float, key: str, payload: Any) -> None:
        """Spread an application message: retransmitted APP_RETRANSMIT_MULT times the
        membership bound, replacing a queued one with the same `key` (a newer change of the
        same thing)."""
        self._now = now
        self._queue(
            APP_KEY_PREFIX + key, [MsgType.APP, key, payload], APP_RETRANSMIT_MULT, urgent=False
        )

    def app_state(self, join: bool) -> Any:
        return None if self.delegate is None else self.delegate.local_state(join)

    def merge_app_state(self, now: float, sender: str, state: Any, join: bool) -> None:
        self._now = now
        if self.delegate is not None and state is not None:
            self.delegate.merge_remote_state(now, sender, state, join)

    def leave(self, now: float) -> None:
        """Graceful leave: tell everyone we left; peers mark us `left`, never `dead`."""
        self._now = now
        self.leaving = True
        if self.me.status != LEFT:
            self._live -= 1
        self._set_me(self._set(self.me, LEFT, self.me.incarnation))
        left: Msg = [MsgType.DEAD, self.name, self.me.incarnation, self.name, True]
        self._queue(self.name, left)
        size = encoded_size(left)
        for m in self.members.values():  # tell everyone directly too: a leave should be quick
            if m.name != self.name and m.status in (ALIVE, SUSPECT):
                self.outbox.append((m.addr, [left], size))
        self._gossip(now)

    def tick(self, now: float) -> None:
        self._now = now
        timers = self._timers
        while timers and timers[0][0] <= now:
            when, _, kind, data = heapq.heappop(timers)
            if kind == "suspicion":
                group = self._groups.get(when)
                if group is not None and group[1] is data:
                    del self._groups[when]  # closed before it runs: new timers start another
                for s in data:
                    self._suspicion_check(now, s)
            elif kind == "reaps":
                self._reaps_due(now, when)
            elif kind == "first_checks":
                self._first_checks_due(now, when, data)
            elif kind == "probe":
                self._probe(now)
            elif kind == "probe_timeout":
                self._probe_timeout(now, data)
            elif kind == "probe_end":
                self._probe_end(now, data)
            elif kind == "relay_nack":
                self._relay_nack(data)
            elif kind == "relay_timeout":
                self._relay_timeout(data)
            elif kind == "gossip":
                self._gossip(now)
                if len(self.broadcasts):
                    self._timer(self._next_gossip_round(now), "gossip", None)
                else:
                    self._gossip_armed = False
            elif kind == "push_pull":
                self.push_pull_due = True
                interval = push_pull_interval_s(self.config.push_pull_interval_s, self.live_count())
                self._timer(now + interval, "push_pull", None)

    def take_push_pull_due(self) -> bool:
        due, self.push_pull_due = self.push_pull_due, False
        return due

    def push_pull_target(self) -> Member | None:
        """A random alive member to exchange full state with."""
        picked = self._random_alive(1)
        return picked[0] if picked else None

    def reconnect_target(self) -> Member | None:
        """A member we believe dead (not left) to try a push-pull with, as Serf's reconnect
        does: after a partition heals, this is how the two sides find each other again."""
        if len(self.members) == self._live:
            return None  # nobody dead or left: the usual case, answered without a scan
        picked = self._random_members(1, lambda m: m.status is DEAD, self._down)
        return picked[0] if picked else None

    def handle(self, now: float, src: Addr, sender: str, msgs: list[Msg]) -> None:
        """A decoded UDP packet from `src`; every message in it, in order (the most frequent
        kinds are tested first: this loop runs for every message of every packet).

        After a region outage nine in ten membership messages are news already had: a SUSPECT
        from an accuser already counted (or once the timeout is at its minimum), a DEAD about a
        member dead here, an ALIVE no newer than the record. Those are recognised here, each
        by the test its handler starts with, without the call (in a 300-agent outage: 510,000
        of 570,000 SUSPECTs, 225,000 of 240,000 DEADs, 390,000 of 415,000 ALIVEs)."""
        self._now = now
        members = self.members
        for msg in msgs:
            kind = msg[0]
            if kind == _SUSPECT:
                # An open suspicion means the member is suspect here (`suspicions` holds
                # exactly those), and `confirm` would change nothing: nor would the handler.
                s = self.suspicions.get(msg[1])
                if s is not None:
                    if len(s.confirmers) > s.bounds.k or msg[3] in s.confirmers:
                        continue
                else:
                    # nor about a member dead here: `_on_suspect` returns (this agent's own
                    # record is never dead, and left only while it leaves)
                    m = members.get(msg[1])
                    if m is None or m.status is DEAD or m.status is LEFT:
                        continue
                self._on_suspect(now, msg[1], msg[2], msg[3], msg)
            elif kind == _PING:
                self._on_ping(now, src, msg)
            elif kind == _ACK:
                self._on_ack(now, msg[1])
            elif kind == _DEAD:
                m = members.get(msg[1])
                # dead or left here already: `_on_dead` returns whatever the incarnation (this
                # agent's own record is left only while it leaves, when it does not refute)
                if m is None or m.status is DEAD or m.status is LEFT:
                    continue
                self._on_dead(now, msg[1], msg[2], msg[3], msg[4], msg)
            elif kind == _ALIVE:
                m = members.get(msg[1])
                # no newer than what is known: `_on_alive` returns (for this agent's own
                # record too: it refutes only a higher incarnation or metadata version)
                if m is not None and (
                    msg[2] < m.incarnation or (msg[2] == m.incarnation and msg[4] <= m.meta_version)
                ):
                    continue
                self._on_alive(now, msg[1], msg[2], msg[3], msg[4], msg[5])
            elif kind == _APP:
                # handled here, not in a method of its own: after an outage every agent hears
                # each recovery's inventory deltas many times over, and the delegate answers
                # most at once (a duplicate); what is news is passed on as it came
                delegate = self.delegate
                if delegate is None:
                    self._count("dropped.app_without_delegate")
                elif delegate.notify(now, msg[2]):
                    self._queue(APP_KEY_PREFIX + msg[1], msg, APP_RETRANSMIT_MULT, urgent=False)
            elif kind == _NACK:
                probe = self._probes.get(msg[1])
                if probe is not None:
                    probe.nacks += 1
            elif kind == _INDIRECT_PING:
                self._on_indirect_ping(now, msg)
            else:
                self._count("dropped.unexpected_message")

    def tcp_ack(self, now: float, seq: int) -> None:
        """The shell's TCP ping to a probe target was answered."""
        self._on_ack(now, seq)

    def tcp_refused(self, now: float, seq: int) -> None:
        """The shell's TCP ping to a probe target was refused: the target's host answered
        that nothing listens on its gossip port, so its agent is gone (a crashed or killed
        process on a host that is up, the most common failure). Suspect it now rather than
        at the end of the probe period, as memberlist would, half a probe interval later.

        Nothing is decided early but the start of the suspicion, which runs its whole
        Lifeguard timeout as any other: an agent that restarts on the same port refutes it
        as usual. A host that is gone sends no refusal, so host loss is detected as before.
        The probe ends here, before the helpers' nacks are due: it says nothing about this
        agent's own health, so awareness is left as it is."""
        self._now = now
        probe = self._probes.get(seq)
        if probe is None or probe.acked:
            return
        del self._probes[seq]  # its probe_end timer then finds nothing to do
        self._count("probes_refused")
        target = self.members.get(probe.target)
        if target is not None and target.status in (ALIVE, SUSPECT):
            self._on_suspect(now, target.name, target.incarnation, self.name)

    def answer_tcp_ping(self, msg: Msg) -> Msg | None:
        """A PING that came over TCP: the ack to send back on the same connection."""
        if msg[2] != self.name:
            return None
        return [MsgType.ACK, msg[1], self.name]

    # --- probing (SWIM section 4, Lifeguard IV-A) ----------------------------------------------
    def _next_target(self) -> Member | None:
        """Randomised round-robin: shuffle the members, walk the list, reshuffle at its end."""
        for _ in range(2):
            while self._probe_pos < len(self._probe_order):
                name = self._probe_order[self._probe_pos]
                self._probe_pos += 1
                m = self.members.get(name)
                if m is not None and m.status in (ALIVE, SUSPECT):
                    return m
            order = list(self._names_sorted())
            self.rng.shuffle(order)
            self._probe_order, self._probe_pos = order, 0
        return None

    def _probe(self, now: float) -> None:
        cfg = self.config
        interval = self.awareness.scale(cfg.probe_interval_s)
        self._timer(now + interval, "probe", None)
        if self.leaving:
            return
        target = self._next_target()
        if target is None:
            return
        seq = self._next_seq()
        self._probes[seq] = _Probe(target.name, now, now + interval)
        ping: Msg = [MsgType.PING, seq, target.name, self.name]
        if target.status == SUSPECT and cfg.lifeguard:
            # Buddy system: tell the suspect directly so it can refute at once.
            msgs = [ping, [MsgType.SUSPECT, target.name, target.incarnation, self.name]]
            self.outbox.append((target.addr, msgs, sum(map(encoded_size, msgs))))
        else:
            self._send(target.addr, ping)
        self._count("probes")
        self._timer(now + self.awareness.scale(cfg.probe_timeout_s), "probe_timeout", seq)
        self._timer(now + interval, "probe_end", seq)

    def _on_ping(self, now: float, src: Addr, msg: Msg) -> None:
        if msg[2] != self.name:
            self._count("dropped.ping_for_other")
            return
        self._send(src, [MsgType.ACK, msg[1], self.name])

    def _on_ack(self, now: float, seq: int) -> None:
        relay = self._relays.get(seq)
        if relay is not None:
            if not relay.done:
                relay.done = True
                self._send(relay.requester_addr, [MsgType.ACK, relay.requester_seq, self.name])
            return
        probe = self._probes.get(seq)
        if probe is not None and not probe.acked:
            probe.acked = True
            if not probe.indirect_sent:
                self.awareness.apply(-1)

    def _probe_timeout(self, now: float, seq: int) -> None:
        """No direct ack in time: ask k peers to probe for us (with nacks), and try TCP."""
        probe = self._probes.get(seq)
        if probe is None or probe.acked:
            return
        target = self.members.get(probe.target)
        if target is None:
            return
        # The helpers are the other alive members but the target, sorted by name. `sample`
        # draws positions from the population's length alone, so drawing from a range of that
        # length and looking each position up (`_nth_alive`) picks what sampling that list
        # did, without building and sorting it (10,000 members, on every probe of the dead
        # after an outage: more than all the rest of a probe).
        skip = target.name if target.status is ALIVE else None
        n = len(self._names) - len(self._down) - (skip is not None)
        picks = self.rng.sample(range(n), min(self.config.indirect_checks, n))
        chosen = [self.members[self._nth_alive(j, skip)] for j in picks]
        probe.indirect_sent = True
        probe.expected_nacks = len(chosen) if self.config.lifeguard else 0
        for helper in chosen:
            self._send(
                helper.addr,
                [MsgType.INDIRECT_PING, seq, target.name, target.addr, self.name, self.me.addr],
            )
        self.tcp_pings.append((target.addr, seq, target.name))

    def _on_indirect_ping(self, now: float, msg: Msg) -> None:
        _, req_seq, target, target_addr, _requester, requester_addr = msg
        seq = self._next_seq()
        self._relays[seq] = _Relay(requester_addr, req_seq)
        # No broadcasts piggybacked: the target has just missed a direct probe, so it is likely
        # dead, and a transmission spent on it would be one the live members never get.
        ping: Msg = [MsgType.PING, seq, target, self.name]
        self.outbox.append((target_addr, [ping], encoded_size(ping)))
        if self.config.lifeguard:
            self._timer(now + NACK_AFTER * self.config.probe_timeout_s, "relay_nack", seq)
        self._timer(now + self.config.probe_timeout_s, "relay_timeout", seq)

    def _relay_nack(self, seq: int) -> None:
        relay = self._relays.get(seq)
        if relay is not None and not relay.done:
            self._send(relay.requester_addr, [MsgType.NACK, relay.requester_seq, self.name])

    def _relay_timeout(self, seq: int) -> None:
        self._relays.pop(seq, None)  # a later ack from the target is no longer forwarded

    def _probe_end(self, now: float, seq: int) -> None:
        probe = self._probes.pop(seq, None)
        if probe is None or probe.acked:
            return
        if probe.expected_nacks > 0:
            missed = probe.expected_nacks - probe.nacks
            if missed > 0:
                self._count("nacks_missed", missed)
                self.awareness.apply(missed)
        else:
            self.awareness.apply(1)
        target = self.members.get(probe.target)
        if target is not None and target.status in (ALIVE, SUSPECT):
            self._on_suspect(now, target.name, target.incarnation, self.name)

    # --- state transitions (SWIM 4.2, Lifeguard IV-B) ------------------------------------------
    def _on_suspect(
        self, now: float, name: str, incarnation: int, accuser: str, msg: Msg | None = None
    ) -> None:
        """`msg`: the SUSPECT message this came in, relayed as it is (in the simulator one
        message object then serves every core that passes it on)."""
        m = self.members.get(name)
        # After an outage most suspicions arrive about members already dead here: test that
        # first (this agent's own record is never dead, and is left only while it leaves).
        if m is None or m.status is DEAD or m.status is LEFT or incarnation < m.incarnation:
            return
        if name == self.name:
            self._refute(now, incarnation)
            return
        if m.status is SUSPECT:
            s = self.suspicions.get(name)
            if s is not None and s.confirm(accuser):
                if msg is None:
                    msg = [MsgType.SUSPECT, name, incarnation, accuser]
                self._queue(name, msg)
                if now >= s.earliest_s:
                    # past its first check, which found the deadline later: check again at the
                    # new one (before that check, it is the one that finds the deadline)
                    self._timer(s.deadline_s, "suspicion", [s])
            return
        s = Suspicion(name, now, self._suspicion_bounds(), (accuser,))
        self.suspicions[name] = s
        m = self._set(m, SUSPECT, incarnation)
        self._down_add(name, math.inf)
        self._emit("suspect", m, now)
        self._count("suspicions")
        self._queue(name, msg if msg is not None else [MsgType.SUSPECT, name, incarnation, accuser])
        self._first_check(s)

    def _suspicion_bounds(self) -> SuspicionBounds:
        """The timeouts of a suspicion started now: one shared record per cluster size."""
        live = self.live_count()
        if self._bounds is not None and self._bounds[0] == live:
            return self._bounds[1]
        cfg = self.config
        low, high = suspicion_bounds_s(
            cfg.suspicion_mult, cfg.suspicion_max_timeout_mult, live, cfg.probe_interval_s
        )
        if not cfg.lifeguard:
            high = low
        k = cfg.suspicion_mult - 2
        if live - 2 < k:
            k = 0
        bounds = SuspicionBounds(k if cfg.lifeguard else 0, low, high)
        self._bounds = (live, bounds)
        return bounds

    def _first_check(self, s: Suspicion) -> None:
        """Arrange the suspicion's first check at `earliest_s`. Suspicions started with the same
        bounds have their first checks in the order they started, so they wait in one FIFO
        with a single timer, at its head, rather than a timer each: after a region outage at
        10,000 agents, 22 million suspicions' timers (a heap tuple and a group list per
        packet that started some) were 40 bytes a pair. Each is still checked at its own
        instant, as a timer would have."""
        key = id(s.bounds)  # the bounds are alive while their queue holds a suspicion
        fifo = self._first_fifos.get(key)
        if fifo is None:
            fifo = self._first_fifos[key] = deque()
        elif fifo and s.earliest_s < fifo[-1].earliest_s:  # (time never runs backwards)
            self._timer(s.earliest_s, "suspicion", [s])
            return
        if not fifo:
            self._timer(s.earliest_s, "first_checks", fifo)
        fifo.append(s)

    def _first_checks_due(self, now: float, when: float, fifo: deque[Suspicion]) -> None:
        """The first checks due at `when` (the FIFO's head's instant), then a timer for the
        next head's."""
        key = id(fifo[0].bounds)  # (a FIFO's timer is set only while it holds a suspicion)
        while fifo and fifo[0].earliest_s <= when:
            self._suspicion_check(now, fifo.popleft())
        if fifo:
            self._timer(fifo[0].earliest_s, "first_checks", fifo)
        elif self._first_fifos.get(key) is fifo:
            del self._first_fifos[key]

    def _suspicion_check(self, now: float, s: Suspicion) -> None:
        """A suspicion is checked first at the earliest its deadline can be (the minimum
        timeout: k confirmations), then at its deadline if that is later, and at each new
        deadline a confirmation sets after that first check. Before it, confirmations arm
        nothing: after a region outage each of 22 million suspicions (at 10,000 agents) was
        confirmed twice, and a timer per confirmation, none of them sharing an instant, was a
        quarter of the memory the outage took. A member is declared dead at the same instant
        as with a timer per deadline."""
        name = s.name
        if self.suspicions.get(name) is not s:
            return  # ended (dead, refuted) since this timer was set
        m = self.members.get(name)
        if m is None or m.status != SUSPECT:
            return
        if now + 1e-9 < s.deadline_s:
            # the first check (a deadline only moves sooner, so a later timer, set at a
            # deadline, never finds it still ahead): check again then, beside the others
            # started together and still as confirmed
            self._grouped_timer(s.deadline_s, "suspicion", s)
            return
        self._end_suspicion(name)
        self._declare_dead(now, m, m.incarnation, self.name, left=False)

    def _end_suspicion(self, name: str) -> None:
        suspicions = self.suspicions
        if suspicions.pop(name, None) is not None and not suspicions:
            # a dict never shrinks: the one that held a whole region's suspicions goes
            self.suspicions = {}

    def _declare_dead(
        self, now: float, m: Member, incarnation: int, by: str, left: bool, msg: Msg | None = None
    ) -> None:
        """`msg`: the DEAD message that brought the news, relayed as it is."""
        self._live -= 1
        if m.status is ALIVE:
            self._down_add(m.name, now)
        else:  # suspect until now
            self._down_since[bisect.bisect_left(self._down, m.name)] = now
        m = self._set(m, LEFT if left else DEAD, incarnation)
        self._newest_down_s = now
        if now < self._oldest_down_s:
            self._oldest_down_s = now
        self._end_suspicion(m.name)
        self._emit("left" if left else "dead", m, now)
        if msg is None:
            msg = [MsgType.DEAD, m.name, incarnation, by, left]
        self._queue(m.name, msg)
        self._reap_later(now + self.config.reap_after_s, m.name, incarnation)

    def _refute(self, now: float, accused_incarnation: int) -> None:
        """Someone thinks we are suspect or dead: outbid them with a higher incarnation."""
        if self.leaving:
            return
        self._set_me(self._set(self.me, ALIVE, max(self.me.incarnation, accused_incarnation) + 1))
        self.awareness.apply(1)
        self._count("refutations")
        self._queue_alive(self.me)

    def _on_alive(
        self, now: float, name: str, inc: int, addr: Addr, meta_version: int, meta: dict[str, Any]
    ) -> None:
        if name == self.name:
            if inc > self.me.incarnation or (
                inc == self.me.incarnation and meta_version > self.me.meta_version
            ):
                self._refute(now, inc)  # a stale or forged view of us: restate the truth
            return
        m = self.members.get(name)
        if m is None:
            m = self.members[name] = self._record(name, addr, inc, ALIVE, dict(meta), meta_version)
            self._names.append(name)
            self._sorted_names = None
            self._live += 1
            # Probe a newcomer at a random point of the current round (memberlist does the
            # same): members that learn of it together do not probe it in lockstep.
            at = self.rng.randint(self._probe_pos, len(self._probe_order))
            self._probe_order.insert(at, name)
            self._emit("joined", m, now)
            self._queue_alive(m)
            return
        if inc > m.incarnation:
            # A higher incarnation carries the member's whole current state, whatever the
            # metadata version (a restarted agent counts its versions from 1 again).
            was, meta_changed = m.status, meta != m.meta
            m = self.members[name] = self._record(
                name, addr, inc, ALIVE, dict(meta) if meta_changed else m.meta, meta_version
            )
            if was != ALIVE:
                if was in (DEAD, LEFT):
                    self._live += 1
                self._down_remove(name)
                self._end_suspicion(name)
                self._emit("joined" if was in (DEAD, LEFT) else "alive", m, now)
            elif meta_changed:
                self._emit("updated", m, now)
            urgent = True
        elif inc == m.incarnation and meta_version > m.meta_version:
            # Newer metadata at the same incarnation: the status stays (an equal incarnation
            # never clears a suspicion; only the suspect's refutation does).
            m = self.members[name] = self._record(
                name, m.addr, m.incarnation, m.status, dict(meta), meta_version
            )
            self._emit("updated", m, now)
            urgent = False  # metadata alone: behind failure news
        else:
            return
        self._queue_alive(m, urgent)

    def _on_dead(
        self, now: float, name: str, inc: int, by: str, left: bool, msg: Msg | None = None
    ) -> None:
        m = self.members.get(name)
        if m is None or inc < m.incarnation:
            return
        if name == self.name:
            if not self.leaving:
                self._refute(now, inc)
            return
        if m.status in (DEAD, LEFT):
            return
        self._declare_dead(now, m, inc, by, left, msg)

    def _reap(self, now: float, name: str, inc: int) -> None:
        m = self.members.get(name)
        if m is not None and m.status in (DEAD, LEFT) and m.incarnation == inc:
            del self.members[name]
            self._names.remove(name)
            if self._sorted_names is not self._names:
                self._sorted_names = None  # (a sorted list stays sorted)
            self._down_remove(name)
            self._count("reaped")

    def _reap_later(self, when: float, name: str, incarnation: int) -> None:
        """Reap `name` at `when` if it is still dead or left at that incarnation. Reaps fall
        due in the order members went down (the delay is the same for all), so they wait in
        one FIFO with a timer at its head: after a region outage at 10,000 agents a timer
        each (a heap tuple, its group and list, for the few members declared dead at one
        instant) was ~150 bytes for each of 22 million (survivor, lost member) pairs."""
        reaps = self._reaps
        if not reaps:
            self._timer(when, "reaps", None)
        reaps.push(max(when, reaps.last_due), name, incarnation)

    def _reaps_due(self, now: float, when: float) -> None:
        reaps = self._reaps
        while reaps and reaps.head_due() <= when:
            name, incarnation = reaps.pop()
            self._reap(now, name, incarnation)
        if reaps:
            self._timer(reaps.head_due(), "reaps", None)

    def _down_add(self, name: str, since: float) -> None:
        i = bisect.bisect_left(self._down, name)
        self._down.insert(i, name)
        self._down_since.insert(i, since)

    def _down_at(self, name: str) -> float:
        """When `name` (in `_down`) went dead or left here; +inf while it is suspect."""
        return self._down_since[bisect.bisect_left(self._down, name)]

    def _down_remove(self, name: str) -> None:
        down = self._down
        i = bisect.bisect_left(down, name)
        if i < len(down) and down[i] == name:
            del down[i]
            del self._down_since[i]
            if not down:
                self._oldest_down_s = math.inf

    def _nth_alive(self, j: int, skip: str | None) -> str:
        """The j-th (from 0) name in sorted order among the other members alive, `skip`
        (alive) left out: a binary search over the sorted names, counting the members not
        alive below each by bisecting `_down`, rather than a walk of the whole table."""
        names, down = self._names_sorted(), self._down
        lo, hi = 0, len(names) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            name = names[mid]
            alive = mid + 1 - bisect.bisect_right(down, name)
            if skip is not None and skip <= name:
                alive -= 1
            if alive >= j + 1:
                hi = mid
            else:
                lo = mid + 1
        return names[lo]

    def _names_sorted(self) -> list[str]:
        """`_names` sorted: `_names` itself when it is (a table loaded in name order, as the
        simulator's is, stays so until a join): a sorted copy per core was 0.8 GB of a
        10,000-agent run, built by every survivor on its first probe of the dead."""
        if self._sorted_names is None:
            names = self._names
            in_order = all(map(operator.le, names, islice(names, 1, None)))
            self._sorted_names = names if in_order else sorted(names)
        return self._sorted_names

    # --- dissemination ----------------------------------------------------------------------
    def _gossip(self, now: float) -> None:
        """Every gossip interval: the broadcasts to `gossip_nodes` random members believed
        alive, and to at most `gossip_to_the_dead_nodes` suspect or recently dead ones.

        Only a packet to a member believed alive counts as one of a broadcast's few
        transmissions (retransmit_mult x ceil(log10(N + 1)): 4 below 10 members). memberlist
        draws its gossip targets from the alive and the recently dead alike and counts every
        send; after a region outage (3 dead of 9) that spent about 40 % of every DEAD and
        SUSPECT message's transmissions on members that cannot pass it on, and a survivor the
        rest missed waited out its own Lifeguard timer (up to 6 x the minimum without
        confirmations, ~24 s at 9 members). The dead still get their bounded share, uncounted,
        so a member wrongly declared dead learns it and refutes (SWIM 4.2, memberlist's
        GossipToTheDeadTime)."""
        if not len(self.broadcasts):
            return
        cfg = self.config
        budget = cfg.packet_budget_bytes - ENVELOPE_OVERHEAD
        queue = self.broadcasts
        for peer in self._random_alive(cfg.gossip_nodes):
            msgs = queue.take(budget, self.live_count())
            if not msgs:
                break
            self.outbox.append((peer.addr, msgs, queue.last_bytes))
        if cfg.gossip_to_the_dead_nodes < 1 or (
            not self.suspicions and self._live == len(self.members)
        ):
            return  # nobody suspect or dead: the usual case, answered without a scan
        msgs = queue.peek(budget)
        if msgs:
            size = queue.last_bytes
            for peer in self._random_not_alive(
                cfg.gossip_to_the_dead_nodes, now - cfg.gossip_to_the_dead_s
            ):
                self.outbox.append((peer.addr, msgs, size))

    def _random_not_alive(self, k: int, horizon: float) -> list[Member]:
        """`_random_members(k, keep)` for the members suspect, or dead or left after
        `horizon`, with `keep` written out inline: the same draws, the same members.

        After a region outage, while some deaths are older than the horizon and some newer,
        the fallback scan of `_down` (a third of the table) ran on most gossip rounds of every
        survivor, and calling `keep` for each name was most of its cost."""
        names, members, rng = self._names, self.members, self.rng
        picked: dict[str, Member] = {}
        if len(names) > 4 * k:
            for _ in range(4 * k):
                m = members[names[rng.randrange(len(names))]]
                status = m.status
                if (
                    status is SUSPECT or (status is not ALIVE and self._down_at(m.name) > horizon)
                ) and m.name not in picked:
                    picked[m.name] = m
                    if len(picked) == k:
                        return list(picked.values())
        # nobody suspect and every death older than the horizon: nobody to find
        if not self.suspicions and self._newest_down_s <= horizon:
            return list(picked.values())
        down = self._down  # outside it nobody is suspect or dead
        if self._oldest_down_s > horizon and not picked:
            # every death newer than the horizon: every member in `down` is one. `sample`
            # picks by position from the length alone: the same draws as on a copy
            picks = rng.sample(range(len(down)), min(k, len(down)))
            return [members[down[j]] for j in picks]
        # the suspect (since +inf) and those down since the horizon, in `down`'s order, picked
        # by a filter in C: calling nothing per name, it is a tenth of the walk it replaces
        fresh = compress(down, map(horizon.__lt__, self._down_since))
        if picked:
            pool = [members[n] for n in fresh if n not in picked]
            return [*picked.values(), *rng.sample(pool, min(k - len(picked), len(pool)))]
        names = list(fresh)
        picks = rng.sample(range(len(names)), min(k, len(names)))
        return [members[names[j]] for j in picks]

    def _random_alive(self, k: int) -> list[Member]:
        """`_random_members(k, keep)` for the members alive, `keep` written out inline: the
        same draws, the same members (every gossip round of every agent draws its targets)."""
        names, members, rng = self._names, self.members, self.rng
        picked: dict[str, Member] = {}
        if len(names) > 4 * k:
            for _ in range(4 * k):
                m = members[names[rng.randrange(len(names))]]
                if m.status is ALIVE and m.name not in picked:
                    picked[m.name] = m
                    if len(picked) == k:
                        return list(picked.values())
        return self._pick_by_scan(k, lambda m: m.status is ALIVE, picked)

    def _random_members(
        self,
        k: int,
        keep: Callable[[Member], bool],
        among: list[str] | None = None,
    ) -> list[Member]:
        """Up to k distinct random members satisfying `keep`, without scanning everyone: a few
        random draws usually suffice; a scan is the fallback for small or sparse views.

        `among`: sorted names outside which `keep` holds for nobody (the members not alive,
        for a `keep` that wants the dead), scanned instead of the whole table. (The gossip to
        the dead, which ran this fallback on most rounds after an outage, has its own
        `_random_not_alive`.)"""
        names = self._names
        picked: dict[str, Member] = {}
        if len(names) > 4 * k:
            for _ in range(4 * k):
                m = self.members[names[self.rng.randrange(len(names))]]
                if m.name not in picked and keep(m):
                    picked[m.name] = m
                    if len(picked) == k:
                        return list(picked.values())
        return self._pick_by_scan(k, keep, picked, among)

    def _pick_by_scan(
        self,
        k: int,
        keep: Callable[[Member], bool],
        picked: dict[str, Member],
        among: list[str] | None = None,
    ) -> list[Member]:
        """`_random_members`' fallback, after its draws found `picked`: the rest at random
        from a scan."""
        members = self.members
        scan = self._names_sorted() if among is None else among
        pool = [members[n] for n in scan if n not in picked and keep(members[n])]
        need = min(k - len(picked), len(pool))
        return [*picked.values(), *self.rng.sample(pool, need)]

    def preload(self, now: float, table: dict[str, Member]) -> None:
        """Start from a known, converged membership without events or broadcasts: what a
        long-running cluster looks like. The simulator uses it so an outage scenario does not
        first pay for a join storm it is not studying.

        `table` may be handed to many cores (records never change). What this core already
        knows (itself included) wins; a member dead or left in it went down at `now`."""
        self._now = now
        known = self.members
        merged = dict(table)
        merged.update(known)
        self.members = merged
        self._names = [n for n in merged if n != self.name]
        self._sorted_names = None
        self._down = sorted(n for n in self._names if merged[n].status is not ALIVE)
        self._down_since = array(
            "d", [math.inf if merged[n].status is SUSPECT else now for n in self._down]
        )
        gone = sum(1 for since in self._down_since if since != math.inf)
        self._live = len(merged) - gone - (self.me.status is LEFT)
        if gone:
            self._newest_down_s = max(self._newest_down_s, now)
            self._oldest_down_s = min(self._oldest_down_s, now)
        order = list(self._names)
        self.rng.shuffle(order)
        self._probe_order = order
        self._probe_pos = self.rng.randrange(len(order)) if order else 0

    # --- push-pull anti-entropy (memberlist mergeState) ---------------------------------------
    def push_pull_state(self) -> list[Sequence[Any]]:
        """Every member's state (`Member.row`), in the table's own (deterministic, insertion)
        order: sorting a large table on every exchange would cost more than the exchange."""
        return [m.row for m in self.members.values()]

    def merge_state(self, now: float, states: list[Sequence[Any]]) -> None:
        """A peer's whole member table (push-pull). Most entries are news already had: an
        ALIVE no newer than the record, a remote death about a member dead here; those are
        recognised by the test their handler starts with, without the call (a simulated
        outage's survivors merge a thousand-entry table every few seconds). A row that is the
        very row of the record held here (cores sharing `MemberRecords`) is news to nobody."""
        self._now = now
        members = self.members
        for row in states:
            m = members.get(row[0])
            if m is not None and m.row is row:
                continue
            name, addr, inc, code, meta_version, meta = row
            status = STATUS_BY_CODE[code]
            if status == ALIVE:
                if m is not None and (
                    inc < m.incarnation or (inc == m.incarnation and meta_version <= m.meta_version)
                ):
                    continue  # as in handle(): `_on_alive` would return
                self._on_alive(now, name, inc, addr, meta_version, meta)
            elif m is None or m.status is DEAD or m.status is LEFT:
                # unknown: a remote death is not news; dead or left here: `_on_dead` and
                # `_on_suspect` return (this agent's own record is left only while it leaves)
                continue
            elif status == LEFT:
                self._on_dead(now, name, inc, name, True)
            else:
                # a remote "dead" or "suspect" only makes us suspect: we verify for ourselves
                self._on_suspect(now, name, inc, self.name)
