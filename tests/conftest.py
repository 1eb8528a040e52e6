"""Shared fixtures: a unique run id for labels and names, Docker access with CI's fail-not-skip
rule, free ports, and cleanup of everything a run created."""

from __future__ import annotations

import os
import random
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
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
    for n in client.networks.list(filters=flt):  # the runtime's per-project networks
        n.remove()
    client.close()


@pytest.fixture
def run_labels() -> dict[str, str]:
    """Labels every test-created Docker object carries, so the session can sweep them."""
    return {RUN_LABEL: RUN_ID}


_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for both TCP and UDP on loopback, from below the kernel's ephemeral range
    (a port the kernel hands out for port 0 may be taken again by any outgoing connection
    before an agent binds it), never the same one twice in this process."""
    del kind  # agents listen on TCP and UDP alike; every caller gets a port free for both
    low, _ = _ephemeral_range()
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(max(1024, low - 12000), low)
        if port in _HANDED_OUT:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind(("127.0.0.1", port))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
        except OSError:
            continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


@pytest.fixture
def run_id() -> str:
    return RUN_ID
