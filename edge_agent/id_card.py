"""What a USB reader of the second-generation resident ID card (第二代居民身份证) gives,
read as hostile input: the input boundary of a sign-in by card.

Such readers hand the card's text fields to the host through their vendor's SDK (a
library the reader's maker ships); the SDKs differ, so the box does not speak any of
them. A small bridge process next to the SDK writes one line per card read, and this
module is all that reads it. **No reader model was checked**: no reader and no SDK
was at hand when this was written; the line below is this project's own format, and a
bridge for a given reader is still to be written (docs/security.md says so too).

The line, UTF-8, at most 1024 bytes, nine fields separated by `|`, in this order:

    name | sex (男/女) | ethnic group | birth date YYYYMMDD | address | national id number
    | issuing authority | valid from YYYYMMDD | valid until YYYYMMDD or 长期

The number is checked as GB 11643-1999 asks (edge_agent.national_id), and must agree
with the card's birth date and sex; the card must be valid today. Only the number, the
name, the sex, the birth date and the end of validity are kept: the address, ethnic
group and authority are not needed to know who is at the kiosk and are dropped here
(GB/T 35273-2020 §5.2, collect no more than the purpose needs).

Pure: no I/O. `IdCardReader` is what a bridge offers; `read` turns its line into a card.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass
from typing import Protocol

from edge_agent import national_id

MAX_LINE_BYTES = 1024
MAX_NAME = 30  # a name written with "·" between its parts can be long
LONG_TERM = "长期"  # valid with no end (people of 46 and older)
_SEX = {"男": "M", "女": "F"}
FIELDS = 9


class IdCardError(ValueError):
    """A line that is not a valid card's; the message never quotes the line."""


@dataclass(frozen=True, slots=True)
class IdCard:
    national_id: str
    name: str
    sex: str  # "M" | "F"
    birth_date: dt.date
    valid_until: dt.date | None  # None: 长期


class IdCardReader(Protocol):
    """A bridge to a reader's SDK: the line of the card on it now, None when none is."""

    def read_line(self) -> bytes | None: ...


def _date(text: str, what: str) -> dt.date:
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        raise IdCardError(f"ID card: {what} is not a date YYYYMMDD")
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise IdCardError(f"ID card: {what} is not a date YYYYMMDD") from None


def _text_field(text: str, what: str, longest: int) -> str:
    clean = text.strip()
    if not clean or len(clean) > longest:
        raise IdCardError(f"ID card: {what} must be 1 to {longest} characters")
    if any(unicodedata.category(c)[0] in "CZ" and c != " " for c in clean):
        raise IdCardError(f"ID card: {what} holds control or separator characters")
    return clean


def parse(line: bytes, *, today: dt.date) -> IdCard:
    """The card a bridge's line describes; IdCardError naming the first bad field."""
    if len(line) > MAX_LINE_BYTES:
        raise IdCardError(f"ID card: a line longer than {MAX_LINE_BYTES} bytes")
    try:
        text = line.decode("utf-8").removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError:
        raise IdCardError("ID card: the line is not UTF-8") from None
    fields = text.split("|")
    if len(fields) != FIELDS:
        raise IdCardError(f"ID card: {FIELDS} fields separated by '|', got {len(fields)}")
    name_f, sex_f, ethnic, birth_f, address, number_f, authority, start_f, end_f = fields
    name = _text_field(name_f, "name", MAX_NAME)
    for value, what in ((ethnic, "ethnic group"), (address, "address"), (authority, "authority")):
        _text_field(value, what, 200)
    sex = _SEX.get(sex_f.strip())
    if sex is None:
        raise IdCardError("ID card: sex must be 男 or 女")
    birth = _date(birth_f.strip(), "birth date")
    try:
        number = national_id.parse(number_f.strip(), today=today)
    except national_id.NationalIdError:
        raise IdCardError("ID card: the national id number is not valid (GB 11643-1999)") from None
    if number.birth_date != birth or number.sex != sex:
        raise IdCardError("ID card: the number does not agree with the birth date and sex")
    valid_from = _date(start_f.strip(), "valid from")
    valid_until = None if end_f.strip() == LONG_TERM else _date(end_f.strip(), "valid until")
    if valid_from > today:
        raise IdCardError("ID card: not valid yet")
    if valid_until is not None and (valid_until < today or valid_until < valid_from):
        raise IdCardError("ID card: expired")
    return IdCard(number.number, name, sex, birth, valid_until)


def read(reader: IdCardReader, *, today: dt.date) -> IdCard | None:
    """The card on `reader` now (None: no card); IdCardError for a line no card makes."""
    line = reader.read_line()
    return None if line is None else parse(line, today=today)
