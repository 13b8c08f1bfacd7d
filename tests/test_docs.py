"""Docs that are generated from code must match the code."""

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_reference_is_current() -> None:
    render = runpy.run_path(str(ROOT / "docs" / "gen_configuration.py"))["render"]
    assert (ROOT / "docs" / "configuration.md").read_text() == render(), (
        "docs/configuration.md is stale: run `python docs/gen_configuration.py > docs/configuration.md`"
    )


def test_every_cli_command_is_in_the_readme() -> None:
    from freshrec.cli import app

    readme = (ROOT / "README.md").read_text()
    for command in app.registered_commands:
        assert f"freshrec {command.name or command.callback.__name__}" in readme
