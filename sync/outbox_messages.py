"""Turn an outbox row and the readings it refers to into the HL7 text that goes up.

The message is built once, stored in the row, and every retry sends the same bytes:
the gateway dedups on MSH-10, and an identical payload keeps its audit trail simple.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

from edge_agent.clock import wall_datetime
from edge_agent.store import ObservationRow, OutboxRow, Store
from sync.hl7.pcd01 import DeviceIdentity, PatientIdentity, StoredObservation, build_oru_r01

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
    if row.raw_frame_id is None:
        raise MessageBuildError(f"outbox {row.id}: no frame to report")
    observations = store.observations_for_frame(row.raw_frame_id)
    if not observations:
        raise MessageBuildError(f"outbox {row.id}: frame {row.raw_frame_id} has no readings")
    device_row = store.device(observations[0].device_id) or {}
    driver = str(device_row.get("driver") or "unknown")
    eui64 = device_row.get("eui64")
    address = device_row.get("address")
    if not eui64 and address:
        eui64 = ble_address_to_eui64(str(address))
    device = DeviceIdentity(
        device_id=observations[0].device_id,
        driver=driver,
        eui64=str(eui64) if eui64 else None,
        spec_refid=DRIVER_SPECIALISATION.get(driver, "MDC_DEV_SPEC_PROFILE_HYDRA"),
    )
    patient = None
    encounter_id = observations[0].encounter_id
    if encounter_id is not None:
        encounter = store.encounter(encounter_id)
        person = None if encounter is None else store.patient(encounter.patient_id)
        if encounter is not None and person is not None:
            patient = PatientIdentity(
                national_id=person.national_id,
                name=person.name,
                birth_date=dt.date.fromisoformat(person.birth_date) if person.birth_date else None,
                sex=person.sex,
                patient_class=encounter.patient_class,
            )
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
        )
    except KeyError as exc:
        raise MessageBuildError(f"outbox {row.id}: {exc.args[0]}") from None
    return message
