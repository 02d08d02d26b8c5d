"""A resident's consent (edge_agent/consent.py) and their sign-in at a kiosk
(edge_agent/kiosk_sign_in.py), on real SQLite files through edge_agent.operations as
the daemon runs them, with a clock the tests step."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from box_keys import box_config, init_keys_in
from cli_box import cli
from operated_box import RESIDENT, Box, open_box, with_users
from residents import resident

from edge_agent import audit, consent_text
from edge_agent.control import OpError

OTHER = resident(7).national_id


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    opened = open_box(tmp_path)
    with_users(opened)
    opened.doctor = opened.sign_in("王医生", "1234")  # type: ignore[attr-defined]
    for number, name in ((RESIDENT, "张三"), (OTHER, "李四")):
        opened.run("patients.add", {"national_id": number, "name": name}, session=doctor(opened))
    yield opened
    opened.store.close()


def doctor(box: Box) -> str:
    return str(box.doctor)  # type: ignore[attr-defined]


def give(box: Box, number: str = RESIDENT, pin: str = "246810", **more: str) -> dict[str, object]:
    args = {"national_id": number, "pin": pin, **more}
    return box.run("consent.give", args, session=doctor(box))


def kiosk(box: Box, number: str = RESIDENT, pin: str = "246810") -> str:
    return str(box.run("kiosk.sign-in", {"national_id": number, "pin": pin})["session"])


def consent_rows(box: Box) -> list[tuple[object, ...]]:
    return box.store.conn.execute(
        "SELECT patient_id, action, text_version, text_sha256, wall_ns, by_user, by_role"
        " FROM consent_event ORDER BY id"
    ).fetchall()


# --- the text ---------------------------------------------------------------------------


def test_each_consent_text_is_zh_cn_and_its_version_is_pinned_by_its_digest() -> None:
    current = consent_text.text(consent_text.CURRENT)
    assert current.language == "zh_CN" and "单独同意" in current.text and "撤回" in current.text
    # A version's text never changes once residents consented to it: its digest is fixed
    # here, so an edit of version 1 fails this test (a new wording is a new version).
    assert consent_text.text("1").sha256 == (
        "f05d886493f3062198dda02b0c817a9088b6693452b45283365ee0fcef5658e0"
    )
    with pytest.raises(KeyError, match="one of 1"):
        consent_text.text("9")


# --- give, withdraw, show ---------------------------------------------------------------


def test_consent_is_recorded_with_time_version_and_who_and_a_withdrawal_the_same_way(
    box: Box,
) -> None:
    given = give(box)
    assert given["consent"] == "given" and given["pin"] == "set" and given["recorded"] is True
    text = consent_text.text("1")
    start = box.clock.wall
    box.clock.advance(300)
    withdrawn = box.run("consent.withdraw", {"national_id": RESIDENT}, session=doctor(box))
    assert withdrawn == {"patient": 1, "consent": "withdrawn", "version": "1", "visits_ended": []}
    assert consent_rows(box) == [
        (1, "give", "1", text.sha256, start, "王医生", "doctor"),
        (1, "withdraw", "1", text.sha256, start + 300 * 10**9, "王医生", "doctor"),
    ]
    shown = box.run("consent.show", {"national_id": RESIDENT}, session=doctor(box))
    assert (shown["consent"], shown["version"], shown["pin_set"]) == ("withdrawn", "1", True)
    assert [e["action"] for e in shown["events"]] == ["give", "withdraw"]
    assert shown["events"][0]["time"] == "2027-01-15T16:00:00+08:00"  # Asia/Shanghai
    # Given again after the withdrawal: the resident's PIN is needed now, and checked.
    with pytest.raises(OpError, match="wrong national id or PIN"):
        give(box, pin="111111")
    assert give(box)["pin"] == "checked"
    assert [r[1] for r in consent_rows(box)] == ["give", "withdraw", "give"]
    # The same version again while it stands records nothing new.
    assert give(box)["recorded"] is False and len(consent_rows(box)) == 3


def test_consent_rows_are_append_only_in_sqlite_itself(box: Box) -> None:
    give(box)
    with sqlite3.connect(box.store.path) as conn:
        for sql in ("UPDATE consent_event SET action = 'give'", "DELETE FROM consent_event"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)
    assert len(consent_rows(box)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"national_id": RESIDENT, "pin": "12"}, "4 to 12 digits"),
        ({"national_id": RESIDENT, "pin": "1234", "version": "7"}, "version '7': one of 1"),
        ({"national_id": "110105194912310021", "pin": "1234"}, "check character"),
        ({"national_id": resident(99).national_id, "pin": "1234"}, "not registered"),
    ],
)
def test_a_bad_consent_is_refused_in_one_line_storing_nothing(
    box: Box, args: dict[str, str], message: str
) -> None:
    with pytest.raises(OpError, match=message) as refused:
        box.run("consent.give", args, session=doctor(box))
    assert "\n" not in str(refused.value)
    assert consent_rows(box) == []
    assert box.store.conn.execute("SELECT COUNT(*) FROM resident_pin").fetchone() == (0,)
    last = box.store.audit.find(limit=1000)[-1]
    assert (last.op, last.outcome) == ("consent.give", "failed")
    assert "1234" not in repr(last) and RESIDENT not in repr(last)


def test_withdrawing_what_was_never_given_is_refused(box: Box) -> None:
    with pytest.raises(OpError, match="no consent standing"):
        box.run("consent.withdraw", {"national_id": RESIDENT}, session=doctor(box))


# --- roles, and a kiosk acting only for its resident ------------------------------------


def test_a_kiosk_acts_only_for_the_resident_signed_in(box: Box) -> None:
    give(box)
    give(box, OTHER, "135790")
    kiosk_user = box.sign_in("kiosk", "0000")  # the kiosk's own account: no resident
    with pytest.raises(OpError, match="a kiosk acts only for the resident signed in"):
        box.run("consent.show", {"national_id": RESIDENT}, session=kiosk_user)
    resident_session = kiosk(box)
    shown = box.run("consent.show", {"national_id": RESIDENT}, session=resident_session)
    assert shown["patient"] == 1 and shown["consent"] == "given"
    for op, args in [
        ("consent.show", {"national_id": OTHER}),
        ("consent.withdraw", {"national_id": OTHER}),
        ("consent.give", {"national_id": OTHER, "pin": "135790"}),
    ]:
        with pytest.raises(OpError, match="acts only for the resident signed in"):
            box.run(op, args, session=resident_session)
    for op in ("patients.list", "readings.unassigned", "audit.show", "users.list"):
        with pytest.raises(OpError, match="the role kiosk may not"):
            box.run(op, session=resident_session)
    refused = [r for r in box.store.audit.find(limit=1000) if r.outcome == "refused"]
    assert {(r.user, r.op) for r in refused} >= {
        ("kiosk", "consent.show"),
        ("resident:1", "consent.show"),
        ("resident:1", "consent.withdraw"),
        ("resident:1", "patients.list"),
    }
    # The refusal concerning the other resident names them by row, never by number.
    other_rows = [r for r in refused if r.person == 2]
    assert other_rows and all(OTHER not in repr(r) for r in refused)
    # The resident withdraws their own consent at the kiosk: their session ends.
    box.run("consent.withdraw", {"national_id": RESIDENT}, session=resident_session)
    with pytest.raises(OpError, match="session is locked"):
        box.run("consent.show", {"national_id": RESIDENT}, session=resident_session)
    assert consent_rows(box)[-1][1:2] + consent_rows(box)[-1][5:] == (
        "withdraw",
        "resident:1",
        "kiosk",
    )


def test_crew_records_consent_and_the_kiosk_role_cannot_register(box: Box) -> None:
    crew = box.sign_in("crew-1", "5678")
    box.run("consent.give", {"national_id": RESIDENT, "pin": "246810"}, session=crew)
    with pytest.raises(OpError, match="the role kiosk may not register-person"):
        box.run(
            "patients.add",
            {"national_id": resident(3).national_id, "name": "王五"},
            session=kiosk(box),
        )


# --- the resident's sign-in at a kiosk --------------------------------------------------


def test_a_resident_signs_in_with_number_and_pin_and_only_with_consent(box: Box) -> None:
    with pytest.raises(OpError, match="wrong national id or PIN"):  # no PIN yet
        kiosk(box)
    give(box)
    signed = box.run("kiosk.sign-in", {"national_id": RESIDENT, "pin": "246810"})
    assert (signed["user"], signed["role"], signed["idle_lock_s"]) == ("resident:1", "kiosk", 120)
    assert RESIDENT not in repr(signed) and "张三" not in repr(signed)
    with pytest.raises(OpError, match="wrong national id or PIN"):
        kiosk(box, pin="000000")
    with pytest.raises(OpError, match="wrong national id or PIN"):
        kiosk(box, number="not a number")
    box.run("consent.withdraw", {"national_id": RESIDENT}, session=doctor(box))
    with pytest.raises(OpError, match="consent is withdrawn"):
        kiosk(box)
    rows = [r for r in box.store.audit.find(limit=1000) if r.op == "kiosk.sign-in"]
    assert [(r.action, r.user, r.person) for r in rows] == [
        ("sign-in-failed", "resident:1", 1),
        ("sign-in", "resident:1", 1),
        ("sign-in-failed", "resident:1", 1),
        ("sign-in-failed", "resident:?", None),
        ("sign-in-failed", "resident:1", 1),
    ]
    dumped = repr(box.store.conn.execute("SELECT * FROM audit").fetchall())
    assert "246810" not in dumped and RESIDENT not in dumped and "张三" not in dumped


def test_five_wrong_pins_lock_the_resident_with_a_doubling_back_off(box: Box) -> None:
    give(box)
    for _ in range(4):
        with pytest.raises(OpError, match=r"wrong national id or PIN$"):
            kiosk(box, pin="000000")
    with pytest.raises(OpError, match=r"locked for 30 s$"):
        kiosk(box, pin="000001")
    with pytest.raises(OpError, match="locked for 30 s more"):
        kiosk(box)  # the right PIN, still locked
    with pytest.raises(OpError, match="locked for 30 s more"):
        give(box)  # re-consent is locked out as well
    box.clock.advance(31)
    with pytest.raises(OpError, match="locked for 60 s"):
        kiosk(box, pin="000002")
    box.clock.advance(61)
    kiosk(box)
    assert box.store.consent.pin(1).failed_attempts == 0  # type: ignore[union-attr]


def test_a_resident_session_locks_after_the_kiosk_idle_time_and_on_another_boot(
    box: Box,
) -> None:
    give(box)
    token = kiosk(box)
    box.clock.advance(119)
    box.run("consent.show", {"national_id": RESIDENT}, session=token)  # acting touches it
    box.clock.advance(119)
    box.run("consent.show", {"national_id": RESIDENT}, session=token)
    box.clock.advance(121)
    with pytest.raises(OpError, match="session is locked: sign in again"):
        box.run("consent.show", {"national_id": RESIDENT}, session=token)
    fresh = kiosk(box)
    box.clock.boot_id = "boot-2"
    with pytest.raises(OpError, match="session is locked"):
        box.run("consent.show", {"national_id": RESIDENT}, session=fresh)
    # Only the digest of a token is stored, and the PIN only as its scrypt hash.
    stored = repr(box.store.conn.execute("SELECT * FROM resident_session").fetchall())
    stored += repr(box.store.conn.execute("SELECT * FROM resident_pin").fetchall())
    assert token not in stored and fresh not in stored and "246810" not in stored
    assert "scrypt$14$8$1$" in stored


def test_consent_operations_are_audited_with_their_actions(box: Box) -> None:
    give(box)
    box.run("consent.show", {"national_id": RESIDENT}, session=doctor(box))
    box.run("consent.withdraw", {"national_id": RESIDENT}, session=doctor(box))
    rows = [r for r in box.store.audit.find(limit=1000) if r.op.startswith("consent.")]
    assert [(r.op, r.action, r.subject, r.person, r.outcome) for r in rows] == [
        ("consent.give", "create", "patient:1", 1, "ok"),
        ("consent.show", "read", "patient:1", 1, "ok"),
        ("consent.withdraw", "change", "patient:1", 1, "ok"),
    ]
    assert audit.verify(box.store).intact


# --- the CLI ----------------------------------------------------------------------------


def test_the_cli_gives_shows_and_withdraws_consent_pin_from_stdin_only(tmp_path: Path) -> None:
    cfg = box_config(tmp_path)
    init_keys_in(tmp_path / "data")
    assert cli(cfg, "users", "add", "admin", "--role", "admin", stdin="9999\n").returncode == 0
    added = cli(cfg, "patients", "add", "--national-id", RESIDENT, "--name", "张三")
    assert added.returncode == 0, added.stderr
    no_pin = cli(cfg, "consent", "give", "--national-id", RESIDENT)
    assert no_pin.returncode == 2 and no_pin.stderr.startswith("error: the resident's PIN")
    given = cli(cfg, "consent", "give", "--national-id", RESIDENT, stdin="246810\n")
    assert given.returncode == 0, given.stderr
    assert json.loads(given.stdout)["pin"] == "set"
    wrong = cli(cfg, "consent", "give", "--national-id", RESIDENT, stdin="111111\n")
    assert (wrong.returncode, wrong.stderr) == (
        1,
        "error: consent give: wrong national id or PIN\n",
    )
    withdrawn = cli(cfg, "consent", "withdraw", "--national-id", RESIDENT)
    assert withdrawn.returncode == 0, withdrawn.stderr
    shown = json.loads(cli(cfg, "consent", "show", "--national-id", RESIDENT).stdout)
    assert [e["action"] for e in shown["events"]] == ["give", "withdraw"]
    text = cli(cfg, "consent", "text")
    assert text.returncode == 0 and "健康数据单独同意书" in text.stdout
    assert consent_text.text("1").sha256 in text.stdout
    unknown = cli(cfg, "consent", "text", "--text-version", "9")
    assert (unknown.returncode, unknown.stderr) == (
        2,
        "error: consent text version '9': one of 1\n",
    )
