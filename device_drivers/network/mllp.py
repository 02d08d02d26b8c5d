"""HL7 v2 ORU^R01 pushed by monitors over MLLP/TCP (driver id `hl7-mllp`).

Mindray monitors and central stations (Mindray "Patient Data Share Protocol"), and other
Chinese monitors, push HL7 v2 ORU^R01 over MLLP (HL7 MLLP: start block 0x0B, end block 0x1C
0x0D); the content is IHE PCD TF-2's PCD-01 (docs/protocols/hl7-mllp-monitors.md: OBX-3
`code^refid^MDC`, OBX-6 MDC or UCUM unit, OBX-11 status, OBX-14 time), and the page gives
the listener's rules: answer every frame with an ACK, cap the frame size, keep a connection
that sent garbage usable. Four parts, pure first, I/O last:

- `MllpFramer`: blocks out of a byte stream, no I/O.
- `decode_message`: a pure, tolerant reader of what monitors really send (v2.3-2.6).
- `control_id` / `ack_for`: the dedup key (MSH-10) and the MLLP-framed ACK.
- `MllpListener`: the asyncio TCP server that records each message and then answers.

What the reader decides, and why:

- Unknown OBX rows are skipped, not fatal: a monitor must not lose a whole message
  because one row carries a parameter our MDC table does not know (a newer firmware, a
  vendor code). The raw frame is always stored by the recorder, so a skipped row is
  kept, just not turned into a Reading (an unknown id is kept, never dropped).
  A message with no usable OBX at all is rejected (quarantine, AE).
- A row is usable when OBX-3 names a metric edge_agent.mdc knows (by MDC code, by
  reference id, or by a published vendor id, see MINDRAY_PDS) and OBX-6 names a unit we
  know (MDC or a common UCUM spelling); the vendor table fills in the unit only where
  the quantity has one unit (beats, breaths, %), never a configurable one (mmHg/kPa,
  °C/°F): a wrong unit is worse than a missing reading.
- Malformed content in a usable row (a non-numeric NM value, an impossible time) rejects
  the message: that is corruption, and the recorder keeps it in quarantine.
- Times: OBX-14, else the OBR-7 of the row's OBR, else MSH-7. A UTC offset the monitor
  gives is kept (`Reading.device_time` aware) and always honoured: `20261203084600+0000`
  is 16:46 in Shanghai. Without one the time is the monitor's naive wall clock, read in
  `agent.timezone` like every serial device's. An offset no real zone has (beyond
  -12:00..+14:00) is corruption. All-zero times (some central stations send `0`) count
  as absent.
- Character set: by MSH-18 when it names one (HL7 v2.6 Ch. 2.14.9.18, table 0211), else
  guessed (UTF-8, GB 18030, Latin-1); the ACK goes back in the same set, MSH-18 echoed.
- What the monitor says about itself and its patient is kept beside the readings: its
  EUI-64 (OBX-18, else MSH-3 `<app>^<EUI-64>^EUI-64`), its PID (who it says the
  patient is), each row's OBX-4 position and OBX-11 status; the uplink forwards them
  (docs/hl7.md).
- Unavailable values: OBX-11 `X`, an empty OBX-5, or a vendor sentinel (Mindray sends
  -999 / -99.9, Comen -1 / -100 / -10000 for "no value") give a Reading with value None
  and the flag "unavailable", so the trend shows the gap.
- Waveform messages (ORU^W01, or ORU^R01 with OBX-2 `NA` sample rows and no usable
  numeric row) decode to an empty result: acknowledged AA and kept raw, not quarantined
  (a monitor sends them several times a second). Decoding the samples is not done yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import math
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from device_drivers.declaration import (
    Binding,
    Driver,
    NetworkListener,
    Results,
    Yields,
    every_channel,
)
from device_drivers.network.admission import ConnectionLimits, admit
from device_drivers.transport import FrameSink, Outcome, StateSink
from edge_agent import national_id
from edge_agent.mdc import BY_CODE, BY_REFID, Term
from edge_agent.model import Decoded, DecodeError, Reading, SourcePatient
from sync.hl7 import er7
from sync.hl7.ack import build_ack
from sync.hl7.containment import usable_sub_id
from sync.hl7.errors import (
    APPLICATION_INTERNAL_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    Hl7Error,
)
from sync.hl7.eui64 import normalise_eui64
from sync.hl7.timestamps import format_dtm, parse_dtm

log = logging.getLogger(__name__)

__all__ = [
    "END_BLOCK",
    "MAX_FRAME_BYTES",
    "OVERSIZED_MARK",
    "START_BLOCK",
    "MllpFramer",
    "MllpListener",
    "ack_for",
    "control_id",
    "decode_message",
    "dedup_key",
    "frame_message",
]

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\r"
MAX_FRAME_BYTES = 1 << 20  # a vitals ORU is a few kB; a waveform message tens of kB
DEFAULT_PORT = 4601  # what Mindray central stations and gateways use (caowm/pds-server)

# A block cut at the size cap is emitted as this byte + the block's first `max_bytes`
# bytes. 0x1C ends blocks, so it never starts a real one: the decoder recognises the cut
# frame, rejects it (quarantine keeps the head for inspection) and ack_for answers AR.
OVERSIZED_MARK = b"\x1c"

UNAVAILABLE_FLAG = "unavailable"
ACK_SENDING_APP = "EDGE_AGENT"
MAX_CONTROL_ID = 199  # HL7 v2.6 MSH-10 (ST) length; longer is not a control id we can quote
MAX_DEDUP_KEY = 200


# --- framing ---------------------------------------------------------------------------


class MllpFramer:
    """MLLP blocks (0x0B ... 0x1C 0x0D) out of a TCP byte stream (transport.Framer).

    Bytes outside a block are discarded and counted in `discarded_bytes`. A 0x0B inside
    a block means its end was lost: the partial block is discarded (counted) and a new
    block starts; the sender, having had no ACK, sends it again. A block longer than
    `max_bytes` is emitted once as OVERSIZED_MARK + its first `max_bytes` bytes, and the
    rest of it is discarded up to its end block: memory stays bounded whatever arrives.
    Output depends only on the stream, never on how reads split it.
    """

    def __init__(self, max_bytes: int = MAX_FRAME_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self._max = max_bytes
        self._buf = bytearray()
        self._inside = False
        self._cut = False  # inside an oversized block already emitted: skip to its end
        self._fs_pending = False  # the last byte seen inside a block was 0x1C
        self.discarded_bytes = 0
        self.oversized_blocks = 0

    @property
    def pending(self) -> int:
        """Bytes held for a frame not yet complete (the decode CLI reports them)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        i, n = 0, len(data)
        while i < n:
            if not self._inside:
                start = data.find(0x0B, i)
                if start < 0:
                    self.discarded_bytes += n - i
                    break
                self.discarded_bytes += start - i
                self._open()
                i = start + 1
                continue
            if self._fs_pending:
                self._fs_pending = False
                if data[i] == 0x0D:
                    self._close(frames)
                    i += 1
                    continue
                self._take(b"\x1c", frames)  # a 0x1C inside the data, not an end block
            match = _BLOCK_BYTES.search(data, i)
            if match is None:
                self._take(data[i:], frames)
                break
            k = match.start()
            self._take(data[i:k], frames)
            if data[k] == 0x0B:
                self.discarded_bytes += 0 if self._cut else len(self._buf) + 1
                self._open()
                i = k + 1
            elif k + 1 == n:
                self._fs_pending = True
                i = n
            elif data[k + 1] == 0x0D:
                self._close(frames)
                i = k + 2
            else:
                self._take(b"\x1c", frames)
                i = k + 1
        return frames

    def _open(self) -> None:
        self._inside = True
        self._cut = False
        self._fs_pending = False
        self._buf.clear()

    def _close(self, frames: list[bytes]) -> None:
        if not self._cut:
            frames.append(bytes(self._buf))
        self._inside = False
        self._cut = False
        self._buf.clear()

    def _take(self, chunk: bytes, frames: list[bytes]) -> None:
        if self._cut:
            self.discarded_bytes += len(chunk)
            return
        room = self._max - len(self._buf)
        if len(chunk) <= room:
            self._buf.extend(chunk)
            return
        self._buf.extend(chunk[:room])
        frames.append(OVERSIZED_MARK + bytes(self._buf))
        self.oversized_blocks += 1
        # the start block and the bytes beyond the cap are not part of the emitted head
        self.discarded_bytes += len(chunk) - room
        self._buf.clear()
        self._cut = True


_BLOCK_BYTES = re.compile(rb"[\x0b\x1c]")


def frame_message(message: bytes | str) -> bytes:
    """One message wrapped in an MLLP block (what a sender writes)."""
    body = message.encode("utf-8") if isinstance(message, str) else message
    return START_BLOCK + body + END_BLOCK


# --- reading ---------------------------------------------------------------------------

# HL7 NM (v2.6 Ch. 2A.47): optional sign, digits, optional decimal point; blanks around
# the value are tolerated (some monitors pad fixed-width fields).
_NM = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
# TS/DTM as monitors send it: at least minutes, a fraction of any length, an optional
# offset (v2.3 TS is DTM plus a precision component, which er7.component drops).
_TIME = re.compile(r"(\d{12}(?:\d{2})?)(?:\.(\d+))?([+-]\d{4})?", re.ASCII)
# HL7 table 0078 abnormal flags are short codes (L, HH, <, N, A...); anything else in
# OBX-8 is not a flag, and must not collide with our own ("unavailable", "intermediate").
_FLAG = re.compile(r"[A-Za-z<>]{1,5}", re.ASCII)

# Vendor "no value" sentinels seen in monitor HL7 exports (Mindray -999 and -99.9 for
# temperatures; Comen -1, -100, -10000). A negative value of a quantity that cannot be
# negative is also read as "no value"; for the few signed quantities only these count.
_SENTINELS = frozenset(Decimal(v) for v in ("-100", "-99.9", "-999", "-9999", "-10000"))
_SIGNED_METRICS = ("MDC_ECG_ELEC_POTL", "MDC_PRESS_BLD_VEN_CENT", "MDCX_MASIMO_PI_DELTA")

# OBX-11 (HL7 table 0085): D deletes an earlier result and W marks one wrong; neither is
# a measurement to store. The others are kept as the monitor said them (R stays R) and
# forwarded; X rows have no value.
_WITHDRAWN = frozenset({"D", "W"})
_KEPT_STATUSES = frozenset("CFIOPRSU")

# HL7 offsets beyond those of real zones (UTC-12:00 .. UTC+14:00) are corruption.
_MIN_OFFSET = dt.timedelta(hours=-12)
_MAX_OFFSET = dt.timedelta(hours=14)

_EUI64_TYPES = frozenset({"EUI-64", "EUI64"})
# HL7 tables 0001 (administrative sex) and 0004 (patient class): other values are dropped.
_SEXES = frozenset({"F", "M", "O", "U", "A", "N"})
_PATIENT_CLASSES = frozenset({"E", "I", "O", "P", "R", "B", "C", "N", "U"})
# PID-3 CX.1 is ST (199), CX.4's HD.1 is IS (20), CX.5 ID (5); names are bounded too.
_MAX_IDENTIFIER = 199
_MAX_AUTHORITY = 20
_MAX_ID_TYPE = 5
_MAX_NAME = 100


@dataclass(frozen=True, slots=True)
class _VendorParam:
    metric: str
    unit: str | None  # the unit when the quantity has only one; None: OBX-6 must say


# Mindray "Patient Data Share" vendor parameter ids in OBX-3 (`101^HR`), keyed by id and
# label together so another vendor's `101^...` never matches (mapping as in the public
# caowm/pds-server project; docs/protocols/hl7-mllp-monitors.md).
MINDRAY_PDS: dict[tuple[str, str], _VendorParam] = {
    ("101", "HR"): _VendorParam("MDC_ECG_HEART_RATE", "MDC_DIM_BEAT_PER_MIN"),
    ("151", "RR"): _VendorParam("MDC_RESP_RATE", "MDC_DIM_RESP_PER_MIN"),
    ("160", "SpO2"): _VendorParam("MDC_PULS_OXIM_SAT_O2", "MDC_DIM_PERCENT"),
    ("161", "PR"): _VendorParam("MDC_PULS_OXIM_PULS_RATE", "MDC_DIM_BEAT_PER_MIN"),
    ("170", "Sys"): _VendorParam("MDC_PRESS_CUFF_SYS", None),
    ("171", "Dia"): _VendorParam("MDC_PRESS_CUFF_DIA", None),
    ("200", "T1"): _VendorParam("MDC_TEMP", None),
    ("500", "Sys"): _VendorParam("MDC_PRESS_BLD_ART_ABP_SYS", None),
    ("502", "Dia"): _VendorParam("MDC_PRESS_BLD_ART_ABP_DIA", None),
    ("605", "Mean"): _VendorParam("MDC_PRESS_BLD_VEN_CENT_MEAN", None),
    ("250", "CO2Et"): _VendorParam("MDC_AWAY_CO2_ET", None),
}

# Unit spellings monitors put in OBX-6 instead of (or beside) the MDC triple: the UCUM
# codes of edge_agent.mdc's unit terms, plus common non-UCUM variants. `/min` alone is
# beats or breaths depending on the metric (PCD Rosetta lists it for both).
_UNIT_ALIASES: dict[str, str] = {
    "mmHg": "MDC_DIM_MMHG",
    "mm Hg": "MDC_DIM_MMHG",
    "bpm": "MDC_DIM_BEAT_PER_MIN",
    "beats/min": "MDC_DIM_BEAT_PER_MIN",
    "{beats}/min": "MDC_DIM_BEAT_PER_MIN",
    "rpm": "MDC_DIM_RESP_PER_MIN",
    "brpm": "MDC_DIM_RESP_PER_MIN",
    "breaths/min": "MDC_DIM_RESP_PER_MIN",
    "{breaths}/min": "MDC_DIM_RESP_PER_MIN",
    "degC": "MDC_DIM_DEGC",
    "°C": "MDC_DIM_DEGC",
    "℃": "MDC_DIM_DEGC",
    "degF": "MDC_DIM_FAHR",
    "°F": "MDC_DIM_FAHR",
    "℉": "MDC_DIM_FAHR",
    "mmol/l": "MDC_DIM_MILLI_MOLE_PER_L",
    "mg/dl": "MDC_DIM_MILLI_G_PER_DL",
    "g/dl": "MDC_DIM_G_PER_DL",
    "µV": "MDC_DIM_MICRO_VOLT",
    "mv": "MDC_DIM_MILLI_VOLT",
}
_PER_MINUTE = frozenset({"/min", "1/min", "min-1", "/m"})


def _unit_table() -> dict[str, str]:
    table = {t.ucum: t.refid for t in BY_REFID.values() if t.ucum}
    table.update({k: v for k, v in _UNIT_ALIASES.items() if v in BY_REFID})
    return table


_UNITS = _unit_table()
_UNITS_FOLDED = {k.lower(): v for k, v in _UNITS.items()}


def decode_message(frame: bytes) -> Decoded:
    """The readings in one monitor ORU^R01; DecodeError (one line) for anything else.

    Pure: no clock, no I/O. See the module docstring for what is skipped, what is
    rejected, and how times and unavailable values are read.
    """
    try:
        return _Message(frame).decode()
    except DecodeError:
        raise
    except (ValueError, ArithmeticError, IndexError, KeyError, UnicodeError) as exc:
        # A reader bug must still end as a quarantine row with a reason, never a crash.
        raise DecodeError(f"unreadable message ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True, slots=True)
class _Header:
    """What MSH says about where a message came from, and whether it can be answered."""

    control_id: str | None  # MSH-10, unescaped
    app: tuple[str, ...] = ()  # MSH-3 components (HD), unescaped
    facility: tuple[str, ...] = ()  # MSH-4 components (HD), unescaped
    problem: str | None = None  # why the message cannot be processed at all (-> AR)
    error_code: str = APPLICATION_INTERNAL_ERROR  # HL7 table 0357 for `problem`
    codec: str = "utf-8"  # what the message was read in, and the ACK is written in
    charset: str = "UNICODE UTF-8"  # MSH-18 of the ACK: the sender's own name for `codec`

    @property
    def sender(self) -> str:
        app = er7.join(list(self.app), "^")
        facility = er7.join(list(self.facility), "^")
        return (app + ("@" + facility if facility else "")) or "-"


# HL7 v2.6 table 0211 (alternate character sets, MSH-18) -> Python codec, for the sets
# an ASCII-compatible byte stream can carry (MLLP frames on 0x0B/0x1C bytes). The
# ISO 2022 Japanese sets, CNS 11643 and UTF-16/32 are not among them: a message naming
# one is read by the guess below. Spellings Chinese monitors use beside the table's own
# (GB18030, GBK, UTF-8) are read too, and echoed as they were sent.
CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    **{f"8859/{n}": f"iso8859_{n}" for n in range(1, 10)},
    "8859/15": "iso8859_15",
    "UNICODE UTF-8": "utf-8",
    "GB 18030-2000": "gb18030",
    "BIG-5": "big5",
    "KS X 1001": "euc_kr",
    # not in table 0211, seen in the field:
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "GB18030": "gb18030",
    "GBK": "gb18030",  # GB 18030 is a superset of GBK and GB 2312
    "GB2312": "gb18030",
}
# What MSH-18 of our ACK says when the sender named no character set: the table 0211
# name of the set we read it in (and answer in).
_GUESS_NAMES = {"utf-8": "UNICODE UTF-8", "gb18030": "GB 18030-2000", "latin-1": "8859/1"}
_MAX_CHARSET = 16  # MSH-18 is ID, 16 characters in v2.6
_BLANKS = "\x0b\x1c\r\n\t \ufeff\u2028"


@dataclass(frozen=True, slots=True)
class _Text:
    """A frame decoded: the text, the codec used, and MSH-18's name for it (declared by
    the sender when `declared`, else the name of our guess)."""

    text: str
    codec: str
    charset: str
    declared: bool


def _declared_charset(text: str) -> str | None:
    """MSH-18's first repetition (the message's default character set), as sent."""
    segments = er7.split_segments(text.strip(_BLANKS))
    found = _encoding(segments[0]) if segments else None
    if found is None:
        return None
    enc, msh_text = found
    raw = er7.field(er7.segment_fields(msh_text, enc), 18)
    name = er7.component(raw, 1, enc).strip()
    return name[:_MAX_CHARSET] if name else None


def _guess(frame: bytes) -> tuple[str, str]:
    """UTF-8, else GB18030 (Chinese monitors send GB2312/GBK), else Latin-1 (never fails)."""
    for codec in ("utf-8", "gb18030"):
        with contextlib.suppress(UnicodeDecodeError):
            return frame.decode(codec), codec
    return frame.decode("latin-1"), "latin-1"


def _text(frame: bytes) -> _Text:
    """The message as text, in the character set its MSH-18 names (HL7 v2.6 Ch.
    2.14.9.18), when it names one we can read and the bytes are in it; else the guess.

    MSH-18 is read from the guessed text, then the frame is decoded in what it names;
    that decoding is kept only if its own MSH-18 says the same (a GB18030 trail byte can
    look like a `|` to a wrong guess, so the first reading is checked, not trusted).
    """
    guessed, codec = _guess(frame)
    declared = _declared_charset(guessed)
    wanted = CHARSETS.get(declared.upper()) if declared else None
    if declared is not None and wanted is not None:
        if wanted == codec:
            return _Text(guessed, codec, declared, True)
        with contextlib.suppress(UnicodeDecodeError, LookupError):
            text = frame.decode(wanted)
            if _declared_charset(text) == declared:
                return _Text(text, wanted, declared, True)
    return _Text(guessed, codec, _GUESS_NAMES[codec], False)


def _segments(frame: bytes) -> list[str]:
    return er7.split_segments(_text(frame).text.strip(_BLANKS))


def _encoding(msh: str) -> tuple[er7.Encoding, str] | None:
    """Delimiters and the MSH text to split; v2.7's fifth encoding character (truncation,
    `^~\\&#`) is dropped so the older readers' field numbering holds."""
    enc = er7.read_encoding(msh)
    if enc is not None:
        return enc, msh
    if len(msh) > 9 and msh.startswith("MSH") and msh[9] == msh[3]:
        shortened = msh[:8] + msh[9:]
        enc = er7.read_encoding(shortened)
        if enc is not None:
            return enc, shortened
    return None


def _hd(raw: str, enc: er7.Encoding) -> tuple[str, ...]:
    parts = [er7.component(raw, i, enc).strip() for i in (1, 2, 3)]
    while parts and not parts[-1]:
        parts.pop()
    return tuple(parts)


def _read_header(frame: bytes) -> _Header:
    if frame.startswith(OVERSIZED_MARK):
        inner = _read_header(frame[len(OVERSIZED_MARK) :])
        return dataclasses.replace(
            inner,
            problem=f"MLLP block longer than the {len(frame) - 1}-byte limit; not processed",
            error_code=APPLICATION_INTERNAL_ERROR,
        )
    decoded = _text(frame)
    codec, charset = decoded.codec, decoded.charset
    segments = er7.split_segments(decoded.text.strip(_BLANKS))
    if not segments:
        return _Header(
            None,
            problem="empty MLLP block",
            error_code=SEGMENT_SEQUENCE_ERROR,
            codec=codec,
            charset=charset,
        )
    found = _encoding(segments[0])
    if found is None:
        start = segments[0][:20]
        what = (
            "MSH-1/MSH-2 delimiters are unusable"
            if start.startswith("MSH")
            else ("message does not start with MSH")
        )
        return _Header(
            None,
            problem=f"{what}: {start!r}",
            error_code=SEGMENT_SEQUENCE_ERROR,
            codec=codec,
            charset=charset,
        )
    enc, msh_text = found
    msh = er7.segment_fields(msh_text, enc)
    cid = er7.component(er7.field(msh, 10), 1, enc).strip()
    app, facility = _hd(er7.field(msh, 3), enc), _hd(er7.field(msh, 4), enc)
    if not cid:
        return _Header(
            None,
            app,
            facility,
            "MSH-10 message control id is empty",
            REQUIRED_FIELD_MISSING,
            codec,
            charset,
        )
    if len(cid) > MAX_CONTROL_ID or any(ord(c) < 0x20 for c in cid):
        return _Header(
            None,
            app,
            facility,
            f"MSH-10 {cid[:20]!r}... is not a usable control id",
            REQUIRED_FIELD_MISSING,
            codec,
            charset,
        )
    return _Header(cid, app, facility, codec=codec, charset=charset)


def control_id(frame: bytes) -> str | None:
    """MSH-10 of a message (the dedup key's second half), None when MSH is unusable."""
    header = _read_header(frame)
    return header.control_id if header.problem is None else None


def dedup_key(frame: bytes) -> str | None:
    """`sender/MSH-10`, sender being MSH-3 (and @MSH-4): the recorder's duplicate key.

    Control ids are unique per sender only, and one listener serves several monitors.
    """
    header = _read_header(frame)
    if header.problem is not None or header.control_id is None:
        return None
    key = f"{header.sender}/{header.control_id}"
    if len(key) > MAX_DEDUP_KEY:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        key = f"{key[: MAX_DEDUP_KEY - 25]}#{digest}"
    return key


class _Message:
    """One message being read; its errors name the segment and field."""

    def __init__(self, frame: bytes) -> None:
        self.frame = frame
        self.enc = er7.DEFAULT  # replaced by the message's own delimiters (MSH-1/2)

    def decode(self) -> Decoded:
        frame = self.frame
        if frame.startswith(OVERSIZED_MARK):
            raise DecodeError(
                f"MLLP block longer than the {len(frame) - 1}-byte limit; first bytes kept",
                0,
            )
        segments = _segments(frame)
        if not segments:
            raise DecodeError("empty message", 0)
        found = _encoding(segments[0])
        if found is None:
            start = segments[0][:20]
            if start.startswith("MSH"):
                raise DecodeError(f"MSH-1/MSH-2 delimiters are unusable: {start!r}", 0)
            raise DecodeError(f"message does not start with MSH: {start!r}", 0)
        enc, msh_text = found
        self.enc = enc
        msh = er7.segment_fields(msh_text, enc)
        if not er7.component(er7.field(msh, 10), 1, enc).strip():
            raise DecodeError("MSH-10 message control id is empty")
        version = er7.component(er7.field(msh, 12), 1, enc).strip()
        if version and not version.startswith("2."):
            raise DecodeError(f"MSH-12 version {version[:10]!r} is not HL7 v2")
        msh9 = er7.field(msh, 9)
        kind = er7.component(msh9, 1, enc).strip(), er7.component(msh9, 2, enc).strip()
        if kind == ("ORU", "W01"):
            return Decoded()  # a waveform message (v2.4 ORU^W01): kept raw, see docstring
        if kind != ("ORU", "R01"):
            shown = "^".join(p for p in kind if p) or "(empty)"
            raise DecodeError(f"MSH-9 {shown[:20]!r} is not ORU^R01 (only results are read)")
        message_time = self._time(er7.field(msh, 7), "MSH-7")
        sender_eui64 = _hd_eui64(_hd(er7.field(msh, 3), enc))

        readings: list[Reading] = []
        obx_rows = 0
        waveform_rows = 0
        skipped: list[str] = []
        order_time: dt.datetime | None = None
        equipment_eui64: str | None = None
        patient: SourcePatient | None = None
        patient_class: str | None = None
        for segment in segments[1:]:
            fields = er7.segment_fields(segment, enc)
            kind_name = fields[0].strip()
            if kind_name == "OBR":
                order_time = self._time(er7.field(fields, 7), "OBR-7")
            elif kind_name == "MSH":
                raise DecodeError("a second MSH segment inside the message (two glued?)")
            elif kind_name == "PID" and patient is None:
                patient = _source_patient(fields, enc)
            elif kind_name == "PV1" and patient_class is None:
                patient_class = _table_code(er7.field(fields, 2), enc, _PATIENT_CLASSES)
            elif kind_name == "OBX":
                obx_rows += 1
                equipment_eui64 = equipment_eui64 or _ei_eui64(er7.field(fields, 18), enc)
                if er7.field(fields, 2).strip() == "NA":
                    waveform_rows += 1
                    continue
                row = self._obx(fields, obx_rows, order_time or message_time)
                if isinstance(row, Reading):
                    readings.append(row)
                elif row:
                    skipped.append(row)
        if patient is not None and patient_class is not None:
            patient = dataclasses.replace(patient, patient_class=patient_class)
        # The equipment a row names (the MDS row's OBX-18) is the device; MSH-3 names the
        # sender, which is the device itself unless a central station forwards for it.
        eui64 = equipment_eui64 or sender_eui64
        if readings:
            return Decoded(readings=tuple(readings), device_eui64=eui64, patient=patient)
        if waveform_rows:
            return Decoded()  # samples (and their container rows) only: see docstring
        if not obx_rows:
            raise DecodeError("ORU^R01 without any OBX segment")
        shown = "; ".join(skipped[:3]) + ("; ..." if len(skipped) > 3 else "")
        shown = shown or "only device, container or withdrawn rows"
        raise DecodeError(f"no usable OBX among {obx_rows} ({shown})"[:300])

    def _time(self, raw: str, where: str) -> dt.datetime | None:
        text = er7.component(raw, 1, self.enc).strip()
        if not text or not text.strip("0"):
            return None  # absent; some central stations send 0 for "no time"
        match = _TIME.fullmatch(text)
        if match is None:
            raise DecodeError(
                f"{where} {text[:30]!r} is not an HL7 time (YYYYMMDDHHMM[SS][.S][+ZZZZ])"
            )
        stamp, fraction, zone = match.group(1), match.group(2), match.group(3)
        if fraction:
            stamp += "." + fraction[:4]  # DTM allows 4 decimals
        try:
            when = parse_dtm(stamp + (zone or "+0000"), field=where)
        except Hl7Error as exc:
            raise DecodeError(exc.reason) from None
        if zone is None:
            return when.replace(tzinfo=None)  # the monitor's wall clock, zone unsaid
        offset = when.utcoffset() or dt.timedelta(0)
        if not _MIN_OFFSET <= offset <= _MAX_OFFSET:
            raise DecodeError(f"{where} {text[:30]!r}: UTC offset {zone} is not a real zone's")
        return when  # its offset is the device's own and is honoured (module docstring)

    def _obx(
        self, fields: list[str], position: int, context_time: dt.datetime | None
    ) -> Reading | str | None:
        """A Reading, or why the row was skipped ("" for rows that are not results)."""
        enc = self.enc
        set_id = er7.field(fields, 1).strip() or str(position)
        where = f"OBX {set_id[:6]}"
        status = er7.field(fields, 11).strip().upper()
        if status in _WITHDRAWN:
            return ""
        obx3 = er7.field(fields, 3)
        found = _metric(obx3, enc)
        if found is None:
            code = er7.join([er7.component(obx3, i, enc) for i in (1, 2)], "^")
            return f"{where}: unknown OBX-3 {code[:40]!r}"
        metric, default_unit = found
        if metric.refid.startswith("MDC_DEV_"):
            return ""  # the device (MDS/VMD) row of a PCD-01 hierarchy, not a result
        value_type = er7.field(fields, 2).strip()
        raw_value = er7.field(fields, 5).strip()
        if value_type not in ("NM", ""):
            return f"{where}: OBX-2 {value_type[:4]!r} is not numeric"
        unit_raw = er7.field(fields, 6)
        if not raw_value and not unit_raw.strip() and default_unit is None:
            return ""  # a container row (PCD-01 compound / channel), no value of its own
        unit = _unit(unit_raw, enc, metric.refid) if unit_raw.strip() else default_unit
        if unit is None:
            shown = er7.join([er7.component(unit_raw, i, enc) for i in (1, 2)], "^")
            return f"{where}: unknown OBX-6 unit {shown[:30]!r} for {metric.refid}"
        flags = tuple(
            dict.fromkeys(
                f
                for f in (
                    er7.unescape(r, enc).strip() for r in er7.field(fields, 8).split(enc.repetition)
                )
                if _FLAG.fullmatch(f)
            )
        )
        when = self._time(er7.field(fields, 14), f"{where}: OBX-14") or context_time
        value: Decimal | None = None
        if status != "X" and raw_value:
            if not _NM.fullmatch(raw_value):
                if not value_type:
                    return f"{where}: OBX-5 is not numeric and OBX-2 is empty"
                raise DecodeError(f"{where}: OBX-5 {raw_value[:20]!r} is not an HL7 NM number")
            try:
                value = Decimal(raw_value)
            except InvalidOperation:
                raise DecodeError(f"{where}: OBX-5 {raw_value[:20]!r} is not a number") from None
            if _is_sentinel(value, metric.refid):
                value = None
        if value is None:
            flags = (*flags, UNAVAILABLE_FLAG)
        return Reading(
            metric=metric.refid,
            value=value,
            unit=unit,
            device_time=when,
            flags=flags,
            sub_id=usable_sub_id(er7.field(fields, 4)),
            result_status=status if status in _KEPT_STATUSES else None,
        )


def _hd_eui64(hd: tuple[str, ...]) -> str | None:
    """An HD naming an EUI-64 (PCD TF-2: MSH-3 `<application>^<EUI-64>^EUI-64`)."""
    if len(hd) >= 3 and hd[2].upper() in _EUI64_TYPES:
        return normalise_eui64(hd[1])
    return None


def _ei_eui64(raw: str, enc: er7.Encoding) -> str | None:
    """An EI naming an EUI-64: `<EUI-64>^^<EUI-64>^EUI-64` (PCD TF-2 Appendix B.8.18),
    or `<EUI-64>^EUI-64` as some monitors write OBX-18."""
    if not raw.strip():
        return None
    parts = [er7.component(raw, i, enc).strip() for i in (1, 2, 3, 4)]
    if parts[3].upper() in _EUI64_TYPES:
        return normalise_eui64(parts[2]) or normalise_eui64(parts[0])
    if parts[1].upper() in _EUI64_TYPES:
        return normalise_eui64(parts[0])
    return None


def _clean(text: str, limit: int) -> str:
    """A field value as one printable line of at most `limit` characters."""
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return line[:limit]


def _table_code(raw: str, enc: er7.Encoding, table: frozenset[str]) -> str | None:
    code = er7.component(raw, 1, enc).strip().upper()
    return code if code in table else None


def _source_patient(fields: list[str], enc: er7.Encoding) -> SourcePatient | None:
    """Who the monitor says the patient is (PID); None when PID-3 names nobody.

    Of PID-3's repetitions: the one typed NNCHN (HL7 table 0203, the resident identity
    number), else one whose number is a valid GB 11643 number, else the first one with
    a number. Never raises: a PID the reader cannot use is kept raw, not fatal.
    """
    chosen: tuple[str, str, str] | None = None
    first: tuple[str, str, str] | None = None
    for repetition in er7.field(fields, 3).split(enc.repetition):
        number = _clean(er7.component(repetition, 1, enc), _MAX_IDENTIFIER)
        if not number:
            continue
        found = (
            number,
            _clean(er7.component(repetition, 4, enc), _MAX_AUTHORITY),
            _clean(er7.component(repetition, 5, enc), _MAX_ID_TYPE).upper(),
        )
        first = first or found
        if found[2] == "NNCHN":
            chosen = found
            break
        if chosen is None and _is_national_id(number):
            chosen = found
    chosen = chosen or first
    if chosen is None:
        return None
    name_raw = er7.field(fields, 5)
    family = _clean(er7.component(name_raw, 1, enc), _MAX_NAME)
    given = _clean(er7.component(name_raw, 2, enc), _MAX_NAME)
    # Chinese names are written family name first without a space (张三); others with one.
    joiner = "" if any(_is_cjk(ch) for ch in family + given) else " "
    name = joiner.join(part for part in (family, given) if part)[:_MAX_NAME]
    birth: dt.date | None = None
    digits = er7.component(er7.field(fields, 7), 1, enc).strip()[:8]
    if len(digits) == 8 and digits.isdigit():
        with contextlib.suppress(ValueError):
            birth = dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    return SourcePatient(
        identifier=chosen[0],
        authority=chosen[1],
        id_type=chosen[2],
        name=name,
        birth_date=birth,
        sex=_table_code(er7.field(fields, 8), enc, _SEXES),
    )


def _is_national_id(number: str) -> bool:
    try:
        national_id.parse(number)
    except national_id.NationalIdError:
        return False
    return True


def _is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def _is_sentinel(value: Decimal, metric: str) -> bool:
    if value in _SENTINELS:
        return True
    return value < 0 and not metric.startswith(_SIGNED_METRICS)


def _mdc_term(code: str, refid: str) -> Term | None:
    """The MDC term a code and/or reference id name; None if unknown or contradictory.

    Code first (the machine identifier; a misspelt refid is common), the refid when the
    code is absent or unknown; a code and refid naming two different known terms are
    ambiguous and the row is not trusted.
    """
    by_code = BY_CODE.get(int(code)) if code.isdigit() and len(code) <= 10 else None
    by_refid = BY_REFID.get(refid) if refid else None
    if by_code is not None and by_refid is not None and by_code is not by_refid:
        return None
    return by_code or by_refid


def _codings(raw: str, enc: er7.Encoding) -> Iterator[tuple[str, str, str]]:
    """A CWE's (code, text, coding system) triples that name something: the primary
    triple (CWE.1-3), then the alternate one (CWE.4-6)."""
    for first in (1, 4):
        code, text, system = (er7.component(raw, first + i, enc).strip() for i in range(3))
        if code or text:
            yield code, text, system


def _mdc_coded(code: str, text: str, system: str, refid_prefix: str) -> Term | None:
    """The MDC term a triple in the MDC system (or none named) gives; the text is taken
    as the refid when it starts with `refid_prefix`, else a code spelt as a refid."""
    if system.upper() not in ("MDC", ""):
        return None
    refid = text if text.startswith(refid_prefix) else (code if code.startswith("MDC") else "")
    return _mdc_term(code, refid)


def _metric(raw: str, enc: er7.Encoding) -> tuple[Term, str | None] | None:
    """(metric term, default unit) for an OBX-3 CWE; None when unknown."""
    for code, text, system in _codings(raw, enc):
        found = _mdc_coded(code, text, system, "MDC")
        if found is not None:
            return found, None
        vendor = MINDRAY_PDS.get((code, text)) if not system else None
        if vendor is not None and vendor.metric in BY_REFID:
            return BY_REFID[vendor.metric], vendor.unit
    return None


def _unit(raw: str, enc: er7.Encoding, metric: str) -> str | None:
    """The MDC unit refid an OBX-6 CWE names (MDC triple, or a UCUM/common spelling)."""
    for code, text, system in _codings(raw, enc):
        found = _mdc_coded(code, text, system, "MDC_DIM")
        if found is not None and found.refid.startswith("MDC_DIM"):
            return found.refid
        for spelling in (code, text):
            if spelling in _PER_MINUTE:
                return "MDC_DIM_RESP_PER_MIN" if "RESP" in metric else "MDC_DIM_BEAT_PER_MIN"
            hit = _UNITS.get(spelling) or _UNITS_FOLDED.get(spelling.lower())
            if hit is not None:
                return hit
    return None


# --- acknowledging ---------------------------------------------------------------------

_ACCEPTED = frozenset({"decoded", "duplicate", "empty", "progress"})


def ack_for(
    frame: bytes, outcome: Outcome | None, reason: str | None, *, now: dt.datetime
) -> bytes:
    """The MLLP-framed HL7 ACK for one received frame. Never raises.

    AR when MSH itself is unusable (or the block was cut at the size cap): nothing could
    be processed; AA when the message is recorded (decoded, duplicate, empty, progress);
    AE when it was recorded as quarantined (`reason` goes to MSA-3 and ERR-8); AR when
    the outcome is None or unknown (not recorded, e.g. the commit timed out: sending
    again may succeed). MSH-5/6 address the sender (its MSH-3/4); MSA-2 quotes its MSH-10.

    The ACK is written in the character set the message was read in, and its MSH-18
    says so (the sender's own MSH-18 echoed when it sent one, HL7 v2.6 Ch. 2.14.9.18):
    a GB18030 monitor reads its own MSH-3 back byte for byte.
    """
    try:
        header = _read_header(frame)
        if header.problem is not None:
            code, text, err = "AR", header.problem, header.error_code
        elif outcome in _ACCEPTED:
            code, text, err = "AA", "", APPLICATION_INTERNAL_ERROR
        elif outcome == "quarantined":
            code, text, err = "AE", reason or "message rejected", APPLICATION_INTERNAL_ERROR
        else:
            code, text, err = "AR", reason or "message not recorded", APPLICATION_INTERNAL_ERROR
        ack = _build(header, code, text, err, now, frame)
        # A character our reason quotes that the sender's set lacks becomes "?": the
        # answer must go out, and everything it quotes from the sender is in its set.
        return frame_message(ack.encode(header.codec, errors="replace"))
    except Exception:  # the answer must go out whatever went wrong building it
        log.exception("building the ACK failed; answering with a minimal AR")
        return frame_message(_minimal_ack(now))


def _sent_at(now: dt.datetime) -> dt.datetime:
    when = now if now.tzinfo is not None else now.astimezone()
    offset = when.utcoffset()
    if offset is None or offset.total_seconds() % 60 or abs(offset) > dt.timedelta(hours=14):
        when = when.astimezone(dt.UTC)
    return when


def _build(header: _Header, code: str, text: str, err: str, now: dt.datetime, frame: bytes) -> str:
    sent_at = _sent_at(now)
    own_id = f"A{zlib.crc32(frame):08X}{int(sent_at.timestamp() * 1000) % 10**10:010d}"
    try:
        ack = build_ack(
            acked_control_id=header.control_id,
            code=code,
            text=text,
            control_id=own_id,
            sent_at=sent_at,
            sending_app=ACK_SENDING_APP,
            error_code=err,
            charset=header.charset,
        )
    except Hl7Error:
        # hl7apy refused something taken from the sender (a control id it cannot
        # validate): answer without quoting it.
        ack = build_ack(
            acked_control_id=None,
            code="AR" if code != "AA" else "AE",
            text=f"acknowledgement could not quote the message: {text}"[:200],
            control_id=own_id,
            sent_at=sent_at,
            sending_app=ACK_SENDING_APP,
            error_code=err,
            charset=header.charset,
        )
    return _address(ack, header)


def _address(ack: str, header: _Header) -> str:
    """MSH-5/MSH-6 set to the sender's MSH-3/MSH-4 (build_ack writes our own names)."""
    segments = ack.split(er7.SEGMENT_SEPARATOR)
    parts = segments[0].split("|")
    while len(parts) < 6:
        parts.append("")
    limits = (20, 199, 6)  # HD: IS namespace, ST universal id, ID type (v2.6 lengths)
    for index, hd in ((4, header.app), (5, header.facility)):
        if hd:
            parts[index] = er7.join(
                [er7.escape(p[:n]) for p, n in zip(hd, limits, strict=False)], "^"
            )
    segments[0] = "|".join(parts)
    return er7.SEGMENT_SEPARATOR.join(segments)


def _minimal_ack(now: dt.datetime) -> str:
    try:
        stamp = format_dtm(_sent_at(now))
    except (ValueError, OverflowError):
        stamp = ""
    return f"MSH|^~\\&|{ACK_SENDING_APP}||||{stamp}||ACK^R01^ACK|A0|P|2.6\rMSA|AR|UNKNOWN"


def _local_outcome(frame: bytes) -> tuple[Outcome, str | None]:
    """What the recorder would make of a frame, decided here (sink without commits)."""
    try:
        decoded = decode_message(frame)
    except DecodeError as exc:
        return "quarantined", exc.reason
    return ("decoded" if decoded else "empty"), None


# --- the listener ----------------------------------------------------------------------


@dataclass(eq=False)
class _Client:
    """One open connection, as the listener and its admission rules see it."""

    address: str  # the peer's IP: the per-address limit counts these
    peer: str  # address:port, for log lines
    writer: asyncio.StreamWriter
    last_active: float  # loop time of the last byte received (or of the accept)
    framer: MllpFramer
    delivered: int = 0  # whole messages received
    partial_since: float | None = None  # loop time of the first byte of an unfinished one
    answering: bool = False  # recording a message or writing its ACK
    dropped: str | None = None  # why the listener closed it to make room

    @property
    def busy(self) -> bool:
        return self.answering or self.partial_since is not None


class MllpListener:
    """The TCP server monitors push to (HL7 MLLP). Thin: frames, records, answers.

    Per connection, messages are answered in order: AR at once when MSH is unusable
    (the frame is still emitted, without a dedup key, so the bytes land in quarantine);
    otherwise the frame is emitted with dedup key `sender/MSH-10` and the ACK waits for
    the recorder's durable commit (at most `ack_timeout_s`; AR "send again" after that),
    so AA always means "on disk". A client that goes away mid-message loses only the
    unfinished block, which it never had an ACK for; a commit already under way is not
    cancelled. `port=0` binds an ephemeral port, readable from `port` once `listening`
    is set.

    Connections are bounded (device_drivers.network.admission, `limits`): per address
    and in total, the longest-idle one dropped to make room for a new one; a connection
    silent for `limits.idle_timeout_s` is closed, and so is one whose message has not
    ended `limits.message_timeout_s` after it began. Connection events reach `on_state`
    (a durable store write each) at most once a second, the latest always within that.
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        max_bytes: int = MAX_FRAME_BYTES,
        ack_timeout_s: float = 10.0,
        limits: ConnectionLimits | None = None,
        retry_s: float = 5.0,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.listening = asyncio.Event()
        self.limits = limits or ConnectionLimits()
        self._max_bytes = max_bytes
        self._ack_timeout_s = ack_timeout_s
        self._retry_s = retry_s
        self._clock = clock or (lambda: dt.datetime.now().astimezone())
        self._held: list[_Client] = []  # what admission counts
        self._tasks: set[asyncio.Task[None]] = set()  # every connection task, for stop
        self._events = _ThrottledEvents()
        self.dropped = 0  # connections closed to make room
        self.refused = 0  # connections refused (all held ones mid-message)

    @property
    def open_connections(self) -> int:
        return len(self._held)

    @property
    def busy_connections(self) -> int:
        """Connections mid-message (never dropped to make room)."""
        return sum(c.busy for c in self._held)

    async def run(self, emit: FrameSink, on_state: StateSink, stop: asyncio.Event) -> None:
        last_error = ""
        while not stop.is_set():
            try:
                server = await asyncio.start_server(
                    lambda r, w: self._accept(r, w, emit, on_state),
                    self.host,
                    self.port,
                    # a burst of connections waits in the kernel, not refused by it
                    backlog=max(100, 2 * self.limits.max_connections),
                )
            except OSError as exc:
                error = f"cannot listen on {self.host}:{self.port}: {exc}"
                if error != last_error:
                    log.warning("%s", error)
                    on_state("disconnected", error)
                    last_error = error
                await _wait(stop, self._retry_s)
                continue
            sockets = server.sockets or ()
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
            where = f"{self.host}:{self.port}"
            log.info("MLLP listener on %s", where)
            on_state("listening", where)
            self.listening.set()
            try:
                await stop.wait()
            finally:
                self.listening.clear()
                server.close()
                tasks = list(self._tasks)
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 5.0)
                self._events.flush()
                on_state("stopped", where)

    async def _accept(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        emit: FrameSink,
        on_state: StateSink,
    ) -> None:
        task = asyncio.current_task()
        peer = _peer(writer)
        address = _address_of(writer)
        loop = asyncio.get_running_loop()
        decision = admit(self._held, address, self.limits)
        if not decision.admit:
            self.refused += 1
            log.warning("MLLP: refusing %s: %s", peer, decision.reason)
            self._events.report(on_state, f"{peer} refused: {decision.reason}")
            writer.transport.abort()
            return
        for victim in decision.drop:
            self._drop(victim, f"dropped to make room for {peer}: {decision.reason}")
        client = _Client(address, peer, writer, loop.time(), MllpFramer(self._max_bytes))
        self._held.append(client)
        if task is not None:
            self._tasks.add(task)
        self._events.report(on_state, f"{peer} connected ({len(self._held)} open)")
        reason = "closed by the client"
        try:
            reason = await self._serve(client, reader, writer, emit)
        except asyncio.CancelledError:
            # The listener is stopping (run cancels every connection). Ending normally
            # spares asyncio's stream callback a cancelled task it would log as an error.
            reason = "listener stopped"
        finally:
            if task is not None:
                self._tasks.discard(task)
            if client in self._held:
                self._held.remove(client)
            reason = client.dropped or reason
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            framer = client.framer
            detail = (
                f"{peer} disconnected ({reason}; {client.delivered} messages, "
                f"{framer.discarded_bytes} bytes outside MLLP blocks, "
                f"{framer.oversized_blocks} oversized)"
            )
            log.info("MLLP: %s", detail)
            self._events.report(on_state, detail)

    def _drop(self, client: _Client, reason: str) -> None:
        """Close an idle connection now; its task sees end-of-stream and finishes."""
        self.dropped += 1
        client.dropped = reason
        self._held.remove(client)  # the slot is free at once, before the task ends
        client.writer.transport.abort()
        log.info("MLLP: %s %s", client.peer, reason)

    async def _serve(
        self,
        client: _Client,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        emit: FrameSink,
    ) -> str:
        loop = asyncio.get_running_loop()
        limits = self.limits
        warned = False
        while True:
            idle_end = client.last_active + limits.idle_timeout_s
            message_end = (
                math.inf
                if client.partial_since is None
                else client.partial_since + limits.message_timeout_s
            )
            try:
                async with asyncio.timeout_at(min(idle_end, message_end)):
                    data = await reader.read(65536)
            except TimeoutError:
                if message_end <= idle_end:
                    held = client.framer.pending
                    return (
                        f"no whole message within {limits.message_timeout_s:g} s"
                        f" of its first byte ({held} bytes held)"
                    )
                return f"idle for {limits.idle_timeout_s:g} s"
            except (ConnectionError, OSError) as exc:
                return f"read failed: {exc}"
            if not data:
                return "closed by the client"
            now = loop.time()
            client.last_active = now
            frames = client.framer.feed(data)
            # The deadline runs from the first byte after the last whole message: inside
            # a block or not (line noise that never becomes a message ends the same way).
            if frames:
                client.partial_since = now if client.framer.pending else None
            elif client.partial_since is None:
                client.partial_since = now
            if client.framer.discarded_bytes and not warned:
                warned = True
                log.warning("MLLP: %s sends bytes outside MLLP blocks; discarding", client.peer)
            if not frames:
                continue
            client.answering = True
            try:
                for frame in frames:
                    client.delivered += 1
                    ack = await self._answer(frame, emit)
                    try:
                        writer.write(ack)
                        await asyncio.wait_for(writer.drain(), self._ack_timeout_s)
                    except (ConnectionError, OSError, TimeoutError) as exc:
                        return f"ACK not delivered: {exc or type(exc).__name__}"
            finally:
                client.answering = False
                client.last_active = loop.time()

    async def _answer(self, frame: bytes, emit: FrameSink) -> bytes:
        header = _read_header(frame)
        if header.problem is not None:
            log.warning("MLLP: answering AR: %s", header.problem)
            with contextlib.suppress(Exception):
                _forget(emit(frame, None, dedup_key=None))  # kept for inspection
            return ack_for(frame, None, None, now=self._clock())
        outcome: Outcome | None
        reason: str | None = None
        try:
            committed = emit(frame, None, dedup_key=dedup_key(frame))
        except Exception as exc:
            log.exception("MLLP: handing a message to the recorder failed")
            return ack_for(frame, None, f"not recorded ({exc}); send again", now=self._clock())
        if committed is None:
            outcome, reason = _local_outcome(frame)
        else:
            try:
                # shield: a timeout here must not cancel the recorder's future
                outcome = await asyncio.wait_for(asyncio.shield(committed), self._ack_timeout_s)
            except TimeoutError:
                _forget(committed)
                outcome = None
                reason = f"not recorded within {self._ack_timeout_s:g} s; send again"
            except Exception as exc:
                outcome = None
                reason = f"not recorded ({exc}); send again"
            if outcome == "quarantined":
                reason = _local_outcome(frame)[1] or "rejected by the recorder"
        return ack_for(frame, outcome, reason, now=self._clock())


def _forget(future: asyncio.Future[Any] | None) -> None:
    """Nobody awaits this future any more; retrieve its exception so none goes unseen."""
    if future is not None:
        future.add_done_callback(lambda f: f.cancelled() or f.exception())


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _address_of(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer)


class _ThrottledEvents:
    """Connection events for `on_state`, at most one a second (each is a durable write
    of the device's state; a flood of connections must not become a flood of fsyncs).
    Events in between are counted, and the latest is reported when the second is up."""

    INTERVAL_S = 1.0

    def __init__(self) -> None:
        self._last = -math.inf
        self._pending: tuple[StateSink, str] | None = None
        self._skipped = 0
        self._timer: asyncio.TimerHandle | None = None

    def report(self, on_state: StateSink, detail: str) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now - self._last >= self.INTERVAL_S and self._timer is None:
            self._send(on_state, detail, now)
            return
        if self._pending is not None:
            self._skipped += 1
        self._pending = (on_state, detail)
        if self._timer is None:
            self._timer = loop.call_at(self._last + self.INTERVAL_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending is not None:
            on_state, detail = self._pending
            self._pending = None
            self._send(on_state, detail, asyncio.get_running_loop().time())

    def _send(self, on_state: StateSink, detail: str, now: float) -> None:
        if self._skipped:
            detail += f" (and {self._skipped} earlier connection events)"
            self._skipped = 0
        self._last = now
        try:
            on_state("client", detail)
        except Exception:  # reporting must not break serving (a store hiccup)
            log.exception("MLLP: reporting a connection event failed")


def _listener(host: str, port: int, limits: ConnectionLimits) -> MllpListener:
    return MllpListener(host, port, limits=limits)


DECLARATIONS = (
    Driver(
        id="hl7-mllp",
        summary="monitors and central stations pushing HL7 v2 ORU^R01 over MLLP/TCP",
        source=NetworkListener(_listener),
        framer=MllpFramer,
        decoder_for=every_channel(decode_message),
        yields=Yields(numerics=True),
        profile="MDC_DEV_SPEC_PROFILE_HYDRA",
        binding=Binding.MONITOR,
        results=Results.LIVE,
        carries_identity=True,  # PID-3 and PID-5 (HL7 v2.6 §3.4.2)
    ),
)
