"""The HTTP client of the public API, used by the CLI and by scripts.

Transport and HTTP failures become one `ClientError` with a one-line message fit for a terminal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx

DEFAULT_API = "http://127.0.0.1:7070"
STREAM_READ_TIMEOUT_S = 60.0  # a follow with nothing new for this long is reopened


class StreamEnded(Exception):
    """A followed stream closed or broke (the agent restarted, a proxy or server timeout cut it):
    the caller reopens it from where it was."""


class ClientError(Exception):
    """The agent could not be reached or refused the request; `str()` is one readable line."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class ShoalClient:
    def __init__(self, api: str | None = None, token: str | None = None, timeout_s: float = 300.0):
        self.api = (api or os.environ.get("SHOAL_API") or DEFAULT_API).rstrip("/")
        token = token if token is not None else os.environ.get("SHOAL_API_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.api, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ShoalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        try:
            resp = self._http.request(method, path, json=json, headers=headers)
        except httpx.ConnectError:
            raise ClientError(
                f"cannot connect to a Shoal agent at {self.api} (set --api or SHOAL_API)"
            ) from None
        except httpx.TimeoutException:
            raise ClientError(f"the agent at {self.api} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ClientError(f"request to {self.api} failed: {exc}") from None
        try:
            body = resp.json()
        except ValueError:
            body = resp.text
        if resp.status_code >= 400:
            self._raise_for(resp, body)
        return body

    def _raise_for(self, resp: httpx.Response, body: Any = None) -> None:
        """A 4xx/5xx answer as one readable `ClientError`."""
        if body is None:
            try:
                body = resp.json()
            except ValueError:
                body = resp.text
        if isinstance(body, dict) and "error" in body:
            msg = f"{body['error']}: {body.get('detail', '')}"
        else:
            msg = f"HTTP {resp.status_code}: {str(body)[:200]}"
        raise ClientError(msg, resp.status_code, body)

    def health(self) -> Any:
        return self.request("GET", "/v1/health")

    def members(self) -> Any:
        return self.request("GET", "/v1/members")

    def projects(self) -> Any:
        return self.request("GET", "/v1/projects")

    def project(self, name: str) -> Any:
        return self.request("GET", f"/v1/projects/{name}")

    def deploy(self, name: str, spec: dict[str, Any], idempotency_key: str | None = None) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self.request("PUT", f"/v1/projects/{name}", json=spec, headers=headers)

    def scale(self, name: str, replicas: int) -> Any:
        return self.request("POST", f"/v1/projects/{name}/scale", json={"replicas": replicas})

    def stop(self, name: str) -> Any:
        return self.request("POST", f"/v1/projects/{name}/stop")

    def start(self, name: str) -> Any:
        return self.request("POST", f"/v1/projects/{name}/start")

    def destroy(self, name: str, keep_volumes: bool = False) -> Any:
        suffix = "?keep_volumes=true" if keep_volumes else ""
        return self.request("DELETE", f"/v1/projects/{name}{suffix}")

    def drain(self, node: str) -> Any:
        return self.request("POST", f"/v1/members/{node}/drain")

    def history(self, name: str) -> Any:
        return self.request("GET", f"/v1/projects/{name}/history")

    def rollback(self, name: str, to: int | None = None) -> Any:
        return self.request("POST", f"/v1/projects/{name}/rollback", json={"to": to})

    def undrain(self, node: str) -> Any:
        return self.request("POST", f"/v1/members/{node}/undrain")

    def leave(self, node: str) -> Any:
        return self.request("POST", f"/v1/members/{node}/leave")

    def logs(self, name: str, servo: str | None = None, tail: int = 50) -> Any:
        params: dict[str, Any] = {"tail": tail}
        if servo:
            params["servo"] = servo
        return self.request("GET", f"/v1/projects/{name}/logs?{urlencode(params)}")

    def volumes(self, node: str | None = None) -> Any:
        return self.request("GET", "/v1/volumes" + (f"?node={node}" if node else ""))

    def prune_volumes(
        self, node: str | None = None, project: str | None = None, older_than_s: float | None = None
    ) -> Any:
        body = {"node": node, "project": project, "older_than_s": older_than_s}
        return self.request("POST", "/v1/volumes/prune", json=body)

    def events(self, since: int | None = None, limit: int = 200) -> Any:
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["since"] = since
        return self.request("GET", f"/v1/events?{urlencode(params)}")

    def stream(self, path: str, params: dict[str, Any]) -> Iterator[str]:
        """The lines of a streamed GET as they come. A refusal is a `ClientError` (as for any
        request); the stream closing or breaking after it started is `StreamEnded`."""
        query = urlencode({k: v for k, v in params.items() if v is not None})
        timeout = httpx.Timeout(10.0, read=STREAM_READ_TIMEOUT_S)
        try:
            with self._http.stream("GET", f"{path}?{query}", timeout=timeout) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    self._raise_for(resp)
                yield from resp.iter_lines()
        except httpx.ConnectError:
            raise ClientError(
                f"cannot connect to a Shoal agent at {self.api} (set --api or SHOAL_API)"
            ) from None
        except httpx.HTTPError as exc:  # read timeout, connection reset, incomplete chunk
            raise StreamEnded(str(exc)) from None
        raise StreamEnded("the agent closed the stream")

    def follow_events(self, since: int | None = None) -> Iterator[dict[str, Any]]:
        """Events from the SSE stream (`GET /v1/events/stream`) until it ends."""
        for line in self.stream("/v1/events/stream", {"since": since}):
            if line.startswith("data: "):
                yield json.loads(line[6:])

    def follow_logs(
        self, name: str, servo: str | None, tail: int, since: str | None
    ) -> Iterator[dict[str, Any]]:
        """Log lines of a project's servos (`GET /v1/projects/{name}/logs/stream`)."""
        params = {"servo": servo, "tail": tail, "since": since}
        for line in self.stream(f"/v1/projects/{name}/logs/stream", params):
            if line.strip():
                yield json.loads(line)
