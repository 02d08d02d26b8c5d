"""Registering a resident from the clinic's terminal UI, and the patient banner.

Pure parts first (the masked number, the age, the form's checks), with hypothesis; then
the register screen against a real daemon (tests/tui_daemon.py), driven with Pilot: what
the daemon's store holds is read back over the control socket (`patients.list`).
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from residents import resident
from textual.pilot import Pilot
from textual.widgets import Input, Static
from tui_daemon import Daemon, running_daemon
from waiting import until

from edge_agent.national_id import NationalIdError, check_character
from tui.app import EdgeAgentApp, app_for
from tui.daemon_client import DaemonClient, Refused, Registered
from tui.patient_banner import (
    MASK,
    PatientBanner,
    age_on,
    banner_for,
    banner_line,
    mask_national_id,
    today_in,
)
from tui.register_form import Invalid, Registration, check_form, phone_is_mobile
from tui.screens.register import BANNER_ID, RegisterScreen
from tui.screens.sign_in import SignInScreen
from tui.screens.vitals import VitalsScreen
from tui.widgets.patient_banner import PatientBannerView

SIZE = (100, 40)
DOCTOR = ("王医生", "doctor", "1234")
CREW = ("crew-1", "crew", "5678")
KIOSK = ("kiosk", "kiosk", "0000")
TODAY = dt.date(2026, 12, 4)

# --- the masked number, the age ----------------------------------------------------------

birth_dates = st.dates(min_value=dt.date(1900, 1, 1), max_value=TODAY)


@st.composite
def national_ids(draw: st.DrawFn) -> str:
    area = draw(st.from_regex(r"[1-8][0-9]{5}", fullmatch=True))
    born = draw(birth_dates)
    seq = draw(st.integers(0, 999))
    first17 = f"{area}{born:%Y%m%d}{seq:03d}"
    return first17 + check_character(first17)


@given(national_ids())
def test_a_masked_number_shows_the_area_code_and_the_last_4_only(number: str) -> None:
    masked = mask_national_id(number)
    assert masked == number[:6] + MASK * 8 + number[-4:]
    assert sum(c != MASK for c in masked) <= 10


@given(st.text(alphabet="0123456789X ", max_size=40))
def test_no_text_shows_more_than_10_of_its_characters(text: str) -> None:
    masked = mask_national_id(text)
    shown = [c for c in masked if c != MASK]
    assert len(shown) <= 10
    assert len(masked) == len(text.strip())


def _anniversary(birth: dt.date, years: int) -> dt.date:
    """The day one turns `years`: born on 29 February, on 1 March in a common year."""
    try:
        return birth.replace(year=birth.year + years)
    except ValueError:
        return dt.date(birth.year + years, 3, 1)


@given(birth_dates, birth_dates)
def test_the_age_is_the_completed_years(a: dt.date, b: dt.date) -> None:
    birth, today = min(a, b), max(a, b)
    age = age_on(birth, today)
    assert _anniversary(birth, age) <= today < _anniversary(birth, age + 1)


def test_the_banner_reads_sex_and_age_from_the_number() -> None:
    number = "11010519491231002X"  # sequence 002: even, a woman; born 1949-12-31
    banner = banner_for(number, "张三", TODAY)
    assert banner == PatientBanner("张三", "F", 76, "110105********002X")
    assert banner_line(banner, "zh_CN") == "张三 · 女 · 76 岁 · 110105********002X"
    assert banner_line(banner, "en") == "张三 · female · 76 y · 110105********002X"
    assert banner_for(number, "张三", dt.date(2026, 12, 30)).age == 76
    assert banner_for(number, "张三", dt.date(2026, 12, 31)).age == 77
    with pytest.raises(NationalIdError):
        banner_for(number[:17] + "3", "张三", TODAY)


def test_today_is_the_clinics_date_not_the_machines() -> None:
    # Kiritimati (UTC+14) and Niue (UTC-11) are 25 hours apart: never the same date.
    assert today_in("Pacific/Kiritimati") != today_in("Pacific/Niue")


# --- the form's checks -------------------------------------------------------------------


def test_a_mainland_mobile_is_11_digits_from_13_to_19() -> None:
    assert phone_is_mobile("13800138000") and phone_is_mobile("19912345678")
    for bad in ("12800138000", "1380013800", "138001380001", "23800138000", ""):
        assert not phone_is_mobile(bad), bad


@given(national_ids(), st.sampled_from("0123456789X"))
def test_a_wrong_check_character_is_refused_without_quoting_the_number(
    number: str, last: str
) -> None:
    typed = number[:17] + last
    checked = check_form(typed, "李四", "", TODAY)
    if last == number[17]:
        assert checked == Registration(number, "李四", None)
        return
    assert isinstance(checked, Invalid) and checked.field == "national_id"
    assert checked.detail is not None and "check character" in checked.detail
    assert number[:17] not in checked.detail and number[6:14] not in checked.detail


def test_the_form_checks_the_name_and_the_phone() -> None:
    number = resident(1).national_id
    assert check_form(number, "  ", "", TODAY) == Invalid("name", key="register.name_missing")
    assert check_form(number, "李 四", "12345", TODAY) == Invalid("phone", key="register.phone_bad")
    assert check_form(number, " 李  四 ", "13900000001", TODAY) == Registration(
        number, "李 四", "13900000001"
    )


# --- the screen against a real daemon ----------------------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("register"), [DOCTOR, CREW, KIOSK]) as d:
        yield d


def stored_ids(daemon: Daemon) -> list[str]:
    residents = DaemonClient(daemon.socket).patients(daemon.admin)
    assert isinstance(residents, list), residents
    return [str(r["national_id"]) for r in residents]


def screen_text(app: EdgeAgentApp) -> str:
    """Everything the terminal shows, as one string without spaces (from the SVG
    screenshot Textual renders of the screen)."""
    svg = app.export_screenshot()
    body = svg[svg.find("<g") :]  # past the style sheet
    text = html.unescape(re.sub(r"<[^>]+>", "", body))
    return re.sub(r"\s", "", text)


def message(app: EdgeAgentApp) -> str:
    return str(app.screen.query_one("#register-message", Static).render())


async def signed_in(app: EdgeAgentApp, pilot: Pilot[int], user: tuple[str, str, str]) -> None:
    screen = app.screen
    assert isinstance(screen, SignInScreen), screen
    screen.query_one("#name", Input).value = user[0]
    screen.query_one("#pin", Input).focus()
    await pilot.press(*user[2], "enter")
    await until(lambda: isinstance(app.screen, VitalsScreen), 20, "the vitals screen")


async def to_register_screen(app: EdgeAgentApp, pilot: Pilot[int]) -> RegisterScreen:
    await signed_in(app, pilot, DOCTOR)
    await until(lambda: "登记居民" in screen_text(app), 10, "the register key in the footer")
    await pilot.press("r")
    await until(lambda: isinstance(app.screen, RegisterScreen), 10, "the register screen")
    assert isinstance(app.screen, RegisterScreen)
    return app.screen


async def fill(pilot: Pilot[int], number: str, name: str, phone: str) -> None:
    screen = pilot.app.screen
    screen.query_one("#national-id", Input).focus()
    await pilot.press(*number)
    screen.query_one("#name", Input).value = name
    screen.query_one("#phone", Input).value = phone


async def test_a_wrong_check_character_is_shown_as_typed_and_nothing_is_sent(
    daemon: Daemon,
) -> None:
    good = resident(7)
    bad = good.national_id[:17] + ("0" if good.national_id[17] != "0" else "1")
    before = stored_ids(daemon)
    app = app_for("clinic", daemon.db, control_socket=daemon.socket)
    async with app.run_test(size=SIZE) as pilot:
        screen = await to_register_screen(app, pilot)
        await fill(pilot, bad, good.name, good.phone)
        derived = str(screen.query_one("#derived", Static).render())
        assert derived.startswith("身份证号有误：national id: check character is ")
        await pilot.click("#register")
        await pilot.pause()
        assert message(app) == derived
        assert not screen.query(f"#{BANNER_ID}")  # no banner: no one registered
    assert stored_ids(daemon) == before
    assert bad not in stored_ids(daemon)


async def test_a_good_number_registers_and_the_banner_shows_it_masked(daemon: Daemon) -> None:
    person = resident(11)
    number = person.national_id
    app = app_for("clinic", daemon.db, control_socket=daemon.socket, timezone="Asia/Shanghai")
    async with app.run_test(size=SIZE) as pilot:
        screen = await to_register_screen(app, pilot)
        await fill(pilot, number, person.name, person.phone)
        derived = str(screen.query_one("#derived", Static).render())
        born = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
        sex = "男" if int(number[16]) % 2 else "女"
        assert derived == f"性别 {sex} · 出生日期 {born.isoformat()}"
        await pilot.click("#register")
        await until(lambda: message(app) == "已登记", 20, lambda: message(app))
        banner = screen.query_one(f"#{BANNER_ID}", PatientBannerView)
        masked = number[:6] + "********" + number[-4:]
        age = age_on(born, today_in("Asia/Shanghai"))
        assert str(banner.render()) == f"{person.name} · {sex} · {age} 岁 · {masked}"
        shown = screen_text(app)
        assert masked in shown  # the scan sees the banner...
        assert number not in shown  # ...and nowhere the number in full
        assert number[6:14] not in shown  # nor its birth date as digits
        for field in ("#national-id", "#name", "#phone"):
            assert screen.query_one(field, Input).value == ""
        await pilot.press("escape")
        await until(lambda: isinstance(app.screen, VitalsScreen), 10, "back to the vitals")
    assert number in stored_ids(daemon)


async def test_the_daemons_refusal_is_one_line_with_the_number_masked(daemon: Daemon) -> None:
    person = resident(12)
    app = app_for("clinic", daemon.db, language="en", control_socket=daemon.socket)
    async with app.run_test(size=SIZE) as pilot:
        screen = await to_register_screen(app, pilot)
        await fill(pilot, person.national_id, person.name, "")
        # The session ends behind the screen's back: the daemon refuses the request.
        assert app.session is not None
        app.session.token = "not-a-session"
        await pilot.click("#register")
        await until(lambda: message(app).startswith("Not registered: "), 20, lambda: message(app))
        assert "\n" not in message(app) and person.national_id not in message(app)
        assert not screen.query(f"#{BANNER_ID}")
    assert person.national_id not in stored_ids(daemon)


@pytest.mark.parametrize(("mode", "user"), [("kiosk", KIOSK), ("ambulance", CREW)])
async def test_only_the_clinic_has_the_register_key(
    daemon: Daemon, mode: str, user: tuple[str, str, str]
) -> None:
    app = app_for(mode, daemon.db, control_socket=daemon.socket)
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(app, pilot, user)
        assert app.check_action("register", ()) is False
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, VitalsScreen)
        assert "登记居民" not in screen_text(app)  # not in the footer either


def test_the_client_registers_and_reports_the_resident(daemon: Daemon) -> None:
    person = resident(13)
    client = DaemonClient(daemon.socket)
    first = client.add_patient(daemon.admin, person.national_id, person.name, person.phone)
    sex = "M" if int(person.national_id[16]) % 2 else "F"
    assert first == Registered(person.national_id, person.name, sex, True)
    again = client.add_patient(daemon.admin, person.national_id, person.name, person.phone)
    assert isinstance(again, Registered) and not again.created
    refused = client.add_patient(None, resident(14).national_id, "x", None)
    assert isinstance(refused, Refused)


async def test_the_register_screen_fits_80x24_with_its_banner(daemon: Daemon) -> None:
    person = resident(15)
    app = app_for("clinic", daemon.db, language="en", control_socket=daemon.socket)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await to_register_screen(app, pilot)
        assert str(screen.query_one("#register-title", Static).render()) == "Register a resident"
        await fill(pilot, person.national_id, person.name, person.phone)
        await pilot.click("#register")
        await until(lambda: message(app) == "Registered", 20, lambda: message(app))
        footer_top = 23  # the footer's row
        for widget in ("#register", "#register-message", f"#{BANNER_ID}"):
            region = screen.query_one(widget).region
            assert region.height > 0 and region.bottom <= footer_top, (widget, region)
