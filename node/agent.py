"""The agent: one Trio nursery that owns every task of a Shoal server.

Start-up order matters and is this file's job: open the durable stores, reconcile the host's
containers with its store (a rebooted host is whole before it takes requests), start gossip and
join, start the background loops, then serve the API and print the join command. On SIGINT or
SIGTERM: drain if asked, leave the cluster gracefully, then cancel the nursery so every task
unwinds through its own cleanup.
"""

from __future__ import annotations

import signal
import sys

import trio

from api.metrics import Metrics
from gossip.crypto import Keyring
from gossip.service import GossipService, parse_hostport
from node.capacity import host_capacity
from node.config import AgentConfig
from node.context import AgentContext
from node.hlc import HybridClock
from node.host import HostService
from node.keys import KeyFileError, load_keys
from node.logfmt import configure_logging, get_logger
from node.peers import PeerClient
from node.projects import ProjectRegistry
from node.runtime import Runtime
from node.store import HostStore

log = get_logger("node.agent")


def make_runtime(config: AgentConfig) -> Runtime:
    if config.runtime == "docker":
        from node.runtime_docker import DockerRuntime

        return DockerRuntime()
    from node.runtime_fake import FakeRuntime

    return FakeRuntime()


def join_command(config: AgentConfig) -> str:
    key = str(config.cluster_key_file) if config.cluster_key_file else "KEYFILE"
    return (
        f"shoal agent --join {config.advertise_addr}:{config.gossip_port} "
        f"--cluster-key-file {key} --region {config.region} --name NAME"
    )


async def run_agent(
    config: AgentConfig, task_status: trio.TaskStatus[AgentContext] = trio.TASK_STATUS_IGNORED
) -> None:
    from api.server import serve_api

    keys, ephemeral = load_keys(config.cluster_key_file)
    capacity = host_capacity(config.memory_mb, config.millicpus)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = make_runtime(config)
    host = HostService(
        config.name,
        runtime,
        HostStore(config.data_dir / "host.db", config.name, fake=runtime.fake),
        capacity,
        host_addr=config.advertise_addr,
    )
    registry = ProjectRegistry(config.data_dir / "projects.db")
    gossip = GossipService(
        config.name,
        (config.bind, config.gossip_port),
        (config.advertise_addr, config.gossip_port),
        Keyring(keys),
        meta={},
        seeds=[parse_hostport(s, config.gossip_port) for s in config.join],
    )
    client = PeerClient(keys)
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
    if ephemeral:
        log.warning("agent.ephemeral_key", detail="no --cluster-key-file: nobody else can join")
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(host.run_reconciler)
            await nursery.start(gossip.run)
            await nursery.start(ctx.run_loops)
            nursery.start_soon(_membership_events, ctx, gossip)
            await nursery.start(serve_api, ctx)
            if not config.join:
                log.info("agent.join_command", command=join_command(config))
            nursery.start_soon(_stop_on_signal, ctx, nursery.cancel_scope)
            task_status.started(ctx)
    finally:
        with trio.CancelScope(shield=True):
            await client.aclose()
        registry.close()
        host.close()
    log.info("agent.stopped", name=config.name)


async def _membership_events(ctx: AgentContext, gossip: GossipService) -> None:
    """Membership changes wake recovery at once rather than at its next periodic round."""
    async for ev in gossip.events:
        if ev.kind in ("dead", "left", "joined", "alive"):
            ctx.wake_recovery.set()


async def _stop_on_signal(ctx: AgentContext, cancel_scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("agent.stopping", signal=signal.Signals(signum).name)
            with trio.move_on_after(300):
                if ctx.config.drain:
                    await ctx.drain()
                await ctx.gossip.leave()
            cancel_scope.cancel()
            return


def main(config: AgentConfig) -> int:
    configure_logging(config.name, config.log_level)
    try:
        trio.run(run_agent, config)
    except KeyFileError as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"shoal: cannot start the agent: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C while unwinding
        log.info("agent.stopped", name=config.name, forced=True)
    return 0
