"""The health check value and the pure verdict of node/health.py, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from node.health import (
    HealthCheck,
    ProbeHistory,
    ProbeVerdict,
    check_url,
    on_probe,
    probe_address,
)
from node.runtime import ServoSpec

HTTP = {"type": "http", "port": 8080, "path": "/", "interval_s": 2, "timeout_s": 1}


def test_defaults_and_wire_round_trip() -> None:
    check = HealthCheck.from_wire({"type": "http", "port": 8080})
    assert check == HealthCheck("http", 8080, "/", 2.0, 1.0, 3, 5.0)
    assert check.to_wire() == {
        "type": "http",
        "port": 8080,
        "path": "/",
        "interval_s": 2.0,
        "timeout_s": 1.0,
        "threshold": 3,
        "grace_s": 5.0,
    }
    assert HealthCheck.from_wire(check.to_wire()) == check
    tcp = HealthCheck.from_wire({"type": "tcp", "port": 5432, "threshold": 1, "grace_s": 0})
    assert tcp is not None and (tcp.type, tcp.threshold, tcp.grace_s) == ("tcp", 1, 0.0)


@pytest.mark.parametrize("raw", [None, {"type": "none"}, {"type": "none", "port": 0}])
def test_none_is_no_check(raw: dict[str, Any] | None) -> None:
    assert HealthCheck.from_wire(raw) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"port": 8080}, "health.type is required"),
        ({"type": "grpc", "port": 8080}, "health.type must be one of none, http, tcp"),
        ({"type": 1, "port": 8080}, "health.type must be one of"),
        ({"type": "http"}, "health.port must be a container port from 1 to 65535 (got 0)"),
        ({"type": "http", "port": 70000}, "health.port must be a container port"),
        ({"type": "http", "port": "8080"}, "health.port must be an integer (got '8080')"),
        ({"type": "http", "port": True}, "health.port must be an integer"),
        ({**HTTP, "path": "nope"}, "health.path must start with '/'"),
        ({**HTTP, "path": "/a b"}, "without spaces"),
        ({**HTTP, "path": "/" + "x" * 2000}, "at most 1024"),
        ({**HTTP, "path": 3}, "health.path must be a string"),
        ({**HTTP, "interval_s": 0}, "health.interval_s must be from 0.1 to 3600 (got 0.0)"),
        ({**HTTP, "interval_s": "2"}, "health.interval_s must be a number of seconds"),
        ({**HTTP, "timeout_s": 0}, "health.timeout_s must be above 0"),
        ({**HTTP, "timeout_s": 3}, "at most interval_s (2.0)"),
        ({**HTTP, "threshold": 0}, "health.threshold must be from 1 to 100 (got 0)"),
        ({**HTTP, "threshold": 2.5}, "health.threshold must be an integer"),
        ({**HTTP, "grace_s": -1}, "health.grace_s must be from 0 to 3600"),
        ({**HTTP, "retries": 3}, "health.retries is not a field"),
    ],
)
def test_bad_checks_are_refused_by_name(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        HealthCheck.from_wire(raw)


def test_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError, match="health must be an object or null"):
        HealthCheck.from_wire([1, 2])  # type: ignore[arg-type]


def test_a_servo_spec_carries_its_check_on_the_wire() -> None:
    check = HealthCheck("http", 8080, "/ready", 1.0, 0.5, 2, 3.0)
    spec = ServoSpec("s1", "web", "img", 64, 100, ports=(8080,), health=check)
    wire = spec.to_wire()
    assert wire["health"] == check.to_wire()
    assert ServoSpec.from_wire(wire) == spec
    # without a check the wire is exactly as before (no key), and absent reads back as None
    plain = ServoSpec("s2", "web", "img", 64, 100, ports=(8080,))
    assert "health" not in plain.to_wire()
    assert ServoSpec.from_wire(plain.to_wire()).health is None
    # a check of type "none" is no check
    assert ServoSpec("s3", "web", "img", 64, 100, health=HealthCheck()).health is None
    assert ServoSpec.from_wire({**plain.to_wire(), "health": {"type": "none"}}) == plain


def test_a_check_must_look_at_a_published_port() -> None:
    with pytest.raises(
        ValueError, match=r"health.port 9000 is not one of the servo's ports \[8080\]"
    ):
        ServoSpec("s1", "web", "img", 64, 100, ports=(8080,), health=HealthCheck("tcp", 9000))


CHECK = HealthCheck("http", 8080, threshold=3, grace_s=5.0)
NEW = ProbeHistory()
PASSED = ProbeHistory(passed=True)


@pytest.mark.parametrize(
    ("history", "passed", "since_s", "verdict"),
    [
        # the first pass, at any time, makes it healthy; later passes change nothing
        (NEW, True, 0.0, ProbeVerdict(PASSED, "healthy")),
        (ProbeHistory(False, 2), True, 9.0, ProbeVerdict(PASSED, "healthy")),
        (PASSED, True, 100.0, ProbeVerdict(PASSED, "none")),
        # a pass ends a run of failures
        (ProbeHistory(True, 2), True, 100.0, ProbeVerdict(PASSED, "none")),
        # failures within the grace do not count, before or after a pass
        (NEW, False, 0.0, ProbeVerdict(NEW, "none")),
        (NEW, False, 4.999, ProbeVerdict(NEW, "none")),
        (PASSED, False, 1.0, ProbeVerdict(PASSED, "none")),
        # after it, they count, and the threshold-th in a row is the verdict
        (NEW, False, 5.0, ProbeVerdict(ProbeHistory(False, 1), "none")),
        (ProbeHistory(True, 1), False, 50.0, ProbeVerdict(ProbeHistory(True, 2), "none")),
        (ProbeHistory(True, 2), False, 50.0, ProbeVerdict(ProbeHistory(True, 3), "unhealthy")),
        (ProbeHistory(False, 2), False, 7.0, ProbeVerdict(ProbeHistory(False, 3), "unhealthy")),
    ],
)
def test_on_probe(
    history: ProbeHistory, passed: bool, since_s: float, verdict: ProbeVerdict
) -> None:
    assert on_probe(CHECK, history, passed, since_s) == verdict


def run(check: HealthCheck, answers: list[bool]) -> list[str]:
    """Probes every interval from the container's start; the actions taken."""
    history, actions = ProbeHistory(), []
    for i, passed in enumerate(answers):
        verdict = on_probe(check, history, passed, i * check.interval_s)
        history = verdict.history
        actions.append(verdict.action)
        if verdict.action == "unhealthy":
            break
    return actions


@pytest.mark.parametrize(
    ("threshold", "answers", "actions"),
    [
        # never answers: 0, 2, 4 s are in the grace; 6, 8, 10 s are three in a row
        (3, [False] * 10, ["none"] * 5 + ["unhealthy"]),
        # an intermittent failure never reaches three in a row
        (3, [True, False, False, True, False, False, True], ["healthy"] + ["none"] * 6),
        (1, [True, True, True, False], ["healthy", "none", "none", "unhealthy"]),
    ],
)
def test_sequences(threshold: int, answers: list[bool], actions: list[str]) -> None:
    assert run(HealthCheck("tcp", 1, threshold=threshold), answers) == actions


def test_where_a_probe_goes() -> None:
    assert probe_address("0.0.0.0") == "127.0.0.1"
    assert probe_address("::") == "::1"
    assert probe_address("10.0.0.5") == "10.0.0.5"
    check = HealthCheck("http", 8080, "/healthz?full=1")
    assert check_url(check, "127.0.0.1", 41000) == "http://127.0.0.1:41000/healthz?full=1"
    assert check_url(check, "::1", 41000) == "http://[::1]:41000/healthz?full=1"
