"""A simulated BLE upper-arm cuff (Blood Pressure service 0x1810) behind the link interface.

No radio exists here, so this is the one fake in the chain, and it fakes only the radio:
the bytes are real 0x2A35 / 0x2A36 notifications built by the driver's own encoder
(GSS "Blood Pressure Measurement"), with the cuff's clock, pulse, user id and measurement status.

It behaves like the home cuffs village doctors hand out: every `every_s` seconds it takes
a measurement and keeps it in its memory (a real cuff holds ~100); it can only be
reached while it has something to send, so `connect()` waits for that, as BlueZ waits
for an advertisement, and gives up with OSError after `connect_timeout_s`. Once the
agent has subscribed, it sends cuff-pressure progress for the newest measurement, then
every stored measurement oldest first, and hangs up, as these cuffs do.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
from collections import deque
from collections.abc import Callable
from decimal import Decimal

from device_drivers.ble.blood_pressure import (
    INTERMEDIATE_UUID,
    MEASUREMENT_UUID,
    STATUS_IRREGULAR_PULSE,
    encode_measurement,
)
from device_drivers.ble.link import stop_sending
from device_drivers.simulators.station_clock import DEFAULT_ZONE, device_wall_clock
from device_drivers.simulators.vital_walk import VitalWalk

CHARACTERISTICS = (MEASUREMENT_UUID, INTERMEDIATE_UUID)
MEMORY_SIZE = 100  # readings a cuff keeps; the oldest is overwritten after that
USER_ID = 1


class SimulatedCuff:
    def __init__(
        self,
        seed: int = 0,
        every_s: float = 30.0,
        *,
        connect_timeout_s: float = 20.0,
        start: dt.datetime | None = None,
        tz: str = DEFAULT_ZONE,
    ) -> None:
        self._rng = random.Random(seed)
        self._every_s = every_s
        self._connect_timeout_s = connect_timeout_s
        # The cuff's clock: the station's local time in `tz` (station_clock).
        self._clock = (start or device_wall_clock(tz)).replace(microsecond=0)
        self._memory: deque[bytes] = deque(maxlen=MEMORY_SIZE)
        self._progress: list[bytes] = []
        self._has_data = asyncio.Event()
        # A treated hypertensive patient: each measurement the last one plus a move (no
        # pull: minutes or hours lie between two), within bounds a cuff can show.
        self._systolic = VitalWalk.resting(138.0, 95.0, 200.0, 6, pull=0)  # mmHg
        self._diastolic = VitalWalk.resting(86.0, 55.0, 120.0, 4, pull=0)  # mmHg
        self._pulse = VitalWalk.resting(74.0, 48.0, 130.0, 3, pull=0)  # /min
        self.measurements = 0  # taken
        self.sent = 0  # measurements notified to a subscriber

    def link(self) -> _CuffLink:
        """A new link for one connection attempt (session.BleTransport's link factory)."""
        return _CuffLink(self)

    def measure(self) -> bytes:
        """Take one measurement now: store it, return its 0x2A35 frame."""
        rng = self._rng
        self._systolic = self._systolic.stepped(rng)
        self._diastolic = self._diastolic.stepped(rng)
        self._pulse = self._pulse.stepped(rng)
        systolic, diastolic = round(self._systolic.value), round(self._diastolic.value)
        mean = round(diastolic + (systolic - diastolic) / 3)
        status = STATUS_IRREGULAR_PULSE if rng.random() < 0.05 else 0
        frame = encode_measurement(
            Decimal(systolic),
            Decimal(diastolic),
            Decimal(mean),
            time=self._clock,
            pulse=Decimal(round(self._pulse.value)),
            user=USER_ID,
            status=status,
        )
        # Deflation progress as the cuff shows it: a few falling cuff pressures.
        self._progress = [
            encode_measurement(Decimal(p), None, None)
            for p in (systolic + 40, systolic + 10, (systolic + diastolic) // 2)
        ]
        self._memory.append(frame)
        self._clock += dt.timedelta(seconds=max(1, round(self._every_s)))
        self.measurements += 1
        self._has_data.set()
        return frame

    async def run(self, stop: asyncio.Event) -> None:
        """Measure every `every_s` seconds until `stop` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._every_s)
            if not stop.is_set():
                self.measure()

    async def _wait_for_data(self) -> None:
        try:
            await asyncio.wait_for(self._has_data.wait(), self._connect_timeout_s)
        except TimeoutError:
            raise OSError("simulated cuff: not advertising (no new measurement)") from None

    def _take_all(self) -> tuple[list[bytes], list[bytes]]:
        progress, self._progress = self._progress, []
        stored = list(self._memory)
        self._memory.clear()
        self._has_data.clear()
        return progress, stored


class _CuffLink:
    """One connection to the simulated cuff (session.NotifyingLink)."""

    def __init__(self, cuff: SimulatedCuff) -> None:
        self._cuff = cuff
        self._connected = False
        self._callbacks: dict[str, Callable[[bytes], None]] = {}
        self._pump: asyncio.Task[None] | None = None

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        await self._cuff._wait_for_data()
        self._connected = True
        self._pump = asyncio.get_running_loop().create_task(self._send())

    async def start_notify(self, characteristic: str, callback: Callable[[bytes], None]) -> None:
        if not self._connected:
            raise OSError("simulated cuff: start_notify while not connected")
        self._callbacks[characteristic] = callback

    async def write(self, characteristic: str, data: bytes) -> None:
        raise OSError(f"simulated cuff: {characteristic} is not writable")

    async def disconnect(self) -> None:
        self._connected = False
        pump, self._pump = self._pump, None
        await stop_sending(pump)

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while self._connected and not all(c in self._callbacks for c in CHARACTERISTICS):
            if loop.time() > deadline:
                self._connected = False  # nobody subscribed: the cuff hangs up, keeps its memory
                return
            await asyncio.sleep(0.005)
        progress, stored = self._cuff._take_all()
        for frame in progress:
            self._callbacks[INTERMEDIATE_UUID](frame)
        for index, frame in enumerate(stored):
            if not self._connected:
                # Link lost mid-transfer: what was not sent stays in the cuff's memory.
                self._cuff._memory.extendleft(reversed(stored[index:]))
                self._cuff._has_data.set()
                return
            self._callbacks[MEASUREMENT_UUID](frame)
            self._cuff.sent += 1
            await asyncio.sleep(0)
        self._connected = False  # done: the cuff disconnects to save its battery
