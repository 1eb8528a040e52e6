"""The ASGI app of one agent: public routes, `/internal/` routes, errors, body limit, and in
front of everything the API guard (`api.auth`: Host, Origin, token, content type)."""

from __future__ import annotations

from fastapi import FastAPI

from api.auth import ApiGuardMiddleware, ApiPolicy
from api.errors import BodyLimitMiddleware, install_error_handlers
from api.openapi import install_openapi
from api.routes_events import install_event_routes
from api.routes_ingress import install_ingress_routes
from api.routes_internal import install_internal_routes
from api.routes_join import install_join_routes
from api.routes_keys import install_key_routes
from api.routes_logs import install_log_routes
from api.routes_public import install_public_routes
from api.routes_ui import install_ui_routes
from node.context import AgentContext


def create_app(ctx: AgentContext) -> FastAPI:
    app = FastAPI(
        title="Shoal agent",
        version="0.1.0",
        description="Any agent takes the request: deploy, scale, stop, start, destroy projects.",
    )
    install_error_handlers(app)
    install_public_routes(app, ctx)
    install_internal_routes(app, ctx)
    install_ingress_routes(app, ctx)
    install_join_routes(app, ctx)
    install_key_routes(app, ctx)
    install_event_routes(app, ctx)
    install_log_routes(app, ctx)
    install_ui_routes(app)
    install_openapi(app)  # every answer documented, in the one error shape
    app.add_middleware(BodyLimitMiddleware)
    # added last, so outermost: a refused request is never routed nor its body read
    app.add_middleware(ApiGuardMiddleware, policy=ApiPolicy.from_config(ctx.config))
    return app
