"""What a simulated owner plans from, carried from one plan to the next.

An owner plans from its own view: every member's row (its metadata, its servos as the owner's
replica holds them: `node.cluster.peer_from_member`), the owner's recent actions laid over them
(`node.executor.Overlay`), a refusing host's own answer in place of its row, and the placement
index of all that. After a region outage at 10,000 agents some 5,000 plans are made, each by a
different owner over 10,000 rows, and building each from nothing cost 75 ms: six minutes of
the run. Yet the owners' views differ in few rows (at 1,000 agents, 7 % between one plan and the
next), and the rows that are the same are the same objects: cores share member records
(`gossip.core.MemberRecords`) and replicas share inventory records (`HostInventory.shared`).

So `Planner` keeps the last inputs it built, whoever's, finds the rows of the next owner's view
that differ from them by identity, at C speed over the whole table, and rebuilds only those: in
the view, and in the index (`PlacementIndex.replace`). What it hands out is exactly what a
build from nothing gives (tests/sim compare the two at every plan of a region outage); when the
set of members differs it does build from nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from itertools import compress
from operator import is_not, ne
from typing import Any

from gossip.core import Member
from node.cluster import Peer, ServoEntry, node_view
from node.executor import Overlay, peer_with_state
from node.inventory import HostInventory, InventoryReplica
from placement.model import ALIVE, ClusterView, NodeView
from placement.place import PlacementIndex

# a member's row in one owner's view: its peer and its placement row (None: no valid metadata)
RowOf = Callable[[Member, InventoryReplica], tuple[Peer, NodeView] | None]


class Planner:
    """The last planning inputs built, position by position in sorted member names."""

    def __init__(self, row_of: RowOf) -> None:
        self._row_of = row_of
        self.key: Any = None  # the caller's note of what the inputs were built for
        self.view = ClusterView(())
        self.index = PlacementIndex(self.view)
        self.status: dict[str, str] = {}  # every row's status in `view`, by name
        self._names: list[str] = []
        self._pos: dict[str, int] = {}
        # what each row was built from: the member record, its host's servo list (identity:
        # a replica's list is rebuilt on every change) and inventory version
        self._recs: list[Member] = []
        self._servos: list[tuple[ServoEntry, ...] | None] = []
        self._versions: list[int] = []
        self._base: list[tuple[Peer, NodeView] | None] = []  # before overlay and answers
        self._peers: list[Peer | None] = []  # as planned from: overlay and answers laid over
        self._nodes: list[NodeView | None] = []
        self._laid: set[int] = set()  # where the overlay or an answer changed the row
        # `replica.base` of every name, for the base last seen (the simulator's replicas all
        # share one, and change it never)
        self._base_of: Mapping[str, HostInventory] | None = None
        self._base_invs: list[HostInventory | None] = []

    def build(
        self,
        members: Mapping[str, Member],
        replica: InventoryReplica,
        overlay: Overlay | None,
        now: float,
        answered: Mapping[str, Mapping[str, Any]],
        dirty: Iterable[str] | None = None,
    ) -> None:
        """The inputs of the view `members` and `replica` give, from the last ones built.
        `dirty`, when given, names every member whose row can differ from the last build
        (the same observer's view since: its membership events and inventory news);
        otherwise every row is compared."""
        changed = self._changed(members, replica, dirty)
        if changed is None or not self._rebuild_rows(changed, members, replica):
            self._from_nothing(members, replica, overlay, now, answered)
            return
        changed |= self._laid
        self._laid = self._lay(overlay, now, answered)
        changed |= self._laid
        for i in changed:
            self._update(i, overlay, answered)
        self.view = ClusterView(tuple(filter(None, self._nodes)))

    def _changed(
        self,
        members: Mapping[str, Member],
        replica: InventoryReplica,
        dirty: Iterable[str] | None,
    ) -> set[int] | None:
        """The positions whose rows can differ from the last build (None: the members are
        not the same ones, build from nothing)."""
        names, pos = self._names, self._pos
        if len(members) != len(names):
            return None
        if dirty is None:
            if not all(map(members.__contains__, names)):
                return None
            return self._compare(members, replica)
        changed = set()
        for name in dirty:
            i = pos.get(name)
            if i is None or name not in members:  # joined, or reaped
                return None
            changed.add(i)
        return changed

    def _rebuild_rows(
        self, changed: set[int], members: Mapping[str, Member], replica: InventoryReplica
    ) -> bool:
        """Rebuild the rows at `changed` before overlay and answers; False when a member's
        row appeared or went (its metadata became valid or not: build from nothing)."""
        for i in changed:
            name = self._names[i]
            rec = members[name]
            row = self._row_of(rec, replica)
            if (row is None) != (self._base[i] is None):
                return False
            self._base[i] = row
            self._recs[i] = rec
            (self._servos[i],), (self._versions[i],) = _tokens([replica.get(name)])
        return True

    def _compare(self, members: Mapping[str, Member], replica: InventoryReplica) -> set[int]:
        """The positions whose row was built from another member record, servo list or
        inventory version than the view now holds, found at C speed. (An inventory whose
        list was not built yet shows None: not the list it had, so it is rebuilt, and the
        list built then is what is remembered.)"""
        names = self._names
        recs = list(map(members.__getitem__, names))
        servos, versions = _tokens(self._inventories(replica, names))
        count = range(len(names))
        changed = set(compress(count, map(is_not, recs, self._recs)))
        changed.update(compress(count, map(is_not, servos, self._servos)))
        changed.update(compress(count, map(ne, versions, self._versions)))
        return changed

    def servos_of(self, project: str, hosts: Iterable[str]) -> list[ServoEntry]:
        """The project's servos as planned from, host by host in name order. `hosts` must hold
        every host the project has a servo on in these inputs."""
        out: list[ServoEntry] = []
        for host in sorted(hosts):
            i = self._pos.get(host)
            peer = None if i is None else self._peers[i]
            if peer is not None:
                out.extend(s for s in peer.servos if s.project == project)
        return out

    # --- building ----------------------------------------------------------------------------
    def _from_nothing(
        self,
        members: Mapping[str, Member],
        replica: InventoryReplica,
        overlay: Overlay | None,
        now: float,
        answered: Mapping[str, Mapping[str, Any]],
    ) -> None:
        self._names = names = sorted(members)
        self._base_of = None
        self._pos = {name: i for i, name in enumerate(names)}
        self._recs = [members[name] for name in names]
        self._base = [self._row_of(m, replica) for m in self._recs]
        self._servos, self._versions = _tokens(self._inventories(replica, names))
        self._peers = [None if row is None else row[0] for row in self._base]
        self._nodes = [None if row is None else row[1] for row in self._base]
        self._laid = self._lay(overlay, now, answered)
        for i in self._laid:
            self._peers[i], self._nodes[i] = self._laid_row(i, overlay, answered)
        self.view = ClusterView(tuple(filter(None, self._nodes)))
        self.index = PlacementIndex(self.view)
        self.status = {node.name: node.status for node in self.view.nodes}

    def _lay(
        self, overlay: Overlay | None, now: float, answered: Mapping[str, Mapping[str, Any]]
    ) -> set[int]:
        """Where the overlay (pruned first, against the rows' inventory versions, as
        `Overlay.apply` does) and the answers land."""
        out = set()
        if overlay is not None and (overlay.added or overlay.removed):
            overlay.prune(self._inventory_version, now)
            out.update(self._present(overlay.nodes()))
        out.update(self._present(answered))
        return out

    def _inventory_version(self, host: str) -> int:
        i = self._pos.get(host)
        row = None if i is None else self._base[i]
        return 0 if row is None else row[0].inventory

    def _present(self, hosts: Iterable[str]) -> list[int]:
        return [i for h in hosts if (i := self._pos.get(h)) is not None and self._base[i]]

    def _laid_row(
        self, i: int, overlay: Overlay | None, answered: Mapping[str, Mapping[str, Any]]
    ) -> tuple[Peer | None, NodeView | None]:
        row = self._base[i]
        if row is None:
            return None, None
        peer = row[0]
        if overlay is not None:
            peer = overlay.over(peer)
        state = answered.get(peer.name)
        if state is not None:
            peer = peer_with_state(peer, state)
        return peer, row[1] if peer is row[0] else node_view(peer)

    def _update(
        self, i: int, overlay: Overlay | None, answered: Mapping[str, Mapping[str, Any]]
    ) -> None:
        if i in self._laid:
            peer, node = self._laid_row(i, overlay, answered)
        else:
            row = self._base[i]
            peer, node = (None, None) if row is None else row
        self._peers[i] = peer
        old = self._nodes[i]
        if node is not old:
            self._nodes[i] = node
            if node is not None:
                self.status[node.name] = node.status
                if old is None or _indexed(old) != _indexed(node):
                    self.index.replace(node)

    def _inventories(
        self, replica: InventoryReplica, names: list[str]
    ) -> list[HostInventory | None]:
        """`replica.get` of every name, without a Python call per name."""
        if replica.base is not self._base_of:
            self._base_of = replica.base
            self._base_invs = list(map(replica.base.get, names))
        hosts = replica.hosts
        if not hosts:
            return self._base_invs
        return [
            b if h is None else h
            for h, b in zip(map(hosts.get, names), self._base_invs, strict=True)
        ]


def _tokens(
    invs: list[HostInventory | None],
) -> tuple[list[tuple[ServoEntry, ...] | None], list[int]]:
    """What a row is built from in each inventory: its servo list (by identity: a replica's
    list is rebuilt on every change) and its version."""
    return (
        [None if inv is None else inv.entries for inv in invs],
        [0 if inv is None else inv.version for inv in invs],
    )


def _indexed(node: NodeView) -> tuple[Any, ...]:
    """What the placement index holds of a row (`placement.place._Node`): a member going from
    suspect to dead, the usual change between two owners' views after an outage, changes
    its status in the view but nothing in the index."""
    return (
        node.region,
        node.zone,
        node.status == ALIVE,
        node.memory_total_mb,
        node.memory_free_mb,
        node.millicpus_total,
        node.millicpus_free,
        node.servos,
    )
