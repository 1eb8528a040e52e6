"""The Trio shell around the gossip core: UDP for probes and gossip, TCP for push-pull, join and
the TCP ping fallback, all on one port, every packet sealed with the cluster key ring.

The shell owns no protocol state. It feeds the core decoded packets and the time, and carries
out what the core asks (send these, try this TCP ping, push-pull with that member). Malformed,
oversized, unauthenticated or wrong-version packets are dropped and counted by reason; nothing a
peer sends can raise out of the receive loops. On TCP nothing is buffered before a fixed-size
sealed header proves the sender holds the cluster key (see gossip.wire), inbound connections are
capped (`MAX_TCP_CONNECTIONS`, more are closed at once) and must send that header within
`TCP_HEADER_TIMEOUT_S`.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from gossip.core import AppDelegate, Gossip, GossipConfig, MemberEvent
from gossip.crypto import OVERHEAD, Keyring
from gossip.eventlog import get_logger
from gossip.messages import Addr, Msg, MsgType, Status
from gossip.wire import (
    MAX_TCP_BYTES,
    TCP_HEADER_BYTES,
    DecodeError,
    decode,
    encode,
    open_tcp_header,
    pack_messages,
    seal_tcp_header,
)

log = get_logger("gossip")

TCP_TIMEOUT_S = 5.0
TCP_HEADER_TIMEOUT_S = 2.0  # a connection that sends no valid header in this time is dropped
MAX_TCP_CONNECTIONS = 32  # inbound TCP connections served at once; more are closed at accept
JOIN_BACKOFF_MAX_S = 30.0
RECONNECT_INTERVAL_S = 10.0
OUTBOX_LIMIT = 4096
RECV_BURST = 64  # packets read per wake-up before other tasks get a turn
EVENT_BACKLOG = 1024


@attrs.frozen
class MemberSnapshot:
    name: str
    status: str
    addr: str
    incarnation: int
    meta: dict[str, Any]


def parse_hostport(text: str, default_port: int) -> Addr:
    host, sep, port = text.rpartition(":")
    if not sep:
        return (text, default_port)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad address {text!r}: want HOST:PORT")
    return (host, int(port))


class GossipService:
    def __init__(
        self,
        name: str,
        bind: Addr,
        advertise: Addr,
        keyring: Keyring,
        meta: dict[str, Any],
        seeds: Sequence[Addr] = (),
        config: GossipConfig | None = None,
        rng: random.Random | None = None,
        delegate: AppDelegate | None = None,
    ) -> None:
        self.name = name
        self.delegate = delegate
        self.bind = bind
        self.advertise = advertise
        self.keyring = keyring
        self.seeds = list(seeds)
        self.config = config or GossipConfig()
        self._rng = rng or random.Random()
        self._initial_meta = meta
        self.core: Gossip | None = None
        self.dropped: dict[str, int] = {}
        self.totals = {"packets_in": 0, "packets_out": 0, "bytes_in": 0, "bytes_out": 0}
        # Membership events for the rest of the agent (API, recovery). Bounded: a consumer that
        # falls behind loses the oldest news, counted, never blocks the protocol.
        self._events_send, self.events = trio.open_memory_channel[MemberEvent](EVENT_BACKLOG)
        self._kick = trio.Event()
        self._out_send, self._out_recv = trio.open_memory_channel[tuple[Addr, bytes]](OUTBOX_LIMIT)
        self._nursery: trio.Nursery | None = None
        self._udp: socket.socket | None = None
        self._queued = 0  # packets waiting in `_out_send` for a writable socket
        # the deadline the timer loop sleeps until (it runs tick and flush without yielding,
        # so only a flush from another task, while it sleeps, can need to wake it earlier)
        self._timer_at = float("-inf")
        self.joined = trio.Event()
        self._tcp_active = 0  # inbound TCP connections being served (bounded by the cap)

    # --- the agent-facing API ---------------------------------------------------------------
    def _now(self) -> float:
        return trio.current_time()

    def members(self) -> list[MemberSnapshot]:
        if self.core is None:
            return []
        return [
            MemberSnapshot(
                m.name, m.status.value, f"{m.addr[0]}:{m.addr[1]}", m.incarnation, m.meta
            )
            for m in self.core.snapshot()
        ]

    def set_meta(self, meta: dict[str, Any]) -> None:
        if self.core is None:
            self._initial_meta = meta
            return
        self.core.set_meta(self._now(), meta)
        self._flush()

    def broadcast_app(self, key: str, payload: Any) -> None:
        """Spread an application message on the APP channel (see gossip.messages)."""
        if self.core is None:
            return
        self.core.broadcast_app(self._now(), key, payload)
        self._flush()

    async def pull_app_state(self, name: str) -> bool:
        """Ask member `name` for its application state over TCP (a receiver that saw a gap
        in that member's news); False when it could not be asked."""
        assert self.core is not None
        member = self.core.members.get(name)
        if member is None:
            return False
        try:
            reply = await self._exchange(member.addr, [MsgType.APP_PULL, self.name], TCP_TIMEOUT_S)
        except DecodeError as exc:
            self._drop(exc.reason)
            return False
        except (OSError, trio.TooSlowError, trio.BrokenResourceError, EOFError):
            return False
        if reply[0] != MsgType.APP_STATE:
            self._drop("bad_app_state_reply")
            return False
        self.core.merge_app_state(self._now(), reply[1], reply[2], False)
        self._flush()
        return True

    def counters(self) -> dict[str, dict[str, int]]:
        core = self.core.counters if self.core else {}
        return {"totals": dict(self.totals), "dropped": dict(self.dropped), "core": dict(core)}

    async def leave(self, timeout_s: float = 2.0) -> None:
        """Tell the cluster we leave (status `left`, never a failure), then give it a moment."""
        if self.core is None:
            return
        self.core.leave(self._now())
        self._flush()
        with trio.move_on_after(timeout_s):
            await trio.sleep(min(timeout_s, 3 * self.config.gossip_interval_s))
        log.info("gossip.left", name=self.name)

    # --- plumbing ----------------------------------------------------------------------------
    def _drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def _flush(self, kick: bool = True) -> None:
        """Carry out the core's outputs; `kick` wakes the timer loop, whose deadline may have
        moved earlier (the timer loop itself never kicks, or it would spin)."""
        core = self.core
        assert core is not None
        for addr, msgs, _size in core.outbox:
            self._send_udp(addr, encode(self.keyring, self.name, msgs))
        core.outbox.clear()
        if self._nursery is not None:
            for addr, seq, target in core.tcp_pings:
                self._nursery.start_soon(self._tcp_ping, addr, seq, target)
            if core.take_push_pull_due():
                peer = core.push_pull_target()
                if peer is not None:
                    self._nursery.start_soon(self._push_pull_quietly, peer.addr, False)
        core.tcp_pings.clear()
        for ev in core.events:
            level = log.info if ev.kind in ("dead", "left", "joined", "alive") else log.debug
            level(f"member.{ev.kind}", member=ev.name, incarnation=ev.incarnation)
            try:
                self._events_send.send_nowait(ev)
            except trio.WouldBlock:
                self._drop("events_backlog_full")
            if ev.kind in ("joined", "alive") and ev.name != self.name:
                self.joined.set()
        core.events.clear()
        if kick and core.next_deadline() < self._timer_at:
            self._kick.set()  # only when the timer loop would otherwise sleep past a deadline

    def _sendto(self, udp: socket.socket, addr: Addr, packet: bytes) -> bool:
        """One send on the non-blocking socket, counted; False when it would block (nothing
        sent), True when it is done with (sent, or dropped on an error)."""
        try:
            udp.sendto(packet, addr)
        except BlockingIOError:
            return False
        except OSError:
            self._drop("send_error")
        else:
            self.totals["packets_out"] += 1
            self.totals["bytes_out"] += len(packet)
        return True

    def _send_udp(self, addr: Addr, packet: bytes) -> None:
        """Send at once when the socket takes it (the usual case: no task switch per packet);
        otherwise queue it for the sender task, which waits until the socket is writable."""
        udp = self._udp
        if udp is not None and not self._queued and self._sendto(udp, addr, packet):
            return
        try:
            self._out_send.send_nowait((addr, packet))
            self._queued += 1
        except trio.WouldBlock:
            self._drop("outbox_full")

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.core = Gossip(
            self.name,
            self.advertise,
            self._initial_meta,
            self._rng,
            self._now(),
            self.config,
            self.delegate,
        )
        bound = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await bound.bind(self.bind)  # resolves a host name without blocking the loop
        # the plain socket under it, non-blocking: a burst of packets is read, and answers are
        # sent, without a trip through the scheduler for each (see _udp_receiver, _send_udp)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, fileno=bound.detach())
        udp.setblocking(False)
        self._udp = udp
        listeners = await trio.open_tcp_listeners(self.bind[1], host=self.bind[0])
        log.info("gossip.listening", addr=f"{self.advertise[0]}:{self.advertise[1]}")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._udp_receiver, udp)
                nursery.start_soon(self._udp_sender, udp)
                nursery.start_soon(self._timers)
                nursery.start_soon(self._reconnector)
                nursery.start_soon(trio.serve_listeners, self._serve_tcp, listeners)
                if self.seeds:
                    nursery.start_soon(self._join)
                task_status.started()
        finally:
            udp.close()

    async def _udp_sender(self, udp: socket.socket) -> None:
        """What `_send_udp` could not send at once, in order, as the socket drains."""
        async for addr, packet in self._out_recv:
            while not self._sendto(udp, addr, packet):
                await trio.lowlevel.wait_writable(udp)
            self._queued -= 1

    async def _udp_receiver(self, udp: socket.socket) -> None:
        """Every packet waiting, up to RECV_BURST, per wake-up: gossip arrives in bursts
        (a gossip round's packets, the acks of a probe), and a scheduler round trip per packet
        was a large share of an agent's CPU."""
        while True:
            await trio.lowlevel.wait_readable(udp)
            for _ in range(RECV_BURST):
                try:
                    packet, src = udp.recvfrom(65_535)
                except BlockingIOError:
                    break
                except OSError:
                    self._drop("recv_error")
                    break
                self.handle_packet(packet, (str(src[0]), int(src[1])))

    def handle_packet(self, packet: bytes, src: Addr) -> None:
        """One UDP packet in; never raises."""
        self.totals["packets_in"] += 1
        self.totals["bytes_in"] += len(packet)
        try:
            sender, msgs = decode(self.keyring, packet)
            assert self.core is not None
            self.core.handle(self._now(), src, sender, msgs)
            self._flush()
        except DecodeError as exc:
            self._drop(exc.reason)
        except Exception:  # a bug must cost one packet, not the agent
            self._drop("internal_error")
            log.exception("gossip.packet_error", src=f"{src[0]}:{src[1]}")

    async def _timers(self) -> None:
        assert self.core is not None
        while True:
            self._timer_at = self.core.next_deadline()
            with trio.move_on_at(self._timer_at):
                await self._kick.wait()
            self._kick = trio.Event()
            self.core.tick(self._now())
            self._flush(kick=False)

    # --- TCP: push-pull, join, ping fallback --------------------------------------------------
    async def _send_frame(self, stream: trio.abc.Stream, msg: Msg) -> None:
        """A frame: a fixed-size sealed header announcing the body, then the body sealed with
        the header as associated data (see gossip.wire)."""
        raw = pack_messages(self.name, [msg])
        header = seal_tcp_header(self.keyring, len(raw) + OVERHEAD, _wall_ms())
        packet = self.keyring.seal(raw, header)
        await stream.send_all(header + packet)
        self.totals["bytes_out"] += len(header) + len(packet)

    async def _recv_frame(self, stream: trio.SocketStream) -> Msg:
        return (await self._recv_frame_from(stream))[1]

    async def _recv_frame_from(
        self, stream: trio.SocketStream, header_timeout_s: float = float("inf")
    ) -> tuple[str, Msg]:
        # nothing is buffered beyond the fixed header until it proves the sender holds the key,
        # and an accepted connection must send it quickly (a silent one holds a slot of the cap)
        with trio.fail_after(header_timeout_s):
            header = await _recv_exactly(stream, TCP_HEADER_BYTES)
        size = open_tcp_header(self.keyring, header, _wall_ms())
        body = await _recv_exactly(stream, size)
        self.totals["bytes_in"] += size + len(header)
        sender, msgs = decode(self.keyring, body, limit=MAX_TCP_BYTES, aad=header)
        if len(msgs) != 1:
            raise DecodeError("bad_tcp_frame")
        return sender, msgs[0]

    async def _serve_tcp(self, stream: trio.SocketStream) -> None:
        if self._tcp_active >= MAX_TCP_CONNECTIONS:
            # over the cap: refuse at once rather than queue (a flood must not hold memory or
            # delay the join and push-pull of real peers once it stops)
            self._drop("tcp_connection_cap")
            await stream.aclose()
            return
        self._tcp_active += 1
        try:
            await self._serve_tcp_frame(stream)
        finally:
            self._tcp_active -= 1

    async def _serve_tcp_frame(self, stream: trio.SocketStream) -> None:
        try:
            with trio.fail_after(TCP_TIMEOUT_S):
                sender, msg = await self._recv_frame_from(stream, TCP_HEADER_TIMEOUT_S)
                assert self.core is not None
                if msg[0] == MsgType.PUSH_PULL:
                    reply: Msg = [
                        MsgType.PUSH_PULL,
                        False,
                        self.core.push_pull_state(),
                        self.core.app_state(False),
                    ]
                    self.core.merge_state(self._now(), msg[2])
                    self.core.merge_app_state(self._now(), sender, msg[3], msg[1])
                    self._flush()
                    await self._send_frame(stream, reply)
                elif msg[0] == MsgType.APP_PULL:
                    await self._send_frame(
                        stream, [MsgType.APP_STATE, self.name, self.core.app_state(False)]
                    )
                elif msg[0] == MsgType.PING:
                    ack = self.core.answer_tcp_ping(msg)
                    if ack is not None:
                        await self._send_frame(stream, ack)
                else:
                    self._drop("unexpected_tcp_message")
        except DecodeError as exc:
            self._drop(exc.reason)
        except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, EOFError):
            self._drop("tcp_incomplete")
        except Exception:
            self._drop("internal_error")
            log.exception("gossip.tcp_error")
        finally:
            await stream.aclose()

    async def _exchange(self, addr: Addr, msg: Msg, timeout_s: float) -> Msg:
        return (await self._exchange_from(addr, msg, timeout_s))[1]

    async def _exchange_from(self, addr: Addr, msg: Msg, timeout_s: float) -> tuple[str, Msg]:
        with trio.fail_after(timeout_s):
            stream = await trio.open_tcp_stream(addr[0], addr[1])
            try:
                await self._send_frame(stream, msg)
                return await self._recv_frame_from(stream)
            finally:
                await stream.aclose()

    async def push_pull(self, addr: Addr, join: bool) -> None:
        assert self.core is not None
        mine = [MsgType.PUSH_PULL, join, self.core.push_pull_state(), self.core.app_state(join)]
        sender, reply = await self._exchange_from(addr, mine, TCP_TIMEOUT_S)
        if reply[0] != MsgType.PUSH_PULL:
            raise DecodeError("bad_push_pull_reply")
        self.core.merge_state(self._now(), reply[2])
        self.core.merge_app_state(self._now(), sender, reply[3], join)
        self._flush()

    async def _push_pull_quietly(self, addr: Addr, join: bool) -> bool:
        try:
            await self.push_pull(addr, join)
            return True
        except DecodeError as exc:
            self._drop(exc.reason)
        except (OSError, trio.TooSlowError, trio.BrokenResourceError, EOFError) as exc:
            log.debug("gossip.push_pull_failed", addr=f"{addr[0]}:{addr[1]}", detail=str(exc))
        return False

    async def _join(self) -> None:
        """Push-pull with the first seed that answers; retry the list with backoff until one
        does, so agents may start in any order."""
        delay = 0.5
        while True:
            for seed in self.seeds:
                if await self._push_pull_quietly(seed, True):
                    log.info(
                        "gossip.joined", seed=f"{seed[0]}:{seed[1]}", members=len(self.members())
                    )
                    return
            log.warning("gossip.join_retry", seeds=len(self.seeds), retry_in_s=delay)
            await trio.sleep(delay)
            delay = min(JOIN_BACKOFF_MAX_S, delay * 2)

    async def _reconnector(self) -> None:
        """Try members we believe dead now and then: how the sides of a healed partition meet."""
        assert self.core is not None
        while True:
            await trio.sleep(RECONNECT_INTERVAL_S * (0.5 + self._rng.random()))
            target = self.core.reconnect_target()
            if target is not None and target.status == Status.DEAD:
                await self._push_pull_quietly(target.addr, False)

    async def _tcp_ping(self, addr: Addr, seq: int, target: str) -> None:
        """The TCP fallback probe: a path that loses UDP but not TCP is still a live peer, and
        a refused connection is a peer whose agent is gone (`Gossip.tcp_refused`)."""
        assert self.core is not None
        budget = max(0.1, self.config.probe_interval_s - self.config.probe_timeout_s)
        try:
            reply = await self._exchange(addr, [MsgType.PING, seq, target, self.name], budget)
        except OSError as exc:
            if _refused(exc):
                self.core.tcp_refused(self._now(), seq)
                self._flush()
            return
        except (trio.TooSlowError, trio.BrokenResourceError, EOFError, DecodeError):
            return
        if reply[0] == MsgType.ACK and reply[1] == seq:
            self.core.tcp_ack(self._now(), seq)
            self._flush()


def _refused(exc: BaseException) -> bool:
    """Every attempt to connect was refused (trio groups one error per address tried)."""
    if isinstance(exc, ConnectionRefusedError):
        return True
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        return all(_refused(e) for e in cause.exceptions)
    return False


def _wall_ms() -> int:
    """The wall clock for TCP frame headers' freshness (the shell's, never the core's)."""
    return int(time.time() * 1000)


async def _recv_exactly(stream: trio.SocketStream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.receive_some(n - len(buf))
        if not chunk:
            raise EOFError("connection closed early")
        buf += chunk
    return bytes(buf)
