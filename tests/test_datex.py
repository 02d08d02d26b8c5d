"""GE/Datex-Ohmeda S/5 computer interface: framing, records, requests,
conversation, simulator and the serial edge over a real pty.

Test vectors are built here byte by byte from the layout of GE's "S/5 Computer Interface
Specification" (header table, group table; docs/protocols/datex-s5.md), independently of the
driver's own encoder, with the offsets named in comments.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import struct
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.serial import datex
from device_drivers.serial.datex import (
    FrameReader,
    S5Conversation,
    decode_frame,
    encode_frame,
    encode_request_displayed,
    encode_request_waves,
)
from device_drivers.serial.port import SerialTransport
from device_drivers.simulators import datex as sim
from edge_agent import mdc
from edge_agent.model import Decoded, DecodeError

T0 = 1_795_000_000  # monitor clock, seconds since 1970: 2026-11-18 11:06:40
WHEN = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=T0)
BPM, RPM, MMHG = "MDC_DIM_BEAT_PER_MIN", "MDC_DIM_RESP_PER_MIN", "MDC_DIM_MMHG"
PCT, DEGC = "MDC_DIM_PERCENT", "MDC_DIM_DEGC"
LIVE = 0x3  # status bit 0 module exists | bit 1 measurement active


# --- vectors from the S/5 layout --------------------------------------------------------


def header(
    r_len: int,
    *,
    subs: tuple[tuple[int, int], ...] = ((1, 0),),
    maintype: int = 0,
    level: int = 8,
    r_time: int = T0,
) -> bytes:
    """The 40-byte record header; `subs` are (sr_type, sr_offset) descriptors."""
    b = bytearray(40)
    struct.pack_into("<h", b, 0, r_len)  # 0: r_len int16, the whole record
    b[2] = 7  # 2: r_nbr
    b[3] = level  # 3: dri_level
    struct.pack_into("<H", b, 4, 0)  # 4: plug_id
    struct.pack_into("<I", b, 6, r_time)  # 6: r_time uint32
    # 10: n_subnet, 11: reserved2, 12: reserved3 uint16 -> zero
    struct.pack_into("<h", b, 14, maintype)  # 14: r_maintype int16
    for i, (sr_type, offset) in enumerate(subs):  # 16: 8 x {sr_offset int16, sr_type uint8}
        struct.pack_into("<hB", b, 16 + 3 * i, offset, sr_type)
    if len(subs) < 8:
        b[16 + 3 * len(subs) + 2] = 0xFF  # sr_type 0xFF ends the list
    return bytes(b)


def group(status: int, label: int, *values: int) -> bytes:
    """A basic-class group: status uint32, label uint16, int16 values."""
    return struct.pack(f"<IH{len(values)}h", status, label, *values)


def class_data(groups: dict[int, bytes]) -> bytes:
    """270 bytes of basic class data with the given groups at their offsets."""
    data = bytearray(270)
    for offset, body in groups.items():
        data[offset : offset + len(body)] = body
    return bytes(data)


def phdb_subrecord(data: bytes, *, time: int = T0, phdb_class: int = 0) -> bytes:
    """278 bytes: 0 time uint32 | 4 class data (270) | 274 marker | 275 reserved |
    276 cl_drilvl_subt uint16 (bits 8-11 = class)."""
    return struct.pack("<I", time) + data + bytes([0, 0]) + struct.pack("<H", phdb_class << 8)


def framed_body(record: bytes) -> bytes:
    """What FrameReader emits: the record and its 8-bit sum."""
    return record + bytes([sum(record) & 0xFF])


def displayed(groups: dict[int, bytes], *, sr_type: int = 1, r_time: int = T0) -> bytes:
    sub = phdb_subrecord(class_data(groups))
    return framed_body(header(40 + len(sub), subs=((sr_type, 0),), r_time=r_time) + sub)


def values(decoded: Decoded) -> dict[str, tuple[Decimal | None, str, tuple[str, ...]]]:
    got = {r.metric: (r.value, r.unit, r.flags) for r in decoded.readings}
    assert len(got) == len(decoded.readings), "a metric twice in one record"
    return got


# --- framing: the worked example and stuffing --------------------------------------------


def test_worked_checksum_and_stuffing_example() -> None:
    # S/5 spec: record 10 20 7E sums to 0xAE; on the wire 7E 10 20 7D 5E AE 7E.
    wire = bytes.fromhex("7E10207D5EAE7E")
    assert datex.checksum(b"\x10\x20\x7e") == 0xAE
    assert encode_frame(b"\x10\x20\x7e") == wire
    assert FrameReader().feed(wire) == [b"\x10\x20\x7e\xae"]
    assert datex.record_of(b"\x10\x20\x7e\xae") == b"\x10\x20\x7e"


@pytest.mark.parametrize(
    ("record", "wire"),
    [
        (b"\x7e", "7E7D5E7D5E7E"),  # the checksum (0x7E) is escaped too
        (b"\x3d\x40", "7E3D407D5D7E"),  # checksum 0x7D -> 7D 5D
        (b"\x7d\x01", "7E7D5D017D5E7E"),  # 7D in the record, and its sum 0x7E
    ],
)
def test_stuffing_covers_the_checksum_byte(record: bytes, wire: str) -> None:
    framed = encode_frame(record)
    assert framed == bytes.fromhex(wire)
    assert FrameReader().feed(framed) == [framed_body(record)]


# --- displayed values: table of groups ---------------------------------------------------

ART = ("MDC_PRESS_BLD_ART_SYS", "MDC_PRESS_BLD_ART_DIA", "MDC_PRESS_BLD_ART_MEAN")


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        # ECG group at 0: hr, st1..st3 (1/100 mm), imp_rr; status bits 3-6 = 1 (ECG)
        (
            {0: group(LIVE | 1 << 3, 0x712, 72, 10, -5, 0, 15)},
            {
                "MDC_ECG_HEART_RATE": (Decimal(72), BPM, ()),
                "MDC_TTHOR_RESP_RATE": (Decimal(15), RPM, ()),
            },
        ),
        # heart-rate source 6 (pleth): a pulse rate, not an ECG heart rate
        (
            {0: group(LIVE | 6 << 3, 0, 80, 0, 0, 0, 12)},
            {
                "MDC_PULS_RATE": (Decimal(80), BPM, ("hr-source-pleth",)),
                "MDC_TTHOR_RESP_RATE": (Decimal(12), RPM, ()),
            },
        ),
        # P1 at 16, label 1 ART: sys, dia, mean in 1/100 mmHg, hr
        (
            {16: group(LIVE, 1, 12000, 8000, 9333, 71)},
            {
                ART[0]: (Decimal(120), MMHG, ()),
                ART[1]: (Decimal(80), MMHG, ()),
                ART[2]: (Decimal("93.33"), MMHG, ()),
                "MDC_BLD_PULS_RATE_INV": (Decimal(71), BPM, ()),
            },
        ),
        # P2 at 30, label 2 CVP: the mean only
        (
            {30: group(LIVE, 2, 900, 300, 650, -32767)},
            {"MDC_PRESS_BLD_VEN_CENT_MEAN": (Decimal("6.5"), MMHG, ())},
        ),
        # P3 at 44, label 3 PA
        (
            {44: group(LIVE, 3, 2500, 1000, 1600, 0)},
            {
                "MDC_PRESS_BLD_ART_PULM_SYS": (Decimal(25), MMHG, ()),
                "MDC_PRESS_BLD_ART_PULM_DIA": (Decimal(10), MMHG, ()),
                "MDC_PRESS_BLD_ART_PULM_MEAN": (Decimal(16), MMHG, ()),
            },
        ),
        # P4 at 58, label 4 RAP
        (
            {58: group(LIVE, 4, 800, 200, 500, 0)},
            {
                "MDC_PRESS_BLD_ATR_RIGHT_SYS": (Decimal(8), MMHG, ()),
                "MDC_PRESS_BLD_ATR_RIGHT_DIA": (Decimal(2), MMHG, ()),
                "MDC_PRESS_BLD_ATR_RIGHT_MEAN": (Decimal(5), MMHG, ()),
            },
        ),
        # P5 at 240, label 5 RVP
        (
            {240: group(LIVE, 5, 2500, 300, 1200, 0)},
            {
                "MDC_PRESS_BLD_VENT_RIGHT_SYS": (Decimal(25), MMHG, ()),
                "MDC_PRESS_BLD_VENT_RIGHT_DIA": (Decimal(3), MMHG, ()),
                "MDC_PRESS_BLD_VENT_RIGHT_MEAN": (Decimal(12), MMHG, ()),
            },
        ),
        # P6 at 254, label 6 LAP
        (
            {254: group(LIVE, 6, 1200, 400, 800, 0)},
            {
                "MDC_PRESS_BLD_ATR_LEFT_SYS": (Decimal(12), MMHG, ()),
                "MDC_PRESS_BLD_ATR_LEFT_DIA": (Decimal(4), MMHG, ()),
                "MDC_PRESS_BLD_ATR_LEFT_MEAN": (Decimal(8), MMHG, ()),
            },
        ),
        # P1 label 7 ICP: mean only
        (
            {16: group(LIVE, 7, 1500, 900, 1100, 0)},
            {"MDC_PRESS_INTRA_CRAN": (Decimal(11), MMHG, ())},
        ),
        # P2 label 8 ABP, with its pulse rate
        (
            {30: group(LIVE, 8, 11000, 7000, 8300, 66)},
            {
                "MDC_PRESS_BLD_ART_ABP_SYS": (Decimal(110), MMHG, ()),
                "MDC_PRESS_BLD_ART_ABP_DIA": (Decimal(70), MMHG, ()),
                "MDC_PRESS_BLD_ART_ABP_MEAN": (Decimal(83), MMHG, ()),
                "MDC_BLD_PULS_RATE_INV": (Decimal(66), BPM, ()),
            },
        ),
        # P1 label 9 is the channel name "P1": no site, generic terms, no pulse rate
        (
            {16: group(LIVE, 9, 10000, 6000, 7500, 60)},
            {
                "MDC_PRESS_BLD_SYS": (Decimal(100), MMHG, ()),
                "MDC_PRESS_BLD_DIA": (Decimal(60), MMHG, ()),
                "MDC_PRESS_BLD_MEAN": (Decimal(75), MMHG, ()),
            },
        ),
        # NIBP at 72: 1/100 mmHg -> mmHg, hr
        (
            {72: group(LIVE, 3, 12050, 7825, 9200, 70)},
            {
                "MDC_PRESS_BLD_NONINV_SYS": (Decimal("120.5"), MMHG, ()),
                "MDC_PRESS_BLD_NONINV_DIA": (Decimal("78.25"), MMHG, ()),
                "MDC_PRESS_BLD_NONINV_MEAN": (Decimal(92), MMHG, ()),
                "MDC_PULS_RATE_NON_INV": (Decimal(70), BPM, ()),
            },
        ),
        # SpO2 at 118: SpO2 1/100 %, pr, ir_amp, SvO2
        (
            {118: group(LIVE, 0, 9750, 68, 500, -32767)},
            {
                "MDC_PULS_OXIM_SAT_O2": (Decimal("97.5"), PCT, ()),
                "MDC_PULS_OXIM_PULS_RATE": (Decimal(68), BPM, ()),
            },
        ),
        # CO2 at 132: et 5.00 %, fi 0.20 %, rr 12, amb 760.0 mmHg -> 38.0 and 1.5 mmHg
        (
            {132: group(LIVE, 1, 500, 20, 12, 7600)},
            {
                "MDC_AWAY_CO2_ET": (Decimal("38.0"), MMHG, ()),
                "MDC_CONC_AWAY_CO2_INSP": (Decimal("1.5"), MMHG, ()),
                "MDC_CO2_RESP_RATE": (Decimal(12), RPM, ()),
            },
        ),
        # CO2 without ambient pressure: the concentrations stay in %
        (
            {132: group(LIVE, 1, 512, 0, 14, -32767)},
            {
                "MDC_AWAY_CO2_ET": (Decimal("5.12"), PCT, ()),
                "MDC_CONC_AWAY_CO2_INSP": (Decimal(0), PCT, ()),
                "MDC_CO2_RESP_RATE": (Decimal(14), RPM, ()),
            },
        ),
        # O2 at 146: et, fi in 1/100 %
        (
            {146: group(LIVE, 0, 3550, 4000)},
            {
                "MDC_CONC_AWAY_O2_ET": (Decimal("35.5"), PCT, ()),
                "MDC_CONC_AWAY_O2_INSP": (Decimal(40), PCT, ()),
            },
        ),
        # status gates: exists without active, active without exists -> nothing
        ({72: group(0x1, 0, 12000, 8000, 9300, 70)}, {}),
        ({118: group(0x2, 0, 9700, 70, 0, 0)}, {}),
        # groups the basic decoder does not map (N2O at 156, AA at 166) give nothing
        ({156: group(LIVE, 0, 100, 200), 166: group(LIVE, 3, 100, 120, 90)}, {}),
    ],
)
def test_basic_class_groups(groups: dict[int, bytes], expected: dict[str, object]) -> None:
    decoded = decode_frame(displayed(groups))
    assert values(decoded) == expected
    assert all(r.device_time == WHEN for r in decoded.readings)


@pytest.mark.parametrize(
    ("label", "metric"),
    [
        (1, "MDC_TEMP_ESOPH"),
        (2, "MDC_TEMP_NASOPH"),
        (3, "MDC_TEMP_TYMP"),
        (4, "MDC_TEMP_RECT"),
        (5, "MDC_TEMP"),  # BLAD: no confirmed site term
        (6, "MDC_TEMP_AXILLA"),
        (7, "MDC_TEMP_SKIN"),
        (8, "MDC_TEMP_AWAY"),
        (9, "MDC_TEMP_ROOM"),
        (10, "MDC_TEMP_MYO"),
        (11, "MDC_TEMP"),  # T1..T4 are channel names
        (15, "MDC_TEMP_CORE"),
        (16, "MDC_TEMP"),
        (0, "MDC_TEMP"),
    ],
)
@pytest.mark.parametrize("offset", [86, 94, 102, 110])  # T1..T4 groups, 8 bytes each
def test_temperature_sites(label: int, metric: str, offset: int) -> None:
    got = values(decode_frame(displayed({offset: group(LIVE, label, 3712)})))
    assert got == {metric: (Decimal("37.12"), DEGC, ())}


@pytest.mark.parametrize(
    ("raw", "flag"),
    [
        (-32767, "invalid"),
        (-32766, "not-updated"),
        (-32765, "discontinuity"),
        (-32764, "under-range"),
        (-32763, "over-range"),
        (-32762, "not-calibrated"),
        (-32001, "marker"),  # an undocumented marker: still never a value
        (-32768, "marker"),
    ],
)
def test_special_values_are_markers(raw: int, flag: str) -> None:
    got = values(decode_frame(displayed({72: group(LIVE, 0, raw, 8000, 9300, 70)})))
    assert got["MDC_PRESS_BLD_NONINV_SYS"] == (None, MMHG, (flag,))
    assert got["MDC_PRESS_BLD_NONINV_DIA"] == (Decimal(80), MMHG, ())


def test_smallest_real_value_is_minus_32000() -> None:
    got = values(decode_frame(displayed({86: group(LIVE, 9, -32000)})))
    assert got["MDC_TEMP_ROOM"] == (Decimal("-320.00"), DEGC, ())


def test_etco2_marker_and_rounding() -> None:
    # et 5.13 % x 752.4 mmHg / 100 = 38.59812 -> 38.6 mmHg
    got = values(decode_frame(displayed({132: group(LIVE, 1, 513, -32766, 10, 7524)})))
    assert got["MDC_AWAY_CO2_ET"] == (Decimal("38.6"), MMHG, ())
    assert got["MDC_CONC_AWAY_CO2_INSP"] == (None, MMHG, ("not-updated",))


@pytest.mark.parametrize("sr_type", [2, 3])  # 10-s and 60-s trend subrecords
def test_trends_are_flagged(sr_type: int) -> None:
    frame = displayed({118: group(LIVE, 0, 9600, -32767, 0, 0)}, sr_type=sr_type)
    got = values(decode_frame(frame))
    assert got["MDC_PULS_OXIM_SAT_O2"] == (Decimal(96), PCT, ("trend",))
    assert got["MDC_PULS_OXIM_PULS_RATE"] == (None, BPM, ("trend", "invalid"))


def test_device_time_is_the_monitor_wall_clock_naive() -> None:
    sub = phdb_subrecord(class_data({118: group(LIVE, 0, 9700, 70, 0, 0)}), time=T0 + 5)
    decoded = decode_frame(framed_body(header(318, r_time=T0) + sub))
    assert decoded.readings[0].device_time == WHEN + dt.timedelta(seconds=5)
    assert decoded.readings[0].device_time.tzinfo is None
    # no time anywhere -> None, never 1970
    sub = phdb_subrecord(class_data({118: group(LIVE, 0, 9700, 70, 0, 0)}), time=0)
    decoded = decode_frame(framed_body(header(318, r_time=0) + sub))
    assert decoded.readings[0].device_time is None


def test_extended_classes_and_several_subrecords() -> None:
    basic = phdb_subrecord(class_data({118: group(LIVE, 0, 9800, 60, 0, 0)}))
    ext1 = phdb_subrecord(class_data({0: group(LIVE, 0, 99)}), phdb_class=1)
    # sr_offsets 0 and 278 from the data area; an auxiliary-info subrecord (type 4) too
    aux = bytes(20)
    record = header(40 + 278 * 2 + 20, subs=((1, 0), (1, 278), (4, 556))) + basic + ext1 + aux
    got = values(decode_frame(framed_body(record)))
    assert set(got) == {"MDC_PULS_OXIM_SAT_O2", "MDC_PULS_OXIM_PULS_RATE"}


@pytest.mark.parametrize("maintype", [4, 5, 8])  # network-interface record types
def test_network_only_records_are_valid_and_empty(maintype: int) -> None:
    record = header(50, subs=((1, 0),), maintype=maintype) + bytes(10)
    assert decode_frame(framed_body(record)) == Decoded()


def test_a_record_without_subrecords_is_empty() -> None:
    assert decode_frame(framed_body(header(40, subs=()))) == Decoded()


# --- waveforms -----------------------------------------------------------------------------


def test_waveform_record() -> None:
    # data area: ECG1 (type 1) at 0: act_len 3, status, label, 3 samples (µV);
    #            PLETH (type 8) at 12: act_len 2 ... (1/100 %); EEG1 (18) at 22: skipped
    ecg = struct.pack("<hHH3h", 3, 0, 0, 100, -200, 1000)
    pleth = struct.pack("<hHH2h", 2, 0, 0, 4500, 5000)
    eeg = struct.pack("<hHH1h", 1, 0, 0, 7)
    data = ecg + pleth + eeg
    record = header(40 + len(data), subs=((1, 0), (8, 12), (18, 22)), maintype=1) + data
    decoded = decode_frame(framed_body(record))
    assert decoded.readings == ()
    first, second = decoded.waveforms
    assert (first.metric, first.rate_hz, first.unit) == (
        "MDC_ECG_ELEC_POTL",
        300.0,
        "MDC_DIM_MICRO_VOLT",
    )
    assert first.samples == (100, -200, 1000)
    assert first.physical(2) == Decimal(1000)
    assert first.start_time == WHEN
    assert (second.metric, second.rate_hz, second.unit) == ("MDC_PULS_OXIM_PLETH", 100.0, PCT)
    assert second.physical(0) == Decimal("45.00")


# --- rejected frames --------------------------------------------------------------------------

GOOD = displayed({118: group(LIVE, 0, 9700, 70, 0, 0)})


@pytest.mark.parametrize(
    ("frame", "offset", "reason"),
    [
        (b"", 0, "holds no record"),
        (b"\x01", 0, "holds no record"),
        (GOOD[:-1] + bytes([(GOOD[-1] + 1) & 0xFF]), 318, "checksum 0x"),  # bad checksum
        (framed_body(header(40)[:39]), 39, "shorter than the 40-byte header"),  # short record
        (framed_body(header(41) + b""), 0, "r_len says 41 bytes, the record has 40"),
        (framed_body(header(300) + bytes(10)), 0, "r_len says 300"),
        (framed_body(header(50, maintype=3) + bytes(10)), 14, "unknown record main type 3"),
        (framed_body(header(50, subs=((1, 10),)) + bytes(10)), 16, "outside the 10-byte data area"),
        (framed_body(header(50, subs=((1, 0), (2, -1))) + bytes(10)), 19, "data offset -1"),
        (framed_body(header(140, subs=((1, 0),)) + bytes(100)), 40, "needs 278 bytes, 100 left"),
        (
            framed_body(header(48, subs=((1, 0),), maintype=1) + struct.pack("<hHHh", 5, 0, 0, 1)),
            40,
            "says 5 samples, 1 fit",
        ),
        (
            framed_body(header(48, subs=((1, 0),), maintype=1) + struct.pack("<hHHh", -1, 0, 0, 1)),
            40,
            "says -1 samples",
        ),
        (framed_body(header(44, subs=((8, 0),), maintype=1) + bytes(4)), 40, "header needs 6"),
    ],
)
def test_rejected_frames(frame: bytes, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_frame(frame)
    assert info.value.offset == offset
    assert reason in info.value.reason
    assert "\n" not in str(info.value)


@given(st.binary(max_size=700))
def test_fuzz_decoder_raises_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_frame(data)


@given(
    st.sampled_from([0, 1]),
    st.lists(st.tuples(st.integers(0, 255), st.integers(-5, 600)), max_size=8),
    st.binary(max_size=600),
)
def test_fuzz_well_formed_headers_reach_the_subrecords(
    maintype: int, subs: list[tuple[int, int]], data: bytes
) -> None:
    record = header(40 + len(data), subs=tuple(subs), maintype=maintype) + data
    with contextlib.suppress(DecodeError):
        decode_frame(framed_body(record))


# --- the framer ---------------------------------------------------------------------------

STREAM = (
    encode_frame(bytes.fromhex("10207E"))
    + b"\x7e"  # a stray flag: an empty body, skipped
    + encode_frame(GOOD[:-1])
    + b"noise"  # between frames: emitted, to be quarantined
    + encode_frame(bytes([0x7D, 0x7E, 0x00, 0x5E]))
)
WHOLE = [
    bytes.fromhex("10207EAE"),
    GOOD,
    b"noise",
    framed_body(bytes([0x7D, 0x7E, 0x00, 0x5E])),
]


def test_framer_whole_stream() -> None:
    assert FrameReader().feed(STREAM) == WHOLE
    with pytest.raises(DecodeError):
        decode_frame(b"noise")


def test_framer_split_at_every_byte_boundary() -> None:
    for cut in range(len(STREAM) + 1):
        reader = FrameReader()
        assert reader.feed(STREAM[:cut]) + reader.feed(STREAM[cut:]) == WHOLE, cut
    reader = FrameReader()
    assert [f for i in range(len(STREAM)) for f in reader.feed(STREAM[i : i + 1])] == WHOLE


def test_framer_aborted_frame_fails_its_checksum() -> None:
    # 7D right before a flag: the body keeps a literal 7D and is rejected downstream.
    frames = FrameReader().feed(bytes.fromhex("7E1020AE7D7E"))
    assert frames == [bytes.fromhex("1020AE7D")]
    with pytest.raises(DecodeError, match="checksum"):
        decode_frame(frames[0])


def test_framer_caps_a_run_without_flags() -> None:
    reader = FrameReader(max_frame=64)
    frames = reader.feed(bytes(range(1, 101)) * 2)  # 200 bytes, no 7E/7D below 0x65
    assert [len(f) for f in frames] == [64, 64, 64]
    assert reader.feed(b"\x7e") == [(bytes(range(1, 101)) * 2)[192:]]


@given(st.lists(st.binary(max_size=100), max_size=30))
def test_fuzz_framer_never_raises_and_stays_bounded(chunks: list[bytes]) -> None:
    reader = FrameReader(max_frame=128)
    for chunk in chunks:
        assert all(0 < len(f) <= 128 for f in reader.feed(chunk))


@given(st.binary(min_size=1, max_size=300))
def test_encode_then_frame_round_trip(record: bytes) -> None:
    assert FrameReader().feed(encode_frame(record)) == [framed_body(record)]
    assert datex.record_of(framed_body(record)) == record


# --- requests -----------------------------------------------------------------------------


def _unframe(wire: bytes) -> bytes:
    (body,) = FrameReader().feed(wire)
    return datex.record_of(body)


def test_displayed_values_request_bytes() -> None:
    record = _unframe(encode_request_displayed(5, datex.CLASS_BASIC, 8))
    assert record.hex(" ") == " ".join(
        [
            "31 00",  # r_len 49 = header 40 + request subrecord 9
            "00",  # r_nbr
            "08",  # dri_level 8 ('03)
            "00 00",  # plug_id
            "00 00 00 00",  # r_time: zero when sending
            "00 00 00 00",  # n_subnet, reserved2, reserved3
            "00 00",  # r_maintype 0: physiological database
            "00 00 00",  # sr_desc[0]: offset 0, type 0 (transmission request)
            "00 00 ff",  # sr_desc[1]: end of list
            *["00 00 00"] * 6,
            "01",  # phdb_rcrd_type 1: displayed values
            "05 00",  # tx_ival 5 s
            "00 00 00 00",  # phdb_class_bf: basic
            "00 00",  # reserved
        ]
    )


def test_request_options() -> None:
    once = _unframe(encode_request_displayed(-1, datex.CLASS_EXT1 | datex.CLASS_EXT2, 11))
    assert once[3] == 11
    assert struct.unpack_from("<BhIh", once, 40) == (1, -1, 0x6, 0)
    trend = _unframe(datex.encode_request_phdb(datex.PHDB_TREND_60S, 60, level=5))
    assert struct.unpack_from("<BhIh", trend, 40) == (3, 60, 0, 0)


def test_waveform_request_bytes() -> None:
    record = _unframe(encode_request_waves([datex.WAVE_ECG1, datex.WAVE_PLETH], level=9))
    assert len(record) == 72 and struct.unpack_from("<h", record) == (72,)
    assert record[3] == 9 and struct.unpack_from("<h", record, 14) == (1,)
    assert record[16:22] == bytes([0, 0, 0, 0, 0, 0xFF])
    body = record[40:]
    assert struct.unpack_from("<hh", body) == (0, 0)  # req_type 0 start, res
    assert body[4:12] == bytes([1, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])  # type[8]
    assert body[12:] == bytes(20)  # addl_type[16], reserved int16 x 2
    stop = _unframe(encode_request_waves([], start=False, level=9))
    assert struct.unpack_from("<h", stop, 40) == (1,)


@pytest.mark.parametrize(
    "bad",
    [
        lambda: encode_request_displayed(3),  # 1..4 s is not a period the monitor takes
        lambda: encode_request_displayed(5, level=1),  # levels 0/1 unsupported
        lambda: encode_request_displayed(5, level=12),
        lambda: encode_request_waves([1, 2, 3]),  # 900 samples/s > 600
        lambda: encode_request_waves(list(range(1, 10))),  # 9 ids
        lambda: encode_request_waves([0]),
        lambda: datex.encode_request_phdb(4, 5),  # aux info cannot be requested
    ],
)
def test_bad_requests_are_refused(bad: Callable[[], bytes]) -> None:
    with pytest.raises(ValueError):
        bad()


def test_serial_settings() -> None:
    s = datex.serial_settings("/dev/ttyUSB3")
    assert (s.port, s.baudrate, s.bytesize, s.parity, s.stopbits, s.rtscts) == (
        "/dev/ttyUSB3", 19200, 8, "E", 1, True,
    )  # fmt: skip
    assert datex.SERIAL_SETTINGS.port == ""


def test_every_term_the_driver_uses_is_in_the_mdc_table() -> None:
    used = {
        "MDC_ECG_HEART_RATE", "MDC_PULS_RATE", "MDC_TTHOR_RESP_RATE", "MDC_BLD_PULS_RATE_INV",
        "MDC_PRESS_BLD_NONINV_SYS", "MDC_PRESS_BLD_NONINV_DIA", "MDC_PRESS_BLD_NONINV_MEAN",
        "MDC_PULS_RATE_NON_INV", "MDC_PULS_OXIM_SAT_O2", "MDC_PULS_OXIM_PULS_RATE",
        "MDC_AWAY_CO2_ET", "MDC_CONC_AWAY_CO2_INSP", "MDC_CO2_RESP_RATE",
        "MDC_CONC_AWAY_O2_ET", "MDC_CONC_AWAY_O2_INSP", *datex._GENERIC_PRESSURE,
        datex.MMHG, datex.PERCENT, datex.DEGC, datex.BPM, datex.RPM, datex.MICRO_VOLT,
    }  # fmt: skip
    used |= {m for _, ms in datex.PRESSURE_SITES.values() for m in ms if m}
    used |= {m for _, m in datex.TEMPERATURE_SITES.values()}
    used |= {w.metric for w in datex.WAVES.values()} | {w.unit for w in datex.WAVES.values()}
    assert sorted(u for u in used if u not in mdc.BY_REFID) == []
    assert mdc.code("MDC_AWAY_CO2_ET") == 151708
    assert mdc.code("MDC_PRESS_BLD_ART_PULM_MEAN") == 150047


# --- the conversation ---------------------------------------------------------------------


def _levels(frames: list[bytes]) -> list[tuple[int, int]]:
    """(maintype, dri_level) of each request frame."""
    out = []
    for wire in frames:
        record = _unframe(wire)
        out.append((struct.unpack_from("<h", record, 14)[0], record[3]))
    return out


def _answer(level: int) -> bytes:
    sub = phdb_subrecord(class_data({}))
    return framed_body(header(318, level=level) + sub)


def test_conversation_opens_with_a_request_at_the_first_level() -> None:
    conv = S5Conversation()
    assert conv.tick_s == 5.0
    assert _levels(conv.opened(100.0)) == [(0, 11)]
    waves = S5Conversation(waves=(datex.WAVE_ECG1, datex.WAVE_PLETH), levels=(9,))
    assert _levels(waves.opened(0.0)) == [(0, 9), (1, 9)]


def test_conversation_falls_back_through_the_levels_and_wraps() -> None:
    conv = S5Conversation(levels=(11, 9, 8))
    conv.opened(0.0)
    assert conv.tick(5.0) == []  # answer_timeout_s (10 s) not yet over
    assert _levels(conv.tick(10.0)) == [(0, 9)]
    assert conv.tick(15.0) == []
    assert _levels(conv.tick(20.0)) == [(0, 8)]
    assert _levels(conv.tick(30.0)) == [(0, 11)]  # round again: the monitor may be booting
    assert conv.level is None


def test_conversation_locks_on_an_answer_and_re_requests_after_silence() -> None:
    conv = S5Conversation(levels=(11, 9, 8))
    conv.opened(0.0)
    conv.tick(10.0)  # now asking at level 9
    assert conv.received(b"garbage", 11.0) == []  # not a record: does not count
    assert conv.level is None
    assert conv.received(_answer(9), 12.0) == []
    assert conv.level == 9
    assert conv.tick(15.0) == []
    assert conv.tick(20.0) == []
    conv.received(_answer(9), 20.0)  # displayed values keep coming
    assert conv.tick(25.0) == []
    assert conv.tick(30.0) == []  # 10 s since the last answer
    assert _levels(conv.tick(35.0)) == [(0, 9)]  # 15 s silent: ask again, same level
    assert conv.level is None
    assert _levels(conv.tick(45.0)) == [(0, 8)]  # still nothing: probe on


def test_conversation_takes_the_level_the_monitor_answers_at() -> None:
    conv = S5Conversation(levels=(11, 10, 8))
    conv.opened(0.0)
    conv.received(_answer(8), 1.0)  # a late answer to an earlier request
    assert conv.level == 8
    assert _levels(conv.tick(20.0)) == [(0, 8)]


def test_conversation_refuses_bad_settings() -> None:
    with pytest.raises(ValueError):
        S5Conversation(levels=())
    with pytest.raises(ValueError):
        S5Conversation(levels=(1,))
    with pytest.raises(ValueError):
        S5Conversation(waves=(1, 2, 3))


# --- the simulator's logic ------------------------------------------------------------------


def _decoded(frames: list[bytes]) -> list[tuple[int, Decoded]]:
    out = []
    for wire in frames:
        (body,) = FrameReader().feed(wire)
        out.append((datex.record_of(body)[3], decode_frame(body)))
    return out


def _request(wire: bytes) -> bytes:
    (body,) = FrameReader().feed(wire)
    return body


def test_simulator_answers_only_supported_levels() -> None:
    monitor = sim.S5Monitor(seed=1, supported_level=8)
    monitor.handle(_request(encode_request_displayed(5, level=9)), 0.0)
    assert monitor.poll(0.0) == []
    monitor.handle(b"\x01\x02\x03", 0.0)  # garbage is ignored
    monitor.handle(_request(encode_request_displayed(5, level=8)), 0.0)
    (level, decoded), = _decoded(monitor.poll(0.0))  # fmt: skip
    assert level == 8 and decoded.readings
    assert monitor.poll(4.9) == []
    assert len(monitor.poll(5.0)) == 1


def test_simulator_once_stop_and_the_5_s_holdoff() -> None:
    monitor = sim.S5Monitor(seed=2)
    monitor.handle(_request(encode_request_displayed(-1)), 0.0)
    assert len(monitor.poll(0.0)) == 1
    assert monitor.poll(100.0) == []  # one transmission only
    monitor.handle(_request(encode_request_displayed(5)), 100.0)
    monitor.handle(_request(encode_request_displayed(0)), 102.0)  # within 5 s: ignored
    assert len(monitor.poll(102.0)) == 1
    monitor.handle(_request(encode_request_displayed(0)), 106.0)  # stop
    assert monitor.poll(200.0) == []


def test_simulator_resting_patient_over_an_hour() -> None:
    monitor = sim.S5Monitor(seed=3, start=dt.datetime(2026, 11, 22, 8, 0, 0))
    monitor.handle(_request(encode_request_displayed(5)), 0.0)
    decoded = [d for t in range(0, 3600, 5) for _, d in _decoded(monitor.poll(float(t)))]
    assert len(decoded) == 720
    first = decoded[0].readings[0]
    assert first.device_time == dt.datetime(2026, 11, 22, 8, 0, 0)
    series: dict[str, list[Decimal | None]] = {}
    for d in decoded:
        for r in d.readings:
            series.setdefault(r.metric, []).append(r.value)
    hr = [v for v in series["MDC_ECG_HEART_RATE"] if v is not None]
    assert min(hr) >= 50 and max(hr) <= 120
    assert None in series["MDC_PULS_OXIM_SAT_O2"]  # probe off now and then
    nibp = series["MDC_PRESS_BLD_NONINV_SYS"]
    assert 10 <= len(set(nibp)) <= 13  # a measurement every 5 minutes
    assert series["MDC_AWAY_CO2_ET"][0] is not None
    assert "MDC_PRESS_BLD_ART_SYS" in series and "MDC_PRESS_BLD_VEN_CENT_MEAN" in series


def test_simulator_streams_requested_waveforms() -> None:
    monitor = sim.S5Monitor(seed=4)
    monitor.handle(_request(encode_request_waves([datex.WAVE_ECG1, datex.WAVE_PLETH])), 0.0)
    frames = [f for i in range(10) for f in monitor.poll(i * 0.2)]
    waves = [w for _, d in _decoded(frames) for w in d.waveforms]
    ecg = [w for w in waves if w.metric == "MDC_ECG_ELEC_POTL"]
    pleth = [w for w in waves if w.metric == "MDC_PULS_OXIM_PLETH"]
    assert sum(len(w.samples) for w in ecg) == 600  # 2 s at 300/s
    assert sum(len(w.samples) for w in pleth) == 200
    assert max(s for w in ecg for s in w.samples) > 800  # R waves in µV
    monitor.handle(_request(encode_request_waves([], start=False)), 2.0)
    assert monitor.poll(10.0) == []


# --- the serial edge: simulator <-> pty <-> SerialTransport <-> conversation ---------------


async def test_transport_and_conversation_against_the_simulator_on_a_pty() -> None:
    master_fd, slave_path = sim.open_pty()
    stop = asyncio.Event()
    frames: list[bytes] = []
    states: list[str] = []

    def emit(frame: bytes, channel: str | None, /, *, dedup_key: str | None = None) -> None:
        frames.append(frame)
        if sum(1 for f in frames if datex.record_of(f)[14] == 0) >= 4:  # r_maintype 0
            stop.set()

    def conversation() -> S5Conversation:
        # Fast clocks for the test: the simulated monitor speaks only up to level 8, so the
        # requests at 11 and 10 go unanswered first.
        return S5Conversation(
            levels=(11, 10, 8),
            waves=(datex.WAVE_ECG1, datex.WAVE_PLETH),
            tick_s=0.05,
            answer_timeout_s=0.3,
            silence_s=5.0,
        )

    settings = datex.serial_settings(slave_path)
    settings.rtscts = False  # a pty has no RTS/CTS lines
    transport = SerialTransport(settings, FrameReader, conversation_factory=conversation)
    try:
        monitor = asyncio.create_task(sim.run(master_fd, stop=stop, seed=5, speed=20.0))
        await asyncio.wait_for(transport.run(emit, lambda s, _d: states.append(s), stop), 30)
        await asyncio.wait_for(monitor, 5)
    finally:
        os.close(master_fd)
    assert "connected" in states
    decoded = [(datex.record_of(f)[3], decode_frame(f)) for f in frames]
    displayed_frames = [d for _, d in decoded if d.readings]
    assert len(displayed_frames) >= 4
    assert {level for level, _ in decoded} == {8}
    metrics = {r.metric for d in displayed_frames for r in d.readings}
    assert {"MDC_ECG_HEART_RATE", "MDC_PRESS_BLD_NONINV_SYS", "MDC_AWAY_CO2_ET"} <= metrics
    assert any(d.waveforms for _, d in decoded)
