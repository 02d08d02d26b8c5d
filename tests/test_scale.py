"""Health-hut height/weight stations and weighing indicators (scale-ascii): decoder, line
patterns, simulator, serial port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Iterable
from decimal import Decimal
from typing import TypedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.serial import masimo
from device_drivers.serial.port import SerialSettings, SerialTransport
from device_drivers.serial.scale import (
    DEFAULT_PRESET,
    PRESETS,
    LineFramer,
    bmi,
    decode_line,
    decoder,
    encode_line,
    pattern_from_config,
)
from device_drivers.simulators import scale as sim
from edge_agent import mdc
from edge_agent.model import Decoded, DecodeError

MASS, HEIGHT, BMI = "MDC_MASS_BODY_ACTUAL", "MDC_LEN_BODY_ACTUAL", "MDC_RATIO_MASS_BODY_LEN_SQ"
KG, CM, KG_M2 = "MDC_DIM_KILO_G", "MDC_DIM_CENTI_M", "MDC_DIM_KG_PER_M_SQ"
D = Decimal

Row = tuple[D | None, tuple[str, ...]]


def values(decoded: Decoded) -> dict[str, Row]:
    return {r.metric: (r.value, r.flags) for r in decoded.readings}


def test_metrics_and_units_are_published_terms() -> None:
    for refid in (MASS, HEIGHT, BMI, KG, CM, KG_M2):
        assert mdc.code(refid) > 0


# --- presets: one row per line, each with where its layout comes from --------------------

STABLE: list[tuple[str, bytes, dict[str, Row]]] = [
    # hw-station: W:/H: labelled line (docs/protocols/scales.md), CR LF kept as the wire has it
    (
        "hw-station",
        b"W:065.4kg H:175.0cm\r\n",
        {MASS: (D("65.4"), ()), HEIGHT: (D("175.0"), ()), BMI: (D("21.4"), ("derived",))},
    ),
    # hw-station: units left out -> the pattern's defaults (kg, cm); 70 / 1.75^2 = 22.857
    (
        "hw-station",
        b"W:070.0 H:175.0",
        {MASS: (D("70.0"), ()), HEIGHT: (D("175.0"), ()), BMI: (D("22.9"), ("derived",))},
    ),
    # hw-station: the station's own BMI agrees with ours -> ours (derived) is reported
    (
        "hw-station",
        b"W:070.0kg H:175.0cm BMI:22.9",
        {MASS: (D("70.0"), ()), HEIGHT: (D("175.0"), ()), BMI: (D("22.9"), ("derived",))},
    ),
    # hw-station: weight only (height rod folded away)
    ("hw-station", b"W:065.4kg", {MASS: (D("65.4"), ())}),
    # Tanita WB-3000 manual, output data in kg/cm (BMI mode): Hm, Wk, MI, CS
    (
        "tanita",
        b'{0,16,~0,1,~1,1,~2,1,MO,"WB-3000",Hm,170.0,Wk,65.4,MI,22.6,CS,5F\r\n',
        {MASS: (D("65.4"), ()), HEIGHT: (D("170.0"), ()), BMI: (D("22.6"), ("derived",))},
    ),
    # Tanita SC-240 manual "Output sample" (adult, 170 cm, 82.7 kg, BMI 28.6), shortened
    (
        "tanita",
        b'{0, 16, ~0, 1, ~1, 1, ~2, 1, MO, "SC-240", SN, "00000002", Bt, 0, GE, 1, AG, 30, '
        b"Hm, 170, Pt, 0.0, Wk, 82.7, FW, 18.6, fW, 15.4, MI, 28.6, CS, FD",
        {MASS: (D("82.7"), ()), HEIGHT: (D("170"), ()), BMI: (D("28.6"), ("derived",))},
    ),
    # Tanita HD-351BT manual: weight mode in lb (Wp); 150.0 lb x 0.45359237 exactly
    (
        "tanita",
        b'{0,16,~0,1,MO,"HD-351BT",Wp,150.0,CS,12',
        {MASS: (D("68.0388555"), ("converted-from-lb",))},
    ),
    # A&D EK-L manual §9-2: "ST," 9-character signed value, 3-character unit
    ("ad-indicator", b"ST,+00065.40 kg", {MASS: (D("65.40"), ())}),
    # Selleton SL-7516 indicator: ST/US, GS/NT, sign, data, kg
    ("ad-indicator", b"ST,GS,+0065.40kg", {MASS: (D("65.40"), ())}),
    # 上海计重秤 RS232 format page: "ST,GS,+ 123.456   g" (sign, blank, value, unit)
    ("ad-indicator", b"ST,NT,+  65400   g", {MASS: (D("65.4"), ("converted-from-g",))}),
    # METTLER TOLEDO MT-SICS §3.2.1: "S S" + right-aligned value + unit
    ("mt-sics", b"S S      65.40 kg", {MASS: (D("65.40"), ())}),
    ("mt-sics", b"S S     144.20 lb", {MASS: (D("65.408019754"), ("converted-from-lb",))}),
    # key=value, any order, unknown keys skipped
    (
        "kv",
        b"weight=65.4kg height=175.0cm",
        {MASS: (D("65.4"), ()), HEIGHT: (D("175.0"), ()), BMI: (D("21.4"), ("derived",))},
    ),
    (
        "kv",
        b"id=0042; height=1.75m; weight=70.0",
        {
            MASS: (D("70.0"), ()),
            HEIGHT: (D("175"), ("converted-from-m",)),
            BMI: (D("22.9"), ("derived",)),
        },
    ),
    # the dhy DBA-310 analyser's "wei=xxx.x" answer
    ("kv", b"wei=65.4", {MASS: (D("65.4"), ())}),
]


@pytest.mark.parametrize(("preset", "line", "expected"), STABLE)
def test_stable_lines(preset: str, line: bytes, expected: dict[str, Row]) -> None:
    decoded = decode_line(line, PRESETS[preset])
    assert values(decoded) == expected
    expected_units = {MASS: KG, HEIGHT: CM, BMI: KG_M2}
    assert all(r.unit == expected_units[r.metric] for r in decoded.readings)
    assert all(r.device_time is None for r in decoded.readings)  # these lines carry no clock


def test_default_pattern_is_the_height_weight_station() -> None:
    assert DEFAULT_PRESET == "hw-station"
    assert values(decode_line(b"W:065.4kg H:175.0cm")) == values(
        decode_line(b"W:065.4kg H:175.0cm", PRESETS["hw-station"])
    )


def test_every_preset_names_its_source() -> None:
    for name, pattern in PRESETS.items():
        assert pattern.name == name and pattern.source
        assert "weight" in pattern.regex.groupindex


# --- unstable and empty-platform lines -------------------------------------------------

UNSTABLE: list[tuple[str, bytes, D]] = [
    ("ad-indicator", b"US,GS,+0063.20kg", D("63.20")),  # Selleton / 上海计重秤: US = unstable
    ("ad-indicator", b"US,+00001.20 kg", D("1.20")),  # A&D: stepping on passes through 1.2 kg
    ("mt-sics", b"S D      65.38 kg", D("65.38")),  # MT-SICS: D = dynamic
]


@pytest.mark.parametrize(("preset", "line", "weight"), UNSTABLE)
def test_unstable_weight_is_progress_never_a_record(preset: str, line: bytes, weight: D) -> None:
    decoded = decode_line(line, PRESETS[preset])
    # "intermediate" is edge_agent.recorder's progress flag: kept raw, not an observation.
    assert values(decoded) == {MASS: (weight, ("unstable", "intermediate"))}


def test_unstable_line_with_height_gives_no_bmi() -> None:
    pattern = pattern_from_config(
        r"(?P<status>[SU]) W(?P<weight>\d+\.\d) H(?P<height>\d+\.\d)", stable=["S"], unstable=["U"]
    )
    got = values(decode_line(b"U W65.4 H175.0", pattern))
    assert set(got) == {MASS, HEIGHT}
    assert got[HEIGHT] == (D("175.0"), ("unstable", "intermediate"))
    assert BMI in values(decode_line(b"S W65.4 H175.0", pattern))


@pytest.mark.parametrize(
    ("preset", "line"),
    [
        ("ad-indicator", b"ST,GS,+0000.00kg"),  # continuous mode, nobody on the platform
        ("ad-indicator", b"US,GS,-0000.20kg"),  # zero drifting
        ("mt-sics", b"S S       0.00 kg"),
        ("hw-station", b"W:000.0kg H:175.0cm"),
    ],
)
def test_empty_platform_decodes_to_nothing(preset: str, line: bytes) -> None:
    assert decode_line(line, PRESETS[preset]) == Decoded()


# --- conversions and BMI ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "weight", "flags"),
    [
        (b"W:130.8jin", D("65.4"), ("converted-from-jin",)),  # 1 斤 = 0.5 kg exactly
        (b"W:1jin", None, None),  # 0.5 kg: empty platform
        (b"W:100.0jin", D("50"), ("converted-from-jin",)),
        (b"W:144.2lb", D("65.408019754"), ("converted-from-lb",)),  # x 0.45359237
        (b"W:1lb", None, None),
        (b"W:65400g", D("65.4"), ("converted-from-g",)),
        (b"W:65432g", D("65.432"), ("converted-from-g",)),
        (b"W:065.40kg", D("65.40"), ()),  # printed resolution kept
    ],
)
def test_weight_conversions_are_exact(
    line: bytes, weight: D | None, flags: tuple[str, ...] | None
) -> None:
    got = values(decode_line(line))
    if weight is None:
        assert got == {}
        return
    assert got[MASS] == (weight, flags)
    assert str(got[MASS][0]) == str(weight)  # no float digits, no exponent


@pytest.mark.parametrize(
    ("line", "height", "flags"),
    [
        (b"W:70.0 H:1.75m", D("175"), ("converted-from-m",)),
        (b"W:70.0 H:1.753m", D("175.3"), ("converted-from-m",)),
        (b"W:70.0 H:1753mm", D("175.3"), ("converted-from-mm",)),
        (b"W:70.0 H:1750mm", D("175"), ("converted-from-mm",)),
        (b"W:70.0 H:175.3cm", D("175.3"), ()),
    ],
)
def test_height_conversions_are_exact(line: bytes, height: D, flags: tuple[str, ...]) -> None:
    got = values(decode_line(line))[HEIGHT]
    assert got == (height, flags)
    assert str(got[0]) == str(height)


@pytest.mark.parametrize(
    ("kg", "cm", "expected"),
    [
        ("70", "175", "22.9"),  # 22.857...
        ("65.4", "175.0", "21.4"),  # 21.355...
        ("89.8", "200", "22.5"),  # exactly 22.45: half-up, not half-even (22.4)
        ("90.2", "200", "22.6"),  # exactly 22.55
        ("24.25", "100", "24.3"),  # exactly 24.25
        ("50", "160", "19.5"),  # 19.53125
        ("68.0388555", "180.3", "20.9"),  # a converted weight is used unrounded
    ],
)
def test_bmi_rounding(kg: str, cm: str, expected: str) -> None:
    assert bmi(D(kg), D(cm)) == D(expected)
    assert str(bmi(D(kg), D(cm))) == expected


def test_bmi_is_derived_from_the_converted_values() -> None:
    # 144.2 lb = 65.408019754 kg; 1750 mm = 175 cm -> 21.357... -> 21.4
    got = values(decode_line(b"W:144.2lb H:1750mm"))
    assert got[BMI] == (D("21.4"), ("derived",))


# --- rejected lines ----------------------------------------------------------------------

REJECTED: list[tuple[str, bytes, int, str]] = [
    ("hw-station", b"W:065.4kg H:175.0cm\x00", 19, "byte 0x00"),
    ("hw-station", "体重:65.4kg".encode("gbk"), 0, "byte 0xcc (GBK"),  # station set to GBK labels
    ("hw-station", "W:65.4公斤".encode(), 6, "byte 0xe5"),
    ("hw-station", b"\r\n", 0, "empty line"),
    ("hw-station", b"W:065.4kg\rH:175.0cm", 9, "CR/LF inside the line"),
    ("hw-station", b"W:065.4kg H:175.0cmW:065.4kg", 0, "does not match the hw-station"),
    ("hw-station", b"  garbage", 2, "does not match"),
    ("hw-station", b"W:06.5.4", 0, "does not match"),
    ("hw-station", b"W:350.0kg", 2, "weight 350.0 kg: outside 2..300 kg"),
    ("hw-station", b"W:1.5kg", 2, "outside 2..300 kg"),
    ("hw-station", b"W:-5.0kg", 2, "negative"),
    ("hw-station", b"W:700.0lb", 2, "weight 700.0 lb: outside"),
    ("hw-station", b"W:065.4kg H:17.5cm", 12, "height 17.5 cm: outside 30..260 cm"),
    ("hw-station", b"W:065.4kg H:3.5m", 12, "height 3.5 m: outside"),
    ("hw-station", b"W:065.4kg H:175.0cm BMI:30.1", 24, "device BMI 30.1 disagrees"),
    ("hw-station", b"W:070.0kg BMI:0.4", 14, "BMI 0.4: outside"),
    ("hw-station", b"W:300.0kg H:031.0cm", 2, "weight or height misread"),
    ("tanita", b'{0,16,~0,1,MO,"HD-351BT",Ws,10.04.0,CS,12', 0, "does not match"),  # stone-lb
    ("tanita", b'{0,16,~0,1,MO,"WB-3000",Hm,170.0,Wk,65.4,MI,30.0,CS,5F', 44, "disagrees"),
    ("ad-indicator", b"OL,GS,+            ", 0, "status 'OL': overload"),
    ("ad-indicator", b"QT,+000001234PC", 0, "counting data"),
    ("ad-indicator", b"ST,GS,+", 0, "no weight"),
    ("ad-indicator", b"ST,+00000012.3 %", 15, "unit '%' unknown"),
    ("ad-indicator", b"ST,GS,+0065.40kgST,GS,+0065.40kg", 0, "does not match"),
    ("mt-sics", b"S I", 2, "balance busy"),
    ("mt-sics", b"S +", 2, "overload"),
    ("mt-sics", b"S -", 2, "underload"),
    ("mt-sics", b"S S", 0, "no weight"),
    ("mt-sics", b"ES", 0, "does not match the mt-sics"),
    ("kv", b"height=175.0cm", 0, "does not match the kv"),
    ("kv", b"weight=abc", 0, "does not match"),
]


@pytest.mark.parametrize(("preset", "line", "offset", "reason"), REJECTED)
def test_rejected_lines(preset: str, line: bytes, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_line(line, PRESETS[preset])
    assert info.value.offset == offset
    assert reason in info.value.reason
    assert "\n" not in str(info.value)


# --- configured patterns -----------------------------------------------------------------


class PatternOptions(TypedDict, total=False):
    """pattern_from_config's keyword arguments, any of them given."""

    weight_unit: str
    height_unit: str
    stable: Iterable[str]
    unstable: Iterable[str]
    name: str


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("", {}, "line pattern is empty"),
        ("   ", {}, "line pattern is empty"),
        (
            r"W:(?P<weight>\d+",
            {},
            "not a valid regex: missing ), unterminated subpattern at position 2",
        ),
        (r"W:(?P<weight>\d+)[", {}, "not a valid regex: unterminated character set"),
        (r"W:(\d+\.\d)", {}, "has no (?P<weight>...) group"),
        (r"W:(?P<wieght>\d+)", {}, "has no (?P<weight>...) group"),
        (r"(?P<weight>\d+) (?P<heigth>\d+)", {}, "unknown group 'heigth'"),
        (r"体重:(?P<weight>\d+)", {}, "contains '体'"),
        (r"(?P<status>\w\w),(?P<weight>\d+)", {}, "status group but no stable values"),
        (r"(?P<weight>\d+)", {"weight_unit": "stone"}, "weight unit 'stone' unknown"),
        (r"(?P<weight>\d+)", {"height_unit": "ft"}, "height unit 'ft' unknown"),
        (
            r"(?P<status>\w\w),(?P<weight>\d+)",
            {"stable": ["ST"], "unstable": ["st"]},
            "'ST' is listed as both stable and unstable",
        ),
        ("(?P<weight>" + "x" * 1000 + ")", {}, "1000 at most"),
    ],
)
def test_pattern_from_config_rejects(text: str, kwargs: PatternOptions, message: str) -> None:
    with pytest.raises(ValueError) as info:
        pattern_from_config(text, **kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_pattern_from_config_accepts_a_preset_name() -> None:
    for name, pattern in PRESETS.items():
        assert pattern_from_config(name) is pattern


def test_configured_pattern_with_default_unit_and_status() -> None:
    # A station printing "S,130.8" in 斤 with S = stable, M = moving.
    pattern = pattern_from_config(
        r"(?P<status>[SM]),(?P<weight>\d+\.\d)",
        weight_unit="jin",
        stable=["s"],
        unstable=["m"],
        name="village-jin",
    )
    decode = decoder(pattern)
    assert values(decode(b"S,130.8\r\n")) == {MASS: (D("65.4"), ("converted-from-jin",))}
    assert values(decode(b"M,120.0"))[MASS][1] == ("converted-from-jin", "unstable", "intermediate")
    assert "village-jin" in (decode.__doc__ or "")
    with pytest.raises(DecodeError, match="does not match the village-jin pattern"):
        decode(b"X,130.8")


def test_configured_group_that_is_not_a_number() -> None:
    pattern = pattern_from_config(r"W=(?P<weight>\S+)")
    with pytest.raises(DecodeError) as info:
        decode_line(b"W=6.5.4", pattern)
    assert info.value.offset == 2
    assert "weight '6.5.4': not a number" in info.value.reason


def test_configured_unknown_unit_names_the_known_ones() -> None:
    pattern = pattern_from_config(r"(?P<weight>\d+) (?P<unit>\w+)")
    with pytest.raises(DecodeError) as info:
        decode_line(b"65 stone", pattern)
    assert info.value.offset == 3
    assert "unit 'stone' unknown (known: g, jin, kg, lb)" in info.value.reason


# --- fuzz and round trips ----------------------------------------------------------------

LINE_ALPHABET = 'WHSTUGNDI0123456789.+-,:;= kglbjinmc%BMI{}~"pwehtsaroxyq\t\r\n\x00\xcc'


@pytest.mark.parametrize("preset", list(PRESETS))
@given(data=st.binary(max_size=600))
def test_fuzz_bytes_raise_only_decode_error(preset: str, data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_line(data, PRESETS[preset])


@pytest.mark.parametrize("preset", list(PRESETS))
@given(text=st.text(alphabet=LINE_ALPHABET, max_size=120))
def test_fuzz_line_like_text_raises_only_decode_error(preset: str, text: str) -> None:
    # Text close to real lines reaches the number, unit, status and range checks.
    for line in (text.encode("latin-1"), ("ST,GS," + text).encode("latin-1")):
        with contextlib.suppress(DecodeError):
            decode_line(line, PRESETS[preset])


@given(
    preset=st.sampled_from(list(PRESETS)),
    height=st.decimals("100.0", "220.0", places=1),
    body_mass_index=st.decimals("12.0", "60.0", places=1),
    stable=st.booleans(),
)
def test_round_trip_kg_and_cm(preset: str, height: D, body_mass_index: D, stable: bool) -> None:
    weight = (body_mass_index * (height / 100) ** 2).quantize(D("0.1"))
    try:
        line = encode_line(weight, height, preset=preset, stable=stable)
    except ValueError:
        assert not stable and not PRESETS[preset].unstable
        return
    got = values(decode_line(line, PRESETS[preset]))
    flags = () if stable else ("unstable", "intermediate")
    assert got[MASS] == (weight, flags)
    if preset in ("ad-indicator", "mt-sics"):
        assert set(got) == {MASS}  # indicators print no height
    else:
        assert got[HEIGHT] == (height, flags)
        assert got[BMI] == (bmi(weight, height), ("derived",))


UNIT_RANGES = {
    "kg": st.decimals("2.0", "300.0", places=1),
    "lb": st.decimals("4.5", "661.0", places=1),
    "jin": st.decimals("4.0", "600.0", places=1),
    "g": st.integers(2000, 300_000).map(D),
}
FACTORS = {"kg": D(1), "lb": D("0.45359237"), "jin": D("0.5"), "g": D("0.001")}


@given(data=st.data(), preset=st.sampled_from(list(PRESETS)), unit=st.sampled_from(list(FACTORS)))
def test_round_trip_weight_units(data: st.DataObject, preset: str, unit: str) -> None:
    value = data.draw(UNIT_RANGES[unit])
    try:
        line = encode_line(value, preset=preset, unit=unit)
    except ValueError:
        assert unit == "jin" or (preset == "tanita" and unit == "g")
        return
    got = values(decode_line(line, PRESETS[preset]))
    flags = () if unit == "kg" else (f"converted-from-{unit}",)
    assert got == {MASS: (value * FACTORS[unit], flags)}


@given(
    preset=st.sampled_from(["hw-station", "kv"]),
    height_unit=st.sampled_from(["cm", "mm", "m"]),
    height_cm=st.decimals("100.0", "220.0", places=1),
)
def test_round_trip_height_units(preset: str, height_unit: str, height_cm: D) -> None:
    shown = {"cm": height_cm, "mm": height_cm * 10, "m": height_cm / 100}[height_unit]
    line = encode_line(D("70.0"), shown, preset=preset, height_unit=height_unit)
    assert values(decode_line(line, PRESETS[preset]))[HEIGHT][0] == height_cm


def test_encode_refuses_what_a_preset_cannot_print() -> None:
    with pytest.raises(ValueError, match="no stability status"):
        encode_line(D("65.4"), preset="hw-station", stable=False)
    with pytest.raises(ValueError, match="unknown scale preset 'nope'"):
        encode_line(D("65.4"), preset="nope")
    with pytest.raises(ValueError, match="tanita prints"):
        encode_line(D("65.4"), D("1.75"), preset="tanita", height_unit="m")


# --- framing ---------------------------------------------------------------------------


def test_line_framer_is_the_shared_one() -> None:
    assert LineFramer is masimo.LineFramer


def test_framer_output_does_not_depend_on_how_reads_split_the_stream() -> None:
    stream = (
        b"US,GS,+0030.10kg\r\nUS,GS,+0066.80kg\r\nST,GS,+0065.40kg\r\n"
        + "体重:65.4公斤\r\n".encode("gbk")
        + b"ST,GS,+0000.00kg\r\n"
    )
    whole = LineFramer().feed(stream)
    assert len(whole) == 5
    for size in (1, 2, 7, 64):
        framer = LineFramer()
        pieces: list[bytes] = []
        for start in range(0, len(stream), size):
            pieces += framer.feed(stream[start : start + size])
        assert pieces == whole
    outcomes = []
    for frame in whole:
        try:
            outcomes.append(len(decode_line(frame, PRESETS["ad-indicator"]).readings))
        except DecodeError:
            outcomes.append(-1)
    assert outcomes == [1, 1, 1, -1, 0]


# --- simulator -------------------------------------------------------------------------


@pytest.mark.parametrize("preset", list(PRESETS))
def test_simulated_residents_decode(preset: str) -> None:
    source = sim.residents(preset, seed=4)
    for _ in range(50):
        lines = next(source)
        assert all(line.endswith(b"\r\n") for line in lines)
        decoded = [values(decode_line(line, PRESETS[preset])) for line in lines]
        final = decoded[-1]
        weight, weight_flags = final[MASS]
        assert weight_flags == ()
        assert weight is not None and D(30) < weight < D(130)
        settling = decoded[:-1]
        assert len(settling) == (3 if PRESETS[preset].unstable else 0)
        assert all(d[MASS][1] == ("unstable", "intermediate") for d in settling)
        if preset in ("hw-station", "tanita", "kv"):
            bmi, bmi_flags = final[BMI]
            assert bmi_flags == ("derived",)
            assert bmi is not None and D(18) <= bmi <= D(32)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_simulated_noise_is_one_frame_and_never_a_reading(preset: str) -> None:
    rng = random.Random(2)
    for _ in range(60):
        frames = LineFramer().feed(sim.noise_line(rng, preset))
        assert len(frames) == 1
        with contextlib.suppress(DecodeError):  # rejected, or an empty platform
            assert decode_line(frames[0], PRESETS[preset]) == Decoded()


# --- the serial edge: simulator -> pty -> SerialTransport -> framer -> decoder ----------


@pytest.mark.parametrize("preset", ["ad-indicator", "hw-station"])
async def test_serial_transport_reads_the_simulator_over_a_real_pty(preset: str) -> None:
    master_fd, slave_path = sim.open_pty()
    stop = asyncio.Event()
    frames: list[bytes] = []
    states: list[str] = []

    def emit(frame: bytes, channel: str | None, /, *, dedup_key: str | None = None) -> None:
        frames.append(frame)
        if len(frames) >= 24:
            stop.set()

    transport = SerialTransport(SerialSettings(port=slave_path, baudrate=9600), LineFramer)
    try:
        writer = asyncio.create_task(
            sim.run(master_fd, preset=preset, every_s=0.05, noise=True, seed=3, stop=stop)
        )
        await asyncio.wait_for(transport.run(emit, lambda s, _d: states.append(s), stop), 20)
        await writer
    finally:
        os.close(master_fd)
    assert "connected" in states
    records = progress = rejected = empty = 0
    for frame in frames:
        try:
            decoded = decode_line(frame, PRESETS[preset])
        except DecodeError:
            rejected += 1
            continue
        if not decoded:
            empty += 1
        elif "intermediate" in decoded.readings[0].flags:
            progress += 1
        else:
            records += 1
            assert decoded.readings[0].metric == MASS
    assert records >= 5
    assert records + progress + rejected + empty == len(frames)
    if preset == "ad-indicator":
        assert progress >= 3 * (records - 1)
