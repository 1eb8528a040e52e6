"""The OpenAPI document, made to tell the truth about every answer an operation can give.

FastAPI documents each route's 200 and a 422 in its own `HTTPValidationError` shape; the agent
answers more than that, always in one error shape (`api.errors`). So, after FastAPI has built
the document:

- the error shape is a component (`Error`), and every operation lists the statuses that the
  layers in front of every route can give, with it: the guard (`api.auth`: 400 bad Host, 401,
  403, 415), the body limits (408, 413), validation (422, in our shape, not FastAPI's), and the
  statuses of the use cases behind the routes (404, 409, 502, 503);
- FastAPI's own validation components, no longer used, are dropped;
- `/metrics` says it answers Prometheus text, not JSON.

schemathesis runs against this document in the test suite
(tests/integration/test_hardening_openapi.py) with every check.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "a stable code, e.g. invalid_request"},
        "detail": {"type": "string", "description": "what was wrong, for a person"},
        "fields": {"type": "array", "items": {"type": "string"}},
    },
}
ERROR_STATUSES = {
    "400": "bad request (a Host header that does not name this agent, a body that is no JSON)",
    "401": "a token is needed (--api-token)",
    "403": "a read-only token, or a cross-site write",
    "404": "no such project, member or route",
    "408": "the body did not arrive in time",
    "409": "conflicts with the cluster's state",
    "413": "the body is too large",
    "415": "a body that is not application/json",
    "422": "the request does not validate",
    "502": "a peer this request needed did not answer",
    "503": "this agent cannot do it now",
}
_PROMETHEUS = "text/plain; version=0.0.4"


def _error_response(text: str) -> dict[str, Any]:
    return {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def truthful_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, text in ERROR_STATUSES.items():
                responses[status] = _error_response(text)
            if path == "/metrics":
                responses["200"]["content"] = {_PROMETHEUS: {"schema": {"type": "string"}}}
    _link_project_operations(document)
    return document


def _link_project_operations(document: dict[str, Any]) -> None:
    """OpenAPI links from a deploy to what can be done with the project it made: the name the
    PUT took is the name the others take (schemathesis' stateful phase follows them, so it
    stops, scales, rolls back and destroys projects that exist, not only missing ones)."""
    paths = document.get("paths", {})
    put = paths.get("/v1/projects/{name}", {}).get("put")
    if put is None or "200" not in put.get("responses", {}):
        return
    links: dict[str, Any] = {}
    for path, operations in paths.items():
        if not path.startswith("/v1/projects/{name}") or path.endswith("/stream"):
            continue
        for operation in operations.values():
            if operation is put or "operationId" not in operation:
                continue
            links[operation["operationId"]] = {
                "operationId": operation["operationId"],
                "parameters": {"name": "$request.path.name"},
            }
    put["responses"]["200"]["links"] = links


def install_openapi(app: FastAPI) -> None:
    cached: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not cached:
            cached.update(truthful_openapi(app))
        return cached

    app.openapi = openapi  # type: ignore[method-assign]
