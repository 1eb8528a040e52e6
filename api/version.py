"""`shoal version`: the installed distribution's version and, when the code runs from a git
checkout (the editable install `make` does), the commit, so a bug report names the exact code."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

DIST = "shoal"
SOURCE_DIR = Path(__file__).resolve().parent.parent


def installed_version() -> str:
    try:
        return metadata.version(DIST)
    except metadata.PackageNotFoundError:
        return "unknown (not installed: run `pip install -e .`)"


def git_commit(source_dir: Path = SOURCE_DIR) -> str | None:
    """The short commit of the checkout this code runs from; None outside a checkout or
    without git. Bounded: a wedged git must not hang the CLI."""
    if not (source_dir / ".git").exists():
        return None
    try:
        proc = subprocess.run(
            ["git", "-C", str(source_dir), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = proc.stdout.strip()
    return commit if proc.returncode == 0 and commit else None


def version_info() -> dict[str, str | None]:
    return {
        "version": installed_version(),
        "commit": git_commit(),
        "python": platform.python_version(),
    }


def version_line(info: dict[str, str | None] | None = None) -> str:
    info = info or version_info()
    commit = f" (commit {info['commit']})" if info.get("commit") else ""
    return f"shoal {info['version']}{commit}, python {info['python']}"
