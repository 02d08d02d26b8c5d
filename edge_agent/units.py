"""Unit conversions the product makes, each exactly once, in Decimal.

Factors (docs/protocols/clinical-rules.md, units; the BLE profiles' kPa and mg/dL):
1 kPa = 7.50062 mmHg; 1 mmol/L glucose = 18.016 mg/dL (molar mass 180.16 g/mol);
°F = °C × 9/5 + 32. Chinese clinics, and the follow-up thresholds of the national basic
public health service specification (3rd edition, 2017), read mmHg, mmol/L and °C:
`to_clinic_unit` brings a reading there.

Every converted value is rounded half-up (Decimal ROUND_HALF_UP: a half goes away from
zero) to the quantum of the unit it is converted to:

    mmHg 1      kPa 0.01      mmol/L 0.01      mg/dL 1      °C 0.1      °F 0.1

These are the steps devices and clinic records use, so a converted value never claims a
resolution the measurement did not have, and a value on its unit's grid survives the
round trip exactly where the other unit is finer (whole mmHg -> kPa -> mmHg, whole mg/dL
-> mmol/L -> mg/dL, 0.1 °C -> °F -> °C); the other way it lands within one step of the
coarser unit. mg/dL -> mmol/L is the same computation as the BLE glucose driver's
(device_drivers/ble/glucose.py: 18.016, half-up to 0.01 mmol/L). The BLE blood pressure
and thermometer drivers keep a finer step when they store (0.1 mmHg, 0.01 °C); the rules
round those to the clinic quantum before judging (`round_to_quantum`).

A value already in the clinic unit is returned as it is: nothing is converted, so
nothing is rounded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

# MDC unit reference ids (edge_agent.mdc holds their codes).
MMHG = "MDC_DIM_MMHG"
KPA = "MDC_DIM_KILO_PASCAL"
MMOL_PER_L = "MDC_DIM_MILLI_MOLE_PER_L"
MG_PER_DL = "MDC_DIM_MILLI_G_PER_DL"
DEGC = "MDC_DIM_DEGC"
FAHR = "MDC_DIM_FAHR"

MMHG_PER_KPA = Decimal("7.50062")  # 1 mmHg = 133.322 Pa
MG_PER_DL_PER_MMOL_PER_L = Decimal("18.016")  # glucose, 180.16 g/mol

BEAT_PER_MIN = "MDC_DIM_BEAT_PER_MIN"

# The step each unit is rounded to: after a conversion, and before a rule compares
# (RCP NEWS2 2017 rounds "as measured": temperature to 0.1 °C, the others to whole
# numbers; the follow-up thresholds are read at the same steps).
QUANTUM: dict[str, Decimal] = {
    MMHG: Decimal(1),
    KPA: Decimal("0.01"),
    MMOL_PER_L: Decimal("0.01"),
    MG_PER_DL: Decimal(1),
    DEGC: Decimal("0.1"),
    FAHR: Decimal("0.1"),
    BEAT_PER_MIN: Decimal(1),
}

# Device values have at most a handful of significant digits: 34 leaves the quotients
# room to be rounded once, at the end, and never earlier.
_PRECISION = 34


def round_to_quantum(value: Decimal, unit: str) -> Decimal:
    """`value` rounded half-up to the quantum of `unit` (one of `QUANTUM`'s keys).

    A value no finer than the quantum is returned as it is (3.5 mmol/L stays 3.5, not
    3.50): the number is the same, and it is what the device showed.
    """
    quantum = QUANTUM.get(unit)
    if quantum is None:
        raise ValueError(f"unit {unit}: no clinical rounding step known for it")
    exponent = _finite(value, unit).as_tuple().exponent
    step = quantum.as_tuple().exponent
    if isinstance(exponent, int) and isinstance(step, int) and exponent >= step:
        return value
    return _rounded(value, quantum)


def kpa_to_mmhg(kpa: Decimal) -> Decimal:
    """kPa -> mmHg at 7.50062 mmHg/kPa, half-up to 1 mmHg: 16.0 kPa -> 120 mmHg."""
    return _convert(kpa, KPA, lambda v: v * MMHG_PER_KPA, MMHG)


def mmhg_to_kpa(mmhg: Decimal) -> Decimal:
    """mmHg -> kPa, half-up to 0.01 kPa: 120 mmHg -> 16.00 kPa."""
    return _convert(mmhg, MMHG, lambda v: v / MMHG_PER_KPA, KPA)


def mg_per_dl_to_mmol_per_l(mg_per_dl: Decimal) -> Decimal:
    """Glucose mg/dL -> mmol/L at 18.016, half-up to 0.01 mmol/L: 126 -> 6.99."""
    return _convert(mg_per_dl, MG_PER_DL, lambda v: v / MG_PER_DL_PER_MMOL_PER_L, MMOL_PER_L)


def mmol_per_l_to_mg_per_dl(mmol_per_l: Decimal) -> Decimal:
    """Glucose mmol/L -> mg/dL at 18.016, half-up to 1 mg/dL: 7.0 -> 126."""
    return _convert(mmol_per_l, MMOL_PER_L, lambda v: v * MG_PER_DL_PER_MMOL_PER_L, MG_PER_DL)


def celsius_to_fahrenheit(celsius: Decimal) -> Decimal:
    """°C -> °F, half-up to 0.1 °F: 37.0 -> 98.6."""
    return _convert(celsius, DEGC, lambda v: v * 9 / 5 + 32, FAHR)


def fahrenheit_to_celsius(fahrenheit: Decimal) -> Decimal:
    """°F -> °C, half-up to 0.1 °C: 98.6 -> 37.0."""
    return _convert(fahrenheit, FAHR, lambda v: (v - 32) * 5 / 9, DEGC)


@dataclass(frozen=True, slots=True)
class _Quantity:
    clinic_unit: str  # what Chinese clinics read
    conversions: Mapping[str, Callable[[Decimal], Decimal]]  # other unit -> clinic unit


_PRESSURE = _Quantity(MMHG, {KPA: kpa_to_mmhg})
_GLUCOSE = _Quantity(MMOL_PER_L, {MG_PER_DL: mg_per_dl_to_mmol_per_l})
_TEMPERATURE = _Quantity(DEGC, {FAHR: fahrenheit_to_celsius})
# Metric reference-id prefix -> quantity. Only blood and cuff pressures: airway and
# other pressures have units of their own (cmH2O) and are no business of the clinic rules.
_QUANTITIES: tuple[tuple[str, _Quantity], ...] = (
    ("MDC_PRESS_BLD", _PRESSURE),
    ("MDC_PRESS_CUFF", _PRESSURE),
    ("MDC_CONC_GLU_", _GLUCOSE),
    ("MDC_TEMP", _TEMPERATURE),
)


def clinic_unit(metric: str) -> str | None:
    """The unit Chinese clinics read `metric` in, None for a metric with no choice of
    unit here (SpO2 %, heart rate /min ...)."""
    for prefix, quantity in _QUANTITIES:
        if metric.startswith(prefix):
            return quantity.clinic_unit
    return None


def to_clinic_unit(value: Decimal, unit: str, metric: str) -> tuple[Decimal, str]:
    """A reading's value and MDC unit -> the same quantity in the clinic's unit.

    Blood pressure goes to mmHg, glucose to mmol/L, temperature to °C; a value already
    in that unit, or of a metric this module has no unit choice for, comes back
    unchanged. A unit this module does not know for a known quantity is a ValueError
    naming it (mmHg and kPa are the only blood-pressure units a device may send).
    """
    for prefix, quantity in _QUANTITIES:
        if not metric.startswith(prefix):
            continue
        target = quantity.clinic_unit
        if unit == target:
            return value, unit
        convert = quantity.conversions.get(unit)
        if convert is None:
            known = ", ".join((target, *quantity.conversions))
            raise ValueError(f"{metric} in unit {unit}: not convertible (known: {known})")
        return convert(value), target
    return value, unit


def _finite(value: Decimal, unit: str) -> Decimal:
    if not value.is_finite():
        raise ValueError(f"{value} {unit}: not a measured value")
    return value


def _rounded(value: Decimal, quantum: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        try:
            return value.quantize(quantum, rounding=ROUND_HALF_UP)
        except InvalidOperation:
            raise ValueError(f"{value}: too large to be a measured value") from None


def _convert(
    value: Decimal, source: str, formula: Callable[[Decimal], Decimal], target: str
) -> Decimal:
    _finite(value, source)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return _rounded(formula(value), QUANTUM[target])
