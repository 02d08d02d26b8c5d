"""The store's repositories, one aggregate each, through the writer and the readers.

The recorder, uplink and CLI tests cover the repositories on their way; these pin what
each one promises on its own (the rules their callers rely on), and that a reader has
no way to write.
"""

from __future__ import annotations

import dataclasses
import inspect
import sqlite3
import typing
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from box_keys import KEYS

import edge_agent.store as store_package
from edge_agent.model import Frame, Reading, RecordingContext, SourcePatient, Statement, Waveform
from edge_agent.store import (
    AlertRow,
    Alerts,
    AlertsReader,
    Audit,
    AuditReader,
    Devices,
    DevicesReader,
    Ecg,
    EcgReader,
    Frames,
    FramesReader,
    Meta,
    MetaReader,
    OperationLog,
    OperationLogReader,
    Outbox,
    OutboxReader,
    Patients,
    PatientsReader,
    Prealerts,
    PrealertsReader,
    Quarantine,
    QuarantineReader,
    StoreReader,
    StoreWriter,
    Users,
    UsersReader,
    open_readonly,
)

# (reader, writer) of every repository, and the attribute both stores carry it under.
REPOSITORIES = {
    "frames": (FramesReader, Frames),
    "outbox": (OutboxReader, Outbox),
    "patients": (PatientsReader, Patients),
    "alerts": (AlertsReader, Alerts),
    "devices": (DevicesReader, Devices),
    "ecg": (EcgReader, Ecg),
    "prealerts": (PrealertsReader, Prealerts),
    "quarantine": (QuarantineReader, Quarantine),
    "meta": (MetaReader, Meta),
    "operation_log": (OperationLogReader, OperationLog),
    "users": (UsersReader, Users),
    "audit": (AuditReader, Audit),
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreWriter]:
    s = StoreWriter.open(tmp_path / "agent.sqlite3", KEYS)
    yield s
    s.close()


def frame(device: str = "monitor-1", wall_ns: int = 1_000, boot: str = "boot-1") -> Frame:
    return Frame(device, "masimo-ascii", b"line", wall_ns, wall_ns, boot)


def public(cls: type) -> set[str]:
    return {n for n, _ in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}


# --- the writer and the readers --------------------------------------------------------


def test_the_writer_and_a_reader_carry_the_same_repositories(store: StoreWriter) -> None:
    reader = open_readonly(store.path)
    try:
        for name, (reader_cls, writer_cls) in REPOSITORIES.items():
            assert type(getattr(store, name)) is writer_cls
            assert type(getattr(reader, name)) is reader_cls
            assert issubclass(writer_cls, reader_cls)  # a writer reads as a reader does
    finally:
        reader.close()


def test_a_reader_has_no_write_and_its_connection_refuses_one(store: StoreWriter) -> None:
    with store.transaction():
        raw_id = store.frames.insert(frame(), None)
        store.outbox.insert(
            "m-1",
            kind="oru_r01",
            priority=5,
            raw_frame_id=raw_id,
            created_wall_ns=1,
            created_mono_ns=1,
            boot_id="b",
        )
    reader = open_readonly(store.path)
    try:
        assert isinstance(reader, StoreReader) and not isinstance(reader, StoreWriter)
        assert not hasattr(reader, "transaction") and not hasattr(reader, "migrate")
        for name, (reader_cls, writer_cls) in REPOSITORIES.items():
            writes = public(writer_cls) - public(reader_cls)
            assert writes, f"{name}: a writer without writes"
            assert not any(hasattr(getattr(reader, name), w) for w in writes), name
        # Even a writer's repository put on the reader's connection cannot write: SQLite
        # opened it read-only (mode=ro).
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            Outbox(reader.conn).mark_sent("m-1", 2)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            Meta(reader.conn).set("agent_id", "amb-017")
        assert reader.outbox.get("m-1") == store.outbox.get("m-1")
        assert reader.outbox.counts()["pending"] == 1
        assert reader.meta.get("agent_id") is None
    finally:
        reader.close()


def test_rows_are_frozen_slotted_dataclasses_or_typed_dicts() -> None:
    rows = [
        getattr(store_package, name)
        for name in store_package.__all__
        if name.endswith(("Row", "Source", "Segment", "Message", "Context", "Delivery"))
        or name
        in {
            "AlertSummary",
            "DevicePatient",
            "DeviceReport",
            "HeldFrame",
            "HeldReading",
            "QuarantineCounts",
            "QuarantineReason",
            "QuarantinedFrame",
            "RejectedMessage",
            "WaveformStats",
        }
    ]
    assert len(rows) >= 25
    for row in rows:
        if typing.is_typeddict(row):
            continue
        params = row.__dataclass_params__
        assert params.frozen and hasattr(row, "__slots__"), row.__name__


# --- frames -----------------------------------------------------------------------------


def wave(samples: tuple[int, ...], scale: str = "1.0") -> Waveform:
    return Waveform("MDC_ECG_ELEC_POTL_II", 250.0, "MDC_DIM_MICRO_VOLT", samples, Decimal(scale))


def test_frames_join_a_devices_waves_until_their_resolution_changes(store: StoreWriter) -> None:
    with store.transaction():
        for n, (samples, scale) in enumerate([((1, 2), "1.0"), ((3,), "1.0"), ((4,), "2.5")]):
            f = frame(wall_ns=1_000 + n)
            store.frames.insert_waveforms(
                store.frames.insert(f, None), f, None, [wave(samples, scale)]
            )
    (joined,) = store.frames.waves_between("monitor-1", 1_000, 1_002)
    assert joined.samples == (1, 2, 3)
    (after,) = store.frames.waves_between("monitor-1", 1_000, 1_003)
    assert (after.samples, after.scale) == ((4,), Decimal("2.5"))  # a change starts over
    assert store.frames.wave_devices_since(0) == [("monitor-1", 1_002)]
    assert store.frames.waveform_stats()["segments"] == 3


def visit_of(store: StoreWriter, national_id: str) -> int:
    patient_id = store.patients.add(
        national_id=national_id, name="张三", phone=None, sex="M", birth_date=None, wall_ns=1
    )
    return store.patients.open_encounter(
        patient_id=patient_id, station="*", patient_class="E", wall_ns=1, ended_wall_ns=2
    )


def test_a_frame_remembers_its_source_its_visit_and_its_key(store: StoreWriter) -> None:
    patient = SourcePatient("110101199003074514", name="ZHANG^SAN")
    with store.transaction():
        keyed = dataclasses.replace(frame(), dedup_key="MSH-10-1")
        raw_id = store.frames.insert(keyed, "2A35")
        store.frames.insert_source(
            raw_id, device_eui64="00A037009B000001", patient=patient, national_id=None
        )
        store.frames.insert_observations(
            raw_id, keyed, None, [Reading("MDC_PULS_OXIM_SAT_O2", Decimal("97"), "MDC_DIM_PERCENT")]
        )
    assert not store.frames.seen_dedup_key("monitor-1", "MSH-10-1")  # not yet recorded
    with store.transaction():
        store.frames.set_outcome(raw_id, "decoded")
        visit = visit_of(store, "110101199003074514")
        store.frames.assign_encounter(raw_id, visit)
    assert store.frames.seen_dedup_key("monitor-1", "MSH-10-1")
    assert not store.frames.seen_dedup_key("monitor-2", "MSH-10-1")
    row = store.frames.get(raw_id)
    assert row is not None
    assert (row.channel, row.outcome, row.encounter_id) == ("2A35", "decoded", visit)
    assert [o.encounter_id for o in store.frames.observations(raw_id)] == [visit]
    source = store.frames.source(raw_id)
    assert source is not None and source.patient == patient and not source.conflict
    assert store.frames.get(raw_id + 1) is None and store.frames.source(raw_id + 1) is None


def test_latest_readings_are_scoped_by_flag(store: StoreWriter) -> None:
    glucose = "MDC_CONC_GLU_CAPILLARY_PLASMA"
    with store.transaction():
        for n, flags in enumerate([("meal:fasting",), ("meal:postprandial",)]):
            f = frame(wall_ns=10 + n)
            store.frames.insert_observations(
                store.frames.insert(f, None),
                f,
                None,
                [Reading(glucose, Decimal(5 + n), "MDC_DIM_MILLI_MOLE_PER_L", flags=flags)],
            )
    newest = store.frames.latest_readings([glucose], 0, None)
    fasting = store.frames.latest_readings([glucose], 0, None, flag="meal:fasting")
    assert (newest[glucose][0].value, newest[glucose][1]) == (Decimal(6), 11)
    assert (fasting[glucose][0].value, fasting[glucose][1]) == (Decimal(5), 10)
    assert store.frames.latest_readings([glucose], 12, None) == {}


# --- outbox -----------------------------------------------------------------------------


def queue(store: StoreWriter, message_id: str, priority: int, **kwargs: typing.Any) -> None:
    store.outbox.insert(
        message_id,
        kind="oru_r01",
        priority=priority,
        raw_frame_id=kwargs.pop("raw_frame_id", None),
        created_wall_ns=kwargs.pop("created_wall_ns", 1),
        created_mono_ns=1,
        boot_id="b",
        **kwargs,
    )


def test_the_outbox_sends_the_most_urgent_first_and_keeps_the_first_payload(
    store: StoreWriter,
) -> None:
    with store.transaction():
        queue(store, "vitals", 5)
        queue(store, "stemi", 0, created_wall_ns=2)
        queue(store, "later", 5, created_wall_ns=3)
    assert [r.id for r in store.outbox.due(10, 2)] == ["stemi", "vitals"]
    assert [r.id for r in store.outbox.due(10, 2, exclude=("stemi",))] == ["vitals", "later"]
    with store.transaction():
        store.outbox.set_payload("stemi", "MSH|first")
        store.outbox.set_payload("stemi", "MSH|second")
        store.outbox.mark_sent("stemi", 5)
        store.outbox.mark_retry("stemi", error="no ACK within 30 s", next_attempt_wall_ns=100)
    row = store.outbox.get("stemi")
    assert row is not None and (row.payload, row.attempts, row.status) == (
        "MSH|first",
        1,
        "pending",
    )
    assert [r.id for r in store.outbox.due(10, 5)] == ["vitals", "later"]  # backing off
    assert store.outbox.get("nope") is None


def test_held_frames_say_why_and_are_released_once(store: StoreWriter) -> None:
    with store.transaction():
        f = frame("cuff-1")
        raw_id = store.frames.insert(f, None)
        store.frames.insert_observations(
            raw_id, f, None, [Reading("MDC_PRESS_BLD_NONINV_SYS", Decimal(120), "MDC_DIM_MMHG")]
        )
        queue(store, "held-1", 5, raw_frame_id=raw_id, held=True)
    (held,) = store.outbox.held_frames()
    assert held["frame_id"] == raw_id and held["reason"] == "no-visit"
    assert held["readings"] == [
        {"metric": "MDC_PRESS_BLD_NONINV_SYS", "value": "120", "unit": "MDC_DIM_MMHG", "time": None}
    ]
    assert held["device_patient"] is None
    assert store.outbox.held_frames("monitor-1") == []
    assert store.outbox.held_counts() == {"no-visit": 1}
    with store.transaction():
        assert store.outbox.release_held(raw_id)
        assert not store.outbox.release_held(raw_id)
    assert store.outbox.held_frames() == [] and store.outbox.counts()["pending"] == 1


# --- patients and visits ----------------------------------------------------------------


def test_one_open_visit_per_station_and_the_device_before_the_box(store: StoreWriter) -> None:
    with store.transaction():
        pid = store.patients.add(
            national_id="110101199003074514",
            name="张三",
            phone=None,
            sex="M",
            birth_date="1990-03-07",
            wall_ns=1,
        )
        box = store.patients.open_encounter(
            patient_id=pid, station="*", patient_class="E", wall_ns=1
        )
        first = store.patients.open_encounter(
            patient_id=pid, station="cuff-1", patient_class="O", wall_ns=2
        )
        second = store.patients.open_encounter(
            patient_id=pid, station="cuff-1", patient_class="O", wall_ns=3
        )
        afterwards = store.patients.open_encounter(
            patient_id=pid, station="cuff-1", patient_class="O", wall_ns=0, ended_wall_ns=4
        )
    # The second ended the first; the visit recorded afterwards left the second open.
    current = store.patients.current_encounter("cuff-1")
    assert current is not None and current.id == second
    assert first not in (second, afterwards) and store.patients.encounter(afterwards) is not None
    other = store.patients.current_encounter("monitor-1")
    assert other is not None and other.id == box
    assert store.patients.by_national_id("110101199003074514") == store.patients.get(pid)
    assert [p.name for p in store.patients.all()] == ["张三"]
    with store.transaction():
        assert store.patients.close_encounters("cuff-1", 5) == 1


def test_news2_observations_age_out_but_the_scale_stays(store: StoreWriter) -> None:
    subject = "encounter:1"
    assert store.patients.news2_context(subject, 0).scale == 1  # the default
    with store.transaction():
        store.patients.add_news2_observation(
            subject, scale=2, oxygen=True, acvpu="A", by="doctor", wall_ns=10
        )
    assert dataclasses.astuple(store.patients.news2_context(subject, 5)) == (2, True, "A")
    assert dataclasses.astuple(store.patients.news2_context(subject, 11)) == (2, None, None)


# --- alerts -----------------------------------------------------------------------------


def test_an_alert_is_open_until_cleared_and_acknowledged_once(store: StoreWriter) -> None:
    alert = AlertRow(
        id=0,
        raw_frame_id=None,
        device_id="monitor-1",
        source="device",
        code="SPO2_LOW",
        priority="high",
        text="SpO2 LOW",
        text_en="SpO2 LOW",
        condition_key="SPO2_LOW",
        subject="device:monitor-1",
        state="active",
        raised_wall_ns=1,
    )
    with store.transaction():
        alert_id = store.alerts.insert(alert)
        store.outbox.insert(
            "r40-1",
            kind="oru_r40",
            priority=0,
            raw_frame_id=None,
            created_wall_ns=1,
            created_mono_ns=1,
            boot_id="b",
        )
        store.alerts.link_message("r40-1", alert_id, "start")
        store.alerts.touch(alert_id, 2)
    found = store.alerts.open_for("device:monitor-1", "SPO2_LOW")
    assert found is not None and (found.id, found.last_seen_wall_ns) == (alert_id, 2)
    message = store.alerts.for_message("r40-1")
    assert message is not None and (message.alert.id, message.phase) == (alert_id, "start")
    with store.transaction():
        store.alerts.clear(alert_id, 3)
        assert store.alerts.ack(alert_id, "doctor", 4)
        assert store.alerts.ack(alert_id, "nurse", 5)  # known; the first one is kept
        assert not store.alerts.ack(alert_id + 1, "doctor", 4)
    after = store.alerts.get(alert_id)
    assert after is not None and (after.state, after.ack_user) == ("cleared", "doctor")
    assert store.alerts.open_for("device:monitor-1", "SPO2_LOW") is None
    assert store.alerts.recent() == [] and len(store.alerts.recent(include_cleared=True)) == 1
    assert store.alerts.summaries()[0]["state"] == "cleared"


# --- devices ----------------------------------------------------------------------------


def test_devices_keep_counters_state_and_pairings(store: StoreWriter) -> None:
    with store.transaction():
        store.devices.count_frame(frame("not-configured"), quarantined=True)
        store.devices.upsert("monitor-1", driver="masimo-ascii", transport="serial", port="/dev/x")
        store.devices.mark_line_rejecting("monitor-1", "wrong driver or baud rate", 2)
        store.devices.set_state("monitor-1", "disconnected", "device gone", 3)
        store.devices.mark_line_rejecting("monitor-1", "wrong driver or baud rate", 4)
        assert not store.devices.set_eui64("station", "0000000000000001", source="derived")
        store.devices.pair(
            "c4:7c:8d:6a:00:17", device_id="bp-6a0017", driver="ble-bp", name=None, wall_ns=5
        )
    unknown = store.devices.get("not-configured")
    assert unknown is not None and (unknown.transport, unknown.frames, unknown.quarantined) == (
        "unknown",
        1,
        1,
    )
    monitor = store.devices.get("monitor-1")
    assert monitor is not None and monitor.state == "disconnected"  # not hidden by rejects
    assert [d["id"] for d in store.devices.all()] == ["monitor-1", "not-configured"]
    (paired,) = store.devices.paired()
    assert (paired.address, paired.device_id) == ("C4:7C:8D:6A:00:17", "bp-6a0017")
    with store.transaction():
        assert store.devices.forget("c4:7c:8d:6a:00:17")
        assert not store.devices.forget("c4:7c:8d:6a:00:17")


# --- ECG, pre-arrival notices, quarantine, meta, the operation log, status -------------------


def test_an_ecg_keeps_its_statements_in_order_and_its_context(store: StoreWriter) -> None:
    context = RecordingContext("PageWriter TC50", "F", 67, "MDC_DIM_YR")
    with store.transaction():
        f = frame("cart-1")
        raw_id = store.frames.insert(f, None)
        store.ecg.insert_statements(
            raw_id, f, None, [Statement("Sinus rhythm"), Statement("急性前壁心肌梗死", "AMI")]
        )
        store.ecg.insert_context(raw_id, context)
    assert [s.text for s in store.ecg.statements(raw_id)] == ["Sinus rhythm", "急性前壁心肌梗死"]
    assert store.ecg.context(raw_id) == context and store.ecg.context(raw_id + 1) is None


def test_prealerts_and_notices_newest_first(store: StoreWriter) -> None:
    with store.transaction():
        for n in (1, 2):
            store.prealerts.insert(
                outbox_id=f"a14-{n}",
                encounter_id=None,
                ecg_frame_id=None,
                stemi=n == 2,
                source="crew",
                destination="county ER",
                eta_minutes=12,
                complaint="chest pain",
                created_wall_ns=n,
            )
            store.prealerts.add_notice("edge/v1/amb-017/down", f'{{"n": {n}}}', n)
    assert [p.outbox_id for p in store.prealerts.recent()] == ["a14-2", "a14-1"]
    notice = store.prealerts.for_outbox("a14-2")
    assert notice is not None and notice.stemi
    assert [n["payload"] for n in store.prealerts.notices()] == ['{"n": 2}', '{"n": 1}']


def test_quarantine_counts_every_bad_frame_and_keeps_some(store: StoreWriter) -> None:
    with store.transaction():
        for n in range(3):
            f = frame("spo2-1", wall_ns=n)
            if n == 0:
                store.quarantine.insert(store.frames.insert(f, None), f, "checksum 0x12", 4)
            store.quarantine.tally(f, "checksum", f"checksum 0x1{n}", kept=n == 0)
    assert store.quarantine.counts() == {"kept": 1, "counted": 2}
    assert store.quarantine.count() == 3 and store.quarantine.kept("spo2-1") == 1
    assert store.quarantine.reason_keys("spo2-1") == {"checksum"}
    (reason,) = store.quarantine.reasons()
    assert (reason["frames"], reason["kept"], reason["last_reason"]) == (3, 1, "checksum 0x12")
    (kept,) = store.quarantine.recent()
    assert (kept["byte_offset"], kept["data_hex"]) == (4, b"line".hex().upper())


def test_meta_and_the_operation_log(store: StoreWriter) -> None:
    with store.transaction():
        store.meta.set("agent_id", "amb-016")
        store.meta.set("agent_id", "amb-017")
        store.operation_log.record(
            "alerts.ack", user="doctor", uid=1000, subject="alert:7", wall_ns=1
        )
        store.operation_log.record("visit.end", user="doctor", uid=1000, subject=None, wall_ns=2)
    assert store.meta.get("agent_id") == "amb-017" and store.meta.get("nope") is None
    assert [o["op"] for o in store.operation_log.recent()] == ["visit.end", "alerts.ack"]
    assert store.operation_log.recent(1)[0]["subject"] is None


def test_delivery_is_counted_per_reading_and_timed_within_one_boot(store: StoreWriter) -> None:
    with store.transaction():
        # The second is ACKed after a reboot: its monotonic times do not compare.
        for n, boot in enumerate(["boot-1", "boot-2", "boot-1"]):
            f = frame(wall_ns=n * 1_000_000, boot="boot-1")
            raw_id = store.frames.insert(f, None)
            store.frames.insert_observations(
                raw_id, f, None, [Reading("MDC_PULS_OXIM_SAT_O2", Decimal(97), "MDC_DIM_PERCENT")]
            )
            if n < 2:
                queue(store, f"m-{n}", 5, raw_frame_id=raw_id)
                store.outbox.mark_acked(
                    f"m-{n}",
                    code="AA",
                    text="",
                    wall_ns=0,
                    mono_ns=f.received_mono_ns + 5_000_000,
                    boot_id=boot,
                )
    delivery = store.status.reading_delivery()
    assert (delivery.recorded, delivery.chosen, delivery.delivered) == (3, 2, 2)
    assert store.status.delivery_latencies_ms() == [5.0]
