"""The serial transport: a tty read without blocking the event loop, framed, reopened.

A USB-serial adapter pulled out of an ambulance monitor shows up as a read or write
error (EIO, ENXIO, EINVAL on a hung-up tty) or an end of file: "device gone". The port
is then closed and opened again: every `reopen_s` seconds while its path is missing (an
adapter plugged back in is read within a second), and with a back-off that doubles up
to `max_reopen_s` while the port is there but fails (opening it fails, or it goes away
again right after opening: a loose connector, a port in a bad state), so a broken port
costs a line per attempt, not a busy loop. Every attempt's outcome is reported through
`on_state`. Opening can fail in termios too (pyserial lets termios.error through when
the tty hangs up between its open and its configuration: seen on ptys whose master
closes meanwhile), and that is the same "cannot open", never the end of the task.
No frame is assembled across an unplug: the framer is new for each connection, so
half a line before the unplug never glues onto the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import termios
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial

from device_drivers.declaration import SerialLine
from device_drivers.transport import Conversation, Framer, FrameSink, StateSink

log = logging.getLogger(__name__)


__all__ = ["Framer", "NonBlockingWriter", "SerialSettings", "SerialTransport"]

# A connection shorter than this that ends in "device gone" counts as a failure in a row.
STEADY_S = 10.0


@dataclass
class SerialSettings:
    port: str
    baudrate: int = 9600
    bytesize: int = serial.EIGHTBITS
    parity: str = serial.PARITY_NONE
    stopbits: float = serial.STOPBITS_ONE
    rtscts: bool = False

    @classmethod
    def on(cls, port: str, line: SerialLine, baudrate: int | None = None) -> SerialSettings:
        """A driver's declared line on one port (a config `baudrate` overrides its speed)."""
        return cls(
            port=port,
            baudrate=baudrate or line.baudrate,
            bytesize=line.bytesize,
            parity=line.parity,
            stopbits=line.stopbits,
            rtscts=line.rtscts,
        )


class SerialTransport:
    """Reads one serial device for as long as `stop` is not set."""

    def __init__(
        self,
        settings: SerialSettings,
        framer_factory: Callable[[], Framer],
        *,
        reopen_s: float = 1.0,
        max_reopen_s: float = 30.0,
        channel: str | None = None,
        conversation_factory: Callable[[], Conversation] | None = None,
        dedup_key: Callable[[bytes], str | None] | None = None,
    ) -> None:
        self.settings = settings
        self._framer_factory = framer_factory
        self._reopen_s = reopen_s
        self._max_reopen_s = max(reopen_s, max_reopen_s)
        self._channel = channel
        self._conversation_factory = conversation_factory
        # A frame's identity when the device may send the same one again (a cart's file).
        self._dedup_key = dedup_key

    async def run(self, emit: FrameSink, on_state: StateSink, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        last_error = ""
        failures = 0  # in a row: failed opens, and connections that did not last
        while not stop.is_set():
            try:
                port = self._open()
            except (serial.SerialException, OSError, ValueError, termios.error) as exc:
                missing = _missing(exc)
                failures = 0 if missing else failures + 1
                wait = self._reopen_s if missing else self._backoff(failures)
                error = f"cannot open {self.settings.port}: {describe_error(exc)}"
                if error != last_error:
                    log.warning("%s", error)
                    last_error = error
                on_state("disconnected", f"{error}; trying again in {wait:g} s")
                await wait_unless_stopped(stop, wait)
                continue
            last_error = ""
            on_state("connected", self.settings.port)
            opened = loop.time()
            try:
                reason = await self._read_until_gone(port, emit, stop)
            finally:
                with contextlib.suppress(Exception):  # a hung-up tty may refuse even close
                    port.close()
            if stop.is_set():
                return
            failures = 0 if loop.time() - opened >= STEADY_S else failures + 1
            wait = self._reopen_s if failures <= 1 else self._backoff(failures)
            log.warning("%s: %s; reopening in %g s", self.settings.port, reason, wait)
            on_state("disconnected", f"{reason}; reopening in {wait:g} s")
            await wait_unless_stopped(stop, wait)

    def _open(self) -> serial.Serial:
        return serial.Serial(
            self.settings.port,
            self.settings.baudrate,
            bytesize=self.settings.bytesize,
            parity=self.settings.parity,
            stopbits=self.settings.stopbits,
            rtscts=self.settings.rtscts,
            timeout=0,
        )

    def _backoff(self, failures: int) -> float:
        return min(self._max_reopen_s, self._reopen_s * float(2 ** max(0, failures - 1)))

    async def _read_until_gone(
        self, port: serial.Serial, emit: FrameSink, stop: asyncio.Event
    ) -> str:
        loop = asyncio.get_running_loop()
        framer = self._framer_factory()
        conversation = self._conversation_factory() if self._conversation_factory else None
        gone: asyncio.Future[str] = loop.create_future()
        fd = port.fileno()

        def write_failed(exc: OSError) -> None:
            if not gone.done():
                gone.set_result(f"device gone (write: {exc})")

        writer = NonBlockingWriter(fd, write_failed, limit=64 * 1024)

        def readable() -> None:
            try:
                data = port.read(4096)  # timeout=0: whatever is there, at most 4 KiB
            except (serial.SerialException, OSError, termios.error) as exc:
                if not gone.done():
                    gone.set_result(f"device gone ({describe_error(exc)})")
                return
            if not data:
                # A readable fd that yields nothing is a hang-up (pty master closed,
                # USB adapter removed).
                if not gone.done():
                    gone.set_result("device gone (end of file)")
                return
            for frame in framer.feed(data):
                if self._dedup_key is None:
                    emit(frame, self._channel)
                else:
                    emit(frame, self._channel, dedup_key=self._dedup_key(frame))
                if conversation is not None:
                    writer.write(conversation.received(frame, loop.time()))

        loop.add_reader(fd, readable)
        stopper = asyncio.ensure_future(stop.wait())
        ticker: asyncio.Task[None] | None = None
        if conversation is not None:
            writer.write(conversation.opened(loop.time()))
            ticker = asyncio.create_task(_tick(conversation, writer, stop))
        waiters: set[asyncio.Future[Any]] = {gone, stopper}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set() and not gone.done() and conversation is not None:
                # Leaving on purpose: say goodbye where the protocol has one (IntelliVue
                # release request) instead of letting the monitor time us out.
                goodbye = getattr(conversation, "close", None)
                if goodbye is not None:
                    writer.write(goodbye(loop.time()))
                    await writer.drained(timeout_s=0.5)
        finally:
            loop.remove_reader(fd)
            writer.close()
            stopper.cancel()
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
        return gone.result() if gone.done() else "stopped"


async def _tick(conversation: Conversation, writer: NonBlockingWriter, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        await wait_unless_stopped(stop, conversation.tick_s)
        if not stop.is_set():
            writer.write(conversation.tick(loop.time()))


class NonBlockingWriter:
    """Writes frames to a non-blocking fd (a tty, a pty master) without blocking the loop.

    A device that holds CTS low (Datex monitors use RTS/CTS), a full USB buffer or a pty
    nobody reads makes the kernel take fewer bytes than offered; the rest waits for the
    fd to be writable. More than `limit` bytes waiting means the other end stopped
    listening: the oldest are dropped (the port's conversation repeats what matters on
    its next tick; a UART's buffer would overflow the same way), with a warning when
    `warn` is set. A write error goes to `failed` (which may raise it) and what was
    waiting is dropped.
    """

    def __init__(
        self, fd: int, failed: Callable[[OSError], None], limit: int, *, warn: bool = True
    ) -> None:
        self._fd = fd
        self._failed = failed
        self._limit = limit
        self._warn = warn
        self._pending = bytearray()
        self._watching = False

    def write(self, frames: list[bytes]) -> None:
        for frame in frames:
            self._pending.extend(frame)
        if len(self._pending) > self._limit:
            if self._warn:
                log.warning(
                    "serial writer: %d bytes not taken by the device; dropping the oldest",
                    len(self._pending),
                )
            del self._pending[: len(self._pending) - self._limit]
        self._drain()

    def _drain(self) -> None:
        while self._pending:
            try:
                written = os.write(self._fd, self._pending)
            except BlockingIOError:
                break
            except OSError as exc:
                self._failed(exc)
                self._pending.clear()
                break
            del self._pending[:written]
        loop = asyncio.get_running_loop()
        if self._pending and not self._watching:
            loop.add_writer(self._fd, self._drain)
            self._watching = True
        elif not self._pending and self._watching:
            loop.remove_writer(self._fd)
            self._watching = False

    async def drained(self, timeout_s: float) -> None:
        """Until everything written has gone to the device (or `timeout_s` passed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._pending and loop.time() < deadline:
            await asyncio.sleep(0.01)

    def close(self) -> None:
        if self._watching:
            asyncio.get_running_loop().remove_writer(self._fd)
            self._watching = False
        self._pending.clear()


def _missing(exc: BaseException) -> bool:
    """The port's path is not there (adapter unplugged, symlink gone): poll for it."""
    return getattr(exc, "errno", None) == errno.ENOENT or isinstance(exc, FileNotFoundError)


def describe_error(exc: BaseException) -> str:
    """One line for an OS, termios or pyserial error (termios.error carries a tuple)."""
    if isinstance(exc, termios.error) and len(exc.args) == 2:
        code, text = exc.args
        return f"{text} (errno {code})"
    return " ".join(str(exc).split()) or type(exc).__name__


async def wait_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    """`seconds`, or less when `stop` is set first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
