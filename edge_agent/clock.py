"""Time on a box without a real-time clock.

The wall clock may jump (NTP arriving late over 4G, or never); the monotonic clock does
not jump but restarts at each boot. Every stored event keeps both plus the kernel's boot
id, so events can be ordered within a boot and re-dated once the wall clock is known.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import functools
import secrets
import time
import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

_BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def read_boot_id() -> str:
    try:
        return _BOOT_ID_PATH.read_text(encoding="ascii").strip()
    except OSError:
        # Not Linux (a developer's laptop): one id per process is the honest fallback.
        return f"proc-{uuid.uuid4()}"


class Clock(Protocol):
    boot_id: str

    def wall_ns(self) -> int: ...

    def mono_ns(self) -> int: ...


@dataclass(slots=True)
class SystemClock:
    boot_id: str

    @classmethod
    def create(cls) -> SystemClock:
        return cls(boot_id=read_boot_id())

    def wall_ns(self) -> int:
        return time.time_ns()

    def mono_ns(self) -> int:
        return time.monotonic_ns()


def wall_datetime(wall_ns: int, tz: str = "Asia/Shanghai") -> dt.datetime:
    """An aware datetime in the station's zone (China uses one zone, UTC+8)."""
    return dt.datetime.fromtimestamp(wall_ns / 1e9, tz=zoneinfo.ZoneInfo(tz))


def device_instant(when: dt.datetime, tz: str | dt.tzinfo) -> dt.datetime:
    """A device's time as an instant: its own UTC offset when it gave one (always
    honoured), else its naive wall clock read in the station's zone (`agent.timezone`:
    a device without a zone shows the clinic's local time; the box sets it so)."""
    if when.tzinfo is not None and when.utcoffset() is not None:
        return when
    zone = zoneinfo.ZoneInfo(tz) if isinstance(tz, str) else tz
    return when.replace(tzinfo=zone)


# --- device clocks against the box's ------------------------------------------------

# A device whose clock is further than this from the box's (when the box's own clock is
# synchronised) is flagged rather than believed or silently shifted (issue 11). Five
# minutes: more than any monitor's clock drifts between settings, less than any zone
# error (whole quarter hours).
MAX_DEVICE_SKEW_S = 300.0
DEVICE_CLOCK_SKEW_FLAG = "device-clock-skew"


def device_clock_skewed(
    device_time: dt.datetime,
    received_wall_ns: int,
    tz: str | dt.tzinfo,
    *,
    live: bool,
    max_skew_s: float = MAX_DEVICE_SKEW_S,
) -> bool:
    """Whether a reading's device time is more than `max_skew_s` from the box's clock at
    receipt. Ahead is always skew (nothing is measured in the future). Behind is skew
    only for a `live` device (a monitor streaming what it measures now): a meter or cuff
    handing over its memory, or a cart's file read later, legitimately carries old times.
    """
    instant = device_instant(device_time, tz)
    ahead_s = instant.timestamp() - received_wall_ns / 1e9
    return ahead_s > max_skew_s or (live and -ahead_s > max_skew_s)


# adjtimex(2) with modes 0 only reads the kernel's clock state (no privilege needed);
# it returns TIME_ERROR while STA_UNSYNC (or STA_CLOCKERR) is set, i.e. until an NTP
# client (chrony, systemd-timesyncd, ntpd) disciplines the clock, and again once the
# kernel's estimated error passes 16 s without an update. That is the box's honest,
# one-syscall answer to "is my wall clock right?" (a box without an RTC boots at its
# last shutdown time, or at 1970).
_TIME_ERROR = 5
_TIMEX_BYTES = 512  # struct timex is 208 bytes on 64-bit Linux, less on 32-bit; room to spare


@functools.cache
def _adjtimex() -> Callable[[ctypes.Array[ctypes.c_char]], int] | None:
    try:
        found: Callable[[ctypes.Array[ctypes.c_char]], int] = ctypes.CDLL(None).adjtimex
    except (OSError, AttributeError):
        return None
    return found


def kernel_clock_synchronised() -> bool:
    """True when the kernel says an NTP client keeps the wall clock synchronised.

    Not Linux, or the call refused: False (we cannot tell, so nothing is flagged).
    """
    adjtimex = _adjtimex()
    if adjtimex is None:
        return False
    buffer = ctypes.create_string_buffer(_TIMEX_BYTES)  # modes = 0: read only
    state = int(adjtimex(buffer))
    return 0 <= state < _TIME_ERROR


@dataclass(slots=True)
class ClockSync:
    """`kernel_clock_synchronised`, asked at most every `every_s` (the recorder asks per
    frame; the kernel's state changes over minutes)."""

    probe: Callable[[], bool] = kernel_clock_synchronised
    every_s: float = 10.0
    monotonic: Callable[[], float] = time.monotonic
    _known: bool = field(default=False, init=False)
    _asked_at: float | None = field(default=None, init=False)

    def __call__(self) -> bool:
        now = self.monotonic()
        if self._asked_at is None or now - self._asked_at >= self.every_s:
            self._known = self.probe()
            self._asked_at = now
        return self._known


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_message_id(wall_ns: int | None = None) -> str:
    """A 26-character ULID-style id: 48-bit millisecond time + 80 random bits.

    It is the HL7 MSH-10 and the gateway's dedup key, so it must be unique across
    thousands of boxes: the 80 random bits carry that. The time prefix only makes ids
    sort roughly by creation; a box with a wrong clock still makes unique ids.
    """
    ms = (time.time_ns() if wall_ns is None else wall_ns) // 1_000_000
    value = ((ms & 0xFFFF_FFFF_FFFF) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))
