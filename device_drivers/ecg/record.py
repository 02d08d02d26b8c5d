"""One 12-lead ECG as every cart file format carries it (docs/protocols/ecg-files.md), no I/O.

Each format module (dicom, scp, aecg, philips_xml) parses its bytes into an `EcgRecord`
and writes one back (for tests and for carts simulated in the demo); `to_decoded` turns
a record into what the recorder stores: the cart's measurements as readings, each lead
as a waveform in microvolts, the interpretation statements word for word.

Samples stay the integers the file stored, with the file's resolution (`uv_per_unit`,
microvolts per unit, a Decimal: 4.88 and 2.5 are not binary fractions) and `offset_uv`
(aECG origin); physical value = offset_uv + uv_per_unit × sample. That keeps a round trip
exact, and the store keeps the integers (waveform_segment).

Lead names are the usual ones; their codes are the SCP-ECG (EN 1064 lead definition) /
IEEE 11073-10101 lead codes (I = 1, II = 2, V1..V6 = 3..8, III = 61, aVR = 62, aVL = 63,
aVF = 64) and their waveform metrics MDC_ECG_ELEC_POTL_<lead> (term 256 + lead code).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow
from typing import Literal

from edge_agent.model import Decoded, Reading, RecordingContext, Statement, Waveform

# The twelve standard leads, in the order a 12-lead sheet and the HL7 message list them.
STANDARD_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

LEAD_CODES: dict[str, int] = {
    "I": 1,
    "II": 2,
    "V1": 3,
    "V2": 4,
    "V3": 5,
    "V4": 6,
    "V5": 7,
    "V6": 8,
    "III": 61,
    "aVR": 62,
    "aVL": 63,
    "aVF": 64,
}
LEAD_BY_CODE: dict[int, str] = {code: name for name, code in LEAD_CODES.items()}


def lead_metric(lead: str) -> str:
    """'aVR' -> 'MDC_ECG_ELEC_POTL_AVR' (the waveform's MDC reference id)."""
    if lead not in LEAD_CODES:
        raise KeyError(f"not a standard ECG lead: {lead!r}")
    return f"MDC_ECG_ELEC_POTL_{lead.upper()}"


LEAD_BY_METRIC: dict[str, str] = {lead_metric(lead): lead for lead in LEAD_CODES}


def lead_name(label: str) -> str | None:
    """A lead as files label it -> its standard name: 'avr', 'AVR', 'MDC_ECG_LEAD_AVR',
    'Lead II', 'v1' -> 'aVR', 'aVR', 'aVR', 'II', 'V1'; None when it is not one of the 12."""
    text = label.strip().upper()
    for prefix in ("MDC_ECG_LEAD_", "MDC_ECG_ELEC_POTL_", "LEAD "):
        if text.startswith(prefix):
            text = text[len(prefix) :].strip()
    for name in LEAD_CODES:
        if name.upper() == text:
            return name
    return None


# The cart's global measurements: key -> (metric, unit). Intervals in ms, axes in degrees.
MEASUREMENTS: dict[str, tuple[str, str]] = {
    "heart_rate": ("MDC_ECG_HEART_RATE", "MDC_DIM_BEAT_PER_MIN"),
    "rr": ("MDC_ECG_TIME_PD_RR_GL", "MDC_DIM_MILLI_SEC"),
    "pr": ("MDC_ECG_TIME_PD_PR_GL", "MDC_DIM_MILLI_SEC"),
    "qrs": ("MDC_ECG_TIME_PD_QRS_GL", "MDC_DIM_MILLI_SEC"),
    "qt": ("MDC_ECG_TIME_PD_QT_GL", "MDC_DIM_MILLI_SEC"),
    "qtc": ("MDC_ECG_TIME_PD_QTc", "MDC_DIM_MILLI_SEC"),
    "p_axis": ("MDC_ECG_ANGLE_P_FRONT", "MDC_DIM_ANG_DEG"),
    "qrs_axis": ("MDC_ECG_ANGLE_QRS_FRONT", "MDC_DIM_ANG_DEG"),
    "t_axis": ("MDC_ECG_ANGLE_T_FRONT", "MDC_DIM_ANG_DEG"),
}
MEASUREMENT_BY_METRIC: dict[str, str] = {metric: key for key, (metric, _) in MEASUREMENTS.items()}

MICRO_VOLT = "MDC_DIM_MICRO_VOLT"
ECG_FLAG = "12-lead"

# Units an age is given in (IEEE 11073-10101 dimensions). Formats also say months and
# weeks: weeks become days (exact); months become completed years from 12 on, and below
# a year are left out, since a month is no fixed number of days.
AGE_YEARS, AGE_DAYS, AGE_HOURS = "MDC_DIM_YR", "MDC_DIM_DAY", "MDC_DIM_HR"
AGE_UNITS = (AGE_YEARS, AGE_DAYS, AGE_HOURS)
# Bounds that keep a wrong field from printing as an age (no one is 200 years old).
MAX_AGE = {AGE_YEARS: 150, AGE_DAYS: 150 * 366, AGE_HOURS: 150 * 366 * 24}

# HL7 v2.6 table 0001 (administrative sex) for what files write: words, letters, Chinese.
_SEX_WORDS = {"m": "M", "male": "M", "男": "M", "f": "F", "female": "F", "女": "F"}
_SEX_WORDS |= {"o": "O", "other": "O"}


def sex_code(text: str | None) -> str | None:
    """'Male', 'M', '男' -> 'M'; 'Female' ... -> 'F'; unknown, blank or anything else -> None."""
    return _SEX_WORDS.get((text or "").strip().lower())


def patient_age(value: int, unit: str) -> tuple[int, str] | None:
    """(value, unit) when it is an age a person can have, else None. Weeks ("wk") and
    months ("mo") are converted as AGE_UNITS says."""
    if unit == "wk":
        value, unit = value * 7, AGE_DAYS
    elif unit == "mo":
        if value < 12:
            return None
        value, unit = value // 12, AGE_YEARS
    if unit not in MAX_AGE or not 0 <= value <= MAX_AGE[unit]:
        return None
    return value, unit


def age_between(birth: dt.date, on: dt.date) -> tuple[int, str] | None:
    """Age on a day: completed years, or days in the first year; None when born later."""
    if birth > on:
        return None
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    if years >= 1:
        return patient_age(years, AGE_YEARS)
    return patient_age((on - birth).days, AGE_DAYS)


@dataclass(frozen=True)
class EcgRecord:
    """A resting/pre-hospital 12-lead ECG: signals, measurements, statements, who and when.

    `leads` maps standard lead names to their samples (stored integers); files that store
    only 8 leads and derive the rest give the derived ones too (the format module does
    the derivation the format defines). `measurements` keys are MEASUREMENTS keys.
    """

    leads: Mapping[str, tuple[int, ...]]
    rate_hz: Decimal
    uv_per_unit: Decimal
    start_time: dt.datetime | None = None
    measurements: Mapping[str, Decimal] = field(default_factory=dict)
    statements: tuple[Statement, ...] = ()
    offset_uv: Decimal = Decimal(0)
    patient_id: str | None = None
    patient_name: str | None = None
    device: str | None = None  # the cart's model as the file names it
    # What the cart was told about the patient (its criteria use them): sex as HL7
    # table 0001 (M, F, O), age in whole `patient_age_unit` (AGE_UNITS).
    patient_sex: str | None = None
    patient_age: int | None = None
    patient_age_unit: str | None = None

    @property
    def sample_count(self) -> int:
        return max((len(s) for s in self.leads.values()), default=0)

    @property
    def duration_s(self) -> Decimal:
        return Decimal(self.sample_count) / self.rate_hz if self.rate_hz else Decimal(0)

    def ordered_leads(self) -> list[tuple[str, tuple[int, ...]]]:
        """The leads in sheet order (STANDARD_LEADS), others after."""
        names = [n for n in STANDARD_LEADS if n in self.leads]
        names += [n for n in self.leads if n not in STANDARD_LEADS]
        return [(n, tuple(self.leads[n])) for n in names]


# Exact or refused: a resolution or offset that would need rounding raises (Inexact). The
# precision holds any quotient of two numbers a cart file can write (aECG's longest, 200
# characters, included).
_EXACT = Context(prec=1000, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])


@dataclass(frozen=True, slots=True)
class ScaledLead:
    """One lead as its file stores it: integers of `uv_per_unit` µV each, with sample 0
    at `offset_uv` (a DICOM channel's baseline, an aECG origin)."""

    name: str
    samples: tuple[int, ...]
    uv_per_unit: Decimal
    offset_uv: Decimal


class NoCommonResolution(ValueError):
    """`lead` cannot be put exactly on `finest`'s resolution (`part` "scale": its
    resolution is no whole multiple of the finest) or on the record's offset (`part`
    "offset": not a whole number of finest steps away). Each format says it in its words."""

    def __init__(
        self,
        lead: ScaledLead,
        finest: ScaledLead,
        offset_uv: Decimal,
        part: Literal["scale", "offset"],
    ) -> None:
        super().__init__(f"lead {lead.name}: no common {part} with lead {finest.name}")
        self.lead, self.finest, self.offset_uv, self.part = lead, finest, offset_uv, part


def on_finest_resolution(
    leads: Sequence[ScaledLead], offset_uv: Decimal
) -> tuple[dict[str, tuple[int, ...]], Decimal]:
    """The leads' samples on one resolution, the finest lead's, and one offset, exactly:
    (samples by lead name, that resolution in µV per unit). A lead's sample s becomes
    s × k + d, k its resolution over the finest, d its offset's distance from `offset_uv`
    in finest steps; both must be integers, or NoCommonResolution names the first lead
    (in order) for which one is not. EcgRecord has one resolution and one offset, and
    a sample never becomes a rounded one."""
    finest = min(leads, key=lambda lead: lead.uv_per_unit)
    resolution = finest.uv_per_unit
    samples: dict[str, tuple[int, ...]] = {}
    for lead in leads:
        factor = _whole_quotient(lead.uv_per_unit, resolution)
        if factor is None:
            raise NoCommonResolution(lead, finest, offset_uv, "scale")
        try:
            gap: Decimal | None = _EXACT.subtract(lead.offset_uv, offset_uv)
        except ArithmeticError:  # exponents too far apart to subtract exactly
            gap = None
        shift = None if gap is None else _whole_quotient(gap, resolution)
        if shift is None:
            raise NoCommonResolution(lead, finest, offset_uv, "offset")
        if factor == 1 and shift == 0:
            samples[lead.name] = lead.samples
        else:
            samples[lead.name] = tuple(s * factor + shift for s in lead.samples)
    return samples, resolution


def _whole_quotient(dividend: Decimal, divisor: Decimal) -> int | None:
    """dividend / divisor when that is exactly an integer, else None."""
    try:
        quotient = _EXACT.divide(dividend, divisor)
    except ArithmeticError:
        return None
    return int(quotient) if quotient == quotient.to_integral_value() else None


def to_decoded(record: EcgRecord) -> Decoded:
    """The recorder's view: measurements as readings at the acquisition time (flag
    "12-lead"), one waveform per lead in microvolts, the statements, and the cart's
    model with the patient's sex and age as its context."""
    readings = []
    for key, (metric, unit) in MEASUREMENTS.items():
        value = record.measurements.get(key)
        if value is not None:
            readings.append(Reading(metric, value, unit, record.start_time, (ECG_FLAG,)))
    waveforms = tuple(
        Waveform(
            metric=lead_metric(name),
            rate_hz=float(record.rate_hz),
            unit=MICRO_VOLT,
            samples=samples,
            scale=record.uv_per_unit,
            offset=record.offset_uv,
            start_time=record.start_time,
        )
        for name, samples in record.ordered_leads()
        if name in LEAD_CODES
    )
    context = RecordingContext(
        device_model=record.device,
        patient_sex=record.patient_sex,
        patient_age=record.patient_age if record.patient_age_unit else None,
        patient_age_unit=record.patient_age_unit if record.patient_age is not None else None,
    )
    return Decoded(
        readings=tuple(readings),
        waveforms=waveforms,
        statements=record.statements,
        context=context or None,
    )


def limb_lead_errors(record: EcgRecord, tolerance_units: int = 1) -> list[str]:
    """Einthoven/Goldberger self-check (docs/protocols/ecg-files.md): III = II − I,
    aVR = −(I + II)/2, aVL = I − II/2, aVF = II − I/2, each within `tolerance_units` at
    every sample.

    Returns one line per lead that breaks it (empty: consistent). A decoder that mixed
    up leads, byte order or scale fails here even when each lead looks like an ECG.
    """
    leads = record.leads
    if not all(n in leads for n in ("I", "II")):
        return []
    i, ii = leads["I"], leads["II"]

    def rule(name: str, a: int, b: int) -> float:
        if name == "III":
            return float(b - a)
        if name == "aVR":
            return -(a + b) / 2
        if name == "aVL":
            return a - b / 2
        return b - a / 2  # aVF

    errors = []
    for name in ("III", "aVR", "aVL", "aVF"):
        got = leads.get(name)
        if got is None:
            continue
        for n, (a, b, c) in enumerate(zip(i, ii, got, strict=False)):
            want = rule(name, a, b)
            if abs(c - want) > tolerance_units + 0.5:
                errors.append(f"lead {name} at sample {n}: {c}, expected {want:g}")
                break
    return errors
