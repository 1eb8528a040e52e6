"""Serving the agent's ASGI app on Hypercorn's Trio worker, with a bound on everything a client
can hold.

- **Connections**: at most `MAX_CONNECTIONS` at once. The accept loop takes a slot before it
  accepts, so beyond the cap new connections wait in the kernel's backlog instead of costing
  this process a file descriptor each (200 trickling clients once made a deploy time out with
  `EMFILE` in the log).
- **Reads**: a connection is idle until a request's headers are complete, and an idle one is
  closed after `KEEP_ALIVE_S` (Hypercorn's keep-alive timer), so a client trickling its headers
  is cut off; a request body must arrive whole within `BODY_DEADLINE_S`
  (`api.errors.BodyLimitMiddleware`: 408), so trickling a byte every few seconds does not keep a
  slot either. Hypercorn's `read_timeout` stays off: it also fires while the *answer* is under
  way and the client is rightly silent, which cut every deploy that took longer than it (a
  40-agent cluster on a loaded machine) and every event or log stream.

Hypercorn's own `serve` has no connection cap, so this runs its per-connection `TCPServer`
from an accept loop of our own (the same few lines as `hypercorn.trio.run.worker_serve`).
"""

from __future__ import annotations

import errno
from typing import Any

import trio

from api.app import create_app
from api.auth import exposed_without_token
from api.internal_listener import InternalOnly
from node.context import AgentContext
from node.logfmt import get_logger

log = get_logger("api.server")

MAX_CONNECTIONS = 256  # well under a default 1024-descriptor limit, beside gossip and Docker
KEEP_ALIVE_S = 5.0  # an idle keep-alive connection
H11_MAX_INCOMPLETE_BYTES = 16 * 1024  # request line + headers
ACCEPT_BACKOFF_S = 0.1
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


def hypercorn_config(ctx: AgentContext) -> Any:
    from hypercorn.config import Config

    hc = Config()
    hc.bind = [f"{ctx.config.api_bind_addr}:{ctx.config.api_port}"]
    hc.accesslog = None
    hc.errorlog = None
    hc.graceful_timeout = 1.0
    hc.read_timeout = None  # see the module's docstring
    hc.keep_alive_timeout = KEEP_ALIVE_S
    hc.h11_max_incomplete_size = H11_MAX_INCOMPLETE_BYTES
    return hc


async def serve_api(
    ctx: AgentContext,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    max_connections: int | None = None,
) -> None:
    from hypercorn.trio.tcp_server import TCPServer
    from hypercorn.trio.worker_context import WorkerContext
    from hypercorn.utils import wrap_app

    if exposed_without_token(ctx.config):
        log.warning(
            "api.UNPROTECTED",
            bind=ctx.config.api_bind_addr,
            detail="the API listens beyond loopback with no --api-token: anyone who reaches "
            "this port can deploy, stop and destroy projects; set --api-token-file",
        )
    hc = hypercorn_config(ctx)
    asgi = create_app(ctx)
    app = wrap_app(asgi, hc.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
    context = WorkerContext(None)
    listeners = await trio.open_tcp_listeners(ctx.config.api_port, host=ctx.config.api_bind_addr)
    # peers call /internal/ at the advertised address: listen there too (and only for that)
    # when the public API stays on another address (api.internal_listener)
    internal_host = ctx.config.internal_bind_addr
    public_url = f"http://{ctx.config.api_bind_addr}:{ctx.config.api_port}"
    internal_app = wrap_app(
        InternalOnly(asgi, public_url),  # type: ignore[arg-type]
        hc.wsgi_max_body_size,
        "asgi",
    )
    internal = (
        await trio.open_tcp_listeners(ctx.config.api_port, host=internal_host)
        if internal_host
        else []
    )
    max_connections = MAX_CONNECTIONS if max_connections is None else max_connections
    slots = trio.Semaphore(max_connections)
    log.info(
        "api.listening",
        url=public_url,
        peers_use=ctx.api_url,  # gossiped; served by `internal` when it is another address
        internal_only=f"{internal_host}:{ctx.config.api_port}" if internal_host else "-",
        max_connections=max_connections,
    )

    async def handle(stream: trio.SocketStream, app: Any) -> None:
        try:
            await TCPServer(app, hc, context, {}, stream)  # type: ignore[arg-type]
        finally:
            slots.release()

    async def accept_loop(listener: trio.SocketListener, nursery: trio.Nursery, app: Any) -> None:
        async with listener:
            while True:
                await slots.acquire()
                try:
                    stream = await listener.accept()
                except OSError as exc:  # out of descriptors: wait, as trio.serve_listeners does
                    slots.release()
                    if exc.errno not in _RESOURCE_ERRNOS:
                        raise
                    log.warning("api.accept_failed", detail=exc.strerror)
                    await trio.sleep(ACCEPT_BACKOFF_S)
                    continue
                except BaseException:
                    slots.release()
                    raise
                nursery.start_soon(handle, stream, app)

    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(accept_loop, listener, nursery, app)
        for listener in internal:
            nursery.start_soon(accept_loop, listener, nursery, internal_app)
        task_status.started()
