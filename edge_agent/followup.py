"""A chronic-disease follow-up visit judged from what the box measured (`edge-agent followup`).

The village doctor's quarterly visit (国家基本公共卫生服务规范 第三版): the patient's newest
BP, fasting glucose, resting heart rate and temperature from the box's store (any of
their visits in the last `days`), the danger signs the doctor ticks, and how many visits
in a row were uncontrolled, go to rules.chronic.follow_up_decision. Values are
converted to the clinic's units once (edge_agent.units). What was not measured is
named in `missing`: the decision is "incomplete", never "controlled" by omission.

The visit shows the resident's identity and readings, so it is an operation
(edge_agent.operations `followup`, permission read-person): done inside the daemon that
holds the keys, with an audit row naming the resident (PIPL Art. 51, GB/T 35273-2020
§7.4), and its errors name what is wrong without quoting the national id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from edge_agent import national_id, units
from edge_agent.model import Refused
from edge_agent.rules import chronic
from edge_agent.store import StoreReader

DEFAULT_DAYS = 1.0  # readings this recent count, unless the doctor says otherwise
MAX_DAYS = 366.0  # a quarterly visit looks back months, never years
MAX_PREVIOUS_UNCONTROLLED = 100  # visits in a row; the rule needs only "two or more"

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


@dataclass(frozen=True, slots=True)
class Visit:
    """The judged visit: whose (the patient row, for the audit trail) and what to show."""

    patient_id: int
    shown: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return self.shown


def judge(
    store: StoreReader,
    *,
    national_id_number: str,
    disease: str,
    signs: Iterable[str] = (),
    previous_uncontrolled: int = 0,
    days: float = DEFAULT_DAYS,
    now_wall_ns: int,
) -> Visit:
    """The follow-up of the resident `national_id_number` names, from their readings of
    the last `days` before `now_wall_ns`. FollowUpError (or NationalIdError) if not."""
    if disease not in chronic.DISEASES:
        raise FollowUpError(f"followup --disease {disease[:40]!r}: hypertension or diabetes")
    if not 0 < days <= MAX_DAYS:
        raise FollowUpError(f"followup --days {days:g}: more than 0 and at most {MAX_DAYS:g}")
    if not 0 <= previous_uncontrolled <= MAX_PREVIOUS_UNCONTROLLED:
        raise FollowUpError(
            f"followup --previous-uncontrolled {previous_uncontrolled}:"
            f" 0 to {MAX_PREVIOUS_UNCONTROLLED} visits"
        )
    number = national_id.parse(national_id_number).number
    person = store.patients.by_national_id(number)
    if person is None:
        raise FollowUpError(
            "followup: this national id is not registered (edge-agent patients add)"
        )
    since = now_wall_ns - int(days * 86400e9)

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
    shown = {
        "national_id": person.national_id,
        "name": person.name,
        "disease": decision.disease,
        "classification": decision.classification,
        "reasons": [{"zh": r.zh, "en": r.en} for r in decision.reasons],
        "next_follow_up_days": decision.next_follow_up_days,
        "missing": list(decision.missing),
        "measured": {k: None if v is None else float(v[0]) for k, v in measured.items()},
    }
    return Visit(person.id, shown)


def _value(found: tuple[Decimal, str] | None) -> Decimal | None:
    return None if found is None else found[0]
