"""Replicating project specs: write here, spread the entry on gossip's APP channel (every
agent that learns something from it passes it on, with the membership retransmit bound), and
every few seconds compare registry digests with a few random peers and pull from one that
differs (anti-entropy), so an agent that missed a broadcast converges within seconds. Merging
is the registry's last-writer-wins on the hybrid logical clock. An entry too large for a gossip
packet (a spec with a very large env) travels by HTTP rumour instead: a few random peers, each
passing on what is news to it.

The digest is asked for, not carried in gossip metadata: a spec write would otherwise change
every agent's metadata at once and set off a broadcast from each of them (N^2 packets per
deploy: at 40 agents on two cores, a deploy took seconds).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from typing import Any

import trio

from gossip.wire import encoded_size
from node.cluster import Peer
from node.hlc import HybridClock, Timestamp
from node.logfmt import get_logger
from node.membership import wall_ms
from node.peers import PeerClient, PeerError
from node.projects import MAX_CLOCK_DRIFT_MS, Entry, Project, ProjectRegistry

log = get_logger("node.specs")

# Every gossip push-pull compares registry digests (node.inventory.ClusterDelegate) and a
# difference pulls at once; push-pulls are far apart (30 s, more beyond 32 members), so this
# round of asked-for digests still runs every few seconds: an agent that missed a broadcast
# converges within seconds (a 10 s round with one peer left a 3-agent cluster up to ~20 s).
ANTI_ENTROPY_S = 3.0
ANTI_ENTROPY_PEERS = 2  # peers whose digest each round compares with this agent's
PULL_BACKLOG = 16
# During a stream of deploys two registries differ at almost every push-pull while the
# broadcasts are still on their way; a whole-registry pull each time cost every agent more than
# the broadcasts did. At most one such pull per this many seconds.
PULL_MIN_GAP_S = 10.0
PUSH_BACKLOG = 1000  # writes waiting to be pushed; beyond, anti-entropy carries them
PUSH_FANOUT = 4
PUSH_BATCH_S = 0.5  # writes made within this long travel together (one request, one fsync)
# An APP broadcast shares a packet with a probe and other news: at most this much of the
# 1,400-byte budget for one spec entry.
BROADCAST_MAX_BYTES = 1000


class SpecReplicator:
    def __init__(
        self,
        me: str,
        registry: ProjectRegistry,
        hlc: HybridClock,
        client: PeerClient,
        peers: Callable[[], list[Peer]],
        on_merged: Callable[[list[Entry]], None] = lambda entries: None,
        broadcast: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.me = me
        self._broadcast = broadcast
        self.registry = registry
        self.hlc = hlc
        self.client = client
        self._peers = peers
        self._on_merged = on_merged
        self._rng = random.Random()
        self._push_send, self._push_recv = trio.open_memory_channel[tuple[Entry, str]](PUSH_BACKLOG)
        self._pull_send, self._pull_recv = trio.open_memory_channel[str](PULL_BACKLOG)

    def write(self, name: str, project: Project | None) -> Entry:
        entry = Entry(name, self.hlc.now(wall_ms()), project)
        self.registry.merge([entry])
        self._on_merged([entry])
        return entry

    async def push_to(self, entry: Entry, names: list[str]) -> None:
        """Tell these peers now, and wait (at most a few seconds) until they have it."""
        body = [entry.to_wire()]
        peers = [p for p in self._peers() if p.name in names and p.reachable]
        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(self._push_quietly, peer, body)

    def push_soon(self, entry: Entry, but: str = "") -> None:
        """Spread a write in the background: the request that made it does not wait for any
        peer (a deploy through one agent must not cost more in a larger cluster)."""
        if self._broadcast is not None:
            payload = ["s", entry.to_wire()]
            if encoded_size(payload) <= BROADCAST_MAX_BYTES:
                self._broadcast(f"s:{entry.name}", payload)
                return
        try:
            self._push_send.send_nowait((entry, but))
        except trio.WouldBlock:
            log.warning("specs.push_backlog_full", project=entry.name)

    async def push(self, entry: Entry | list[Entry], but: str = "") -> None:
        """Tell `PUSH_FANOUT` random reachable peers about writes now; each that learns
        something from them tells `PUSH_FANOUT` more (rumour mongering), so a write reaches
        every agent in a few hops while the writer sends a handful of requests, whatever the
        size of the cluster. Anti-entropy repairs whatever a push misses."""
        batch = entry if isinstance(entry, list) else [entry]
        body = [e.to_wire() for e in batch]
        others = [p for p in self._peers() if p.name not in (self.me, but) and p.reachable]
        async with trio.open_nursery() as nursery:
            for peer in self._rng.sample(others, min(PUSH_FANOUT, len(others))):
                nursery.start_soon(self._push_quietly, peer, body)

    async def _push_quietly(self, peer: Peer, body: list[dict[str, Any]]) -> None:
        try:
            await self.client.push_specs(peer.name, peer.api, body)
        except PeerError as exc:
            log.debug("specs.push_failed", peer=peer.name, detail=exc.detail)

    def digest(self) -> str:
        return self.registry.digest()

    def note_digest(self, peer: str, digest: str) -> None:
        """A push-pull showed `peer`'s registry differs from ours: pull from it soon."""
        if digest != self.registry.digest():
            # when pulls are already waiting, they bring what this one would
            with contextlib.suppress(trio.WouldBlock):
                self._pull_send.send_nowait(peer)

    def merge_broadcast(self, raw: Any) -> bool:
        """An entry from the APP channel: True when it was news (gossip then passes it on).
        Most receptions are duplicates: one no newer than what we hold is answered from its
        name and timestamp, before the whole spec is parsed and checked."""
        if not isinstance(raw, dict):
            return False
        try:
            ts = Timestamp.from_wire(raw.get("ts"))
        except ValueError:
            ts = None
        name = raw.get("name")
        mine = self.registry.get(name) if isinstance(name, str) else None
        if ts is not None and mine is not None and mine.ts >= ts:
            return False
        return self.merge([raw]) > 0

    def merge(self, raw: list[dict[str, Any]], sender: str = "") -> int:
        entries = []
        for item in raw:
            try:
                entries.append(Entry.from_wire(item))
            except (KeyError, TypeError, ValueError) as exc:  # refused, never merged
                log.warning("specs.bad_entry", sender=sender, detail=str(exc)[:200])
        now = wall_ms()
        future = [e for e in entries if e.ts.wall_ms > now + MAX_CLOCK_DRIFT_MS]
        for e in future:  # it would drag every agent's clock (and LWW) along with it
            log.warning("specs.entry_from_future", project=e.name, writer=e.ts.node, sender=sender)
        entries = [e for e in entries if e not in future]
        for e in entries:
            self.hlc.observe(e.ts, now)
        won = self.registry.merge(entries)
        if won:
            self._on_merged(won)
            if sender:  # news from a push: pass it on
                for entry in won:
                    self.push_soon(entry, but=sender)
        return len(won)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pusher)
            nursery.start_soon(self._puller)
            task_status.started()
            while True:
                await trio.sleep(ANTI_ENTROPY_S)
                await self.pull_round()

    async def _pusher(self) -> None:
        """Gather the writes of `PUSH_BATCH_S` and push them together."""
        async with trio.open_nursery() as nursery:
            while True:
                entry, but = await self._push_recv.receive()
                batch = {entry.name: entry}
                skip = {but}
                with trio.move_on_after(PUSH_BATCH_S):
                    while len(batch) < 100:
                        entry, but = await self._push_recv.receive()
                        batch[entry.name] = entry
                        skip.add(but)
                # the peer a news came from already has it; with news from several, skip none
                nursery.start_soon(self.push, list(batch.values()), but if len(skip) == 1 else "")

    async def _puller(self) -> None:
        last = -PULL_MIN_GAP_S
        async for name in self._pull_recv:
            if trio.current_time() - last < PULL_MIN_GAP_S:
                continue
            last = trio.current_time()
            peer = next((p for p in self._peers() if p.name == name and p.reachable), None)
            if peer is None:
                continue
            try:
                raw = await self.client.pull_specs(peer.name, peer.api)
            except PeerError as exc:
                log.debug("specs.pull_failed", peer=peer.name, detail=exc.detail)
                continue
            self.merge(raw)

    async def pull_round(self, peers: int = ANTI_ENTROPY_PEERS) -> None:
        """Compare digests with `peers` random reachable peers; pull from those that differ."""
        others = [p for p in self._peers() if p.name != self.me and p.reachable]
        for peer in self._rng.sample(others, min(peers, len(others))):
            try:
                if await self.client.specs_digest(peer.name, peer.api) == self.registry.digest():
                    continue
                raw = await self.client.pull_specs(peer.name, peer.api)
            except PeerError as exc:
                log.debug("specs.pull_failed", peer=peer.name, detail=exc.detail)
                continue
            self.merge(raw)
