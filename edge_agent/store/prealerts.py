"""Pre-arrival notices to the receiving ER (`prealert`) and the notices that come back
on the down topic (`notice`: "ER ready", `gateway reply`).

A pre-arrival notice is an ADT^A14 outbox row (the recorder's on a STEMI 12-lead, or
the crew's `edge-agent prealert`); the ER answers on `edge/v1/{agent}/down` naming it,
and `edge-agent status` shows each answer next to the notice it answers.

A notice's complaint and destination, and what comes back on the down topic (the ER's
free text), are stored sealed (edge_agent.store.sealing) and opened when read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from edge_agent.store.sealing import Sealing

COMPLAINT_PLACE = "prealert.complaint"
DESTINATION_PLACE = "prealert.destination"
NOTICE_PLACE = "notice.payload"


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
    " complaint, created_wall_ns, sealed_key"
)


class PrealertsReader:
    def __init__(self, conn: sqlite3.Connection, sealing: Sealing | None = None) -> None:
        self._conn = conn
        self._sealing = sealing or Sealing(None)

    def _prealert(self, row: Sequence[Any]) -> PrealertRow:
        key_id = row[10]
        return PrealertRow(
            id=row[0],
            outbox_id=row[1],
            encounter_id=row[2],
            ecg_frame_id=row[3],
            stemi=bool(row[4]),
            source=row[5],
            destination=self._sealing.open_maybe_text(DESTINATION_PLACE, row[6], key_id),
            eta_minutes=row[7],
            complaint=self._sealing.open_text(COMPLAINT_PLACE, row[8], key_id),
            created_wall_ns=row[9],
        )

    def for_outbox(self, outbox_id: str) -> PrealertRow | None:
        row = self._conn.execute(
            f"SELECT {_PREALERT_COLUMNS} FROM prealert WHERE outbox_id = ?", (outbox_id,)
        ).fetchone()
        return None if row is None else self._prealert(row)

    def recent(self, limit: int = 10) -> list[PrealertRow]:
        rows = self._conn.execute(
            f"SELECT {_PREALERT_COLUMNS} FROM prealert ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [self._prealert(r) for r in rows]

    def notices(self, limit: int = 20) -> list[NoticeRow]:
        rows = self._conn.execute(
            "SELECT id, topic, payload, received_wall_ns, sealed_key FROM notice"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            NoticeRow(
                id=r[0],
                topic=r[1],
                payload=self._sealing.open_text(NOTICE_PLACE, r[2], r[4]),
                received_wall_ns=r[3],
            )
            for r in rows
        ]


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
            " destination, eta_minutes, complaint, created_wall_ns, sealed_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                outbox_id,
                encounter_id,
                ecg_frame_id,
                int(stemi),
                source,
                self._sealing.maybe_text(DESTINATION_PLACE, destination),
                eta_minutes,
                self._sealing.text(COMPLAINT_PLACE, complaint),
                created_wall_ns,
                self._sealing.key_id,
            ),
        )
        return int(cur.lastrowid or 0)

    def add_notice(self, topic: str, payload: str, wall_ns: int) -> None:
        """A notice from the gateway/ER on the down topic (e.g. "ER ready")."""
        self._conn.execute(
            "INSERT INTO notice (topic, payload, received_wall_ns, sealed_key) VALUES (?, ?, ?, ?)",
            (topic, self._sealing.text(NOTICE_PLACE, payload), wall_ns, self._sealing.key_id),
        )
