"""Masimo Radical-5 / Radical-7 / Rad-8 serial ASCII output ("ASCII 1"), one line a second.

Masimo operator's manuals (serial output "ASCII 1") and MD PnP / OpenICE's Radical
parsers, as docs/protocols/masimo.md sets them out: 9600 8N1; each line is `MM/dd/yy
HH:mm:ss` then space-separated `NAME=value` fields, ended by CR LF. The field set differs by
model and software (Rad-8 has no PVI, rainbow Radical-7s add SPHB, SPOC, EXC1 ...), so
fields are read by name, never by column: a fixed pattern (OpenICE's) misses Rad-8 lines.
Unknown names are skipped so a newer firmware's extra field does not cost the whole line.

What gets rejected (-> quarantine, with the byte offset): non-ASCII or control bytes,
a line without its leading time stamp (the tail of a line cut by a buffer overrun or a
framer cap), stray words, a field twice (two lines glued together when a CR was lost),
malformed or implausible numbers, and lines with no field we know.

Dashes (`---`, `--.-`, `+--`) mean "not available now" (probe off, still searching):
such a field gives a reading with no value and the flag "unavailable", so the trend shows
the gap. ALARM and EXC are hex bit fields mapped to DeviceAlarm per the bit tables in
docs/protocols/masimo.md (MD PnP `poxrad_discrete.h`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

from device_drivers.declaration import (
    Binding,
    Driver,
    Results,
    SerialLine,
    SerialPort,
    Yields,
    every_channel,
)
from edge_agent.model import Decoded, DecodeError, DeviceAlarm, Reading

MAX_LINE = 512  # a Radical-7 line is ~150 bytes; anything longer is not a line
UNAVAILABLE_FLAG = "unavailable"

_TERMINATORS = re.compile(rb"[\r\n]")


class LineFramer:
    """CR/LF-terminated lines out of a byte stream (serial_port.Framer).

    Lines are stripped and empty ones skipped. A run of more than `max_line` bytes
    without a terminator (line noise, a wrong baud rate) is cut into `max_line` pieces
    that are emitted as frames, so the garbage is kept in quarantine instead of growing
    the buffer or being dropped; the next terminator resynchronises. The output depends
    only on the stream, not on how reads split it.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max = max_line
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of a line not yet ended by CR or LF (the decode CLI reports them)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        self._buf.extend(data)
        frames: list[bytes] = []
        while True:
            match = _TERMINATORS.search(self._buf)
            if match is None:
                while len(self._buf) > self._max:
                    frames.append(bytes(self._buf[: self._max]))
                    del self._buf[: self._max]
                return frames
            line = bytes(self._buf[: match.start()])
            del self._buf[: match.end()]
            while len(line) > self._max:
                frames.append(line[: self._max])
                line = line[self._max :]
            line = line.strip()
            if line:
                frames.append(line)


@dataclass(frozen=True, slots=True)
class _Field:
    metric: str
    unit: str
    low: Decimal
    high: Decimal


# Ranges are the plausible span of each quantity (wider than Masimo's display ranges):
# a value outside them is a corrupted line, not a measurement: quarantine implausible
# values rather than storing them (docs/protocols/masimo.md).
FIELDS: dict[str, _Field] = {
    "SPO2": _Field("MDC_PULS_OXIM_SAT_O2", "MDC_DIM_PERCENT", Decimal(0), Decimal(100)),
    "BPM": _Field("MDC_PULS_OXIM_PULS_RATE", "MDC_DIM_BEAT_PER_MIN", Decimal(0), Decimal(300)),
    "PI": _Field("MDC_PULS_OXIM_PERF_REL", "MDC_DIM_PERCENT", Decimal(0), Decimal(100)),
    "SPCO": _Field("MDCX_MASIMO_SPCO", "MDC_DIM_PERCENT", Decimal(0), Decimal(100)),
    "SPMET": _Field("MDCX_MASIMO_SPMET", "MDC_DIM_PERCENT", Decimal(0), Decimal(100)),
    "SPHB": _Field("MDCX_MASIMO_SPHB", "MDC_DIM_G_PER_DL", Decimal(0), Decimal(30)),
    "DESAT": _Field("MDCX_MASIMO_DESAT", "MDC_DIM_DIMLESS", Decimal(0), Decimal(99)),
    "PIDELTA": _Field("MDCX_MASIMO_PI_DELTA", "MDC_DIM_PERCENT", Decimal(-100), Decimal(100)),
    "PVI": _Field("MDCX_MASIMO_PVI", "MDC_DIM_PERCENT", Decimal(0), Decimal(100)),
}

# ALARM bits (MD PnP `poxrad_discrete.h`; docs/protocols/masimo.md): (code, priority, text).
# 0x0010 "alarm active" is the summary of the others and is reported on its own only when no
# cause bit is set.
ALARM_BITS: dict[int, tuple[str, str, str]] = {
    0x0001: ("MASIMO_SPO2_HIGH", "high", "SpO2 high"),
    0x0002: ("MASIMO_SPO2_LOW", "high", "SpO2 low"),
    0x0004: ("MASIMO_PULSE_HIGH", "high", "pulse rate high"),
    0x0008: ("MASIMO_PULSE_LOW", "high", "pulse rate low"),
    0x0020: ("MASIMO_ALARM_SILENCED", "info", "alarms silenced"),
    0x0040: ("MASIMO_LOW_BATTERY", "medium", "low battery"),
    0x0100: ("MASIMO_SPCO_HIGH", "medium", "SpCO high"),
    0x0200: ("MASIMO_SPCO_LOW", "low", "SpCO low"),
    0x0400: ("MASIMO_SPMET_HIGH", "medium", "SpMet high"),
    0x0800: ("MASIMO_SPMET_LOW", "low", "SpMet low"),
    0x1000: ("MASIMO_DESAT_INDEX", "medium", "desaturation index alarm"),
    0x2000: ("MASIMO_PI_DELTA", "medium", "perfusion index rate of change"),
}
ALARM_ACTIVE = 0x0010
# Alarm bits about the patient's values (the rest: silenced, battery) - PCD-04 type SP.
_PHYSIOLOGICAL = frozenset(
    code
    for code, _, _ in ALARM_BITS.values()
    if code.split("_")[1] in ("SPO2", "PULSE", "SPCO", "SPMET", "DESAT", "PI")
)
_ALARM_ACTIVE_ONLY = ("MASIMO_ALARM_ACTIVE", "medium", "alarm active (cause not reported)")

# EXC bits (MD PnP `poxrad_discrete.h`; docs/protocols/masimo.md). 0x000800 "Masimo SET" is
# the normal full-SET mode, not a problem, and is never reported.
EXC_BITS: dict[int, tuple[str, str, str]] = {
    0x000001: ("MASIMO_EXC_NO_SENSOR", "medium", "no sensor"),
    0x000002: ("MASIMO_EXC_DEFECTIVE_SENSOR", "medium", "defective sensor"),
    0x000004: ("MASIMO_EXC_LOW_PERFUSION", "low", "low perfusion"),
    0x000008: ("MASIMO_EXC_PULSE_SEARCH", "low", "pulse search"),
    0x000010: ("MASIMO_EXC_INTERFERENCE", "low", "interference"),
    0x000020: ("MASIMO_EXC_SENSOR_OFF", "medium", "sensor off patient"),
    0x000040: ("MASIMO_EXC_AMBIENT_LIGHT", "low", "ambient light"),
    0x000080: ("MASIMO_EXC_UNRECOGNIZED_SENSOR", "medium", "unrecognized sensor"),
    0x000100: ("MASIMO_EXC_INCOMPATIBLE_SENSOR", "medium", "incompatible sensor"),
    0x000400: ("MASIMO_EXC_LOW_SIGNAL_IQ", "low", "low signal IQ"),
    0x001000: ("MASIMO_EXC_NO_CABLE", "medium", "no cable"),
    0x002000: ("MASIMO_EXC_CABLE_EXPIRED", "low", "cable life expired"),
    0x004000: ("MASIMO_EXC_INCOMPATIBLE_CABLE", "medium", "incompatible cable"),
    0x008000: ("MASIMO_EXC_UNRECOGNIZED_CABLE", "medium", "unrecognized cable"),
    0x010000: ("MASIMO_EXC_DEFECTIVE_CABLE", "medium", "defective cable"),
    0x020000: ("MASIMO_EXC_SENSOR_CALIBRATING", "info", "sensor calibrating"),
    0x040000: ("MASIMO_EXC_SENSOR_EXPIRED", "low", "sensor life expired"),
    0x080000: ("MASIMO_EXC_EMITTER_TEMPERATURE", "medium", "emitter temperature out of range"),
    0x100000: ("MASIMO_EXC_SENSOR_CURRENT_LIMIT", "low", "sensor current limit"),
    0x200000: ("MASIMO_EXC_SPCO_LOW_CONFIDENCE", "info", "SpCO low confidence"),
    0x400000: ("MASIMO_EXC_SPMET_LOW_CONFIDENCE", "info", "SpMet low confidence"),
}
EXC_MASIMO_SET = 0x000800

_DATE = re.compile(r"(\d{2})/(\d{2})/(\d{2})")
_TIME = re.compile(r"(\d{2}):(\d{2}):(\d{2})")
_NAME = re.compile(r"[A-Z][A-Z0-9]*")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")
_DASHES = re.compile(r"[+-]?-+(\.-+)?")
_HEX = re.compile(r"[0-9A-Fa-f]{1,8}")
_TOKEN = re.compile(r"\S+")


_NOT_PRINTABLE = re.compile(rb"[^\x20-\x7e\t\r\n]")


def _text(line: bytes) -> str:
    bad = _NOT_PRINTABLE.search(line)
    if bad is not None:
        raise DecodeError(f"not a Masimo ASCII line: byte 0x{line[bad.start()]:02x}", bad.start())
    return line.decode("ascii")


def _time_stamp(tokens: list[re.Match[str]]) -> dt.datetime:
    if len(tokens) < 2:
        raise DecodeError("no MM/DD/YY HH:MM:SS time stamp at the start of the line", 0)
    date, clock = _DATE.fullmatch(tokens[0].group()), _TIME.fullmatch(tokens[1].group())
    if date is None or clock is None:
        raise DecodeError(
            "no MM/DD/YY HH:MM:SS time stamp at the start of the line", tokens[0].start()
        )
    month, day, year = (int(g) for g in date.groups())
    hour, minute, second = (int(g) for g in clock.groups())
    try:
        # Two-digit year (MM/dd/yy): these monitors were made from 2000 on.
        return dt.datetime(2000 + year, month, day, hour, minute, second)  # device wall clock
    except ValueError as exc:
        raise DecodeError(
            f"bad time stamp {tokens[0].group()} {tokens[1].group()}: {exc}", tokens[0].start()
        ) from None


def _bits_to_alarms(
    value: int, table: dict[int, tuple[str, str, str]], kind: str, ignore: int
) -> list[DeviceAlarm]:
    alarms: list[DeviceAlarm] = []
    bit = 1
    while bit <= value:
        if value & bit and not bit & ignore:
            known = table.get(bit)
            if known is None:
                # An undocumented bit is still the device saying something: keep it visible.
                alarms.append(
                    DeviceAlarm(
                        f"MASIMO_{kind}_0x{bit:X}", "info", f"undocumented {kind} bit 0x{bit:X}"
                    )
                )
            else:
                alarms.append(DeviceAlarm(*known, physiological=known[0] in _PHYSIOLOGICAL))
        bit <<= 1
    return alarms


def decode_line(line: bytes) -> Decoded:
    """One Masimo ASCII line (with or without its CR LF) -> readings and device alarms."""
    text = _text(line)
    tokens = list(_TOKEN.finditer(text))
    if not tokens:
        raise DecodeError("empty line", 0)
    when = _time_stamp(tokens)
    readings: list[Reading] = []
    alarms: list[DeviceAlarm] = []
    seen: set[str] = set()
    known = 0
    for token in tokens[2:]:
        name, sep, raw = token.group().partition("=")
        if not sep or _NAME.fullmatch(name) is None:
            raise DecodeError(f"unexpected text {token.group()!r}", token.start())
        if name in seen:
            raise DecodeError(f"field {name} twice (two lines run together?)", token.start())
        seen.add(name)
        at = token.start() + len(name) + 1
        if name in ("ALARM", "EXC"):
            if _DASHES.fullmatch(raw):
                continue
            if _HEX.fullmatch(raw) is None:
                raise DecodeError(f"{name}={raw}: not a hex bit field", at)
            known += 1
            bits = int(raw, 16)
            if name == "ALARM":
                found = _bits_to_alarms(bits, ALARM_BITS, "ALARM", ALARM_ACTIVE)
                if bits & ALARM_ACTIVE and not any(a.priority != "info" for a in found):
                    found.insert(0, DeviceAlarm(*_ALARM_ACTIVE_ONLY))
            else:
                found = _bits_to_alarms(bits, EXC_BITS, "EXC", EXC_MASIMO_SET)
            alarms.extend(found)
            continue
        field = FIELDS.get(name)
        if field is None:
            continue  # SN, SPOC, RESVD, EXC1 ... (module doc: unknown names are skipped)
        known += 1
        value_text = raw[:-1] if raw.endswith("%") else raw
        if _DASHES.fullmatch(value_text):
            readings.append(Reading(field.metric, None, field.unit, when, (UNAVAILABLE_FLAG,)))
            continue
        if _NUMBER.fullmatch(value_text) is None:
            raise DecodeError(f"{name}={raw}: not a number", at)
        value = Decimal(value_text)
        if not field.low <= value <= field.high:
            raise DecodeError(f"{name}={raw}: outside {field.low}..{field.high}", at)
        readings.append(Reading(field.metric, value, field.unit, when))
    if not known:
        raise DecodeError("no Masimo fields (SPO2, BPM, PI, ALARM, EXC ...) in the line", 0)
    return Decoded(readings=tuple(readings), alarms=tuple(alarms))


MODELS: dict[str, tuple[str, ...]] = {
    # Field sets by model (docs/protocols/masimo.md), in the order the monitors print them.
    "radical-5": ("SPO2", "BPM", "PI", "ALARM", "EXC"),
    "radical-7": (
        "SN", "SPO2", "BPM", "PI", "SPCO", "SPMET", "DESAT", "PIDELTA", "PVI", "ALARM", "EXC",
    ),
    "rad-8": ("SN", "SPO2", "BPM", "PI", "SPCO", "SPMET", "DESAT", "PIDELTA", "ALARM", "EXC"),
}  # fmt: skip


def _format(name: str, value: Decimal | int | None) -> str:
    """One field's value in the monitor's own fixed-width format (docs/protocols/masimo.md)."""
    if name == "SPO2":
        return "---%" if value is None else f"{int(value):03d}%"
    if name in ("BPM", "PVI"):
        return "---" if value is None else f"{int(value):03d}"
    if name == "PI":
        return "--.--" if value is None else f"{Decimal(value):05.2f}"
    if name in ("SPCO", "SPMET"):
        return "--.-%" if value is None else f"{Decimal(value):04.1f}%"
    if name == "SPHB":
        return "--.-" if value is None else f"{Decimal(value):04.1f}"
    if name == "DESAT":
        return "--" if value is None else f"{int(value):02d}"
    if name == "PIDELTA":
        return "+--" if value is None else f"{int(value):+03d}"
    raise ValueError(f"no Masimo format for field {name}")


def encode_line(
    when: dt.datetime,
    values: dict[str, Decimal | int | None],
    *,
    model: str = "radical-7",
    alarm: int = 0,
    exc: int = 0,
    serial_number: str = "0000012345",
) -> bytes:
    """A line as the monitor prints it, CR LF included (for the simulator and tests).

    `values` maps field names (SPO2, BPM, PI, ...) to a value, or None for dashes; a
    field of the model that is missing from `values` prints as dashes too.
    """
    try:
        fields = MODELS[model]
    except KeyError:
        raise ValueError(f"unknown Masimo model {model!r} (known: {', '.join(MODELS)})") from None
    parts = [when.strftime("%m/%d/%y %H:%M:%S")]
    for name in fields:
        if name == "SN":
            parts.append(f"SN={serial_number}")
        elif name == "ALARM":
            parts.append(f"ALARM={alarm:04X}")
        elif name == "EXC":
            parts.append(f"EXC={exc:06X}")
        else:
            parts.append(f"{name}={_format(name, values.get(name))}")
    return (" ".join(parts) + "\r\n").encode("ascii")


DECLARATIONS = (
    Driver(
        id="masimo-ascii",
        summary="Masimo Radical-5/7, Rad-8 serial ASCII (one line a second)",
        # Masimo's serial output "ASCII 1" (Radical-7 operator's manual): 9600 8N1.
        source=SerialPort(SerialLine(baudrate=9600)),
        framer=LineFramer,
        decoder_for=every_channel(decode_line),
        yields=Yields(numerics=True, alarms=True),
        profile="MDC_DEV_SPEC_PROFILE_PULS_OXIM",
        binding=Binding.MONITOR,
        results=Results.LIVE,
    ),
)
