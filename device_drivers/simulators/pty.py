"""What every simulator does with its pseudo-terminal: open it, write to it without
blocking, read what the agent wrote.

The agent opens the slave end by path, exactly as it opens /dev/ttyUSB0, so the
simulators exercise the real serial transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty


def open_pty() -> tuple[int, str]:
    """A pty pair: (master fd for the simulator, slave path for the agent to open).

    The slave is put in raw mode so the line discipline passes CR LF through untouched
    (no echo, no CR->LF mapping), like a real RS-232 line; it is then closed: the agent
    opens it by path, as it would /dev/ttyUSB0.
    """
    master_fd, slave_fd = os.openpty()
    try:
        tty.setraw(slave_fd)
        slave_path = os.ttyname(slave_fd)
    finally:
        os.close(slave_fd)
    return master_fd, slave_path


def read_agent(master_fd: int) -> bytes | None:
    """What the agent has written so far (b"" when nothing yet, on a non-blocking master
    fd), or None when nobody holds the slave end open (EIO: the agent is between
    reopens). The master then stays "readable" (hang-up): a caller stops listening for
    a while instead of spinning."""
    try:
        return os.read(master_fd, 4096)
    except BlockingIOError:
        return b""
    except OSError:
        return None


def _wake(room: asyncio.Future[None]) -> None:
    if not room.done():
        room.set_result(None)


async def write_within(master_fd: int, data: bytes, stop: asyncio.Event, give_up_s: float) -> None:
    """Write `data` without blocking the loop; a full pty buffer waits for room.

    After `give_up_s` (or when `stop` is set) the rest is dropped: nobody is draining
    the line, and a real device's bytes are lost then too. The master fd must be
    non-blocking. OSError (EIO: no one holds the slave open) is the caller's to handle.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_s
    view = memoryview(data)
    while view and not stop.is_set():
        with contextlib.suppress(BlockingIOError):
            view = view[os.write(master_fd, view) :]
        if not view or loop.time() >= deadline:
            return
        room: asyncio.Future[None] = loop.create_future()
        loop.add_writer(master_fd, _wake, room)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(room, max(deadline - loop.time(), 0.001))
        finally:
            loop.remove_writer(master_fd)
