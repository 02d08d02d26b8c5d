"""edge_agent.rules.chronic: hypertension and type 2 diabetes follow-up.

Every threshold row cites the national basic public health service specification, 3rd
edition, 2017 (国家基本公共卫生服务规范 第三版: 高血压 / 2型糖尿病患者健康管理服务规范, as
docs/protocols/clinical-rules.md sets them out): the edges are tested on both sides.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.model import Reading
from edge_agent.rules import chronic
from edge_agent.rules.chronic import Sign

D = Decimal
HTN: chronic.Disease = chronic.HYPERTENSION
DM: chronic.Disease = chronic.DIABETES

# --- assess_bp -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sbp", "dbp", "urgent", "controlled", "days"),
    [
        # 3rd edition, hypertension: urgent referral at systolic >= 180 and/or diastolic >= 110
        ("179", "80", False, False, 14),
        ("180", "80", True, False, 14),
        ("130", "109", False, False, 14),
        ("130", "110", True, False, 14),
        ("185", "115", True, False, 14),
        # controlled: systolic < 140 and diastolic < 90 -> 3 months; else within 2 weeks
        ("139", "89", False, True, 90),
        ("140", "89", False, False, 14),
        ("139", "90", False, False, 14),
        ("100", "60", False, True, 90),
        # Compared at whole mmHg, half-up (a 0.1 mmHg value from a kPa cuff).
        ("179.4", "80", False, False, 14),
        ("179.5", "80", True, False, 14),
        ("139.4", "89.4", False, True, 90),
        ("139.5", "80", False, False, 14),
        ("130", "109.5", True, False, 14),
    ],
)
def test_assess_bp(sbp: str, dbp: str, urgent: bool, controlled: bool, days: int) -> None:
    result = chronic.assess_bp(D(sbp), D(dbp))
    assert (result.urgent_referral, result.controlled, result.next_follow_up_days) == (
        urgent,
        controlled,
        days,
    )


def test_assess_bp_reasons_name_the_values() -> None:
    both = chronic.assess_bp(D(185), D(115))
    assert both.reason_zh == "收缩压 185 mmHg ≥ 180 mmHg、舒张压 115 mmHg ≥ 110 mmHg，需紧急转诊"
    assert both.reason_en == "systolic 185 mmHg >= 180, diastolic 115 mmHg >= 110: urgent referral"
    rounded = chronic.assess_bp(D("179.5"), D(80))
    assert rounded.reason_zh == "收缩压 180 mmHg ≥ 180 mmHg，需紧急转诊"
    assert "3个月后随访" in chronic.assess_bp(D(120), D(80)).reason_zh
    assert "within 2 weeks" in chronic.assess_bp(D(150), D(80)).reason_en


# --- assess_fasting_glucose ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("glucose", "urgent", "controlled", "days"),
    [
        # 3rd edition, diabetes: urgent at fasting >= 16.7 or <= 3.9 mmol/L
        ("16.6", False, False, 14),
        ("16.7", True, False, 14),
        ("25", True, False, 14),
        ("3.9", True, False, 14),
        ("2.8", True, False, 14),
        ("4.0", False, True, 90),
        # controlled: < 7.0 -> 3 months; 7.0 itself is uncontrolled -> 2 weeks
        ("6.9", False, True, 90),
        ("6.99", False, True, 90),
        ("7.0", False, False, 14),
        ("7", False, False, 14),
        # Compared at 0.01 mmol/L, half-up.
        ("6.994", False, True, 90),
        ("6.995", False, False, 14),
        ("16.695", True, False, 14),
    ],
)
def test_assess_fasting_glucose(glucose: str, urgent: bool, controlled: bool, days: int) -> None:
    result = chronic.assess_fasting_glucose(D(glucose))
    assert (result.urgent_referral, result.controlled, result.next_follow_up_days) == (
        urgent,
        controlled,
        days,
    )


def test_assess_fasting_glucose_reasons() -> None:
    high = chronic.assess_fasting_glucose(D("16.7"))
    assert high.reason_zh == "空腹血糖 16.7 mmol/L ≥ 16.7 mmol/L，需紧急转诊"
    assert high.reason_en == "fasting glucose 16.7 mmol/L >= 16.7: urgent referral"
    assert "≤ 3.9" in chronic.assess_fasting_glucose(D("3.9")).reason_zh


# --- follow_up_decision: thresholds ----------------------------------------------------------

# A visit at which everything is fine, per disease; each row changes one thing.
HTN_OK: dict[str, Any] = {"sbp": D(130), "dbp": D(80)}
DM_OK: dict[str, Any] = {
    "fasting_glucose": D("6.0"),
    "sbp": D(125),
    "dbp": D(78),
    "heart_rate": D(72),
    "temperature": D("36.6"),
}


@pytest.mark.parametrize(
    ("disease", "change", "classification"),
    [
        (HTN, {}, chronic.CONTROLLED),
        (HTN, {"sbp": D(179)}, chronic.UNCONTROLLED),
        (HTN, {"sbp": D(180)}, chronic.URGENT_REFERRAL),
        (HTN, {"dbp": D(109)}, chronic.UNCONTROLLED),
        (HTN, {"dbp": D(110)}, chronic.URGENT_REFERRAL),
        (HTN, {"sbp": D(139), "dbp": D(89)}, chronic.CONTROLLED),
        (HTN, {"sbp": D(140)}, chronic.UNCONTROLLED),
        (HTN, {"dbp": D(90)}, chronic.UNCONTROLLED),
        # A hypertension visit judges blood pressure and its signs only.
        (HTN, {"fasting_glucose": D(20)}, chronic.CONTROLLED),
        (HTN, {"heart_rate": D(130), "temperature": D("39.5")}, chronic.CONTROLLED),
        (DM, {}, chronic.CONTROLLED),
        (DM, {"fasting_glucose": D("16.6")}, chronic.UNCONTROLLED),
        (DM, {"fasting_glucose": D("16.7")}, chronic.URGENT_REFERRAL),
        (DM, {"fasting_glucose": D("4.0")}, chronic.CONTROLLED),
        (DM, {"fasting_glucose": D("3.9")}, chronic.URGENT_REFERRAL),
        (DM, {"fasting_glucose": D("6.9")}, chronic.CONTROLLED),
        (DM, {"fasting_glucose": D("7.0")}, chronic.UNCONTROLLED),
        # 3rd edition, diabetes: heart rate > 100 at rest, temperature > 39 °C (strict)
        (DM, {"heart_rate": D(100)}, chronic.CONTROLLED),
        (DM, {"heart_rate": D(101)}, chronic.URGENT_REFERRAL),
        (DM, {"heart_rate": D("100.4")}, chronic.CONTROLLED),
        (DM, {"heart_rate": D("100.5")}, chronic.URGENT_REFERRAL),
        (DM, {"temperature": D("39.0")}, chronic.CONTROLLED),
        (DM, {"temperature": D("39.1")}, chronic.URGENT_REFERRAL),
        (DM, {"temperature": D("39.04")}, chronic.CONTROLLED),
        (DM, {"temperature": D("39.05")}, chronic.URGENT_REFERRAL),
        # Diabetes: BP >= 180/110 is urgent, but BP control is the hypertension visit's.
        (DM, {"sbp": D(179)}, chronic.CONTROLLED),
        (DM, {"sbp": D(180)}, chronic.URGENT_REFERRAL),
        (DM, {"dbp": D(109)}, chronic.CONTROLLED),
        (DM, {"dbp": D(110)}, chronic.URGENT_REFERRAL),
    ],
)
def test_follow_up_thresholds(
    disease: chronic.Disease, change: dict[str, Any], classification: str
) -> None:
    given_values = {**(HTN_OK if disease == HTN else DM_OK), **change}
    result = chronic.follow_up_decision(disease, **given_values)
    assert result.classification == classification
    expected_days = {
        chronic.CONTROLLED: 90,
        chronic.UNCONTROLLED: 14,
        chronic.URGENT_REFERRAL: 14,
    }[classification]
    assert result.next_follow_up_days == expected_days
    assert result.missing == ()


def test_controlled_reasons() -> None:
    result = chronic.follow_up_decision(HTN, **HTN_OK)
    assert result.reasons_zh == ("血压 130/80 mmHg < 140/90 mmHg，控制满意", "3个月后随访")
    assert result.reasons_en == (
        "BP 130/80 mmHg < 140/90: controlled",
        "next follow-up in 3 months",
    )


def test_every_urgent_finding_is_a_reason() -> None:
    result = chronic.follow_up_decision(
        DM,
        **{**DM_OK, "fasting_glucose": D(18), "heart_rate": D(110), "temperature": D("39.6")},
        signs={Sign.FRUITY_BREATH},
    )
    assert result.classification == chronic.URGENT_REFERRAL
    assert result.reasons_en == (
        "fasting glucose 18 mmol/L >= 16.7: urgent referral",
        "resting heart rate 110 /min > 100: urgent referral",
        "temperature 39.6 °C > 39: urgent referral",
        "fruity (acetone) breath: urgent referral",
    )
    assert result.reasons_zh[1] == "静息心率 110 次/分 > 100 次/分，需紧急转诊"


# --- danger signs ----------------------------------------------------------------------------

# 3rd edition, hypertension urgent referral, sign by sign in order.
HTN_DANGER_SIGNS = [
    Sign.ALTERED_CONSCIOUSNESS,
    Sign.SEVERE_HEADACHE_OR_DIZZINESS,
    Sign.NAUSEA_VOMITING,
    Sign.BLURRED_VISION,
    Sign.EYE_PAIN,
    Sign.PALPITATIONS,
    Sign.CHEST_TIGHTNESS,
    Sign.BREATHLESS_CANNOT_LIE_FLAT,
    Sign.PREGNANT_OR_LACTATING_BP_HIGH,
    Sign.CANNOT_HANDLE,
]
# 3rd edition, diabetes urgent referral (the numeric ones are tested above).
DM_DANGER_SIGNS = [
    Sign.ALTERED_CONSCIOUSNESS,
    Sign.FRUITY_BREATH,
    Sign.PALPITATIONS,
    Sign.SWEATING,
    Sign.FEVER,
    Sign.DEHYDRATION,
    Sign.DEEP_FAST_BREATHING,
    Sign.NEW_VISUAL_LOSS,
    Sign.SEVERE_FOOT_INFECTION,
    Sign.PREGNANT_OR_LACTATING_GLUCOSE_HIGH,
]


def test_danger_sign_tables_are_clinical_md() -> None:
    assert chronic.URGENT_SIGNS[HTN] == frozenset(HTN_DANGER_SIGNS)
    assert chronic.URGENT_SIGNS[DM] == frozenset(DM_DANGER_SIGNS)
    assert set(chronic.SIGN_TEXT) == set(Sign)


@pytest.mark.parametrize(
    ("disease", "sign"),
    [(HTN, s) for s in HTN_DANGER_SIGNS] + [(DM, s) for s in DM_DANGER_SIGNS],
)
def test_each_danger_sign_alone_is_urgent(disease: chronic.Disease, sign: Sign) -> None:
    ok = HTN_OK if disease == HTN else DM_OK
    result = chronic.follow_up_decision(disease, **ok, signs={sign.value})
    assert result.classification == chronic.URGENT_REFERRAL
    assert result.next_follow_up_days == 14
    zh, en = chronic.SIGN_TEXT[sign]
    assert result.reasons == (chronic.Reason(f"{zh}，需紧急转诊", f"{en}: urgent referral"),)
    # A sign is enough even when nothing was measured.
    bare = chronic.follow_up_decision(disease, signs={sign})
    assert bare.classification == chronic.URGENT_REFERRAL


@pytest.mark.parametrize(
    ("disease", "sign"),
    [(HTN, Sign.FRUITY_BREATH), (HTN, Sign.FEVER), (DM, Sign.EYE_PAIN), (DM, Sign.CANNOT_HANDLE)],
)
def test_the_other_diseases_signs_are_ignored(disease: chronic.Disease, sign: Sign) -> None:
    ok = HTN_OK if disease == HTN else DM_OK
    result = chronic.follow_up_decision(disease, **ok, signs={sign})
    assert result.classification == chronic.CONTROLLED


@pytest.mark.parametrize("sign", [Sign.ADVERSE_DRUG_REACTION, Sign.NEW_OR_WORSE_COMPLICATION])
@pytest.mark.parametrize("disease", [HTN, DM])
def test_adverse_reaction_or_complication_is_not_controlled(
    disease: chronic.Disease, sign: Sign
) -> None:
    ok = HTN_OK if disease == HTN else DM_OK
    result = chronic.follow_up_decision(disease, **ok, signs={sign})
    assert result.classification == chronic.UNCONTROLLED
    assert result.next_follow_up_days == 14


def test_unknown_sign_is_named() -> None:
    with pytest.raises(ValueError, match="'headache'"):
        chronic.follow_up_decision(HTN, **HTN_OK, signs={"headache"})


def test_unknown_disease_and_negative_count_are_errors() -> None:
    with pytest.raises(ValueError, match="copd"):
        # Outside the Disease literal on purpose: the check at run time is under test.
        chronic.follow_up_decision("copd", **HTN_OK)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="previous_uncontrolled"):
        chronic.follow_up_decision(HTN, **HTN_OK, previous_uncontrolled=-1)


# --- two uncontrolled visits in a row --------------------------------------------------------


@pytest.mark.parametrize(
    ("disease", "change", "previous", "classification"),
    [
        (HTN, {"sbp": D(150)}, 0, chronic.UNCONTROLLED),
        (HTN, {"sbp": D(150)}, 1, chronic.REFER_AFTER_TWO_UNCONTROLLED),
        (HTN, {"sbp": D(150)}, 3, chronic.REFER_AFTER_TWO_UNCONTROLLED),
        (HTN, {}, 1, chronic.CONTROLLED),
        (HTN, {"sbp": D(185)}, 1, chronic.URGENT_REFERRAL),
        (DM, {"fasting_glucose": D("8.2")}, 0, chronic.UNCONTROLLED),
        (DM, {"fasting_glucose": D("8.2")}, 1, chronic.REFER_AFTER_TWO_UNCONTROLLED),
        (DM, {}, 1, chronic.CONTROLLED),
    ],
)
def test_two_uncontrolled_in_a_row_refers(
    disease: chronic.Disease, change: dict[str, Any], previous: int, classification: str
) -> None:
    values = {**(HTN_OK if disease == HTN else DM_OK), **change}
    result = chronic.follow_up_decision(disease, **values, previous_uncontrolled=previous)
    assert result.classification == classification
    if classification == chronic.REFER_AFTER_TWO_UNCONTROLLED:
        assert result.next_follow_up_days == 14
        assert result.reasons_zh[-1] == "连续两次控制不满意，建议转诊，2周内随访"


# --- incomplete ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("disease", "values", "classification", "missing"),
    [
        (HTN, {}, chronic.INCOMPLETE, ("sbp", "dbp")),
        (HTN, {"sbp": D(120)}, chronic.INCOMPLETE, ("dbp",)),
        (HTN, {"sbp": D(150)}, chronic.INCOMPLETE, ("dbp",)),
        (HTN, {"dbp": D(80)}, chronic.INCOMPLETE, ("sbp",)),
        # What is present already proves urgency.
        (HTN, {"sbp": D(180)}, chronic.URGENT_REFERRAL, ("dbp",)),
        (HTN, {"dbp": D(110)}, chronic.URGENT_REFERRAL, ("sbp",)),
        (
            DM,
            {"fasting_glucose": D("6.0")},
            chronic.INCOMPLETE,
            ("sbp", "dbp", "heart_rate", "temperature"),
        ),
        (
            DM,
            {"sbp": D(120), "dbp": D(80), "heart_rate": D(70), "temperature": D(37)},
            chronic.INCOMPLETE,
            ("fasting_glucose",),
        ),
        (DM, {**DM_OK, "temperature": None}, chronic.INCOMPLETE, ("temperature",)),
        (DM, {**DM_OK, "heart_rate": None}, chronic.INCOMPLETE, ("heart_rate",)),
        (
            DM,
            {"fasting_glucose": D(17)},
            chronic.URGENT_REFERRAL,
            ("sbp", "dbp", "heart_rate", "temperature"),
        ),
        (
            DM,
            {"heart_rate": D(120)},
            chronic.URGENT_REFERRAL,
            ("fasting_glucose", "sbp", "dbp", "temperature"),
        ),
    ],
)
def test_missing_measurements(
    disease: chronic.Disease, values: dict[str, Any], classification: str, missing: tuple[str, ...]
) -> None:
    result = chronic.follow_up_decision(disease, **values)
    assert result.classification == classification
    assert result.missing == missing
    if classification == chronic.INCOMPLETE:
        assert result.next_follow_up_days is None


def test_incomplete_says_what_to_measure() -> None:
    result = chronic.follow_up_decision(HTN, sbp=D(150))
    assert result.reasons_zh == (
        "收缩压 150 mmHg ≥ 140 mmHg，血压控制不满意",
        "未测舒张压，无法判断",
    )
    assert result.reasons_en[-1] == "diastolic BP not measured: cannot decide"


_MEASUREMENTS = st.fixed_dictionaries(
    {},
    optional={
        "sbp": st.integers(60, 260).map(D),
        "dbp": st.integers(30, 150).map(D),
        "fasting_glucose": st.integers(10, 350).map(lambda n: D(n) / 10),
        "heart_rate": st.integers(30, 180).map(D),
        "temperature": st.integers(340, 420).map(lambda n: D(n) / 10),
    },
)


@given(
    disease=st.sampled_from([HTN, DM]),
    values=_MEASUREMENTS,
    previous=st.integers(0, 3),
)
def test_never_controlled_by_omission(
    disease: chronic.Disease, values: dict[str, Any], previous: int
) -> None:
    result = chronic.follow_up_decision(disease, **values, previous_uncontrolled=previous)
    if result.missing:
        assert result.classification in (chronic.INCOMPLETE, chronic.URGENT_REFERRAL)
    else:
        assert result.classification != chronic.INCOMPLETE
    assert result.reasons  # always says why


# --- reading_alerts --------------------------------------------------------------------------

SYS, DIA = "MDC_PRESS_BLD_NONINV_SYS", "MDC_PRESS_BLD_NONINV_DIA"
CUFF_SYS, CUFF_DIA = "MDC_PRESS_CUFF_SYS", "MDC_PRESS_CUFF_DIA"
MMHG, KPA = "MDC_DIM_MMHG", "MDC_DIM_KILO_PASCAL"
GLU = "MDC_CONC_GLU_CAPILLARY_PLASMA"
MMOL, MG_DL = "MDC_DIM_MILLI_MOLE_PER_L", "MDC_DIM_MILLI_G_PER_DL"
DEGC, FAHR = "MDC_DIM_DEGC", "MDC_DIM_FAHR"
FASTING = ("seq:7", "meal:fasting")
NOBODY: frozenset[str] = frozenset()
DIABETIC = frozenset({DM})


@pytest.mark.parametrize(
    ("metric", "value", "unit", "flags", "diseases", "expected"),
    [
        # BP >= 180 / >= 110 mmHg: urgent for anyone (documented choice).
        (SYS, "179", MMHG, (), NOBODY, None),
        (SYS, "180", MMHG, (), NOBODY, "BP_URGENT"),
        (SYS, "180", MMHG, (), frozenset({HTN}), "BP_URGENT"),
        (DIA, "109", MMHG, (), NOBODY, None),
        (DIA, "110", MMHG, (), NOBODY, "BP_URGENT"),
        (CUFF_SYS, "200", MMHG, (), NOBODY, "BP_URGENT"),
        (CUFF_DIA, "115", MMHG, (), DIABETIC, "BP_URGENT"),
        # Whole mmHg, half-up, before comparing: a kPa cuff's 0.1 mmHg values.
        (SYS, "179.4", MMHG, ("converted-from-kPa",), NOBODY, None),
        (SYS, "179.5", MMHG, ("converted-from-kPa",), NOBODY, "BP_URGENT"),
        # In kPa: 24.0 kPa = 180.0149 mmHg -> 180; 23.9 = 179.26 -> 179; 16.0 = 120.
        (SYS, "24.0", KPA, (), NOBODY, "BP_URGENT"),
        (SYS, "23.9", KPA, (), NOBODY, None),
        (SYS, "16.0", KPA, (), NOBODY, None),
        # 14.6 kPa = 109.509 mmHg -> 110; 14.5 kPa = 108.759 -> 109.
        (DIA, "14.6", KPA, (), NOBODY, "BP_URGENT"),
        (DIA, "14.5", KPA, (), NOBODY, None),
        # Not a patient's blood pressure result: inflation progress, the cuff's own
        # pressure, an invasive line (the monitor alarms on those itself).
        (CUFF_SYS, "200", MMHG, ("intermediate",), NOBODY, None),
        ("MDC_PRESS_CUFF", "200", MMHG, (), NOBODY, None),
        ("MDC_PRESS_BLD_ART_SYS", "200", MMHG, (), NOBODY, None),
        # Fasting glucose >= 16.7 mmol/L: urgent for a diabetes patient.
        (GLU, "16.6", MMOL, FASTING, DIABETIC, None),
        (GLU, "16.7", MMOL, FASTING, DIABETIC, "GLU_HIGH_URGENT"),
        (GLU, "16.7", MMOL, FASTING, NOBODY, None),
        (GLU, "16.7", MMOL, FASTING, frozenset({HTN}), None),
        # Only a fasting glucose is judged against the fasting thresholds.
        (GLU, "17", MMOL, ("meal:postprandial",), DIABETIC, None),
        (GLU, "17", MMOL, ("meal:preprandial",), DIABETIC, None),
        (GLU, "17", MMOL, (), DIABETIC, None),
        # mg/dL via units.py: 301 -> 16.71, 300 -> 16.65.
        (GLU, "301", MG_DL, FASTING, DIABETIC, "GLU_HIGH_URGENT"),
        (GLU, "300", MG_DL, FASTING, DIABETIC, None),
        # <= 3.9 mmol/L is hypoglycaemia for anyone, fasting or not.
        (GLU, "3.5", MMOL, ("meal:postprandial",), NOBODY, "GLU_LOW_URGENT"),
        (GLU, "3.9", MMOL, (), NOBODY, "GLU_LOW_URGENT"),
        (GLU, "4.0", MMOL, (), NOBODY, None),
        (GLU, "3.9", MMOL, FASTING, DIABETIC, "GLU_LOW_URGENT"),
        (GLU, "70", MG_DL, (), NOBODY, "GLU_LOW_URGENT"),  # 3.89
        (GLU, "71", MG_DL, (), NOBODY, None),  # 3.94
        ("MDC_CONC_GLU_VENOUS_PLASMA", "2.8", MMOL, (), NOBODY, "GLU_LOW_URGENT"),
        ("MDC_CONC_GLU_GEN", "18.0", MMOL, FASTING, DIABETIC, "GLU_HIGH_URGENT"),
        # Control solution is a meter check, never a patient value.
        ("MDC_CONC_GLU_CONTROL", "2.0", MMOL, ("control-solution",), DIABETIC, None),
        ("MDC_CONC_GLU_CONTROL", "20.0", MMOL, FASTING, DIABETIC, None),
        (GLU, "2.0", MMOL, ("control-solution",), NOBODY, None),
        # Temperature > 39 °C: urgent for a diabetes patient (3rd edition), body sites only.
        ("MDC_TEMP_BODY", "39.0", DEGC, (), DIABETIC, None),
        ("MDC_TEMP_BODY", "39.1", DEGC, (), DIABETIC, "TEMP_URGENT"),
        ("MDC_TEMP_AXILLA", "39.05", DEGC, (), DIABETIC, "TEMP_URGENT"),
        ("MDC_TEMP_ORAL", "102.3", FAHR, (), DIABETIC, "TEMP_URGENT"),
        ("MDC_TEMP_ORAL", "102.2", FAHR, (), DIABETIC, None),
        ("MDC_TEMP_BODY", "39.5", DEGC, (), NOBODY, None),
        ("MDC_TEMP_SKIN", "39.5", DEGC, (), DIABETIC, None),
        ("MDC_TEMP_BODY", "39.5", DEGC, ("intermediate",), DIABETIC, None),
        # Heart rate alone: one reading cannot say "at rest".
        ("MDC_PULS_RATE_NON_INV", "130", "MDC_DIM_BEAT_PER_MIN", (), DIABETIC, None),
        # Other programmes' disease names are ignored, not errors.
        (SYS, "185", MMHG, (), frozenset({"tuberculosis"}), "BP_URGENT"),
    ],
)
def test_reading_alerts(
    metric: str,
    value: str,
    unit: str,
    flags: tuple[str, ...],
    diseases: frozenset[str],
    expected: str | None,
) -> None:
    alerts = chronic.reading_alerts(Reading(metric, D(value), unit, None, flags), diseases=diseases)
    if expected is None:
        assert alerts == []
    else:
        (alert,) = alerts
        assert alert.condition_key == expected
        assert alert.code == f"RULE_{expected}"
        assert alert.priority == "high"


def test_reading_alert_texts_name_the_compared_value() -> None:
    (bp,) = chronic.reading_alerts(Reading(SYS, D("24.0"), KPA), diseases=NOBODY)
    assert bp.text_zh == "收缩压 180 mmHg ≥ 180 mmHg，需紧急转诊"
    assert bp.text_en == "systolic 180 mmHg >= 180: urgent referral"
    (low,) = chronic.reading_alerts(Reading(GLU, D("3.5"), MMOL), diseases=NOBODY)
    assert low.text_zh == "血糖 3.5 mmol/L ≤ 3.9 mmol/L，低血糖，需紧急处理"
    assert low.text_en == "glucose 3.5 mmol/L <= 3.9: hypoglycaemia, urgent"
    (high,) = chronic.reading_alerts(Reading(GLU, D(301), MG_DL, None, FASTING), diseases=DIABETIC)
    assert high.text_en == "fasting glucose 16.71 mmol/L >= 16.7: urgent referral"


@pytest.mark.parametrize(
    ("reading", "diseases", "expected"),
    [
        (Reading(SYS, D(150), MMHG), NOBODY, {"BP_URGENT"}),
        (Reading(CUFF_DIA, D("11.0"), KPA), NOBODY, {"BP_URGENT"}),
        (Reading(GLU, D("8.0"), MMOL), DIABETIC, {"GLU_LOW_URGENT"}),
        (
            Reading(GLU, D("8.0"), MMOL, None, FASTING),
            DIABETIC,
            {"GLU_LOW_URGENT", "GLU_HIGH_URGENT"},
        ),
        (Reading(GLU, D("8.0"), MMOL, None, FASTING), NOBODY, {"GLU_LOW_URGENT"}),
        (Reading("MDC_TEMP_BODY", D("36.8"), DEGC), DIABETIC, {"TEMP_URGENT"}),
        (Reading("MDC_TEMP_BODY", D("36.8"), DEGC), NOBODY, set()),
        # Cannot be judged: no value, progress, control solution, an unknown unit.
        (Reading(SYS, None, MMHG, None, ("unavailable",)), NOBODY, set()),
        (Reading(CUFF_SYS, D(120), MMHG, None, ("intermediate",)), NOBODY, set()),
        (Reading("MDC_CONC_GLU_CONTROL", D("5.5"), MMOL), DIABETIC, set()),
        (Reading(SYS, D(120), "MDC_DIM_CM_H2O"), NOBODY, set()),
        (Reading("MDC_PULS_OXIM_SAT_O2", D(97), "MDC_DIM_PERCENT"), DIABETIC, set()),
    ],
)
def test_judged_conditions(reading: Reading, diseases: frozenset[str], expected: set[str]) -> None:
    # What a reading can prove, or show to be over (an alert engine clears the rest).
    assert chronic.judged_conditions(reading, diseases=diseases) == expected


@pytest.mark.parametrize(
    ("metric", "unit", "flags"),
    [
        (SYS, MMHG, ("unavailable",)),
        (DIA, KPA, ()),
        (GLU, MMOL, FASTING),
        (GLU, MG_DL, ("no-result",)),
        ("MDC_TEMP_BODY", DEGC, ()),
    ],
)
def test_missing_values_never_alert(metric: str, unit: str, flags: tuple[str, ...]) -> None:
    reading = Reading(metric, None, unit, None, flags)
    assert chronic.reading_alerts(reading, diseases=frozenset({HTN, DM})) == []


@given(
    metric=st.sampled_from(
        [SYS, DIA, CUFF_SYS, GLU, "MDC_CONC_GLU_CONTROL", "MDC_TEMP_BODY", "MDC_PULS_OXIM_SAT_O2"]
    ),
    unit=st.sampled_from([MMHG, KPA, MMOL, MG_DL, DEGC, FAHR, "MDC_DIM_PERCENT", ""]),
    value=st.one_of(st.none(), st.decimals(allow_nan=True, allow_infinity=True)),
    flags=st.lists(st.sampled_from(["meal:fasting", "control-solution", "intermediate", "x"])),
    diseases=st.frozensets(st.sampled_from([HTN, DM, "copd"])),
)
def test_reading_alerts_never_raise(
    metric: str, unit: str, value: Decimal | None, flags: list[str], diseases: frozenset[str]
) -> None:
    # The recorder calls this inside the transaction that stores the frame.
    alerts = chronic.reading_alerts(
        Reading(metric, value, unit, None, tuple(flags)), diseases=diseases
    )
    assert len(alerts) <= 1
