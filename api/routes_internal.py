"""Agent-to-agent routes under `/internal/`: every request must be sealed for this agent with the
cluster key ring and fresh (see `node.internal_auth`); anything else is a 401 and never reaches
the host. Every answer is sealed for the request it answers.

The check is the router's route class, so it runs for every route of this router and only
them, on the ASGI scope's raw path: no middleware matching `request.url.path` (which a crafted
Host header could make differ from the path routed on, CVE-2026-48710).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.errors import ApiError, error_body
from gossip.crypto import Keyring, KeyringError
from node.context import AgentContext
from node.internal_auth import (
    HEADER,
    SEALED_TYPE,
    AuthError,
    ReplayWindow,
    asgi_path,
    open_request,
    seal_response,
)
from node.keys import KEY_OPS, KeyFileError, LocalKeys, key_from_text
from node.logfmt import get_logger
from node.membership import wall_ms
from node.runtime import AdmissionRefused, HostError, ServoFailed, ServoSpec
from node.store_writer import StorageError

log = get_logger("api.internal")

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def sealed_route_class(
    ring: Keyring, me: str, on_refused: Callable[[str], None] = lambda reason: None
) -> type[APIRoute]:
    """An APIRoute whose handler opens the sealed request (or answers 401) and seals the
    answer, errors included (a refusal carries this host's servos and their specs)."""
    window = ReplayWindow()

    def _render(exc: Exception) -> JSONResponse:
        if isinstance(exc, ApiError):
            return JSONResponse(error_body(exc.error, exc.detail), status_code=exc.status)
        if isinstance(exc, RequestValidationError):
            detail = "; ".join(str(e.get("msg", "")) for e in exc.errors())
            return JSONResponse(error_body("invalid_request", detail), status_code=422)
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse(error_body("http_error", str(exc.detail)), status_code=exc.status_code)

    class SealedRoute(APIRoute):
        def get_route_handler(self) -> Handler:
            inner = super().get_route_handler()

            async def handler(request: Request) -> Response:
                scope = request.scope
                path = asgi_path(scope.get("raw_path"), scope["path"], scope["query_string"])
                try:
                    nonce, body = open_request(
                        ring,
                        window,
                        me,
                        request.headers.get(HEADER),
                        wall_ms(),
                        request.method,
                        path,
                        await request.body(),
                    )
                except AuthError as exc:
                    on_refused(exc.reason)
                    log.warning("internal.unauthorized", path=path, reason=exc.reason)
                    return JSONResponse(error_body("unauthorized", exc.detail), status_code=401)
                request._body = body  # the handler reads the opened body (Starlette's cache)
                try:
                    answer = await inner(request)
                except (ApiError, RequestValidationError, StarletteHTTPException) as exc:
                    answer = _render(exc)
                # a streamed answer could not be sealed whole: internal routes answer bodies
                assert not isinstance(answer, StreamingResponse), "internal answers are bodies"
                plain = bytes(answer.body)
                return Response(
                    seal_response(ring, nonce, answer.status_code, plain),
                    status_code=answer.status_code,
                    media_type=SEALED_TYPE,
                )

            return handler

    return SealedRoute


def _spec_from_wire(raw: Any) -> ServoSpec:
    if not isinstance(raw, dict):
        raise ApiError(422, "invalid_request", "spec must be an object")
    try:
        return ServoSpec.from_wire(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError(422, "invalid_request", f"bad servo spec: {exc}") from None


def install_internal_routes(app: FastAPI, ctx: AgentContext) -> None:
    router = APIRouter(
        prefix="/internal",
        include_in_schema=False,
        route_class=sealed_route_class(
            ctx.client.ring, ctx.name, ctx.metrics.count_internal_refused
        ),
    )

    def state() -> dict[str, Any]:
        return {
            "name": ctx.name,
            "capacity": ctx.host.capacity_snapshot(),
            "servos": ctx.host.servo_records(),
        }

    router.add_api_route("/state", state, methods=["GET"])

    @router.post("/servos")
    async def create_servo(request: Request) -> JSONResponse:
        body = await request.json()
        spec = _spec_from_wire(body.get("spec") if isinstance(body, dict) else None)
        if ctx.draining and ctx.host.get(spec.servo_id) is None:
            return JSONResponse(
                error_body("refused", "this agent is draining", reason="draining", state=state()),
                status_code=409,
            )
        key = body.get("idempotency_key")
        existed = ctx.host.get(spec.servo_id) is not None
        try:
            replaces = body.get("replaces")
            record = await ctx.host.create_servo(
                spec,
                idempotency_key=key,
                replaces=replaces if isinstance(replaces, str) else None,
            )
            await ctx.host.store.sync()  # acknowledged only once on disk (off the loop)
        except AdmissionRefused as exc:
            # the placer's view was stale: send it the truth for its next try
            return JSONResponse(
                error_body("refused", exc.detail, reason=exc.reason, state=state()),
                status_code=409,
            )
        except ServoFailed as exc:
            return JSONResponse(error_body("servo_failed", exc.detail, reason=exc.reason), 503)
        except HostError as exc:
            return JSONResponse(error_body("host_error", str(exc), reason="host_error"), 503)
        finally:
            ctx.publish_meta()
        # a second create of an id is the same request: say so, so the caller counts nothing new
        return JSONResponse(
            {**record.to_dict(), "existed": existed, "inventory": ctx.host.inventory_version}
        )

    @router.post("/servos/{servo_id}/{action}")
    async def servo_action(servo_id: str, action: str, request: Request) -> dict[str, Any]:
        body = await request.json() if await request.body() else {}
        try:
            if action == "stop":
                await ctx.host.stop_servo(servo_id)
            elif action == "remove":
                await ctx.host.remove_servo(servo_id)
            elif action == "start":
                await ctx.host.start_servo(servo_id)
            elif action == "destroy":
                keep = bool(body.get("keep_volume", False)) if isinstance(body, dict) else False
                await ctx.host.destroy_servo(servo_id, keep_volume=keep)
            else:
                raise ApiError(404, "not_found", f"no servo action {action!r}")
            await ctx.host.store.sync()
        except KeyError:
            raise ApiError(404, "not_found", f"no servo {servo_id} on {ctx.name}") from None
        except HostError as exc:
            raise ApiError(503, "host_error", str(exc)) from None
        finally:
            ctx.publish_meta()
        return {
            "ok": True,
            "servo": servo_id,
            "action": action,
            "inventory": ctx.host.inventory_version,
        }

    @router.get("/projects/digest")
    async def projects_digest() -> dict[str, Any]:
        return {"digest": ctx.registry.digest()}

    @router.get("/projects")
    async def get_projects() -> dict[str, Any]:
        return {"entries": [e.to_wire() for e in ctx.registry.entries()]}

    @router.post("/projects")
    async def post_projects(request: Request) -> dict[str, Any]:
        body = await request.json()
        entries = body.get("entries") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise ApiError(422, "invalid_request", "entries must be a list")
        sender = request.headers.get("X-Shoal-From", "")
        merged = ctx.specs.merge(entries, sender=sender)
        try:
            await ctx.registry.sync()  # the sender counts this copy only once it is on disk
        except StorageError as exc:
            raise ApiError(503, "storage_error", exc.detail) from None
        return {"merged": merged}

    @router.get("/servos/{servo_id}/logs/{tail}")
    async def servo_logs(servo_id: str, tail: int, timestamps: bool = False) -> dict[str, Any]:
        if ctx.host.get(servo_id) is None:
            raise ApiError(404, "not_found", f"no servo {servo_id} on {ctx.name}")
        lines = max(1, min(tail, 10_000))
        return {
            "servo": servo_id,
            "logs": await ctx.host.logs_tail(servo_id, lines, timestamps=timestamps),
        }

    @router.get("/volumes")
    async def volumes() -> dict[str, Any]:
        return {"volumes": await ctx.host.kept_volumes()}

    @router.post("/volumes/prune")
    async def prune(request: Request) -> dict[str, Any]:
        body = await request.json()
        if not isinstance(body, dict):
            raise ApiError(422, "invalid_request", "body must be an object")
        project = body.get("project")
        older = body.get("older_than_s")
        if project is not None and not isinstance(project, str):
            raise ApiError(422, "invalid_request", "project must be a string")
        if older is not None and (not isinstance(older, int | float) or older < 0):
            raise ApiError(422, "invalid_request", "older_than_s must be a number >= 0")
        pruned = await ctx.host.prune_volumes(project=project, older_than_s=older)
        return {"pruned": pruned}

    local_keys = LocalKeys(ctx.client.ring, ctx.config.cluster_key_file, ctx.keys)

    @router.get("/keys")
    async def keys() -> dict[str, Any]:
        return {"ok": True, "node": ctx.name, **local_keys.listing()}

    @router.post("/keys/{op}")
    async def key_op(op: str, request: Request) -> dict[str, Any]:
        body = await request.json()
        text = body.get("key") if isinstance(body, dict) else None
        if op not in KEY_OPS or not isinstance(text, str):
            raise ApiError(422, "invalid_request", "want /keys/install|use|remove with a key")
        try:
            return {"node": ctx.name, **local_keys.apply(op, key_from_text(text))}
        except (KeyFileError, KeyringError) as exc:
            raise ApiError(409, "key_refused", str(exc)) from None

    @router.post("/drain")
    async def drain() -> dict[str, Any]:
        return {"ok": True, "node": ctx.name, **await ctx.drainer.drain()}

    @router.post("/undrain")
    async def undrain() -> dict[str, Any]:
        ctx.drainer.undrain()
        return {"ok": True, "node": ctx.name, "draining": False}

    @router.post("/leave")
    async def leave() -> dict[str, Any]:
        return await ctx.leave()

    app.include_router(router)
