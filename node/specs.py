"""Replicating project specs: write here, tell every alive peer now, and pull from any peer whose
registry digest differs (anti-entropy), so an agent that missed a push converges within a few
seconds. Merging is the registry's last-writer-wins on the hybrid logical clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from node.cluster import Peer
from node.hlc import HybridClock
from node.logfmt import get_logger
from node.membership import wall_ms
from node.peers import PeerClient, PeerError
from node.projects import Entry, Project, ProjectRegistry

log = get_logger("node.specs")

ANTI_ENTROPY_S = 3.0
PUSH_BACKLOG = 1000  # writes waiting to be pushed; beyond, anti-entropy carries them


class SpecReplicator:
    def __init__(
        self,
        me: str,
        registry: ProjectRegistry,
        hlc: HybridClock,
        client: PeerClient,
        peers: Callable[[], list[Peer]],
        on_merged: Callable[[], None] = lambda: None,
    ) -> None:
        self.me = me
        self.registry = registry
        self.hlc = hlc
        self.client = client
        self._peers = peers
        self._on_merged = on_merged
        self._push_send, self._push_recv = trio.open_memory_channel[Entry](PUSH_BACKLOG)

    def write(self, name: str, project: Project | None) -> Entry:
        entry = Entry(name, self.hlc.now(wall_ms()), project)
        self.registry.merge([entry])
        self._on_merged()
        return entry

    def push_soon(self, entry: Entry) -> None:
        """Push a write in the background: the request that made it does not wait for the
        slowest peer (a deploy through one agent must not cost more in a larger cluster)."""
        try:
            self._push_send.send_nowait(entry)
        except trio.WouldBlock:
            log.warning("specs.push_backlog_full", project=entry.name)

    async def push(self, entry: Entry) -> None:
        """Tell every reachable peer about a write now, rather than at the next pull."""
        body = [entry.to_wire()]
        async with trio.open_nursery() as nursery:
            for peer in self._peers():
                if peer.name != self.me and peer.reachable:
                    nursery.start_soon(self._push_quietly, peer, body)

    async def _push_quietly(self, peer: Peer, body: list[dict[str, Any]]) -> None:
        try:
            await self.client.push_specs(peer.name, peer.api, body)
        except PeerError as exc:
            log.debug("specs.push_failed", peer=peer.name, detail=exc.detail)

    def merge(self, raw: list[dict[str, Any]]) -> int:
        entries = []
        for item in raw:
            try:
                entries.append(Entry.from_wire(item))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("specs.bad_entry", detail=str(exc))
        for e in entries:
            self.hlc.observe(e.ts, wall_ms())
        won = self.registry.merge(entries)
        if won:
            self._on_merged()
        return len(won)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pusher)
            task_status.started()
            while True:
                await trio.sleep(ANTI_ENTROPY_S)
                await self.pull_round()

    async def _pusher(self) -> None:
        async for entry in self._push_recv:
            await self.push(entry)

    async def pull_round(self) -> None:
        mine = self.registry.digest()
        for peer in self._peers():
            if peer.name == self.me or not peer.reachable:
                continue
            if peer.specs_digest and peer.specs_digest != mine:
                try:
                    raw = await self.client.pull_specs(peer.name, peer.api)
                except PeerError as exc:
                    log.debug("specs.pull_failed", peer=peer.name, detail=exc.detail)
                    continue
                if self.merge(raw):
                    mine = self.registry.digest()
