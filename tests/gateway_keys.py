"""The county gateway's key file in tests: a real one at the store's default place, as
`edge-agent gateway keys init --db DB` writes it (sync.gateway.keys)."""

from __future__ import annotations

from pathlib import Path

from sync.gateway import keys as gateway_keys
from sync.gateway.store import sqlite_path


def made(db: Path | str, suite: str = "intl") -> Path:
    """The key file of gateway store `db`, created unless it is there (a test that
    starts its gateway twice); its path."""
    path = gateway_keys.default_key_file(sqlite_path(str(db)))
    if not path.exists():
        gateway_keys.init(path, suite)
    return path
