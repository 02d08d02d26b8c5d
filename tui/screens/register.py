"""The register screen (clinic mode): a resident's national ID, name and mobile phone,
registered through the daemon (`patients.add`, edge_agent.operations.AddPatient).

The ID is checked as it is typed (tui/register_form.py, edge_agent.national_id): the
check character's one-line error, or the sex and birth date the number says. Nothing is
sent while a field is wrong. The call runs in a worker thread; the daemon's refusal is
shown in one line with anything typed in it masked. On success the form is emptied (the
number in full leaves the screen) and the new resident's patient banner is shown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Static

from edge_agent import control
from tui import i18n
from tui.daemon_client import DaemonClient, Refused, Registered, Unreachable
from tui.patient_banner import banner_for, mask_national_id, sex_label, today_in
from tui.register_form import (
    NAME_MAX,
    NATIONAL_ID_LENGTH,
    PHONE_LENGTH,
    Invalid,
    Registration,
    check_form,
    check_national_id,
)
from tui.widgets.patient_banner import PatientBannerView

BANNER_ID = "register-banner"


class RegisterScreen(Screen[None]):
    CSS_PATH = "register.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "返回 / Back"),
    ]

    def __init__(
        self,
        client: DaemonClient,
        token: Callable[[], str | None],
        language: str,
        timezone: str,
    ) -> None:
        super().__init__()
        self.client = client
        self.token = token
        self.language = language
        self.timezone = timezone

    def t(self, key: str, **values: object) -> str:
        return i18n.text(key, self.language, **values)

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="register-box"):
            yield Static(self.t("register.title"), id="register-title")
            yield Label(self.t("register.national_id"), id="national-id-label")
            yield Input(restrict=r"[0-9Xx]*", max_length=NATIONAL_ID_LENGTH, id="national-id")
            yield Static("", id="derived", markup=False)
            yield Label(self.t("register.name"), id="name-label")
            yield Input(max_length=NAME_MAX, id="name")
            yield Label(self.t("register.phone"), id="phone-label")
            yield Input(restrict=r"[0-9]*", max_length=PHONE_LENGTH, id="phone")
            yield Button(self.t("register.button"), variant="primary", id="register")
            yield Static("", id="register-message", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#national-id", Input).focus()

    def relabel(self, language: str) -> None:
        """The language switched: the labels again, what was typed kept."""
        self.language = language
        self.query_one("#register-title", Static).update(self.t("register.title"))
        self.query_one("#national-id-label", Label).update(self.t("register.national_id"))
        self.query_one("#name-label", Label).update(self.t("register.name"))
        self.query_one("#phone-label", Label).update(self.t("register.phone"))
        self.query_one("#register", Button).label = self.t("register.button")
        for view in self.query(PatientBannerView):
            view.relabel(language)
        self._show_derived(self.query_one("#national-id", Input).value)

    def say(self, text: str) -> None:
        self.query_one("#register-message", Static).update(text)

    def _invalid_text(self, invalid: Invalid) -> str:
        if invalid.field == "national_id":
            return self.t("register.id_bad", detail=invalid.detail or "")
        return self.t(invalid.key or "register.name_missing")

    @on(Input.Changed, "#national-id")
    def _id_typed(self, event: Input.Changed) -> None:
        self._show_derived(event.value)

    def _show_derived(self, number: str) -> None:
        derived = self.query_one("#derived", Static)
        if len(number) < NATIONAL_ID_LENGTH:
            derived.update(self.t("register.typing", n=len(number)) if number else "")
            return
        parsed = check_national_id(number, today_in(self.timezone))
        if isinstance(parsed, Invalid):
            derived.update(self._invalid_text(parsed))
            return
        sex = sex_label(parsed.sex, self.language)
        derived.update(self.t("register.derived", sex=sex, birth=parsed.birth_date.isoformat()))

    @on(Input.Submitted, "#national-id")
    def _to_name(self) -> None:
        self.query_one("#name", Input).focus()

    @on(Input.Submitted, "#name")
    def _to_phone(self) -> None:
        self.query_one("#phone", Input).focus()

    @on(Input.Submitted, "#phone")
    @on(Button.Pressed, "#register")
    def _submit(self) -> None:
        checked = check_form(
            self.query_one("#national-id", Input).value,
            self.query_one("#name", Input).value,
            self.query_one("#phone", Input).value,
            today_in(self.timezone),
        )
        if isinstance(checked, Invalid):
            self.say(self._invalid_text(checked))
            field = {"national_id": "#national-id", "name": "#name", "phone": "#phone"}
            self.query_one(field[checked.field], Input).focus()
            return
        token = self.token()
        if token is None:
            self.say(self.t("register.signed_out"))
            return
        self.say(self.t("register.sending"))
        self.query_one("#register", Button).disabled = True
        self.register(token, checked)

    @work(thread=True, exclusive=True, group="register")
    def register(self, token: str, form: Registration) -> None:
        answer = self.client.add_patient(token, form.national_id, form.name, form.phone)
        self.app.call_from_thread(self._answered, form, answer)

    def _answered(self, form: Registration, answer: Registered | Refused | Unreachable) -> None:
        self.query_one("#register", Button).disabled = False
        if not isinstance(answer, Registered):
            self.say(self.t("register.refused", reason=_masked(answer.message, form)))
            return
        for field in ("#national-id", "#name", "#phone"):
            self.query_one(field, Input).value = ""  # the number in full leaves the screen
        for old in self.query(f"#{BANNER_ID}"):
            old.remove()
        banner = banner_for(answer.national_id, answer.name, today_in(self.timezone))
        self.query_one("#register-box", Vertical).mount(
            PatientBannerView(banner, self.language, id=BANNER_ID), before=1
        )
        self.say(self.t("register.done" if answer.created else "register.known"))
        self.query_one("#national-id", Input).focus()


def _masked(message: str, form: Registration) -> str:
    """A refusal as the screen shows it: one line, none of the typed values in it."""
    line = control.one_line(message)
    line = line.replace(form.national_id, mask_national_id(form.national_id))
    if form.phone:
        line = line.replace(form.phone, mask_national_id(form.phone))
    return line
