"""A simulated Nonin oximeter writing Data Format #2, #7 or #8 to a pseudo-terminal.

The agent reads the pty's slave end as it reads /dev/ttyUSB0 from a real OEM III module or
WristOx2 (same SerialTransport, framer and decoder), so the demo and the end-to-end tests
exercise the real path. Bytes follow Nonin's data format #2 / #7 / #8
(docs/protocols/nonin.md) and are built by the driver's own encoders: a resting patient
whose pulse rate and SpO2 drift, a pleth wave at the pulse rate, perfusion bits only during
the pulse (as OEM III sets them), now and then an artifact spell and a probe-off spell
(sensor disconnected, then out of track while the oximeter searches, values missing
throughout).

Timing is the device's: DF2/DF7 write one 5-byte frame every 1/75 s (3 packets a second),
DF8 one 4-byte record a second; `rate_factor` speeds both up for tests. Nonin's 8N1 line
has no flow control, so bytes the reader does not take in time are lost, as on the wire.
With `noise=True` about one packet or record in twenty loses a byte or gets one flipped,
which the framer must absorb by dropping that packet only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

from device_drivers.serial.nonin import (
    ARTF,
    DF8_ARTF,
    DF8_MARGINAL_PERFUSION,
    DF8_OOT,
    DF8_SNSD,
    FRAME_LEN,
    FRAMES_PER_PACKET,
    OOT,
    PACKETS_PER_SECOND,
    PERFUSION_GREEN,
    PERFUSION_YELLOW,
    PLETH_RATE_HZ,
    SNSD,
    encode_packet_df2,
    encode_packet_df7,
    encode_record_df8,
)
from device_drivers.simulators.pty import open_pty
from device_drivers.simulators.vital_walk import VitalWalk

__all__ = ["FORMATS", "corrupt", "open_pty", "packets", "run"]

FORMATS = (2, 7, 8)
NOISE_RATE = 0.05  # share of packets / records damaged when noise is on


@dataclass(frozen=True, slots=True)
class _Second:
    """What the oximeter knows during one second."""

    hr: int | None
    spo2: int | None
    sensor_off: bool
    searching: bool
    artifact: bool


class _Patient:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        # At rest: value, low, high, largest step per second.
        self._hr = VitalWalk.resting(72, 55, 110, 1.2)  # /min
        self._spo2 = VitalWalk.resting(97, 91, 100, 0.4)  # %
        self._off = self._searching = self._artifact = 0  # seconds left in each spell

    def second(self) -> _Second:
        rng = self._rng
        self._hr, self._spo2 = self._hr.stepped(rng), self._spo2.stepped(rng)
        hr, spo2 = round(self._hr.value), round(self._spo2.value)
        if self._off:
            self._off -= 1
            if not self._off:
                self._searching = rng.randint(2, 4)  # probe back on: the pulse is sought
            return _Second(None, None, sensor_off=True, searching=False, artifact=False)
        if self._searching:
            self._searching -= 1
            return _Second(None, None, sensor_off=False, searching=True, artifact=False)
        if rng.random() < 1 / 200:
            self._off = rng.randint(5, 15)
        elif not self._artifact and rng.random() < 1 / 60:
            self._artifact = rng.randint(2, 5)
        artifact = self._artifact > 0
        self._artifact = max(0, self._artifact - 1)
        return _Second(hr, spo2, sensor_off=False, searching=False, artifact=artifact)


def _pulse_shape(phase: float) -> float:
    """One beat of a finger pleth, 0..~1: systolic peak, then a dicrotic bump."""
    return math.exp(-(((phase - 0.2) / 0.08) ** 2)) + 0.3 * math.exp(-(((phase - 0.5) / 0.1) ** 2))


def packets(fmt: int = 2, seed: int = 0) -> Iterator[bytes]:
    """Endless DF2/DF7 packets (125 bytes, 3 a second) or DF8 records (4 bytes, 1 a second)."""
    if fmt not in FORMATS:
        raise ValueError(f"Nonin data format must be one of {FORMATS}, not {fmt!r}")
    rng = random.Random(seed)
    patient = _Patient(rng)
    if fmt == 8:
        while True:
            now = patient.second()
            status = DF8_SNSD if now.sensor_off else DF8_OOT if now.searching else 0
            if now.artifact:
                status |= DF8_ARTF | DF8_MARGINAL_PERFUSION
            yield encode_record_df8(now.hr, now.spo2, status)
    top = 255 if fmt == 2 else 65535
    phase = 0.0
    while True:
        now = patient.second()
        for _ in range(PACKETS_PER_SECOND):
            samples: list[int] = []
            statuses: list[int] = []
            for _ in range(FRAMES_PER_PACKET):
                if now.sensor_off or now.searching:
                    samples.append(0)
                    statuses.append(SNSD if now.sensor_off else OOT)
                    continue
                phase = (phase + (now.hr or 60) / 60 / PLETH_RATE_HZ) % 1.0
                level = 0.1 + 0.75 * _pulse_shape(phase)
                if now.artifact:
                    level += rng.uniform(-0.15, 0.15)
                samples.append(min(top, max(0, round(level * top))))
                # OEM III shows perfusion only during the pulse (about 160 ms of a beat).
                during_pulse = 0.1 <= phase < 0.3
                colour = PERFUSION_YELLOW if now.artifact else PERFUSION_GREEN
                statuses.append(
                    (colour if during_pulse else 0) | (ARTF if now.artifact and during_pulse else 0)
                )
            if fmt == 2:
                yield encode_packet_df2(now.hr, now.spo2, samples, statuses)
            else:
                yield encode_packet_df7(now.hr, now.spo2, samples, statuses)


def corrupt(chunk: bytes, rng: random.Random) -> bytes:
    """`chunk` with one byte lost or one bit flipped (line noise, a UART overrun)."""
    at = rng.randrange(len(chunk))
    if rng.random() < 0.5:
        return chunk[:at] + chunk[at + 1 :]
    return chunk[:at] + bytes((chunk[at] ^ (1 << rng.randrange(8)),)) + chunk[at + 1 :]


def _units(fmt: int, noise: bool, seed: int) -> Iterator[bytes]:
    """What is written per tick: a DF2/DF7 frame's bytes or a whole DF8 record."""
    rng = random.Random(seed ^ 0x5EED)
    for clean in packets(fmt, seed):
        chunk = corrupt(clean, rng) if noise and rng.random() < NOISE_RATE else clean
        if fmt == 8:
            yield chunk
        else:
            # A packet that lost a byte is written in 5-byte steps all the same: the
            # stream, not the tick, carries the damage.
            for at in range(0, len(chunk), FRAME_LEN):
                yield chunk[at : at + FRAME_LEN]


def _write(master_fd: int, data: bytes) -> None:
    try:
        os.write(master_fd, data)  # a short write loses the rest, as a UART would
    except BlockingIOError:
        pass  # nobody drains the line: these bytes are lost on a real wire too
    except OSError as exc:
        if exc.errno != errno.EIO:  # EIO: no reader on the slave end (no cable)
            raise


async def run(
    master_fd: int,
    fmt: int = 2,
    rate_factor: float = 1.0,
    noise: bool = False,
    seed: int = 0,
    stop: asyncio.Event | None = None,
) -> None:
    """Write to the pty master at the device's rate x `rate_factor` until `stop` is set."""
    if fmt not in FORMATS:
        raise ValueError(f"Nonin data format must be one of {FORMATS}, not {fmt!r}")
    if rate_factor <= 0:
        raise ValueError(f"rate_factor must be positive, not {rate_factor}")
    stop = stop or asyncio.Event()
    units = _units(fmt, noise, seed)
    period = (1.0 if fmt == 8 else 1.0 / PLETH_RATE_HZ) / rate_factor
    os.set_blocking(master_fd, False)
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while not stop.is_set():
        now = loop.time()
        if now - next_at > 1.0:
            next_at = now  # the loop was suspended: keep the rhythm, do not burst
        due = bytearray()
        while next_at <= now:
            # The loop wakes about once a millisecond; at a high rate_factor several
            # frames fall due per wake-up and go out together.
            due += next(units)
            next_at += period
        if due:
            _write(master_fd, bytes(due))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(next_at - loop.time(), 0.0))
