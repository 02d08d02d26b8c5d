"""The kiosk's ID-card reader, read by the daemon itself (`[kiosk] id_card_reader`): the
serial edge of edge_agent.id_card_sam, polling for a card and telling the card desk
(edge_agent.kiosk_card) what it saw.

Every POLL_S the loop asks the reader's security module to find a card (20 01); when
one is found it selects it (20 02) and reads its text (30 01), and hands the 256 bytes
to the desk (the photo is dropped by edge_agent.id_card_sam). Public copies of reader
makers' notes advise polling no faster than every 300 ms; a read answers 1295 bytes, a
hundred milliseconds at 115200 bit/s. Each answer is awaited ANSWER_S (READ_S for a
read); one that does not come is a silent poll, SILENT_BEFORE_GONE silent polls in a
row mean the reader is gone. An answer that does not decode, or a status other than
the expected one (a card that cannot be selected or read, a module that failed its
self-check), is logged once per distinct problem, never with a byte of the card.

The reader failing never stops the daemon: a port that cannot be opened, that hangs up
(a USB reader pulled out: EIO, end of file) or that stops answering is closed and opened
again, every REOPEN_S while its path is missing, else with a back-off doubling to
MAX_REOPEN_S, one log line per distinct error; the desk is told the reader went away
(the card session ends: nobody vouches for the card any more). Nothing the reader sends
is written to the store: a card is personal data and is not a measurement.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import termios
from dataclasses import dataclass

import serial

from device_drivers.serial.port import describe_error, wait_unless_stopped
from edge_agent import id_card_sam as sam
from edge_agent.id_card import IdCardError
from edge_agent.kiosk_card import CardDesk

log = logging.getLogger(__name__)

POLL_S = 0.5
ANSWER_S = 1.0
READ_S = 3.0
SILENT_BEFORE_GONE = 3
REOPEN_S = 1.0
MAX_REOPEN_S = 30.0
STEADY_S = 10.0  # a connection shorter than this that ends counts as a failure in a row


class ReaderGone(Exception):
    """The port hung up or failed (the reader was unplugged)."""


@dataclass(frozen=True, slots=True)
class Seen:
    """What one poll saw: a card's text, no card, or a problem reading one."""

    text: bytes | None = None
    problem: str | None = None


NO_CARD = Seen()


class SamPort:
    """An open serial port to the module: a command out, its answer back."""

    def __init__(self, path: str, baudrate: int) -> None:
        self._serial = serial.Serial(
            path,
            baudrate,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
            timeout=0,
        )
        self._fd = self._serial.fileno()
        self._framer = sam.AnswerFramer()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a hung-up tty may refuse even close
            self._serial.close()

    async def exchange(self, frame: bytes, timeout_s: float) -> sam.Answer | None:
        """`frame` sent, the module's answer decoded (IdCardError when it does not
        decode); None when none came within `timeout_s`; ReaderGone when the port failed."""
        loop = asyncio.get_running_loop()
        self._framer.clear()  # what is left of an answer that came too late
        with contextlib.suppress(BlockingIOError, OSError):
            os.read(self._fd, 65536)  # the same: a stale answer is never this one's
        got: asyncio.Future[bytes] = loop.create_future()

        def readable() -> None:
            if got.done():
                return
            try:
                data = os.read(self._fd, 4096)
            except BlockingIOError:
                return
            except OSError as exc:
                got.set_exception(ReaderGone(f"device gone ({describe_error(exc)})"))
                return
            if not data:
                got.set_exception(ReaderGone("device gone (end of file)"))
                return
            frames = self._framer.feed(data)
            if frames:
                got.set_result(frames[0])

        loop.add_reader(self._fd, readable)
        try:
            try:
                os.write(self._fd, frame)
            except BlockingIOError:
                return None  # the port takes nothing now: as if unanswered
            except OSError as exc:
                raise ReaderGone(f"device gone (write: {describe_error(exc)})") from None
            try:
                raw = await asyncio.wait_for(got, timeout_s)
            except TimeoutError:
                return None
            return sam.decode_answer(raw)
        finally:
            loop.remove_reader(self._fd)


async def poll(port: SamPort) -> Seen | None:
    """One find, select and read; None when the module did not answer."""
    try:
        found = await port.exchange(sam.command(*sam.FIND), ANSWER_S)
        if found is None:
            return None
        if found.sw3 == sam.NO_CARD:
            return NO_CARD
        if found.sw3 != sam.FOUND:
            return Seen(problem=f"finding a card: {sam.described(found.sw3)}")
        selected = await port.exchange(sam.command(*sam.SELECT), ANSWER_S)
        if selected is None:
            return None
        if selected.sw3 != sam.DONE:
            return Seen(problem=f"selecting the card: {sam.described(selected.sw3)}")
        read = await port.exchange(sam.command(*sam.READ_BASE), READ_S)
        if read is None:
            return None
        return Seen(text=sam.base_text(read))
    except IdCardError as exc:
        return Seen(problem=str(exc))


async def run(path: str, baudrate: int, desk: CardDesk, stop: asyncio.Event) -> None:
    """Poll the reader at `path` until `stop` is set, opening it again when it fails."""
    loop = asyncio.get_running_loop()
    failures = 0
    last_error = ""
    while not stop.is_set():
        try:
            port = SamPort(path, baudrate)
        except (serial.SerialException, OSError, ValueError, termios.error) as exc:
            missing = getattr(exc, "errno", None) == errno.ENOENT
            failures = 0 if missing else failures + 1
            wait = REOPEN_S if missing else _backoff(failures)
            error = f"cannot open {path}: {describe_error(exc)}"
            if error != last_error:
                log.warning("ID card reader: %s; trying again every %g s or less", error, wait)
                last_error = error
            desk.reader_lost(f"disconnected: {error}")
            await wait_unless_stopped(stop, wait)
            continue
        last_error = ""
        log.info("ID card reader %s: connected", path)
        desk.reader_state("connected")
        opened = loop.time()
        try:
            reason = await _poll_until_gone(port, desk, stop)
        finally:
            port.close()
        if stop.is_set():
            return
        failures = 0 if loop.time() - opened >= STEADY_S else failures + 1
        wait = REOPEN_S if failures <= 1 else _backoff(failures)
        log.warning("ID card reader %s: %s; reopening in %g s", path, reason, wait)
        desk.reader_lost(f"disconnected: {reason}")
        await wait_unless_stopped(stop, wait)


async def _poll_until_gone(port: SamPort, desk: CardDesk, stop: asyncio.Event) -> str:
    silent = 0
    last_problem = ""
    while not stop.is_set():
        try:
            seen = await poll(port)
        except ReaderGone as exc:
            return str(exc)
        if seen is None:
            silent += 1
            if silent >= SILENT_BEFORE_GONE:
                return f"the reader did not answer {silent} polls in a row"
            desk.absent()
        else:
            silent = 0
            if seen.text is not None:
                desk.read(seen.text)
                last_problem = ""
            else:
                desk.absent()
            if seen.problem is not None and seen.problem != last_problem:
                log.warning("ID card reader: %s", seen.problem)
                last_problem = seen.problem
        await wait_unless_stopped(stop, POLL_S)
    return "stopped"


def _backoff(failures: int) -> float:
    return min(MAX_REOPEN_S, REOPEN_S * float(2 ** max(0, failures - 1)))
