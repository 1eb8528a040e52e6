"""The ingress routing table (pure) and its supervisor's small decisions; one Trio test runs the
supervisor against a fake proxy binary to check restart-with-backoff and stop-on-cancel."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from node.cluster import Peer, ServoEntry
from node.config import AgentConfig
from node.ingress import (
    FALLBACK,
    RETRY_ATTEMPTS,
    RETRY_MIDDLEWARE,
    backend_urls,
    fallback_answer,
    ingress_config,
    project_of_host,
)
from node.ingress_proxy import (
    RESTART_BACKOFF_S,
    STABLE_RUN_S,
    TOKEN_HEADER,
    IngressProxy,
    ingress_token,
    local_client,
    next_backoff_s,
    static_config,
    token_ok,
)
from node.projects import Project
from tests.integration.inproc import wait_for

DOMAIN = "shoal.localhost"
FALLBACK_URL = "http://127.0.0.1:7070/ingress/fallback"


def servo(
    sid: str,
    project: str = "web",
    node: str = "a",
    state: str = "running",
    port: int = 31000,
    container_port: int = 8080,
    host: str = "10.0.0.1",
) -> ServoEntry:
    return ServoEntry(
        sid,
        project,
        node,
        state,
        ({"container_port": container_port, "host": host, "host_port": port},),
    )


def peer(name: str, *servos: Any, status: str = "alive") -> Peer:
    return Peer(name, status, "eu", "eu-1", f"{name}:7946", "", 1024, 1024, 1000, 1000, servos)


def project(name: str = "web", ports: Sequence[int] = (8080,)) -> Project:
    return Project(name, "img", 2, 64, 100, ports=tuple(ports))


@attrs.frozen
class HealthServo:
    """A servo carrying the health verdict the host is about to report."""

    servo_id: str
    project: str
    state: str
    endpoints: Sequence[Mapping[str, Any]]
    healthy: bool | None


def urls(cfg: dict[str, Any], name: str = "web") -> list[str]:
    service = cfg["http"]["services"].get(f"project-{name}")
    return [s["url"] for s in service["loadBalancer"]["servers"]] if service else []


def test_routes_a_project_host_to_its_running_servos_on_every_node_with_retry() -> None:
    peers = [peer("a", servo("s1", port=31001)), peer("b", servo("s2", host="10.0.0.2"))]
    cfg = ingress_config(peers, [project()], DOMAIN, FALLBACK_URL)
    router = cfg["http"]["routers"]["project-web"]
    assert router["rule"] == "Host(`web.shoal.localhost`)"
    assert router["middlewares"] == [RETRY_MIDDLEWARE]
    assert cfg["http"]["middlewares"][RETRY_MIDDLEWARE] == {"retry": {"attempts": RETRY_ATTEMPTS}}
    assert urls(cfg) == ["http://10.0.0.1:31001", "http://10.0.0.2:31000"]


@pytest.mark.parametrize(
    ("state", "node_status"),
    [
        ("failed", "alive"),
        ("stopped", "alive"),
        ("starting", "alive"),
        ("restarting", "alive"),
        ("running", "dead"),
        ("running", "suspect"),
        ("running", "left"),
        ("running", "restarting"),
    ],
)
def test_a_servo_not_running_or_on_a_node_that_does_not_answer_is_out(
    state: str, node_status: str
) -> None:
    peers = [peer("a", servo("s1", port=31001)), peer("b", servo("s2", state=state), status="x")]
    peers[1] = attrs.evolve(peers[1], status=node_status)
    cfg = ingress_config(peers, [project()], DOMAIN, FALLBACK_URL)
    assert urls(cfg) == ["http://10.0.0.1:31001"]


def test_a_draining_nodes_servos_serve_until_their_replacements_run() -> None:
    cfg = ingress_config(
        [peer("a", servo("s1"), status="draining")], [project()], DOMAIN, FALLBACK_URL
    )
    assert urls(cfg) == ["http://10.0.0.1:31000"]


@pytest.mark.parametrize(("healthy", "serves"), [(True, True), (None, True), (False, False)])
def test_only_an_unhealthy_verdict_takes_a_running_servo_out(
    healthy: bool | None, serves: bool
) -> None:
    s = HealthServo(
        "s1", "web", "running", ({"container_port": 8080, "host": "h", "host_port": 1},), healthy
    )
    assert backend_urls(project(), [peer("a", s)]) == (["http://h:1"] if serves else [])


def test_the_first_listed_port_is_the_one_routed() -> None:
    s = ServoEntry(
        "s1",
        "web",
        "a",
        "running",
        (
            {"container_port": 9090, "host": "h", "host_port": 2},
            {"container_port": 8080, "host": "h", "host_port": 1},
        ),
    )
    assert backend_urls(project(ports=(8080, 9090)), [peer("a", s)]) == ["http://h:1"]
    assert backend_urls(project(ports=(9090, 8080)), [peer("a", s)]) == ["http://h:2"]
    assert backend_urls(project(ports=()), [peer("a", s)]) == []


def test_other_projects_servos_and_duplicates_are_not_mixed_in() -> None:
    peers = [
        peer("a", servo("s1"), servo("o1", project="other", port=32000)),
        peer("a", servo("s1")),
    ]
    assert urls(ingress_config(peers, [project()], DOMAIN, FALLBACK_URL)) == [
        "http://10.0.0.1:31000"
    ]


def test_a_project_with_nothing_to_serve_gets_no_router_and_the_catch_all_is_lowest() -> None:
    cfg = ingress_config(
        [peer("a", servo("s1", state="failed"))], [project()], DOMAIN, FALLBACK_URL
    )
    routers = cfg["http"]["routers"]
    assert set(routers) == {FALLBACK}
    assert routers[FALLBACK]["priority"] == 1
    assert routers[FALLBACK]["rule"] == "PathPrefix(`/`)"
    fallback = cfg["http"]["services"][FALLBACK]["loadBalancer"]["servers"]
    assert fallback == [{"url": "http://127.0.0.1:7070"}]
    rewrite = cfg["http"]["middlewares"][routers[FALLBACK]["middlewares"][0]]
    assert rewrite == {"replacePath": {"path": "/ingress/fallback"}}


def test_same_inputs_give_the_same_table_so_traefik_sees_no_change() -> None:
    a = [peer("b", servo("s2", host="10.0.0.2")), peer("a", servo("s1"))]
    one = ingress_config(a, [project("z"), project()], DOMAIN, FALLBACK_URL)
    two = ingress_config(list(reversed(a)), [project(), project("z")], DOMAIN, FALLBACK_URL)
    assert json.dumps(one, sort_keys=False) == json.dumps(two, sort_keys=False)


def test_a_relative_fallback_url_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        ingress_config([], [], DOMAIN, "/ingress/fallback")


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("web.shoal.localhost", "web"),
        ("WEB.Shoal.Localhost:8000", "web"),
        ("web.shoal.localhost.", "web"),
        ("a.b.shoal.localhost", None),
        ("shoal.localhost", None),
        (".shoal.localhost", None),
        ("localhost:8000", None),
        ("[::1]:80", None),
        ("", None),
    ],
)
def test_host_header_to_project(host: str, name: str | None) -> None:
    assert project_of_host(host, DOMAIN) == name


def test_fallback_answers_unknown_host_404_and_known_project_without_servo_503() -> None:
    live = [project(), project("quiet", ports=())]
    assert fallback_answer("nope.shoal.localhost", DOMAIN, live) == (
        404,
        {"error": "not_found", "detail": "no project named nope on this cluster"},
    )
    status, body = fallback_answer("example.com", DOMAIN, live)
    assert (status, body["error"]) == (404, "not_found")
    assert fallback_answer("quiet.shoal.localhost", DOMAIN, live)[0] == 404
    status, body = fallback_answer("web.shoal.localhost", DOMAIN, live)
    assert (status, body["error"]) == (503, "unavailable")


# --- the supervisor's decisions -------------------------------------------------------------


def test_backoff_doubles_on_quick_deaths_up_to_a_cap_and_resets_after_a_stable_run() -> None:
    first, cap = RESTART_BACKOFF_S
    waits = [first]
    for _ in range(12):
        waits.append(next_backoff_s(waits[-1], ran_s=1.0))
    assert waits[:3] == [first, first * 2, first * 4]
    assert max(waits) == cap
    assert next_backoff_s(cap, ran_s=STABLE_RUN_S) == first


def test_static_config_listens_on_bind_pulls_with_the_token_and_exposes_nothing_else(
    tmp_path: Path,
) -> None:
    cfg = AgentConfig(name="n", bind="10.1.2.3", api_port=7070, ingress_port=8000)
    static = static_config(cfg, "tok")
    assert static["entryPoints"]["web"]["address"] == "10.1.2.3:8000"
    http = static["providers"]["http"]
    assert http["endpoint"] == "http://10.1.2.3:7070/ingress/config"
    assert http["pollInterval"] == "1s"
    assert http["headers"] == {TOKEN_HEADER: "tok"}
    assert "api" not in static and "ping" not in static and "metrics" not in static
    wildcard = static_config(attrs.evolve(cfg, bind="0.0.0.0"), "tok")
    assert wildcard["providers"]["http"]["endpoint"].startswith("http://127.0.0.1:7070/")


def test_the_token_is_per_agent_and_only_local_clients_are_believed() -> None:
    a, b = AgentConfig(name="a", bind="10.0.0.5"), AgentConfig(name="b")
    assert ingress_token(a) != ingress_token(b)
    assert token_ok(a, ingress_token(a)) and not token_ok(a, ingress_token(b))
    assert not token_ok(a, None)
    assert local_client(a, "127.0.0.1") and local_client(a, "::1") and local_client(a, "10.0.0.5")
    assert not local_client(a, "10.0.0.6") and not local_client(a, None)


def _fake_proxy(tmp_path: Path, script: str) -> Path:
    path = tmp_path / "fake-traefik"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


async def test_supervisor_restarts_a_dying_proxy_and_kills_it_on_cancel(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # dies at once twice, then stays up: the supervisor must start it three times
    script = f"echo run >> {runs}\nif [ $(wc -l < {runs}) -ge 3 ]; then exec sleep 60; fi\nexit 3\n"
    cfg = AgentConfig(name="n", data_dir=tmp_path / "data", ingress_port=1)
    proxy = IngressProxy(cfg, binary=_fake_proxy(tmp_path, script))
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        # the third start counts once the supervisor spawned it; its own line in the file
        # comes when the shell runs, which a busy machine may delay past the cancel below
        await wait_for(
            "three starts of the proxy, each recorded by the proxy itself",
            lambda: proxy.starts >= 3 and runs.exists() and runs.read_text().count("run") >= 3,
            timeout_s=10,
        )
        pid = int(proxy.pid_path.read_text())
        assert os.stat(proxy.static_path).st_mode & 0o777 == 0o600
        nursery.cancel_scope.cancel()
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(pid, 0)  # raises once the process is gone (reaped by trio)
            await trio.sleep(0.02)
    assert runs.read_text().count("run") == 3
