"""IEEE 11073-20601 SFLOAT / FLOAT / Date Time codecs.

Comments name the type a vector exercises: SFLOAT and FLOAT as IEEE 11073-20601 defines
them, Date Time as the Bluetooth GATT Specification Supplement does; the worked examples
and tables are in docs/protocols/ieee11073-numbers.md.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.ieee11073 import (
    decode_date_time,
    decode_float32,
    decode_sfloat,
    encode_date_time,
    encode_float,
    encode_sfloat,
    float_at,
    sfloat_at,
)
from edge_agent.model import DecodeError

SFLOAT_VECTORS = [
    # SFLOAT worked example: 2C F1 -> exponent -1, mantissa 300
    ("2cf1", Decimal("30.0"), None),
    # SFLOAT reserved words: the five reserved words (exponent 0)
    ("ff07", None, "nan"),
    ("0008", None, "nres"),
    ("fe07", None, "+inf"),
    ("0208", None, "-inf"),
    ("0108", None, "reserved"),
    # SFLOAT: 12-bit mantissa, exponent 0: 120 mmHg as cuffs commonly send it
    ("7800", Decimal("120"), None),
    # SFLOAT: negative mantissa (two's complement 0xFFF = -1), exponent 0
    ("ff0f", Decimal("-1"), None),
    # SFLOAT: smallest exponent -8, mantissa 1
    ("0180", Decimal("1E-8"), None),
    # SFLOAT: largest exponent +7 -> integer form, not 1E+7
    ("0170", Decimal("10000000"), None),
    # SFLOAT: exponent -2 (0xE), mantissa 0x7FD = 2045 -> 20.45
    ("fde7", Decimal("20.45"), None),
    # SFLOAT: exponent -1, mantissa -2048+... 0x800 with exponent != 0 is a number, not NRes
    ("00f8", Decimal("-204.8"), None),
    # SFLOAT: exponent 1, mantissa 12 -> 120 in integer form
    ("0c10", Decimal("120"), None),
    # SFLOAT note: 18.9 stays 18.9 (mantissa 189, exponent -1), no binary-float noise
    ("bdf0", Decimal("18.9"), None),
]


@pytest.mark.parametrize(("hex_le", "value", "flag"), SFLOAT_VECTORS)
def test_decode_sfloat(hex_le: str, value: Decimal | None, flag: str | None) -> None:
    got_value, got_flag = decode_sfloat(int.from_bytes(bytes.fromhex(hex_le), "little"))
    assert got_flag == flag
    assert got_value == value
    if value is not None:
        assert str(got_value) == str(value)  # the exact decimal text, not just equal


FLOAT_VECTORS = [
    # FLOAT worked example: bytes 72 01 00 FF -> 370 × 10^-1
    ("720100ff", Decimal("37.0"), None),
    # FLOAT: reserved words
    ("ffff7f00", None, "nan"),
    ("00008000", None, "nres"),
    ("feff7f00", None, "+inf"),
    ("02008000", None, "-inf"),
    ("01008000", None, "reserved"),
    # FLOAT: 24-bit negative mantissa -1, exponent -2
    ("fffffffe", Decimal("-0.01"), None),
    # FLOAT: exponent -4 (0xFC), mantissa 54 -> 0.0054 (glucose in kg/L units looks like this)
    ("360000fc", Decimal("0.0054"), None),
    # FLOAT: exponent +2 -> integer form
    ("05000002", Decimal("500"), None),
]


@pytest.mark.parametrize(("hex_le", "value", "flag"), FLOAT_VECTORS)
def test_decode_float32(hex_le: str, value: Decimal | None, flag: str | None) -> None:
    got_value, got_flag = decode_float32(int.from_bytes(bytes.fromhex(hex_le), "little"))
    assert (got_value, got_flag) == (value, flag)


ENCODE_SFLOAT = [
    # resolution kept: 120.0 -> mantissa 1200, exponent -1 (SFLOAT note: same quantity,
    # different encodings; we keep the sender's)
    (Decimal("120.0"), 0xF4B0),
    (Decimal("120"), 0x0078),
    # too many digits for 12 bits: trailing zeros traded for exponent
    (Decimal("3000"), 0x112C),
    (Decimal("-1"), 0x0FFF),
    # specials (SFLOAT reserved words)
    (None, 0x07FF),
    (Decimal("NaN"), 0x07FF),
    (Decimal("Infinity"), 0x07FE),
    (Decimal("-Infinity"), 0x0802),
]


@pytest.mark.parametrize(("value", "word"), ENCODE_SFLOAT)
def test_encode_sfloat(value: Decimal | None, word: int) -> None:
    assert encode_sfloat(value) == word


@pytest.mark.parametrize(
    "value",
    [
        Decimal("20.47"),  # mantissa 2047 is a special pattern's mantissa (SFLOAT)
        Decimal("12345"),  # five significant digits do not fit 12 bits
        Decimal("1E-9"),  # exponent below -8
        Decimal("1.5E+11"),  # 15 × 10^10: exponent stays above 7 within 12 bits
    ],
)
def test_encode_sfloat_refuses_to_round(value: Decimal) -> None:
    with pytest.raises(ValueError, match="no exact representation"):
        encode_sfloat(value)


def test_encode_float_specials_and_value() -> None:
    # FLOAT reserved words and worked example
    assert encode_float(None) == 0x007FFFFF
    assert encode_float(Decimal("Infinity")) == 0x007FFFFE
    assert encode_float(Decimal("-Infinity")) == 0x00800002
    assert encode_float(Decimal("37.0")).to_bytes(4, "little") == bytes.fromhex("720100ff")


def test_sfloat_at_reports_truncation_offset() -> None:
    with pytest.raises(DecodeError) as info:
        sfloat_at(b"\x00\x78", 1, "systolic")
    assert info.value.offset == 1 and "systolic" in info.value.reason
    with pytest.raises(DecodeError) as info:
        float_at(b"\x00\x00\x00", 0)
    assert info.value.offset == 0


_sfloat_mantissa = st.integers(-2045, 2045)
_float_mantissa = st.integers(-(2**23) + 3, 2**23 - 3)


@given(_sfloat_mantissa, st.integers(-8, 7))
def test_sfloat_round_trip(mantissa: int, exponent: int) -> None:
    value = Decimal(mantissa).scaleb(exponent)
    got, flag = decode_sfloat(encode_sfloat(value))
    assert flag is None and got == value


@given(st.integers(0, 0xFFFF))
def test_sfloat_every_word_decodes(word: int) -> None:
    value, flag = decode_sfloat(word)
    assert (value is None) == (flag is not None)
    # The encoder keeps clear of the special mantissas at every exponent (module doc).
    if value is not None and abs(((word & 0xFFF) ^ 0x800) - 0x800) <= 2045:
        # Re-encoding gives a word with the same value (maybe a different encoding).
        assert decode_sfloat(encode_sfloat(value))[0] == value


@given(_float_mantissa, st.integers(-128, 127))
def test_float_round_trip(mantissa: int, exponent: int) -> None:
    value = Decimal(mantissa).scaleb(exponent)
    got, flag = decode_float32(encode_float(value))
    assert flag is None and got == value


DATE_TIME_VECTORS = [
    # GSS Date Time: 2023-11-22 10:00:00, year little-endian e7 07
    ("e7070b160a0000", dt.datetime(2023, 11, 22, 10, 0, 0)),
    # Date Time: year 0 = not known -> device time unknown
    ("00000b160a0000", None),
    # Date Time: month 0 = not known
    ("e707001600000a", None),
    # Date Time: day 0 = not known
    ("e7070b00173b3b", None),
    # Date Time: 2024 is a leap year: 29 February exists
    ("e807021d173b3b", dt.datetime(2024, 2, 29, 23, 59, 59)),
]


@pytest.mark.parametrize(("hex_bytes", "expected"), DATE_TIME_VECTORS)
def test_decode_date_time(hex_bytes: str, expected: dt.datetime | None) -> None:
    assert decode_date_time(bytes.fromhex(hex_bytes)) == expected


@pytest.mark.parametrize(
    ("hex_bytes", "offset"),
    [
        ("e7070d160a0000", 2),  # Date Time: month 13 invalidates the frame
        ("e7070b200a0000", 3),  # Date Time: day 32
        ("e7070b16180000", 4),  # Date Time: hour 24
        ("e7070b160a3c00", 5),  # Date Time: minute 60
        ("e7070b160a003c", 6),  # Date Time: second 60
        ("0a000b160a0000", 0),  # Date Time: year 10 is below 1582
        ("e707021e000000", 3),  # Date Time: 30 February does not exist
        ("e7070b160a00", 0),  # 6 bytes: truncated
    ],
)
def test_decode_date_time_rejects(hex_bytes: str, offset: int) -> None:
    with pytest.raises(DecodeError) as info:
        decode_date_time(bytes.fromhex(hex_bytes))
    assert info.value.offset == offset


def test_decode_date_time_at_offset() -> None:
    frame = b"\x02\x00\x00" + bytes.fromhex("e7070b160a0000")
    assert decode_date_time(frame, 3) == dt.datetime(2023, 11, 22, 10, 0)
    with pytest.raises(DecodeError) as info:
        decode_date_time(frame[:8], 3)
    assert info.value.offset == 3


@given(st.datetimes(min_value=dt.datetime(1582, 1, 1), max_value=dt.datetime(9999, 12, 31)))
def test_date_time_round_trip(when: dt.datetime) -> None:
    when = when.replace(microsecond=0)
    assert decode_date_time(encode_date_time(when)) == when


def test_encode_unknown_date_time() -> None:
    assert encode_date_time(None) == bytes(7)
    assert decode_date_time(encode_date_time(None)) is None
