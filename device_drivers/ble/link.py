"""GATT links behind session.NotifyingLink: bleak for real devices, a scripted fake for tests.

`stop_sending` ends a pretend peripheral's sending task: the scripted link's and the
simulators' (simulators/ble_bp.py, simulators/glucose_meter.py).

bleak is the only BLE dependency and it stays at this edge: it is imported inside
`BleakLink.connect`, so importing the drivers (the decode CLI, the tests, the demo with
its in-process cuff) never loads bleak or touches D-Bus, and its exceptions are turned
into OSError here so the session only handles built-in kinds (session.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bleak import BleakClient

NotifyCallback = Callable[[bytes], None]


class BleakLink:
    """One connection attempt to one BLE peripheral through bleak (BlueZ on the Pi).

    The session makes a new link per attempt (session.BleTransport), so a link is used
    once: connect, subscribe, wait while connected, disconnect.
    """

    def __init__(self, address: str, *, timeout_s: float = 20.0, bond: bool = False) -> None:
        self.address = address
        self._timeout_s = timeout_s
        # Bond (pair and encrypt) before using the link, if not bonded already: glucose
        # meters refuse RACP on an unencrypted link (docs/protocols/ble-health-profiles.md,
        # RACP). BlueZ keeps the bond, so only the first connection pairs (Just Works, no
        # PIN on such meters).
        self._bond = bond
        self._client: BleakClient | None = None

    @property
    def is_connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    @contextlib.contextmanager
    def _bleak_errors(self, doing: str | None = None) -> Iterator[None]:
        """bleak's errors as OSError naming the device (and what was being done)."""
        from bleak.exc import BleakError

        try:
            yield
        except BleakError as exc:
            what = "" if doing is None else f"{doing}: "
            raise OSError(f"BLE {self.address}: {what}{exc}") from exc

    def _connected_client(self, doing: str) -> BleakClient:
        if self._client is None:
            raise OSError(f"BLE {self.address}: {doing} before connect")
        return self._client

    async def connect(self) -> None:
        from bleak import BleakClient

        # BleakDeviceNotFoundError, BleakDBusError ... all mean "not reachable now";
        # a refused bond (AuthenticationFailed) too: retried with backoff.
        with self._bleak_errors():
            self._client = BleakClient(self.address, timeout=self._timeout_s, pair=self._bond)
            await self._client.connect()

    async def start_notify(self, characteristic: str, callback: NotifyCallback) -> None:
        client = self._connected_client("start_notify")

        def deliver(_sender: Any, data: bytearray) -> None:
            # Our own bytes type from here on: no bleak object leaves this module.
            callback(bytes(data))

        with self._bleak_errors(f"subscribe {characteristic}"):
            await client.start_notify(characteristic, deliver)

    async def write(self, characteristic: str, data: bytes) -> None:
        """A write with response (a control point such as the glucose RACP)."""
        client = self._connected_client("write")
        with self._bleak_errors(f"write {characteristic}"):
            await client.write_gatt_char(characteristic, data, response=True)

    async def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with self._bleak_errors("disconnect"):
            await client.disconnect()


class ScriptedLink:
    """A fake peripheral for tests: plays a script of notifications over a pretend link.

    One object plays the device across reconnects (pass `lambda: link` as the session's
    link factory): the first `connect_failures` connects raise OSError, the script
    continues where it stopped after a drop, and the link drops by itself after
    `drop_after` notifications in one connection (a cuff walking out of range). A
    notification waits until its characteristic is subscribed, as a real device only
    sends on a subscribed characteristic.
    """

    def __init__(
        self,
        script: Iterable[tuple[str, bytes]] = (),
        *,
        connect_failures: int = 0,
        drop_after: int | None = None,
        interval_s: float = 0.0,
    ) -> None:
        self._script: deque[tuple[str, bytes]] = deque(script)
        self._connect_failures = connect_failures
        self._drop_after = drop_after
        self._interval_s = interval_s
        self._connected = False
        self._callbacks: dict[str, NotifyCallback] = {}
        self._pump: asyncio.Task[None] | None = None
        self.connect_calls = 0
        self.connections = 0
        self.drops = 0
        self.delivered: list[tuple[str, bytes]] = []
        self.written: list[tuple[str, bytes]] = []
        # A peripheral that answers writes (a meter's RACP): called with each write,
        # returns the notifications/indications it sends in reply (queued in order).
        self.on_write: Callable[[str, bytes], list[tuple[str, bytes]]] | None = None

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def remaining(self) -> int:
        return len(self._script)

    def push(self, characteristic: str, data: bytes) -> None:
        """Append a notification to the script (a measurement taken while running)."""
        self._script.append((characteristic, data))

    async def connect(self) -> None:
        self.connect_calls += 1
        if self._connect_failures > 0:
            self._connect_failures -= 1
            raise OSError("scripted connect failure (device out of range)")
        self._connected = True
        self.connections += 1
        self._callbacks = {}
        self._pump = asyncio.get_running_loop().create_task(self._play())

    async def start_notify(self, characteristic: str, callback: NotifyCallback) -> None:
        if not self._connected:
            raise OSError("scripted link: start_notify while not connected")
        self._callbacks[characteristic] = callback

    async def write(self, characteristic: str, data: bytes) -> None:
        if not self._connected:
            raise OSError("scripted link: write while not connected")
        self.written.append((characteristic, data))
        if self.on_write is not None:
            self._script.extend(self.on_write(characteristic, data))

    async def disconnect(self) -> None:
        self._connected = False
        self._callbacks = {}
        pump, self._pump = self._pump, None
        await stop_sending(pump)

    async def _play(self) -> None:
        sent = 0
        while self._connected:
            if not self._script:
                await asyncio.sleep(0.01)
                continue
            characteristic, data = self._script[0]
            callback = self._callbacks.get(characteristic)
            if callback is None:
                # Not subscribed yet: the session is still setting up.
                await asyncio.sleep(0.001)
                continue
            if self._interval_s:
                await asyncio.sleep(self._interval_s)
                if not self._connected:
                    return
            self._script.popleft()
            callback(data)
            self.delivered.append((characteristic, data))
            sent += 1
            if self._drop_after is not None and sent >= self._drop_after:
                self._connected = False
                self._callbacks = {}
                self.drops += 1
                return


async def stop_sending(task: asyncio.Task[None] | None) -> None:
    """End a pretend peripheral's sending task (this fake's, the simulators') and wait for
    it. A task that hangs up from inside itself is not cancelled: it ends by returning."""
    if task is not None and task is not asyncio.current_task():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
