"""Shared fixtures: a real Mosquitto on a free port, real SQLite files in tmp_path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from edge_agent.local_broker import LocalBroker

# `EDGE_AGENT_FUZZ=deep` runs every property test with 20x the examples (a soak before a
# release, or after touching a parser); the default keeps the README test command fast.
settings.register_profile("deep", max_examples=2000, deadline=None)
settings.register_profile("default", deadline=None)
settings.load_profile("deep" if os.environ.get("EDGE_AGENT_FUZZ") == "deep" else "default")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A private broker per test. A missing mosquitto binary fails the test (no skip)."""
    b = LocalBroker(workdir=tmp_path / "broker").start()
    try:
        yield b
    finally:
        b.stop()
