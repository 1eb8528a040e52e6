"""The public HTTP API (DESIGN.md's names): health, members, projects and their lifecycle.

Mutating routes require `Authorization: Bearer <token>` when the agent runs with `--api-token`.
"""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Any

import attrs
import trio
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response

from api.errors import ApiError
from api.models import ProjectSpecIn, ScaleIn, check_project_name
from node.cluster import servos_of
from node.context import AgentContext
from node.deployer import Outcome
from node.peers import PeerError
from node.projects import Project


def _name(name: str) -> str:
    try:
        return check_project_name(name)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"name: {exc}") from None


def install_public_routes(app: FastAPI, ctx: AgentContext) -> None:
    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        token = ctx.config.api_token
        if not token:
            return
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
            raise ApiError(
                401, "unauthorized", "this agent needs Authorization: Bearer <api token>"
            )

    mutating = [Depends(require_token)]
    router = APIRouter(prefix="/v1")

    def project_json(project: Project, outcome: Outcome | None = None) -> dict[str, Any]:
        peers = ctx.deployer.peers()
        status = {p.name: p.status for p in peers}
        runtime = {p.name: p.runtime for p in peers}
        # a deploy's own outcome is fresher than gossip, which lags it by a moment
        listed = outcome.servos if outcome is not None else servos_of(project.name, peers)
        servos = []
        for s in listed:
            item = s.to_dict()
            item["node_status"] = status.get(s.node, "unknown")
            if runtime.get(s.node) == "fake":
                item["fake"] = True  # DESIGN.md: the fake runtime says so wherever it shows
            servos.append(item)
        body: dict[str, Any] = {"name": project.name, "spec": project.to_wire(), "servos": servos}
        if outcome is not None:
            body["deploy"] = outcome.to_dict()
            body["complete"] = outcome.missing == 0
        return body

    def get_project(name: str) -> Project:
        entry = ctx.registry.get(_name(name))
        if entry is None or entry.project is None:
            raise ApiError(404, "not_found", f"no project named {name!r}")
        return entry.project

    async def idempotent(request: Request, key: str | None, work: Any) -> Response:
        """Replay the stored answer of an operation already done under this key."""
        if key:
            if len(key) > 200:
                raise ApiError(422, "invalid_request", "Idempotency-Key is over 200 characters")
            scoped = f"{request.method} {request.url.path} {key}"
            stored = ctx.registry.recall(scoped)
            if stored is not None:
                status, body = stored
                return JSONResponse(
                    json.loads(body), status_code=status, headers={"Idempotent-Replay": "true"}
                )
        status, result = await work()
        if key:
            ctx.registry.remember(scoped, status, json.dumps(result))
        return JSONResponse(result, status_code=status)

    @router.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "draining" if ctx.draining else "ok",
            "name": ctx.name,
            "region": ctx.config.region,
            "runtime": ctx.config.runtime,
            "members": dict(ctx.members_by_status()),
        }

    @router.get("/members")
    async def members() -> list[dict[str, Any]]:
        return [p.to_member_dict() for p in ctx.peers()]

    @router.get("/projects")
    async def list_projects() -> list[dict[str, Any]]:
        return [project_json(p) for p in ctx.registry.live()]

    @router.get("/projects/{name}")
    async def show_project(name: str) -> dict[str, Any]:
        return project_json(get_project(name))

    async def deploy(project: Project) -> tuple[int, dict[str, Any]]:
        entry = ctx.registry.get(project.name)
        if entry is None or entry.project != project:
            written = ctx.write_project(project.name, project)
            await ctx.push_entry(written)
        outcome = await ctx.deployer.converge(project)
        complete = outcome.missing == 0
        ctx.metrics.deploys.labels("complete" if complete else "partial").inc()
        ctx.publish_meta()
        return 200, project_json(project, outcome)

    @router.put("/projects/{name}", dependencies=mutating)
    async def put_project(
        name: str,
        spec: ProjectSpecIn,
        request: Request,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Response:
        project = spec.to_project(_name(name))
        return await idempotent(request, idempotency_key, lambda: deploy(project))

    @router.post("/projects/{name}/scale", dependencies=mutating)
    async def scale(
        name: str,
        body: ScaleIn,
        request: Request,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Response:
        project = attrs.evolve(get_project(name), replicas=body.replicas)
        return await idempotent(request, idempotency_key, lambda: deploy(project))

    @router.post("/projects/{name}/stop", dependencies=mutating)
    async def stop(
        name: str, request: Request, idempotency_key: Annotated[str | None, Header()] = None
    ) -> Response:
        project = attrs.evolve(get_project(name), stopped=True)

        async def work() -> tuple[int, dict[str, Any]]:
            written = ctx.write_project(project.name, project)
            await ctx.push_entry(written)
            await _servo_actions(project.name, "stop")
            return 200, project_json(project)

        return await idempotent(request, idempotency_key, work)

    @router.post("/projects/{name}/start", dependencies=mutating)
    async def start(
        name: str, request: Request, idempotency_key: Annotated[str | None, Header()] = None
    ) -> Response:
        project = attrs.evolve(get_project(name), stopped=False)

        async def work() -> tuple[int, dict[str, Any]]:
            await _servo_actions(project.name, "start", only_state="stopped")
            return await deploy(project)

        return await idempotent(request, idempotency_key, work)

    @router.delete("/projects/{name}", dependencies=mutating)
    async def destroy(name: str, keep_volumes: bool = False) -> dict[str, Any]:
        project = get_project(name)
        written = ctx.write_project(project.name, None)
        await ctx.push_entry(written)
        removed = await _servo_actions(project.name, "destroy", keep_volume=keep_volumes)
        return {"name": project.name, "destroyed": True, "servos_removed": removed}

    @router.post("/members/{node}/drain", dependencies=mutating)
    async def drain(node: str) -> dict[str, Any]:
        if node == ctx.name:
            moved = await ctx.drain()
            return {"ok": True, "node": node, "moved": moved}
        peer = next((p for p in ctx.peers() if p.name == node), None)
        if peer is None:
            raise ApiError(404, "not_found", f"no member named {node!r}")
        try:
            result = await ctx.client.drain(node, peer.api)
        except PeerError as exc:
            raise ApiError(502, "peer_error", exc.detail) from None
        return result

    async def _servo_actions(
        project: str, action: str, only_state: str | None = None, keep_volume: bool = False
    ) -> int:
        peers = ctx.deployer.peers()
        by_name = {p.name: p for p in peers}
        done = 0

        async def one(node: str, servo_id: str) -> None:
            nonlocal done
            peer = by_name[node]
            try:
                if action == "destroy":
                    await ctx.client.destroy_servo(node, peer.api, servo_id, keep_volume)
                else:
                    await ctx.client.servo_action(node, peer.api, servo_id, action)
                done += 1
            except PeerError:
                pass  # that host reconciles when it sees the new spec

        async with trio.open_nursery() as nursery:
            for s in servos_of(project, peers):
                if only_state and s.state != only_state:
                    continue
                if by_name[s.node].status in ("alive", "draining"):
                    nursery.start_soon(one, s.node, s.servo_id)
        return done

    app.include_router(router)

    @app.get("/metrics", include_in_schema=True)
    async def metrics() -> Response:
        return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4")
