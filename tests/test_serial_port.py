"""The serial transport when the port misbehaves, on real pseudo-terminals.

A pty whose slave is still locked (the master opened, unlockpt(3) not called) is a port
that is there but cannot be opened: the kernel answers EIO, as it does for a USB-serial
adapter in a bad state. A pty whose master closes is an adapter pulled out: reads end
in EIO / end of file on the slave.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import until

from device_drivers.serial.masimo import LineFramer
from device_drivers.serial.port import SerialSettings, SerialTransport
from device_drivers.simulators import masimo as sim

LINE = b"11/22/26 10:00:05 SN=0000012345 SPO2=097% BPM=072 PI=01.23% ALARM=0000 EXC=000000\r\n"


@contextlib.contextmanager
def locked_pty() -> Iterator[str]:
    """A pty slave path that exists but refuses to open (EIO): its master never unlocked."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
    libc = ctypes.CDLL(None, use_errno=True)
    name = ctypes.create_string_buffer(64)
    assert libc.ptsname_r(master, name, len(name)) == 0
    path = name.value.decode()
    with pytest.raises(OSError) as refused:
        os.close(os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK))
    assert refused.value.errno == errno.EIO
    try:
        yield path
    finally:
        os.close(master)


def point(link: Path, target: str) -> None:
    """Repoint the device's path (a udev symlink) at another tty, atomically."""
    tmp = link.with_suffix(".new")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(target)
    tmp.replace(link)


async def test_a_port_that_keeps_failing_is_retried_with_growing_back_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    link = tmp_path / "ttyMonitor"
    states: list[tuple[str, str]] = []
    frames: list[bytes] = []
    transport = SerialTransport(
        SerialSettings(port=str(link)), LineFramer, reopen_s=0.05, max_reopen_s=0.4
    )
    stop = asyncio.Event()
    with locked_pty() as broken:
        point(link, broken)
        task = asyncio.create_task(
            transport.run(
                lambda f, _c, **_k: frames.append(f), lambda s, d: states.append((s, d)), stop
            )
        )
        try:
            await until(lambda: len(states) >= 6, 10, "six failed opens")
            waits = [d.rsplit("trying again in ", 1)[1] for s, d in states[:6]]
            # Doubling from reopen_s, capped at max_reopen_s: not a busy loop.
            assert waits == ["0.05 s", "0.1 s", "0.2 s", "0.4 s", "0.4 s", "0.4 s"], states
            assert all(s == "disconnected" and "Input/output error" in d for s, d in states[:6])
            # Reported every time, logged once while the reason stays the same.
            warned = [r for r in caplog.records if "cannot open" in r.getMessage()]
            assert len(warned) == 1
            # The port is fixed (a working adapter at the same path): read at once.
            master, slave = sim.open_pty()
            point(link, slave)
            await until(lambda: states[-1][0] == "connected", 5, "the port to open")
            os.write(master, LINE * 3)
            await until(lambda: len(frames) == 3, 5, "three lines")
            # Pulled out mid-stream: "device gone", opened again when it is back.
            os.close(master)
            await until(lambda: "device gone" in states[-1][1], 5, "the unplug")
            master, slave = sim.open_pty()
            point(link, slave)
            await until(lambda: states[-1][0] == "connected", 5, "the port to open again")
            os.write(master, LINE)
            await until(lambda: len(frames) == 4, 5, "a line after the replug")
            os.close(master)
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)
    assert task.exception() is None
    assert all(f == LINE.rstrip(b"\r\n") for f in frames), frames
