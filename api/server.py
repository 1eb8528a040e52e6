"""Serving the agent's ASGI app on Hypercorn's Trio worker."""

from __future__ import annotations

import trio

from api.app import create_app
from node.context import AgentContext
from node.logfmt import get_logger

log = get_logger("api.server")


async def serve_api(
    ctx: AgentContext, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    hc = Config()
    hc.bind = [f"{ctx.config.bind}:{ctx.config.api_port}"]
    hc.accesslog = None
    hc.errorlog = None
    hc.graceful_timeout = 1.0
    log.info("api.listening", url=ctx.api_url)
    await serve(create_app(ctx), hc, task_status=task_status)  # type: ignore[arg-type]
