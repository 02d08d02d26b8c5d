"""What a tile and the alarm list show, worked out without Textual (pure, testable).

- `news2_score`: a value's own NEWS2 parameter score (Royal College of Physicians,
  NEWS2, 2017: the scoring-system chart), computed by edge_agent.rules.news2 itself,
  so the colour of a tile is the chart's band and never a second table. SpO2 is banded
  on scale 1: the screen does not know whether a clinician prescribed scale 2 (the
  NEWS2 alert of the rules engine does). Metrics NEWS2 does not read have no band.
- `band_class`: the score as the tile's CSS class (0: normal, 1-2: watch, 3: act).
- `tile_order`: tiles in the order a monitor's screen and a Chinese nursing chart list
  them (heart rate, SpO2, blood pressure, respiration, temperature, EtCO2), the rest
  after them by name.
- `active_first`: open alarms, most urgent first (high, medium, low, info), newest
  first within a priority; `cleared_recent`: the last few cleared ones, newest first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation

from edge_agent import units
from edge_agent.rules import news2
from edge_agent.store import AlertRow

# NEWS2 parameter per metric NEWS2 reads (edge_agent.rules.news2.SOURCE_METRICS).
NEWS2_PARAMETER: Mapping[str, str] = {
    "MDC_RESP_RATE": news2.RESPIRATION_RATE,
    "MDC_AWAY_RESP_RATE": news2.RESPIRATION_RATE,
    "MDC_TTHOR_RESP_RATE": news2.RESPIRATION_RATE,
    "MDC_PULS_OXIM_SAT_O2": news2.SPO2,
    "MDC_PRESS_BLD_NONINV_SYS": news2.SYSTOLIC_BP,
    "MDC_PRESS_CUFF_SYS": news2.SYSTOLIC_BP,
    "MDC_PRESS_BLD_ART_ABP_SYS": news2.SYSTOLIC_BP,
    "MDC_ECG_HEART_RATE": news2.PULSE,
    "MDC_PULS_OXIM_PULS_RATE": news2.PULSE,
    "MDC_PULS_RATE_NON_INV": news2.PULSE,
    "MDC_TEMP_BODY": news2.TEMPERATURE,
    "MDC_TEMP_ORAL": news2.TEMPERATURE,
    "MDC_TEMP_TYMP": news2.TEMPERATURE,
    "MDC_TEMP_AXILLA": news2.TEMPERATURE,
    "MDC_TEMP_RECT": news2.TEMPERATURE,
    "MDC_TEMP": news2.TEMPERATURE,
}

# The unit each parameter is charted in, and how other units a device sends get there.
_TO_CHART_UNIT: Mapping[str, Mapping[str, Callable[[Decimal], Decimal]]] = {
    news2.RESPIRATION_RATE: {"MDC_DIM_RESP_PER_MIN": lambda v: v},
    news2.SPO2: {"MDC_DIM_PERCENT": lambda v: v},
    news2.SYSTOLIC_BP: {"MDC_DIM_MMHG": lambda v: v, "MDC_DIM_KILO_PASCAL": units.kpa_to_mmhg},
    news2.PULSE: {"MDC_DIM_BEAT_PER_MIN": lambda v: v},
    news2.TEMPERATURE: {"MDC_DIM_DEGC": lambda v: v, "MDC_DIM_FAHR": units.fahrenheit_to_celsius},
}

_INPUT_FIELD = {
    news2.RESPIRATION_RATE: "rr",
    news2.SPO2: "spo2",
    news2.SYSTOLIC_BP: "sbp",
    news2.PULSE: "hr",
    news2.TEMPERATURE: "temp",
}


def news2_score(metric: str, unit: str, value: str | None) -> int | None:
    """The NEWS2 parameter score of one value, or None (no band, no number, odd unit)."""
    parameter = NEWS2_PARAMETER.get(metric)
    if parameter is None or value is None:
        return None
    convert = _TO_CHART_UNIT[parameter].get(unit)
    if convert is None:
        return None
    try:
        number = convert(Decimal(value))
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite():
        return None
    inputs = news2.News2Inputs(**{_INPUT_FIELD[parameter]: number})  # type: ignore[arg-type]
    return news2.score(inputs).parts[parameter].score


def band_class(score: int | None) -> str | None:
    if score is None:
        return None
    if score == 0:
        return "band-0"
    return "band-3" if score >= 3 else "band-1"


_FIRST_TILES = (
    "MDC_ECG_HEART_RATE",
    "MDC_PULS_OXIM_PULS_RATE",
    "MDC_PULS_RATE",
    "MDC_PLETH_PULS_RATE",
    "MDC_PULS_OXIM_SAT_O2",
    "MDC_PRESS_BLD_NONINV_SYS",
    "MDC_PRESS_BLD_NONINV_DIA",
    "MDC_PRESS_BLD_NONINV_MEAN",
    "MDC_PRESS_CUFF_SYS",
    "MDC_PRESS_CUFF_DIA",
    "MDC_PRESS_CUFF_MEAN",
    "MDC_PULS_RATE_NON_INV",
    "MDC_RESP_RATE",
    "MDC_TTHOR_RESP_RATE",
    "MDC_AWAY_RESP_RATE",
    "MDC_CO2_RESP_RATE",
    "MDC_TEMP_BODY",
    "MDC_AWAY_CO2_ET",
)


def tile_order(metric: str, device_id: str) -> tuple[int, str, str]:
    rank = _FIRST_TILES.index(metric) if metric in _FIRST_TILES else len(_FIRST_TILES)
    return (rank, metric, device_id)


BAND_CLASSES = ("band-0", "band-1", "band-3")

PRIORITY_ORDER = ("high", "medium", "low", "info")


def _rank(priority: str) -> int:
    return PRIORITY_ORDER.index(priority) if priority in PRIORITY_ORDER else len(PRIORITY_ORDER)


def active_first(alerts: Iterable[AlertRow]) -> list[AlertRow]:
    """Open alarms (active or acknowledged), high first, newest first within a priority."""
    open_ones = [a for a in alerts if a.state != "cleared"]
    return sorted(open_ones, key=lambda a: (_rank(a.priority), -a.raised_wall_ns, -a.id))


def cleared_recent(alerts: Iterable[AlertRow], keep: int) -> list[AlertRow]:
    """The newest `keep` cleared alarms, newest first."""
    cleared = [a for a in alerts if a.state == "cleared"]
    cleared.sort(key=lambda a: (-(a.cleared_wall_ns or a.raised_wall_ns), -a.id))
    return cleared[:keep]
