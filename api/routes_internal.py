"""Agent-to-agent routes under `/internal/`: every request must carry a valid cluster-key
signature (see `node.internal_auth`); anything else is a 401 and never reaches the host."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from api.errors import ApiError, error_body
from node.context import AgentContext
from node.internal_auth import HEADER, verify
from node.logfmt import get_logger
from node.membership import wall_ms
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
        return {"merged": ctx.specs.merge(entries, sender=sender)}

    @router.get("/servos/{servo_id}/logs/{tail}")
    async def servo_logs(servo_id: str, tail: int) -> dict[str, Any]:
        if ctx.host.get(servo_id) is None:
            raise ApiError(404, "not_found", f"no servo {servo_id} on {ctx.name}")
        return {
            "servo": servo_id,
            "logs": await ctx.host.logs_tail(servo_id, max(1, min(tail, 10_000))),
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
