"""The demo's simulated devices: each a simulator on a real pty (or link) + the real driver path.

Every device is set up exactly as the daemon sets up a configured one, from its
driver's declaration (`devices.runtime_for`: the line settings, framer, conversation and
decoder; a BLE device's characteristics, resend key, clock setting and GATT exchange);
only the port is a pseudo-terminal whose other end a simulator writes real protocol
frames to. The BLE cuff and glucose meter are the fakes (no radio here): simulated links
that send real 0x2A35/0x2A36 and 0x2A18/0x2A34/0x2A52 bytes, the meter answering the
agent's RACP requests (the cuff refuses the Current Time write, as many cuffs do).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_drivers.network.mllp import MllpListener
from device_drivers.simulators import ble_bp as ble_bp_sim
from device_drivers.simulators import datex as datex_sim
from device_drivers.simulators import ecg_cart as ecg_cart_sim
from device_drivers.simulators import glucose_meter as glucose_sim
from device_drivers.simulators import intellivue as intellivue_sim
from device_drivers.simulators import masimo as masimo_sim
from device_drivers.simulators import mllp_monitor as mllp_sim
from device_drivers.simulators import nonin as nonin_sim
from device_drivers.simulators import scale as scale_sim
from device_drivers.simulators.pty import open_pty
from edge_agent.config import DeviceConfig
from edge_agent.devices import DeviceRuntime, runtime_for

CUFF_ADDRESS = "C4:7C:8D:6A:00:17"
GLUCOSE_METER_ADDRESS = "C4:7C:8D:6A:00:21"

Simulate = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class SimulatedDevice:
    runtime: DeviceRuntime
    simulate: Simulate  # runs the simulator until the event is set
    _fds: list[int] = field(default_factory=list)
    _dirs: list[Path] = field(default_factory=list)

    def close(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        for folder in self._dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self._dirs.clear()


@dataclass(frozen=True, slots=True)
class DemoRates:
    """How fast the simulators run (tests speed them up), and the zone their clocks
    show: `agent.timezone`, as a clinic sets its devices, whatever zone the machine
    running the demo is in (device_drivers.simulators.station_clock)."""

    masimo_hz: float = 1.0
    masimo_noise: bool = False
    cuff_every_s: float = 6.0
    scale_every_s: float = 8.0
    glucose_every_s: float = 15.0
    ecg_every_s: float = 30.0
    timezone: str = "Asia/Shanghai"


def _serial(
    device_id: str,
    driver: str,
    simulate: Callable[[int, asyncio.Event], Coroutine[Any, Any, None]],
    model: str | None = None,
    tz: str = "Asia/Shanghai",
) -> SimulatedDevice:
    master_fd, slave_path = open_pty()
    runtime = runtime_for(
        DeviceConfig(id=device_id, driver=driver, port=slave_path, model=model), tz=tz
    )
    return SimulatedDevice(runtime, lambda stop: simulate(master_fd, stop), [master_fd])


def masimo(rates: DemoRates) -> SimulatedDevice:
    return _serial(
        "monitor-1",
        "masimo-ascii",
        lambda fd, stop: masimo_sim.run(
            fd,
            model="radical-7",
            rate_hz=rates.masimo_hz,
            noise=rates.masimo_noise,
            seed=7,
            stop=stop,
            tz=rates.timezone,
        ),
        model="radical-7",
        tz=rates.timezone,
    )


def cuff(rates: DemoRates) -> SimulatedDevice:
    simulated = ble_bp_sim.SimulatedCuff(seed=17, every_s=rates.cuff_every_s, tz=rates.timezone)
    config = DeviceConfig(id="cuff-1", driver="ble-bp", address=CUFF_ADDRESS)
    runtime = runtime_for(config, tz=rates.timezone, ble_link=simulated.link)
    return SimulatedDevice(runtime, simulated.run)


def glucose_meter(rates: DemoRates) -> SimulatedDevice:
    """A resident's glucose meter at the health hut: its memory downloaded over RACP.

    The first connection takes the three results it already holds, later ones only the
    new result; its clock is set from the box on every connection.
    """
    simulated = glucose_sim.SimulatedMeter(
        records=3,
        seed=21,
        mol_per_l=True,
        every_s=6 * 3600,
        connect_timeout_s=20,
        live=True,
        tz=rates.timezone,
    )
    config = DeviceConfig(id="glucose-1", driver="ble-glucose", address=GLUCOSE_METER_ADDRESS)
    runtime = runtime_for(config, tz=rates.timezone, ble_link=simulated.link)
    return SimulatedDevice(runtime, lambda stop: simulated.run(stop, rates.glucose_every_s))


def ecg_cart(rates: DemoRates) -> SimulatedDevice:
    """The ambulance's 12-lead cart exporting SCP-ECG files to a folder the box watches.

    Its first recording (2 s in) reads as an acute inferior MI: the box sends the ER a
    pre-arrival notice and the 12-lead ahead of everything, and the gateway draws the
    sheet (its path is in `edge-agent gateway status`).
    """
    from device_drivers.ecg import scp  # the driver's own writer: real SCP-ECG bytes

    folder = Path(tempfile.mkdtemp(prefix="edge-agent-demo-ecg-"))
    runtime = runtime_for(
        DeviceConfig(id="cart-1", driver="ecg-scp", folder=str(folder)), tz=rates.timezone
    )

    async def simulate(stop: asyncio.Event) -> None:
        await ecg_cart_sim.run(
            folder,
            scp.encode_scp,
            suffix=".SCP",
            stop=stop,
            every_s=rates.ecg_every_s,
            tz=rates.timezone,
        )

    return SimulatedDevice(runtime, simulate, _dirs=[folder])


def nonin(rates: DemoRates) -> SimulatedDevice:
    return _serial(
        "oximeter-1",
        "nonin-df7",
        lambda fd, stop: nonin_sim.run(fd, fmt=7, seed=3, stop=stop),
        tz=rates.timezone,
    )


def datex(rates: DemoRates) -> SimulatedDevice:
    return _serial(
        "s5-1",
        "datex-s5",
        lambda fd, stop: datex_sim.run(fd, stop=stop, seed=5, tz=rates.timezone),
        tz=rates.timezone,
    )


def scale(rates: DemoRates) -> SimulatedDevice:
    return _serial(
        "scale-1",
        "scale-ascii",
        lambda fd, stop: scale_sim.run(
            fd, preset="hw-station", every_s=rates.scale_every_s, seed=9, stop=stop
        ),
        model="hw-station",
        tz=rates.timezone,
    )


def intellivue(rates: DemoRates) -> SimulatedDevice:
    return _serial(
        "mp50-1",
        "intellivue",
        lambda fd, stop: intellivue_sim.run(fd, stop, seed=11, tz=rates.timezone),
        tz=rates.timezone,
    )


def mllp_monitor(rates: DemoRates) -> SimulatedDevice:
    """A Chinese bedside monitor pushing HL7 over MLLP to the box's listener."""
    runtime = runtime_for(
        DeviceConfig(id="mllp-1", driver="hl7-mllp", listen="127.0.0.1:0"), tz=rates.timezone
    )
    listener = runtime.transport
    assert isinstance(listener, MllpListener)

    async def simulate(stop: asyncio.Event) -> None:
        await listener.listening.wait()  # port 0: the kernel picks, the monitor is told
        await mllp_sim.run(
            "127.0.0.1", listener.port, seed=13, rate_hz=1.0, stop=stop, tz=rates.timezone
        )

    return SimulatedDevice(runtime, simulate)


SIMULATED: dict[str, Callable[[DemoRates], SimulatedDevice]] = {
    "masimo": masimo,
    "cuff": cuff,
    "glucose": glucose_meter,
    "ecg": ecg_cart,
    "nonin": nonin,
    "datex": datex,
    "scale": scale,
    "intellivue": intellivue,
    "mllp": mllp_monitor,
}
