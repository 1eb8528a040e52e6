"""Issue 13, point 2: secrets are sealed with the cluster key at the door, travel and rest only
as the box, show as names everywhere, and a changed value is a new generation."""

from __future__ import annotations

import json
import secrets as random_secrets

import pytest

from api.models import ProjectSpecIn
from node.executor import servo_wire_spec
from node.projects import Entry, HistoryEntry, Project
from node.runtime import ServoSpec
from node.secret_box import SecretBox, SecretError

KEY = random_secrets.token_bytes(32)
OTHER = random_secrets.token_bytes(32)
VALUE = "pa55-w0rd-that-must-not-leak"
SPEC = {"image": "shoal-servo:latest", "memory": "64M", "cpus": 0.1}


def test_box_round_trip_and_binding() -> None:
    box = SecretBox([KEY])
    sealed = box.seal("web", {"DB_PASSWORD": VALUE})
    assert VALUE not in sealed and "DB_PASSWORD" not in sealed
    assert box.open("web", sealed) == {"DB_PASSWORD": VALUE}
    assert box.seal("web", {"DB_PASSWORD": VALUE}) != sealed  # a fresh nonce each time
    with pytest.raises(SecretError):
        box.open("api", sealed)  # bound to its project: cannot be moved to another
    with pytest.raises(SecretError):
        SecretBox([OTHER]).open("web", sealed)
    # a rotation: the new key first, the old one still installed, opens old boxes
    assert SecretBox([OTHER, KEY]).open("web", sealed) == {"DB_PASSWORD": VALUE}
    with pytest.raises(SecretError):
        box.open("web", sealed[:-4] + "AAAA")
    assert box.seal("web", {}) == "" and box.open("web", "") == {}


def test_digest_is_keyed_and_stable() -> None:
    box = SecretBox([KEY])
    assert box.digest({"A": "1"}) == box.digest({"A": "1"}) != box.digest({"A": "2"})
    assert SecretBox([OTHER]).digest({"A": "1"}) != box.digest({"A": "1"})


def deploy(spec: dict[str, object], prior: Project | None = None) -> Project:
    project = ProjectSpecIn(**spec).to_project("web", box=SecretBox([KEY]), prior=prior)
    return project.next_of(prior, 1000)


def test_secrets_are_write_only_in_every_form() -> None:
    project = deploy({**SPEC, "secrets": {"DB_PASSWORD": VALUE}, "env": {"MODE": "prod"}})
    assert project.secret_names == ("DB_PASSWORD",)
    shown = json.dumps(project.spec_wire())
    assert VALUE not in shown and project.spec_wire()["secrets"] == ["DB_PASSWORD"]
    assert project.secrets_box not in shown
    history = json.dumps([h.to_wire() for h in project.history])
    assert VALUE not in history and project.secrets_box not in history
    # what agents store and send: the box, never the value
    stored = json.dumps(Entry("web", Entry.from_wire(_entry(project)).ts, project).to_wire())
    assert VALUE not in stored and project.secrets_box in stored
    servo = servo_wire_spec(project, _create())
    assert VALUE not in json.dumps(servo) and servo["secrets"] == project.secrets_box
    assert SecretBox([KEY]).open("web", ServoSpec.from_wire(servo).secrets) == {
        "DB_PASSWORD": VALUE
    }


def test_a_changed_secret_is_a_new_generation() -> None:
    first = deploy({**SPEC, "secrets": {"DB_PASSWORD": VALUE}})
    same = deploy({**SPEC, "secrets": {"DB_PASSWORD": VALUE}}, prior=first)
    assert same.generation == first.generation  # resealed, same values: nothing to roll
    changed = deploy({**SPEC, "secrets": {"DB_PASSWORD": "new"}}, prior=first)
    assert changed.generation == first.generation + 1
    assert changed.history[-1].change == "changed secrets"
    kept = deploy(dict(SPEC), prior=changed)  # omitted: the secrets stay
    assert (kept.generation, kept.secrets_box) == (changed.generation, changed.secrets_box)
    dropped = deploy({**SPEC, "secrets": {}}, prior=changed)
    assert dropped.secret_names == () and dropped.generation == changed.generation + 1


def test_a_rollback_restores_the_generations_secrets() -> None:
    first = deploy({**SPEC, "secrets": {"DB_PASSWORD": VALUE}})
    second = deploy({**SPEC, "secrets": {"DB_PASSWORD": "new"}}, prior=first)
    back = second.rolled_back_to(first.generation, 2000, "test")
    assert SecretBox([KEY]).open("web", back.secrets_box) == {"DB_PASSWORD": VALUE}


def test_secret_rules() -> None:
    with pytest.raises(ValueError, match="secrets"):
        ProjectSpecIn(**{**SPEC, "secrets": {"BAD NAME": "x"}})
    with pytest.raises(ValueError, match="secrets"):
        ProjectSpecIn(**{**SPEC, "secrets": {"A": "x\n"}})
    with pytest.raises(ValueError, match="both"):
        ProjectSpecIn(**{**SPEC, "secrets": {"A": "x"}, "env": {"A": "y"}})
    # a peer may not push a secret in clear: the stored form lists names only
    wire = _entry(deploy(dict(SPEC)))
    wire["spec"]["secrets"] = {"DB_PASSWORD": VALUE}
    with pytest.raises(ValueError):
        Entry.from_wire(wire)


def test_history_entry_strips_the_box() -> None:
    entry = HistoryEntry(1, 0, "created", json.dumps({"sealed_secrets": {"box": "v1:x"}}))
    assert "sealed_secrets" not in entry.to_wire()["spec"]
    assert "sealed_secrets" in entry.to_wire(sealed=True)["spec"]


def _entry(project: Project) -> dict[str, object]:
    return {"name": project.name, "ts": [1, 0, "a"], "spec": project.to_wire()}


def _create() -> object:
    from placement.converge import Create

    return Create("web", "web-1-0", "n1", 0, 1, "test")


def test_the_box_follows_a_rotation_of_the_live_ring() -> None:
    ring = [KEY]
    box = SecretBox(ring)  # the agent's own list, changed in place by `shoal keys`
    old = box.seal("web", {"A": "1"})
    ring[:] = [OTHER, KEY]  # install + use
    new = box.seal("web", {"A": "2"})
    assert SecretBox([OTHER]).open("web", new) == {"A": "2"}  # sealed with the new primary
    assert box.open("web", old) == {"A": "1"}
    ring[:] = [OTHER]  # the old key removed
    assert box.open("web", new) == {"A": "2"}
    with pytest.raises(SecretError):
        box.open("web", old)
