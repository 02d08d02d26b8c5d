"""Turn an outbox row and the readings it refers to into the HL7 text that goes up.

The message is built once, stored in the row, and every retry sends the same bytes:
the gateway dedups on MSH-10, and an identical payload keeps its audit trail simple.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

from edge_agent.clock import wall_datetime
from edge_agent.model import Waveform
from edge_agent.store import ObservationRow, OutboxRow, Store
from sync.hl7.adt import PrearrivalNotice, build_adt_a14
from sync.hl7.pcd01 import (
    DeviceIdentity,
    PatientIdentity,
    StoredObservation,
    StoredWaveform,
    build_oru_r01,
)
from sync.hl7.pcd04 import AlertEvent, build_oru_r40

KIND_ADT_A14 = "adt_a14"  # edge_agent.recorder.KIND_ADT_A14
KIND_STRIP = "strip"  # edge_agent.strips.KIND_STRIP
KIND_ORU_R40 = "oru_r40"  # edge_agent.alerts.KIND_ORU_R40

# Which MDS-level device specialisation a driver's messages declare (OBR-4, MDS OBX).
DRIVER_SPECIALISATION = {
    "ble-bp": "MDC_DEV_SPEC_PROFILE_BP",
    "ble-thermo": "MDC_DEV_SPEC_PROFILE_TEMP",
    "ble-glucose": "MDC_DEV_SPEC_PROFILE_GLUCOSE",
    "ble-weight": "MDC_DEV_SPEC_PROFILE_SCALE",
    "scale-ascii": "MDC_DEV_SPEC_PROFILE_SCALE",
    "ble-plx-spot": "MDC_DEV_SPEC_PROFILE_PULS_OXIM",
    "ble-plx-cont": "MDC_DEV_SPEC_PROFILE_PULS_OXIM",
    "masimo-ascii": "MDC_DEV_SPEC_PROFILE_PULS_OXIM",
    "nonin-df2": "MDC_DEV_SPEC_PROFILE_PULS_OXIM",
    "nonin-df7": "MDC_DEV_SPEC_PROFILE_PULS_OXIM",
    "nonin-df8": "MDC_DEV_SPEC_PROFILE_PULS_OXIM",
}


class MessageBuildError(ValueError):
    """The row cannot become a message (its readings are gone, a code is unknown)."""


def ble_address_to_eui64(address: str) -> str:
    """EUI-48 -> EUI-64 by inserting FFFE in the middle (IEEE guidance for EUI-48 mapping)."""
    octets = address.replace(":", "").replace("-", "").upper()
    return octets[:6] + "FFFE" + octets[6:]


def _observed_at(obs: ObservationRow, tz: str) -> dt.datetime:
    if obs.device_time:
        # Device clocks carry no zone (GATT Date Time, monitor RS-232 lines): they show
        # the station's local time, which in China is one zone.
        naive = dt.datetime.fromisoformat(obs.device_time)
        if naive.tzinfo is None:
            return naive.replace(tzinfo=zoneinfo.ZoneInfo(tz))
        return naive
    return wall_datetime(obs.received_wall_ns, tz)


def build_message(store: Store, row: OutboxRow, *, agent_id: str, tz: str, now_wall_ns: int) -> str:
    if row.kind == KIND_ADT_A14:
        return build_prearrival(store, row, agent_id=agent_id, tz=tz, now_wall_ns=now_wall_ns)
    if row.kind == KIND_STRIP:
        return build_strip(store, row, agent_id=agent_id, tz=tz, now_wall_ns=now_wall_ns)
    if row.kind == KIND_ORU_R40:
        return build_alert(store, row, agent_id=agent_id, tz=tz, now_wall_ns=now_wall_ns)
    if row.raw_frame_id is None:
        raise MessageBuildError(f"outbox {row.id}: no frame to report")
    observations = store.observations_for_frame(row.raw_frame_id)
    frame = store.raw_frame(row.raw_frame_id) or {}
    ecg = str(frame.get("driver") or "").startswith("ecg-")
    # A 12-lead goes up whole: its leads and the cart's statements with its measurements.
    waveforms = store.waveforms_for_frame(row.raw_frame_id) if ecg else []
    statements = [s.text for s in store.statements_for_frame(row.raw_frame_id)] if ecg else []
    # ... and the cart's model and the patient's sex and age as the cart had them.
    context = store.ecg_context_for_frame(row.raw_frame_id) if ecg else None
    if not observations and not waveforms:
        raise MessageBuildError(f"outbox {row.id}: frame {row.raw_frame_id} has no readings")
    device_id = observations[0].device_id if observations else str(frame.get("device_id"))
    device = _device_identity(store, device_id, frame.get("driver"))
    encounter_id = observations[0].encounter_id if observations else frame.get("encounter_id")
    patient = _patient(store, encounter_id if isinstance(encounter_id, int) else None)
    received = int(frame.get("received_wall_ns") or now_wall_ns)
    stored = [
        StoredObservation(
            metric=o.metric,
            value=None if o.value is None else Decimal(o.value),
            unit=o.unit,
            observed_at=_observed_at(o, tz),
            flags=o.flags,
        )
        for o in observations
    ]
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


def _device_identity(store: Store, device_id: str, driver: str | None) -> DeviceIdentity:
    device_row = store.device(device_id) or {}
    driver = str(device_row.get("driver") or driver or "unknown")
    eui64 = device_row.get("eui64")
    address = device_row.get("address")
    if not eui64 and address:
        eui64 = ble_address_to_eui64(str(address))
    return DeviceIdentity(
        device_id=device_id,
        driver=driver,
        eui64=str(eui64) if eui64 else None,
        spec_refid=DRIVER_SPECIALISATION.get(driver, "MDC_DEV_SPEC_PROFILE_HYDRA"),
    )


def build_alert(store: Store, row: OutboxRow, *, agent_id: str, tz: str, now_wall_ns: int) -> str:
    """An alert starting or ending (edge_agent.alerts), as IHE PCD-04 ORU^R40."""
    found = store.alert_message(row.id)
    if found is None:
        raise MessageBuildError(f"outbox {row.id}: no alert for it")
    alert, phase = found
    encounter_id = None
    if alert.subject and alert.subject.startswith("encounter:"):
        encounter_id = int(alert.subject.split(":", 1)[1])
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
                device=_device_identity(store, alert.device_id or "station", None),
                patient=_patient(store, encounter_id),
                metric=alert.metric,
                value=None if alert.value is None else Decimal(alert.value),
                unit=alert.unit,
            )
        )
    except KeyError as exc:
        raise MessageBuildError(f"outbox {row.id}: {exc.args[0]}") from None


def build_strip(store: Store, row: OutboxRow, *, agent_id: str, tz: str, now_wall_ns: int) -> str:
    """A monitor's last seconds of waves (edge_agent.strips), as NA rows."""
    window = store.strip_for_outbox(row.id)
    if window is None:
        raise MessageBuildError(f"outbox {row.id}: no strip window for it")
    device_id, start_ns, end_ns = window
    waveforms = [w for w in store.waves_between(device_id, start_ns, end_ns) if w.samples]
    if not waveforms:
        raise MessageBuildError(f"outbox {row.id}: {device_id} stored no waves in the window")
    encounter = store.current_encounter(device_id)
    try:
        message: str = build_oru_r01(
            control_id=row.id,
            agent_id=agent_id,
            sent_at=wall_datetime(now_wall_ns, tz),
            device=_device_identity(store, device_id, None),
            patient=_patient(store, None if encounter is None else encounter.id),
            observations=[],
            waveforms=[_stored_waveform(w, tz, start_ns, row.id) for w in waveforms],
        )
    except KeyError as exc:
        raise MessageBuildError(f"outbox {row.id}: {exc.args[0]}") from None
    return message


def _patient(store: Store, encounter_id: int | None) -> PatientIdentity | None:
    if encounter_id is None:
        return None
    encounter = store.encounter(encounter_id)
    person = None if encounter is None else store.patient(encounter.patient_id)
    if encounter is None or person is None:
        return None
    return PatientIdentity(
        national_id=person.national_id,
        name=person.name,
        birth_date=dt.date.fromisoformat(person.birth_date) if person.birth_date else None,
        sex=person.sex,
        patient_class=encounter.patient_class,
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
    elif w.start_time.tzinfo is None:
        start = w.start_time.replace(tzinfo=zoneinfo.ZoneInfo(tz))
    else:
        start = w.start_time
    rate = Decimal(repr(w.rate_hz))
    if rate == rate.to_integral_value():
        rate = rate.quantize(Decimal(1))
    return StoredWaveform(w.metric, rate, w.scale, w.unit, samples, start)


def build_prearrival(
    store: Store, row: OutboxRow, *, agent_id: str, tz: str, now_wall_ns: int
) -> str:
    """The ADT^A14 of a pre-arrival notice (recorder.prealert / `edge-agent prealert`)."""
    notice = store.prealert_for_outbox(row.id)
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
