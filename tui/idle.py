"""When the UI tells the daemon its user acted, and how often it asks about the lock.

The daemon keeps the idle clock (edge_agent.users: a session untouched longer than its
role's idle lock is locked). The UI only reports activity: at most one `users.touch`
every TOUCH_EVERY_S however fast the user types, so a key press never waits on the
socket; and it asks `users.session` every POLL_S to learn when the daemon locked it.
A touch is at most TOUCH_EVERY_S late, which the idle locks (120 s and more, crew 30 s
at the least) leave room for. Pure: the clock is passed in.
"""

from __future__ import annotations

from collections.abc import Callable

TOUCH_EVERY_S = 15.0
POLL_S = 2.0


class TouchDebounce:
    """Says whether a user action should be sent to the daemon now."""

    def __init__(self, clock: Callable[[], float], every_s: float = TOUCH_EVERY_S) -> None:
        self._clock = clock
        self._every_s = every_s
        self._last: float | None = None

    def due(self) -> bool:
        """True (and counted as sent) when no touch was sent in the last `every_s`."""
        now = self._clock()
        if self._last is not None and now - self._last < self._every_s:
            return False
        self._last = now
        return True

    def reset(self) -> None:
        """A new session: its first action is sent at once."""
        self._last = None
