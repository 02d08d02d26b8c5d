"""Health-hut (健康小屋) height/weight stations and weighing indicators: one ASCII line each.

These devices print one line per measurement (or, in continuous mode, several lines a
second) on RS-232, ended by CR LF, which `LineFramer` (shared with the Masimo driver)
cuts. The line layout differs by vendor and is not worth a driver per model, so a
`LinePattern` (a regex with named groups) describes it: `PRESETS` holds the layouts found
in vendors' manuals, and `pattern_from_config` accepts an installer's own regex.

Named groups a pattern may use:
  weight       required; digits with an optional sign and decimal point (spaces inside,
               as in "+ 65.40", are allowed)
  unit         weight unit: kg, g, lb, jin (市斤); the pattern's default when absent
  height       optional; height_unit: cm, mm, m; the pattern's default when absent
  status       stability header (ST/US, S/D); values listed as stable or unstable
  bmi          the device's own BMI, cross-checked against the derived one

What the decoder gives (all values `Decimal`, never float):
  - body mass in kg (MDC_MASS_BODY_ACTUAL). lb (x 0.45359237, the international pound),
    jin (x 0.5: 1 市斤 = 500 g by the 1959 State Council order on units) and g (/ 1000)
    are converted exactly, with the flag "converted-from-<unit>" so the original unit
    stays visible; nothing is rounded.
  - body height in cm (MDC_LEN_BODY_ACTUAL); m and mm converted exactly, flagged too.
  - BMI = kg / m^2 rounded half-up to 0.1 (MDC_RATIO_MASS_BODY_LEN_SQ, flag "derived")
    when both are on the line; a device BMI that disagrees by more than 0.3 means a
    misread digit and the line is rejected.

Decisions:
  - Unstable weights (US, S D: the resident is still stepping on) never reach a health
    record. They are not errors either (a station prints several per resident), so they
    are returned flagged "unstable" and "intermediate": edge_agent.recorder keeps the raw
    line and records the frame as progress, with no observation and nothing sent up. No
    BMI is derived from them.
  - A weight within +-0.5 kg of zero is an empty platform (indicators in continuous mode
    print it all day): an empty `Decoded`, recorded as "empty", not quarantined.
  - Otherwise a weight outside 2..300 kg or a height outside 30..260 cm is a misread or
    a wrong pattern, not a person: DecodeError, so the line goes to quarantine.
  - Non-ASCII bytes (a station set to print GBK labels such as 体重), control bytes, a
    line the pattern does not match, an unknown unit or an error status (OL overload,
    S + / S -) raise DecodeError with the byte offset. Nothing else is ever raised.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from device_drivers.declaration import (
    Binding,
    DecoderFor,
    Driver,
    ModelChoice,
    Results,
    SerialPort,
    Yields,
    every_channel,
)
from device_drivers.serial.masimo import MAX_LINE, LineFramer
from edge_agent.model import Decoded, DecodeError, Reading

__all__ = [
    "DECLARATIONS",
    "DEFAULT_PRESET",
    "PRESETS",
    "LineFramer",
    "LinePattern",
    "bmi",
    "decode_line",
    "decoder",
    "encode_line",
    "pattern_from_config",
]

MASS = "MDC_MASS_BODY_ACTUAL"
HEIGHT = "MDC_LEN_BODY_ACTUAL"
BMI = "MDC_RATIO_MASS_BODY_LEN_SQ"
KG = "MDC_DIM_KILO_G"
CM = "MDC_DIM_CENTI_M"
KG_PER_M2 = "MDC_DIM_KG_PER_M_SQ"

UNSTABLE_FLAG = "unstable"
INTERMEDIATE_FLAG = "intermediate"  # edge_agent.recorder treats it as progress
DERIVED_FLAG = "derived"

# Exact factors to kg / cm. The pound is the international avoirdupois pound (1959);
# the 市斤 is 500 g.
KG_PER: dict[str, Decimal] = {
    "kg": Decimal(1),
    "g": Decimal("0.001"),
    "lb": Decimal("0.45359237"),
    "jin": Decimal("0.5"),
}
CM_PER: dict[str, Decimal] = {"cm": Decimal(1), "mm": Decimal("0.1"), "m": Decimal(100)}

# What devices print for a unit -> our unit. Tanita writes the unit as the second letter
# of the field header (Wk, Wp), hence "k" and "p".
_WEIGHT_UNITS: dict[str, str] = {
    "kg": "kg", "kgs": "kg", "k": "kg",
    "g": "g", "gr": "g",
    "lb": "lb", "lbs": "lb", "p": "lb",
    "jin": "jin",
}  # fmt: skip
_HEIGHT_UNITS: dict[str, str] = {"cm": "cm", "mm": "mm", "m": "m"}

# Plausible for a person on a health-hut station (infant scales are other devices).
MIN_KG, MAX_KG = Decimal(2), Decimal(300)
ZERO_BAND_KG = Decimal("0.5")  # zero tracking: nobody on the platform
MIN_CM, MAX_CM = Decimal(30), Decimal(260)
MIN_BMI, MAX_BMI = Decimal(5), Decimal(150)
BMI_TOLERANCE = Decimal("0.3")  # device BMI from unrounded kg/cm vs ours from the line

GROUPS = frozenset({"weight", "unit", "height", "height_unit", "status", "bmi"})
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_SPACES = re.compile(r"\s+")
_NOT_PRINTABLE = re.compile(rb"[^\x20-\x7e\t\r\n]")


@dataclass(frozen=True, slots=True)
class LinePattern:
    """How one kind of station or indicator prints its line.

    `regex` must match the whole line (without CR LF). `stable` / `unstable` are the
    `status` group's values (compared upper-case); any other status is an error whose
    text `status_text` may explain. `weight_unit` / `height_unit` apply when the line
    has no unit group or leaves it empty.
    """

    name: str
    source: str
    regex: re.Pattern[str]
    weight_unit: str = "kg"
    height_unit: str = "cm"
    stable: frozenset[str] = frozenset()
    unstable: frozenset[str] = frozenset()
    status_text: tuple[tuple[str, str], ...] = ()


_NUM = r"\d+(?:\.\d+)?"

PRESETS: dict[str, LinePattern] = {
    # Chinese ultrasonic height-weight stations (超声波身高体重秤) in health huts: one line
    # per resident, "W:065.4kg H:175.0cm", optionally " BMI:21.4". Source: the labelled
    # W/H layout such stations print (docs/protocols/scales.md); no vendor manual with this layout
    # was found in the public corpus searched, so check the station's manual before
    # deployment (a different layout is a pattern in the config, not new code). The
    # station prints only after its own stability check, hence no status field.
    "hw-station": LinePattern(
        name="hw-station",
        source="W:/H: labelled line of Chinese 超声波身高体重秤 (project device survey; unverified)",
        regex=re.compile(
            rf"W\s*[:=]\s*(?P<weight>[+-]?\s*{_NUM})\s*(?P<unit>kg|lb|jin|g)?"
            rf"(?:[\s,;]*H\s*[:=]\s*(?P<height>{_NUM})\s*(?P<height_unit>cm|mm|m)?)?"
            rf"(?:[\s,;]*BMI\s*[:=]\s*(?P<bmi>{_NUM}))?",
            re.ASCII | re.IGNORECASE,
        ),
    ),
    # Tanita WB-3000 / SC-240 / HD-351 RS-232C output (user manuals, "Output data"):
    # comma-separated header,value pairs after the control data "{0,16,~0,1,...":
    # Hm = height cm, Wk / Wp = weight kg / lb, MI = BMI, CS = checksum. Items are found
    # by header, not column, because body-composition models insert more of them.
    "tanita": LinePattern(
        name="tanita",
        source="Tanita WB-3000, SC-240, HD-351BT manuals: RS-232C output data",
        regex=re.compile(
            r"\{0,"
            rf"(?=(?:.*?,\s*Hm,\s*(?P<height>{_NUM})\s*(?:,|$))?)"
            rf"(?=(?:.*?,\s*MI,\s*(?P<bmi>{_NUM})\s*(?:,|$))?)"
            rf"(?=.*?,\s*W(?P<unit>[kp]),\s*(?P<weight>{_NUM})\s*(?:,|$))"
            r".*",
            re.ASCII,
        ),
    ),
    # Weighing indicators (A&D EK-L manual §9-2 "Data format": header ST/US/QT/OL, a
    # 9-character signed value, unit, CR LF; the Chinese indicator variant adds GS/NT/TR,
    # e.g. Selleton SL-7516 "S1,S2,S3 data S4" and Shanghai 计重秤 RS232 format
    # "ST,GS,+ 123.456   g", "US,GS,+0123.456  lb", "OL,GS,+" followed by blanks).
    "ad-indicator": LinePattern(
        name="ad-indicator",
        source="A&D EK-L §9-2; Selleton SL-7516; 上海计重秤 RS232 格式 (ST,GS,+...kg)",
        regex=re.compile(
            r"(?P<status>ST|US|OL|QT)\s*,\s*(?:(?:GS|NT|TR)\s*,\s*)?"
            # Any unit letters (PC for counting, % for percent) so that the status,
            # checked first, names what the line is instead of "does not match".
            rf"(?:(?P<weight>[+-]?\s*{_NUM})\s*(?P<unit>[a-z%]{{1,3}})?|[+-]?\s*)",
            re.ASCII | re.IGNORECASE,
        ),
        stable=frozenset({"ST"}),
        unstable=frozenset({"US"}),
        status_text=(
            ("OL", "overload: weight out of the indicator's range"),
            ("QT", "counting data, not a weight"),
        ),
    ),
    # METTLER TOLEDO MT-SICS reference manual §3.2.1, response with weight value:
    # "S S     65.40 kg" (stable), "S D     65.38 kg" (dynamic), and the weightless
    # responses "S I" (busy), "S +" (overload), "S -" (underload).
    "mt-sics": LinePattern(
        name="mt-sics",
        source="METTLER TOLEDO MT-SICS reference manual §3.2.1 (S S / S D responses)",
        regex=re.compile(
            rf"S\s+(?P<status>[SDI+-])(?:\s+(?P<weight>-?\s*{_NUM})\s*(?P<unit>kg|lb|g))?",
            re.ASCII,
        ),
        stable=frozenset({"S"}),
        unstable=frozenset({"D"}),
        status_text=(
            ("I", "balance busy (S I), no weight"),
            ("+", "overload (S +)"),
            ("-", "underload (S -)"),
        ),
    ),
    # key=value lines in any order, separated by blanks, commas or semicolons, e.g.
    # "weight=65.4kg height=175.0cm" or "wei=65.4" (the dhy DBA-310 analyser answers
    # "wei=xxx.x" over serial). Unknown keys are skipped.
    "kv": LinePattern(
        name="kv",
        source="generic key=value; 'wei=xxx.x' as the DBA-310 analyser prints it",
        regex=re.compile(
            rf"(?=(?:.*?[\s,;])?(?:weight|wei|wt|w)\s*=\s*(?P<weight>[+-]?{_NUM})"
            r"\s*(?P<unit>kg|lb|jin|g)?\s*(?:[,;\s]|$))"
            rf"(?=(?:(?:.*?[\s,;])?(?:height|hei|ht|h)\s*=\s*(?P<height>{_NUM})"
            r"\s*(?P<height_unit>cm|mm|m)?\s*(?:[,;\s]|$))?)"
            rf"(?=(?:(?:.*?[\s,;])?bmi\s*=\s*(?P<bmi>{_NUM})\s*(?:[,;\s]|$))?)"
            r".*",
            re.ASCII | re.IGNORECASE,
        ),
    ),
}
DEFAULT_PRESET = "hw-station"


def pattern_from_config(
    text: str,
    *,
    weight_unit: str = "kg",
    height_unit: str = "cm",
    stable: Iterable[str] = (),
    unstable: Iterable[str] = (),
    name: str = "custom",
) -> LinePattern:
    """A preset by name, or an installer's regex checked for what the decoder needs.

    Raises ValueError with one line naming the problem: not a regex, no `weight` group,
    an unknown group name, non-ASCII text (the lines are read as ASCII), an unknown unit,
    or a `status` group without its stable values.
    """
    if text in PRESETS:
        return PRESETS[text]
    shown = text if len(text) <= 60 else text[:57] + "..."
    if not text.strip():
        raise ValueError("line pattern is empty (give a preset name or a regex)")
    if len(text) > 1000:
        raise ValueError(f"line pattern {shown!r} is {len(text)} characters; 1000 at most")
    wide = next((c for c in text if not " " <= c <= "~"), None)
    if wide is not None:
        raise ValueError(
            f"line pattern {shown!r} contains {wide!r}: lines are read as ASCII, so it can "
            "never match (a station printing GBK labels must be set to ASCII output)"
        )
    try:
        regex = re.compile(text, re.ASCII)
    except re.error as exc:
        raise ValueError(
            f"line pattern {shown!r} is not a valid regex: {exc.msg} at position {exc.pos}"
        ) from None
    groups = set(regex.groupindex)
    if "weight" not in groups:
        raise ValueError(
            f"line pattern {shown!r} has no (?P<weight>...) group; name the weight digits, "
            r"e.g. W:(?P<weight>\d+\.\d)"
        )
    unknown = sorted(groups - GROUPS)
    if unknown:
        raise ValueError(
            f"line pattern {shown!r}: unknown group {unknown[0]!r} "
            f"(known: {', '.join(sorted(GROUPS))})"
        )
    if weight_unit not in KG_PER:
        raise ValueError(f"weight unit {weight_unit!r} unknown (known: {', '.join(KG_PER)})")
    if height_unit not in CM_PER:
        raise ValueError(f"height unit {height_unit!r} unknown (known: {', '.join(CM_PER)})")
    stable_set = frozenset(s.strip().upper() for s in stable)
    unstable_set = frozenset(s.strip().upper() for s in unstable)
    if "status" in groups and not stable_set:
        raise ValueError(
            f"line pattern {shown!r} has a status group but no stable values "
            "(e.g. stable = ['ST'], unstable = ['US'])"
        )
    if stable_set & unstable_set:
        both = sorted(stable_set & unstable_set)[0]
        raise ValueError(f"status {both!r} is listed as both stable and unstable")
    return LinePattern(
        name=name,
        source="config",
        regex=regex,
        weight_unit=weight_unit,
        height_unit=height_unit,
        stable=stable_set,
        unstable=unstable_set,
    )


def bmi(weight_kg: Decimal, height_cm: Decimal) -> Decimal:
    """kg / m^2, rounded half-up to 0.1 (how BMI is reported on health records)."""
    metres = height_cm / 100
    return (weight_kg / (metres * metres)).quantize(Decimal("0.1"), ROUND_HALF_UP)


def _trim(value: Decimal) -> Decimal:
    """Trailing zeros of an exact product dropped, never turned into an exponent."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def _text(line: bytes) -> tuple[str, int, int]:
    """The line as ASCII text, and the span without surrounding blanks and CR LF."""
    bad = _NOT_PRINTABLE.search(line)
    if bad is not None:
        hint = (
            " (GBK/UTF-8 text? set the station to ASCII output)"
            if line[bad.start()] >= 0x80
            else ""
        )
        raise DecodeError(
            f"not an ASCII scale line: byte 0x{line[bad.start()]:02x}{hint}", bad.start()
        )
    text = line.decode("ascii")
    start = len(text) - len(text.lstrip())
    end = len(text.rstrip())
    if start >= end:
        raise DecodeError("empty line", 0)
    inner = re.search(r"[\r\n]", text[start:end])
    if inner is not None:
        raise DecodeError("CR/LF inside the line (two lines in one frame?)", start + inner.start())
    if end - start > MAX_LINE:
        raise DecodeError(f"line of {end - start} characters; a scale line is shorter", start)
    return text, start, end


def _number(match: re.Match[str], group: str) -> Decimal:
    raw = match.group(group)
    cleaned = _SPACES.sub("", raw)
    if _NUMBER.fullmatch(cleaned) is None:
        raise DecodeError(f"{group} {raw.strip()!r}: not a number", match.start(group))
    try:
        return Decimal(cleaned)
    except InvalidOperation:  # pragma: no cover - _NUMBER admits only Decimal syntax
        raise DecodeError(f"{group} {raw.strip()!r}: not a number", match.start(group)) from None


def _unit(match: re.Match[str], group: str, known: dict[str, str], default: str) -> str:
    raw = _group(match, group)
    if raw is None or not raw.strip():
        return default
    unit = known.get(raw.strip().lower())
    if unit is None:
        raise DecodeError(
            f"{group.replace('_', ' ')} {raw.strip()!r} unknown (known: {', '.join(sorted(set(known.values())))})",
            match.start(group),
        )
    return unit


def _group(match: re.Match[str], group: str) -> str | None:
    return match.group(group) if group in match.re.groupindex else None


def decode_line(line: bytes, pattern: LinePattern = PRESETS[DEFAULT_PRESET]) -> Decoded:
    """One scale line (with or without CR LF) -> weight, height and BMI readings.

    See the module doc for what is returned for unstable and empty-platform lines and
    what is rejected.
    """
    text, start, end = _text(line)
    match = pattern.regex.fullmatch(text, start, end)
    if match is None:
        raise DecodeError(f"line does not match the {pattern.name} pattern", start)

    unstable = False
    status = _group(match, "status")
    if status is not None:
        key = status.strip().upper()
        if key in pattern.unstable:
            unstable = True
        elif key not in pattern.stable:
            meaning = dict(pattern.status_text).get(key, "not a weighing status")
            raise DecodeError(f"status {status.strip()!r}: {meaning}", match.start("status"))

    if match.group("weight") is None:
        raise DecodeError(f"no weight in the {pattern.name} line", start)
    at = match.start("weight")
    raw_weight = _number(match, "weight")
    weight_unit = _unit(match, "unit", _WEIGHT_UNITS, pattern.weight_unit)
    # Printed kg keep their printed resolution (65.40 stays 65.40); converted values
    # are exact products with the trailing zeros of the factor dropped.
    weight = raw_weight if weight_unit == "kg" else _trim(raw_weight * KG_PER[weight_unit])
    shown = f"{match.group('weight').strip()} {weight_unit}"
    if abs(weight) <= ZERO_BAND_KG:
        return Decoded()  # nobody on the platform (module doc)
    if weight < 0:
        raise DecodeError(f"weight {shown}: negative (tare set or zero drifted)", at)
    low = ZERO_BAND_KG if unstable else MIN_KG  # stepping on passes through small values
    if not low <= weight <= MAX_KG:
        raise DecodeError(f"weight {shown}: outside {MIN_KG}..{MAX_KG} kg for a person", at)

    flags: tuple[str, ...] = (UNSTABLE_FLAG, INTERMEDIATE_FLAG) if unstable else ()
    readings = [Reading(MASS, weight, KG, None, _converted(weight_unit, "kg") + flags)]

    height: Decimal | None = None
    if _group(match, "height") is not None:
        height_unit = _unit(match, "height_unit", _HEIGHT_UNITS, pattern.height_unit)
        raw_height = _number(match, "height")
        height = raw_height if height_unit == "cm" else _trim(raw_height * CM_PER[height_unit])
        if not MIN_CM <= height <= MAX_CM:
            raise DecodeError(
                f"height {match.group('height').strip()} {height_unit}: outside "
                f"{MIN_CM}..{MAX_CM} cm for a person",
                match.start("height"),
            )
        readings.append(Reading(HEIGHT, height, CM, None, _converted(height_unit, "cm") + flags))

    if unstable:
        return Decoded(readings=tuple(readings))  # no BMI from a weight still settling

    device_bmi: Decimal | None = None
    if _group(match, "bmi") is not None:
        device_bmi = _number(match, "bmi")
        if not MIN_BMI <= device_bmi <= MAX_BMI:
            raise DecodeError(f"BMI {device_bmi}: outside {MIN_BMI}..{MAX_BMI}", match.start("bmi"))
    if height is not None:
        derived = bmi(weight, height)
        if not MIN_BMI <= derived <= MAX_BMI:
            raise DecodeError(
                f"BMI {derived} from {weight} kg and {height} cm: outside "
                f"{MIN_BMI}..{MAX_BMI}, weight or height misread",
                at,
            )
        if device_bmi is not None and abs(device_bmi - derived) > BMI_TOLERANCE:
            raise DecodeError(
                f"device BMI {device_bmi} disagrees with {weight} kg / ({height} cm)^2 = "
                f"{derived}: a digit misread",
                match.start("bmi"),
            )
        readings.append(Reading(BMI, derived, KG_PER_M2, None, (DERIVED_FLAG,)))
    elif device_bmi is not None:
        # Height typed on the device's keypad and not printed: its BMI is all we have.
        readings.append(Reading(BMI, device_bmi, KG_PER_M2, None))
    return Decoded(readings=tuple(readings))


def _converted(unit: str, base: str) -> tuple[str, ...]:
    return () if unit == base else (f"converted-from-{unit}",)


def decoder(pattern: LinePattern) -> Callable[[bytes], Decoded]:
    """The decoder for one configured pattern (what the registry hands the recorder)."""

    def decode(line: bytes) -> Decoded:
        return decode_line(line, pattern)

    decode.__doc__ = f"decode_line with the {pattern.name} pattern ({pattern.source})"
    return decode


def _fixed(value: Decimal, places: int, width: int = 0) -> str:
    return f"{value:0{width}.{places}f}" if width else f"{value:.{places}f}"


_PLACES = {"kg": 1, "lb": 1, "jin": 1, "g": 0}
_HEIGHT_PLACES = {"cm": 1, "mm": 0, "m": 3}


def encode_line(
    weight: Decimal | int | str,
    height: Decimal | int | str | None = None,
    *,
    preset: str = DEFAULT_PRESET,
    unit: str = "kg",
    height_unit: str = "cm",
    stable: bool = True,
) -> bytes:
    """A line as the station or indicator prints it, CR LF included (simulator, tests).

    `weight` is in `unit`, `height` in `height_unit`. Raises ValueError for what the
    preset cannot print (an unstable line without a status field, a unit it lacks).
    """
    try:
        spec = PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown scale preset {preset!r} (known: {', '.join(PRESETS)})") from None
    if unit not in KG_PER or height_unit not in CM_PER:
        raise ValueError(f"unit {unit!r} or height unit {height_unit!r} unknown")
    if not stable and not spec.unstable:
        raise ValueError(f"preset {preset} has no stability status: it cannot print unstable")
    w = Decimal(weight)
    h = None if height is None else Decimal(height)
    places = _PLACES[unit]
    if preset == "hw-station":
        text = f"W:{_fixed(w, places, 5 if places else 0)}{unit}"
        if h is not None:
            h_places = _HEIGHT_PLACES[height_unit]
            text += f" H:{_fixed(h, h_places, 5 if height_unit == 'cm' else 0)}{height_unit}"
    elif preset == "tanita":
        if unit not in ("kg", "lb") or height_unit != "cm":
            raise ValueError("tanita prints weight in kg or lb (Wk/Wp) and height in cm (Hm)")
        text = '{0,16,~0,1,~1,1,~2,1,MO,"WB-3000"'
        if h is not None:
            text += f",Hm,{_fixed(h, 1)}"
        text += f",W{'k' if unit == 'kg' else 'p'},{_fixed(w, 1)}"
        if h is not None:
            text += f",MI,{bmi(w * KG_PER[unit], h)}"
        # The manuals found do not define the CS algorithm: a placeholder the decoder
        # ignores (module doc of the tests: CS is not checked).
        text += ",CS,00"
    elif preset == "ad-indicator":
        if unit == "jin":
            raise ValueError("ad-indicator prints kg, lb or g")
        sign = "-" if w < 0 else "+"
        digits = _fixed(abs(w), 2 if unit != "g" else 0, 7)
        text = f"{'ST' if stable else 'US'},GS,{sign}{digits}{unit}"
    elif preset == "mt-sics":
        if unit == "jin":
            raise ValueError("mt-sics prints kg, lb or g")
        text = f"S {'S' if stable else 'D'} {_fixed(w, 2 if unit != 'g' else 0):>10} {unit}"
    else:  # kv
        text = f"weight={_fixed(w, places)}{unit}"
        if h is not None:
            text += f" height={_fixed(h, _HEIGHT_PLACES[height_unit])}{height_unit}"
    return (text + "\r\n").encode("ascii")


def configured_decoders(model: str | None, pattern: str | None) -> DecoderFor:
    """A scale's line format: its own `pattern`, else the preset named by `model`."""
    return every_channel(decoder(pattern_from_config(pattern or model or DEFAULT_PRESET)))


def pattern_problem(pattern: str) -> str | None:
    """Why a config's line pattern cannot work (pattern_from_config's reason), or None."""
    try:
        pattern_from_config(pattern)
    except ValueError as exc:
        return str(exc)
    return None


DECLARATIONS = (
    Driver(
        id="scale-ascii",
        summary="health-hut height/weight stations and weighing indicators, ASCII lines",
        source=SerialPort(),
        framer=LineFramer,
        decoder_for=configured_decoders(None, None),
        configured=configured_decoders,
        model=ModelChoice("a scale preset", lambda: PRESETS),
        pattern=pattern_problem,
        yields=Yields(numerics=True),
        profile="MDC_DEV_SPEC_PROFILE_SCALE",
        binding=Binding.PERSONAL,
        results=Results.STORED,
    ),
)
