"""The folder transport: files a cart exports (a share, a USB stick), one frame each.

A 12-lead cart writes each ECG as a file: to a network share the box mounts, or to a USB
stick someone carries over and plugs in. The folder is polled; a file whose name matches
the driver's patterns is read once its size and modification time have stayed the same
for `settle_polls` polls (a file still being copied is not read half-written) and handed
on whole: the file's bytes are the frame, its path under the folder the channel, and
"sha256:<hex>" of its content the dedup key.

Nothing on the medium is changed: sticks may be read-only and the cart's share is the
cart's. What was handed on is remembered in memory by (path, size, mtime); across a
restart, or for the same ECG exported again under another name, the content's key makes
the recorder keep it as a duplicate instead of a second ECG.

Each file waits for its durable commit before the next is read, so a stick holding
hundreds of ECGs is never in memory at once.

A cart often names its files, or the folders it puts them in, after the patient
(`王秀英_110101199003077777.xml`). The name goes on only as the frame's channel, which
the recorder stores sealed; the log and the device's state (shown by `edge-agent
status` to anyone) name a file by `file_label`: its extension, size and modification
time (what `ls -l` on the medium finds it by) and, once read, the start of its content
key (what the recorder keeps as the frame's dedup key). Never its name.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fnmatch
import hashlib
import logging
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_drivers.transport import FrameSink, Outcome, StateSink

log = logging.getLogger(__name__)

# Bigger than any 12-lead file by far; such a file is something else (a disk image, a
# video) and is not read into the memory of a Raspberry Pi.
MAX_FILE_BYTES = 64 * 1024 * 1024

# A pattern that matches names without an extension: DICOM media keep ECGs as IM000001.
NO_EXTENSION = "<no extension>"


# An extension shown in a label: a short run of ASCII letters and digits, nothing else
# of the name (`*.xml` matches `x.王秀英.xml`, whose extension is still `.xml`).
_SHOWN_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,8}")


def content_key(data: bytes) -> str:
    """A file's dedup key: the same ECG, whatever its name or how it came, is one ECG."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def channel_of(relative: str) -> str:
    """The frame's channel for a file: its path under the folder, as text that has a
    UTF-8 form. A name that is not UTF-8 (a cart writing GB 18030 names on a FAT stick
    mounted for UTF-8) comes from the OS with its bytes as surrogates (PEP 383), which
    no store can hold: those bytes are kept as `\\xNN` escapes."""
    return os.fsencode(relative).decode("utf-8", "backslashreplace")


def file_label(relative: str, size: int, mtime_ns: int, key: str | None = None) -> str:
    """A file as the log and the device state name it, without its name: extension,
    size, modification time (UTC) and, when read, the start of its content key."""
    suffix = os.path.splitext(os.path.basename(relative))[1]
    kind = f"{suffix.lower()} file" if _SHOWN_EXTENSION.fullmatch(suffix) else "file"
    when = dt.datetime.fromtimestamp(mtime_ns // 1_000_000_000, dt.UTC)
    label = f"a {kind} of {size} bytes modified {when:%Y-%m-%dT%H:%M:%SZ}"
    return label if key is None else f"{label} ({key[:19]})"


@dataclass(frozen=True, slots=True)
class _Seen:
    size: int
    mtime_ns: int
    stable_polls: int = 0


class FolderTransport:
    """Polls one folder (and its subfolders) for as long as `stop` is not set."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        patterns: Iterable[str],
        *,
        exclude: Iterable[str] = (),
        poll_s: float = 1.0,
        settle_polls: int = 2,
        max_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.path = Path(path)
        self._patterns = tuple(p.lower() for p in patterns)
        self._exclude = tuple(p.lower() for p in exclude)
        self._poll_s = poll_s
        self._settle_polls = settle_polls
        self._max_bytes = max_bytes
        self._seen: dict[str, _Seen] = {}
        # (path, size, mtime ns) of every file handed on or skipped for good.
        self._done: set[tuple[str, int, int]] = set()
        self._complained: set[tuple[str, int, int]] = set()  # unreadable, said once
        self._state: tuple[str, str] | None = None  # last reported (state, detail)

    def wanted(self, name: str) -> bool:
        """Whether a file name is one of this driver's (case-insensitive globs)."""
        if name.startswith("."):
            # Hidden files: macOS writes "._<name>" AppleDouble companions on FAT sticks,
            # with the ECG's name and extension but none of its content.
            return False
        lower = name.lower()
        if any(fnmatch.fnmatchcase(lower, p) for p in self._exclude):
            return False
        return any(
            "." not in lower if p == NO_EXTENSION else fnmatch.fnmatchcase(lower, p)
            for p in self._patterns
        )

    async def run(self, emit: FrameSink, on_state: StateSink, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll(emit, on_state, stop)
            await _wait(stop, self._poll_s)

    async def poll(self, emit: FrameSink, on_state: StateSink, stop: asyncio.Event) -> None:
        """One look at the folder: report whether it is there, hand on settled files."""
        listing = await asyncio.to_thread(self._scan)
        if isinstance(listing, str):
            if self._state is None or self._state[0] != "disconnected":
                log.warning("%s", listing)
            self._report(on_state, "disconnected", listing)
            self._seen.clear()  # a stick plugged back in settles again
            return
        if self._state is None or self._state[0] != "connected":
            self._report(on_state, "connected", f"{self.path}: watching")
        for relative in self._settled(listing):
            if stop.is_set():
                break
            detail = await self._hand_on(relative, emit, stop)
            if detail is not None:
                self._report(on_state, "connected", f"{self.path}: {detail}")

    def _report(self, on_state: StateSink, state: str, detail: str) -> None:
        if (state, detail) != self._state:
            on_state(state, detail)
            self._state = (state, detail)

    def _scan(self) -> dict[str, tuple[int, int]] | str:
        """Matching regular files: path under the folder -> (size, mtime ns); or why the
        folder cannot be read."""
        if not self.path.is_dir():
            return f"{self.path}: not mounted / not found"
        problems: list[OSError] = []
        found: dict[str, tuple[int, int]] = {}
        for directory, subdirectories, names in os.walk(self.path, onerror=problems.append):
            subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
            for name in names:
                if not self.wanted(name):
                    continue
                full = os.path.join(directory, name)
                try:
                    info = os.stat(full)
                except OSError:
                    continue  # gone between listing and stat: seen again if it comes back
                if stat.S_ISREG(info.st_mode):
                    relative = os.path.relpath(full, self.path)
                    found[relative] = (info.st_size, info.st_mtime_ns)
        for problem in problems:
            if problem.filename is not None and Path(problem.filename) == self.path:
                return f"{self.path}: cannot list ({problem.strerror})"
        return found

    def _settled(self, listing: dict[str, tuple[int, int]]) -> list[str]:
        """Files not yet handed on that kept their size and mtime for `settle_polls`
        polls, oldest first (a stick's ECGs are recorded in the order they were taken)."""
        ready: list[tuple[int, str]] = []
        for relative in set(self._seen) - set(listing):
            del self._seen[relative]
        for relative, (size, mtime_ns) in listing.items():
            if (relative, size, mtime_ns) in self._done:
                continue
            before = self._seen.get(relative)
            if before is None or (before.size, before.mtime_ns) != (size, mtime_ns):
                self._seen[relative] = _Seen(size, mtime_ns)
                continue
            now = _Seen(size, mtime_ns, before.stable_polls + 1)
            self._seen[relative] = now
            if now.stable_polls >= self._settle_polls and size > 0:
                ready.append((mtime_ns, relative))
        return [relative for _, relative in sorted(ready)]

    async def _hand_on(self, relative: str, emit: FrameSink, stop: asyncio.Event) -> str | None:
        """Reads one settled file and emits it; the state detail to show for it."""
        seen = self._seen[relative]
        key = (relative, seen.size, seen.mtime_ns)
        label = file_label(relative, seen.size, seen.mtime_ns)
        if seen.size > self._max_bytes:
            self._done.add(key)
            problem = f"skipped {label}: over the {_size(self._max_bytes)} limit of an ECG file"
            log.warning("%s: %s", self.path, problem)
            return problem
        try:
            data = await asyncio.to_thread(self._read, relative, seen.size)
        except OSError as exc:
            # A file the cart still holds open, a permission the mount gives us later:
            # left where it is and tried again on the next polls. The reason only: the
            # exception's text names the file.
            if key in self._complained:
                return None
            self._complained.add(key)
            problem = f"cannot read {label} ({exc.strerror or type(exc).__name__}); will retry"
            log.warning("%s: %s", self.path, problem)
            return problem
        if data is None:
            self._seen[relative] = _Seen(-1, -1)  # changed while read: settle again
            return None
        self._done.add(key)
        self._complained.discard(key)
        dedup_key = content_key(data)
        label = file_label(relative, seen.size, seen.mtime_ns, dedup_key)
        log.info("%s: read %s", self.path, label)
        committed = emit(data, channel_of(relative), dedup_key=dedup_key)
        if committed is not None:
            failure = await _committed(committed, stop)
            if failure is not None:
                # The daemon stops on a failed commit; the file is read again next start.
                log.error("%s: %s not recorded: %s", self.path, label, type(failure).__name__)
        return f"read {label}"

    def _read(self, relative: str, size: int) -> bytes | None:
        """The file's bytes, or None when it is no longer `size` bytes long."""
        with open(self.path / relative, "rb") as file:
            data = file.read(min(size, self._max_bytes) + 1)
        return data if len(data) == size else None


async def _committed(future: asyncio.Future[Outcome], stop: asyncio.Event) -> BaseException | None:
    """Until the recorder has durably committed the file (or the agent stops: the
    daemon's last flush still records it); the commit's failure, if it failed."""
    stopper = asyncio.ensure_future(stop.wait())
    waiters: set[asyncio.Future[Any]] = {future, stopper}
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if future.done() and not future.cancelled():
        return future.exception()
    return None


def _size(n: int) -> str:
    mib = 1024 * 1024
    return f"{n // mib} MiB" if n % mib == 0 else f"{n} bytes"


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
