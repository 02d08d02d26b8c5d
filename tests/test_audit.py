"""The audit trail (edge_agent/audit.py): every operation writes its row with its change,
the chain is append-only, and `audit verify` catches each kind of tampering an attacker
holding the file could do (raw sqlite3 after dropping the triggers) and names the first
bad row."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from box_keys import init_keys_in
from cli_box import cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from operated_box import RESIDENT, Box, open_box

from edge_agent import audit
from edge_agent.control import OpError
from edge_agent.crypto.suites import suite
from edge_agent.store import AuditRow, StoreWriter

COLUMNS = [f.name for f in dataclasses.fields(AuditRow)]


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    opened = open_box(tmp_path)
    yield opened
    opened.store.close()


def a_day_at_the_clinic(box: Box) -> None:
    """Set-up, sign-ins, a registration, a visit, a refusal and a failure: 13 rows."""
    box.run("users.add", {"name": "admin", "role": "admin", "pin": "9999"})
    admin = box.sign_in("admin", "9999")
    box.run("users.add", {"name": "王医生", "role": "doctor", "pin": "1234"}, session=admin)
    box.run("users.add", {"name": "kiosk", "role": "kiosk", "pin": "0000"}, session=admin)
    doctor = box.sign_in("王医生", "1234")
    box.clock.advance(60)
    box.run("patients.add", {"national_id": RESIDENT, "name": "张三"}, session=doctor)
    box.run("visit.start", {"national_id": RESIDENT, "device": "cuff-1"}, session=doctor)
    box.run("patients.list", session=doctor)
    with pytest.raises(OpError):
        box.run("patients.list", session=box.sign_in("kiosk", "0000"))
    with pytest.raises(OpError):
        box.run("visit.start", {"national_id": "110105194912310021"}, session=doctor)
    box.run("visit.end", {"device": "cuff-1"}, session=doctor)


def test_each_operation_writes_its_row_refusals_and_failures_too(box: Box) -> None:
    a_day_at_the_clinic(box)
    rows = box.store.audit.find(limit=100)
    summary = [(r.seq, r.user, r.role, r.action, r.op, r.outcome) for r in rows]
    assert summary == [
        (1, "root", "admin", "create", "users.add", "ok"),
        (2, "admin", "admin", "sign-in", "users.sign-in", "ok"),
        (3, "admin", "admin", "create", "users.add", "ok"),
        (4, "admin", "admin", "create", "users.add", "ok"),
        (5, "王医生", "doctor", "sign-in", "users.sign-in", "ok"),
        (6, "王医生", "doctor", "create", "patients.add", "ok"),
        (7, "王医生", "doctor", "change", "visit.start", "ok"),
        (8, "王医生", "doctor", "read", "patients.list", "ok"),
        (9, "kiosk", "kiosk", "sign-in", "users.sign-in", "ok"),
        (10, "kiosk", "kiosk", "read", "patients.list", "refused"),
        (11, "王医生", "doctor", "change", "visit.start", "failed"),
        (12, "王医生", "doctor", "change", "visit.end", "ok"),
    ]
    patient = box.store.patients.all()[0].id
    assert (rows[5].subject, rows[5].person, rows[6].person) == (
        f"patient:{patient}",
        patient,
        patient,
    )
    assert rows[6].station == "amb-017/cuff-1" and rows[0].station == "amb-017"
    assert rows[9].reason == "patients.list: the role kiosk may not read-person"
    assert rows[5].time.endswith("+08:00") and rows[5].suite == "intl"
    # Nothing personal is in the trail: the subject names the row, not the resident.
    dumped = repr(box.store.conn.execute("SELECT * FROM audit").fetchall())
    for personal in (RESIDENT, "110105194912310021", "张三", "1234"):
        assert personal not in dumped
    assert rows[10].reason == "national id: check character is 1, expected X (typo?)"
    assert audit.verify(box.store).intact
    head = audit.head(box.store)
    assert head is not None and (head.seq, head.hash) == (12, rows[-1].hash)
    assert box.store.meta.get(audit.HEAD_KEY) == f"12:{rows[-1].hash.hex()}"


def test_a_change_and_its_row_are_one_transaction(
    box: Box, monkeypatch: pytest.MonkeyPatch
) -> None:
    box.run("patients.add", {"national_id": RESIDENT, "name": "张三"})

    def failing(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(box.store.audit, "append", failing)
    with pytest.raises(OpError, match="the store failed: disk I/O error"):
        box.run("visit.start", {"national_id": RESIDENT})
    assert box.store.patients.current_encounter("*") is None  # the change went with it
    monkeypatch.undo()
    assert [r.op for r in box.store.audit.find()] == ["patients.add"]


def test_sqlite_itself_refuses_to_change_or_remove_a_row(box: Box) -> None:
    a_day_at_the_clinic(box)
    conn = sqlite3.connect(box.store.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE audit SET user = 'nobody' WHERE seq = 3")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM audit WHERE seq = 12")
    finally:
        conn.close()
    assert audit.verify(box.store).intact


def test_an_sm_box_chains_with_sm3_and_a_mixed_chain_verifies(box: Box) -> None:
    box.run("patients.add", {"national_id": RESIDENT, "name": "张三"})
    box.services.config = dataclasses.replace(
        box.services.config,
        security=dataclasses.replace(box.services.config.security, suite="sm"),
    )
    box.run("patients.list")
    first, second = box.store.audit.find()
    assert (first.suite, second.suite) == ("intl", "sm")
    assert second.hash == suite("sm").digest(first.hash + audit.canonical(second))
    assert audit.verify(box.store).intact


# --- tampering, as someone holding the file ------------------------------------------


def rows_of(db: Path) -> list[list[Any]]:
    conn = sqlite3.connect(db)
    try:
        return [
            list(r) for r in conn.execute(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY seq")
        ]
    finally:
        conn.close()


def rewrite(db: Path, rows: list[list[Any]]) -> None:
    """Drop the triggers and put `rows` in place of the trail (meta left alone)."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
        conn.execute("BEGIN")
        conn.execute("DELETE FROM audit")
        conn.executemany(
            f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
            rows,
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def forged(seq: int, prev: bytes) -> list[Any]:
    """A well-made row: linked to `prev`, its hash computed."""
    row = AuditRow(
        seq,
        1,
        "2026-01-01T00:00:00+08:00",
        "ghost",
        "admin",
        "amb-017",
        "read",
        "patients.list",
        "patients:*",
        None,
        "ok",
        None,
        "intl",
        prev,
        b"",
    )
    return list(dataclasses.astuple(dataclasses.replace(row, hash=audit.row_hash(row))))


SEQ, PREV, HASH = COLUMNS.index("seq"), COLUMNS.index("prev_hash"), COLUMNS.index("hash")
EDITABLE = [
    "wall_ns",
    "time",
    "user",
    "role",
    "station",
    "action",
    "subject",
    "outcome",
    "reason",
    "suite",
    "prev_hash",
    "hash",
]


def tamper(
    rows: list[list[Any]], kind: str, k: int, j: int, field: str
) -> tuple[list[list[Any]], int]:
    """The tampered rows and the seq `verify` must name (k, j: 1-based rows, k <= j)."""
    rows = [list(r) for r in rows]
    n = len(rows)
    if kind == "edit":
        i = COLUMNS.index(field)
        old = rows[k - 1][i]
        rows[k - 1][i] = (
            old + 1
            if isinstance(old, int)
            else bytes(b ^ 1 for b in old)
            if isinstance(old, bytes)
            else ("sm" if old == "intl" else "intl")
            if field == "suite"
            else (old or "") + "x"
        )
        return rows, k
    if kind == "delete":  # one row out, the others as they were
        del rows[k - 1]
        return rows, k
    if kind == "delete-renumbered":  # one row out, the later ones renumbered to close the gap
        del rows[k - 1]
        for r in rows[k - 1 :]:
            r[SEQ] -= 1
        return rows, k
    if kind == "insert":  # a well-made row at k, the later ones renumbered
        prev = audit.GENESIS if k == 1 else rows[k - 2][HASH]
        for r in rows[k - 1 :]:
            r[SEQ] += 1
        rows.insert(k - 1, forged(k, prev))
        return rows, k
    if kind == "replace":  # row k replaced by a well-made row linked to the one before
        rows[k - 1] = forged(k, audit.GENESIS if k == 1 else rows[k - 2][HASH])
        return rows, k
    if kind == "append":  # a well-made row after the head
        rows.append(forged(n + 1, rows[-1][HASH]))
        return rows, n + 1
    if kind == "swap":  # two rows' contents swapped, seq kept in place
        if k == j:
            j = k + 1 if k < n else k - 1
            k, j = min(k, j), max(k, j)
        rows[k - 1][1:], rows[j - 1][1:] = rows[j - 1][1:], rows[k - 1][1:]
        return rows, k
    assert kind == "truncate"  # the tail from k on
    return rows[: k - 1], k


KINDS = ["edit", "delete", "delete-renumbered", "insert", "replace", "append", "swap", "truncate"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_tampering_is_caught_and_the_first_bad_row_named(box: Box, kind: str) -> None:
    a_day_at_the_clinic(box)
    db = box.store.path
    rows, expected = tamper(rows_of(db), kind, 6, 9, "user")
    rewrite(db, rows)
    verdict = audit.verify(box.store)
    assert not verdict.intact and verdict.first_bad == expected, verdict
    assert str(expected) in (verdict.problem or "")


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["alice", "王医生", "crew-1", "?"]),
        st.sampled_from(["create", "read", "change", "sign-in", "sign-in-failed"]),
        st.sampled_from(["ok", "refused", "failed"]),
        st.none() | st.text(max_size=30),
        st.sampled_from(["intl", "sm"]),
    ),
    min_size=2,
    max_size=25,
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=EVENTS,
    kind=st.sampled_from(KINDS),
    picks=st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)),
    field=st.sampled_from(EDITABLE),
)
def test_any_trail_then_any_one_tampering_names_the_first_bad_seq(
    tmp_path_factory: pytest.TempPathFactory,
    events: list[tuple[str, str, str, str | None, str]],
    kind: str,
    picks: tuple[int, int],
    field: str,
) -> None:
    db = tmp_path_factory.mktemp("trail") / "t.sqlite3"
    store = StoreWriter.open(db)
    try:
        for n, (user, action, outcome, reason, suite) in enumerate(events):
            with store.transaction():
                audit.append(
                    store,
                    audit.Event(
                        user,
                        "doctor",
                        "amb-017",
                        action,
                        "patients.list",
                        outcome,
                        None,
                        None,
                        reason,
                    ),
                    suite=suite,
                    wall_ns=1_800_000_000_000_000_000 + n,
                    timezone="Asia/Shanghai",
                )
        assert audit.verify(store).intact
        n = len(events)
        k, j = sorted((1 + picks[0] % n, 1 + picks[1] % n))
        rows, expected = tamper(rows_of(db), kind, k, j, field)
        rewrite(db, rows)
        verdict = audit.verify(store)
        assert not verdict.intact
        assert verdict.first_bad == expected, (kind, k, j, field, verdict)
    finally:
        store.close()


def test_after_a_cut_tail_new_rows_keep_the_gap_visible(box: Box) -> None:
    a_day_at_the_clinic(box)
    rewrite(box.store.path, rows_of(box.store.path)[:8])
    box.run("patients.list", session=box.sign_in("admin", "9999"))  # the box goes on
    verdict = audit.verify(box.store)
    assert (verdict.intact, verdict.first_bad) == (False, 9)
    assert [r.seq for r in box.store.audit.find()][-3:] == [8, 13, 14]


def test_an_anchor_from_elsewhere_catches_a_rewritten_chain(box: Box) -> None:
    """What the gateway's copy of the head is for: chain and meta rewritten together."""
    a_day_at_the_clinic(box)
    sent = audit.head(box.store)
    assert sent is not None
    rows = rows_of(box.store.path)[:5]
    rewrite(box.store.path, rows)
    box.store.meta.set(audit.HEAD_KEY, f"5:{rows[-1][HASH].hex()}")
    assert audit.verify(box.store).intact  # the box alone cannot tell
    gateway = audit.Anchor(sent.seq, sent.hash, "gateway")
    verdict = audit.verify(box.store, [*audit.stored_anchors(box.store), gateway])
    assert (verdict.intact, verdict.first_bad) == (False, 6)
    assert "gateway anchor" in (verdict.problem or "")


# --- audit show -----------------------------------------------------------------------


def test_show_filters_by_person_user_and_time(box: Box) -> None:
    a_day_at_the_clinic(box)
    admin = box.sign_in("admin", "9999")
    patient = box.store.patients.all()[0].id

    def show(**filters: Any) -> list[tuple[int, str]]:
        result = box.run("audit.show", filters, session=admin)
        return [(r["seq"], r["op"]) for r in result["rows"]]

    by_person = [
        (6, "patients.add"),
        (7, "visit.start"),
        (8, "patients.list"),
        (10, "patients.list"),
    ]
    assert show(person=RESIDENT) == by_person
    assert show(person=str(patient)) == by_person
    assert show(user="kiosk") == [(9, "users.sign-in"), (10, "patients.list")]
    since = [s for s, _ in show(since="2027-01-15T16:01:00+08:00")]
    assert since == list(range(6, 6 + len(since))) and len(since) >= 8  # shows are rows too
    assert [s for s, _ in show(until="2027-01-15T16:01:00")] == list(range(1, 6))
    with pytest.raises(OpError, match="--since: 'yesterday' is not an ISO 8601 time"):
        show(since="yesterday")
    with pytest.raises(OpError, match="--limit: 0 is not between 1 and 20000"):
        show(limit=0)
    with pytest.raises(OpError, match="no resident with this national id"):
        show(person="110101199003074477")
    with pytest.raises(OpError, match="the role doctor may not read-audit"):
        box.run("audit.show", session=box.sign_in("王医生", "1234"))


# --- the CLI ----------------------------------------------------------------------------


def test_the_cli_signs_in_acts_and_verify_exits_1_naming_the_bad_row(tmp_path: Path) -> None:
    cfg = tmp_path / "edge-agent.toml"
    cfg.write_text(
        f'[agent]\nid = "amb-017"\ndata_dir = "{tmp_path / "data"}"\n'
        '[uplink]\nbroker = "mqtt://127.0.0.1:9"\nallow_insecure = true\n',
        encoding="utf-8",
    )
    init_keys_in(tmp_path / "data")
    assert cli(cfg, "users", "add", "admin", "--role", "admin", stdin="9999\n").returncode == 0
    added = cli(cfg, "users", "add", "wang", "--role", "doctor", stdin="1234\n")
    assert added.returncode == 0, added.stderr  # a single-admin box: acts as its admin
    assert json.loads(added.stdout)["role"] == "doctor"
    two = cli(cfg, "patients", "add", "--national-id", RESIDENT, "--name", "张三")
    assert two.returncode == 1 and "name yours with --as NAME" in two.stderr
    ok = cli(
        cfg,
        "--as",
        "wang",
        "patients",
        "add",
        "--national-id",
        RESIDENT,
        "--name",
        "张三",
        stdin="1234\n",
    )
    assert ok.returncode == 0, ok.stderr
    wrong = cli(cfg, "patients", "list", "--as", "wang", stdin="4321\n")
    assert (wrong.returncode, wrong.stderr) == (1, "error: sign-in wang: wrong user name or PIN\n")
    no_pin = cli(cfg, "--as", "wang", "patients", "list")
    assert no_pin.returncode == 2 and no_pin.stderr.startswith("error: PIN for wang")
    listed = cli(cfg, "--as", "admin", "users", "list", "--json", stdin="9999\n")
    assert [json.loads(line)["user"] for line in listed.stdout.splitlines()] == ["admin", "wang"]
    shown = cli(cfg, "--as", "admin", "audit", "show", "--user", "wang", "--json", stdin="9999\n")
    ops = [json.loads(line)["op"] for line in shown.stdout.splitlines()]
    assert ops == ["users.sign-in", "patients.add", "users.sign-in"]
    intact = cli(cfg, "--as", "admin", "audit", "verify", stdin="9999\n")
    assert intact.returncode == 0, intact.stderr
    db = tmp_path / "data" / "edge-agent.sqlite3"
    rows, _ = tamper(rows_of(db), "edit", 4, 4, "outcome")
    rewrite(db, rows)
    broken = cli(cfg, "--as", "admin", "audit", "verify", "--json", stdin="9999\n")
    assert broken.returncode == 1
    assert broken.stderr == "error: audit trail broken: row 4: does not match its hash (edited)\n"
    assert json.loads(broken.stdout)["first_bad_seq"] == 4


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    national_id=st.text(max_size=24) | st.from_regex(r"[0-9]{17}[0-9X]", fullmatch=True),
    name=st.text(max_size=12),
    phone=st.none() | st.from_regex(r"\+?[0-9 -]{3,20}", fullmatch=True),
)
def test_a_failed_request_leaves_no_personal_text_in_the_trail(
    box: Box, national_id: str, name: str, phone: str | None
) -> None:
    args = {"national_id": national_id, "name": name, "phone": phone}
    with contextlib.suppress(OpError):  # refused or not: its row is what is checked
        box.run("patients.add", args)
    last = box.store.audit.last()
    assert last is not None and last.op == "patients.add"
    # What the row says in text (its time and hashes are numbers and bytes of their own,
    # where a run of digits proves nothing).
    stored = repr(
        box.store.conn.execute(
            "SELECT user, role, station, action, op, subject, outcome, reason FROM audit"
            " WHERE seq = ?",
            (last.seq,),
        ).fetchall()
    )
    for value in (national_id, name, phone or ""):
        if len(value) >= 2 and last.outcome != "ok":
            assert value not in (last.reason or ""), (value, last.reason)
    digits = "".join(c for c in national_id if c.isdigit())
    if len(digits) >= 6 and last.outcome != "ok":
        assert digits not in stored


def test_listing_held_readings_is_a_read_of_personal_data(box: Box) -> None:
    assert box.run("readings.unassigned", {"device": "monitor-1"}) == {"readings": []}
    last = box.store.audit.last()
    assert last is not None
    assert (last.action, last.op, last.subject, last.station) == (
        "read",
        "readings.unassigned",
        "readings:held",
        "amb-017/monitor-1",
    )
