"""SCP-ECG (EN 1064 / ISO 11073-91064) 12-lead files, read and written without I/O.

Facts from EN 1064:2005+A1:2007 (ISO 11073-91064), as docs/protocols/ecg-files.md sets
them out. A record is a CRC (uint16, over byte 2 to the end), a record length (uint32, the
file size) and sections; all numbers little-endian. Every section starts with a 16-byte
header: CRC of the section from its byte 2, section id, section length (header included,
even), section and protocol version, 6 reserved bytes. Section 0 at byte 6 points at the
others: 10-byte entries id / length / 1-based byte position. CRC-16/CCITT-FALSE throughout
("123456789" -> 0x29B1).

What `parse_scp` reads:
- section 1, tagged patient and acquisition data: patient ID (tag 2), last and first name
  (0, 1), age (4: uint16 and a unit byte; else the date of birth, 5, on the acquisition
  day), sex (8), acquisition date and time (25, 26), the acquiring device (14: model text,
  language code, then serial number and manufacturer among its trailing strings). Real
  files bend these tags, so text is decoded leniently (UTF-8, else the language code's
  character set, else Latin-1) and a tag that does not parse is ignored;
- section 2, Huffman tables: 19999 selects the default table; custom tables are read as
  the standard stores them (base codes bit-reversed, i.e. the first code bit in the least
  significant bit) and decoded most-significant bit first, table-mode switches included
  (table numbers 1-based). No cart file with a custom table was at hand to check this;
- section 3, lead definitions; leads with codes outside the twelve standard ones
  (record.LEAD_BY_CODE) are skipped, and a file with none of the twelve is refused;
- section 6, rhythm data: amplitude multiplier (nV per unit -> `uv_per_unit`), sample
  interval (µs -> `rate_hz`, the nominal rate when the interval is a rounded one:
  1667 µs -> 600 Hz), difference encoding 0/1/2, per-lead byte counts; without section 2
  the stored values are plain int16;
- section 7, global measurements: the first measurement block gives PR, QRS, QT and the
  frontal axes, then ventricular rate and QTc, with 29999 (and the other "not
  measured" codes) left out;
- section 8, the full-text interpretation statements, word for word.

Refused with a `DecodeError` (one line, with the byte offset): a wrong record or section
CRC or length, a pointer past the end, a missing section 3 or 6, and what this reader
does not implement: the two optional compression features, reference-beat subtraction
(section 3 flag bit 0, sections 4 and 5) and bimodal compression (section 6 flag), and
leads that start at different sample numbers (not recorded simultaneously). A signal
decoded without them would look plausible and be wrong.

`encode_scp` writes an SCP-ECG 2.0 record (sections 0-3 and 6-8; ids 0-11 listed in
section 0; text as UTF-8) from which `parse_scp` gives the same record back: for tests
and for the demo's simulated cart.
"""

from __future__ import annotations

import binascii
import datetime as dt
import itertools
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from device_drivers.ecg.record import (
    AGE_DAYS,
    AGE_HOURS,
    AGE_YEARS,
    LEAD_BY_CODE,
    LEAD_CODES,
    MEASUREMENTS,
    EcgRecord,
    age_between,
    patient_age,
    to_decoded,
)
from edge_agent.model import Decoded, DecodeError, Statement

RECORD_HEADER_LEN = 6  # CRC uint16 + record length uint32
SECTION_HEADER_LEN = 16
POINTER_ENTRY_LEN = 10
SCP_VERSION = 20  # section and protocol version bytes of an SCP-ECG 2.0 record
SECTION0_RESERVED = b"SCPECG"
LISTED_SECTIONS = range(12)  # section 0 always lists ids 0-11

DEFAULT_TABLE_MARKER = 19999  # section 2 "number of tables" meaning the default table
REFERENCE_BEAT_SUBTRACTION = 0x01  # section 3 flags bit 0
ALL_SIMULTANEOUS = 0x04  # section 3 flags bit 2
NOT_COMPUTED = 29999
# Section 7 codes for a value that is not there: not computed, lead rejected by the
# measurement program, wave not present; 999 is an undefined axis.
MISSING_MEASUREMENT = frozenset({NOT_COMPUTED, 29998, 19999})
UNDEFINED_AXIS = 999

INT16_MIN, INT16_MAX = -0x8000, 0x7FFF
UINT16_MAX = 0xFFFF

# Section 1 tag 14 (acquiring device): fixed part up to the length byte of the first
# string; byte 8-13 model text, byte 16 the language support code.
DEVICE_MODEL = slice(8, 14)
DEVICE_LANGUAGE_AT = 16
DEVICE_STRINGS_AT = 36  # then NUL-terminated: program revision, serial, software, SCP, maker
# Language support code -> Python codec (the character sets the codes name; 0 is ASCII).
LANGUAGE_CODECS = {
    0x01: "latin-1",
    0x03: "iso8859-2",
    0x0B: "iso8859-4",
    0x13: "iso8859-5",
    0x1B: "iso8859-6",
    0x23: "iso8859-7",
    0x2B: "iso8859-8",
    0x3B: "iso8859-15",
    0x27: "gb18030",  # GB 2312, of which GB 18030 is a superset
    0x2F: "euc-kr",
}

TAG_LAST_NAME = 0
TAG_FIRST_NAME = 1
TAG_PATIENT_ID = 2
TAG_AGE = 4  # uint16 value + unit byte
TAG_BIRTH_DATE = 5  # year uint16, month, day
TAG_SEX = 8  # one byte
TAG_DEVICE = 14
TAG_ACQUISITION_DATE = 25
TAG_ACQUISITION_TIME = 26
TAG_END = 255
# Tag 4's unit byte (EN 1064:2005 §5.4.3.1, tag 4): 0 unspecified, 1 years, 2 months,
# 3 weeks, 4 days, 5 hours -> record.patient_age units. Tag 8 (sex): 0 not known,
# 1 male, 2 female, 9 unspecified.
SCP_AGE_UNITS = {1: AGE_YEARS, 2: "mo", 3: "wk", 4: AGE_DAYS, 5: AGE_HOURS}
SCP_AGE_CODES = {AGE_YEARS: 1, AGE_DAYS: 4, AGE_HOURS: 5}
SCP_SEXES = {1: "M", 2: "F"}
SCP_SEX_CODES = {"M": 1, "F": 2}


def crc_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF, no reflection, no final
    XOR): the checksum of SCP-ECG records and sections. binascii's CRC-HQX is that CRC
    when started at 0xFFFF."""
    return binascii.crc_hqx(data, 0xFFFF)


# --- Huffman coding (section 2) ----------------------------------------------------------

# A code's meaning: (value, number of bits that follow the prefix and hold the value
# instead, 1-based table to switch to or 0).
HuffmanCode = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class HuffmanTable:
    """One Huffman table: the prefix bits as a '0'/'1' string (first bit read first) ->
    its meaning; `lengths` the distinct prefix lengths, shortest first."""

    codes: Mapping[str, HuffmanCode]
    lengths: tuple[int, ...]

    @classmethod
    def of(cls, codes: Mapping[str, HuffmanCode]) -> HuffmanTable:
        return cls(dict(codes), tuple(sorted({len(prefix) for prefix in codes})))


def _default_table() -> HuffmanTable:
    # EN 1064 default Huffman table: 0 -> 0; 1^k 0 0 -> +k and 1^k 0 1 -> -k for k = 1..8;
    # 1^9 0 and 1^10 are followed by the value as an 8-bit and a 16-bit two's complement
    # number.
    codes: dict[str, HuffmanCode] = {"0": (0, 0, 0)}
    for k in range(1, 9):
        codes["1" * k + "00"] = (k, 0, 0)
        codes["1" * k + "01"] = (-k, 0, 0)
    codes["1" * 9 + "0"] = (0, 8, 0)
    codes["1" * 10] = (0, 16, 0)
    return HuffmanTable.of(codes)


DEFAULT_HUFFMAN_TABLE = _default_table()


def _default_code(value: int) -> str:
    if value == 0:
        return "0"
    if -8 <= value <= 8:
        return "1" * abs(value) + ("00" if value > 0 else "01")
    if INT16_MIN // 256 <= value <= INT16_MAX // 256:
        return "1" * 9 + "0" + format(value & 0xFF, "08b")
    return "1" * 10 + format(value & 0xFFFF, "016b")


_DEFAULT_CODE_FOR = {value: _default_code(value) for value in range(-128, 128)}


def encode_huffman(values: Iterable[int]) -> bytes:
    """Values coded with the default table, most-significant bit first, the last byte
    padded with 0 bits. ValueError for a value outside int16 (the widest escape)."""
    parts = []
    for value in values:
        code = _DEFAULT_CODE_FOR.get(value)
        if code is None:
            if not INT16_MIN <= value <= INT16_MAX:
                raise ValueError(f"{value} does not fit the default Huffman table's 16-bit escape")
            code = _default_code(value)
        parts.append(code)
    bits = "".join(parts)
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def decode_huffman(
    encoded: bytes,
    count: int,
    tables: Sequence[HuffmanTable] = (DEFAULT_HUFFMAN_TABLE,),
    *,
    offset: int = 0,
    what: str = "Huffman data",
) -> list[int]:
    """Exactly `count` values out of `encoded` (bits read most-significant first),
    starting with the first table; `offset` (file position of `encoded`) and `what` only
    make the DecodeError say where."""
    if count > 8 * len(encoded):  # every code is at least one bit
        raise DecodeError(f"{what}: {count} values cannot fit in {len(encoded)} bytes", offset)
    # A leading 1 keeps the leading zero bits through int -> str.
    bits = bin(int.from_bytes(b"\x01" + encoded, "big"))[3:]
    table = tables[0]
    codes, lengths = table.codes, table.lengths
    values: list[int] = []
    append = values.append
    pos = 0
    while len(values) < count:
        for length in lengths:
            code = codes.get(bits[pos : pos + length])
            if code is not None:
                break
        else:
            at = offset + pos // 8
            if len(bits) - pos < lengths[-1]:
                raise DecodeError(f"{what}: ends after {len(values)} of {count} values", at)
            raise DecodeError(f"{what}: no Huffman code matches at value {len(values)}", at)
        pos += length
        value, extra_bits, switch_to = code
        if switch_to:
            if switch_to > len(tables):
                raise DecodeError(
                    f"{what}: switch to Huffman table {switch_to}, but section 2 has {len(tables)}",
                    offset + pos // 8,
                )
            table = tables[switch_to - 1]
            codes, lengths = table.codes, table.lengths
            continue
        if extra_bits:
            raw = bits[pos : pos + extra_bits]
            if len(raw) < extra_bits:
                raise DecodeError(
                    f"{what}: ends inside value {len(values)} of {count}", offset + pos // 8
                )
            pos += extra_bits
            value = int(raw, 2)
            if value >> (extra_bits - 1):
                value -= 1 << extra_bits
        append(value)
    return values


def _reverse_bits(code: int, width: int) -> int:
    return int(format(code, f"0{width}b")[::-1], 2)


def _huffman_tables(data: bytes, section: _Section) -> tuple[HuffmanTable, ...]:
    reader = _Reader(data, section, "section 2 (Huffman tables)")
    table_count = reader.u16("number of tables")
    if table_count == DEFAULT_TABLE_MARKER:
        return (DEFAULT_HUFFMAN_TABLE,)
    if table_count == 0:
        raise DecodeError("section 2 (Huffman tables): holds no table", reader.pos - 2)
    tables = []
    for number in range(1, table_count + 1):
        code_count = reader.u16(f"table {number} code count")
        if code_count == 0:
            raise DecodeError(f"section 2: Huffman table {number} has no codes", reader.pos - 2)
        codes: dict[str, HuffmanCode] = {}
        for index in range(code_count):
            at = reader.pos
            entry = f"table {number} code {index + 1}"
            prefix_bits = reader.u8(entry)
            total_bits = reader.u8(entry)
            mode = reader.u8(entry)
            base_value = reader.i16(entry)
            base_code = reader.u32(entry)
            if not 1 <= prefix_bits <= 32 or not prefix_bits <= total_bits <= prefix_bits + 32:
                raise DecodeError(
                    f"section 2: {entry} has {prefix_bits} prefix bits of {total_bits}", at
                )
            if base_code >> prefix_bits:
                raise DecodeError(
                    f"section 2: {entry} code {base_code:#x} is wider than {prefix_bits} bits", at
                )
            if mode == 0 and base_value < 1:
                raise DecodeError(f"section 2: {entry} switches to table {base_value}", at)
            # The standard stores the code with its first bit in the least significant bit.
            prefix = format(_reverse_bits(base_code, prefix_bits), f"0{prefix_bits}b")
            if prefix in codes:
                raise DecodeError(f"section 2: {entry} repeats code {prefix}", at)
            if mode == 0:
                codes[prefix] = (0, 0, base_value)
            else:
                codes[prefix] = (base_value, total_bits - prefix_bits, 0)
        tables.append(HuffmanTable.of(codes))
    return tuple(tables)


# --- difference encoding (section 6) -------------------------------------------------------


def undo_differences(values: Sequence[int], order: int) -> list[int]:
    """Samples from stored values: order 0 as is, 1 a running sum, 2 the first two values
    literal then x[n] = d[n] + 2·x[n−1] − x[n−2] (EN 1064 difference encoding)."""
    if order == 0:
        return list(values)
    if order == 1:
        return list(itertools.accumulate(values))
    if order == 2:
        samples = list(values[:2])
        if len(values) > 2:
            before, last = samples
            for difference in values[2:]:
                before, last = last, difference + 2 * last - before
                samples.append(last)
        return samples
    raise ValueError(f"difference encoding {order} is not 0, 1 or 2")


def to_differences(samples: Sequence[int], order: int) -> list[int]:
    """The inverse of `undo_differences`."""
    if order == 0:
        return list(samples)
    if order == 1:
        return list(samples[:1]) + [b - a for a, b in itertools.pairwise(samples)]
    if order == 2:
        return list(samples[:2]) + [
            c - 2 * b + a for a, b, c in zip(samples, samples[1:], samples[2:], strict=False)
        ]
    raise ValueError(f"difference encoding {order} is not 0, 1 or 2")


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Section:
    id: int
    start: int  # 0-based file offset of the section header
    length: int

    @property
    def body(self) -> int:
        return self.start + SECTION_HEADER_LEN

    @property
    def end(self) -> int:
        return self.start + self.length


class _Reader:
    """Little-endian reads inside one section; running past its end is a DecodeError
    naming the field and its file offset."""

    __slots__ = ("data", "end", "pos", "what")

    def __init__(self, data: bytes, section: _Section, what: str) -> None:
        self.data = data
        self.pos = section.body
        self.end = section.end
        self.what = what

    def _take(self, size: int, field: str) -> int:
        at = self.pos
        if at + size > self.end:
            raise DecodeError(f"{self.what}: {field} runs past the end of the section", at)
        self.pos = at + size
        return at

    def u8(self, field: str) -> int:
        return self.data[self._take(1, field)]

    def u16(self, field: str) -> int:
        value: int = struct.unpack_from("<H", self.data, self._take(2, field))[0]
        return value

    def i16(self, field: str) -> int:
        value: int = struct.unpack_from("<h", self.data, self._take(2, field))[0]
        return value

    def u32(self, field: str) -> int:
        value: int = struct.unpack_from("<I", self.data, self._take(4, field))[0]
        return value

    def take(self, size: int, field: str) -> bytes:
        at = self._take(size, field)
        return self.data[at : at + size]

    @property
    def remaining(self) -> int:
        return self.end - self.pos


def _check_section(data: bytes, section: _Section) -> None:
    crc, section_id, length = struct.unpack_from("<HHI", data, section.start)
    if section_id != section.id:
        raise DecodeError(
            f"section {section.id}: its header at byte {section.start} says section {section_id}",
            section.start + 2,
        )
    if length != section.length:
        raise DecodeError(
            f"section {section.id}: header length {length} differs from the pointer's "
            f"{section.length}",
            section.start + 4,
        )
    computed = crc_ccitt(data[section.start + 2 : section.end])
    if computed != crc:
        raise DecodeError(
            f"section {section.id}: CRC {crc:#06x} does not match its bytes ({computed:#06x})",
            section.start,
        )


def _sections(data: bytes) -> dict[int, _Section]:
    """Record header and section 0 checked; every section it points at located and its
    header checked."""
    if len(data) < RECORD_HEADER_LEN + SECTION_HEADER_LEN:
        raise DecodeError(
            f"{len(data)} bytes is too short for an SCP-ECG record (at least "
            f"{RECORD_HEADER_LEN + SECTION_HEADER_LEN})"
        )
    crc, length = struct.unpack_from("<HI", data, 0)
    if length != len(data):
        raise DecodeError(f"record length says {length} bytes but there are {len(data)}", 2)
    computed = crc_ccitt(data[2:])
    if computed != crc:
        raise DecodeError(f"record CRC {crc:#06x} does not match its bytes ({computed:#06x})", 0)
    pointer_length = struct.unpack_from("<I", data, RECORD_HEADER_LEN + 4)[0]
    if not SECTION_HEADER_LEN <= pointer_length <= len(data) - RECORD_HEADER_LEN:
        raise DecodeError(
            f"section 0: length {pointer_length} does not fit the {len(data)}-byte record",
            RECORD_HEADER_LEN + 4,
        )
    pointers = _Section(0, RECORD_HEADER_LEN, pointer_length)
    _check_section(data, pointers)
    sections = {0: pointers}
    for at in range(pointers.body, pointers.end - POINTER_ENTRY_LEN + 1, POINTER_ENTRY_LEN):
        section_id, length, index = struct.unpack_from("<HII", data, at)
        if section_id == 0 or length == 0:
            continue  # section 0 itself, or an absent section
        if section_id in sections:
            raise DecodeError(f"section 0: section {section_id} is listed twice", at)
        start = index - 1
        if index == 0 or start + length > len(data):
            raise DecodeError(
                f"section 0: section {section_id} ({length} bytes at position {index}) lies "
                f"past the end of the {len(data)}-byte record",
                at,
            )
        if length < SECTION_HEADER_LEN:
            raise DecodeError(
                f"section 0: section {section_id} is {length} bytes, shorter than its header", at
            )
        section = _Section(section_id, start, length)
        _check_section(data, section)
        sections[section_id] = section
    return sections


@dataclass(frozen=True, slots=True)
class _Lead:
    code: int
    first: int  # 1-based sample numbers, inclusive
    last: int

    @property
    def name(self) -> str:
        return LEAD_BY_CODE.get(self.code, f"with code {self.code}")

    @property
    def sample_count(self) -> int:
        return self.last - self.first + 1


def _leads(data: bytes, section: _Section) -> list[_Lead]:
    reader = _Reader(data, section, "section 3 (lead definition)")
    count = reader.u8("number of leads")
    flags = reader.u8("flags")
    if flags & REFERENCE_BEAT_SUBTRACTION:
        raise DecodeError(
            "section 3: reference-beat subtraction (flag bit 0, sections 4 and 5) is not supported",
            section.body + 1,
        )
    if count == 0:
        raise DecodeError("section 3: lists no leads", section.body)
    leads: list[_Lead] = []
    for number in range(1, count + 1):
        at = reader.pos
        first = reader.u32(f"lead {number}")
        last = reader.u32(f"lead {number}")
        lead = _Lead(reader.u8(f"lead {number}"), first, last)
        if last < first:
            raise DecodeError(
                f"section 3: lead {lead.name} ends at sample {last} before it starts ({first})",
                at,
            )
        if any(other.code == lead.code for other in leads) and lead.code in LEAD_BY_CODE:
            raise DecodeError(f"section 3: lead {lead.name} is defined twice", at)
        leads.append(lead)
    if not any(lead.code in LEAD_BY_CODE for lead in leads):
        codes = ", ".join(str(lead.code) for lead in leads)
        raise DecodeError(
            f"section 3: none of the lead codes ({codes}) is a standard lead", section.body
        )
    kept = [lead for lead in leads if lead.code in LEAD_BY_CODE]
    if len({lead.first for lead in kept}) > 1:
        raise DecodeError(
            "section 3: leads start at different sample numbers (not recorded "
            "simultaneously), which is not supported",
            section.body,
        )
    return leads


@dataclass(frozen=True, slots=True)
class _Rhythm:
    leads: dict[str, tuple[int, ...]]
    multiplier_nv: int
    interval_us: int


def _rhythm(
    data: bytes, section: _Section, leads: list[_Lead], tables: Sequence[HuffmanTable] | None
) -> _Rhythm:
    reader = _Reader(data, section, "section 6 (rhythm data)")
    multiplier = reader.u16("amplitude multiplier")
    interval = reader.u16("sample interval")
    order = reader.u8("difference encoding")
    bimodal = reader.u8("bimodal compression flag")
    if multiplier == 0:
        raise DecodeError("section 6: amplitude multiplier is 0 nV", section.body)
    if interval == 0:
        raise DecodeError("section 6: sample interval is 0 µs", section.body + 2)
    if order not in (0, 1, 2):
        raise DecodeError(
            f"section 6: difference encoding {order} is not 0, 1 or 2", reader.pos - 2
        )
    if bimodal:
        raise DecodeError("section 6: bimodal compression is not supported", reader.pos - 1)
    byte_counts = [reader.u16("lead byte counts") for _ in leads]
    samples: dict[str, tuple[int, ...]] = {}
    for lead, byte_count in zip(leads, byte_counts, strict=True):
        at = reader.pos
        if byte_count > reader.remaining:
            raise DecodeError(
                f"section 6: lead {lead.name} has {byte_count} bytes but only "
                f"{reader.remaining} remain in the section",
                at,
            )
        encoded = reader.take(byte_count, f"lead {lead.name}")
        if lead.code not in LEAD_BY_CODE:
            continue
        what = f"section 6 lead {lead.name}"
        count = lead.sample_count
        if tables is not None:
            stored = decode_huffman(encoded, count, tables, offset=at, what=what)
        elif 2 * count > byte_count:
            raise DecodeError(
                f"{what}: {count} int16 samples need {2 * count} bytes, it has {byte_count}", at
            )
        else:
            stored = list(struct.unpack_from(f"<{count}h", encoded))
        samples[lead.name] = tuple(undo_differences(stored, order))
    return _Rhythm(samples, multiplier, interval)


def rate_from_interval(interval_us: int) -> Decimal:
    """Sample rate for an interval in µs: the whole number of Hz that rounds back to the
    same interval (1667 -> 600), else 10⁶ / interval."""
    nominal = (10**6 + interval_us // 2) // interval_us
    if nominal and (10**6 + nominal // 2) // nominal == interval_us:
        return Decimal(nominal)
    return Decimal(10**6) / Decimal(interval_us)


def _text(raw: bytes, codec: str | None) -> str:
    raw = raw.split(b"\0", 1)[0]
    for encoding in (codec, "utf-8"):
        if encoding:
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError:
                pass
    return raw.decode("latin-1")


@dataclass(frozen=True, slots=True)
class _Patient:
    patient_id: str | None = None
    name: str | None = None
    start_time: dt.datetime | None = None
    device: str | None = None
    codec: str | None = None
    sex: str | None = None
    age: tuple[int, str] | None = None


def _patient(data: bytes, section: _Section | None) -> _Patient:
    """Section 1, leniently: a tag that runs past the section ends the list, a tag whose
    value does not parse is left out."""
    if section is None:
        return _Patient()
    tags: dict[int, bytes] = {}
    pos = section.body
    while pos + 3 <= section.end:
        tag = data[pos]
        length = int.from_bytes(data[pos + 1 : pos + 3], "little")
        if tag == TAG_END or pos + 3 + length > section.end:
            break
        tags.setdefault(tag, data[pos + 3 : pos + 3 + length])
        pos += 3 + length
    device_tag = tags.get(TAG_DEVICE, b"")
    codec = None
    if len(device_tag) > DEVICE_LANGUAGE_AT:
        codec = LANGUAGE_CODECS.get(device_tag[DEVICE_LANGUAGE_AT])

    def text(tag: int) -> str | None:
        raw = tags.get(tag)
        return None if raw is None else (_text(raw, codec).strip() or None)

    name = " ".join(part for part in (text(TAG_LAST_NAME), text(TAG_FIRST_NAME)) if part)
    start = _acquisition_time(tags)
    sex = tags.get(TAG_SEX, b"")
    return _Patient(
        patient_id=text(TAG_PATIENT_ID),
        name=name or None,
        start_time=start,
        device=_device(device_tag, codec),
        codec=codec,
        sex=SCP_SEXES.get(sex[0]) if len(sex) == 1 else None,
        age=_age(tags, start),
    )


def _age(tags: Mapping[int, bytes], start: dt.datetime | None) -> tuple[int, str] | None:
    """Tag 4 (value and unit), else the date of birth (tag 5) on the acquisition day."""
    age = tags.get(TAG_AGE, b"")
    if len(age) == 3 and age[2] in SCP_AGE_UNITS:
        return patient_age(int.from_bytes(age[:2], "little"), SCP_AGE_UNITS[age[2]])
    birth = tags.get(TAG_BIRTH_DATE, b"")
    if len(birth) != 4 or start is None:
        return None
    try:
        born = dt.date(int.from_bytes(birth[:2], "little"), birth[2], birth[3])
    except ValueError:
        return None
    return age_between(born, start.date())


def _acquisition_time(tags: Mapping[int, bytes]) -> dt.datetime | None:
    date, time = tags.get(TAG_ACQUISITION_DATE, b""), tags.get(TAG_ACQUISITION_TIME, b"")
    if len(date) < 4 or len(time) < 3:
        return None
    year = int.from_bytes(date[:2], "little")
    try:
        return dt.datetime(
            year, date[2], date[3], time[0], time[1], time[2]
        )  # the cart's wall clock
    except ValueError:
        return None


def _device(value: bytes, codec: str | None) -> str | None:
    """Manufacturer, model and serial number as tag 14 names them."""
    if len(value) < DEVICE_STRINGS_AT:
        return None
    strings = [_text(part, codec).strip() for part in value[DEVICE_STRINGS_AT:].split(b"\0")]
    serial = strings[1] if len(strings) > 1 else ""
    manufacturer = strings[4] if len(strings) > 4 else ""
    model = _text(value[DEVICE_MODEL], codec).strip()
    return " ".join(part for part in (manufacturer, model, serial) if part) or None


def _missing(value: int) -> bool:
    return value in MISSING_MEASUREMENT


def _measurements(data: bytes, section: _Section) -> dict[str, Decimal]:
    reader = _Reader(data, section, "section 7 (global measurements)")
    block_count = reader.u8("number of measurement blocks")
    spike_count = reader.u8("number of pacemaker spikes")
    rr = reader.u16("average RR interval")
    reader.u16("average PP interval")
    found: dict[str, int] = {}
    if not _missing(rr):
        found["rr"] = rr
    for block in range(block_count):
        field = f"measurement block {block + 1}"
        p_onset, _p_offset, qrs_onset, qrs_offset, t_offset = (reader.u16(field) for _ in range(5))
        axes = [reader.i16(field) for _ in range(3)]
        if block:
            continue  # further blocks describe other reference-beat types
        if not _missing(qrs_onset):
            for key, start, end in (
                ("pr", p_onset, qrs_onset),
                ("qrs", qrs_onset, qrs_offset),
                ("qt", qrs_onset, t_offset),
            ):
                if not _missing(start) and not _missing(end) and end >= start:
                    found[key] = end - start
        for key, axis in zip(("p_axis", "qrs_axis", "t_axis"), axes, strict=True):
            if not _missing(axis) and axis != UNDEFINED_AXIS:
                found[key] = axis
    reader.take(4 * spike_count, "pacemaker spike measurements")
    reader.take(6 * spike_count, "pacemaker spike information")
    if reader.remaining >= 2:
        qrs_count = reader.u16("number of QRS complexes")
        reader.take(qrs_count, "QRS types")
    # The additional global measurements are missing from some writers' files.
    if reader.remaining >= 9:
        ventricular_rate = reader.u16("ventricular rate")
        reader.u16("atrial rate")
        qtc = reader.u16("QTc")
        if not _missing(ventricular_rate):
            found["heart_rate"] = ventricular_rate
        if not _missing(qtc):
            found["qtc"] = qtc
    return {key: Decimal(found[key]) for key in MEASUREMENTS if key in found}


def _statements(data: bytes, section: _Section, codec: str | None) -> tuple[Statement, ...]:
    reader = _Reader(data, section, "section 8 (statements)")
    reader.take(8, "confirmation status, date and time")
    count = reader.u8("number of statements")
    statements = []
    for number in range(1, count + 1):
        reader.u8(f"statement {number} sequence number")
        length = reader.u16(f"statement {number} length")
        text = _text(reader.take(length, f"statement {number}"), codec)
        if text:
            statements.append(Statement(text))
    return tuple(statements)


def parse_scp(data: bytes) -> EcgRecord:
    """An SCP-ECG record -> EcgRecord; DecodeError for anything it cannot read faithfully."""
    data = bytes(data)
    sections = _sections(data)
    if 3 not in sections:
        raise DecodeError("no section 3 (lead definition): the record carries no leads")
    leads = _leads(data, sections[3])
    if 6 not in sections:
        raise DecodeError("no section 6 (rhythm data): the record carries no signals")
    tables = _huffman_tables(data, sections[2]) if 2 in sections else None
    rhythm = _rhythm(data, sections[6], leads, tables)
    patient = _patient(data, sections.get(1))
    measurements = _measurements(data, sections[7]) if 7 in sections else {}
    statements = _statements(data, sections[8], patient.codec) if 8 in sections else ()
    return EcgRecord(
        leads=rhythm.leads,
        rate_hz=rate_from_interval(rhythm.interval_us),
        uv_per_unit=Decimal(rhythm.multiplier_nv) / Decimal(1000),
        start_time=patient.start_time,
        measurements=measurements,
        statements=statements,
        patient_id=patient.patient_id,
        patient_name=patient.name,
        device=patient.device,
        patient_sex=patient.sex,
        patient_age=None if patient.age is None else patient.age[0],
        patient_age_unit=None if patient.age is None else patient.age[1],
    )


def decode_scp(data: bytes) -> Decoded:
    """An SCP-ECG record as the recorder stores it (record.to_decoded)."""
    return to_decoded(parse_scp(data))


# --- writing -------------------------------------------------------------------------------


def _section_bytes(section_id: int, body: bytes) -> bytes:
    if len(body) % 2:
        body += b"\0"  # sections have even lengths
    reserved = SECTION0_RESERVED if section_id == 0 else bytes(6)
    tail = (
        struct.pack("<HIBB", section_id, SECTION_HEADER_LEN + len(body), SCP_VERSION, SCP_VERSION)
        + reserved
        + body
    )
    return struct.pack("<H", crc_ccitt(tail)) + tail


def _text_bytes(text: str, what: str) -> bytes:
    if "\0" in text:
        raise ValueError(f"{what} contains a NUL character")
    return text.encode("utf-8") + b"\0"


def _tag(tag: int, value: bytes) -> bytes:
    if len(value) > UINT16_MAX:
        raise ValueError(f"section 1 tag {tag}: {len(value)} bytes is too long")
    return struct.pack("<BH", tag, len(value)) + value


def _device_tag(device: str | None) -> bytes:
    fixed = struct.pack(
        "<HHHBB6sBBBBB16s",
        0,  # institution
        0,  # department
        0,  # device id
        0,  # device type: acquisition cart
        255,  # manufacturer code: other
        b"",  # model text
        SCP_VERSION,
        0,  # protocol compatibility level
        0,  # language support code (the text is written as UTF-8, which parse_scp tries first)
        0,  # capabilities
        0,  # mains frequency unspecified
        b"",  # reserved
    )
    manufacturer = _text_bytes(device or "", "device")
    # Length of the (empty) analysing-program revision, then it, serial number, software,
    # SCP implementation and manufacturer, each NUL-terminated.
    return fixed + b"\x01" + b"\0" * 4 + manufacturer


def _patient_section(record: EcgRecord) -> bytes:
    body = _tag(TAG_PATIENT_ID, _text_bytes(record.patient_id or "", "patient id"))
    if record.patient_name:
        body += _tag(TAG_LAST_NAME, _text_bytes(record.patient_name, "patient name"))
    age_code = SCP_AGE_CODES.get(record.patient_age_unit or "")
    if record.patient_age is not None and age_code is not None:
        if not 0 <= record.patient_age <= UINT16_MAX:
            raise ValueError(f"patient age {record.patient_age}: SCP-ECG stores 0..65535")
        body += _tag(TAG_AGE, struct.pack("<HB", record.patient_age, age_code))
    if record.patient_sex in SCP_SEX_CODES:
        body += _tag(TAG_SEX, bytes((SCP_SEX_CODES[record.patient_sex],)))
    body += _tag(TAG_DEVICE, _device_tag(record.device))
    start = record.start_time
    if start is not None:
        if start.microsecond or start.tzinfo is not None:
            raise ValueError(
                f"start time {start.isoformat()}: SCP-ECG stores a naive time in whole seconds"
            )
        body += _tag(TAG_ACQUISITION_DATE, struct.pack("<HBB", start.year, start.month, start.day))
        body += _tag(TAG_ACQUISITION_TIME, bytes((start.hour, start.minute, start.second)))
    return body + _tag(TAG_END, b"")


def _multiplier_nv(uv_per_unit: Decimal) -> int:
    nanovolts = uv_per_unit * 1000
    if nanovolts != nanovolts.to_integral_value() or not 1 <= nanovolts <= UINT16_MAX:
        raise ValueError(
            f"resolution {uv_per_unit} µV per unit: SCP-ECG stores a whole number of nV "
            f"per unit from 1 to {UINT16_MAX}"
        )
    return int(nanovolts)


def _interval_us(rate_hz: Decimal) -> int:
    if rate_hz <= 0:
        raise ValueError(f"sample rate {rate_hz} Hz is not positive")
    interval = int((Decimal(10**6) / rate_hz).to_integral_value())
    if not 1 <= interval <= UINT16_MAX or rate_from_interval(interval) != rate_hz:
        raise ValueError(
            f"sample rate {rate_hz} Hz: SCP-ECG stores a whole number of µs per sample "
            "and no such interval reads back as this rate"
        )
    return interval


def _int16_values(values: Sequence[int], lead: str, kind: str) -> None:
    for index, value in enumerate(values):
        if not INT16_MIN <= value <= INT16_MAX:
            raise ValueError(
                f"lead {lead}: {kind} {value} at sample {index} does not fit int16 "
                "(use fewer differences)"
            )


def _rhythm_section(
    record: EcgRecord, leads: list[tuple[str, tuple[int, ...]]], huffman: bool, order: int
) -> bytes:
    encoded = []
    kind = ("sample", "first difference", "second difference")[order]
    for name, samples in leads:
        stored = to_differences(samples, order)
        _int16_values(stored, name, kind)
        data = encode_huffman(stored) if huffman else struct.pack(f"<{len(stored)}h", *stored)
        if len(data) > UINT16_MAX:
            raise ValueError(
                f"lead {name}: {len(data)} bytes, more than SCP-ECG's {UINT16_MAX} per lead"
            )
        encoded.append(data)
    return (
        struct.pack(
            "<HHBB", _multiplier_nv(record.uv_per_unit), _interval_us(record.rate_hz), order, 0
        )
        + b"".join(struct.pack("<H", len(data)) for data in encoded)
        + b"".join(encoded)
    )


def _lead_section(leads: list[tuple[str, tuple[int, ...]]]) -> bytes:
    flags = 0
    if len({len(samples) for _, samples in leads}) == 1 and len(leads) < 32:
        flags = ALL_SIMULTANEOUS | len(leads) << 3
    return struct.pack("<BB", len(leads), flags) + b"".join(
        struct.pack("<IIB", 1, len(samples), LEAD_CODES[name]) for name, samples in leads
    )


def _whole(measurements: Mapping[str, Decimal], key: str) -> int | None:
    value = measurements.get(key)
    if value is None:
        return None
    if value != value.to_integral_value():
        raise ValueError(f"measurement {key} = {value}: SCP-ECG stores whole ms and degrees")
    return int(value)


def _measurement_section(measurements: Mapping[str, Decimal]) -> bytes:
    unknown = sorted(set(measurements) - set(MEASUREMENTS))
    if unknown:
        raise ValueError(f"measurements {', '.join(unknown)} are not SCP-ECG global measurements")
    pr, qrs, qt = (_whole(measurements, key) for key in ("pr", "qrs", "qt"))
    # One measurement block with P onset at 0 ms, so QRS onset is the PR interval and the
    # offsets are QRS onset + duration: each interval reads back exactly.
    qrs_onset = pr if pr is not None else 0
    fields = {
        "rr": _whole(measurements, "rr"),
        "P onset": None if pr is None else 0,
        "QRS onset": qrs_onset,
        "QRS offset": None if qrs is None else qrs_onset + qrs,
        "T offset": None if qt is None else qrs_onset + qt,
        "heart_rate": _whole(measurements, "heart_rate"),
        "qtc": _whole(measurements, "qtc"),
    }
    axes = [_whole(measurements, key) for key in ("p_axis", "qrs_axis", "t_axis")]
    for key, value in fields.items():
        if value is not None and (not 0 <= value <= UINT16_MAX or _missing(value)):
            raise ValueError(f"measurement {key} = {value} cannot be stored in section 7")
    for key, value in zip(("p_axis", "qrs_axis", "t_axis"), axes, strict=True):
        if value is not None and (
            not INT16_MIN <= value <= INT16_MAX or _missing(value) or value == UNDEFINED_AXIS
        ):
            raise ValueError(f"measurement {key} = {value} cannot be stored in section 7")

    def u16(name: str) -> int:
        value = fields[name]
        return NOT_COMPUTED if value is None else value

    return (
        struct.pack("<BBHH", 1, 0, u16("rr"), NOT_COMPUTED)
        + struct.pack(
            "<HHHHHhhh",
            u16("P onset"),
            NOT_COMPUTED,  # P offset
            u16("QRS onset"),
            u16("QRS offset"),
            u16("T offset"),
            *(NOT_COMPUTED if axis is None else axis for axis in axes),
        )
        + struct.pack("<H", 0)  # no QRS type list
        + struct.pack("<HHHBH", u16("heart_rate"), NOT_COMPUTED, u16("qtc"), 0, 0)
    )


def _statement_section(statements: Sequence[Statement], when: dt.datetime | None) -> bytes:
    if len(statements) > 255:
        raise ValueError(f"{len(statements)} statements: section 8 holds at most 255")
    date = (
        struct.pack("<HBB", when.year, when.month, when.day) if when else bytes(4),
        bytes((when.hour, when.minute, when.second)) if when else bytes(3),
    )
    body = b"\0" + date[0] + date[1] + bytes((len(statements),))
    for number, statement in enumerate(statements, 1):
        text = _text_bytes(statement.text, f"statement {number}")
        if len(text) > UINT16_MAX:
            raise ValueError(f"statement {number}: {len(text)} bytes is too long")
        body += struct.pack("<BH", number, len(text)) + text
    return body


def encode_scp(record: EcgRecord, *, huffman: bool = True, differences: int = 2) -> bytes:
    """An SCP-ECG 2.0 record of `record` (EN 1064): default Huffman table when
    `huffman` else plain int16, `differences` 0/1/2. ValueError for what SCP-ECG cannot
    hold exactly: a resolution that is not a whole number of nV, a rate no whole µs
    interval reads back as, a stored value outside int16, a non-standard lead name,
    a measurement that is not a whole number."""
    if differences not in (0, 1, 2):
        raise ValueError(f"difference encoding {differences} is not 0, 1 or 2")
    if record.offset_uv:
        raise ValueError(f"SCP-ECG has no amplitude offset (record has {record.offset_uv} µV)")
    leads = record.ordered_leads()
    if not leads:
        raise ValueError("a record without leads")
    for name, samples in leads:
        if name not in LEAD_CODES:
            raise ValueError(f"lead {name!r} is not one of the twelve standard leads")
        if not samples:
            raise ValueError(f"lead {name} has no samples")
    bodies = {
        1: _patient_section(record),
        3: _lead_section(leads),
        6: _rhythm_section(record, leads, huffman, differences),
    }
    if huffman:
        bodies[2] = struct.pack("<H", DEFAULT_TABLE_MARKER)
    if record.measurements:
        bodies[7] = _measurement_section(record.measurements)
    if record.statements:
        bodies[8] = _statement_section(record.statements, record.start_time)
    sections = {
        section_id: _section_bytes(section_id, bodies[section_id]) for section_id in sorted(bodies)
    }

    pointer_length = SECTION_HEADER_LEN + POINTER_ENTRY_LEN * len(LISTED_SECTIONS)
    position = RECORD_HEADER_LEN + pointer_length
    entries = [struct.pack("<HII", 0, pointer_length, RECORD_HEADER_LEN + 1)]
    for section_id in LISTED_SECTIONS[1:]:
        section = sections.get(section_id)
        if section is None:
            entries.append(struct.pack("<HII", section_id, 0, 0))
        else:
            entries.append(struct.pack("<HII", section_id, len(section), position + 1))
            position += len(section)
    body = _section_bytes(0, b"".join(entries)) + b"".join(sections.values())
    tail = struct.pack("<I", RECORD_HEADER_LEN + len(body)) + body
    return struct.pack("<H", crc_ccitt(tail)) + tail
