"""Domain values shared by drivers, the recorder, the uplink and the gateway.

Values are immutable data. Measured values are kept as `Decimal` from the wire to
the store and into HL7 OBX-5, so 18.9 never becomes 18.899999 on the way
(keep mantissa and exponent until the value is stored: docs/protocols/ieee11073-numbers.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class Reading:
    """One measured value as a device reported it, in IEEE 11073-10101 terms.

    `metric` and `unit` are MDC reference ids (edge_agent.mdc knows their codes).
    `value` is None for special values (NaN, NRes, a dashed field); `flags` then
    names the special value. `device_time` is the device's own wall clock as it gave
    it: aware when the device said its UTC offset (an HL7 monitor's `+0000`), which is
    then always honoured; naive when it did not (GATT Date Time, RS-232 lines), read
    in `agent.timezone` where a time is needed (edge_agent.clock.device_instant); None
    when the device gave no usable time.

    `sub_id` and `result_status` are what a device that speaks HL7 itself said about the
    row: its OBX-4 position in the MDS.VMD.channel.metric tree (`1.2.1.1`) and its OBX-11
    status (HL7 table 0085: R, F...), forwarded as they were. None for our own drivers,
    whose rows the uplink places (sync.hl7.containment) and reports as final.
    """

    metric: str
    value: Decimal | None
    unit: str
    device_time: dt.datetime | None = None
    flags: tuple[str, ...] = ()
    sub_id: str | None = None
    result_status: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The decode CLI's line format (docs/contracts.md "CLI")."""
        return {
            "metric": self.metric,
            "value": None if self.value is None else float(self.value),
            "unit": self.unit,
            "time": None if self.device_time is None else self.device_time.isoformat(),
            "flags": list(self.flags),
        }


@dataclass(frozen=True, slots=True)
class Waveform:
    """A run of equally spaced samples of one signal (ECG lead, pleth...)."""

    metric: str
    rate_hz: float
    unit: str
    samples: tuple[int, ...]
    scale: Decimal = Decimal(1)
    offset: Decimal = Decimal(0)
    start_time: dt.datetime | None = None

    def physical(self, index: int) -> Decimal:
        return self.offset + self.scale * self.samples[index]

    def as_json(self, first: int = 10) -> dict[str, Any]:
        return {
            "waveform": self.metric,
            "rate_hz": float(self.rate_hz),
            "count": len(self.samples),
            "unit": self.unit,
            "values": [float(self.physical(i)) for i in range(min(first, len(self.samples)))],
        }


@dataclass(frozen=True, slots=True)
class DeviceAlarm:
    """An alarm the device itself raised (monitor alarm bits, exception codes).

    `physiological`: about the patient (SpO2 low, a glucose beyond the meter's range),
    not the device (sensor off, battery): IHE PCD-04 alert type SP rather than ST.
    """

    code: str
    priority: str  # "high" | "medium" | "low" | "info"
    text: str
    physiological: bool = False


@dataclass(frozen=True, slots=True)
class Statement:
    """An interpretation statement a device made about its recording (an ECG cart's
    "Sinus rhythm", "ACUTE MI / STEMI"), kept word for word; `code` when the format
    codes it (an aECG MDC_ECG_... code, an SCP-ECG universal statement code)."""

    text: str
    code: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"statement": self.text, "code": self.code}


@dataclass(frozen=True, slots=True)
class RecordingContext:
    """What a recording's file says beyond its signals (a 12-lead cart's): the device's
    model, and the patient's sex and age as the device was told them, which its
    interpretation used. Each None when the file does not say."""

    device_model: str | None = None
    patient_sex: str | None = None  # HL7 v2.6 table 0001: M, F, O
    patient_age: int | None = None
    patient_age_unit: str | None = None  # MDC_DIM_YR | MDC_DIM_DAY | MDC_DIM_HR

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.device_model, self.patient_sex, self.patient_age))


@dataclass(frozen=True, slots=True)
class SourcePatient:
    """Who a device says its patient is (an HL7 monitor's PID), word for word.

    `identifier`, `authority` and `id_type` are one PID-3 repetition (CX.1, CX.4, CX.5:
    HL7 table 0203, NNCHN for the resident identity number); the recorder compares it
    with the open visit's resident and never guesses when they differ.
    """

    identifier: str
    authority: str = ""
    id_type: str = ""
    name: str = ""
    birth_date: dt.date | None = None
    sex: str | None = None  # HL7 table 0001
    patient_class: str | None = None  # PV1-2, HL7 table 0004


@dataclass(frozen=True, slots=True)
class Decoded:
    """Everything one frame carried.

    `device_eui64`: the sending device's own EUI-64 when the frame names it (an HL7
    monitor's OBX-18 or MSH-3), 16 upper-case hex digits. `patient`: who the frame says
    it measured (an HL7 monitor's PID), None when it names nobody.
    """

    readings: tuple[Reading, ...] = ()
    waveforms: tuple[Waveform, ...] = ()
    alarms: tuple[DeviceAlarm, ...] = ()
    statements: tuple[Statement, ...] = ()
    context: RecordingContext | None = None
    device_eui64: str | None = None
    patient: SourcePatient | None = None

    def __bool__(self) -> bool:
        return bool(self.readings or self.waveforms or self.alarms or self.statements)


@dataclass(frozen=True, slots=True)
class Frame:
    """Raw bytes as a transport received them, before any decoding.

    `received_wall_ns` is the box's wall clock (may be wrong: no RTC), while
    `received_mono_ns` + `boot_id` order frames reliably within one boot.
    """

    device_id: str
    driver: str
    data: bytes
    received_wall_ns: int
    received_mono_ns: int
    boot_id: str
    extra: dict[str, str] = field(default_factory=dict)
    # Same device + same key = the same frame sent again (transport.FrameSink).
    dedup_key: str | None = None


class Refused(ValueError):
    """A service refusing what it was asked, for what it asks (a resident not
    registered, an address that is not one): one line naming it. The caller's usage
    error: the CLI exits 2 on it, the control socket answers it with status 2
    (edge_agent.operations.run)."""


class DecodeError(ValueError):
    """A frame that a decoder must reject. One line: where and what is wrong.

    The reason often quotes the bad input; whatever it quotes, it stays one printable
    line (control characters shown as "?", at most 300 characters), because it ends up
    in a quarantine row, a log line and the CLI's `error:` line.
    """

    def __init__(self, reason: str, offset: int | None = None) -> None:
        line = "".join(ch if ch.isprintable() else "?" for ch in " ".join(reason.split()))
        reason = line if len(line) <= 300 else line[:299] + "…"
        self.reason = reason
        self.offset = offset
        super().__init__(reason if offset is None else f"byte {offset}: {reason}")


OUTBOX_PENDING = "pending"
OUTBOX_SENT = "sent"
OUTBOX_DELIVERED = "delivered"
OUTBOX_REJECTED = "rejected"
# A personal device's reading taken with no visit open at its station: it waits for a
# doctor to say whose it is (`edge-agent readings assign`), never guessed, then goes up.
OUTBOX_HELD = "held"
# Why a row is held (outbox.held_reason): nobody's visit is open at a personal device's
# station, or a monitor named another patient than the open visit's resident, or the
# resident of the station's visit has withdrawn their consent (edge_agent.consent).
HELD_NO_VISIT = "no-visit"
HELD_PATIENT_CONFLICT = "patient-conflict"
HELD_CONSENT_WITHDRAWN = "consent-withdrawn"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message waiting for (or past) delivery to the county gateway.

    `id` is the HL7 MSH-10 message control id and the gateway's dedup key.
    """

    id: str
    kind: str
    priority: int
    status: str
    frame_id: int | None
    created_wall_ns: int
    attempts: int = 0
    payload: str | None = None
