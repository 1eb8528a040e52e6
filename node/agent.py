"""The agent: one Trio nursery that owns every task of a Shoal server.

It starts the API server and the other services, logs who it is and what it can give, and on
SIGINT/SIGTERM cancels the nursery so every task unwinds through its own cleanup.
"""

from __future__ import annotations

import signal

import trio

from node.capacity import host_capacity
from node.config import AgentConfig
from node.logfmt import configure_logging, get_logger

log = get_logger("node.agent")


async def _stop_on_signal(cancel_scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("agent.stopping", signal=signal.Signals(signum).name)
            cancel_scope.cancel()
            return


async def run_agent(
    config: AgentConfig, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    from api.server import serve_api

    capacity = host_capacity(config.memory_mb, config.millicpus)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    log.info(
        "agent.started",
        name=config.name,
        region=config.region,
        zone=config.zone_or_default,
        runtime=config.runtime,
        api=f"http://{config.advertise_addr}:{config.api_port}",
        memory_mb=capacity.memory_mb,
        millicpus=capacity.millicpus,
        data_dir=str(config.data_dir),
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
        await nursery.start(serve_api, config)
        task_status.started()
    log.info("agent.stopped", name=config.name)


def main(config: AgentConfig) -> int:
    configure_logging(config.name, config.log_level)
    try:
        trio.run(run_agent, config)
    except KeyboardInterrupt:  # a second Ctrl-C while unwinding
        log.info("agent.stopped", name=config.name, forced=True)
    return 0
