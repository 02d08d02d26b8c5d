"""A 12-lead as the gateway receives it: from the message's rows back to an EcgRecord.

The agent sends a 12-lead as one ORU^R01 (sync.hl7.pcd01): per lead an NA row of
integers with OBX-4 <id>, its sample rate in row <id>.1 and its resolution in row
<id>.2; the cart's measurements as NM rows; its statements as NTE rows; the cart's
model and the patient's sex and age as the cart had them as MDS rows (MDC_ATTR_ID_MODEL,
MDC_ATTR_PT_SEX, MDC_ATTR_PT_AGE). The acquisition time stays aware, in the offset
the box wrote (its local time), so the sheet prints local time with it. This module
puts them back together for the ER's sheet (ecg_sheet) and the `ecg_record` table.
Pure: no store, no files.
"""

from __future__ import annotations

from decimal import Decimal

from device_drivers.ecg.record import (
    AGE_UNITS,
    LEAD_BY_METRIC,
    MEASUREMENT_BY_METRIC,
    EcgRecord,
    patient_age,
)
from edge_agent.model import Statement
from sync.hl7 import er7
from sync.hl7.inbound import InboundMessage, InboundObservation

_TO_MICROVOLT = {
    "MDC_DIM_MICRO_VOLT": Decimal(1),
    "MDC_DIM_MILLI_VOLT": Decimal(1000),
    "MDC_DIM_VOLT": Decimal(1_000_000),
}


# A 12-lead cart sends 8 to 12 leads (8: I, II, V1-V6 with the limb leads derived);
# monitors' strips carry one to three ECG leads and are stored, not drawn as a sheet.
MIN_LEADS = 8


class NotAnEcg(ValueError):
    """The message's waveforms cannot be read as one 12-lead (says why)."""


def ecg_from_message(message: InboundMessage) -> EcgRecord | None:
    """The 12-lead the message carries; None when it has no ECG lead rows."""
    rows = message.observations
    by_sub_id = {o.sub_id: o for o in rows if o.sub_id}
    leads: dict[str, tuple[int, ...]] = {}
    rates: set[Decimal] = set()
    scales: set[Decimal] = set()
    start = None
    for row in rows:
        lead = LEAD_BY_METRIC.get(row.metric)
        if lead is None or row.samples is None:
            continue
        rate, resolution = _attributes(row, by_sub_id)
        rates.add(rate)
        scales.add(resolution)
        leads[lead] = row.samples
        start = start or row.observed_at
    if len(leads) < MIN_LEADS:
        return None  # a monitor's strip (lead II, pleth ...), not a 12-lead
    if len(rates) != 1:
        raise NotAnEcg(f"leads at different sample rates: {sorted(rates)}")
    if len(scales) != 1:
        raise NotAnEcg(f"leads at different resolutions: {sorted(scales)} uV")
    measurements = {
        MEASUREMENT_BY_METRIC[o.metric]: Decimal(o.value)
        for o in rows
        if o.metric in MEASUREMENT_BY_METRIC and o.value is not None and o.samples is None
    }
    model, sex, age = _context(rows)
    return EcgRecord(
        leads=leads,
        rate_hz=rates.pop(),
        uv_per_unit=scales.pop(),
        # Aware, in the offset the box wrote (its local time): the sheet prints it so.
        start_time=start,
        measurements=measurements,
        statements=tuple(Statement(text) for text in message.statements),
        patient_id=message.patient_national_id,
        patient_name=message.patient_name,
        device=model,
        patient_sex=sex,
        patient_age=None if age is None else age[0],
        patient_age_unit=None if age is None else age[1],
    )


def _context(
    rows: tuple[InboundObservation, ...],
) -> tuple[str | None, str | None, tuple[int, str] | None]:
    """The cart's model, the patient's sex and age (sync.hl7.pcd01 `_context_rows`).
    A row that does not read as one is left out: the sheet shows "—" there."""
    model = sex = None
    age: tuple[int, str] | None = None
    for row in rows:
        if row.value is None:
            continue
        if row.metric == "MDC_ATTR_ID_MODEL":
            # ER7 as sent: agents write with the default delimiters (MSH-2 "^~\\&").
            model = er7.unescape(row.value, er7.DEFAULT).strip() or None
        elif row.metric == "MDC_ATTR_PT_SEX":
            code = row.value.split(er7.DEFAULT.component, 1)[0].strip()
            sex = code if code in ("M", "F", "O") else None
        elif row.metric == "MDC_ATTR_PT_AGE" and row.unit in AGE_UNITS:
            text = row.value.strip()
            if text.isascii() and text.isdigit() and len(text) <= 6:
                age = patient_age(int(text), row.unit)
    return model, sex, age


def _attributes(
    row: InboundObservation, by_sub_id: dict[str, InboundObservation]
) -> tuple[Decimal, Decimal]:
    rate_row = by_sub_id.get(f"{row.sub_id}.1")
    res_row = by_sub_id.get(f"{row.sub_id}.2")
    if rate_row is None or rate_row.value is None or rate_row.metric != "MDC_ATTR_SAMP_RATE":
        raise NotAnEcg(f"{row.metric}: no MDC_ATTR_SAMP_RATE row {row.sub_id}.1")
    if res_row is None or res_row.value is None or res_row.metric != "MDC_ATTR_NU_MSMT_RES":
        raise NotAnEcg(f"{row.metric}: no MDC_ATTR_NU_MSMT_RES row {row.sub_id}.2")
    to_uv = _TO_MICROVOLT.get(res_row.unit or "")
    if to_uv is None:
        raise NotAnEcg(f"{row.metric}: resolution unit {res_row.unit} is not a voltage")
    rate = Decimal(rate_row.value)
    if rate <= 0:
        raise NotAnEcg(f"{row.metric}: sample rate {rate}")
    resolution = Decimal(res_row.value) * to_uv * Decimal(10) ** row.sample_exponent
    return rate, resolution.normalize()
