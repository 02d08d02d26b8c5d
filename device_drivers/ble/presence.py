"""Which paired BLE devices are advertising now: one scanner for all of them.

Home cuffs, meters and scales sleep and advertise only for a while after a measurement.
Twenty sessions each polling with connection attempts would keep the radio busy and
wake the CPU for nothing; instead one watcher listens to advertisements and wakes the
session whose device just appeared (docs/protocols/ble-health-profiles.md, link
behaviour: have the subscriptions in place within a second of the device showing up).

bleak stays at this edge: `BleakAdvertisements` imports it when it starts, and turns
each advertisement into our own `Advertisement` value; tests feed `saw()` directly.

Which services are health devices' is the drivers' to say: each BLE driver's declaration
names the service its devices advertise (a vendor quirk its own), and
`registry.advertised_services()` collects them, run-time drivers included; the caller
hands that table to `Advertisement.health_services` (this transport sits below the
registry, docs/architecture.md "Layers").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Advertisement:
    address: str  # upper case AA:BB:CC:DD:EE:FF
    name: str | None
    rssi: int | None
    services: tuple[str, ...]  # lower-case 128-bit UUIDs

    def health_services(self, known: Mapping[str, str]) -> tuple[str, ...]:
        """The names of the advertised services that `known` (service UUID -> name: the
        drivers' declarations, registry.advertised_services()) names."""
        return tuple(known[s] for s in self.services if s in known)


class AdvertisementWatcher:
    """Remembers when each address was last heard; wakes sessions waiting for it."""

    def __init__(self, *, fresh_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self._fresh_s = fresh_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._waiting: dict[str, asyncio.Event] = {}
        self.seen = 0  # advertisements handled (for status and the idle benchmark)

    def saw(self, advertisement: Advertisement) -> None:
        address = advertisement.address.upper()
        self.seen += 1
        self._last[address] = self._clock()
        event = self._waiting.get(address)
        if event is not None:
            event.set()

    def last_seen(self, address: str) -> float | None:
        return self._last.get(address.upper())

    async def wait_seen(self, address: str, stop: asyncio.Event) -> bool:
        """True when `address` advertises (or did within `fresh_s`); False when stopped."""
        address = address.upper()
        last = self._last.get(address)
        if last is not None and self._clock() - last < self._fresh_s:
            self._last.pop(address)  # one connection attempt per sighting
            return True
        event = self._waiting.setdefault(address, asyncio.Event())
        event.clear()
        stopper = asyncio.ensure_future(stop.wait())
        seen = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({stopper, seen}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            seen.cancel()
        if stop.is_set():
            return False
        self._last.pop(address, None)
        return True


class BleakAdvertisements:
    """Feeds an AdvertisementWatcher from BlueZ through bleak's passive-ish scanner."""

    def __init__(self, watcher: AdvertisementWatcher) -> None:
        self._watcher = watcher

    async def run(self, stop: asyncio.Event, *, retry_s: float = 30.0) -> None:
        """Scan until `stop`; a missing adapter or a BlueZ restart is retried, not fatal."""
        while not stop.is_set():
            try:
                await self._scan(stop)
            except Exception as exc:  # BleakError, D-Bus errors: the radio is not there now
                log.warning("BLE scanner: %s; retrying in %g s", exc, retry_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), retry_s)

    async def _scan(self, stop: asyncio.Event) -> None:
        from bleak import BleakScanner

        def detected(device: object, data: object) -> None:
            self._watcher.saw(
                Advertisement(
                    address=str(getattr(device, "address", "")).upper(),
                    name=getattr(data, "local_name", None) or getattr(device, "name", None),
                    rssi=getattr(data, "rssi", None),
                    services=tuple(s.lower() for s in getattr(data, "service_uuids", ()) or ()),
                )
            )

        scanner = BleakScanner(detection_callback=detected)
        await scanner.start()
        try:
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await scanner.stop()


async def scan(seconds: float, known: Mapping[str, str]) -> list[Advertisement]:
    """Nearby devices that advertise a service `known` names (the drivers' health
    services, registry.advertised_services()), strongest first (`devices scan`)."""
    watcher = AdvertisementWatcher()
    found: dict[str, Advertisement] = {}
    original = watcher.saw

    def keep(advertisement: Advertisement) -> None:
        original(advertisement)
        if advertisement.health_services(known) or advertisement.address in found:
            found[advertisement.address] = advertisement

    watcher.saw = keep  # type: ignore[method-assign]
    stop = asyncio.Event()
    feeder = asyncio.create_task(BleakAdvertisements(watcher)._scan(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await feeder
    return sorted(found.values(), key=lambda a: -(a.rssi if a.rssi is not None else -999))
