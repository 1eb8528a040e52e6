"""`shoal version` names the installed version and the commit the code runs from."""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from api.cli import main
from api.version import git_commit, version_line

ROOT = Path(__file__).resolve().parents[3]


def test_version_json_is_the_installed_version_and_the_checkout_commit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["version", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["version"] == metadata.version("shoal")
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert info["commit"] and head.startswith(info["commit"])


def test_version_line_reads_as_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"shoal {metadata.version('shoal')} (commit ")
    assert version_line({"version": "1.2.3", "commit": None, "python": "3.11.9"}) == (
        "shoal 1.2.3, python 3.11.9"
    )


def test_outside_a_checkout_there_is_no_commit(tmp_path: Path) -> None:
    assert git_commit(tmp_path) is None
