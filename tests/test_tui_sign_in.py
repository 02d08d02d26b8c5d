"""Sign-in and the idle lock in the terminal UI, against a real daemon (`edge-agent run`
over a real store, its control socket), driven with Textual's Pilot.

The daemon decides everything here (edge_agent.users): the PIN, the lockout after 5
wrong ones, the idle lock (the crew's `users.crew_idle_lock_s`, set to its least, 30 s).
The UI only asks, in worker threads, and shows the answers.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from box_keys import init_keys_in
from hypothesis import given
from hypothesis import strategies as st
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static
from tui_daemon import Daemon, running_daemon
from waiting import until

from edge_agent import control
from edge_agent.clock import SystemClock
from edge_agent.model import Decoded, DeviceAlarm, Frame, Reading
from edge_agent.recorder import Recorder
from edge_agent.store import StoreWriter
from tui import i18n
from tui.app import EdgeAgentApp, app_for
from tui.daemon_client import (
    DaemonClient,
    Refused,
    Session,
    SignedIn,
    Unreachable,
    sign_in_refusal,
)
from tui.idle import TouchDebounce
from tui.screens.sign_in import SignInScreen
from tui.screens.vitals import VitalsScreen
from tui.session_keeper import BANNER_ID, LOCKED_CLASS, PERSONAL_CLASS
from tui.widgets.tile import VitalTile

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")
CREW_IDLE_LOCK_S = 30  # the least the config allows (edge_agent.config)
USERS = (
    ("王医生", "doctor", "1234"),
    ("李医生", "doctor", "2468"),  # the lockout test's: locked out for the rest of the run
    ("crew-1", "crew", "5678"),
    ("kiosk", "kiosk", "0000"),
    ("张医生", "doctor", "1357"),  # the relock test's: their PIN is reset
)
SIZE = (120, 40)


def _seed(db: Path) -> None:
    """A monitor's SpO2 and an alarm, recorded before the daemon takes the store."""
    clock = SystemClock.create()
    store = StoreWriter.open(db, init_keys_in(db.parent))
    try:
        with store.transaction():
            store.devices.upsert("monitor-1", driver="masimo-ascii", transport="serial")
        decoded = Decoded(
            readings=(Reading("MDC_PULS_OXIM_SAT_O2", Decimal("97"), "MDC_DIM_PERCENT"),),
            alarms=(DeviceAlarm("low-spo2", "high", "SpO2 low"),),
        )
        frame = Frame(
            "monitor-1", "masimo-ascii", b"l", clock.wall_ns(), clock.mono_ns(), clock.boot_id
        )
        with store.transaction():
            Recorder(store).record(frame, lambda _: decoded)
    finally:
        store.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(
        tmp_path_factory.mktemp("signin"),
        USERS,
        agent_id="amb-017",
        config=f"[users]\ncrew_idle_lock_s = {CREW_IDLE_LOCK_S}\n",
        seed=_seed,
    ) as running:
        yield running


def message(app: EdgeAgentApp) -> str:
    return str(app.screen.query_one("#sign-in-message", Static).render())


async def sign_in(pilot: Pilot[int], name: str | None, pin: str) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, SignInScreen), screen
    if name is not None:
        screen.query_one("#name", Input).value = name
    screen.query_one("#pin", Input).focus()
    await pilot.press(*pin, "enter")


async def answered(app: EdgeAgentApp, *words: str) -> str:
    """The sign-in message once it says one of `words` (the daemon answered)."""
    await until(lambda: any(w in message(app) for w in words), 20, lambda: message(app))
    return message(app)


def on_disk(root: Path, text: str) -> list[Path]:
    needle = text.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


# --- the screens against the daemon ------------------------------------------------------


async def test_a_wrong_pin_or_an_unknown_name_is_one_message_naming_neither(
    daemon: Daemon,
) -> None:
    app = app_for("clinic", daemon.db, control_socket=daemon.socket)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, SignInScreen)
        assert app.screen.query_one("#pin", Input).password  # the PIN is masked
        await sign_in(pilot, "王医生", "1111")
        wrong = await answered(app, "错误")
        await sign_in(pilot, "nobody", "1111")
        unknown = await answered(app, "错误")
        assert wrong == unknown == "用户名或 PIN 码错误"
        assert isinstance(app.screen, SignInScreen)
        assert app.screen.query_one("#pin", Input).value == ""  # the PIN left the field
    # A good sign-in starts the count again: 王医生's one failure locks nothing later.
    signed = DaemonClient(daemon.socket).sign_in("王医生", "1234")
    assert isinstance(signed, SignedIn)


async def test_five_wrong_pins_show_the_lockout_and_then_even_the_right_pin_waits(
    daemon: Daemon,
) -> None:
    app = app_for("clinic", daemon.db, language="en", control_socket=daemon.socket)
    async with app.run_test(size=SIZE) as pilot:
        for attempt in range(1, 5):
            await sign_in(pilot, "李医生", f"000{attempt}")
            assert await answered(app, "Wrong") == "Wrong user name or PIN"
            app.screen.query_one("#sign-in-message", Static).update("")
        await sign_in(pilot, "李医生", "0005")
        assert await answered(app, "try again") == "Too many wrong PINs: try again in 30 s"
        await sign_in(pilot, "李医生", "2468")  # the right PIN, during the lockout
        locked = await answered(app, "try again")
        found = re.fullmatch(r"Too many wrong PINs: try again in (\d+) s", locked)
        assert found is not None, locked
        seconds = int(found.group(1))
        assert 0 < seconds <= 30 and "2468" not in locked
        assert isinstance(app.screen, SignInScreen)


async def test_the_right_pin_reaches_the_main_screen_with_the_user_in_the_header(
    daemon: Daemon,
) -> None:
    app = app_for("clinic", daemon.db, control_socket=daemon.socket)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "王医生", "1234")
        await until(lambda: isinstance(app.screen, VitalsScreen), 20, "the vitals screen")
        assert app.sub_title == "诊室 · 王医生（医生）"
        assert app.session is not None and app.session.token is not None
        token = app.session.token
        client = DaemonClient(daemon.socket)
        time.sleep(1.2)  # time itself: the session idles a while before the user acts
        idle = client.session(token)
        assert isinstance(idle, Session) and idle.idle_s is not None and idle.idle_s >= 1
        await pilot.press("down")  # the user acts: the app touches the session
        await until(
            lambda: (
                (s := client.session(token)) is not None
                and isinstance(s, Session)
                and s.idle_s is not None
                and s.idle_s < 1
            ),
            10,
            "the touch",
        )
        await pilot.press("l")  # the language switches; the person stays signed in
        assert app.sub_title == "Clinic · 王医生（doctor）"
    # The token was held in memory only: no file of the box or the test holds it.
    assert on_disk(daemon.db.parent.parent, token) == []


async def test_a_crews_idle_lock_keeps_the_vitals_live_and_the_crews_pin_unlocks(
    daemon: Daemon,
) -> None:
    app = app_for("ambulance", daemon.db, language="en", control_socket=daemon.socket)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "crew-1", "5678")
        await until(lambda: isinstance(app.screen, VitalsScreen), 20, "the vitals screen")
        vitals = app.screen
        assert app.sub_title == "Ambulance · crew-1（crew）"
        await until(lambda: bool(vitals.query(VitalTile)), 10, "the SpO2 tile")
        # A widget of personal data (the patient's name, as the vitals screen will show
        # it) is drawn while the session is open, hidden while it is locked.
        personal = Static("王秀英", classes=PERSONAL_CLASS)
        await vitals.mount(personal)
        assert personal.styles.display == "block"
        # time itself: nobody touches the screen for the crew's idle lock (30 s) and
        # the poll after it.
        await until(lambda: vitals.has_class(LOCKED_CLASS), CREW_IDLE_LOCK_S + 15, "the lock")
        assert app.screen is vitals  # no sign-in screen over the numerics
        assert personal.styles.display == "none"
        banner = vitals.query_one(f"#{BANNER_ID}", Button)
        assert "Locked" in str(banner.label)

        def caption() -> str:
            return vitals.query_one(VitalTile).text  # its name, value, unit and captions

        assert "97" in caption() and "SpO2 low" in str(vitals.query_one("#active-alarms").render())
        before = caption()
        await until(lambda: caption() != before, 10, "the locked screen refreshing")
        await pilot.click(f"#{BANNER_ID}")
        await until(lambda: isinstance(app.screen, SignInScreen), 10, "the unlock screen")
        name = app.screen.query_one("#name", Input)
        assert name.value == "crew-1" and name.disabled  # only this crew's PIN unlocks
        await sign_in(pilot, None, "5678")
        await until(lambda: app.screen is vitals, 20, "the vitals again")
        assert not vitals.has_class(LOCKED_CLASS) and not vitals.query(f"#{BANNER_ID}")
        assert personal.styles.display == "block"


async def test_a_clinic_session_the_daemon_locks_brings_back_the_pin_of_the_same_user(
    daemon: Daemon,
) -> None:
    app = app_for("clinic", daemon.db, language="en", control_socket=daemon.socket)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "张医生", "1357")
        await until(lambda: isinstance(app.screen, VitalsScreen), 20, "the vitals screen")
        vitals = app.screen
        # A PIN reset locks the user's sessions (edge_agent.users): the daemon says so at
        # the next poll, as it would after the doctor's 600 s idle lock.
        args = {"name": "张医生", "pin": "8642"}
        control.call(daemon.socket, "users.reset-pin", args, session=daemon.admin)
        await until(lambda: isinstance(app.screen, SignInScreen), 10, "the unlock screen")
        name = app.screen.query_one("#name", Input)
        assert name.value == "张医生" and name.disabled
        assert "张医生" in str(app.screen.query_one("#sign-in-title", Static).render())
        await sign_in(pilot, None, "1357")  # the old PIN no longer opens it
        assert await answered(app, "Wrong") == "Wrong user name or PIN"
        await sign_in(pilot, None, "8642")
        await until(lambda: app.screen is vitals, 20, "the vitals again")
        assert app.sub_title == "Clinic · 张医生（doctor）"


async def test_without_a_daemon_the_sign_in_screen_says_so_in_one_line(tmp_path: Path) -> None:
    app = app_for("kiosk", tmp_path / "none.sqlite3", control_socket=tmp_path / "c.sock")
    async with app.run_test(size=(80, 24)) as pilot:
        # The whole screen fits a 80x24 terminal, its last button above the footer.
        assert app.screen.query_one("#sign-in-language", Button).region.bottom <= 23
        down = i18n.text("sign_in.agent_down", "zh_CN")
        await until(lambda: message(app) == down, 10, lambda: message(app))
        await sign_in(pilot, "王医生", "1234")
        await until(lambda: message(app) == down, 10, lambda: message(app))
        assert "\n" not in down and isinstance(app.screen, SignInScreen)
        await pilot.click("#sign-in-language")
        assert str(app.screen.query_one("#sign-in", Button).label) == "Sign in"


# --- the client and the debounce, alone --------------------------------------------------


def test_the_client_returns_typed_answers_and_never_raises(daemon: Daemon, tmp_path: Path) -> None:
    client = DaemonClient(daemon.socket)
    signed = client.sign_in("kiosk", "0000")
    assert isinstance(signed, SignedIn) and (signed.role, signed.idle_lock_s) == ("kiosk", 120)
    state = client.touch(signed.token)
    assert isinstance(state, Session) and not state.locked and state.user == "kiosk"
    unknown = client.session("not-a-token")
    assert isinstance(unknown, Session) and unknown.locked
    wrong = client.sign_in("kiosk", "9876")
    assert wrong == Refused("wrong user name or PIN", None)
    gone = DaemonClient(tmp_path / "none.sock").sign_in("kiosk", "0000")
    assert isinstance(gone, Unreachable) and "not running" in gone.message


@given(st.text(max_size=300), st.one_of(st.none(), st.integers(1, 3600)))
def test_a_sign_in_refusal_shows_only_the_lockout_it_reports(
    text: str, seconds: int | None
) -> None:
    said = text if seconds is None else f"{text}; locked for {seconds} s"
    refused = sign_in_refusal(said)
    assert refused.message == "wrong user name or PIN"  # never the daemon's words
    if seconds is not None and "locked for" not in text:
        assert refused.locked_for_s == seconds
    if "locked for" not in said:
        assert refused.locked_for_s is None


def test_touches_are_sent_at_most_every_15_s() -> None:
    now = [100.0]
    touches = TouchDebounce(lambda: now[0])
    sent = []
    for step in range(40):  # a key press every second for 40 s
        now[0] = 100.0 + step
        sent.append(touches.due())
    assert [i for i, due in enumerate(sent) if due] == [0, 15, 30]
    touches.reset()
    assert touches.due()
