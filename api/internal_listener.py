"""The agent-to-agent routes on the advertised address, when the public API stays on loopback.

Peers reach an agent at the API URL it gossips (`http://ADVERTISE:API_PORT`) for `/internal/`
calls only (sealed with the cluster key: `node.internal_auth`). With `--api-bind 127.0.0.1` and
gossip on the LAN, the agent therefore also listens on ADVERTISE:API_PORT, and this wrapper
makes that socket answer `/internal/` and nothing else: deploys, reads and the page stay on the
API's own bind, however the LAN is set up.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

PREFIX = "/internal/"


class InternalOnly:
    def __init__(self, app: ASGIApp, api_url: str) -> None:
        self.app = app
        self.body = json.dumps(
            {
                "error": "not_found",
                "detail": "this address serves agent-to-agent routes only; the API listens "
                f"on {api_url}",
            }
        ).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self.body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self.body})
