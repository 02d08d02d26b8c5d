"""A 12-lead from the box to the ER: stored, sent first, compressed, read back, answered.

Real parts: SQLite stores, the HL7 writer checked by hl7apy, the gateway's reader.
The end-to-end run on a real Mosquitto is in test_ecg_e2e.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zlib
import zoneinfo
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers.ecg.record import (
    MAX_AGE,
    STANDARD_LEADS,
    EcgRecord,
    limb_lead_errors,
    to_decoded,
)
from device_drivers.simulators.ecg_cart import synthetic_12_lead
from edge_agent.clock import SystemClock
from edge_agent.model import Frame, RecordingContext, Statement
from edge_agent.recorder import (
    KIND_ADT_A14,
    PRIORITY_ECG,
    PRIORITY_STEMI,
    STEMI_ALARM_CODE,
    Recorder,
)
from edge_agent.stemi import acute_mi_statement
from edge_agent.store import StoreWriter
from sync import topics
from sync.gateway.ecg import NotAnEcg, ecg_from_message
from sync.gateway.service import _inflate
from sync.hl7.adt import PrearrivalNotice, build_adt_a14
from sync.hl7.er7 import one_line as er7_one_line
from sync.hl7.inbound import parse_inbound
from sync.hl7.pcd01 import DeviceIdentity, StoredWaveform, build_oru_r01
from sync.outbox_messages import build_message
from sync.uplink import wire_payload

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
T0 = dt.datetime(2026, 11, 23, 9, 30, 0)
CART = DeviceIdentity("cart-1", "ecg-scp", None, "MDC_DEV_SPEC_PROFILE_HYDRA")


def twelve_lead(
    seconds: float = 10.0, statements: tuple[str, ...] = ("Sinus rhythm",)
) -> EcgRecord:
    """The simulated cart's recording (consistent limb leads), with these statements."""
    record = synthetic_12_lead(seconds=seconds, seed=1, start=T0)
    return dataclasses.replace(record, statements=tuple(Statement(s) for s in statements))


def test_the_synthetic_12_lead_is_consistent() -> None:
    assert limb_lead_errors(twelve_lead(1.0)) == []


# --- the message -------------------------------------------------------------------------


def waves(record: EcgRecord) -> list[StoredWaveform]:
    start = record.start_time.replace(tzinfo=TZ) if record.start_time else dt.datetime.now(TZ)
    return [
        StoredWaveform(w.metric, record.rate_hz, w.scale, w.unit, w.samples, start)
        for w in to_decoded(record).waveforms
    ]


def test_a_12_lead_message_validates_and_reads_back_exactly() -> None:
    record = twelve_lead(0.05, statements=("Sinus rhythm", "ACUTE MI / STEMI", "急性前壁心肌梗死"))
    text = build_oru_r01(
        control_id="ECG-1",
        agent_id="amb-017",
        sent_at=dt.datetime(2026, 11, 23, 9, 31, tzinfo=TZ),
        device=CART,
        patient=None,
        observations=[],
        waveforms=waves(record),
        statements=[s.text for s in record.statements],
        verify=True,  # byte-identical to hl7apy's strict build, which validates
    )
    segments = text.split("\r")
    assert segments[2:5] == [
        "NTE|1||Sinus rhythm",
        "NTE|2||ACUTE MI / STEMI",
        "NTE|3||急性前壁心肌梗死",
    ]
    na = [s for s in segments if s.startswith("OBX") and s.split("|")[2] == "NA"]
    assert [s.split("|")[3].split("^")[1] for s in na] == [
        f"MDC_ECG_ELEC_POTL_{lead.upper()}" for lead in STANDARD_LEADS
    ]
    assert "0^MDC_ATTR_SAMP_RATE^MDC|1.0.1.2.1|500|264640^MDC_DIM_HZ^MDC" in text
    assert "2327^MDC_ATTR_NU_MSMT_RES^MDC|1.0.1.2.2|5|266419^MDC_DIM_MICRO_VOLT^MDC" in text

    message = parse_inbound(text)
    assert message.statements == ("Sinus rhythm", "ACUTE MI / STEMI", "急性前壁心肌梗死")
    back = ecg_from_message(message)
    assert back is not None
    assert dict(back.leads) == dict(record.leads)
    assert (back.rate_hz, back.uv_per_unit) == (Decimal(500), Decimal(5))
    # The start stays in the offset the box wrote: the sheet prints the crew's local time.
    assert back.start_time == T0.replace(tzinfo=TZ)
    assert back.start_time is not None and back.start_time.hour == T0.hour
    assert back.start_time.utcoffset() == dt.timedelta(hours=8)


def test_decimal_samples_from_other_senders_are_read_exactly() -> None:
    # A monitor that sends millivolts as decimals (PCD examples): -0.125 mV at 0.001 mV.
    text = build_oru_r01(
        control_id="ECG-2",
        agent_id="amb-017",
        sent_at=dt.datetime(2026, 11, 23, 9, 31, tzinfo=TZ),
        device=CART,
        patient=None,
        observations=[],
        waveforms=[
            StoredWaveform(
                "MDC_ECG_ELEC_POTL_II",
                Decimal(250),
                Decimal("0.001"),
                "MDC_DIM_MILLI_VOLT",
                (1, 2),
                dt.datetime(2026, 11, 23, 9, 30, tzinfo=TZ),
            )
        ],
    )
    text = text.replace("|1^2|", "|-0.125^0.5|")
    (wave,) = [o for o in parse_inbound(text).observations if o.samples is not None]
    assert (wave.samples, wave.sample_exponent) == ((-125, 500), -3)
    # One lead is a monitor's strip, not a 12-lead: stored, not drawn as a sheet.
    assert ecg_from_message(parse_inbound(text)) is None


def test_samples_that_are_not_numbers_are_an_ae() -> None:
    record = twelve_lead(0.01)
    text = build_oru_r01(
        control_id="ECG-3",
        agent_id="amb-017",
        sent_at=dt.datetime(2026, 11, 23, 9, 31, tzinfo=TZ),
        device=CART,
        patient=None,
        observations=[],
        waveforms=waves(record)[:1],
    )
    bad = text.replace("|1.0.1.1|", "|1.0.1.1|x^", 1)
    from sync.hl7.errors import Hl7Error

    with pytest.raises(Hl7Error) as caught:
        parse_inbound(bad)
    assert (
        caught.value.ack_code == "AE"
        and "OBX-5 sample 1 is not an HL7 NM decimal" in caught.value.reason
    )
    assert "'x'" not in caught.value.reason  # the field named, not its value


def test_leads_without_their_rate_row_are_not_an_ecg() -> None:
    record = twelve_lead(0.01)
    text = build_oru_r01(
        control_id="ECG-4",
        agent_id="amb-017",
        sent_at=dt.datetime(2026, 11, 23, 9, 31, tzinfo=TZ),
        device=CART,
        patient=None,
        observations=[],
        waveforms=waves(record)[:2],
    )
    cut = "\r".join(s for s in text.split("\r") if "MDC_ATTR_SAMP_RATE" not in s)
    with pytest.raises(NotAnEcg, match="no MDC_ATTR_SAMP_RATE row"):
        ecg_from_message(parse_inbound(cut))


# --- compression on the wire -------------------------------------------------------------


def test_a_12_lead_goes_compressed_and_within_the_wire_budget() -> None:
    record = twelve_lead(10.0)
    text = build_oru_r01(
        control_id="ECG-5",
        agent_id="amb-017",
        sent_at=dt.datetime(2026, 11, 23, 9, 31, tzinfo=TZ),
        device=CART,
        patient=None,
        observations=[],
        waveforms=waves(record),
    )
    body, content_type = wire_payload(text)
    assert content_type == topics.CONTENT_TYPE_HL7_ZLIB
    assert topics.compression_of(content_type) == "zlib"
    raw_int16 = 12 * 5000 * 2
    assert len(body) < raw_int16  # the budget: under 1.0 x raw int16
    assert _inflate(body, 1 << 20).decode() == text
    small, plain = wire_payload("MSH|^~\\&|x")
    assert plain == topics.CONTENT_TYPE_HL7 and small == b"MSH|^~\\&|x"


def test_inflating_is_capped_and_broken_streams_are_refused() -> None:
    bomb = zlib.compress(b"0" * (2 << 20), 9)  # 2 MiB of zeros in ~2 kB
    with pytest.raises(ValueError, match="more than the"):
        _inflate(bomb, 1 << 20)
    with pytest.raises(ValueError, match="not a zlib stream"):
        _inflate(b"not zlib at all", 1 << 20)
    with pytest.raises(ValueError, match="truncated"):
        _inflate(zlib.compress(b"x" * 5000)[:-6], 1 << 20)


# --- the recorder: first in line, STEMI raises the pre-alert --------------------------------


def ecg_frame(clock: SystemClock, data: bytes = b"<file bytes>") -> Frame:
    return Frame("cart-1", "ecg-scp", data, clock.wall_ns(), clock.mono_ns(), clock.boot_id)


def test_a_12_lead_is_stored_whole_and_queued_ahead_of_vitals(tmp_path: Path) -> None:
    store = StoreWriter.open(tmp_path / "agent.db")
    clock = SystemClock.create()
    record = twelve_lead(2.0)
    try:
        recorder = Recorder(store)
        with store.transaction():
            done = recorder.record(ecg_frame(clock), lambda _b: to_decoded(record))
        row = store.outbox.get(done.message_id or "")
        assert row is not None and row.priority == PRIORITY_ECG
        assert done.raw_frame_id is not None
        stored = store.frames.waveforms(done.raw_frame_id)
        assert {w.metric: w.samples for w in stored} == {
            w.metric: w.samples for w in to_decoded(record).waveforms
        }
        assert [s.text for s in store.ecg.statements(done.raw_frame_id)] == ["Sinus rhythm"]
        assert store.prealerts.recent() == []
        text = build_message(
            store, row, agent_id="amb-017", tz="Asia/Shanghai", now_wall_ns=clock.wall_ns()
        )
        back = ecg_from_message(parse_inbound(text))
        assert back is not None and dict(back.leads) == dict(record.leads)
        assert back.measurements == record.measurements
    finally:
        store.close()


def test_a_stemi_12_lead_raises_the_alarm_and_a_pre_arrival_notice_first(tmp_path: Path) -> None:
    store = StoreWriter.open(tmp_path / "agent.db")
    clock = SystemClock.create()
    record = twelve_lead(
        1.0, statements=("Sinus rhythm", "Anterior infarct, possibly acute", "*** ACUTE MI ***")
    )
    try:
        with store.transaction():
            done = Recorder(store).record(ecg_frame(clock), lambda _b: to_decoded(record))
        due = store.outbox.due(clock.wall_ns() + 1, 10)
        assert [r.priority for r in due] == [PRIORITY_STEMI, PRIORITY_STEMI, PRIORITY_STEMI]
        assert sorted(r.kind for r in due) == sorted(["oru_r01", KIND_ADT_A14, "oru_r40"])
        alerts = store.conn.execute("SELECT code, priority, text_en FROM alert").fetchall()
        # The finding, not the cart's words (free text a cart may write the patient into).
        assert alerts == [(STEMI_ALARM_CODE, "high", "12-lead: the cart reads acute MI / STEMI")]
        (notice,) = store.prealerts.recent()
        assert notice.stemi and notice.source == "ecg" and notice.ecg_frame_id == done.raw_frame_id
        adt = next(r for r in due if r.kind == KIND_ADT_A14)
        text = build_message(
            store, adt, agent_id="amb-017", tz="Asia/Shanghai", now_wall_ns=clock.wall_ns()
        )
        message = parse_inbound(text)
        assert message.message_type == "ADT^A14" and message.prearrival is not None
        assert (
            message.prearrival.complaint == "STEMI on 12-lead ECG: Anterior infarct, possibly acute"
        )
        assert message.patient_national_id == f"amb-017-{notice.id}"  # unidentified: the box's id
    finally:
        store.close()


def test_an_ecg_file_without_leads_is_kept_but_not_sent(tmp_path: Path) -> None:
    from edge_agent.model import Decoded

    store = StoreWriter.open(tmp_path / "agent.db")
    clock = SystemClock.create()
    try:
        with store.transaction():
            done = Recorder(store).record(ecg_frame(clock), lambda _b: Decoded())
        assert done.outcome == "empty" and done.message_id is None
    finally:
        store.close()


# --- which statements call the cath lab ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "acute"),
    [
        ("*** ACUTE MI ***", True),
        ("ACUTE MI / STEMI", True),
        ("Anterior infarct, possibly acute", True),
        ("Inferior injury pattern, consider acute infarct", True),
        ("ST elevation, consider anterior injury or acute infarct", True),
        ("Meets ST elevation MI criteria", True),
        ("STEMI", True),
        ("急性前壁心肌梗死", True),
        ("ST段抬高型心肌梗死", True),
        ("急性下壁心梗", True),
        ("Sinus rhythm", False),
        ("Normal ECG", False),
        ("Inferior infarct, age undetermined", False),
        ("Old anterior infarct", False),
        ("No acute MI", False),
        ("陈旧性下壁心肌梗死", False),
        ("窦性心律", False),
        ("Nonspecific ST abnormality", False),
    ],
)
def test_acute_mi_statements(text: str, acute: bool) -> None:
    assert (acute_mi_statement([Statement(text)]) is not None) is acute


def test_a_coded_acute_mi_statement_counts() -> None:
    assert acute_mi_statement([Statement("", "MDC_ECG_MI_ACUTE")]) is not None


# --- the pre-arrival notice ----------------------------------------------------------------


@settings(max_examples=40)
@given(
    complaint=st.text(min_size=1, max_size=300).filter(lambda s: s.strip()),
    destination=st.one_of(st.none(), st.text(min_size=1, max_size=40).filter(lambda s: s.strip())),
    eta=st.one_of(st.none(), st.integers(0, 600)),
    national_id=st.sampled_from([None, "11010519491231002X"]),
)
def test_pre_arrival_notices_validate_and_read_back(
    complaint: str, destination: str | None, eta: int | None, national_id: str | None
) -> None:
    now = dt.datetime(2026, 11, 23, 9, 40, tzinfo=TZ)
    notice = PrearrivalNotice(
        control_id="A14-1",
        agent_id="amb-017",
        sent_at=now,
        recorded_at=now,
        patient_national_id=national_id,
        patient_name="王秀英" if national_id else None,
        local_patient_id="amb-017-1",
        destination=destination,
        complaint=complaint,
        eta=None if eta is None else now + dt.timedelta(minutes=eta),
    )
    text = build_adt_a14(notice, verify=True)
    back = parse_inbound(text)
    assert back.prearrival is not None
    assert back.patient_national_id == (national_id or "amb-017-1")
    assert back.prearrival.expected_at == notice.eta
    from sync.hl7.er7 import one_line

    if len(complaint) < 150 and one_line(complaint):
        assert back.prearrival.complaint == one_line(complaint)  # what the crew typed, one line


# --- the cart's model and the patient's sex and age, through the message -----------------

_CONTEXT_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from("|^~&\\"),
    max_size=90,
)


@settings(max_examples=25, deadline=None)  # hl7apy's strict build: ~0.2 s an example
@given(
    st.builds(
        RecordingContext,
        device_model=st.none() | _CONTEXT_TEXT,
        patient_sex=st.sampled_from([None, "M", "F", "O", "U", "x|y"]),
        patient_age=st.none() | st.integers(0, 54900),
        patient_age_unit=st.sampled_from([None, "MDC_DIM_YR", "MDC_DIM_DAY", "MDC_DIM_HR"]),
    )
)
def test_the_carts_context_reaches_the_gateway(context: RecordingContext) -> None:
    record = twelve_lead(0.02)
    text = build_oru_r01(
        control_id="ECG-CTX",
        agent_id="amb-017",
        sent_at=dt.datetime(2026, 11, 23, 9, 31, tzinfo=TZ),
        device=CART,
        patient=None,
        observations=[],
        waveforms=waves(record),
        context=context,
        verify=True,  # byte-identical to hl7apy strict
    )
    back = ecg_from_message(parse_inbound(text))
    assert back is not None
    model = er7_one_line(context.device_model or "").strip()[:64].strip() or None
    assert back.device == model
    assert back.patient_sex == (
        context.patient_sex if context.patient_sex in ("M", "F", "O") else None
    )
    age = context.patient_age if context.patient_age_unit else None
    if age is not None and context.patient_age_unit and age > MAX_AGE[context.patient_age_unit]:
        age = None  # not an age a person has: the gateway leaves it out
    assert back.patient_age == age
    assert back.patient_age_unit == (None if age is None else context.patient_age_unit)
    assert dict(back.leads) == dict(record.leads)
