"""The event journal over HTTP: `GET /v1/events` (recent, JSON) and `GET /v1/events/stream`
(Server-Sent Events, resumable with `Last-Event-ID`).

Both read `ctx.events` (`node.events`): the same events the cluster page shows. Who may read
them is the API guard's business (`api.auth`): a browser's `EventSource` cannot set a header,
so the guard also takes the token as `?token=` or a cookie on GET.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import trio
from fastapi import APIRouter, FastAPI, Header, Query
from fastapi.responses import StreamingResponse

from api.errors import ApiError
from node.context import AgentContext
from node.events import JOURNAL_CAPACITY, Event, EventJournal, TooManySubscribers

HEARTBEAT_S = 15.0  # a comment line this often: proxies keep the stream, dead clients show
RETRY_MS = 1000  # how long a browser waits before it reconnects (SSE's `retry:`)


def sse_frame(event: Event) -> str:
    """One SSE message: `id:` lets a client resume, `data:` is the event's JSON on one line."""
    return f"id: {event.id}\ndata: {json.dumps(event.to_dict(), separators=(',', ':'))}\n\n"


async def sse_stream(
    journal: EventJournal, after_id: int | None, heartbeat_s: float = HEARTBEAT_S
) -> AsyncIterator[str]:
    """The backlog after `after_id`, then every new event as it is emitted. Ends when the
    journal drops this subscriber for being slow; the client reconnects from its last id."""
    with journal.subscribe(after_id) as (backlog, channel):
        yield f"retry: {RETRY_MS}\n\n"
        for old in backlog:
            yield sse_frame(old)
        while True:
            new: Event | None = None
            with trio.move_on_after(heartbeat_s):
                try:
                    new = await channel.receive()
                except trio.EndOfChannel:
                    return
            yield ": keepalive\n\n" if new is None else sse_frame(new)


def _resume_id(since: int | None, last_event_id: str | None) -> int | None:
    if last_event_id is not None and last_event_id.strip():
        try:
            return int(last_event_id.strip())
        except ValueError:
            raise ApiError(422, "invalid_request", "Last-Event-ID must be an event id") from None
    return since


def install_event_routes(app: FastAPI, ctx: AgentContext) -> None:
    router = APIRouter(prefix="/v1", tags=["events"])

    @router.get("/events")
    async def events(
        since: Annotated[int | None, Query(ge=0, description="only events after this id")] = None,
        limit: Annotated[int, Query(ge=1, le=JOURNAL_CAPACITY)] = 200,
        kind: Annotated[
            str | None, Query(max_length=64, description="a kind or its area: member.dead, servo")
        ] = None,
    ) -> list[dict[str, Any]]:
        """Recent events, oldest first: member joined/suspect/dead/left/draining, servo
        created/restarted/failed/removed/moved, project and rollout changes."""
        found = ctx.events.since(since)
        if kind:
            found = [e for e in found if e.kind == kind or e.kind.startswith(kind + ".")]
        return [e.to_dict() for e in found[-limit:]]

    @router.get("/events/stream", response_class=StreamingResponse)
    async def stream(
        since: Annotated[int | None, Query(ge=0, description="replay events after this id")] = None,
        last_event_id: Annotated[str | None, Header(max_length=32)] = None,
    ) -> StreamingResponse:
        """Server-Sent Events: one `data:` JSON per event (the `/v1/events` objects), `id:` set,
        resumable with `Last-Event-ID` (or `?since=`); a comment every 15 s keeps it open."""
        after = _resume_id(since, last_event_id)
        try:
            body = sse_stream(ctx.events, after)
            first = await body.__anext__()  # subscribes now: a refusal is still a JSON 503
        except TooManySubscribers as exc:
            raise ApiError(503, "too_many_streams", str(exc)) from None

        async def frames() -> AsyncIterator[str]:
            yield first
            async for frame in body:
                yield frame

        return StreamingResponse(
            frames(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    app.include_router(router)
