"""The agent: one Trio nursery that owns every task of a Shoal server.

Start-up order matters and is this file's job: open the durable stores, reconcile the host's
containers with its store (a rebooted host is whole before it takes requests), start gossip and
join, start the background loops, then serve the API and print the join command. On SIGINT or
SIGTERM: drain if asked, leave the cluster gracefully, then cancel the nursery so every task
unwinds through its own cleanup.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from gossip.crypto import Keyring
from gossip.service import GossipService, parse_hostport
from node import join_token
from node.capacity import host_capacity
from node.config import DEFAULT_GOSSIP_PORT, AgentConfig
from node.context import AgentContext
from node.datadir import DataDirLocked, open_data_dir
from node.hlc import HybridClock
from node.host import HostService
from node.keys import KeyFileError, load_keys
from node.logfmt import configure_logging, get_logger
from node.metrics import Metrics
from node.netaddr import choose_advertise, is_loopback, is_wildcard
from node.peers import PeerClient
from node.runtime import Runtime
from node.store_writer import CorruptStore, watch_storage

log = get_logger("node.agent")


def make_runtime(config: AgentConfig, keys: list[bytes] | None = None) -> Runtime:
    """The servos' runtime; `keys` open the projects' sealed secrets (node.secret_box)."""
    if config.runtime == "docker":
        from node.runtime_docker import DockerRuntime
        from node.secret_box import SecretBox

        return DockerRuntime(secret_box=SecretBox(keys) if keys else None)
    from node.runtime_fake import FakeRuntime

    return FakeRuntime()


KEY_FILE_NAME = "cluster.key"  # in the data dir, when no --cluster-key-file is given


def _write_keys(path: Path, keys: Sequence[bytes]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(base64.b64encode(k).decode() + "\n" for k in keys))


def prepare(config: AgentConfig, now_s: float) -> tuple[AgentConfig, list[bytes]]:
    """The configuration as the agent runs it, and its key ring.

    - `--join-token`: its seeds join `--join`'s; its keys go to DATA_DIR/cluster.key (unless
      `--cluster-key-file` is given), so a restart needs no token. An expired token still gives
      seeds to an agent that holds the key from an earlier join, and nothing else.
    - No key file at all: the key lives in DATA_DIR/cluster.key, made on first start, so the
      cluster keeps its key across restarts and `shoal join-token` can hand it out.
    - A wildcard bind with no `--advertise`: the address chosen by `node.netaddr`.
    """
    config.data_dir.mkdir(parents=True, exist_ok=True)
    join = list(config.join)
    key_file = config.cluster_key_file
    own_key_file = config.data_dir / KEY_FILE_NAME
    if config.join_token:
        token = join_token.parse(config.join_token)
        join += [s for s in token.seeds if s not in join]
        if key_file is None:
            if not token.expired(now_s):
                _write_keys(own_key_file, token.keys)
            elif not own_key_file.exists():
                at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(token.expires_at_s))
                raise join_token.JoinTokenError(
                    f"join token expired at {at}: make a new one with `shoal join-token` on a "
                    "member"
                )
            key_file = own_key_file
    if key_file is None:
        if not own_key_file.exists():
            _write_keys(own_key_file, [secrets.token_bytes(32)])
            log.info("agent.key_created", path=str(own_key_file))
        key_file = own_key_file
    keys, _ = load_keys(key_file)
    advertise = config.advertise
    if not advertise and is_wildcard(config.bind):
        seeds = [parse_hostport(s, DEFAULT_GOSSIP_PORT) for s in join]
        advertise = choose_advertise(config.bind, seeds)
    return (
        attrs.evolve(config, join=tuple(join), cluster_key_file=key_file, advertise=advertise),
        keys,
    )


def announce_join_command(ctx: AgentContext, now_s: float) -> None:
    """The first agent prints the command that joins another machine, valid for an hour."""
    config = ctx.config
    own = f"{config.advertise_addr}:{config.gossip_port}"
    token = join_token.issue([own], ctx.keys, now_s, join_token.DEFAULT_TTL_S)
    log.info(
        "agent.join_command",
        command=join_token.join_command(token, config.runtime, config.region),
        valid_s=int(join_token.DEFAULT_TTL_S),
        detail="run it on another machine; later, `shoal join-token` prints a fresh token",
    )
    if is_loopback(config.advertise_addr):
        log.warning(
            "agent.loopback_only",
            detail=f"peers are told {own}: only this machine can join; start with --bind "
            "0.0.0.0 (the default) or --advertise ADDR for other machines",
        )


# Serves the HTTP API for a context: given by the caller (the CLI passes `api.server.serve_api`)
# so that node/ never imports api/.
ServeApi = Callable[..., Awaitable[Any]]
LAST_WORDS_S = 1.0  # time for the graceful-stop announcement to spread before the agent goes


async def run_agent(
    config: AgentConfig,
    serve_api: ServeApi,
    task_status: trio.TaskStatus[AgentContext] = trio.TASK_STATUS_IGNORED,
) -> None:
    config, keys = prepare(config, time.time())
    capacity = host_capacity(config.memory_mb, config.millicpus)
    runtime = make_runtime(config, keys)
    # locked first (one agent per data dir), then the stores (a corrupt file says so)
    lock, host_store, registry = open_data_dir(config.data_dir, config.name, runtime.fake)
    host = HostService(
        config.name,
        runtime,
        host_store,
        capacity,
        host_addr=config.advertise_addr,
    )
    ring = Keyring(keys)  # one ring: gossip, the internal client and server all follow `use`
    gossip = GossipService(
        config.name,
        (config.bind, config.gossip_port),
        (config.advertise_addr, config.gossip_port),
        ring,
        meta={},
        seeds=[parse_hostport(s, config.gossip_port) for s in config.join],
    )
    client = PeerClient(ring, me=config.name)
    ctx = AgentContext(
        config=config,
        keys=keys,
        host=host,
        gossip=gossip,
        registry=registry,
        client=client,
        metrics=Metrics(),
        hlc=HybridClock(config.name),
    )
    watch_storage(ctx.metrics, host_store, registry)
    log.info(
        "agent.started",
        name=config.name,
        region=config.region,
        zone=config.zone_or_default,
        runtime=config.runtime,
        api=ctx.api_url,
        gossip=f"{config.advertise_addr}:{config.gossip_port}",
        memory_mb=capacity.memory_mb,
        millicpus=capacity.millicpus,
        data_dir=str(config.data_dir),
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(host.run_reconciler)
            await nursery.start(host.run_watcher)
            await nursery.start(host.run_retention, config.volume_retention_s)
            await nursery.start(gossip.run)
            await nursery.start(ctx.run_loops)
            nursery.start_soon(_membership_events, ctx, gossip)
            await nursery.start(serve_api, ctx)
            if config.ingress_port is not None:
                from node.ingress_proxy import IngressProxy

                await nursery.start(IngressProxy(config).run)
            if not config.join:
                announce_join_command(ctx, time.time())
            nursery.start_soon(_stop_on_signal, ctx, nursery.cancel_scope)

            def shutdown_soon(scope: trio.CancelScope = nursery.cancel_scope) -> None:
                async def later() -> None:
                    await trio.sleep(0.5)  # let the answer leave first
                    scope.cancel()

                nursery.start_soon(later)

            ctx.on_shutdown = shutdown_soon
            task_status.started(ctx)
    finally:
        with trio.CancelScope(shield=True):
            await client.aclose()
        registry.close()
        host.close()
        lock.release()
    log.info("agent.stopped", name=config.name)


async def _membership_events(ctx: AgentContext, gossip: GossipService) -> None:
    """Membership changes wake recovery at once rather than at its next periodic round."""
    async for ev in gossip.events:
        ctx.on_membership_event(ev.kind)


async def _stop_on_signal(ctx: AgentContext, cancel_scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("agent.stopping", signal=signal.Signals(signum).name)
            await stop_gracefully(ctx)
            cancel_scope.cancel()
            return


async def stop_gracefully(ctx: AgentContext, leave: bool | None = None) -> None:
    """A stop is a restart unless asked otherwise: announce it, so peers hold this agent's
    servos for the restart grace instead of replacing them, and go. With --drain (servos moved
    first) or --leave-on-stop, leave the cluster: peers replace what is left at once."""
    leave = leave if leave is not None else (ctx.config.drain or ctx.config.leave_on_stop)
    with trio.move_on_after(300):
        if ctx.config.drain:
            await ctx.drainer.drain()
        if leave:
            await ctx.gossip.leave()
            log.info("agent.left")
        else:
            ctx.membership.announce_stop()
            await trio.sleep(LAST_WORDS_S)
            log.info("agent.restart_announced", grace_s=ctx.config.restart_grace_s)


def main(config: AgentConfig, serve_api: ServeApi) -> int:
    configure_logging(config.name, config.log_level)
    try:
        trio.run(run_agent, config, serve_api)
    except (KeyFileError, join_token.JoinTokenError) as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 2
    except (DataDirLocked, CorruptStore) as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"shoal: cannot start the agent: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C while unwinding
        log.info("agent.stopped", name=config.name, forced=True)
    return 0
