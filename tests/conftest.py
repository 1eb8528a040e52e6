"""Shared fixtures: a unique run id for labels and names, Docker access with CI's fail-not-skip
rule, free ports, and cleanup of everything a run created."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

RUN_ID = f"t{uuid.uuid4().hex[:8]}"
RUN_LABEL = "shoal.test-run"
SERVO_IMAGE = os.environ.get("SHOAL_SERVO_IMAGE", "shoal-servo:latest")


def docker_required() -> bool:
    return bool(os.environ.get("SHOAL_REQUIRE_DOCKER"))


def _docker_or_fail() -> Any:
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        client.images.get(SERVO_IMAGE)
        return client
    except Exception as exc:
        msg = f"Docker Engine or image {SERVO_IMAGE} unavailable ({exc}); run `make image`"
        if docker_required():
            pytest.fail(msg + " [SHOAL_REQUIRE_DOCKER=1]")
        pytest.skip(msg)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    client = _docker_or_fail()
    yield client
    flt = {"label": f"{RUN_LABEL}={RUN_ID}"}
    for c in client.containers.list(all=True, filters=flt):
        c.remove(force=True)
    for v in client.volumes.list(filters=flt):
        v.remove(force=True)
    client.close()


@pytest.fixture
def run_labels() -> dict[str, str]:
    """Labels every test-created Docker object carries, so the session can sweep them."""
    return {RUN_LABEL: RUN_ID}


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def run_id() -> str:
    return RUN_ID
