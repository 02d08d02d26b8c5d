"""Store and recorder: raw bytes first, one transaction per batch, nothing lost."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from box_keys import KEYS

from edge_agent.clock import SystemClock, new_message_id
from edge_agent.model import Decoded, DecodeError, DeviceAlarm, Frame, Reading
from edge_agent.patients import register, start_visit
from edge_agent.recorder import Recorder
from edge_agent.store import StoreError, StoreWriter, open_readonly
from edge_agent.store.schema import LATEST_VERSION, MIGRATIONS

CLOCK = SystemClock(boot_id="test-boot")


def frame(data: bytes, device: str = "monitor-1", driver: str = "masimo-ascii") -> Frame:
    return Frame(device, driver, data, CLOCK.wall_ns(), CLOCK.mono_ns(), CLOCK.boot_id)


def spo2(_: bytes) -> Decoded:
    return Decoded(
        readings=(
            Reading("MDC_PULS_OXIM_SAT_O2", Decimal("97"), "MDC_DIM_PERCENT"),
            Reading("MDC_PULS_OXIM_PULS_RATE", Decimal("72"), "MDC_DIM_BEAT_PER_MIN"),
        )
    )


def reject(_: bytes) -> Decoded:
    raise DecodeError("checksum mismatch", offset=4)


def crash(_: bytes) -> Decoded:
    raise ZeroDivisionError("bug")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreWriter]:
    s = StoreWriter.open(tmp_path / "agent.sqlite3", KEYS)
    yield s
    s.close()


def test_pragmas_and_migrations(tmp_path: Path) -> None:
    s = StoreWriter.open(tmp_path / "a.sqlite3")
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    tables = {r[0] for r in s.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "raw_frame",
        "quarantine",
        "device",
        "patient",
        "encounter",
        "observation",
        "outbox",
        "operation_log",
    } <= tables
    # Numbered 1, 2, 3 ... in order, and applying again changes nothing.
    assert [number for number, _, _ in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert s.migrate() == LATEST_VERSION == 14
    s.conn.execute("INSERT INTO schema_version VALUES (99, 'from the future', 0)")
    s.close()
    with pytest.raises(StoreError, match="newer than this program"):
        StoreWriter.open(tmp_path / "a.sqlite3")


def test_decoded_frame_is_one_transaction(store: StoreWriter) -> None:
    result = Recorder(store).record(frame(b"line"), spo2)
    assert result.outcome == "decoded" and result.observations == 2 and result.message_id
    raw = store.conn.execute(
        "SELECT data, outcome, boot_id, received_mono_ns FROM raw_frame"
    ).fetchall()
    assert raw[0][:3] == (b"line", "decoded", "test-boot") and raw[0][3] > 0
    assert result.raw_frame_id is not None
    obs = store.frames.observations(result.raw_frame_id)
    assert [(o.metric, o.value) for o in obs] == [
        ("MDC_PULS_OXIM_SAT_O2", "97"),
        ("MDC_PULS_OXIM_PULS_RATE", "72"),
    ]
    row = store.outbox.get(result.message_id)
    assert row is not None and row.status == "pending" and row.raw_frame_id == result.raw_frame_id


def test_bad_frames_are_quarantined_with_their_bytes(store: StoreWriter) -> None:
    rec = Recorder(store)
    bad = rec.record(frame(b"\x01\x02garbage"), reject)
    buggy = rec.record(frame(b"xx"), crash)
    assert (bad.outcome, buggy.outcome) == ("quarantined", "quarantined")
    rows = store.quarantine.recent()
    assert {r["reason"] for r in rows} == {
        "checksum mismatch",
        "decoder fault: ZeroDivisionError: bug",
    }
    assert {r["data_hex"] for r in rows} == {"010267617262616765", "7878"}
    assert store.outbox.counts()["pending"] == 0
    dev = store.devices.get("monitor-1")
    assert dev is not None and dev.frames == 2 and dev.quarantined == 2


def test_group_commit_is_all_or_nothing(store: StoreWriter) -> None:
    rec = Recorder(store)
    ids = iter([new_message_id(), "DUPLICATE", "DUPLICATE"])
    rec_dup = Recorder(store, new_id=lambda _: next(ids))
    rec.record(frame(b"before"), spo2)
    with pytest.raises(sqlite3.IntegrityError):
        rec_dup.record_many([(frame(b"a"), spo2), (frame(b"b"), spo2), (frame(b"c"), spo2)])
    # the failed batch left nothing behind, and what was stored before is intact
    assert [r[0] for r in store.conn.execute("SELECT data FROM raw_frame")] == [b"before"]
    assert store.frames.observation_count() == 2


def test_progress_frames_and_all_dash_lines(store: StoreWriter) -> None:
    def cuff(_: bytes) -> Decoded:
        return Decoded(
            readings=(
                Reading(
                    "MDC_PRESS_BLD_NONINV_SYS", Decimal(80), "MDC_DIM_MMHG", flags=("intermediate",)
                ),
            )
        )

    def probe_off(_: bytes) -> Decoded:
        return Decoded(
            readings=(
                Reading("MDC_PULS_OXIM_SAT_O2", None, "MDC_DIM_PERCENT", flags=("unavailable",)),
            )
        )

    rec = Recorder(store)
    assert rec.record(frame(b"cuff", "cuff-1", "ble-bp"), cuff).outcome == "progress"
    off = rec.record(frame(b"---"), probe_off)
    assert off.outcome == "decoded" and off.message_id is None  # kept locally, not sent up
    assert store.frames.observation_count() == 1


def test_device_alarms_raise_priority(store: StoreWriter) -> None:
    def alarm(_: bytes) -> Decoded:
        return Decoded(
            readings=spo2(b"").readings, alarms=(DeviceAlarm("spo2-low", "high", "SpO2 low"),)
        )

    result = Recorder(store).record(frame(b"alarm"), alarm)
    row = store.outbox.get(result.message_id or "")
    assert row is not None and row.priority == 1
    assert store.conn.execute("SELECT code, priority, state FROM alert").fetchall() == [
        ("spo2-low", "high", "active")
    ]


def test_readings_bind_to_the_open_visit_never_guessed(store: StoreWriter) -> None:
    rec = Recorder(store)
    unassigned = rec.record(frame(b"1"), spo2)
    register(store, CLOCK, national_id_number="11010519491231002X", name="张三")
    visit = start_visit(
        store,
        CLOCK,
        national_id_number="11010519491231002X",
        station="monitor-1",
        patient_class="E",
    )
    assigned = rec.record(frame(b"2"), spo2)
    other = rec.record(frame(b"3", device="cuff-1", driver="ble-bp"), spo2)
    enc: list[int | None] = []
    for r in (unassigned, assigned, other):
        assert r.raw_frame_id is not None
        enc.append(store.frames.observations(r.raw_frame_id)[0].encounter_id)
    assert enc == [None, visit, None]


def test_outbox_life_cycle(store: StoreWriter) -> None:
    rec = Recorder(store)
    a = rec.record(frame(b"a"), spo2).message_id
    b = rec.record(frame(b"b"), spo2).message_id
    assert a and b
    assert [r.id for r in store.outbox.due(CLOCK.wall_ns(), 10)] == [a, b]
    store.outbox.mark_sent(a, 1)
    assert [r.id for r in store.outbox.due(CLOCK.wall_ns(), 10)] == [b]
    assert store.outbox.mark_acked(a, code="AA", text="", wall_ns=2, mono_ns=2, boot_id="x")
    assert not store.outbox.mark_acked(
        a, code="AA", text="", wall_ns=3, mono_ns=3, boot_id="x"
    )  # duplicate ACK
    store.outbox.mark_sent(b, 1)
    assert store.outbox.requeue_unacked() == 1  # restart: b goes out again
    assert store.outbox.mark_acked(b, code="AE", text="bad OBX", wall_ns=2, mono_ns=2, boot_id="x")
    assert store.outbox.counts() == {
        "pending": 0,
        "sent": 0,
        "delivered": 1,
        "rejected": 1,
        "held": 0,
    }
    assert store.outbox.rejected()[0]["ack_text"] == "bad OBX"


def test_readonly_reader_sees_commits(store: StoreWriter) -> None:
    Recorder(store).record(frame(b"a"), spo2)
    reader = open_readonly(store.path)
    try:
        assert reader.frames.observation_count() == 2
        with pytest.raises(sqlite3.OperationalError):
            reader.conn.execute("DELETE FROM observation")
    finally:
        reader.close()


def test_message_ids_are_unique_and_sortable() -> None:
    ids = [new_message_id(1_700_000_000_000_000_000 + i * 1_000_000) for i in range(1000)]
    assert len(set(ids)) == 1000 and all(len(i) == 26 for i in ids)
    assert ids == sorted(ids)  # the 48-bit millisecond prefix orders them


def test_a_version_1_store_is_migrated_on_open_and_keeps_its_rows(tmp_path: Path) -> None:
    from sqlite_utils import Database

    path = tmp_path / "old.sqlite3"
    db = Database(str(path))
    db.execute(
        "CREATE TABLE schema_version"
        " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_wall_ns INTEGER)"
    )
    MIGRATIONS[0][2](db)
    db.execute("INSERT INTO schema_version VALUES (1, 'initial schema', 0)")
    db.execute(
        "INSERT INTO raw_frame (device_id, driver, data, received_wall_ns, received_mono_ns,"
        " boot_id, outcome) VALUES ('m', 'masimo-ascii', x'00', 1, 1, 'b', 'decoded')"
    )
    db.conn.commit()
    db.conn.close()
    s = StoreWriter.open(path)
    try:
        assert s.schema_version() == LATEST_VERSION
        columns = {r[1] for r in s.conn.execute("PRAGMA table_info(raw_frame)")}
        assert "dedup_key" in columns
        assert s.conn.execute("SELECT COUNT(*) FROM raw_frame").fetchone()[0] == 1
        assert s.frames.waveform_stats() == {"segments": 0, "samples": 0, "bytes": 0}
    finally:
        s.close()
