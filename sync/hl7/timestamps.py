"""HL7 v2.6 DTM (date/time) values, always with a UTC offset.

DTM is `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]` (HL7 v2.6 Ch. 2A.22). The
offset is optional in the standard, but the county platform receives messages from
boxes without an RTC in one time zone and from gateways in another: a time without an
offset cannot be placed, so we always write one and refuse to read a time without it.
"""

from __future__ import annotations

import datetime as dt
import re

from sync.hl7.errors import DATA_TYPE_ERROR, Hl7Error

# Each part is present only if the one before it is (Ch. 2A.22); at most 4 decimals.
_DTM = re.compile(
    r"(?P<y>\d{4})(?:(?P<mo>\d{2})(?:(?P<d>\d{2})(?:(?P<h>\d{2})(?:(?P<mi>\d{2})"
    r"(?:(?P<s>\d{2})(?:\.(?P<f>\d{1,4}))?)?)?)?)?)?(?P<z>[+-]\d{4})?",
    re.ASCII,
)


def format_dtm(when: dt.datetime) -> str:
    """`YYYYMMDDHHMMSS[.ffff]+ZZZZ` for an aware datetime.

    Fractions are written only when non-zero, truncated to the 4 digits DTM allows
    (100 µs), trailing zeros dropped.
    """
    offset = when.utcoffset()
    if offset is None:
        raise ValueError(f"HL7 DTM needs an aware datetime, got naive {when.isoformat()}")
    total_minutes, rest = divmod(int(offset.total_seconds()), 60)
    if rest:
        raise ValueError(f"HL7 DTM offsets are whole minutes, got {offset} in {when.isoformat()}")
    if not -12 * 60 <= total_minutes <= 14 * 60:
        # Real zones run from UTC-12:00 to UTC+14:00; hl7apy refuses anything beyond.
        raise ValueError(f"HL7 DTM offset {offset} is outside UTC-12:00..UTC+14:00")
    sign = "-" if total_minutes < 0 else "+"
    hours, minutes = divmod(abs(total_minutes), 60)
    text = when.strftime("%Y%m%d%H%M%S")
    if len(text) != 14:  # years before 1000 print short on some platforms
        text = f"{when.year:04d}{when:%m%d%H%M%S}"
    fraction = f"{when.microsecond // 100:04d}".rstrip("0")
    if fraction:
        text += "." + fraction
    return f"{text}{sign}{hours:02d}{minutes:02d}"


def _unquoted(exc: ValueError) -> str:
    """datetime's complaint ("day is out of range for month") names no value itself."""
    text = str(exc)
    return text if not any(c.isdigit() for c in text) else "a part is out of range"


def parse_dtm(text: str, *, field: str = "DTM", control_id: str | None = None) -> dt.datetime:
    """An aware datetime from a DTM value; a value without an offset is refused.

    Missing trailing parts take their lowest value (`2026112210+0800` is 10:00:00).
    """
    match = _DTM.fullmatch(text)
    if match is None:
        raise Hl7Error(
            f"{field} is not an HL7 DTM (YYYYMMDDHHMMSS+ZZZZ)",
            control_id=control_id,
            error_code=DATA_TYPE_ERROR,
        )
    zone = match["z"]
    if zone is None:
        raise Hl7Error(
            f"{field} has no UTC offset (+ZZZZ); local times cannot be placed",
            control_id=control_id,
            error_code=DATA_TYPE_ERROR,
        )
    try:
        sign = -1 if zone[0] == "-" else 1
        offset_hours, offset_minutes = int(zone[1:3]), int(zone[3:5])
        if offset_minutes >= 60:
            raise ValueError(f"offset minutes {offset_minutes} >= 60")
        tz = dt.timezone(sign * dt.timedelta(hours=offset_hours, minutes=offset_minutes))
        fraction = match["f"] or ""
        return dt.datetime(
            int(match["y"]),
            int(match["mo"] or 1),
            int(match["d"] or 1),
            int(match["h"] or 0),
            int(match["mi"] or 0),
            int(match["s"] or 0),
            int(fraction.ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError as exc:
        raise Hl7Error(
            f"{field} is not a valid date/time ({_unquoted(exc)})",
            control_id=control_id,
            error_code=DATA_TYPE_ERROR,
        ) from None


def format_date(day: dt.date) -> str:
    """HL7 DT/DTM date precision, `YYYYMMDD` (a birth date has no time or zone)."""
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"
