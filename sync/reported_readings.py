"""Stored readings as an IHE PCD-01 message reports them: the rules the uplink
(sync.outbox_messages) and a resident's HL7 export (edge_agent.export) share, so that
both hand the same values to the one builder (sync.hl7.pcd01.build_oru_r01).

- OBX-14: a device's explicit UTC offset is honoured; its naive wall clock is read in
  `agent.timezone` (edge_agent.clock.device_instant). A reading the recorder flagged
  `device-clock-skew` is reported at the box's time of receipt, the flag in OBX-8
  (sync.outbox_messages says why).
- OBX-5 is the stored decimal text as a `Decimal` (never a float); OBX-4 and OBX-11
  as an HL7 monitor sent them, when it did.
- OBR-4 and the MDS row: the device specialisation the driver declares
  (device_drivers.registry), the generic monitor's for a driver the registry lacks.
- OBX-18: the EUI-64 the frame named, else the device's kept one, else its BLE
  address's (EUI-48 -> EUI-64, IEEE "Guidelines for Use of EUI, OUI, and CID"), else
  one derived from the agent's id and the device's (sync.hl7.eui64).
- PID/PV1: a registered resident by their national id (CHN, NNCHN), with the visit's
  patient class.

Pure: it reads no store and writes none. The uplink keeps a derived EUI-64 in the
device row the first time it sends one (outbox_messages.stable_eui64); the export,
a read, only computes the same value.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from device_drivers import registry
from edge_agent.clock import DEVICE_CLOCK_SKEW_FLAG, device_instant, wall_datetime
from edge_agent.store import DeviceRow, ObservationRow, PatientRow
from sync.hl7.eui64 import derived_eui64, from_eui48, normalise_eui64
from sync.hl7.pcd01 import DeviceIdentity, PatientIdentity, StoredObservation

# The MDS-level device specialisation (OBR-4, MDS OBX) of a device whose driver the
# registry does not know (a row of a driver since removed): the generic monitor's.
UNKNOWN_DRIVER_PROFILE = "MDC_DEV_SPEC_PROFILE_HYDRA"


def device_profile(driver: str) -> str:
    """The device specialisation a driver's messages declare (Driver.profile)."""
    spec = registry.DRIVERS.get(driver)
    return UNKNOWN_DRIVER_PROFILE if spec is None else spec.profile


def observed_at(obs: ObservationRow, tz: str) -> dt.datetime:
    """OBX-14: the device's time (its offset honoured, a naive clock read in `tz`); the
    box's time of receipt when the device gave none or its clock is skewed."""
    if obs.device_time and DEVICE_CLOCK_SKEW_FLAG not in obs.flags:
        return device_instant(dt.datetime.fromisoformat(obs.device_time), tz)
    return wall_datetime(obs.received_wall_ns, tz)


def stored_observation(obs: ObservationRow, tz: str) -> StoredObservation:
    """One stored reading as its OBX row reports it."""
    return StoredObservation(
        metric=obs.metric,
        value=None if obs.value is None else Decimal(obs.value),
        unit=obs.unit,
        observed_at=observed_at(obs, tz),
        flags=obs.flags,
        sub_id=obs.sub_id,
        status=obs.result_status,
    )


def device_eui64(
    device_id: str, device_row: DeviceRow | None, agent_id: str
) -> tuple[str, str | None]:
    """A device's EUI-64 and where it came from when it is not kept yet: the kept one
    (None: nothing to keep), else its BLE address's ("device"), else the derived one
    ("derived"). `device_row`: its row, None when it has none (the box's "station")."""
    kept = normalise_eui64((device_row.eui64 if device_row is not None else None) or "")
    if kept is not None:
        return kept, None
    own = from_eui48((device_row.address if device_row is not None else None) or "")
    if own is not None:
        return own, "device"
    return derived_eui64(agent_id, device_id), "derived"


def device_identity(
    device_id: str, device_row: DeviceRow | None, frame_driver: str | None, eui64: str
) -> DeviceIdentity:
    """The device (OBR-4, the MDS row, OBX-18): its row's driver, else its frame's."""
    driver = (device_row.driver if device_row is not None else None) or frame_driver or "unknown"
    return DeviceIdentity(
        device_id=device_id, driver=driver, eui64=eui64, spec_refid=device_profile(driver)
    )


def resident_identity(person: PatientRow, patient_class: str) -> PatientIdentity:
    """PID/PV1 of a registered resident, for a visit of `patient_class` (PV1-2)."""
    return PatientIdentity(
        national_id=person.national_id,
        name=person.name,
        birth_date=dt.date.fromisoformat(person.birth_date) if person.birth_date else None,
        sex=person.sex,
        patient_class=patient_class,
    )
