"""The signed-in person of the app, kept in memory only, and the idle lock it obeys.

The daemon decides (edge_agent.users): whose a session is, and when it is locked. The
keeper holds the token (never written anywhere), sends `users.touch` when the user acts
(debounced, tui.idle) and asks `users.session` every few seconds; both from worker
threads. When the daemon says locked:

- clinic, kiosk and ER: the sign-in screen comes back, the name fixed to the session's
  user, and only their PIN unlocks (a new sign-in);
- ambulance (the crew): the vitals stay on screen, numerics and alarms live, with a
  "locked" banner over them and every widget of class `personal` hidden (the screen gets
  the class `locked`; tui/session.tcss). Issue 13: "a crew's locked screen still shows the
  numerics and alarms, only personal data is hidden". The banner opens the PIN screen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.app import App
from textual.screen import Screen
from textual.widgets import Button

from tui import i18n
from tui.daemon_client import DaemonClient, Refused, Session, SignedIn, Unreachable
from tui.idle import POLL_S, TouchDebounce
from tui.screens.sign_in import SignInScreen

LOCKED_CLASS = "locked"  # on the main screen while a crew's session is locked
PERSONAL_CLASS = "personal"  # widgets that show personal data: hidden while locked
BANNER_ID = "lock-banner"


class SessionKeeper:
    def __init__(
        self,
        app: App[int],
        client: DaemonClient,
        *,
        keep_vitals_when_locked: bool,
        main_screen: Callable[[], Screen[None]],
        language: Callable[[], str],
        who_changed: Callable[[], None],
    ) -> None:
        self.app = app
        self.client = client
        self.keep_vitals_when_locked = keep_vitals_when_locked
        self._main_screen = main_screen
        self._language = language
        self._who_changed = who_changed
        self._touches = TouchDebounce(time.monotonic)
        self.token: str | None = None
        self.user: str | None = None
        self.role: str | None = None
        self.locked = False
        self.agent_down = False

    # --- what the app calls ------------------------------------------------------------

    def start(self) -> None:
        self.app.push_screen(SignInScreen(self.client, self._language()))
        self.app.set_interval(POLL_S, self.poll)

    def who(self) -> str | None:
        """The header's words for the signed-in person: name and role."""
        if self.user is None or self.role is None:
            return None
        role = (
            i18n.text(f"role.{self.role}", self._language()) if self.role in _ROLES else self.role
        )
        return f"{self.user}（{role}）"

    def accepted(self, signed: SignedIn) -> None:
        first = self.user is None
        self.token, self.user, self.role = signed.token, signed.user, signed.role
        self.locked = False
        self._touches.reset()
        if first:
            self.app.switch_screen(self._main_screen())
        else:
            if isinstance(self.app.screen, SignInScreen):
                self.app.pop_screen()
            self._show_unlocked(self.app.screen)
        self._who_changed()

    def user_acted(self) -> None:
        if self.token is not None and not self.locked and self._touches.due():
            token = self.token
            self.app.run_worker(
                lambda: self._from_thread(self.client.touch(token)),
                thread=True,
                group="session-touch",
                exclusive=True,
            )

    def poll(self) -> None:
        if self.token is not None and not self.locked:
            token = self.token
            self.app.run_worker(
                lambda: self._from_thread(self.client.session(token)),
                thread=True,
                group="session-poll",
                exclusive=True,
            )

    def unlock(self) -> None:
        """The crew asks to unlock: the PIN screen for the session's user."""
        if self.locked and not isinstance(self.app.screen, SignInScreen):
            self.app.push_screen(SignInScreen(self.client, self._language(), unlock_user=self.user))

    def main_screen_replaced(self, screen: Screen[None]) -> None:
        """A new main screen (the language switched): the lock drawn on it again."""
        if self.locked and self.keep_vitals_when_locked:
            self._show_locked(screen)

    # --- answers -----------------------------------------------------------------------

    def _from_thread(self, answer: Session | Refused | Unreachable) -> None:
        self.app.call_from_thread(self._answered, answer)

    def _answered(self, answer: Session | Refused | Unreachable) -> None:
        if isinstance(answer, Unreachable):
            if not self.agent_down:
                self.agent_down = True
                self.app.notify(i18n.text("lock.agent_down", self._language()), severity="error")
            return
        self.agent_down = False
        if self.locked or self.token is None:
            return
        if isinstance(answer, Refused) or answer.locked:
            self._lock()

    def _lock(self) -> None:
        self.locked = True
        self.token = None  # a locked session opens nothing; unlocking signs in anew
        if self.keep_vitals_when_locked:
            self._show_locked(self.app.screen)
        else:
            self.app.push_screen(SignInScreen(self.client, self._language(), unlock_user=self.user))

    def _show_locked(self, screen: Screen[Any]) -> None:
        screen.add_class(LOCKED_CLASS)
        if not screen.query(f"#{BANNER_ID}"):
            banner = Button(
                i18n.text("lock.banner", self._language()), id=BANNER_ID, variant="warning"
            )
            screen.mount(banner, before=0)

    def _show_unlocked(self, screen: Screen[Any]) -> None:
        screen.remove_class(LOCKED_CLASS)
        for banner in screen.query(f"#{BANNER_ID}"):
            banner.remove()


_ROLES = ("admin", "doctor", "crew", "kiosk")
