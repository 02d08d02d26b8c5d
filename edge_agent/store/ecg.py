"""What a 12-lead cart's file says beyond its samples: its statements and its context.

The leads themselves are waveform segments of the file's frame (edge_agent.store.frames);
here are the cart's interpretation statements word for word, in their order
(`statement`), and the cart's model with the patient's sex and age as the cart was told
them (`ecg_context`): what the ER's sheet and the ORU^R01 carry besides the leads.

A statement is the cart's free text, and a cart may write the patient into it: it is
stored sealed (edge_agent.store.sealing, `statement.sealed_key`; plain by a writer
without keys, until the sealing pass) and opened when read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from edge_agent.model import Frame, RecordingContext, Statement
from edge_agent.store.sealing import Sealing

STATEMENT_PLACE = "statement.text"


class EcgReader:
    def __init__(self, conn: sqlite3.Connection, sealing: Sealing | None = None) -> None:
        self._conn = conn
        self._sealing = sealing or Sealing(None)

    def statements(self, raw_frame_id: int) -> list[Statement]:
        """The cart's statements in order, opened (PersonalDataLocked without keys)."""
        rows = self._conn.execute(
            "SELECT text, code, sealed_key FROM statement WHERE raw_frame_id = ? ORDER BY seq",
            (raw_frame_id,),
        ).fetchall()
        return [Statement(self._sealing.open_text(STATEMENT_PLACE, r[0], r[2]), r[1]) for r in rows]

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
            " received_wall_ns, sealed_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    raw_frame_id,
                    frame.device_id,
                    encounter_id,
                    n,
                    self._sealing.text(STATEMENT_PLACE, s.text),
                    s.code,
                    frame.received_wall_ns,
                    self._sealing.key_id,
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
