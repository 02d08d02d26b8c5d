"""DICOM 12-lead ECG Waveform Storage files (DICOM PS3.3 C.10.9, C.10.10), without I/O.

The layout the code reads: docs/protocols/ecg-files.md.

What is read, from a DICOM Part 10 file (pydicom parses the container, this module reads
the waveform itself so no numpy is needed at run time):

- SOP class 12-lead ECG (1.2.840.10008.5.1.4.1.1.9.1.1), General ECG (…9.1.2) or
  Ambulatory ECG (…9.1.3), or any object carrying a WaveformSequence; anything else is
  "not a DICOM ECG".
- One multiplex group: the one labelled RHYTHM, else the first not labelled as a median /
  representative / average beat, else the first. WaveformData is interleaved channel by
  channel (C1S1 C2S1 … CnS1 C1S2 …); SS and US (16 bits) and SB and UB (8 bits) are
  read, the companded (MB, AB) and wider ones are refused.
- Per channel: the lead from ChannelSourceSequence (SCPECG "5.6.3-9-n", MDC "2:n", where n
  is the SCP-ECG lead number, or a code meaning such as "Lead II"); channels that are not
  one of the twelve standard leads are left out. Physical value = sample × sensitivity ×
  correction factor + baseline, the baseline in the sensitivity's units (PS3.3 C.10.9:
  "offset of encoded sample value 0 from actual 0 using the units defined in the Channel
  Sensitivity Units Sequence"; pydicom's `waveform_array` applies the same formula). All
  in exact Decimal from the DS strings, converted to µV from the UCUM unit (nV, uV, mV, V).
  EcgRecord has one resolution and offset for all leads: a channel whose resolution is
  an integer multiple of the finest one, and whose baseline is a whole number of finest
  steps away, is rescaled exactly; any other mix is refused rather than rounded.
- Rate from SamplingFrequency; start time from AcquisitionDateTime, else ContentDate +
  ContentTime, else StudyDate + StudyTime (naive: a DT offset is dropped, not applied).
- Patient ID and name; sex from PatientSex (M, F; O kept as O); age from PatientAge
  (AS "050Y", "003W" ...), else PatientBirthDate on the acquisition day; device =
  Manufacturer + ManufacturerModelName.
- WaveformAnnotationSequence: numeric global measurements (concept codes from SCPECG as
  the pydicom sample writes them, or the MDC codes of DICOM CID 3227/3229/3689 and
  TID 3713) converted to the MEASUREMENTS units; measurements tied to one channel (a
  per-lead value), other concepts and unknown units are skipped. Text annotations and
  coded concepts become statements, word for word, in file order.

`encode_dicom` writes a 12-lead ECG Waveform Storage object that `parse_dicom` reads back
to an equal record (and pydicom's own `waveform_array` reads to the same microvolts).
"""

from __future__ import annotations

import datetime as dt
import io
import re
import struct
import warnings
from collections.abc import Iterable, Sequence
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from typing import TYPE_CHECKING

from device_drivers.ecg.record import (
    AGE_DAYS,
    AGE_YEARS,
    LEAD_BY_CODE,
    LEAD_CODES,
    MEASUREMENTS,
    EcgRecord,
    NoCommonResolution,
    ScaledLead,
    age_between,
    lead_name,
    on_finest_resolution,
    patient_age,
    sex_code,
    to_decoded,
)
from edge_agent.model import Decoded, DecodeError, Statement

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

# PS3.4 Table B.5-1.
TWELVE_LEAD_ECG = "1.2.840.10008.5.1.4.1.1.9.1.1"
GENERAL_ECG = "1.2.840.10008.5.1.4.1.1.9.1.2"
AMBULATORY_ECG = "1.2.840.10008.5.1.4.1.1.9.1.3"
ECG_SOP_CLASSES = frozenset({TWELVE_LEAD_ECG, GENERAL_ECG, AMBULATORY_ECG})

# (WaveformBitsAllocated, WaveformSampleInterpretation) -> struct code. MB and AB are
# µ-law / A-law companded: their integers are not linear in volts, so they are refused.
_SAMPLE_FORMATS: dict[tuple[int, str], str] = {
    (16, "SS"): "h",
    (16, "US"): "H",
    (8, "SB"): "b",
    (8, "UB"): "B",
}

# UCUM voltage units (case-sensitive, as DICOM CID 82 uses them) -> µV per unit.
_UV_PER: dict[str, Decimal] = {
    "nV": Decimal("0.001"),
    "uV": Decimal(1),
    "mV": Decimal(1000),
    "V": Decimal(1000000),
}

# Labels that mark a median / average beat group rather than the rhythm strip.
_BEAT_GROUP_WORDS = ("MEDIAN", "REPRESENTATIVE", "AVERAGE")

# (coding scheme, code value) -> MEASUREMENTS key. SCPECG codes as the Mortara cart in
# pydicom's waveform_ecg.dcm writes them; MDC codes from DICOM PS3.16: CID 3689 (global
# PR, QRS, QT), CID 3227 (QTc global), CID 3229 (axes), TID 3713 (ventricular rate),
# plus the 11073-10101 ids edge_agent.mdc uses (heart rate 16770, RR 16168, QTc 16164).
_MEASUREMENT_CONCEPTS: dict[tuple[str, str], str] = {
    ("MDC", "2:16770"): "heart_rate",
    ("MDC", "2:16016"): "heart_rate",
    ("MDC", "2:16168"): "rr",
    ("MDC", "2:15872"): "pr",
    ("MDC", "2:16156"): "qrs",
    ("MDC", "2:16160"): "qt",
    ("MDC", "2:15876"): "qtc",
    ("MDC", "2:16164"): "qtc",
    ("MDC", "2:16128"): "p_axis",
    ("MDC", "2:16132"): "qrs_axis",
    ("MDC", "2:16136"): "t_axis",
    ("SCPECG", "5.10.2.1-3"): "rr",
    ("SCPECG", "5.13.5-7"): "pr",
    ("SCPECG", "5.13.5-9"): "qrs",
    ("SCPECG", "5.13.5-11"): "qt",
    ("SCPECG", "5.10.2.5-5"): "qtc",
    ("SCPECG", "5.10.3-11"): "p_axis",
    ("SCPECG", "5.10.3-13"): "qrs_axis",
    ("SCPECG", "5.10.3-15"): "t_axis",
}
# CID 3227's QTc by a named formula (Bazett, Fredericia...): used only when the file has
# no plain global QTc, which is the one the cart prints.
_QTC_BY_FORMULA = frozenset({("MDC", "2:15880"), ("MDC", "2:15892")})

# What encode_dicom writes for each measurement: MDC code value and meaning.
_MEASUREMENT_CODES: dict[str, tuple[str, str]] = {
    "heart_rate": ("2:16770", "Heart rate"),
    "rr": ("2:16168", "RR interval global"),
    "pr": ("2:15872", "PR interval global"),
    "qrs": ("2:16156", "QRS duration global"),
    "qt": ("2:16160", "QT interval global"),
    "qtc": ("2:15876", "QTc interval global"),
    "p_axis": ("2:16128", "P axis"),
    "qrs_axis": ("2:16132", "QRS axis"),
    "t_axis": ("2:16136", "T axis"),
}

# MEASUREMENTS unit -> UCUM codes a file may give it in -> factor into that unit.
_UNIT_FACTORS: dict[str, dict[str, Decimal]] = {
    "MDC_DIM_MILLI_SEC": {"ms": Decimal(1), "s": Decimal(1000)},
    "MDC_DIM_ANG_DEG": {"deg": Decimal(1)},
    "MDC_DIM_BEAT_PER_MIN": {
        "/min": Decimal(1),
        "1/min": Decimal(1),
        "{beat}/min": Decimal(1),
        "{beats}/min": Decimal(1),
        "{H.B.}/min": Decimal(1),
        "bpm": Decimal(1),
    },
}
# MEASUREMENTS unit -> the UCUM code and meaning encode_dicom writes.
_UCUM_OUT: dict[str, tuple[str, str]] = {
    "MDC_DIM_MILLI_SEC": ("ms", "millisecond"),
    "MDC_DIM_ANG_DEG": ("deg", "degree"),
    "MDC_DIM_BEAT_PER_MIN": ("/min", "per minute"),
}

# A DICOM convention (PS3.16 §8): coding schemes starting "99" are local. Used for a coded
# statement, whose scheme EcgRecord does not keep.
_LOCAL_SCHEME = "99EDGEAGENT"

_SCPECG_LEAD = re.compile(r"5\.6\.3-9-(\d{1,3})")
_MDC_LEAD = re.compile(r"2:(\d{1,3})")
_DATE_TIME = re.compile(r"(\d{8})(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?(?:[+-]\d{4})?")

# Exact Decimal arithmetic: DS strings have at most 16 characters, so a precision of 80
# digits never rounds; Inexact is trapped so a result that would round raises instead.
_EXACT = Context(prec=80, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])

_DS_MAX = 16  # characters in a DS value (PS3.5 Table 6.2-1)
_LO_MAX = 64
_ST_MAX = 1024
_SH_MAX = 16


# --- reading ---------------------------------------------------------------------------


def parse_dicom(data: bytes) -> EcgRecord:
    """A DICOM ECG file -> EcgRecord (the rhythm group's standard leads, measurements,
    statements, patient and time). DecodeError for anything else or anything broken.

    pydicom warns (UserWarning) about values outside their VR's rules as it reads them;
    a file either decodes or is refused with one line, so those warnings, which would
    print a damaged file's bytes into the daemon's log, are not let through."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _parse(data)


def _parse(data: bytes) -> EcgRecord:
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(io.BytesIO(data))
    except InvalidDicomError:
        raise DecodeError(
            "not a DICOM file: no 'DICM' marker after the 128-byte preamble"
        ) from None
    except Exception as exc:  # a corrupt file can fail inside pydicom in many ways
        raise DecodeError(f"unreadable DICOM file ({_one_line(exc)})") from None
    try:
        return _record(ds)
    except DecodeError:
        raise
    except Exception as exc:  # pydicom converts element values lazily, on first access
        raise DecodeError(f"corrupt DICOM element ({_one_line(exc)})") from None


def decode_dicom(data: bytes) -> Decoded:
    """What the recorder stores from one DICOM ECG file (record.to_decoded)."""
    return to_decoded(parse_dicom(data))


def _record(ds: Dataset) -> EcgRecord:
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    declared = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else None)
    sop_class = str(declared or "").strip()
    groups = ds.get("WaveformSequence")
    if sop_class not in ECG_SOP_CLASSES and not groups:
        shown = UID(sop_class).name if sop_class else "no SOP class"
        # A damaged file's "UID" can be any bytes: show it printable, on one line, short.
        shown = "".join(ch if ch.isprintable() else "?" for ch in " ".join(shown.split()))
        raise DecodeError(f"not a DICOM ECG ({shown[:80]}, no WaveformSequence)")
    if not groups:
        raise DecodeError("DICOM ECG without a WaveformSequence (no samples)")
    number, group = _rhythm_group(list(groups))
    # OW data follows the transfer syntax's byte order (explicit VR big endian is retired
    # but still readable); original_encoding is (implicit VR, little endian).
    little_endian = ds.original_encoding[1] is not False
    leads, rate, uv_per_unit, offset_uv = _read_group(group, number, little_endian)
    measurements, statements = _annotations(ds.get("WaveformAnnotationSequence") or ())
    start = _start_time(ds)
    age = _age(ds, start)
    return EcgRecord(
        leads=leads,
        rate_hz=rate,
        uv_per_unit=uv_per_unit,
        start_time=start,
        measurements=measurements,
        statements=statements,
        offset_uv=offset_uv,
        patient_id=_text(ds, "PatientID"),
        patient_name=_text(ds, "PatientName"),
        patient_sex=sex_code(_text(ds, "PatientSex")),
        patient_age=None if age is None else age[0],
        patient_age_unit=None if age is None else age[1],
        device=" ".join(
            filter(None, (_text(ds, "Manufacturer"), _text(ds, "ManufacturerModelName")))
        )
        or None,
    )


def _rhythm_group(groups: list[Dataset]) -> tuple[int, Dataset]:
    """(1-based group number, group): RHYTHM, else the first not a beat group, else the
    first."""
    labels = [str(g.get("MultiplexGroupLabel", "") or "").upper() for g in groups]
    for number, (group, label) in enumerate(zip(groups, labels, strict=True), 1):
        if "RHYTHM" in label:
            return number, group
    for number, (group, label) in enumerate(zip(groups, labels, strict=True), 1):
        if not any(word in label for word in _BEAT_GROUP_WORDS):
            return number, group
    return 1, groups[0]


def _read_group(
    group: Dataset, number: int, little_endian: bool
) -> tuple[dict[str, tuple[int, ...]], Decimal, Decimal, Decimal]:
    """(leads, rate, µV per unit, offset µV) of one multiplex group."""
    where = f"multiplex group {number}"
    channels = _count(group, "NumberOfWaveformChannels", where)
    samples = _count(group, "NumberOfWaveformSamples", where)
    bits = _count(group, "WaveformBitsAllocated", where)
    interpretation = str(group.get("WaveformSampleInterpretation", "") or "").strip()
    code = _SAMPLE_FORMATS.get((bits, interpretation))
    if code is None:
        raise DecodeError(
            f"{where}: {bits}-bit {interpretation or '?'} samples are not supported "
            "(16-bit SS/US and 8-bit SB/UB are)"
        )
    rate = _decimal(group.get("SamplingFrequency"), f"{where} SamplingFrequency")
    if rate is None or rate <= 0:
        raise DecodeError(f"{where}: SamplingFrequency missing or not positive")
    definitions = list(group.get("ChannelDefinitionSequence") or ())
    if len(definitions) != channels:
        raise DecodeError(
            f"{where}: {len(definitions)} channel definitions for {channels} channels"
        )
    data = group.get("WaveformData")
    if not isinstance(data, bytes):
        raise DecodeError(f"{where}: WaveformData missing")
    need = channels * samples * (bits // 8)
    if len(data) < need:
        raise DecodeError(
            f"{where}: WaveformData holds {len(data)} bytes, "
            f"{channels} channels × {samples} samples need {need}"
        )
    values = struct.unpack_from(f"{'<' if little_endian else '>'}{channels * samples}{code}", data)

    found: list[ScaledLead] = []
    for index, definition in enumerate(definitions):
        name = _lead_of(definition)
        if name is None:
            continue
        if any(name == lead.name for lead in found):
            raise DecodeError(f"{where}: lead {name} appears twice")
        uv, baseline = _channel_scale(definition, f"{where} channel {index + 1} ({name})")
        found.append(ScaledLead(name, values[index::channels], uv, baseline))
    if not found:
        raise DecodeError(f"{where}: no channel is one of the 12 standard ECG leads")
    uv_per_unit, offset_uv, leads = _common_scale(found, where)
    return leads, rate, uv_per_unit, offset_uv


def _lead_of(definition: Dataset) -> str | None:
    """The standard lead name a channel's ChannelSourceSequence codes, or None."""
    sources = definition.get("ChannelSourceSequence") or ()
    if not sources:
        return None
    source = sources[0]
    scheme = str(source.get("CodingSchemeDesignator", "") or "").strip().upper()
    value = _code_value(source)
    pattern = {"SCPECG": _SCPECG_LEAD, "MDC": _MDC_LEAD}.get(scheme)
    match = pattern.fullmatch(value) if pattern and value else None
    if match:
        return LEAD_BY_CODE.get(int(match.group(1)))
    # "Lead I (Einthoven)", "aVR, augmented voltage, right"
    meaning = str(source.get("CodeMeaning", "") or "")
    return lead_name(re.split(r"[(,]", meaning, maxsplit=1)[0])


def _channel_scale(definition: Dataset, where: str) -> tuple[Decimal, Decimal]:
    """(µV per unit, baseline µV) of one channel, exact."""
    sensitivity = _decimal(definition.get("ChannelSensitivity"), f"{where} ChannelSensitivity")
    if sensitivity is None:
        raise DecodeError(f"{where}: no ChannelSensitivity, the samples have no voltage scale")
    correction = _decimal(
        definition.get("ChannelSensitivityCorrectionFactor"), f"{where} correction factor"
    )
    baseline = _decimal(definition.get("ChannelBaseline"), f"{where} ChannelBaseline")
    units = definition.get("ChannelSensitivityUnitsSequence") or ()
    unit = _code_value(units[0]) if units else ""
    if unit not in _UV_PER:
        raise DecodeError(f"{where}: sensitivity unit {unit or 'missing'!r} is not a voltage")
    try:
        uv = _EXACT.multiply(
            _EXACT.multiply(sensitivity, Decimal(1) if correction is None else correction),
            _UV_PER[unit],
        )
        baseline_uv = _EXACT.multiply(Decimal(0) if baseline is None else baseline, _UV_PER[unit])
    except ArithmeticError:
        raise DecodeError(f"{where}: sensitivity out of range") from None
    if uv <= 0:
        raise DecodeError(f"{where}: sensitivity {uv} µV is not positive")
    return uv, baseline_uv


def _common_scale(
    found: list[ScaledLead], where: str
) -> tuple[Decimal, Decimal, dict[str, tuple[int, ...]]]:
    """One µV-per-unit and offset for all leads: the finest resolution and the first
    lead's baseline; other leads' samples rescaled exactly, or DecodeError."""
    offset = found[0].offset_uv
    try:
        leads, finest = on_finest_resolution(found, offset)
    except NoCommonResolution as error:
        lead = error.lead
        raise DecodeError(
            f"{where}: lead {lead.name} ({lead.uv_per_unit} µV per unit, baseline "
            f"{lead.offset_uv} µV) cannot be put exactly on the finest lead's scale "
            f"({error.finest.uv_per_unit} µV, baseline {offset} µV)"
        ) from None
    return finest, offset, leads


def _annotations(
    items: Iterable[Dataset],
) -> tuple[dict[str, Decimal], tuple[Statement, ...]]:
    measurements: dict[str, Decimal] = {}
    by_formula: dict[str, Decimal] = {}
    statements: list[Statement] = []
    for number, item in enumerate(items, 1):
        text = _text(item, "UnformattedTextValue", strip=False)
        concepts = item.get("ConceptCodeSequence") or ()
        if concepts:
            concept = concepts[0]
            meaning = _text(concept, "CodeMeaning", strip=False)
            if text or meaning:
                statements.append(Statement(text or meaning or "", _code_value(concept) or None))
            continue
        if text:
            statements.append(Statement(text))
            continue
        measured = _measurement(item, number)
        if measured is None:
            continue
        key, value, formula = measured
        target = by_formula if formula else measurements
        target.setdefault(key, value)
    for key, value in by_formula.items():
        measurements.setdefault(key, value)
    return measurements, tuple(statements)


def _measurement(item: Dataset, number: int) -> tuple[str, Decimal, bool] | None:
    """(MEASUREMENTS key, value in its unit, is a formula-specific QTc) or None."""
    names = item.get("ConceptNameCodeSequence") or ()
    if not names or "NumericValue" not in item:
        return None
    channels = list(item.get("ReferencedWaveformChannels") or ())
    if any(channel != 0 for channel in channels[1::2]):
        return None  # a per-lead value; MEASUREMENTS holds the global ones
    scheme = str(names[0].get("CodingSchemeDesignator", "") or "").strip().upper()
    concept = (scheme, _code_value(names[0]))
    formula = concept in _QTC_BY_FORMULA
    key = "qtc" if formula else _MEASUREMENT_CONCEPTS.get(concept)
    if key is None:
        return None
    units = item.get("MeasurementUnitsCodeSequence") or ()
    factor = _UNIT_FACTORS[MEASUREMENTS[key][1]].get(_code_value(units[0]) if units else "")
    if factor is None:
        return None
    value = _decimal(item.get("NumericValue"), f"annotation {number} ({key}) NumericValue")
    if value is None:
        return None
    try:
        return key, _EXACT.multiply(value, factor), formula
    except ArithmeticError:
        raise DecodeError(f"annotation {number} ({key}): value {value} out of range") from None


def _start_time(ds: Dataset) -> dt.datetime | None:
    when = _date_time(_text(ds, "AcquisitionDateTime") or "")
    for date_key, time_key in (("ContentDate", "ContentTime"), ("StudyDate", "StudyTime")):
        if when is not None:
            break
        date, time = _text(ds, date_key), _text(ds, time_key)
        if date and time:
            when = _date_time(date.replace(".", "").replace("-", "") + time.replace(":", ""))
    return when


def _date_time(text: str) -> dt.datetime | None:
    """DT 'YYYYMMDDHH[MM[SS[.F{1,6}]]][&ZZXX]' -> naive datetime; None without a time of
    day or when not a real date."""
    match = _DATE_TIME.fullmatch(text.strip())
    if match is None:
        return None
    date, hour, minute, second, fraction = match.groups()
    try:
        return dt.datetime(
            int(date[:4]),
            int(date[4:6]),
            int(date[6:8]),
            int(hour),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
        )
    except ValueError:
        return None


def _count(item: Dataset, keyword: str, where: str) -> int:
    value = item.get(keyword)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise DecodeError(f"{where}: {keyword} missing or not a positive number")
    return value


def _decimal(value: object, what: str) -> Decimal | None:
    """A DS value as the exact Decimal its string spells; None when empty."""
    if value is None or value == "":
        return None
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 1:
            raise DecodeError(f"{what}: {len(value)} values where one is expected")
        value = value[0]
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise DecodeError(f"{what}: {str(value)[:20]!r} is not a number") from None
    if not number.is_finite():
        raise DecodeError(f"{what}: {number} is not a finite number")
    return number


# PatientAge (0010,1010) is an AS value, "nnnD", "nnnW", "nnnM" or "nnnY" (PS3.5 6.2).
_AGE_STRING = re.compile(r"(\d{3})([DWMY])", re.ASCII)
_AS_UNITS = {"D": AGE_DAYS, "W": "wk", "M": "mo", "Y": AGE_YEARS}


def _age(ds: Dataset, start: dt.datetime | None) -> tuple[int, str] | None:
    """PatientAge, else PatientBirthDate (DA, YYYYMMDD) on the acquisition day."""
    found = _AGE_STRING.fullmatch(_text(ds, "PatientAge") or "")
    if found:
        return patient_age(int(found[1]), _AS_UNITS[found[2]])
    birth = _text(ds, "PatientBirthDate") or ""
    if start is None or not (len(birth) == 8 and birth.isascii() and birth.isdigit()):
        return None
    try:
        born = dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:]))
    except ValueError:
        return None
    return age_between(born, start.date())


def _text(item: Dataset, keyword: str, *, strip: bool = True) -> str | None:
    value = item.get(keyword)
    if value is None:
        return None
    text = str(value)
    text = text.strip() if strip else text.rstrip()
    return text or None


def _code_value(code: Dataset) -> str:
    """A code item's value: CodeValue, or LongCodeValue / URNCodeValue (PS3.3 8.8)."""
    for keyword in ("CodeValue", "LongCodeValue", "URNCodeValue"):
        value = code.get(keyword)
        if value:
            return str(value).strip()
    return ""


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:200]


# --- writing ---------------------------------------------------------------------------


def encode_dicom(record: EcgRecord) -> bytes:
    """EcgRecord -> a 12-lead ECG Waveform Storage file: one RHYTHM group of 16-bit SS
    samples, SCPECG lead codes, µV sensitivity, the measurements as MDC-coded numeric
    annotations and the statements as text annotations. ValueError when the record does
    not fit (non-standard lead, leads of unequal length, a sample outside int16, a
    number longer than a DS value)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    leads = record.ordered_leads()
    if not leads:
        raise ValueError("an ECG record without leads cannot be written")
    count = len(leads[0][1])
    for name, samples in leads:
        if name not in LEAD_CODES:
            raise ValueError(f"lead {name!r} has no SCP-ECG lead code")
        if len(samples) != count:
            raise ValueError(
                f"lead {name} has {len(samples)} samples, lead {leads[0][0]} {count}: "
                "one multiplex group needs equal lengths"
            )
        if any(not -32768 <= s <= 32767 for s in samples):
            raise ValueError(f"lead {name} has a sample outside the 16-bit signed range")
    if count == 0:
        raise ValueError("an ECG record without samples cannot be written")
    if record.uv_per_unit <= 0:
        raise ValueError(f"uv_per_unit {record.uv_per_unit} is not positive")
    if record.rate_hz <= 0:
        raise ValueError(f"rate_hz {record.rate_hz} is not positive")

    instance = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(TWELVE_LEAD_ECG)
    meta.MediaStorageSOPInstanceUID = instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: Chinese names and statements
    ds.SOPClassUID = TWELVE_LEAD_ECG
    ds.SOPInstanceUID = instance
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "ECG"
    ds.PatientID = _short(record.patient_id, "patient id", _LO_MAX)
    ds.PatientName = _short(record.patient_name, "patient name", _LO_MAX)
    ds.PatientBirthDate = ""
    ds.PatientSex = record.patient_sex if record.patient_sex in ("M", "F", "O") else ""
    as_unit = {AGE_YEARS: "Y", AGE_DAYS: "D"}.get(record.patient_age_unit or "")
    if record.patient_age is not None and as_unit and record.patient_age <= 999:
        ds.PatientAge = f"{record.patient_age:03d}{as_unit}"
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = ""
    ds.ManufacturerModelName = _short(record.device, "device", _LO_MAX)
    date, time, date_time = _dicom_time(record.start_time)
    ds.StudyDate = ds.ContentDate = date
    ds.StudyTime = ds.ContentTime = time
    ds.AcquisitionDateTime = date_time
    ds.AcquisitionContextSequence = []  # type 2: present, nothing to say

    group = Dataset()
    group.MultiplexGroupTimeOffset = "0"
    group.WaveformOriginality = "ORIGINAL"
    group.NumberOfWaveformChannels = len(leads)
    group.NumberOfWaveformSamples = count
    group.SamplingFrequency = _ds(record.rate_hz, "rate_hz")
    group.MultiplexGroupLabel = "RHYTHM"
    group.ChannelDefinitionSequence = [
        _channel_definition(name, record.uv_per_unit, record.offset_uv) for name, _ in leads
    ]
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    interleaved = [
        s for frame in zip(*(samples for _, samples in leads), strict=True) for s in frame
    ]
    group.add_new(0x54001010, "OW", struct.pack(f"<{len(interleaved)}h", *interleaved))
    ds.WaveformSequence = [group]
    ds.WaveformAnnotationSequence = [
        *_measurement_items(record),
        *(_statement_item(s) for s in record.statements),
    ]

    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _channel_definition(name: str, uv_per_unit: Decimal, offset_uv: Decimal) -> Dataset:
    from pydicom.dataset import Dataset

    source = _code(f"5.6.3-9-{LEAD_CODES[name]}", "SCPECG", f"Lead {name}")
    source.CodingSchemeVersion = "1.3"
    channel = Dataset()
    channel.ChannelSourceSequence = [source]
    channel.ChannelSensitivity = _ds(uv_per_unit, "uv_per_unit")
    channel.ChannelSensitivityUnitsSequence = [_code("uV", "UCUM", "microvolt")]
    channel.ChannelSensitivityCorrectionFactor = "1"
    # The baseline is in the sensitivity's unit (µV here), so any offset that fits a DS
    # string is representable.
    channel.ChannelBaseline = _ds(offset_uv, "offset_uv")
    channel.ChannelSampleSkew = "0"
    channel.WaveformBitsStored = 16
    return channel


def _measurement_items(record: EcgRecord) -> list[Dataset]:
    from pydicom.dataset import Dataset

    items = []
    for key, (_, unit) in MEASUREMENTS.items():
        value = record.measurements.get(key)
        if value is None:
            continue
        code, meaning = _MEASUREMENT_CODES[key]
        item = Dataset()
        item.ReferencedWaveformChannels = [1, 0]  # group 1, all channels: a global value
        item.ConceptNameCodeSequence = [_code(code, "MDC", meaning)]
        item.NumericValue = _ds(value, f"measurement {key}")
        ucum, ucum_meaning = _UCUM_OUT[unit]
        item.MeasurementUnitsCodeSequence = [_code(ucum, "UCUM", ucum_meaning)]
        items.append(item)
    return items


def _statement_item(statement: Statement) -> Dataset:
    from pydicom.dataset import Dataset

    if len(statement.text) > _ST_MAX:
        raise ValueError(f"statement longer than {_ST_MAX} characters: {statement.text[:40]!r}…")
    item = Dataset()
    item.ReferencedWaveformChannels = [1, 0]
    item.UnformattedTextValue = statement.text
    if statement.code is not None:
        # The text stays in UnformattedTextValue; the code rides in a coded concept, its
        # meaning a backslash-free head of the text (LO is 64 characters, single-valued).
        item.ConceptNameCodeSequence = [_code("statement", _LOCAL_SCHEME, "ECG statement")]
        item.ConceptCodeSequence = [
            _code(statement.code, _LOCAL_SCHEME, statement.text[:_LO_MAX].replace("\\", "/"))
        ]
    return item


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    from pydicom.dataset import Dataset

    item = Dataset()
    if len(value) > _SH_MAX or "\\" in value:
        item.LongCodeValue = value  # UC: codes longer than 16 characters (PS3.3 8.8)
    else:
        item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _ds(value: Decimal, what: str) -> str:
    text = str(value)
    if not value.is_finite() or len(text) > _DS_MAX:
        raise ValueError(f"{what} {text} does not fit a DICOM DS value (16 characters)")
    return text


def _short(value: str | None, what: str, limit: int) -> str:
    text = value or ""
    if len(text) > limit or "\\" in text:
        raise ValueError(f"{what} {text[:20]!r}… is longer than {limit} or holds a backslash")
    return text


def _dicom_time(when: dt.datetime | None) -> tuple[str, str, str]:
    """(DA, TM, DT) strings; empty when the record has no time."""
    if when is None:
        return "", "", ""
    time = when.strftime("%H%M%S") + (f".{when.microsecond:06d}" if when.microsecond else "")
    zone = when.strftime("%z") if when.tzinfo is not None else ""
    return when.strftime("%Y%m%d"), time, when.strftime("%Y%m%d") + time + zone
