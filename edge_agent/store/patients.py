"""Residents, their visits (encounters) and what the crew observed for NEWS2.

A visit is open at a station (a device id, or '*' for the whole box); readings are
bound to the visit open where they were taken when they are recorded. Air/oxygen,
ACVPU and the SpO2 scale come from people, not devices (`edge-agent visit observe`):
the scale stays with the patient, the others age out with the NEWS2 window.

A resident's national id, name and phone are stored sealed (edge_agent.crypto.sealed,
each value's place its column: "patient.name") and found by keyed blind indexes; the
keyring is the store's, given by whoever opened it. `sealed_key` names the key all
three of a row are sealed under; NULL marks a row written before sealing (migration 9),
which the sealing pass (`reseal_stale`, edge_agent.key_rotation) seals. A store opened
without keys reads visits but not who they are: PersonalDataLocked, never ciphertext.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge_agent.crypto import sealed
from edge_agent.crypto.keyring import Keyring
from edge_agent.crypto.suites import SealError


class PersonalDataLocked(RuntimeError):
    """Personal data asked of a store opened without the keyring."""


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
class StationVisit:
    """What binds a device's readings now (PatientsReader.station_visit): the open
    visit (None: none), and whether a withdrawal of consent stands over the open visit's
    resident, or ended the station's last visit."""

    open: EncounterRow | None
    withdrawn: bool


@dataclass(frozen=True, slots=True)
class News2Context:
    """What NEWS2 takes from people for a subject (rules.news2): the SpO2 scale (1 or
    2), on oxygen (None: not observed within the window), ACVPU (None: likewise)."""

    scale: int
    oxygen: bool | None
    acvpu: str | None


NATIONAL_ID_PLACE = "patient.national_id"
NAME_PLACE = "patient.name"
PHONE_PLACE = "patient.phone"
PLAIN = "plain"  # how key counts name rows not sealed yet

_PATIENT_COLUMNS = "id, national_id, name, phone, sex, birth_date, sealed_key"
_ENCOUNTER_COLUMNS = "id, patient_id, station, patient_class"
_Stored = tuple[int, str, str, str | None, str | None, str | None, str | None]


class PatientsReader:
    def __init__(
        self, conn: sqlite3.Connection, keys: Keyring | None = None, no_keys: str | None = None
    ) -> None:
        """`no_keys`: why there is no keyring (the key file's error), for the refusal."""
        self._conn = conn
        self._keyring = keys
        self._no_keys = no_keys

    def _keys(self) -> Keyring:
        if self._keyring is None:
            raise PersonalDataLocked(
                "personal data stays sealed in a store opened without keys"
                f" ({self._no_keys or 'none given'})"
            )
        return self._keyring

    def _opened(self, row: _Stored) -> PatientRow:
        patient_id, national_id, name, phone, sex, birth_date, key_id = row
        keys = self._keys()
        if key_id is None:  # written before migration 9, not yet sealed
            return PatientRow(patient_id, national_id, name, phone, sex, birth_date)
        try:
            return PatientRow(
                patient_id,
                sealed.open_value(keys, NATIONAL_ID_PLACE, national_id),
                sealed.open_value(keys, NAME_PLACE, name),
                None if phone is None else sealed.open_value(keys, PHONE_PLACE, phone),
                sex,
                birth_date,
            )
        except SealError as exc:
            raise SealError(f"patient {patient_id}: {exc}") from None

    def get(self, patient_id: int) -> PatientRow | None:
        row = self._conn.execute(
            f"SELECT {_PATIENT_COLUMNS} FROM patient WHERE id = ?", (patient_id,)
        ).fetchone()
        return None if row is None else self._opened(row)

    def by_national_id(self, national_id: str) -> PatientRow | None:
        """The resident with this number: by its blind index under every key (a rotation
        may be half done), or the plain number of a row not sealed yet."""
        keys = self._keys()
        indexes = sealed.blind_indexes(keys, sealed.NATIONAL_ID, national_id)
        marks = ", ".join("?" * len(indexes))
        row = self._conn.execute(
            f"SELECT {_PATIENT_COLUMNS} FROM patient WHERE national_id_index IN ({marks})"
            " OR (sealed_key IS NULL AND national_id = ?) ORDER BY id LIMIT 1",
            (*indexes, sealed.normalised(sealed.NATIONAL_ID, national_id)),
        ).fetchone()
        return None if row is None else self._opened(row)

    def by_phone(self, phone: str) -> list[PatientRow]:
        """Everyone registered with this phone (its digits: "138-0013-8000" is
        "13800138000"), found by its blind index; rows not sealed yet are compared
        opened."""
        keys = self._keys()
        indexes = sealed.blind_indexes(keys, sealed.PHONE, phone)
        marks = ", ".join("?" * len(indexes))
        rows = self._conn.execute(
            f"SELECT {_PATIENT_COLUMNS} FROM patient WHERE phone_index IN ({marks}) ORDER BY id",
            indexes,
        ).fetchall()
        found = [self._opened(r) for r in rows]
        digits = sealed.normalised(sealed.PHONE, phone)
        plain = self._conn.execute(
            f"SELECT {_PATIENT_COLUMNS} FROM patient WHERE sealed_key IS NULL"
            " AND phone IS NOT NULL ORDER BY id"
        ).fetchall()
        found += [self._opened(r) for r in plain if sealed.normalised(sealed.PHONE, r[3]) == digits]
        return sorted(found, key=lambda p: p.id)

    def all(self) -> list[PatientRow]:
        rows = self._conn.execute(f"SELECT {_PATIENT_COLUMNS} FROM patient ORDER BY id").fetchall()
        return [self._opened(r) for r in rows]

    def values_per_key(self) -> dict[str, int]:
        """How many personal values each key id seals (`plain`: not sealed yet): the
        progress of a rotation. Needs no keys."""
        rows = self._conn.execute(
            "SELECT COALESCE(sealed_key, ?), SUM(2 + (phone IS NOT NULL)) FROM patient"
            " GROUP BY 1 ORDER BY 1",
            (PLAIN,),
        ).fetchall()
        return {str(k): int(n) for k, n in rows}

    def stale_count(self, active_id: str) -> int:
        """Rows not sealed under `active_id` (plain ones included)."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM patient WHERE sealed_key IS NULL OR sealed_key != ?",
            (active_id,),
        ).fetchone()
        return int(row[0])

    def current_encounter(self, device_id: str) -> EncounterRow | None:
        """The open visit for this device, or for the whole box ('*'); never guessed."""
        row = self._conn.execute(
            f"SELECT {_ENCOUNTER_COLUMNS} FROM encounter"
            " WHERE ended_wall_ns IS NULL AND station IN (?, '*')"
            " ORDER BY station = '*', started_wall_ns DESC LIMIT 1",
            (device_id,),
        ).fetchone()
        return None if row is None else EncounterRow(*row)

    def station_visit(self, device_id: str) -> StationVisit:
        """What binds this device's readings, in one look at the visits: the visit open
        at its station or the box's (as current_encounter), else the last one there, with
        whether its resident's consent stands withdrawn over it.

        A withdrawal ends its resident's open visits at its own time (edge_agent.consent:
        one clock reading for both rows, in one transaction), so a visit ended by it is
        one whose end is not before the resident's last consent event, a withdrawal."""
        row = self._conn.execute(
            "SELECT e.id, e.patient_id, e.station, e.patient_class, e.ended_wall_ns IS NULL,"
            " (SELECT c.action = 'withdraw' AND (e.ended_wall_ns IS NULL"
            " OR e.ended_wall_ns >= c.wall_ns) FROM consent_event AS c"
            " WHERE c.patient_id = e.patient_id ORDER BY c.id DESC LIMIT 1)"
            " FROM (SELECT id, patient_id, station, patient_class, ended_wall_ns FROM encounter"
            " WHERE station IN (?, '*') ORDER BY ended_wall_ns IS NULL DESC,"
            " CASE WHEN ended_wall_ns IS NULL THEN station = '*' END,"
            " started_wall_ns DESC, id DESC LIMIT 1) AS e",
            (device_id,),
        ).fetchone()
        if row is None:
            return StationVisit(None, withdrawn=False)
        encounter = EncounterRow(*row[:4])
        return StationVisit(encounter if row[4] else None, withdrawn=bool(row[5]))

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


def _sealed_columns(
    keys: Keyring, national_id: str, name: str, phone: str | None
) -> tuple[str, str, str | None, str, str | None, str]:
    """national_id, name, phone sealed; their indexes; the key id."""
    return (
        sealed.seal(keys, NATIONAL_ID_PLACE, national_id),
        sealed.seal(keys, NAME_PLACE, name),
        None if phone is None else sealed.seal(keys, PHONE_PLACE, phone),
        sealed.blind_index(keys, sealed.NATIONAL_ID, national_id),
        None if phone is None else sealed.blind_index(keys, sealed.PHONE, phone),
        keys.active_id,
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
        columns = _sealed_columns(self._keys(), national_id, name, phone)
        cur = self._conn.execute(
            "INSERT INTO patient (national_id, name, phone, national_id_index, phone_index,"
            " sealed_key, sex, birth_date, created_wall_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*columns, sex, birth_date, wall_ns),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def reseal_stale(self, limit: int) -> int:
        """Seal under the active key up to `limit` rows that are plain or sealed under
        another key (their values opened with the key they name); how many. The caller's
        transaction makes a batch one unit: a batch killed half-way is not there."""
        keys = self._keys()
        rows = self._conn.execute(
            f"SELECT {_PATIENT_COLUMNS} FROM patient"
            " WHERE sealed_key IS NULL OR sealed_key != ? ORDER BY id LIMIT ?",
            (keys.active_id, limit),
        ).fetchall()
        for row in rows:
            p = self._opened(row)
            self._conn.execute(
                "UPDATE patient SET national_id = ?, name = ?, phone = ?, national_id_index = ?,"
                " phone_index = ?, sealed_key = ? WHERE id = ?",
                (*_sealed_columns(keys, p.national_id, p.name, p.phone), p.id),
            )
        return len(rows)

    def pseudonymise(self, patient_id: int, pseudonym: str) -> None:
        """The resident's national id, name and phone overwritten (edge_agent.
        kiosk_retention): the national id and name become the pseudonym, sealed like any
        value (so the sealing pass and every reader take the row as before), the phone
        and both blind indexes are dropped: the row is found by nobody's number again."""
        keys = self._keys()
        self._conn.execute(
            "UPDATE patient SET national_id = ?, name = ?, phone = NULL,"
            " national_id_index = NULL, phone_index = NULL, sealed_key = ?, pseudonym = ?"
            " WHERE id = ?",
            (
                sealed.seal(keys, NATIONAL_ID_PLACE, pseudonym),
                sealed.seal(keys, NAME_PLACE, pseudonym),
                keys.active_id,
                pseudonym,
                patient_id,
            ),
        )

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

    def close_encounters_of(self, patient_id: int, wall_ns: int) -> list[int]:
        """End every visit of the resident still open, at any station; their ids."""
        ids = [
            int(i)
            for (i,) in self._conn.execute(
                "SELECT id FROM encounter WHERE patient_id = ? AND ended_wall_ns IS NULL"
                " ORDER BY id",
                (patient_id,),
            )
        ]
        self._conn.execute(
            "UPDATE encounter SET ended_wall_ns = ? WHERE patient_id = ? AND ended_wall_ns IS NULL",
            (wall_ns, patient_id),
        )
        return ids

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
