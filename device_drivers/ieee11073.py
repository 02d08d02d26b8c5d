"""IEEE 11073-20601 number and time codecs used by the Bluetooth SIG health profiles.

The BLE health profiles carry measured values as 11073 "medical floats" (SFLOAT, FLOAT),
not IEEE 754 (IEEE 11073-20601 SFLOAT-Type / FLOAT-Type, as the Bluetooth GATT Specification
Supplement uses them; docs/protocols/ieee11073-numbers.md). Values stay `Decimal` (mantissa
× 10^exponent, built from the digits so nothing is rounded): a cuff's 18.9 must reach the
store as 18.9, not 18.899999. Pure functions: no I/O, no clocks.

Special values (NaN, NRes, ±INFINITY, reserved) are whole words with exponent 0, as IEEE
11073-20601 reserves them (tables in docs/protocols/ieee11073-numbers.md); they decode to no
value and a flag naming the special. The encoders never produce a special mantissa at any
exponent, so what they write decodes the same under a stricter reading that checks the
mantissa only.
"""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal

from edge_agent.model import DecodeError

# IEEE 11073-20601: reserved SFLOAT words.
SFLOAT_NAN = 0x07FF
SFLOAT_NRES = 0x0800
SFLOAT_POS_INF = 0x07FE
SFLOAT_NEG_INF = 0x0802
SFLOAT_RESERVED = 0x0801

# IEEE 11073-20601: reserved FLOAT words.
FLOAT_NAN = 0x007FFFFF
FLOAT_NRES = 0x00800000
FLOAT_POS_INF = 0x007FFFFE
FLOAT_NEG_INF = 0x00800002
FLOAT_RESERVED = 0x00800001

FLAG_NAN = "nan"
FLAG_NRES = "nres"
FLAG_POS_INF = "+inf"
FLAG_NEG_INF = "-inf"
FLAG_RESERVED = "reserved"

SPECIAL_FLAGS = frozenset({FLAG_NAN, FLAG_NRES, FLAG_POS_INF, FLAG_NEG_INF, FLAG_RESERVED})

_SFLOAT_SPECIALS: dict[int, str] = {
    SFLOAT_NAN: FLAG_NAN,
    SFLOAT_NRES: FLAG_NRES,
    SFLOAT_POS_INF: FLAG_POS_INF,
    SFLOAT_NEG_INF: FLAG_NEG_INF,
    SFLOAT_RESERVED: FLAG_RESERVED,
}
_FLOAT_SPECIALS: dict[int, str] = {
    FLOAT_NAN: FLAG_NAN,
    FLOAT_NRES: FLAG_NRES,
    FLOAT_POS_INF: FLAG_POS_INF,
    FLOAT_NEG_INF: FLAG_NEG_INF,
    FLOAT_RESERVED: FLAG_RESERVED,
}

# The special mantissas are 2^(n-1)-2 .. 2^(n-1)-1 and -2^(n-1) .. -2^(n-1)+2; an
# encoder keeps clear of them so its output never reads as a special.
_SFLOAT_MANTISSA_MAX = 2045
_SFLOAT_EXP_MIN, _SFLOAT_EXP_MAX = -8, 7
_FLOAT_MANTISSA_MAX = (1 << 23) - 3
_FLOAT_EXP_MIN, _FLOAT_EXP_MAX = -128, 127

DATE_TIME_SIZE = 7


def _signed(value: int, bits: int) -> int:
    """Two's complement of the low `bits` bits (11073 SFLOAT/FLOAT: both fields are signed)."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def _exact(mantissa: int, exponent: int) -> Decimal:
    if exponent >= 0:
        # 12 × 10^1 is stored and sent as "120", never as "1.2E+2".
        return Decimal(mantissa * 10**exponent)
    # Built from the digit tuple: exact whatever the decimal context's precision.
    digits = tuple(int(d) for d in str(abs(mantissa)))
    return Decimal((1 if mantissa < 0 else 0, digits, exponent))


def decode_sfloat(raw: int) -> tuple[Decimal | None, str | None]:
    """A 16-bit SFLOAT word (already assembled little-endian) -> (value, special flag)."""
    raw &= 0xFFFF
    special = _SFLOAT_SPECIALS.get(raw)
    if special is not None:
        return None, special
    return _exact(_signed(raw, 12), _signed(raw >> 12, 4)), None


def decode_float32(raw: int) -> tuple[Decimal | None, str | None]:
    """A 32-bit FLOAT word (already assembled little-endian) -> (value, special flag)."""
    raw &= 0xFFFFFFFF
    special = _FLOAT_SPECIALS.get(raw)
    if special is not None:
        return None, special
    return _exact(_signed(raw, 24), _signed(raw >> 24, 8)), None


def uint_at(data: bytes, offset: int, size: int, what: str) -> int:
    """The little-endian unsigned integer of `size` bytes at `offset`; short: DecodeError."""
    if offset + size > len(data):
        unit = "byte" if size == 1 else "bytes"
        raise DecodeError(
            f"truncated: {what} needs {size} {unit}, frame has {max(len(data) - offset, 0)}",
            offset,
        )
    return int.from_bytes(data[offset : offset + size], "little")


def sfloat_at(data: bytes, offset: int, what: str = "SFLOAT") -> tuple[Decimal | None, str | None]:
    """The SFLOAT at `offset` of a frame; a short frame is a DecodeError at that offset."""
    if offset + 2 > len(data):
        raise DecodeError(
            f"truncated: {what} needs 2 bytes, frame has {max(len(data) - offset, 0)}", offset
        )
    return decode_sfloat(int.from_bytes(data[offset : offset + 2], "little"))


def float_at(data: bytes, offset: int, what: str = "FLOAT") -> tuple[Decimal | None, str | None]:
    """The FLOAT at `offset` of a frame; a short frame is a DecodeError at that offset."""
    if offset + 4 > len(data):
        raise DecodeError(
            f"truncated: {what} needs 4 bytes, frame has {max(len(data) - offset, 0)}", offset
        )
    return decode_float32(int.from_bytes(data[offset : offset + 4], "little"))


def _mantissa_exponent(
    value: Decimal, mantissa_max: int, exp_min: int, exp_max: int
) -> tuple[int, int]:
    """The (mantissa, exponent) that represents `value` exactly, or ValueError."""
    sign, digit_tuple, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"{value} is not finite")
    mantissa = int("".join(map(str, digit_tuple)) or "0")
    if mantissa == 0:
        return 0, 0
    # Keep the sender's resolution (120.0 stays 1200e-1) unless it does not fit: only
    # trailing zeros are traded for exponent, never a significant digit.
    while exponent > exp_max and mantissa * 10 <= mantissa_max:
        mantissa *= 10
        exponent -= 1
    while mantissa % 10 == 0 and (mantissa > mantissa_max or exponent < exp_min):
        mantissa //= 10
        exponent += 1
    if mantissa > mantissa_max or not exp_min <= exponent <= exp_max:
        raise ValueError(f"{value} has no exact representation in this 11073 float")
    return (-mantissa if sign else mantissa), exponent


def encode_sfloat(value: Decimal | None) -> int:
    """A value -> SFLOAT word. None or Decimal NaN -> NaN; ±Infinity -> ±INF.

    Raises ValueError when the value needs more than 4 significant digits or an exponent
    outside -8..7: rounding silently would change a measurement.
    """
    if value is None or value.is_nan():
        return SFLOAT_NAN
    if value.is_infinite():
        return SFLOAT_NEG_INF if value < 0 else SFLOAT_POS_INF
    mantissa, exponent = _mantissa_exponent(
        value, _SFLOAT_MANTISSA_MAX, _SFLOAT_EXP_MIN, _SFLOAT_EXP_MAX
    )
    return ((exponent & 0xF) << 12) | (mantissa & 0x0FFF)


def encode_float(value: Decimal | None) -> int:
    """A value -> FLOAT word. None or Decimal NaN -> NaN; ±Infinity -> ±INF."""
    if value is None or value.is_nan():
        return FLOAT_NAN
    if value.is_infinite():
        return FLOAT_NEG_INF if value < 0 else FLOAT_POS_INF
    mantissa, exponent = _mantissa_exponent(
        value, _FLOAT_MANTISSA_MAX, _FLOAT_EXP_MIN, _FLOAT_EXP_MAX
    )
    return ((exponent & 0xFF) << 24) | (mantissa & 0x00FFFFFF)


def sfloat_bytes(value: Decimal | None) -> bytes:
    return encode_sfloat(value).to_bytes(2, "little")


def float_bytes(value: Decimal | None) -> bytes:
    return encode_float(value).to_bytes(4, "little")


def decode_date_time(data: bytes, offset: int = 0) -> dt.datetime | None:
    """GSS Date Time (7 bytes at `offset`) -> naive device wall-clock time.

    GSS "Date Time": year 0, month 0 or day 0 means the device does not know the date;
    the reading is kept and its device time is unknown (None). A field outside its range
    makes the frame invalid: DecodeError at the offending byte.
    """
    if offset + DATE_TIME_SIZE > len(data):
        raise DecodeError(
            f"truncated: date time needs {DATE_TIME_SIZE} bytes, frame has"
            f" {max(len(data) - offset, 0)}",
            offset,
        )
    year, month, day, hour, minute, second = struct.unpack_from("<HBBBBB", data, offset)
    checks = (
        (year == 0 or 1582 <= year <= 9999, 0, f"year {year} outside 1582..9999"),
        (month <= 12, 2, f"month {month} outside 1..12"),
        (day <= 31, 3, f"day {day} outside 1..31"),
        (hour <= 23, 4, f"hour {hour} outside 0..23"),
        (minute <= 59, 5, f"minute {minute} outside 0..59"),
        (second <= 59, 6, f"second {second} outside 0..59"),
    )
    for ok, field_offset, reason in checks:
        if not ok:
            raise DecodeError(f"date time: {reason}", offset + field_offset)
    if year == 0 or month == 0 or day == 0:
        return None
    try:
        return dt.datetime(year, month, day, hour, minute, second)  # the device wall clock: naive
    except ValueError:
        # Day 31 in a 30-day month, 29 February in a common year.
        raise DecodeError(
            f"date time: no day {day} in {year:04d}-{month:02d}", offset + 3
        ) from None


def encode_date_time(when: dt.datetime | None) -> bytes:
    """Naive device time -> 7 bytes; None -> all zero ("not known" in GSS "Date Time")."""
    if when is None:
        return bytes(DATE_TIME_SIZE)
    return struct.pack(
        "<HBBBBB", when.year, when.month, when.day, when.hour, when.minute, when.second
    )
