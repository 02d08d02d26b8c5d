"""The layout the Bluetooth SIG health measurement characteristics share (GSS).

Blood pressure 0x2A35/0x2A36, temperature 0x2A1C/0x2A1E, weight 0x2A9D, heart rate 0x2A37,
glucose 0x2A18/0x2A34 and the PLX measurements 0x2A5E/0x2A5F are all built the same way
(Bluetooth SIG GATT Specification Supplement, each characteristic's structure table;
docs/protocols/ble-health-profiles.md): a flags byte first, whose reserved bits must be 0,
then the mandatory fields, then each optional field its flag bit promises, in flag-bit
order, with nothing between them. Bytes beyond what the flags promise are ignored (forward
compatibility). `flags_byte` reads and checks the first; `Fields` reads the rest in order,
so a decoder states its layout one field a line and every short frame is a DecodeError at
the field it cuts. Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from device_drivers.ieee11073 import (
    DATE_TIME_SIZE,
    decode_date_time,
    float_at,
    sfloat_at,
    uint_at,
)
from edge_agent.model import DecodeError


def flags_byte(data: bytes, reserved: int, hint: str) -> int:
    """The flags byte of a frame; none, or one with a `reserved` bit set, is a DecodeError.

    A frame that sets reserved bits is not the layout the decoder knows (most often a
    vendor-prefixed frame), so its offsets would be guesses: `hint` says what it may be.
    """
    if not data:
        raise DecodeError("empty frame: no flags byte", 0)
    flags = data[0]
    if flags & reserved:
        raise DecodeError(
            f"flags 0x{flags:02x} set reserved bits 0x{flags & reserved:02x} ({hint})", 0
        )
    return flags


class Fields:
    """A frame's fields read in wire order from `offset`: each read moves past its field.

    Sizes and number formats are the GSS ones: little-endian integers, IEEE 11073-20601
    SFLOAT (2 bytes) and FLOAT (4 bytes), GSS Date Time (7 bytes). A field the frame is
    too short for raises DecodeError at that field's offset, naming it (`what`).
    """

    __slots__ = ("data", "offset")

    def __init__(self, data: bytes, offset: int) -> None:
        self.data = data
        self.offset = offset

    def _advance(self, size: int) -> int:
        at = self.offset
        self.offset += size
        return at

    def uint(self, size: int, what: str) -> int:
        return uint_at(self.data, self._advance(size), size, what)

    def sint(self, size: int, what: str) -> int:
        """A two's complement integer (GSS sint16, e.g. a glucose time offset)."""
        raw = self.uint(size, what)
        return raw - (1 << 8 * size) if raw >> (8 * size - 1) else raw

    def sfloat(self, what: str) -> tuple[Decimal | None, str | None]:
        return sfloat_at(self.data, self._advance(2), what)

    def float32(self, what: str) -> tuple[Decimal | None, str | None]:
        return float_at(self.data, self._advance(4), what)

    def date_time(self) -> dt.datetime | None:
        return decode_date_time(self.data, self._advance(DATE_TIME_SIZE))
