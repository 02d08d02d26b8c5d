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
from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class _Format:
    """One 11073 float type: a word of `size` bytes, a signed mantissa in its low
    `mantissa_bits`, a signed exponent in the rest, and its reserved special words."""

    size: int
    mantissa_bits: int
    specials: dict[int, str]

    @property
    def exponent_bits(self) -> int:
        return 8 * self.size - self.mantissa_bits

    @property
    def mantissa_max(self) -> int:
        # The special mantissas are 2^(n-1)-2 .. 2^(n-1)-1 and -2^(n-1) .. -2^(n-1)+2; an
        # encoder keeps clear of them so its output never reads as a special.
        return (1 << (self.mantissa_bits - 1)) - 3

    @property
    def exp_min(self) -> int:
        return -(1 << (self.exponent_bits - 1))

    @property
    def exp_max(self) -> int:
        return (1 << (self.exponent_bits - 1)) - 1

    def word(self, flag: str) -> int:
        """The reserved word of a special value (FLAG_NAN, FLAG_POS_INF ...)."""
        return next(word for word, name in self.specials.items() if name == flag)


_SFLOAT = _Format(size=2, mantissa_bits=12, specials=_SFLOAT_SPECIALS)  # exponent -8..7
_FLOAT = _Format(size=4, mantissa_bits=24, specials=_FLOAT_SPECIALS)  # exponent -128..127

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


def _decode(raw: int, form: _Format) -> tuple[Decimal | None, str | None]:
    raw &= (1 << (8 * form.size)) - 1
    special = form.specials.get(raw)
    if special is not None:
        return None, special
    bits = form.mantissa_bits
    return _exact(_signed(raw, bits), _signed(raw >> bits, form.exponent_bits)), None


def decode_sfloat(raw: int) -> tuple[Decimal | None, str | None]:
    """A 16-bit SFLOAT word (already assembled little-endian) -> (value, special flag)."""
    return _decode(raw, _SFLOAT)


def decode_float32(raw: int) -> tuple[Decimal | None, str | None]:
    """A 32-bit FLOAT word (already assembled little-endian) -> (value, special flag)."""
    return _decode(raw, _FLOAT)


def value_and_flags(
    field: tuple[Decimal | None, str | None], lead: Iterable[str] = ()
) -> tuple[Decimal | None, list[str]]:
    """A decoded SFLOAT/FLOAT as a reading takes it: the value (None for a special), and
    the flags `lead`, then the special's own flag ("nan", "nres", ...) when it is one."""
    value, special = field
    flags = list(lead)
    if special is not None:
        flags.append(special)
    return value, flags


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
    return decode_sfloat(uint_at(data, offset, _SFLOAT.size, what))


def float_at(data: bytes, offset: int, what: str = "FLOAT") -> tuple[Decimal | None, str | None]:
    """The FLOAT at `offset` of a frame; a short frame is a DecodeError at that offset."""
    return decode_float32(uint_at(data, offset, _FLOAT.size, what))


def _mantissa_exponent(value: Decimal, form: _Format) -> tuple[int, int]:
    """The (mantissa, exponent) that represents `value` exactly, or ValueError."""
    sign, digit_tuple, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"{value} is not finite")
    mantissa = int("".join(map(str, digit_tuple)) or "0")
    if mantissa == 0:
        return 0, 0
    # Keep the sender's resolution (120.0 stays 1200e-1) unless it does not fit: only
    # trailing zeros are traded for exponent, never a significant digit.
    while exponent > form.exp_max and mantissa * 10 <= form.mantissa_max:
        mantissa *= 10
        exponent -= 1
    while mantissa % 10 == 0 and (mantissa > form.mantissa_max or exponent < form.exp_min):
        mantissa //= 10
        exponent += 1
    if mantissa > form.mantissa_max or not form.exp_min <= exponent <= form.exp_max:
        raise ValueError(f"{value} has no exact representation in this 11073 float")
    return (-mantissa if sign else mantissa), exponent


def _encode(value: Decimal | None, form: _Format) -> int:
    if value is None or value.is_nan():
        return form.word(FLAG_NAN)
    if value.is_infinite():
        return form.word(FLAG_NEG_INF if value < 0 else FLAG_POS_INF)
    mantissa, exponent = _mantissa_exponent(value, form)
    bits = form.mantissa_bits
    exponent_mask = (1 << form.exponent_bits) - 1
    return ((exponent & exponent_mask) << bits) | (mantissa & ((1 << bits) - 1))


def encode_sfloat(value: Decimal | None) -> int:
    """A value -> SFLOAT word. None or Decimal NaN -> NaN; ±Infinity -> ±INF.

    Raises ValueError when the value needs more than 4 significant digits or an exponent
    outside -8..7: rounding silently would change a measurement.
    """
    return _encode(value, _SFLOAT)


def encode_float(value: Decimal | None) -> int:
    """A value -> FLOAT word. None or Decimal NaN -> NaN; ±Infinity -> ±INF."""
    return _encode(value, _FLOAT)


def sfloat_bytes(value: Decimal | None) -> bytes:
    return encode_sfloat(value).to_bytes(_SFLOAT.size, "little")


def float_bytes(value: Decimal | None) -> bytes:
    return encode_float(value).to_bytes(_FLOAT.size, "little")


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
