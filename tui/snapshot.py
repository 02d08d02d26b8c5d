"""What the screens show, read from the local store in one go (no Textual here).

The TUI never writes: it opens its own read-only connection each refresh, so it cannot
block the daemon's writer and a crashed UI cannot harm the data.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.store import ObservationRow, open_readonly
from edge_agent.store.store import StoreError


@dataclass(frozen=True, slots=True)
class Snapshot:
    exists: bool
    latest: tuple[ObservationRow, ...] = ()
    devices: tuple[dict[str, Any], ...] = ()
    outbox: dict[str, int] = field(default_factory=dict)
    quarantine: int = 0
    alerts: tuple[dict[str, Any], ...] = ()


def load(db_path: Path) -> Snapshot:
    try:
        store = open_readonly(db_path)
    except StoreError:
        return Snapshot(exists=False)
    try:
        return _read(store)
    except sqlite3.Error:
        return Snapshot(exists=False)  # created but not yet migrated by the daemon
    finally:
        store.close()


def _read(store: Any) -> Snapshot:
    return Snapshot(
        exists=True,
        latest=tuple(store.latest_by_metric()),
        devices=tuple(store.devices()),
        outbox=store.outbox_counts(),
        quarantine=store.quarantine_count(),
        alerts=tuple(store.recent_alerts(5)),
    )
