"""What the crew or the doctor enters by hand at a station, recorded as the box records
a device's frame: NEWS2's observations no device measures (`edge-agent visit observe`)
and the pre-arrival notice to the receiving ER (`edge-agent prealert`).

An entry is dated like a frame from its station (the box's wall and monotonic time and
its boot id), so it orders with the readings it goes with, and it takes the paths a
device's data takes: the rules' NEWS2 reassessment (new confusion alone is 3 points in
the RCP's NEWS2 scoring-system chart, 2017), the recorder's pre-arrival notice (ADT^A14,
the same one a cart's STEMI 12-lead sends by itself). Both are operations (edge_agent.operations): the daemon does
them on its loop, or a command under the writer lock when no daemon runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.clock import Clock
from edge_agent.model import Frame, Refused
from edge_agent.recorder import Recorder
from edge_agent.rules.engine import ClinicalRules, news2_subject
from edge_agent.rules.news2 import ACVPU, News2Result
from edge_agent.store import StoreWriter

CREW = "crew"  # the "driver" of an entry's frame: a person, not a device
MAX_ETA_MINUTES = 24 * 60


class EntryError(Refused):
    """An entry that cannot be recorded as given: one line naming the option."""


def _entry(clock: Clock, station: str) -> Frame:
    """The time and boot an entry's rows are dated with, as a frame's would be."""
    return Frame(station, CREW, b"", clock.wall_ns(), clock.mono_ns(), clock.boot_id)


# --- visit observe --------------------------------------------------------------------


def check_observation(scale: int | None, oxygen: bool | None, acvpu: str | None) -> None:
    """EntryError unless the entry says something NEWS2 can use: a scale of 1 or 2,
    air or oxygen, an ACVPU letter (at least one of them)."""
    if scale is None and oxygen is None and acvpu is None:
        raise EntryError("visit observe: give --spo2-scale, --o2/--air or --acvpu")
    if scale not in (None, 1, 2):
        raise EntryError("visit observe: the SpO2 scale is 1 or 2")
    if acvpu is not None and acvpu.upper() not in ACVPU:
        raise EntryError("visit observe: ACVPU is one of A C V P U")


@dataclass(frozen=True, slots=True)
class Observed:
    subject: str  # whose NEWS2 it is (rules.engine.news2_subject): the visit, or the box
    news2: News2Result  # the score now, the entry included


def observe(
    store: StoreWriter,
    clock: Clock,
    rules: ClinicalRules,
    *,
    station: str,
    scale: int | None,
    oxygen: bool | None,
    acvpu: str | None,
    by: str,
) -> Observed:
    """Record the SpO2 scale, air/oxygen and ACVPU for the visit open at `station` (else
    for the box's patient), reassess NEWS2 (raising or ending its alert) and score it."""
    check_observation(scale, oxygen, acvpu)
    with store.transaction():
        encounter = store.patients.current_encounter(station)
        encounter_id = None if encounter is None else encounter.id
        entry = _entry(clock, station)
        subject = news2_subject(encounter_id)
        store.patients.add_news2_observation(
            subject,
            scale=scale,
            oxygen=oxygen,
            acvpu=None if acvpu is None else acvpu.upper(),
            by=by,
            wall_ns=entry.received_wall_ns,
        )
        rules.reassess_news2(store, entry, encounter_id)
        score = rules.news2_now(store, entry.received_wall_ns, encounter_id)
    return Observed(subject, score)


# --- prealert -------------------------------------------------------------------------


def prealert(
    store: StoreWriter,
    clock: Clock,
    *,
    destination: str,
    complaint: str,
    eta_minutes: int | None,
    stemi: bool,
    station: str,
) -> str:
    """The crew's pre-arrival notice (ADT^A14) about the visit open at `station`, first
    in the outbox; its MSH-10. A notice the crew marks STEMI says so in its complaint."""
    if eta_minutes is not None and not 0 <= eta_minutes <= MAX_ETA_MINUTES:
        raise EntryError(f"prealert --eta {eta_minutes}: minutes from now, 0 to {MAX_ETA_MINUTES}")
    complaint = complaint.strip()
    if not complaint:
        raise EntryError("prealert --complaint: say why the patient is coming (e.g. 胸痛2小时)")
    destination = destination.strip()
    if not destination:
        raise EntryError("prealert --destination: name the receiving ER")
    if stemi and "STEMI" not in complaint.upper():
        complaint = f"STEMI: {complaint}"
    with store.transaction():
        encounter = store.patients.current_encounter(station)
        return Recorder(store).prealert(
            _entry(clock, station),
            encounter_id=None if encounter is None else encounter.id,
            ecg_frame_id=None,
            stemi=stemi,
            source=CREW,
            complaint=complaint,
            destination=destination,
            eta_minutes=eta_minutes,
        )
