"""A chronic-disease follow-up visit judged from what the box measured (`edge-agent followup`).

The village doctor's quarterly visit (国家基本公共卫生服务规范 第三版): the patient's newest
BP, fasting glucose, resting heart rate and temperature from the box's store (any of
their visits in the last `days`), the danger signs the doctor ticks, and how many visits
in a row were uncontrolled, go to rules.chronic.follow_up_decision. Values are
converted to the clinic's units once (edge_agent.units). What was not measured is
named in `missing`: the decision is "incomplete", never "controlled" by omission.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, cast

from edge_agent import units
from edge_agent.model import Refused
from edge_agent.rules import chronic
from edge_agent.store import StoreReader

HEART_RATE_METRICS = ("MDC_PULS_RATE_NON_INV", "MDC_ECG_HEART_RATE", "MDC_PULS_OXIM_PULS_RATE")
GLUCOSE_METRICS = (
    "MDC_CONC_GLU_CAPILLARY_PLASMA",
    "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD",
    "MDC_CONC_GLU_VENOUS_PLASMA",
    "MDC_CONC_GLU_VENOUS_WHOLEBLOOD",
    "MDC_CONC_GLU_GEN",
)


class FollowUpError(Refused):
    """The visit cannot be judged (unknown patient, bad sign): says why in one line."""


def judge(
    store: StoreReader,
    *,
    national_id: str,
    disease: str,
    signs: Iterable[str] = (),
    previous_uncontrolled: int = 0,
    days: float = 1.0,
    now_wall_ns: int | None = None,
) -> dict[str, Any]:
    if disease not in chronic.DISEASES:
        raise FollowUpError(f"followup --disease {disease}: hypertension or diabetes")
    person = store.patients.by_national_id(national_id)
    if person is None:
        raise FollowUpError(f"followup: {national_id} is not registered (edge-agent patients add)")
    now = time.time_ns() if now_wall_ns is None else now_wall_ns
    since = now - int(days * 86400e9)

    def newest(metrics: Iterable[str], flag: str | None = None) -> tuple[Decimal, str] | None:
        found = store.frames.latest_readings(
            tuple(metrics), since, None, patient_id=person.id, flag=flag
        )
        best = max(found.values(), key=lambda pair: pair[1], default=None)
        if best is None or best[0].value is None:
            return None
        reading = best[0]
        assert reading.value is not None
        try:
            value, unit = units.to_clinic_unit(reading.value, reading.unit, reading.metric)
        except ValueError:
            return None
        return units.round_to_quantum(value, unit), reading.metric

    measured = {
        chronic.SBP: newest(sorted(chronic.SYSTOLIC_METRICS)),
        chronic.DBP: newest(sorted(chronic.DIASTOLIC_METRICS)),
        chronic.FASTING_GLUCOSE: newest(GLUCOSE_METRICS, chronic.FASTING_FLAG),
        chronic.HEART_RATE: newest(HEART_RATE_METRICS),
        chronic.TEMPERATURE: newest(sorted(chronic.BODY_TEMPERATURE_METRICS)),
    }
    try:
        decision = chronic.follow_up_decision(
            cast(chronic.Disease, disease),
            sbp=_value(measured[chronic.SBP]),
            dbp=_value(measured[chronic.DBP]),
            fasting_glucose=_value(measured[chronic.FASTING_GLUCOSE]),
            heart_rate=_value(measured[chronic.HEART_RATE]),
            temperature=_value(measured[chronic.TEMPERATURE]),
            signs=frozenset(signs),
            previous_uncontrolled=previous_uncontrolled,
        )
    except ValueError as exc:
        raise FollowUpError(f"followup: {exc}") from None
    return {
        "national_id": national_id,
        "name": person.name,
        "disease": decision.disease,
        "classification": decision.classification,
        "reasons": [{"zh": r.zh, "en": r.en} for r in decision.reasons],
        "next_follow_up_days": decision.next_follow_up_days,
        "missing": list(decision.missing),
        "measured": {k: None if v is None else float(v[0]) for k, v in measured.items()},
    }


def _value(found: tuple[Decimal, str] | None) -> Decimal | None:
    return None if found is None else found[0]
