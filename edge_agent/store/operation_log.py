"""Who changed what by hand (`operation_log`): one row per operation of
edge_agent.operations, written in the operation's own transaction. The subject names
what changed (`alert:7`, `outbox:<MSH-10>`), never personal data."""

from __future__ import annotations

import sqlite3
from typing import TypedDict


class OperationRow(TypedDict):
    id: int
    op: str  # patients.add | visit.start | alerts.ack | prealert | ...
    user: str
    uid: int | None
    subject: str | None
    done_wall_ns: int


class OperationLogReader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def recent(self, limit: int = 50) -> list[OperationRow]:
        """The newest changes made by hand, newest first."""
        rows = self._conn.execute(
            "SELECT id, op, user, uid, subject, done_wall_ns FROM operation_log"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            OperationRow(id=r[0], op=r[1], user=r[2], uid=r[3], subject=r[4], done_wall_ns=r[5])
            for r in rows
        ]


class OperationLog(OperationLogReader):
    def record(
        self, op: str, *, user: str, uid: int | None, subject: str | None, wall_ns: int
    ) -> None:
        self._conn.execute(
            "INSERT INTO operation_log (op, user, uid, subject, done_wall_ns)"
            " VALUES (?, ?, ?, ?, ?)",
            (op, user, uid, subject, wall_ns),
        )
