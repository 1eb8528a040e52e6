"""One error shape for every HTTP failure: `{"error": code, "detail": text}`.

Errors are split by fault, as h11 does: the caller's mistakes are 4xx with a code naming the
problem (`invalid_spec`, `not_found`, `unauthorized`, `body_too_large`); our own are 5xx.
"""

from __future__ import annotations

import contextlib
from typing import Any

import trio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node.store_writer import StorageError

MAX_BODY_BYTES = 256 * 1024
BODY_DEADLINE_S = 30.0  # the whole body, however it is trickled (a slot is held meanwhile)


class ApiError(Exception):
    """Raised by route code for an error the caller should see."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def error_body(error: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": error, "detail": detail, **extra}


_UNION_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    """`("body", "memory", "constrained-str")` -> `memory`: pydantic names the branch of a
    union that failed (`constrained-str`, `function-after[...]`); the caller names fields."""
    parts = [
        str(p)
        for p in loc
        if p != "body" and not (isinstance(p, str) and ("[" in p or "-" in p or p in _UNION_TAGS))
    ]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.error, exc.detail), status_code=exc.status)

    @app.exception_handler(StorageError)
    async def _storage(_: Request, exc: StorageError) -> JSONResponse:
        # the change is in memory but not known to be on disk (node.store_writer): a 503 the
        # caller may retry, as every write is declarative
        return JSONResponse(error_body("storage_error", exc.detail), status_code=503)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{_field(e['loc'])}: {e['msg']}" for e in exc.errors()]
        fields = list(dict.fromkeys(_field(e["loc"]) for e in exc.errors()))
        return JSONResponse(
            error_body("invalid_request", "; ".join(problems), fields=fields), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method of the path, not just the first route's
            headers["Allow"] = ", ".join(allowed_methods(app, request.scope))
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers
        )


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """The methods of every route whose path matches (RFC 9110 15.5.6: a 405 lists them all;
    Starlette lists only those of the first route that matched the path)."""
    methods: set[str] = set()
    probe = {**scope, "method": "\0"}  # a method no route has: only the path is compared
    for route in app.router.routes:
        match, _ = route.matches(probe)
        if match is Match.PARTIAL and isinstance(route, BaseRoute):
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


class BodyLimitMiddleware:
    """Refuse request bodies over a bound before reading them whole (413, JSON error), and
    bodies that do not arrive whole within `deadline_s` of the request's start (408): a client
    trickling a byte every few seconds would otherwise hold its connection for ever."""

    def __init__(
        self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, deadline_s: float | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.deadline_s = BODY_DEADLINE_S if deadline_s is None else deadline_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", []):
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send)
                return
        seen = 0
        done = False
        refused = False  # our answer is sent: whatever the app answers after is dropped
        deadline = trio.current_time() + self.deadline_s

        async def refuse(status: int, error: str, detail: str) -> None:
            nonlocal refused
            if not refused:
                refused = True
                await self._refuse(send, status, error, detail)

        async def limited() -> Message:
            # FastAPI turns an exception raised here into its own 400, so the refusal is sent
            # from here, before raising
            nonlocal seen, done
            if done:  # the body is in: what is left is waiting for a disconnect, unbounded
                return await receive()
            try:
                with trio.fail_at(deadline):
                    message = await receive()
            except trio.TooSlowError:
                detail = f"the request body did not arrive within {self.deadline_s:g} s"
                await refuse(408, "body_timeout", detail)
                raise _Refused from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    await refuse(413, "body_too_large", too_large)
                    raise _Refused
                done = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        too_large = f"request body is over {self.max_bytes} bytes"
        with contextlib.suppress(_Refused):
            await self.app(scope, limited, guarded_send)

    async def _refuse(
        self, send: Send, status: int = 413, error: str = "body_too_large", detail: str = ""
    ) -> None:
        detail = detail or f"request body is over {self.max_bytes} bytes"
        body = JSONResponse(error_body(error, detail), status_code=status)
        await body({"type": "http"}, _empty_receive, send)


class _Refused(Exception):
    """The body broke a bound and the answer is sent: unwind the app."""


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}
