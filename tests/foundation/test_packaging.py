"""`pip install -e .` must not print packaging warnings (`make run` showed setuptools'
deprecation of the table form of `project.license`, then its note on editable installs with a
meta path finder): the build backend's two steps that pip runs, metadata and the editable
wheel, run here on a copy of pyproject.toml and must warn about nothing."""

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
meta_dir, wheel_dir = sys.argv[1], sys.argv[2]
sys.argv = ["probe"]  # the backend rebuilds a command line from sys.argv[0]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    dist_info = backend.prepare_metadata_for_build_wheel(meta_dir)
    wheel = backend.build_editable(wheel_dir)  # what `pip install -e .` runs next
print(json.dumps({
    "dist_info": dist_info,
    "wheel": wheel,
    "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
}))
"""


def test_metadata_and_editable_wheel_build_without_warnings(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("node", "gossip", "placement", "api", "sim"):
        (src / package).mkdir()
        (src / package / "__init__.py").write_text("")
    out, wheels = tmp_path / "out", tmp_path / "wheels"
    out.mkdir()
    wheels.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), str(wheels)],
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
    assert (wheels / result["wheel"]).exists()
