"""Pulse Oximeter 0x2A5E / 0x2A5F / 0x2A60 and BerryMed BCI packets.

Comments name where each vector comes from: BLS, HTS, HRS, PLXS, GLS, WSS = the
Bluetooth SIG Blood Pressure, Health Thermometer, Heart Rate, Pulse Oximeter, Glucose and
Weight Scale services with their GATT Specification Supplement field tables; SFLOAT,
FLOAT, Date Time = the IEEE 11073-20601 / GSS types; "SIG rule" = what every SIG health
characteristic obeys (flags first, optional fields in flag-bit order, reserved bits 0,
trailing bytes ignored). The tables: docs/protocols/ble-health-profiles.md and
docs/protocols/ieee11073-numbers.md.
BCI = the BerryMed / OEM oximeter packet as public code documents it
(docs/protocols/ble-vendor-formats.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.ble import berrymed
from device_drivers.ble.berrymed import (
    ALARM_NO_FINGER,
    ALARM_PROBE_UNPLUGGED,
    PacketFramer,
    decode_notification,
    decode_packet,
    decode_packets,
    encode_packet,
)
from device_drivers.ble.pulse_oximeter import (
    ALARM_DEMONSTRATION,
    ALARM_TESTING,
    CONTINUOUS_CHARACTERISTICS,
    CONTINUOUS_UUID,
    FEATURES_UUID,
    SPOT_CHARACTERISTICS,
    SPOT_UUID,
    PlxFeatures,
    continuous_decoder_for,
    decode_continuous,
    decode_features,
    decode_features_frame,
    decode_spot_check,
    decoder_for,
    encode_continuous,
    encode_features,
    encode_spot_check,
    spot_decoder_for,
)
from edge_agent import mdc
from edge_agent.model import Decoded, DecodeError, DeviceAlarm, Reading

SPO2, PR, PAI = "MDC_PULS_OXIM_SAT_O2", "MDC_PULS_OXIM_PULS_RATE", "MDC_PULS_OXIM_PERF_REL"
PCT, BPM = "MDC_DIM_PERCENT", "MDC_DIM_BEAT_PER_MIN"
T0 = dt.datetime(2023, 11, 22, 10, 0, 0)
C = "continuous"


def frame(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


Row = tuple[str, Decimal | None, str, tuple[str, ...]]


def summary(readings: tuple[Reading, ...]) -> list[Row]:
    return [(r.metric, r.value, r.unit, r.flags) for r in readings]


def alarm_codes(decoded: Decoded) -> list[str]:
    return [a.code for a in decoded.alarms]


def test_every_metric_and_unit_is_an_mdc_term() -> None:
    for refid in (SPO2, PR, PAI, PCT, BPM, "MDC_PULS_OXIM_PLETH", "MDC_DIM_DIMLESS"):
        assert mdc.term(refid).refid == refid


# --- 0x2A5E spot-check -------------------------------------------------------------------

# Measurement status bits 5, 6, 9, 12, 14 as flags, in bit order (PLXS).
_QUALIFIERS = (
    "measurement-ongoing",
    "early-estimate",
    "from-storage",
    "calibration-ongoing",
    "questionable",
)
# Device and sensor status bits 0, 2-10 as flags, in bit order (PLXS).
_SIGNAL_FLAGS = (
    "extended-display-update",
    "signal-processing-irregularity",
    "inadequate-signal",
    "poor-signal",
    "low-perfusion",
    "erratic-signal",
    "non-pulsatile-signal",
    "questionable-pulse",
    "signal-analysis-ongoing",
    "sensor-interference",
)

SPOT_CHECKS: list[tuple[str, dt.datetime | None, list[Row], list[str]]] = [
    # PLXS minimum frame: flags 0, SpO2 SFLOAT 97 %, pulse rate SFLOAT 72 /min
    ("00 6100 4800", None, [(SPO2, Decimal(97), PCT, ()), (PR, Decimal(72), BPM, ())], []),
    # PLXS + SFLOAT negative exponent: SpO2 97.5 = 975e-1 (word 0xF3CF), PR 72.0 = 720e-1 (0xF2D0)
    (
        "00 cff3 d0f2",
        None,
        [(SPO2, Decimal("97.5"), PCT, ()), (PR, Decimal("72.0"), BPM, ())],
        [],
    ),
    # PLXS all fields (flags 0x0F): time stamp (Date Time) 2023-11-22 10:00:00, measurement
    # status 0x0080 validated, device status 0, PAI 2.5 % (25e-1, word 0xF019)
    (
        "0f 6100 4800 e707 0b 16 0a 00 00 8000 000000 19f0",
        T0,
        [
            (SPO2, Decimal(97), PCT, ("validated",)),
            (PR, Decimal(72), BPM, ("validated",)),
            (PAI, Decimal("2.5"), PCT, ("validated",)),
        ],
        [],
    ),
    # PLXS bit 4 device clock not set, Date Time: the time stamp means nothing -> None + flag
    (
        "11 6100 4800 e707 0b 16 0a 00 00",
        None,
        [
            (SPO2, Decimal(97), PCT, ("device-clock-not-set",)),
            (PR, Decimal(72), BPM, ("device-clock-not-set",)),
        ],
        [],
    ),
    # Date Time all-zero time stamp = device time unknown; the readings are kept
    (
        "01 6100 4800 00000000000000",
        None,
        [(SPO2, Decimal(97), PCT, ()), (PR, Decimal(72), BPM, ())],
        [],
    ),
    # SFLOAT specials: SpO2 NaN (0x07FF), PR NRes (0x0800)
    ("00 ff07 0008", None, [(SPO2, None, PCT, ("nan",)), (PR, None, BPM, ("nres",))], []),
    # SFLOAT specials: +INF (0x07FE), -INF (0x0802); PAI reserved (0x0801)
    (
        "08 fe07 0208 0108",
        None,
        [(SPO2, None, PCT, ("+inf",)), (PR, None, BPM, ("-inf",)), (PAI, None, PCT, ("reserved",))],
        [],
    ),
    # PLXS measurement status bit 15 invalid measurement: values voided, flagged
    (
        "02 6100 4800 0080",
        None,
        [(SPO2, None, PCT, ("invalid-measurement",)), (PR, None, BPM, ("invalid-measurement",))],
        [],
    ),
    # PLXS measurement status bit 13 measurement unavailable: values voided, flagged
    (
        "02 6100 4800 0020",
        None,
        [
            (SPO2, None, PCT, ("measurement-unavailable",)),
            (PR, None, BPM, ("measurement-unavailable",)),
        ],
        [],
    ),
    # PLXS measurement status bits 5, 6, 9, 12, 14 (0x5260): qualifiers only
    (
        "02 6100 4800 6052",
        None,
        [
            (SPO2, Decimal(97), PCT, _QUALIFIERS),
            (PR, Decimal(72), BPM, _QUALIFIERS),
        ],
        [],
    ),
    # PLXS measurement status bits 7, 8: validated, fully qualified (0x0180)
    (
        "02 6100 4800 8001",
        None,
        [
            (SPO2, Decimal(97), PCT, ("validated", "fully-qualified")),
            (PR, Decimal(72), BPM, ("validated", "fully-qualified")),
        ],
        [],
    ),
    # PLXS measurement status bits 0-4 reserved: ignored
    ("02 6100 4800 1f00", None, [(SPO2, Decimal(97), PCT, ()), (PR, Decimal(72), BPM, ())], []),
    # PLXS "Demonstration/testing data must never reach a patient record": bit 10 demo
    ("02 6100 4800 0004", None, [], ["PLX_DEMONSTRATION_DATA"]),
    # PLXS bit 11 testing data (with PAI present: still nothing)
    ("0a 6100 4800 0008 1900", None, [], ["PLX_TESTING_DATA"]),
    # PLXS device status bit 15 sensor disconnected (NaN values, as devices send them)
    (
        "04 ff07 ff07 008000",
        None,
        [(SPO2, None, PCT, ("nan",)), (PR, None, BPM, ("nan",))],
        ["PLX_SENSOR_DISCONNECTED"],
    ),
    # PLXS device status bits 1, 11-14: equipment malfunction, sensor off patient, unknown
    # sensor, displaced, malfunctioning (0x007802) -> alarms
    (
        "04 ff07 ff07 027800",
        None,
        [(SPO2, None, PCT, ("nan",)), (PR, None, BPM, ("nan",))],
        [
            "PLX_EQUIPMENT_MALFUNCTION",
            "PLX_SENSOR_OFF_PATIENT",
            "PLX_UNKNOWN_SENSOR",
            "PLX_SENSOR_DISPLACED",
            "PLX_SENSOR_MALFUNCTION",
        ],
    ),
    # PLXS device status signal-quality bits 0, 2-10 (0x07FD) -> flags on every reading
    (
        "04 6100 4800 fd0700",
        None,
        [
            (SPO2, Decimal(97), PCT, _SIGNAL_FLAGS),
            (PR, Decimal(72), BPM, _SIGNAL_FLAGS),
        ],
        [],
    ),
    # PLXS device status bits 16-23 reserved: ignored
    ("04 6100 4800 0000ff", None, [(SPO2, Decimal(97), PCT, ()), (PR, Decimal(72), BPM, ())], []),
    # SIG rule: bytes beyond what the flags promise are ignored
    ("00 6100 4800 aabb", None, [(SPO2, Decimal(97), PCT, ()), (PR, Decimal(72), BPM, ())], []),
]


@pytest.mark.parametrize(("hex_frame", "time", "expected", "alarms"), SPOT_CHECKS)
def test_decode_spot_check(
    hex_frame: str, time: dt.datetime | None, expected: list[Row], alarms: list[str]
) -> None:
    decoded = decode_spot_check(frame(hex_frame))
    assert summary(decoded.readings) == expected
    assert all(r.device_time == time for r in decoded.readings)
    assert alarm_codes(decoded) == alarms
    assert not decoded.waveforms


def test_demo_and_testing_alarms_are_the_module_constants() -> None:
    assert decode_spot_check(frame("02 6100 4800 0004")).alarms == (ALARM_DEMONSTRATION,)
    assert decode_continuous(frame("04 6100 4800 0008")).alarms == (ALARM_TESTING,)
    both = decode_spot_check(frame("02 6100 4800 000c"))
    assert both.alarms == (ALARM_DEMONSTRATION, ALARM_TESTING) and not both.readings
    for alarm in (*both.alarms, *decode_spot_check(frame("04 ff07 ff07 02f800")).alarms):
        assert isinstance(alarm, DeviceAlarm) and alarm.priority == "medium"


# Per-field wire pieces of PLXS, written out by hand:
_SPO2_PR = "6100 4800"  # 97 % / 72 /min
_TIME = "e707 0b 16 0a 00 00"  # 2023-11-22 10:00:00
_MSTATUS = "8000"  # validated
_DSTATUS = "100000"  # poor signal
_PAI = "19f0"  # 2.5 %
_FAST = "6000 4900"  # 96 / 73
_SLOW = "6200 4700"  # 98 / 71


@pytest.mark.parametrize("flags", range(32))
def test_spot_check_every_flag_combination(flags: int) -> None:
    """All 32 combinations of flag bits 0-4, each frame assembled in PLXS field order."""
    parts = [f"{flags:02x}", _SPO2_PR]
    for bit, piece in ((1, _TIME), (2, _MSTATUS), (4, _DSTATUS), (8, _PAI)):
        if flags & bit:
            parts.append(piece)
    decoded = decode_spot_check(frame(" ".join(parts)))
    metrics = [SPO2, PR] + ([PAI] if flags & 8 else [])
    assert [r.metric for r in decoded.readings] == metrics
    assert [r.value for r in decoded.readings[:2]] == [Decimal(97), Decimal(72)]
    if flags & 8:
        assert decoded.readings[2].value == Decimal("2.5")
    for r in decoded.readings:
        assert r.device_time == (T0 if flags & 1 and not flags & 16 else None)
        assert ("validated" in r.flags) == bool(flags & 2)
        assert ("poor-signal" in r.flags) == bool(flags & 4)
        assert ("device-clock-not-set" in r.flags) == bool(flags & 16)
    # The encoder builds the same frame from the same values.
    assert encode_spot_check(
        Decimal(97),
        Decimal(72),
        time=T0 if flags & 1 else None,
        measurement_status=0x80 if flags & 2 else None,
        device_status=0x10 if flags & 4 else None,
        pulse_amplitude=Decimal("2.5") if flags & 8 else None,
        clock_not_set=bool(flags & 16),
    ) == frame(" ".join(parts))


REJECTED_SPOT = [
    # SIG rule: a flags byte is mandatory
    ("", 0, "empty"),
    # PLXS flag bits 5-7 reserved (each alone)
    ("20 6100 4800", 0, "reserved"),
    ("40 6100 4800", 0, "reserved"),
    ("80 6100 4800", 0, "reserved"),
    # PLXS SpO2 and PR are mandatory: SpO2 cut short, PR missing, PR cut short
    ("00 61", 1, "SpO2"),
    ("00 6100", 3, "pulse rate"),
    ("00 6100 48", 3, "pulse rate"),
    # optional fields promised but missing or short, in flag-bit order
    ("01 6100 4800 e707 0b 16", 5, "date time"),
    ("02 6100 4800 80", 5, "measurement status"),
    ("03 6100 4800 e707 0b 16 0a 00 00", 12, "measurement status"),
    ("04 6100 4800 0000", 5, "device and sensor status"),
    ("06 6100 4800 8000 00", 7, "device and sensor status"),
    ("08 6100 4800", 5, "pulse amplitude index"),
    ("0e 6100 4800 8000 000000 19", 10, "pulse amplitude index"),
    # Date Time a field outside its range invalidates the frame: minute 60 at frame byte 10
    ("01 6100 4800 e707 0b 16 0a 3c 00", 10, "minute 60"),
]


@pytest.mark.parametrize(("hex_frame", "offset", "reason"), REJECTED_SPOT)
def test_rejected_spot_checks(hex_frame: str, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_spot_check(frame(hex_frame))
    assert info.value.offset == offset
    assert reason in info.value.reason


# --- 0x2A5F continuous -------------------------------------------------------------------

CONTINUOUS: list[tuple[str, bool, list[Row], list[str]]] = [
    # PLXS minimum frame: flags 0, SpO2PR-Normal 97 / 72; every reading "continuous"
    ("00 6100 4800", False, [(SPO2, Decimal(97), PCT, (C,)), (PR, Decimal(72), BPM, (C,))], []),
    # PLXS all fields (0x1F): normal, fast 96/73, slow 98/71, status validated, device
    # status 0, PAI 2.5; fast/slow left out by default
    (
        "1f 6100 4800 6000 4900 6200 4700 8000 000000 19f0",
        False,
        [
            (SPO2, Decimal(97), PCT, (C, "validated")),
            (PR, Decimal(72), BPM, (C, "validated")),
            (PAI, Decimal("2.5"), PCT, (C, "validated")),
        ],
        [],
    ),
    # the same frame with extras: fast then slow pairs, flagged, before the PAI
    (
        "1f 6100 4800 6000 4900 6200 4700 8000 000000 19f0",
        True,
        [
            (SPO2, Decimal(97), PCT, (C, "validated")),
            (PR, Decimal(72), BPM, (C, "validated")),
            (SPO2, Decimal(96), PCT, (C, "fast", "validated")),
            (PR, Decimal(73), BPM, (C, "fast", "validated")),
            (SPO2, Decimal(98), PCT, (C, "slow", "validated")),
            (PR, Decimal(71), BPM, (C, "slow", "validated")),
            (PAI, Decimal("2.5"), PCT, (C, "validated")),
        ],
        [],
    ),
    # PLXS slow only (bit 1), its SpO2 NaN (SFLOAT)
    (
        "02 6100 4800 ff07 4700",
        True,
        [
            (SPO2, Decimal(97), PCT, (C,)),
            (PR, Decimal(72), BPM, (C,)),
            (SPO2, None, PCT, (C, "slow", "nan")),
            (PR, Decimal(71), BPM, (C, "slow")),
        ],
        [],
    ),
    # SFLOAT specials in the normal pair
    ("00 ff07 0008", False, [(SPO2, None, PCT, (C, "nan")), (PR, None, BPM, (C, "nres"))], []),
    # PLXS status bit 15 invalid measurement voids every value, fast ones too
    (
        "05 6100 4800 6000 4900 0080",
        True,
        [
            (SPO2, None, PCT, (C, "invalid-measurement")),
            (PR, None, BPM, (C, "invalid-measurement")),
            (SPO2, None, PCT, (C, "fast", "invalid-measurement")),
            (PR, None, BPM, (C, "fast", "invalid-measurement")),
        ],
        [],
    ),
    # PLXS demonstration data: no readings, an alarm
    ("04 6100 4800 0004", False, [], ["PLX_DEMONSTRATION_DATA"]),
    # PLXS device status bit 11 sensor unconnected to user (probe off the finger)
    (
        "08 ff07 ff07 000800",
        False,
        [(SPO2, None, PCT, (C, "nan")), (PR, None, BPM, (C, "nan"))],
        ["PLX_SENSOR_OFF_PATIENT"],
    ),
    # PLXS device status bit 5 low perfusion + PAI 0.3 % (3e-1, word 0xF003)
    (
        "18 6100 4800 200000 03f0",
        False,
        [
            (SPO2, Decimal(97), PCT, (C, "low-perfusion")),
            (PR, Decimal(72), BPM, (C, "low-perfusion")),
            (PAI, Decimal("0.3"), PCT, (C, "low-perfusion")),
        ],
        [],
    ),
]


@pytest.mark.parametrize(("hex_frame", "extras", "expected", "alarms"), CONTINUOUS)
def test_decode_continuous(
    hex_frame: str, extras: bool, expected: list[Row], alarms: list[str]
) -> None:
    decoded = decode_continuous(frame(hex_frame), extras=extras)
    assert summary(decoded.readings) == expected
    assert all(r.device_time is None for r in decoded.readings)  # PLXS: no time stamp
    assert alarm_codes(decoded) == alarms


@pytest.mark.parametrize("flags", range(32))
def test_continuous_every_flag_combination(flags: int) -> None:
    """All 32 combinations of flag bits 0-4, each frame assembled in PLXS field order."""
    parts = [f"{flags:02x}", _SPO2_PR]
    for bit, piece in ((1, _FAST), (2, _SLOW), (4, _MSTATUS), (8, _DSTATUS), (16, _PAI)):
        if flags & bit:
            parts.append(piece)
    data = frame(" ".join(parts))
    plain, extra = decode_continuous(data), decode_continuous(data, extras=True)
    tail = [(PAI, Decimal("2.5"))] if flags & 16 else []
    pairs = [(SPO2, Decimal(97)), (PR, Decimal(72))]
    assert [(r.metric, r.value) for r in plain.readings] == pairs + tail
    if flags & 1:
        pairs += [(SPO2, Decimal(96)), (PR, Decimal(73))]
    if flags & 2:
        pairs += [(SPO2, Decimal(98)), (PR, Decimal(71))]
    assert [(r.metric, r.value) for r in extra.readings] == pairs + tail
    for r in extra.readings:
        assert r.flags[0] == C
        assert ("validated" in r.flags) == bool(flags & 4)
        assert ("poor-signal" in r.flags) == bool(flags & 8)
    assert (
        encode_continuous(
            Decimal(97),
            Decimal(72),
            fast=(Decimal(96), Decimal(73)) if flags & 1 else None,
            slow=(Decimal(98), Decimal(71)) if flags & 2 else None,
            measurement_status=0x80 if flags & 4 else None,
            device_status=0x10 if flags & 8 else None,
            pulse_amplitude=Decimal("2.5") if flags & 16 else None,
        )
        == data
    )


REJECTED_CONTINUOUS = [
    ("", 0, "empty"),
    # PLXS flag bits 5-7 reserved
    ("20 6100 4800", 0, "reserved"),
    ("e0 6100 4800", 0, "reserved"),
    # SpO2PR-Normal is mandatory
    ("00 6100 48", 3, "pulse rate"),
    # promised fields missing, in flag-bit order (extras or not, they are checked)
    ("01 6100 4800 6000", 7, "pulse rate fast"),
    ("02 6100 4800", 5, "SpO2 slow"),
    ("03 6100 4800 6000 4900 62", 9, "SpO2 slow"),
    ("04 6100 4800", 5, "measurement status"),
    ("08 6100 4800 0000", 5, "device and sensor status"),
    ("10 6100 4800", 5, "pulse amplitude index"),
    ("1f 6100 4800 6000 4900 6200 4700 8000 000000 19", 18, "pulse amplitude index"),
]


@pytest.mark.parametrize(("hex_frame", "offset", "reason"), REJECTED_CONTINUOUS)
def test_rejected_continuous(hex_frame: str, offset: int, reason: str) -> None:
    for extras in (False, True):
        with pytest.raises(DecodeError) as info:
            decode_continuous(frame(hex_frame), extras=extras)
        assert info.value.offset == offset
        assert reason in info.value.reason


# --- 0x2A60 features ---------------------------------------------------------------------

FEATURES = [
    # PLXS nothing supported
    ("0000", PlxFeatures()),
    # PLXS bits 2, 3: storage and spot-check time stamp, no status fields follow
    ("0c00", PlxFeatures(measurement_storage=True, spot_time_stamp=True)),
    # PLXS bits 4-7: fast, slow, PAI, multiple bonds
    ("f000", PlxFeatures(fast=True, slow=True, pulse_amplitude_index=True, multiple_bonds=True)),
    # PLXS bit 0: supported measurement status (uint16) follows
    ("0100 e0ff", PlxFeatures(measurement_status=True, supported_measurement_status=0xFFE0)),
    # PLXS bit 1: supported device and sensor status (uint24) follows
    ("0200 ffff00", PlxFeatures(device_status=True, supported_device_status=0xFFFF)),
    # PLXS all eight bits, both status fields in order
    (
        "ff00 e0ff 28a000",
        PlxFeatures(
            measurement_status=True,
            device_status=True,
            measurement_storage=True,
            spot_time_stamp=True,
            fast=True,
            slow=True,
            pulse_amplitude_index=True,
            multiple_bonds=True,
            supported_measurement_status=0xFFE0,
            supported_device_status=0xA028,
        ),
    ),
    # PLXS bits 8-15 reserved: ignored; trailing bytes ignored (SIG rule)
    ("00ff", PlxFeatures()),
    ("0800 aa", PlxFeatures(spot_time_stamp=True)),
]


@pytest.mark.parametrize(("hex_value", "expected"), FEATURES)
def test_decode_features(hex_value: str, expected: PlxFeatures) -> None:
    assert decode_features(frame(hex_value)) == expected
    assert decode_features_frame(frame(hex_value)) == Decoded()


@pytest.mark.parametrize(
    ("hex_value", "offset", "reason"),
    [
        ("", 0, "PLX features"),
        ("01", 0, "PLX features"),
        ("0100 e0", 2, "supported measurement status"),
        ("0200 ffff", 2, "supported device and sensor status"),
        ("0300 e0ff ffff", 4, "supported device and sensor status"),
    ],
)
def test_rejected_features(hex_value: str, offset: int, reason: str) -> None:
    for decode in (decode_features, decode_features_frame):
        with pytest.raises(DecodeError) as info:
            decode(frame(hex_value))
        assert info.value.offset == offset and reason in info.value.reason


def test_features_say_which_fields_to_expect() -> None:
    features = decode_features(frame("5b00 e0ff 000000"))  # bits 0, 1, 3, 4, 6
    assert features.spot_flags == 0x0F  # time stamp, both statuses, PAI
    assert features.continuous_flags == 0x1D  # fast, both statuses, PAI; no slow
    assert PlxFeatures().spot_flags == PlxFeatures().continuous_flags == 0


@given(
    st.booleans(),
    st.booleans(),
    st.integers(0, 0xFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFF),
)
def test_features_round_trip(
    measurement: bool, device: bool, others: int, ms: int, ds: int
) -> None:
    features = PlxFeatures(
        measurement_status=measurement,
        device_status=device,
        measurement_storage=bool(others & 4),
        spot_time_stamp=bool(others & 8),
        fast=bool(others & 16),
        slow=bool(others & 32),
        pulse_amplitude_index=bool(others & 64),
        multiple_bonds=bool(others & 128),
        supported_measurement_status=ms if measurement else 0,
        supported_device_status=ds if device else 0,
    )
    assert decode_features(encode_features(features)) == features


# --- routing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "decoder"),
    [
        (SPOT_UUID, decode_spot_check),
        (CONTINUOUS_UUID, decode_continuous),
        (FEATURES_UUID, decode_features_frame),
        ("00002A5F-0000-1000-8000-00805F9B34FB", decode_continuous),  # bleak may upper-case
        ("2a5e", decode_spot_check),
        ("0x2A5F", decode_continuous),
        (None, decode_spot_check),  # plain decoder_for: a capture without channel
    ],
)
def test_decoder_for(channel: str | None, decoder: object) -> None:
    assert decoder_for(channel) is decoder


def test_driver_decoders_default_to_their_characteristic() -> None:
    assert spot_decoder_for(None) is decode_spot_check
    assert continuous_decoder_for(None) is decode_continuous
    assert continuous_decoder_for(SPOT_UUID) is decode_spot_check
    assert SPOT_CHARACTERISTICS == (SPOT_UUID,)
    assert CONTINUOUS_CHARACTERISTICS == (CONTINUOUS_UUID,)


def test_decoder_for_unknown_characteristic_quarantines() -> None:
    decode = decoder_for("00002a35-0000-1000-8000-00805f9b34fb")  # a BP measurement
    with pytest.raises(DecodeError, match="not part of the Pulse Oximeter service"):
        decode(frame("00 6100 4800"))


# --- PLX fuzz and round trips ------------------------------------------------------------


@given(st.binary(max_size=40))
def test_fuzz_plx_decoders_raise_only_decode_error(data: bytes) -> None:
    decoders = (
        decode_spot_check,
        decode_continuous,
        lambda d: decode_continuous(d, extras=True),
        decode_features_frame,
    )
    for decode in decoders:
        try:
            decoded = decode(data)
        except DecodeError:
            continue
        assert decoded.readings or decoded.alarms or decode is decode_features_frame
    with contextlib.suppress(DecodeError):
        decode_features(data)


_values = st.one_of(
    st.none(),
    st.builds(lambda m, e: Decimal(m).scaleb(e), st.integers(0, 2045), st.integers(-2, 0)),
)
_optional = st.one_of(st.none(), st.builds(lambda m: Decimal(m).scaleb(-1), st.integers(0, 999)))
# Statuses without the bits that void or withhold the values (checked in the tables above).
_mstatus = st.one_of(st.none(), st.integers(0, 0xFFFF).map(lambda s: s & ~0xAC00))
_dstatus = st.one_of(st.none(), st.integers(0, 0xFFFFFF))


@given(
    _values,
    _values,
    _optional,
    _mstatus,
    _dstatus,
    st.one_of(st.none(), st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2099, 1, 1))),
)
def test_spot_check_round_trip(
    spo2: Decimal | None,
    rate: Decimal | None,
    pai: Decimal | None,
    ms: int | None,
    ds: int | None,
    when: dt.datetime | None,
) -> None:
    when = None if when is None else when.replace(microsecond=0)
    data = encode_spot_check(
        spo2, rate, time=when, measurement_status=ms, device_status=ds, pulse_amplitude=pai
    )
    readings = decode_spot_check(data).readings
    expected = [spo2, rate] + ([pai] if pai is not None else [])
    assert [r.value for r in readings] == expected
    assert all(r.device_time == when for r in readings)


@given(
    _values,
    _values,
    st.one_of(st.none(), st.tuples(_values, _values)),
    st.one_of(st.none(), st.tuples(_values, _values)),
    _optional,
    _mstatus,
    _dstatus,
)
def test_continuous_round_trip(
    spo2: Decimal | None,
    rate: Decimal | None,
    fast: tuple[Decimal | None, Decimal | None] | None,
    slow: tuple[Decimal | None, Decimal | None] | None,
    pai: Decimal | None,
    ms: int | None,
    ds: int | None,
) -> None:
    data = encode_continuous(
        spo2,
        rate,
        fast=fast,
        slow=slow,
        measurement_status=ms,
        device_status=ds,
        pulse_amplitude=pai,
    )
    readings = decode_continuous(data, extras=True).readings
    expected = [spo2, rate, *(fast or ()), *(slow or ())] + ([pai] if pai is not None else [])
    assert [r.value for r in readings] == expected
    assert all(C in r.flags for r in readings)


def test_encoders_refuse_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="24 bits"):
        encode_spot_check(Decimal(97), Decimal(72), device_status=1 << 24)
    with pytest.raises(ValueError, match="16 bits"):
        encode_continuous(Decimal(97), Decimal(72), measurement_status=-1)
    # None = NaN for the mandatory pair, Decimal NaN = a present NaN for the PAI
    assert encode_spot_check(None, None, pulse_amplitude=Decimal("NaN")) == frame(
        "08 ff07 ff07 ff07"
    )


# --- BerryMed BCI (docs/protocols/ble-vendor-formats.md) --------------------------------------

PLETH = "MDC_PULS_OXIM_PLETH"

PACKETS: list[tuple[str, list[Row], int, list[DeviceAlarm]]] = [
    # BCI: sync + signal strength 5 (0x85), pleth 50, bar graph 3, PR 72, SpO2 98
    ("85 32 03 48 62", [(SPO2, Decimal(98), PCT, (C,)), (PR, Decimal(72), BPM, (C,))], 50, []),
    # BCI bit-7-of-PR quirk: PR 150 = 0x96 -> byte 3 0x16, byte 2 0x40 set (bar graph 3)
    ("85 32 43 16 62", [(SPO2, Decimal(98), PCT, (C,)), (PR, Decimal(150), BPM, (C,))], 50, []),
    # PR 128: byte 3 0, only the byte-2 bit
    ("80 10 40 00 5f", [(SPO2, Decimal(95), PCT, (C,)), (PR, Decimal(128), BPM, (C,))], 16, []),
    # PR 254: the highest valid rate
    ("80 10 40 7e 5f", [(SPO2, Decimal(95), PCT, (C,)), (PR, Decimal(254), BPM, (C,))], 16, []),
    # PR 127 (byte-2 bit clear) is a rate, not the invalid value
    ("80 10 00 7f 5f", [(SPO2, Decimal(95), PCT, (C,)), (PR, Decimal(127), BPM, (C,))], 16, []),
    # BCI PR 255 = invalid (0x7F + the byte-2 bit)
    (
        "80 10 40 7f 5f",
        [(SPO2, Decimal(95), PCT, (C,)), (PR, None, BPM, (C, "unavailable"))],
        16,
        [],
    ),
    # BCI SpO2 127 = invalid
    (
        "80 10 00 48 7f",
        [(SPO2, None, PCT, (C, "unavailable")), (PR, Decimal(72), BPM, (C,))],
        16,
        [],
    ),
    # SpO2 0 and 100 are values (the ends of 0..100)
    ("80 00 00 48 00", [(SPO2, Decimal(0), PCT, (C,)), (PR, Decimal(72), BPM, (C,))], 0, []),
    ("80 64 00 48 64", [(SPO2, Decimal(100), PCT, (C,)), (PR, Decimal(72), BPM, (C,))], 100, []),
    # BCI byte 0 0x20 probe unplugged, both values invalid
    (
        "a0 00 40 7f 7f",
        [(SPO2, None, PCT, (C, "unavailable")), (PR, None, BPM, (C, "unavailable"))],
        0,
        [ALARM_PROBE_UNPLUGGED],
    ),
    # BCI byte 2 0x10 no finger
    (
        "80 00 50 7f 7f",
        [(SPO2, None, PCT, (C, "unavailable")), (PR, None, BPM, (C, "unavailable"))],
        0,
        [ALARM_NO_FINGER],
    ),
    # BCI byte 2 0x20 searching for pulse: a flag on the readings
    (
        "80 20 20 48 62",
        [(SPO2, Decimal(98), PCT, (C, "searching")), (PR, Decimal(72), BPM, (C, "searching"))],
        32,
        [],
    ),
    # BCI pulse beep (0x40) and the disputed 0x10 bit are not reported
    ("d5 32 03 48 62", [(SPO2, Decimal(98), PCT, (C,)), (PR, Decimal(72), BPM, (C,))], 50, []),
    # pleth uses 7 bits: 127 is kept as sent
    ("8f 7f 0f 48 62", [(SPO2, Decimal(98), PCT, (C,)), (PR, Decimal(72), BPM, (C,))], 127, []),
]


@pytest.mark.parametrize(("hex_packet", "expected", "pleth", "alarms"), PACKETS)
def test_decode_berrymed_packet(
    hex_packet: str, expected: list[Row], pleth: int, alarms: list[DeviceAlarm]
) -> None:
    decoded = decode_packet(frame(hex_packet))
    assert summary(decoded.readings) == expected
    assert list(decoded.alarms) == alarms
    (wave,) = decoded.waveforms
    assert (wave.metric, wave.rate_hz, wave.unit, wave.samples) == (
        PLETH,
        60.0,
        "MDC_DIM_DIMLESS",
        (pleth,),
    )


REJECTED_PACKETS = [
    # BCI packets are 5 bytes
    ("", 0, "0 bytes"),
    ("85 32 03 48", 4, "4 bytes"),
    ("85 32 03 48 62 00", 5, "6 bytes"),
    # BCI only byte 0 has bit 7 set
    ("05 32 03 48 62", 0, "bit 7 clear"),
    ("85 b2 03 48 62", 1, "bit 7 set"),
    ("85 32 03 c8 62", 3, "bit 7 set"),
    ("85 32 03 48 e2", 4, "bit 7 set"),
    # BCI SpO2 0-100 or 127: anything else means the bytes are not this layout
    ("85 32 03 48 65", 4, "SpO2 101"),
    ("85 32 03 48 7e", 4, "SpO2 126"),
]


@pytest.mark.parametrize(("hex_packet", "offset", "reason"), REJECTED_PACKETS)
def test_rejected_berrymed_packets(hex_packet: str, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_packet(frame(hex_packet))
    assert info.value.offset == offset
    assert reason in info.value.reason


_P1 = "85 30 03 48 62"  # PR 72, SpO2 98, pleth 48
_P2 = "85 31 03 49 62"  # PR 73, pleth 49
_P3 = "a0 32 50 7f 7f"  # probe unplugged + no finger, invalid values, pleth 50
_P4 = "85 33 43 16 61"  # PR 150, SpO2 97, pleth 51


def test_decode_packets_aggregates_a_run() -> None:
    packets = [frame(p) for p in (_P1, _P2, _P3, _P4)]
    decoded = decode_packets(packets)
    # one waveform with every sample, the latest values, the run's alarms once each
    assert decoded.waveforms[0].samples == (48, 49, 50, 51)
    assert summary(decoded.readings) == [
        (SPO2, Decimal(97), PCT, (C,)),
        (PR, Decimal(150), BPM, (C,)),
    ]
    assert list(decoded.alarms) == [ALARM_PROBE_UNPLUGGED, ALARM_NO_FINGER]
    assert decode_packets([]) == Decoded()
    with pytest.raises(DecodeError) as info:
        decode_packets([frame(_P1), frame("85 32 03 48 65")])
    assert info.value.offset == 9  # counted in the joined packets


NOTIFICATIONS: list[tuple[str, tuple[int, ...]]] = [
    # BCI several packets in one notification
    (f"{_P1} {_P2} {_P3} {_P4}", (48, 49, 50, 51)),
    # BCI split packets: a tail from the previous notification and a head for the next
    (f"49 62 {_P1} {_P2} 85 33", (48, 49)),
    ("48 62", ()),  # only a tail: nothing
    ("85 32 03", ()),  # only a head: nothing
    ("", ()),
]


@pytest.mark.parametrize(("hex_data", "samples"), NOTIFICATIONS)
def test_decode_notification(hex_data: str, samples: tuple[int, ...]) -> None:
    decoded = decode_notification(frame(hex_data))
    if samples:
        assert decoded.waveforms[0].samples == samples
    else:
        assert decoded == Decoded()


@pytest.mark.parametrize(
    ("hex_data", "offset", "reason"),
    [
        # 5 bytes before a packet start cannot be the tail of a 5-byte packet
        (f"00 01 02 03 04 {_P1}", 0, "without a packet start"),
        ("00 01 02 03 04", 0, "without a packet start"),
        # a packet start inside a packet: BLE does not lose bytes inside a notification
        (f"85 30 {_P1}", 2, "cut short"),
        # a whole packet with a bad value rejects the notification
        (f"{_P1} 85 32 03 48 7e", 9, "SpO2 126"),
    ],
)
def test_rejected_notifications(hex_data: str, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_notification(frame(hex_data))
    assert info.value.offset == offset and reason in info.value.reason


def test_berrymed_decoder_for() -> None:
    assert berrymed.decoder_for(None) is decode_notification
    assert berrymed.decoder_for(berrymed.NOTIFY_UUID.upper()) is decode_notification
    with pytest.raises(DecodeError, match="not the BerryMed data characteristic"):
        berrymed.decoder_for(berrymed.WRITE_UUID)(frame(_P1))
    assert berrymed.CHARACTERISTICS == (berrymed.NOTIFY_UUID,)


# --- BerryMed framing --------------------------------------------------------------------

_STREAM = frame(f"{_P1} {_P2} {_P3} {_P4}")
_PACKETS = [frame(p) for p in (_P1, _P2, _P3, _P4)]


def _feed_all(framer: PacketFramer, pieces: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for piece in pieces:
        out += framer.feed(piece)
    return out


@pytest.mark.parametrize("cut", range(len(_STREAM) + 1))
def test_framer_split_at_every_byte_boundary(cut: int) -> None:
    framer = PacketFramer()
    assert _feed_all(framer, [_STREAM[:cut], _STREAM[cut:]]) == _PACKETS
    assert framer.pending == 0 and framer.discarded == 0


def test_framer_byte_by_byte_and_partial_packet_held() -> None:
    framer = PacketFramer()
    assert _feed_all(framer, [bytes([b]) for b in _STREAM]) == _PACKETS
    assert framer.feed(frame("85 30 03")) == [] and framer.pending == 3
    assert framer.feed(frame("48 62")) == [frame(_P1)] and framer.pending == 0


def test_framer_resyncs_after_garbage() -> None:
    # leading noise, a packet cut short by the next start, noise between packets
    stream = frame(f"00 11 7f {_P1} 85 32 {_P2} 22 33 {_P3} 85 {_P4}")
    framer = PacketFramer()
    assert framer.feed(stream) == _PACKETS
    assert framer.discarded == 3 + 2 + 2 + 1
    for cut in range(len(stream) + 1):
        again = PacketFramer()
        assert _feed_all(again, [stream[:cut], stream[cut:]]) == _PACKETS
        assert again.discarded == framer.discarded


def test_framer_output_decodes_like_the_notification() -> None:
    framer = PacketFramer()
    assert decode_packets(framer.feed(_STREAM)) == decode_notification(_STREAM)


@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=8))
def test_fuzz_framer_independent_of_split(data: bytes, cuts: list[int]) -> None:
    whole = PacketFramer()
    expected = whole.feed(data)
    points = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    split = PacketFramer()
    assert _feed_all(split, pieces) == expected
    assert split.pending == whole.pending <= 4  # bounded: at most one partial packet
    assert whole.discarded + 5 * len(expected) + whole.pending == len(data)
    for packet in expected:
        assert len(packet) == 5 and packet[0] & 0x80
        assert not any(b & 0x80 for b in packet[1:])


@given(st.binary(max_size=60))
def test_fuzz_berrymed_decoders_raise_only_decode_error(data: bytes) -> None:
    for decode in (decode_packet, decode_notification):
        try:
            decode(data)
        except DecodeError:
            continue
    packets = PacketFramer().feed(data)
    try:
        decoded = decode_packets(packets)
    except DecodeError:
        return
    assert bool(decoded) == bool(packets)


_spo2 = st.one_of(st.none(), st.integers(0, 100))
_rate = st.one_of(st.none(), st.integers(0, 254))


@given(
    st.lists(
        st.tuples(_spo2, _rate, st.integers(0, 127), st.booleans(), st.booleans(), st.booleans()),
        min_size=1,
        max_size=10,
    ),
    st.integers(0, 15),
    st.integers(0, 15),
)
def test_berrymed_round_trip(
    packets: list[tuple[int | None, int | None, int, bool, bool, bool]],
    strength: int,
    bar: int,
) -> None:
    stream = b"".join(
        encode_packet(
            spo2,
            rate,
            pleth,
            signal_strength=strength,
            bar_graph=bar,
            probe_unplugged=unplugged,
            no_finger=no_finger,
            searching=searching,
        )
        for spo2, rate, pleth, unplugged, no_finger, searching in packets
    )
    decoded = decode_packets(PacketFramer().feed(stream))
    assert decoded == decode_notification(stream)
    assert decoded.waveforms[0].samples == tuple(p[2] for p in packets)
    spo2, rate, _, _, _, searching = packets[-1]
    assert [r.value for r in decoded.readings] == [
        None if spo2 is None else Decimal(spo2),
        None if rate is None else Decimal(rate),
    ]
    assert all(("searching" in r.flags) == searching for r in decoded.readings)
    assert (ALARM_PROBE_UNPLUGGED in decoded.alarms) == any(p[3] for p in packets)
    assert (ALARM_NO_FINGER in decoded.alarms) == any(p[4] for p in packets)


def test_berrymed_encoder_matches_hand_built_packets() -> None:
    assert encode_packet(98, 72, 50, signal_strength=5, bar_graph=3) == frame("85 32 03 48 62")
    assert encode_packet(98, 150, 50, signal_strength=5, bar_graph=3) == frame("85 32 43 16 62")
    assert encode_packet(None, None, 0, probe_unplugged=True) == frame("a0 00 40 7f 7f")
    assert encode_packet(98, 72, 50, signal_strength=5, signal=True, beep=True) == frame(
        "d5 32 00 48 62"
    )
    refused: list[Callable[[], bytes]] = [
        lambda: encode_packet(101, 72, 0),
        lambda: encode_packet(98, 256, 0),
        lambda: encode_packet(98, 72, 128),
        lambda: encode_packet(98, 72, 0, bar_graph=16),
    ]
    for bad in refused:
        with pytest.raises(ValueError):
            bad()
