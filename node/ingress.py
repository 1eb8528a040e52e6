"""The ingress's routing table, as a pure function of what gossip and the spec registry say.

Every agent can run an ingress proxy (Traefik, supervised by `node.ingress_proxy`). Traefik
pulls its routing from this agent over its HTTP provider once a second; what it pulls is
`ingress_config(...)`: one router per project, `Host(`<project>.<domain>`)`, to a load balancer
over the URLs of the project's *serving* servos anywhere in the cluster, behind a retry
middleware; and a catch-all router of the lowest priority to this agent's fallback route, which
answers an unknown host (or a project with nothing to serve) with a JSON error
(`fallback_answer`). Nothing here reads a clock or a socket: the same peers and projects give
the same dict, key for key, so Traefik sees no change (and does nothing) while nothing changed.

A servo serves when it is `running`, its health check has not said `healthy: false`, and its
node answers (`SERVING_NODE_STATUSES`). Anything else (failed, stopped, starting, restarting,
a node suspect, dead, left or in its restart grace) is out of rotation at the next poll. What
gossip has not noticed yet (a container that died a moment ago, a host that just vanished) the
retry middleware covers: Traefik retries a request that could not connect on another server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

# A draining node still runs its servos until their replacements run elsewhere (the drain starts
# replacements first and stops the old servo last, which changes its state): taking them out at
# the start of a drain would leave a project with nothing to serve for the length of the drain.
SERVING_NODE_STATUSES = frozenset({"alive", "draining"})
SERVING_SERVO_STATE = "running"

ENTRYPOINT = "web"
RETRY_MIDDLEWARE = "shoal-retry"
# Traefik retries only when no byte of a response was written (a refused or reset connect), so a
# retry never repeats a request a servo has started to answer. Three tries: the first server and
# two others (round robin picks the next on each try).
RETRY_ATTEMPTS = 3
TRANSPORT = "shoal-transport"
# A servo on a host that vanished (no RST, no ICMP) would otherwise hold a request for Traefik's
# 30 s default dial timeout before the retry; on a LAN a connect takes well under a millisecond.
DIAL_TIMEOUT = "2s"
FALLBACK = "shoal-fallback"
FALLBACK_REWRITE = "shoal-fallback-path"
FALLBACK_PRIORITY = 1  # lowest: any Host(...) rule is longer, hence of higher priority


class ServoLike(Protocol):
    @property
    def servo_id(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def endpoints(self) -> Sequence[Mapping[str, Any]]: ...


class PeerLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def servos(self) -> Sequence[ServoLike]: ...


class ProjectLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def ports(self) -> Sequence[int]: ...


def project_host(project: str, domain: str) -> str:
    return f"{project}.{domain}"


def project_of_host(host: str, domain: str) -> str | None:
    """The project a `Host:` header names, or None when it is not `<label>.<domain>`."""
    name = host.strip().lower().rstrip(".")
    if name.startswith("["):  # an IPv6 literal: never a project
        return None
    name = name.rsplit(":", 1)[0] if ":" in name else name
    suffix = "." + domain.strip().lower().strip(".")
    if not name.endswith(suffix):
        return None
    label = name[: -len(suffix)]
    return label if label and "." not in label else None


def serving(servo: ServoLike, node_status: str) -> bool:
    """Whether a servo takes traffic. `healthy` is read if the servo carries it: `None` (no
    health check, or none run yet) does not take a running servo out, only `False` does."""
    return (
        servo.state == SERVING_SERVO_STATE
        and getattr(servo, "healthy", None) is not False
        and node_status in SERVING_NODE_STATUSES
    )


def backend_urls(project: ProjectLike, peers: Iterable[PeerLike]) -> list[str]:
    """The URLs of the project's serving servos, for its first port, sorted and unique."""
    if not project.ports:
        return []
    port = int(project.ports[0])
    urls = set()
    for peer in peers:
        for servo in peer.servos:
            if servo.project != project.name or not serving(servo, peer.status):
                continue
            for e in servo.endpoints:
                if int(e.get("container_port", 0)) == port and int(e.get("host_port", 0)) > 0:
                    urls.add(f"http://{_url_host(str(e.get('host', '')))}:{int(e['host_port'])}")
    return sorted(urls)


def ingress_config(
    peers: Iterable[PeerLike],
    projects: Iterable[ProjectLike],
    domain: str,
    not_found_url: str,
) -> dict[str, Any]:
    """Traefik's dynamic configuration (its HTTP provider's JSON) for this cluster.

    `not_found_url` is this agent's fallback route (`http://host:port/path`): the catch-all
    router sends everything else there, with the path replaced (the original is kept in
    `X-Replaced-Path`) and the Host header passed, so the agent can say which project is
    missing. A project with no serving servo gets no router: the fallback says why."""
    peers = list(peers)
    target = urlsplit(not_found_url)
    if target.scheme not in ("http", "https") or not target.netloc:
        raise ValueError(f"not_found_url must be an absolute http URL, not {not_found_url!r}")
    routers: dict[str, Any] = {}
    services: dict[str, Any] = {}
    for project in sorted(projects, key=lambda p: p.name):
        urls = backend_urls(project, peers)
        if not urls:
            continue
        key = f"project-{project.name}"
        routers[key] = {
            "entryPoints": [ENTRYPOINT],
            "rule": f"Host(`{project_host(project.name, domain)}`)",
            "service": key,
            "middlewares": [RETRY_MIDDLEWARE],
        }
        services[key] = {
            "loadBalancer": {
                "servers": [{"url": u} for u in urls],
                "passHostHeader": True,
                "serversTransport": TRANSPORT,
            }
        }
    routers[FALLBACK] = {
        "entryPoints": [ENTRYPOINT],
        "rule": "PathPrefix(`/`)",
        "priority": FALLBACK_PRIORITY,
        "service": FALLBACK,
        "middlewares": [FALLBACK_REWRITE],
    }
    services[FALLBACK] = {
        "loadBalancer": {
            "servers": [{"url": f"{target.scheme}://{target.netloc}"}],
            "passHostHeader": True,
        }
    }
    return {
        "http": {
            "routers": routers,
            "services": services,
            "middlewares": {
                RETRY_MIDDLEWARE: {"retry": {"attempts": RETRY_ATTEMPTS}},
                FALLBACK_REWRITE: {"replacePath": {"path": target.path or "/"}},
            },
            "serversTransports": {TRANSPORT: {"forwardingTimeouts": {"dialTimeout": DIAL_TIMEOUT}}},
        }
    }


def fallback_answer(
    host: str, domain: str, projects: Iterable[ProjectLike]
) -> tuple[int, dict[str, str]]:
    """What the ingress answers a request no project router took: 404 for a host that names no
    project, 503 for a project that has nothing to serve right now (and why)."""
    name = project_of_host(host, domain)
    if name is None:
        return 404, {
            "error": "not_found",
            "detail": f"no project at host {host!r}: projects are at <project>.{domain}",
        }
    project = next((p for p in projects if p.name == name), None)
    if project is None:
        return 404, {"error": "not_found", "detail": f"no project named {name} on this cluster"}
    if not project.ports:
        return 404, {"error": "not_found", "detail": f"project {name} publishes no port"}
    return 503, {
        "error": "unavailable",
        "detail": f"project {name} has no healthy running servo on port {project.ports[0]} now",
    }


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
