"""The county gateway's users (er, county-it) and its own audit trail (docs/security.md,
"The gateway's users", "The gateway's own audit trail"): real SQLite stores with real
key files, the commands as subprocesses with PINs on stdin, a real Mosquitto and a
running gateway for the control socket."""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import gateway_keys
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_gateway_reply import AGENT, Ambulance
from test_gateway_sealed import NAME, NATIONAL_ID, prearrival

from edge_agent import control
from edge_agent.local_broker import LocalBroker
from sync.gateway import operations
from sync.gateway.service import Gateway
from sync.gateway.store import GatewayStore
from sync.hl7.inbound import parse_inbound

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")
ME = pwd.getpwuid(os.getuid()).pw_name
BOSS, BOSS_PIN = "boss", "90817263"
ANN, ANN_PIN = "ann", "44556677"
MAC_KEY = "5a" * 32


def new_store(folder: Path) -> str:
    db = folder / "gateway.sqlite3"
    gateway_keys.made(db)
    GatewayStore.open(db).close()
    return str(db)


def with_users(folder: Path) -> str:
    """A store whose first user (county-it, added by the OS user: setting it up) added
    an ER user."""
    db = new_store(folder)
    operations.perform(db, "users.add", {"name": BOSS, "role": "county-it", "pin": BOSS_PIN})
    operations.perform(
        db, "users.add", {"name": ANN, "role": "er", "pin": ANN_PIN}, as_user=(BOSS, BOSS_PIN)
    )
    return db


def trail(db: str) -> list[tuple[str, str, str, str, str | None]]:
    """(user, action, op, outcome, subject) of every row of the gateway's own trail."""
    store = GatewayStore.open_readonly(db)
    try:
        return [
            (r.user, r.action, r.op, r.outcome, r.subject) for r in store.trail.audit.in_order()
        ]
    finally:
        store.close()


def refused(db: str, op: str, args: dict[str, Any], as_user: tuple[str, str] | None) -> str:
    with pytest.raises(control.OpError) as caught:
        operations.perform(db, op, args, as_user=as_user)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_the_first_user_is_county_it_then_every_command_names_its_user(tmp_path: Path) -> None:
    db = new_store(tmp_path)
    # Setting up: no users yet, the OS user acts. The first user must be county-it.
    first = refused(db, "users.add", {"name": ANN, "role": "er", "pin": ANN_PIN}, None)
    assert "the gateway's first user must be county-it" in first
    added = operations.perform(
        db, "users.add", {"name": BOSS, "role": "county-it", "pin": BOSS_PIN}
    )
    assert added == {"id": 1, "user": BOSS, "role": "county-it"}
    # From now on nobody acts unnamed, not even the gateway's own OS user.
    assert "this gateway has users: name yours with --as NAME" in refused(db, "status", {}, None)
    operations.perform(
        db, "users.add", {"name": ANN, "role": "er", "pin": ANN_PIN}, as_user=(BOSS, BOSS_PIN)
    )
    enrol = {"agent": AGENT, "mac_key": MAC_KEY, "suite": "intl"}
    assert "the role er may not enrol-box" in refused(db, "enroll", enrol, (ANN, ANN_PIN))
    assert operations.perform(db, "enroll", enrol, as_user=(BOSS, BOSS_PIN))["enrolled"] == AGENT
    assert "the role er may not manage-users" in refused(db, "users.list", {}, (ANN, ANN_PIN))
    listed = operations.perform(db, "users.list", {}, as_user=(BOSS, BOSS_PIN))["users"]
    assert [(u["user"], u["role"]) for u in listed] == [(BOSS, "county-it"), (ANN, "er")]
    assert trail(db) == [
        (ME, "create", "users.add", "failed", None),
        (ME, "create", "users.add", "ok", "user:1"),
        (ME, "read", "status", "refused", None),
        (BOSS, "sign-in", "users.add", "ok", "user:1"),
        (BOSS, "create", "users.add", "ok", "user:2"),
        (ANN, "sign-in", "enroll", "ok", "user:2"),
        (ANN, "change", "enroll", "refused", None),
        (BOSS, "sign-in", "enroll", "ok", "user:1"),
        (BOSS, "change", "enroll", "ok", f"box:{AGENT}"),  # who enrolled which box
        (ANN, "sign-in", "users.list", "ok", "user:2"),
        (ANN, "read", "users.list", "refused", None),
        (BOSS, "sign-in", "users.list", "ok", "user:1"),
        (BOSS, "read", "users.list", "ok", "users:*"),
    ]


def test_wrong_pins_count_lock_the_user_and_a_reset_ends_it(tmp_path: Path) -> None:
    db = with_users(tmp_path)
    for _ in range(4):
        assert "wrong user name or PIN" in refused(db, "status", {}, (ANN, "11111111"))
    fifth = refused(db, "status", {}, (ANN, "11111111"))
    assert fifth.endswith("wrong user name or PIN; locked for 30 s")
    # Locked: even the right PIN is refused, and not counted.
    assert "locked for 30 s more" in refused(db, "status", {}, (ANN, ANN_PIN))
    # An unknown name gets the wrong PIN's answer.
    assert refused(db, "status", {}, ("nobody", ANN_PIN)).endswith(
        "sign-in nobody: wrong user name or PIN"
    )
    listed = operations.perform(db, "users.list", {}, as_user=(BOSS, BOSS_PIN))["users"]
    assert listed[1] == {
        "user": ANN,
        "role": "er",
        "disabled": False,
        "failed_attempts": 5,
        "locked": True,
    }
    operations.perform(
        db, "users.reset-pin", {"name": ANN, "pin": "12121212"}, as_user=(BOSS, BOSS_PIN)
    )
    assert "wrong user name or PIN" in refused(db, "status", {}, (ANN, ANN_PIN))  # the old one
    assert (
        operations.perform(db, "status", {}, as_user=(ANN, "12121212"))["report"]["messages"] == 0
    )
    failed = [row for row in trail(db) if row[1] == "sign-in-failed"]
    assert [(u, op, outcome) for u, _a, op, outcome, _s in failed] == [
        *[(ANN, "status", "refused")] * 6,  # five wrong PINs, one while locked
        ("nobody", "status", "refused"),
        (ANN, "status", "refused"),  # the PIN from before the reset
    ]


def test_the_last_county_it_user_stays_and_a_disabled_user_cannot_sign_in(tmp_path: Path) -> None:
    db = with_users(tmp_path)
    boss = (BOSS, BOSS_PIN)
    assert "the gateway's last county-it user" in refused(db, "users.disable", {"name": BOSS}, boss)
    assert operations.perform(db, "users.disable", {"name": ANN}, as_user=boss)["disabled"]
    assert "sign-in ann: the user is disabled" in refused(db, "status", {}, (ANN, ANN_PIN))
    assert "no such user" in refused(db, "users.reset-pin", {"name": "x", "pin": "1234"}, boss)
    assert "PIN: must be 4 to 12 digits" in refused(
        db, "users.add", {"name": "bob", "role": "er", "pin": "12"}, boss
    )
    assert "one of er, county-it" in refused(
        db, "users.add", {"name": "bob", "role": "admin", "pin": "1234"}, boss
    )


def test_the_er_sees_who_a_notice_names_and_county_it_does_not(tmp_path: Path) -> None:
    db = with_users(tmp_path)
    store = GatewayStore.open(db)
    with store.transaction():
        text = prearrival("PRE-1")
        store.store_message(AGENT, parse_inbound(text), text, 1)
    store.close()
    er = operations.perform(db, "status", {}, as_user=(ANN, ANN_PIN))["report"]
    assert er["prearrivals"][0]["patient_name"] == NAME
    assert er["prearrivals"][0]["patient_id"] == NATIONAL_ID
    assert "personal_data" not in er
    it = operations.perform(db, "status", {}, as_user=(BOSS, BOSS_PIN))["report"]
    notice = it["prearrivals"][0]
    assert (notice["patient_name"], notice["patient_id"]) == (None, None)
    assert notice["control_id"] == "PRE-1" and notice["expected_at"] is not None
    # the complaint is free text (it names the patient here): withheld too
    assert (notice["complaint"], notice["destination"]) == (None, None)
    assert er["prearrivals"][0]["complaint"].endswith("胸痛2小时")
    assert it["personal_data"] == "withheld: the role county-it may not read-inbound"


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EDGE_AGENT), *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_the_commands_take_the_pin_from_stdin_never_from_argv(tmp_path: Path) -> None:
    db = new_store(tmp_path)
    added = cli(
        "gateway", "users", "add", BOSS, "--role", "county-it", "--db", db, stdin=f"{BOSS_PIN}\n"
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) == {"id": 1, "user": BOSS, "role": "county-it"}
    # The acting user's PIN is the first line, the new user's the second.
    two = f"{BOSS_PIN}\n{ANN_PIN}\n"
    ann = cli("--as", BOSS, "gateway", "users", "add", ANN, "--role", "er", "--db", db, stdin=two)
    assert ann.returncode == 0, ann.stderr
    unnamed = cli("gateway", "status", "--db", db)
    assert unnamed.returncode == 1 and unnamed.stderr.count("\n") == 1
    assert unnamed.stderr.startswith("error: gateway status: this gateway has users")
    status = cli("gateway", "status", "--db", db, "--json", "--as", ANN, stdin=f"{ANN_PIN}\n")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["messages"] == 0
    listed = cli("gateway", "users", "list", "--db", db, "--as", BOSS, stdin=f"{BOSS_PIN}\n")
    assert [json.loads(line)["user"] for line in listed.stdout.splitlines()] == [BOSS, ANN]
    no_pin = cli("gateway", "users", "list", "--db", db, "--as", BOSS)
    assert no_pin.returncode == 2 and "none on stdin" in no_pin.stderr
    verified = cli(
        "gateway", "audit", "verify-local", "--db", db, "--as", BOSS, stdin=f"{BOSS_PIN}\n"
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("the gateway's audit trail is intact (")
    shown = cli(
        "gateway",
        "audit",
        "show-local",
        "--db",
        db,
        "--json",
        "--user",
        ANN,
        "--as",
        BOSS,
        stdin=f"{BOSS_PIN}\n",
    )
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [(r["action"], r["op"]) for r in rows] == [("sign-in", "status"), ("read", "status")]
    # No PIN anywhere in the store's files: only their scrypt hashes.
    for suffix in ("", "-wal", "-shm"):
        path = Path(db + suffix)
        if path.exists():
            data = path.read_bytes()
            assert BOSS_PIN.encode() not in data and ANN_PIN.encode() not in data


def test_verify_local_names_the_first_row_that_was_edited_or_cut(tmp_path: Path) -> None:
    db = with_users(tmp_path)
    operations.perform(db, "users.list", {}, as_user=(BOSS, BOSS_PIN))
    assert operations.perform(db, "audit.verify-local", {}, as_user=(BOSS, BOSS_PIN))["intact"]
    rows = len(trail(db))
    raw = sqlite3.connect(db)
    raw.execute("DROP TRIGGER gateway_audit_no_update")
    raw.execute("DROP TRIGGER gateway_audit_no_delete")
    raw.execute("UPDATE gateway_audit SET user = 'someone' WHERE seq = 3")
    raw.commit()
    broken = cli(
        "gateway", "audit", "verify-local", "--db", db, "--as", BOSS, stdin=f"{BOSS_PIN}\n"
    )
    assert broken.returncode == 1, broken.stderr
    assert broken.stdout.strip() == (
        "the gateway's audit trail breaks: row 3: does not match its hash (edited)"
    )
    raw.execute("UPDATE gateway_audit SET user = ? WHERE seq = 3", (BOSS,))
    raw.execute("DELETE FROM gateway_audit WHERE seq > ?", (rows - 2,))
    raw.commit()
    raw.close()
    # The tail cut: the head kept beside the chain is ahead, so the rows this check adds
    # (its sign-in) go on from the head, and the gap stays.
    cut = operations.perform(db, "audit.verify-local", {}, as_user=(BOSS, BOSS_PIN))
    assert (cut["intact"], cut["first_bad_seq"]) == (False, rows - 1)
    assert cut["problem"] == f"row {rows - 1} is missing (deleted)"


def test_through_the_running_gateway_the_er_replies_as_a_named_user(
    tmp_path: Path, broker: LocalBroker
) -> None:
    db = with_users(tmp_path)
    ambulance = Ambulance(broker)
    gateway = Gateway(broker.url, db, client_id="users-gw")
    gateway.start()
    try:
        gateway.wait_connected(10)
        base = ["gateway", "reply", "--agent", AGENT, "--ref", "PRE-1", "--db", db]
        sent = cli(*base, "--status", "cath-lab-ready", "--as", ANN, stdin=f"{ANN_PIN}\n")
        assert sent.returncode == 0, sent.stderr
        assert ambulance.arrived.wait(10)
        assert ambulance.received[0]["by"] == ANN  # who answers: the signed-in user
        # county-it may not reply; a wrong PIN is refused and counted, by the gateway.
        it = cli(*base, "--status", "received", "--as", BOSS, stdin=f"{BOSS_PIN}\n")
        assert it.returncode == 1 and "the role county-it may not reply-to-ambulance" in it.stderr
        with pytest.raises(control.OpError, match="wrong user name or PIN") as wrong:
            control.call(
                gateway.control_path,
                "reply",
                {
                    "agent": AGENT,
                    "ref": "PRE-1",
                    "status": "received",
                    "sign_in": {"user": ANN, "pin": "00000000"},
                },
            )
        assert wrong.value.status == control.STATUS_FAILED
        with pytest.raises(control.OpError, match="sign_in must be"):
            control.call(gateway.control_path, "status", {"sign_in": "ann:1234"})
        listed = operations.perform(db, "users.list", {}, as_user=(BOSS, BOSS_PIN))["users"]
        assert listed[1]["failed_attempts"] == 1
    finally:
        gateway.stop()
        ambulance.close()
    assert len(ambulance.received) == 1
    rows = trail(db)
    assert (ANN, "create", "reply", "ok", f"reply:{AGENT}/PRE-1") in rows
    assert (BOSS, "create", "reply", "refused", None) in rows
    assert (ANN, "sign-in-failed", "reply", "refused", "user:2") in rows
    verdict = operations.perform(db, "audit.verify-local", {}, as_user=(BOSS, BOSS_PIN))
    assert verdict["intact"]


_TEXT = st.one_of(st.none(), st.text(max_size=40), st.integers(), st.booleans())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=_TEXT,
    role=st.one_of(_TEXT, st.sampled_from(["er", "county-it"])),
    pin=st.one_of(_TEXT, st.from_regex(r"[0-9]{4,12}", fullmatch=True)),
    extra=st.dictionaries(st.text(max_size=8), _TEXT, max_size=2),
)
def test_any_users_add_request_adds_that_user_or_is_refused_in_one_line(
    name: object, role: object, pin: object, extra: dict[str, object]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        db = with_users(Path(folder))
        args = {**{k: v for k, v in extra.items() if k != "sign_in"}, "name": name, "role": role}
        args["pin"] = pin
        try:
            added = operations.perform(db, "users.add", args, as_user=(BOSS, BOSS_PIN))
        except control.OpError as exc:
            assert "\n" not in str(exc) and exc.status in (1, 2)
            store = GatewayStore.open_readonly(db)
            try:
                assert [u.name for u in store.users.all()] == [BOSS, ANN]  # nothing added
                last = store.trail.audit.last()
                assert last is not None and last.outcome in ("failed", "refused")
                if isinstance(pin, str) and len(pin) >= 2:
                    # a PIN is never kept (an unknown argument is named: its name may
                    # be the same text as the PIN, found by hypothesis)
                    reason = last.reason or ""
                    for key in args:
                        reason = reason.replace(repr(key[:40]), "")
                    assert pin not in reason
            finally:
                store.close()
            return
        store = GatewayStore.open_readonly(db)
        try:
            user = store.users.by_name(str(name))
            assert user is not None and (user.name, user.role) == (name, role)
            assert not user.disabled and user.pin_hash.startswith("scrypt$14$8$1$")
        finally:
            store.close()
        assert added == {"id": 3, "user": name, "role": role}


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=80)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(
    sign_in=st.one_of(
        _JSON, st.fixed_dictionaries({"user": _JSON, "pin": _JSON}), st.just({"user": "a"})
    ),
    rest=st.dictionaries(st.text(max_size=8), _JSON, max_size=3),
)
def test_a_requests_sign_in_is_a_name_and_a_pin_or_refused_in_one_line(
    sign_in: object, rest: dict[str, object]
) -> None:
    args = {**rest, operations.SIGN_IN_ARG: sign_in}
    try:
        credentials, others = operations.take_credentials(args)
    except control.OpError as exc:
        assert exc.status == control.STATUS_USAGE and "\n" not in str(exc)
        pin = sign_in.get("pin") if isinstance(sign_in, dict) else None
        assert not (isinstance(pin, str) and len(pin) >= 4 and pin in str(exc))
        return
    assert others == {k: v for k, v in rest.items() if k != operations.SIGN_IN_ARG}
    if sign_in is None:
        assert credentials is None
        return
    assert isinstance(sign_in, dict) and credentials is not None
    assert (credentials.user, credentials.pin) == (sign_in["user"], sign_in["pin"])
    assert len(credentials.user) <= 64 and len(credentials.pin) <= 64
    assert repr(credentials) == f"Credentials(user={credentials.user!r})"  # never the PIN
