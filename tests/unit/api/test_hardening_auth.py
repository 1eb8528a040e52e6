"""Issue 13, point 1: the API guard (`api.auth.authorize`) decided on raw ASGI scopes, one
finding of the issue per test."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from api.auth import (
    ApiPolicy,
    TokenFileError,
    add_token_arguments,
    authorize,
    exposed_without_token,
    token_settings,
)
from node.config import AgentConfig

WRITE = "w-secret"
READ = "r-secret"


def policy(token: str | None = WRITE, read: str | None = READ) -> ApiPolicy:
    return ApiPolicy.from_config(
        AgentConfig(name="a1", bind="127.0.0.1", api_token=token, api_read_token=read)
    )


def scope(
    method: str = "GET",
    path: str = "/v1/projects/web",
    host: str = "127.0.0.1:7070",
    query: str = "",
    **headers: str,
) -> dict[str, object]:
    raw = [(b"host", host.encode())] + [
        (k.replace("_", "-").encode(), v.encode("latin-1")) for k, v in headers.items()
    ]
    return {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query.encode(),
        "headers": raw,
    }


def status(p: ApiPolicy, s: dict[str, object]) -> int:
    refusal = authorize(p, s)
    return 200 if refusal is None else refusal.status


@pytest.mark.parametrize("path", ["/v1/projects/web", "/metrics", "/openapi.json", "/docs"])
def test_reads_need_the_token(path: str) -> None:
    # finding: with --api-token set, reads were open (env values, metrics, the schema)
    assert status(policy(), scope(path=path)) == 401
    assert status(policy(), scope(path=path, authorization=f"Bearer {WRITE}")) == 200
    assert status(policy(), scope(path=path, authorization=f"Bearer {READ}")) == 200


def test_health_stays_open() -> None:
    assert status(policy(), scope(path="/v1/health")) == 200


def test_read_token_cannot_write() -> None:
    put = scope("PUT", authorization=f"Bearer {READ}", content_type="application/json")
    refusal = authorize(policy(), put)
    assert refusal is not None and (refusal.status, refusal.error) == (403, "read_only_token")
    put_ok = scope("PUT", authorization=f"Bearer {WRITE}", content_type="application/json")
    assert status(policy(), put_ok) == 200


def test_cookie_and_query_token_for_reads_only() -> None:
    assert status(policy(), scope(cookie=f"shoal_token={WRITE}")) == 200
    assert status(policy(), scope(path="/v1/events", query=f"token={READ}")) == 200
    assert status(policy(), scope(query="token=wrong")) == 401
    # a cookie is what a CSRF rides on; a query token ends up in logs: never for writes
    assert (
        status(policy(), scope("POST", path="/v1/projects/web/stop", cookie=f"shoal_token={WRITE}"))
        == 401
    )
    assert (
        status(policy(), scope("POST", path="/v1/projects/web/stop", query=f"token={WRITE}")) == 401
    )


def test_csrf_from_a_foreign_origin_is_refused_even_without_a_token() -> None:
    # finding: POST .../stop with Origin: http://evil.example and text/plain -> 200
    open_agent = policy(token=None)
    evil = scope("POST", path="/v1/projects/web/stop", origin="http://evil.example")
    refusal = authorize(open_agent, evil)
    assert refusal is not None and (refusal.status, refusal.error) == (403, "forbidden_origin")
    assert status(open_agent, scope("POST", origin="null")) == 403
    assert status(open_agent, scope("POST", sec_fetch_site="cross-site")) == 403
    assert status(open_agent, scope("POST", origin="http://127.0.0.1:7070")) == 200
    # reads from another origin are the browser's business (CORS keeps their answer from it)
    assert status(open_agent, scope("GET", origin="http://evil.example")) == 200


def test_non_json_writes_are_refused() -> None:
    p = policy(token=None)
    plain = scope("POST", content_type="text/plain", content_length="3")
    refusal = authorize(p, plain)
    assert refusal is not None and (refusal.status, refusal.error) == (
        415,
        "unsupported_media_type",
    )
    form = scope("PUT", content_type="application/x-www-form-urlencoded", content_length="3")
    assert status(p, form) == 415
    assert status(p, scope("PUT", content_length="3")) == 415  # a body must say what it is
    assert (
        status(p, scope("PUT", content_type="application/json; charset=utf-8", content_length="3"))
        == 200
    )
    assert status(p, scope("POST", content_length="0")) == 200  # no body: nothing to type


def test_host_check_stops_dns_rebinding() -> None:
    p = policy(token=None)
    refusal = authorize(p, scope(host="evil.example:7070"))
    assert refusal is not None and (refusal.status, refusal.error) == (400, "bad_host")
    for ok in ("localhost:7070", "127.0.0.1", "[::1]:7070", "a1:7070", "A1"):
        assert status(p, scope(host=ok)) == 200, ok
    listed = ApiPolicy.from_config(AgentConfig(name="a1", api_allowed_hosts=("api.example",)))
    assert status(listed, scope(host="api.example:443")) == 200
    assert status(listed, scope("POST", host="api.example", origin="https://api.example")) == 200
    anyhost = ApiPolicy.from_config(AgentConfig(name="a1", api_allowed_hosts=("*",)))
    assert status(anyhost, scope(host="whatever.example")) == 200


def test_agent_routes_keep_their_own_checks() -> None:
    # /internal/ is signed with the cluster key; /ingress/ carries the proxy's token and the
    # client's Host (Traefik passes it through)
    p = policy()
    assert authorize(p, scope("POST", path="/internal/projects", host="10.0.0.9:7070")) is None
    assert authorize(p, scope(path="/ingress/fallback", host="web.shoal.localhost")) is None


def test_non_ascii_authorization_is_a_401_not_a_500() -> None:
    assert status(policy(), scope(authorization="Bearer \xe9\xff")) == 401


def test_token_from_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    add_token_arguments(parser)
    (tmp_path / "t").write_text(" file-token \n")
    settings = token_settings(parser.parse_args(["--api-token-file", str(tmp_path / "t")]))
    assert settings["api_token"] == "file-token"
    monkeypatch.setenv("SHOAL_API_TOKEN", "env-token")
    monkeypatch.setenv("SHOAL_API_READ_TOKEN", "env-read")
    parser = argparse.ArgumentParser()
    add_token_arguments(parser)
    settings = token_settings(parser.parse_args([]))
    assert (settings["api_token"], settings["api_read_token"]) == ("env-token", "env-read")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(TokenFileError):
        token_settings(parser.parse_args(["--api-token-file", str(tmp_path / "empty")]))


def test_unprotected_exposure_is_detected() -> None:
    assert exposed_without_token(AgentConfig(bind="0.0.0.0", api_bind="0.0.0.0"))
    # gossip on every address, the API on loopback (the CLI's default): not exposed
    assert not exposed_without_token(AgentConfig(bind="0.0.0.0"))
    assert exposed_without_token(AgentConfig(bind="10.1.2.3"))
    assert not exposed_without_token(AgentConfig(bind="0.0.0.0", api_token="t"))
    assert not exposed_without_token(AgentConfig(bind="127.0.0.1"))
    assert not exposed_without_token(AgentConfig(bind="::1"))
