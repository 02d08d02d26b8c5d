"""Philips IntelliVue MP/MX Data Export over the MIB/RS-232 port (docs/protocols/intellivue.md).

The monitor only talks when asked: the agent associates, answers the MDS Create event,
polls numerics, alarms and (extended poll) waves, and keeps the association alive. The
package splits that by what each part knows:

- framing: C0 | 11 01 len | user data | FCS | C1, transparency, PPP FCS-16;
  `FrameReader` (transport.Framer), `encode_frame`, `fcs16`, `unframe`.
- types: FLOATType, BCD AbsoluteTime, RelativeTime, AttributeList, lengths.
- messages: constants, typed message values and builders (association request and
  response, MDS Create event and result, single and extended poll requests and
  results, release, abort).
- parse: `parse_user_data`, any message of either side -> a typed value.
- decode: `decode_frame(frame) -> Decoded`, the pure decoder the recorder calls.
- conversation: `IntelliVueConversation` (transport.Conversation).

Serial line (VSCaptureMP Class3.cs, OpenICE DemoSerialIntellivue.java): 115200 baud,
8 data bits, no parity, 1 stop bit, no flow control.
"""

from __future__ import annotations

import dataclasses

from device_drivers.declaration import (
    Binding,
    DecoderFor,
    Driver,
    Results,
    SerialLine,
    SerialPort,
    Uplink,
    Yields,
    every_channel,
)
from device_drivers.serial.intellivue.conversation import IntelliVueConversation
from device_drivers.serial.intellivue.decode import (
    CalibratedDecoder,
    decode_frame,
    decode_poll_result,
)
from device_drivers.serial.intellivue.framing import FrameReader, encode_frame, fcs16, unframe
from device_drivers.serial.intellivue.messages import (
    association_request,
    association_response,
    event_report_result,
    extended_poll_request,
    keep_alive_request,
    mds_create_event,
    mds_create_result,
    poll_request,
    poll_result,
    release_request,
    release_response,
)
from device_drivers.serial.intellivue.parse import parse_user_data
from device_drivers.serial.port import SerialSettings

SERIAL_LINE = SerialLine(baudrate=115200, bytesize=8, parity="N", stopbits=1, rtscts=False)
# The same, as the keyword arguments SerialSettings takes (pyserial values).
SERIAL_SETTINGS: dict[str, int | float | str | bool] = dataclasses.asdict(SERIAL_LINE)


def serial_settings(port: str) -> SerialSettings:
    """The MIB/RS-232 port's line settings for `port`."""
    return SerialSettings.on(port, SERIAL_LINE)


def _calibrated(_model: str | None, _pattern: str | None) -> DecoderFor:
    """Per monitor: wave calibration comes once a second, samples every 256 ms."""
    return every_channel(CalibratedDecoder())


DECLARATIONS = (
    Driver(
        id="intellivue",
        summary="Philips IntelliVue Data Export (MIB/RS-232): numerics, waves, alarms by poll",
        source=SerialPort(SERIAL_LINE, conversation=IntelliVueConversation),
        framer=FrameReader,
        decoder_for=every_channel(decode_frame),
        configured=_calibrated,
        yields=Yields(numerics=True, waves=True, alarms=True),
        profile="MDC_DEV_SPEC_PROFILE_HYDRA",
        binding=Binding.MONITOR,
        results=Results.LIVE,
        # Polled numerics arrive several times a second; one a second goes up.
        uplink=Uplink(every_s=1.0),
    ),
)


__all__ = [
    "DECLARATIONS",
    "SERIAL_LINE",
    "SERIAL_SETTINGS",
    "CalibratedDecoder",
    "FrameReader",
    "IntelliVueConversation",
    "association_request",
    "association_response",
    "decode_frame",
    "decode_poll_result",
    "encode_frame",
    "event_report_result",
    "extended_poll_request",
    "fcs16",
    "keep_alive_request",
    "mds_create_event",
    "mds_create_result",
    "parse_user_data",
    "poll_request",
    "poll_result",
    "release_request",
    "release_response",
    "serial_settings",
    "unframe",
]
