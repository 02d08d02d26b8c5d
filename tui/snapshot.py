"""What the screens show, read from the local store in one go (no Textual here).

The TUI never writes: it opens its own read-only connection each refresh, so it cannot
block the daemon's writer and a crashed UI cannot harm the data. It also looks whether
the daemon is there to keep the values live: the writer lock on data_dir held by a
daemon (edge_agent.writer_lock) that answers a ping on its control socket.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent import control
from edge_agent.store import (
    AlertRow,
    DeviceReport,
    ObservationRow,
    StoreError,
    StoreReader,
    open_readonly,
)
from edge_agent.writer_lock import LOCK_NAME, is_held, read_holder

# The daemon is ...
AGENT_RUNNING = "running"
AGENT_STOPPED = "stopped"  # nobody holds the writer lock (or a CLI command does)
AGENT_NOT_ANSWERING = "not-answering"  # holds it, but does not answer on its socket
AGENT_UNKNOWN = "unknown"  # the lock file is not readable by this user
PING_TIMEOUT_S = 1.0
OPEN_ALERTS_MAX = 200
RECENT_ALERTS = 50


@dataclass(frozen=True, slots=True)
class Snapshot:
    exists: bool
    latest: tuple[ObservationRow, ...] = ()
    devices: tuple[DeviceReport, ...] = ()
    outbox: dict[str, int] = field(default_factory=dict)
    quarantine: int = 0
    # Open alarms (active or acknowledged), all of them up to OPEN_ALERTS_MAX, and the
    # newest alarms of any state (the screen picks the cleared ones out of these).
    open_alerts: tuple[AlertRow, ...] = ()
    recent_alerts: tuple[AlertRow, ...] = ()
    agent: str = AGENT_UNKNOWN
    taken_wall_ns: int = 0


def agent_state(data_dir: Path) -> str:
    """Whether the daemon of the store in `data_dir` is running and answering."""
    lock = data_dir / LOCK_NAME
    held = is_held(lock)
    if held is None:
        return AGENT_UNKNOWN
    if not held:
        return AGENT_STOPPED
    holder = read_holder(lock)
    if holder is not None and holder.role == "cli":
        return AGENT_STOPPED  # a command writing while no daemon runs
    if holder is None or holder.socket is None:
        return AGENT_NOT_ANSWERING
    try:
        control.call(Path(holder.socket), "ping", {}, timeout_s=PING_TIMEOUT_S)
    except (control.NotListening, control.OpError):
        return AGENT_NOT_ANSWERING
    return AGENT_RUNNING


def load(db_path: Path) -> Snapshot:
    agent = agent_state(db_path.parent)
    now = time.time_ns()
    try:
        store = open_readonly(db_path)
    except StoreError:
        return Snapshot(exists=False, agent=agent, taken_wall_ns=now)
    try:
        return _read(store, agent, now)
    except sqlite3.Error:
        # created but not yet migrated by the daemon
        return Snapshot(exists=False, agent=agent, taken_wall_ns=now)
    finally:
        store.close()


def _read(store: StoreReader, agent: str, now: int) -> Snapshot:
    return Snapshot(
        exists=True,
        latest=tuple(store.frames.latest_by_metric()),
        devices=tuple(store.devices.all()),
        outbox=store.outbox.counts(),
        quarantine=store.quarantine.count(),
        open_alerts=tuple(store.alerts.recent(limit=OPEN_ALERTS_MAX)),
        recent_alerts=tuple(store.alerts.recent(include_cleared=True, limit=RECENT_ALERTS)),
        agent=agent,
        taken_wall_ns=now,
    )
