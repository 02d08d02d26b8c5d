"""The terminal UI: one Textual app, a mode per place it serves (docs/contracts.md, users).

clinic and ambulance show the vitals screen of the local store; kiosk is the same
screen locked for residents (no command palette, no quit key: staff close it from the
box); er (the ER board over a gateway store) has its own issue and until then shows
the local store like clinic.

Given the daemon's control socket, every mode starts at the sign-in screen and obeys the
daemon's idle lock (tui/session_keeper.py); without one (the tests of the vitals screen)
it shows the vitals at once.
"""

from __future__ import annotations

import threading
from pathlib import Path, PurePath
from typing import ClassVar

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.widgets import Button

from edge_agent import operations
from edge_agent.config import Config
from tui import i18n
from tui.daemon_client import DaemonClient
from tui.logs import LogsToFile
from tui.screens.register import RegisterScreen
from tui.screens.sign_in import SignInScreen
from tui.screens.vitals import VitalsScreen
from tui.session_keeper import BANNER_ID, SessionKeeper

MODES = ("clinic", "ambulance", "kiosk", "er")


class EdgeAgentApp(App[int]):
    # Tiles two across below 100 columns, four across from there (app.tcss `.-wide`).
    HORIZONTAL_BREAKPOINTS = [  # noqa: RUF012 (Textual declares it without ClassVar)
        (0, "-narrow"),
        (100, "-wide"),
    ]
    # session.tcss: the idle lock drawn over the vitals (tui/session_keeper.py)
    CSS_PATH: ClassVar[list[str | PurePath]] = ["app.tcss", "session.tcss"]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "退出 / Quit"),
        Binding("l", "switch_language", "中文 / English"),
        Binding("u", "unlock", "解锁 / Unlock", show=False),
        # clinic mode only, signed in through the daemon, from the main screen (check_action)
        Binding("r", "register", "登记居民 / Register"),
    ]

    def __init__(
        self,
        *,
        mode: str,
        db_path: Path,
        language: str = "zh_CN",
        duration_s: float | None = None,
        stop_requested: threading.Event | None = None,
        timezone: str = "Asia/Shanghai",
        control_socket: Path | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"tui --mode {mode!r}: expected one of {', '.join(MODES)}")
        if language not in i18n.LANGUAGES:
            raise ValueError(
                f"tui --lang {language!r}: expected one of {', '.join(i18n.LANGUAGES)}"
            )
        super().__init__()
        self.mode_name = mode
        self.db_path = db_path
        self.language = language
        self.duration_s = duration_s
        # The clinic's zone (agent.timezone): times are shown in it, whatever zone the
        # machine itself runs in (a Pi left on UTC).
        self.timezone = timezone
        # Set from outside (the demo's signal handler) to close the UI cleanly.
        self.stop_requested = stop_requested
        # Log records go to a file while the UI owns the terminal (tui.logs).
        self.logs = LogsToFile(db_path.parent)
        # The signed-in person (token in memory only), when there is a daemon to ask.
        self.session: SessionKeeper | None = None
        if control_socket is not None:
            self.session = SessionKeeper(
                self,
                DaemonClient(control_socket),
                keep_vitals_when_locked=mode == "ambulance",
                main_screen=self._main_screen,
                language=lambda: self.language,
                who_changed=self._set_titles,
            )

    def on_load(self) -> None:
        self.logs.start()

    def on_unmount(self) -> None:
        self.logs.stop()

    def _main_screen(self) -> VitalsScreen:
        return VitalsScreen(self.db_path, self.language, self.timezone)

    def on_mount(self) -> None:
        self.logs.start()  # idempotent: on_load comes first where Textual sends it
        self._set_titles()
        if self.session is not None:
            self.session.start()
        else:
            self.push_screen(self._main_screen())
        if self.duration_s is not None:
            self.set_timer(self.duration_s, lambda: self.exit(0))
        if self.stop_requested is not None:
            self.set_interval(0.2, self._exit_when_asked)

    def _exit_when_asked(self) -> None:
        if self.stop_requested is not None and self.stop_requested.is_set():
            self.exit(0)

    def _set_titles(self) -> None:
        self.title = i18n.text("app.title", self.language)
        self.sub_title = i18n.text(f"mode.{self.mode_name}", self.language)
        who = None if self.session is None else self.session.who()
        if who is not None:
            self.sub_title += f" · {who}"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "register":
            # Registering needs the daemon and a clinician: the clinic's main screen only
            # (never the kiosk, the ambulance or the ER board); hidden from the footer else.
            return (
                self.mode_name == "clinic"
                and self.session is not None
                and isinstance(self.screen, VitalsScreen)
            )
        return super().check_action(action, parameters)

    def action_register(self) -> None:
        session = self.session
        if session is None or self.mode_name != "clinic":
            return
        self.push_screen(
            RegisterScreen(session.client, lambda: session.token, self.language, self.timezone)
        )

    def action_switch_language(self) -> None:
        self.language = "en" if self.language == "zh_CN" else "zh_CN"
        self._set_titles()
        if isinstance(self.screen, RegisterScreen):
            self.screen.relabel(self.language)
            return
        if isinstance(self.screen, SignInScreen):
            self.screen.relabel(self.language)
            return
        self.pop_screen()
        main = self._main_screen()
        self.push_screen(main)
        if self.session is not None:
            self.session.main_screen_replaced(main)

    async def on_event(self, event: events.Event) -> None:
        # A key or a touch from the person at the screen: their session is in use.
        if isinstance(event, events.Key | events.MouseDown) and self.session is not None:
            self.session.user_acted()
        await super().on_event(event)

    def on_sign_in_screen_accepted(self, message: SignInScreen.Accepted) -> None:
        if self.session is not None:
            self.session.accepted(message.signed)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == BANNER_ID:
            self.action_unlock()

    def action_unlock(self) -> None:
        if self.session is not None:
            self.session.unlock()

    async def action_quit(self) -> None:
        if self.mode_name == "kiosk":
            return  # residents cannot close the kiosk; staff stop it from the box
        self.exit(0)


# Actions a resident at the kiosk must not reach: quitting (q, and Textual's own ctrl+q),
# ctrl+c's "press ctrl+q to quit" hint, the command palette (ctrl+p), suspending to the
# shell (ctrl+z), taking screenshots, minimising (escape). check_action returning False
# both refuses them and hides them from the footer (Textual's dynamic actions).
KIOSK_BLOCKED_ACTIONS = frozenset(
    {
        "quit",
        "help_quit",
        "command_palette",
        "suspend_process",
        "screenshot",
        "minimize",
        "change_theme",
        "show_help_panel",
        "hide_help_panel",
        "maximize",
    }
)


class KioskApp(EdgeAgentApp):
    """The health-hut kiosk: no command palette, no quit key for residents."""

    ENABLE_COMMAND_PALETTE = False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action.removeprefix("app.").removeprefix("screen.") in KIOSK_BLOCKED_ACTIONS:
            return False
        return super().check_action(action, parameters)


def app_for(
    mode: str,
    db_path: Path,
    language: str = "zh_CN",
    duration_s: float | None = None,
    stop_requested: threading.Event | None = None,
    timezone: str = "Asia/Shanghai",
    control_socket: Path | None = None,
) -> EdgeAgentApp:
    cls = KioskApp if mode == "kiosk" else EdgeAgentApp
    return cls(
        mode=mode,
        db_path=db_path,
        language=language,
        duration_s=duration_s,
        stop_requested=stop_requested,
        timezone=timezone,
        control_socket=control_socket,
    )


def run_app(
    *,
    mode: str,
    db_path: Path,
    language: str = "zh_CN",
    duration_s: float | None = None,
    stop_requested: threading.Event | None = None,
    timezone: str = "Asia/Shanghai",
    agent_config: Config | None = None,
) -> int:
    """The UI until it is closed. With `agent_config` every mode signs in through that
    agent's daemon (its control socket) and obeys its idle lock."""
    socket = None if agent_config is None else operations.socket_path(agent_config)
    app = app_for(mode, db_path, language, duration_s, stop_requested, timezone, socket)
    result = app.run()
    return 0 if result is None else int(result)
