"""What a kiosk box lets go of (edge_agent.kiosk_retention): readings no consented
resident was bound to, after a while, and a delivered resident's identity.

The tables a frame's rows are in are named here once (`FRAME_TABLES`); a test checks
that every table with a `raw_frame_id` column is among them, so a new one is not left
pointing at a purged frame."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from edge_agent.model import OUTBOX_DELIVERED, OUTBOX_HELD

# Every table holding a frame's rows, by its raw_frame_id; raw_frame itself last.
FRAME_TABLES = (
    "observation",
    "waveform_segment",
    "statement",
    "ecg_context",
    "frame_source",
    "quarantine",
    "alert",
    "outbox",
)


def _marks(ids: Sequence[int]) -> str:
    return ", ".join("?" * len(ids))


class KioskRetentionReader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def unbound_before(self, wall_ns: int, limit: int = 500) -> list[int]:
        """Held frames (bound to nobody) received before `wall_ns`, oldest first."""
        rows = self._conn.execute(
            "SELECT f.id FROM outbox o JOIN raw_frame f ON f.id = o.raw_frame_id"
            " WHERE o.status = ? AND f.received_wall_ns < ? ORDER BY f.id LIMIT ?",
            (OUTBOX_HELD, wall_ns, limit),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def frames_of(self, patient_id: int) -> list[int]:
        """The frames bound to the resident's visits."""
        rows = self._conn.execute(
            "SELECT id FROM raw_frame WHERE encounter_id IN"
            " (SELECT id FROM encounter WHERE patient_id = ?)"
            " UNION SELECT raw_frame_id FROM observation WHERE encounter_id IN"
            " (SELECT id FROM encounter WHERE patient_id = ?)"
            " UNION SELECT raw_frame_id FROM waveform_segment WHERE encounter_id IN"
            " (SELECT id FROM encounter WHERE patient_id = ?) ORDER BY 1",
            (patient_id, patient_id, patient_id),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def delivered_residents(self, delivered_before_wall_ns: int) -> list[int]:
        """Residents not yet pseudonymised with at least one visit, none of them open,
        every outbox row of their frames delivered (ACK AA), the last before the time."""
        rows = self._conn.execute(
            "SELECT p.id FROM patient p WHERE p.pseudonym IS NULL"
            " AND EXISTS (SELECT 1 FROM encounter e WHERE e.patient_id = p.id)"
            " AND NOT EXISTS (SELECT 1 FROM encounter e WHERE e.patient_id = p.id"
            "  AND e.ended_wall_ns IS NULL)"
            " ORDER BY p.id"
        ).fetchall()
        ready = []
        for (patient_id,) in rows:
            frames = self.frames_of(int(patient_id))
            if not frames:
                continue
            found = self._conn.execute(
                f"SELECT COUNT(*), SUM(status != ?), MAX(delivered_wall_ns) FROM outbox"
                f" WHERE raw_frame_id IN ({_marks(frames)})",
                (OUTBOX_DELIVERED, *frames),
            ).fetchone()
            count, undelivered, last = found
            if count and not undelivered and last is not None and last < delivered_before_wall_ns:
                ready.append(int(patient_id))
        return ready


class KioskRetention(KioskRetentionReader):
    def purge_frames(self, frame_ids: Sequence[int]) -> int:
        """The frames and every row made from them, deleted; how many frames."""
        if not frame_ids:
            return 0
        marks = _marks(frame_ids)
        for table in FRAME_TABLES:
            self._conn.execute(f"DELETE FROM {table} WHERE raw_frame_id IN ({marks})", frame_ids)
        cur = self._conn.execute(f"DELETE FROM raw_frame WHERE id IN ({marks})", frame_ids)
        return cur.rowcount

    def forget_identity_in_frames(
        self, frame_ids: Sequence[int], identity_drivers: Sequence[str]
    ) -> None:
        """What the frames carried about who the patient was: the bytes of a frame of a
        driver whose frames carry identity (an HL7 PID, a 12-lead file's patient) or
        whose source named a patient, emptied (plain, `sealed_key` NULL: nothing left to
        seal) and so is the name a 12-lead file had (its channel); who the monitor named
        (`frame_source`); the delivered HL7 in the outbox (its PID). The readings stay."""
        if not frame_ids:
            return
        marks = _marks(frame_ids)
        drivers = ", ".join("?" * len(identity_drivers)) or "NULL"
        self._conn.execute(
            "UPDATE raw_frame SET channel = NULL, channel_key = NULL"
            f" WHERE id IN ({marks}) AND driver IN ({drivers})",
            (*frame_ids, *identity_drivers),
        )
        self._conn.execute(
            f"UPDATE raw_frame SET data = x'', sealed_key = NULL WHERE id IN ({marks}) AND"
            f" (driver IN ({drivers}) OR id IN (SELECT raw_frame_id FROM frame_source"
            "  WHERE patient_sealed IS NOT NULL OR patient_identifier IS NOT NULL"
            "  OR patient_name IS NOT NULL OR patient_national_id IS NOT NULL))",
            (*frame_ids, *identity_drivers),
        )
        self._conn.execute(
            "UPDATE frame_source SET patient_sealed = NULL, patient_identifier = NULL,"
            " patient_authority = NULL, patient_id_type = NULL, patient_name = NULL,"
            " patient_birth_date = NULL, patient_national_id = NULL"
            f" WHERE raw_frame_id IN ({marks})",
            frame_ids,
        )
        self._conn.execute(
            f"UPDATE outbox SET payload = NULL WHERE raw_frame_id IN ({marks}) AND status = ?",
            (*frame_ids, OUTBOX_DELIVERED),
        )

    def forget_kiosk_access(self, patient_id: int) -> None:
        """The resident's kiosk PIN and sessions (their consent rows stay: the record)."""
        self._conn.execute("DELETE FROM resident_session WHERE patient_id = ?", (patient_id,))
        self._conn.execute("DELETE FROM resident_pin WHERE patient_id = ?", (patient_id,))
