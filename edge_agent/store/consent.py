"""Residents' consent to their health data (`consent_event`), their kiosk PINs
(`resident_pin`) and kiosk sessions (`resident_session`), migration 13.

Written by edge_agent.consent and edge_agent.kiosk_sign_in only. A consent event is
appended, never changed (SQLite triggers refuse UPDATE and DELETE): a withdrawal is a
new row. A PIN is stored only as its scrypt hash, a session only as its token's digest.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    id: int
    patient_id: int
    action: str  # "give" | "withdraw"
    text_version: str
    text_sha256: str
    wall_ns: int
    by_user: str
    by_role: str


@dataclass(frozen=True, slots=True)
class ResidentPin:
    patient_id: int
    pin_hash: str
    failed_attempts: int
    locked_until_wall_ns: int | None


@dataclass(frozen=True, slots=True)
class ResidentSession:
    token_hash: str
    patient_id: int
    last_used_mono_ns: int
    boot_id: str
    ended: bool


_EVENT_COLUMNS = "id, patient_id, action, text_version, text_sha256, wall_ns, by_user, by_role"


class ConsentReader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def events(self, patient_id: int) -> list[ConsentEvent]:
        rows = self._conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM consent_event WHERE patient_id = ? ORDER BY id",
            (patient_id,),
        ).fetchall()
        return [ConsentEvent(*row) for row in rows]

    def latest(self, patient_id: int) -> ConsentEvent | None:
        row = self._conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM consent_event WHERE patient_id = ?"
            " ORDER BY id DESC LIMIT 1",
            (patient_id,),
        ).fetchone()
        return None if row is None else ConsentEvent(*row)

    def pin(self, patient_id: int) -> ResidentPin | None:
        row = self._conn.execute(
            "SELECT patient_id, pin_hash, failed_attempts, locked_until_wall_ns"
            " FROM resident_pin WHERE patient_id = ?",
            (patient_id,),
        ).fetchone()
        return None if row is None else ResidentPin(*row)

    def session(self, token_hash: str) -> ResidentSession | None:
        row = self._conn.execute(
            "SELECT token_hash, patient_id, last_used_mono_ns, boot_id, ended"
            " FROM resident_session WHERE token_hash = ?",
            (token_hash,),
        ).fetchone()
        if row is None:
            return None
        return ResidentSession(row[0], row[1], row[2], row[3], bool(row[4]))


class Consent(ConsentReader):
    def record(
        self,
        patient_id: int,
        action: str,
        *,
        text_version: str,
        text_sha256: str,
        wall_ns: int,
        by_user: str,
        by_role: str,
    ) -> int:
        cur = self._conn.execute(
            "INSERT INTO consent_event (patient_id, action, text_version, text_sha256,"
            " wall_ns, by_user, by_role) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (patient_id, action, text_version, text_sha256, wall_ns, by_user, by_role),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def set_pin(self, patient_id: int, pin_hash: str, wall_ns: int) -> None:
        self._conn.execute(
            "INSERT INTO resident_pin (patient_id, pin_hash, failed_attempts, set_wall_ns)"
            " VALUES (?, ?, 0, ?) ON CONFLICT (patient_id) DO UPDATE SET"
            " pin_hash = excluded.pin_hash, failed_attempts = 0, locked_until_wall_ns = NULL,"
            " set_wall_ns = excluded.set_wall_ns",
            (patient_id, pin_hash, wall_ns),
        )
        self.end_sessions(patient_id)

    def record_failure(
        self, patient_id: int, failed: int, locked_until_wall_ns: int | None
    ) -> None:
        self._conn.execute(
            "UPDATE resident_pin SET failed_attempts = ?, locked_until_wall_ns = ?"
            " WHERE patient_id = ?",
            (failed, locked_until_wall_ns, patient_id),
        )

    def record_success(self, patient_id: int) -> None:
        self._conn.execute(
            "UPDATE resident_pin SET failed_attempts = 0, locked_until_wall_ns = NULL"
            " WHERE patient_id = ?",
            (patient_id,),
        )

    def start_session(
        self, token_hash: str, patient_id: int, *, wall_ns: int, mono_ns: int, boot_id: str
    ) -> None:
        self._conn.execute(
            "INSERT INTO resident_session (token_hash, patient_id, started_wall_ns,"
            " last_used_mono_ns, boot_id, ended) VALUES (?, ?, ?, ?, ?, 0)",
            (token_hash, patient_id, wall_ns, mono_ns, boot_id),
        )

    def touch_session(self, token_hash: str, mono_ns: int) -> None:
        self._conn.execute(
            "UPDATE resident_session SET last_used_mono_ns = ? WHERE token_hash = ?",
            (mono_ns, token_hash),
        )

    def end_session(self, token_hash: str) -> None:
        """One session ended (a card taken off the kiosk's reader)."""
        self._conn.execute(
            "UPDATE resident_session SET ended = 1 WHERE token_hash = ?", (token_hash,)
        )

    def end_sessions(self, patient_id: int) -> None:
        self._conn.execute(
            "UPDATE resident_session SET ended = 1 WHERE patient_id = ?", (patient_id,)
        )
