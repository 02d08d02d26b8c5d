"""SCP-ECG (EN 1064 / ISO 11073-91064): CRC, hand-built records read and written byte for byte, the
default and custom Huffman tables, difference encoding, 12-lead round trips, refusals
with their reasons, and fuzzing that lets only DecodeError out."""

from __future__ import annotations

import binascii
import dataclasses
import datetime as dt
import math
import random
import struct
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import TypedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.ecg.record import (
    MEASUREMENTS,
    STANDARD_LEADS,
    EcgRecord,
    lead_metric,
    limb_lead_errors,
)
from device_drivers.ecg.scp import (
    crc_ccitt,
    decode_huffman,
    decode_scp,
    encode_huffman,
    encode_scp,
    parse_scp,
    rate_from_interval,
    to_differences,
    undo_differences,
)
from edge_agent.model import DecodeError, Statement

# --- building records by hand, from the EN 1064 layout (docs/protocols/ecg-files.md) ----------
# Independent of the module's writer: binascii's CRC-HQX started at 0xFFFF is
# CRC-16/CCITT-FALSE.


def crc(data: bytes) -> int:
    return binascii.crc_hqx(data, 0xFFFF)


def section(section_id: int, body: bytes) -> bytes:
    """16-byte header (CRC, id, length, versions 20/20, reserved) + body padded to even."""
    if len(body) % 2:
        body += b"\0"
    reserved = b"SCPECG" if section_id == 0 else bytes(6)
    tail = struct.pack("<HIBB", section_id, 16 + len(body), 20, 20) + reserved + body
    return struct.pack("<H", crc(tail)) + tail


def build_record(bodies: Mapping[int, bytes]) -> bytes:
    """Record header, section 0 listing ids 0-11 (1-based positions), sections by id."""
    sections = {sid: section(sid, bodies[sid]) for sid in sorted(bodies)}
    pointer_length = 16 + 10 * 12
    position = 6 + pointer_length
    entries = [struct.pack("<HII", 0, pointer_length, 7)]
    for sid in range(1, 12):
        if sid in sections:
            entries.append(struct.pack("<HII", sid, len(sections[sid]), position + 1))
            position += len(sections[sid])
        else:
            entries.append(struct.pack("<HII", sid, 0, 0))
    body = section(0, b"".join(entries)) + b"".join(sections.values())
    tail = struct.pack("<I", 6 + len(body)) + body
    return struct.pack("<H", crc(tail)) + tail


def refix(data: bytes | bytearray) -> bytes:
    """Record length and every CRC made right again after a change, as far as the
    (possibly damaged) pointer table allows, so the parser gets past its checks."""
    out = bytearray(data)
    if len(out) < 6:
        return bytes(out)
    out[2:6] = struct.pack("<I", len(out))

    def fix(start: int, length: int) -> None:
        if start >= 0 and length >= 16 and start + length <= len(out):
            out[start : start + 2] = struct.pack("<H", crc(bytes(out[start + 2 : start + length])))

    if len(out) >= 22:
        pointer_length = struct.unpack_from("<I", out, 10)[0]
        if 16 <= pointer_length <= len(out) - 6:
            for at in range(22, 6 + pointer_length - 9, 10):
                sid, length, index = struct.unpack_from("<HII", out, at)
                if sid and length and index:
                    fix(index - 1, length)
            fix(6, pointer_length)
    out[0:2] = struct.pack("<H", crc(bytes(out[2:])))
    return bytes(out)


def section_at(data: bytes, sid: int) -> int:
    """File offset of section `sid` from the pointer table."""
    for at in range(22, 22 + 10 * 12, 10):
        entry_id, length, index = struct.unpack_from("<HII", data, at)
        if entry_id == sid and length:
            return int(index) - 1
    raise LookupError(sid)


def bits_to_bytes(bits: str) -> bytes:
    bits = bits.replace(" ", "")
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


# --- the tiny record: 2 leads, 5 samples, plain int16 ----------------------------------------

TINY = EcgRecord(
    leads={"I": (0, 10, -10, 300, -300), "II": (1, 2, 3, 4, -32768)},
    rate_hz=Decimal(500),
    uv_per_unit=Decimal(5),
    start_time=dt.datetime(2024, 5, 1, 8, 30, 5),
    measurements={
        "heart_rate": Decimal(72),
        "rr": Decimal(833),
        "pr": Decimal(150),
        "qrs": Decimal(88),
        "qt": Decimal(360),
        "qtc": Decimal(395),
        "p_axis": Decimal(50),
        "qrs_axis": Decimal(-20),
        "t_axis": Decimal(40),
    },
    statements=(Statement("Sinus rhythm"), Statement("ACUTE MI")),
    patient_id="P-42",
    patient_name="WANG Fang",
    device="Acme",
)

TINY_DEVICE_TAG = bytes.fromhex(
    "0e 2d00"  # tag 14 acquiring device, 45 bytes:
    "0000 0000 0000 00 ff"  # institution, department, device id, type cart, maker other
    "000000000000 14 00 00 00 00"  # model text, protocol 2.0, compat, language, caps, mains
    "00000000000000000000000000000000"  # reserved
    "01 00 00 00 00 41 63 6d 65 00"  # revision length, revision, serial, software, SCP, "Acme"
)
TINY_SECTION1 = (
    bytes.fromhex(
        "02 0500 50 2d 34 32 00"  # tag 2 patient ID "P-42" + NUL
        "00 0a00 57 41 4e 47 20 46 61 6e 67 00"  # tag 0 last name "WANG Fang" + NUL
    )
    + TINY_DEVICE_TAG
    + bytes.fromhex(
        "19 0400 e807 05 01"  # tag 25 acquisition date 2024-05-01
        "1a 0300 08 1e 05"  # tag 26 acquisition time 08:30:05
        "ff 0000"  # tag 255 end
    )
)
TINY_SECTION3 = bytes.fromhex(
    "02 14"  # 2 leads; flags: bit 2 simultaneous, bits 3-7 = 2 leads
    "01000000 05000000 01"  # samples 1..5, lead I (code 1)
    "01000000 05000000 02"  # samples 1..5, lead II (code 2)
)
TINY_SECTION6 = bytes.fromhex(
    "8813 d007 00 00"  # 5000 nV per unit, 2000 µs, no differences, no bimodal compression
    "0a00 0a00"  # 10 bytes per lead
    "0000 0a00 f6ff 2c01 d4fe"  # I: 0 10 -10 300 -300
    "0100 0200 0300 0400 0080"  # II: 1 2 3 4 -32768
)
TINY_SECTION7 = bytes.fromhex(
    "01 00 4103 2f75"  # 1 block, no spikes, RR 833 ms, PP not computed (29999)
    "0000 2f75 9600 ee00 fe01"  # P on 0, P off n/c, QRS on 150, QRS off 238, T off 510
    "3200 ecff 2800"  # axes P 50, QRS -20, T 40
    "0000"  # no QRS type list
    "4800 2f75 8b01 00 0000"  # ventricular 72/min, atrial n/c, QTc 395, formula, no tags
)
TINY_SECTION8 = bytes.fromhex(
    "00 e807 05 01 08 1e 05 02"  # unconfirmed, 2024-05-01 08:30:05, 2 statements
    "01 0d00 53 69 6e 75 73 20 72 68 79 74 68 6d 00"  # 1: "Sinus rhythm"
    "02 0900 41 43 55 54 45 20 4d 49 00"  # 2: "ACUTE MI"
)
TINY_BODIES = {
    1: TINY_SECTION1,
    3: TINY_SECTION3,
    6: TINY_SECTION6,
    7: TINY_SECTION7,
    8: TINY_SECTION8,
}
TINY_BYTES = build_record(TINY_BODIES)


def test_crc_check_value() -> None:
    # the standard check value of CRC-16/CCITT-FALSE
    assert crc_ccitt(b"123456789") == 0x29B1
    assert crc_ccitt(b"") == 0xFFFF


def test_hand_built_layout() -> None:
    data = TINY_BYTES
    crc_field, length = struct.unpack_from("<HI", data, 0)
    assert length == len(data) and crc_field == crc(data[2:])
    # Section 0 at byte 6: id 0, 16 + 12 x 10 bytes, "SCPECG" reserved; its own entry first.
    assert struct.unpack_from("<HI", data, 8) == (0, 136)
    assert data[16:22] == b"SCPECG"
    assert struct.unpack_from("<HII", data, 22) == (0, 136, 7)
    # Section 1 directly after section 0 (1-based position 143); section 2 absent.
    assert struct.unpack_from("<HII", data, 32) == (1, 16 + 86, 143)
    assert struct.unpack_from("<HII", data, 42) == (2, 0, 0)
    assert struct.unpack_from("<HI", data, 142 + 2) == (1, 16 + 86)


def test_hand_built_record_parses() -> None:
    assert parse_scp(TINY_BYTES) == TINY


def test_encoder_writes_the_hand_built_bytes() -> None:
    assert encode_scp(TINY, huffman=False, differences=0) == TINY_BYTES


def test_decode_gives_readings_waveforms_statements() -> None:
    decoded = decode_scp(TINY_BYTES)
    assert {r.metric: r.value for r in decoded.readings} == {
        MEASUREMENTS[key][0]: value for key, value in TINY.measurements.items()
    }
    assert all(r.device_time == TINY.start_time for r in decoded.readings)
    assert [w.metric for w in decoded.waveforms] == [lead_metric("I"), lead_metric("II")]
    assert decoded.waveforms[0].physical(3) == Decimal(1500)  # 300 units x 5 µV
    assert decoded.waveforms[1].rate_hz == 500.0
    assert [s.text for s in decoded.statements] == ["Sinus rhythm", "ACUTE MI"]


# --- Huffman coding --------------------------------------------------------------------------

DEFAULT_TABLE_ROWS = [
    # EN 1064 default Huffman table, one row per code (MSB first)
    ("0", 0),
    ("100", 1),
    ("101", -1),
    ("1100", 2),
    ("1101", -2),
    ("11100", 3),
    ("11101", -3),
    ("111100", 4),
    ("111101", -4),
    ("1111100", 5),
    ("1111101", -5),
    ("11111100", 6),
    ("11111101", -6),
    ("111111100", 7),
    ("111111101", -7),
    ("1111111100", 8),
    ("1111111101", -8),
    # 1111111110 + 8 bits two's complement
    ("1111111110 00001001", 9),
    ("1111111110 01111111", 127),
    ("1111111110 10000000", -128),
    ("1111111110 11110111", -9),
    # 1111111111 + 16 bits two's complement
    ("1111111111 0000000010000000", 128),
    ("1111111111 0111111111111111", 32767),
    ("1111111111 1000000000000000", -32768),
]


@pytest.mark.parametrize(("bits", "value"), DEFAULT_TABLE_ROWS)
def test_default_table_code(bits: str, value: int) -> None:
    assert decode_huffman(bits_to_bytes(bits), 1) == [value]
    assert encode_huffman([value]) == bits_to_bytes(bits)


def test_default_table_decodes_a_bit_string() -> None:
    bits = (
        "0"  # 0
        "100"  # +1
        "101"  # -1
        "1111111100"  # +8
        "1111111101"  # -8
        "1111111110 11001110"  # 8-bit escape: -50
        "1111111111 0000011111010000"  # 16-bit escape: 2000
    )
    assert decode_huffman(bits_to_bytes(bits), 7) == [0, 1, -1, 8, -8, -50, 2000]


def test_en1064_worked_example() -> None:
    # The standard's example of the default table with second differences (prEN 1064
    # draft, byte 6 as F1 and a final 00 so the bytes match its own bit listing).
    encoded = bytes.fromhex("ff837fe0e6f1536559b65b964b9600")
    expected = [13, 14, 15, 14, 16, 18, 19, 20, 22, 22, 23, 23, 23, 22, 22, 20, 17, 15, 12]
    expected += [8, 6, 3, 1, 0, -2, -2, -3, -3]
    stored = decode_huffman(encoded, 28)
    assert undo_differences(stored, 2) == expected
    assert encode_huffman(to_differences(expected, 2)) == encoded


@pytest.mark.parametrize(
    ("bits", "count", "reason"),
    [
        ("1111111110 0000", 1, "ends inside value 0"),  # escape cut short
        ("0 100 101 111111111", 4, "ends after 3 of 4 values"),  # 16 bits: a prefix cut short
        ("0", 9, "9 values cannot fit in 1 bytes"),
    ],
)
def test_huffman_data_that_ends_early(bits: str, count: int, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_huffman(bits_to_bytes(bits), count)


@pytest.mark.parametrize(
    ("stored", "order", "samples"),
    [
        ([5, -1, 2, 0], 0, [5, -1, 2, 0]),
        # first differences: running sum
        ([5, 1, 1, -3], 1, [5, 6, 7, 4]),
        # second differences: x0, x1 literal, then x[n] = d + 2 x[n-1] - x[n-2]
        ([13, 14, 0, -2, 3], 2, [13, 14, 15, 14, 16]),
        ([100, 90, 0, 0, 5], 2, [100, 90, 80, 70, 65]),
        ([7], 2, [7]),
        ([], 2, []),
    ],
)
def test_undo_differences(stored: list[int], order: int, samples: list[int]) -> None:
    assert undo_differences(stored, order) == samples
    assert to_differences(samples, order) == stored


def huffman_code(prefix: str, value: int, extra_bits: int = 0, switch_to: int = 0) -> bytes:
    """A section 2 code entry: prefix bits, total bits, mode, base value, base code with
    the code's first bit in the least significant bit (the standard's storage)."""
    stored = int(prefix[::-1], 2)
    mode, base = (0, switch_to) if switch_to else (1, value)
    return struct.pack("<BBBhI", len(prefix), len(prefix) + extra_bits, mode, base, stored)


def one_lead_record(values: list[int], huffman_section: bytes | None, encoded: bytes) -> bytes:
    bodies = {
        3: struct.pack("<BBIIB", 1, 0x0C, 1, len(values), 1),
        6: struct.pack("<HHBBH", 1000, 1000, 0, 0, len(encoded)) + encoded,
    }
    if huffman_section is not None:
        bodies[2] = huffman_section
    return build_record(bodies)


def test_custom_huffman_table() -> None:
    table = (
        struct.pack("<HH", 1, 5)  # one table, five codes
        + huffman_code("0", 0)
        + huffman_code("10", 1)  # stored as 01: the bit order matters
        + huffman_code("110", -1)
        + huffman_code("1110", 0, extra_bits=12)  # then the value in 12 bits
        + huffman_code("1111", 100)
    )
    bits = "0 10 110 1111 1110 100000000000 10 1110 011111111111"
    values = [0, 1, -1, 100, -2048, 1, 2047]
    data = one_lead_record(values, table, bits_to_bytes(bits))
    assert parse_scp(data).leads == {"I": tuple(values)}


def test_custom_huffman_tables_switch() -> None:
    # Table 1: 0 -> 0, 10 -> +1, 11 -> use table 2; table 2: 0 -> +5, 10 -> -5, 11 -> table 1.
    tables = (
        struct.pack("<HH", 2, 3)
        + huffman_code("0", 0)
        + huffman_code("10", 1)
        + huffman_code("11", 0, switch_to=2)
        + struct.pack("<H", 3)
        + huffman_code("0", 5)
        + huffman_code("10", -5)
        + huffman_code("11", 0, switch_to=1)
    )
    bits = "0 10 11 0 0 10 11 10 0"
    values = [0, 1, 5, 5, -5, 1, 0]
    assert parse_scp(one_lead_record(values, tables, bits_to_bytes(bits))).leads["I"] == tuple(
        values
    )
    # A switch to a table section 2 does not have.
    bad = struct.pack("<HH", 1, 2) + huffman_code("0", 0) + huffman_code("1", 0, switch_to=3)
    with pytest.raises(DecodeError, match="switch to Huffman table 3, but section 2 has 1"):
        parse_scp(one_lead_record(values, bad, bits_to_bytes("0 1 0")))


# --- 12-lead round trips ---------------------------------------------------------------------


def synthetic_12_lead(samples: int = 5000, seed: int = 7) -> EcgRecord:
    """10 s at 500 Hz: beats every 0.8 s on a slow baseline, with noise; III, aVR, aVL,
    aVF derived from I and II as Einthoven and Goldberger say."""
    rng = random.Random(seed)

    def lead(gain: float, phase: float) -> list[int]:
        out = []
        for n in range(samples):
            value = 40 * math.sin(2 * math.pi * 0.3 * n / 500 + phase)
            beat = n % 400
            if 100 <= beat < 120:  # QRS
                value += gain * math.sin(math.pi * (beat - 100) / 20)
            elif 200 <= beat < 260:  # T wave
                value += gain / 4 * math.sin(math.pi * (beat - 200) / 60)
            out.append(round(value) + rng.randint(-2, 2))
        return out

    i, ii = lead(220, 0.0), lead(300, 1.0)
    leads = {
        "I": tuple(i),
        "II": tuple(ii),
        "III": tuple(b - a for a, b in zip(i, ii, strict=True)),
        "aVR": tuple(-(a + b) // 2 for a, b in zip(i, ii, strict=True)),
        "aVL": tuple(a - b // 2 for a, b in zip(i, ii, strict=True)),
        "aVF": tuple(b - a // 2 for a, b in zip(i, ii, strict=True)),
    }
    for number, gain in enumerate((-150, 120, 400, 500, 380, 250), 1):
        leads[f"V{number}"] = tuple(lead(gain, number / 3))
    return EcgRecord(
        leads=leads,
        rate_hz=Decimal(500),
        uv_per_unit=Decimal("4.88"),
        start_time=dt.datetime(2024, 11, 3, 14, 2, 59),
        measurements={"heart_rate": Decimal(75), "pr": Decimal(164), "qrs_axis": Decimal(12)},
        statements=(Statement("窦性心律"), Statement("Acute MI / STEMI")),
        patient_id="110101199003077777",
        patient_name="张 三",
        device="Acme ECG-1200 SN8841",
    )


TWELVE_LEAD = synthetic_12_lead()


def test_synthetic_record_is_consistent() -> None:
    assert limb_lead_errors(TWELVE_LEAD) == []
    assert TWELVE_LEAD.duration_s == 10


@pytest.mark.parametrize(
    ("huffman", "differences"),
    [(True, 2), (True, 1), (True, 0), (False, 0), (False, 2)],
)
def test_twelve_lead_round_trip(huffman: bool, differences: int) -> None:
    data = encode_scp(TWELVE_LEAD, huffman=huffman, differences=differences)
    assert data[section_at(data, 6) + 20] == differences
    back = parse_scp(data)
    assert back == TWELVE_LEAD
    assert limb_lead_errors(back) == []
    assert len(decode_scp(data).waveforms) == 12


def test_huffman_compresses_and_decodes_fast() -> None:
    data = encode_scp(TWELVE_LEAD)  # default table, second differences
    plain = encode_scp(TWELVE_LEAD, huffman=False, differences=0)
    assert len(data) < len(plain) / 2
    started = time.perf_counter()
    parse_scp(data)
    assert time.perf_counter() - started < 1.0  # 60 000 samples; a Raspberry Pi has the budget


@pytest.mark.parametrize(
    "measurements",
    [
        {},
        {"heart_rate": Decimal(140)},
        {"qrs": Decimal(120), "qt": Decimal(440)},  # no P wave: PR not computed
        {"pr": Decimal(0), "p_axis": Decimal(-90), "t_axis": Decimal(180)},
        {key: Decimal(n * 10) for n, key in enumerate(MEASUREMENTS, 1)},
    ],
)
def test_measurements_round_trip(measurements: dict[str, Decimal]) -> None:
    record = EcgRecord(
        leads={"II": (0, 1, 2)},
        rate_hz=Decimal(1000),
        uv_per_unit=Decimal("2.5"),
        measurements=measurements,
        statements=(Statement("Normal ECG"),),
    )
    back = parse_scp(encode_scp(record))
    assert back.measurements == measurements
    assert back.statements == (Statement("Normal ECG"),)


def test_unknown_lead_codes_are_left_out() -> None:
    bodies = dict(TINY_BODIES)
    bodies[3] = TINY_SECTION3[:-1] + b"\x09"  # lead II's code -> 9, not one of the twelve
    record = parse_scp(build_record(bodies))
    assert dict(record.leads) == {"I": TINY.leads["I"]}


@pytest.mark.parametrize(
    ("interval", "rate"),
    [
        (1000, Decimal(1000)),
        (2000, Decimal(500)),
        (4000, Decimal(250)),
        (1667, Decimal(600)),  # 1667 µs is nominally 600 Hz
        (3333, Decimal(300)),
        (1500, Decimal(10**6) / Decimal(1500)),  # 666.67 Hz: no whole rate rounds to 1500
    ],
)
def test_rate_from_interval(interval: int, rate: Decimal) -> None:
    assert rate_from_interval(interval) == rate


def test_600_hz_round_trips_through_1667_us() -> None:
    record = EcgRecord(leads={"I": (1, 2, 3)}, rate_hz=Decimal(600), uv_per_unit=Decimal(1))
    data = encode_scp(record)
    assert struct.unpack_from("<H", data, section_at(data, 6) + 18)[0] == 1667
    assert parse_scp(data).rate_hz == 600


def test_section1_is_read_leniently() -> None:
    device = bytearray(TINY_DEVICE_TAG)
    device[3 + 16] = 0x27  # language support code: GB 2312
    body = (
        b"\x02\x05\x00"
        + "Jos\u00e9".encode("latin-1")
        + b"\0"  # neither GB 2312 nor UTF-8
        + b"\x00\x05\x00"
        + "王芳".encode("gb2312")
        + b"\0"
        + bytes(device)
        + bytes.fromhex("19 0400 e807 0d 01")  # month 13: no start time
        + bytes.fromhex("1a 0300 08 1e 05")
        + bytes.fromhex("1e ff00 41 42")  # free text claiming 255 bytes: the list ends here
    )
    record = parse_scp(build_record({**TINY_BODIES, 1: body}))
    assert record.patient_name == "王芳"
    assert record.patient_id == "José"  # Latin-1, the last resort
    assert record.start_time is None
    assert record.device == "Acme"
    assert record.leads == TINY.leads


@pytest.mark.parametrize(
    ("tags", "sex", "age"),
    [
        # EN 1064 section 1: tag 4 age = uint16 + unit (1 years, 2 months, 3 weeks,
        # 4 days, 5 hours), tag 5 date of birth (year uint16, month, day), tag 8 sex
        # (0 not known, 1 male, 2 female, 9 unspecified).
        ("04 0300 3c00 01  08 0100 01", "M", (60, "MDC_DIM_YR")),
        ("04 0300 0a00 04  08 0100 02", "F", (10, "MDC_DIM_DAY")),
        ("04 0300 0300 03  08 0100 09", None, (21, "MDC_DIM_DAY")),
        ("04 0300 1200 02  08 0100 00", None, (1, "MDC_DIM_YR")),  # 18 months
        ("04 0300 0600 02", None, None),  # 6 months: no exact unit
        ("04 0300 0700 05", None, (7, "MDC_DIM_HR")),
        ("04 0300 3c00 00", None, None),  # unit unspecified
        ("04 0300 c800 01", None, None),  # 200 years
        ("04 0200 3c00", None, None),  # too short
        ("05 0400 b207 0c 03", None, (55, "MDC_DIM_YR")),  # born 1970-12-03
        ("05 0400 e907 0b 03", None, (30, "MDC_DIM_DAY")),  # born 2025-11-03
        ("05 0400 ea07 0c 03", None, None),  # born 2026-12-03, after the recording
        ("05 0400 b207 0d 03", None, None),  # month 13
        ("08 0200 0100", None, None),  # sex tag of two bytes
    ],
)
def test_section1_sex_and_age(tags: str, sex: str | None, age: tuple[int, str] | None) -> None:
    acquired = "19 0400 e907 0c 03  1a 0300 10 2b 00"  # 2025-12-03 16:43:00
    body = bytes.fromhex(tags + acquired)
    record = parse_scp(build_record({**TINY_BODIES, 1: body + TINY_DEVICE_TAG}))
    assert record.start_time == dt.datetime(2025, 12, 3, 16, 43)
    assert record.patient_sex == sex
    assert (
        None if record.patient_age is None else (record.patient_age, record.patient_age_unit)
    ) == age


# --- refusals ---------------------------------------------------------------------------------


def with_record_crc(data: bytes | bytearray) -> bytes:
    out = bytearray(data)
    out[0:2] = struct.pack("<H", crc(bytes(out[2:])))
    return bytes(out)


def flipped(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0xFF
    return bytes(out)


def with_pointer(data: bytes, sid: int, length: int = 0, index: int = 0) -> bytes:
    """Section `sid`'s pointer entry changed; section 0's and the record's CRCs redone."""
    out = bytearray(data)
    for at in range(22, 142, 10):
        if struct.unpack_from("<H", out, at)[0] == sid:
            old_length, old_index = struct.unpack_from("<II", out, at + 2)
            struct.pack_into("<II", out, at + 2, length or old_length, index or old_index)
    out[6:8] = struct.pack("<H", crc(bytes(out[8:142])))
    return with_record_crc(out)


def without(sid: int) -> bytes:
    return build_record({k: v for k, v in TINY_BODIES.items() if k != sid})


def tiny_with(sid: int, body: bytes) -> bytes:
    return build_record({**TINY_BODIES, sid: body})


S6 = section_at(TINY_BYTES, 6)

REFUSALS = [
    # record header
    (TINY_BYTES[:20], "too short", None),
    (flipped(TINY_BYTES, 0), "record CRC", 0),
    (TINY_BYTES + b"\0\0", "record length says", 2),
    # a sample changed and the record CRC made right: section 6's CRC catches it
    (with_record_crc(flipped(TINY_BYTES, S6 + 30)), "section 6: CRC", S6),
    (with_pointer(TINY_BYTES, 8, length=4000), "section 8 .* past the end", None),
    (with_pointer(TINY_BYTES, 7, index=S6 + 1), "header at byte .* says section 6", S6 + 2),
    (without(3), "no section 3", None),
    (without(6), "no section 6", None),
    (tiny_with(3, b"\x02\x15" + TINY_SECTION3[2:]), "reference-beat subtraction", None),
    (tiny_with(6, TINY_SECTION6[:5] + b"\x01" + TINY_SECTION6[6:]), "bimodal compression", None),
    (tiny_with(6, TINY_SECTION6[:4] + b"\x03" + TINY_SECTION6[5:]), "difference encoding 3", None),
    (
        tiny_with(6, TINY_SECTION6[:8] + b"\x40\x00" + TINY_SECTION6[10:]),
        "lead II has 64 bytes but only 10 remain",
        None,
    ),
    (
        tiny_with(6, TINY_SECTION6[:6] + b"\x08\x00" + TINY_SECTION6[8:]),
        "lead I: 5 int16 samples need 10 bytes, it has 8",
        None,
    ),
    (
        build_record(
            {
                **TINY_BODIES,
                2: struct.pack("<H", 19999),  # default table
                6: TINY_SECTION6[:6] + b"\x01\x00\x01\x00\xff\x00",  # 1 byte per lead
            }
        ),
        "lead I: ends after 0 of 5 values",
        None,
    ),
    (
        tiny_with(3, TINY_SECTION3[:10] + b"\x0a" + TINY_SECTION3[11:19] + b"\x0b"),
        r"none of the lead codes \(10, 11\)",
        None,
    ),
    (tiny_with(3, TINY_SECTION3[:-1] + b"\x01"), "lead I is defined twice", None),
    (tiny_with(8, TINY_SECTION8[:-4]), "statement 2 runs past the end", None),
    (tiny_with(2, struct.pack("<H", 0)), "holds no table", None),
]


@pytest.mark.parametrize(("data", "reason", "offset"), REFUSALS)
def test_refusals(data: bytes, reason: str, offset: int | None) -> None:
    with pytest.raises(DecodeError, match=reason) as caught:
        parse_scp(data)
    assert "\n" not in str(caught.value)
    if offset is not None:
        assert caught.value.offset == offset


class RecordChange(TypedDict, total=False):
    """The EcgRecord fields a refusal case changes (dataclasses.replace checks each)."""

    leads: Mapping[str, tuple[int, ...]]
    rate_hz: Decimal
    uv_per_unit: Decimal
    start_time: dt.datetime | None
    measurements: Mapping[str, Decimal]
    offset_uv: Decimal


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"uv_per_unit": Decimal("0.0005")}, "whole number of nV"),
        ({"uv_per_unit": Decimal("4.8805")}, "whole number of nV"),
        ({"rate_hz": Decimal("300.5")}, "whole number of µs"),
        ({"leads": {"I": (0, 32767, -32768)}}, "second difference -98302 at sample 2"),
        ({"leads": {"V7": (1,)}}, "not one of the twelve"),
        ({"measurements": {"heart_rate": Decimal("72.5")}}, "whole ms"),
        ({"start_time": dt.datetime(2024, 1, 1, 0, 0, 0, 500)}, "whole seconds"),
        ({"offset_uv": Decimal(10)}, "no amplitude offset"),
    ],
)
def test_encoder_refuses_what_scp_cannot_hold(change: RecordChange, reason: str) -> None:
    record = EcgRecord(leads={"I": (0, 1)}, rate_hz=Decimal(500), uv_per_unit=Decimal(5))
    with pytest.raises(ValueError, match=reason):
        encode_scp(dataclasses.replace(record, **change))


def test_first_differences_fit_where_second_do_not() -> None:
    record = EcgRecord(
        leads={"I": (0, 16000, -16000)}, rate_hz=Decimal(500), uv_per_unit=Decimal(5)
    )
    with pytest.raises(ValueError, match="second difference"):
        encode_scp(record)
    assert parse_scp(encode_scp(record, differences=1)) == record


# --- fuzzing ----------------------------------------------------------------------------------

FUZZ_BASES = [
    TINY_BYTES,
    encode_scp(TINY, differences=0),  # default Huffman table
    encode_scp(synthetic_12_lead(60, seed=3), differences=1),
]


def parses_or_refuses(data: bytes) -> None:
    try:
        parse_scp(data)
    except DecodeError as refused:
        assert refused.reason and "\n" not in str(refused)


@given(st.binary(max_size=600))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    parses_or_refuses(data)
    parses_or_refuses(refix(data))


@given(
    st.sampled_from(FUZZ_BASES),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_fuzz_mutated_records(base: bytes, changes: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(base)
    for at, value in changes:
        data[at % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    parses_or_refuses(bytes(data))
    parses_or_refuses(refix(data))


@st.composite
def short_records(draw: st.DrawFn) -> tuple[EcgRecord, bool, int]:
    names = draw(st.sets(st.sampled_from(STANDARD_LEADS), min_size=1))
    leads = {}
    for name in sorted(names):
        length = draw(st.integers(1, 300))
        # A walk from |x| <= 2000 with steps <= 100 stays in int16 over 300 samples and
        # keeps second differences within 200.
        start = draw(st.integers(-2000, 2000))
        steps = draw(st.lists(st.integers(-100, 100), min_size=length - 1, max_size=length - 1))
        leads[name] = tuple(undo_differences([start, *steps], 1))
    measurement_values = {
        "heart_rate": st.integers(20, 300),
        "rr": st.integers(200, 3000),
        "pr": st.integers(0, 400),
        "qrs": st.integers(20, 300),
        "qt": st.integers(100, 800),
        "qtc": st.integers(100, 800),
        "p_axis": st.integers(-180, 180),
        "qrs_axis": st.integers(-180, 180),
        "t_axis": st.integers(-180, 180),
    }
    measurements = draw(st.fixed_dictionaries({}, optional=measurement_values))
    text = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=40)
    # An age comes with its unit, or neither is given.
    patient_age, patient_age_unit = draw(
        st.just((None, None))
        | st.tuples(st.integers(0, 150), st.sampled_from(["MDC_DIM_YR", "MDC_DIM_DAY"]))
        | st.tuples(st.integers(0, 9000), st.just("MDC_DIM_HR"))
    )
    record = EcgRecord(
        leads=leads,
        rate_hz=Decimal(draw(st.sampled_from([250, 500, 600, 1000, 2000]))),
        uv_per_unit=draw(
            st.sampled_from([Decimal(1), Decimal("2.5"), Decimal("4.88"), Decimal(5)])
        ),
        start_time=draw(
            st.one_of(
                st.none(),
                st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2100, 1, 1)).map(
                    lambda t: t.replace(microsecond=0)
                ),
            )
        ),
        measurements={key: Decimal(value) for key, value in measurements.items()},
        statements=tuple(Statement(t) for t in draw(st.lists(text, max_size=4))),
        patient_id=draw(
            st.one_of(st.none(), st.text("0123456789ABCXYZ-", min_size=1, max_size=20))
        ),
        patient_sex=draw(st.sampled_from([None, "M", "F"])),
        patient_age=patient_age,
        patient_age_unit=patient_age_unit,
    )
    return record, draw(st.booleans()), draw(st.sampled_from([0, 1, 2]))


@given(short_records())
def test_round_trip_property(case: tuple[EcgRecord, bool, int]) -> None:
    record, huffman, differences = case
    assert parse_scp(encode_scp(record, huffman=huffman, differences=differences)) == record
