"""`edge-agent` run as a separate process, the way a person at the box runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(cfg: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`edge-agent ARGS --config CFG` with `stdin` on its standard input."""
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", *args, "--config", str(cfg)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
