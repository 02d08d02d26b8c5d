"""A simulated health-hut scale writing its ASCII lines to a pseudo-terminal.

Residents step on one after another, `every_s` apart. A preset with a stability status
(ad-indicator, mt-sics) prints a few unstable lines while the weight settles, then the
stable one; a station preset (hw-station, tanita, kv) prints only the final line, as
those stations do after their own stability check. Lines are built by the driver's own
`encode_line`, so the agent reads them through the real SerialTransport, framer and
decoder. With `noise=True` some lines are garbage: wrong-baud-rate bytes, a station set
to print GBK labels (体重), or an empty-platform zero line; the agent must quarantine or
skip them, never drop a measurement or crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
from collections.abc import Iterator
from decimal import Decimal

from device_drivers.serial.scale import PRESETS, encode_line
from device_drivers.simulators.masimo import garbage_line
from device_drivers.simulators.pty import open_pty, write_within

__all__ = ["garbage_line", "noise_line", "open_pty", "resident", "residents", "run"]


def resident(rng: random.Random, preset: str) -> list[bytes]:
    """One resident's lines, CR LF included: settling lines (if the preset has a status)
    then the stable reading."""
    height = Decimal(rng.randint(1450, 1900)) / 10  # cm, 0.1 cm resolution
    body_mass_index = Decimal(rng.randint(180, 320)) / 10
    weight = (body_mass_index * (height / 100) ** 2).quantize(Decimal("0.1"))
    with_height = preset not in ("ad-indicator", "mt-sics")  # indicators weigh only
    h = height if with_height else None
    lines: list[bytes] = []
    if PRESETS[preset].unstable:
        # Stepping on: the reading climbs and overshoots before it settles.
        for fraction in (Decimal("0.4"), Decimal("0.85"), Decimal("1.03")):
            wobble = Decimal(rng.randint(-5, 5)) / 10
            lines.append(
                encode_line(
                    (weight * fraction + wobble).quantize(Decimal("0.1")),
                    h,
                    preset=preset,
                    stable=False,
                )
            )
    lines.append(encode_line(weight, h, preset=preset))
    return lines


def residents(preset: str = "hw-station", seed: int = 0) -> Iterator[list[bytes]]:
    """Endless residents, each a list of lines as `resident` gives them."""
    if preset not in PRESETS:
        raise ValueError(f"unknown scale preset {preset!r} (known: {', '.join(PRESETS)})")
    rng = random.Random(seed)
    while True:
        yield resident(rng, preset)


def noise_line(rng: random.Random, preset: str) -> bytes:
    """Something a real line carries besides measurements. The first two are always
    rejected by the decoder; the zero line decodes to nothing (empty platform)."""
    kind = rng.choice(("baud", "gbk", "zero"))
    if kind == "baud":
        return garbage_line(rng)
    if kind == "gbk":
        return "体重:65.4公斤 身高:170.0厘米\r\n".encode("gbk")
    if preset == "tanita":  # the station prints nothing when empty; show the baud case
        return garbage_line(rng)
    return encode_line(0, None, preset=preset)


async def run(
    master_fd: int,
    preset: str = "hw-station",
    every_s: float = 5.0,
    seed: int = 0,
    noise: bool = False,
    stop: asyncio.Event | None = None,
) -> None:
    """Write residents' lines to the pty master until `stop` is set (or cancelled).

    Settling lines are 1/10 of `every_s` apart (at most 0.3 s, a typical indicator's
    continuous rate is faster, but a health record only needs the stable line). With no
    reader on the slave end Linux answers EIO: like a scale with no cable, keep going.
    """
    stop = stop or asyncio.Event()
    rng = random.Random(seed ^ 0x5CA1E)
    source = residents(preset, seed)
    os.set_blocking(master_fd, False)
    step_s = min(every_s / 10, 0.3)
    while not stop.is_set():
        lines = next(source)
        if noise and rng.random() < 0.3:
            lines = [noise_line(rng, preset), *lines]
        for line in lines:
            try:
                await write_within(master_fd, line, stop, give_up_s=max(every_s, 0.5))
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), step_s)
            if stop.is_set():
                return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(every_s - step_s * len(lines), 0.0))
