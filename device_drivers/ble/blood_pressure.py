"""Bluetooth SIG Blood Pressure service 0x1810: measurement 0x2A35, cuff progress 0x2A36.

Layout (Bluetooth SIG Blood Pressure Service; GSS "Blood Pressure Measurement"; the
tables in docs/protocols/ble-health-profiles.md): flags, systolic, diastolic and mean
arterial pressure as SFLOAT (7 bytes minimum), then the optional fields in flag-bit order:
time stamp (bit 1, Date Time 7 B), pulse rate (bit 2, SFLOAT), user id (bit 3, uint8),
measurement status (bit 4, uint16). Flag bits 5-7 are reserved and must be 0: a frame that
sets them is most likely a vendor-prefixed frame (pauldemarco/flutter_blue issue #687; field
notes in docs/protocols/ble-health-profiles.md) and is rejected rather than read as
nonsense. Bytes beyond what the flags promise are ignored (forward compatibility, as every
SIG health characteristic allows).

Units: the store and the county platform get mmHg. A kPa frame (flag bit 0 = 1; the spec
says 1 = kPa, whatever some apps believed) is converted exactly with Decimal at
1 kPa = 7.50062 mmHg, rounded half-up to 0.1 mmHg (a cuff's own resolution is 1 mmHg or
0.1 kPa ~ 0.75 mmHg, so 0.1 mmHg loses nothing real), and every converted reading carries
the flag "converted-from-kPa" so the original unit stays visible.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from device_drivers.ble.gatt import Decoder, by_characteristic, uuid16
from device_drivers.ble.measurement_frame import Fields, flags_byte
from device_drivers.ble.resend import time_stamped
from device_drivers.declaration import (
    Binding,
    BlePeripheral,
    BleService,
    Driver,
    Results,
    Yields,
)
from device_drivers.ieee11073 import encode_date_time, sfloat_bytes, value_and_flags
from device_drivers.transport import WholeFrames
from edge_agent.model import Decoded, Reading

MEASUREMENT_UUID = "00002a35-0000-1000-8000-00805f9b34fb"
INTERMEDIATE_UUID = "00002a36-0000-1000-8000-00805f9b34fb"

FLAG_UNITS_KPA = 0x01
FLAG_TIME_STAMP = 0x02
FLAG_PULSE_RATE = 0x04
FLAG_USER_ID = 0x08
FLAG_STATUS = 0x10
FLAGS_RESERVED = 0xE0

KPA_TO_MMHG = Decimal("7.50062")  # 1 mmHg = 133.322 Pa (docs/protocols/clinical-rules.md)
CONVERTED_FLAG = "converted-from-kPa"
INTERMEDIATE_FLAG = "intermediate"  # edge_agent.recorder treats it as progress
UNKNOWN_USER = 0xFF  # GSS "Blood Pressure Measurement": 0xFF = unknown user -> no user flag

SYSTOLIC = "MDC_PRESS_BLD_NONINV_SYS"
DIASTOLIC = "MDC_PRESS_BLD_NONINV_DIA"
MEAN = "MDC_PRESS_BLD_NONINV_MEAN"
CUFF = "MDC_PRESS_CUFF"
PULSE = "MDC_PULS_RATE_NON_INV"
MMHG = "MDC_DIM_MMHG"
BPM = "MDC_DIM_BEAT_PER_MIN"

# Measurement status bits (GSS "Blood Pressure Measurement", Measurement Status field).
# Bits 3-4 are a two-bit pulse-rate range; bits 6-15 are reserved and ignored: the status is
# advice about a valid reading, and a later spec revision may define them.
STATUS_BODY_MOVEMENT = 0x0001
STATUS_CUFF_TOO_LOOSE = 0x0002
STATUS_IRREGULAR_PULSE = 0x0004
STATUS_PULSE_ABOVE_RANGE = 0x0008
STATUS_PULSE_BELOW_RANGE = 0x0010
STATUS_IMPROPER_POSITION = 0x0020
_STATUS_FLAGS = (
    (STATUS_BODY_MOVEMENT, "body-movement"),
    (STATUS_CUFF_TOO_LOOSE, "cuff-too-loose"),
    (STATUS_IRREGULAR_PULSE, "irregular-pulse"),
    (STATUS_IMPROPER_POSITION, "improper-position"),
)
_PULSE_RANGE_FLAGS = {
    0b01: "pulse-rate-above-range",
    0b10: "pulse-rate-below-range",
    # 0b11 is reserved: no flag.
}


def status_flags(status: int) -> tuple[str, ...]:
    """The flag names of a measurement status word: single bits, then the pulse range."""
    flags = [name for bit, name in _STATUS_FLAGS if status & bit]
    pulse_range = _PULSE_RANGE_FLAGS.get((status >> 3) & 0b11)
    if pulse_range is not None:
        flags.append(pulse_range)
    return tuple(flags)


def _to_mmhg(kpa: Decimal) -> Decimal:
    return (kpa * KPA_TO_MMHG).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


class _Parsed:
    """The fields of one 0x2A35/0x2A36 frame, before they become readings."""

    __slots__ = ("kpa", "pressures", "pulse", "status", "time", "user")

    def __init__(self, data: bytes) -> None:
        flags = flags_byte(data, FLAGS_RESERVED, "vendor-prefixed or not a 0x2A35 frame")
        self.kpa = bool(flags & FLAG_UNITS_KPA)
        fields = Fields(data, 1)
        self.pressures = (
            fields.sfloat("systolic"),
            fields.sfloat("diastolic"),
            fields.sfloat("mean arterial pressure"),
        )
        self.time = fields.date_time() if flags & FLAG_TIME_STAMP else None
        self.pulse = fields.sfloat("pulse rate") if flags & FLAG_PULSE_RATE else None
        self.user = fields.uint(1, "user id") if flags & FLAG_USER_ID else None
        self.status = fields.uint(2, "measurement status") if flags & FLAG_STATUS else None


def _reading(
    metric: str,
    unit: str,
    field: tuple[Decimal | None, str | None],
    time: dt.datetime | None,
    lead: tuple[str, ...],
    trail: tuple[str, ...],
    *,
    convert: bool,
) -> Reading:
    value, flags = value_and_flags(field, lead)
    if convert:
        flags.append(CONVERTED_FLAG)
        if value is not None:
            value = _to_mmhg(value)
    return Reading(metric, value, unit, time, (*flags, *trail))


def _trail(parsed: _Parsed) -> tuple[str, ...]:
    flags: list[str] = []
    if parsed.status is not None:
        flags.extend(status_flags(parsed.status))
    if parsed.user is not None and parsed.user != UNKNOWN_USER:
        flags.append(f"user:{parsed.user}")
    return tuple(flags)


def decode_measurement(data: bytes) -> Decoded:
    """A Blood Pressure Measurement (0x2A35) frame -> systolic, diastolic, MAP, pulse."""
    parsed = _Parsed(data)
    trail = _trail(parsed)
    metrics = (SYSTOLIC, DIASTOLIC, MEAN)
    readings = [
        _reading(m, MMHG, f, parsed.time, (), trail, convert=parsed.kpa)
        for m, f in zip(metrics, parsed.pressures, strict=True)
    ]
    if parsed.pulse is not None:
        readings.append(_reading(PULSE, BPM, parsed.pulse, parsed.time, (), trail, convert=False))
    return Decoded(readings=tuple(readings))


def decode_intermediate(data: bytes) -> Decoded:
    """An Intermediate Cuff Pressure (0x2A36) frame -> the current cuff pressure.

    Same layout as 0x2A35; the cuff pressure sits in the systolic field and the other two
    pressures carry NaN (GSS "Intermediate Cuff Pressure"), so only the cuff pressure (and
    a pulse rate, when sent) is reported, every reading flagged "intermediate": it is
    progress for the screen, never a stored result (Nordic's IntermediateCuffPressure
    callback does the same).
    """
    parsed = _Parsed(data)
    trail = _trail(parsed)
    lead = (INTERMEDIATE_FLAG,)
    readings = [
        _reading(CUFF, MMHG, parsed.pressures[0], parsed.time, lead, trail, convert=parsed.kpa)
    ]
    if parsed.pulse is not None:
        readings.append(_reading(PULSE, BPM, parsed.pulse, parsed.time, lead, trail, convert=False))
    return Decoded(readings=tuple(readings))


def encode_measurement(
    systolic: Decimal | None,
    diastolic: Decimal | None = None,
    mean: Decimal | None = None,
    *,
    kpa: bool = False,
    time: dt.datetime | None = None,
    time_unknown: bool = False,
    pulse: Decimal | None = None,
    user: int | None = None,
    status: int | None = None,
) -> bytes:
    """A 0x2A35 (or, with only `systolic` as the cuff pressure, 0x2A36) frame.

    For simulators and tests. Values are in the frame's unit (kPa when `kpa`); None is
    NaN. `time_unknown` sends a time stamp of all zeros (device clock not set).
    """
    flags = 0
    body = sfloat_bytes(systolic) + sfloat_bytes(diastolic) + sfloat_bytes(mean)
    if kpa:
        flags |= FLAG_UNITS_KPA
    if time is not None or time_unknown:
        flags |= FLAG_TIME_STAMP
        body += encode_date_time(time)
    if pulse is not None:
        flags |= FLAG_PULSE_RATE
        body += sfloat_bytes(pulse)
    if user is not None:
        flags |= FLAG_USER_ID
        body += bytes([user])
    if status is not None:
        flags |= FLAG_STATUS
        body += status.to_bytes(2, "little")
    return bytes([flags]) + body


_DECODERS: dict[str, Decoder] = {"2a35": decode_measurement, "2a36": decode_intermediate}


def decoder_for(channel: str | None) -> Decoder:
    """The decoder for a notification's characteristic (the frame's channel).

    No channel means a measurement (captured 0x2A35 frames, the decode CLI). An unknown
    characteristic gets a decoder that rejects every frame, so its bytes are quarantined
    with the reason instead of being read as blood pressure.
    """
    return by_characteristic(channel, _DECODERS, "Blood Pressure", default="2a35")


DECLARATIONS = (
    Driver(
        id="ble-bp",
        summary="Bluetooth SIG Blood Pressure 0x2A35 / intermediate cuff 0x2A36",
        source=BlePeripheral(
            BleService(uuid16(0x1810), "blood pressure"),
            (MEASUREMENT_UUID, INTERMEDIATE_UUID),
            dedup_key=time_stamped(FLAG_TIME_STAMP),
            sets_clock=True,
        ),
        framer=WholeFrames,
        decoder_for=decoder_for,
        yields=Yields(numerics=True),
        profile="MDC_DEV_SPEC_PROFILE_BP",
        binding=Binding.PERSONAL,
        results=Results.STORED,
    ),
)
