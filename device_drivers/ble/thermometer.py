"""Bluetooth SIG Health Thermometer service 0x1809: measurement 0x2A1C, intermediate 0x2A1E.

Layout (Bluetooth SIG Health Thermometer Service; GSS "Temperature Measurement";
docs/protocols/ble-health-profiles.md): flags, temperature as an IEEE 11073-20601 FLOAT
(5 bytes minimum), then the optional fields in flag-bit order: time stamp (bit 1, GSS Date
Time 7 B) and temperature type (bit 2, uint8). Flag bit 0 is the unit: 0 = °C, 1 = °F.
Bits 3-7 are reserved and must be 0: such a frame is rejected, not guessed at.
Bytes beyond what the flags promise are ignored (forward compatibility).

Units: the store gets °C, as Chinese clinics use it. A °F frame is converted with Decimal,
°C = (°F − 32) × 5/9, which has no finite decimal expansion, so the result is rounded
half-up to one digit finer than the frame's own resolution (a step of 0.1 °F is 0.056 °C, so
0.01 °C keeps it), never coarser than 0.1 °C (the resolution NEWS2 bands temperature at) nor
finer than 0.0001 °C (no thermometer resolves more). Every converted reading carries
"converted-from-F".

Site: the temperature type byte picks the MDC body-site metric (`SITE_METRICS`); no type
byte, or a code the spec does not define, gives MDC_TEMP_BODY.

Vendor quirks (docs/protocols/ieee11073-numbers.md, pitfalls): some cheap thermometers send
an IEEE-754 single where the SIG requires an 11073 FLOAT, and some apps and devices read
unit bit 0 the wrong way round (the blood pressure field notes in
docs/protocols/ble-health-profiles.md). Neither can be told from one frame, so each is a
named decoder chosen per device through `QUIRKS` / `decoder_for(channel, quirk)`, never
guessed per frame. Any decoder rejects a temperature outside `PLAUSIBLE_C`: that is the
symptom of a wrong quirk setting (an IEEE-754 37.5 read as FLOAT is about 1.4e72), and such
values are quarantined rather than stored.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from device_drivers.ble.gatt import Decoder, by_characteristic, uuid16
from device_drivers.ble.measurement_frame import Fields, flags_byte
from device_drivers.ble.resend import time_stamped
from device_drivers.declaration import (
    Binding,
    BlePeripheral,
    BleService,
    DecoderFor,
    Driver,
    Quirk,
    Results,
    Yields,
)
from device_drivers.ieee11073 import (
    FLAG_NAN,
    FLAG_NEG_INF,
    FLAG_POS_INF,
    encode_date_time,
    float_bytes,
    value_and_flags,
)
from device_drivers.transport import WholeFrames
from edge_agent.model import Decoded, DecodeError, Reading

MEASUREMENT_UUID = "00002a1c-0000-1000-8000-00805f9b34fb"
INTERMEDIATE_UUID = "00002a1e-0000-1000-8000-00805f9b34fb"
# Subscribe to both: the measurement is indicated, the intermediate one notified (HTS).
CHARACTERISTICS = (MEASUREMENT_UUID, INTERMEDIATE_UUID)

FLAG_FAHRENHEIT = 0x01
FLAG_TIME_STAMP = 0x02
FLAG_TEMPERATURE_TYPE = 0x04
FLAGS_RESERVED = 0xF8

CONVERTED_FLAG = "converted-from-F"
INTERMEDIATE_FLAG = "intermediate"  # edge_agent.recorder treats it as progress
CELSIUS = "MDC_DIM_DEGC"
BODY = "MDC_TEMP_BODY"

# GSS "Temperature Type" codes -> MDC body-site metrics (docs/protocols/mdc-nomenclature.md,
# temperature sites). Terms 19308 and 19316, which one earlier table gave for oral and
# rectal, are MDC_TEMP_NASOPH and MDC_TEMP_SKIN in edge_agent.mdc (cited there from
# ISiK/Mindray).
# The thermometer site terms that Bluetooth HTP transcodes to are those of the 11073-10408
# thermometer specialization (57348.. in mdc.py, the only table that also has ear, finger,
# GI tract and toe), and drivers name metrics by reference id, so mdc.py's codes apply.
SITE_METRICS: dict[int, str] = {
    1: "MDC_TEMP_AXILLA",  # armpit
    2: BODY,  # body (general)
    3: "MDC_TEMP_EAR",  # ear, usually earlobe
    4: "MDC_TEMP_FINGER",
    5: "MDC_TEMP_GIT",  # gastro-intestinal tract
    6: "MDC_TEMP_ORAL",  # mouth
    7: "MDC_TEMP_RECT",  # rectum
    8: "MDC_TEMP_TOE",
    9: "MDC_TEMP_TYMP",  # tympanum (ear drum)
}

# A net for number-format mistakes, not a clinical range: wide enough for any thermometer
# a clinic owns (body, skin, room), far narrower than what a misread float produces.
PLAUSIBLE_C = (Decimal(-40), Decimal(100))

QUIRK_IEEE754 = "ieee754-float"
QUIRK_INVERTED_UNIT = "inverted-unit"

_Field = tuple[Decimal | None, str | None]


@dataclass(frozen=True, slots=True)
class TemperatureMeasurement:
    """The fields of one 0x2A1C/0x2A1E frame, in the frame's own unit."""

    value: Decimal | None
    special: str | None  # 11073 special value flag ("nan", "+inf", ...) when value is None
    fahrenheit: bool
    time: dt.datetime | None
    temperature_type: int | None


def _ieee754(fields: Fields) -> _Field:
    """The next field read as an IEEE-754 single: the shortest decimal that reads back to it.

    Exact binary expansion would turn a device's 36.6 into 36.59999847...; the shortest
    round-tripping text is what the device firmware meant.
    """
    raw = fields.uint(4, "temperature").to_bytes(4, "little")
    (number,) = struct.unpack("<f", raw)
    if math.isnan(number):
        return None, FLAG_NAN
    if math.isinf(number):
        return None, FLAG_POS_INF if number > 0 else FLAG_NEG_INF
    for digits in range(1, 10):  # 9 significant digits always round-trip a single
        text = f"{number:.{digits}g}"
        if struct.pack("<f", float(text)) == raw:
            return Decimal(text), None
    raise AssertionError("unreachable: 9 digits round-trip every IEEE-754 single")


def parse_measurement(
    data: bytes, *, ieee754: bool = False, inverted_unit: bool = False
) -> TemperatureMeasurement:
    """One 0x2A1C/0x2A1E frame -> its fields; DecodeError names the bad byte."""
    flags = flags_byte(data, FLAGS_RESERVED, "vendor-prefixed or not a 0x2A1C frame")
    fields = Fields(data, 1)
    value, special = _ieee754(fields) if ieee754 else fields.float32("temperature")
    time = fields.date_time() if flags & FLAG_TIME_STAMP else None
    temperature_type = fields.uint(1, "temperature type") if flags & FLAG_TEMPERATURE_TYPE else None
    return TemperatureMeasurement(
        value=value,
        special=special,
        fahrenheit=bool(flags & FLAG_FAHRENHEIT) != inverted_unit,
        time=time,
        temperature_type=temperature_type,
    )


def fahrenheit_to_celsius(value: Decimal) -> Decimal:
    """°F -> °C, rounded half-up one digit finer than `value`, within 0.1 .. 0.0001 °C."""
    exponent = value.as_tuple().exponent
    places = exponent - 1 if isinstance(exponent, int) else -1
    quantum = Decimal(1).scaleb(min(max(places, -4), -1))
    return ((value - 32) * 5 / 9).quantize(quantum, rounding=ROUND_HALF_UP)


def _readings(parsed: TemperatureMeasurement, lead: tuple[str, ...]) -> Decoded:
    value, flags = value_and_flags((parsed.value, parsed.special), lead)
    if value is not None:
        # Judged before rounding: quantizing a misread 1e72 would overflow the context.
        celsius = (value - 32) * 5 / 9 if parsed.fahrenheit else value
        if not PLAUSIBLE_C[0] <= celsius <= PLAUSIBLE_C[1]:
            raise DecodeError(
                f"temperature {celsius:.6g} °C outside {PLAUSIBLE_C[0]}..{PLAUSIBLE_C[1]}:"
                " wrong number format for this device (docs/protocols/ieee11073-numbers.md)?",
                1,
            )
    if parsed.fahrenheit:
        flags.append(CONVERTED_FLAG)
        if value is not None:
            value = fahrenheit_to_celsius(value)
    metric = BODY
    if parsed.temperature_type is not None:
        site = SITE_METRICS.get(parsed.temperature_type)
        if site is None:
            # Reserved code: keep the reading as a general body temperature, but visibly.
            flags.append(f"temperature-type:{parsed.temperature_type}")
        else:
            metric = site
    return Decoded(readings=(Reading(metric, value, CELSIUS, parsed.time, tuple(flags)),))


def decode_measurement(data: bytes) -> Decoded:
    """A Temperature Measurement (0x2A1C) frame -> one temperature in °C."""
    return _readings(parse_measurement(data), ())


def decode_intermediate(data: bytes) -> Decoded:
    """An Intermediate Temperature (0x2A1E) frame: same layout, flagged "intermediate".

    It is the reading while the probe settles: progress for the screen, never a stored
    result (edge_agent.recorder drops readings flagged "intermediate").
    """
    return _readings(parse_measurement(data), (INTERMEDIATE_FLAG,))


def decode_measurement_ieee754(data: bytes) -> Decoded:
    """Quirk: 0x2A1C with an IEEE-754 single in place of the FLOAT (weliem/bluez_inc #43)."""
    return _readings(parse_measurement(data, ieee754=True), ())


def decode_intermediate_ieee754(data: bytes) -> Decoded:
    """Quirk: 0x2A1E with an IEEE-754 single in place of the FLOAT (weliem/bluez_inc #43)."""
    return _readings(parse_measurement(data, ieee754=True), (INTERMEDIATE_FLAG,))


def decode_measurement_inverted_unit(data: bytes) -> Decoded:
    """Quirk: 0x2A1C whose unit bit 0 means °C when set (HTS says 1 = °F)."""
    return _readings(parse_measurement(data, inverted_unit=True), ())


def decode_intermediate_inverted_unit(data: bytes) -> Decoded:
    """Quirk: 0x2A1E whose unit bit 0 means °C when set (HTS says 1 = °F)."""
    return _readings(parse_measurement(data, inverted_unit=True), (INTERMEDIATE_FLAG,))


def encode_measurement(
    value: Decimal | None,
    *,
    fahrenheit: bool = False,
    time: dt.datetime | None = None,
    time_unknown: bool = False,
    temperature_type: int | None = None,
    ieee754: bool = False,
    inverted_unit: bool = False,
) -> bytes:
    """A 0x2A1C (or 0x2A1E: same layout) frame, for simulators and tests.

    `value` is in the frame's unit (°F when `fahrenheit`); None is NaN. `time_unknown`
    sends an all-zero time stamp. `ieee754` and `inverted_unit` build the quirky frames
    the matching decoders read.
    """
    flags = FLAG_FAHRENHEIT if fahrenheit != inverted_unit else 0
    if ieee754:
        body = struct.pack("<f", math.nan if value is None else float(value))
    else:
        body = float_bytes(value)
    if time is not None or time_unknown:
        flags |= FLAG_TIME_STAMP
        body += encode_date_time(time)
    if temperature_type is not None:
        flags |= FLAG_TEMPERATURE_TYPE
        body += bytes([temperature_type])
    return bytes([flags]) + body


def _selector(measurement: Decoder, intermediate: Decoder) -> Callable[[str | None], Decoder]:
    decoders = {"2a1c": measurement, "2a1e": intermediate}

    def select(channel: str | None) -> Decoder:
        return by_characteristic(channel, decoders, "Health Thermometer", default="2a1c")

    return select


_STANDARD = _selector(decode_measurement, decode_intermediate)

# Per-device quirk switches (docs/protocols/ieee11073-numbers.md): quirk -> decoder_for.
QUIRKS: dict[str, Callable[[str | None], Decoder]] = {
    QUIRK_IEEE754: _selector(decode_measurement_ieee754, decode_intermediate_ieee754),
    QUIRK_INVERTED_UNIT: _selector(
        decode_measurement_inverted_unit, decode_intermediate_inverted_unit
    ),
}


def decoder_for(channel: str | None, quirk: str | None = None) -> Decoder:
    """The decoder for a notification's characteristic, for a device with `quirk` (or none).

    No channel means a measurement (captures, the decode CLI). An unknown characteristic
    (e.g. Temperature Type 0x2A1D, which is read, not notified) gets a decoder that
    rejects every frame, so its bytes are quarantined with the reason. An unknown quirk
    name is a configuration error: ValueError naming the known ones.
    """
    if quirk is None:
        return _STANDARD(channel)
    select = QUIRKS.get(quirk)
    if select is None:
        raise ValueError(
            f"unknown Health Thermometer quirk {quirk!r} (known: {', '.join(sorted(QUIRKS))})"
        )
    return select(channel)


def _quirk(name: str) -> Quirk:
    def decoders() -> DecoderFor:
        return lambda channel: decoder_for(channel, quirk=name)

    return Quirk(f"thermometer firmware quirk: {name}", CHARACTERISTICS, decoders)


DECLARATIONS = (
    Driver(
        id="ble-thermo",
        summary="Bluetooth SIG Health Thermometer 0x1809: 0x2A1C (and intermediate 0x2A1E)",
        source=BlePeripheral(
            BleService(uuid16(0x1809), "health thermometer"),
            CHARACTERISTICS,
            dedup_key=time_stamped(FLAG_TIME_STAMP),
            sets_clock=True,
            quirks={name: _quirk(name) for name in QUIRKS},
        ),
        framer=WholeFrames,
        decoder_for=decoder_for,
        yields=Yields(numerics=True),
        profile="MDC_DEV_SPEC_PROFILE_TEMP",
        binding=Binding.PERSONAL,
        results=Results.STORED,
    ),
)
