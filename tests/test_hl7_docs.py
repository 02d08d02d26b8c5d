"""docs/hl7.md names every field our builders write (issue 11: "docs/ says which field
each HL7 segment carries from which source"). The fields are taken from the builders'
own row dicts, built with every optional part present, so a field added to a builder
without a line in the docs fails here."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from decimal import Decimal
from pathlib import Path

from device_drivers.network.mllp import ack_for
from sync.hl7.ack import build_ack
from sync.hl7.adt import PrearrivalNotice, adt_a14_rows
from sync.hl7.pcd01 import (
    DeviceIdentity,
    PatientIdentity,
    Row,
    StoredObservation,
    StoredWaveform,
    oru_r01_rows,
)
from sync.hl7.pcd04 import AlertEvent, oru_r40_rows

DOC = Path(__file__).resolve().parents[1] / "docs" / "hl7.md"
T0 = dt.datetime(2026, 12, 3, 16, 46, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
DEVICE = DeviceIdentity("mp50-1", "intellivue", None, "MDC_DEV_SPEC_PROFILE_HYDRA")
PATIENT = PatientIdentity("11010519491231002X", "王秀英", dt.date(1949, 12, 31), "F", "E")


def _fields(rows: list[Row]) -> set[str]:
    return {f"{name}-{number}" for name, fields in rows for number in fields}


def _er7_fields(text: str) -> set[str]:
    found = set()
    for segment in text.split("\r"):
        parts = segment.split("|")
        offset = 1 if parts[0] == "MSH" else 0  # MSH-1 is the separator itself
        found |= {f"{parts[0]}-{n + offset}" for n, value in enumerate(parts) if n and value}
    return found


def written_fields() -> set[str]:
    vitals = oru_r01_rows(
        control_id="C1",
        agent_id="amb-017",
        sent_at=T0,
        device=DEVICE,
        patient=PATIENT,
        observations=[
            StoredObservation(
                "MDC_PULS_OXIM_SAT_O2", Decimal(97), "MDC_DIM_PERCENT", T0, ("device-clock-skew",)
            )
        ],
        waveforms=[
            StoredWaveform(
                "MDC_ECG_ELEC_POTL_II", Decimal(500), Decimal(5), "MDC_DIM_MICRO_VOLT", (1, 2), T0
            )
        ],
        statements=["Sinus rhythm"],
    )
    alert = oru_r40_rows(
        AlertEvent(
            control_id="C2",
            agent_id="amb-017",
            sent_at=T0,
            at=T0,
            phase="start",
            code="NEWS2_HIGH",
            text="高风险",
            text_en="high",
            priority="high",
            physiological=True,
            device=DEVICE,
            patient=PATIENT,
            metric="MDC_PULS_OXIM_SAT_O2",
            value=Decimal(86),
            unit="MDC_DIM_PERCENT",
        )
    )
    notice = adt_a14_rows(
        PrearrivalNotice(
            control_id="C3",
            agent_id="amb-017",
            sent_at=T0,
            recorded_at=T0,
            patient_national_id=PATIENT.national_id,
            patient_name=PATIENT.name,
            local_patient_id="amb-017-1",
            destination="县医院急诊",
            complaint="胸痛",
            eta=T0,
        )
    )
    gateway_ack = build_ack(
        acked_control_id="C1",
        code="AE",
        text="bad",
        control_id="G1",
        sent_at=T0,
        receiving_facility="amb-017",
    )
    monitor = (
        "MSH|^~\\&|MON^00A037009B000001^EUI-64|ICU||||||ORU^R01|M1|P|2.6||||||GB 18030-2000\r"
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|262688^MDC_DIM_PERCENT^MDC|||||F\r"
    ).encode("gb18030")
    monitor_ack = ack_for(monitor, "quarantined", "why", now=T0)[1:-2].decode("gb18030")
    return (
        _fields(vitals)
        | _fields(alert)
        | _fields(notice)
        | _er7_fields(gateway_ack)
        | _er7_fields(monitor_ack)
    )


def documented_fields() -> set[str]:
    """Every `SEG-n` the page names, ranges (`MSH-3 … MSH-16`) spelt out."""
    text = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"\b([A-Z][A-Z0-9]{2})-(\d+)\b", text))
    found = {f"{seg}-{n}" for seg, n in named}
    for seg, first, last in re.findall(r"\b([A-Z][A-Z0-9]{2})-(\d+) … \1-(\d+)\b", text):
        found |= {f"{seg}-{n}" for n in range(int(first), int(last) + 1)}
    return found


def test_docs_hl7_md_names_every_field_the_builders_write() -> None:
    written = written_fields()
    assert {"MSH-18", "MSH-21", "OBX-4", "OBX-11", "OBX-18", "PID-3", "NTE-3", "EVN-2"} <= written
    missing = sorted(written - documented_fields())
    assert not missing, f"docs/hl7.md does not say where these come from: {missing}"
