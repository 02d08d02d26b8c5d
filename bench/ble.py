"""BLE: decode rate per profile vs a minimal struct.unpack, and the idle connection manager.

1. Decode: frames/s of each profile's pure decoder (flags, optional fields, SFLOAT
   specials, unit conversion, Reading objects) against a baseline that only unpacks
   the same bytes with one precompiled struct.unpack per frame, in the same run.
2. Idle: the CPU share of one core used by 20 paired-device sessions waiting for their
   devices to advertise through the shared watcher, with no advertisements, and with
   50 advertisements/s from other people's devices (a busy ward or a market street).

    .venv/bin/python bench/ble.py [--frames 20000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import platform
import resource
import struct
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_drivers.ble import (
    berrymed,
    blood_pressure,
    glucose,
    heart_rate,
    pulse_oximeter,
    thermometer,
    weight_scale,
)
from device_drivers.ble.link import ScriptedLink
from device_drivers.ble.presence import Advertisement, AdvertisementWatcher
from device_drivers.ble.session import BleTransport

T0 = dt.datetime(2026, 11, 22, 10, 0, 0)


def profiles() -> list[tuple[str, Callable[[bytes], object], bytes]]:
    """(name, decoder, a typical frame with its optional fields) per profile."""
    return [
        (
            "blood pressure 0x2A35",
            blood_pressure.decode_measurement,
            blood_pressure.encode_measurement(
                Decimal(128), Decimal(82), Decimal(97), time=T0, pulse=Decimal(71), user=1, status=0
            ),
        ),
        (
            "health thermometer 0x2A1C",
            thermometer.decode_measurement,
            thermometer.encode_measurement(Decimal("36.8"), time=T0, temperature_type=2),
        ),
        (
            "heart rate 0x2A37",
            heart_rate.decode_measurement,
            heart_rate.encode_measurement(72, contact=3, rr_ticks=(850, 860)),
        ),
        (
            "weight scale 0x2A9D",
            weight_scale.decode_measurement,
            weight_scale.encode_measurement(
                Decimal("62.5"), time=T0, user=1, bmi=Decimal("22.1"), height=Decimal("1.68")
            ),
        ),
        (
            "pulse oximeter 0x2A5F",
            pulse_oximeter.decode_continuous,
            pulse_oximeter.encode_continuous(
                Decimal(97), Decimal(72), measurement_status=0, pulse_amplitude=Decimal("5.2")
            ),
        ),
        (
            "BerryMed BCI 4 packets",
            berrymed.decode_notification,
            b"".join(berrymed.encode_packet(97, 72, 50 + i) for i in range(4)),
        ),
        (
            "glucose 0x2A18",
            glucose.decode_measurement,
            glucose.encode_measurement(
                42, T0, concentration=Decimal("0.0063"), mol_per_l=True, status=0
            ),
        ),
        (
            "glucose context 0x2A34",
            glucose.decode_context,
            glucose.encode_context(42, meal=glucose.MEAL_FASTING, tester=1, hba1c=Decimal("6.5")),
        ),
    ]


def bench_decode(frames: int) -> None:
    print(f"{'profile':28}{'decoder frames/s':>18}{'struct.unpack/s':>17}{'ratio':>8}")
    for name, decode, frame in profiles():
        unpack = struct.Struct(f"<{len(frame)}B").unpack  # the least a decoder must do
        start = time.perf_counter()
        for _ in range(frames):
            decode(frame)
        ours = frames / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(frames):
            unpack(frame)
        base = frames / (time.perf_counter() - start)
        print(f"{name:28}{ours:>18,.0f}{base:>17,.0f}{ours / base:>8.3f}")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def bench_idle(devices: int, seconds: float, adverts_per_s: float) -> float:
    watcher = AdvertisementWatcher()
    stop = asyncio.Event()
    sessions = [
        BleTransport(
            ScriptedLink,
            [blood_pressure.MEASUREMENT_UUID],
            presence=watcher,
            address=f"C4:7C:8D:6A:00:{i:02X}",
        )
        for i in range(devices)
    ]
    tasks = [
        asyncio.create_task(s.run(lambda *a, **k: None, lambda s, d: None, stop)) for s in sessions
    ]

    async def strangers() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            watcher.saw(
                Advertisement(f"00:11:22:33:{n % 256:02X}:{n // 256 % 256:02X}", None, -80, ())
            )
            await asyncio.sleep(1 / adverts_per_s)

    if adverts_per_s:
        tasks.append(asyncio.create_task(strangers()))
    await asyncio.sleep(0.5)
    cpu0, wall0 = _cpu_s(), time.perf_counter()
    await asyncio.sleep(seconds)
    share = (_cpu_s() - cpu0) / (time.perf_counter() - wall0)
    stop.set()
    await asyncio.gather(*tasks)
    assert all(s.connections == 0 for s in sessions)
    return share


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    print(f"machine: {platform.machine()} python {platform.python_version()}")
    bench_decode(args.frames)
    quiet = asyncio.run(bench_idle(20, args.seconds, 0))
    busy = asyncio.run(bench_idle(20, args.seconds, 50))
    print(f"20 paired devices asleep, no advertisements:       {quiet * 100:.2f} % of one core")
    print(f"20 paired devices asleep, 50 strangers' adverts/s: {busy * 100:.2f} % of one core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
