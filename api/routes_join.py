"""`POST /v1/join-token`: a short-lived line that lets a new host join (`node.join_token`).

The token carries the cluster key, so it is handed out as carefully as the key: the API guard
(`api.auth`) already demands the full token for a write when the agent has one (a read-only
token gets 403); an agent without `--api-token` hands join tokens to loopback callers only,
whatever its API bind.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from api.auth import loopback_unless_token
from node import join_token
from node.context import AgentContext


class JoinTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttl_s: float = Field(default=join_token.DEFAULT_TTL_S, gt=0, le=join_token.MAX_TTL_S)


def install_join_routes(app: FastAPI, ctx: AgentContext) -> None:
    router = APIRouter(prefix="/v1")

    @router.post("/join-token")
    async def make_join_token(request: Request, body: JoinTokenIn | None = None) -> dict[str, Any]:
        loopback_unless_token(
            ctx.config,
            request.client.host if request.client else "",
            "a join token carries the cluster key: an agent without --api-token hands "
            "them out on loopback only (run `shoal join-token` on the agent's host)",
        )
        ttl_s = (body or JoinTokenIn()).ttl_s
        config = ctx.config
        seeds = join_token.seeds_for(
            f"{config.advertise_addr}:{config.gossip_port}",
            [(p.status, p.addr) for p in ctx.peers()],
        )
        now_s = time.time()
        # the ring as it is now (keys rotate at run time: `shoal keys`), primary first
        token = join_token.issue(seeds, ctx.client.ring.keys, now_s, ttl_s)
        expires_s = int(now_s + ttl_s)
        return {
            "token": token,
            "seeds": seeds,
            "expires_at_s": expires_s,
            "expires_at": datetime.fromtimestamp(expires_s, UTC).isoformat(),
            "command": join_token.join_command(token, config.runtime, config.region),
        }

    app.include_router(router)
