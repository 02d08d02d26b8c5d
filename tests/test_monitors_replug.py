"""Hot-plug: a monitor's USB-serial adapter pulled and plugged back, with the daemon's real
device set-up (registry line settings, framer, conversation) and a stable udev-style name.

The pty master closing is the adapter pulled out; a new pty behind the same symlink is
it plugged back in, and the simulator behind it is a monitor that has forgotten the
association, so the agent must start the conversation again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from waiting import until

from device_drivers.declaration import SerialPort
from device_drivers.registry import driver as registry_driver
from device_drivers.serial.port import SerialTransport
from device_drivers.simulators import datex as datex_sim
from device_drivers.simulators import intellivue as intellivue_sim
from device_drivers.simulators import nonin as nonin_sim
from device_drivers.simulators.pty import open_pty
from edge_agent.config import DeviceConfig
from edge_agent.devices import serial_settings

Simulator = Callable[[int, asyncio.Event], Coroutine[Any, Any, None]]

CASES: list[tuple[str, Simulator, str]] = [
    ("intellivue", lambda fd, stop: intellivue_sim.run(fd, stop, seed=1), "MDC_ECG_HEART_RATE"),
    # A CARESCAPE answering the first level asked (level probing is tested in test_datex)
    (
        "datex-s5",
        lambda fd, stop: datex_sim.run(fd, stop=stop, seed=1, supported_level=11),
        "MDC_ECG_HEART_RATE",
    ),
    (
        "nonin-df7",
        lambda fd, stop: nonin_sim.run(fd, fmt=7, seed=1, stop=stop),
        "MDC_PULS_OXIM_SAT_O2",
    ),
]


@pytest.mark.parametrize(("driver_id", "simulate", "metric"), CASES, ids=[c[0] for c in CASES])
async def test_unplug_and_replug_resumes_within_seconds(
    tmp_path: Path, driver_id: str, simulate: Simulator, metric: str
) -> None:
    spec = registry_driver(driver_id)
    decode = spec.decoder_for(None)
    link = tmp_path / "ttyMonitor"  # what /dev/edge/monitor-1 is to udev
    settings = serial_settings(DeviceConfig(id="m", driver=driver_id, port=str(link)), spec)
    settings.rtscts = False  # a pty has no RTS/CTS lines
    assert isinstance(spec.source, SerialPort)
    transport = SerialTransport(
        settings, spec.framer, reopen_s=0.2, conversation_factory=spec.source.conversation
    )
    stop = asyncio.Event()
    seen: list[int] = []  # the plug round of each frame with the metric
    states: list[str] = []
    round_ = 0

    def emit(frame: bytes, channel: str | None, /, *, dedup_key: str | None = None) -> None:
        try:
            decoded = decode(frame)
        except Exception:
            return
        if any(r.metric == metric and r.value is not None for r in decoded.readings):
            seen.append(round_)

    task = asyncio.create_task(transport.run(emit, lambda s, _d: states.append(s), stop))
    loop = asyncio.get_running_loop()
    try:
        for round_ in range(2):
            master_fd, slave_path = open_pty()
            os.symlink(slave_path, link)
            plugged_at = loop.time()
            sim_stop = asyncio.Event()
            monitor = asyncio.create_task(simulate(master_fd, sim_stop))

            def arrived(plug: int = round_) -> bool:
                return plug in seen

            def awaited(plug: int = round_) -> str:
                return f"round {plug}: a {metric} ({states})"

            try:
                await until(arrived, 25, awaited)
                resumed_s = loop.time() - plugged_at
            finally:
                sim_stop.set()
                monitor.cancel()
                await asyncio.gather(monitor, return_exceptions=True)
                os.close(master_fd)  # pulled out
                link.unlink()
            assert round_ in seen, f"round {round_}: no {metric} within 25 s ({states})"
            assert resumed_s < 5
            await until(lambda: states[-1] == "disconnected", 5, "the unplug seen")
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert states.count("connected") >= 2 and "disconnected" in states
