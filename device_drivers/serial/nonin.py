"""Nonin pulse oximeters' binary serial formats: Data Format #2, #7 and #8.

Facts from Nonin's "OEM III Module Specification and Technical Information", the
"WristOx2 Model 3150 OEM Specification and Technical Information" and the Onyx II 9560
Bluetooth specification ("Serial Data Format #2 / #7 / #8 Definition"):

DF2 and DF7 (`nonin-df2`, `nonin-df7`): 5-byte frames, 75 frames/s, 25 frames per packet
(3 packets/s). DF2 frame = `01 status pleth data checksum`; DF7 frame = `status pleth-MSB
pleth-LSB data checksum`. The checksum is the sum of the first four bytes mod 256; the
status byte always has bit 7 set, and its bit 0 (SYNC) marks frame 1 of a packet. The data
byte carries a different value in each frame of the packet (HR MSB/LSB in frames 1-2,
SpO2 in 3, display and 8-beat values further on). Heart rate is 9 bits split 2 + 7
(`(MSB & 0x03) * 128 + (LSB & 0x7F)`, *not* MSB * 256 + LSB, OpenICE's bug above
127/min); 511 and 127 mean "no HR" and "no SpO2". The specifications' pulse-rate range
ends at 321/min and SpO2 at 100 %: a value above either (other than 511 / 127) is not a
measurement but a stream we misread, and is rejected.

DF8 (`nonin-df8`): one 4-byte record a second, `status HR-low SpO2 STAT2`, no checksum.

What a packet or record gives: one pulse-rate and one SpO2 reading (the 4-beat values, a
missing value as None with the flag "unavailable"), for DF2/DF7 the 25 pleth samples as
one 75 Hz waveform, and the status bits as device alarms, each at most once per packet.
The display and 8-beat values are the same quantities averaged differently: a consumer
that keeps "the latest SpO2" would flicker between them, and they would triple the rows
stored at 3 packets/s, so they are only reported when asked for (`extras=True`), then
flagged ("display", "8-beat", "fast", "beat-to-beat") rather than given other metrics.

Framing (no I/O, as for every serial driver): `PacketFramer` cuts DF2/DF7 packets and
`RecordFramer` DF8 records out of the byte stream. Every byte comes out once, in stream
order: in a whole packet or record, or in a rejected piece (line noise, a receiver that
joined mid-packet, a damaged packet) of at most `MAX_NOISE_PIECE` bytes, which the
decoder rejects into quarantine. So a port full of noise is seen as such (the recorder
reports "wrong driver or baud rate") instead of as silence, and the decode CLI reads a
capture exactly as the live port does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from device_drivers.declaration import (
    Binding,
    Decoder,
    Driver,
    Results,
    SerialLine,
    SerialPort,
    Uplink,
    Yields,
    every_channel,
)
from device_drivers.transport import Framer
from edge_agent.model import Decoded, DecodeError, DeviceAlarm, Reading, Waveform

# 9600 baud 8N1 for the binary formats (all three; the OEM III and 3150 specifications'
# "Communication Rate", and OpenICE's DemoNoninPulseOx.java).
SERIAL_SETTINGS = SerialLine(baudrate=9600, bytesize=8, parity="N", stopbits=1)

FRAME_LEN = 5
FRAMES_PER_PACKET = 25
PACKET_LEN = FRAME_LEN * FRAMES_PER_PACKET
PACKETS_PER_SECOND = 3
PLETH_RATE_HZ = 75.0
RECORD_LEN = 4
DF2_FRAME_START = 0x01

# DF2 / DF7 status byte (DF2 byte 2, DF7 byte 1).
STATUS_BIT7 = 0x80  # always set: what tells a status byte from the others
SNSD = 0x40  # sensor disconnected
ARTF = 0x20  # artifact
OOT = 0x10  # out of track
SNSA = 0x08  # sensor alarm: the sensor gives unusable data
PERFUSION_MASK = 0x06
PERFUSION_GREEN = 0x02  # good
PERFUSION_RED = 0x04  # low / no pulse signal
PERFUSION_YELLOW = 0x06  # marginal
SYNC = 0x01  # frame 1 of a packet

# DF7 STAT2 (data byte of frame 8), per OpenICE's format #7 reader.
DF7_STAT2_SMARTPOINT = 0x20
DF7_STAT2_LOW_BATTERY = 0x01

# DF8 status byte. Bit 7 is set, as in the DF2/DF7 status byte: it is how a receiver
# finds a record's start (drphrozen/javautilityclasses NoninConnector.java waits for the
# byte with bit 7 set); the other three bytes are 7-bit values.
DF8_STATUS_BIT7 = 0x80
DF8_SNSD = 0x40
DF8_OOT = 0x20
DF8_LOW_PERFUSION = 0x10
DF8_MARGINAL_PERFUSION = 0x08
DF8_ARTF = 0x04
DF8_HR_HIGH_BITS = 0x03  # HR bits 8-7
DF8_STATUS_FLAGS = DF8_SNSD | DF8_OOT | DF8_LOW_PERFUSION | DF8_MARGINAL_PERFUSION | DF8_ARTF
# DF8 STAT2. 0x20 SmartPoint is from mattjlewis/NoninPulseOx DataFormat8Serialiser.java (the
# same bit as DF7's STAT2); 0x08 sensor unusable, 0x04 spot-check mode, 0x02 battery
# critical and 0x01 low battery from the 3150 specification's DF8 table (as
# drphrozen/javautilityclasses Format8.java reads them). Bits 6 and 4 are not defined,
# bit 7 is never set in a data byte: a STAT2 with any of them is not a DF8 record.
DF8_STAT2_SMARTPOINT = 0x20
DF8_STAT2_SENSOR_UNUSABLE = 0x08
DF8_STAT2_SPOT_CHECK = 0x04
DF8_STAT2_BATTERY_CRITICAL = 0x02
DF8_STAT2_LOW_BATTERY = 0x01
DF8_STAT2_RESERVED = 0xD0

HR_MISSING = 511
HR_MAX = 321  # the specifications' pulse-rate range ends at 321/min
SPO2_MISSING = 127
SPO2_MAX = 100

# DF8 has no checksum: a window of line noise passes every check of one record about one
# time in 127 (bit 7 set in the status byte only: 1/16; then SpO2 0..100 or 127: 0.8,
# STAT2 without reserved bits: 1/4, HR 0..321 or 511: 0.63). Five such records in a row (1 in 3e10) before the
# stream is trusted, and again after any record that fails, keep 1 MiB of noise from ever
# becoming a reading; a real oximeter costs 4 s of delay at the start (the records are
# held, not lost). The specifications' one record a second, nothing in between, is in a
# byte stream "the next record starts where this one ends".
DF8_TRUSTED_RUN = 5

# The longest rejected piece a framer emits: noise is quarantined in pieces this size.
MAX_NOISE_PIECE = 128

UNAVAILABLE_FLAG = "unavailable"
DISPLAY_FLAG = "display"
EIGHT_BEAT_FLAG = "8-beat"
SMARTPOINT_FLAG = "smartpoint"
SPOT_CHECK_FLAG = "spot-check"

PULSE_RATE = "MDC_PULS_OXIM_PULS_RATE"
SPO2 = "MDC_PULS_OXIM_SAT_O2"
PLETH = "MDC_PULS_OXIM_PLETH"
BEAT_PER_MIN = "MDC_DIM_BEAT_PER_MIN"
PERCENT = "MDC_DIM_PERCENT"
DIMLESS = "MDC_DIM_DIMLESS"

# Data byte by frame number, counted from 1 at the SYNC frame (the specifications' data
# byte tables for DF2 and DF7).
FRAME_HR_MSB, FRAME_HR_LSB, FRAME_SPO2, FRAME_FIRMWARE = 1, 2, 3, 4
FRAME_STAT2 = 8  # DF7 only; reserved in DF2
FRAME_SPO2_D, FRAME_SPO2_FAST, FRAME_SPO2_BEAT = 9, 10, 11
FRAME_E_HR_MSB, FRAME_E_HR_LSB, FRAME_E_SPO2, FRAME_E_SPO2_D = 14, 15, 16, 17
FRAME_HR_D_MSB, FRAME_HR_D_LSB, FRAME_E_HR_D_MSB, FRAME_E_HR_D_LSB = 20, 21, 22, 23


@dataclass(frozen=True, slots=True)
class _HeartRateField:
    name: str
    msb_frame: int
    lsb_frame: int
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _SpO2Field:
    name: str
    frame: int
    flags: tuple[str, ...]


_PRIMARY_HR = _HeartRateField("HR", FRAME_HR_MSB, FRAME_HR_LSB, ())
_PRIMARY_SPO2 = _SpO2Field("SpO2", FRAME_SPO2, ())
_EXTRA_HR = (
    _HeartRateField("HR-D", FRAME_HR_D_MSB, FRAME_HR_D_LSB, (DISPLAY_FLAG,)),
    _HeartRateField("E-HR", FRAME_E_HR_MSB, FRAME_E_HR_LSB, (EIGHT_BEAT_FLAG,)),
    _HeartRateField("E-HR-D", FRAME_E_HR_D_MSB, FRAME_E_HR_D_LSB, (EIGHT_BEAT_FLAG, DISPLAY_FLAG)),
)
_EXTRA_SPO2 = (
    _SpO2Field("SpO2-D", FRAME_SPO2_D, (DISPLAY_FLAG,)),
    _SpO2Field("SpO2 fast", FRAME_SPO2_FAST, ("fast",)),
    _SpO2Field("SpO2 beat-to-beat", FRAME_SPO2_BEAT, ("beat-to-beat",)),
    _SpO2Field("E-SpO2", FRAME_E_SPO2, (EIGHT_BEAT_FLAG,)),
    _SpO2Field("E-SpO2-D", FRAME_E_SPO2_D, (EIGHT_BEAT_FLAG, DISPLAY_FLAG)),
)

# Device alarms. Priorities: a critical battery ends monitoring (the device switches off
# after reporting it) -> high; no usable signal (sensor off or faulty, out of track, no
# pulse signal) means no numbers -> medium; a degraded but still measured signal -> low.
ALARM_SENSOR_DISCONNECTED = DeviceAlarm(
    "NONIN_SENSOR_DISCONNECTED", "medium", "sensor disconnected"
)
ALARM_OUT_OF_TRACK = DeviceAlarm(
    "NONIN_OUT_OF_TRACK", "medium", "out of track (no consecutive good pulses)"
)
ALARM_SENSOR = DeviceAlarm("NONIN_SENSOR_ALARM", "medium", "sensor gives unusable data")
ALARM_LOW_PERFUSION = DeviceAlarm(
    "NONIN_LOW_PERFUSION", "medium", "low or no pulse signal (perfusion red)"
)
ALARM_MARGINAL_PERFUSION = DeviceAlarm(
    "NONIN_MARGINAL_PERFUSION", "low", "marginal pulse signal (perfusion yellow)"
)
ALARM_ARTIFACT = DeviceAlarm("NONIN_ARTIFACT", "low", "artifact")
ALARM_LOW_BATTERY = DeviceAlarm("NONIN_LOW_BATTERY", "medium", "low battery")
ALARM_BATTERY_CRITICAL = DeviceAlarm(
    "NONIN_BATTERY_CRITICAL", "high", "battery critical: oximeter switches off"
)

# In the order they are reported. Perfusion is one quantity: only the worst colour seen
# in a packet is reported (the bits are only set during a pulse, so a packet mixes
# frames with and without them).
_STATUS_ALARMS = (
    (SNSD, ALARM_SENSOR_DISCONNECTED),
    (OOT, ALARM_OUT_OF_TRACK),
    (SNSA, ALARM_SENSOR),
    (ARTF, ALARM_ARTIFACT),
)
_DF8_STATUS_ALARMS = (
    (DF8_SNSD, ALARM_SENSOR_DISCONNECTED),
    (DF8_OOT, ALARM_OUT_OF_TRACK),
    (DF8_ARTF, ALARM_ARTIFACT),
)


def checksum(first_four: bytes) -> int:
    """A DF2/DF7 frame's checksum byte: the sum of its first four bytes mod 256."""
    return sum(first_four[:4]) & 0xFF


def _check_format(fmt: int) -> int:
    if fmt not in (2, 7):
        raise ValueError(f"Nonin packet format must be 2 or 7, not {fmt!r}")
    return 1 if fmt == 2 else 0  # where the status byte is in a frame


# --- framing ---------------------------------------------------------------------------

_INVALID, _DATA, _SYNC = 0, 1, 2


def _take_noise(noise: bytearray, out: list[bytes], limit: int) -> None:
    """Emit held noise in pieces of `limit` bytes (all of it when limit is 1)."""
    while len(noise) >= limit:
        piece = min(len(noise), MAX_NOISE_PIECE)
        out.append(bytes(noise[:piece]))
        del noise[:piece]


class PacketFramer:
    """Whole 125-byte DF2 or DF7 packets, and the rejected bytes between them, out of a
    byte stream (transport.Framer).

    A packet starts at a valid frame with SYNC set and takes the next 24 valid frames
    without SYNC. Valid = checksum right, status bit 7 set and, for DF2, first byte 0x01.
    A bad frame drops the packet and the search for SYNC starts again one byte after the
    dropped packet's first byte, so a lost or flipped byte costs only the packet it was in:
    the next packet's SYNC frame lies beyond the search start and is found. A valid SYNC
    frame where frame 2..25 should be means frames were lost: the short packet is dropped
    and the new one starts there. A window of random bytes passes as a DF7 SYNC frame with
    odds 1/1024 (DF2: 1/262144), but 24 more valid frames in a row never follow, and the
    search resumes inside such a false start, so it cannot hide the real one.

    Dropped bytes are not lost: they come out, in stream order, as rejected pieces of at
    most MAX_NOISE_PIECE bytes (the run before the next packet, or every MAX_NOISE_PIECE
    bytes of a long run), which the decoder rejects for quarantine. No such piece can be a
    valid packet: the search tries every byte, so a packet in it would have been found.

    One residual case, DF7 only: a byte lost inside frame 25 leaves a last window that
    borrows the next packet's first byte, and that window still adds up with odds about
    1/256 (DF2's 0x01 lead byte rules it out). The packet then goes out with frame 25
    wrong (one pleth sample, that frame's status bits; HR and SpO2 come from frames 1-3 and
    stay right) and the next packet, its SYNC frame cut, is lost: two packets touched.
    Waiting for the next SYNC frame before emitting would close this, at the price of
    holding every packet back and never emitting the last one of a capture or session.

    The state between calls is at most one partial packet (< 125 bytes) and a rejected
    run not yet emitted (< MAX_NOISE_PIECE bytes): `pending`. Decisions look only at bytes
    already received and wait when they need more, so the output does not depend on how
    reads split the stream. Never raises.
    """

    def __init__(self, format: int) -> None:  # Data Format #2 or #7, the spec's word
        self._status_at = _check_format(format)
        self._df2 = format == 2
        self._buf = bytearray()
        self._frames = 0  # valid frames of the packet at the head of _buf; 0 = searching
        self._noise = bytearray()  # rejected bytes not yet emitted

    @property
    def pending(self) -> int:
        """Bytes held for the next call (a partial packet, a rejected run)."""
        return len(self._buf) + len(self._noise)

    def _kind(self, buf: bytearray, at: int) -> int:
        if self._df2 and buf[at] != DF2_FRAME_START:
            return _INVALID
        if (buf[at] + buf[at + 1] + buf[at + 2] + buf[at + 3]) & 0xFF != buf[at + 4]:
            return _INVALID
        status = buf[at + self._status_at]
        if not status & STATUS_BIT7:
            return _INVALID
        return _SYNC if status & SYNC else _DATA

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf.extend(data)
        noise = self._noise
        out: list[bytes] = []
        start = 0  # first byte of the packet being assembled, or of the search
        frames = self._frames
        while len(buf) - (at := start + frames * FRAME_LEN) >= FRAME_LEN:
            kind = self._kind(buf, at)
            if kind == _DATA and frames:
                frames += 1
                if frames == FRAMES_PER_PACKET:
                    if noise:
                        _take_noise(noise, out, 1)
                    out.append(bytes(buf[start : start + PACKET_LEN]))
                    start, frames = start + PACKET_LEN, 0
                continue
            if kind == _SYNC:
                noise += buf[start:at]  # a short packet before this one: frames were lost
                start, frames = at, 1
            else:
                noise.append(buf[start])  # search on, byte by byte
                start, frames = start + 1, 0
            if len(noise) >= MAX_NOISE_PIECE:
                _take_noise(noise, out, MAX_NOISE_PIECE)
        del buf[:start]
        self._frames = frames
        return out


def _table(ok: Callable[[int], bool]) -> bytes:
    return bytes(1 if ok(value) else 0 for value in range(512))


# What one DF8 byte (or, for HR, the 9-bit value) may hold, as lookup tables: the framer
# tests every byte of a noisy stream, `df8_problem` says why a record fails. A test keeps
# the two in agreement.
_SPO2_OK = _table(lambda v: v <= SPO2_MAX or v == SPO2_MISSING)
_STAT2_OK = _table(lambda v: v < 0x100 and not v & (DF8_STAT2_RESERVED | 0x80))
_HR_OK = _table(lambda v: v <= HR_MAX or v == HR_MISSING)


def _record_ok(buf: bytes | bytearray, at: int) -> bool:
    status, hr_low = buf[at], buf[at + 1]
    return bool(
        status >= DF8_STATUS_BIT7
        and hr_low < 0x80
        and _SPO2_OK[buf[at + 2]]
        and _STAT2_OK[buf[at + 3]]
        and _HR_OK[((status & DF8_HR_HIGH_BITS) << 7) | hr_low]
    )


def df8_problem(record: bytes | bytearray) -> tuple[int, str] | None:
    """Why 4 bytes are not a DF8 record (offset, reason), or None if they may be one.

    What the layout lets a receiver check, DF8 having no checksum: bit 7 set in the status
    byte and clear in the other three, STAT2 without its undefined bits, HR 0..321 or 511
    and SpO2 0..100 or 127.
    """
    status, hr_low, spo2, stat2 = record[0], record[1], record[2], record[3]
    if not status & DF8_STATUS_BIT7:
        return 0, f"status 0x{status:02x} has bit 7 clear (not a DF8 record start)"
    for offset, name in ((1, "HR"), (2, "SpO2"), (3, "STAT2")):
        if record[offset] & 0x80:
            return (
                offset,
                f"{name} byte 0x{record[offset]:02x} has bit 7 set (a status byte: record cut short?)",
            )
    if stat2 & DF8_STAT2_RESERVED:
        return 3, f"STAT2 0x{stat2:02x} sets undefined bits 0x{stat2 & DF8_STAT2_RESERVED:02x}"
    hr = ((status & DF8_HR_HIGH_BITS) << 7) | hr_low
    if hr > HR_MAX and hr != HR_MISSING:
        return 1, f"HR {hr} outside 0..{HR_MAX} (511 = no value)"
    if spo2 > SPO2_MAX and spo2 != SPO2_MISSING:
        return 2, f"SpO2 {spo2} outside 0..{SPO2_MAX} (127 = no value)"
    return None


class RecordFramer:
    """4-byte DF8 records, and the rejected bytes between them, out of a byte stream
    (transport.Framer).

    DF8 has no checksum; what a record must pass is `df8_problem`'s list. Only the status
    byte has bit 7 set (see DF8_STATUS_BIT7), so a record's start is a byte with bit 7 set
    followed by three with bit 7 clear. Because line noise still passes that one time in
    127, one good-looking record is not trusted: the stream is, once DF8_TRUSTED_RUN
    records follow each other with no byte between them (then all of them are emitted,
    the first ones late: the transport stamps them all with the time of the last), and
    from then on each record that passes. A record that fails
    ends the trust: its bytes are rejected one at a time until the next run of
    DF8_TRUSTED_RUN. A lost byte or a byte whose bit 7 flips costs that record (and holds
    the next ones back until the run is complete); a flipped low bit cannot be seen.

    Rejected bytes come out in stream order as pieces of at most MAX_NOISE_PIECE bytes,
    for the decoder to reject into quarantine. None of them can be a trusted record: a
    rejected run that ends where a trusted run begins would have started that run.

    Why not a rule with status bit 7 clear: then no byte marks a record's start. For a
    quiet patient (status and STAT2 both 0) the stream is `00 HR SpO2 00` repeated, and
    its rotation `HR SpO2 00 00` passes every remaining check (bit 7 clear throughout,
    "SpO2" 0), so a framer would lock onto the wrong phase and report HR as status bits and
    0 % SpO2.

    Held between calls (`pending`): an untrusted run (< DF8_TRUSTED_RUN records) or a
    partial record, and a rejected run not yet emitted. The output does not depend on how
    reads split the stream. Never raises.
    """

    def __init__(self, trusted_run: int = DF8_TRUSTED_RUN) -> None:
        if trusted_run < 1:
            raise ValueError(f"trusted_run must be at least 1, got {trusted_run}")
        self._run = trusted_run
        self._buf = bytearray()
        self._noise = bytearray()
        self._trusted = False

    @property
    def pending(self) -> int:
        """Bytes held for the next call (records not yet trusted, a partial record, noise)."""
        return len(self._buf) + len(self._noise)

    @property
    def trusted(self) -> bool:
        """Whether the stream is trusted now (the last records came as a run)."""
        return self._trusted

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf.extend(data)
        noise = self._noise
        out: list[bytes] = []
        start = 0
        run = self._run
        while len(buf) - start >= RECORD_LEN:
            if self._trusted:
                if _record_ok(buf, start):
                    out.append(bytes(buf[start : start + RECORD_LEN]))
                    start += RECORD_LEN
                    continue
                self._trusted = False
            good = 0
            while (
                good < run
                and len(buf) - (start + good * RECORD_LEN) >= RECORD_LEN
                and _record_ok(buf, start + good * RECORD_LEN)
            ):
                good += 1
            if good == run:
                if noise:
                    _take_noise(noise, out, 1)
                for at in range(start, start + run * RECORD_LEN, RECORD_LEN):
                    out.append(bytes(buf[at : at + RECORD_LEN]))
                start += run * RECORD_LEN
                self._trusted = True
                continue
            if len(buf) - (start + good * RECORD_LEN) < RECORD_LEN:
                break  # the run may still complete: wait for more bytes
            noise.append(buf[start])
            start += 1
            if len(noise) >= MAX_NOISE_PIECE:
                _take_noise(noise, out, MAX_NOISE_PIECE)
        del buf[:start]
        return out


# --- decoding --------------------------------------------------------------------------


def _check_packet(packet: bytes, fmt: int, status_at: int) -> None:
    if len(packet) != PACKET_LEN:
        # What PacketFramer emits besides packets: bytes it could not place in one.
        raise DecodeError(
            f"{len(packet)} bytes that are not a DF{fmt} packet (25 checksummed 5-byte frames"
            " from a SYNC frame): line noise, frames lost, or another data format"
        )
    for index in range(FRAMES_PER_PACKET):
        at = index * FRAME_LEN
        number = index + 1
        expected = checksum(packet[at : at + 4])
        if packet[at + 4] != expected:
            raise DecodeError(
                f"frame {number}: checksum 0x{packet[at + 4]:02x}, expected 0x{expected:02x}",
                at + 4,
            )
        if fmt == 2 and packet[at] != DF2_FRAME_START:
            raise DecodeError(
                f"frame {number}: first byte 0x{packet[at]:02x}, DF2 frames start with 0x01", at
            )
        status = packet[at + status_at]
        if not status & STATUS_BIT7:
            raise DecodeError(
                f"frame {number}: status 0x{status:02x} has bit 7 clear (not a status byte)",
                at + status_at,
            )
        if index == 0 and not status & SYNC:
            raise DecodeError(
                f"frame 1: status 0x{status:02x} has no SYNC bit (a packet starts at SYNC)",
                at + status_at,
            )
        if index > 0 and status & SYNC:
            raise DecodeError(
                f"frame {number}: SYNC inside the packet (frames lost before it)", at + status_at
            )


def _data_at(frame: int) -> int:
    """Offset of the data byte of frame `frame` (1-based) in a packet."""
    return (frame - 1) * FRAME_LEN + 3


def _heart_rate(packet: bytes, field: _HeartRateField) -> Reading:
    msb, lsb = packet[_data_at(field.msb_frame)], packet[_data_at(field.lsb_frame)]
    value = (msb & 0x03) * 128 + (lsb & 0x7F)  # 2 + 7 bits: the HR MSB/LSB definitions
    if value == HR_MISSING:
        return Reading(PULSE_RATE, None, BEAT_PER_MIN, flags=(*field.flags, UNAVAILABLE_FLAG))
    if value > HR_MAX:
        # As for SpO2 below: a checksummed value outside the oximeter's range means the
        # stream is not what we take it for.
        raise DecodeError(
            f"{field.name} {value} outside 0..{HR_MAX} (511 = no value)", _data_at(field.lsb_frame)
        )
    return Reading(PULSE_RATE, Decimal(value), BEAT_PER_MIN, flags=field.flags)


def _spo2(raw: int, name: str, offset: int, flags: tuple[str, ...]) -> Reading:
    value = raw & 0x7F
    if value == SPO2_MISSING:
        return Reading(SPO2, None, PERCENT, flags=(*flags, UNAVAILABLE_FLAG))
    if value > SPO2_MAX:
        # A checksummed value no oximeter can measure: the stream is not the format we
        # take it for (another data format configured?), so the packet goes to quarantine.
        raise DecodeError(f"{name} {value} outside 0..100 (127 = no value)", offset)
    return Reading(SPO2, Decimal(value), PERCENT, flags=flags)


def _with_flags(reading: Reading, flags: tuple[str, ...]) -> Reading:
    """A measured value qualified by `flags` (a missing one stays just "unavailable")."""
    if not flags or reading.value is None:
        return reading
    return replace(reading, flags=(*reading.flags, *flags))


def _packet_alarms(statuses: Sequence[int]) -> list[DeviceAlarm]:
    seen = 0
    for status in statuses:
        seen |= status
    alarms = [alarm for bit, alarm in _STATUS_ALARMS if seen & bit]
    perfusion = {status & PERFUSION_MASK for status in statuses}
    if PERFUSION_RED in perfusion:
        alarms.append(ALARM_LOW_PERFUSION)
    elif PERFUSION_YELLOW in perfusion:
        alarms.append(ALARM_MARGINAL_PERFUSION)
    return alarms


def _decode_packet(packet: bytes, fmt: int, extras: bool) -> Decoded:
    status_at = _check_format(fmt)
    _check_packet(packet, fmt, status_at)
    frames = range(0, PACKET_LEN, FRAME_LEN)
    alarms = _packet_alarms([packet[at + status_at] for at in frames])
    qualifiers: tuple[str, ...] = ()
    if fmt == 2:
        samples = tuple(packet[at + 2] for at in frames)
    else:
        samples = tuple((packet[at + 1] << 8) | packet[at + 2] for at in frames)
        stat2 = packet[_data_at(FRAME_STAT2)]
        if stat2 & DF7_STAT2_SMARTPOINT:
            qualifiers = (SMARTPOINT_FLAG,)
        if stat2 & DF7_STAT2_LOW_BATTERY:
            alarms.append(ALARM_LOW_BATTERY)
    # Every HR and SpO2 value is checked, reported or not: one out of range means the
    # packet is not what we take it for.
    extra_hr = [_heart_rate(packet, field) for field in _EXTRA_HR]
    extra_spo2 = [
        _spo2(packet[_data_at(f.frame)], f.name, _data_at(f.frame), f.flags) for f in _EXTRA_SPO2
    ]
    spo2_at = _data_at(_PRIMARY_SPO2.frame)
    readings = [
        _with_flags(_heart_rate(packet, _PRIMARY_HR), qualifiers),
        _with_flags(_spo2(packet[spo2_at], _PRIMARY_SPO2.name, spo2_at, ()), qualifiers),
    ]
    if extras:
        readings += extra_hr
        readings += extra_spo2
    pleth = Waveform(PLETH, PLETH_RATE_HZ, DIMLESS, samples)
    return Decoded(readings=tuple(readings), waveforms=(pleth,), alarms=tuple(alarms))


def decode_packet_df2(packet: bytes, *, extras: bool = False) -> Decoded:
    """One 125-byte DF2 packet -> pulse rate, SpO2, 8-bit pleth and status alarms.

    With `extras`, also the display, 8-beat, fast and beat-to-beat values (flagged).
    """
    return _decode_packet(packet, 2, extras)


def decode_packet_df7(packet: bytes, *, extras: bool = False) -> Decoded:
    """One 125-byte DF7 packet -> as DF2, with 16-bit pleth and STAT2 (battery, SmartPoint)."""
    return _decode_packet(packet, 7, extras)


def decode_record_df8(record: bytes) -> Decoded:
    """One 4-byte DF8 record -> pulse rate, SpO2 and status alarms (no waveform in DF8)."""
    if len(record) != RECORD_LEN:
        # What RecordFramer emits besides records: bytes that were no trusted record.
        raise DecodeError(
            f"{len(record)} bytes that are not DF8 records: line noise, a damaged record, or"
            f" another data format (a DF8 stream counts after {DF8_TRUSTED_RUN} good records"
            " in a row)"
        )
    problem = df8_problem(record)
    if problem is not None:
        raise DecodeError(problem[1], problem[0])
    status, hr_low, spo2_raw, stat2 = record[0], record[1], record[2], record[3]
    qualifiers = tuple(
        flag
        for bit, flag in (
            (DF8_STAT2_SPOT_CHECK, SPOT_CHECK_FLAG),
            (DF8_STAT2_SMARTPOINT, SMARTPOINT_FLAG),
        )
        if stat2 & bit
    )
    hr = ((status & DF8_HR_HIGH_BITS) << 7) | hr_low
    if hr == HR_MISSING:
        rate = Reading(PULSE_RATE, None, BEAT_PER_MIN, flags=(UNAVAILABLE_FLAG,))
    else:
        rate = Reading(PULSE_RATE, Decimal(hr), BEAT_PER_MIN, flags=qualifiers)
    saturation = _with_flags(_spo2(spo2_raw, "SpO2", 2, ()), qualifiers)
    alarms = [alarm for bit, alarm in _DF8_STATUS_ALARMS if status & bit]
    if stat2 & DF8_STAT2_SENSOR_UNUSABLE:
        alarms.append(ALARM_SENSOR)
    if status & DF8_LOW_PERFUSION:
        alarms.append(ALARM_LOW_PERFUSION)
    elif status & DF8_MARGINAL_PERFUSION:
        alarms.append(ALARM_MARGINAL_PERFUSION)
    if stat2 & DF8_STAT2_BATTERY_CRITICAL:
        alarms.append(ALARM_BATTERY_CRITICAL)
    elif stat2 & DF8_STAT2_LOW_BATTERY:
        alarms.append(ALARM_LOW_BATTERY)
    return Decoded(readings=(rate, saturation), alarms=tuple(alarms))


# --- encoding (simulator and tests) ----------------------------------------------------


def _hr_value(hr: int | None) -> int:
    value = HR_MISSING if hr is None else hr
    if not (0 <= value <= HR_MAX or value == HR_MISSING):
        raise ValueError(f"heart rate {hr} outside 0..{HR_MAX}")
    return value


def _spo2_value(spo2: int | None) -> int:
    value = SPO2_MISSING if spo2 is None else spo2
    if not (0 <= value <= SPO2_MAX or value == SPO2_MISSING):
        raise ValueError(f"SpO2 {spo2} outside 0..100")
    return value


def encode_frame_df2(status: int, pleth: int, data: int) -> bytes:
    """One DF2 frame, checksum added; `status` is the whole byte (bit 7, SYNC included)."""
    head = bytes((DF2_FRAME_START, status, pleth, data))
    return head + bytes((checksum(head),))


def encode_frame_df7(status: int, pleth: int, data: int) -> bytes:
    """One DF7 frame (16-bit pleth), checksum added; `status` is the whole byte."""
    head = bytes((status, pleth >> 8, pleth & 0xFF, data))
    return head + bytes((checksum(head),))


def _data_bytes(
    hr: int | None, spo2: int | None, stat2: int | None, data: Mapping[int, int] | None
) -> list[int]:
    """The 25 data bytes; display and 8-beat values copy the 4-beat ones (a steady signal)."""
    hr_value, spo2_value = _hr_value(hr), _spo2_value(spo2)
    values = [0] * FRAMES_PER_PACKET
    for msb, lsb in (
        (FRAME_HR_MSB, FRAME_HR_LSB),
        (FRAME_E_HR_MSB, FRAME_E_HR_LSB),
        (FRAME_HR_D_MSB, FRAME_HR_D_LSB),
        (FRAME_E_HR_D_MSB, FRAME_E_HR_D_LSB),
    ):
        values[msb - 1], values[lsb - 1] = hr_value >> 7, hr_value & 0x7F
    for frame in (
        FRAME_SPO2,
        FRAME_SPO2_D,
        FRAME_SPO2_FAST,
        FRAME_SPO2_BEAT,
        FRAME_E_SPO2,
        FRAME_E_SPO2_D,
    ):
        values[frame - 1] = spo2_value
    if stat2 is not None:
        values[FRAME_STAT2 - 1] = stat2
    for frame, byte in (data or {}).items():
        if not 1 <= frame <= FRAMES_PER_PACKET:
            raise ValueError(f"frame number {frame} outside 1..25")
        values[frame - 1] = byte
    return values


def _statuses(status: int | Sequence[int]) -> list[int]:
    per_frame = [status] * FRAMES_PER_PACKET if isinstance(status, int) else list(status)
    if len(per_frame) != FRAMES_PER_PACKET:
        raise ValueError(f"{len(per_frame)} status values, a packet has 25 frames")
    for value in per_frame:
        if value & ~0x7E:
            raise ValueError(
                f"status flags 0x{value:02x}: only bits 6-1 (bit 7, SYNC are set here)"
            )
    return [STATUS_BIT7 | value | (SYNC if i == 0 else 0) for i, value in enumerate(per_frame)]


def _encode_packet(
    fmt: int,
    hr: int | None,
    spo2: int | None,
    pleth: Sequence[int],
    status: int | Sequence[int],
    stat2: int | None,
    data: Mapping[int, int] | None,
) -> bytes:
    if len(pleth) != FRAMES_PER_PACKET:
        raise ValueError(f"{len(pleth)} pleth samples, a packet has 25")
    top = 0xFF if fmt == 2 else 0xFFFF
    if any(not 0 <= s <= top for s in pleth):
        raise ValueError(f"DF{fmt} pleth samples are 0..{top}")
    encode = encode_frame_df2 if fmt == 2 else encode_frame_df7
    data_bytes = _data_bytes(hr, spo2, stat2, data)
    return b"".join(
        encode(s, p, d) for s, p, d in zip(_statuses(status), pleth, data_bytes, strict=True)
    )


def encode_packet_df2(
    hr: int | None,
    spo2: int | None,
    pleth: Sequence[int],
    status: int | Sequence[int] = PERFUSION_GREEN,
    *,
    data: Mapping[int, int] | None = None,
) -> bytes:
    """A DF2 packet as the oximeter sends it; None for "no value" (511 / 127).

    `status`: flag bits (SNSD, ARTF, OOT, SNSA, perfusion) for all frames or one per frame;
    bit 7 and frame 1's SYNC are added. `data` overrides data bytes by frame number.
    """
    return _encode_packet(2, hr, spo2, pleth, status, None, data)


def encode_packet_df7(
    hr: int | None,
    spo2: int | None,
    pleth: Sequence[int],
    status: int | Sequence[int] = PERFUSION_GREEN,
    *,
    stat2: int = 0,
    data: Mapping[int, int] | None = None,
) -> bytes:
    """A DF7 packet (16-bit pleth samples, STAT2 in frame 8); see encode_packet_df2."""
    return _encode_packet(7, hr, spo2, pleth, status, stat2, data)


def encode_record_df8(hr: int | None, spo2: int | None, status: int = 0, stat2: int = 0) -> bytes:
    """A DF8 record; `status` takes the DF8_* flag bits (bit 7 and HR bits 8-7 are added)."""
    if status & ~DF8_STATUS_FLAGS:
        raise ValueError(f"DF8 status flags 0x{status:02x}: only 0x7C are flags")
    if not 0 <= stat2 < 0x80 or stat2 & DF8_STAT2_RESERVED:
        raise ValueError(f"DF8 STAT2 0x{stat2:02x}: only 0x2F are defined bits")
    hr_value = _hr_value(hr)
    return bytes(
        (DF8_STATUS_BIT7 | status | (hr_value >> 7), hr_value & 0x7F, _spo2_value(spo2), stat2)
    )


# Numerics 3 times a second are more than the county needs: at most one a second goes up
# (every packet is still stored on the box). DF8's one record a second goes up as it is.
_ONCE_A_SECOND = Uplink(every_s=1.0)
_PACKETS = Yields(numerics=True, waves=True, alarms=True)


def _oximeter(
    id: str,
    summary: str,
    framer: Callable[[], Framer],
    decode: Decoder,
    yields: Yields = _PACKETS,
    uplink: Uplink = _ONCE_A_SECOND,
) -> Driver:
    """One data format's declaration: the same port, profile and binding for all three."""
    return Driver(
        id=id,
        summary=summary,
        source=SerialPort(SERIAL_SETTINGS),
        framer=framer,
        decoder_for=every_channel(decode),
        yields=yields,
        profile="MDC_DEV_SPEC_PROFILE_PULS_OXIM",
        binding=Binding.MONITOR,
        results=Results.LIVE,
        uplink=uplink,
    )


DECLARATIONS = (
    _oximeter(
        "nonin-df2",
        "Nonin OEM III Data Format #2: 5-byte frames, 3 packets/s, 8-bit pleth",
        functools.partial(PacketFramer, 2),
        decode_packet_df2,
    ),
    _oximeter(
        "nonin-df7",
        "Nonin Data Format #7: 5-byte frames, 3 packets/s, 16-bit pleth",
        functools.partial(PacketFramer, 7),
        decode_packet_df7,
    ),
    _oximeter(
        "nonin-df8",
        "Nonin Data Format #8: one 4-byte record a second",
        RecordFramer,
        decode_record_df8,
        yields=Yields(numerics=True, alarms=True),
        uplink=Uplink(),
    ),
)
