"""The county gateway's store seals what identifies a person (docs/security.md, "The
gateway's keys and sealed store"): a real Mosquitto, a real gateway, real SQLite files
scanned byte by byte, its log lines read; the key file refused in one line when it is
missing or not the store's; stores from before migrations 5 and 8 sealed when the
gateway next opens them; a refused message's reason, which goes into the ACK, never
quotes what the message holds."""

from __future__ import annotations

import datetime as dt
import logging
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
from residents import resident
from sqlite_utils import Database
from test_gateway import AGENT, Box, oru

from edge_agent.crypto import sealed
from edge_agent.local_broker import LocalBroker
from sync.gateway import keys as gateway_key_file
from sync.gateway.reply import send as send_reply
from sync.gateway.service import Gateway
from sync.gateway.store import MIGRATIONS, GatewayStore, GatewayStoreError
from sync.hl7.adt import PrearrivalNotice, build_adt_a14
from sync.hl7.errors import Hl7Error
from sync.hl7.inbound import parse_inbound
from sync.hl7.pcd01 import DeviceIdentity, PatientIdentity
from sync.hl7.pcd04 import AlertEvent, build_oru_r40
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
            destination=f"县医院急诊 ({PHONE})",
            complaint=f"{NAME} 胸痛2小时",
            eta=at + dt.timedelta(minutes=20),
        )
    )


AT = dt.datetime(2026, 11, 22, 10, 0, tzinfo=TZ)
CART = DeviceIdentity("cart-1", "ecg-aecg", "C47C8DFFFE6A0018", "MDC_DEV_SPEC_PROFILE_ECG")
PATIENT = PatientIdentity(NATIONAL_ID, NAME, dt.date(1949, 12, 31), "F", "E")


def with_statement(control_id: str) -> str:
    """An ORU^R01 whose NTE carries a cart's statement naming the patient."""
    message = oru(control_id)
    obr = message.index("\rOBX|")
    return message[:obr] + f"\rNTE|1||{NAME} 急性下壁心肌梗死" + message[obr:]


def alert_naming_the_patient(control_id: str) -> str:
    return build_oru_r40(
        AlertEvent(
            control_id=control_id,
            agent_id=AGENT,
            sent_at=AT,
            at=AT,
            phase="start",
            code="ECG_STEMI",
            text=f"{NAME} 急性心梗",
            text_en=f"{NAME} acute MI",
            priority="high",
            physiological=True,
            device=CART,
            patient=PATIENT,
        )
    )


def quoting_the_name(control_id: str) -> str:
    """A message an AE is due for that an error quoting values would quote the name and
    number from: OBX-5 of an NM row holds the name, PID-7 the national id."""
    message = with_phone(oru(control_id)).replace("|19491231|", f"|{NATIONAL_ID}|", 1)
    return message.replace("|120|", f"|{NAME}|", 1)


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
    tmp_path: Path, broker: LocalBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Messages naming the patient in PID, a notice whose complaint and destination name
    them, a cart's statement and an alert text naming them, refused messages whose
    errors could quote them (AE: OBX-5 holds the name; AR: an MSH-10 holding the number),
    the ER's reply naming them: none of it in the store's files or the gateway's log."""
    caplog.set_level(logging.DEBUG, logger="sync.gateway")
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
        box.send(with_statement("SEAL-4"))
        box.send(alert_naming_the_patient("SEAL-5"))
        box.send(quoting_the_name("SEAL-6"))  # AE
        box.send(with_phone(oru(f"ID/{NATIONAL_ID}")))  # AR: MSH-10 breaks its rule
        got = [box.ack() for _ in range(7)]
        assert {(a.acked, a.code) for a in got} == {
            ("SEAL-1", "AA"),
            ("SEAL-2", "AA"),
            ("SEAL-3", "AE"),
            ("SEAL-4", "AA"),
            ("SEAL-5", "AA"),
            ("SEAL-6", "AE"),
            ("UNKNOWN", "AR"),
        }
        # The ACKs' texts go back to the box, which keeps them: they name fields only.
        refused = [a.text for a in got if a.code != "AA"]
        assert any("OBX-5" in t or "ORU^R01" in t for t in refused) and any(
            "MSH-10" in t for t in refused
        )
        assert [t for t in refused if NAME in t or NATIONAL_ID in t or PHONE in t] == []
        send_reply(
            None,
            AGENT,
            "SEAL-2",
            "cath-lab-ready",
            text=f"{NAME} 导管室已备, 电话 {PHONE}",
            by="急诊 李医生",
            db=str(db),
        )
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
        assert [m["control_id"] for m in mine] == ["SEAL-1", "SEAL-2", "SEAL-4", "SEAL-5"]
        assert {m["patient_name"] for m in mine} == {NAME}
        assert {m["patient_national_id"] for m in mine} == {NATIONAL_ID}
        assert PHONE in mine[0]["payload"] and mine[0]["payload"].startswith("MSH|")
        assert store.messages(national_id="110105194912310038") == []
        report = store.status()
        (notice,) = report["prearrivals"]
        assert (notice["patient_id"], notice["patient_name"]) == (NATIONAL_ID, NAME)
        assert (notice["complaint"], notice["destination"]) == (
            f"{NAME} 胸痛2小时",
            f"县医院急诊 ({PHONE})",
        )
        (alert,) = report["alerts"]
        assert (alert["text"], alert["text_en"]) == (f"{NAME} 急性心梗", f"{NAME} acute MI")
        (reply,) = report["er_replies"]
        assert (reply["text"], reply["by"]) == (f"{NAME} 导管室已备, 电话 {PHONE}", "急诊 李医生")
        kept = store.kept_rejected()
        assert kept[0]["payload"] == with_phone(oru("SEAL-3", agent="amb-999")).encode()
        assert [k["topic"] for k in kept] == [f"edge/v1/{AGENT}/up"] * 3
        assert all(k["reason"] and "\n" not in k["reason"] for k in kept)
        assert store.recent_rejected()[0]["reason"] == kept[-1]["reason"]
        assert store.message_keys()[AGENT] == key_from_hex(MAC_KEY, "intl")
    finally:
        store.close()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("sync.gateway")]
    assert any("AE SEAL-6" in line for line in lines)  # the refusals were logged
    assert [ln for ln in lines if any(v in ln for v in (NATIONAL_ID, NAME, PHONE))] == []


def test_free_text_written_before_migration_8_is_sealed_when_the_gateway_opens_it(
    tmp_path: Path,
) -> None:
    """Migration 8 adds key id columns, NULL on the rows already there, whose free text
    (a notice's complaint and destination, a refused message's reason and topic, the
    cart's statements, alert texts and an alarm row's value, the ER's replies) is plain,
    while the rest of those rows is sealed since migration 5. That state, made from a
    store written now: the next open seals each of them, nothing else sealed again."""
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    store = GatewayStore.open(db)
    try:
        with store.transaction():
            for text in (
                prearrival("OLD-1"),
                with_statement("OLD-2"),
                alert_naming_the_patient("OLD-3"),
            ):
                store.store_message(AGENT, parse_inbound(text), text, 1)
            store.store_rejected(
                AGENT,
                "OLD-4",
                ack_code="AE",
                error_code="102",
                reason=f"OBX 1: OBX-5 '{NAME}' is not an HL7 NM decimal",  # as it once said
                payload=b"x",
                received_wall_ns=1,
                topic=f"edge/v1/{AGENT}/up",
            )
            store.record_reply(AGENT, "OLD-1", "received", f"{NAME} 收到", "急诊", 1)
        payload_before = store.conn.execute("SELECT payload FROM message ORDER BY id").fetchall()
        plain = {
            "prearrival": ("text_key", {"complaint": f"{NAME} 胸痛2小时", "destination": PHONE}),
            "rejected": (
                "reason_key",
                {"reason": f"OBX-5 '{NAME}'", "topic": f"edge/v1/{AGENT}/up"},
            ),
            "statement": ("sealed_key", {"text": f"{NAME} 急性下壁心肌梗死"}),
            "alert_event": ("sealed_key", {"text": f"{NAME} 急性心梗", "text_en": NAME}),
            "er_reply": ("sealed_key", {"text": f"{NAME} 收到", "by": "急诊"}),
        }
        with store.transaction():
            for table, (key_column, values) in plain.items():
                assignments = ", ".join(f"{c} = ?" for c in values)
                store.conn.execute(
                    f"UPDATE {table} SET {assignments}, {key_column} = NULL", tuple(values.values())
                )
            store.conn.execute(
                "UPDATE observation SET value = ?, sealed_key = NULL WHERE metric = 'MDC_EVT_ALARM'",
                (f"ECG_STEMI^{NAME}",),
            )
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()
    assert set(plain_in(tmp_path, db.name)) >= {"name", "phone"}
    GatewayStore.open(db).close()  # what `gateway run` does first
    assert plain_in(tmp_path, db.name) == {}
    store = GatewayStore.open_readonly(db)
    try:
        assert store.conn.execute("SELECT payload FROM message ORDER BY id").fetchall() == (
            payload_before
        )  # sealed already: not sealed again
        report = store.status()
        (notice,) = report["prearrivals"]
        assert (notice["complaint"], notice["destination"]) == (f"{NAME} 胸痛2小时", PHONE)
        (alert,) = report["alerts"]
        assert (alert["text"], alert["text_en"]) == (f"{NAME} 急性心梗", NAME)
        assert [(r["text"], r["by"]) for r in store.replies()] == [(f"{NAME} 收到", "急诊")]
        (kept,) = store.kept_rejected()
        assert (kept["reason"], kept["topic"]) == (f"OBX-5 '{NAME}'", f"edge/v1/{AGENT}/up")
        ((value, key_id),) = store.conn.execute(
            "SELECT value, sealed_key FROM observation WHERE metric = 'MDC_EVT_ALARM'"
        ).fetchall()
        assert key_id == "k1"
        assert sealed.open_value(store.keyring, "observation.value", value) == f"ECG_STEMI^{NAME}"
        # Numbers stay plain: nothing of a person in them, and the board reads them.
        numbers = store.conn.execute(
            "SELECT COUNT(*) FROM observation WHERE sealed_key IS NULL AND value IS NOT NULL"
        ).fetchone()[0]
        assert numbers > 0
    finally:
        store.close()


_NAMES = st.text(alphabet=st.sampled_from("王秀英李张刘伟芳·0123456789X"), min_size=2, max_size=30)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        _NAMES.filter(lambda v: any(not c.isascii() for c in v)),
        st.integers(0, 10**6).map(lambda n: resident(n).national_id),
    ),
    st.sampled_from(["obx5", "pid7", "obx11", "obx3"]),
)
def test_a_refusal_never_quotes_what_the_message_holds(value: str, where: str) -> None:
    """Whatever a field holds (a name, a national id), a refusal's reason (the ACK's
    text the box keeps, the gateway's log, its store) names the field, never the value."""
    message = with_phone(oru("Q-1"))
    field = {
        "obx5": "|120|",
        "pid7": "|19491231|",
        "obx11": "|F|||2026",
        "obx3": "|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|",
    }[where]
    assert field in message
    message = message.replace(field, field.replace(field.strip("|").split("|")[0], value), 1)
    try:
        parse_inbound(message)
    except Hl7Error as exc:
        assert value not in str(exc) and value not in exc.reason
        assert len(exc.reason) < 300
        return
    # Only a number is taken, as an NM value (a national id whose check character is a
    # digit is one); an MSH-10 is checked by the gateway (the running gateway's test).
    assert where == "obx5" and value.isdigit()


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


def test_a_topic_with_no_utf8_form_is_kept_escaped_not_lost(tmp_path: Path) -> None:
    """A lone surrogate (a `str` handed in, as hypothesis found) has no UTF-8 form: the
    refused message is kept, its topic sealed with that character escaped."""
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    store = GatewayStore.open(db)
    try:
        with store.transaction():
            store.store_unaddressed(
                "edge/v1/\ud800/up", reason="no ACK sent: x", payload=b"MSH|", received_wall_ns=1
            )
        (kept,) = store.kept_rejected()
        assert (kept["topic"], kept["payload"]) == ("edge/v1/\\ud800/up", b"MSH|")
    finally:
        store.close()
