"""Registering residents, opening visits (encounters) at a station, assigning readings.

Readings are bound to the visit open at that station when they are recorded; with no
open visit they stay unassigned (never guessed) until a doctor assigns them. Neither a
visit nor an assignment is made for a resident whose consent is withdrawn, on any box,
nor on a kiosk for one who never consented (edge_agent.consent.needed_to_bind). The
`patients`, `visit start|end` and `readings` commands are thin calls into these
functions: the changes through edge_agent.operations, the lists on a read-only store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_agent import consent, national_id
from edge_agent.clock import Clock
from edge_agent.model import Refused
from edge_agent.store import HeldFrame, PatientRow, StoreReader, StoreWriter

PATIENT_CLASSES = {"O": "outpatient", "E": "emergency", "I": "inpatient", "P": "preadmit"}


class PatientError(Refused):
    pass


@dataclass(frozen=True, slots=True)
class Registration:
    patient: PatientRow
    created: bool

    def as_json(self) -> dict[str, Any]:
        """What `patients add` prints (the phone stays out of the answer)."""
        p = self.patient
        return {
            "id": p.id,
            "national_id": p.national_id,
            "name": p.name,
            "sex": p.sex,
            "birth_date": p.birth_date,
            "created": self.created,
        }


def residents(store: StoreReader) -> list[dict[str, Any]]:
    """Every registered resident, as `patients list` prints them."""
    return [
        {
            "id": p.id,
            "national_id": p.national_id,
            "name": p.name,
            "sex": p.sex,
            "birth_date": p.birth_date,
            "phone": p.phone,
        }
        for p in store.patients.all()
    ]


def find_by_phone(store: StoreReader, phone: str) -> list[PatientRow]:
    """The residents registered with this phone (its digits compared), by blind index."""
    return store.patients.by_phone(phone)


def held_readings(store: StoreReader, device: str | None = None) -> list[HeldFrame]:
    """Readings that wait for a doctor to say whose they are (`readings unassigned`):
    taken with no visit open, or from a monitor naming another resident."""
    return store.outbox.held_frames(device)


def register(
    store: StoreWriter,
    clock: Clock,
    *,
    national_id_number: str,
    name: str,
    phone: str | None = None,
) -> Registration:
    """Add a resident; the same national id twice returns the existing record."""
    parsed = national_id.parse(national_id_number)
    clean_name = name.strip()
    if not clean_name:
        raise PatientError("patient name: must not be empty")
    if len(clean_name) > 64:
        raise PatientError("patient name: longer than 64 characters")
    if phone is not None and not phone.replace("-", "").replace("+", "").isdigit():
        raise PatientError("patient phone: digits only (with optional + and -)")
    with store.transaction():
        existing = store.patients.by_national_id(parsed.number)
        if existing is not None:
            return Registration(existing, created=False)
        patient_id = store.patients.add(
            national_id=parsed.number,
            name=clean_name,
            phone=phone,
            sex=parsed.sex,
            birth_date=parsed.birth_date.isoformat(),
            wall_ns=clock.wall_ns(),
        )
    row = store.patients.get(patient_id)
    assert row is not None
    return Registration(row, created=True)


def start_visit(
    store: StoreWriter,
    clock: Clock,
    *,
    national_id_number: str,
    station: str = "*",
    patient_class: str = "O",
    kiosk: bool = False,
) -> int:
    """A visit opened for the resident at `station`: not for one whose consent is
    withdrawn, and on a kiosk box (`kiosk`) only for one whose consent stands
    (edge_agent.consent)."""
    if patient_class not in PATIENT_CLASSES:
        raise PatientError(f"patient class {patient_class!r}: one of {', '.join(PATIENT_CLASSES)}")
    number = national_id.parse(national_id_number).number
    with store.transaction():
        patient = _registered(store, number, "visit.start", kiosk=kiosk)
        return store.patients.open_encounter(
            patient_id=patient.id,
            station=station,
            patient_class=patient_class,
            wall_ns=clock.wall_ns(),
        )


def _registered(store: StoreWriter, number: str, op: str, *, kiosk: bool) -> PatientRow:
    """The resident `number` names, if readings may be bound to them for `op` (the
    operation asking): not withdrawn, and on a kiosk box consenting (edge_agent.consent)."""
    patient = store.patients.by_national_id(number)
    if patient is None:
        raise PatientError("national id: not registered (edge-agent patients add)")
    consent.needed_to_bind(store, patient.id, op, kiosk=kiosk)
    return patient


def end_visit(store: StoreWriter, clock: Clock, *, station: str = "*") -> int:
    with store.transaction():
        return store.patients.close_encounters(station, clock.wall_ns())


def assign_readings(
    store: StoreWriter,
    clock: Clock,
    *,
    national_id_number: str,
    frame_ids: list[int],
    patient_class: str = "O",
    kiosk: bool = False,
) -> int:
    """A doctor says whose held readings these are: they join a visit and go up.

    The visit is recorded as already ended (it happened when the readings were taken);
    frames that are not held (unknown, already assigned) are left alone and not counted.
    """
    if patient_class not in PATIENT_CLASSES:
        raise PatientError(f"patient class {patient_class!r}: one of {', '.join(PATIENT_CLASSES)}")
    if not frame_ids:
        raise PatientError(
            "readings assign: name the frames (see `edge-agent readings unassigned`)"
        )
    number = national_id.parse(national_id_number).number
    with store.transaction():
        patient = _registered(store, number, "readings.assign", kiosk=kiosk)
        held = {row["frame_id"]: row for row in store.outbox.held_frames()}
        wanted = [f for f in frame_ids if f in held]
        if not wanted:
            raise PatientError(
                f"readings assign: none of frames {', '.join(map(str, frame_ids))} is waiting"
            )
        stations = {held[f]["device_id"] for f in wanted}
        encounter_id = store.patients.open_encounter(
            patient_id=patient.id,
            station=stations.pop() if len(stations) == 1 else "*",
            patient_class=patient_class,
            wall_ns=min(held[f]["received_wall_ns"] for f in wanted),
            ended_wall_ns=clock.wall_ns(),
        )
        assigned = 0
        for frame_id in wanted:
            # Only a frame still held is bound and released (a second assign is a no-op).
            if store.outbox.release_held(frame_id):
                store.frames.assign_encounter(frame_id, encounter_id)
                assigned += 1
        return assigned
