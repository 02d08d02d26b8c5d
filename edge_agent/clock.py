"""Time on a box without a real-time clock.

The wall clock may jump (NTP arriving late over 4G, or never); the monotonic clock does
not jump but restarts at each boot. Every stored event keeps both plus the kernel's boot
id, so events can be ordered within a boot and re-dated once the wall clock is known.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid
import zoneinfo
from dataclasses import dataclass
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
