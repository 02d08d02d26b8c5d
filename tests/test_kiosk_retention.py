"""A kiosk box lets go of what it need not keep (edge_agent/kiosk_retention.py): unbound
readings purged after `kiosk.unbound_purge_h`, a delivered resident's identity replaced
by a pseudonym; on real SQLite files, with a clock the tests step."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import outbox_rows
import pytest
from box_keys import keys_of
from operated_box import RESIDENT, Box, StepClock

from edge_agent import kiosk_retention, operations
from edge_agent.config import Config, ConfigError, from_dict
from edge_agent.control import OpError
from edge_agent.crypto import sealed
from edge_agent.store import StoreWriter
from edge_agent.store.kiosk_retention import FRAME_TABLES

H = 3600
NAME = "张三丰"
PHONE = "13912345678"


def kiosk_config(tmp: Path, role: str = "kiosk", **kiosk: float) -> Config:
    return from_dict(
        {
            "agent": {"id": "hut-03", "data_dir": str(tmp / "data"), "role": role},
            "uplink": {"broker": "mqtt://127.0.0.1:9", "allow_insecure": True},
            "kiosk": kiosk,
        }
    )


def open_kiosk(tmp: Path, role: str = "kiosk", **kiosk: float) -> Box:
    config = kiosk_config(tmp, role, **kiosk)
    store = StoreWriter.open(config.agent.db_path, keys_of(config))
    box = Box(operations.Services(store, StepClock(), config), StepClock())
    box.services.clock = box.clock
    box.run("users.add", {"name": "admin", "role": "admin", "pin": "9999"})
    return box


@pytest.fixture
def kiosk(tmp_path: Path) -> Iterator[Box]:
    box = open_kiosk(tmp_path, identity_after_delivery_h=2)
    yield box
    box.store.close()


def record(store: StoreWriter, n: int, clock: StepClock) -> list[str]:
    """`n` spot checks of a resident's own pulse oximeter (a personal device: held when
    no visit is open), a second apart; the rows' ids."""
    ids = []
    for _ in range(n):
        ids += outbox_rows.record(store, 1, clock, driver="ble-plx-spot")
        clock.advance(1)
    return ids


def held(box: Box) -> int:
    return len(box.store.outbox.held_frames())


def test_every_table_with_a_frame_column_is_purged_with_its_frame(kiosk: Box) -> None:
    tables = [
        name
        for (name,) in kiosk.store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        if any(
            c[1] == "raw_frame_id" for c in kiosk.store.conn.execute(f"PRAGMA table_info({name})")
        )
    ]
    assert sorted(tables) == sorted(FRAME_TABLES)


def test_unbound_readings_are_purged_after_the_configured_time_and_audited(kiosk: Box) -> None:
    record(kiosk.store, 3, kiosk.clock)  # nobody signed in, no visit: held, bound to nobody
    assert held(kiosk) == 3
    kiosk.clock.advance(23.9 * H)
    assert (
        kiosk_retention.run_pass(kiosk.store, kiosk.clock, kiosk.services.config).purged_frames == 0
    )
    record(kiosk.store, 1, kiosk.clock)  # a later one: its own 24 h
    kiosk.clock.advance(0.2 * H)
    done = kiosk_retention.run_pass(kiosk.store, kiosk.clock, kiosk.services.config)
    assert done.purged_frames == 3 and held(kiosk) == 1
    conn = kiosk.store.conn
    assert conn.execute("SELECT COUNT(*) FROM raw_frame").fetchone() == (1,)
    assert conn.execute("SELECT COUNT(*) FROM observation").fetchone() == (1,)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    (row,) = [r for r in kiosk.store.audit.find(limit=100) if r.op == "kiosk.purge-unbound"]
    assert (row.user, row.action, row.subject) == ("edge-agent", "change", "frames:1,2,3")
    kiosk.clock.advance(24 * H)
    assert (
        kiosk_retention.run_pass(kiosk.store, kiosk.clock, kiosk.services.config).purged_frames == 1
    )


def test_a_box_that_is_not_a_kiosk_keeps_its_held_readings(tmp_path: Path) -> None:
    box = open_kiosk(tmp_path, role="clinic")
    try:
        record(box.store, 2, box.clock)
        box.clock.advance(1000 * H)
        assert not kiosk_retention.run_pass(box.store, box.clock, box.services.config).changed
        assert held(box) == 2
    finally:
        box.store.close()


@pytest.mark.parametrize(
    ("kiosk_table", "message"),
    [
        ({"unbound_purge_h": 0}, "kiosk.unbound_purge_h: must be between 0.5 and 2160"),
        ({"unbound_purge_h": "24"}, "kiosk.unbound_purge_h: must be a number"),
        ({"identity_after_delivery_h": -1}, "kiosk.identity_after_delivery_h: must be between"),
        ({"purge": 1}, "kiosk.purge"),
    ],
)
def test_config_check_refuses_a_bad_kiosk_table(
    tmp_path: Path, kiosk_table: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        kiosk_config(tmp_path, **kiosk_table)  # type: ignore[arg-type]


def a_delivered_visit(box: Box) -> list[str]:
    """A resident registered, consenting, measured at the kiosk; the uplink's HL7 (with
    PID) in each outbox row; each row's ACK AA received. The rows' ids."""
    box.run("patients.add", {"national_id": RESIDENT, "name": NAME, "phone": PHONE})
    box.run("consent.give", {"national_id": RESIDENT, "pin": "246810"})
    box.run("visit.start", {"national_id": RESIDENT, "device": "monitor-1"})
    ids = record(box.store, 3, box.clock)
    with box.store.transaction():
        for message_id in ids:
            box.store.outbox.set_payload(
                message_id, f"MSH|^~\\&|...\rPID|1||{RESIDENT}^^^CHN^NNCHN||{NAME}||19491231|F\r"
            )
    box.run("visit.end", {"device": "monitor-1"})
    return ids


def deliver(box: Box, ids: list[str]) -> None:
    with box.store.transaction():
        for message_id in ids:
            box.store.outbox.mark_acked(
                message_id, code="AA", text="", wall_ns=box.clock.wall_ns(), mono_ns=1, boot_id="b"
            )


def recoverable(box: Box, ids: list[str]) -> bool:
    """Whether anything in the store, opened with the box's keys, still says who the
    resident was: a patient row, an outbox message's HL7, a blind index in the file."""
    store = box.store
    assert store.keys is not None
    rows = [store.outbox.get(i) for i in ids]
    payloads = [r.payload or "" for r in rows if r is not None]
    people = [(p.national_id, p.name, p.phone) for p in store.patients.all()]
    indexes = sealed.blind_indexes(store.keys, sealed.NATIONAL_ID, RESIDENT)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    content = store.path.read_bytes()
    return (
        any(RESIDENT in p or NAME in p for p in payloads)
        or any(RESIDENT in v or NAME in v for p in people for v in p if v)
        or any(i.encode() in content for i in indexes)
    )


def identity_bytes(data: Path) -> list[tuple[str, str]]:
    found = []
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        content = path.read_bytes()
        for value in (RESIDENT, NAME, PHONE):
            if value.encode("utf-8") in content:
                found.append((path.name, value))
    return found


def test_a_delivered_resident_keeps_readings_under_a_pseudonym_and_no_identity_bytes(
    tmp_path: Path,
) -> None:
    box = open_kiosk(tmp_path, identity_after_delivery_h=2)
    config = box.services.config
    try:
        ids = a_delivered_visit(box)

        def run() -> kiosk_retention.Retention:
            return kiosk_retention.run_pass(box.store, box.clock, config)

        box.clock.advance(10 * H)
        assert run().pseudonymised == ()  # nothing delivered yet: the identity stays
        deliver(box, ids[:2])
        box.clock.advance(10 * H)
        assert run().pseudonymised == ()  # one reading still on its way
        deliver(box, ids[2:])
        box.clock.advance(1.9 * H)
        assert run().pseudonymised == ()  # within identity_after_delivery_h
        # The test sees what it looks for: with the keys, the identity is there (the
        # delivered HL7's PID, the blind index), though sealed: no plain byte of it.
        assert recoverable(box, ids) and identity_bytes(config.agent.data_dir) == []
        box.clock.advance(0.2 * H)
        assert run().pseudonymised == (1,)
        patient = box.store.patients.get(1)
        assert (
            patient is not None and patient.national_id.startswith("P-") and patient.phone is None
        )
        assert patient.name == patient.national_id and len(patient.national_id) == 34
        assert box.store.patients.by_national_id(RESIDENT) is None
        assert not recoverable(box, ids)
        assert box.store.conn.execute(
            "SELECT COUNT(*) FROM observation o JOIN encounter e ON e.id = o.encounter_id"
            " WHERE e.patient_id = 1"
        ).fetchone() == (3,)
        assert box.store.conn.execute("SELECT COUNT(*) FROM resident_pin").fetchone() == (0,)
        with pytest.raises(OpError, match="wrong national id or PIN"):
            box.run("kiosk.sign-in", {"national_id": RESIDENT, "pin": "246810"})
        assert [r.op for r in box.store.audit.find(limit=100)][-2] == "kiosk.pseudonymise"
        # Coming back, the resident is registered anew.
        again = box.run("patients.add", {"national_id": RESIDENT, "name": NAME})
        assert again["created"] is True
    finally:
        box.store.close()
    # A fresh box file: scan it with the second registration undone.
    scanned = open_kiosk(tmp_path / "second", identity_after_delivery_h=0)
    try:
        ids = a_delivered_visit(scanned)
        deliver(scanned, ids)
        scanned.clock.advance(1)
        assert kiosk_retention.run_pass(
            scanned.store, scanned.clock, scanned.services.config
        ).pseudonymised == (1,)
    finally:
        scanned.store.close()
    data = scanned.services.config.agent.data_dir
    assert identity_bytes(data) == []
    with sqlite3.connect(scanned.services.config.agent.db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM observation").fetchone() == (3,)


def test_an_open_visit_keeps_the_identity(kiosk: Box) -> None:
    ids = a_delivered_visit(kiosk)
    deliver(kiosk, ids)
    kiosk.run("visit.start", {"national_id": RESIDENT, "device": "monitor-1"})
    kiosk.clock.advance(100 * H)
    assert (
        kiosk_retention.run_pass(kiosk.store, kiosk.clock, kiosk.services.config).pseudonymised
        == ()
    )
    assert kiosk.store.patients.by_national_id(RESIDENT) is not None


def test_on_a_kiosk_readings_are_bound_only_to_a_consenting_resident(kiosk: Box) -> None:
    kiosk.run("patients.add", {"national_id": RESIDENT, "name": NAME})
    with pytest.raises(OpError, match="on a kiosk the resident's consent is needed first"):
        kiosk.run("visit.start", {"national_id": RESIDENT, "device": "monitor-1"})
    record(kiosk.store, 1, kiosk.clock)
    frames = [f["frame_id"] for f in kiosk.store.outbox.held_frames()]
    with pytest.raises(OpError, match="consent is needed first"):
        kiosk.run("readings.assign", {"national_id": RESIDENT, "frames": frames})
    kiosk.run("consent.give", {"national_id": RESIDENT, "pin": "246810"})
    assert kiosk.run("readings.assign", {"national_id": RESIDENT, "frames": frames}) == {
        "assigned": 1
    }
    kiosk.run("consent.withdraw", {"national_id": RESIDENT})
    with pytest.raises(OpError, match="has withdrawn consent"):
        kiosk.run("visit.start", {"national_id": RESIDENT, "device": "monitor-1"})
