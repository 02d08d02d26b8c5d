"""What a simulated device's clock shows: the station's local time, in the configured zone.

A real device is set to the clinic's local time (the box sets BLE devices' clocks in
`agent.timezone`, staff set a monitor's by hand), whatever zone the machine that runs
the demo is in. A simulator reading the machine's zone instead (UTC on most CI hosts and
on an unconfigured Pi) stamps its readings 8 hours off Asia/Shanghai.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

DEFAULT_ZONE = "Asia/Shanghai"  # agent.timezone's default (edge_agent.config)


def station_now(tz: str = DEFAULT_ZONE) -> dt.datetime:
    """The station's wall clock now as an aware time in `tz`, to the second."""
    return dt.datetime.now(zoneinfo.ZoneInfo(tz)).replace(microsecond=0)


def device_wall_clock(tz: str = DEFAULT_ZONE) -> dt.datetime:
    """The naive wall-clock time a device without a zone shows now (GATT Date Time,
    RS-232 time stamps)."""
    return station_now(tz).replace(tzinfo=None)
