"""Bluetooth SIG Weight Scale service 0x181D: Weight Measurement 0x2A9D, Feature 0x2A9E.

Layout (Bluetooth SIG Weight Scale Service; GSS "Weight Measurement";
docs/protocols/ble-health-profiles.md): flags, weight uint16 (3 bytes minimum), then in
flag-bit order time stamp (bit 1, GSS Date Time 7 B), user id (bit 2, uint8, 0xFF = unknown
user) and BMI + height (bit 3: one bit for both, uint16 each; PyPI bluetooth-sig's
two-flag reading is wrong). Flag bit 0 is the unit system: 0 = SI (kg, m), 1 = imperial
(lb, in). Bits 4-7 are reserved and must be 0: such a frame is rejected (as in every SIG
health characteristic). Bytes beyond what the flags promise are ignored.

Resolutions are the fixed ones of the field definitions: weight 0.005 kg or 0.01 lb,
height 0.001 m or 0.1 in, BMI 0.1 kg/m² in both systems. The Feature characteristic's
resolution bits describe the scale's precision, not a different scaling (most scales in
the field use the default; docs/protocols/ble-health-profiles.md); `decode_feature` reads
them for the log.

Units: the store gets kg and cm, as Chinese clinics use them. Imperial frames are
converted with Decimal at the exact definitions 1 lb = 0.45359237 kg and 1 in = 2.54 cm.
Height converts exactly (0.1 in = 0.254 cm). Weight's exact product has 10 decimals and is
rounded half-up to 0.001 kg: one step of 0.01 lb is 4.5 g, so 1 g loses nothing real.
Converted readings carry "converted-from-lb" (weight) or "converted-from-in" (height).

Special value: weight 0xFFFF is "measurement unsuccessful" (GSS "Weight Measurement"): a
weight reading with no value and the flag "measurement-unsuccessful"; then only time stamp
and user id may be present, so such a frame that also sets the BMI/height bit is rejected as
inconsistent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
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
from device_drivers.ieee11073 import encode_date_time
from device_drivers.transport import WholeFrames
from edge_agent.model import Decoded, DecodeError, Reading

MEASUREMENT_UUID = "00002a9d-0000-1000-8000-00805f9b34fb"
FEATURE_UUID = "00002a9e-0000-1000-8000-00805f9b34fb"  # read once, not subscribed
CHARACTERISTICS = (MEASUREMENT_UUID,)

FLAG_IMPERIAL = 0x01
FLAG_TIME_STAMP = 0x02
FLAG_USER_ID = 0x04
FLAG_BMI_HEIGHT = 0x08
FLAGS_RESERVED = 0xF0

WEIGHT_UNSUCCESSFUL = 0xFFFF
UNKNOWN_USER = 0xFF  # GSS "Weight Measurement": 0xFF = unknown user -> no user flag

KG_PER_STEP = Decimal("0.005")
LB_PER_STEP = Decimal("0.01")
KG_PER_LB = Decimal("0.45359237")  # international avoirdupois pound, exact by definition
CM_PER_MM = Decimal("0.1")  # SI height step is 0.001 m = 1 mm
CM_PER_TENTH_INCH = Decimal("0.254")  # 1 in = 2.54 cm exactly
BMI_PER_STEP = Decimal("0.1")
_GRAM = Decimal("0.001")

MASS = "MDC_MASS_BODY_ACTUAL"
HEIGHT = "MDC_LEN_BODY_ACTUAL"
BMI = "MDC_RATIO_MASS_BODY_LEN_SQ"
KG = "MDC_DIM_KILO_G"
CM = "MDC_DIM_CENTI_M"
KG_PER_M2 = "MDC_DIM_KG_PER_M_SQ"

UNSUCCESSFUL_FLAG = "measurement-unsuccessful"
CONVERTED_LB_FLAG = "converted-from-lb"
CONVERTED_IN_FLAG = "converted-from-in"


@dataclass(frozen=True, slots=True)
class WeightMeasurement:
    """The fields of one 0x2A9D frame, as raw steps of the frame's unit system."""

    imperial: bool
    weight_steps: int | None  # None: 0xFFFF, measurement unsuccessful
    time: dt.datetime | None
    user: int | None
    bmi_steps: int | None
    height_steps: int | None


def parse_measurement(data: bytes) -> WeightMeasurement:
    """One 0x2A9D frame -> its fields; DecodeError names the bad byte."""
    flags = flags_byte(data, FLAGS_RESERVED, "vendor-prefixed or not a 0x2A9D frame")
    fields = Fields(data, 1)
    weight: int | None = fields.uint(2, "weight")
    if weight == WEIGHT_UNSUCCESSFUL:
        weight = None
        if flags & FLAG_BMI_HEIGHT:
            raise DecodeError(
                "weight 0xFFFF (measurement unsuccessful) with BMI and height: the spec"
                " allows only time stamp and user id then",
                0,
            )
    time = fields.date_time() if flags & FLAG_TIME_STAMP else None
    user = fields.uint(1, "user id") if flags & FLAG_USER_ID else None
    bmi: int | None = None
    height: int | None = None
    if flags & FLAG_BMI_HEIGHT:
        bmi = fields.uint(2, "BMI")
        height = fields.uint(2, "height")
    return WeightMeasurement(
        imperial=bool(flags & FLAG_IMPERIAL),
        weight_steps=weight,
        time=time,
        user=user,
        bmi_steps=bmi,
        height_steps=height,
    )


def weight_kg(steps: int, *, imperial: bool) -> Decimal:
    """Weight steps -> kg: exact for SI, rounded half-up to 1 g from lb."""
    if not imperial:
        return steps * KG_PER_STEP
    return (steps * LB_PER_STEP * KG_PER_LB).quantize(_GRAM, rounding=ROUND_HALF_UP)


def height_cm(steps: int, *, imperial: bool) -> Decimal:
    """Height steps (1 mm or 0.1 in) -> cm, exact."""
    return steps * (CM_PER_TENTH_INCH if imperial else CM_PER_MM)


def decode_measurement(data: bytes) -> Decoded:
    """A Weight Measurement (0x2A9D) frame -> weight (kg), then BMI and height (cm)."""
    parsed = parse_measurement(data)
    trail: tuple[str, ...] = ()
    if parsed.user is not None and parsed.user != UNKNOWN_USER:
        trail = (f"user:{parsed.user}",)
    converted_lb = (CONVERTED_LB_FLAG,) if parsed.imperial else ()
    if parsed.weight_steps is None:
        mass = Reading(MASS, None, KG, parsed.time, (UNSUCCESSFUL_FLAG, *converted_lb, *trail))
    else:
        value = weight_kg(parsed.weight_steps, imperial=parsed.imperial)
        mass = Reading(MASS, value, KG, parsed.time, (*converted_lb, *trail))
    readings = [mass]
    if parsed.bmi_steps is not None and parsed.height_steps is not None:
        # BMI is kg/m² in both unit systems: nothing to convert.
        bmi = parsed.bmi_steps * BMI_PER_STEP
        readings.append(Reading(BMI, bmi, KG_PER_M2, parsed.time, trail))
        height = height_cm(parsed.height_steps, imperial=parsed.imperial)
        converted_in = (CONVERTED_IN_FLAG,) if parsed.imperial else ()
        readings.append(Reading(HEIGHT, height, CM, parsed.time, (*converted_in, *trail)))
    return Decoded(readings=tuple(readings))


def _steps(value: Decimal, step: Decimal, what: str, most: int = 0xFFFF) -> int:
    steps = value / step
    if steps != steps.to_integral_value() or not 0 <= steps <= most:
        raise ValueError(f"{what} {value} is not a whole number of {step} steps in 0..{most}")
    return int(steps)


def encode_measurement(
    weight: Decimal | None,
    *,
    imperial: bool = False,
    time: dt.datetime | None = None,
    time_unknown: bool = False,
    user: int | None = None,
    bmi: Decimal | None = None,
    height: Decimal | None = None,
) -> bytes:
    """A 0x2A9D frame, for simulators and tests.

    Values are in the frame's units: kg and m, or lb and in when `imperial`; BMI in
    kg/m². None weight sends 0xFFFF (measurement unsuccessful). BMI and height go
    together (one flag bit). A value that is not a whole number of steps is a ValueError:
    rounding silently would change a measurement.
    """
    if (bmi is None) != (height is None):
        raise ValueError("BMI and height are sent together (one flag bit) or not at all")
    flags = FLAG_IMPERIAL if imperial else 0
    weight_step = LB_PER_STEP if imperial else KG_PER_STEP
    # Only weight has a special value (0xFFFF); BMI and height use the full uint16.
    raw = (
        WEIGHT_UNSUCCESSFUL
        if weight is None
        else _steps(weight, weight_step, "weight", WEIGHT_UNSUCCESSFUL - 1)
    )
    body = raw.to_bytes(2, "little")
    if time is not None or time_unknown:
        flags |= FLAG_TIME_STAMP
        body += encode_date_time(time)
    if user is not None:
        flags |= FLAG_USER_ID
        body += bytes([user])
    if bmi is not None and height is not None:
        flags |= FLAG_BMI_HEIGHT
        height_step = Decimal("0.1") if imperial else Decimal("0.001")
        body += _steps(bmi, BMI_PER_STEP, "BMI").to_bytes(2, "little")
        body += _steps(height, height_step, "height").to_bytes(2, "little")
    return bytes([flags]) + body


# Weight Scale Feature 0x2A9E resolution codes (GSS "Weight Scale Feature"): code -> (kg, lb) step.
_WEIGHT_RESOLUTIONS: dict[int, tuple[Decimal, Decimal]] = {
    1: (Decimal("0.5"), Decimal(1)),
    2: (Decimal("0.2"), Decimal("0.5")),
    3: (Decimal("0.1"), Decimal("0.2")),
    4: (Decimal("0.05"), Decimal("0.1")),
    5: (Decimal("0.02"), Decimal("0.05")),
    6: (Decimal("0.01"), Decimal("0.02")),
    7: (Decimal("0.005"), Decimal("0.01")),
}
# code -> (m, in) step.
_HEIGHT_RESOLUTIONS: dict[int, tuple[Decimal, Decimal]] = {
    1: (Decimal("0.01"), Decimal(1)),
    2: (Decimal("0.005"), Decimal("0.5")),
    3: (Decimal("0.001"), Decimal("0.1")),
}


@dataclass(frozen=True, slots=True)
class WeightScaleFeature:
    """Weight Scale Feature (0x2A9E): what the scale says it can do, for the log.

    A resolution is None when the scale leaves it unspecified (code 0) or sends a
    reserved code.
    """

    time_stamp: bool
    multiple_users: bool
    bmi: bool
    weight_resolution: tuple[Decimal, Decimal] | None  # (kg, lb) per step
    height_resolution: tuple[Decimal, Decimal] | None  # (m, in) per step


def decode_feature(data: bytes) -> WeightScaleFeature:
    """A Weight Scale Feature value (uint32, GSS "Weight Scale Feature"); bits 10-31 reserved."""
    if len(data) < 4:
        raise DecodeError(f"truncated: weight scale feature needs 4 bytes, has {len(data)}", 0)
    bits = int.from_bytes(data[:4], "little")
    return WeightScaleFeature(
        time_stamp=bool(bits & 0x01),
        multiple_users=bool(bits & 0x02),
        bmi=bool(bits & 0x04),
        weight_resolution=_WEIGHT_RESOLUTIONS.get((bits >> 3) & 0x0F),
        height_resolution=_HEIGHT_RESOLUTIONS.get((bits >> 7) & 0x07),
    )


def decoder_for(channel: str | None) -> Decoder:
    """The decoder for a notification's characteristic (the frame's channel).

    No channel means a measurement (captures, the decode CLI). Any other characteristic
    gets a decoder that rejects every frame, so its bytes are quarantined with the reason
    (the Feature value is not a measurement: read it with `decode_feature`).
    """
    return by_characteristic(channel, {"2a9d": decode_measurement}, "Weight Scale", default="2a9d")


DECLARATIONS = (
    Driver(
        id="ble-weight",
        summary="Bluetooth SIG Weight Scale 0x181D: 0x2A9D (kg/lb, BMI, height)",
        source=BlePeripheral(
            BleService(uuid16(0x181D), "weight scale"),
            CHARACTERISTICS,
            dedup_key=time_stamped(FLAG_TIME_STAMP),
            sets_clock=True,
        ),
        framer=WholeFrames,
        decoder_for=decoder_for,
        yields=Yields(numerics=True),
        profile="MDC_DEV_SPEC_PROFILE_SCALE",
        binding=Binding.PERSONAL,
        results=Results.STORED,
    ),
)
