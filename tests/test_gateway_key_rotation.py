"""`edge-agent gateway keys rotate|reseal|status` (docs/security.md, "Rotating the
gateway's keys"): the real command SIGKILLed at random points of its sealing pass, then
finished; every value opens, none is lost, none stays under the old key or in plain
bytes in the store's files; a running gateway rotates in its background while messages
arrive; the sealed columns declared once cover every table that names a key."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import gateway_keys
import pytest
from test_gateway import AGENT, Box, oru
from test_gateway_sealed import NAME, NATIONAL_ID, PHONE, plain_in, prearrival, with_phone
from waiting import wait_until

from edge_agent.crypto import sealed
from edge_agent.local_broker import LocalBroker
from sync.gateway import operations
from sync.gateway.service import Gateway
from sync.gateway.store import SEALED_COLUMNS, GatewayStore, GatewayStoreError, sealed_groups
from sync.hl7.inbound import parse_inbound
from sync.message_auth import key_from_hex

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")
MESSAGES = 40  # and as many pre-arrival notices, refused messages and enrolments below


def filled(folder: Path) -> tuple[str, int]:
    """A store with every kind of sealed row, all under k1; its path and row count."""
    db = folder / "gateway.sqlite3"
    gateway_keys.made(db)
    store = GatewayStore.open(db)
    with store.transaction():
        for n in range(MESSAGES):
            text = with_phone(oru(f"ORU-{n}"))
            store.store_message(AGENT, parse_inbound(text), text, n)
            notice = prearrival(f"PRE-{n}")
            store.store_message(AGENT, parse_inbound(notice), notice, n)
            store.store_rejected(
                AGENT,
                f"BAD-{n}",
                ack_code="AE",
                error_code="207",
                reason="refused",
                payload=b"\xff\x00" + NAME.encode() + bytes([n]),
                received_wall_ns=n,
            )
        for n in range(5):
            store.enroll(f"amb-{n:03d}", key_from_hex(f"{n:02x}" * 32, "intl"), n)
    store.close()
    # Rows per group of sealed columns (store.sealed_groups): messages; notices (identity,
    # and destination and complaint under their own key id column); refused messages (bytes,
    # and reason and topic under theirs); boxes. Numeric OBX values are not sealed.
    rows = 2 * MESSAGES + 2 * MESSAGES + 2 * MESSAGES + 5
    return str(db), rows


def contents(db: str) -> dict[str, Any]:
    """Everything the sealed columns hold, opened (what must survive a rotation)."""
    store = GatewayStore.open_readonly(db)
    try:
        return {
            "messages": store.messages(),
            "person": [m["control_id"] for m in store.messages(national_id=NATIONAL_ID)],
            "rejected": store.kept_rejected(),
            "keys": {a: k.key for a, k in store.message_keys().items()},
            "notices": store.status()["prearrivals"],
        }
    finally:
        store.close()


def key_status(db: str) -> dict[str, Any]:
    out = subprocess.run(
        [str(EDGE_AGENT), "gateway", "keys", "status", "--db", db, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


def killed_after(argv: list[str], lines: int) -> None:
    """Run the command and SIGKILL it once it has reported `lines` batches done."""
    proc = subprocess.Popen(
        [str(EDGE_AGENT), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    seen = 0
    for line in proc.stderr:
        assert line.startswith("gateway keys: "), line
        seen += 1
        if seen >= lines:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"finished before its kill (after {seen} batches)"


def sealed_texts(db: str, table: str, column: str) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as raw:
        return [str(r[0]) for r in raw.execute(f"SELECT {column} FROM {table} ORDER BY rowid")]


def test_a_rotation_killed_at_random_points_finishes_and_loses_nothing(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    db, rows = filled(tmp_path)
    before = contents(db)
    old_names = sealed_texts(db, "message", "patient_name")
    assert key_status(db)["values"] == {"k1": rows}
    first, second = rng.randint(1, rows // 3), rng.randint(1, rows // 3)
    killed_after(["gateway", "keys", "rotate", "--db", db, "--batch", "1"], first)
    half = key_status(db)
    assert half["active"] == "k2" and half["resealing"], seed
    assert half["values"]["k1"] == half["rows_left"] and half["values"]["k2"] >= first, seed
    assert sum(half["values"].values()) == rows, seed
    assert contents(db) == before, seed  # half under k1, half under k2: all open
    killed_after(["gateway", "keys", "reseal", "--db", db, "--batch", "1"], second)
    assert key_status(db)["rows_left"] < half["rows_left"], seed
    done = subprocess.run(
        [str(EDGE_AGENT), "gateway", "keys", "reseal", "--db", db, "--batch", "7"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    finished = json.loads(done.stdout)
    assert finished["resealing_in"] == "command" and finished["rows_left"] == 0
    assert finished["values"] == {"k2": rows}
    assert finished["tables"]["enrolment"] == {"k2": 5}
    assert contents(db) == before, seed
    # The blind index is made anew under k2, and no k1 value is left in the files.
    store = GatewayStore.open_readonly(db)
    try:
        k2_index = sealed.blind_index(store.keyring, sealed.NATIONAL_ID, NATIONAL_ID)
    finally:
        store.close()
    indexes = set(sealed_texts(db, "message", "patient_index")) - {"None"}
    assert indexes == {k2_index}
    folder = Path(db).parent
    files = b"".join(
        (folder / f"gateway.sqlite3{s}").read_bytes()
        for s in ("", "-wal", "-shm")
        if (folder / f"gateway.sqlite3{s}").exists()
    )
    assert not [t for t in old_names if t.encode() in files], seed
    assert plain_in(folder, "gateway.sqlite3") == {}
    assert PHONE.encode() not in files


def test_the_pass_never_takes_an_edited_value_for_plain(tmp_path: Path) -> None:
    db, rows = filled(tmp_path)
    with sqlite3.connect(db) as raw:
        edited = raw.execute(
            "UPDATE prearrival SET patient_name = 'v1.intl.k1.AAAA'"
            " WHERE rowid = (SELECT MAX(rowid) FROM prearrival)"
        )
        assert edited.rowcount == 1
    rotated = subprocess.run(
        [str(EDGE_AGENT), "gateway", "keys", "rotate", "--db", db],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rotated.returncode == 1
    assert rotated.stderr.count("\n") == 1 and "prearrival.patient_name" in rotated.stderr
    assert "AAAA" not in rotated.stderr.replace("v1.intl.k1.AAAA", "")
    status = key_status(db)
    assert status["values"]["k1"] >= 1 and sum(status["values"].values()) == rows


def test_a_running_gateway_reseals_in_its_background_while_messages_arrive(
    tmp_path: Path, broker: LocalBroker
) -> None:
    db, rows = filled(tmp_path)
    before = contents(db)
    gateway = Gateway(broker.url, db, client_id="rotating-gw", sheets_dir=tmp_path / "sheets")
    gateway.start()
    box = Box(broker)
    try:
        gateway.wait_connected(10)
        rotated = subprocess.run(
            [str(EDGE_AGENT), "gateway", "keys", "rotate", "--db", db, "--suite", "sm"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert rotated.returncode == 0, rotated.stderr
        answer = json.loads(rotated.stdout)
        assert (answer["resealing_in"], answer["active"], answer["suite"]) == (
            "gateway",
            "k2",
            "sm",
        )
        for n in range(5):
            box.send(with_phone(oru(f"NEW-{n}")))
        assert {box.ack().code for _ in range(5)} == {"AA"}
        wait_until(
            lambda: operations.perform(db, "keys.status", {})["rows_left"] == 0,
            30,
            "the gateway's pass done",
        )
    finally:
        box.close()
        gateway.stop()
    after = contents(db)
    assert after["messages"][: len(before["messages"])] == before["messages"]
    assert [m["control_id"] for m in after["messages"][len(before["messages"]) :]] == [
        f"NEW-{n}" for n in range(5)
    ]
    assert after["rejected"] == before["rejected"] and after["keys"] == before["keys"]
    assert key_status(db)["values"] == {"k2": rows + 5}
    assert set(sealed_texts(db, "message", "patient_name")) <= {"None"} | {
        t for t in sealed_texts(db, "message", "patient_name") if t.startswith("v1.sm.k2.")
    }


def test_every_table_that_names_its_key_is_declared_sealed_once(tmp_path: Path) -> None:
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    GatewayStore.open(db).close()
    with sqlite3.connect(db) as raw:
        tables = [r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        columns = {t: {r[1] for r in raw.execute(f"PRAGMA table_info({t})")} for t in tables}
    key_columns = {(t, c) for t, cs in columns.items() for c in cs if c.endswith("_key")}
    key_columns -= {("enrolment", "mac_key")}  # a sealed value, not a key id column
    assert set(sealed_groups()) == key_columns
    places = [c.place for c in SEALED_COLUMNS]
    assert len(set(places)) == len(places)  # one line a column
    for c in SEALED_COLUMNS:
        assert c.column in columns[c.table] and c.key_column in columns[c.table]
        if c.index:
            assert "patient_index" in columns[c.table]


def test_keys_commands_act_as_county_it_users(tmp_path: Path) -> None:
    db, _rows = filled(tmp_path)
    operations.perform(db, "users.add", {"name": "boss", "role": "county-it", "pin": "1234"})
    operations.perform(
        db, "users.add", {"name": "ann", "role": "er", "pin": "5678"}, as_user=("boss", "1234")
    )
    with pytest.raises(Exception, match="the role er may not rotate-keys"):
        operations.perform(db, "keys.rotate", {}, as_user=("ann", "5678"))
    out = subprocess.run(
        [str(EDGE_AGENT), "gateway", "keys", "status", "--db", db, "--as", "boss"],
        input="1234\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        f"active key k1 (intl); values per key id: k1: {_rows}; every value sealed under it"
    )
    with pytest.raises(GatewayStoreError):
        GatewayStore.open_readonly(str(tmp_path / "nowhere.sqlite3"))
