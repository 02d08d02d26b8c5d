"""edge_agent.units: the product's unit conversions (docs/protocols/clinical-rules.md).

Known values are worked by hand from the factors (1 kPa = 7.50062 mmHg, 1 mmol/L = 18.016
mg/dL, °F = °C × 9/5 + 32) and the quanta units.py states.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.ble import glucose
from edge_agent import units

D = Decimal
Convert = Callable[[Decimal], Decimal]


@pytest.mark.parametrize(
    ("convert", "value", "expected"),
    [
        # 120 / 7.50062 = 15.99868 -> 0.01 kPa
        (units.mmhg_to_kpa, "120", "16.00"),
        # 16.0 × 7.50062 = 120.00992 -> 1 mmHg
        (units.kpa_to_mmhg, "16.0", "120"),
        # 24.0 × 7.50062 = 180.01488: the urgent-referral systolic, as a kPa cuff sends it
        (units.kpa_to_mmhg, "24.0", "180"),
        (units.mmhg_to_kpa, "180", "24.00"),  # 23.99802
        # 14.6 × 7.50062 = 109.509: half-up to the diastolic urgent line
        (units.kpa_to_mmhg, "14.6", "110"),
        (units.kpa_to_mmhg, "0", "0"),
        # 126 / 18.016 = 6.99378 -> 0.01 mmol/L (the BLE glucose driver's step)
        (units.mg_per_dl_to_mmol_per_l, "126", "6.99"),
        # 7.0 × 18.016 = 126.112 -> 1 mg/dL
        (units.mmol_per_l_to_mg_per_dl, "7.0", "126"),
        (units.mg_per_dl_to_mmol_per_l, "301", "16.71"),  # 16.7073
        (units.mg_per_dl_to_mmol_per_l, "300", "16.65"),  # 16.6518
        (units.mg_per_dl_to_mmol_per_l, "70", "3.89"),  # 3.8854
        (units.mmol_per_l_to_mg_per_dl, "16.7", "301"),  # 300.8672
        (units.mmol_per_l_to_mg_per_dl, "3.9", "70"),  # 70.2624
        (units.celsius_to_fahrenheit, "37.0", "98.6"),
        (units.fahrenheit_to_celsius, "98.6", "37.0"),
        # The diabetes "temperature > 39 °C" edge, both ways.
        (units.celsius_to_fahrenheit, "39.0", "102.2"),
        (units.celsius_to_fahrenheit, "39.1", "102.4"),  # 102.38
        (units.fahrenheit_to_celsius, "102.2", "39.0"),
        (units.fahrenheit_to_celsius, "102.3", "39.1"),  # 39.0556
        (units.fahrenheit_to_celsius, "102.4", "39.1"),  # 39.1111
        # Half-up, not half-even: 0.25 °C = 32.45 °F exactly; 32.09 °F = 0.05 °C exactly.
        (units.celsius_to_fahrenheit, "0.25", "32.5"),
        (units.fahrenheit_to_celsius, "32.09", "0.1"),
        # A half goes away from zero: -0.05 °C.
        (units.fahrenheit_to_celsius, "31.91", "-0.1"),
        (units.celsius_to_fahrenheit, "-40", "-40.0"),
    ],
)
def test_known_values(convert: Convert, value: str, expected: str) -> None:
    # str() compares the quantum too: 16.00 kPa, not 16 or 15.99868.
    assert str(convert(D(value))) == expected


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        ("179.5", units.MMHG, "180"),
        ("179.4", units.MMHG, "179"),
        ("120.0", units.MMHG, "120"),
        ("3.895", units.MMOL_PER_L, "3.90"),
        ("39.05", units.DEGC, "39.1"),
        ("100.5", units.BEAT_PER_MIN, "101"),
        # Already on the grid: returned as the device showed it, not padded.
        ("3.5", units.MMOL_PER_L, "3.5"),
        ("185", units.MMHG, "185"),
        ("37", units.DEGC, "37"),
    ],
)
def test_round_to_quantum(value: str, unit: str, expected: str) -> None:
    assert str(units.round_to_quantum(D(value), unit)) == expected


def test_round_to_quantum_names_an_unknown_unit() -> None:
    with pytest.raises(ValueError, match="MDC_DIM_PERCENT"):
        units.round_to_quantum(D(97), "MDC_DIM_PERCENT")


@pytest.mark.parametrize(
    "convert",
    [
        units.kpa_to_mmhg,
        units.mmhg_to_kpa,
        units.mg_per_dl_to_mmol_per_l,
        units.mmol_per_l_to_mg_per_dl,
        units.celsius_to_fahrenheit,
        units.fahrenheit_to_celsius,
    ],
)
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "sNaN", "1E+40"])
def test_non_values_are_value_errors(convert: Convert, value: str) -> None:
    with pytest.raises(ValueError):
        convert(D(value))


# --- to_clinic_unit --------------------------------------------------------------------------

KPA, MMHG = units.KPA, units.MMHG
MG_DL, MMOL = units.MG_PER_DL, units.MMOL_PER_L
FAHR, DEGC = units.FAHR, units.DEGC


@pytest.mark.parametrize(
    ("value", "unit", "metric", "expected"),
    [
        ("16.0", KPA, "MDC_PRESS_BLD_NONINV_SYS", ("120", MMHG)),
        ("10.7", KPA, "MDC_PRESS_BLD_NONINV_DIA", ("80", MMHG)),  # 80.256
        ("24.0", KPA, "MDC_PRESS_CUFF_SYS", ("180", MMHG)),
        ("126", MG_DL, "MDC_CONC_GLU_CAPILLARY_PLASMA", ("6.99", MMOL)),
        ("126", MG_DL, "MDC_CONC_GLU_VENOUS_WHOLEBLOOD", ("6.99", MMOL)),
        ("98.6", FAHR, "MDC_TEMP_BODY", ("37.0", DEGC)),
        ("102.3", FAHR, "MDC_TEMP_ORAL", ("39.1", DEGC)),
        # Identity: already in the clinic's unit, not even rounded.
        ("120.5", MMHG, "MDC_PRESS_BLD_NONINV_SYS", ("120.5", MMHG)),
        ("5.55", MMOL, "MDC_CONC_GLU_GEN", ("5.55", MMOL)),
        ("36.65", DEGC, "MDC_TEMP_AXILLA", ("36.65", DEGC)),
        # No unit choice for these: untouched.
        ("97", "MDC_DIM_PERCENT", "MDC_PULS_OXIM_SAT_O2", ("97", "MDC_DIM_PERCENT")),
        ("72", "MDC_DIM_BEAT_PER_MIN", "MDC_PULS_RATE_NON_INV", ("72", "MDC_DIM_BEAT_PER_MIN")),
        ("6.5", "MDC_DIM_PERCENT", "MDC_CONC_HBA1C", ("6.5", "MDC_DIM_PERCENT")),
    ],
)
def test_to_clinic_unit(value: str, unit: str, metric: str, expected: tuple[str, str]) -> None:
    converted, clinic = units.to_clinic_unit(D(value), unit, metric)
    assert (str(converted), clinic) == expected


def test_to_clinic_unit_is_the_identity_in_the_clinic_unit() -> None:
    value = D("131.7")
    converted, unit = units.to_clinic_unit(value, MMHG, "MDC_PRESS_CUFF_SYS")
    assert converted is value
    assert unit == MMHG


@pytest.mark.parametrize(
    ("unit", "metric"),
    [
        ("MDC_DIM_CM_H2O", "MDC_PRESS_BLD_NONINV_SYS"),
        ("MDC_DIM_PERCENT", "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"),
        ("MDC_DIM_KELVIN", "MDC_TEMP_BODY"),
        (MMHG, "MDC_CONC_GLU_GEN"),
    ],
)
def test_to_clinic_unit_names_an_unknown_unit(unit: str, metric: str) -> None:
    with pytest.raises(ValueError, match=unit) as caught:
        units.to_clinic_unit(D(1), unit, metric)
    assert metric in str(caught.value)


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("MDC_PRESS_BLD_NONINV_SYS", MMHG),
        ("MDC_PRESS_CUFF_DIA", MMHG),
        ("MDC_CONC_GLU_CONTROL", MMOL),
        ("MDC_TEMP_TYMP", DEGC),
        ("MDC_PULS_OXIM_SAT_O2", None),
        ("MDC_CONC_HBA1C", None),
    ],
)
def test_clinic_unit(metric: str, expected: str | None) -> None:
    assert units.clinic_unit(metric) == expected


# --- round trips -----------------------------------------------------------------------------


def _grid(quantum: str, low: int, high: int) -> st.SearchStrategy[Decimal]:
    """Values as a device reports them: whole steps of `quantum`."""
    return st.integers(low, high).map(lambda n: n * D(quantum))


@given(_grid("1", 0, 400))
def test_whole_mmhg_round_trips_exactly(mmhg: Decimal) -> None:
    assert units.kpa_to_mmhg(units.mmhg_to_kpa(mmhg)) == mmhg


@given(_grid("0.01", 0, 6000))
def test_kpa_round_trip_within_one_mmhg(kpa: Decimal) -> None:
    back = units.mmhg_to_kpa(units.kpa_to_mmhg(kpa))
    assert abs(back - kpa) * units.MMHG_PER_KPA <= 1


@given(_grid("1", 0, 1100))
def test_whole_mg_per_dl_round_trips_exactly(mg_per_dl: Decimal) -> None:
    assert units.mmol_per_l_to_mg_per_dl(units.mg_per_dl_to_mmol_per_l(mg_per_dl)) == mg_per_dl


@given(_grid("0.01", 0, 6000))
def test_mmol_per_l_round_trip_within_one_mg_per_dl(mmol: Decimal) -> None:
    back = units.mg_per_dl_to_mmol_per_l(units.mmol_per_l_to_mg_per_dl(mmol))
    assert abs(back - mmol) * units.MG_PER_DL_PER_MMOL_PER_L <= 1


@given(_grid("0.1", -500, 600))
def test_tenth_celsius_round_trips_exactly(celsius: Decimal) -> None:
    assert units.fahrenheit_to_celsius(units.celsius_to_fahrenheit(celsius)) == celsius


@given(_grid("0.1", -500, 1400))
def test_fahrenheit_round_trip_within_one_tenth(fahrenheit: Decimal) -> None:
    back = units.celsius_to_fahrenheit(units.fahrenheit_to_celsius(fahrenheit))
    assert abs(back - fahrenheit) <= D("0.1")


@given(_grid("1", 0, 1100))
def test_glucose_conversion_matches_the_ble_driver(mg_per_dl: Decimal) -> None:
    # The same 18.016 and the same half-up 0.01 mmol/L step as device_drivers/ble/glucose.py
    # applies to a meter's kg/L concentration (1 mg/dL = 1e-5 kg/L, exact in an SFLOAT).
    meter = glucose.encode_measurement(1, None, concentration=mg_per_dl.scaleb(-5))
    assert str(units.mg_per_dl_to_mmol_per_l(mg_per_dl)) == str(
        glucose.decode_measurement(meter).readings[0].value
    )
