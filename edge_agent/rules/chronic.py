"""Hypertension and type 2 diabetes follow-up: when to refer, when to come back.

The criteria are those of the national basic public health service specification,
3rd edition (国家基本公共卫生服务规范（第三版）, 2017), "高血压患者健康管理" and
"2型糖尿病患者健康管理" (docs/protocols/clinical-rules.md):

- Urgent referral (follow-up within 2 weeks of it): systolic >= 180 and/or diastolic
  >= 110 mmHg (both diseases); fasting glucose >= 16.7 or <= 3.9 mmol/L, resting heart
  rate > 100 /min, temperature > 39 °C (diabetes); and the danger signs each disease
  lists (`Sign`, `URGENT_SIGNS`), which the doctor asks about and ticks.
- Controlled: systolic < 140 and diastolic < 90 mmHg (hypertension), fasting glucose
  < 7.0 mmol/L (diabetes), with no adverse drug reaction and no new or worsened
  complication -> next follow-up in 3 months (`CONTROLLED_DAYS`, 90). Otherwise
  uncontrolled -> within 2 weeks (`SOON_DAYS`, 14); the second uncontrolled visit in a
  row -> refer, follow up within 2 weeks.

Decisions this module makes where the text leaves room:

- Values are compared as measured at the clinic's step (edge_agent.units: whole mmHg,
  0.01 mmol/L, 0.1 °C, whole beats/min), rounded half-up first: 179.6 mmHg and 24.0 kPa
  (180.0149 mmHg) are 180, urgent; 39.05 °C is 39.1, above 39. Threshold words are read
  literally: ">= 180", "> 100" (100 /min is not urgent), "> 39 °C" (39.0 is not).
- A decision is never "controlled" by omission: a measurement the disease's criteria
  need (`REQUIRED`) that is missing makes the visit "incomplete", unless what is present
  already proves urgent referral. Diabetes needs blood pressure, heart rate and
  temperature as well as fasting glucose, because each can make the visit urgent.
- Only a fasting glucose is judged against the fasting thresholds (`reading_alerts`
  needs the BLE meter's flag "meal:fasting"); any glucose <= 3.9 mmol/L is
  hypoglycaemia, urgent for anyone. A control-solution result is a meter check, never
  a patient value.
- `reading_alerts` raises BP >= 180/110 for everyone, not only for registered
  hypertension or diabetes patients: a pressure that high calls for a doctor now
  whoever it belongs to, and an unregistered hypertensive is exactly who the clinic
  must not miss. The diabetes-only criteria (fasting glucose >= 16.7, and temperature
  > 39 °C at a body site, which one reading does prove) need the disease on record. A
  heart rate alone is not judged (one reading cannot say the patient was at rest), nor
  an invasive arterial pressure (the monitor alarms on it). `judged_conditions` says
  which conditions a reading speaks to, so an engine can clear those it no longer shows.

Pure: no clock, no store, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final, Literal

from edge_agent import units
from edge_agent.model import Reading

HYPERTENSION: Final = "hypertension"
DIABETES: Final = "diabetes"
Disease = Literal["hypertension", "diabetes"]
DISEASES: frozenset[str] = frozenset({HYPERTENSION, DIABETES})

# Classifications of a follow-up visit.
URGENT_REFERRAL = "urgent-referral"
CONTROLLED = "controlled"
UNCONTROLLED = "uncontrolled"
REFER_AFTER_TWO_UNCONTROLLED = "refer-after-two-uncontrolled"
INCOMPLETE = "incomplete"

CONTROLLED_DAYS = 90  # "3 months"
SOON_DAYS = 14  # "within 2 weeks": uncontrolled, referred, or after urgent referral

# Thresholds (规范 第三版, docs/protocols/clinical-rules.md), in mmHg, mmol/L, beats/min, °C.
SBP_URGENT = Decimal(180)
DBP_URGENT = Decimal(110)
SBP_CONTROLLED_BELOW = Decimal(140)
DBP_CONTROLLED_BELOW = Decimal(90)
GLUCOSE_HIGH_URGENT = Decimal("16.7")
GLUCOSE_LOW_URGENT = Decimal("3.9")
GLUCOSE_CONTROLLED_BELOW = Decimal("7.0")
HEART_RATE_URGENT_ABOVE = Decimal(100)
TEMPERATURE_URGENT_ABOVE = Decimal("39.0")

# Measurement names, as `FollowUp.missing` lists them.
SBP = "sbp"
DBP = "dbp"
FASTING_GLUCOSE = "fasting_glucose"
HEART_RATE = "heart_rate"
TEMPERATURE = "temperature"
REQUIRED: dict[str, tuple[str, ...]] = {
    HYPERTENSION: (SBP, DBP),
    DIABETES: (FASTING_GLUCOSE, SBP, DBP, HEART_RATE, TEMPERATURE),
}
_MEASUREMENT_TEXT: dict[str, tuple[str, str]] = {
    SBP: ("收缩压", "systolic BP"),
    DBP: ("舒张压", "diastolic BP"),
    FASTING_GLUCOSE: ("空腹血糖", "fasting glucose"),
    HEART_RATE: ("静息心率", "resting heart rate"),
    TEMPERATURE: ("体温", "temperature"),
}


class Sign(StrEnum):
    """What the doctor asks about and ticks; the values are what the UI and CLI pass."""

    # Danger signs (3rd edition, 高血压/2型糖尿病 "危急情况"; docs/protocols/clinical-rules.md).
    ALTERED_CONSCIOUSNESS = "altered-consciousness"
    SEVERE_HEADACHE_OR_DIZZINESS = "severe-headache-or-dizziness"
    NAUSEA_VOMITING = "nausea-vomiting"
    BLURRED_VISION = "blurred-vision"
    EYE_PAIN = "eye-pain"
    PALPITATIONS = "palpitations"
    CHEST_TIGHTNESS = "chest-tightness"
    BREATHLESS_CANNOT_LIE_FLAT = "breathless-cannot-lie-flat"
    PREGNANT_OR_LACTATING_BP_HIGH = "pregnant-or-lactating-bp-high"
    CANNOT_HANDLE = "cannot-handle"
    FRUITY_BREATH = "fruity-breath"
    SWEATING = "sweating"
    FEVER = "fever"
    DEHYDRATION = "dehydration"
    DEEP_FAST_BREATHING = "deep-fast-breathing"
    NEW_VISUAL_LOSS = "new-visual-loss"
    SEVERE_FOOT_INFECTION = "severe-foot-infection"
    PREGNANT_OR_LACTATING_GLUCOSE_HIGH = "pregnant-or-lactating-glucose-high"
    # Not urgent, but a visit with them is not "controlled" (3rd edition: controlled
    # means no adverse reaction and no new complications).
    ADVERSE_DRUG_REACTION = "adverse-drug-reaction"
    NEW_OR_WORSE_COMPLICATION = "new-or-worse-complication"


URGENT_SIGNS: dict[str, frozenset[Sign]] = {
    HYPERTENSION: frozenset(
        {
            Sign.ALTERED_CONSCIOUSNESS,
            Sign.SEVERE_HEADACHE_OR_DIZZINESS,
            Sign.NAUSEA_VOMITING,
            Sign.BLURRED_VISION,
            Sign.EYE_PAIN,
            Sign.PALPITATIONS,
            Sign.CHEST_TIGHTNESS,
            Sign.BREATHLESS_CANNOT_LIE_FLAT,
            Sign.PREGNANT_OR_LACTATING_BP_HIGH,
            Sign.CANNOT_HANDLE,  # "other conditions the doctor cannot handle"
        }
    ),
    DIABETES: frozenset(
        {
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
        }
    ),
}
NOT_CONTROLLED_SIGNS: frozenset[Sign] = frozenset(
    {Sign.ADVERSE_DRUG_REACTION, Sign.NEW_OR_WORSE_COMPLICATION}
)

SIGN_TEXT: dict[Sign, tuple[str, str]] = {
    Sign.ALTERED_CONSCIOUSNESS: ("意识改变", "altered consciousness"),
    Sign.SEVERE_HEADACHE_OR_DIZZINESS: ("剧烈头痛或头晕", "severe headache or dizziness"),
    Sign.NAUSEA_VOMITING: ("恶心呕吐", "nausea and vomiting"),
    Sign.BLURRED_VISION: ("视力模糊", "blurred vision"),
    Sign.EYE_PAIN: ("眼痛", "eye pain"),
    Sign.PALPITATIONS: ("心悸", "palpitations"),
    Sign.CHEST_TIGHTNESS: ("胸闷", "chest tightness"),
    Sign.BREATHLESS_CANNOT_LIE_FLAT: ("喘憋不能平卧", "breathless, cannot lie flat"),
    Sign.PREGNANT_OR_LACTATING_BP_HIGH: (
        "妊娠期或哺乳期血压高于正常",
        "pregnant or lactating with BP above normal",
    ),
    Sign.CANNOT_HANDLE: ("存在不能处理的其他疾病", "another condition the clinic cannot handle"),
    Sign.FRUITY_BREATH: ("呼气有烂苹果样丙酮味", "fruity (acetone) breath"),
    Sign.SWEATING: ("出汗", "sweating"),
    Sign.FEVER: ("发热", "fever"),
    Sign.DEHYDRATION: ("脱水", "dehydration"),
    Sign.DEEP_FAST_BREATHING: ("深大呼吸", "deep, fast breathing"),
    Sign.NEW_VISUAL_LOSS: ("视力突然骤降", "sudden loss of vision"),
    Sign.SEVERE_FOOT_INFECTION: ("严重足部感染", "severe foot infection"),
    Sign.PREGNANT_OR_LACTATING_GLUCOSE_HIGH: (
        "妊娠期或哺乳期血糖高于正常",
        "pregnant or lactating with glucose above normal",
    ),
    Sign.ADVERSE_DRUG_REACTION: ("药物不良反应", "adverse drug reaction"),
    Sign.NEW_OR_WORSE_COMPLICATION: ("新发并发症或原有并发症加重", "new or worse complication"),
}


@dataclass(frozen=True, slots=True)
class Reason:
    """One finding, in Chinese (the UI's default) and English."""

    zh: str
    en: str


@dataclass(frozen=True, slots=True)
class BpAssessment:
    """A blood pressure judged by the hypertension follow-up criteria."""

    urgent_referral: bool
    controlled: bool
    reason_zh: str
    reason_en: str
    next_follow_up_days: int


@dataclass(frozen=True, slots=True)
class GlucoseAssessment:
    """A fasting glucose judged by the type 2 diabetes follow-up criteria."""

    urgent_referral: bool
    controlled: bool
    reason_zh: str
    reason_en: str
    next_follow_up_days: int


@dataclass(frozen=True, slots=True)
class FollowUp:
    """The outcome of one follow-up visit for one disease.

    `next_follow_up_days` is None when the visit is incomplete: `missing` names what
    to measure before anything can be decided.
    """

    disease: str
    classification: str
    reasons: tuple[Reason, ...]
    next_follow_up_days: int | None
    missing: tuple[str, ...] = ()

    @property
    def reasons_zh(self) -> tuple[str, ...]:
        return tuple(r.zh for r in self.reasons)

    @property
    def reasons_en(self) -> tuple[str, ...]:
        return tuple(r.en for r in self.reasons)


@dataclass(frozen=True, slots=True)
class RuleAlert:
    """An alert a rule raised from a stored reading.

    `condition_key` names the condition (not the reading) so the store keeps one alert
    open while the condition persists, however many readings repeat it.
    """

    code: str
    priority: str  # "high" | "medium" | "low"
    text_zh: str
    text_en: str
    condition_key: str


# --- single measurements --------------------------------------------------------------------


def _fmt(value: Decimal) -> str:
    return format(value, "f")


def _bp_at_or_above(
    sbp: Decimal | None,
    dbp: Decimal | None,
    limits: tuple[Decimal, Decimal],
    outcome: Reason,
) -> Reason | None:
    """Which of systolic and diastolic reach their limit, joined, and the outcome."""
    parts: list[Reason] = []
    sbp_limit, dbp_limit = limits
    if sbp is not None and sbp >= sbp_limit:
        limit = _fmt(sbp_limit)
        parts.append(
            Reason(
                f"收缩压 {_fmt(sbp)} mmHg ≥ {limit} mmHg", f"systolic {_fmt(sbp)} mmHg >= {limit}"
            )
        )
    if dbp is not None and dbp >= dbp_limit:
        limit = _fmt(dbp_limit)
        parts.append(
            Reason(
                f"舒张压 {_fmt(dbp)} mmHg ≥ {limit} mmHg", f"diastolic {_fmt(dbp)} mmHg >= {limit}"
            )
        )
    if not parts:
        return None
    return Reason(
        "、".join(p.zh for p in parts) + outcome.zh,
        ", ".join(p.en for p in parts) + outcome.en,
    )


def _bp_urgent(sbp: Decimal | None, dbp: Decimal | None) -> Reason | None:
    return _bp_at_or_above(
        sbp, dbp, (SBP_URGENT, DBP_URGENT), Reason("，需紧急转诊", ": urgent referral")
    )


def _bp_uncontrolled(sbp: Decimal | None, dbp: Decimal | None) -> Reason | None:
    return _bp_at_or_above(
        sbp,
        dbp,
        (SBP_CONTROLLED_BELOW, DBP_CONTROLLED_BELOW),
        Reason("，血压控制不满意", ": BP not controlled"),
    )


def _bp_controlled(sbp: Decimal, dbp: Decimal) -> Reason:
    bp = f"{_fmt(sbp)}/{_fmt(dbp)} mmHg"
    return Reason(f"血压 {bp} < 140/90 mmHg，控制满意", f"BP {bp} < 140/90: controlled")


def _glucose_urgent(glucose: Decimal) -> Reason | None:
    g = _fmt(glucose)
    if glucose >= GLUCOSE_HIGH_URGENT:
        return Reason(
            f"空腹血糖 {g} mmol/L ≥ 16.7 mmol/L，需紧急转诊",
            f"fasting glucose {g} mmol/L >= 16.7: urgent referral",
        )
    if glucose <= GLUCOSE_LOW_URGENT:
        return Reason(
            f"空腹血糖 {g} mmol/L ≤ 3.9 mmol/L，需紧急转诊",
            f"fasting glucose {g} mmol/L <= 3.9: urgent referral",
        )
    return None


def _glucose_control(glucose: Decimal) -> tuple[bool, Reason]:
    g = _fmt(glucose)
    if glucose < GLUCOSE_CONTROLLED_BELOW:
        return True, Reason(
            f"空腹血糖 {g} mmol/L < 7.0 mmol/L，控制满意",
            f"fasting glucose {g} mmol/L < 7.0: controlled",
        )
    return False, Reason(
        f"空腹血糖 {g} mmol/L ≥ 7.0 mmol/L，血糖控制不满意",
        f"fasting glucose {g} mmol/L >= 7.0: glucose not controlled",
    )


def _measured(value: Decimal | None, unit: str) -> Decimal | None:
    return None if value is None else units.round_to_quantum(value, unit)


def assess_bp(sbp: Decimal, dbp: Decimal) -> BpAssessment:
    """A blood pressure in mmHg by the hypertension criteria (rounded to whole mmHg
    first). Urgent: >= 180 and/or >= 110; controlled: < 140 and < 90."""
    s = units.round_to_quantum(sbp, units.MMHG)
    d = units.round_to_quantum(dbp, units.MMHG)
    urgent = _bp_urgent(s, d)
    if urgent is not None:
        return BpAssessment(True, False, urgent.zh, urgent.en, SOON_DAYS)
    uncontrolled = _bp_uncontrolled(s, d)
    if uncontrolled is not None:
        zh = uncontrolled.zh + "，2周内随访"
        en = uncontrolled.en + ", follow up within 2 weeks"
        return BpAssessment(False, False, zh, en, SOON_DAYS)
    controlled = _bp_controlled(s, d)
    zh = controlled.zh + "，3个月后随访"
    en = controlled.en + ", next follow-up in 3 months"
    return BpAssessment(False, True, zh, en, CONTROLLED_DAYS)


def assess_fasting_glucose(mmol_per_l: Decimal) -> GlucoseAssessment:
    """A fasting glucose in mmol/L by the diabetes criteria (rounded to 0.01 first).
    Urgent: >= 16.7 or <= 3.9; controlled: < 7.0 (and above 3.9)."""
    g = units.round_to_quantum(mmol_per_l, units.MMOL_PER_L)
    urgent = _glucose_urgent(g)
    if urgent is not None:
        return GlucoseAssessment(True, False, urgent.zh, urgent.en, SOON_DAYS)
    controlled, reason = _glucose_control(g)
    if controlled:
        zh, en, days = (
            reason.zh + "，3个月后随访",
            reason.en + ", next follow-up in 3 months",
            CONTROLLED_DAYS,
        )
    else:
        zh, en, days = (
            reason.zh + "，2周内随访",
            reason.en + ", follow up within 2 weeks",
            SOON_DAYS,
        )
    return GlucoseAssessment(False, controlled, zh, en, days)


# --- a follow-up visit ----------------------------------------------------------------------


def parse_signs(signs: Iterable[str]) -> frozenset[Sign]:
    """Sign names -> `Sign`s; an unknown name is a ValueError naming it."""
    parsed: set[Sign] = set()
    for name in signs:
        try:
            parsed.add(Sign(name))
        except ValueError:
            known = ", ".join(s.value for s in Sign)
            raise ValueError(f"sign {name!r}: not a known sign (known: {known})") from None
    return frozenset(parsed)


def follow_up_decision(
    disease: Disease,
    *,
    sbp: Decimal | None = None,
    dbp: Decimal | None = None,
    fasting_glucose: Decimal | None = None,
    heart_rate: Decimal | None = None,
    temperature: Decimal | None = None,
    signs: AbstractSet[str] = frozenset(),
    previous_uncontrolled: int = 0,
) -> FollowUp:
    """One follow-up visit for `disease`: urgent referral, controlled, uncontrolled,
    refer after two uncontrolled visits in a row, or incomplete.

    Measurements in mmHg, mmol/L (fasting), beats/min at rest, °C; None = not measured.
    Only what the disease's criteria name is judged (a hypertension visit ignores the
    glucose). `signs` are `Sign` values; a sign of the other disease is ignored, so one
    set can serve a patient with both. `previous_uncontrolled` is the number of
    uncontrolled visits in a row just before this one.
    """
    if disease not in DISEASES:
        raise ValueError(f"disease {disease!r}: must be one of {', '.join(sorted(DISEASES))}")
    if previous_uncontrolled < 0:
        raise ValueError(f"previous_uncontrolled {previous_uncontrolled}: must be >= 0")
    ticked = parse_signs(signs)
    s = _measured(sbp, units.MMHG)
    d = _measured(dbp, units.MMHG)
    g = _measured(fasting_glucose, units.MMOL_PER_L)
    hr = _measured(heart_rate, units.BEAT_PER_MIN)
    t = _measured(temperature, units.DEGC)
    given = {SBP: s, DBP: d, FASTING_GLUCOSE: g, HEART_RATE: hr, TEMPERATURE: t}
    missing = tuple(name for name in REQUIRED[disease] if given[name] is None)

    urgent: list[Reason] = []
    not_controlled: list[Reason] = []
    controlled: list[Reason] = []

    bp_urgent = _bp_urgent(s, d)
    if bp_urgent is not None:
        urgent.append(bp_urgent)
    if disease == HYPERTENSION:
        bp_uncontrolled = _bp_uncontrolled(s, d)
        if bp_uncontrolled is not None:
            not_controlled.append(bp_uncontrolled)
        elif s is not None and d is not None:
            controlled.append(_bp_controlled(s, d))
    else:
        if g is not None:
            glucose_urgent = _glucose_urgent(g)
            if glucose_urgent is not None:
                urgent.append(glucose_urgent)
            else:
                ok, reason = _glucose_control(g)
                (controlled if ok else not_controlled).append(reason)
        if hr is not None and hr > HEART_RATE_URGENT_ABOVE:
            urgent.append(
                Reason(
                    f"静息心率 {_fmt(hr)} 次/分 > 100 次/分，需紧急转诊",
                    f"resting heart rate {_fmt(hr)} /min > 100: urgent referral",
                )
            )
        if t is not None and t > TEMPERATURE_URGENT_ABOVE:
            urgent.append(
                Reason(
                    f"体温 {_fmt(t)} ℃ > 39 ℃，需紧急转诊",
                    f"temperature {_fmt(t)} °C > 39: urgent referral",
                )
            )
    for sign in Sign:  # definition order: the same reasons in the same order every time
        zh, en = SIGN_TEXT[sign]
        if sign not in ticked:
            continue
        if sign in URGENT_SIGNS[disease]:
            urgent.append(Reason(f"{zh}，需紧急转诊", f"{en}: urgent referral"))
        elif sign in NOT_CONTROLLED_SIGNS:
            not_controlled.append(Reason(f"{zh}，不能视为控制满意", f"{en}: not controlled"))

    if urgent:
        return FollowUp(disease, URGENT_REFERRAL, tuple(urgent), SOON_DAYS, missing)
    if missing:
        names_zh = "、".join(_MEASUREMENT_TEXT[m][0] for m in missing)
        names_en = ", ".join(_MEASUREMENT_TEXT[m][1] for m in missing)
        gap = Reason(f"未测{names_zh}，无法判断", f"{names_en} not measured: cannot decide")
        return FollowUp(disease, INCOMPLETE, (*not_controlled, gap), None, missing)
    if not_controlled:
        if previous_uncontrolled >= 1:
            refer = Reason(
                "连续两次控制不满意，建议转诊，2周内随访",
                "uncontrolled at two visits in a row: refer, follow up within 2 weeks",
            )
            reasons = (*not_controlled, refer)
            return FollowUp(disease, REFER_AFTER_TWO_UNCONTROLLED, reasons, SOON_DAYS)
        again = Reason("调整治疗，2周内随访", "adjust treatment, follow up within 2 weeks")
        return FollowUp(disease, UNCONTROLLED, (*not_controlled, again), SOON_DAYS)
    next_visit = Reason("3个月后随访", "next follow-up in 3 months")
    return FollowUp(disease, CONTROLLED, (*controlled, next_visit), CONTROLLED_DAYS)


# --- one stored reading ---------------------------------------------------------------------

SYSTOLIC_METRICS = frozenset({"MDC_PRESS_BLD_NONINV_SYS", "MDC_PRESS_CUFF_SYS"})
DIASTOLIC_METRICS = frozenset({"MDC_PRESS_BLD_NONINV_DIA", "MDC_PRESS_CUFF_DIA"})
GLUCOSE_PREFIX = "MDC_CONC_GLU_"
GLUCOSE_CONTROL = "MDC_CONC_GLU_CONTROL"
# Where a thermometer measures the body (skin, finger, toe, room and airway are not).
BODY_TEMPERATURE_METRICS = frozenset(
    {
        "MDC_TEMP_BODY",
        "MDC_TEMP_AXILLA",
        "MDC_TEMP_ORAL",
        "MDC_TEMP_EAR",
        "MDC_TEMP_TYMP",
        "MDC_TEMP_RECT",
        "MDC_TEMP_CORE",
        "MDC_TEMP_ESOPH",
        "MDC_TEMP_NASOPH",
        "MDC_TEMP_GIT",
    }
)
FASTING_FLAG = "meal:fasting"  # device_drivers/ble/glucose.py context flags
CONTROL_SOLUTION_FLAG = "control-solution"
PROGRESS_FLAG = "intermediate"  # a cuff's inflation pressure, a thermometer settling

BP_URGENT = "BP_URGENT"
GLU_HIGH_URGENT = "GLU_HIGH_URGENT"
GLU_LOW_URGENT = "GLU_LOW_URGENT"
TEMP_URGENT = "TEMP_URGENT"


def _alert(condition_key: str, zh: str, en: str) -> RuleAlert:
    return RuleAlert(f"RULE_{condition_key}", "high", zh, en, condition_key)


def _clinic_value(reading: Reading) -> Decimal | None:
    """The reading in the clinic's unit at the clinic's step, None when it cannot be
    judged (no value, a unit no conversion knows)."""
    if reading.value is None or not reading.value.is_finite():
        return None
    try:
        value, unit = units.to_clinic_unit(reading.value, reading.unit, reading.metric)
        return units.round_to_quantum(value, unit)
    except ValueError:
        return None


def judged_conditions(reading: Reading, *, diseases: AbstractSet[str]) -> frozenset[str]:
    """The condition keys `reading_alerts` judges this reading for.

    A reading raises some of them, or shows that they have gone (the next BP is 150/90:
    BP_URGENT is over), so an alert engine can clear what a newer reading no longer
    proves. Empty for a reading that cannot be judged: no value, progress, a control
    solution, a unit no conversion knows. Never raises (see `reading_alerts`).
    """
    if PROGRESS_FLAG in reading.flags or _clinic_value(reading) is None:
        return frozenset()
    metric = reading.metric
    if metric in SYSTOLIC_METRICS or metric in DIASTOLIC_METRICS:
        return frozenset({BP_URGENT})
    if metric.startswith(GLUCOSE_PREFIX):
        if metric == GLUCOSE_CONTROL or CONTROL_SOLUTION_FLAG in reading.flags:
            return frozenset()
        if DIABETES in diseases and FASTING_FLAG in reading.flags:
            return frozenset({GLU_LOW_URGENT, GLU_HIGH_URGENT})
        return frozenset({GLU_LOW_URGENT})
    if DIABETES in diseases and metric in BODY_TEMPERATURE_METRICS:
        return frozenset({TEMP_URGENT})
    return frozenset()


def reading_alerts(reading: Reading, *, diseases: AbstractSet[str]) -> list[RuleAlert]:
    """The urgent conditions one stored reading proves on its own (at most one).

    For anyone: systolic >= 180 or diastolic >= 110 mmHg (BP_URGENT), any patient
    glucose <= 3.9 mmol/L (GLU_LOW_URGENT, hypoglycaemia). For a diabetes patient also:
    fasting glucose >= 16.7 mmol/L (GLU_HIGH_URGENT) and body temperature > 39 °C
    (TEMP_URGENT). Values are converted with edge_agent.units and rounded to the
    clinic's step before comparing (24.0 kPa = 180.0149 mmHg -> 180: urgent).

    Never raises for a reading: the recorder calls this inside the transaction that
    stores the frame, and a reading that cannot be judged (no value, progress, a unit
    that cannot be converted) only gives no alert. Disease names other than
    "hypertension" and "diabetes" (other programmes) are ignored.
    """
    conditions = judged_conditions(reading, diseases=diseases)
    value = _clinic_value(reading) if conditions else None
    if value is None:
        return []
    metric, v = reading.metric, _fmt(value)
    if metric in SYSTOLIC_METRICS and value >= SBP_URGENT:
        return [
            _alert(
                BP_URGENT,
                f"收缩压 {v} mmHg ≥ 180 mmHg，需紧急转诊",
                f"systolic {v} mmHg >= 180: urgent referral",
            )
        ]
    if metric in DIASTOLIC_METRICS and value >= DBP_URGENT:
        return [
            _alert(
                BP_URGENT,
                f"舒张压 {v} mmHg ≥ 110 mmHg，需紧急转诊",
                f"diastolic {v} mmHg >= 110: urgent referral",
            )
        ]
    if GLU_LOW_URGENT in conditions and value <= GLUCOSE_LOW_URGENT:
        return [
            _alert(
                GLU_LOW_URGENT,
                f"血糖 {v} mmol/L ≤ 3.9 mmol/L，低血糖，需紧急处理",
                f"glucose {v} mmol/L <= 3.9: hypoglycaemia, urgent",
            )
        ]
    if GLU_HIGH_URGENT in conditions and value >= GLUCOSE_HIGH_URGENT:
        return [
            _alert(
                GLU_HIGH_URGENT,
                f"空腹血糖 {v} mmol/L ≥ 16.7 mmol/L，需紧急转诊",
                f"fasting glucose {v} mmol/L >= 16.7: urgent referral",
            )
        ]
    if TEMP_URGENT in conditions and value > TEMPERATURE_URGENT_ABOVE:
        return [
            _alert(
                TEMP_URGENT,
                f"糖尿病患者体温 {v} ℃ > 39 ℃，需紧急转诊",
                f"diabetes patient, temperature {v} °C > 39: urgent referral",
            )
        ]
    return []
