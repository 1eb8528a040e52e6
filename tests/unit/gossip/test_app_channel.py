"""Application news (servo inventories, specs) goes out twice as often as membership news, by
its origin and by every relay: it has no Lifeguard timer or refutation to repair a miss, and a
copy of the cluster that misses every copy of a delta waits for a push-pull (minutes at 1,000
agents)."""

from __future__ import annotations

import random
from typing import Any

from gossip.broadcast_queue import retransmit_limit
from gossip.core import APP_RETRANSMIT_MULT, Gossip, GossipConfig
from gossip.messages import MsgType


class _Everything:
    """A delegate to whom every payload is news."""

    def notify(self, now: float, payload: Any) -> bool:
        return True

    def local_state(self, join: bool) -> Any:
        return None

    def merge_remote_state(self, now: float, sender: str, state: Any, join: bool) -> None:
        return None


def _core(peers: int) -> Gossip:
    # no probes (the peers here never answer): nobody is suspected, the bound stays put
    quiet = GossipConfig(probe_interval_s=100_000.0)
    g = Gossip("me", ("me", 1), {}, random.Random(3), 0.0, quiet, delegate=_Everything())
    for i in range(peers):
        g.handle(0.0, ("p", 1), f"p{i}", [[MsgType.ALIVE, f"p{i}", 0, (f"p{i}", 1), 1, {}]])
    g.events.clear()
    return g


def _sends_of(g: Gossip, kind: MsgType, key: str, start: float) -> int:
    """Packets carrying the message of `kind` under `key` until the queue has let it go."""
    sent, t = 0, start
    while t < start + 120:
        t += 0.01
        g.tick(t)
        for _addr, msgs, _ in g.outbox:
            sent += sum(1 for m in msgs if m[0] == kind and m[1] == key)
        g.outbox.clear()
    return sent


def test_app_news_is_sent_twice_the_membership_bound_by_origin_and_relays() -> None:
    assert APP_RETRANSMIT_MULT == 2
    g = _core(40)
    limit = retransmit_limit(g.config.retransmit_mult, g.live_count())
    _sends_of(g, MsgType.ALIVE, "p0", 0.0)  # the joins' own news drains first
    g.broadcast_app(120.0, "mine", {"v": 1})
    assert _sends_of(g, MsgType.APP, "mine", 120.0) == APP_RETRANSMIT_MULT * limit
    g.handle(240.0, ("p1", 1), "p1", [[MsgType.APP, "relayed", {"v": 2}]])
    assert _sends_of(g, MsgType.APP, "relayed", 240.0) == APP_RETRANSMIT_MULT * limit
    # membership news keeps the usual bound
    g.handle(360.0, ("p1", 1), "p1", [[MsgType.ALIVE, "p2", 1, ("p2", 1), 2, {"x": 1}]])
    assert _sends_of(g, MsgType.ALIVE, "p2", 360.0) == limit
