"""Issue 13, point 5: bounds on every number, Docker's image grammar, no control characters,
whole-name matches; the same rules at the internal door (a pushed entry). One finding each."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from api.models import ProjectSpecIn, check_project_name
from node.projects import Entry, Project
from node.spec_rules import IMAGE_RE, SpecError
from node.units import UnitError, parse_memory_mb, parse_millicpus

GOOD = {"image": "shoal-servo:latest", "replicas": 1, "memory": "64M", "cpus": 0.1}


def invalid(**change: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        ProjectSpecIn(**{**GOOD, **change})
    return str(caught.value)


@pytest.mark.parametrize("memory", ["9" * 400, "9" * 60 + "T", 10**19, 10**400, "1e999", -5, "0.5"])
def test_absurd_memory_is_a_validation_error(memory: object) -> None:
    # finding: a 400-digit memory or "9…9T" -> 500; 10^19 MiB -> stored, never runnable
    assert "memory" in invalid(memory=memory)


@pytest.mark.parametrize("cpus", ["inf", "nan", "-inf", 1e308, "1e400", 10**30, 0, "0m"])
def test_cpus_must_be_finite_and_bounded(cpus: object) -> None:
    assert "cpus" in invalid(cpus=cpus)  # finding: cpus "inf" -> 500


def test_units_refuse_overflow_without_crashing() -> None:
    for bad in ("9" * 400, 10**400, float("inf"), float("nan")):
        with pytest.raises(UnitError):
            parse_memory_mb(bad)  # type: ignore[arg-type]
        with pytest.raises(UnitError):
            parse_millicpus(bad)  # type: ignore[arg-type]
    assert parse_memory_mb("16T") == 16 * 1024 * 1024
    assert parse_millicpus(1024) == 1024 * 1000


@pytest.mark.parametrize(
    "image",
    [
        "x\n\x00y",  # the image: stored and replicated, never runnable
        "UPPER",
        "a b",
        "-leading",
        "a:tag:two",
        "a@sha256:xyz",
        "a/" * 200 + "b",
        "",
    ],
)
def test_images_follow_dockers_reference_grammar(image: str) -> None:
    assert "image" in invalid(image=image)


@pytest.mark.parametrize(
    "image",
    [
        "shoal-servo:latest",
        "busybox",
        "library/busybox:1.36",
        "registry.example.com:5000/team/app_1:v1.2-rc",
        "localhost/a__b/c.d-e",
        "[::1]:5000/x",
        "app@sha256:" + "a" * 64,
        "app:v1@sha256:" + "0" * 64,
    ],
)
def test_valid_references_pass(image: str) -> None:
    assert IMAGE_RE.fullmatch(image)
    ProjectSpecIn(**{**GOOD, "image": image})


def test_no_control_characters_in_env_or_command() -> None:
    assert "env" in invalid(env={"A": "x\ny"})
    assert "env" in invalid(env={"A": "\x1b[31m"})
    assert "env" in invalid(env={"A\n": "x"})
    assert "env" in invalid(env={"SHOAL_X": "x"})
    assert "command" in invalid(command=["sh", "-c", "echo\x00"])
    assert "command" in invalid(command=["x" * 5000])
    assert "env" in invalid(env={"A": "tab\tis a control"})


def test_names_must_match_whole() -> None:
    # finding: PUT /v1/projects/abc%0A -> 200, stored as "abc\n", then stop/destroy -> 500
    for bad in ("abc\n", "abc\n\n", "ABC", "a_b", "-a", "a" * 64, ""):
        with pytest.raises(ValueError):
            check_project_name(bad)
    assert check_project_name("web-1") == "web-1"


def test_numbers_bounded() -> None:
    assert "replicas" in invalid(replicas=10**9)
    assert "ports" in invalid(ports=[0])
    assert "ports" in invalid(ports=[65536])
    assert "ports" in invalid(ports=list(range(1, 20)))
    assert "max_per_host" in invalid(max_per_host=10**6)


def entry_wire(**spec_change: Any) -> dict[str, Any]:
    project = Project("web", "shoal-servo:latest", 2, 64, 100)
    spec = {**project.to_wire(), **spec_change}
    return {"name": "web", "ts": [1_700_000_000_000, 0, "peer"], "spec": spec}


@pytest.mark.parametrize(
    "change",
    [
        {"replicas": 10**9},  # the push: broke every later recovery round
        {"memory": -5},
        {"memory": 10**19},
        {"cpus": float("inf")},
        {"cpus": float("nan")},
        {"image": "x\n\x00y"},
        {"env": {"A": "x\ny"}},
        {"ports": [0]},
        {"command": ["a", 3]},
        {"spread": "galaxy"},
        {"generation": -1},
    ],
)
def test_an_invalid_pushed_entry_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Entry.from_wire(entry_wire(**change))


def test_entry_timestamps_and_names_are_bounded() -> None:
    good = entry_wire()
    assert Entry.from_wire(good).project is not None
    for ts in ([2**63, 0, "peer"], [-1, 0, "peer"], [1, 2**40, "peer"], [1, 0, "a\nb"]):
        with pytest.raises(ValueError):
            Entry.from_wire({**good, "ts": ts})
    with pytest.raises(SpecError):
        Entry.from_wire({**good, "name": "abc\n"})
    tombstone = {"name": "web", "ts": [1, 0, "peer"], "spec": None}
    assert Entry.from_wire(tombstone).deleted
