"""Residents sealed in the store (migration 9, store.patients, edge_agent.patients) and the
sealing pass (edge_agent.key_rotation): found by blind index, unreadable without keys,
plain rows of before sealed, a rotation resumable at any batch."""

from __future__ import annotations

from pathlib import Path

import pytest
from box_keys import KEYS
from residents import residents
from sqlite_utils import Database

from edge_agent import key_rotation, patients
from edge_agent.clock import SystemClock
from edge_agent.crypto import sealed
from edge_agent.crypto.suites import SealError
from edge_agent.store import PersonalDataLocked, StoreWriter, open_readonly
from edge_agent.store.schema import MIGRATIONS

CLOCK = SystemClock(boot_id="sealed-test")


def _register(store: StoreWriter, count: int) -> None:
    for r in residents(count):
        patients.register(
            store, CLOCK, national_id_number=r.national_id, name=r.name, phone=r.phone
        )


def _file_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def _plain_in(data: bytes, count: int) -> list[str]:
    found = []
    for r in residents(count):
        for value in (r.national_id, r.name, r.phone):
            if value.encode() in data:
                found.append(value)
    return found


def test_a_resident_is_stored_sealed_and_found_by_blind_index(tmp_path: Path) -> None:
    store = StoreWriter.open(tmp_path / "agent.sqlite3", KEYS)
    try:
        added = patients.register(
            store,
            CLOCK,
            national_id_number="11010519491231002x",
            name=" 张三 ",
            phone="138-0013-8000",
        )
        row = store.conn.execute(
            "SELECT national_id, name, phone, national_id_index, phone_index, sealed_key"
            " FROM patient"
        ).fetchone()
        assert row[0].startswith("v1.intl.k1.") and row[1].startswith("v1.intl.k1.")
        assert "张三" not in row[1] and "11010519491231002X" not in row[0]
        assert row[3] == sealed.blind_index(KEYS, sealed.NATIONAL_ID, "11010519491231002X")
        assert row[4] == sealed.blind_index(KEYS, sealed.PHONE, "13800138000") and row[5] == "k1"
        found = store.patients.by_national_id("11010519491231002X")
        assert found == added.patient and found.name == "张三"
        assert found.phone == "138-0013-8000"
        again = patients.register(store, CLOCK, national_id_number="11010519491231002X", name="x")
        assert not again.created and again.patient.id == added.patient.id
        assert [p.id for p in patients.find_by_phone(store, "13800138000")] == [added.patient.id]
        assert patients.find_by_phone(store, "13900000000") == []
        assert patients.residents(store)[0]["name"] == "张三"
    finally:
        store.close()


def test_without_keys_who_a_resident_is_stays_sealed_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    store = StoreWriter.open(path, KEYS)
    _register(store, 3)
    encounter = patients.start_visit(store, CLOCK, national_id_number=residents(3)[1].national_id)
    store.close()
    reader = open_readonly(path, no_keys="keys: /k: missing (run edge-agent keys init)")
    try:
        for read in (
            reader.patients.all,
            lambda: reader.patients.get(1),
            lambda: reader.patients.by_national_id(residents(1)[0].national_id),
            lambda: patients.residents(reader),
        ):
            with pytest.raises(PersonalDataLocked, match=r"without keys \(keys: /k: missing"):
                read()
        # What is not personal is read as before: the visit, whose it is by row id.
        visit = reader.patients.current_encounter("monitor-1")
        assert visit is not None and visit.id == encounter and visit.patient_id == 2
        assert reader.patients.values_per_key() == {"k1": 9}
    finally:
        reader.close()
    writer = StoreWriter.open(path)
    try:
        with pytest.raises(PersonalDataLocked):
            patients.register(
                writer, CLOCK, national_id_number=residents(5)[4].national_id, name="王"
            )
        assert writer.conn.execute("SELECT COUNT(*) FROM patient").fetchone()[0] == 3
    finally:
        writer.close()


def test_a_value_edited_in_the_file_fails_loudly_not_as_another_name(tmp_path: Path) -> None:
    store = StoreWriter.open(tmp_path / "agent.sqlite3", KEYS)
    try:
        _register(store, 2)
        # A sealed phone moved into the name column (the place binds the column): the
        # row fails with its id and column, it is never read as a name.
        store.conn.execute(
            "UPDATE patient SET name = (SELECT phone FROM patient WHERE id = 2) WHERE id = 1"
        )
        with pytest.raises(SealError, match=r"patient 1: patient\.name: does not open"):
            store.patients.get(1)
        assert store.patients.get(2) is not None
    finally:
        store.close()


def _version_8_store_with_plain_residents(path: Path, count: int) -> None:
    db = Database(str(path))
    db.execute(
        "CREATE TABLE schema_version"
        " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_wall_ns INTEGER)"
    )
    for version, name, apply in MIGRATIONS[:8]:
        apply(db)
        db.execute("INSERT INTO schema_version VALUES (?, ?, 0)", [version, name])
    for r in residents(count):
        db.execute(
            "INSERT INTO patient (national_id, name, phone, sex, birth_date, created_wall_ns)"
            " VALUES (?, ?, ?, 'M', '1940-01-01', 1)",
            [r.national_id, r.name, r.phone],
        )
    db.conn.commit()
    db.conn.close()


def test_plain_residents_of_before_are_sealed_by_the_pass_and_leave_no_trace(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    path = data / "edge-agent.sqlite3"
    _version_8_store_with_plain_residents(path, 300)
    assert len(_plain_in(_file_bytes(data), 300)) == 900  # the test can see them
    store = StoreWriter.open(path, KEYS)
    try:
        assert store.patients.values_per_key() == {"plain": 900}
        # Before the pass, plain rows are found and read (and not registered twice).
        first = residents(1)[0]
        again = patients.register(store, CLOCK, national_id_number=first.national_id, name="x")
        assert not again.created and again.patient.name == first.name
        assert [p.id for p in patients.find_by_phone(store, first.phone)] == [again.patient.id]
        progress: list[tuple[int, int]] = []
        done = key_rotation.reseal_all(
            store, batch=64, on_progress=lambda d, left: progress.append((d, left))
        )
        assert done == 300 and progress[0] == (64, 236) and progress[-1] == (300, 0)
        assert store.patients.values_per_key() == {"k1": 900}
        assert [p.name for p in store.patients.all()] == [r.name for r in residents(300)]
        assert store.patients.by_national_id(residents(300)[299].national_id) is not None
    finally:
        store.close()
    assert _plain_in(_file_bytes(data), 300) == []


def test_a_rotation_half_done_reads_and_finds_everyone_and_then_finishes(tmp_path: Path) -> None:
    store = StoreWriter.open(tmp_path / "agent.sqlite3", KEYS)
    try:
        _register(store, 100)
        rotated = KEYS.with_new_key("sm", "2026-03-01T00:00:00Z")
        store.use_keys(rotated)
        assert key_rotation.reseal_batch(store, 30) == 30
        report = key_rotation.status(store)
        assert report.active == "k2" and report.suite == "sm" and report.stale_rows == 70
        assert report.values == {"k1": 210, "k2": 90}
        assert report.as_json()["resealing"] is True
        everyone = residents(100)
        assert [p.name for p in store.patients.all()] == [r.name for r in everyone]
        for r in (everyone[0], everyone[29], everyone[30], everyone[99]):
            found = store.patients.by_national_id(r.national_id)
            assert found is not None and found.name == r.name and found.phone == r.phone
            assert [p.national_id for p in store.patients.by_phone(r.phone)] == [r.national_id]
        # A new resident during the rotation is sealed under the new key at once.
        newcomer = residents(101)[100]
        patients.register(store, CLOCK, national_id_number=newcomer.national_id, name=newcomer.name)
        assert key_rotation.reseal_all(store, batch=25) == 70
        report = key_rotation.status(store)
        assert report.values == {"k2": 302} and report.stale_rows == 0
        sealed_keys = store.conn.execute("SELECT DISTINCT substr(name, 1, 9) FROM patient")
        assert [r[0] for r in sealed_keys] == ["v1.sm.k2."]
    finally:
        store.close()
