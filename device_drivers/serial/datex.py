"""GE / Datex-Ohmeda S/5 computer interface ("datex-s5"): framing, records, requests.

Monitors: AS/3, CS/3, S/5, Cardiocap/5, CARESCAPE B-series. Source: GE's "S/5 Computer
Interface Specification" M1017617 and "S/5 DRI Specification" 8005313 ("the
specification" below); the tables the code uses are in docs/protocols/datex-s5.md.

The monitor sends nothing until asked: `S5Conversation` sends a displayed-values request
(and, if configured, a waveform request) when the port opens and again when the monitor
falls silent. Everything else here is pure: bytes in, frames / readings out.

Wire format (the specification's framing): `7E | record | checksum | 7E`. A 0x7E or 0x7D in
the record **or the checksum** goes out as 0x7D followed by the byte with bit 5 cleared. The
checksum is the 8-bit sum of the record bytes before escaping. `FrameReader` cuts the stream
at every 0x7E and undoes the escapes; it emits the unescaped body *including* the checksum
byte, so a frame with a wrong checksum still reaches the recorder, where `decode_frame`
rejects it with a `DecodeError` and the bytes are kept in quarantine (never silently
dropped).

Record (little-endian, packed, the specification's record header): a 40-byte header (r_len,
r_nbr, dri_level, plug_id, r_time, reserved, r_maintype, 8 subrecord descriptors {sr_offset,
sr_type} ended by sr_type 0xFF) and a data area the sr_offsets point into.

- Main type 0 (physiological database): subrecords 1 displayed values, 2 10-s trend,
  3 60-s trend (the trends are flagged "trend"), each 278 bytes: time, 270 bytes of
  class data, marker, reserved, cl_drilvl_subt (bits 8-11 = class). Only the basic class
  is decoded; its groups are gated by their status bits (bit 0 module exists, bit 1
  measurement active): a group without both gives no readings, since a monitor with a
  hemodynamic module reports all six pressure channels as existing whether or not a
  transducer is plugged in.
- Main type 1 (waveforms): each subrecord is {act_len int16, status uint16, label
  uint16} and act_len int16 samples. This layout was not checked in the specification
  first-hand; it is the `wf_hdr` struct as VSCapture (xeonfusion/VSCapture, LGPL, read
  only), wei2374/monitor_serial `datex.h` and a Go DRI implementation all read it. Sample
  rates and units (ECG 300/s in µV; invasive pressures 100/s in 1/100 mmHg; pleth 100/s in
  1/100 %; gases 25/s in 1/100 %) are as the same sources quote the DRI specification's
  table. Caveat: VSCapture scales ECG by 0.01 where the Go source says µV; we follow the
  latter and have no capture to settle it (no raw S/5 capture is published).
- Main types 4, 5, 8 (alarms, network, anaesthesia record) exist only on the network
  interface: a record of those types is valid but not decoded here (empty result).

Values are int16 in the units of the specification's basic-class group table, kept exact as
Decimal (1/100 mmHg -> mmHg by moving the decimal point). Anything <= -32001 is a marker,
never a measurement: the reading then has value None and a flag naming the marker
("invalid", "not-updated", "discontinuity", "under-range", "over-range", "not-calibrated",
or "marker" for an undocumented one).

Time: r_time and the subrecord time are "seconds since 1970-01-01" on the monitor's own
clock, which has no time zone setting: the count is the monitor's wall clock, not UTC.
It is decoded as a naive datetime of that wall clock (model.Reading: device_time is the
device's own clock, naive); 0 means "no time" (None).

EtCO2/FiCO2 arrive in 1/100 % with the ambient pressure in 1/10 mmHg; they are reported
in mmHg (et % x ambient mmHg / 100, rounded to 0.1 mmHg), or in % when the monitor
gives no ambient pressure, so no value is ever lost for want of the other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

import serial

from device_drivers.declaration import (
    Binding,
    Driver,
    Results,
    SerialLine,
    SerialPort,
    Yields,
    every_channel,
)
from device_drivers.serial.port import SerialSettings
from edge_agent.model import Decoded, DecodeError, Reading, Waveform

# --- line and framing (the specification; docs/protocols/datex-s5.md) --------------------

# 19200 8E1 with RTS/CTS; "the settings cannot be changed on the monitor". CARESCAPE
# with software >= 3 can also run 115200 (a config baudrate overrides the speed).
SERIAL_LINE = SerialLine(
    baudrate=19200,
    bytesize=serial.EIGHTBITS,
    parity=serial.PARITY_EVEN,
    stopbits=serial.STOPBITS_ONE,
    rtscts=True,
)
SERIAL_SETTINGS = SerialSettings.on("", SERIAL_LINE)


def serial_settings(port: str) -> SerialSettings:
    """SERIAL_SETTINGS for one port (a fresh object: SerialSettings is mutable)."""
    return dataclasses.replace(SERIAL_SETTINGS, port=port)


FLAG = 0x7E
ESCAPE = 0x7D
BIT5 = 0x20

HEADER_LEN = 40
# The serial interface's largest record is 1490 bytes (40-byte header + 1450-byte data
# area in the DRI record struct); the framer allows a good margin above it before it
# treats a run without a flag as noise and cuts it into quarantine-sized pieces.
MAX_RECORD = 1490
MAX_FRAME = 4096


class FrameReader:
    """Unescaped frame bodies (record + checksum byte) out of the serial byte stream.

    Every 0x7E ends whatever was collected since the last one; empty bodies (the flag
    pair between two frames) are skipped. Bytes that are not a good frame (line noise,
    the tail of a frame cut by opening the port mid-record) are still emitted, so the
    decoder rejects them into quarantine. An escape right before a flag (an aborted
    frame) is kept as a literal 0x7D so that body fails its checksum. A body longer than
    `max_frame` is emitted in `max_frame` pieces to bound memory. The output depends only
    on the stream, not on how reads split it.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._max = max_frame
        self._buf = bytearray()
        self._escaped = False

    @property
    def pending(self) -> int:
        """Bytes held for a frame not yet complete (the decode CLI reports them)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        buf = self._buf
        for byte in data:
            if byte == FLAG:
                if self._escaped:
                    buf.append(ESCAPE)
                    self._escaped = False
                if buf:
                    frames.append(bytes(buf))
                    buf.clear()
                continue
            if self._escaped:
                buf.append(byte | BIT5)
                self._escaped = False
            elif byte == ESCAPE:
                self._escaped = True
                continue
            else:
                buf.append(byte)
            if len(buf) >= self._max:
                frames.append(bytes(buf))
                buf.clear()
        return frames


def checksum(record: bytes) -> int:
    """The 8-bit sum of the record bytes, before escaping (the specification's checksum)."""
    return sum(record) & 0xFF


def encode_frame(record: bytes) -> bytes:
    """`7E record checksum 7E`, with 7E/7D escaped in the record and the checksum."""
    out = bytearray([FLAG])
    for byte in (*record, checksum(record)):
        if byte in (FLAG, ESCAPE):
            out += bytes((ESCAPE, byte & ~BIT5 & 0xFF))
        else:
            out.append(byte)
    out.append(FLAG)
    return bytes(out)


# --- records (the specification's record header) -----------------------------------------

MT_PHDB = 0
MT_WAVE = 1
MT_ALARM = 4
MT_NETWORK = 5
MT_ANAESTHESIA_RECORD = 8
MAIN_TYPES = {
    MT_PHDB: "physiological data",
    MT_WAVE: "waveforms",
    MT_ALARM: "alarms",
    MT_NETWORK: "patient/network",
    MT_ANAESTHESIA_RECORD: "anaesthesia record events",
}
SR_END = 0xFF
MAX_SUBRECORDS = 8

# Interface levels (dri_level) and the year each one came with; 0 and 1 are unsupported.
LEVELS: dict[int, str] = {
    2: "'95",
    3: "'97",
    4: "'98",
    5: "'99",
    6: "'01",
    7: "'02",
    8: "'03",
    9: "'05",
    10: "'09",
    11: "'15",
}

_HEADER = struct.Struct("<hBBHIBBHh")  # r_len .. r_maintype: 16 bytes
_DESCRIPTOR = struct.Struct("<hB")  # sr_offset, sr_type


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """A record's 40-byte header; `subrecords` are (sr_type, offset into the record)."""

    r_len: int
    r_nbr: int
    dri_level: int
    plug_id: int
    r_time: int
    maintype: int
    subrecords: tuple[tuple[int, int], ...]


def record_of(frame: bytes) -> bytes:
    """The record inside an unescaped frame body, once its checksum byte agrees."""
    if len(frame) < 2:
        raise DecodeError(f"frame of {len(frame)} byte(s) holds no record and checksum", 0)
    record, got = frame[:-1], frame[-1]
    want = checksum(record)
    if got != want:
        raise DecodeError(
            f"checksum 0x{got:02X} does not match the record's sum 0x{want:02X}", len(record)
        )
    return record


def parse_header(record: bytes) -> RecordHeader:
    """The header of a record (no checksum byte), checked against the record's length."""
    if len(record) < HEADER_LEN:
        raise DecodeError(
            f"record of {len(record)} bytes is shorter than the {HEADER_LEN}-byte header",
            len(record),
        )
    r_len, r_nbr, level, plug_id, r_time, _, _, _, maintype = _HEADER.unpack_from(record)
    if r_len != len(record):
        raise DecodeError(f"r_len says {r_len} bytes, the record has {len(record)}", 0)
    if maintype not in MAIN_TYPES:
        raise DecodeError(f"unknown record main type {maintype}", 14)
    subrecords: list[tuple[int, int]] = []
    data_len = r_len - HEADER_LEN
    for i in range(MAX_SUBRECORDS):
        at = 16 + i * _DESCRIPTOR.size
        offset, sr_type = _DESCRIPTOR.unpack_from(record, at)
        if sr_type == SR_END:
            break
        if not 0 <= offset < data_len:
            raise DecodeError(
                f"subrecord {i} (type {sr_type}) at data offset {offset} is outside the "
                f"{data_len}-byte data area",
                at,
            )
        subrecords.append((sr_type, HEADER_LEN + offset))
    return RecordHeader(r_len, r_nbr, level, plug_id, r_time, maintype, tuple(subrecords))


def encode_record(
    maintype: int,
    subrecords: Sequence[tuple[int, bytes]],
    *,
    level: int,
    r_time: int = 0,
    r_nbr: int = 0,
    plug_id: int = 0,
) -> bytes:
    """A record (no checksum, not framed): header + the subrecords back to back.

    Used for the requests we send and by the simulator for what the monitor sends.
    Descriptors after the 0xFF end marker are zero, as the reserved fields ("zero when
    sending", the specification's header table).
    """
    if len(subrecords) > MAX_SUBRECORDS:
        raise ValueError(f"a record holds at most {MAX_SUBRECORDS} subrecords")
    data = bytearray()
    descriptors = bytearray()
    for sr_type, body in subrecords:
        descriptors += _DESCRIPTOR.pack(len(data), sr_type)
        data += body
    if len(subrecords) < MAX_SUBRECORDS:
        descriptors += _DESCRIPTOR.pack(0, SR_END)
    descriptors += bytes(MAX_SUBRECORDS * _DESCRIPTOR.size - len(descriptors))
    r_len = HEADER_LEN + len(data)
    if r_len > 0x7FFF:
        raise ValueError(f"record of {r_len} bytes does not fit r_len (int16)")
    header = _HEADER.pack(r_len, r_nbr, level, plug_id, r_time, 0, 0, 0, maintype)
    return header + bytes(descriptors) + bytes(data)


# --- requests (the specification's request subrecord, waveform request) -----------------

PHDB_REQUEST = 0
PHDB_DISPLAYED = 1
PHDB_TREND_10S = 2
PHDB_TREND_60S = 3
PHDB_AUX_INFO = 4
PHDB_SUBRECORD_LEN = 278
CLASS_DATA_LEN = 270

# phdb_class_bf: basic is requested by default (0); the other bits are ORed in.
CLASS_BASIC = 0x0000
CLASS_DENY_BASIC = 0x0001
CLASS_EXT1 = 0x0002
CLASS_EXT2 = 0x0004
CLASS_EXT3 = 0x0008

# A monitor may ignore a request at a level it does not support; the newest first gets
# the most a monitor can give (the basic class layout is the same at every level).
DEFAULT_LEVELS: tuple[int, ...] = (11, 10, 9, 8, 7, 6, 5, 4, 3, 2)
# Displayed values at the shortest period the monitor allows (tx_ival >= 5 s).
DEFAULT_INTERVAL_S = 5

_PHDB_REQUEST = struct.Struct("<BhIh")  # 9 bytes
WAVE_REQUEST_LEN = 32
WF_START = 0
WF_STOP = 1
# The serial line carries at most 600 samples/s in all (CARESCAPE >= 3 at 115200 lifts it).
MAX_SAMPLES_PER_S = 600


def _check_level(level: int) -> None:
    if level not in LEVELS:
        raise ValueError(f"dri_level {level} is not an interface level (2..11)")


def encode_request_phdb(
    record_type: int, interval_s: int, classes: int = CLASS_BASIC, level: int = 8
) -> bytes:
    """A framed physiological-database transmission request.

    `interval_s`: -1 one transmission, 0 stop, >= 5 period in seconds (any positive value
    starts the 10-s / 60-s trends).
    """
    _check_level(level)
    if record_type not in (PHDB_DISPLAYED, PHDB_TREND_10S, PHDB_TREND_60S):
        raise ValueError(f"phdb_rcrd_type {record_type}: only 1, 2 or 3 can be requested")
    if record_type == PHDB_DISPLAYED and interval_s not in (-1, 0) and interval_s < 5:
        raise ValueError(f"tx_ival {interval_s}: use -1 (once), 0 (stop) or >= 5 seconds")
    if not -1 <= interval_s <= 0x7FFF:
        raise ValueError(f"tx_ival {interval_s} does not fit int16 (or is below -1)")
    body = _PHDB_REQUEST.pack(record_type, interval_s, classes, 0)
    return encode_frame(encode_record(MT_PHDB, [(PHDB_REQUEST, body)], level=level))


def encode_request_displayed(
    interval_s: int = DEFAULT_INTERVAL_S, classes: int = CLASS_BASIC, level: int = 8
) -> bytes:
    """A framed request for displayed values every `interval_s` seconds."""
    return encode_request_phdb(PHDB_DISPLAYED, interval_s, classes, level)


def encode_request_waves(wave_ids: Iterable[int], start: bool = True, *, level: int = 8) -> bytes:
    """A framed waveform request: start (or stop) streaming up to 8 waveforms.

    Starting more than the line's 600 samples/s (e.g. ECG 300 + pleth 100 is fine, three
    ECGs are not) raises ValueError rather than asking for what cannot arrive.
    """
    _check_level(level)
    ids = list(wave_ids)
    if len(ids) > 8:
        raise ValueError(f"{len(ids)} waveforms requested; a request holds at most 8")
    if any(not 0 < w < SR_END for w in ids):
        raise ValueError(f"waveform ids must be 1..254, got {ids}")
    if start:
        total = sum(WAVES[w].rate_hz for w in ids if w in WAVES)
        if total > MAX_SAMPLES_PER_S:
            raise ValueError(f"{total:g} samples/s requested; the serial line carries 600")
    types = bytes(ids) + bytes([SR_END] * (8 - len(ids)))
    body = struct.pack("<hh", WF_START if start else WF_STOP, 0) + types + bytes(16 + 4)
    assert len(body) == WAVE_REQUEST_LEN
    return encode_frame(encode_record(MT_WAVE, [(0, body)], level=level))


# --- values ------------------------------------------------------------------------------

MARKER_LIMIT = -32001  # anything <= -32001 is a marker, never a measurement
MARKERS: dict[int, str] = {
    -32767: "invalid",
    -32766: "not-updated",
    -32765: "discontinuity",  # VSCapture's name; not in the GE table we have
    -32764: "under-range",
    -32763: "over-range",
    -32762: "not-calibrated",
}
TREND_FLAG = "trend"

STATUS_EXISTS = 0x1
STATUS_ACTIVE = 0x2

MMHG = "MDC_DIM_MMHG"
PERCENT = "MDC_DIM_PERCENT"
DEGC = "MDC_DIM_DEGC"
BPM = "MDC_DIM_BEAT_PER_MIN"
RPM = "MDC_DIM_RESP_PER_MIN"
MICRO_VOLT = "MDC_DIM_MICRO_VOLT"

_EPOCH = dt.datetime(1970, 1, 1)
_TENTH = Decimal("0.1")


def _device_time(seconds: int) -> dt.datetime | None:
    """The monitor's wall clock (module doc: its Unix-like count has no zone)."""
    return None if seconds == 0 else _EPOCH + dt.timedelta(seconds=seconds)


def _scaled(raw: int, exponent: int) -> tuple[Decimal | None, tuple[str, ...]]:
    if raw <= MARKER_LIMIT:
        return None, (MARKERS.get(raw, "marker"),)
    return Decimal(raw).scaleb(exponent), ()


# Invasive pressure label -> (sys, dia, mean) metrics, None where the site has no
# standard term we could confirm (CVP and ICP are read as means, as monitors show them).
_GENERIC_PRESSURE = ("MDC_PRESS_BLD_SYS", "MDC_PRESS_BLD_DIA", "MDC_PRESS_BLD_MEAN")
PRESSURE_SITES: dict[int, tuple[str, tuple[str | None, str | None, str | None]]] = {
    1: ("ART", ("MDC_PRESS_BLD_ART_SYS", "MDC_PRESS_BLD_ART_DIA", "MDC_PRESS_BLD_ART_MEAN")),
    2: ("CVP", (None, None, "MDC_PRESS_BLD_VEN_CENT_MEAN")),
    3: (
        "PA",
        ("MDC_PRESS_BLD_ART_PULM_SYS", "MDC_PRESS_BLD_ART_PULM_DIA", "MDC_PRESS_BLD_ART_PULM_MEAN"),
    ),
    4: (
        "RAP",
        (
            "MDC_PRESS_BLD_ATR_RIGHT_SYS",
            "MDC_PRESS_BLD_ATR_RIGHT_DIA",
            "MDC_PRESS_BLD_ATR_RIGHT_MEAN",
        ),
    ),
    5: (
        "RVP",
        (
            "MDC_PRESS_BLD_VENT_RIGHT_SYS",
            "MDC_PRESS_BLD_VENT_RIGHT_DIA",
            "MDC_PRESS_BLD_VENT_RIGHT_MEAN",
        ),
    ),
    6: (
        "LAP",
        ("MDC_PRESS_BLD_ATR_LEFT_SYS", "MDC_PRESS_BLD_ATR_LEFT_DIA", "MDC_PRESS_BLD_ATR_LEFT_MEAN"),
    ),
    7: ("ICP", (None, None, "MDC_PRESS_INTRA_CRAN")),
    8: (
        "ABP",
        ("MDC_PRESS_BLD_ART_ABP_SYS", "MDC_PRESS_BLD_ART_ABP_DIA", "MDC_PRESS_BLD_ART_ABP_MEAN"),
    ),
    # 9..14 are the channel names P1..P6: no site, the generic blood pressure terms.
}
_ARTERIAL_SITES = {1, 8}  # their pulse rate is the arterial line's

# Temperature label -> metric; sites without a term we could confirm (BLAD, SURF, the
# channel names T1..T4) fall back to the generic MDC_TEMP.
TEMPERATURE_SITES: dict[int, tuple[str, str]] = {
    1: ("ESO", "MDC_TEMP_ESOPH"),
    2: ("NASO", "MDC_TEMP_NASOPH"),
    3: ("TYMP", "MDC_TEMP_TYMP"),
    4: ("RECT", "MDC_TEMP_RECT"),
    5: ("BLAD", "MDC_TEMP"),
    6: ("AXIL", "MDC_TEMP_AXILLA"),
    7: ("SKIN", "MDC_TEMP_SKIN"),
    8: ("AIRW", "MDC_TEMP_AWAY"),
    9: ("ROOM", "MDC_TEMP_ROOM"),
    10: ("MYO", "MDC_TEMP_MYO"),
    15: ("CORE", "MDC_TEMP_CORE"),
    16: ("SURF", "MDC_TEMP"),
}

# ECG status bits 3-6: where the displayed heart rate comes from.
HR_SOURCES: dict[int, str] = {
    0: "none",
    1: "ecg",
    2: "p1",
    3: "p2",
    4: "p3",
    5: "p4",
    6: "pleth",
    7: "p5",
    8: "p6",
}
# ECG label: the lead of channels 1-3 in 4-bit nibbles.
ECG_LEADS: dict[int, str] = {1: "I", 2: "II", 3: "III", 4: "aVR", 5: "aVL", 6: "aVF", 7: "V"}

# Offsets of the basic class groups in the 270 bytes of class data (the group table).
_ECG = 0
_P1_TO_P4 = (16, 30, 44, 58)
_NIBP = 72
_T1_TO_T4 = (86, 94, 102, 110)
_SPO2 = 118
_CO2 = 132
_O2 = 146
_P5_P6 = (240, 254)
_GROUP = struct.Struct("<IH")
_I16 = struct.Struct("<h")


class _Basic:
    """Readings out of one basic-class subrecord (a helper of decode_frame)."""

    def __init__(
        self, record: bytes, at: int, when: dt.datetime | None, flags: tuple[str, ...]
    ) -> None:
        self._record = record
        self._at = at  # start of the 270 bytes of class data
        self._when = when
        self._flags = flags
        self.readings: list[Reading] = []

    def _header(self, group: int) -> tuple[int, int, bool]:
        status, label = _GROUP.unpack_from(self._record, self._at + group)
        live = status & (STATUS_EXISTS | STATUS_ACTIVE) == STATUS_EXISTS | STATUS_ACTIVE
        return status, label, live

    def raw(self, group: int, index: int) -> int:
        """Value `index` of a group with a 6-byte header."""
        value: int = _I16.unpack_from(self._record, self._at + group + 6 + 2 * index)[0]
        return value

    def add(
        self, metric: str, raw: int, exponent: int, unit: str, extra: tuple[str, ...] = ()
    ) -> None:
        value, marker = _scaled(raw, exponent)
        self.readings.append(Reading(metric, value, unit, self._when, self._flags + extra + marker))

    def ecg(self) -> None:
        status, _, live = self._header(_ECG)
        if not live:
            return
        source = (status >> 3) & 0xF
        if source in (0, 1):
            self.add("MDC_ECG_HEART_RATE", self.raw(_ECG, 0), 0, BPM)
        else:
            # The monitor shows the rate of its selected source in the ECG group; from
            # a pressure line or the pleth it is a pulse rate, not an ECG heart rate.
            name = HR_SOURCES.get(source, str(source))
            self.add("MDC_PULS_RATE", self.raw(_ECG, 0), 0, BPM, (f"hr-source-{name}",))
        self.add("MDC_TTHOR_RESP_RATE", self.raw(_ECG, 4), 0, RPM)

    def pressure(self, group: int) -> None:
        _, label, live = self._header(group)
        if not live:
            return
        metrics = PRESSURE_SITES.get(label, ("", _GENERIC_PRESSURE))[1]
        for index, metric in enumerate(metrics):
            if metric is not None:
                self.add(metric, self.raw(group, index), -2, MMHG)
        if label in _ARTERIAL_SITES:
            self.add("MDC_BLD_PULS_RATE_INV", self.raw(group, 3), 0, BPM)

    def nibp(self) -> None:
        if not self._header(_NIBP)[2]:
            return
        self.add("MDC_PRESS_BLD_NONINV_SYS", self.raw(_NIBP, 0), -2, MMHG)
        self.add("MDC_PRESS_BLD_NONINV_DIA", self.raw(_NIBP, 1), -2, MMHG)
        self.add("MDC_PRESS_BLD_NONINV_MEAN", self.raw(_NIBP, 2), -2, MMHG)
        self.add("MDC_PULS_RATE_NON_INV", self.raw(_NIBP, 3), 0, BPM)

    def temperature(self, group: int) -> None:
        _, label, live = self._header(group)
        if not live:
            return
        metric = TEMPERATURE_SITES.get(label, ("", "MDC_TEMP"))[1]
        self.add(metric, self.raw(group, 0), -2, DEGC)

    def spo2(self) -> None:
        if not self._header(_SPO2)[2]:
            return
        self.add("MDC_PULS_OXIM_SAT_O2", self.raw(_SPO2, 0), -2, PERCENT)
        self.add("MDC_PULS_OXIM_PULS_RATE", self.raw(_SPO2, 1), 0, BPM)

    def co2(self) -> None:
        if not self._header(_CO2)[2]:
            return
        ambient = self.raw(_CO2, 3)
        for metric, raw in (
            ("MDC_AWAY_CO2_ET", self.raw(_CO2, 0)),
            ("MDC_CONC_AWAY_CO2_INSP", self.raw(_CO2, 1)),
        ):
            if raw <= MARKER_LIMIT or ambient <= 0:
                # No ambient pressure to convert with: the concentration as sent, in %.
                self.add(metric, raw, -2, MMHG if raw <= MARKER_LIMIT else PERCENT)
                continue
            # et (1/100 %) x amb_press (1/10 mmHg) / 100 -> mmHg, i.e. raw x raw / 10^5.
            mmhg = (Decimal(raw) * Decimal(ambient)).scaleb(-5)
            value = mmhg.quantize(_TENTH, rounding=ROUND_HALF_EVEN)
            self.readings.append(Reading(metric, value, MMHG, self._when, self._flags))
        self.add("MDC_CO2_RESP_RATE", self.raw(_CO2, 2), 0, RPM)

    def o2(self) -> None:
        if not self._header(_O2)[2]:
            return
        self.add("MDC_CONC_AWAY_O2_ET", self.raw(_O2, 0), -2, PERCENT)
        self.add("MDC_CONC_AWAY_O2_INSP", self.raw(_O2, 1), -2, PERCENT)

    def all(self) -> list[Reading]:
        self.ecg()
        for group in _P1_TO_P4:
            self.pressure(group)
        self.nibp()
        for group in _T1_TO_T4:
            self.temperature(group)
        self.spo2()
        self.co2()
        self.o2()
        for group in _P5_P6:
            self.pressure(group)
        return self.readings


def _phdb_readings(record: bytes, at: int, sr_type: int, r_time: int) -> list[Reading]:
    end = at + PHDB_SUBRECORD_LEN
    if end > len(record):
        raise DecodeError(
            f"physiological subrecord (type {sr_type}) needs {PHDB_SUBRECORD_LEN} bytes, "
            f"{len(record) - at} left",
            at,
        )
    (seconds,) = struct.unpack_from("<I", record, at)
    (cl_drilvl_subt,) = struct.unpack_from("<H", record, end - 2)
    if (cl_drilvl_subt >> 8) & 0xF != 0:
        return []  # ext1..ext3: not decoded (module doc)
    when = _device_time(seconds or r_time)
    flags = (TREND_FLAG,) if sr_type != PHDB_DISPLAYED else ()
    return _Basic(record, at + 4, when, flags).all()


@dataclass(frozen=True, slots=True)
class WaveSpec:
    name: str
    metric: str
    rate_hz: float
    unit: str
    scale: Decimal


_CENTI = Decimal("0.01")
# Waveform subrecord types (module doc for the sources). ECG channels carry no lead in
# the waveform record, hence the generic ECG term.
WAVE_ECG1, WAVE_ECG2, WAVE_ECG3 = 1, 2, 3
WAVE_INVP1, WAVE_INVP2, WAVE_INVP3, WAVE_INVP4 = 4, 5, 6, 7
WAVE_PLETH = 8
WAVE_CO2 = 9
WAVE_INVP5, WAVE_INVP6 = 16, 17
WAVES: dict[int, WaveSpec] = {
    WAVE_ECG1: WaveSpec("ECG1", "MDC_ECG_ELEC_POTL", 300.0, MICRO_VOLT, Decimal(1)),
    WAVE_ECG2: WaveSpec("ECG2", "MDC_ECG_ELEC_POTL", 300.0, MICRO_VOLT, Decimal(1)),
    WAVE_ECG3: WaveSpec("ECG3", "MDC_ECG_ELEC_POTL", 300.0, MICRO_VOLT, Decimal(1)),
    WAVE_INVP1: WaveSpec("INVP1", "MDC_PRESS_BLD", 100.0, MMHG, _CENTI),
    WAVE_INVP2: WaveSpec("INVP2", "MDC_PRESS_BLD", 100.0, MMHG, _CENTI),
    WAVE_INVP3: WaveSpec("INVP3", "MDC_PRESS_BLD", 100.0, MMHG, _CENTI),
    WAVE_INVP4: WaveSpec("INVP4", "MDC_PRESS_BLD", 100.0, MMHG, _CENTI),
    WAVE_PLETH: WaveSpec("PLETH", "MDC_PULS_OXIM_PLETH", 100.0, PERCENT, _CENTI),
    WAVE_CO2: WaveSpec("CO2", "MDC_CONC_AWAY_CO2", 25.0, PERCENT, _CENTI),
    WAVE_INVP5: WaveSpec("INVP5", "MDC_PRESS_BLD", 100.0, MMHG, _CENTI),
    WAVE_INVP6: WaveSpec("INVP6", "MDC_PRESS_BLD", 100.0, MMHG, _CENTI),
}
WAVE_HEADER = struct.Struct("<hHH")  # act_len, status, label


def _waveform(record: bytes, at: int, sr_type: int, r_time: int) -> Waveform | None:
    if at + WAVE_HEADER.size > len(record):
        raise DecodeError(
            f"waveform subrecord (type {sr_type}) header needs {WAVE_HEADER.size} bytes, "
            f"{len(record) - at} left",
            at,
        )
    count, _status, _label = WAVE_HEADER.unpack_from(record, at)
    start = at + WAVE_HEADER.size
    if count < 0 or start + 2 * count > len(record):
        raise DecodeError(
            f"waveform subrecord (type {sr_type}) says {count} samples, "
            f"{(len(record) - start) // 2} fit in the record",
            at,
        )
    spec = WAVES.get(sr_type)
    if spec is None:
        return None  # a waveform we have no units for (EEG, spirometry ...): not decoded
    # Samples <= MARKER_LIMIT are markers (gaps); they are kept as sent, in place.
    samples = struct.unpack_from(f"<{count}h", record, start)
    return Waveform(
        metric=spec.metric,
        rate_hz=spec.rate_hz,
        unit=spec.unit,
        samples=tuple(samples),
        scale=spec.scale,
        start_time=_device_time(r_time),
    )


def decode_frame(frame: bytes) -> Decoded:
    """One unescaped frame body (record + checksum, as FrameReader emits it) -> values.

    Raises DecodeError (and nothing else) with the byte offset in `frame` for a bad
    checksum, a header that does not fit the record, a subrecord outside the record.
    """
    record = record_of(frame)
    header = parse_header(record)
    readings: list[Reading] = []
    waveforms: list[Waveform] = []
    if header.maintype == MT_PHDB:
        for sr_type, at in header.subrecords:
            if sr_type in (PHDB_DISPLAYED, PHDB_TREND_10S, PHDB_TREND_60S):
                readings += _phdb_readings(record, at, sr_type, header.r_time)
            # 0 (a request) and 4 (auxiliary info: measurement times, BSA): no values.
    elif header.maintype == MT_WAVE:
        for sr_type, at in header.subrecords:
            wave = _waveform(record, at, sr_type, header.r_time)
            if wave is not None:
                waveforms.append(wave)
    return Decoded(readings=tuple(readings), waveforms=tuple(waveforms))


# --- the conversation --------------------------------------------------------------------


def _answer(frame: bytes) -> RecordHeader | None:
    """The header of a good data record from the monitor, else None."""
    try:
        header = parse_header(record_of(frame))
    except DecodeError:
        return None
    return header if header.maintype in (MT_PHDB, MT_WAVE) else None


class S5Conversation:
    """Asks the monitor for displayed values (and waveforms) and keeps it answering.

    - opened: a displayed-values request every `interval_s` (default 5 s, the shortest
      the monitor allows) at the first of `levels`, plus the waveform request if `waves`
      is given (off by default: ECG + pleth are ~400 samples/s, a recorder row every few
      hundred milliseconds; turn it on where waveforms are wanted).
    - probing: a monitor answers only levels it supports (the specification), so with no
      answer for `answer_timeout_s` the requests go out again at the next level, round and
      round (a monitor still booting is found when it comes up).
    - locked: the first good record fixes the level. Nothing for `silence_s` (a reboot
      drops the subscription, a cable was replugged) sends the requests again and goes
      back to probing from that level.
    """

    def __init__(
        self,
        *,
        interval_s: int = DEFAULT_INTERVAL_S,
        levels: Sequence[int] = DEFAULT_LEVELS,
        waves: Sequence[int] = (),
        tick_s: float = 5.0,
        answer_timeout_s: float = 10.0,
        silence_s: float = 15.0,
    ) -> None:
        if not levels:
            raise ValueError("at least one interface level to try")
        for level in levels:
            _check_level(level)
        self.tick_s = tick_s
        self._interval = interval_s
        self._levels = tuple(levels)
        self._waves = tuple(waves)
        self._answer_timeout = answer_timeout_s
        self._silence = silence_s
        # Build once: a bad interval or waveform set fails at construction, not at open.
        self._requests_at = {level: self._build(level) for level in self._levels}
        self._index = 0
        self.level: int | None = None  # the level the monitor answers, once known
        self._asked_at = 0.0
        self._heard_at = 0.0

    def _build(self, level: int) -> list[bytes]:
        frames = [encode_request_displayed(self._interval, CLASS_BASIC, level)]
        if self._waves:
            frames.append(encode_request_waves(self._waves, level=level))
        return frames

    def _ask(self, now: float) -> list[bytes]:
        self._asked_at = now
        return list(self._requests_at[self._levels[self._index]])

    def opened(self, now: float) -> list[bytes]:
        self._index = 0
        self.level = None
        return self._ask(now)

    def received(self, frame: bytes, now: float) -> list[bytes]:
        header = _answer(frame)
        if header is None:
            return []
        self._heard_at = now
        if self.level is None:
            if header.dri_level in self._levels:
                self._index = self._levels.index(header.dri_level)
            self.level = self._levels[self._index]
        return []

    def tick(self, now: float) -> list[bytes]:
        if self.level is not None:
            if now - self._heard_at < self._silence:
                return []
            self.level = None  # ask again at the same level, then probe on
            return self._ask(now)
        if now - self._asked_at < self._answer_timeout:
            return []
        self._index = (self._index + 1) % len(self._levels)
        return self._ask(now)


DECLARATIONS = (
    Driver(
        id="datex-s5",
        summary="GE/Datex-Ohmeda S/5 computer interface: displayed values, ECG and pleth waves",
        source=SerialPort(
            SERIAL_LINE,
            # ECG 300/s + pleth 100/s: within the 600 samples/s the 19200 baud line
            # carries. A monitor answers a request at a level it supports within a
            # second; probing from level 11 down at 3 s a level finds a '03 (level 8)
            # S/5 in ~10 s.
            conversation=functools.partial(
                S5Conversation,
                waves=(WAVE_ECG1, WAVE_PLETH),
                tick_s=1.0,
                answer_timeout_s=3.0,
            ),
        ),
        framer=FrameReader,
        decoder_for=every_channel(decode_frame),
        yields=Yields(numerics=True, waves=True),
        profile="MDC_DEV_SPEC_PROFILE_HYDRA",
        binding=Binding.MONITOR,
        results=Results.LIVE,
    ),
)
