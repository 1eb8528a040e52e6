"""Every host's servo inventory, replicated by deltas on gossip's APP channel.

A host's servo list grows with the host (a PaaS host runs dozens to hundreds of servos), so it
cannot ride in member metadata, which must fit a packet beside others (512 bytes). Instead each
host alone writes its inventory and spreads every change as a delta, stamped with the host's
inventory version (a counter that never goes back, even across restarts: it starts from the
clock in microseconds) and the digest of its inventory after the change. Member metadata keeps
only that version and digest.

A receiver applies a delta when it is newer than what it holds for that servo, then compares
its copy's digest with the one the newest news claimed (a delta's, or the metadata's). A copy
that stays behind for `PULL_GRACE_S` (a delta lost, or reordered past a newer one) is repaired
by pulling that host's whole inventory over TCP; push-pull carries each side's own inventory
too. This is Scuttlebutt's reconciliation with a single writer per key space: versions order
one host's changes, and the digest tells a receiver it missed one without a sequence of
acknowledgements.

Pure: no I/O and no clock reads; `now` is passed in by the caller (the gossip core's time).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from node.cluster import ServoEntry, servo_from_wire, servo_wire

PULL_GRACE_S = 1.0  # a gap may be reordering: wait this long for the missing delta
# A host's metadata claims its new version as soon as it publishes, and under load it travels
# ahead of the deltas it claims (the broadcast queue sends the newest first): a claim only from
# metadata waits longer before it costs a pull of the whole inventory. (After a region outage
# at 1,000 simulated agents, a 1 s wait here meant ~50,000 pulls in 30 s.)
META_CLAIM_GRACE_S = 3.0
PULL_RETRY_S = 5.0  # after a pull that did not close the gap
# Removed servos remembered per host, so a removal that overtook the servo's creation wins;
# beyond this many the oldest go and the host's floor rises (a gap then costs a pull).
TOMBSTONES_MAX = 1024

INVENTORY = "i"  # APP payload kinds
SPEC = "s"

_MASK = (1 << 63) - 1


def servo_hash(servo_id: str, version: int) -> int:
    """One servo's share of its host's digest (XOR of these: order-free, and updated per
    change without walking the inventory)."""
    h = hashlib.blake2b(f"{servo_id}\x00{version}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") & _MASK


@attrs.define(eq=False)
class HostInventory:
    """What an agent holds of one host's inventory.

    A record marked `shared` may be held by many replicas at once and is never changed in
    place: a replica changing it takes a copy, and remembers the copy in `after` under the
    change that made it, so every other replica holding the same record and applying the same
    change (one host's change is one (version, servo) from its single writer) moves to that same
    copy instead of making its own. The agent never shares (one replica per process); the
    simulator does, so that ten thousand observers of one host at one version hold one record,
    not ten thousand (`InventoryReplica.preload`). `after` keeps a record's successors alive as
    long as the record is: one chain per host, as long as the host's changes."""

    version: int = 0  # the newest change applied
    floor: int = 0  # the version of the last whole inventory applied (older deltas are stale)
    digest: int = 0
    servos: dict[str, tuple[int, ServoEntry]] = attrs.field(factory=dict)
    gone: dict[str, int] = attrs.field(factory=dict)  # removed servo id -> removal version
    entries: tuple[ServoEntry, ...] | None = None  # cached, sorted by id
    shared: bool = False
    after: dict[tuple[Any, ...], HostInventory] | None = None  # shared: change -> its result

    def satisfies(self, claim: tuple[int, int]) -> bool:
        """Is this copy at or past a claimed (version, digest)?"""
        version, digest = claim
        return self.version > version or (self.version == version and self.digest == digest)

    def copy(self) -> HostInventory:
        return HostInventory(
            self.version,
            self.floor,
            self.digest,
            dict(self.servos),
            dict(self.gone),
            self.entries,
            shared=True,
        )


_NO_CLAIM = (0, 0)


class InventoryReplica:
    """The servo inventories of every host, this agent's own included.

    Per host, besides the record: the newest (version, digest) anyone claimed the host has, kept
    only while this copy is behind it (a claim the copy satisfies is not needed again: a later,
    lower claim is satisfied too, since a copy's version never goes back), and when to pull the
    host's whole inventory if the copy is still behind then."""

    def __init__(self) -> None:
        self.hosts: dict[str, HostInventory] = {}
        # shared records every host starts from (`preload`), read where `hosts` has none
        self.base: Mapping[str, HostInventory] = {}
        self.claims: dict[str, tuple[int, int]] = {}  # hosts this copy is behind: their claim
        self.pull_at: dict[str, float] = {}  # the same hosts: when to pull if still behind
        self.counters: dict[str, int] = {}

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def preload(self, base: Mapping[str, HostInventory]) -> None:
        """Start from known inventories (the simulator's converged fleet): `base` holds records
        marked `shared`, and may be handed to many replicas. What this one holds already wins."""
        assert all(inv.shared for inv in base.values())
        self.base = base

    def get(self, host: str) -> HostInventory | None:
        inv = self.hosts.get(host)
        return inv if inv is not None else self.base.get(host)

    def _change(self, host: str, change: tuple[Any, ...]) -> HostInventory | None:
        """The record to apply `change` to, made this replica's own; None when another replica
        already made the same change of the same shared record (this one now holds the result)."""
        inv = self.get(host)
        if inv is None:
            inv = self.hosts[host] = HostInventory()
            return inv
        if not inv.shared:
            return inv
        if inv.after is None:
            inv.after = {}
        done = inv.after.get(change)
        if done is not None:
            self.hosts[host] = done
            return None
        mine = inv.after[change] = self.hosts[host] = inv.copy()
        return mine

    def shared_entry(
        self, host: str, version: int, digest: int, servo_id: str
    ) -> ServoEntry | None:
        """The servo a delta brings, when another replica already applied that same delta to
        the shared record this one holds: the record need not be parsed again."""
        inv = self.get(host)
        if inv is None or inv.after is None:
            return None
        done = inv.after.get(("d", version, digest, servo_id, False))
        known = None if done is None else done.servos.get(servo_id)
        return None if known is None else known[1]

    def servos(self, host: str) -> tuple[ServoEntry, ...]:
        inv = self.get(host)
        if inv is None:
            return ()
        if inv.entries is None:
            inv.entries = tuple(e for _, (_, e) in sorted(inv.servos.items()))
        return inv.entries

    def version(self, host: str) -> int:
        inv = self.get(host)
        return 0 if inv is None else inv.version

    def consistent(self, host: str) -> bool:
        """Is this copy of `host` at or past the newest claim about it?"""
        return host not in self.claims

    def seen(self, host: str, servo_id: str) -> int:
        """The newest version this copy holds for one servo (its removal's, or the floor):
        a delta no newer is a duplicate, known before its record is parsed."""
        inv = self.get(host)
        if inv is None:
            return 0
        known = inv.servos.get(servo_id)
        return known[0] if known is not None else inv.gone.get(servo_id, inv.floor)

    # --- news in -----------------------------------------------------------------------------
    def apply_delta(
        self,
        now: float,
        host: str,
        version: int,
        digest: int,
        servo_id: str,
        entry: ServoEntry | None,
    ) -> bool:
        """One change of one servo (None: removed). True when it was news."""
        if version <= self.seen(host, servo_id):
            return False  # applied, overtaken, or older than a whole inventory we hold
        inv = self._change(host, ("d", version, digest, servo_id, entry is None))
        if inv is not None:
            known = inv.servos.get(servo_id)
            if known is not None:
                inv.digest ^= servo_hash(servo_id, known[0])
                del inv.servos[servo_id]
            if entry is not None:
                inv.servos[servo_id] = (version, entry)
                inv.digest ^= servo_hash(servo_id, version)
                inv.gone.pop(servo_id, None)
            else:
                inv.gone[servo_id] = version
                if len(inv.gone) > TOMBSTONES_MAX:
                    oldest = min(inv.gone, key=inv.gone.__getitem__)
                    inv.floor = max(inv.floor, inv.gone.pop(oldest))
            inv.version = max(inv.version, version)
            inv.entries = None
        self._claim(now, host, version, digest)
        return True

    def apply_full(
        self, now: float, host: str, version: int, items: Iterable[tuple[str, int, ServoEntry]]
    ) -> bool:
        """A host's whole inventory as of `version`. Ignored when this copy has newer changes
        (deltas will bring the rest, or a later pull)."""
        held = self.version(host)
        if version < held or (version == held and self.consistent(host)):
            return False
        inv = self._change(host, ("f", version))
        if inv is not None:
            inv.servos = {sid: (v, e) for sid, v, e in items}
            inv.gone = {}
            inv.digest = 0
            for sid, (v, _) in inv.servos.items():
                inv.digest ^= servo_hash(sid, v)
            inv.version = inv.floor = version
            inv.entries = None
        got = self.get(host)
        assert got is not None
        self._claim(now, host, version, got.digest)
        return True

    def note_meta(self, now: float, host: str, meta: Mapping[str, Any]) -> None:
        """A host's gossip metadata: the (version, digest) it claims, when well formed."""
        try:
            version, digest = int(meta.get("inv", 0)), int(meta.get("dig", 0))
        except (TypeError, ValueError):
            return
        self.note_claim(now, host, version, digest)

    def note_claim(self, now: float, host: str, version: int, digest: int) -> None:
        """A host's metadata says its inventory is at (version, digest)."""
        if version:
            if self.get(host) is None:
                self.hosts[host] = HostInventory()
            self._claim(now, host, version, digest, META_CLAIM_GRACE_S)

    def _claim(
        self, now: float, host: str, version: int, digest: int, grace_s: float = PULL_GRACE_S
    ) -> None:
        claim = self.claims.get(host, _NO_CLAIM)
        if version >= claim[0]:
            claim = (version, digest)
        inv = self.get(host)
        if inv is None or inv.satisfies(claim):
            self.claims.pop(host, None)
            self.pull_at.pop(host, None)
        else:
            self.claims[host] = claim
            due = self.pull_at.get(host)
            if due is None or now + grace_s < due:
                self.pull_at[host] = now + grace_s

    def forget(self, host: str) -> None:
        """A member reaped from gossip: its inventory goes with it."""
        self.hosts.pop(host, None)
        if host in self.base:
            self.hosts[host] = HostInventory()
        self.claims.pop(host, None)
        self.pull_at.pop(host, None)

    # --- repair -------------------------------------------------------------------------------
    def next_pull_at(self) -> float | None:
        """When `due_pulls` has something to say next (None: this copy is behind no claim)."""
        return min(self.pull_at.values()) if self.pull_at else None

    def due_pulls(self, now: float, reachable: Callable[[str], bool]) -> list[str]:
        """Hosts whose copy stayed behind its claims past the grace: pull them (each is then
        not due again for `PULL_RETRY_S`, so an unanswered pull does not repeat every round)."""
        out = []
        for host, at in self.pull_at.items():
            if at <= now:
                if reachable(host):
                    out.append(host)
                self.pull_at[host] = now + PULL_RETRY_S
        if out:
            self.counters["pulls"] = self.counters.get("pulls", 0) + len(out)
        return sorted(out)


class OwnInventory:
    """This host's inventory as it publishes it: each publish diffs the host's servo records
    against the last published ones and yields the deltas to broadcast."""

    def __init__(self, host: str, replica: InventoryReplica) -> None:
        self.host = host
        self.replica = replica
        self.version = 0
        self.digest = 0
        self._published: dict[str, tuple[int, list[Any]]] = {}  # servo id -> (version, wire)

    def publish(
        self, now: float, records: Iterable[Mapping[str, Any]], floor_version: int
    ) -> list[list[Any]]:
        """The APP payloads for what changed since the last publish (maybe none).
        `floor_version`: the host's own inventory counter; ours never falls below it, so the
        version in our metadata tells a placer its answer's change is included."""
        current = {str(r["id"]): servo_wire(r) for r in records}
        changed = [sid for sid, w in current.items() if self._published.get(sid, (0, None))[1] != w]
        removed = [sid for sid in self._published if sid not in current]
        if not changed and not removed:
            # a change of the host's counter that peers do not see (a record rewritten with
            # the same visible fields) moves nothing: a version with no delta behind it would
            # read as a gap and send every peer to pull this host's whole inventory
            return []
        deltas: list[list[Any]] = []
        for sid in sorted(changed) + sorted(removed):
            self.version = max(self.version + 1, floor_version)
            old = self._published.pop(sid, None)
            if old is not None:
                self.digest ^= servo_hash(sid, old[0])
            wire = current.get(sid)
            if wire is not None:
                self._published[sid] = (self.version, wire)
                self.digest ^= servo_hash(sid, self.version)
            deltas.append([INVENTORY, self.host, self.version, self.digest, sid, wire])
            entry = None if wire is None else servo_from_wire(self.host, wire)
            self.replica.apply_delta(now, self.host, self.version, self.digest, sid, entry)
        return deltas

    @property
    def count(self) -> int:
        return len(self._published)

    def full_state(self) -> list[Any]:
        return [
            INVENTORY,
            self.host,
            self.version,
            [[sid, v, w] for sid, (v, w) in sorted(self._published.items())],
        ]


def key_of(payload: Sequence[Any]) -> str:
    """The broadcast queue key of a payload: a newer change of the same servo (or spec)
    replaces an unsent older one."""
    if payload[0] == INVENTORY:
        return f"i:{payload[1]}:{payload[4]}"
    return f"s:{payload[1].get('name', '')}"


class ClusterDelegate:
    """The agent's `gossip.core.AppDelegate`: servo inventory deltas into the replica, spec
    entries to the spec replicator (`on_spec(entry_wire) -> news?`). A push-pull carries this
    host's whole inventory and the digest of its spec registry (`spec_digest`); a peer whose
    registry differs is handed to `on_spec_digest(peer, digest)` (the replicator pulls from it),
    Scuttlebutt's digest-first anti-entropy on the exchange gossip makes anyway."""

    def __init__(
        self,
        own: OwnInventory,
        on_spec: Callable[[Mapping[str, Any]], bool] = lambda _wire: False,
    ) -> None:
        self.own = own
        self.replica = own.replica
        self.on_spec = on_spec
        self.spec_digest: Callable[[], str] = lambda: ""
        self.on_spec_digest: Callable[[str, str], None] = lambda _peer, _digest: None
        # told the host of every inventory delta that was news (the simulator's fleet notes
        # which hosts' projects need a look; a wrapper around `notify` cost a call per copy)
        self.on_inventory_news: Callable[[str], None] | None = None

    def _bad(self, what: str) -> bool:
        self.replica._count(f"dropped.{what}")
        return False

    def notify(self, now: float, payload: Any) -> bool:
        try:
            kind = payload[0]
            if kind == INVENTORY:
                _, host, version, digest, sid, wire = payload
                if host == self.own.host:
                    return False  # our own news, passed back to us
                if not isinstance(host, str) or not isinstance(sid, str):
                    return self._bad("inventory_delta")
                if int(version) <= self.replica.seen(host, sid):
                    # most receptions are duplicates (every agent passes news on several
                    # times): answered without parsing the record
                    return False
                version, digest = int(version), int(digest)
                entry = (
                    None
                    if wire is None
                    else self.replica.shared_entry(host, version, digest, sid)
                    or servo_from_wire(host, wire)
                )
                if not self.replica.apply_delta(now, host, version, digest, sid, entry):
                    return False
            elif kind == SPEC and isinstance(payload[1], dict):
                return self.on_spec(payload[1])
            else:
                return self._bad("app_payload")
        except (TypeError, ValueError, IndexError, KeyError):
            return self._bad("app_payload")
        if self.on_inventory_news is not None:
            self.on_inventory_news(host)
        return True

    def local_state(self, join: bool) -> Any:
        return {"i": self.own.full_state(), "s": self.spec_digest()}

    def merge_remote_state(self, now: float, sender: str, state: Any, join: bool) -> None:
        if not isinstance(state, dict):
            self._bad("app_state")
            return
        digest = state.get("s")
        if isinstance(digest, str) and digest and digest != self.spec_digest():
            self.on_spec_digest(sender, digest)
        try:
            kind, host, version, items = state["i"]
            if kind != INVENTORY or host != sender or host == self.own.host:
                return
            parsed = [(str(sid), int(v), servo_from_wire(host, w)) for sid, v, w in items]
            self.replica.apply_full(now, host, int(version), parsed)
        except (TypeError, ValueError, IndexError, KeyError):
            self._bad("inventory_state")
