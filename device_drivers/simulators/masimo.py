"""A simulated Masimo Radical-7 / Rad-8 writing its ASCII output to a pseudo-terminal.

The agent reads the pty's slave end exactly as it reads /dev/ttyUSB0 from a real monitor
(same SerialTransport, same framer, same decoder), so the demo and the end-to-end tests
exercise the real path. Lines follow docs/protocols/masimo.md and are built by the driver's
own `encode_line`, values drifting like a resting patient's, with an occasional probe-off
spell (dashes + EXC "sensor off") and desaturation alarm. With `noise=True` some lines are
garbage bytes, which the agent must quarantine, never drop and never crash on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import os
import random
from collections.abc import Iterator
from decimal import Decimal

from device_drivers.serial.masimo import (
    ALARM_ACTIVE,
    EXC_MASIMO_SET,
    MODELS,
    encode_line,
)
from device_drivers.simulators.pty import open_pty, write_within
from device_drivers.simulators.station_clock import DEFAULT_ZONE, device_wall_clock
from device_drivers.simulators.vital_walk import VitalWalk

__all__ = ["garbage_line", "lines", "open_pty", "run"]

_SPO2_LOW_ALARM = 0x0002
_EXC_SENSOR_OFF = 0x000020
_EXC_PULSE_SEARCH = 0x000008


def lines(
    model: str = "radical-7",
    seed: int = 0,
    start: dt.datetime | None = None,
    tz: str = DEFAULT_ZONE,
) -> Iterator[bytes]:
    """Endless realistic lines (CR LF included) for `model`, one device second apart;
    the monitor's clock starts at the station's local time in `tz`."""
    if model not in MODELS:
        raise ValueError(f"unknown Masimo model {model!r} (known: {', '.join(MODELS)})")
    rng = random.Random(seed)
    clock = (start or device_wall_clock(tz)).replace(microsecond=0)  # the monitor's wall clock
    # A resting patient: value, low, high, largest step per line.
    spo2 = VitalWalk.resting(97, 86, 100, 0.6)  # %
    bpm = VitalWalk.resting(76, 48, 140, 1.5)  # /min
    pi = VitalWalk.resting(2.4, 0.2, 12.0, 0.15)  # perfusion index, %
    spco = VitalWalk.resting(1.5, 0.0, 9.0, 0.1)  # %
    spmet = VitalWalk.resting(0.8, 0.1, 3.0, 0.05)  # %
    pvi = VitalWalk.resting(14, 4, 35, 0.8)  # %
    probe_off = 0
    serial_number = f"{rng.randrange(10**10):010d}"
    while True:
        values: dict[str, Decimal | int | None] = {}
        alarm, exc = 0, EXC_MASIMO_SET
        if probe_off == 0 and rng.random() < 0.01:
            probe_off = rng.randint(2, 6)
        if probe_off:
            probe_off -= 1
            exc = _EXC_SENSOR_OFF | (_EXC_PULSE_SEARCH if probe_off == 0 else 0)
        else:
            # In this order: the order a seed's lines draw in.
            spo2, bpm, pi = spo2.stepped(rng), bpm.stepped(rng), pi.stepped(rng)
            desat, pi_delta = rng.choice((0, 0, 0, 1)), rng.randint(-15, 15)
            pvi = pvi.stepped(rng)
            sat = round(spo2.value)
            values = {
                "SPO2": sat,
                "BPM": round(bpm.value),
                "PI": Decimal(f"{pi.value:.2f}"),
                "DESAT": desat,
                "PIDELTA": pi_delta,
                "PVI": round(pvi.value),
            }
            if model == "radical-7":
                # rainbow parameters; a Rad-8 without the licence prints dashes.
                spco, spmet = spco.stepped(rng), spmet.stepped(rng)
                values["SPCO"] = Decimal(f"{spco.value:.1f}")
                values["SPMET"] = Decimal(f"{spmet.value:.1f}")
            if sat < 90:
                alarm = _SPO2_LOW_ALARM | ALARM_ACTIVE
        yield encode_line(
            clock, values, model=model, alarm=alarm, exc=exc, serial_number=serial_number
        )
        clock += dt.timedelta(seconds=1)


def garbage_line(rng: random.Random) -> bytes:
    """Line noise as a wrong baud rate produces it; always rejected by the decoder.

    The first byte is above 0x7F (never valid ASCII) and no CR/LF occurs inside, so it is
    exactly one frame and exactly one quarantine row.
    """
    body = bytes(rng.choice([b for b in range(256) if b not in (0x0A, 0x0D)]) for _ in range(40))
    return bytes([rng.randint(0x80, 0xFF)]) + body + b"\r\n"


async def run(
    master_fd: int,
    model: str = "radical-7",
    rate_hz: float = 1.0,
    noise: bool = False,
    seed: int = 0,
    stop: asyncio.Event | None = None,
    tz: str = DEFAULT_ZONE,
) -> None:
    """Write lines to the pty master at `rate_hz` until `stop` is set (or cancelled); the
    monitor's clock shows the station's local time in `tz`.

    With no reader on the slave end, Linux answers writes with EIO: like a monitor with
    no cable attached, the simulator keeps its rhythm and tries again with the next line.
    """
    stop = stop or asyncio.Event()
    rng = random.Random(seed ^ 0x5EED)
    source = lines(model, seed, tz=tz)
    os.set_blocking(master_fd, False)
    loop = asyncio.get_running_loop()
    period = 1.0 / rate_hz
    next_at = loop.time()
    while not stop.is_set():
        line = garbage_line(rng) if noise and rng.random() < 0.05 else next(source)
        try:
            await write_within(master_fd, line, stop, give_up_s=max(period, 0.5))
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
        next_at += period
        delay = next_at - loop.time()
        if delay < -1.0:
            next_at = loop.time()  # fell far behind (a suspended loop): do not burst
            delay = 0.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(delay, 0.0))
