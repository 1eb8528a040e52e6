"""Agent-to-agent routes under `/internal/`: every request must carry a valid cluster-key
signature (see `api.internal_auth`); anything else is a 401 and never reaches the host."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from api.errors import ApiError, error_body
from api.internal_auth import HEADER, verify
from node.context import AgentContext, wall_ms
from node.logfmt import get_logger
from node.runtime import AdmissionRefused, HostError, ServoFailed, ServoSpec

log = get_logger("api.internal")


def _spec_from_wire(raw: Any) -> ServoSpec:
    if not isinstance(raw, dict):
        raise ApiError(422, "invalid_request", "spec must be an object")
    try:
        return ServoSpec.from_wire(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError(422, "invalid_request", f"bad servo spec: {exc}") from None


def install_internal_routes(app: FastAPI, ctx: AgentContext) -> None:
    router = APIRouter(prefix="/internal", include_in_schema=False)

    @app.middleware("http")
    async def _cluster_key(request: Request, call_next: Any) -> Any:
        if request.url.path.startswith("/internal/"):
            body = await request.body()
            problem = verify(
                ctx.keys,
                request.headers.get(HEADER),
                wall_ms(),
                request.method,
                request.url.path,
                body,
            )
            if problem is not None:
                log.warning("internal.unauthorized", path=request.url.path, detail=problem)
                return JSONResponse(error_body("unauthorized", problem), status_code=401)
        return await call_next(request)

    @router.get("/state")
    async def state() -> dict[str, Any]:
        return {
            "name": ctx.name,
            "capacity": ctx.host.capacity_snapshot(),
            "servos": ctx.host.servo_records(),
        }

    @router.post("/servos")
    async def create_servo(request: Request) -> JSONResponse:
        body = await request.json()
        spec = _spec_from_wire(body.get("spec") if isinstance(body, dict) else None)
        if ctx.draining:
            return JSONResponse(
                error_body("refused", "this agent is draining", reason="draining"), status_code=409
            )
        key = body.get("idempotency_key")
        try:
            record = await ctx.host.create_servo(spec, idempotency_key=key)
        except AdmissionRefused as exc:
            return JSONResponse(
                error_body("refused", exc.detail, reason=exc.reason), status_code=409
            )
        except ServoFailed as exc:
            return JSONResponse(error_body("servo_failed", exc.detail, reason=exc.reason), 503)
        except HostError as exc:
            return JSONResponse(error_body("host_error", str(exc), reason="host_error"), 503)
        finally:
            ctx.publish_meta()
        return JSONResponse(record.to_dict())

    @router.post("/servos/{servo_id}/{action}")
    async def servo_action(servo_id: str, action: str, request: Request) -> dict[str, Any]:
        body = await request.json() if await request.body() else {}
        try:
            if action == "stop":
                await ctx.host.stop_servo(servo_id)
            elif action == "start":
                await ctx.host.start_servo(servo_id)
            elif action == "destroy":
                keep = bool(body.get("keep_volume", False)) if isinstance(body, dict) else False
                await ctx.host.destroy_servo(servo_id, keep_volume=keep)
            else:
                raise ApiError(404, "not_found", f"no servo action {action!r}")
        except KeyError:
            raise ApiError(404, "not_found", f"no servo {servo_id} on {ctx.name}") from None
        except HostError as exc:
            raise ApiError(503, "host_error", str(exc)) from None
        finally:
            ctx.publish_meta()
        return {"ok": True, "servo": servo_id, "action": action}

    @router.get("/projects")
    async def get_projects() -> dict[str, Any]:
        return {"entries": [e.to_wire() for e in ctx.registry.entries()]}

    @router.post("/projects")
    async def post_projects(request: Request) -> dict[str, Any]:
        body = await request.json()
        entries = body.get("entries") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise ApiError(422, "invalid_request", "entries must be a list")
        return {"merged": ctx.merge_entries(entries)}

    @router.post("/drain")
    async def drain() -> dict[str, Any]:
        moved = await ctx.drain()
        return {"ok": True, "node": ctx.name, "moved": moved}

    app.include_router(router)
