"""The register screen's checks, as the clinic types (pure: no Textual, no I/O).

The national ID is checked with edge_agent.national_id (GB 11643-1999: length, digits,
birth date, check character); its one-line NationalIdError is what the screen shows,
and it never quotes the number. The phone is a mainland mobile number: 11 digits, 1 then
3-9 (the numbering plan of the MIIT, 电信网编号计划). The daemon checks everything again
(edge_agent.patients.register): these checks only spare a round trip and say it early.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from edge_agent import national_id
from edge_agent.national_id import NationalId, NationalIdError

NATIONAL_ID_LENGTH = 18
NAME_MAX = 40
PHONE_LENGTH = 11
_MOBILE = re.compile(r"1[3-9][0-9]{9}")


@dataclass(frozen=True, slots=True)
class Invalid:
    """Which field is wrong and the i18n key (or the NationalIdError text) saying why."""

    field: str  # "national_id" | "name" | "phone"
    key: str | None = None
    detail: str | None = None  # a NationalIdError's own one line


@dataclass(frozen=True, slots=True)
class Registration:
    national_id: str
    name: str
    phone: str | None


def check_national_id(text: str, today: dt.date) -> NationalId | Invalid:
    try:
        return national_id.parse(text, today=today)
    except NationalIdError as exc:
        return Invalid("national_id", detail=str(exc).splitlines()[0] if str(exc) else None)


def phone_is_mobile(phone: str) -> bool:
    return _MOBILE.fullmatch(phone) is not None


def check_form(number: str, name: str, phone: str, today: dt.date) -> Registration | Invalid:
    """The whole form, checked in the order it is filled; the first wrong field wins."""
    parsed = check_national_id(number, today)
    if isinstance(parsed, Invalid):
        return parsed
    clean_name = " ".join(name.split())
    if not clean_name:
        return Invalid("name", key="register.name_missing")
    if len(clean_name) > NAME_MAX:
        return Invalid("name", key="register.name_long")
    clean_phone = phone.strip()
    if clean_phone and not phone_is_mobile(clean_phone):
        return Invalid("phone", key="register.phone_bad")
    return Registration(parsed.number, clean_name, clean_phone or None)
