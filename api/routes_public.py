"""The public HTTP API (DESIGN.md's names): health, members, projects and their lifecycle.

Who may call them (token, read-only token, Host, Origin, content type) is `api.auth`'s
middleware, in front of every route.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from api.errors import ApiError
from api.models import (
    NODE_NAME_PATTERN,
    PROJECT_NAME_PATTERN,
    SERVO_ID_PATTERN,
    ProjectSpecIn,
    PruneIn,
    RollbackIn,
    ScaleIn,
    check_project_name,
)
from node.context import AgentContext
from node.executor import Outcome
from node.idempotency import MAX_KEY_CHARS, IdempotencyStore, KeyInFlight, KeyReused
from node.membership import wall_ms
from node.peers import PeerError
from node.project_service import NotFound
from node.projects import Project
from node.secret_box import SecretBox
from node.store_writer import storage_status

# path parameters carry their pattern: a bad name is a documented 422 before any route code
ProjectName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, max_length=63)]
NodeName = Annotated[str, Path(pattern=NODE_NAME_PATTERN, max_length=253)]


def _name(name: str) -> str:
    try:
        return check_project_name(name)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"name: {exc}") from None


def install_public_routes(app: FastAPI, ctx: AgentContext) -> None:
    mutating: list[Any] = []  # the token is checked for every route by api.auth
    router = APIRouter(prefix="/v1")
    service = ctx.projects

    async def get_project(name: str) -> Project:
        try:
            return await service.find(_name(name))
        except NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None

    keys = IdempotencyStore(ctx.config.data_dir / "idempotency.db")

    async def idempotent(request: Request, key: str | None, body: Any, work: Any) -> Response:
        """Run `work` once per Idempotency-Key (node.idempotency): a retry replays the first
        answer, a concurrent one waits for it, a different body with a used key is a 422."""
        if not key:
            status, result = await work()
            return JSONResponse(result, status_code=status)
        if len(key) > MAX_KEY_CHARS or not key.isprintable():
            raise ApiError(
                422, "invalid_request", f"Idempotency-Key must be 1-{MAX_KEY_CHARS} printable chars"
            )
        scoped = f"{request.method} {request.url.path} {key}"
        try:
            status, result, replayed = await keys.once(scoped, body, wall_ms, work)
        except KeyReused:
            raise ApiError(
                422, "idempotency_key_reused", "this Idempotency-Key was used with another body"
            ) from None
        except KeyInFlight:
            raise ApiError(
                409, "idempotency_key_in_flight", "a request with this Idempotency-Key is running"
            ) from None
        headers = {"Idempotent-Replay": "true"} if replayed else {}
        return JSONResponse(result, status_code=status, headers=headers)

    def deployed(project: Project, outcome: Outcome) -> tuple[int, dict[str, Any]]:
        ctx.metrics.deploys.labels("complete" if outcome.missing == 0 else "partial").inc()
        ctx.publish_meta()
        return 200, service.view(project, outcome)

    @router.get("/health")
    async def health() -> dict[str, Any]:
        storage = storage_status(ctx.host.store, ctx.registry)  # "ok" or "error: ..."
        return {
            "status": "unhealthy" if storage != "ok" else "draining" if ctx.draining else "ok",
            "storage": storage,
            "name": ctx.name,
            "region": ctx.config.region,
            "runtime": ctx.config.runtime,
            "members": dict(ctx.membership.members_by_status()),
        }

    @router.get("/members")
    async def members() -> list[dict[str, Any]]:
        return [p.to_member_dict() for p in ctx.peers()]

    @router.get("/projects")
    async def list_projects() -> list[dict[str, Any]]:
        return service.list_all()

    @router.get("/projects/{name}")
    async def show_project(name: ProjectName) -> dict[str, Any]:
        return service.view(await get_project(name))

    @router.get("/projects/{name}/logs")
    async def project_logs(
        name: ProjectName,
        servo: Annotated[str | None, Query(pattern=SERVO_ID_PATTERN)] = None,
        tail: Annotated[int, Query(ge=1, le=10_000)] = 50,
    ) -> dict[str, Any]:
        await get_project(name)
        try:
            return {"project": name, "servos": await service.logs(name, servo, tail)}
        except NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None

    @router.get("/projects/{name}/history")
    async def history(name: ProjectName) -> dict[str, Any]:
        await get_project(name)
        return service.history(name)

    @router.post("/projects/{name}/rollback", dependencies=mutating)
    async def rollback(name: ProjectName, body: RollbackIn | None = None) -> dict[str, Any]:
        await get_project(name)
        try:
            project, outcome = await service.rollback(name, body.to if body else None)
        except NotFound as exc:
            raise ApiError(409, "cannot_roll_back", str(exc)) from None
        return deployed(project, outcome)[1]

    @router.put("/projects/{name}", dependencies=mutating)
    async def put_project(
        name: ProjectName,
        spec: ProjectSpecIn,
        request: Request,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Create or update a project. Beyond the schema, a spec is refused (422) when its
        health check's port is not one of `ports`, its `timeout_s` is over its `interval_s`,
        or a secret shares its name with an env variable; and a spec needing more memory than
        the largest host has is a 409 (the cluster could never run it)."""
        known = ctx.registry.get(_name(name))
        project = spec.to_project(
            name, box=SecretBox(ctx.keys), prior=known.project if known is not None else None
        )
        largest = max((p.memory_total_mb for p in ctx.peers() if p.reachable), default=0)
        if largest and project.memory_mb > largest:  # a fact of the cluster, not the spec
            raise ApiError(
                409,
                "larger_than_any_host",
                f"memory: {project.memory_mb} MiB is more than the largest host has "
                f"({largest} MiB): no servo of it could ever run",
            )

        async def work() -> tuple[int, dict[str, Any]]:
            return deployed(*await service.deploy(project))

        return await idempotent(request, idempotency_key, spec.model_dump(), work)

    @router.post("/projects/{name}/scale", dependencies=mutating)
    async def scale(
        name: ProjectName,
        body: ScaleIn,
        request: Request,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Response:
        await get_project(name)

        async def work() -> tuple[int, dict[str, Any]]:
            return deployed(*await service.scale(name, body.replicas))

        return await idempotent(request, idempotency_key, body.model_dump(), work)

    @router.post("/projects/{name}/stop", dependencies=mutating)
    async def stop(
        name: ProjectName,
        request: Request,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Response:
        await get_project(name)

        async def work() -> tuple[int, dict[str, Any]]:
            return 200, service.view(await service.stop(name))

        return await idempotent(request, idempotency_key, None, work)

    @router.post("/projects/{name}/start", dependencies=mutating)
    async def start(
        name: ProjectName,
        request: Request,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Response:
        await get_project(name)

        async def work() -> tuple[int, dict[str, Any]]:
            return deployed(*await service.start(name))

        return await idempotent(request, idempotency_key, None, work)

    @router.delete("/projects/{name}", dependencies=mutating)
    async def destroy(name: ProjectName, keep_volumes: bool = False) -> dict[str, Any]:
        project = await get_project(name)
        removed = await service.destroy(project.name, keep_volumes=keep_volumes)
        return {
            "name": project.name,
            "destroyed": True,
            "servos_removed": removed,
            "volumes_kept": keep_volumes,
        }

    @router.get("/volumes")
    async def volumes(
        node: Annotated[str | None, Query(pattern=NODE_NAME_PATTERN, max_length=253)] = None,
    ) -> dict[str, Any]:
        try:
            found, silent = await service.volumes(node)
        except NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        return {"volumes": found, "unreachable": silent}

    @router.post("/volumes/prune", dependencies=mutating)
    async def prune(body: PruneIn) -> dict[str, Any]:
        try:
            pruned, silent = await service.prune_volumes(body.node, body.project, body.older_than_s)
        except NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        return {"pruned": pruned, "unreachable": silent}

    async def on_member(node: str, here: Any, there: Any) -> dict[str, Any]:
        """Run a member operation on `node`: here if it is this agent, else ask it."""
        if node == ctx.name:
            result: dict[str, Any] = await here()
            return result
        peer = next((p for p in ctx.peers() if p.name == node), None)
        if peer is None:
            raise ApiError(404, "not_found", f"no member named {node!r}")
        if not peer.reachable:
            raise ApiError(409, "member_unreachable", f"{node} is {peer.status}")
        try:
            result = await there(peer)
        except PeerError as exc:
            raise ApiError(502, "peer_error", exc.detail) from None
        return result

    @router.post("/members/{node}/drain", dependencies=mutating)
    async def drain(node: NodeName) -> dict[str, Any]:
        async def here() -> dict[str, Any]:
            return {"ok": True, "node": node, **await ctx.drainer.drain()}

        return await on_member(node, here, lambda p: ctx.client.drain(p.name, p.api))

    @router.post("/members/{node}/undrain", dependencies=mutating)
    async def undrain(node: NodeName) -> dict[str, Any]:
        async def here() -> dict[str, Any]:
            ctx.drainer.undrain()
            return {"ok": True, "node": node, "draining": False}

        return await on_member(node, here, lambda p: ctx.client.undrain(p.name, p.api))

    @router.post("/members/{node}/leave", dependencies=mutating)
    async def leave(node: NodeName) -> dict[str, Any]:
        async def here() -> dict[str, Any]:
            return await ctx.leave()

        return await on_member(node, here, lambda p: ctx.client.leave(p.name, p.api))

    app.include_router(router)

    @app.get("/metrics", include_in_schema=True)
    async def metrics() -> Response:
        return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4")
