"""How a long-running process ends: on a signal, or on a fatal error, and always in time.

The signals are taken on a thread of their own (sigwait), not by a handler that needs
the event loop: a loop stuck in a SQLite busy wait or a wedged library call cannot keep
SIGTERM from working. The first signal asks for a clean stop (final commit, STOPPING=1,
the broker told we are offline); if that has not finished within the grace time, or a
second signal comes, the process ends at once. What was committed is safe on the card
(WAL, synchronous=FULL): ending without the clean stop loses nothing durable.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

# systemd's TimeoutStopSec for the agent is 20 s; end well before it sends SIGKILL.
STOP_GRACE_S = 10.0


class Shutdown:
    """Call `install()` first thing in the main thread, before any other thread starts
    (before importing libraries that start native threads, as OpenBLAS does): threads
    inherit the blocked signals, so only the waiting thread receives them. A thread
    started earlier may still take one; the handler installed for that case passes it
    on in the main thread."""

    def __init__(
        self,
        *,
        signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
        grace_s: float = STOP_GRACE_S,
    ) -> None:
        self._request_stop: Callable[[], None] | None = None
        self._signals = set(signals)
        self._grace_s = grace_s
        self._lock = threading.RLock()
        self.stopping = threading.Event()
        self._timer: threading.Timer | None = None

    def install(self) -> Shutdown:
        for sig in self._signals:
            signal.signal(sig, lambda received, _frame: self._signalled(received))
        signal.pthread_sigmask(signal.SIG_BLOCK, self._signals)
        threading.Thread(target=self._wait_for_signals, name="signals", daemon=True).start()
        return self

    def on_stop(self, request_stop: Callable[[], None]) -> None:
        """What asks the process to stop; called at once if a signal came already."""
        with self._lock:
            self._request_stop = request_stop
            already = self.stopping.is_set()
        if already:
            request_stop()

    def _wait_for_signals(self) -> None:
        while True:
            self._signalled(signal.sigwait(self._signals))

    def _signalled(self, received: int) -> None:
        name = signal.Signals(received).name
        if self.stopping.is_set():
            log.warning("%s again while stopping: ending now", name)
            _end_now(1)
        log.info("%s: stopping", name)
        self.begin(0)

    def begin(self, exit_status: int, grace_s: float | None = None) -> None:
        """Ask for the clean stop; the process ends with `exit_status` if it is not done
        within the grace time. Safe to call from any thread, more than once."""
        with self._lock:
            first = not self.stopping.is_set()
            self.stopping.set()
            if self._timer is None or grace_s is not None:
                if self._timer is not None:
                    self._timer.cancel()
                seconds = self._grace_s if grace_s is None else grace_s
                self._timer = threading.Timer(seconds, self._expired, (exit_status, seconds))
                self._timer.daemon = True
                self._timer.start()
            request_stop = self._request_stop
        if first and request_stop is not None:
            request_stop()

    def finished(self) -> None:
        """The clean stop is done: no deadline any more."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    @staticmethod
    def _expired(exit_status: int, seconds: float) -> None:
        log.critical("did not stop within %g s: ending now", seconds)
        _end_now(exit_status)


def _end_now(status: int) -> None:
    logging.shutdown()  # flush the log file or journal first
    os._exit(status)
