"""`shoal deploy` follows a rollout until it ends and says how it ended in its exit code."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from rich.console import Console

import api.commands as commands


def project(state: str | None, generation: int = 2, healthy: int = 0) -> dict[str, Any]:
    rollout = (
        None
        if state is None
        else {
            "generation": 2,
            "state": state,
            "updated": healthy,
            "healthy": healthy,
            "replicas": 3,
            "reason": "servo web-2-0-x on n1 failed" if state != "succeeded" else "",
        }
    )
    return {
        "name": "web",
        "spec": {"replicas": 3},
        "generation": generation,
        "rollout": rollout,
        "servos": [],
        "deploy": {"missing": 0, "created": [], "removed": [], "failures": []},
        "complete": True,
    }


class FakeClient:
    """The API as a rollout goes: each read a step further."""

    def __init__(self, steps: list[dict[str, Any]]) -> None:
        self.steps = steps
        self.reads = 0

    def deploy(self, name: str, spec: dict[str, Any], key: str | None) -> dict[str, Any]:
        return self.steps[0]

    def project(self, name: str) -> dict[str, Any]:
        self.reads += 1
        return self.steps[min(self.reads, len(self.steps) - 1)]


def args(**kw: Any) -> argparse.Namespace:
    base = {
        "project": "web",
        "image": "img",
        "replicas": 3,
        "memory": "64M",
        "cpus": "0.1",
        "ports": [],
        "env": [],
        "spread": "region",
        "idempotency_key": None,
        "json": False,
        "detach": False,
        "servo_command": None,
        "health": None,
    }
    return argparse.Namespace(**{**base, **kw})


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands.time, "sleep", lambda s: None)


def test_it_follows_a_rollout_to_success_and_exits_0() -> None:
    client = FakeClient(
        [project("in_progress"), project("in_progress", healthy=1), project("succeeded", healthy=3)]
    )
    assert commands._deploy(client, args(), Console(quiet=True)) == 0  # type: ignore[arg-type]
    assert client.reads == 2


@pytest.mark.parametrize("end", ["rolled_back", "failed"])
def test_a_failed_or_rolled_back_rollout_exits_non_zero(end: str) -> None:
    after = 1 if end == "rolled_back" else 2  # a rollback desires the old generation again
    client = FakeClient([project("in_progress"), project(end, generation=after)])
    assert commands._deploy(client, args(), Console(quiet=True)) == 1  # type: ignore[arg-type]


def test_detach_returns_at_once() -> None:
    client = FakeClient([project("in_progress"), project("succeeded", healthy=3)])
    assert commands._deploy(client, args(detach=True), Console(quiet=True)) == 0  # type: ignore[arg-type]
    assert client.reads == 0
