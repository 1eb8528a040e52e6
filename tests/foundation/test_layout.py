"""The top-level layout of DESIGN.md: each package importable and saying what it holds."""

import importlib

import pytest


@pytest.mark.parametrize("name", ["node", "gossip", "placement", "api", "sim"])
def test_package_is_importable_and_documented(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__ and len(module.__doc__.strip()) > 40


def test_console_script_is_declared() -> None:
    from importlib.metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("shoal") == "api.cli:main"
