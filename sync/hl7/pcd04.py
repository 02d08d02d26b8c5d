"""IHE PCD-04 "Report Alert": the ORU^R40 a box sends when an alert starts or ends.

docs/contracts.md "HL7 profile": alarms go as ORU^R40. PCD-04 uses the ORU_R01 message
structure with event R40 (MSH-9 `ORU^R40^ORU_R01`), one OBR per alert (OBR-4 MDC_EVT_ALARM)
and the alert described by OBX rows under sub-id 1.0.0.1.n:

    OBX 1 | CWE | 196616^MDC_EVT_ALARM^MDC     | .1 | <code>^<text>^99EDGE  | OBX-8 PH~SP
    OBX 2 | NM  | <the reading's metric>        | .2 | <value> | <unit>       (when known)
    OBX 3 | ST  | 68481^MDC_ATTR_EVENT_PHASE    | .3 | start | end
    OBX 4 | ST  | 68482^MDC_ATTR_ALARM_STATE    | .4 | active | inactive
    OBX 5 | ST  | 68484^MDC_ATTR_ALARM_PRIORITY | .5 | PH | PM | PL | PI
    OBX 6 | ST  | 68485^MDC_ATTR_ALERT_TYPE     | .6 | SP (physiological) | ST (technical)

The alert's own code (a monitor's, or RULE_BP_URGENT, NEWS2_HIGH ...) has no MDC term,
so it travels as a local code (coding system 99EDGE) in the event row's value, with its
Chinese text; the English text goes in CWE.5 (alternate text).

MSH-21 names the PCD-04 (Alert Communication Management) message profile, not PCD-01's;
MSH-18 the character set (UTF-8); PID/PV1 the patient the alert is about, by the same
rule as the readings (sync.outbox_messages.build_alert). docs/hl7.md lists every field.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from edge_agent.mdc import term
from sync.hl7 import er7
from sync.hl7.pcd01 import (
    CHARSET,
    IS_MAX,
    RECEIVING_APPLICATION,
    SENDING_APPLICATION,
    VERSION,
    DeviceIdentity,
    PatientIdentity,
    Row,
    _patient_rows,
    decimal_text,
    equipment_id,
    local_id,
    write_er7,
)
from sync.hl7.timestamps import format_dtm

# MSH-21: the IHE PCD-04 "Report Alert" message profile of the Alert Communication
# Management (ACM) profile (IHE PCD TF-2 §3.4, MSH static definition), as the ACM
# Alert Reporters at IHE Connectathons send it.
PCD04_PROFILE = "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.4.4^ISO"
LOCAL_CODES = "99EDGE"  # HL7 table 0396: 99zzz is a locally defined coding system
# HL7 table 0078 (abnormal flags) as PCD-04 uses it in OBX-8: priority and alert type.
PRIORITY_FLAGS = {"high": "PH", "medium": "PM", "low": "PL", "info": "PI"}
PHASES = ("start", "end")


@dataclass(frozen=True, slots=True)
class AlertEvent:
    control_id: str
    agent_id: str
    sent_at: dt.datetime  # aware
    at: dt.datetime  # aware: when the alert started (phase start) or ended (end)
    phase: str  # start | end
    code: str
    text: str
    text_en: str | None
    priority: str  # high | medium | low | info
    physiological: bool  # SP (a patient's condition) vs ST (the device's own fault)
    device: DeviceIdentity
    patient: PatientIdentity | None = None
    metric: str | None = None  # the reading behind it, when there is one
    value: Decimal | None = None
    unit: str | None = None


def build_oru_r40(event: AlertEvent) -> str:
    return write_er7(oru_r40_rows(event))


def oru_r40_rows(event: AlertEvent) -> list[Row]:
    if event.phase not in PHASES:
        raise ValueError(f"alert phase {event.phase!r}: start or end")
    comp = er7.DEFAULT.component
    obx18 = equipment_id(event.device, event.agent_id)
    when = format_dtm(event.at)
    priority = PRIORITY_FLAGS.get(event.priority, "PI")
    kind = "SP" if event.physiological else "ST"
    flags = [priority, kind]
    value = er7.join(
        [
            er7.escape_fit(event.code, IS_MAX * 10),
            er7.escape_fit(er7.one_line(event.text), 199),
            LOCAL_CODES,
            "",
            er7.escape_fit(er7.one_line(event.text_en or ""), 199),
        ],
        comp,
    )
    rows: list[Row] = [
        (
            "MSH",
            {
                3: SENDING_APPLICATION,
                4: er7.join([er7.escape(p) for p in local_id(event.agent_id)], comp),
                5: RECEIVING_APPLICATION,
                7: format_dtm(event.sent_at),
                9: "ORU^R40^ORU_R01",
                10: er7.escape(event.control_id),
                11: "P",
                12: VERSION,
                15: "AL",
                16: "NE",
                18: CHARSET,
                21: PCD04_PROFILE,
            },
        )
    ]
    if event.patient is not None:
        rows.extend(_patient_rows(event.patient))
    alarm = term("MDC_EVT_ALARM")
    rows.append(("OBR", {3: er7.escape(event.control_id), 4: alarm.coded, 7: when}))
    obx: list[tuple[str, str, str, str, dict[int, str | list[str]]]] = [
        ("CWE", alarm.coded, "1.0.0.1.1", value, {8: flags, 14: when, 18: obx18})
    ]
    if event.metric is not None and event.value is not None and event.unit is not None:
        obx.append(
            (
                "NM",
                term(event.metric).coded,
                "1.0.0.1.2",
                decimal_text(event.value),
                {6: term(event.unit).coded},
            )
        )
    for refid, sub, text in (
        ("MDC_ATTR_EVENT_PHASE", "3", event.phase),
        ("MDC_ATTR_ALARM_STATE", "4", "active" if event.phase == "start" else "inactive"),
        ("MDC_ATTR_ALARM_PRIORITY", "5", priority),
        ("MDC_ATTR_ALERT_TYPE", "6", kind),
    ):
        obx.append(("ST", term(refid).coded, f"1.0.0.1.{sub}", text, {}))
    for n, (value_type, code, sub_id, text, extra) in enumerate(obx, start=1):
        fields: dict[int, str | list[str]] = {
            1: str(n),
            2: value_type,
            3: code,
            4: sub_id,
            5: text,
            11: "F",
        }
        fields.update(extra)
        rows.append(("OBX", fields))
    return rows
