"""Users, PINs, lockout, sessions and who an operation is done for (edge_agent/users.py),
on real SQLite files through edge_agent.operations, as the daemon runs them."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from operated_box import RESIDENT, Box, open_box, with_users

from edge_agent import users
from edge_agent.control import OpError
from edge_agent.crypto import pins


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    opened = open_box(tmp_path)
    yield opened
    opened.store.close()


# --- PIN hashes ------------------------------------------------------------------------


def test_a_pin_hash_keeps_its_parameters_and_salt_and_checks_only_its_pin() -> None:
    stored = pins.hash_pin("123456")
    kind, log2_n, r, p, salt, digest = stored.split("$")
    assert (kind, log2_n, r, p) == ("scrypt", "14", "8", "1")
    assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(digest)) == 32
    assert pins.pin_matches("123456", stored)
    assert not pins.pin_matches("123457", stored)
    assert pins.hash_pin("123456") != stored  # a new salt each time
    assert not pins.pin_matches("123456", stored.replace("$14$", "$30$"))  # absurd cost
    assert not pins.pin_matches("123456", "plain:123456")
    with pytest.raises(pins.PinError, match="4 to 12 digits"):
        pins.hash_pin("12a4")


# --- managing users --------------------------------------------------------------------


def test_users_are_added_listed_disabled_and_their_pin_reset(box: Box) -> None:
    with pytest.raises(OpError, match="first user must be an admin"):
        box.run("users.add", {"name": "wang", "role": "doctor", "pin": "1234"})
    with_users(box)
    listed = box.run("users.list", session=box.sign_in("admin", "9999"))["users"]
    assert [(u["user"], u["role"], u["disabled"]) for u in listed] == [
        ("admin", "admin", False),
        ("王医生", "doctor", False),
        ("crew-1", "crew", False),
        ("kiosk", "kiosk", False),
    ]
    admin = box.sign_in("admin", "9999")
    for bad, message in [
        ({"name": "admin", "role": "doctor", "pin": "1111"}, "already exists"),
        ({"name": "x", "role": "er", "pin": "1111"}, "one of admin, doctor, crew, kiosk"),
        ({"name": "../etc", "role": "crew", "pin": "1111"}, "user name"),
        ({"name": "li", "role": "crew", "pin": "12"}, "4 to 12 digits"),
    ]:
        with pytest.raises(OpError, match=message):
            box.run("users.add", bad, session=admin)
    with pytest.raises(OpError, match="last admin"):
        box.run("users.disable", {"name": "admin"}, session=admin)
    doctor = box.sign_in("王医生", "1234")
    box.run("users.disable", {"name": "王医生"}, session=admin)
    with pytest.raises(OpError, match="session is locked"):  # a disabled user's session
        box.run("patients.list", session=doctor)
    with pytest.raises(OpError, match="disabled"):
        box.sign_in("王医生", "1234")
    box.run("users.reset-pin", {"name": "crew-1", "pin": "24680"}, session=admin)
    with pytest.raises(OpError, match="wrong user name or PIN"):
        box.sign_in("crew-1", "5678")
    box.sign_in("crew-1", "24680")
    # No PIN is stored, nor any token: only their hashes.
    # (Hex digests and nanosecond times hold "9999" by chance now and then: the PIN hash
    # is checked for its form, the other text columns for the PINs.)
    cur = sqlite3.connect(box.store.path).execute("SELECT * FROM app_user")
    names = [c[0] for c in cur.description]
    for row in cur.fetchall():
        for name, value in zip(names, row, strict=True):
            if name == "pin_hash":
                assert re.fullmatch(r"scrypt\$14\$8\$1\$[0-9a-f]{32}\$[0-9a-f]{64}", value)
            elif isinstance(value, str):
                assert "24680" not in value and "9999" not in value, name
    sessions = box.store.conn.execute("SELECT token_hash FROM user_session").fetchall()
    assert admin not in {t for (t,) in sessions} and len(sessions) >= 3


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(max_size=40), role=st.sampled_from(["admin", "doctor", "crew", "x"]))
def test_any_user_name_is_stored_exactly_or_refused_storing_nothing(
    box: Box, name: str, role: str
) -> None:
    if box.store.users.by_name("admin") is None:
        box.run("users.add", {"name": "admin", "role": "admin", "pin": "9999"})
    admin = box.sign_in("admin", "9999")
    before = box.store.users.all()
    try:
        box.run("users.add", {"name": name, "role": role, "pin": "1234"}, session=admin)
    except OpError as exc:
        assert "\n" not in str(exc)
        assert box.store.users.all() == before
        return
    added = box.store.users.by_name(name)
    assert added is not None and (added.name, added.role) == (name, role)
    assert users.NAME.fullmatch(name) and len(box.store.users.all()) == len(before) + 1


# --- sign-in and lockout ---------------------------------------------------------------


def test_five_failures_lock_with_a_doubling_back_off_and_the_right_pin_is_refused_meanwhile(
    box: Box,
) -> None:
    with_users(box)
    for _ in range(4):
        with pytest.raises(OpError, match=r"wrong user name or PIN$"):
            box.sign_in("王医生", "0001")
    with pytest.raises(OpError, match="locked for 30 s"):
        box.sign_in("王医生", "0002")  # the fifth
    with pytest.raises(OpError, match="locked for 30 s more"):
        box.sign_in("王医生", "1234")  # right PIN, still locked
    box.clock.advance(29)
    with pytest.raises(OpError, match="locked for 1 s more"):
        box.sign_in("王医生", "1234")
    box.clock.advance(2)
    with pytest.raises(OpError, match="locked for 60 s"):
        box.sign_in("王医生", "0003")  # the sixth: doubled
    box.clock.advance(61)
    with pytest.raises(OpError, match="locked for 120 s"):
        box.sign_in("王医生", "0004")
    box.clock.advance(121)
    box.sign_in("王医生", "1234")  # the right PIN after the lockout: in, count reset
    assert box.store.users.by_name("王医生").failed_attempts == 0  # type: ignore[union-attr]
    assert [users.lockout_s(n) for n in (4, 5, 6, 7, 12, 40)] == [0, 30, 60, 120, 3600, 3600]
    # Every attempt is in the trail, failures as sign-in-failed.
    rows = [r for r in box.store.audit.find(user="王医生") if r.op == "users.sign-in"]
    assert [r.action for r in rows] == ["sign-in-failed"] * 9 + ["sign-in"]
    assert all(r.outcome == "refused" for r in rows[:-1]) and rows[-1].outcome == "ok"


def test_an_unknown_user_is_refused_as_a_wrong_pin(box: Box) -> None:
    with_users(box)
    with pytest.raises(OpError, match="sign-in nobody: wrong user name or PIN"):
        box.sign_in("nobody", "1234")
    with pytest.raises(OpError, match=r"sign-in \?: wrong user name or PIN"):
        box.sign_in("bad\nname", "1234")
    (last,) = box.store.audit.find(limit=100_000)[-1:]
    assert (last.user, last.action, last.outcome) == ("?", "sign-in-failed", "refused")


# --- sessions and the idle lock --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pin", "idle_lock_s"),
    [
        ("admin", "9999", 600),
        ("王医生", "1234", 600),
        ("kiosk", "0000", 120),
        ("crew-1", "5678", 45),
    ],
)
def test_a_session_idle_longer_than_its_roles_lock_is_locked(
    tmp_path: Path, name: str, pin: str, idle_lock_s: float
) -> None:
    box = open_box(tmp_path, crew_idle_lock_s=45)
    clock = box.clock
    try:
        with_users(box)
        token = box.sign_in(name, pin)
        state = box.run("users.session", session=token)
        assert (state["user"], state["locked"], state["idle_lock_s"]) == (name, False, idle_lock_s)
        clock.advance(idle_lock_s - 1)
        assert box.run("users.touch", session=token)["locked"] is False  # starts again
        clock.advance(idle_lock_s - 1)
        assert box.run("users.session", session=token)["locked"] is False
        clock.advance(2)
        assert box.run("users.session", session=token)["locked"] is True
        assert box.run("users.touch", session=token)["locked"] is True  # no waking it
        with pytest.raises(OpError, match="session is locked: enter the PIN again"):
            box.run("visit.end", session=token)
        again = box.sign_in(name, pin)  # the PIN again: a new session
        assert box.run("users.session", session=again)["locked"] is False
    finally:
        box.store.close()


def test_a_session_from_another_boot_or_unknown_is_locked(box: Box) -> None:
    with_users(box)
    token = box.sign_in("王医生", "1234")
    box.clock.boot_id = "boot-2"
    assert box.run("users.session", session=token)["locked"] is True
    assert box.run("users.session", session="made-up")["user"] is None
    with pytest.raises(OpError, match="session is not known"):
        box.run("patients.list", session="made-up")


# --- who an operation is done for ------------------------------------------------------


def test_the_role_decides_and_a_refusal_is_audited_with_nothing_changed(box: Box) -> None:
    with_users(box)
    kiosk = box.sign_in("kiosk", "0000")
    with pytest.raises(OpError, match="the role kiosk may not register-person") as refused:
        box.run("patients.add", {"national_id": RESIDENT, "name": "张三"}, session=kiosk)
    assert refused.value.status == 1
    assert box.store.patients.all() == []
    last = box.store.audit.last()
    assert last is not None
    assert (last.user, last.role, last.op, last.outcome) == (
        "kiosk",
        "kiosk",
        "patients.add",
        "refused",
    )
    doctor = box.sign_in("王医生", "1234")
    added = box.run("patients.add", {"national_id": RESIDENT, "name": "张三"}, session=doctor)
    last = box.store.audit.last()
    assert last is not None
    assert (last.user, last.role, last.action, last.person) == (
        "王医生",
        "doctor",
        "create",
        added["id"],
    )
    # The change and its row are one transaction: the operation log names the same user.
    assert box.store.operation_log.recent(1)[0]["user"] == "王医生"


def test_without_a_session_the_os_user_acts_only_on_a_box_set_up_or_with_one_admin(
    box: Box,
) -> None:
    # No users yet: the OS user sets the box up, as an admin under its own name.
    box.run("users.add", {"name": "admin", "role": "admin", "pin": "9999"})
    assert box.store.audit.last().user == "root"  # type: ignore[union-attr]
    # One user, an admin: a single-user box; the command acts as that admin.
    box.run("patients.add", {"national_id": RESIDENT, "name": "张三"})
    assert (box.store.audit.last().user, box.store.audit.last().role) == ("admin", "admin")  # type: ignore[union-attr]
    box.run("users.add", {"name": "wang", "role": "doctor", "pin": "1234"})
    with pytest.raises(OpError, match="this box has 2 users: name yours with --as NAME"):
        box.run("patients.list")
    # An OS user who is not root, the daemon's user nor in its group is never trusted.
    assert not users.os_user_trusted(None)
    assert users.os_user_trusted(0) and users.os_user_trusted(os.geteuid())
    assert not users.os_user_trusted(65534)  # nobody
    box.run("users.disable", {"name": "wang"}, session=box.sign_in("admin", "9999"))
    with pytest.raises(OpError, match="nobody is not the service's user or in its group"):
        box.run("patients.list", user="nobody", uid=65534)


# --- through the daemon's control socket -----------------------------------------------


def test_a_ui_signs_in_over_the_socket_and_its_session_carries_the_role(tmp_path: Path) -> None:
    from test_control import Served

    from edge_agent import control

    served = Served(tmp_path)
    try:
        call = control.call
        call(served.path, "users.add", {"name": "admin", "role": "admin", "pin": "9999"})
        admin = call(served.path, "users.sign-in", {"name": "admin", "pin": "9999"})["session"]
        crew = {"name": "crew-1", "role": "crew", "pin": "5678"}
        call(served.path, "users.add", crew, session=admin)
        with pytest.raises(OpError, match="name yours with --as NAME"):
            call(served.path, "patients.list", {})  # no session on a box of two users
        signed = call(served.path, "users.sign-in", {"name": "crew-1", "pin": "5678"})
        assert (signed["role"], signed["idle_lock_s"]) == ("crew", 300)
        token = signed["session"]
        assert call(served.path, "users.session", {}, session=token)["user"] == "crew-1"
        assert call(served.path, "patients.list", {}, session=token) == {"residents": []}
        with pytest.raises(OpError, match="the role crew may not manage-users") as refused:
            call(served.path, "users.list", {}, session=token)
        assert refused.value.status == 1
        with pytest.raises(OpError, match="wrong user name or PIN"):
            call(served.path, "users.sign-in", {"name": "crew-1", "pin": "0000"})
        assert served.store.users.by_name("crew-1").failed_attempts == 1  # type: ignore[union-attr]
        trail = [(r.user, r.op, r.outcome) for r in served.store.audit.find()][-4:]
        assert trail == [
            ("crew-1", "users.sign-in", "ok"),
            ("crew-1", "patients.list", "ok"),
            ("crew-1", "users.list", "refused"),
            ("crew-1", "users.sign-in", "refused"),
        ]
    finally:
        served.close()
