"""Alerts (`alert`) and the ORU^R40 messages that report them (`alert_message`).

What an alert is and when one opens or ends is edge_agent.alerts; this is where they
are kept: one row per alert with its state (active, acknowledged, cleared), and for
each of its start and end the outbox row that carries it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, TypedDict


@dataclass(frozen=True, slots=True)
class AlertRow:
    """An alert: a device's own alarm, or a clinical rule's (NEWS2, follow-up thresholds)."""

    id: int
    raw_frame_id: int | None
    device_id: str | None
    source: str  # device | rule
    code: str
    priority: str  # high | medium | low | info
    text: str  # as the device said it, or the rule's Chinese text
    text_en: str | None
    condition_key: str | None
    subject: str | None  # "encounter:<id>" | "device:<id>" | "station"
    state: str  # active | acknowledged | cleared
    raised_wall_ns: int
    value: str | None = None
    metric: str | None = None
    unit: str | None = None
    last_seen_wall_ns: int | None = None
    cleared_wall_ns: int | None = None
    ack_user: str | None = None
    ack_wall_ns: int | None = None
    physiological: bool = False  # about the patient (PCD-04 SP), else the device (ST)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "code": self.code,
            "priority": self.priority,
            "state": self.state,
            "source": self.source,
            "device": self.device_id,
            "subject": self.subject,
            "text": self.text,
            "text_en": self.text_en,
            "value": self.value,
            "metric": self.metric,
            "unit": self.unit,
            "raised_wall_ns": self.raised_wall_ns,
            "cleared_wall_ns": self.cleared_wall_ns,
            "ack_user": self.ack_user,
            "ack_wall_ns": self.ack_wall_ns,
            "physiological": self.physiological,
        }


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """What an ORU^R40 outbox row reports: an alert's start or end."""

    alert: AlertRow
    phase: str  # start | end


class AlertSummary(TypedDict):
    """An alert as the screens list it (tui.snapshot)."""

    id: int
    device_id: str | None
    source: str
    code: str
    priority: str
    text: str
    raised_wall_ns: int
    state: str


_ALERT_COLUMNS = (
    "id, raw_frame_id, device_id, source, code, priority, text, text_en, condition_key,"
    " subject, state, raised_wall_ns, value, metric, unit, last_seen_wall_ns,"
    " cleared_wall_ns, ack_user, ack_wall_ns, COALESCE(physiological, 0) = 1"
)


class AlertsReader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, alert_id: int) -> AlertRow | None:
        row = self._conn.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alert WHERE id = ?", (alert_id,)
        ).fetchone()
        return None if row is None else AlertRow(*row)

    def open_for(self, subject: str, condition_key: str) -> AlertRow | None:
        """The alert still open (active or acknowledged, not cleared) for a condition."""
        row = self._conn.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alert WHERE subject = ? AND condition_key = ?"
            " AND state != 'cleared' ORDER BY id DESC LIMIT 1",
            (subject, condition_key),
        ).fetchone()
        return None if row is None else AlertRow(*row)

    def recent(self, *, include_cleared: bool = False, limit: int = 50) -> list[AlertRow]:
        """Newest first: the open ones, or all of them."""
        where = "" if include_cleared else " WHERE state != 'cleared'"
        rows = self._conn.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alert{where} ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [AlertRow(*r) for r in rows]

    def summaries(self, limit: int = 10) -> list[AlertSummary]:
        """The newest alerts, cleared ones included, as the screens list them."""
        rows = self._conn.execute(
            "SELECT id, device_id, source, code, priority, text, raised_wall_ns, state"
            " FROM alert ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            AlertSummary(
                id=r[0],
                device_id=r[1],
                source=r[2],
                code=r[3],
                priority=r[4],
                text=r[5],
                raised_wall_ns=r[6],
                state=r[7],
            )
            for r in rows
        ]

    def for_message(self, outbox_id: str) -> AlertMessage | None:
        row = self._conn.execute(
            "SELECT alert_id, phase FROM alert_message WHERE outbox_id = ?", (outbox_id,)
        ).fetchone()
        if row is None:
            return None
        alert = self.get(int(row[0]))
        return None if alert is None else AlertMessage(alert, str(row[1]))


class Alerts(AlertsReader):
    """Writes of the alert logic (edge_agent.alerts) and of `alerts ack`."""

    def insert(self, alert: AlertRow) -> int:
        cur = self._conn.execute(
            "INSERT INTO alert (raw_frame_id, device_id, source, code, priority, text, text_en,"
            " condition_key, subject, value, metric, unit, raised_wall_ns, last_seen_wall_ns,"
            " state, physiological) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                alert.raw_frame_id,
                alert.device_id,
                alert.source,
                alert.code,
                alert.priority,
                alert.text,
                alert.text_en,
                alert.condition_key,
                alert.subject,
                alert.value,
                alert.metric,
                alert.unit,
                alert.raised_wall_ns,
                alert.raised_wall_ns,
                alert.state,
                int(alert.physiological),
            ),
        )
        return int(cur.lastrowid or 0)

    def touch(self, alert_id: int, wall_ns: int) -> None:
        self._conn.execute(
            "UPDATE alert SET last_seen_wall_ns = ? WHERE id = ?", (wall_ns, alert_id)
        )

    def clear(self, alert_id: int, wall_ns: int) -> None:
        self._conn.execute(
            "UPDATE alert SET state = 'cleared', cleared_wall_ns = ? WHERE id = ?",
            (wall_ns, alert_id),
        )

    def ack(self, alert_id: int, user: str, wall_ns: int) -> bool:
        """Who saw it and when; an alert already acknowledged or cleared keeps its state
        (a cleared one still records who acknowledged it). False: no such alert."""
        cur = self._conn.execute(
            "UPDATE alert SET ack_user = ?, ack_wall_ns = ?,"
            " state = CASE WHEN state = 'active' THEN 'acknowledged' ELSE state END"
            " WHERE id = ? AND ack_user IS NULL",
            (user, wall_ns, alert_id),
        )
        if cur.rowcount:
            return True
        return self.get(alert_id) is not None

    def link_message(self, outbox_id: str, alert_id: int, phase: str) -> None:
        self._conn.execute(
            "INSERT INTO alert_message (outbox_id, alert_id, phase) VALUES (?, ?, ?)",
            (outbox_id, alert_id, phase),
        )
