"""A servo's health check: the value a project spec carries, the pure verdict on each probe,
and the probe itself over the network.

The host that runs a servo checks it (nobody else can reach its published ports cheaply, and the
host is already authoritative for the servo's state). The policy is Kubernetes' probes folded
into one: like a startup probe, failures during the first `grace_s` after the container starts
do not count; like a readiness probe, the servo is `starting` (not `running`, not routed to) until
a check first passes; like a liveness probe, `threshold` failures in a row restart it, through
the same path as a crash (reason `unhealthy`, counted by the CrashLoopBackOff policy of
`node/servo_lifecycle.py`). A servo stays healthy until that restart: a single failed check is
noise, `threshold` of them in a row is the verdict (the kubelet's `failureThreshold`).

    on_probe(check, history, passed, since_start_s) -> ProbeVerdict(history, action)

is the whole decision, pure; `node/host.py` runs one small Trio loop per checked servo that
probes every `interval_s`, feeds the answers in, and carries out `healthy` and `unhealthy`.

The probe (`network_probe`) is an I/O shell: `http` is a GET of
`http://{host}:{published port}{path}` answered 2xx or 3xx (redirects are not followed) within
`timeout_s`; `tcp` is a connection accepted within `timeout_s`. Caveat for `tcp` on Docker: with
the userland proxy (`docker-proxy`) a published port accepts connections even when nothing in
the container listens, so only an `http` check proves the app answers.

Errors: a caller's bad check is a `ValueError` naming the field (the API answers it with a 400).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs

HEALTH_TYPES = ("none", "http", "tcp")
# The outcome of one probe, as the host acts on it.
HEALTH_ACTIONS = (
    "none",  # nothing changes
    "healthy",  # the first check passed since its container started: `starting` -> `running`
    "unhealthy",  # `threshold` failures in a row after the grace: restart it as after a crash
)

# Bounds on what a spec may ask for (put a limit on everything).
INTERVAL_MIN_S = 0.1
INTERVAL_MAX_S = 3600.0
GRACE_MAX_S = 3600.0
THRESHOLD_MAX = 100
PATH_MAX_CHARS = 1024
_FIELDS = ("type", "port", "path", "interval_s", "timeout_s", "threshold", "grace_s")


def _bad(message: str) -> ValueError:
    return ValueError(f"health.{message}")


@attrs.frozen
class HealthCheck:
    """How the host checks one servo. Validated on construction: a bad field is a ValueError."""

    type: str = "none"  # one of HEALTH_TYPES; "none": no check, running once started
    port: int = 0  # the container port to check; must be one of the servo's published ports
    path: str = "/"  # http only: the path requested
    interval_s: float = 2.0  # from the start of one probe to the start of the next
    timeout_s: float = 1.0  # a probe not answered within this failed (<= interval_s)
    threshold: int = 3  # failures in a row, after the grace, that restart the servo
    grace_s: float = 5.0  # failures within this long after the container started do not count

    def __attrs_post_init__(self) -> None:
        if self.type not in HEALTH_TYPES:
            raise _bad(f"type must be one of {', '.join(HEALTH_TYPES)} (got {self.type!r})")
        if self.type == "none":
            return
        if isinstance(self.port, bool) or not 1 <= self.port <= 65535:
            raise _bad(f"port must be a container port from 1 to 65535 (got {self.port!r})")
        if (
            not self.path.startswith("/")
            or len(self.path) > PATH_MAX_CHARS
            or not (self.path.isascii() and self.path.isprintable())
            or " " in self.path
        ):
            raise _bad(
                f"path must start with '/' and be at most {PATH_MAX_CHARS} printable ASCII"
                f" characters without spaces (got {self.path!r})"
            )
        if not INTERVAL_MIN_S <= self.interval_s <= INTERVAL_MAX_S:
            raise _bad(
                f"interval_s must be from {INTERVAL_MIN_S} to {INTERVAL_MAX_S:.0f}"
                f" (got {self.interval_s!r})"
            )
        if not 0 < self.timeout_s <= self.interval_s:
            raise _bad(
                f"timeout_s must be above 0 and at most interval_s ({self.interval_s})"
                f" (got {self.timeout_s!r})"
            )
        if isinstance(self.threshold, bool) or not 1 <= self.threshold <= THRESHOLD_MAX:
            raise _bad(f"threshold must be from 1 to {THRESHOLD_MAX} (got {self.threshold!r})")
        if not 0 <= self.grace_s <= GRACE_MAX_S:
            raise _bad(f"grace_s must be from 0 to {GRACE_MAX_S:.0f} (got {self.grace_s!r})")

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "port": self.port,
            "path": self.path,
            "interval_s": self.interval_s,
            "timeout_s": self.timeout_s,
            "threshold": self.threshold,
            "grace_s": self.grace_s,
        }

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any] | None) -> HealthCheck | None:
        """The check a spec asks for; None (no check) for None or type "none"."""
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise ValueError(f"health must be an object or null (got {type(raw).__name__})")
        unknown = sorted(str(k) for k in raw if k not in _FIELDS)
        if unknown:
            raise _bad(f"{unknown[0]} is not a field (fields: {', '.join(_FIELDS)})")
        if "type" not in raw:
            raise _bad(f"type is required: one of {', '.join(HEALTH_TYPES)}")
        kind = raw["type"]
        if not isinstance(kind, str):
            raise _bad(f"type must be one of {', '.join(HEALTH_TYPES)} (got {kind!r})")
        if kind == "none":
            return None
        default = cls()
        path = raw.get("path", default.path)
        if not isinstance(path, str):
            raise _bad(f"path must be a string (got {path!r})")
        return cls(
            type=kind,
            port=_int(raw, "port", default.port),
            path=path,
            interval_s=_seconds(raw, "interval_s", default.interval_s),
            timeout_s=_seconds(raw, "timeout_s", default.timeout_s),
            threshold=_int(raw, "threshold", default.threshold),
            grace_s=_seconds(raw, "grace_s", default.grace_s),
        )


def _int(raw: Mapping[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{key} must be an integer (got {value!r})")
    return value


def _seconds(raw: Mapping[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"{key} must be a number of seconds (got {value!r})")
    return float(value)


def check_ports(check: HealthCheck | None, ports: Sequence[int]) -> None:
    """A check must look at a port the servo publishes: the host reaches it through that."""
    if check is not None and check.type != "none" and check.port not in ports:
        raise _bad(f"port {check.port} is not one of the servo's ports {list(ports)}")


# --- the verdict on one probe (pure) ----------------------------------------------------------


@attrs.frozen
class ProbeHistory:
    """What the checker of one container run remembers; a (re)start begins a fresh one."""

    passed: bool = False  # a check has passed since the container started
    failures: int = 0  # failed checks in a row, counted only after the grace; < threshold


@attrs.frozen
class ProbeVerdict:
    history: ProbeHistory
    action: str = attrs.field(validator=attrs.validators.in_(HEALTH_ACTIONS))


def on_probe(
    check: HealthCheck, history: ProbeHistory, passed: bool, since_start_s: float
) -> ProbeVerdict:
    """One probe's answer, `since_start_s` after the container started.

    | passed | after the grace | failures before      | action    | failures after |
    |--------|-----------------|----------------------|-----------|----------------|
    | yes    | any             | any, never passed    | healthy   | 0              |
    | yes    | any             | any, passed before   | none      | 0              |
    | no     | no              | any                  | none      | unchanged      |
    | no     | yes             | < threshold - 1      | none      | + 1            |
    | no     | yes             | threshold - 1        | unhealthy | threshold      |
    """
    if passed:
        action = "none" if history.passed else "healthy"
        return ProbeVerdict(ProbeHistory(passed=True, failures=0), action)
    if since_start_s < check.grace_s:
        return ProbeVerdict(history, "none")
    failures = history.failures + 1
    action = "unhealthy" if failures >= check.threshold else "none"
    return ProbeVerdict(attrs.evolve(history, failures=failures), action)


# --- the probe over the network (I/O) ---------------------------------------------------------

# (check, host address, published host port) -> did it pass. Never raises for the servo's
# failures; the host bounds it by `timeout_s` as well and counts an exception as a failure.
Probe = Callable[[HealthCheck, str, int], Awaitable[bool]]

PROBE_USER_AGENT = "shoal-health/1"


def probe_address(host_addr: str) -> str:
    """Where the host reaches a port it published on `host_addr` (a wildcard: its loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host_addr, host_addr)


def check_url(check: HealthCheck, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{check.path}"


async def network_probe(check: HealthCheck, host: str, port: int) -> bool:
    """Probe `host:port` by `check`: a real connection, a real request, bounded by the timeout.

    A new connection per probe (no keep-alive), so a check proves that the servo accepts one now;
    an httpx client without TLS verification costs well under a millisecond to make.
    """
    import httpx
    import trio

    address = probe_address(host)
    with trio.move_on_after(check.timeout_s):
        if check.type == "tcp":
            try:
                stream = await trio.open_tcp_stream(address, port)
            except OSError:
                return False
            await stream.aclose()
            return True
        try:
            async with (
                httpx.AsyncClient(
                    verify=False,
                    trust_env=False,
                    follow_redirects=False,
                    timeout=check.timeout_s,
                    headers={"User-Agent": PROBE_USER_AGENT},
                ) as client,
                client.stream("GET", check_url(check, address, port)) as response,
            ):
                return 200 <= response.status_code < 400
        except httpx.HTTPError:
            return False
    return False  # timed out
