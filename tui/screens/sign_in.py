"""The sign-in screen: a user name and a PIN, checked by the daemon (users.sign-in).

Also the unlock screen: after an idle lock the name is fixed to the session's user and
only their PIN unlocks (a new sign-in, a new session). The screen shows "wrong user
name or PIN" and the remaining lockout as the daemon reports it, never which part was
wrong, and never the PIN. The call runs in a worker thread; a daemon that does not run
is said in one line, at once when the screen opens. On success the screen posts
`SignInScreen.Accepted` with the token, which the app keeps in memory only.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Static

from tui import i18n
from tui.daemon_client import DaemonClient, Refused, SignedIn, Unreachable

PIN_MAX = 12  # edge_agent.users: a PIN is 4 to 12 digits
NAME_MAX = 32


class SignInScreen(Screen[None]):
    CSS_PATH = "sign_in.tcss"

    class Accepted(Message):
        def __init__(self, signed: SignedIn) -> None:
            super().__init__()
            self.signed = signed

    def __init__(
        self, client: DaemonClient, language: str, *, unlock_user: str | None = None
    ) -> None:
        super().__init__()
        self.client = client
        self.language = language
        self.unlock_user = unlock_user

    def t(self, key: str, **values: object) -> str:
        return i18n.text(key, self.language, **values)

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="sign-in-box"):
            yield Static(self._title(), id="sign-in-title")
            yield Label(self.t("sign_in.name"), id="name-label")
            yield Input(
                value=self.unlock_user or "",
                max_length=NAME_MAX,
                disabled=self.unlock_user is not None,
                id="name",
            )
            yield Label(self.t("sign_in.pin"), id="pin-label")
            yield Input(password=True, restrict=r"[0-9]*", max_length=PIN_MAX, id="pin")
            yield Button(self.t("sign_in.button"), variant="primary", id="sign-in")
            yield Static("", id="sign-in-message")
            yield Button(self.t("key.language"), id="sign-in-language")
        yield Footer()

    def _title(self) -> str:
        if self.unlock_user is None:
            return self.t("sign_in.title")
        return self.t("sign_in.unlock_title", user=self.unlock_user)

    def on_mount(self) -> None:
        self.query_one("#pin" if self.unlock_user else "#name", Input).focus()
        self.check_daemon()

    def relabel(self, language: str) -> None:
        """The language switched: every text of the screen again, what was typed kept."""
        self.language = language
        self.query_one("#sign-in-title", Static).update(self._title())
        self.query_one("#name-label", Label).update(self.t("sign_in.name"))
        self.query_one("#pin-label", Label).update(self.t("sign_in.pin"))
        self.query_one("#sign-in", Button).label = self.t("sign_in.button")
        self.query_one("#sign-in-language", Button).label = self.t("key.language")
        self.say("")

    def say(self, text: str) -> None:
        self.query_one("#sign-in-message", Static).update(text)

    @work(thread=True, exclusive=True, group="sign-in")
    def check_daemon(self) -> None:
        answer = self.client.session(None)
        if isinstance(answer, Unreachable):
            self.app.call_from_thread(self.say, self.t("sign_in.agent_down"))

    @on(Button.Pressed, "#sign-in-language")
    async def _switch_language(self) -> None:
        # The keys go to the inputs here, so the language has a button of its own.
        await self.app.run_action("switch_language")

    @on(Input.Submitted, "#name")
    def _to_pin(self) -> None:
        self.query_one("#pin", Input).focus()

    @on(Input.Submitted, "#pin")
    @on(Button.Pressed, "#sign-in")
    def _submit(self) -> None:
        name = self.query_one("#name", Input).value.strip()
        pin_input = self.query_one("#pin", Input)
        pin = pin_input.value
        pin_input.value = ""  # the PIN leaves the screen with the request
        if not name or not pin:
            self.say(self.t("sign_in.missing"))
            return
        self.say(self.t("sign_in.checking"))
        self.query_one("#sign-in", Button).disabled = True
        self.sign_in(name, pin)

    @work(thread=True, exclusive=True, group="sign-in")
    def sign_in(self, name: str, pin: str) -> None:
        answer = self.client.sign_in(name, pin)
        self.app.call_from_thread(self._answered, answer)

    def _answered(self, answer: SignedIn | Refused | Unreachable) -> None:
        self.query_one("#sign-in", Button).disabled = False
        if isinstance(answer, SignedIn):
            if self.unlock_user is not None and answer.user != self.unlock_user:
                self.say(self.t("sign_in.wrong"))  # unreachable: the name is fixed
                return
            self.say("")
            self.post_message(self.Accepted(answer))
        elif isinstance(answer, Unreachable):
            self.say(self.t("sign_in.agent_down"))
        elif answer.locked_for_s:
            self.say(self.t("sign_in.locked_out", seconds=answer.locked_for_s))
        else:
            self.say(self.t("sign_in.wrong"))
        self.query_one("#pin", Input).focus()
