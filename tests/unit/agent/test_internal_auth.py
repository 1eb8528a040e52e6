"""The sealed agent-to-agent channel: destination and nonce bound in, replays refused."""

from __future__ import annotations

import pytest

from gossip.crypto import Keyring
from node.internal_auth import (
    MAX_SKEW_MS,
    AuthError,
    ReplayWindow,
    asgi_path,
    open_request,
    open_response,
    seal_request,
    seal_response,
)

K1, K2, WRONG = b"1" * 32, b"2" * 32, b"x" * 32
NOW = 5_000_000
BODY = b'{"spec": {"env": {"PASSWORD": "hunter2"}}}'


def _open(
    ring: Keyring,
    window: ReplayWindow,
    me: str,
    header: str,
    sealed: bytes,
    now: int = NOW,
    method: str = "POST",
    path: str = "/internal/servos",
) -> bytes:
    return open_request(ring, window, me, header, now, method, path, sealed)[1]


def test_a_sealed_request_opens_on_its_destination_with_any_installed_key() -> None:
    header, _, sealed = seal_request(Keyring([K2]), "a", NOW, "POST", "/internal/servos", BODY)
    assert b"hunter2" not in sealed  # the body crosses the network encrypted
    assert _open(Keyring([K1, K2]), ReplayWindow(), "a", header, sealed, NOW + 500) == BODY


def test_a_request_for_one_agent_does_not_open_on_another() -> None:
    """The issue's repro: a captured drain for A replayed to B 20 s later drained B."""
    ring = Keyring([K1])
    header, _, sealed = seal_request(ring, "a", NOW, "POST", "/internal/drain", b"{}")
    with pytest.raises(AuthError) as err:
        _open(ring, ReplayWindow(), "b", header, sealed, NOW + 20_000, path="/internal/drain")
    assert err.value.reason == "bad_seal"


def test_a_replay_to_the_same_agent_is_refused_within_the_window_and_by_time_after() -> None:
    ring, window = Keyring([K1]), ReplayWindow()
    header, _, sealed = seal_request(ring, "a", NOW, "POST", "/internal/drain", b"{}")
    assert _open(ring, window, "a", header, sealed, path="/internal/drain") == b"{}"
    with pytest.raises(AuthError) as err:
        _open(ring, window, "a", header, sealed, NOW + 20_000, path="/internal/drain")
    assert err.value.reason == "replayed"
    with pytest.raises(AuthError) as err:
        _open(ring, window, "a", header, sealed, NOW + MAX_SKEW_MS + 1, path="/internal/drain")
    assert err.value.reason == "stale"


def test_tampering_wrong_key_other_route_and_garbage_are_refused() -> None:
    ring = Keyring([K1])
    header, _, sealed = seal_request(ring, "a", NOW, "POST", "/internal/servos", BODY)
    cases = [
        (Keyring([WRONG]), header, sealed, "POST", "/internal/servos"),
        (ring, header, sealed[:-1] + bytes([sealed[-1] ^ 1]), "POST", "/internal/servos"),
        (ring, header, sealed, "POST", "/internal/drain"),
        (ring, header, sealed, "GET", "/internal/servos"),
        (ring, f"{NOW + 1}:{header.split(':')[1]}", sealed, "POST", "/internal/servos"),
    ]
    for r, h, s, m, p in cases:
        with pytest.raises(AuthError):
            _open(r, ReplayWindow(), "a", h, s, method=m, path=p)
    for bad in ("", "abc", "12:", ":ff", "x:y", f"{NOW}:" + "g" * 32, "١٢:" + "a" * 32):
        with pytest.raises(AuthError) as err:
            _open(ring, ReplayWindow(), "a", bad, sealed)
        assert err.value.reason in ("missing", "malformed")


def test_a_forgery_does_not_enter_the_replay_window() -> None:
    ring, window = Keyring([K1]), ReplayWindow()
    header, _, sealed = seal_request(ring, "a", NOW, "POST", "/internal/servos", BODY)
    with pytest.raises(AuthError):
        _open(ring, window, "a", header, b"\xa8" + b"0" * 40)
    assert len(window) == 0
    assert _open(ring, window, "a", header, sealed) == BODY  # the genuine one still opens


def test_the_window_is_bounded_and_fails_closed_then_forgets_expired_nonces() -> None:
    window = ReplayWindow(max_entries=2)
    assert window.admit("n1", NOW, NOW) is None
    assert window.admit("n2", NOW, NOW) is None
    assert window.admit("n3", NOW, NOW) == "replay_window_full"
    assert window.admit("n3", NOW + MAX_SKEW_MS + 2, NOW + MAX_SKEW_MS + 2) is None
    assert len(window) == 1


def test_an_answer_opens_only_for_its_request_and_status() -> None:
    ring = Keyring([K1])
    sealed = seal_response(ring, "n" * 32, 200, b'{"ok": true}')
    assert open_response(ring, "n" * 32, 200, sealed) == b'{"ok": true}'
    for nonce, status in (("m" * 32, 200), ("n" * 32, 409)):
        with pytest.raises(ValueError):
            open_response(ring, nonce, status, sealed)


def test_the_path_comes_from_the_asgi_raw_path_with_its_query() -> None:
    assert asgi_path(b"/internal/state", "/ignored", b"") == "/internal/state"
    assert asgi_path(b"/internal/state?x=1", "/ignored", b"x=1") == "/internal/state?x=1"
    assert asgi_path(None, "/internal/state", b"a=b") == "/internal/state?a=b"
