"""NEWS2, the National Early Warning Score 2 (Royal College of Physicians, 2017).

The band table, the aggregate rules and the rounding rule are those of the RCP's NEWS2
report (2017), its scoring-system and thresholds-and-triggers charts, as
docs/protocols/clinical-rules.md sets them out:

- Each measured value is rounded as measured before banding: temperature to 0.1 °C,
  the others to whole numbers, half-way values away from zero (Decimal ROUND_HALF_UP:
  35.05 °C -> 35.1 -> 1 point; 20.5 breaths/min -> 21 -> 2 points). Values are Decimal
  throughout, so a band edge is never missed by a binary fraction.
- SpO2 scale 2 (hypercapnic respiratory failure, prescribed by a clinician): 88-92 %
  scores 0 on air or oxygen, >=93 % scores 0 on air but 1/2/3 (93-94, 95-96, >=97) on
  oxygen; below 88 % it bands like scale 1's shifted table (<=83: 3, 84-85: 2, 86-87: 1).
- Aggregate: >=7 high; 5-6 medium; otherwise low-medium when any single parameter
  scores 3, else low.

A missing parameter is shown as missing and never scored as normal in disguise: the
total and the risk level come from the parameters that are present, which is the
least the patient can score (no band scores below 0), and `complete` is False. So a
result never claims a level lower than its present values prove, and an incomplete one
says so. On scale 2 an SpO2 of 93 % or more with air/oxygen unknown is scored at its
on-air value (0, the least it can be) and marked `lower_bound`.

Pure: no clock, no I/O. `from_readings` picks the parameters out of the latest device
readings; `add_arguments`/`run` are the `edge-agent news2` command (docs/contracts.md "CLI").
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from edge_agent import units
from edge_agent.model import Reading

# Part names, in chart order. Fixed: the CLI's JSON and the TUI key on them.
RESPIRATION_RATE = "respiration_rate"
SPO2 = "spo2"
AIR_OR_OXYGEN = "air_or_oxygen"
SYSTOLIC_BP = "systolic_bp"
PULSE = "pulse"
CONSCIOUSNESS = "consciousness"
TEMPERATURE = "temperature"
PARAMETERS: tuple[str, ...] = (
    RESPIRATION_RATE,
    SPO2,
    AIR_OR_OXYGEN,
    SYSTOLIC_BP,
    PULSE,
    CONSCIOUSNESS,
    TEMPERATURE,
)

# Risk levels, least to most urgent.
LOW = "low"
LOW_MEDIUM = "low-medium"
MEDIUM = "medium"
HIGH = "high"
RISK_LEVELS: tuple[str, ...] = (LOW, LOW_MEDIUM, MEDIUM, HIGH)

# Alert, new Confusion, Voice, Pain, Unresponsive.
ACVPU: tuple[str, ...] = ("A", "C", "V", "P", "U")

_TENTH = Decimal("0.1")

# Unit conversions are edge_agent.units' (done once, product-wide): kPa to whole mmHg
# and °F to 0.1 °C, the steps NEWS2 rounds to anyway (docs/protocols/clinical-rules.md).


@dataclass(frozen=True, slots=True)
class _Bands:
    """A row of the chart: (highest value in the band, its score), ascending, then the
    score of everything above the last band. Applied to values already rounded."""

    bands: tuple[tuple[Decimal, int], ...]
    above: int

    def score(self, value: Decimal) -> int:
        for highest, points in self.bands:
            if value <= highest:
                return points
        return self.above


def _bands(above: int, *bands: tuple[str, int]) -> _Bands:
    return _Bands(tuple((Decimal(v), s) for v, s in bands), above)


# The RCP NEWS2 scoring-system chart, row by row (docs/protocols/clinical-rules.md).
_RESPIRATION = _bands(3, ("8", 3), ("11", 1), ("20", 0), ("24", 2))  # >=25: 3
_SPO2_SCALE_1 = _bands(0, ("91", 3), ("93", 2), ("95", 1))  # >=96: 0
_SPO2_SCALE_2_AIR = _bands(0, ("83", 3), ("85", 2), ("87", 1))  # 88-92, >=93 on air: 0
_SPO2_SCALE_2_OXYGEN = _bands(
    3, ("83", 3), ("85", 2), ("87", 1), ("92", 0), ("94", 1), ("96", 2)
)  # >=97 on oxygen: 3
_SYSTOLIC = _bands(3, ("90", 3), ("100", 2), ("110", 1), ("219", 0))  # >=220: 3
_PULSE = _bands(3, ("40", 3), ("50", 1), ("90", 0), ("110", 1), ("130", 2))  # >=131: 3
_TEMPERATURE = _bands(2, ("35.0", 3), ("36.0", 1), ("38.0", 0), ("39.0", 1))  # >=39.1: 2
_OXYGEN_POINTS = 2  # supplemental oxygen: 2, air: 0
_NOT_ALERT_POINTS = 3  # new confusion, voice, pain, unresponsive: 3
# Scale 2: from here up the score depends on air or oxygen.
_SPO2_SCALE_2_OXYGEN_MATTERS = Decimal(93)


def round_as_measured(value: Decimal, parameter: str) -> Decimal:
    """The value the chart bands: temperature to 0.1 °C, the others to whole numbers,
    halves away from zero (ROUND_HALF_UP)."""
    if parameter == TEMPERATURE:
        return value.quantize(_TENTH, rounding=ROUND_HALF_UP)
    return value.to_integral_value(rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class News2Inputs:
    """The seven observations; None is "not measured / not known".

    Numbers are in the chart's units: breaths/min, %, mmHg, beats/min, °C.
    `scale` is the SpO2 scale (2 only when a clinician prescribed it); `oxygen` True on
    supplemental oxygen, False on air; `acvpu` one of "A", "C", "V", "P", "U".
    """

    rr: Decimal | None = None
    spo2: Decimal | None = None
    scale: int = 1
    oxygen: bool | None = None
    sbp: Decimal | None = None
    hr: Decimal | None = None
    acvpu: str | None = None
    temp: Decimal | None = None

    def __post_init__(self) -> None:
        if self.scale not in (1, 2):
            raise ValueError(f"NEWS2 SpO2 scale {self.scale!r}: must be 1 or 2")
        if self.acvpu is not None and self.acvpu not in ACVPU:
            raise ValueError(f"NEWS2 consciousness {self.acvpu!r}: must be one of A C V P U")
        for name in ("rr", "spo2", "sbp", "hr", "temp"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, Decimal) and value.is_finite()):
                raise ValueError(f"NEWS2 {name} {value!r}: must be a finite Decimal or None")


@dataclass(frozen=True, slots=True)
class News2Part:
    """One parameter's contribution: the value as banded (rounded number, "air"/"oxygen",
    an ACVPU letter) and its points, or value and score None when missing."""

    value: Decimal | str | None
    score: int | None
    # Scale 2 SpO2 >= 93 % with air/oxygen unknown: scored at its on-air value.
    lower_bound: bool = False

    @property
    def missing(self) -> bool:
        return self.score is None

    def as_json(self) -> dict[str, Any]:
        if self.score is None:
            return {"value": None, "score": None, "missing": True}
        value: Any = self.value
        if isinstance(value, Decimal):
            # Whole-number parameters as ints; temperature (rounded to 0.1) as a float.
            exponent = value.as_tuple().exponent
            value = int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
        out: dict[str, Any] = {"value": value, "score": self.score}
        if self.lower_bound:
            out["lower_bound"] = True
        return out


_MISSING = News2Part(None, None)


@dataclass(frozen=True, slots=True)
class News2Result:
    """The aggregate: `score` and `risk` over the present parameters, `parts` keyed by
    PARAMETERS (all seven, chart order), `missing` the names not present."""

    score: int
    risk: str
    parts: Mapping[str, News2Part]
    scale: int
    missing: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """All seven parameters present: only then is `risk` the NEWS2 level itself
        rather than the least it can be."""
        return not self.missing

    def as_json(self) -> dict[str, Any]:
        """The `edge-agent news2` output (docs/contracts.md "CLI"), numbers as ints/floats."""
        return {
            "score": self.score,
            "risk": self.risk,
            "parts": {name: self.parts[name].as_json() for name in PARAMETERS},
            "scale": self.scale,
            "complete": self.complete,
            "missing": list(self.missing),
        }


def risk_level(total: int, highest_part: int) -> str:
    """The clinical response level for an aggregate `total` whose largest single
    parameter score is `highest_part` (RCP NEWS2 thresholds and triggers)."""
    if total >= 7:
        return HIGH
    if total >= 5:
        return MEDIUM
    if highest_part >= 3:
        return LOW_MEDIUM
    return LOW


def _number_part(value: Decimal | None, parameter: str, bands: _Bands) -> News2Part:
    if value is None:
        return _MISSING
    rounded = round_as_measured(value, parameter)
    return News2Part(rounded, bands.score(rounded))


def _spo2_part(inputs: News2Inputs) -> News2Part:
    if inputs.spo2 is None:
        return _MISSING
    rounded = round_as_measured(inputs.spo2, SPO2)
    if inputs.scale == 1:
        return News2Part(rounded, _SPO2_SCALE_1.score(rounded))
    if inputs.oxygen:
        return News2Part(rounded, _SPO2_SCALE_2_OXYGEN.score(rounded))
    # On air, or not known: the on-air score, which is the least it can be either way.
    unknown = inputs.oxygen is None and rounded >= _SPO2_SCALE_2_OXYGEN_MATTERS
    return News2Part(rounded, _SPO2_SCALE_2_AIR.score(rounded), lower_bound=unknown)


def _air_or_oxygen_part(oxygen: bool | None) -> News2Part:
    if oxygen is None:
        return _MISSING
    return News2Part("oxygen", _OXYGEN_POINTS) if oxygen else News2Part("air", 0)


def _consciousness_part(acvpu: str | None) -> News2Part:
    if acvpu is None:
        return _MISSING
    return News2Part(acvpu, 0 if acvpu == "A" else _NOT_ALERT_POINTS)


def score(inputs: News2Inputs) -> News2Result:
    """NEWS2 over the parameters present in `inputs` (see the module docstring)."""
    parts: dict[str, News2Part] = {
        RESPIRATION_RATE: _number_part(inputs.rr, RESPIRATION_RATE, _RESPIRATION),
        SPO2: _spo2_part(inputs),
        AIR_OR_OXYGEN: _air_or_oxygen_part(inputs.oxygen),
        SYSTOLIC_BP: _number_part(inputs.sbp, SYSTOLIC_BP, _SYSTOLIC),
        PULSE: _number_part(inputs.hr, PULSE, _PULSE),
        CONSCIOUSNESS: _consciousness_part(inputs.acvpu),
        TEMPERATURE: _number_part(inputs.temp, TEMPERATURE, _TEMPERATURE),
    }
    scores = [p.score for p in parts.values() if p.score is not None]
    total = sum(scores)
    return News2Result(
        score=total,
        risk=risk_level(total, max(scores, default=0)),
        parts=parts,
        scale=inputs.scale,
        missing=tuple(name for name in PARAMETERS if parts[name].missing),
    )


# --- from device readings ----------------------------------------------------------------

_Convert = Callable[[Decimal], Decimal]


def _as_is(value: Decimal) -> Decimal:
    return value


@dataclass(frozen=True, slots=True)
class _Source:
    """Where a parameter comes from: metrics in order of preference, and the units it
    may arrive in with the conversion to the chart's unit (any other unit: missing)."""

    metrics: tuple[str, ...]
    units: Mapping[str, _Convert]


_SOURCES: Mapping[str, _Source] = {
    RESPIRATION_RATE: _Source(
        ("MDC_RESP_RATE", "MDC_AWAY_RESP_RATE", "MDC_TTHOR_RESP_RATE"),
        {"MDC_DIM_RESP_PER_MIN": _as_is},
    ),
    SPO2: _Source(("MDC_PULS_OXIM_SAT_O2",), {"MDC_DIM_PERCENT": _as_is}),
    # The cuff first: NEWS2 is charted from non-invasive pressure; an arterial line is
    # the fallback when no cuff reading is fresh.
    SYSTOLIC_BP: _Source(
        ("MDC_PRESS_BLD_NONINV_SYS", "MDC_PRESS_CUFF_SYS", "MDC_PRESS_BLD_ART_ABP_SYS"),
        {"MDC_DIM_MMHG": _as_is, "MDC_DIM_KILO_PASCAL": units.kpa_to_mmhg},
    ),
    PULSE: _Source(
        ("MDC_ECG_HEART_RATE", "MDC_PULS_OXIM_PULS_RATE", "MDC_PULS_RATE_NON_INV"),
        {"MDC_DIM_BEAT_PER_MIN": _as_is},
    ),
    TEMPERATURE: _Source(
        (
            "MDC_TEMP_BODY",
            "MDC_TEMP_ORAL",
            "MDC_TEMP_TYMP",
            "MDC_TEMP_AXILLA",
            "MDC_TEMP_RECT",
            "MDC_TEMP",
        ),
        {"MDC_DIM_DEGC": _as_is, "MDC_DIM_FAHR": units.fahrenheit_to_celsius},
    ),
}

# Flags with which a device disowns the number it sent (BLE PLX measurement status).
_DISOWNED_FLAGS = frozenset({"invalid-measurement", "measurement-unavailable"})


# Every metric NEWS2 reads, in preference order per parameter (what the recorder asks for).
SOURCE_METRICS: tuple[str, ...] = tuple(m for source in _SOURCES.values() for m in source.metrics)


def _fresh(
    reading: Reading,
    now: dt.datetime,
    window_s: float,
    received_at: Mapping[str, dt.datetime] | None,
) -> bool:
    when = reading.device_time
    if when is None and received_at is not None:
        when = received_at.get(reading.metric)
    if when is None:
        return False  # no time at all: cannot show it is recent
    try:
        age = (now - when).total_seconds()
    except TypeError:
        raise ValueError(
            f"NEWS2 {reading.metric} time {when.isoformat()} and now {now.isoformat()}:"
            " both must be naive or both timezone-aware"
        ) from None
    # Either side of now: device clocks run ahead as often as behind.
    return abs(age) <= window_s


def _pick(
    source: _Source,
    latest: Mapping[str, Reading],
    now: dt.datetime,
    window_s: float,
    received_at: Mapping[str, dt.datetime] | None,
) -> Decimal | None:
    """The first metric in preference order with a usable reading, in the chart's unit."""
    for metric in source.metrics:
        reading = latest.get(metric)
        if reading is None or reading.value is None or not reading.value.is_finite():
            continue
        if _DISOWNED_FLAGS.intersection(reading.flags):
            continue
        convert = source.units.get(reading.unit)
        if convert is None:
            continue  # a unit we do not know for this parameter: never guessed
        if not _fresh(reading, now, window_s, received_at):
            continue
        return convert(reading.value)
    return None


def from_readings(
    latest: Mapping[str, Reading],
    *,
    now: dt.datetime,
    window_s: float,
    scale: int,
    oxygen: bool | None,
    acvpu: str | None,
    received_at: Mapping[str, dt.datetime] | None = None,
) -> News2Inputs:
    """NEWS2 inputs from the latest reading of each metric (keyed by MDC reference id).

    A reading counts when its time — `device_time`, else `received_at[metric]` — is
    within `window_s` seconds of `now` (either side), its value is present and finite,
    its device has not flagged it invalid/unavailable, and its unit is one known for the
    parameter (kPa and °F are converted once, here). Otherwise the next metric in
    preference order is tried, and with none left the parameter is missing. Times are
    compared as given: pass `now` in the same clock as the readings (naive wall-clock,
    as Reading.device_time is). `scale`, `oxygen` and `acvpu` are the clinician's.
    """

    def pick(parameter: str) -> Decimal | None:
        return _pick(_SOURCES[parameter], latest, now, window_s, received_at)

    return News2Inputs(
        rr=pick(RESPIRATION_RATE),
        spo2=pick(SPO2),
        scale=scale,
        oxygen=oxygen,
        sbp=pick(SYSTOLIC_BP),
        hr=pick(PULSE),
        acvpu=acvpu,
        temp=pick(TEMPERATURE),
    )


# --- the `edge-agent news2` command ----------------------------------------------------------

_MIN_TEMP_C = Decimal(25)
_MAX_TEMP_C = Decimal(45)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `edge-agent news2` options. All optional: a parameter left out is shown as
    missing. Numbers are kept as typed and parsed by `run`, so that every bad value is
    one ValueError naming its option."""
    parser.add_argument("--rr", metavar="N", help="respiration rate, breaths/min")
    parser.add_argument("--spo2", metavar="N", help="SpO2, %%")
    parser.add_argument(
        "--scale",
        type=int,
        choices=(1, 2),
        default=1,
        help="SpO2 scale: 2 only when prescribed (hypercapnic respiratory failure)",
    )
    air_or_oxygen = parser.add_mutually_exclusive_group()
    air_or_oxygen.add_argument(
        "--o2", dest="oxygen", action="store_const", const=True, help="on supplemental oxygen"
    )
    air_or_oxygen.add_argument(
        "--air", dest="oxygen", action="store_const", const=False, help="breathing air"
    )
    parser.add_argument("--sbp", metavar="N", help="systolic blood pressure, mmHg")
    parser.add_argument("--hr", metavar="N", help="pulse, beats/min")
    parser.add_argument(
        "--acvpu",
        type=str.upper,
        choices=ACVPU,
        help="consciousness: Alert, new Confusion, Voice, Pain, Unresponsive",
    )
    parser.add_argument("--temp", metavar="T", help="temperature, °C")


def _option_number(raw: object, option: str) -> Decimal | None:
    if raw is None:
        return None
    try:
        value = raw if isinstance(raw, Decimal) else Decimal(str(raw).strip())
    except InvalidOperation:
        raise ValueError(f"{option} {raw}: not a number") from None
    if not value.is_finite():
        raise ValueError(f"{option} {raw}: not a number")
    if option == "--temp":
        if not _MIN_TEMP_C <= value <= _MAX_TEMP_C:
            raise ValueError(f"{option} {raw}: must be between 25 and 45 °C")
        return value
    if value < 0:
        raise ValueError(f"{option} {raw}: must not be negative")
    if option == "--spo2" and value > 100:
        raise ValueError(f"{option} {raw}: must be at most 100 %")
    return value


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The command's JSON object for parsed options; ValueError (one line, naming the
    option) for a bad value."""
    scale = getattr(args, "scale", 1)
    if scale not in (1, 2):
        raise ValueError(f"--scale {scale}: must be 1 or 2")
    acvpu = getattr(args, "acvpu", None)
    if acvpu is not None and str(acvpu).upper() not in ACVPU:
        raise ValueError(f"--acvpu {acvpu}: must be one of A C V P U")
    inputs = News2Inputs(
        rr=_option_number(getattr(args, "rr", None), "--rr"),
        spo2=_option_number(getattr(args, "spo2", None), "--spo2"),
        scale=scale,
        oxygen=getattr(args, "oxygen", None),
        sbp=_option_number(getattr(args, "sbp", None), "--sbp"),
        hr=_option_number(getattr(args, "hr", None), "--hr"),
        acvpu=None if acvpu is None else str(acvpu).upper(),
        temp=_option_number(getattr(args, "temp", None), "--temp"),
    )
    return score(inputs).as_json()
