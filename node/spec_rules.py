"""The one copy of "is this a spec we can run": names, image references, text, and a bound on
every number. Checked at both doors: the public API (`api.models`, a 422 naming the field) and
the internal one, where a spec pushed by a peer arrives as a registry entry
(`node.projects.Entry.from_wire`: refused and logged, never merged). A spec that passed once
could otherwise still arrive from an agent of another version, or a forged push, and break
every later round for every project (a pushed `replicas: 10**9` once did).

Pure: no I/O. Errors are `SpecError` (a `ValueError`), the caller's mistake.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

PROJECT_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# Docker's reference grammar (distribution/reference, `reference.go`): an optional registry
# host[:port], slash-separated lowercase path components joined by `.`, `_`, `__` or dashes,
# then an optional `:tag` and an optional `@algorithm:hex` digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?"
)
IMAGE_RE = re.compile(
    rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
IMAGE_MAX_CHARS = 255
# C0 and C1 control characters, DEL, and the Unicode line/paragraph separators: nothing a name,
# an env value or an argument needs, and each can forge a log line or break a container's env
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

MAX_REPLICAS = 1000
MAX_MEMORY_MB = 16 * 1024 * 1024  # 16 TiB; the API also checks the largest host in the view
MAX_MILLICPUS = 1024 * 1000  # 1024 CPUs
MAX_PORTS = 16
MAX_ENV = 128
MAX_ENV_VALUE_CHARS = 32 * 1024
MAX_SECRETS = 64
MAX_SEALED_CHARS = 4 * (MAX_SECRETS * MAX_ENV_VALUE_CHARS) // 3 + 4096
MAX_COMMAND_ARGS = 64
MAX_ARG_CHARS = 4096
MAX_GENERATION = 2**31


class SpecError(ValueError):
    """A spec (or one of its fields) that no agent should store or run."""


def check_text(value: str, what: str, max_chars: int = MAX_ARG_CHARS) -> str:
    if not isinstance(value, str):
        raise SpecError(f"{what} must be a string")
    if len(value) > max_chars:
        raise SpecError(f"{what} is over {max_chars} characters")
    if CONTROL_RE.search(value):
        raise SpecError(f"{what} must not hold control characters")
    return value


def check_project_name(name: str) -> str:
    if not isinstance(name, str) or not PROJECT_NAME_RE.fullmatch(name):
        raise SpecError(
            "project name must be 1-63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit"
        )
    return name


def check_image(image: str) -> str:
    if not isinstance(image, str) or not image or len(image) > IMAGE_MAX_CHARS:
        raise SpecError(f"image must be 1-{IMAGE_MAX_CHARS} characters")
    if not IMAGE_RE.fullmatch(image):
        raise SpecError(f"image {image!r} is not a Docker image reference (name[:tag][@digest])")
    return image


def check_env_name(name: str, what: str = "env") -> str:
    if not isinstance(name, str) or not ENV_NAME_RE.fullmatch(name) or name.startswith("SHOAL_"):
        raise SpecError(f"{what} name {name!r} is not a valid variable name (SHOAL_ is reserved)")
    return name


def check_env(env: Mapping[str, str], what: str = "env", max_items: int = MAX_ENV) -> None:
    if len(env) > max_items:
        raise SpecError(f"{what} has over {max_items} entries")
    for key, value in env.items():
        check_env_name(key, what)
        check_text(value, f"{what} {key}", MAX_ENV_VALUE_CHARS)


def check_secret_names(names: Iterable[Any]) -> None:
    """A stored spec lists secret names only: a value (a dict, say) would be a secret in clear
    on its way between agents."""
    seen = list(names)
    if len(seen) > MAX_SECRETS:
        raise SpecError(f"secrets has over {MAX_SECRETS} entries")
    for name in seen:
        check_env_name(name, "secrets")


def check_command(command: Iterable[str] | None) -> None:
    if command is None:
        return
    args = list(command)
    if len(args) > MAX_COMMAND_ARGS:
        raise SpecError(f"command has over {MAX_COMMAND_ARGS} arguments")
    for i, arg in enumerate(args):
        check_text(arg, f"command[{i}]")


def check_int(value: int, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(f"{what} must be a whole number in {low}..{high}")
    return value


def check_float(value: float, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{what} must be a number")
    if not math.isfinite(value) or not low <= value <= high:
        raise SpecError(f"{what} must be a finite number in {low:g}..{high:g}")
    return float(value)


def check_ports(ports: Iterable[int]) -> None:
    seen = list(ports)
    if len(seen) > MAX_PORTS:
        raise SpecError(f"at most {MAX_PORTS} ports")
    for port in seen:
        check_int(port, "port", 1, 65535)
    if len(set(seen)) != len(seen):
        raise SpecError("ports must not repeat")


def check_spec_wire(name: str, raw: Mapping[str, Any]) -> None:
    """A stored or pushed spec (`Project.to_wire`'s shape) before it becomes a `Project`."""
    if not isinstance(raw, Mapping):
        raise SpecError("spec must be an object")
    check_project_name(name)
    check_image(raw.get("image"))  # type: ignore[arg-type]
    check_int(raw.get("replicas"), "replicas", 0, MAX_REPLICAS)  # type: ignore[arg-type]
    check_int(raw.get("memory"), "memory", 1, MAX_MEMORY_MB)  # type: ignore[arg-type]
    check_float(raw.get("cpus"), "cpus", 0.001, MAX_MILLICPUS / 1000)  # type: ignore[arg-type]
    check_ports(_list(raw.get("ports", []), "ports"))
    env = raw.get("env", {})
    if not isinstance(env, Mapping):
        raise SpecError("env must be an object")
    check_env(env)
    command = raw.get("command")
    check_command(None if command is None else _list(command, "command"))
    check_int(raw.get("max_per_host", 1), "max_per_host", 1, MAX_REPLICAS)  # type: ignore[arg-type]
    if raw.get("spread", "region") not in ("region", "zone", "host"):
        raise SpecError("spread must be region, zone or host")
    check_secret_names(_list(raw.get("secrets", []), "secrets"))
    sealed = raw.get("sealed_secrets")
    if sealed is not None and (
        not isinstance(sealed, Mapping)
        or not isinstance(sealed.get("box"), str)
        or len(sealed["box"]) > MAX_SEALED_CHARS
        or not isinstance(sealed.get("digest", ""), str)
    ):
        raise SpecError("sealed_secrets must be {box, digest} strings")
    if not isinstance(raw.get("writable_root", False), bool):
        raise SpecError("writable_root must be true or false")
    check_int(raw.get("generation", 1), "generation", 1, MAX_GENERATION)  # type: ignore[arg-type]
    check_int(raw.get("last_good", 0), "last_good", 0, MAX_GENERATION)  # type: ignore[arg-type]


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise SpecError(f"{what} must be a list")
    return list(value)
