"""Who may use the public HTTP API, checked once for every route (one ASGI middleware).

Four checks, in this order, each a JSON error in the API's one shape:

1. **Host** (400 `bad_host`): the `Host` header must name this agent (its bind or advertised
   address, its name), `localhost`, `127.0.0.1`, `::1`, or one of `--api-allow-host`. Without
   it a page on `evil.example` whose DNS answer flips to 127.0.0.1 (DNS rebinding) could talk
   to an agent on the operator's machine as a same-origin page.
2. **Origin** (403 `forbidden_origin`): a write (any method but GET/HEAD/OPTIONS) that carries an
   `Origin` (or `Sec-Fetch-Site: cross-site`) not naming an allowed host is refused: browsers
   send it on every cross-site request, so this stops CSRF even on an agent with no token.
3. **Token** (401 `unauthorized`, 403 `read_only_token`): with `--api-token` every route needs it
   (reads too: a project's spec is the operator's business), except `/v1/health`; with
   `--api-read-token` as well, that second token may read but not write. The token comes as
   `Authorization: Bearer T`; for GET and HEAD only also as a `shoal_token` cookie or a
   `?token=T` query parameter, because a browser's `EventSource` and a plain page load cannot
   set a header. Writes never accept a cookie (CSRF) nor a query token (it would sit in
   proxies' logs).
4. **Content type** (415 `unsupported_media_type`): a write with a body must say
   `application/json`: an HTML form can post `text/plain` or form-encoded bodies cross-site
   without a preflight, never JSON.

`/internal/` (agents, signed with the cluster key) and `/ingress/` (the local proxy, its own
token) have their own checks and pass through untouched. Other modules (a browser UI, an event
stream) are covered by the middleware with nothing to do; `authorize` is the same decision as a
function for code that must check a request by hand.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import os
import socket
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import ApiError, error_body
from node.config import AgentConfig
from node.netaddr import is_loopback

# answered without a token: a load balancer's probe, and the cluster page's static shell and
# assets (`api.routes_ui`: no data in them; the page asks for the token, then reads the API)
OPEN_PATHS = frozenset({"/v1/health", "/", "/ui/app.js", "/ui/style.css"})
OWN_AUTH_PREFIXES = ("/internal/", "/ingress/")  # checked by their own routes
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
COOKIE_NAME = "shoal_token"
QUERY_NAME = "token"
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})


@attrs.frozen
class Refusal:
    status: int
    error: str
    detail: str

    def response(self) -> JSONResponse:
        return JSONResponse(error_body(self.error, self.detail), status_code=self.status)


@attrs.frozen
class ApiPolicy:
    """What `authorize` checks against, taken from the agent's configuration."""

    token: str | None = None
    read_token: str | None = None
    hosts: frozenset[str] = _LOOPBACK
    any_host: bool = False

    @classmethod
    def from_config(cls, config: AgentConfig) -> ApiPolicy:
        hosts = set(_LOOPBACK)
        own = (config.bind, config.api_bind_addr, config.advertise_addr, config.name)
        hosts.update(h.lower() for h in own if h)
        if config.bind in _WILDCARD_BINDS:  # any address of this machine may be the one used
            hosts.update(_own_names())
        extra = {h.strip().lower() for h in config.api_allowed_hosts if h.strip()}
        return cls(
            token=config.api_token or None,
            read_token=(config.api_read_token or None) if config.api_token else None,
            hosts=frozenset(hosts | (extra - {"*"})),
            any_host="*" in extra,
        )


def _own_names() -> set[str]:
    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            names.add(str(info[4][0]).lower())
    except OSError:
        pass
    return names


def host_name(value: str) -> str:
    """`example.org:7070` -> `example.org`; `[::1]:7070` -> `::1`; lowercased."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        return value.partition(":")[0]
    return value


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        out.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
    return out


def _cookie_token(header: str | None) -> str | None:
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE_NAME)
    return morsel.value if morsel is not None else None


def _query_token(scope: Scope) -> str | None:
    raw = scope.get("query_string", b"").decode("latin-1")
    values = parse_qs(raw).get(QUERY_NAME)
    return values[0] if values else None


def _same(given: str | None, token: str | None) -> bool:
    if not given or not token:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8", "replace"))


def authorize(policy: ApiPolicy, scope: Scope) -> Refusal | None:
    """None when the request may go on; otherwise the refusal to send (see the module doc)."""
    path: str = scope.get("path", "")
    if any(path.startswith(p) for p in OWN_AUTH_PREFIXES):
        return None
    method = str(scope.get("method", "GET")).upper()
    headers = _headers(scope)
    if not policy.any_host and host_name(headers.get("host", "")) not in policy.hosts:
        return Refusal(400, "bad_host", "the Host header does not name this agent")
    write = method not in SAFE_METHODS
    if write and not _origin_ok(policy, headers):
        return Refusal(403, "forbidden_origin", "cross-site requests may not change anything")
    if policy.token and path not in OPEN_PATHS:
        refusal = _token_refusal(policy, scope, headers, write)
        if refusal is not None:
            return refusal
    if write and _has_body(headers) and not _is_json(headers.get("content-type")):
        return Refusal(415, "unsupported_media_type", "a request body must be application/json")
    return None


def _origin_ok(policy: ApiPolicy, headers: dict[str, str]) -> bool:
    if headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = headers.get("origin")
    if origin is None:
        return True  # not a browser, or a same-origin GET-like navigation
    if origin == "null":
        return False  # sandboxed frames, file:// pages
    return policy.any_host or (urlsplit(origin).hostname or "") in policy.hosts


def _token_refusal(
    policy: ApiPolicy, scope: Scope, headers: dict[str, str], write: bool
) -> Refusal | None:
    scheme, _, bearer = headers.get("authorization", "").partition(" ")
    given: list[str | None] = [bearer.strip() if scheme.lower() == "bearer" else None]
    if not write:  # a page load or an EventSource cannot set a header
        given += [_cookie_token(headers.get("cookie")), _query_token(scope)]
    if any(_same(g, policy.token) for g in given):
        return None
    if any(_same(g, policy.read_token) for g in given):
        if write:
            return Refusal(403, "read_only_token", "this token may read but not change anything")
        return None
    return Refusal(401, "unauthorized", "this agent needs Authorization: Bearer <api token>")


def _has_body(headers: dict[str, str]) -> bool:
    length = headers.get("content-length", "")
    return (length not in ("", "0")) or "transfer-encoding" in headers


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class ApiGuardMiddleware:
    """`authorize` in front of the whole app: nothing is routed, parsed or read before it."""

    def __init__(self, app: ASGIApp, policy: ApiPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = authorize(self.policy, scope)
            if refusal is not None:
                await refusal.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def exposed_without_token(config: AgentConfig) -> bool:
    """True when the API listens beyond loopback with no token: anyone who can reach the port
    can deploy, stop and destroy. `serve_api` says so loudly at start."""
    if config.api_token:
        return False
    bind = config.api_bind_addr.strip().lower()  # the public API's listener, not gossip's
    if bind == "localhost":
        return False
    try:
        return not ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return True  # a name: it may resolve to anything


def add_token_arguments(parser: argparse.ArgumentParser) -> None:
    """`shoal agent`'s API access flags. A token on the command line is visible in `ps` to
    every user of the host: prefer the file (or the environment variable)."""
    env = os.environ.get
    parser.add_argument(
        "--api-token", default=env("SHOAL_API_TOKEN"), help="(prefer --api-token-file)"
    )
    parser.add_argument(
        "--api-token-file",
        type=Path,
        default=env("SHOAL_API_TOKEN_FILE"),
        help="file holding the API token (full access); also $SHOAL_API_TOKEN_FILE",
    )
    parser.add_argument("--api-read-token", default=env("SHOAL_API_READ_TOKEN"))
    parser.add_argument(
        "--api-read-token-file",
        type=Path,
        default=env("SHOAL_API_READ_TOKEN_FILE"),
        help="file holding a token that may only read",
    )
    parser.add_argument(
        "--api-allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name the API answers to besides its own addresses and localhost "
        "(repeatable; '*' for any)",
    )


class TokenFileError(ValueError):
    """A token file that cannot be read or holds no token."""


def read_token_file(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise TokenFileError(f"cannot read token file {path}: {exc.strerror}") from None
    if not token or any(ord(c) < 0x21 or ord(c) == 0x7F for c in token):
        raise TokenFileError(f"token file {path} must hold one token of printable characters")
    return token


def token_settings(args: argparse.Namespace) -> dict[str, Any]:
    """AgentConfig's API access fields from `add_token_arguments`' flags (a file wins)."""
    token = read_token_file(args.api_token_file) if args.api_token_file else args.api_token
    read = (
        read_token_file(args.api_read_token_file)
        if args.api_read_token_file
        else args.api_read_token
    )
    return {
        "api_token": token or None,
        "api_read_token": read or None,
        "api_allowed_hosts": tuple(args.api_allow_host),
    }


def loopback_unless_token(config: AgentConfig, client_host: str, detail: str) -> None:
    """Routes that hand out or change the cluster key: an agent with no API token answers
    them on loopback only (with a token, the guard middleware has already checked it)."""
    if not config.api_token and not is_loopback(client_host):
        raise ApiError(403, "forbidden", detail)
