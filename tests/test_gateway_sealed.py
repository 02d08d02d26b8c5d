"""The county gateway's store seals what identifies a person (docs/security.md, "The
gateway's keys and sealed store"): a real Mosquitto, a real gateway, real SQLite files
scanned byte by byte; the key file refused in one line when it is missing or not the
store's; a store from before migration 5 sealed when the gateway next opens it."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import stat
import subprocess
import sys
import tempfile
import zoneinfo
from pathlib import Path

import gateway_keys
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlite_utils import Database
from test_gateway import AGENT, Box, oru

from edge_agent.local_broker import LocalBroker
from sync.gateway import keys as gateway_key_file
from sync.gateway.service import Gateway
from sync.gateway.store import MIGRATIONS, GatewayStore, GatewayStoreError
from sync.hl7.adt import PrearrivalNotice, build_adt_a14
from sync.message_auth import key_from_hex

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
NATIONAL_ID = "11010519491231002X"
NAME = "王秀英"
PHONE = "13800138000"
MAC_KEY = "5a" * 32
REPO = Path(__file__).resolve().parents[1]


def with_phone(message: str) -> str:
    """The message with PID-13 (home phone, XTN) set: what a registration system sends."""
    segments = message.split("\r")
    for n, segment in enumerate(segments):
        if segment.startswith("PID|"):
            fields = segment.split("|")
            fields += [""] * (14 - len(fields))
            fields[13] = "^PRN^CP" + "^" * 9 + PHONE  # XTN.12, unformatted number
            segments[n] = "|".join(fields)
    return "\r".join(segments)


def prearrival(control_id: str) -> str:
    at = dt.datetime(2026, 11, 22, 10, 5, tzinfo=TZ)
    return build_adt_a14(
        PrearrivalNotice(
            control_id=control_id,
            agent_id=AGENT,
            sent_at=at,
            recorded_at=at,
            patient_national_id=NATIONAL_ID,
            patient_name=NAME,
            local_patient_id=f"{AGENT}-1",
            destination="县医院急诊",
            complaint="胸痛2小时",
            eta=at + dt.timedelta(minutes=20),
        )
    )


def needles() -> dict[str, bytes]:
    return {
        "national id": NATIONAL_ID.encode(),
        "national id (lower case)": NATIONAL_ID.lower().encode(),
        "name": NAME.encode("utf-8"),
        "phone": PHONE.encode(),
        "MAC key": bytes.fromhex(MAC_KEY),
        "MAC key (hex)": MAC_KEY.encode(),
    }


def plain_in(folder: Path, name: str) -> dict[str, list[str]]:
    """Which needles appear in the store's files (db, -wal, -shm), and where."""
    found: dict[str, list[str]] = {}
    files = [folder / f"{name}{suffix}" for suffix in ("", "-wal", "-shm")]
    for path in files:
        if not path.exists():
            continue
        data = path.read_bytes()
        for what, needle in needles().items():
            if needle in data:
                found.setdefault(what, []).append(path.name)
    return found


def test_no_national_id_name_phone_or_mac_key_in_the_gateways_files(
    tmp_path: Path, broker: LocalBroker
) -> None:
    db = tmp_path / "gw" / "gateway.sqlite3"
    gateway_keys.made(db)
    gateway = Gateway(broker.url, db, client_id="sealed-gw", sheets_dir=tmp_path / "sheets")
    gateway.start()
    gateway.wait_connected(10)
    box = Box(broker)
    try:
        from sync.gateway.enrolment import enroll

        enroll(str(db), AGENT, MAC_KEY)  # through the running gateway's control socket
        box.send(with_phone(oru("SEAL-1")))
        box.send(prearrival("SEAL-2"))
        box.send(with_phone(oru("SEAL-3", agent="amb-999")))  # refused: kept, sealed
        acks = {(a.acked, a.code) for a in (box.ack(), box.ack(), box.ack())}
        assert acks == {("SEAL-1", "AA"), ("SEAL-2", "AA"), ("SEAL-3", "AE")}
        # While it runs: the WAL and shm hold what was just written.
        assert (db.parent / "gateway.sqlite3-wal").exists()
        assert plain_in(db.parent, db.name) == {}
    finally:
        box.close()
        gateway.stop()
    assert plain_in(db.parent, db.name) == {}
    # ... and with the key file, everything opens as it came.
    store = GatewayStore.open_readonly(db)
    try:
        mine = store.messages(national_id=NATIONAL_ID.lower())  # found by its blind index
        assert [m["control_id"] for m in mine] == ["SEAL-1", "SEAL-2"]
        assert {m["patient_name"] for m in mine} == {NAME}
        assert {m["patient_national_id"] for m in mine} == {NATIONAL_ID}
        assert PHONE in mine[0]["payload"] and mine[0]["payload"].startswith("MSH|")
        assert store.messages(national_id="110105194912310038") == []
        (notice,) = store.status()["prearrivals"]
        assert (notice["patient_id"], notice["patient_name"]) == (NATIONAL_ID, NAME)
        (kept,) = store.kept_rejected()
        assert kept["payload"] == with_phone(oru("SEAL-3", agent="amb-999")).encode()
        assert store.message_keys()[AGENT] == key_from_hex(MAC_KEY, "intl")
    finally:
        store.close()


def _v4_store_with_plain_rows(db: Path) -> None:
    """A gateway store as migration 4 left it, a person's rows in plain text."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    database = Database(conn)
    for version, name, apply in MIGRATIONS[:4]:
        apply(database)
        conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, name))
    payload = with_phone(oru("OLD-1"))
    conn.execute(
        "INSERT INTO message (id, agent, control_id, message_type, received_wall_ns,"
        " patient_national_id, patient_name, payload) VALUES (1, ?, 'OLD-1', 'ORU^R01', 1, ?, ?, ?)",
        (AGENT, NATIONAL_ID, NAME, payload),
    )
    conn.execute(
        "INSERT INTO prearrival (message_id, agent, control_id, patient_id, patient_name,"
        " complaint, received_wall_ns) VALUES (1, ?, 'OLD-1', ?, ?, '胸痛', 1)",
        (AGENT, NATIONAL_ID, NAME),
    )
    conn.execute(
        "INSERT INTO rejected (agent, control_id, ack_code, reason, payload, received_wall_ns)"
        " VALUES (?, 'OLD-2', 'AE', 'x', ?, 1)",
        (AGENT, payload.encode()),
    )
    conn.execute(
        "INSERT INTO enrolment (agent, suite, mac_key, enrolled_wall_ns) VALUES (?, 'intl', ?, 1)",
        (AGENT, bytes.fromhex(MAC_KEY)),
    )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def test_a_store_from_before_migration_5_is_sealed_when_the_gateway_opens_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "gateway.sqlite3"
    _v4_store_with_plain_rows(db)
    assert set(plain_in(tmp_path, db.name)) >= {"national id", "name", "phone", "MAC key"}
    gateway_keys.made(db)
    with pytest.raises(GatewayStoreError, match=r"schema 4.*start the gateway once"):
        GatewayStore.open_readonly(db)  # status on an unsealed store: one line
    GatewayStore.open(db).close()  # what `gateway run` does first
    assert plain_in(tmp_path, db.name) == {}  # secure_delete, the WAL truncated
    store = GatewayStore.open_readonly(db)
    try:
        (message,) = store.messages(national_id=NATIONAL_ID)
        assert (message["patient_national_id"], message["patient_name"]) == (NATIONAL_ID, NAME)
        assert message["payload"] == with_phone(oru("OLD-1"))
        (notice,) = store.status()["prearrivals"]
        assert (notice["patient_id"], notice["patient_name"]) == (NATIONAL_ID, NAME)
        assert store.kept_rejected()[0]["payload"] == with_phone(oru("OLD-1")).encode()
        assert store.message_keys()[AGENT] == key_from_hex(MAC_KEY, "intl")
        sealed = store.conn.execute("SELECT COUNT(*) FROM message WHERE sealed_key = 'k1'")
        assert sealed.fetchone()[0] == 1
    finally:
        store.close()
    GatewayStore.open(db).close()  # opened again: nothing sealed twice
    store = GatewayStore.open_readonly(db)
    try:
        assert store.messages()[0]["patient_name"] == NAME
    finally:
        store.close()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_keys_init_makes_a_private_file_and_refuses_to_replace_it(tmp_path: Path) -> None:
    db = tmp_path / "gateway.sqlite3"
    made = cli("gateway", "keys", "init", "--db", str(db), "--suite", "sm")
    assert made.returncode == 0, made.stderr
    path = gateway_key_file.default_key_file(db)
    assert made.stdout.strip() == (
        '{"key_file": "' + str(path) + '", "suite": "sm", "active": "k1"}'
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    before = path.read_bytes()
    again = cli("gateway", "keys", "init", "--db", str(db))
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.count("\n") == 1 and "exists already" in again.stderr
    assert path.read_bytes() == before


def test_a_missing_open_or_foreign_key_file_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "gateway.sqlite3"
    for command in (
        ["gateway", "run", "--broker", "mqtt://127.0.0.1:9", "--db", str(db)],
        ["gateway", "enroll", "--db", str(db), "--agent", AGENT, "--mac-key", MAC_KEY],
    ):
        missing = cli(*command)
        assert missing.returncode == 2, missing.stderr
        assert missing.stderr.count("\n") == 1
        assert missing.stderr.startswith("error: gateway keys: ")
        assert "missing (run edge-agent gateway keys init --db DB)" in missing.stderr
    assert not db.exists()  # nothing made without its keys
    path = gateway_keys.made(db)
    GatewayStore.open(db).close()
    os.chmod(path, 0o640)
    opened = cli("gateway", "status", "--db", str(db))
    assert opened.returncode == 2 and opened.stderr.count("\n") == 1
    assert "open to group or others" in opened.stderr
    os.chmod(path, 0o600)
    other = tmp_path / "other.json"
    gateway_key_file.init(other)
    foreign = cli("gateway", "status", "--db", str(db), "--key-file", str(other))
    assert foreign.returncode == 2 and foreign.stderr.count("\n") == 1
    assert f"key file {other} does not open it" in foreign.stderr
    assert cli("gateway", "status", "--db", str(db)).returncode == 0


def notice_naming(store: GatewayStore, stored_name: str | None) -> None:
    """A message and its pre-arrival notice whose `patient_name` column holds
    `stored_name` as written (sealed by the caller, or not)."""
    store.conn.execute(
        "INSERT INTO message (id, agent, control_id, received_wall_ns, payload)"
        " VALUES (1, ?, 'M1', 1, 'x')",
        (AGENT,),
    )
    store.conn.execute(
        "INSERT INTO prearrival (message_id, agent, control_id, patient_name,"
        " received_wall_ns, sealed_key) VALUES (1, ?, 'M1', ?, 1, 'k1')",
        (AGENT, stored_name),
    )


@settings(max_examples=60, deadline=None)
@given(payload=st.binary(max_size=3000), name=st.text(max_size=40))
def test_what_the_gateway_keeps_opens_to_exactly_what_came(payload: bytes, name: str) -> None:
    """Any refused bytes and any patient name: stored sealed (never in the file as
    they came), opened to exactly what came."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "g.sqlite3"
        gateway_keys.made(db)
        store = GatewayStore.open(db)
        try:
            with store.transaction():
                store.store_rejected(
                    AGENT,
                    None,
                    ack_code="AR",
                    error_code=None,
                    reason="r",
                    payload=payload,
                    received_wall_ns=1,
                )
                notice_naming(store, store._seal("prearrival.patient_name", name))
            assert store.kept_rejected()[0]["payload"] == payload
            assert store.status()["prearrivals"][0]["patient_name"] == name
            stored = store.conn.execute("SELECT payload FROM rejected").fetchone()[0]
            assert isinstance(stored, str) and stored.startswith("v1.intl.k1.")
        finally:
            store.close()


@settings(max_examples=80, deadline=None)
@given(text=st.text(max_size=200))
def test_a_sealed_column_edited_in_the_file_is_one_line_never_another_value(text: str) -> None:
    """The store file is hostile (a thief, a bad sector): a patient's name replaced by
    any text opens to the original or is refused in one line naming the column."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "g.sqlite3"
        gateway_keys.made(db)
        store = GatewayStore.open(db)
        try:
            original = store._seal("prearrival.patient_name", NAME) or ""
            with store.transaction():
                notice_naming(store, text)
            try:
                shown = store.status()["prearrivals"][0]["patient_name"]
            except GatewayStoreError as exc:
                assert "\n" not in str(exc) and "prearrival.patient_name" in str(exc)
            else:
                assert text == original and shown == NAME
            stored = store.conn.execute("SELECT patient_name FROM prearrival").fetchone()[0]
            assert stored == text  # a read never changes what is stored
        finally:
            store.close()
