"""Philips resting-ECG XML (PageWriter, HeartStart MRx, "SierraECG").

Source: sixlettervariables/sierra-ecg-tools (MIT), the public reader of these files;
docs/protocols/ecg-files.md.

A document is `restingecgdata` in the namespace http://www3.medical.philips.com (files
without the namespace are read too), UTF-8 or UTF-16 with a byte-order mark: the bytes go
to the XML parser, which finds the encoding itself. The parser is defusedxml's, since
these files arrive on USB sticks: entity expansion and external references are refused.

Versions: `documentinfo/documenttype` + `documentversion` "SierraECG" 1.03 (HeartStart,
older PageWriters) and "PhilipsECG" 1.04 / 1.04.01 (PageWriter TC). Anything else is
refused, never guessed at.

Where things are:
- `dataacquisition` @date @time: the acquisition time (naive, the cart's wall clock);
  `dataacquisition/signalcharacteristics/samplingrate` (Hz) and the resolution in µV per
  unit (`signalresolution` in 1.03, `resolution` in 1.04). 1.04 repeats both on
  `parsedwaveforms` (@samplespersecond, @resolution); those describe the samples in the
  file (the schema says so, for data resampled after acquisition), so they win.
- `waveforms/parsedwaveforms`: @dataencoding "Base64" (whitespace inside is allowed),
  compression in @compression (1.04) or @compressmethod + @compressflag (1.03): "XLI" or
  none, @durationperchannel in ms (samples per lead = duration × rate / 1000),
  @numberofleads and @leadlabels in 1.04; 1.03 stores the twelve standard leads in sheet
  order. Uncompressed data is int16 little-endian, lead after lead.
- XLI (the carts' compression), one chunk per lead: an 8-byte header (LZW size int32 LE,
  2 unused bytes, start value int16 LE), then LZW with 10-bit codes read most significant
  bit first. The dictionary starts with the 256 single bytes; each code after the first
  adds the previous string plus the first byte of this one, as codes 256, 257 ... up to
  1022. A full dictionary stays as it is (never reset) and the codes go on at 10 bits,
  all of them known. A code equal to the next free code (the string the encoder defined
  in the very step that wrote it, "KwKwK") is the previous string plus its own first
  byte. Code 1023 (2^10 − 1), which the dictionary never assigns, ends the data: carts
  write it after the last code and pad with zero bits to a whole 16-bit word, so a full
  dictionary and the end code are in every real lead (the public readers, sierra-ecg-
  tools' C#, C and Python LZW decoders, stop at any code above 1022). Data without the
  end code (files this module wrote before it knew) ends with the bytes. The
  output splits in two halves, high bytes then low bytes, into int16 values that are
  second differences: the first two are samples, then each sample is
  2 × previous − the one before − a correction, the correction being the chunk's start
  value at the third sample and (stored value − 64) of the sample before at the others.
  So the last stored value carries nothing, and the start value is the first correction.
- XLI stores III, aVR, aVL and aVF as residuals against what I and II predict:
  III = II − I − r, aVR = −r − ⌊(I + II)/2⌋, aVL = ⌊(I − III)/2⌋ − r,
  aVF = ⌊(II + III)/2⌋ − r (aVL and aVF from the rebuilt III). Halves round down here, as
  in the Python reader sierraecg; the C and C# readers truncate toward zero, which gives
  one unit more on a negative odd sum: both are within a quantisation step of the other.
- Measurements: 1.03 `interpretations/interpretation/interpretationmeasurements`
  (heartrate, meanprint, meanqrsdur, meanqtint, meanqtc, p/qrs/t frontal axes); 1.04
  `interpretation/globalmeasurements` (heartrate, rrint, print, qrsdur, qtint, qtcb,
  qtcf, the axes). QTc is Bazett's (qtcb) when given, else Fridericia's (qtcf). Values
  that are not numbers ("Invalid", "Failed", blank) are left out.
- Statements: `statement` (statementcode, leftstatement + rightstatement; lhsstatement /
  rhsstatement are read too); only when there are none, the `unparsedstatement` elements
  of the statement components (lhsstatement, rhsstatement, @code), which in 1.04 are the
  same statements as templates ("V-rate ***-***"). Left and right halves are one line on
  the cart's printout, so they become one Statement text "left right", word for word.
- The cart: `dataacquisition/machine`, its text the model ("HeartstartMRx",
  "PageWriter TC"), @machineid the cart's id, @detaildescription vendor, part number and
  software. The patient as the cart was told: `patient/generalpatientdata/sex` ("Male",
  "Female", "Unknown") and `age`, one of `years` (1.03), `dateofbirth` (1.04 PageWriters;
  the age is then taken on the acquisition day), `months`, `weeks`, `days`, `hours`;
  `age/@defaultage` is what the criteria assume when no age was entered, not read.

`encode_philips_xml` writes a document of either version that this parser (and sierraecg)
read back: it is how tests and the demo cart make Philips files. Every int16 lead round
trips exactly, XLI or not; the 1.03 schema has no RR interval, so 1.03 drops it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation

import defusedxml
from defusedxml import ElementTree as SafeET

from device_drivers.ecg.record import (
    AGE_DAYS,
    AGE_HOURS,
    AGE_YEARS,
    STANDARD_LEADS,
    EcgRecord,
    age_between,
    lead_name,
    patient_age,
    sex_code,
    to_decoded,
)
from edge_agent.model import Decoded, DecodeError, Statement

PHILIPS_NS = "http://www3.medical.philips.com"
SUPPORTED_VERSIONS = {
    ("SierraECG", "1.03"),
    ("PhilipsECG", "1.04"),
    ("PhilipsECG", "1.04.01"),
}
DOCUMENT_TYPES = {"1.03": "SierraECG", "1.04": "PhilipsECG", "1.04.01": "PhilipsECG"}

LZW_CODE_BITS = 10
LZW_MAX_CODE = 1022  # the last code the dictionary assigns (2^10 - 2)
LZW_END_CODE = 1023  # 2^10 - 1: never assigned; the carts' end of data
XLI_HEADER = struct.Struct("<iHh")  # LZW size, unused, start value
XLI_BIAS = 64  # stored corrections are offset by 64
LIMB_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF")
INT16_MIN, INT16_MAX = -0x8000, 0x7FFF

# A lead decompressing to far more than the samples it should hold is an LZW bomb or
# garbage, not an ECG: stop there instead of filling memory (one 10-bit code can expand
# to 768 bytes). In a file: twice the bytes the lead needs plus the slack; alone: 4 MB.
XLI_SLACK_BYTES = 1 << 16
XLI_DEFAULT_LIMIT = 1 << 22

# Bounds that keep arithmetic on hostile numbers sane; real carts are far inside them.
MAX_RATE_HZ = 100_000
MAX_RESOLUTION_UV = 1_000_000
MAX_DURATION_MS = 86_400_000

# Measurement key -> element names that carry it, preferred first (1.04 names, then 1.03).
MEASUREMENT_TAGS: dict[str, tuple[str, ...]] = {
    "heart_rate": ("heartrate",),
    "rr": ("rrint", "meanrrint"),
    "pr": ("print", "meanprint"),
    "qrs": ("qrsdur", "meanqrsdur"),
    "qt": ("qtint", "meanqtint"),
    "qtc": ("qtcb", "meanqtc", "qtcf"),
    "p_axis": ("pfrontaxis",),
    "qrs_axis": ("qrsfrontaxis",),
    "t_axis": ("tfrontaxis",),
}
# What the encoder writes, per version (1.03's interpretationmeasurements has no RR).
MEASUREMENTS_104 = {
    "heart_rate": "heartrate",
    "rr": "rrint",
    "pr": "print",
    "qrs": "qrsdur",
    "qt": "qtint",
    "qtc": "qtcb",
    "p_axis": "pfrontaxis",
    "qrs_axis": "qrsfrontaxis",
    "t_axis": "tfrontaxis",
}
MEASUREMENTS_103 = {
    "heart_rate": "heartrate",
    "pr": "meanprint",
    "qrs": "meanqrsdur",
    "qt": "meanqtint",
    "qtc": "meanqtc",
    "p_axis": "pfrontaxis",
    "qrs_axis": "qrsfrontaxis",
    "t_axis": "tfrontaxis",
}
# Philips also labels the chest leads C1..C6 (IEC names) for V1..V6.
CHEST_ALIASES = {f"C{n}": f"V{n}" for n in range(1, 7)}


def _int16(value: int) -> int:
    """Two's-complement wrap to int16, as the carts' 16-bit arithmetic stores values.

    Only hostile or synthetic data ever leaves the range (sierraecg raises there); wrapping
    keeps the encoder and decoder exact inverses for every int16 lead."""
    return ((value + 0x8000) & 0xFFFF) - 0x8000


# --- LZW, 10-bit codes ----------------------------------------------------------------


def _unpack_codes(data: bytes) -> list[int]:
    """10-bit codes, most significant bit first; trailing bits short of a code are padding.

    Five bytes hold exactly four codes, so the stream is read five bytes at a time."""
    count = len(data) * 8 // LZW_CODE_BITS
    padded = data + bytes(-len(data) % 5)
    codes: list[int] = []
    for pos in range(0, len(padded), 5):
        word = int.from_bytes(padded[pos : pos + 5], "big")
        codes += (word >> 30, (word >> 20) & 0x3FF, (word >> 10) & 0x3FF, word & 0x3FF)
    del codes[count:]
    return codes


def _pack_codes(codes: Sequence[int]) -> bytes:
    out = bytearray()
    for pos in range(0, len(codes), 4):
        group = list(codes[pos : pos + 4])
        used = (len(group) * LZW_CODE_BITS + 7) // 8
        group += [0] * (4 - len(group))
        word = (group[0] << 30) | (group[1] << 20) | (group[2] << 10) | group[3]
        out += word.to_bytes(5, "big")[:used]
    return bytes(out)


def lzw_decode(data: bytes, *, limit: int = XLI_DEFAULT_LIMIT) -> bytes:
    """XLI's LZW: 10-bit codes, dictionary of the 256 bytes growing to code 1022, code
    1023 the end of data (the bits after it are the encoder's padding).

    Raises DecodeError (offset: the byte holding the bad code's first bit) for a code
    the dictionary does not have yet, or when the output would pass `limit` bytes."""
    table = [bytes((value,)) for value in range(256)]
    out: list[bytes] = []
    total = 0
    previous = b""
    for index, code in enumerate(_unpack_codes(data)):
        if code == LZW_END_CODE:
            break
        if code < len(table):
            entry = table[code]
        elif code == len(table) and previous:
            entry = previous + previous[:1]  # the code being defined by this very step
        else:
            raise DecodeError(
                f"LZW code {code} beyond the dictionary (next code {len(table)})",
                index * LZW_CODE_BITS // 8,
            )
        if previous and len(table) <= LZW_MAX_CODE:
            table.append(previous + entry[:1])
        total += len(entry)
        if total > limit:
            raise DecodeError(f"LZW data expands past {limit} bytes", index * LZW_CODE_BITS // 8)
        out.append(entry)
        previous = entry
    return b"".join(out)


def lzw_encode(data: bytes) -> bytes:
    """The inverse of lzw_decode, framed as carts write it: the codes (the dictionary
    fills up to 1022 on long data and then stays), the end code 1023, zero bits to a
    whole 16-bit word."""
    table: dict[tuple[int, int], int] = {}
    next_code = 256
    codes: list[int] = []
    if data:
        current = data[0]
        for byte in data[1:]:
            known = table.get((current, byte))
            if known is not None:
                current = known
                continue
            codes.append(current)
            if next_code <= LZW_MAX_CODE:
                table[(current, byte)] = next_code
                next_code += 1
            current = byte
        codes.append(current)
    codes.append(LZW_END_CODE)
    packed = _pack_codes(codes)
    return packed + bytes(len(packed) % 2)


# --- XLI: one chunk per lead ----------------------------------------------------------


def _unpredict(stored: Sequence[int], start: int) -> list[int]:
    out = list(stored[:2])
    if len(stored) < 3:
        return out
    before, previous = out
    correction = start
    for value in stored[2:]:
        current = _int16(2 * previous - before - correction)
        out.append(current)
        correction = value - XLI_BIAS
        before, previous = previous, current
    return out


def _predict(samples: Sequence[int]) -> tuple[list[int], int]:
    """(stored values, start value) that _unpredict turns back into `samples`."""
    n = len(samples)
    stored = list(samples)
    if n < 3:
        return stored, 0
    start = _int16(2 * samples[1] - samples[0] - samples[2])
    for i in range(2, n - 1):
        stored[i] = _int16(2 * samples[i] - samples[i - 1] - samples[i + 1] + XLI_BIAS)
    stored[n - 1] = XLI_BIAS  # read by nothing: the neutral correction
    return stored, start


def xli_decode_chunk(
    payload: bytes, pos: int = 0, *, limit: int = XLI_DEFAULT_LIMIT
) -> tuple[list[int], int]:
    """One lead's chunk at `pos` -> (its samples, the position after the chunk).

    DecodeError offsets are positions in `payload`."""
    left = len(payload) - pos
    if left < XLI_HEADER.size:
        raise DecodeError(f"XLI chunk header needs {XLI_HEADER.size} bytes, {left} left", pos)
    size, _unused, start = XLI_HEADER.unpack_from(payload, pos)
    body = pos + XLI_HEADER.size
    if size < 0 or size > len(payload) - body:
        raise DecodeError(
            f"XLI chunk says {size} bytes of LZW data, {len(payload) - body} left", pos
        )
    try:
        raw = lzw_decode(payload[body : body + size], limit=limit)
    except DecodeError as exc:
        raise DecodeError(exc.reason, body + (exc.offset or 0)) from None
    if len(raw) % 2:
        raise DecodeError(f"XLI chunk decompresses to an odd {len(raw)} bytes", pos)
    half = len(raw) // 2
    interleaved = bytearray(len(raw))
    interleaved[0::2] = raw[:half]  # high bytes first, then the low bytes
    interleaved[1::2] = raw[half:]
    stored = struct.unpack(f">{half}h", interleaved)
    return _unpredict(stored, start), body + size


def xli_decode(
    payload: bytes, lead_count: int | None = None, *, limit: int = XLI_DEFAULT_LIMIT
) -> list[list[int]]:
    """XLI data -> one list of samples per chunk, residual leads not rebuilt yet.

    `lead_count` chunks (trailing bytes ignored), or chunks up to the end of the data."""
    leads: list[list[int]] = []
    pos = 0
    while (len(leads) < lead_count) if lead_count is not None else (pos < len(payload)):
        try:
            samples, pos = xli_decode_chunk(payload, pos, limit=limit)
        except DecodeError as exc:
            raise DecodeError(f"XLI lead {len(leads) + 1}: {exc.reason}", exc.offset) from None
        leads.append(samples)
    return leads


def xli_encode_chunk(samples: Sequence[int]) -> bytes:
    stored, start = _predict(samples)
    raw = struct.pack(f">{len(stored)}h", *stored)
    compressed = lzw_encode(raw[0::2] + raw[1::2])
    return XLI_HEADER.pack(len(compressed), 0, start) + compressed


def xli_encode(leads: Sequence[Sequence[int]]) -> bytes:
    """int16 leads -> XLI data, one chunk per lead (residuals already applied)."""
    return b"".join(xli_encode_chunk(samples) for samples in leads)


# --- the residual limb leads ----------------------------------------------------------


def rebuild_limb_leads(leads: dict[str, list[int]]) -> None:
    """XLI residuals -> III, aVR, aVL, aVF, in place (when all six limb leads are there)."""
    if not all(name in leads for name in LIMB_LEADS):
        return
    i, ii = leads["I"], leads["II"]
    iii = [_int16(b - a - r) for a, b, r in zip(i, ii, leads["III"], strict=True)]
    leads["III"] = iii
    leads["aVR"] = [
        _int16(-r - ((a + b) >> 1)) for a, b, r in zip(i, ii, leads["aVR"], strict=True)
    ]
    leads["aVL"] = [
        _int16(((a - c) >> 1) - r) for a, c, r in zip(i, iii, leads["aVL"], strict=True)
    ]
    leads["aVF"] = [
        _int16(((b + c) >> 1) - r) for b, c, r in zip(ii, iii, leads["aVF"], strict=True)
    ]


def limb_residuals(leads: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    """The inverse of rebuild_limb_leads: what XLI stores for III, aVR, aVL and aVF."""
    if not all(name in leads for name in LIMB_LEADS):
        return {}
    i, ii, iii = leads["I"], leads["II"], leads["III"]
    return {
        "III": [_int16(b - a - c) for a, b, c in zip(i, ii, iii, strict=True)],
        "aVR": [_int16(-v - ((a + b) >> 1)) for a, b, v in zip(i, ii, leads["aVR"], strict=True)],
        "aVL": [_int16(((a - c) >> 1) - v) for a, c, v in zip(i, iii, leads["aVL"], strict=True)],
        "aVF": [_int16(((b + c) >> 1) - v) for b, c, v in zip(ii, iii, leads["aVF"], strict=True)],
    }


# --- reading the document -------------------------------------------------------------


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(element: ET.Element, name: str) -> Iterator[ET.Element]:
    return (child for child in element if _local(child.tag) == name)


def _child(element: ET.Element | None, *path: str) -> ET.Element | None:
    for name in path:
        if element is None:
            return None
        element = next(_children(element, name), None)
    return element


def _descendants(element: ET.Element, name: str) -> Iterator[ET.Element]:
    return (node for node in element.iter() if _local(node.tag) == name)


def _text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _number(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def _parse_xml(data: bytes) -> ET.Element:
    try:
        root: ET.Element = SafeET.fromstring(data)
    except defusedxml.DefusedXmlException as exc:
        raise DecodeError(f"not a safe XML document: {exc}") from None
    except ET.ParseError as exc:
        raise DecodeError(f"not well-formed XML: {exc}") from None
    except (ValueError, LookupError) as exc:  # unknown or broken encodings
        raise DecodeError(f"unreadable XML: {exc}") from None
    return root


def _check_version(root: ET.Element) -> str:
    tag = root.tag if isinstance(root.tag, str) else ""
    namespace = tag[1:].split("}", 1)[0] if tag.startswith("{") else ""
    if _local(tag) != "restingecgdata" or namespace not in ("", PHILIPS_NS):
        raise DecodeError(f"not a Philips XML ECG: root element is {tag or '?'}")
    info = _child(root, "documentinfo")
    doc_type = _text(_child(info, "documenttype"))
    version = _text(_child(info, "documentversion"))
    if (doc_type, version) not in SUPPORTED_VERSIONS:
        raise DecodeError(
            f"unsupported Philips XML {doc_type or '(no documenttype)'} "
            f"{version or '(no documentversion)'}"
        )
    return version


def _positive(text: str, what: str, most: int) -> Decimal:
    value = _number(text)
    if value is None or not 0 < value <= most:
        raise DecodeError(f"{what} must be a number above 0 and up to {most}, got {text!r}")
    return value


def _lead_labels(waves: ET.Element) -> list[str]:
    count_text = waves.get("numberofleads", "").strip()
    labels = waves.get("leadlabels", "").split()
    count = len(labels) if labels else len(STANDARD_LEADS)
    if count_text:
        if not (count_text.isascii() and count_text.isdigit()) or int(count_text) == 0:
            raise DecodeError(f"parsedwaveforms numberofleads {count_text!r} is not a count")
        count = int(count_text)
    if not labels:
        if count > len(STANDARD_LEADS):
            raise DecodeError(f"parsedwaveforms has {count} leads and no leadlabels")
        labels = list(STANDARD_LEADS[:count])
    if len(labels) != count:
        raise DecodeError(f"parsedwaveforms numberofleads {count} but {len(labels)} leadlabels")
    names = [lead_name(CHEST_ALIASES.get(label.upper(), label)) or label for label in labels]
    if len(set(names)) != len(names):
        raise DecodeError(f"parsedwaveforms leadlabels repeat a lead: {' '.join(labels)}")
    return names


def _is_xli(waves: ET.Element) -> bool:
    if waves.get("compressflag", "").strip().lower() == "false":
        return False
    method = (waves.get("compression") or waves.get("compressmethod") or "").strip()
    if method.upper() == "XLI":
        return True
    if method.upper() in ("", "NONE"):
        return False
    raise DecodeError(f"parsedwaveforms compression {method!r} is not supported (XLI or none)")


def _waveforms(waves: ET.Element, rate_hz: Decimal) -> dict[str, tuple[int, ...]]:
    encoding = waves.get("dataencoding", "").strip()
    if encoding.lower() != "base64":
        raise DecodeError(
            f"parsedwaveforms dataencoding {encoding or '(none)'}: only Base64 is supported"
        )
    names = _lead_labels(waves)
    duration = _number(waves.get("durationperchannel", ""))
    if duration is None or not 0 <= duration <= MAX_DURATION_MS:
        raise DecodeError(
            f"parsedwaveforms durationperchannel {waves.get('durationperchannel')!r} "
            "is not a duration in ms"
        )
    samples = int(duration * rate_hz / 1000)
    xli = _is_xli(waves)
    try:
        payload = base64.b64decode("".join((waves.text or "").split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(f"parsedwaveforms is not valid Base64: {exc}") from None

    if xli:
        limit = 4 * samples + XLI_SLACK_BYTES
        try:
            chunks = xli_decode(payload, len(names), limit=limit)
        except DecodeError as exc:
            raise DecodeError(f"parsedwaveforms {exc}") from None
        for name, chunk in zip(names, chunks, strict=True):
            if len(chunk) < samples:
                raise DecodeError(
                    f"parsedwaveforms XLI lead {name} holds {len(chunk)} samples, "
                    f"durationperchannel needs {samples}"
                )
        leads = {name: chunk[:samples] for name, chunk in zip(names, chunks, strict=True)}
        rebuild_limb_leads(leads)
        return {name: tuple(values) for name, values in leads.items()}

    needed = 2 * samples * len(names)
    if len(payload) < needed:
        raise DecodeError(
            f"parsedwaveforms holds {len(payload)} bytes, {len(names)} leads × {samples} "
            f"samples need {needed}"
        )
    values = struct.unpack_from(f"<{samples * len(names)}h", payload)
    return {name: tuple(values[k * samples : (k + 1) * samples]) for k, name in enumerate(names)}


def _measurements(root: ET.Element) -> dict[str, Decimal]:
    interpretation = _child(root, "interpretations", "interpretation")
    sources = [
        _child(interpretation, "globalmeasurements"),
        _child(interpretation, "interpretationmeasurements"),
        _child(root, "measurements", "globalmeasurements"),
    ]
    found: dict[str, Decimal] = {}
    for key, tags in MEASUREMENT_TAGS.items():
        for source in sources:
            if source is None or key in found:
                continue
            for tag in tags:
                value = _number(_text(_child(source, tag)))
                if value is not None:
                    found[key] = value
                    break
    return found


def _statement_text(element: ET.Element, left: str, right: str) -> str:
    parts = (_text(_child(element, left)), _text(_child(element, right)))
    return " ".join(part for part in parts if part)


def _statements(root: ET.Element) -> tuple[Statement, ...]:
    interpretation = _child(root, "interpretations", "interpretation")
    if interpretation is None:
        return ()
    statements: list[Statement] = []
    for element in _children(interpretation, "statement"):
        text = _statement_text(element, "leftstatement", "rightstatement") or (
            _statement_text(element, "lhsstatement", "rhsstatement")
        )
        if text:
            statements.append(Statement(text, _text(_child(element, "statementcode")) or None))
    if statements:
        # 1.04's statementcomponents are the templates of these same statements, with
        # "***" where the printed text has its numbers: not text the cart printed.
        return tuple(statements)
    seen: set[str] = set()
    for element in _descendants(interpretation, "unparsedstatement"):
        text = _statement_text(element, "lhsstatement", "rhsstatement")
        if text and text not in seen:
            seen.add(text)
            statements.append(Statement(text, (element.get("code") or "").strip() or None))
    return tuple(statements)


def _start_time(root: ET.Element) -> dt.datetime | None:
    acquisition = _child(root, "dataacquisition")
    if acquisition is None:
        return None
    date_text = acquisition.get("date", "").strip()
    time_text = acquisition.get("time", "").strip()
    try:
        day = dt.date.fromisoformat(date_text)
        clock = dt.time.fromisoformat(time_text) if time_text else dt.time()
    except ValueError:
        return None
    return dt.datetime.combine(day, clock.replace(tzinfo=None))


def _device(root: ET.Element) -> str | None:
    """The cart's model: `machine`'s text ("PageWriter TC", "HeartstartMRx"); its
    @detaildescription (vendor:part number:software, "Philips Medical
    Products:860315:A.07.04.03") only when the text is empty."""
    machine = _child(root, "dataacquisition", "machine")
    if machine is None:
        return None
    return _text(machine) or (machine.get("detaildescription") or "").strip() or None


# The age elements of the schemas (1.04.01 `age`: one of dateofbirth, years, months,
# weeks, days, hours, minutes; 1.03 files carry `years`) -> patient_age's unit words.
_AGE_ELEMENTS = {
    "years": AGE_YEARS,
    "months": "mo",
    "weeks": "wk",
    "days": AGE_DAYS,
    "hours": AGE_HOURS,
}


def _age(general: ET.Element | None, start: dt.datetime | None) -> tuple[int, str] | None:
    """The patient's age as the cart was told it. `age/@defaultage` is the age the
    cart's criteria assume when none was entered, not the patient's: not used."""
    age = _child(general, "age")
    if age is None:
        return None
    for name, unit in _AGE_ELEMENTS.items():
        text = _text(_child(age, name))
        if text:
            if not (text.isascii() and text.isdigit()) or len(text) > 6:
                return None
            return patient_age(int(text), unit)
    birth = _text(_child(age, "dateofbirth"))
    if not birth or start is None:
        return None
    try:
        return age_between(dt.date.fromisoformat(birth), start.date())
    except ValueError:
        return None


def _patient_name(general: ET.Element | None) -> str | None:
    name = _child(general, "name")
    parts = (_text(_child(name, "lastname")), _text(_child(name, "firstname")))
    return " ".join(part for part in parts if part) or None


def parse_philips_xml(data: bytes) -> EcgRecord:
    """A Philips XML file's bytes -> EcgRecord. DecodeError for anything unreadable."""
    root = _parse_xml(data)
    _check_version(root)
    waves = _child(root, "waveforms", "parsedwaveforms")
    if waves is None:
        raise DecodeError("no waveforms/parsedwaveforms: the file holds no ECG samples")
    signal = _child(root, "dataacquisition", "signalcharacteristics")
    rate_text = waves.get("samplespersecond") or _text(_child(signal, "samplingrate"))
    resolution_text = waves.get("resolution") or (
        _text(_child(signal, "resolution")) or _text(_child(signal, "signalresolution"))
    )
    rate_hz = _positive(rate_text, "samplingrate", MAX_RATE_HZ)
    uv_per_unit = _positive(resolution_text, "resolution (µV per unit)", MAX_RESOLUTION_UV)
    general = _child(root, "patient", "generalpatientdata")
    start = _start_time(root)
    age = _age(general, start)
    return EcgRecord(
        leads=_waveforms(waves, rate_hz),
        rate_hz=rate_hz,
        uv_per_unit=uv_per_unit,
        start_time=start,
        measurements=_measurements(root),
        statements=_statements(root),
        patient_id=_text(_child(general, "patientid")) or None,
        patient_name=_patient_name(general),
        device=_device(root),
        patient_sex=sex_code(_text(_child(general, "sex"))),
        patient_age=None if age is None else age[0],
        patient_age_unit=None if age is None else age[1],
    )


def decode_philips_xml(data: bytes) -> Decoded:
    """A Philips XML file's bytes -> what the recorder stores (record.to_decoded)."""
    return to_decoded(parse_philips_xml(data))


# --- writing --------------------------------------------------------------------------


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _check_record(record: EcgRecord, version: str) -> list[tuple[str, tuple[int, ...]]]:
    if version not in DOCUMENT_TYPES:
        raise ValueError(f"Philips XML version {version!r}: 1.03, 1.04 or 1.04.01")
    if not record.rate_hz > 0 or not record.uv_per_unit > 0:
        raise ValueError("sampling rate and resolution must be above 0")
    leads = record.ordered_leads()
    if not leads:
        raise ValueError("an ECG record without leads")
    if version == "1.03" and [name for name, _ in leads] != list(STANDARD_LEADS):
        raise ValueError("Philips XML 1.03 holds exactly the twelve standard leads")
    counts = {len(samples) for _, samples in leads}
    if len(counts) != 1:
        raise ValueError(f"Philips XML leads all have one length, got {sorted(counts)}")
    for name, samples in leads:
        if not name or any(ch.isspace() for ch in name):
            raise ValueError(f"lead label {name!r} cannot go into leadlabels")
        if samples and not INT16_MIN <= min(samples) <= max(samples) <= INT16_MAX:
            raise ValueError(f"lead {name}: samples outside int16")
    duration = Decimal(counts.pop()) * 1000 / record.rate_hz
    if duration != duration.to_integral_value():
        raise ValueError(
            f"{record.sample_count} samples at {record.rate_hz} Hz is not a whole number of ms"
        )
    return leads


_AGE_WRITTEN = {AGE_YEARS: "years", AGE_DAYS: "days", AGE_HOURS: "hours"}
_SEX_WRITTEN = {"M": "Male", "F": "Female"}


def encode_philips_xml(record: EcgRecord, *, version: str = "1.04", compress: bool = True) -> bytes:
    """EcgRecord -> a Philips XML document (UTF-8) that parse_philips_xml reads back.

    XLI-compressed with III/aVR/aVL/aVF as residuals when `compress`, else plain int16.
    ValueError for a record the format cannot hold (1.03 with other than the twelve
    standard leads, leads of unequal length, samples outside int16)."""
    leads = _check_record(record, version)
    modern = version != "1.03"
    root = ET.Element("restingecgdata", {"xmlns": PHILIPS_NS})
    info = _sub(root, "documentinfo")
    _sub(info, "documenttype", DOCUMENT_TYPES[version])
    _sub(info, "documentversion", version)

    acquisition = _sub(root, "dataacquisition")
    if record.start_time is not None:
        acquisition.set("date", record.start_time.date().isoformat())
        acquisition.set("time", record.start_time.strftime("%H:%M:%S"))
    if record.device:
        _sub(acquisition, "machine", record.device, detaildescription="")
    signal = _sub(acquisition, "signalcharacteristics")
    _sub(signal, "samplingrate", str(record.rate_hz))
    _sub(signal, "resolution" if modern else "signalresolution", str(record.uv_per_unit))
    _sub(signal, "acquisitiontype", "10-WIRE" if modern else "STD-12")
    _sub(signal, "numberchannelsallocated", str(len(leads)))
    _sub(signal, "numberchannelsvalid", str(len(leads)))

    general = _sub(_sub(root, "patient"), "generalpatientdata")
    if record.patient_id:
        _sub(general, "patientid", record.patient_id)
    if record.patient_name:
        _sub(_sub(general, "name"), "lastname", record.patient_name)
    age_element = _AGE_WRITTEN.get(record.patient_age_unit or "")
    if record.patient_age is not None and age_element:
        _sub(_sub(general, "age"), age_element, str(record.patient_age))
    if record.patient_sex:
        _sub(general, "sex", _SEX_WRITTEN.get(record.patient_sex, "Unknown"))

    interpretation = _sub(_sub(root, "interpretations"), "interpretation")
    table = MEASUREMENTS_104 if modern else MEASUREMENTS_103
    measured = _sub(
        interpretation, "globalmeasurements" if modern else "interpretationmeasurements"
    )
    for key, tag in table.items():
        value = record.measurements.get(key)
        if value is not None:
            _sub(measured, tag, str(value))
    for statement in record.statements:
        element = _sub(interpretation, "statement")
        _sub(element, "statementcode", statement.code or "")
        _sub(element, "leftstatement", statement.text)
        _sub(element, "rightstatement", "")

    names = [name for name, _ in leads]
    count = len(leads[0][1])
    if compress:
        stored = {name: list(samples) for name, samples in leads}
        stored.update(limb_residuals(stored))
        payload = xli_encode([stored[name] for name in names])
    else:
        payload = b"".join(struct.pack(f"<{count}h", *samples) for _, samples in leads)
    attrs = {
        "dataencoding": "Base64",
        "durationperchannel": str(int(Decimal(count) * 1000 / record.rate_hz)),
    }
    if modern:
        attrs |= {
            "numberofleads": str(len(names)),
            "leadlabels": " ".join(names),
            "samplespersecond": str(record.rate_hz),
            "resolution": str(record.uv_per_unit),
            "signalsigned": "True",
            "bitspersample": "16",
        }
        if compress:
            attrs["compression"] = "XLI"
    else:
        attrs |= {
            "compressflag": "True" if compress else "False",
            "compressmethod": "XLI",
            "nbitspersample": "16",
        }
    waves = _sub(_sub(root, "waveforms"), "parsedwaveforms", **attrs)
    waves.text = "\n" + base64.encodebytes(payload).decode("ascii")
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document
