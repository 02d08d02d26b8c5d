"""A simulated 12-lead ECG cart: plausible recordings, written as the carts write them.

The signal is synthetic but shaped like an ECG (P wave, QRS, T wave at the chosen heart
rate, a little baseline wander and noise), and its leads obey Einthoven's and
Goldberger's identities exactly in integers (III = II − I, aVR = −(I + II)/2 rounded
down, ...), so record.limb_lead_errors is empty and the sheet looks right. A STEMI
recording lifts the ST segment in II, III and aVF (an inferior STEMI) and the cart says
so in its statements, as a real cart's interpretation would.

`run` drops one file every `every_s` seconds into a folder, as a cart exporting to a
share or a USB stick does: written under a temporary name, then renamed, so a reader
never sees half a file (the folder transport also waits for sizes to settle).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import random
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from device_drivers.ecg.record import EcgRecord
from device_drivers.simulators.station_clock import DEFAULT_ZONE, device_wall_clock
from edge_agent.model import Statement

NORMAL_STATEMENTS = ("Sinus rhythm", "Normal ECG", "窦性心律")
STEMI_STATEMENTS = (
    "Sinus rhythm",
    "Inferior injury pattern",
    "*** ACUTE MI / STEMI ***",
    "急性下壁心肌梗死",
)

# Precordial leads as multiples of lead II's shape (a crude but monotone R-wave progression).
_PRECORDIAL_GAIN = {"V1": -0.45, "V2": -0.25, "V3": 0.35, "V4": 1.1, "V5": 1.0, "V6": 0.8}


def synthetic_12_lead(
    *,
    seconds: float = 10.0,
    rate_hz: int = 500,
    heart_rate: int = 75,
    stemi: bool = False,
    seed: int = 0,
    start: dt.datetime | None = None,
    uv_per_unit: Decimal = Decimal(5),
) -> EcgRecord:
    """One recording; samples in units of `uv_per_unit` microvolts (5 µV, SCP's usual)."""
    rng = random.Random(seed)
    n = int(seconds * rate_hz)
    beat_s = 60.0 / heart_rate
    unit = float(uv_per_unit)
    st_lift = 200.0 if stemi else 0.0  # µV of ST elevation in the inferior leads
    lead_i: list[int] = []
    lead_ii: list[int] = []
    wander = rng.uniform(0, 2 * math.pi)
    for k in range(n):
        t = k / rate_hz
        phase = t % beat_s
        qrs = 1100 * math.exp(-(((phase - 0.25) / 0.011) ** 2))
        q = -120 * math.exp(-(((phase - 0.232) / 0.006) ** 2))
        s = -250 * math.exp(-(((phase - 0.268) / 0.007) ** 2))
        p = 110 * math.exp(-(((phase - 0.11) / 0.025) ** 2))
        tw = 260 * math.exp(-(((phase - 0.52) / 0.055) ** 2))
        st = st_lift * math.exp(-(((phase - 0.38) / 0.09) ** 2))
        base = 40 * math.sin(2 * math.pi * 0.25 * t + wander)
        ii_uv = qrs + q + s + p + tw + st + base + rng.gauss(0, 6)
        i_uv = 0.55 * (qrs + q + s + p + tw) - 0.3 * st + 0.5 * base + rng.gauss(0, 6)
        lead_i.append(round(i_uv / unit))
        lead_ii.append(round(ii_uv / unit))
    leads: dict[str, tuple[int, ...]] = {
        "I": tuple(lead_i),
        "II": tuple(lead_ii),
        "III": tuple(b - a for a, b in zip(lead_i, lead_ii, strict=True)),
        "aVR": tuple(-((a + b) // 2) for a, b in zip(lead_i, lead_ii, strict=True)),
        "aVL": tuple(a - b // 2 for a, b in zip(lead_i, lead_ii, strict=True)),
        "aVF": tuple(b - a // 2 for a, b in zip(lead_i, lead_ii, strict=True)),
    }
    for name, gain in _PRECORDIAL_GAIN.items():
        leads[name] = tuple(round(gain * x + rng.gauss(0, 1)) for x in lead_ii)
    rr_ms = Decimal(round(60000 / heart_rate))
    qt = Decimal(380 if heart_rate <= 80 else 340)
    qtc = (qt / Decimal(math.sqrt(float(rr_ms) / 1000))).quantize(Decimal(1))
    statements = STEMI_STATEMENTS if stemi else NORMAL_STATEMENTS
    return EcgRecord(
        leads=leads,
        rate_hz=Decimal(rate_hz),
        uv_per_unit=uv_per_unit,
        start_time=(start or dt.datetime(2026, 11, 23, 9, 30, 0)).replace(microsecond=0),
        measurements={
            "heart_rate": Decimal(heart_rate),
            "rr": rr_ms,
            "pr": Decimal(160),
            "qrs": Decimal(92),
            "qt": qt,
            "qtc": qtc,
            "p_axis": Decimal(55),
            "qrs_axis": Decimal(48),
            "t_axis": Decimal(40),
        },
        statements=tuple(Statement(text) for text in statements),
        device="Simulated cart SIM-12",
    )


Encoder = Callable[[EcgRecord], bytes]


def write_file(folder: Path, name: str, data: bytes) -> Path:
    """Write under a temporary name, then rename: readers never see half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{name}.part"
    partial.write_bytes(data)
    final = folder / name
    partial.replace(final)
    return final


async def run(
    folder: Path,
    encode: Encoder,
    *,
    suffix: str,
    stop: asyncio.Event,
    every_s: float = 30.0,
    first_after_s: float = 2.0,
    stemi_every: int = 3,
    seed: int = 0,
    tz: str = DEFAULT_ZONE,
) -> None:
    """Export a recording every `every_s` seconds: the 1st, then every `stemi_every`-th
    after it, reads as an acute MI (0: never). The cart's clock shows the station's local
    time in `tz`."""
    count = 0
    delay = first_after_s
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        if stop.is_set():
            return
        count += 1
        record = synthetic_12_lead(
            stemi=stemi_every > 0 and (count - 1) % stemi_every == 0,
            seed=seed + count,
            start=device_wall_clock(tz),
            heart_rate=72 + count % 20,
        )
        write_file(folder, f"ECG{count:04d}{suffix}", encode(record))
        delay = every_s
