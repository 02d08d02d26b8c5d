"""Log records go to a file while the terminal UI owns the screen (never to stderr).

A log line written to the terminal under a full-screen UI is drawn over it: a clinician
reads a half-overwritten tile. So while the app runs, the root logger's stream handlers
(stderr, stdout: the CLI's basicConfig) are set aside and every record (and every
`warnings.warn`, through logging.captureWarnings) goes to files only: those already
configured (the demo's log) and, unless those were all there was, `tui.log` in the
data directory (or, where this user may not write there, $XDG_STATE_HOME/edge-agent,
~/.local/state by default). The handlers come back when the app closes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

LOG_NAME = "tui.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def fallback_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "edge-agent"


def _open(paths: list[Path]) -> logging.FileHandler:
    error: OSError | None = None
    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return logging.FileHandler(path, encoding="utf-8")
        except OSError as exc:
            error = exc
    assert error is not None
    raise error


class LogsToFile:
    """Started when the app loads, stopped when it unmounts; stop() is idempotent."""

    def __init__(self, data_dir: Path) -> None:
        self.candidates = [data_dir / LOG_NAME, fallback_dir() / LOG_NAME]
        self.path: Path | None = None
        self._saved: list[logging.Handler] | None = None
        self._handler: logging.Handler | None = None

    def start(self) -> None:
        if self._saved is not None:
            return
        root = logging.getLogger()
        self._saved = root.handlers[:]
        logging.captureWarnings(True)  # warnings.warn writes to stderr otherwise
        kept = [h for h in self._saved if not _on_a_terminal(h)]
        if kept and len(kept) == len(self._saved):
            return  # already to files only (the demo's own log): leave them so
        try:
            handler: logging.Handler = _open(self.candidates)
            self.path = Path(handler.baseFilename)  # type: ignore[attr-defined]
        except OSError:
            handler = logging.NullHandler()  # nowhere to write: never the screen
        handler.setFormatter(logging.Formatter(_FORMAT))
        self._handler = handler
        # No handler at all would send records to logging.lastResort, i.e. stderr.
        root.handlers = [*kept, handler]

    def stop(self) -> None:
        if self._saved is None:
            return
        logging.getLogger().handlers = self._saved
        logging.captureWarnings(False)
        if self._handler is not None:
            self._handler.close()
        self._saved = None
        self._handler = None


def _on_a_terminal(handler: logging.Handler) -> bool:
    """A stream handler that is not a file's: stderr, stdout, or whatever a caller gave."""
    return isinstance(handler, logging.StreamHandler) and not isinstance(
        handler, logging.FileHandler
    )
