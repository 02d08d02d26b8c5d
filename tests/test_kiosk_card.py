"""A resident signed in by the ID card on the kiosk's reader (edge_agent/kiosk_card.py),
on a real SQLite file, the kiosk's screen asking through edge_agent.operations as the
daemon runs it, with a clock the tests step. The reader itself is tests/
test_id_card_reader.py's (a pty speaking the module's frames to the daemon)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import id_card_bytes as b
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from operated_box import RESIDENT, Box, open_box, with_users
from residents import resident

from edge_agent import audit, id_card, kiosk_card
from edge_agent.config import Config, ConfigError, from_dict
from edge_agent.control import OpError
from edge_agent.kiosk_card import CardDesk
from edge_agent.store import AuditRow

OTHER = resident(7)
TODAY = dt.date(2027, 1, 15)  # the box's clock: operated_box.StepClock's wall time


def text_of(number: str, sex: str) -> bytes:
    return id_card.to_text(
        name="李四", sex_code=sex, ethnic_code="01", birth=number[6:14], address="某地",
        number=number, authority="某公安局", valid_from="20200101", valid_until="长期",
    )  # fmt: skip


OTHER_TEXT = text_of(OTHER.national_id, "1" if int(OTHER.national_id[16]) % 2 else "2")
STRANGER = resident(9)
STRANGER_TEXT = text_of(STRANGER.national_id, "1" if int(STRANGER.national_id[16]) % 2 else "2")


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    opened = open_box(tmp_path)
    with_users(opened)
    doctor = opened.sign_in("王医生", "1234")
    for number, name in (
        (RESIDENT, "张三"),
        (OTHER.national_id, "李四"),
        ("110101194001010012", "王五"),
    ):
        opened.run("patients.add", {"national_id": number, "name": name}, session=doctor)
    for number in (RESIDENT, OTHER.national_id):
        opened.run("consent.give", {"national_id": number, "pin": "2468"}, session=doctor)
    opened.services.card_desk = CardDesk(opened.store, opened.clock, opened.services.config)
    yield opened
    opened.store.close()


def desk(box: Box) -> CardDesk:
    assert box.services.card_desk is not None
    return box.services.card_desk


def screen(box: Box) -> dict[str, object]:
    """What the kiosk's screen, signed in with the kiosk's box account, is told."""
    return box.run("kiosk.card-session", session=box.sign_in("kiosk", "0000"))


def card_rows(box: Box) -> list[AuditRow]:
    return [r for r in box.store.audit.in_order() if r.op in ("kiosk.card", "kiosk.card-session")]


def patient_id(box: Box, number: str) -> int:
    row = box.store.patients.by_national_id(number)
    assert row is not None
    return row.id


def test_a_card_placed_signs_its_resident_in_and_the_screen_takes_the_session_once(
    box: Box,
) -> None:
    me = patient_id(box, RESIDENT)
    assert screen(box)["card"] == "none"
    desk(box).read(b.TEXT)
    seen = screen(box)
    token = seen["session"]
    assert isinstance(token, str) and len(token) > 40
    assert seen | {"session": None} == {
        "reader": "starting",
        "card": "signed-in",
        "placed": 1,
        "user": f"resident:{me}",
        "session": None,
        "idle_lock_s": 120.0,
        "refusal": None,
    }
    assert screen(box)["session"] is None  # handed over once
    state = box.run("users.session", session=token)
    assert state == {
        "user": f"resident:{me}",
        "role": "kiosk",
        "locked": False,
        "idle_s": 0.0,
        "idle_lock_s": 120.0,
    }
    shown = box.run("consent.show", {"national_id": RESIDENT}, session=token)
    assert shown["patient"] == me  # the session acts as the resident, with the kiosk role
    desk(box).read(b.TEXT)  # the same card at the next polls: nothing new
    desk(box).read(b.TEXT)
    rows = card_rows(box)
    assert [(r.user, r.role, r.action, r.outcome, r.subject, r.person) for r in rows] == [
        (f"resident:{me}", "kiosk", "sign-in", "ok", f"patient:{me}", me),
        ("kiosk", "kiosk", "hand-over", "ok", f"patient:{me}", me),
    ]
    assert rows[0].station == "amb-017/id-card-reader"


def test_the_card_taken_off_ends_its_session(box: Box) -> None:
    desk(box).read(b.TEXT)
    token = str(screen(box)["session"])
    desk(box).absent()  # one poll without it (a module may say so once after a read)
    assert box.run("users.session", session=token)["locked"] is False
    desk(box).read(b.TEXT)
    desk(box).absent()
    desk(box).absent()
    assert box.run("users.session", session=token)["locked"] is True
    with pytest.raises(OpError, match="locked"):
        box.run("consent.show", {"national_id": RESIDENT}, session=token)
    assert screen(box) | {"reader": None} == {
        "reader": None,
        "card": "none",
        "placed": 1,
        "user": None,
        "session": None,
        "idle_lock_s": None,
        "refusal": None,
    }
    last = card_rows(box)[-1]
    assert (last.action, last.reason) == ("sign-out", "the card was taken off the reader")
    assert box.store.meta.get(kiosk_card.META_KEY) == ""


def test_another_card_ends_the_first_residents_session_and_opens_its_own(box: Box) -> None:
    desk(box).read(b.TEXT)
    first = str(screen(box)["session"])
    desk(box).read(OTHER_TEXT)
    second = screen(box)
    other = patient_id(box, OTHER.national_id)
    assert second["user"] == f"resident:{other}" and second["placed"] == 2
    assert box.run("users.session", session=first)["locked"] is True
    assert box.run("users.session", session=str(second["session"]))["user"] == f"resident:{other}"
    assert [(r.action, r.reason) for r in card_rows(box)][-3:] == [
        ("sign-out", "another card was placed"),
        ("sign-in", None),
        ("hand-over", None),
    ]


def test_the_reader_going_away_ends_the_session(box: Box) -> None:
    desk(box).read(b.TEXT)
    token = str(screen(box)["session"])
    desk(box).reader_lost("disconnected: device gone (end of file)")
    assert box.run("users.session", session=token)["locked"] is True
    assert screen(box)["reader"] == "disconnected: device gone (end of file)"
    assert card_rows(box)[-1].reason == "the reader went away"


@pytest.mark.parametrize(
    ("text", "refusal", "who"),
    [
        (b.EXPIRED_TEXT, "kiosk sign-in by card: ID card: expired", None),
        (
            b.card_text(sex=b.SEX_MALE),
            "kiosk sign-in by card: ID card: the number does not agree with the birth date and sex",
            None,
        ),
        (STRANGER_TEXT, "kiosk sign-in by card: the resident is not registered", None),
        (text_of("110101194001010012", "1"), "kiosk sign-in by card: no consent stands", "王五"),
    ],
)
def test_a_refused_card_is_audited_once_and_opens_nothing(
    box: Box, text: bytes, refusal: str, who: str | None
) -> None:
    desk(box).read(text)
    desk(box).read(text)  # still lying there: no second row
    seen = screen(box)
    assert (seen["card"], seen["refusal"], seen["session"], seen["user"]) == (
        "refused",
        refusal,
        None,
        None,
    )
    (row,) = [r for r in card_rows(box) if r.action == audit.SIGN_IN_FAILED]
    assert (row.outcome, row.reason, row.role) == ("refused", refusal, "kiosk")
    if who is None:
        assert (row.user, row.person) == ("resident:?", None)
    else:
        number = "110101194001010012"
        assert row.person == patient_id(box, number) and row.user == f"resident:{row.person}"
    assert box.store.conn.execute("SELECT count(*) FROM resident_session").fetchone() == (0,)
    for r in card_rows(box):
        assert RESIDENT not in str(r) and STRANGER.national_id not in str(r)


def test_only_the_kiosks_screen_takes_a_cards_session(box: Box) -> None:
    desk(box).read(b.TEXT)
    resident_token = str(
        box.run("kiosk.sign-in", {"national_id": RESIDENT, "pin": "2468"})["session"]
    )
    with pytest.raises(OpError, match="a resident's session cannot take a card's session"):
        box.run("kiosk.card-session", session=resident_token)
    with pytest.raises(OpError, match="may not take-card-session"):
        box.run("kiosk.card-session", session=box.sign_in("王医生", "1234"))
    assert isinstance(screen(box)["session"], str)  # still there for the kiosk's screen


def test_a_box_without_a_reader_says_so(box: Box) -> None:
    box.services.card_desk = None
    assert screen(box)["reader"] == "none"


def test_a_resident_session_is_touched_and_locks_after_the_kiosks_idle_time(box: Box) -> None:
    desk(box).read(b.TEXT)
    token = str(screen(box)["session"])
    box.clock.advance(100)
    assert box.run("users.session", session=token)["idle_s"] == 100.0
    assert box.run("users.touch", session=token)["idle_s"] == 0.0
    box.clock.advance(100)
    assert box.run("users.session", session=token)["locked"] is False  # touched 100 s ago
    box.clock.advance(21)
    state = box.run("users.touch", session=token)
    assert state["locked"] is True and state["idle_s"] == 121.0  # a touch does not revive it


def test_a_pin_session_is_known_to_session_and_touch_too(box: Box) -> None:
    token = str(box.run("kiosk.sign-in", {"national_id": RESIDENT, "pin": "2468"})["session"])
    box.clock.advance(30)
    assert box.run("users.touch", session=token)["user"] == f"resident:{patient_id(box, RESIDENT)}"
    box.clock.boot_id = "boot-2"  # another boot: locked
    assert box.run("users.session", session=token)["locked"] is True


def test_a_new_daemon_ends_the_card_session_its_predecessor_left(box: Box) -> None:
    desk(box).read(b.TEXT)
    token = str(screen(box)["session"])
    CardDesk(box.store, box.clock, box.services.config)  # the daemon started again
    assert box.run("users.session", session=token)["locked"] is True
    last = card_rows(box)[-1]
    assert (last.user, last.action, last.reason) == (
        "edge-agent",
        "sign-out",
        "a card session left by the last run",
    )


# --- the reader in the config ---------------------------------------------------------


def _config(role: str, **kiosk: object) -> Config:
    return from_dict(
        {
            "agent": {"id": "hut-3", "data_dir": "/tmp/hut", "role": role},
            "uplink": {"broker": "mqtt://127.0.0.1:9", "allow_insecure": True},
            "kiosk": kiosk,
        }
    )


def test_the_reader_is_a_kiosks_serial_port_at_one_of_the_modules_rates() -> None:
    assert _config("kiosk").kiosk.id_card_reader == ""  # none by default
    reader = _config("kiosk", id_card_reader="/dev/edge/id-card", id_card_baud=9600).kiosk
    assert (reader.id_card_reader, reader.id_card_baud) == ("/dev/edge/id-card", 9600)
    assert _config("kiosk", id_card_reader="/dev/ttyUSB0").kiosk.id_card_baud == 115200


@pytest.mark.parametrize(
    ("role", "kiosk", "message"),
    [
        ("clinic", {"id_card_reader": "/dev/ttyUSB0"}, "only for a kiosk"),
        ("kiosk", {"id_card_reader": "ttyUSB0"}, "absolute path"),
        ("kiosk", {"id_card_reader": 3}, "absolute path"),
        ("kiosk", {"id_card_reader": "/dev/ttyUSB0", "id_card_baud": 14400}, "one of 115200"),
        ("kiosk", {"id_card_baud": True}, "one of 115200"),
        ("kiosk", {"id_card_baudrate": 9600}, "kiosk.id_card_baudrate: unknown key"),
    ],
)
def test_config_check_refuses_a_bad_reader(
    role: str, kiosk: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(role, **kiosk)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(min_size=256, max_size=256), mutate=st.integers(0, 255))
def test_any_text_read_stores_one_refusal_or_one_session_and_nothing_of_the_card(
    box: Box, raw: bytes, mutate: int
) -> None:
    """Random text, or the resident's card with one byte changed: what is stored is one
    audit row for the placement and, only for a card that checks, one session."""
    text = raw if mutate % 2 else b.TEXT[:mutate] + bytes([raw[0]]) + b.TEXT[mutate + 1 :]
    rows, sessions = len(card_rows(box)), _sessions(box)
    desk(box).read(text)
    placed = card_rows(box)[rows:]
    assert len(placed) == 1 and placed[0].op == "kiosk.card"
    if placed[0].action == "sign-in":
        assert _sessions(box) == sessions + 1
        assert id_card.from_text(text, today=TODAY).national_id == RESIDENT
    else:
        assert placed[0].outcome == "refused" and _sessions(box) == sessions
        assert RESIDENT not in str(placed[0]) and "张" not in str(placed[0])
    desk(box).absent()
    desk(box).absent()  # taken off again: the next example starts with no card


def _sessions(box: Box) -> int:
    return int(box.store.conn.execute("SELECT count(*) FROM resident_session").fetchone()[0])
