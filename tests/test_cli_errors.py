"""The CLI's contract for people and scripts (docs/contracts.md): `--config` before or after
the subcommand, a closed stdout is not an error, and every failure is one `error:` line
with its exit status, never a traceback. Run as the real `edge-agent` console script."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from box_keys import init_keys_in

from edge_agent.store import StoreWriter

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")


def edge_agent(
    *args: str, stdout: int | None = subprocess.PIPE, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "EDGE_AGENT_CONFIG"}
    return subprocess.run(
        [str(EDGE_AGENT), *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        env=env or clean,
    )


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """A box's config and a store with a little in it, no daemon running."""
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f"""
[agent]
id = "box-1"
data_dir = "{tmp_path / "data"}"
[uplink]
broker = "mqtt://127.0.0.1:9"
allow_insecure = true
""",
        encoding="utf-8",
    )
    StoreWriter.open(tmp_path / "data" / "edge-agent.sqlite3").close()
    init_keys_in(tmp_path / "data")
    return cfg


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_is_taken_before_or_after_the_subcommand(box: Path, where: str) -> None:
    args = ["--config", str(box), "status", "--json"]
    if where == "after":
        args = ["status", "--json", "--config", str(box)]
    result = edge_agent(*args)
    assert result.returncode == 0, result.stderr
    assert '"outbox"' in result.stdout


def test_config_before_a_nested_subcommand(box: Path) -> None:
    result = edge_agent("--config", str(box), "config", "check")
    assert result.returncode == 0, result.stderr
    assert "box-1" in result.stdout


def test_a_reader_that_goes_away_ends_the_command_quietly(box: Path) -> None:
    """`edge-agent status | head`: the reader closed the pipe before we wrote."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read: the first write gets EPIPE
    try:
        result = edge_agent("status", "--config", str(box), stdout=write_end)
    finally:
        os.close(write_end)
    assert result.returncode in (0, 141), result.stderr
    assert result.stderr == ""


def test_patients_add_on_a_damaged_store_is_one_error_line(box: Path, tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "data" / "edge-agent.sqlite3")
    db.execute("DROP TABLE patient")  # a store damaged by hand or by a bad restore
    db.commit()
    db.close()
    result = edge_agent(
        "patients", "add", "--national-id", "11010519491231002X", "--name", "王秀英",
        "--config", str(box),
    )  # fmt: skip
    assert result.returncode == 1
    assert "patient" in one_error_line(result)


def test_bad_usage_is_one_error_line_and_exit_2(box: Path) -> None:
    result = edge_agent("alerts", "ack", "not-a-number", "--config", str(box))
    assert result.returncode == 2
    assert "invalid int value" in one_error_line(result)
    result = edge_agent("no-such-command")
    assert result.returncode == 2
    one_error_line(result)


def test_missing_config_is_one_error_line(tmp_path: Path) -> None:
    result = edge_agent("--config", str(tmp_path / "none.toml"), "status")
    assert result.returncode == 2
    assert "file not found" in one_error_line(result)
