"""Health Thermometer 0x2A1C/0x2A1E, Heart Rate 0x2A37 and Weight Scale 0x2A9D/0x2A9E
decoding, with the thermometer quirks (IEEE-754 singles, an inverted unit bit).

Comments name where each vector comes from: BLS, HTS, HRS, PLXS, GLS, WSS = the
Bluetooth SIG Blood Pressure, Health Thermometer, Heart Rate, Pulse Oximeter, Glucose and
Weight Scale services with their GATT Specification Supplement field tables; SFLOAT,
FLOAT, Date Time = the IEEE 11073-20601 / GSS types; "SIG rule" = what every SIG health
characteristic obeys (flags first, optional fields in flag-bit order, reserved bits 0,
trailing bytes ignored). The tables: docs/protocols/ble-health-profiles.md and
docs/protocols/ieee11073-numbers.md.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.ble import heart_rate, thermometer, weight_scale
from edge_agent import mdc
from edge_agent.model import Decoded, DecodeError, Reading

T0 = dt.datetime(2023, 11, 22, 10, 0, 0)
_TIME = "e707 0b 16 0a 00 00"  # GSS Date Time 2023-11-22 10:00:00

DEGC = "MDC_DIM_DEGC"
BODY, ORAL = "MDC_TEMP_BODY", "MDC_TEMP_ORAL"
HR, RR = "MDC_ECG_HEART_RATE", "MDC_ECG_TIME_PD_RR_GL"
BPM, MS = "MDC_DIM_BEAT_PER_MIN", "MDC_DIM_MILLI_SEC"
MASS, HEIGHT, BMI = "MDC_MASS_BODY_ACTUAL", "MDC_LEN_BODY_ACTUAL", "MDC_RATIO_MASS_BODY_LEN_SQ"
KG, CM, KG_M2 = "MDC_DIM_KILO_G", "MDC_DIM_CENTI_M", "MDC_DIM_KG_PER_M_SQ"

Summary = list[tuple[str, Decimal | None, str, tuple[str, ...]]]


def frame(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def summary(readings: tuple[Reading, ...]) -> Summary:
    return [(r.metric, r.value, r.unit, r.flags) for r in readings]


def same(expected: Summary, readings: tuple[Reading, ...]) -> None:
    """Equal values and also equal Decimal exponents: 37.00 must not arrive as 37."""
    got = summary(readings)
    assert got == expected
    for (_, want, _, _), (_, value, _, _) in zip(expected, got, strict=True):
        if want is not None and value is not None:
            assert str(value) == str(want)


def test_every_metric_and_unit_is_an_mdc_term() -> None:
    refids = {
        *thermometer.SITE_METRICS.values(),
        thermometer.CELSIUS,
        heart_rate.HEART_RATE,
        heart_rate.RR_INTERVAL,
        heart_rate.BPM,
        heart_rate.MS,
        weight_scale.MASS,
        weight_scale.HEIGHT,
        weight_scale.BMI,
        weight_scale.KG,
        weight_scale.CM,
        weight_scale.KG_PER_M2,
    }
    for refid in refids:
        assert mdc.term(refid).refid == refid
    assert mdc.code("MDC_ECG_TIME_PD_RR_GL") == 147240


# --- Health Thermometer --------------------------------------------------------------

TEMPERATURES = [
    # FLOAT worked example: FLOAT 72 01 00 FF = 370 × 10^-1 = 37.0 °C, minimum frame
    ("00 72 01 00 ff", None, [(BODY, Decimal("37.0"), DEGC, ())]),
    # FLOAT exponent -2: 3655 × 10^-2 = 36.55 °C
    ("00 47 0e 00 fe", None, [(BODY, Decimal("36.55"), DEGC, ())]),
    # FLOAT negative mantissa (24-bit two's complement 0xFFFFCE = -50) × 10^-1 = -5.0 °C
    ("00 ce ff ff ff", None, [(BODY, Decimal("-5.0"), DEGC, ())]),
    # HTS bit 0 = °F: 98.6 °F (986e-1) -> (98.6 - 32) × 5/9 = 37 -> 37.00 (one digit finer)
    ("01 da 03 00 ff", None, [(BODY, Decimal("37.00"), DEGC, ("converted-from-F",))]),
    # °F at 0.1: 100.4 °F -> 38.00 °C
    ("01 ec 03 00 ff", None, [(BODY, Decimal("38.00"), DEGC, ("converted-from-F",))]),
    # °F at exponent 0: 99 °F -> 37.222... -> 37.2 (0.1 °C, never coarser)
    ("01 63 00 00 00", None, [(BODY, Decimal("37.2"), DEGC, ("converted-from-F",))]),
    # °F at exponent -2: 101.30 °F -> 38.5 -> 38.500
    ("01 92 27 00 fe", None, [(BODY, Decimal("38.500"), DEGC, ("converted-from-F",))]),
    # °F negative: -40 °F = -40 °C exactly (and the lower plausibility bound, inclusive)
    ("01 d8 ff ff 00", None, [(BODY, Decimal("-40.0"), DEGC, ("converted-from-F",))]),
    # upper plausibility bound, inclusive: 100.0 °C
    ("00 e8 03 00 ff", None, [(BODY, Decimal("100.0"), DEGC, ())]),
    # HTS bit 1 time stamp (GSS Date Time)
    (f"02 72 01 00 ff {_TIME}", T0, [(BODY, Decimal("37.0"), DEGC, ())]),
    # Date Time of zeros: device clock not set -> time unknown, reading kept
    ("02 72 01 00 ff 00000000000000", None, [(BODY, Decimal("37.0"), DEGC, ())]),
    # HTS bit 2 temperature type 6 = mouth -> MDC_TEMP_ORAL
    ("04 72 01 00 ff 06", None, [(ORAL, Decimal("37.0"), DEGC, ())]),
    # HTS type 2 = body (general)
    ("04 72 01 00 ff 02", None, [(BODY, Decimal("37.0"), DEGC, ())]),
    # HTS type 0 is not defined: general body temperature, code kept as a flag
    ("04 72 01 00 ff 00", None, [(BODY, Decimal("37.0"), DEGC, ("temperature-type:0",))]),
    # HTS type 10..255 reserved: the same
    ("04 72 01 00 ff 0a", None, [(BODY, Decimal("37.0"), DEGC, ("temperature-type:10",))]),
    # all optional fields: °F, time stamp, type 9 = tympanum
    (
        f"07 da 03 00 ff {_TIME} 09",
        T0,
        [("MDC_TEMP_TYMP", Decimal("37.00"), DEGC, ("converted-from-F",))],
    ),
    # FLOAT specials: NaN, NRes, +INF, -INF -> no value, flag; no plausibility check
    ("00 ff ff 7f 00", None, [(BODY, None, DEGC, ("nan",))]),
    ("00 00 00 80 00", None, [(BODY, None, DEGC, ("nres",))]),
    ("00 fe ff 7f 00", None, [(BODY, None, DEGC, ("+inf",))]),
    ("00 02 00 80 00", None, [(BODY, None, DEGC, ("-inf",))]),
    ("00 01 00 80 00", None, [(BODY, None, DEGC, ("reserved",))]),
    # a special in °F keeps its conversion flag, as the BP driver does for kPa
    ("01 ff ff 7f 00", None, [(BODY, None, DEGC, ("nan", "converted-from-F"))]),
    # SIG rule: bytes beyond what the flags promise are ignored
    ("00 72 01 00 ff dead beef", None, [(BODY, Decimal("37.0"), DEGC, ())]),
]


@pytest.mark.parametrize(("hex_frame", "time", "expected"), TEMPERATURES)
def test_decode_temperature(hex_frame: str, time: dt.datetime | None, expected: Summary) -> None:
    decoded = thermometer.decode_measurement(frame(hex_frame))
    same(expected, decoded.readings)
    assert {r.device_time for r in decoded.readings} == {time}
    assert not decoded.waveforms and not decoded.alarms


@pytest.mark.parametrize(
    ("code", "metric"),
    [
        # HTS temperature type codes (Nordic HealthThermometerTypes) -> 10408 site terms
        (1, "MDC_TEMP_AXILLA"),
        (2, "MDC_TEMP_BODY"),
        (3, "MDC_TEMP_EAR"),
        (4, "MDC_TEMP_FINGER"),
        (5, "MDC_TEMP_GIT"),
        (6, "MDC_TEMP_ORAL"),
        (7, "MDC_TEMP_RECT"),
        (8, "MDC_TEMP_TOE"),
        (9, "MDC_TEMP_TYMP"),
    ],
)
def test_temperature_type_sites(code: int, metric: str) -> None:
    decoded = thermometer.decode_measurement(frame(f"04 72 01 00 ff {code:02x}"))
    assert [(r.metric, r.flags) for r in decoded.readings] == [(metric, ())]


def test_intermediate_temperature_is_flagged_progress() -> None:
    # HTS 0x2A1E has the 0x2A1C layout; edge_agent.recorder drops "intermediate" readings
    from edge_agent.recorder import PROGRESS_FLAG

    decoded = thermometer.decode_intermediate(frame("05 da 03 00 ff 03"))
    same(
        [("MDC_TEMP_EAR", Decimal("37.00"), DEGC, (PROGRESS_FLAG, "converted-from-F"))],
        decoded.readings,
    )


_TEMP_C = "6e 01 00 ff"  # 36.6 °C
_TEMP_F = "da 03 00 ff"  # 98.6 °F = 37.00 °C
_TYPE = "06"  # mouth


@pytest.mark.parametrize("intermediate", [False, True])
@pytest.mark.parametrize("flags", range(8))
def test_every_thermometer_flag_combination(flags: int, intermediate: bool) -> None:
    """All 8 combinations of flag bits 0-2, each frame assembled in HTS field order."""
    parts = [f"{flags:02x}", _TEMP_F if flags & 1 else _TEMP_C]
    for bit, piece in ((2, _TIME), (4, _TYPE)):
        if flags & bit:
            parts.append(piece)
    decode = thermometer.decode_intermediate if intermediate else thermometer.decode_measurement
    (reading,) = decode(frame(" ".join(parts))).readings
    assert reading.value == (Decimal("37.00") if flags & 1 else Decimal("36.6"))
    assert reading.unit == DEGC
    assert reading.metric == (ORAL if flags & 4 else BODY)
    assert reading.device_time == (T0 if flags & 2 else None)
    assert ("converted-from-F" in reading.flags) == bool(flags & 1)
    assert ("intermediate" in reading.flags) == intermediate
    # The encoder builds the same bytes (a check on the hand-built pieces).
    built = thermometer.encode_measurement(
        Decimal("98.6") if flags & 1 else Decimal("36.6"),
        fahrenheit=bool(flags & 1),
        time=T0 if flags & 2 else None,
        temperature_type=6 if flags & 4 else None,
    )
    assert built == frame(" ".join(parts))


REJECTED_TEMPERATURES = [
    # SIG rule: a flags byte is mandatory
    ("", 0, "empty"),
    # HTS flag bits 3-7 reserved
    ("08 72 01 00 ff", 0, "reserved"),
    ("80 72 01 00 ff", 0, "reserved"),
    # HTS 5-byte minimum: FLOAT cut short
    ("00 72 01 00", 1, "temperature"),
    ("00", 1, "temperature"),
    # SIG rule: time stamp promised, cut short
    ("02 72 01 00 ff e7 07 0b", 5, "date time"),
    # temperature type promised, missing (after a time stamp)
    (f"06 72 01 00 ff {_TIME}", 12, "temperature type"),
    # Date Time month 13 invalidates the frame (month is frame byte 7)
    ("02 72 01 00 ff e7 07 0d 16 0a 00 00", 7, "month 13"),
    # IEEE-754 quirk an IEEE-754 37.5 (00 00 16 42) read as FLOAT: 1441792 × 10^66 -> quarantined
    ("00 00 00 16 42", 1, "outside"),
    # plausibility: 150.0 °C and 213 °F (100.56 °C) are no thermometer reading
    ("00 dc 05 00 ff", 1, "outside"),
    ("01 d5 00 00 00", 1, "outside"),
    # below: -40.1 °C (mantissa -401 = 0xFFFE6F, exponent -1)
    ("00 6f fe ff ff", 1, "outside"),
]


@pytest.mark.parametrize(("hex_frame", "offset", "reason"), REJECTED_TEMPERATURES)
def test_rejected_temperatures(hex_frame: str, offset: int, reason: str) -> None:
    for decode in (thermometer.decode_measurement, thermometer.decode_intermediate):
        with pytest.raises(DecodeError) as info:
            decode(frame(hex_frame))
        assert info.value.offset == offset
        assert reason in info.value.reason
        assert str(info.value).startswith(f"byte {offset}: ")


IEEE754_TEMPERATURES = [
    # IEEE-754 quirk quirk: IEEE-754 single 36.6 (66 66 12 42), read as the shortest decimal
    ("00 66 66 12 42", [(BODY, Decimal("36.6"), DEGC, ())]),
    # 37.5 is exact in binary
    ("00 00 00 16 42", [(BODY, Decimal("37.5"), DEGC, ())]),
    # °F still converts: IEEE 98.6 (33 33 c5 42) -> 37.00 °C
    ("01 33 33 c5 42", [(BODY, Decimal("37.00"), DEGC, ("converted-from-F",))]),
    # with time stamp and type 1 (armpit)
    (f"06 cd cc 18 42 {_TIME} 01", [("MDC_TEMP_AXILLA", Decimal("38.2"), DEGC, ())]),
    # IEEE NaN / ±inf map to the 11073 special flags
    ("00 00 00 c0 7f", [(BODY, None, DEGC, ("nan",))]),
    ("00 00 00 80 7f", [(BODY, None, DEGC, ("+inf",))]),
    ("00 00 00 80 ff", [(BODY, None, DEGC, ("-inf",))]),
    # zero
    ("00 00 00 00 00", [(BODY, Decimal(0), DEGC, ())]),
]


@pytest.mark.parametrize(("hex_frame", "expected"), IEEE754_TEMPERATURES)
def test_ieee754_quirk(hex_frame: str, expected: Summary) -> None:
    same(expected, thermometer.decode_measurement_ieee754(frame(hex_frame)).readings)
    lead = ("intermediate",)
    want = [(m, v, u, (*lead, *f)) for m, v, u, f in expected]
    same(want, thermometer.decode_intermediate_ieee754(frame(hex_frame)).readings)


@pytest.mark.parametrize(
    ("hex_frame", "offset", "reason"),
    [
        # IEEE-754 quirk the other way round: an 11073 37.0 read as IEEE-754 is about -1.7e38
        ("00 72 01 00 ff", 1, "outside"),
        ("00 72 01 00", 1, "truncated"),
        ("08 00 00 16 42", 0, "reserved"),
        ("04 00 00 16 42", 5, "temperature type"),
    ],
)
def test_ieee754_quirk_rejects(hex_frame: str, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        thermometer.decode_measurement_ieee754(frame(hex_frame))
    assert (info.value.offset, reason in info.value.reason) == (offset, True)


INVERTED_UNIT_TEMPERATURES = [
    # BLS field notes, inverted unit bit: bit 0 = 1 means °C for these devices
    ("01 72 01 00 ff", [(BODY, Decimal("37.0"), DEGC, ())]),
    # and bit 0 = 0 means °F
    ("00 da 03 00 ff", [(BODY, Decimal("37.00"), DEGC, ("converted-from-F",))]),
    ("04 da 03 00 ff 07", [("MDC_TEMP_RECT", Decimal("37.00"), DEGC, ("converted-from-F",))]),
]


@pytest.mark.parametrize(("hex_frame", "expected"), INVERTED_UNIT_TEMPERATURES)
def test_inverted_unit_quirk(hex_frame: str, expected: Summary) -> None:
    same(expected, thermometer.decode_measurement_inverted_unit(frame(hex_frame)).readings)
    want = [(m, v, u, ("intermediate", *f)) for m, v, u, f in expected]
    same(want, thermometer.decode_intermediate_inverted_unit(frame(hex_frame)).readings)


def test_quirk_is_not_guessed_per_frame() -> None:
    # The standard decoder never falls back to IEEE-754: the quirk must be configured.
    quirky = thermometer.encode_measurement(Decimal("36.6"), ieee754=True)
    with pytest.raises(DecodeError, match="outside"):
        thermometer.decode_measurement(quirky)
    assert thermometer.decoder_for(None, "ieee754-float")(quirky).readings[0].value == Decimal(
        "36.6"
    )
    # And an inverted-unit device's °C frame reads as °F without its quirk.
    inverted = thermometer.encode_measurement(Decimal("37.0"), inverted_unit=True)
    assert inverted == frame("01 72 01 00 ff")
    assert thermometer.decode_measurement(inverted).readings[0].flags == ("converted-from-F",)


@pytest.mark.parametrize(
    ("channel", "quirk", "decoder"),
    [
        (thermometer.MEASUREMENT_UUID, None, thermometer.decode_measurement),
        (thermometer.INTERMEDIATE_UUID, None, thermometer.decode_intermediate),
        ("00002A1C-0000-1000-8000-00805F9B34FB", None, thermometer.decode_measurement),
        ("2a1e", None, thermometer.decode_intermediate),
        ("0x2A1C", None, thermometer.decode_measurement),
        (None, None, thermometer.decode_measurement),
        (thermometer.MEASUREMENT_UUID, "ieee754-float", thermometer.decode_measurement_ieee754),
        (thermometer.INTERMEDIATE_UUID, "ieee754-float", thermometer.decode_intermediate_ieee754),
        (None, "ieee754-float", thermometer.decode_measurement_ieee754),
        ("2a1c", "inverted-unit", thermometer.decode_measurement_inverted_unit),
        ("2a1e", "inverted-unit", thermometer.decode_intermediate_inverted_unit),
    ],
)
def test_thermometer_decoder_for(
    channel: str | None, quirk: str | None, decoder: Callable[[bytes], Decoded]
) -> None:
    assert thermometer.decoder_for(channel, quirk) is decoder


def test_thermometer_decoder_for_rejects_unknowns() -> None:
    assert set(thermometer.QUIRKS) == {"ieee754-float", "inverted-unit"}
    decode = thermometer.decoder_for("00002a1d-0000-1000-8000-00805f9b34fb")  # Temperature Type
    with pytest.raises(DecodeError, match="not part of the Health Thermometer service"):
        decode(frame("00 72 01 00 ff"))
    with pytest.raises(DecodeError, match="not part of the Health Thermometer service"):
        thermometer.decoder_for("2a1d", "ieee754-float")(frame("00 00 00 16 42"))
    with pytest.raises(ValueError, match="ieee754-float, inverted-unit"):
        thermometer.decoder_for(thermometer.MEASUREMENT_UUID, "ieee754")
    assert thermometer.CHARACTERISTICS == (
        thermometer.MEASUREMENT_UUID,
        thermometer.INTERMEDIATE_UUID,
    )


def test_thermometer_encoder_matches_hand_built_frames() -> None:
    assert thermometer.encode_measurement(Decimal("37.0")) == frame("00 72 01 00 ff")
    assert thermometer.encode_measurement(None, time_unknown=True) == frame(
        "02 ff ff 7f 00 00000000000000"
    )
    assert thermometer.encode_measurement(
        Decimal("98.6"), fahrenheit=True, time=T0, temperature_type=9
    ) == frame(f"07 da 03 00 ff {_TIME} 09")
    assert thermometer.encode_measurement(
        Decimal("98.6"), fahrenheit=True, ieee754=True, inverted_unit=True
    ) == frame("00 33 33 c5 42")


_THERMO_DECODERS = (
    thermometer.decode_measurement,
    thermometer.decode_intermediate,
    thermometer.decode_measurement_ieee754,
    thermometer.decode_intermediate_ieee754,
    thermometer.decode_measurement_inverted_unit,
    thermometer.decode_intermediate_inverted_unit,
)


@given(st.binary(max_size=24))
def test_fuzz_thermometer_raises_only_decode_error(data: bytes) -> None:
    for decode in _THERMO_DECODERS:
        try:
            decoded = decode(data)
        except DecodeError:
            continue
        assert len(decoded.readings) == 1


@given(
    st.binary(min_size=5, max_size=5).map(lambda b: bytes([b[0] & 0x07]) + b[1:]),
    st.sampled_from(_THERMO_DECODERS),
)
def test_fuzz_thermometer_valid_flags(data: bytes, decode: Callable[[bytes], Decoded]) -> None:
    # Valid flags and a full value field: the value is the only thing left to reject on.
    try:
        decoded = decode(data + frame(f"{_TIME} 01"))
    except DecodeError as error:
        assert error.offset == 1
        return
    (reading,) = decoded.readings
    assert reading.value is None or thermometer.PLAUSIBLE_C[0] <= reading.value <= 100


_celsius = st.decimals(min_value=-40, max_value=100, places=2)


@given(
    st.one_of(st.none(), _celsius),
    st.one_of(st.none(), st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2099, 1, 1))),
    st.one_of(st.none(), st.integers(0, 255)),
)
def test_thermometer_round_trip(
    value: Decimal | None, when: dt.datetime | None, temperature_type: int | None
) -> None:
    when = None if when is None else when.replace(microsecond=0)
    data = thermometer.encode_measurement(value, time=when, temperature_type=temperature_type)
    (reading,) = thermometer.decode_measurement(data).readings
    assert reading.value == value
    assert reading.device_time == when
    assert reading.metric == thermometer.SITE_METRICS.get(temperature_type or 0, BODY)


# 0 is excluded: the FLOAT encoder writes any zero as 0 × 10^0, whose resolution is 1 °F.
@given(st.decimals(min_value=-40, max_value=212, places=1).filter(lambda f: f != 0))
def test_fahrenheit_round_trip_within_half_a_step(fahrenheit: Decimal) -> None:
    (reading,) = thermometer.decode_measurement(
        thermometer.encode_measurement(fahrenheit, fahrenheit=True)
    ).readings
    assert reading.value is not None
    assert abs(reading.value - (fahrenheit - 32) * 5 / 9) <= Decimal("0.005")
    assert reading.value.as_tuple().exponent == -2


@given(st.decimals(min_value=-40, max_value=100, places=1), st.booleans())
def test_ieee754_round_trip(value: Decimal, intermediate: bool) -> None:
    data = thermometer.encode_measurement(value, ieee754=True)
    assert data[1:] == struct.pack("<f", float(value))
    decode = (
        thermometer.decode_intermediate_ieee754
        if intermediate
        else thermometer.decode_measurement_ieee754
    )
    assert decode(data).readings[0].value == value


# --- Heart Rate -----------------------------------------------------------------------

HEART_RATES = [
    # HRS minimum frame: flags 0 (uint8 rate), 72 /min
    ("00 48", [(HR, Decimal(72), BPM, ())]),
    # HRS bit 0: uint16 rate
    ("01 48 00", [(HR, Decimal(72), BPM, ())]),
    ("01 2c 01", [(HR, Decimal(300), BPM, ())]),
    # HRS rate 0 is a value, not a special
    ("00 00", [(HR, Decimal(0), BPM, ())]),
    # HRS contact status 1 (bits 1-2 = 01): not supported -> nothing
    ("02 48", [(HR, Decimal(72), BPM, ())]),
    # HRS contact status 2: supported, no contact -> flagged
    ("04 48", [(HR, Decimal(72), BPM, ("no-sensor-contact",))]),
    # HRS contact status 3: contact -> nothing
    ("06 48", [(HR, Decimal(72), BPM, ())]),
    # HRS bit 3 energy expended 1000 kJ; 0xFFFF is the counter's ceiling, still a value
    ("08 48 e8 03", [(HR, Decimal(72), BPM, ("energy-expended-kJ:1000",))]),
    ("08 48 ff ff", [(HR, Decimal(72), BPM, ("energy-expended-kJ:65535",))]),
    # HRS bit 4 RR intervals, 1/1024 s: 1024 -> 1000 ms, 800 -> 781.25 ms
    ("10 48 00 04", [(HR, Decimal(72), BPM, ()), (RR, Decimal(1000), MS, ())]),
    (
        "10 48 00 04 20 03",
        [(HR, Decimal(72), BPM, ()), (RR, Decimal(1000), MS, ()), (RR, Decimal("781.25"), MS, ())],
    ),
    # 1 tick = 0.9765625 ms exactly; 65535 ticks = 63999.0234375 ms
    (
        "10 48 01 00 ff ff",
        [
            (HR, Decimal(72), BPM, ()),
            (RR, Decimal("0.9765625"), MS, ()),
            (RR, Decimal("63999.0234375"), MS, ()),
        ],
    ),
    # HRS an odd trailing byte after the RR intervals is ignored (as Nordic does)
    ("10 48 00 04 20", [(HR, Decimal(72), BPM, ()), (RR, Decimal(1000), MS, ())]),
    # all fields: contact 3, energy 10 kJ, one RR; no contact flag
    (
        "1e 48 0a 00 00 04",
        [(HR, Decimal(72), BPM, ("energy-expended-kJ:10",)), (RR, Decimal(1000), MS, ())],
    ),
    # uint16 rate, no contact, energy, RR: contact flag on every reading, energy on the rate
    (
        "1d 48 00 0a 00 00 04",
        [
            (HR, Decimal(72), BPM, ("no-sensor-contact", "energy-expended-kJ:10")),
            (RR, Decimal(1000), MS, ("no-sensor-contact",)),
        ],
    ),
    # SIG rule: trailing bytes without the RR flag are ignored
    ("00 48 de ad", [(HR, Decimal(72), BPM, ())]),
]


@pytest.mark.parametrize(("hex_frame", "expected"), HEART_RATES)
def test_decode_heart_rate(hex_frame: str, expected: Summary) -> None:
    decoded = heart_rate.decode_measurement(frame(hex_frame))
    same(expected, decoded.readings)
    assert all(r.device_time is None for r in decoded.readings)  # 0x2A37 has no time stamp


_RATE8, _RATE16 = "48", "48 00"
_ENERGY = "e8 03"  # 1000 kJ
_RRS = "00 04 20 03"  # 1000 ms, 781.25 ms


@pytest.mark.parametrize("flags", range(32))
def test_every_heart_rate_flag_combination(flags: int) -> None:
    """All 32 combinations of flag bits 0-4, each frame assembled in HRS field order."""
    parts = [f"{flags:02x}", _RATE16 if flags & 1 else _RATE8]
    for bit, piece in ((8, _ENERGY), (16, _RRS)):
        if flags & bit:
            parts.append(piece)
    readings = heart_rate.decode_measurement(frame(" ".join(parts))).readings
    rr_values = [Decimal(1000), Decimal("781.25")] if flags & 16 else []
    assert [(r.metric, r.value) for r in readings] == [
        (HR, Decimal(72)),
        *((RR, v) for v in rr_values),
    ]
    no_contact = (flags >> 1) & 3 == 2
    for r in readings:
        assert ("no-sensor-contact" in r.flags) == no_contact
        assert ("energy-expended-kJ:1000" in r.flags) == bool(flags & 8 and r.metric == HR)
    built = heart_rate.encode_measurement(
        72,
        uint16=bool(flags & 1),
        contact=(flags >> 1) & 3,
        energy_kj=1000 if flags & 8 else None,
        rr_ticks=(1024, 800) if flags & 16 else (),
    )
    assert built == frame(" ".join(parts))


REJECTED_HEART_RATES = [
    ("", 0, "empty"),
    # HRS flag bits 5-7 reserved
    ("20 48", 0, "reserved"),
    ("80 48", 0, "reserved"),
    # rate missing / uint16 rate cut short
    ("00", 1, "heart rate"),
    ("01 48", 1, "heart rate"),
    # energy promised, one byte of two
    ("08 48 e8", 2, "energy expended"),
    # HRS RR flag set: at least one RR interval must follow
    ("10 48", 2, "RR interval"),
    ("10 48 00", 2, "RR interval"),
    ("18 48 e8 03", 4, "RR interval"),
]


@pytest.mark.parametrize(("hex_frame", "offset", "reason"), REJECTED_HEART_RATES)
def test_rejected_heart_rates(hex_frame: str, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        heart_rate.decode_measurement(frame(hex_frame))
    assert info.value.offset == offset
    assert reason in info.value.reason
    assert str(info.value).startswith(f"byte {offset}: ")


@pytest.mark.parametrize(
    "channel",
    [
        heart_rate.MEASUREMENT_UUID,
        "00002A37-0000-1000-8000-00805F9B34FB",
        "2a37",
        "0x2A37",
        None,
    ],
)
def test_heart_rate_decoder_for(channel: str | None) -> None:
    assert heart_rate.decoder_for(channel) is heart_rate.decode_measurement
    assert heart_rate.CHARACTERISTICS == (heart_rate.MEASUREMENT_UUID,)


def test_heart_rate_decoder_for_unknown_characteristic_quarantines() -> None:
    decode = heart_rate.decoder_for("00002a38-0000-1000-8000-00805f9b34fb")  # sensor location
    with pytest.raises(DecodeError, match="not part of the Heart Rate service"):
        decode(frame("00 48"))


def test_heart_rate_encoder() -> None:
    assert heart_rate.encode_measurement(300) == frame("01 2c 01")  # > 255 forces uint16
    with pytest.raises(ValueError, match="2 bits"):
        heart_rate.encode_measurement(72, contact=4)


@given(st.binary(max_size=24))
def test_fuzz_heart_rate_raises_only_decode_error(data: bytes) -> None:
    try:
        decoded = heart_rate.decode_measurement(data)
    except DecodeError:
        return
    assert decoded.readings[0].metric == HR
    assert all(r.metric == RR for r in decoded.readings[1:])


@given(
    st.integers(0, 0xFFFF),
    st.booleans(),
    st.integers(0, 3),
    st.one_of(st.none(), st.integers(0, 0xFFFF)),
    st.lists(st.integers(0, 0xFFFF), max_size=9),
)
def test_heart_rate_round_trip(
    rate: int, uint16: bool, contact: int, energy: int | None, rr: list[int]
) -> None:
    data = heart_rate.encode_measurement(
        rate, uint16=uint16, contact=contact, energy_kj=energy, rr_ticks=rr
    )
    parsed = heart_rate.parse_measurement(data)
    assert parsed == heart_rate.HeartRateMeasurement(rate, contact, energy, tuple(rr))
    readings = heart_rate.decode_measurement(data).readings
    assert readings[0].value == rate
    # ms back to 1/1024 s is exact: nothing was rounded on the way
    assert [r.value * 128 / 125 for r in readings[1:] if r.value is not None] == rr


# --- Weight Scale ---------------------------------------------------------------------

WEIGHTS = [
    # WSS minimum frame: flags 0 (SI), weight 14000 × 0.005 kg = 70.000 kg
    ("00 b0 36", None, [(MASS, Decimal("70.000"), KG, ())]),
    # WSS largest weight 0xFFFE × 0.005 = 327.670 kg
    ("00 fe ff", None, [(MASS, Decimal("327.670"), KG, ())]),
    # WSS bit 0 imperial: 15432 × 0.01 lb = 154.32 lb × 0.45359237 = 69.9983745384 -> 69.998
    ("01 48 3c", None, [(MASS, Decimal("69.998"), KG, ("converted-from-lb",))]),
    # 220.46 lb = 99.9989738902 kg -> 99.999
    ("01 1e 56", None, [(MASS, Decimal("99.999"), KG, ("converted-from-lb",))]),
    # WSS bit 1 time stamp
    (f"02 b0 36 {_TIME}", T0, [(MASS, Decimal("70.000"), KG, ())]),
    # Date Time zero time stamp: time unknown, reading kept
    ("02 b0 36 00000000000000", None, [(MASS, Decimal("70.000"), KG, ())]),
    # WSS bit 2 user id 1; 0xFF = unknown user -> no flag
    ("04 b0 36 01", None, [(MASS, Decimal("70.000"), KG, ("user:1",))]),
    ("04 b0 36 ff", None, [(MASS, Decimal("70.000"), KG, ())]),
    # WSS bit 3 BMI (229 × 0.1 = 22.9 kg/m²) and height (1750 mm = 175.0 cm)
    (
        "08 b0 36 e5 00 d6 06",
        None,
        [
            (MASS, Decimal("70.000"), KG, ()),
            (BMI, Decimal("22.9"), KG_M2, ()),
            (HEIGHT, Decimal("175.0"), CM, ()),
        ],
    ),
    # imperial BMI and height: BMI stays kg/m²; 690 × 0.1 in × 2.54 = 175.260 cm exactly
    (
        "09 48 3c e5 00 b2 02",
        None,
        [
            (MASS, Decimal("69.998"), KG, ("converted-from-lb",)),
            (BMI, Decimal("22.9"), KG_M2, ()),
            (HEIGHT, Decimal("175.260"), CM, ("converted-from-in",)),
        ],
    ),
    # everything, SI
    (
        f"0e b0 36 {_TIME} 02 e5 00 d6 06",
        T0,
        [
            (MASS, Decimal("70.000"), KG, ("user:2",)),
            (BMI, Decimal("22.9"), KG_M2, ("user:2",)),
            (HEIGHT, Decimal("175.0"), CM, ("user:2",)),
        ],
    ),
    # WSS special weight 0xFFFF: measurement unsuccessful -> no value
    ("00 ff ff", None, [(MASS, None, KG, ("measurement-unsuccessful",))]),
    # ... with the time stamp and user id it may still carry
    (
        f"06 ff ff {_TIME} 02",
        T0,
        [(MASS, None, KG, ("measurement-unsuccessful", "user:2"))],
    ),
    # ... in imperial: the unit flag stays visible, as for a special in kPa (BP driver)
    ("01 ff ff", None, [(MASS, None, KG, ("measurement-unsuccessful", "converted-from-lb"))]),
    # weight 0 is a value
    ("00 00 00", None, [(MASS, Decimal("0.000"), KG, ())]),
    # SIG rule: trailing bytes ignored
    ("00 b0 36 dead", None, [(MASS, Decimal("70.000"), KG, ())]),
]


@pytest.mark.parametrize(("hex_frame", "time", "expected"), WEIGHTS)
def test_decode_weight(hex_frame: str, time: dt.datetime | None, expected: Summary) -> None:
    decoded = weight_scale.decode_measurement(frame(hex_frame))
    same(expected, decoded.readings)
    assert {r.device_time for r in decoded.readings} == {time}


_WEIGHT_SI, _WEIGHT_LB = "b0 36", "48 3c"  # 70.000 kg, 154.32 lb = 69.998 kg
_USER = "03"
_BMI_HEIGHT_SI, _BMI_HEIGHT_IN = "e5 00 d6 06", "e5 00 b2 02"  # 22.9; 1.750 m / 69.0 in


@pytest.mark.parametrize("flags", range(16))
def test_every_weight_flag_combination(flags: int) -> None:
    """All 16 combinations of flag bits 0-3, each frame assembled in WSS field order."""
    imperial = bool(flags & 1)
    parts = [f"{flags:02x}", _WEIGHT_LB if imperial else _WEIGHT_SI]
    if flags & 2:
        parts.append(_TIME)
    if flags & 4:
        parts.append(_USER)
    if flags & 8:
        parts.append(_BMI_HEIGHT_IN if imperial else _BMI_HEIGHT_SI)
    readings = weight_scale.decode_measurement(frame(" ".join(parts))).readings
    expected = [(MASS, Decimal("69.998") if imperial else Decimal("70.000"))]
    if flags & 8:
        expected += [
            (BMI, Decimal("22.9")),
            (HEIGHT, Decimal("175.260") if imperial else Decimal("175.0")),
        ]
    assert [(r.metric, r.value) for r in readings] == expected
    for r in readings:
        assert r.device_time == (T0 if flags & 2 else None)
        assert ("user:3" in r.flags) == bool(flags & 4)
        assert ("converted-from-lb" in r.flags) == (imperial and r.metric == MASS)
        assert ("converted-from-in" in r.flags) == (imperial and r.metric == HEIGHT)
    built = weight_scale.encode_measurement(
        Decimal("154.32") if imperial else Decimal("70"),
        imperial=imperial,
        time=T0 if flags & 2 else None,
        user=3 if flags & 4 else None,
        bmi=Decimal("22.9") if flags & 8 else None,
        height=(Decimal("69.0") if imperial else Decimal("1.75")) if flags & 8 else None,
    )
    assert built == frame(" ".join(parts))


REJECTED_WEIGHTS = [
    ("", 0, "empty"),
    # WSS flag bits 4-7 reserved
    ("10 b0 36", 0, "reserved"),
    ("80 b0 36", 0, "reserved"),
    # weight cut short
    ("00 b0", 1, "weight"),
    ("00", 1, "weight"),
    # time stamp promised, cut short
    ("02 b0 36 e7 07", 3, "date time"),
    # user id promised, missing (after a time stamp)
    (f"06 b0 36 {_TIME}", 10, "user id"),
    # WSS BMI and height come together: height missing, BMI cut short
    ("08 b0 36 e5 00 d6", 5, "height"),
    ("08 b0 36 e5", 3, "BMI"),
    # WSS weight 0xFFFF allows only time stamp and user id: BMI/height is inconsistent
    ("08 ff ff e5 00 d6 06", 0, "measurement unsuccessful"),
    # Date Time month 13 (frame byte 5)
    ("02 b0 36 e7 07 0d 16 0a 00 00", 5, "month 13"),
]


@pytest.mark.parametrize(("hex_frame", "offset", "reason"), REJECTED_WEIGHTS)
def test_rejected_weights(hex_frame: str, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        weight_scale.decode_measurement(frame(hex_frame))
    assert info.value.offset == offset
    assert reason in info.value.reason
    assert str(info.value).startswith(f"byte {offset}: ")


FEATURES = [
    # WSS Feature: time stamp, multiple users, BMI; weight resolution 7 (0.005 kg /
    # 0.01 lb, bits 3-6), height resolution 3 (0.001 m / 0.1 in, bits 7-9) = 0x000001BF
    (
        "bf 01 00 00",
        weight_scale.WeightScaleFeature(
            time_stamp=True,
            multiple_users=True,
            bmi=True,
            weight_resolution=(Decimal("0.005"), Decimal("0.01")),
            height_resolution=(Decimal("0.001"), Decimal("0.1")),
        ),
    ),
    # nothing supported, resolutions unspecified (code 0)
    ("00 00 00 00", weight_scale.WeightScaleFeature(False, False, False, None, None)),
    # weight resolution 1 (0.5 kg / 1 lb), height 1 (0.01 m / 1 in) = 0x88
    (
        "88 00 00 00",
        weight_scale.WeightScaleFeature(
            False, False, False, (Decimal("0.5"), Decimal(1)), (Decimal("0.01"), Decimal(1))
        ),
    ),
    # reserved weight resolution code 8 (0x40) and height code 4 (0x200): unspecified;
    # reserved bits 10-31 and extra bytes are ignored
    ("40 02 ff ff 00", weight_scale.WeightScaleFeature(False, False, False, None, None)),
]


@pytest.mark.parametrize(("hex_value", "expected"), FEATURES)
def test_decode_feature(hex_value: str, expected: weight_scale.WeightScaleFeature) -> None:
    assert weight_scale.decode_feature(frame(hex_value)) == expected


def test_decode_feature_truncated() -> None:
    with pytest.raises(DecodeError) as info:
        weight_scale.decode_feature(frame("bf 01 00"))
    assert info.value.offset == 0 and "truncated" in info.value.reason


@pytest.mark.parametrize(
    "channel",
    [weight_scale.MEASUREMENT_UUID, "00002A9D-0000-1000-8000-00805F9B34FB", "0x2a9d", None],
)
def test_weight_decoder_for(channel: str | None) -> None:
    assert weight_scale.decoder_for(channel) is weight_scale.decode_measurement
    assert weight_scale.CHARACTERISTICS == (weight_scale.MEASUREMENT_UUID,)


def test_weight_decoder_for_feature_characteristic_quarantines() -> None:
    decode = weight_scale.decoder_for(weight_scale.FEATURE_UUID)
    with pytest.raises(DecodeError, match="not part of the Weight Scale service"):
        decode(frame("00 b0 36"))


def test_weight_encoder_refuses_what_it_cannot_send_exactly() -> None:
    assert weight_scale.encode_measurement(None, time_unknown=True, user=1) == frame(
        "06 ff ff 00000000000000 01"
    )
    with pytest.raises(ValueError, match="whole number"):
        weight_scale.encode_measurement(Decimal("70.001"))
    with pytest.raises(ValueError, match="whole number"):
        weight_scale.encode_measurement(Decimal("327.675"))  # 0xFFFF is the special
    with pytest.raises(ValueError, match="together"):
        weight_scale.encode_measurement(Decimal(70), bmi=Decimal("22.9"))


@given(st.binary(max_size=24))
def test_fuzz_weight_raises_only_decode_error(data: bytes) -> None:
    try:
        decoded = weight_scale.decode_measurement(data)
    except DecodeError:
        pass
    else:
        assert decoded.readings[0].metric == MASS
        assert len(decoded.readings) in (1, 3)
    try:
        feature = weight_scale.decode_feature(data)
    except DecodeError:
        assert len(data) < 4
    else:
        assert isinstance(feature, weight_scale.WeightScaleFeature)


@given(
    st.one_of(st.none(), st.integers(0, 0xFFFE)),
    st.booleans(),
    st.one_of(st.none(), st.integers(0, 255)),
    st.one_of(st.none(), st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))),
    st.one_of(st.none(), st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2099, 1, 1))),
)
def test_weight_round_trip(
    steps: int | None,
    imperial: bool,
    user: int | None,
    bmi_height: tuple[int, int] | None,
    when: dt.datetime | None,
) -> None:
    when = None if when is None else when.replace(microsecond=0)
    weight_step = Decimal("0.01") if imperial else Decimal("0.005")
    height_step = Decimal("0.1") if imperial else Decimal("0.001")
    if steps is None:
        bmi_height = None  # the spec allows no BMI/height with an unsuccessful weight
    data = weight_scale.encode_measurement(
        None if steps is None else steps * weight_step,
        imperial=imperial,
        time=when,
        user=user,
        bmi=None if bmi_height is None else bmi_height[0] * Decimal("0.1"),
        height=None if bmi_height is None else bmi_height[1] * height_step,
    )
    readings = weight_scale.decode_measurement(data).readings
    assert all(r.device_time == when for r in readings)
    mass = readings[0]
    if steps is None:
        assert mass.value is None and "measurement-unsuccessful" in mass.flags
    elif imperial:
        assert mass.value is not None
        assert abs(mass.value - steps * Decimal("0.0045359237")) <= Decimal("0.0005")
    else:
        assert mass.value == steps * Decimal("0.005")
    if bmi_height is None:
        assert len(readings) == 1
    else:
        cm_per_step = Decimal("0.254") if imperial else Decimal("0.1")
        assert [r.value for r in readings[1:]] == [
            bmi_height[0] * Decimal("0.1"),
            bmi_height[1] * cm_per_step,
        ]
