"""The patient banner's content: who a screen is about, as every screen about a person
shows it (name, sex, age, the national ID masked). Pure: no Textual, no I/O.

The national ID (GB 11643-1999) is shown as 110105********002X: the area code (first 6)
and the last 4, never more; what a screen shows of the number is bounded here, once.
The age is the resident's completed years on today's date in the clinic's zone
(agent.timezone), not the machine's: a Pi left on UTC turns a day late at 08:00.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from edge_agent import national_id
from tui import i18n

SHOWN_HEAD = 6  # the area code (GB/T 2260), not the person
SHOWN_TAIL = 4
MAX_SHOWN = SHOWN_HEAD + SHOWN_TAIL
MASK = "*"


def mask_national_id(number: str) -> str:
    """The number as a screen may show it: first 6, last 4, the rest masked. A text too
    short to keep 8 characters hidden is masked whole (it is not a number to show)."""
    text = number.strip()
    if len(text) < MAX_SHOWN + 8:
        return MASK * len(text)
    return text[:SHOWN_HEAD] + MASK * (len(text) - MAX_SHOWN) + text[-SHOWN_TAIL:]


def age_on(birth: dt.date, today: dt.date) -> int:
    """Completed years from `birth` to `today` (0 before the first birthday)."""
    before_birthday = (today.month, today.day) < (birth.month, birth.day)
    return max(0, today.year - birth.year - int(before_birthday))


def today_in(timezone: str) -> dt.date:
    """Today's date in the clinic's zone (agent.timezone)."""
    return dt.datetime.now(ZoneInfo(timezone)).date()


@dataclass(frozen=True, slots=True)
class PatientBanner:
    name: str
    sex: str  # "M" | "F"
    age: int
    masked_id: str


def banner_for(number: str, name: str, today: dt.date) -> PatientBanner:
    """The banner of a resident from their national ID (sex and birth date read from it)
    and name. Raises NationalIdError (naming the rule, never the number) on a bad one."""
    parsed = national_id.parse(number, today=today)
    return PatientBanner(
        name=name,
        sex=parsed.sex,
        age=age_on(parsed.birth_date, today),
        masked_id=mask_national_id(parsed.number),
    )


def sex_label(sex: str, language: str) -> str:
    return i18n.text(f"sex.{sex}", language)


def banner_line(banner: PatientBanner, language: str) -> str:
    """One line: 王小明 · 男 · 45 岁 · 110105********002X."""
    age = i18n.text("banner.age", language, n=banner.age)
    return " · ".join((banner.name, sex_label(banner.sex, language), age, banner.masked_id))
