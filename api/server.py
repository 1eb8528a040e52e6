"""The HTTP API every agent serves: an ASGI app on Hypercorn's Trio worker.

Errors are JSON `{"error": code, "detail": text}`; the caller's mistakes get a 4xx.
"""

from __future__ import annotations

from typing import Any

import trio
from fastapi import FastAPI

from node.config import AgentConfig
from node.logfmt import get_logger

log = get_logger("api.server")


def create_app(config: AgentConfig) -> FastAPI:
    app = FastAPI(title="Shoal agent", version="0.1.0")

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "name": config.name, "region": config.region}

    return app


async def serve_api(
    config: AgentConfig, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    hc = Config()
    hc.bind = [f"{config.bind}:{config.api_port}"]
    hc.accesslog = None
    hc.errorlog = None
    hc.graceful_timeout = 1.0
    app = create_app(config)
    await serve(app, hc, task_status=task_status)  # type: ignore[arg-type]
