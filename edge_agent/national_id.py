"""The resident identity number (GB 11643-1999, 公民身份号码): check it, read what it says.

18 characters: 6-digit area code, birth date YYYYMMDD, 3-digit sequence (odd = male,
even = female), check character. Check: weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2 over
the first 17 digits; the sum mod 11 indexes "10X98765432".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


class NationalIdError(ValueError):
    """What is wrong with a number, naming the rule broken; never the number itself nor
    the birth date it holds (personal data, and error text reaches logs and screens)."""


@dataclass(frozen=True, slots=True)
class NationalId:
    number: str
    area_code: str
    birth_date: dt.date
    sex: str  # "M" | "F"


def check_character(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def parse(number: str, *, today: dt.date | None = None) -> NationalId:
    text = number.strip().upper()
    if len(text) != 18:
        raise NationalIdError(f"national id: must be 18 characters, got {len(text)}")
    if not text[:17].isdigit() or not (text[17].isdigit() or text[17] == "X"):
        raise NationalIdError("national id: 17 digits then a digit or X")
    try:
        birth = dt.date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise NationalIdError("national id: characters 7 to 14 are not a birth date") from None
    if birth.year < 1880 or birth > (today or dt.date.today()):
        raise NationalIdError("national id: its birth date is not plausible")
    expected = check_character(text[:17])
    if text[17] != expected:
        raise NationalIdError(
            f"national id: check character is {text[17]}, expected {expected} (typo?)"
        )
    return NationalId(
        number=text,
        area_code=text[:6],
        birth_date=birth,
        sex="M" if int(text[16]) % 2 == 1 else "F",
    )
