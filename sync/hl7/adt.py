"""ADT^A14 "pending admit": the ambulance's pre-arrival notice to the receiving ER.

docs/contracts.md "HL7 profile" names ADT for the pre-arrival notice. A14 (HL7 v2.6 Ch.
3.3.14, structure ADT_A05) says "this patient is expected": who (PID), which door (PV1-3
point of care: the destination ER), why (PV2-3 admit reason: the complaint, "STEMI on
12-lead ECG: ..."), when (PV2-8 expected admit date/time: the ETA). It goes first in the
outbox, before the 12-lead it is about, so the cath lab can be called while the ECG uploads.

    MSH  EDGE_AGENT | <agent> | COUNTY_PLATFORM | ... | ADT^A14^ADT_A05 | <MSH-10> | P | 2.6
    EVN  | <recorded time>
    PID  <national id>^^^CHN^NNCHN, or the box's own id for an unidentified patient
    PV1  E | <destination>
    PV2  | | ^<complaint> | ... | <ETA>

Written as ER7 from rows like pcd01 (the tests hold it to hl7apy at strict validation).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import partial

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message

from sync.hl7 import er7, strict
from sync.hl7.pcd01 import (
    CHARSET,
    IS_MAX,
    NATIONAL_ID_AUTHORITY,
    NATIONAL_ID_TYPE,
    RECEIVING_APPLICATION,
    SENDING_APPLICATION,
    VERSION,
    Row,
    local_id,
    write_er7,
)
from sync.hl7.timestamps import format_dtm

# HL7 table 0203 "PI": patient internal identifier — the box's own number for a patient
# nobody has identified yet (an unconscious stranger); the ER merges it later.
INTERNAL_ID_TYPE = "PI"
COMPLAINT_MAX = 199  # CWE.2 text (ST) as hl7apy checks it


@dataclass(frozen=True, slots=True)
class PrearrivalNotice:
    control_id: str
    agent_id: str
    sent_at: dt.datetime  # aware
    recorded_at: dt.datetime  # aware: when the crew (or the cart) raised it
    patient_national_id: str | None
    patient_name: str | None
    local_patient_id: str  # used when the national id is not known
    destination: str | None
    complaint: str
    eta: dt.datetime | None  # aware


def build_adt_a14(notice: PrearrivalNotice, *, verify: bool = False) -> str:
    rows = adt_a14_rows(notice)
    text = write_er7(rows)
    if not verify:
        return text
    oracle = partial(build_with_hl7apy, rows, control_id=notice.control_id)
    return strict.agreed(text, oracle, what="ADT^A14", control_id=notice.control_id)


def adt_a14_rows(notice: PrearrivalNotice) -> list[Row]:
    comp = er7.DEFAULT.component
    namespace = er7.join([er7.escape(p) for p in local_id(notice.agent_id)], comp)
    if notice.patient_national_id:
        pid3 = er7.join(
            [
                er7.escape(notice.patient_national_id),
                "",
                "",
                NATIONAL_ID_AUTHORITY,
                NATIONAL_ID_TYPE,
            ],
            comp,
        )
    else:
        authority = er7.join([er7.escape(p) for p in local_id(notice.agent_id)], "&")
        pid3 = er7.join(
            [er7.escape(notice.local_patient_id), "", "", authority, INTERNAL_ID_TYPE], comp
        )
    name = er7.one_line(notice.patient_name or "")
    destination = er7.one_line(notice.destination or "")
    pv1: dict[int, str | list[str]] = {2: "E"}
    if destination:
        pv1[3] = er7.escape_fit(destination, IS_MAX)
    complaint = er7.one_line(notice.complaint) or "?"
    pv2: dict[int, str | list[str]] = {3: comp + er7.escape_fit(complaint, COMPLAINT_MAX)}
    if notice.eta is not None:
        pv2[8] = format_dtm(notice.eta)
    return [
        (
            "MSH",
            {
                3: SENDING_APPLICATION,
                4: namespace,
                5: RECEIVING_APPLICATION,
                7: format_dtm(notice.sent_at),
                9: "ADT^A14^ADT_A05",
                10: er7.escape(notice.control_id),
                11: "P",
                12: VERSION,
                15: "AL",
                16: "NE",
                18: CHARSET,
            },
        ),
        ("EVN", {2: format_dtm(notice.recorded_at)}),
        ("PID", {3: pid3, 5: er7.escape(name) if name else "^^^^^^U"}),
        ("PV1", pv1),
        ("PV2", pv2),
    ]


def build_with_hl7apy(rows: list[Row], *, control_id: str) -> str:
    """The same rows as an hl7apy ADT_A05 at strict validation, validated, in ER7."""
    return strict.validated_er7(
        partial(_hl7apy_adt_a05, rows), what="ADT^A14", control_id=control_id
    )


def _hl7apy_adt_a05(rows: list[Row]) -> Message:
    msg = Message("ADT_A05", version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
    for name, fields in rows:
        segment = msg.msh if name == "MSH" else msg.add_segment(name)
        for number, value in sorted(fields.items()):
            assert isinstance(value, str)
            setattr(segment, f"{name.lower()}_{number}", value)
    return msg
