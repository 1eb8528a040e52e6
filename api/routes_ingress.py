"""The two routes the ingress proxy beside this agent calls (`node.ingress_proxy`).

`GET /ingress/config`: Traefik's HTTP provider pulls its routing table here once a second. Only
the proxy may: the request must come from this host and carry the per-process token the
supervisor gave Traefik as a provider header; anything else is a 404, as if the route did not
exist (the table lists every servo's address). `/ingress/fallback`: the catch-all router's
target, any method; it answers the client of the ingress in JSON: no such project (404) or
nothing to serve right now (503). Both are thin: the decisions are `node.ingress`'s.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.errors import error_body
from node.context import AgentContext
from node.ingress import fallback_answer, ingress_config
from node.ingress_proxy import (
    CONFIG_PATH,
    FALLBACK_PATH,
    TOKEN_HEADER,
    fallback_url,
    local_client,
    token_ok,
)
from node.logfmt import get_logger

log = get_logger("api.ingress")

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def install_ingress_routes(app: FastAPI, ctx: AgentContext) -> None:
    config = ctx.config

    @app.get(CONFIG_PATH, include_in_schema=False)
    async def routing_table(request: Request) -> Any:
        client = request.client.host if request.client else None
        if (
            config.ingress_port is None
            or not local_client(config, client)
            or not token_ok(config, request.headers.get(TOKEN_HEADER))
        ):
            if config.ingress_port is not None:
                log.warning("ingress.config_refused", client=client)
            return JSONResponse(error_body("not_found", "no such route"), status_code=404)
        return ingress_config(
            ctx.peers(), ctx.registry.live(), config.ingress_domain, fallback_url(config)
        )

    @app.api_route(FALLBACK_PATH, methods=_METHODS, include_in_schema=False)
    async def fallback(request: Request) -> JSONResponse:
        host = request.headers.get("host", "")  # Traefik passes the client's Host header
        status, body = fallback_answer(host, config.ingress_domain, ctx.registry.live())
        return JSONResponse(body, status_code=status)
