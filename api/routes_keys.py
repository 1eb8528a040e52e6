"""`/v1/keys`: the cluster key ring as one cluster operation, as Serf's `keys` command.

`GET /v1/keys` lists each agent's keys (fingerprints, never keys) and how many agents hold each;
`POST /v1/keys/install|use|remove` with `{"key": BASE64}` applies the change on every agent over
the sealed internal channel and answers per agent (`node.keys.cluster_key_op`). A key travels
only sealed between agents; from the CLI to its agent it crosses the API, so a key operation is
a write the API guard checks (token), and an agent without `--api-token` takes one from a
loopback caller only, as it does join tokens.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.auth import loopback_unless_token
from api.errors import ApiError, error_body
from gossip.crypto import KeyringError
from node.context import AgentContext
from node.keys import (
    KeyFileError,
    KeyOpRefused,
    LocalKeys,
    cluster_key_op,
    cluster_keys,
    key_from_text,
)


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(
        min_length=1,
        max_length=64,
        # 16, 24 or 32 bytes in base64, as the schema's readers (schemathesis) must know
        pattern=r"^([A-Za-z0-9+/]{22}==|[A-Za-z0-9+/]{32}|[A-Za-z0-9+/]{43}=)$",
        description="a cluster key in base64 (16, 24 or 32 bytes)",
    )


def install_key_routes(app: FastAPI, ctx: AgentContext) -> None:
    router = APIRouter(prefix="/v1")

    def local() -> LocalKeys:
        return LocalKeys(ctx.client.ring, ctx.config.cluster_key_file, ctx.keys)

    @router.get("/keys")
    async def list_keys() -> dict[str, Any]:
        return await cluster_keys(local(), ctx.name, ctx.peers(), ctx.client)

    async def operate(op: str, request: Request, body: KeyIn) -> Any:
        loopback_unless_token(
            ctx.config,
            request.client.host if request.client else "",
            "key operations change the cluster's key: an agent without --api-token takes "
            "them from loopback only (run `shoal keys` on the agent's host)",
        )
        try:
            key = key_from_text(body.key)
        except KeyFileError as exc:
            raise ApiError(422, "invalid_key", str(exc)) from None
        try:
            return await cluster_key_op(op, key, local(), ctx.name, ctx.peers(), ctx.client)
        except KeyOpRefused as exc:
            return JSONResponse(error_body("key_refused", exc.detail, results=exc.results), 409)
        except KeyringError as exc:
            raise ApiError(422, "invalid_key", str(exc)) from None

    @router.post("/keys/install")
    async def install_key(request: Request, body: KeyIn) -> Any:
        """Add a key on every agent (accepted on receive; not yet used to send)."""
        return await operate("install", request, body)

    @router.post("/keys/use")
    async def use_key(request: Request, body: KeyIn) -> Any:
        """Make an installed key the primary on every agent (refused if any lacks it)."""
        return await operate("use", request, body)

    @router.post("/keys/remove")
    async def remove_key(request: Request, body: KeyIn) -> Any:
        """Drop a key on every agent (refused while it is the primary anywhere)."""
        return await operate("remove", request, body)

    app.include_router(router)
