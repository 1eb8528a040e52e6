"""`GET /v1/projects/{name}/logs/stream`: a project's log lines as they come (`shoal logs
--follow`), one JSON object per line (NDJSON), from whichever hosts run its servos.

The agent taking the request follows every servo's host (`node.log_follow`); the recent lines
without following stay `GET /v1/projects/{name}/logs` (`api.routes_public`).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import StreamingResponse

from api.errors import ApiError
from api.models import check_project_name
from node.cluster import servos_of
from node.context import AgentContext
from node.log_follow import follow
from node.project_service import NotFound

# an RFC 3339 UTC time as the stream gives it in "at" (what a client resumes with)
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def install_log_routes(app: FastAPI, ctx: AgentContext) -> None:
    router = APIRouter(prefix="/v1", tags=["logs"])

    @router.get("/projects/{name}/logs/stream", response_class=StreamingResponse)
    async def stream_logs(
        name: str,
        servo: Annotated[str | None, Query(max_length=200)] = None,
        tail: Annotated[int, Query(ge=1, le=10_000)] = 50,
        since: Annotated[
            str | None, Query(max_length=40, description="resume after this line time")
        ] = None,
    ) -> StreamingResponse:
        """NDJSON, one `{"servo", "node", "at", "line"}` per log line, oldest first: each
        servo's last `tail` lines (or those after `since`), then new ones as they come."""
        try:
            check_project_name(name)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", f"name: {exc}") from None
        if since is not None and not _STAMP.match(since):
            raise ApiError(422, "invalid_request", "since: an RFC 3339 UTC time, as in `at`")
        try:
            await ctx.projects.find(name)
        except NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        if servo is not None and all(s.servo_id != servo for s in servos_of(name, ctx.peers())):
            raise ApiError(404, "not_found", f"no servo {servo!r} in project {name!r}")

        async def lines() -> AsyncIterator[str]:
            async for line in follow(
                name, ctx.peers, ctx.client, servo_id=servo, tail=tail, since=since
            ):
                yield json.dumps(line.to_dict(), separators=(",", ":")) + "\n"

        return StreamingResponse(
            lines(),
            media_type="application/x-ndjson",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    app.include_router(router)
