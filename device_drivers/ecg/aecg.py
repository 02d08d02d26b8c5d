"""HL7 v3 Annotated ECG (aECG) files: bytes in, `EcgRecord` out, and back.

Sources: HL7 Version 3 Standard: Annotated ECG; FDA/aecg-python (CC0) and its schema copy;
docs/protocols/ecg-files.md.

An aECG file is XML in the namespace urn:hl7-org:v3 (files without the namespace are read
too). The parts this module reads:

- the root `AnnotatedECG`; its `effectiveTime` (`low`, else `center`: files that give one
  time give the centre, an interval starts at `low`) is the acquisition time;
- the first `component/series` coded RHYTHM (derived REPRESENTATIVE_BEAT series are medians,
  not the recording). A file with no rhythm series is not an ECG and is refused;
- in the series' `component/sequenceSet`, the time sequence: TIME_ABSOLUTE (GLIST_TS: `head`
  is the first sample's time, used when the document has no `effectiveTime`; `increment`
  in s, ms or us) or TIME_RELATIVE (GLIST_PQ); rate = 1 / increment, as a Decimal, so
  0.002 s is 500 Hz exactly;
- one sequence per lead, coded MDC_ECG_LEAD_I, ..._AVR, ..._V6, valued SLIST_PQ: `origin`,
  `scale` (uV, mV or V) and `digits`, whitespace-separated integers; physical value =
  origin + scale × digit. Leads outside the standard twelve (MDC_ECG_LEAD_X...) are
  skipped. Leads may differ in length (a cart that stopped one channel early): each keeps
  its own samples;
- `subjectOf/annotationSet` anywhere in the series (the global measurements usually sit on
  the representative-beat series): the cart's heart rate, RR, PR, QRS, QT, QTc (QTcB, then
  QTcF, when no plain QTc is given) and frontal P/QRS/T axes, and its interpretation
  statements (MDC_ECG_INTERPRETATION..., free text ST or coded CD; MDC_ECG_RHY... rhythm
  codes). Annotations bound to a region (`support`: one beat, one lead) are not global
  measurements and are skipped, with everything nested in them; statements are kept
  wherever they are;
- the trial subject's id (`extension`) and name, its sex (subjectDemographicPerson
  administrativeGenderCode) and age (from its birthTime, on the acquisition day), and the
  cart's `manufacturerModelName`, when present. The writer writes the sex; aECG has no
  age element, only the birth time, so an age is not written.

`EcgRecord` holds one resolution and one origin for all leads. Leads stored with different
scales are brought to the finest one when that is exact (each scale a whole multiple of the
finest, each origin a whole number of steps away); otherwise the file is refused rather
than rounded. Times are naive: a TS zone offset (+0800) is dropped and the wall time kept as
the cart wrote it, like every other device clock in the store.

The XML is parsed with defusedxml: a file from a USB stick is untrusted, so entity
declarations (the "billion laughs" bomb) and external entities are refused, never expanded.
Encodings expat cannot read (GBK, GB18030, Shift-JIS...) are decoded with Python's codec
named in the XML declaration.

`encode_aecg` writes a record back as a small aECG document (for tests and simulated
carts); `parse_aecg(encode_aecg(r)) == r` for every field, provided texts (statements,
patient, device) carry no leading or trailing blanks, which the reader strips.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import (
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)

import defusedxml.ElementTree as defused_et
from defusedxml import DefusedXmlException

from device_drivers.ecg.record import (
    LEAD_CODES,
    MEASUREMENTS,
    EcgRecord,
    NoCommonResolution,
    ScaledLead,
    age_between,
    lead_name,
    on_finest_resolution,
    sex_code,
    to_decoded,
)
from edge_agent.model import Decoded, DecodeError, Statement

HL7_NS = "urn:hl7-org:v3"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_HL7_PREFIX = f"{{{HL7_NS}}}"

ACT_CODE_OID = "2.16.840.1.113883.5.4"  # HL7 ActCode: RHYTHM, TIME_ABSOLUTE...
MDC_OID = "2.16.840.1.113883.6.24"  # IEEE 11073-10101 (MDC)
CPT4_OID = "2.16.840.1.113883.6.12"  # code 93000: routine ECG, as the FDA samples use
GENDER_OID = "2.16.840.1.113883.5.1"  # HL7 v3 AdministrativeGender: M, F, UN

# Exact arithmetic: any rounding in a unit conversion or rescale raises Inexact (the file
# is then refused) instead of silently changing a value. Values are at most _MAX_NUMBER
# characters, so these precisions never round a legitimate value.
_EXACT = Context(prec=1000, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
# 1 / increment is not always a terminating decimal (0.003 s): 30 significant digits, enough
# that a rate written with 40 (encode_aecg) comes back as the same Decimal.
_RATE = Context(prec=30, traps=[InvalidOperation, DivisionByZero, Overflow])
_INCREMENT = Context(prec=40, traps=[InvalidOperation, DivisionByZero, Overflow])

_MAX_NUMBER = 200
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?", re.ASCII)
_TS = re.compile(
    r"(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d+))?)?)?)?)?)?"
    r"(?:[+-]\d{2}(?:\d{2})?)?",
    re.ASCII,
)
_XML_DECLARED_ENCODING = re.compile(
    rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']"""
)
# Characters XML 1.0 can carry (the encoder refuses others rather than write a bad file).
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# Units (as aECG files spell them) as powers of ten relative to the unit the record keeps.
_VOLT_SHIFT = {"uV": 0, "µV": 0, "μV": 0, "nV": -3, "mV": 3, "V": 6}  # -> microvolts
_INCREMENT_SHIFT = {"s": 0, "ms": -3, "us": -6, "µs": -6}  # -> seconds
_TIME_SHIFT = {"ms": 0, "s": 3, "us": -3, "µs": -3}  # -> milliseconds
_RATE_SHIFT = {"bpm": 0, "/min": 0, "1/min": 0, "{beats}/min": 0, "{beat}/min": 0}
_ANGLE_SHIFT = {"deg": 0}

# Annotation code (upper case; each also with the global-measurement suffix _GL) ->
# (MEASUREMENTS key, preference: a plain QTc beats Bazett's beats Fridericia's).
_MEASUREMENT_BASE: dict[str, tuple[str, int]] = {
    "MDC_ECG_HEART_RATE": ("heart_rate", 0),
    "MDC_ECG_TIME_PD_RR": ("rr", 0),
    "MDC_ECG_TIME_PD_PR": ("pr", 0),
    "MDC_ECG_TIME_PD_QRS": ("qrs", 0),
    "MDC_ECG_TIME_PD_QT": ("qt", 0),
    "MDC_ECG_TIME_PD_QTC": ("qtc", 0),
    "MDC_ECG_TIME_PD_QTCB": ("qtc", 1),
    "MDC_ECG_TIME_PD_QTCF": ("qtc", 2),
    "MDC_ECG_ANGLE_P_FRONT": ("p_axis", 0),
    "MDC_ECG_ANGLE_QRS_FRONT": ("qrs_axis", 0),
    "MDC_ECG_ANGLE_T_FRONT": ("t_axis", 0),
}
_MEASUREMENT_CODES: dict[str, tuple[str, int]] = {
    code + suffix: target for code, target in _MEASUREMENT_BASE.items() for suffix in ("", "_GL")
}
# The unit table that converts each measurement to the unit record.MEASUREMENTS gives it.
_SHIFTS_BY_MDC_UNIT: dict[str, Mapping[str, int]] = {
    "MDC_DIM_BEAT_PER_MIN": _RATE_SHIFT,
    "MDC_DIM_MILLI_SEC": _TIME_SHIFT,
    "MDC_DIM_ANG_DEG": _ANGLE_SHIFT,
}
_MEASUREMENT_UNITS = {key: _SHIFTS_BY_MDC_UNIT[unit] for key, (_, unit) in MEASUREMENTS.items()}

# What encode_aecg writes for each measurement: the codes and units aECG carts use.
_MEASUREMENT_OUT: dict[str, tuple[str, str]] = {
    "heart_rate": ("MDC_ECG_HEART_RATE", "bpm"),
    "rr": ("MDC_ECG_TIME_PD_RR", "ms"),
    "pr": ("MDC_ECG_TIME_PD_PR", "ms"),
    "qrs": ("MDC_ECG_TIME_PD_QRS", "ms"),
    "qt": ("MDC_ECG_TIME_PD_QT", "ms"),
    "qtc": ("MDC_ECG_TIME_PD_QTc", "ms"),
    "p_axis": ("MDC_ECG_ANGLE_P_FRONT", "deg"),
    "qrs_axis": ("MDC_ECG_ANGLE_QRS_FRONT", "deg"),
    "t_axis": ("MDC_ECG_ANGLE_T_FRONT", "deg"),
}

INTERPRETATION = "MDC_ECG_INTERPRETATION"
INTERPRETATION_STATEMENT = "MDC_ECG_INTERPRETATION_STATEMENT"
RHYTHM_CODE = "MDC_ECG_RHY"
_STATEMENT_CODES = {INTERPRETATION, INTERPRETATION_STATEMENT, "MDC_ECG_INTERPRETATION_SUMMARY"}

_DIGITS_PER_LINE = 20


# --- reading ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TimeBase:
    head: dt.datetime | None
    rate_hz: Decimal


def decode_aecg(data: bytes) -> Decoded:
    """An aECG file as the recorder stores it (record.to_decoded)."""
    return to_decoded(parse_aecg(data))


def parse_aecg(data: bytes) -> EcgRecord:
    """Parse an HL7 aECG document; DecodeError names what is wrong with a bad one."""
    root = _load_xml(data)
    if root.tag != "AnnotatedECG":
        raise DecodeError(f"aECG: root element is {_shown(root.tag)}, not AnnotatedECG")
    series = _rhythm_series(root)
    time_base, leads = _sequences(series)
    samples, uv_per_unit, offset_uv = _common_resolution(leads)
    measurements, statements = _annotations(series)
    patient_id, patient_name = _patient(root)
    start_time = _effective_time(root, "AnnotatedECG") or _effective_time(series, "series")
    start_time = start_time or time_base.head
    sex, age = _demographics(root, start_time)
    return EcgRecord(
        leads=samples,
        rate_hz=time_base.rate_hz,
        uv_per_unit=uv_per_unit,
        start_time=start_time,
        patient_sex=sex,
        patient_age=None if age is None else age[0],
        patient_age_unit=None if age is None else age[1],
        measurements=measurements,
        statements=statements,
        offset_uv=offset_uv,
        patient_id=patient_id,
        patient_name=patient_name,
        device=_text(
            series.find("author/seriesAuthor/manufacturedSeriesDevice/manufacturerModelName")
        ),
    )


def _load_xml(data: bytes) -> ET.Element:
    try:
        return _parse_xml(data)
    except DecodeError:
        raise
    except LookupError as exc:
        raise DecodeError(f"aECG: XML declares an encoding Python does not know ({exc})") from None
    except ValueError:
        # expat reads UTF-8/16 and single-byte encodings only; a Chinese cart's GBK file is
        # decoded here with the codec its declaration names.
        declared = _XML_DECLARED_ENCODING.match(data)
        if declared is None:
            raise DecodeError("aECG: XML in an encoding the parser cannot read") from None
        encoding = declared.group(1).decode("ascii")
        try:
            text = data.decode(encoding)
        except LookupError:
            raise DecodeError(f"aECG: XML declares unknown encoding {encoding!r}") from None
        except UnicodeDecodeError as exc:
            raise DecodeError(
                f"aECG: not valid {encoding} text ({exc.reason})", exc.start
            ) from None
        try:
            return _parse_xml(text)
        except (LookupError, ValueError) as exc:
            raise DecodeError(f"aECG: XML unreadable as {encoding} ({exc})") from None


def _parse_xml(source: bytes | str) -> ET.Element:
    """defusedxml parse, HL7 namespace stripped from tags (unprefixed files then match too).

    Raises DecodeError for bad XML and refused entities, ValueError/LookupError for an
    encoding expat cannot read."""
    try:
        root: ET.Element = defused_et.fromstring(source)
    except DefusedXmlException as exc:
        raise DecodeError(
            f"aECG: the XML declares entities ({type(exc).__name__}); refused, an outside file "
            "may not expand entities or fetch external ones"
        ) from None
    except ET.ParseError as exc:
        raise DecodeError(f"aECG: not well-formed XML ({exc})") from None
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith(_HL7_PREFIX):
            element.tag = element.tag[len(_HL7_PREFIX) :]
    return root


def _rhythm_series(root: ET.Element) -> ET.Element:
    for series in root.findall("component/series"):
        if _code(series).upper() == "RHYTHM":
            return series
    raise DecodeError("aECG: no rhythm series (component/series coded RHYTHM): not an ECG")


def _sequences(series: ET.Element) -> tuple[_TimeBase, list[ScaledLead]]:
    sets = series.findall("component/sequenceSet")
    if not sets:
        raise DecodeError("aECG: the rhythm series has no sequenceSet")
    time_base: _TimeBase | None = None
    leads: list[ScaledLead] = []
    for sequence_set in sets:
        set_time: _TimeBase | None = None
        for sequence in sequence_set.findall("component/sequence"):
            code = _code(sequence)
            if code in ("TIME_ABSOLUTE", "TIME_RELATIVE"):
                this = _time_sequence(sequence, code)
                # TIME_ABSOLUTE knows the start; prefer it when a set carries both.
                if set_time is None or (code == "TIME_ABSOLUTE" and set_time.head is None):
                    set_time = this
                continue
            name = lead_name(code) if code.upper().startswith("MDC_ECG_LEAD_") else None
            if name is None:
                continue
            if any(lead.name == name for lead in leads):
                raise DecodeError(f"aECG: lead {name} appears twice in the rhythm series")
            leads.append(_lead(sequence, name))
        if set_time is None:
            raise DecodeError(
                "aECG: a sequenceSet has no TIME_ABSOLUTE or TIME_RELATIVE sequence: "
                "sampling rate unknown"
            )
        if time_base is None:
            time_base = set_time
        elif set_time != time_base:
            raise DecodeError(
                "aECG: the rhythm series has sequence sets on different time bases (leads "
                "recorded one group after another); only simultaneous leads are read"
            )
    if not leads or time_base is None:
        raise DecodeError("aECG: the rhythm series has none of the 12 standard leads")
    return time_base, leads


def _time_sequence(sequence: ET.Element, code: str) -> _TimeBase:
    value = _required(sequence, "value", f"{code} sequence")
    increment = _required(value, "increment", f"{code} value")
    step_s = _quantity(increment, _INCREMENT_SHIFT, f"{code} increment")
    if step_s <= 0:
        raise DecodeError(f"aECG: {code} increment {step_s} s is not positive")
    try:
        rate = _tidy(_RATE.divide(Decimal(1), step_s))
    except DecimalException:
        raise DecodeError(f"aECG: {code} increment {step_s} s gives no usable rate") from None
    head = None
    if code == "TIME_ABSOLUTE":
        head_element = value.find("head")
        if head_element is not None and head_element.get("value") is not None:
            head = _timestamp(head_element.get("value", ""), "TIME_ABSOLUTE head")
    return _TimeBase(head, rate)


def _lead(sequence: ET.Element, name: str) -> ScaledLead:
    where = f"lead {name}"
    value = _required(sequence, "value", where)
    origin = value.find("origin")
    origin_uv = Decimal(0) if origin is None else _quantity(origin, _VOLT_SHIFT, f"{where} origin")
    scale_uv = _quantity(_required(value, "scale", where), _VOLT_SHIFT, f"{where} scale")
    if scale_uv <= 0:
        raise DecodeError(f"aECG: {where} scale {scale_uv} uV is not positive")
    text = _required(value, "digits", where).text or ""
    # int() also takes "1_000" and non-ASCII digits; a cart writes neither.
    if text.isascii() and "_" not in text:
        try:
            samples = tuple([int(token) for token in text.split()])
            return ScaledLead(name, samples, scale_uv, origin_uv)
        except ValueError:
            pass
    for index, token in enumerate(text.split()):
        if not (token.isascii() and "_" not in token and _is_int(token)):
            raise DecodeError(
                f"aECG: {where} digits: {token[:20]!r} (sample {index}) is not an integer"
            )
    raise DecodeError(f"aECG: {where} digits are not whitespace-separated integers")


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def _common_resolution(
    leads: Sequence[ScaledLead],
) -> tuple[dict[str, tuple[int, ...]], Decimal, Decimal]:
    """One scale and origin for all leads: the finest scale, the commonest origin."""
    origin = Counter(lead.offset_uv for lead in leads).most_common(1)[0][0]
    try:
        samples, scale = on_finest_resolution(leads, origin)
    except NoCommonResolution as error:
        lead, finest = error.lead, error.finest
        if error.part == "scale":
            raise DecodeError(
                f"aECG: lead {lead.name} scale {lead.uv_per_unit} uV is not a whole multiple "
                f"of lead {finest.name} scale {finest.uv_per_unit} uV; the leads cannot share "
                "one resolution"
            ) from None
        raise DecodeError(
            f"aECG: lead {lead.name} origin {lead.offset_uv} uV is not a whole number of "
            f"{finest.uv_per_unit} uV steps from origin {origin} uV; the leads cannot share "
            "one origin"
        ) from None
    return samples, _tidy(scale), _tidy(origin)


def _annotations(series: ET.Element) -> tuple[dict[str, Decimal], tuple[Statement, ...]]:
    found: dict[str, tuple[int, Decimal]] = {}
    statements: list[Statement] = []
    for annotation, is_global in _walk_annotations(series):
        code = _code(annotation).upper()
        value = annotation.find("value")
        if value is None:
            continue
        if code in _STATEMENT_CODES or code.startswith(RHYTHM_CODE):
            statement = _statement(value)
            if statement is not None:
                statements.append(statement)
        elif code in _MEASUREMENT_CODES and is_global and value.get("value") is not None:
            key, rank = _MEASUREMENT_CODES[code]
            if key in found and found[key][0] <= rank:
                continue  # the first global value wins; a plain QTc beats QTcB beats QTcF
            where = f"annotation {_code(annotation)}"
            found[key] = (rank, _quantity(value, _MEASUREMENT_UNITS[key], where))
    measurements = {key: value for key, (_, value) in found.items()}
    return measurements, tuple(statements)


def _walk_annotations(series: ET.Element) -> Iterator[tuple[ET.Element, bool]]:
    """Every annotation under the series (derived series too), depth first in document
    order, with whether it is global (neither it nor an ancestor is bound by `support`)."""
    for annotation_set in series.iter("annotationSet"):
        stack = [(a, True) for a in reversed(annotation_set.findall("component/annotation"))]
        while stack:
            annotation, is_global = stack.pop()
            is_global = is_global and annotation.find("support") is None
            yield annotation, is_global
            nested = annotation.findall("component/annotation")
            stack.extend((child, is_global) for child in reversed(nested))


def _statement(value: ET.Element) -> Statement | None:
    code = (value.get("code") or "").strip()
    if code:  # CD/CE: a coded statement
        text = (value.get("displayName") or "").strip() or _text(value.find("originalText"))
        return Statement(text or code, code)
    text = "".join(value.itertext()).strip()
    return Statement(text) if text else None


def _patient(root: ET.Element) -> tuple[str | None, str | None]:
    subject = root.find(
        "componentOf/timepointEvent/componentOf/subjectAssignment/subject/trialSubject"
    )
    if subject is None:
        return None, None
    patient_id = None
    for identifier in subject.findall("id"):
        extension = (identifier.get("extension") or "").strip()
        if extension:
            patient_id = extension
            break
    name = subject.find("subjectDemographicPerson/name")
    parts = [] if name is None else [t.strip() for t in name.itertext() if t.strip()]
    return patient_id, " ".join(parts) or None


_PERSON = (
    "componentOf/timepointEvent/componentOf/subjectAssignment/subject/trialSubject/"
    "subjectDemographicPerson"
)


def _demographics(
    root: ET.Element, start: dt.datetime | None
) -> tuple[str | None, tuple[int, str] | None]:
    """subjectDemographicPerson's administrativeGenderCode (HL7 v3 AdministrativeGender
    M, F; UN is unknown) and birthTime, as an age on the acquisition day. A birthTime
    that is not a TS is ignored: the ECG is worth more than the age."""
    person = root.find(_PERSON)
    if person is None:
        return None, None
    gender = person.find("administrativeGenderCode")
    sex = sex_code(None if gender is None else gender.get("code"))
    birth = person.find("birthTime")
    if birth is None or start is None or len(birth.get("value", "").strip()) < 8:
        return sex, None
    try:
        born = _timestamp(birth.get("value", ""), "birthTime").date()
    except DecodeError:
        return sex, None
    return sex, age_between(born, start.date())


def _effective_time(element: ET.Element, where: str) -> dt.datetime | None:
    effective = element.find("effectiveTime")
    if effective is None:
        return None
    for part in ("low", "center"):
        bound = effective.find(part)
        if bound is not None and bound.get("value"):
            return _timestamp(bound.get("value", ""), f"{where} effectiveTime {part}")
    if effective.get("value"):
        return _timestamp(effective.get("value", ""), f"{where} effectiveTime")
    return None


def _timestamp(text: str, where: str) -> dt.datetime:
    """HL7 TS YYYYMMDDHHMMSS[.ffff][+zzzz], any trailing precision omitted; the zone
    offset is dropped and the wall time kept as written."""
    match = _TS.fullmatch(text.strip())
    if match is None:
        raise DecodeError(f"aECG: {where} {text[:30]!r} is not an HL7 TS (YYYYMMDDHHMMSS)")
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        return dt.datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
        )
    except ValueError as exc:
        raise DecodeError(f"aECG: {where} {text[:30]!r}: {exc}") from None


def _quantity(element: ET.Element, shifts: Mapping[str, int], where: str) -> Decimal:
    """A PQ (value + unit) in the unit `shifts` converts to, exactly."""
    number = _decimal(element.get("value"), where)
    unit = (element.get("unit") or "").strip()
    if unit not in shifts:
        raise DecodeError(f"aECG: {where} unit {unit[:20]!r} is not one of {', '.join(shifts)}")
    try:
        return _tidy(number.scaleb(shifts[unit], _EXACT))
    except DecimalException:
        raise DecodeError(f"aECG: {where} {number} {unit} is out of range") from None


def _decimal(text: str | None, where: str) -> Decimal:
    if text is None:
        raise DecodeError(f"aECG: {where} has no value")
    text = text.strip()
    if len(text) > _MAX_NUMBER or not _NUMBER.fullmatch(text):
        raise DecodeError(f"aECG: {where} value {text[:20]!r} is not a number")
    return Decimal(text)


def _tidy(value: Decimal) -> Decimal:
    """Same value, no trailing zeros and no exponent for integers: 5.000 -> 5, 5E+2 -> 500."""
    if not value:
        return Decimal(0)
    value = value.normalize(_EXACT)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0 and value.adjusted() < 100:
        value = value.quantize(Decimal(1), context=_EXACT)
    return value


def _code(element: ET.Element) -> str:
    code = element.find("code")
    return "" if code is None else (code.get("code") or "").strip()


def _text(element: ET.Element | None) -> str | None:
    if element is None:
        return None
    return "".join(element.itertext()).strip() or None


def _required(parent: ET.Element, tag: str, where: str) -> ET.Element:
    child = parent.find(tag)
    if child is None:
        raise DecodeError(f"aECG: {where} has no {tag}")
    return child


def _shown(tag: str) -> str:
    """'{urn:x}ECG' -> "'ECG' in namespace urn:x"."""
    namespace, _, name = tag[1:].rpartition("}") if tag.startswith("{") else ("", "", tag)
    return f"{name[:40]!r}" + (f" in namespace {namespace[:60]}" if namespace else "")


# --- writing ---------------------------------------------------------------------------


def encode_aecg(record: EcgRecord) -> bytes:
    """A UTF-8 aECG document carrying `record`: one rhythm series (time sequence, one
    SLIST_PQ per lead at the record's scale and origin), the measurements and statements
    as annotations, the acquisition time, patient and device.

    An aware start_time is written with its zone offset and reads back naive (wall time).
    Raises ValueError for what an aECG cannot carry (no lead, a non-standard lead name, an
    unknown measurement key, a non-positive rate or scale, text with characters XML
    forbids)."""
    if not record.leads:
        raise ValueError("encode_aecg: the record has no lead")
    for what, number in (("rate_hz", record.rate_hz), ("uv_per_unit", record.uv_per_unit)):
        if not (number.is_finite() and number > 0):
            raise ValueError(f"encode_aecg: {what} {number} is not positive")
    root = ET.Element("AnnotatedECG", {"xmlns": HL7_NS, "xmlns:xsi": XSI_NS})
    identity = ET.SubElement(root, "id")
    ET.SubElement(root, "code", code="93000", codeSystem=CPT4_OID, codeSystemName="CPT-4")
    if record.start_time is not None:
        effective = ET.SubElement(root, "effectiveTime")
        ET.SubElement(effective, "center", value=_format_ts(record.start_time))
    # AdministrativeGender has M and F (and UN); aECG has no age, only a birth time.
    sex = record.patient_sex if record.patient_sex in ("M", "F") else None
    if record.patient_id is not None or record.patient_name is not None or sex is not None:
        _write_patient(root, record.patient_id, record.patient_name, sex)

    series = ET.SubElement(ET.SubElement(root, "component"), "series")
    ET.SubElement(series, "code", code="RHYTHM", codeSystem=ACT_CODE_OID)
    if record.start_time is not None:
        effective = ET.SubElement(series, "effectiveTime")
        ET.SubElement(effective, "low", value=_format_ts(record.start_time))
    if record.device is not None:
        device = ET.SubElement(
            ET.SubElement(ET.SubElement(series, "author"), "seriesAuthor"),
            "manufacturedSeriesDevice",
        )
        ET.SubElement(device, "manufacturerModelName").text = _xml_text(record.device, "device")
    sequence_set = ET.SubElement(ET.SubElement(series, "component"), "sequenceSet")
    _write_time(sequence_set, record)
    digest = hashlib.sha256(f"{record.start_time}|{record.rate_hz}|{record.uv_per_unit}".encode())
    for name, samples in record.ordered_leads():
        if name not in LEAD_CODES:
            raise ValueError(f"encode_aecg: {name!r} is not one of the 12 standard leads")
        digits = _format_digits(samples)
        digest.update(f"|{name}:{digits}".encode())
        sequence = _sequence(sequence_set, f"MDC_ECG_LEAD_{name.upper()}", MDC_OID)
        value = ET.SubElement(sequence, "value", {"xsi:type": "SLIST_PQ"})
        ET.SubElement(value, "origin", value=_format_number(record.offset_uv), unit="uV")
        ET.SubElement(value, "scale", value=_format_number(record.uv_per_unit), unit="uV")
        ET.SubElement(value, "digits").text = digits
    # Same record, same document id: encoding is a pure function.
    identity.set("root", str(uuid.uuid5(uuid.NAMESPACE_OID, digest.hexdigest())))
    if record.measurements or record.statements:
        _write_annotations(series, record.measurements, record.statements)
    ET.indent(root, space="  ")
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode").encode()
    )


def _write_patient(
    root: ET.Element, patient_id: str | None, name: str | None, sex: str | None = None
) -> None:
    element = root
    for tag in ("componentOf", "timepointEvent", "componentOf", "subjectAssignment", "subject"):
        element = ET.SubElement(element, tag)
    subject = ET.SubElement(element, "trialSubject")
    if patient_id is not None:
        ET.SubElement(subject, "id", extension=_xml_text(patient_id, "patient id"))
    if name is not None or sex is not None:
        person = ET.SubElement(subject, "subjectDemographicPerson")
        if name is not None:
            ET.SubElement(person, "name").text = _xml_text(name, "patient name")
        if sex is not None:
            ET.SubElement(person, "administrativeGenderCode", code=sex, codeSystem=GENDER_OID)


def _write_time(sequence_set: ET.Element, record: EcgRecord) -> None:
    increment = _format_number(_tidy(_INCREMENT.divide(Decimal(1), record.rate_hz)))
    if record.start_time is None:
        sequence = _sequence(sequence_set, "TIME_RELATIVE", ACT_CODE_OID)
        value = ET.SubElement(sequence, "value", {"xsi:type": "GLIST_PQ"})
        ET.SubElement(value, "head", value="0", unit="s")
    else:
        sequence = _sequence(sequence_set, "TIME_ABSOLUTE", ACT_CODE_OID)
        value = ET.SubElement(sequence, "value", {"xsi:type": "GLIST_TS"})
        ET.SubElement(value, "head", value=_format_ts(record.start_time))
    ET.SubElement(value, "increment", value=increment, unit="s")


def _write_annotations(
    series: ET.Element, measurements: Mapping[str, Decimal], statements: Sequence[Statement]
) -> None:
    annotation_set = ET.SubElement(ET.SubElement(series, "subjectOf"), "annotationSet")
    for key, value in measurements.items():
        if key not in _MEASUREMENT_OUT:
            raise ValueError(f"encode_aecg: {key!r} is not a MEASUREMENTS key")
        if not value.is_finite():
            raise ValueError(f"encode_aecg: measurement {key} is {value}")
        code, unit = _MEASUREMENT_OUT[key]
        annotation = _annotation(annotation_set, code)
        ET.SubElement(
            annotation, "value", {"xsi:type": "PQ", "value": _format_number(value), "unit": unit}
        )
    if not statements:
        return
    interpretation = _annotation(annotation_set, INTERPRETATION)
    for statement in statements:
        text = _xml_text(statement.text, "statement")
        if statement.code is None:
            annotation = _annotation(interpretation, INTERPRETATION_STATEMENT)
            ET.SubElement(annotation, "value", {"xsi:type": "ST"}).text = text
            continue
        code = _xml_text(statement.code, "statement code")
        is_rhythm = code.upper().startswith(RHYTHM_CODE + "_")
        annotation = _annotation(
            interpretation, RHYTHM_CODE if is_rhythm else INTERPRETATION_STATEMENT
        )
        attributes = {"xsi:type": "CD", "code": code}
        if code.startswith("MDC_"):
            attributes["codeSystem"] = MDC_OID
        if text != code:
            attributes["displayName"] = text
        ET.SubElement(annotation, "value", attributes)


def _sequence(sequence_set: ET.Element, code: str, code_system: str) -> ET.Element:
    sequence = ET.SubElement(ET.SubElement(sequence_set, "component"), "sequence")
    ET.SubElement(sequence, "code", code=code, codeSystem=code_system)
    return sequence


def _annotation(parent: ET.Element, code: str) -> ET.Element:
    annotation = ET.SubElement(ET.SubElement(parent, "component"), "annotation")
    ET.SubElement(annotation, "code", code=code, codeSystem=MDC_OID)
    return annotation


def _format_ts(time: dt.datetime) -> str:
    text = (
        f"{time.year:04d}{time.month:02d}{time.day:02d}"
        f"{time.hour:02d}{time.minute:02d}{time.second:02d}"
    )
    if time.microsecond:
        text += f".{time.microsecond:06d}".rstrip("0")
    return text + time.strftime("%z")


def _format_number(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"encode_aecg: {value} is not a number aECG can carry")
    return format(_tidy(value), "f")


def _format_digits(samples: Sequence[int]) -> str:
    lines = (
        " ".join(map(str, samples[start : start + _DIGITS_PER_LINE]))
        for start in range(0, len(samples), _DIGITS_PER_LINE)
    )
    return "\n".join(lines)


def _xml_text(text: str, what: str) -> str:
    bad = _NOT_XML_CHAR.search(text)
    if bad is not None:
        raise ValueError(f"encode_aecg: {what} contains {bad.group()!r}, which XML cannot carry")
    return text
