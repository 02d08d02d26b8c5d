"""The key that makes a reading a BLE device sends again a duplicate, not a second one.

Cuffs, thermometers, oximeters and scales keep measurements taken while nobody was
connected and send them on a later connection (the Bluetooth SIG Blood Pressure, Health
Thermometer, Pulse Oximeter and Weight Scale profiles provide for such stored
measurements), and may send the same ones again on the next. The recorder keeps a frame whose key it has already
recorded for that device as a duplicate (edge_agent.recorder).
"""

from __future__ import annotations

from collections.abc import Callable


def time_stamped(time_stamp_flag: int) -> Callable[[str, bytes], str | None]:
    """The resend key of a profile whose frames may carry the device's time stamp.

    The same device time and values (the very same bytes, time stamp included) are the
    same reading. Without a time stamp two equal frames may be two real measurements, so
    no key: both are kept.
    """

    def key(characteristic: str, data: bytes) -> str | None:
        if data and data[0] & time_stamp_flag:
            return f"{characteristic[4:8]}:{data.hex()}"
        return None

    return key
