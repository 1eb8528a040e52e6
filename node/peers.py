"""The agent-to-agent HTTP client: ask a peer to create, stop, start or destroy a servo, read its
state, and exchange project specs. Every request is sealed for its destination agent with the
cluster key ring, and only a sealed answer to that very request counts as a success (see
`node.internal_auth`): a man in the middle can make a call fail, never succeed.

Transport failures become `PeerUnreachable`; a peer's refusal (admission) becomes `PeerRefused`
with its reason, and a failed creation `PeerFailed`: the deployer excludes that host and places
again on any of the three.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from gossip.crypto import Keyring, OpenError
from node.internal_auth import HEADER, SEALED_TYPE, open_response, seal_request


class PeerError(Exception):
    """A peer did not do what was asked. `reason` is a short code for metrics and explanations."""

    reason = "error"

    def __init__(self, node: str, detail: str, reason: str | None = None) -> None:
        super().__init__(f"{node}: {detail}")
        self.node = node
        self.detail = detail
        if reason:
            self.reason = reason


class PeerUnreachable(PeerError):
    reason = "unreachable"


class PeerRefused(PeerError):
    """The host's admission said no. `state` is its fresh capacity and servos when it sent them,
    so the next placement is made from the truth rather than from lagging gossip."""

    reason = "refused"

    def __init__(
        self, node: str, detail: str, reason: str | None = None, state: Any = None
    ) -> None:
        super().__init__(node, detail, reason)
        self.state = state


class PeerFailed(PeerError):
    reason = "failed"


class PeerClient:
    def __init__(
        self,
        ring: Keyring | Sequence[bytes],
        me: str = "",
        timeout_s: float = 30.0,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # the agent's one ring (shared with gossip and the server, so `shoal keys use` switches
        # every sender at once); a list of keys makes a private ring (tests, tools)
        self.ring = ring if isinstance(ring, Keyring) else Keyring(ring)
        self.me = me
        self._clock_ms = clock_ms
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=2.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(
        self,
        node: str,
        api: str,
        method: str,
        path: str,
        body: Any = None,
        timeout_s: float | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Any:
        raw = json.dumps(body).encode() if body is not None else b""
        url = httpx.URL(api.rstrip("/") + path)
        target = url.raw_path.decode("latin-1")
        auth, nonce, sealed = seal_request(self.ring, node, self._clock_ms(), method, target, raw)
        headers = {HEADER: auth, "Content-Type": SEALED_TYPE}
        headers.update(extra_headers or {})
        try:
            resp = await self._client.request(
                method,
                url,
                content=sealed,
                headers=headers,
                timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException:
            raise PeerUnreachable(node, f"no answer from {api} in time", "timeout") from None
        except httpx.HTTPError as exc:
            raise PeerUnreachable(node, f"cannot reach {api}: {exc}") from None
        data = self._answer(node, nonce, resp)
        if resp.status_code < 300:
            return data
        fallback = f"HTTP {resp.status_code}"
        detail = str(data.get("detail", fallback)) if isinstance(data, dict) else str(data)
        reason = (
            str(data.get("reason") or data.get("error") or "error")
            if isinstance(data, dict)
            else "error"
        )
        if resp.status_code == 409:
            state = data.get("state") if isinstance(data, dict) else None
            raise PeerRefused(node, detail, reason, state)
        if resp.status_code in (401, 403):
            raise PeerRefused(node, detail, "unauthorized")
        raise PeerFailed(node, detail, reason)

    def _answer(self, node: str, nonce: str, resp: httpx.Response) -> Any:
        """The answer's JSON. A success or a refusal (which carries state the placer acts on)
        must be sealed for this request; a plain error (401 from the seal check, 413, 404 of
        an unknown route) is read as it is: it can only make the call fail."""
        content = resp.content
        sealed = resp.headers.get("content-type", "").startswith(SEALED_TYPE)
        if sealed:
            try:
                content = open_response(self.ring, nonce, resp.status_code, content)
            except OpenError:
                raise PeerFailed(node, "answer not sealed for this request", "bad_seal") from None
        elif resp.status_code < 300 or resp.status_code == 409:
            raise PeerFailed(node, "answer not sealed with the cluster key", "bad_seal")
        try:
            return json.loads(content) if content else {}
        except ValueError:
            return {"error": "bad_response", "detail": content[:200].decode("utf-8", "replace")}

    async def create_servo(
        self,
        node: str,
        api: str,
        spec: dict[str, Any],
        idempotency_key: str | None = None,
        replaces: str | None = None,
    ) -> dict[str, Any]:
        body = {"spec": spec, "idempotency_key": idempotency_key, "replaces": replaces}
        result: dict[str, Any] = await self._call(node, api, "POST", "/internal/servos", body)
        return result

    async def servo_action(self, node: str, api: str, servo_id: str, action: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            node, api, "POST", f"/internal/servos/{servo_id}/{action}", {}
        )
        return result

    async def destroy_servo(
        self, node: str, api: str, servo_id: str, keep_volume: bool = False
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            node, api, "POST", f"/internal/servos/{servo_id}/destroy", {"keep_volume": keep_volume}
        )
        return result

    async def remove_servo(self, node: str, api: str, servo_id: str) -> dict[str, Any]:
        """Remove a servo's container; the host keeps its volume."""
        return await self.servo_action(node, api, servo_id, "remove")

    async def volumes(self, node: str, api: str) -> list[dict[str, Any]]:
        data = await self._call(node, api, "GET", "/internal/volumes", None, 10.0)
        return list(data.get("volumes", [])) if isinstance(data, dict) else []

    async def prune_volumes(
        self, node: str, api: str, project: str | None, older_than_s: float | None
    ) -> list[str]:
        body = {"project": project, "older_than_s": older_than_s}
        data = await self._call(node, api, "POST", "/internal/volumes/prune", body, 60.0)
        return list(data.get("pruned", [])) if isinstance(data, dict) else []

    async def logs(
        self, node: str, api: str, servo_id: str, tail: int, timestamps: bool = False
    ) -> str:
        query = "?timestamps=true" if timestamps else ""
        path = f"/internal/servos/{servo_id}/logs/{tail}{query}"
        data = await self._call(node, api, "GET", path, None, 10.0)
        return str(data.get("logs", "")) if isinstance(data, dict) else ""

    async def undrain(self, node: str, api: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(node, api, "POST", "/internal/undrain", {})
        return result

    async def leave(self, node: str, api: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(node, api, "POST", "/internal/leave", {}, 600.0)
        return result

    async def get_state(self, node: str, api: str, timeout_s: float = 2.0) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            node, api, "GET", "/internal/state", None, timeout_s
        )
        return result

    async def drain(self, node: str, api: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(node, api, "POST", "/internal/drain", {}, 600.0)
        return result

    async def push_specs(self, node: str, api: str, entries: list[dict[str, Any]]) -> None:
        await self._call(
            node,
            api,
            "POST",
            "/internal/projects",
            {"entries": entries},
            5.0,
            {"X-Shoal-From": self.me},
        )

    async def keys(self, node: str, api: str) -> dict[str, Any]:
        """The peer's key ring, as fingerprints (`shoal keys list`)."""
        result: dict[str, Any] = await self._call(node, api, "GET", "/internal/keys", None, 10.0)
        return result

    async def key_op(self, node: str, api: str, op: str, key_b64: str) -> dict[str, Any]:
        """`install`, `use` or `remove` a key on the peer (the key travels sealed)."""
        result: dict[str, Any] = await self._call(
            node, api, "POST", f"/internal/keys/{op}", {"key": key_b64}, 10.0
        )
        return result

    async def specs_digest(self, node: str, api: str) -> str:
        data = await self._call(node, api, "GET", "/internal/projects/digest", None, 5.0)
        return str(data.get("digest", "")) if isinstance(data, dict) else ""

    async def pull_specs(self, node: str, api: str) -> list[dict[str, Any]]:
        data = await self._call(node, api, "GET", "/internal/projects", None, 5.0)
        entries = data.get("entries", []) if isinstance(data, dict) else []
        return list(entries)
