"""The text a second-generation resident ID card (第二代居民身份证) holds, read as hostile
input: what a sign-in by card at a kiosk knows of the resident.

The card's chip holds a 256-byte text file (机读文字信息) laid out by GA/T 490-2019
(居民身份证机读信息规范; GA 490-2013 before it, same layout), table "机读文字信息
文件": UCS-2 (GB 13000) characters, two bytes each, little-endian, every field fixed
width and padded with spaces (U+0020):

| field | bytes | what |
|---|---|---|
| name (姓名) | 30 | |
| sex code (性别代码) | 2 | GB/T 2261.1: 1 male, 2 female |
| ethnic code (民族代码) | 4 | GB/T 3304, two digits |
| birth date (出生日期) | 16 | YYYYMMDD |
| address (住址) | 70 | |
| number (公民身份号码) | 36 | GB 11643 |
| issuing authority (签发机关) | 30 | |
| valid from (有效期起始日期) | 16 | YYYYMMDD |
| valid until (有效期截止日期) | 16 | YYYYMMDD, or 长期 (no end) |
| reserved (预留区域) | 36 | spaces on a resident ID card |

Where the facts were found (public copies; the standards themselves are sold): the table
as reproduced at wiki.nfc.im ("二代居民身份证", 智能卡手册), the same widths in public
reader code (a `struct` of name[30], gender_code[2], national_code[4], date_of_birth[16],
address[70], identity_num[36], idIssued[30], start_date[16], end_date[16], res[36]), and
a capture of a card's 256 bytes as a reader maker explains them (东信 / DONSEE, "身份证阅读器
SAM模块身份证信息解析说明", eastcoms.com; the bytes as reproduced at
chinasem.cn/article/392748), whose fields fall at exactly these offsets, space-padded,
sex "2" for a woman, ethnic "01". Long-term cards hold 长期 (7F 95 1F 67) then spaces in
the last date (two captures logged in public reader code). Other cards the same readers
read fill the reserved area: the residence permit of Hong Kong, Macao and Taiwan
residents (a pass number, an issue count and a card-type field there, in public reader
code) and the foreigner's permanent residence card (its type flag "I" at byte 248; its
other fields differ): a card whose reserved area is not blank is refused here as not a
resident ID card.

The number is checked as GB 11643-1999 asks (edge_agent.national_id) and must agree with
the card's birth date and sex; the card must be valid today. Only the number, the name,
the sex, the birth date and the end of validity are kept: the address, ethnic code and
authority are checked as text and dropped here (GB/T 35273-2020 §5.2, collect no more
than the purpose needs); the photo never reaches this module (edge_agent.id_card_sam
drops it). Errors are one line naming the field, never its value.

How the text gets here: edge_agent.id_card_sam (the reader's security module, GA/T 467).
Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass

from edge_agent import national_id

TEXT_BYTES = 256
# (field, bytes) in the order of GA/T 490-2019's table.
LAYOUT = (
    ("name", 30),
    ("sex", 2),
    ("ethnic", 4),
    ("birth", 16),
    ("address", 70),
    ("number", 36),
    ("authority", 30),
    ("valid_from", 16),
    ("valid_until", 16),
    ("reserved", 36),
)
LONG_TERM = "长期"  # valid with no end (people of 46 and older)
_SEX = {"1": "M", "2": "F"}  # GB/T 2261.1-2003
PADDING = " \x00"  # spaces (and, from a careless reader, NULs) after a field's text


class IdCardError(ValueError):
    """Bytes that are not a valid card's; the message never quotes them."""


@dataclass(frozen=True, slots=True)
class IdCard:
    national_id: str
    name: str
    sex: str  # "M" | "F"
    birth_date: dt.date
    valid_until: dt.date | None  # None: 长期


def fields(text: bytes) -> dict[str, str]:
    """The card's text split into its fields, padding removed; IdCardError when it is not
    256 bytes of UCS-2 (a surrogate is not UCS-2: GB 13000's two-byte form has none)."""
    if len(text) != TEXT_BYTES:
        raise IdCardError(f"ID card: the text is {len(text)} bytes, not {TEXT_BYTES}")
    units = [int.from_bytes(text[i : i + 2], "little") for i in range(0, TEXT_BYTES, 2)]
    if any(0xD800 <= u <= 0xDFFF for u in units):
        raise IdCardError("ID card: the text is not UCS-2 (it holds a surrogate)")
    out: dict[str, str] = {}
    at = 0
    for name, width in LAYOUT:
        out[name] = "".join(map(chr, units[at // 2 : (at + width) // 2])).rstrip(PADDING)
        at += width
    return out


def _date(text: str, what: str) -> dt.date:
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        raise IdCardError(f"ID card: {what} is not a date YYYYMMDD")
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise IdCardError(f"ID card: {what} is not a date YYYYMMDD") from None


def _text_field(text: str, what: str, *, required: bool = True) -> str:
    clean = text.strip(" ")
    if required and not clean:
        raise IdCardError(f"ID card: {what} is empty")
    if any(unicodedata.category(c)[0] in "CZ" and c != " " for c in clean):
        raise IdCardError(f"ID card: {what} holds control or separator characters")
    return clean


def from_text(text: bytes, *, today: dt.date) -> IdCard:
    """The card the 256 bytes of its text describe; IdCardError naming the first bad
    field (the card is expired, not valid yet, its number wrong or not its own ...)."""
    f = fields(text)
    name = _text_field(f["name"], "name")
    sex = _SEX.get(f["sex"])
    if sex is None:
        raise IdCardError("ID card: the sex code is not 1 or 2 (GB/T 2261.1)")
    ethnic = f["ethnic"]
    if len(ethnic) != 2 or not ethnic.isascii() or not ethnic.isdigit():
        raise IdCardError("ID card: the ethnic code is not two digits (GB/T 3304)")
    birth = _date(f["birth"], "birth date")
    _text_field(f["address"], "address")
    number_text = f["number"]
    if not number_text.isascii():
        raise IdCardError("ID card: the national id number is not valid (GB 11643-1999)")
    try:
        number = national_id.parse(number_text, today=today)
    except national_id.NationalIdError:
        raise IdCardError("ID card: the national id number is not valid (GB 11643-1999)") from None
    if number.birth_date != birth or number.sex != sex:
        raise IdCardError("ID card: the number does not agree with the birth date and sex")
    _text_field(f["authority"], "issuing authority")
    if f["reserved"].strip(" "):
        raise IdCardError("ID card: not a resident ID card (its reserved area is used)")
    valid_from = _date(f["valid_from"], "valid from")
    until_text = f["valid_until"]
    valid_until = None if until_text == LONG_TERM else _date(until_text, "valid until")
    if valid_from > today:
        raise IdCardError("ID card: not valid yet")
    if valid_until is not None and (valid_until < today or valid_until < valid_from):
        raise IdCardError("ID card: expired")
    return IdCard(number.number, name, sex, birth, valid_until)


def to_text(
    *,
    name: str,
    sex_code: str,
    ethnic_code: str,
    birth: str,
    address: str,
    number: str,
    authority: str,
    valid_from: str,
    valid_until: str,
    reserved: str = "",
) -> bytes:
    """The 256 bytes a card with these fields holds (the layout above): what a simulated
    reader answers with. ValueError when a field is longer than its width."""
    given = {
        "name": name,
        "sex": sex_code,
        "ethnic": ethnic_code,
        "birth": birth,
        "address": address,
        "number": number,
        "authority": authority,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "reserved": reserved,
    }
    out = bytearray()
    for field, width in LAYOUT:
        raw = given[field].encode("utf-16-le")
        if len(raw) > width:
            raise ValueError(f"ID card text: {field} is longer than {width // 2} characters")
        out += raw + " ".encode("utf-16-le") * ((width - len(raw)) // 2)
    return bytes(out)
