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


@attrs.define
class HostInventory:
    """What this agent holds of one host's inventory."""

    version: int = 0  # the newest change applied
    floor: int = 0  # the version of the last whole inventory applied (older deltas are stale)
    digest: int = 0
    servos: dict[str, tuple[int, ServoEntry]] = attrs.field(factory=dict)
    gone: dict[str, int] = attrs.field(factory=dict)  # removed servo id -> removal version
    claim: tuple[int, int] = (0, 0)  # the newest (version, digest) anyone said the host has
    pull_at: float | None = None  # when to pull the whole inventory if still behind
    entries: tuple[ServoEntry, ...] | None = None  # cached, sorted by id

    def consistent(self) -> bool:
        version, digest = self.claim
        return self.version > version or (self.version == version and self.digest == digest)


class InventoryReplica:
    """The servo inventories of every host, this agent's own included."""

    def __init__(self) -> None:
        self.hosts: dict[str, HostInventory] = {}
        self.counters: dict[str, int] = {}

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _host(self, host: str) -> HostInventory:
        inv = self.hosts.get(host)
        if inv is None:
            inv = self.hosts[host] = HostInventory()
        return inv

    def servos(self, host: str) -> tuple[ServoEntry, ...]:
        inv = self.hosts.get(host)
        if inv is None:
            return ()
        if inv.entries is None:
            inv.entries = tuple(e for _, (_, e) in sorted(inv.servos.items()))
        return inv.entries

    def version(self, host: str) -> int:
        inv = self.hosts.get(host)
        return 0 if inv is None else inv.version

    def seen(self, host: str, servo_id: str) -> int:
        """The newest version this copy holds for one servo (its removal's, or the floor):
        a delta no newer is a duplicate, known before its record is parsed."""
        inv = self.hosts.get(host)
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
        inv = self._host(host)
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
        self._claim(now, inv, version, digest)
        return True

    def apply_full(
        self, now: float, host: str, version: int, items: Iterable[tuple[str, int, ServoEntry]]
    ) -> bool:
        """A host's whole inventory as of `version`. Ignored when this copy has newer changes
        (deltas will bring the rest, or a later pull)."""
        inv = self._host(host)
        if version < inv.version or (version == inv.version and inv.consistent()):
            return False
        inv.servos = {sid: (v, e) for sid, v, e in items}
        inv.gone = {}
        inv.digest = 0
        for sid, (v, _) in inv.servos.items():
            inv.digest ^= servo_hash(sid, v)
        inv.version = inv.floor = version
        inv.entries = None
        self._claim(now, inv, version, inv.digest)
        return True

    def note_claim(self, now: float, host: str, version: int, digest: int) -> None:
        """A host's metadata says its inventory is at (version, digest)."""
        if version:
            self._claim(now, self._host(host), version, digest)

    def _claim(self, now: float, inv: HostInventory, version: int, digest: int) -> None:
        if version >= inv.claim[0]:
            inv.claim = (version, digest)
        if inv.consistent():
            inv.pull_at = None
        elif inv.pull_at is None:
            inv.pull_at = now + PULL_GRACE_S

    def forget(self, host: str) -> None:
        """A member reaped from gossip: its inventory goes with it."""
        self.hosts.pop(host, None)

    # --- repair -------------------------------------------------------------------------------
    def due_pulls(self, now: float, reachable: Callable[[str], bool]) -> list[str]:
        """Hosts whose copy stayed behind its claims past the grace: pull them (each is then
        not due again for `PULL_RETRY_S`, so an unanswered pull does not repeat every round)."""
        out = []
        for host, inv in self.hosts.items():
            if inv.pull_at is not None and inv.pull_at <= now and not inv.consistent():
                if reachable(host):
                    out.append(host)
                inv.pull_at = now + PULL_RETRY_S
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
                entry = None if wire is None else servo_from_wire(host, wire)
                return self.replica.apply_delta(now, host, int(version), int(digest), sid, entry)
            if kind == SPEC and isinstance(payload[1], dict):
                return self.on_spec(payload[1])
        except (TypeError, ValueError, IndexError, KeyError):
            pass
        return self._bad("app_payload")

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
