"""`pip install -e .` must not print packaging warnings (`make run` showed setuptools'
deprecation of the table form of `project.license`): the build backend's metadata step, the one
pip runs, is run here on a copy of pyproject.toml and must warn about nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys, warnings
import setuptools.build_meta as backend
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    dist_info = backend.prepare_metadata_for_build_wheel(sys.argv[1])
print(json.dumps({
    "dist_info": dist_info,
    "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
}))
"""


def test_metadata_builds_without_warnings_and_says_the_license(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("node", "gossip", "placement", "api", "sim"):
        (src / package).mkdir()
        (src / package / "__init__.py").write_text("")
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(out)],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["warnings"] == []
    assert "Warning" not in proc.stderr, proc.stderr
    metadata = (out / result["dist_info"] / "METADATA").read_text()
    assert "License-Expression: Apache-2.0" in metadata
