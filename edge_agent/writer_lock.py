"""Who may write a store: an flock on a lock file in the store's directory.

SQLite on Debian 12 must have one writer connection (docs/architecture.md). The daemon
takes this lock before it opens the store and holds it for its life; a CLI command that
finds no daemon takes it for the length of its one change, so a daemon starting
meanwhile waits for it instead of opening a second writer. Whoever holds the lock writes
into the file who it is and where its control socket is (edge_agent.control), so a CLI
command that finds the lock held knows where to send its change.

flock(2) locks belong to the open file description: a second open in the same process
conflicts like another process would (the demo's TUI probes the lock its own agent
holds). The kernel drops the lock when the holder dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = "writer.lock"
# The holder record is a few hundred bytes; anything longer is not ours.
_MAX_RECORD = 4096


class WriterLockBusy(RuntimeError):
    """The lock stayed held by someone else for the whole wait."""


@dataclass(frozen=True, slots=True)
class Holder:
    """What the lock file says about who holds the lock."""

    role: str  # "daemon" | "gateway" | "cli"
    pid: int
    socket: str | None = None  # the holder's control socket, when it has one
    command: str | None = None  # a CLI holder's operation

    def describe(self) -> str:
        what = self.command or self.role
        return f"{what} (pid {self.pid})"


class WriterLock:
    """The lock for the store(s) in `directory`; `name` tells several stores apart."""

    def __init__(self, directory: Path, name: str = LOCK_NAME) -> None:
        self.path = directory / name
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self, holder: Holder) -> bool:
        """True when we now hold it. OSError when the file cannot be created or opened."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, writable = _open(self.path, create=True)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        if writable:
            # Informative only (who, and where to send changes): a reader that finds it
            # half written treats the holder as unknown and tries again.
            record = json.dumps(asdict(holder)).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, record, 0)
        return True

    def acquire(
        self,
        holder: Holder,
        *,
        timeout_s: float,
        poll_s: float = 0.05,
        give_up: Callable[[], bool] | None = None,
    ) -> None:
        """Wait up to `timeout_s` for the lock (less if `give_up()` turns true: the
        process was asked to stop); WriterLockBusy names who kept it."""
        deadline = time.monotonic() + timeout_s
        waiting = False
        while not self.try_acquire(holder):
            other = read_holder(self.path)
            who = other.describe() if other else "another process"
            if time.monotonic() >= deadline or (give_up is not None and give_up()):
                raise WriterLockBusy(
                    f"{self.path.parent} is in use by {who}: only one program may write its"
                    f" store (lock {self.path})"
                )
            if not waiting:
                log.info("%s is being written by %s: waiting for it", self.path.parent, who)
                waiting = True
            time.sleep(poll_s)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _open(path: Path, *, create: bool) -> tuple[int, bool]:
    """The lock file, read-write when we may (to record the holder), else read-only:
    flock needs no write access, and a CLI user of the service's group may only read."""
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        return os.open(path, flags, 0o644), True
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC), False


def read_holder(path: Path) -> Holder | None:
    """Who the lock file says holds it; None when it is missing, unreadable or not ours.

    The record is data from a file: bounded, and only its expected fields are used."""
    try:
        with path.open("rb") as f:
            raw = f.read(_MAX_RECORD + 1)
    except OSError:
        return None
    if not raw or len(raw) > _MAX_RECORD:
        return None
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict):
        return None
    role, pid = record.get("role"), record.get("pid")
    socket, command = record.get("socket"), record.get("command")
    if not isinstance(role, str) or not isinstance(pid, int) or isinstance(pid, bool):
        return None
    return Holder(
        role=role,
        pid=pid,
        socket=socket if isinstance(socket, str) else None,
        command=command if isinstance(command, str) else None,
    )


def is_held(path: Path) -> bool | None:
    """Whether someone holds the lock at `path` now: True, False, or None (cannot tell:
    the file is not readable by us). A missing file means nobody ever took it.

    The probe takes a shared lock for an instant, which a writer's exclusive lock
    excludes; a daemon starting at that instant waits a few milliseconds for it."""
    try:
        fd, _ = _open(path, create=False)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops the shared lock, if we got it
    return False
