"""Pre-arrival notices to the receiving ER (`prealert`) and the notices that come back
on the down topic (`notice`: "ER ready", `gateway reply`).

A pre-arrival notice is an ADT^A14 outbox row (the recorder's on a STEMI 12-lead, or
the crew's `edge-agent prealert`); the ER answers on `edge/v1/{agent}/down` naming it,
and `edge-agent status` shows each answer next to the notice it answers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict


@dataclass(frozen=True, slots=True)
class PrealertRow:
    id: int
    outbox_id: str
    encounter_id: int | None
    ecg_frame_id: int | None
    stemi: bool
    source: str
    destination: str | None
    eta_minutes: int | None
    complaint: str
    created_wall_ns: int


class NoticeRow(TypedDict):
    """A message from the gateway or the ER on the down topic, as it came."""

    id: int
    topic: str
    payload: str
    received_wall_ns: int


_PREALERT_COLUMNS = (
    "id, outbox_id, encounter_id, ecg_frame_id, stemi, source, destination, eta_minutes,"
    " complaint, created_wall_ns"
)


def _prealert(row: Sequence[Any]) -> PrealertRow:
    return PrealertRow(
        id=row[0],
        outbox_id=row[1],
        encounter_id=row[2],
        ecg_frame_id=row[3],
        stemi=bool(row[4]),
        source=row[5],
        destination=row[6],
        eta_minutes=row[7],
        complaint=row[8],
        created_wall_ns=row[9],
    )


class PrealertsReader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def for_outbox(self, outbox_id: str) -> PrealertRow | None:
        row = self._conn.execute(
            f"SELECT {_PREALERT_COLUMNS} FROM prealert WHERE outbox_id = ?", (outbox_id,)
        ).fetchone()
        return None if row is None else _prealert(row)

    def recent(self, limit: int = 10) -> list[PrealertRow]:
        rows = self._conn.execute(
            f"SELECT {_PREALERT_COLUMNS} FROM prealert ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [_prealert(r) for r in rows]

    def notices(self, limit: int = 20) -> list[NoticeRow]:
        rows = self._conn.execute(
            "SELECT id, topic, payload, received_wall_ns FROM notice ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [NoticeRow(id=r[0], topic=r[1], payload=r[2], received_wall_ns=r[3]) for r in rows]


class Prealerts(PrealertsReader):
    def insert(
        self,
        *,
        outbox_id: str,
        encounter_id: int | None,
        ecg_frame_id: int | None,
        stemi: bool,
        source: str,
        destination: str | None,
        eta_minutes: int | None,
        complaint: str,
        created_wall_ns: int,
    ) -> int:
        cur = self._conn.execute(
            "INSERT INTO prealert (outbox_id, encounter_id, ecg_frame_id, stemi, source,"
            " destination, eta_minutes, complaint, created_wall_ns)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                outbox_id,
                encounter_id,
                ecg_frame_id,
                int(stemi),
                source,
                destination,
                eta_minutes,
                complaint,
                created_wall_ns,
            ),
        )
        return int(cur.lastrowid or 0)

    def add_notice(self, topic: str, payload: str, wall_ns: int) -> None:
        """A notice from the gateway/ER on the down topic (e.g. "ER ready")."""
        self._conn.execute(
            "INSERT INTO notice (topic, payload, received_wall_ns) VALUES (?, ?, ?)",
            (topic, payload, wall_ns),
        )
