"""Bluetooth SIG Current Time Service 0x1805: setting a device's clock (Bluetooth SIG Current
Time Service; GSS "Current Time"; docs/protocols/ieee11073-numbers.md).

Cuffs, meters, scales and thermometers stamp their readings with their own clock, which
is often wrong (never set, or drifted since the batteries were changed). Writing the
Current Time characteristic 0x2A2B when the device connects puts the clinic's time on
the readings that follow. Pure encode/decode here; the BLE session makes the write
(session.BleTransport `set_clock`) and the device edge reads the box's clock.

Layout: Date Time (7 bytes, GSS "Date Time"), day of week (1 = Monday .. 7 = Sunday, 0 unknown),
fractions of a second in 1/256 s, and the adjust-reason bit field.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from device_drivers.ble.gatt import uuid16
from device_drivers.ieee11073 import DATE_TIME_SIZE, decode_date_time, encode_date_time
from edge_agent.model import DecodeError

SERVICE_UUID = uuid16(0x1805)
CURRENT_TIME_UUID = uuid16(0x2A2B)

CURRENT_TIME_SIZE = DATE_TIME_SIZE + 3
ADJUST_MANUAL = 0x01
ADJUST_EXTERNAL_REFERENCE = 0x02
ADJUST_TIME_ZONE = 0x04
ADJUST_DST = 0x08
ADJUST_RESERVED = 0xF0
_ADJUST_NAMES = (
    (ADJUST_MANUAL, "manual"),
    (ADJUST_EXTERNAL_REFERENCE, "external-reference"),
    (ADJUST_TIME_ZONE, "time-zone"),
    (ADJUST_DST, "dst"),
)


@dataclass(frozen=True, slots=True)
class CurrentTime:
    """A Current Time (0x2A2B) value: the device's wall clock and how it was last set."""

    time: dt.datetime | None  # whole seconds; None when the date is not known
    day_of_week: int  # 1 Monday .. 7 Sunday, 0 unknown
    fractions256: int  # 1/256 s
    adjust_reason: int

    @property
    def adjust_flags(self) -> tuple[str, ...]:
        return tuple(name for bit, name in _ADJUST_NAMES if self.adjust_reason & bit)


def encode_current_time(when: dt.datetime, adjust_reason: int = ADJUST_EXTERNAL_REFERENCE) -> bytes:
    """The 10-byte Current Time value that sets a device clock to `when` (GSS "Current Time").

    `when` is the naive wall-clock time the device should show (the clinic's local time):
    the characteristic has no time zone, so an aware datetime is refused rather than
    written in whatever zone it carries. The default reason is "external reference"
    (the agent's clock, itself NTP- or platform-set); "manual" is for a user's setting.
    """
    if when.tzinfo is not None:
        raise ValueError("Current Time is a wall clock: pass naive local time, not an aware one")
    if when.year < 1582:
        raise ValueError(f"year {when.year} outside the Date Time range 1582..9999")
    if not 0 <= adjust_reason <= 0xFF or adjust_reason & ADJUST_RESERVED:
        raise ValueError(f"adjust reason 0x{adjust_reason:x} sets reserved bits")
    fractions = when.microsecond * 256 // 1_000_000
    return encode_date_time(when) + bytes([when.isoweekday(), fractions, adjust_reason])


def decode_current_time(data: bytes) -> CurrentTime:
    """A 0x2A2B value -> CurrentTime; DecodeError (with the offset) for a bad one."""
    time = decode_date_time(data, 0)
    if len(data) < CURRENT_TIME_SIZE:
        raise DecodeError(
            f"truncated: current time needs {CURRENT_TIME_SIZE} bytes, frame has {len(data)}",
            len(data),
        )
    day_of_week, fractions, reason = data[7], data[8], data[9]
    if day_of_week > 7:
        raise DecodeError(f"day of week {day_of_week} outside 0..7", 7)
    return CurrentTime(time, day_of_week, fractions, reason)


def set_clock_write(now: dt.datetime) -> tuple[str, bytes]:
    """The GATT write that sets a device's clock to `now` (naive local wall time)."""
    return CURRENT_TIME_UUID, encode_current_time(now)
