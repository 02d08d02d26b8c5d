"""IntelliVue basic data types (Philips Data Export guide, "Data Types" / "Basic Data Types").

Everything on the wire is big-endian. This module knows:
- FLOATType: a 32-bit number, signed 8-bit exponent over a signed 24-bit mantissa
  (value = mantissa x 10^exponent), with the special patterns NaN 0x007FFFFF,
  NRes 0x00800000, +INF 0x007FFFFE, -INF 0x00800002 (as 11073-20601 FLOAT, big-endian).
  Values stay `Decimal` (docs/protocols/ieee11073-numbers.md), never binary floats.
- AbsoluteTime: 8 BCD bytes century, year, month, day, hour, minute, second, fraction
  (hundredths). The guide says monitors that do not support it send all 0xFF.
- RelativeTime: u32 in 1/8 ms (125 us) ticks since an arbitrary monitor epoch.
- AttributeList: count u16, length u16, then `count` AVAType {id u16, length u16, value}.
- The session layer's length indicator (LI) and the presentation layer's ASN.1 length.
`Reader` walks a message and raises DecodeError with the absolute byte offset of the
field that does not fit, so every decoding error names where it happened.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from edge_agent.model import DecodeError

FLOAT_NAN = 0x007FFFFF
FLOAT_NRES = 0x00800000
FLOAT_POS_INF = 0x007FFFFE
FLOAT_NEG_INF = 0x00800002
# 0x00800001 is reserved in 11073 FLOAT; it is no number either.
_FLOAT_SPECIAL = {
    FLOAT_NAN: "nan",
    FLOAT_NRES: "nres",
    FLOAT_POS_INF: "+inf",
    FLOAT_NEG_INF: "-inf",
    0x00800001: "reserved",
}
_MANTISSA_MAX = 0x7FFFFD  # 0x7FFFFE and 0x7FFFFF are special when the exponent is 0

TICKS_PER_SECOND = 8000  # RelativeTime: 1/8 ms
ABSOLUTE_TIME_UNSET = b"\xff" * 8


class Reader:
    """A cursor over `data`, whose first byte sits at `base` in the whole frame."""

    def __init__(self, data: bytes, base: int = 0) -> None:
        self._data = data
        self._base = base
        self.pos = 0

    @property
    def offset(self) -> int:
        """Absolute offset of the next byte."""
        return self._base + self.pos

    @property
    def left(self) -> int:
        return len(self._data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.left:
            raise DecodeError(f"{what}: needs {n} bytes, {self.left} left", self.offset)
        chunk = self._data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "big")

    def u32(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "big")

    def sub(self, n: int, what: str) -> Reader:
        """A reader over the next `n` bytes (a length-prefixed structure)."""
        start = self.offset
        return Reader(self.take(n, what), start)

    def rest(self) -> Reader:
        return self.sub(self.left, "rest")

    def expect_end(self, what: str) -> None:
        if self.left:
            raise DecodeError(f"{what}: {self.left} bytes beyond its end", self.offset)


# --- FLOATType ------------------------------------------------------------------------


def decode_float(raw: int) -> tuple[Decimal | None, str | None]:
    """(value, None) for a number, (None, flag) for NaN/NRes/+INF/-INF.

    0xFF0002D0 -> Decimal("72.0"): exponent -1, mantissa 720. VSCaptureMP returns the
    NaN pattern as the number 8388607 (its FloatType quirk); here it is never a value.
    """
    special = _FLOAT_SPECIAL.get(raw)
    if special is not None:
        return None, special
    exponent = raw >> 24
    if exponent >= 0x80:
        exponent -= 0x100
    mantissa = raw & 0xFFFFFF
    if mantissa >= 0x800000:
        mantissa -= 0x1000000
    return Decimal(mantissa).scaleb(exponent), None


def encode_float(value: Decimal | None) -> int:
    """The FLOATType for `value` (None -> NaN), keeping its digits exactly.

    Raises ValueError when the value needs more than the 24-bit mantissa can hold.
    """
    if value is None or value.is_nan():
        return FLOAT_NAN
    if value.is_infinite():
        return FLOAT_POS_INF if value > 0 else FLOAT_NEG_INF
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    mantissa = int("".join(map(str, digits)))
    # Keep the value's own digits (72.0 stays 720 x 10^-1) unless they do not fit.
    while mantissa > _MANTISSA_MAX and mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    while exponent > 127 and mantissa * 10 <= _MANTISSA_MAX:
        mantissa *= 10
        exponent -= 1
    if mantissa > _MANTISSA_MAX or not -128 <= exponent <= 127:
        raise ValueError(f"{value} does not fit FLOATType's 24-bit mantissa")
    if sign:
        mantissa = -mantissa
    return ((exponent & 0xFF) << 24) | (mantissa & 0xFFFFFF)


# --- AbsoluteTime and RelativeTime -----------------------------------------------------


def _bcd(byte: int) -> int | None:
    high, low = byte >> 4, byte & 0x0F
    if high > 9 or low > 9:
        return None
    return high * 10 + low


def decode_absolute_time(data: bytes) -> dt.datetime | None:
    """The monitor's wall clock from 8 BCD bytes, or None when it gave none.

    All 0xFF is the guide's "not supported" (extended poll results always carry it);
    a non-BCD digit or an impossible date also gives None rather than an error, so one
    bad time stamp never costs the values it stamps. The eighth byte is hundredths.
    """
    if len(data) != 8 or data == ABSOLUTE_TIME_UNSET:
        return None
    fields = [_bcd(b) for b in data]
    if any(f is None for f in fields):
        return None
    century, year, month, day, hour, minute, second, hundredths = (int(f or 0) for f in fields)
    try:
        return dt.datetime(
            century * 100 + year, month, day, hour, minute, second, hundredths * 10_000
        )
    except ValueError:
        return None


def encode_absolute_time(when: dt.datetime | None) -> bytes:
    if when is None:
        return ABSOLUTE_TIME_UNSET

    def bcd(n: int) -> int:
        return (n // 10) << 4 | n % 10

    return bytes(
        bcd(n)
        for n in (
            when.year // 100,
            when.year % 100,
            when.month,
            when.day,
            when.hour,
            when.minute,
            when.second,
            when.microsecond // 10_000,
        )
    )


def relative_time(ticks: int) -> dt.timedelta:
    """A RelativeTime (1/8 ms ticks) as a duration: 8000 ticks = 1 s."""
    return dt.timedelta(microseconds=ticks * 125)


def ticks(seconds: float) -> int:
    """Seconds as RelativeTime ticks, wrapped to u32 like the monitor's counter."""
    return round(seconds * TICKS_PER_SECOND) & 0xFFFFFFFF


# --- AttributeList ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ava:
    """One AVAType: attribute id and its raw value; `offset` is where the value starts."""

    attribute_id: int
    value: bytes
    offset: int

    def reader(self) -> Reader:
        return Reader(self.value, self.offset)


def read_attribute_list(reader: Reader, what: str = "attribute list") -> tuple[Ava, ...]:
    """count u16, length u16, then exactly `length` bytes holding `count` AVAs."""
    count = reader.u16(f"{what} count")
    length = reader.u16(f"{what} length")
    body = reader.sub(length, what)
    avas = []
    for index in range(count):
        attribute_id = body.u16(f"{what} entry {index} attribute id")
        size = body.u16(f"{what} entry {index} length")
        start = body.offset
        avas.append(Ava(attribute_id, body.take(size, f"attribute 0x{attribute_id:04x}"), start))
    body.expect_end(f"{what} of {count} entries")
    return tuple(avas)


def encode_attribute_list(attributes: Iterable[tuple[int, bytes]]) -> bytes:
    entries = [
        attribute_id.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value
        for attribute_id, value in attributes
    ]
    body = b"".join(entries)
    return len(entries).to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


def encode_list(entries: Iterable[bytes]) -> bytes:
    """A counted list (count u16, length u16, entries): PollInfoList, NuObsValueCmp..."""
    items = list(entries)
    body = b"".join(items)
    return len(items).to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


# --- session and presentation lengths --------------------------------------------------


def encode_li(length: int) -> bytes:
    """Session-layer length indicator: one byte below 255, else 0xFF and a u16."""
    if length < 0xFF:
        return bytes((length,))
    return b"\xff" + length.to_bytes(2, "big")


def read_li(reader: Reader, what: str) -> int:
    first = reader.u8(what)
    return reader.u16(what) if first == 0xFF else first


def encode_asn_length(length: int) -> bytes:
    """ASN.1 BER definite length (the presentation layer's user-data length)."""
    if length < 0x80:
        return bytes((length,))
    if length < 0x100:
        return bytes((0x81, length))
    return b"\x82" + length.to_bytes(2, "big")


def read_asn_length(reader: Reader, what: str) -> int:
    first = reader.u8(what)
    if first < 0x80:
        return first
    size = first & 0x7F
    if size not in (1, 2):
        raise DecodeError(f"{what}: ASN.1 length of {size} bytes", reader.offset - 1)
    return int.from_bytes(reader.take(size, what), "big")
