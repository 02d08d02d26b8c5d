"""Key-value facts about the box and the daemon (`meta`): the agent id the store
belongs to, the supervised tasks' last reports (edge_agent.supervisor.META_TASKS)."""

from __future__ import annotations

import sqlite3


class MetaReader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])


class Meta(MetaReader):
    def set(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
