"""What a 12-lead cart's file says beyond its samples: its statements and its context.

The leads themselves are waveform segments of the file's frame (edge_agent.store.frames);
here are the cart's interpretation statements word for word, in their order
(`statement`), and the cart's model with the patient's sex and age as the cart was told
them (`ecg_context`): what the ER's sheet and the ORU^R01 carry besides the leads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from edge_agent.model import Frame, RecordingContext, Statement


class EcgReader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def statements(self, raw_frame_id: int) -> list[Statement]:
        rows = self._conn.execute(
            "SELECT text, code FROM statement WHERE raw_frame_id = ? ORDER BY seq",
            (raw_frame_id,),
        ).fetchall()
        return [Statement(r[0], r[1]) for r in rows]

    def context(self, raw_frame_id: int) -> RecordingContext | None:
        row = self._conn.execute(
            "SELECT device_model, patient_sex, patient_age, patient_age_unit FROM ecg_context"
            " WHERE raw_frame_id = ?",
            (raw_frame_id,),
        ).fetchone()
        return None if row is None else RecordingContext(row[0], row[1], row[2], row[3])


class Ecg(EcgReader):
    def insert_statements(
        self,
        raw_frame_id: int,
        frame: Frame,
        encounter_id: int | None,
        statements: Sequence[Statement],
    ) -> None:
        self._conn.executemany(
            "INSERT INTO statement (raw_frame_id, device_id, encounter_id, seq, text, code,"
            " received_wall_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    raw_frame_id,
                    frame.device_id,
                    encounter_id,
                    n,
                    s.text,
                    s.code,
                    frame.received_wall_ns,
                )
                for n, s in enumerate(statements)
            ],
        )

    def insert_context(self, raw_frame_id: int, context: RecordingContext) -> None:
        self._conn.execute(
            "INSERT INTO ecg_context (raw_frame_id, device_model, patient_sex, patient_age,"
            " patient_age_unit) VALUES (?, ?, ?, ?, ?)",
            (
                raw_frame_id,
                context.device_model,
                context.patient_sex,
                context.patient_age,
                context.patient_age_unit,
            ),
        )
