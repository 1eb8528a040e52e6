"""Many real gossip cores on one virtual clock and one virtual network.

This is the layer the simulator, the gossip benchmark and the core's multi-member tests share:
each simulated agent is an unmodified `gossip.core.Gossip`; this module only does what the Trio
transport does for a real agent (deliver packets, wake the core at its deadline, run the TCP
ping fallback and push-pull exchanges) on top of `sim.engine` and `sim.network`. Agents can
crash (stop answering, for good or until restarted), stall (stop processing for a while,
like a SIGSTOPped process whose socket buffers fill; everything queued is handled on waking),
and be slow: every packet reaches the core a fixed delay after it arrived while its timers
still fire on time (a CPU-starved process working through a queue, the fault behind the false
positives the Lifeguard paper set out to remove).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial
from typing import Any

from gossip.broadcast_queue import PriorityBroadcasts
from gossip.core import Gossip, GossipConfig, MemberEvent, MemberRecords
from gossip.crypto import OVERHEAD
from gossip.messages import Msg
from gossip.wire import PacketSizer
from sim.engine import Engine
from sim.network import Network

RECONNECT_INTERVAL_S = 10.0  # as gossip.service: try a member believed dead now and then


class SimAgent:
    def __init__(
        self, net: GossipNet, name: str, region: str, zone: str, meta: dict[str, Any]
    ) -> None:
        self.net = net
        self._engine = net.engine
        self.name = name
        self.region = region
        self.zone = zone
        self.core = Gossip(
            name,
            (name, 1),
            meta,
            random.Random(net.rng.random()),
            net.engine.now,
            net.config,
            records=net.records,
        )
        self.crashed = False
        self.stalled_until = 0.0
        self.slow_s = 0.0  # > 0: every packet is handled this long after it arrives
        self._backlog: list[tuple[str, Any]] = []
        self._wake_at = float("inf")
        self._reconnect_rng = random.Random(net.rng.random())
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        delay = RECONNECT_INTERVAL_S * (0.5 + self._reconnect_rng.random())
        self.net.engine.after(delay, self._reconnect)

    def _reconnect(self) -> None:
        if self.crashed:
            return
        if not self.stalled:
            target = self.core.reconnect_target()
            if target is not None:
                self.net.push_pull(self, target.name)
        self._schedule_reconnect()

    @property
    def stalled(self) -> bool:
        return self.net.engine.now < self.stalled_until

    def schedule(self) -> None:
        when = self.core.next_deadline()
        engine = self._engine
        if engine.now < self.stalled_until:
            when = max(when, self.stalled_until)
        if when < self._wake_at:
            self._wake_at = when
            engine.at(when, partial(self._wake, when))

    def _wake(self, when: float) -> None:
        if when != self._wake_at or self.crashed:
            return
        self._wake_at = float("inf")
        if self.stalled:
            self.schedule()
            return
        now = self._engine.now
        backlog, self._backlog = self._backlog, []
        for src, msgs in backlog:
            self.core.handle(now, (src, 1), src, msgs)
        self.core.tick(now)
        self.flush()

    def receive(self, src: str, msgs: list[Msg]) -> None:
        """A packet arrived. Runs for every packet: the usual case (not slow, crashed or
        stalled) hands it to the core here rather than through `_handle`."""
        if self.slow_s > 0:
            self._engine.after(self.slow_s, lambda: self._handle(src, msgs))
            return
        now = self._engine.now
        if self.crashed or now < self.stalled_until:
            self._handle(src, msgs)
            return
        self.core.handle(now, (src, 1), src, msgs)
        self.flush()

    def _handle(self, src: str, msgs: list[Msg]) -> None:
        if self.crashed:
            return
        if self.stalled:
            self._backlog.append((src, msgs))
            self.schedule()
            return
        self.core.handle(self._engine.now, (src, 1), src, msgs)
        self.flush()

    def flush(self) -> None:
        """Hand the core's outputs to the virtual network, as the Trio transport would."""
        core, net = self.core, self.net
        if core.outbox:
            out, core.outbox = core.outbox, []
            for addr, msgs, nbytes in out:
                net.send(self.name, addr[0], msgs, nbytes)
        if core.tcp_pings:
            pings, core.tcp_pings = core.tcp_pings, []
            for addr, seq, _target in pings:
                net.tcp_ping(self, addr[0], seq)
        if core.push_pull_due and core.take_push_pull_due():
            peer = core.push_pull_target()
            if peer is not None:
                net.push_pull(self, peer.name)
        if core.events:
            events, core.events = core.events, []
            for ev in events:
                net.on_event(self.name, ev)
        self.schedule()


class GossipNet:
    def __init__(
        self,
        seed: int,
        config: GossipConfig | None = None,
        loss: float = 0.0,
        engine: Engine | None = None,
        on_event: Callable[[str, MemberEvent], None] | None = None,
        count_bytes: bool = True,
    ) -> None:
        self.rng = random.Random(seed)
        self.engine = engine or Engine()
        self.config = config or GossipConfig()
        self.agents: dict[str, SimAgent] = {}
        self.network = Network(self.engine, self.rng, self._region, loss=loss)
        self.network.attach(self._deliver)
        self._on_event = on_event
        self.count_bytes = count_bytes
        self._sizer = PacketSizer()
        # one record per member state for every core: after a region outage at 10,000 agents
        # each survivor holds each lost member as suspect, then dead (see `MemberRecords`)
        self.records = MemberRecords()

    def _region(self, name: str) -> str:
        return self.agents[name].region

    def add(
        self, name: str, region: str = "r0", zone: str = "", meta: dict[str, Any] | None = None
    ) -> SimAgent:
        agent = SimAgent(self, name, region, zone or f"{region}-a", meta or {})
        self.agents[name] = agent
        agent.schedule()
        return agent

    def join_all(self, seed_name: str) -> None:
        """Every agent pushes and pulls with one seed, as `--join` does."""
        for agent in self.agents.values():
            if agent.name != seed_name:
                self.push_pull(agent, seed_name)

    def preload_converged(self) -> None:
        """Every agent knows every other as alive, as after a long quiet run (no join storm)."""
        now = self.engine.now
        table = {a.name: a.core.me for a in self.agents.values()}
        for agent in self.agents.values():
            agent.core.preload(now, table)
            agent.core.broadcasts = PriorityBroadcasts(self.config.retransmit_mult)

    def send(self, src: str, dst: str, msgs: list[Msg], msg_bytes: int) -> None:
        """`msg_bytes`: the messages' encoded sizes summed, as the core gives them."""
        size = self._sizer.size(src, len(msgs), msg_bytes) + OVERHEAD if self.count_bytes else 0
        self.network.send(src, dst, msgs, size)

    def _deliver(self, src: str, dst: str, payload: Any) -> None:
        agent = self.agents.get(dst)
        if agent is not None:
            if isinstance(payload, tuple) and payload[0] == "tcp":
                payload[1]()
            else:
                agent.receive(src, payload)

    def _reachable(self, a: str, b: str) -> bool:
        net = self.network
        return a not in net.down and b not in net.down and net.reachable(a, b)

    def tcp_ping(self, agent: SimAgent, target: str, seq: int) -> None:
        def acked() -> None:
            if not agent.crashed and self._reachable(agent.name, target):
                agent.core.tcp_ack(self.engine.now, seq)
                agent.flush()

        def answered() -> None:
            t = self.agents.get(target)
            if t is None or t.crashed or t.stalled or agent.crashed:
                return
            # a slow target answers late, and a slow prober reads the answer late
            self.engine.after(self.config.probe_timeout_s / 10 + t.slow_s + agent.slow_s, acked)

        self.network.send(agent.name, target, ("tcp", answered), 64, reliable=True)

    def push_pull(self, agent: SimAgent, target: str) -> None:
        def exchange() -> None:
            t = self.agents.get(target)
            if t is None or t.crashed or t.stalled or agent.crashed:
                return
            now = self.engine.now
            mine, theirs = agent.core.push_pull_state(), t.core.push_pull_state()
            mine_app, theirs_app = agent.core.app_state(False), t.core.app_state(False)
            t.core.merge_state(now, mine)
            t.core.merge_app_state(now, agent.name, mine_app, False)
            t.flush()

            def back() -> None:
                if not agent.crashed and self._reachable(agent.name, target):
                    agent.core.merge_state(self.engine.now, theirs)
                    agent.core.merge_app_state(self.engine.now, target, theirs_app, False)
                    agent.flush()

            self.engine.after(0.001, back)

        def arrive() -> None:
            t = self.agents.get(target)
            if t is not None and t.slow_s > 0:
                self.engine.after(t.slow_s, exchange)
            else:
                exchange()

        size = 64 * (len(self.agents) + 1) if self.count_bytes else 0
        self.network.send(agent.name, target, ("tcp", arrive), size, reliable=True)

    def on_event(self, observer: str, event: MemberEvent) -> None:
        if self._on_event is not None:
            self._on_event(observer, event)

    # --- faults -----------------------------------------------------------------------------
    def crash(self, name: str) -> None:
        self.agents[name].crashed = True
        self.network.down.add(name)

    def stall(self, name: str, seconds: float) -> None:
        agent = self.agents[name]
        agent.stalled_until = max(agent.stalled_until, self.engine.now + seconds)
        agent.schedule()

    def slow(self, name: str, delay_s: float) -> None:
        """From now on `name` handles every packet `delay_s` late (0: back to normal)."""
        self.agents[name].slow_s = delay_s

    def run(self, seconds: float) -> None:
        self.engine.run_until(self.engine.now + seconds)

    def view(self, observer: str) -> dict[str, str]:
        return {m.name: m.status for m in self.agents[observer].core.members.values()}
