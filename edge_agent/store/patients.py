"""Residents, their visits (encounters) and what the crew observed for NEWS2.

A visit is open at a station (a device id, or '*' for the whole box); readings are
bound to the visit open where they were taken when they are recorded. Air/oxygen,
ACVPU and the SpO2 scale come from people, not devices (`edge-agent visit observe`):
the scale stays with the patient, the others age out with the NEWS2 window.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PatientRow:
    id: int
    national_id: str
    name: str
    phone: str | None
    sex: str | None
    birth_date: str | None


@dataclass(frozen=True, slots=True)
class EncounterRow:
    id: int
    patient_id: int
    station: str
    patient_class: str


@dataclass(frozen=True, slots=True)
class News2Context:
    """What NEWS2 takes from people for a subject (rules.news2): the SpO2 scale (1 or
    2), on oxygen (None: not observed within the window), ACVPU (None: likewise)."""

    scale: int
    oxygen: bool | None
    acvpu: str | None


_PATIENT_COLUMNS = "id, national_id, name, phone, sex, birth_date"
_ENCOUNTER_COLUMNS = "id, patient_id, station, patient_class"


class PatientsReader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, patient_id: int) -> PatientRow | None:
        row = self._conn.execute(
            f"SELECT {_PATIENT_COLUMNS} FROM patient WHERE id = ?", (patient_id,)
        ).fetchone()
        return None if row is None else PatientRow(*row)

    def by_national_id(self, national_id: str) -> PatientRow | None:
        row = self._conn.execute(
            f"SELECT {_PATIENT_COLUMNS} FROM patient WHERE national_id = ?", (national_id,)
        ).fetchone()
        return None if row is None else PatientRow(*row)

    def all(self) -> list[PatientRow]:
        rows = self._conn.execute(f"SELECT {_PATIENT_COLUMNS} FROM patient ORDER BY id").fetchall()
        return [PatientRow(*r) for r in rows]

    def current_encounter(self, device_id: str) -> EncounterRow | None:
        """The open visit for this device, or for the whole box ('*'); never guessed."""
        row = self._conn.execute(
            f"SELECT {_ENCOUNTER_COLUMNS} FROM encounter"
            " WHERE ended_wall_ns IS NULL AND station IN (?, '*')"
            " ORDER BY station = '*', started_wall_ns DESC LIMIT 1",
            (device_id,),
        ).fetchone()
        return None if row is None else EncounterRow(*row)

    def encounter(self, encounter_id: int) -> EncounterRow | None:
        row = self._conn.execute(
            f"SELECT {_ENCOUNTER_COLUMNS} FROM encounter WHERE id = ?", (encounter_id,)
        ).fetchone()
        return None if row is None else EncounterRow(*row)

    def news2_context(self, subject: str, since_wall_ns: int) -> News2Context:
        """For a subject: the newest scale ever set (1 by default: a property of the
        patient), and the newest air/oxygen and ACVPU observed since then (older ones
        are stale: missing, never assumed)."""
        one = self._conn.execute
        scale = one(
            "SELECT scale FROM news2_observation WHERE subject = ? AND scale IS NOT NULL"
            " ORDER BY observed_wall_ns DESC, id DESC LIMIT 1",
            (subject,),
        ).fetchone()
        oxygen = one(
            "SELECT oxygen FROM news2_observation WHERE subject = ? AND oxygen IS NOT NULL"
            " AND observed_wall_ns >= ? ORDER BY observed_wall_ns DESC, id DESC LIMIT 1",
            (subject, since_wall_ns),
        ).fetchone()
        acvpu = one(
            "SELECT acvpu FROM news2_observation WHERE subject = ? AND acvpu IS NOT NULL"
            " AND observed_wall_ns >= ? ORDER BY observed_wall_ns DESC, id DESC LIMIT 1",
            (subject, since_wall_ns),
        ).fetchone()
        return News2Context(
            scale=int(scale[0]) if scale else 1,
            oxygen=None if oxygen is None else bool(oxygen[0]),
            acvpu=None if acvpu is None else str(acvpu[0]),
        )


class Patients(PatientsReader):
    def add(
        self,
        *,
        national_id: str,
        name: str,
        phone: str | None,
        sex: str | None,
        birth_date: str | None,
        wall_ns: int,
    ) -> int:
        cur = self._conn.execute(
            "INSERT INTO patient (national_id, name, phone, sex, birth_date, created_wall_ns)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (national_id, name, phone, sex, birth_date, wall_ns),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def open_encounter(
        self,
        *,
        patient_id: int,
        station: str,
        patient_class: str,
        wall_ns: int,
        ended_wall_ns: int | None = None,
    ) -> int:
        """Start a visit; any open visit at the same station ends now (one patient at a time).

        With `ended_wall_ns` it is a visit recorded afterwards (readings assigned later):
        it leaves the station's open visit alone.
        """
        if ended_wall_ns is None:
            self.close_encounters(station, wall_ns)
        cur = self._conn.execute(
            "INSERT INTO encounter (patient_id, station, patient_class, started_wall_ns,"
            " ended_wall_ns) VALUES (?, ?, ?, ?, ?)",
            (patient_id, station, patient_class, wall_ns, ended_wall_ns),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def close_encounters(self, station: str, wall_ns: int) -> int:
        cur = self._conn.execute(
            "UPDATE encounter SET ended_wall_ns = ? WHERE station = ? AND ended_wall_ns IS NULL",
            (wall_ns, station),
        )
        return cur.rowcount

    def add_news2_observation(
        self,
        subject: str,
        *,
        scale: int | None,
        oxygen: bool | None,
        acvpu: str | None,
        by: str | None,
        wall_ns: int,
    ) -> None:
        self._conn.execute(
            "INSERT INTO news2_observation (subject, scale, oxygen, acvpu, observed_by,"
            " observed_wall_ns) VALUES (?, ?, ?, ?, ?, ?)",
            (subject, scale, None if oxygen is None else int(oxygen), acvpu, by, wall_ns),
        )
