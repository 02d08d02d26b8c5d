"""NEWS2 (edge_agent.rules.news2) against the RCP's NEWS2 report (2017).

Every band edge is tested from both sides; the source of each expected score is the row
of the RCP NEWS2 scoring-system chart named in the case's comment (the chart as
docs/protocols/clinical-rules.md sets it out).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent import mdc
from edge_agent.model import Reading
from edge_agent.rules import news2
from edge_agent.rules.news2 import News2Inputs

D = Decimal
ALL = news2.PARAMETERS


def _rank(risk: str) -> int:
    return news2.RISK_LEVELS.index(risk)


# --- band edges, one parameter at a time ----------------------------------------------------

# (inputs, part name, expected points). Row names are the RCP NEWS2 chart's rows.
BAND_EDGES: list[tuple[News2Inputs, str, int]] = [
    # respiration rate: <=8 3 | 9-11 1 | 12-20 0 | 21-24 2 | >=25 3
    *[
        (News2Inputs(rr=D(v)), "respiration_rate", s)
        for v, s in [(0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3)]
    ],
    # SpO2 scale 1: <=91 3 | 92-93 2 | 94-95 1 | >=96 0 (air or oxygen alike)
    *[
        (News2Inputs(spo2=D(v), oxygen=o2), "spo2", s)
        for v, s in [(91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]
        for o2 in (False, True, None)
    ],
    # SpO2 scale 2 on air: <=83 3 | 84-85 2 | 86-87 1 | 88-92 0 | >=93 on air 0
    *[
        (News2Inputs(spo2=D(v), scale=2, oxygen=False), "spo2", s)
        for v, s in [
            (83, 3),
            (84, 2),
            (85, 2),
            (86, 1),
            (87, 1),
            (88, 0),
            (92, 0),
            (93, 0),
            (96, 0),
            (97, 0),
            (100, 0),
        ]
    ],
    # SpO2 scale 2 on oxygen: as on air up to 92, then 93-94 1 | 95-96 2 | >=97 3
    *[
        (News2Inputs(spo2=D(v), scale=2, oxygen=True), "spo2", s)
        for v, s in [
            (83, 3),
            (84, 2),
            (85, 2),
            (86, 1),
            (87, 1),
            (88, 0),
            (92, 0),
            (93, 1),
            (94, 1),
            (95, 2),
            (96, 2),
            (97, 3),
            (100, 3),
        ]
    ],
    # air or oxygen: oxygen 2 | air 0
    (News2Inputs(oxygen=True), "air_or_oxygen", 2),
    (News2Inputs(oxygen=False), "air_or_oxygen", 0),
    # systolic BP: <=90 3 | 91-100 2 | 101-110 1 | 111-219 0 | >=220 3
    *[
        (News2Inputs(sbp=D(v)), "systolic_bp", s)
        for v, s in [(90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3)]
    ],
    # pulse: <=40 3 | 41-50 1 | 51-90 0 | 91-110 1 | 111-130 2 | >=131 3
    *[
        (News2Inputs(hr=D(v)), "pulse", s)
        for v, s in [
            (40, 3),
            (41, 1),
            (50, 1),
            (51, 0),
            (90, 0),
            (91, 1),
            (110, 1),
            (111, 2),
            (130, 2),
            (131, 3),
        ]
    ],
    # consciousness: alert 0 | new confusion, voice, pain, unresponsive 3
    *[(News2Inputs(acvpu=a), "consciousness", s) for a, s in [("A", 0), *[(x, 3) for x in "CVPU"]]],
    # temperature: <=35.0 3 | 35.1-36.0 1 | 36.1-38.0 0 | 38.1-39.0 1 | >=39.1 2
    *[
        (News2Inputs(temp=D(v)), "temperature", s)
        for v, s in [
            ("35.0", 3),
            ("35.1", 1),
            ("36.0", 1),
            ("36.1", 0),
            ("38.0", 0),
            ("38.1", 1),
            ("39.0", 1),
            ("39.1", 2),
        ]
    ],
]


@pytest.mark.parametrize(("inputs", "part", "points"), BAND_EDGES)
def test_band_edges(inputs: News2Inputs, part: str, points: int) -> None:
    result = news2.score(inputs)
    assert result.parts[part].score == points
    oxygen_points = 2 if inputs.oxygen and part != "air_or_oxygen" else 0
    assert result.score == points + oxygen_points  # nothing else is scored in these cases
    assert not result.complete and part not in result.missing


# --- rounding as measured (temperature to 0.1 °C, others whole) ---------------------------


@pytest.mark.parametrize(
    ("inputs", "part", "value", "points"),
    [
        (News2Inputs(temp=D("35.05")), "temperature", 35.1, 1),  # docs/protocols/clinical-rules.md
        (News2Inputs(temp=D("35.04")), "temperature", 35.0, 3),
        (News2Inputs(temp=D("36.05")), "temperature", 36.1, 0),
        (News2Inputs(temp=D("38.05")), "temperature", 38.1, 1),
        (News2Inputs(temp=D("39.05")), "temperature", 39.1, 2),
        (News2Inputs(temp=D("38.0499")), "temperature", 38.0, 0),
        (News2Inputs(rr=D("20.5")), "respiration_rate", 21, 2),
        (News2Inputs(rr=D("20.49")), "respiration_rate", 20, 0),
        (News2Inputs(rr=D("8.5")), "respiration_rate", 9, 1),
        (News2Inputs(spo2=D("91.5")), "spo2", 92, 2),
        (News2Inputs(spo2=D("92.5"), scale=2, oxygen=True), "spo2", 93, 1),
        (News2Inputs(sbp=D("90.5")), "systolic_bp", 91, 2),
        (News2Inputs(sbp=D("219.5")), "systolic_bp", 220, 3),
        (News2Inputs(hr=D("130.5")), "pulse", 131, 3),
        (News2Inputs(hr=D("40.4")), "pulse", 40, 3),
    ],
)
def test_rounding_before_banding(inputs: News2Inputs, part: str, value: Any, points: int) -> None:
    shown = news2.score(inputs).as_json()["parts"][part]
    assert shown == {"value": value, "score": points}
    assert type(shown["value"]) is type(value)  # whole numbers as ints, temperature a float


# --- aggregate thresholds (RCP NEWS2 thresholds and triggers) ----------------------------

NORMAL = News2Inputs(
    rr=D(16), spo2=D(98), scale=1, oxygen=False, sbp=D(120), hr=D(70), acvpu="A", temp=D("37.0")
)


@pytest.mark.parametrize(
    ("changes", "total", "risk"),
    [
        ({}, 0, "low"),
        ({"rr": D(22), "hr": D(115)}, 4, "low"),  # 2 + 2, no single 3
        ({"acvpu": "V"}, 3, "low-medium"),  # a single 3 at total 3
        ({"acvpu": "C", "temp": D("38.5")}, 4, "low-medium"),  # 3 + 1
        ({"rr": D(22), "hr": D(115), "temp": D("38.5")}, 5, "medium"),  # 2 + 2 + 1
        ({"acvpu": "P", "rr": D(22)}, 5, "medium"),  # a single 3 at total 5: medium wins
        ({"rr": D(22), "hr": D(115), "temp": D("38.5"), "sbp": D(105)}, 6, "medium"),
        ({"rr": D(22), "hr": D(115), "oxygen": True, "temp": D("38.5")}, 7, "high"),
        (
            {
                "rr": D(30),
                "spo2": D(80),
                "oxygen": True,
                "sbp": D(80),
                "hr": D(150),
                "acvpu": "U",
                "temp": D(34),
            },
            20,  # the chart's maximum: 3 + 3 + 2 + 3 + 3 + 3 + 3
            "high",
        ),
    ],
)
def test_aggregate(changes: dict[str, Any], total: int, risk: str) -> None:
    result = news2.score(dataclasses.replace(NORMAL, **changes))
    assert (result.score, result.risk, result.complete, result.missing) == (total, risk, True, ())


@pytest.mark.parametrize(
    ("total", "highest", "risk"),
    [
        (0, 0, "low"),
        (4, 2, "low"),
        (3, 3, "low-medium"),
        (4, 3, "low-medium"),
        (5, 2, "medium"),
        (6, 3, "medium"),
        (7, 2, "high"),
        (7, 3, "high"),
    ],
)
def test_risk_level(total: int, highest: int, risk: str) -> None:
    assert news2.risk_level(total, highest) == risk


# --- missing parameters: never a lower level by omission, always marked incomplete -----------


def test_only_spo2_present() -> None:
    result = news2.score(News2Inputs(spo2=D(85)))
    assert result.as_json() == {
        "score": 3,
        "risk": "low-medium",
        "parts": {
            "respiration_rate": {"value": None, "score": None, "missing": True},
            "spo2": {"value": 85, "score": 3},
            "air_or_oxygen": {"value": None, "score": None, "missing": True},
            "systolic_bp": {"value": None, "score": None, "missing": True},
            "pulse": {"value": None, "score": None, "missing": True},
            "consciousness": {"value": None, "score": None, "missing": True},
            "temperature": {"value": None, "score": None, "missing": True},
        },
        "scale": 1,
        "complete": False,
        "missing": [
            "respiration_rate",
            "air_or_oxygen",
            "systolic_bp",
            "pulse",
            "consciousness",
            "temperature",
        ],
    }


def test_nothing_present_is_incomplete() -> None:
    result = news2.score(News2Inputs())
    assert (result.score, result.risk, result.complete) == (0, "low", False)
    assert result.missing == ALL
    assert all(p.missing for p in result.parts.values())


def test_one_missing_parameter_is_incomplete_and_named() -> None:
    result = news2.score(dataclasses.replace(NORMAL, acvpu=None, rr=D(30)))
    assert (result.score, result.risk, result.complete) == (3, "low-medium", False)
    assert result.missing == ("consciousness",)
    assert result.as_json()["parts"]["consciousness"] == {
        "value": None,
        "score": None,
        "missing": True,
    }


@pytest.mark.parametrize(
    ("spo2", "oxygen", "points", "lower_bound"),
    [
        (D(97), None, 0, True),  # 0 on air, 3 on oxygen: the least it can be, and said so
        (D(93), None, 0, True),
        (D(92), None, 0, False),  # 88-92 scores 0 either way
        (D(85), None, 2, False),  # below 88 the same either way
        (D(97), True, 3, False),
        (D(97), False, 0, False),
    ],
)
def test_scale_2_with_air_or_oxygen_unknown(
    spo2: Decimal, oxygen: bool | None, points: int, lower_bound: bool
) -> None:
    result = news2.score(News2Inputs(spo2=spo2, scale=2, oxygen=oxygen))
    part = result.parts["spo2"]
    assert (part.score, part.lower_bound) == (points, lower_bound)
    assert ("lower_bound" in result.as_json()["parts"]["spo2"]) is lower_bound
    assert result.as_json()["scale"] == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"scale": 3}, "scale 3: must be 1 or 2"),
        ({"acvpu": "X"}, "consciousness 'X'"),
        ({"acvpu": "a"}, "consciousness 'a'"),
        ({"temp": D("NaN")}, "temp"),
        ({"hr": D("Infinity")}, "hr"),
    ],
)
def test_inputs_reject_what_the_chart_cannot_band(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(NORMAL, **changes)


# --- from device readings ----------------------------------------------------------------------

NOW = dt.datetime(2026, 11, 22, 10, 0, 0)
WINDOW = 300.0


def _r(
    metric: str,
    value: str | None,
    unit: str,
    age_s: float | None = 0,
    flags: tuple[str, ...] = (),
) -> Reading:
    when = None if age_s is None else NOW - dt.timedelta(seconds=age_s)
    return Reading(metric, None if value is None else D(value), unit, when, flags)


def _latest(*readings: Reading) -> dict[str, Reading]:
    return {r.metric: r for r in readings}


def _inputs(*readings: Reading, **kw: Any) -> News2Inputs:
    options: dict[str, Any] = {"scale": 1, "oxygen": None, "acvpu": None} | kw
    return news2.from_readings(_latest(*readings), now=NOW, window_s=WINDOW, **options)


MONITOR = (
    _r("MDC_RESP_RATE", "18", "MDC_DIM_RESP_PER_MIN"),
    _r("MDC_PULS_OXIM_SAT_O2", "97", "MDC_DIM_PERCENT"),
    _r("MDC_PRESS_BLD_NONINV_SYS", "128", "MDC_DIM_MMHG"),
    _r("MDC_ECG_HEART_RATE", "72", "MDC_DIM_BEAT_PER_MIN"),
    _r("MDC_TEMP_BODY", "36.8", "MDC_DIM_DEGC"),
)


def test_from_readings_full_set() -> None:
    inputs = _inputs(*MONITOR, scale=2, oxygen=True, acvpu="A")
    assert inputs == News2Inputs(
        rr=D(18), spo2=D(97), scale=2, oxygen=True, sbp=D(128), hr=D(72), acvpu="A", temp=D("36.8")
    )
    assert news2.score(inputs).complete


@pytest.mark.parametrize(
    ("reading", "field", "expected"),
    [
        # the window, both sides of now, inclusive at its edge
        (_r("MDC_PULS_OXIM_SAT_O2", "95", "MDC_DIM_PERCENT", 300), "spo2", D(95)),
        (_r("MDC_PULS_OXIM_SAT_O2", "95", "MDC_DIM_PERCENT", 300.5), "spo2", None),
        (_r("MDC_PULS_OXIM_SAT_O2", "95", "MDC_DIM_PERCENT", 3600), "spo2", None),
        (_r("MDC_PULS_OXIM_SAT_O2", "95", "MDC_DIM_PERCENT", -300), "spo2", D(95)),
        (_r("MDC_PULS_OXIM_SAT_O2", "95", "MDC_DIM_PERCENT", -301), "spo2", None),
        # no time at all: cannot show it is recent
        (_r("MDC_PULS_OXIM_SAT_O2", "95", "MDC_DIM_PERCENT", None), "spo2", None),
        # a special value (NaN, NRes, dashes) or a value its device disowned
        (_r("MDC_PULS_OXIM_SAT_O2", None, "MDC_DIM_PERCENT", flags=("unavailable",)), "spo2", None),
        (
            _r("MDC_PULS_OXIM_SAT_O2", "95", "MDC_DIM_PERCENT", flags=("invalid-measurement",)),
            "spo2",
            None,
        ),
        (
            _r("MDC_PULS_OXIM_SAT_O2", "95", "MDC_DIM_PERCENT", flags=("measurement-unavailable",)),
            "spo2",
            None,
        ),
        (_r("MDC_PULS_OXIM_SAT_O2", "NaN", "MDC_DIM_PERCENT"), "spo2", None),
        (
            _r("MDC_PULS_OXIM_SAT_O2", "95", "MDC_DIM_PERCENT", flags=("questionable",)),
            "spo2",
            D(95),
        ),
        # units: the chart's unit as is, kPa and °F converted once, anything else missing
        (_r("MDC_PRESS_BLD_NONINV_SYS", "16", "MDC_DIM_KILO_PASCAL"), "sbp", D("120")),
        (_r("MDC_PRESS_BLD_NONINV_SYS", "120", "MDC_DIM_DIMLESS"), "sbp", None),
        (_r("MDC_TEMP_BODY", "98.6", "MDC_DIM_FAHR"), "temp", D(37)),
        (_r("MDC_TEMP_BODY", "310.15", "MDC_DIM_KELVIN"), "temp", None),
        (_r("MDC_TEMP_BODY", "37", "MDC_DIM_MMHG"), "temp", None),
        (_r("MDC_ECG_HEART_RATE", "72", "MDC_DIM_PERCENT"), "hr", None),
        (_r("MDC_RESP_RATE", "18", "MDC_DIM_BEAT_PER_MIN"), "rr", None),
        (_r("MDC_PULS_OXIM_SAT_O2", "0.95", "MDC_DIM_DIMLESS"), "spo2", None),
        # every source metric of a parameter is used when it is the only one
        (_r("MDC_AWAY_RESP_RATE", "14", "MDC_DIM_RESP_PER_MIN"), "rr", D(14)),
        (_r("MDC_TTHOR_RESP_RATE", "15", "MDC_DIM_RESP_PER_MIN"), "rr", D(15)),
        (_r("MDC_PRESS_CUFF_SYS", "131", "MDC_DIM_MMHG"), "sbp", D(131)),
        (_r("MDC_PRESS_BLD_ART_ABP_SYS", "99", "MDC_DIM_MMHG"), "sbp", D(99)),
        (_r("MDC_PULS_OXIM_PULS_RATE", "81", "MDC_DIM_BEAT_PER_MIN"), "hr", D(81)),
        (_r("MDC_PULS_RATE_NON_INV", "82", "MDC_DIM_BEAT_PER_MIN"), "hr", D(82)),
        (_r("MDC_TEMP_ORAL", "37.1", "MDC_DIM_DEGC"), "temp", D("37.1")),
        (_r("MDC_TEMP_TYMP", "37.2", "MDC_DIM_DEGC"), "temp", D("37.2")),
        (_r("MDC_TEMP_AXILLA", "36.4", "MDC_DIM_DEGC"), "temp", D("36.4")),
        (_r("MDC_TEMP_RECT", "37.6", "MDC_DIM_DEGC"), "temp", D("37.6")),
        (_r("MDC_TEMP", "37.3", "MDC_DIM_DEGC"), "temp", D("37.3")),
        # not a NEWS2 source: diastolic, room temperature
        (_r("MDC_PRESS_BLD_NONINV_DIA", "80", "MDC_DIM_MMHG"), "sbp", None),
        (_r("MDC_TEMP_ROOM", "22.0", "MDC_DIM_DEGC"), "temp", None),
    ],
)
def test_from_readings_one_reading(reading: Reading, field: str, expected: Decimal | None) -> None:
    assert getattr(_inputs(reading), field) == expected


@pytest.mark.parametrize(
    ("readings", "field", "expected"),
    [
        # preference: ECG heart rate, then the oximeter's pulse, then the cuff's
        (
            (
                _r("MDC_PULS_RATE_NON_INV", "90", "MDC_DIM_BEAT_PER_MIN"),
                _r("MDC_PULS_OXIM_PULS_RATE", "88", "MDC_DIM_BEAT_PER_MIN"),
                _r("MDC_ECG_HEART_RATE", "86", "MDC_DIM_BEAT_PER_MIN"),
            ),
            "hr",
            D(86),
        ),
        (
            (
                _r("MDC_PULS_RATE_NON_INV", "90", "MDC_DIM_BEAT_PER_MIN"),
                _r("MDC_PULS_OXIM_PULS_RATE", "88", "MDC_DIM_BEAT_PER_MIN"),
            ),
            "hr",
            D(88),
        ),
        # a stale preferred metric gives way to a fresh one
        (
            (
                _r("MDC_ECG_HEART_RATE", "86", "MDC_DIM_BEAT_PER_MIN", 900),
                _r("MDC_PULS_OXIM_PULS_RATE", "88", "MDC_DIM_BEAT_PER_MIN"),
            ),
            "hr",
            D(88),
        ),
        # so does one in a unit we do not know
        (
            (
                _r("MDC_PRESS_BLD_NONINV_SYS", "120", "MDC_DIM_DIMLESS"),
                _r("MDC_PRESS_BLD_ART_ABP_SYS", "118", "MDC_DIM_MMHG"),
            ),
            "sbp",
            D(118),
        ),
        # the cuff before the arterial line
        (
            (
                _r("MDC_PRESS_BLD_ART_ABP_SYS", "118", "MDC_DIM_MMHG"),
                _r("MDC_PRESS_BLD_NONINV_SYS", "124", "MDC_DIM_MMHG"),
            ),
            "sbp",
            D(124),
        ),
        (
            (
                _r("MDC_PRESS_BLD_ART_ABP_SYS", "118", "MDC_DIM_MMHG"),
                _r("MDC_PRESS_CUFF_SYS", "126", "MDC_DIM_MMHG"),
            ),
            "sbp",
            D(126),
        ),
        (
            (
                _r("MDC_TTHOR_RESP_RATE", "22", "MDC_DIM_RESP_PER_MIN"),
                _r("MDC_RESP_RATE", "20", "MDC_DIM_RESP_PER_MIN"),
            ),
            "rr",
            D(20),
        ),
        (
            (
                _r("MDC_TEMP", "36.0", "MDC_DIM_DEGC"),
                _r("MDC_TEMP_BODY", "37.0", "MDC_DIM_DEGC"),
            ),
            "temp",
            D("37.0"),
        ),
    ],
)
def test_from_readings_metric_choice(
    readings: tuple[Reading, ...], field: str, expected: Decimal
) -> None:
    assert getattr(_inputs(*readings), field) == expected


def test_from_readings_received_at_when_no_device_time() -> None:
    spo2 = _r("MDC_PULS_OXIM_SAT_O2", "95", "MDC_DIM_PERCENT", None)
    received = {"MDC_PULS_OXIM_SAT_O2": NOW - dt.timedelta(seconds=10)}
    inputs = news2.from_readings(
        _latest(spo2),
        now=NOW,
        window_s=WINDOW,
        scale=1,
        oxygen=None,
        acvpu=None,
        received_at=received,
    )
    assert inputs.spo2 == D(95)
    received_long_ago = {"MDC_PULS_OXIM_SAT_O2": NOW - dt.timedelta(hours=1)}
    inputs = news2.from_readings(
        _latest(spo2),
        now=NOW,
        window_s=WINDOW,
        scale=1,
        oxygen=None,
        acvpu=None,
        received_at=received_long_ago,
    )
    assert inputs.spo2 is None


def test_from_readings_device_time_comes_first() -> None:
    stale = _r("MDC_PULS_OXIM_SAT_O2", "95", "MDC_DIM_PERCENT", 3600)
    inputs = news2.from_readings(
        _latest(stale),
        now=NOW,
        window_s=WINDOW,
        scale=1,
        oxygen=None,
        acvpu=None,
        received_at={"MDC_PULS_OXIM_SAT_O2": NOW},
    )
    assert inputs.spo2 is None


def test_from_readings_fahrenheit_then_rounding() -> None:
    # 95.09 °F is exactly 35.05 °C, which rounds to 35.1 as measured: 1 point, not 3.
    inputs = _inputs(_r("MDC_TEMP_ORAL", "95.09", "MDC_DIM_FAHR"))
    assert news2.score(inputs).parts["temperature"].score == 1


def test_from_readings_mixed_naive_and_aware_times() -> None:
    aware_now = NOW.replace(tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="both must be naive or both timezone-aware"):
        news2.from_readings(
            _latest(*MONITOR), now=aware_now, window_s=WINDOW, scale=1, oxygen=None, acvpu=None
        )


def test_from_readings_nothing() -> None:
    inputs = _inputs(scale=2, oxygen=False, acvpu="V")
    assert inputs == News2Inputs(scale=2, oxygen=False, acvpu="V")
    result = news2.score(inputs)
    assert result.missing == ("respiration_rate", "spo2", "systolic_bp", "pulse", "temperature")
    assert (result.score, result.risk) == (3, "low-medium")


def test_source_metrics_and_units_are_in_the_mdc_table() -> None:
    for source in news2._SOURCES.values():
        for refid in (*source.metrics, *source.units):
            assert refid in mdc.BY_REFID, refid


# --- the `edge-agent news2` command -------------------------------------------------------


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edge-agent news2")
    news2.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_round_trip_complete() -> None:
    args = _parse(
        "--rr", "22", "--spo2", "94", "--scale", "2", "--o2", "--sbp", "105", "--hr", "115",
        "--acvpu", "A", "--temp", "38.5",
    )  # fmt: skip
    result = news2.run(args)
    assert result == {
        "score": 9,
        "risk": "high",
        "parts": {
            "respiration_rate": {"value": 22, "score": 2},
            "spo2": {"value": 94, "score": 1},
            "air_or_oxygen": {"value": "oxygen", "score": 2},
            "systolic_bp": {"value": 105, "score": 1},
            "pulse": {"value": 115, "score": 2},
            "consciousness": {"value": "A", "score": 0},
            "temperature": {"value": 38.5, "score": 1},
        },
        "scale": 2,
        "complete": True,
        "missing": [],
    }
    # numbers stay numbers through json.dumps
    assert '"score": 9' in json.dumps(result, ensure_ascii=False)
    assert '"value": 38.5' in json.dumps(result, ensure_ascii=False)


def test_cli_defaults_and_missing() -> None:
    args = _parse("--spo2", "85", "--acvpu", "v")
    assert (args.scale, args.oxygen, args.acvpu) == (1, None, "V")
    result = news2.run(args)
    assert (result["score"], result["risk"], result["complete"]) == (6, "medium", False)
    assert result["missing"] == [
        "respiration_rate",
        "air_or_oxygen",
        "systolic_bp",
        "pulse",
        "temperature",
    ]


def test_cli_air() -> None:
    assert news2.run(_parse("--air"))["parts"]["air_or_oxygen"] == {"value": "air", "score": 0}


@pytest.mark.parametrize(
    "argv",
    [
        ("--o2", "--air"),  # mutually exclusive
        ("--scale", "3"),
        ("--acvpu", "X"),
    ],
)
def test_cli_rejected_by_the_parser(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        _parse(*argv)
    assert excinfo.value.code == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--rr", "-5"), "--rr -5: must not be negative"),
        (("--rr=-0.5",), "--rr -0.5: must not be negative"),
        (("--hr", "abc"), "--hr abc: not a number"),
        (("--sbp", "nan"), "--sbp nan: not a number"),
        (("--rr", "Infinity"), "--rr Infinity: not a number"),
        (("--spo2", "101"), "--spo2 101: must be at most 100 %"),
        (("--spo2", "-1"), "--spo2 -1: must not be negative"),
        (("--temp", "45.1"), "--temp 45.1: must be between 25 and 45 °C"),
        (("--temp", "24.9"), "--temp 24.9: must be between 25 and 45 °C"),
        (("--temp", "98.6"), "--temp 98.6: must be between 25 and 45 °C"),  # °F by mistake
        (("--temp", ""), "--temp : not a number"),
    ],
)
def test_cli_bad_values(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        news2.run(_parse(*argv))
    assert str(excinfo.value) == message
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize(("argv", "part"), [(("--temp", "25"), "temperature"), (("--spo2", "100"), "spo2"), (("--hr", "0"), "pulse")])  # fmt: skip
def test_cli_range_edges_accepted(argv: tuple[str, ...], part: str) -> None:
    assert news2.run(_parse(*argv))["parts"][part]["score"] is not None


def test_run_accepts_a_hand_built_namespace() -> None:
    result = news2.run(argparse.Namespace(rr=D("20.5"), temp="35.05"))
    assert result["parts"]["respiration_rate"] == {"value": 21, "score": 2}
    assert result["parts"]["temperature"] == {"value": 35.1, "score": 1}


# --- properties ----------------------------------------------------------------------------


def _measured(low: int, high: int, places: int = 1) -> st.SearchStrategy[Decimal]:
    return st.decimals(
        min_value=low, max_value=high, places=places, allow_nan=False, allow_infinity=False
    )


complete_inputs = st.builds(
    News2Inputs,
    rr=_measured(0, 60),
    spo2=_measured(50, 100),
    scale=st.sampled_from([1, 2]),
    oxygen=st.booleans(),
    sbp=_measured(40, 300),
    hr=_measured(0, 250),
    acvpu=st.sampled_from(news2.ACVPU),
    temp=_measured(30, 43, places=2),
)

_OPTIONAL = ("rr", "spo2", "oxygen", "sbp", "hr", "acvpu", "temp")


def _drop(inputs: News2Inputs, dropped: set[str]) -> News2Inputs:
    unknown: dict[str, Any] = dict.fromkeys(dropped)
    return dataclasses.replace(inputs, **unknown)


@given(complete_inputs, st.sets(st.sampled_from(_OPTIONAL)))
def test_total_is_the_sum_of_the_parts(inputs: News2Inputs, dropped: set[str]) -> None:
    result = news2.score(_drop(inputs, dropped))
    shown = result.as_json()
    assert result.score == sum(p["score"] or 0 for p in shown["parts"].values())
    assert all(p["score"] is None or 0 <= p["score"] <= 3 for p in shown["parts"].values())
    assert list(shown["parts"]) == list(ALL)
    assert result.complete is (not dropped)
    assert len(result.missing) == len(dropped)


@given(complete_inputs, complete_inputs)
def test_risk_is_monotone_in_the_total(a: News2Inputs, b: News2Inputs) -> None:
    ra, rb = news2.score(a), news2.score(b)
    assert ra.complete and rb.complete
    for r in (ra, rb):
        expected = "high" if r.score >= 7 else "medium" if r.score >= 5 else None
        if expected is not None:
            assert r.risk == expected
        else:  # below 5 only a single 3 lifts low to low-medium
            assert r.risk in ("low", "low-medium")
    if ra.score < rb.score and rb.score >= 5:
        assert _rank(ra.risk) <= _rank(rb.risk)
    has3_a = any(p.score == 3 for p in ra.parts.values())
    has3_b = any(p.score == 3 for p in rb.parts.values())
    if ra.score <= rb.score and (has3_b or not has3_a):
        assert _rank(ra.risk) <= _rank(rb.risk)


@given(complete_inputs, st.sets(st.sampled_from(_OPTIONAL), min_size=1))
def test_missing_parameters_never_raise_the_claim(inputs: News2Inputs, dropped: set[str]) -> None:
    full = news2.score(inputs)
    partial = news2.score(_drop(inputs, dropped))
    assert not partial.complete
    assert partial.score <= full.score
    assert _rank(partial.risk) <= _rank(full.risk)
