"""Turn an outbox row and the readings it refers to into the HL7 text that goes up.

The message is built once, stored in the row, and every retry sends the same bytes:
the gateway dedups on MSH-10, and an identical payload keeps its audit trail simple.

Where each field comes from is docs/hl7.md. The rules that need the store live here;
how a stored reading, its device and its resident are reported is sync.reported_readings
(shared with a resident's HL7 export, edge_agent.export):
- Times: a device's explicit UTC offset is honoured; its naive wall clock is read in
  `agent.timezone` (edge_agent.clock.device_instant). A reading the recorder flagged
  `device-clock-skew` (the device's clock over 5 minutes off the box's synchronised
  one) is reported at the box's time of receipt, with the flag in OBX-8: the box places
  a device's data on its own synchronised timeline, as a PCHA/Continua gateway does with
  its coincident time stamp; the device's own time stays in the store beside it.
- Patient (PID/PV1): the visit the frame's readings were bound to; else, with no visit
  open, the patient the device itself named (an HL7 monitor's PID, forwarded); never
  one that conflicted with the open visit (those rows are held until assigned).
  ORU^R40 follows the same rule through the frame that raised the alert.
- Equipment (OBX-18): the EUI-64 the frame named, else the device's own (kept in
  `device.eui64`; a BLE address mapped EUI-48 -> EUI-64), else one derived for it
  (sync.hl7.eui64), kept in the device table from then on.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from device_drivers import registry
from device_drivers.declaration import Lane
from edge_agent.clock import device_instant, wall_datetime
from edge_agent.model import Waveform
from edge_agent.store import DeviceRow, OutboxRow, StoreWriter
from sync import reported_readings
from sync.hl7.adt import PrearrivalNotice, build_adt_a14
from sync.hl7.eui64 import normalise_eui64
from sync.hl7.pcd01 import (
    NATIONAL_ID_AUTHORITY,
    NATIONAL_ID_TYPE,
    DeviceIdentity,
    PatientIdentity,
    StoredWaveform,
    build_oru_r01,
)
from sync.hl7.pcd04 import AlertEvent, build_oru_r40

KIND_ADT_A14 = "adt_a14"  # edge_agent.recorder.KIND_ADT_A14
KIND_STRIP = "strip"  # edge_agent.strips.KIND_STRIP
KIND_ORU_R40 = "oru_r40"  # edge_agent.alerts.KIND_ORU_R40


def _whole_recording(driver: object) -> bool:
    """The frame is a whole recording (a 12-lead), sent up with its leads, statements
    and context (Driver.uplink.lane)."""
    spec = registry.DRIVERS.get(str(driver or ""))
    return spec is not None and spec.uplink.lane is Lane.RECORDING


class MessageBuildError(ValueError):
    """The row cannot become a message (its readings are gone, a code is unknown)."""


def build_message(
    store: StoreWriter, row: OutboxRow, *, agent_id: str, tz: str, now_wall_ns: int
) -> str:
    if row.kind == KIND_ADT_A14:
        return build_prearrival(store, row, agent_id=agent_id, tz=tz, now_wall_ns=now_wall_ns)
    if row.kind == KIND_STRIP:
        return build_strip(store, row, agent_id=agent_id, tz=tz, now_wall_ns=now_wall_ns)
    if row.kind == KIND_ORU_R40:
        return build_alert(store, row, agent_id=agent_id, tz=tz, now_wall_ns=now_wall_ns)
    if row.raw_frame_id is None:
        raise MessageBuildError(f"outbox {row.id}: no frame to report")
    observations = store.frames.observations(row.raw_frame_id)
    frame = store.frames.get(row.raw_frame_id)
    ecg = frame is not None and _whole_recording(frame.driver)
    # A 12-lead goes up whole: its leads and the cart's statements with its measurements.
    waveforms = store.frames.waveforms(row.raw_frame_id) if ecg else []
    statements = [s.text for s in store.ecg.statements(row.raw_frame_id)] if ecg else []
    # ... and the cart's model and the patient's sex and age as the cart had them.
    context = store.ecg.context(row.raw_frame_id) if ecg else None
    if not observations and not waveforms:
        raise MessageBuildError(f"outbox {row.id}: frame {row.raw_frame_id} has no readings")
    if observations:
        device_id, encounter_id = observations[0].device_id, observations[0].encounter_id
    else:
        assert frame is not None  # leads without readings: a 12-lead's frame (ecg above)
        device_id, encounter_id = frame.device_id, frame.encounter_id
    device = _device_identity(
        store,
        device_id,
        None if frame is None else frame.driver,
        agent_id=agent_id,
        named=store.frames.source_eui64(row.raw_frame_id),
    )
    patient = _frame_patient(store, row.raw_frame_id, encounter_id)
    received = (frame.received_wall_ns if frame is not None else 0) or now_wall_ns
    stored = [reported_readings.stored_observation(o, tz) for o in observations]
    try:
        message: str = build_oru_r01(
            control_id=row.id,
            agent_id=agent_id,
            sent_at=wall_datetime(now_wall_ns, tz),
            device=device,
            patient=patient,
            observations=stored,
            waveforms=[_stored_waveform(w, tz, received, row.id) for w in waveforms],
            statements=statements,
            context=context,
        )
    except KeyError as exc:
        raise MessageBuildError(f"outbox {row.id}: {exc.args[0]}") from None
    return message


def _device_identity(
    store: StoreWriter,
    device_id: str,
    driver: str | None,
    *,
    agent_id: str,
    named: str | None = None,
) -> DeviceIdentity:
    """The device and its EUI-64 (module docstring): `named` is the one its frame gave."""
    device_row = store.devices.get(device_id)
    eui64 = normalise_eui64(named) or stable_eui64(store, device_id, device_row, agent_id)
    return reported_readings.device_identity(device_id, device_row, driver, eui64)


def stable_eui64(
    store: StoreWriter, device_id: str, device_row: DeviceRow | None, agent_id: str
) -> str:
    """A device's EUI-64, made and kept the first time it is asked for: the stored one,
    else its BLE address's (EUI-48 -> EUI-64), else one derived from the agent's id and
    its own (sync.hl7.eui64). Kept in its device row; the box itself ("station", a rule
    alert's source) has none and gets the derived one, the same while `agent.id` is.
    `device_row` is its row as the caller read it (None: it has none)."""
    eui64, source = reported_readings.device_eui64(device_id, device_row, agent_id)
    if source is not None:
        store.devices.set_eui64(device_id, eui64, source=source)
    return eui64


def build_alert(
    store: StoreWriter, row: OutboxRow, *, agent_id: str, tz: str, now_wall_ns: int
) -> str:
    """An alert starting or ending (edge_agent.alerts), as IHE PCD-04 ORU^R40."""
    found = store.alerts.for_message(row.id)
    if found is None:
        raise MessageBuildError(f"outbox {row.id}: no alert for it")
    alert, phase = found.alert, found.phase
    # The patient the readings carry (module docstring): the alert's visit, else the
    # frame that raised it (a device alarm: the visit open for that device then, or the
    # patient the monitor named when none was).
    encounter_id = None
    if alert.subject and alert.subject.startswith("encounter:"):
        encounter_id = int(alert.subject.split(":", 1)[1])
    named_eui64 = None
    if encounter_id is not None or alert.raw_frame_id is None:
        patient = _patient(store, encounter_id)
    else:
        frame = store.frames.get(alert.raw_frame_id)
        patient = _frame_patient(
            store, alert.raw_frame_id, None if frame is None else frame.encounter_id
        )
        named_eui64 = store.frames.source_eui64(alert.raw_frame_id)
    at_ns = alert.raised_wall_ns if phase == "start" else alert.cleared_wall_ns or now_wall_ns
    try:
        return build_oru_r40(
            AlertEvent(
                control_id=row.id,
                agent_id=agent_id,
                sent_at=wall_datetime(now_wall_ns, tz),
                at=wall_datetime(at_ns, tz),
                phase=phase,
                code=alert.code,
                text=alert.text,
                text_en=alert.text_en,
                priority=alert.priority,
                physiological=alert.physiological,
                device=_device_identity(
                    store,
                    alert.device_id or "station",
                    None,
                    agent_id=agent_id,
                    named=named_eui64,
                ),
                patient=patient,
                metric=alert.metric,
                value=None if alert.value is None else Decimal(alert.value),
                unit=alert.unit,
            )
        )
    except KeyError as exc:
        raise MessageBuildError(f"outbox {row.id}: {exc.args[0]}") from None


def build_strip(
    store: StoreWriter, row: OutboxRow, *, agent_id: str, tz: str, now_wall_ns: int
) -> str:
    """A monitor's last seconds of waves (edge_agent.strips), as NA rows."""
    window = store.frames.strip_for_outbox(row.id)
    if window is None:
        raise MessageBuildError(f"outbox {row.id}: no strip window for it")
    device_id, start_ns, end_ns = window.device_id, window.from_wall_ns, window.to_wall_ns
    waveforms = [w for w in store.frames.waves_between(device_id, start_ns, end_ns) if w.samples]
    if not waveforms:
        raise MessageBuildError(f"outbox {row.id}: {device_id} stored no waves in the window")
    encounter = store.patients.current_encounter(device_id)
    try:
        message: str = build_oru_r01(
            control_id=row.id,
            agent_id=agent_id,
            sent_at=wall_datetime(now_wall_ns, tz),
            device=_device_identity(store, device_id, None, agent_id=agent_id),
            patient=_patient(store, None if encounter is None else encounter.id),
            observations=[],
            waveforms=[_stored_waveform(w, tz, start_ns, row.id) for w in waveforms],
        )
    except KeyError as exc:
        raise MessageBuildError(f"outbox {row.id}: {exc.args[0]}") from None
    return message


def _patient(store: StoreWriter, encounter_id: int | None) -> PatientIdentity | None:
    if encounter_id is None:
        return None
    encounter = store.patients.encounter(encounter_id)
    person = None if encounter is None else store.patients.get(encounter.patient_id)
    if encounter is None or person is None:
        return None
    return reported_readings.resident_identity(person, encounter.patient_class)


def _frame_patient(
    store: StoreWriter, raw_frame_id: int, encounter_id: int | None
) -> PatientIdentity | None:
    """Whose readings a frame's are: its visit's resident; else, with no visit open, the
    patient the device named (an HL7 monitor's PID), unless that conflicted with the
    visit open then (held: nobody's until assigned)."""
    if encounter_id is not None:
        return _patient(store, encounter_id)
    source = store.frames.source(raw_frame_id)
    if source is None or source.patient is None or source.conflict:
        return None
    named = source.patient
    if source.national_id is not None:
        identifier, authority, id_type = source.national_id, NATIONAL_ID_AUTHORITY, NATIONAL_ID_TYPE
    else:
        identifier, authority, id_type = named.identifier, named.authority, named.id_type
    return PatientIdentity(
        national_id=identifier,
        name=named.name,
        birth_date=named.birth_date,
        sex=named.sex,
        patient_class=named.patient_class or "U",
        id_authority=authority,
        id_type=id_type,
    )


def _stored_waveform(w: Waveform, tz: str, received_wall_ns: int, row_id: str) -> StoredWaveform:
    """A stored signal as the message carries it: integers, rate, resolution, start."""
    samples = w.samples
    if w.offset:
        steps = w.offset / w.scale
        if steps != steps.to_integral_value():
            raise MessageBuildError(
                f"outbox {row_id}: {w.metric} offset {w.offset} is not a whole number of"
                f" {w.scale} steps"
            )
        samples = tuple(s + int(steps) for s in samples)
    if w.start_time is None:
        start = wall_datetime(received_wall_ns, tz)
    else:
        start = device_instant(w.start_time, tz)
    rate = Decimal(repr(w.rate_hz))
    if rate == rate.to_integral_value():
        rate = rate.quantize(Decimal(1))
    return StoredWaveform(w.metric, rate, w.scale, w.unit, samples, start)


def build_prearrival(
    store: StoreWriter, row: OutboxRow, *, agent_id: str, tz: str, now_wall_ns: int
) -> str:
    """The ADT^A14 of a pre-arrival notice (recorder.prealert / `edge-agent prealert`)."""
    notice = store.prealerts.for_outbox(row.id)
    if notice is None:
        raise MessageBuildError(f"outbox {row.id}: no pre-arrival notice for it")
    patient = _patient(store, notice.encounter_id)
    created = wall_datetime(notice.created_wall_ns, tz)
    eta = None if notice.eta_minutes is None else created + dt.timedelta(minutes=notice.eta_minutes)
    return build_adt_a14(
        PrearrivalNotice(
            control_id=row.id,
            agent_id=agent_id,
            sent_at=wall_datetime(now_wall_ns, tz),
            recorded_at=created,
            patient_national_id=None if patient is None else patient.national_id,
            patient_name=None if patient is None else patient.name,
            local_patient_id=f"{agent_id}-{notice.encounter_id or notice.id}",
            destination=notice.destination,
            complaint=notice.complaint,
            eta=eta,
        )
    )
