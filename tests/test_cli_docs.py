"""Docs tested like code: every CLI command is in the README and answers --help; the
daemon's import graph stays free of the terminal UI."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.cli import build_parser

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((*prefix, name))
                found.extend(commands(sub, (*prefix, name)))
    return found


ALL = commands(build_parser())


def test_there_are_commands() -> None:
    assert ("decode",) in ALL and ("gateway", "status") in ALL and ("demo",) in ALL


@pytest.mark.parametrize("command", ALL, ids=[" ".join(c) for c in ALL])
def test_command_is_documented_in_readme(command: tuple[str, ...]) -> None:
    assert f"edge-agent {' '.join(command)}" in README


@pytest.mark.parametrize("command", ALL, ids=[" ".join(c) for c in ALL])
def test_command_has_help(command: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0


def test_daemon_path_does_not_import_textual() -> None:
    code = (
        "import sys\n"
        "import edge_agent.cli, edge_agent.daemon, edge_agent.devices, edge_agent.status\n"
        "import sync.uplink, sync.gateway.service, device_drivers.registry\n"
        "from edge_agent.cli import build_parser\n"
        "build_parser().parse_args(['run'])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'tui'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
