"""BLE devices paired at a station: `edge-agent devices scan | pair | list | forget`.

A clinic's cuffs and meters change more often than its config file: a village doctor
pairs a resident's new cuff from the terminal. Paired devices live in the store next to
the configured ones, and the daemon reads both at start. The CLI is a thin layer over
these functions (pair and forget through edge_agent.operations).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from edge_agent.clock import Clock
from edge_agent.config import Config, DeviceConfig
from edge_agent.identifiers import DEVICE_ID, shown
from edge_agent.model import Refused
from edge_agent.store import StoreReader, StoreWriter

_ADDRESS = re.compile(r"^([0-9A-F]{2}:){5}[0-9A-F]{2}$")


class PairingError(Refused):
    """One line naming what is wrong with a pairing request."""


class BluetoothUnavailable(RuntimeError):
    """No scan is possible here (no adapter, no D-Bus, no permission): one line."""


@dataclass(frozen=True, slots=True)
class Paired:
    address: str
    device_id: str
    driver: str
    name: str | None

    def as_json(self) -> dict[str, Any]:
        return {"paired": self.address, "id": self.device_id, "driver": self.driver}


def nearby(seconds: float) -> list[dict[str, Any]]:
    """Devices advertising a health service within `seconds`, strongest first: what a
    doctor picks the address to pair from (`devices scan`)."""
    import asyncio

    from device_drivers import registry
    from device_drivers.ble import presence

    known = registry.advertised_services()
    try:
        found = asyncio.run(presence.scan(seconds, known))
    except Exception as exc:  # bleak/BlueZ: no adapter, no D-Bus, permission
        raise BluetoothUnavailable(
            f"devices scan: Bluetooth is not available here ({exc})"
        ) from None
    return [
        {
            "address": ad.address,
            "name": ad.name,
            "rssi": ad.rssi,
            "services": list(ad.health_services(known)),
        }
        for ad in found
    ]


def pair(
    store: StoreWriter,
    clock: Clock,
    config: Config,
    *,
    address: str,
    driver: str,
    device_id: str | None = None,
    name: str | None = None,
) -> Paired:
    address = address.strip().upper()
    if not _ADDRESS.match(address):
        raise PairingError(f"pair: {address!r} is not a BLE address like AA:BB:CC:DD:EE:FF")
    from device_drivers import registry  # the drivers load only when a device is paired

    ble_available = registry.ids("ble")
    if driver not in ble_available:
        raise PairingError(
            f"pair: {driver!r} is not a BLE driver of this release (available: {', '.join(ble_available)})"
        )
    device_id = (
        device_id or f"{driver.removeprefix('ble-')}-{address.replace(':', '')[-6:].lower()}"
    )
    problem = DEVICE_ID.problem(device_id)
    if problem is not None:
        raise PairingError(f"pair: device id {shown(device_id)} {problem}")
    for configured in config.devices:
        if configured.id == device_id or (configured.address or "").upper() == address:
            raise PairingError(
                f"pair: {configured.id} ({configured.address or configured.port}) is in the config"
                " file already; change it there"
            )
    for other in store.devices.paired():
        if other.device_id == device_id and other.address != address:
            raise PairingError(f"pair: device id {device_id} is taken by {other.address}")
    with store.transaction():
        store.devices.pair(
            address, device_id=device_id, driver=driver, name=name, wall_ns=clock.wall_ns()
        )
    return Paired(address, device_id, driver, name)


def forget(store: StoreWriter, address: str) -> str:
    """Forget a paired device; its address as stored. PairingError if it is not paired."""
    address = address.strip().upper()
    with store.transaction():
        if not store.devices.forget(address):
            raise PairingError(f"devices forget: {address} is not paired here")
    return address


def paired_configs(store: StoreReader) -> list[DeviceConfig]:
    """Paired devices as the daemon's device entries."""
    return [
        DeviceConfig(id=row.device_id, driver=row.driver, address=row.address)
        for row in store.devices.paired()
    ]


def device_list(config: Config, store: StoreReader) -> list[dict[str, Any]]:
    """Configured and paired devices with their last known state (`devices list`)."""
    states = {d["id"]: d for d in store.devices.all()}
    rows: list[dict[str, Any]] = []
    for device in config.devices:
        rows.append(
            {
                "id": device.id,
                "driver": device.driver,
                "where": device.address or device.port or device.listen or device.folder,
                "source": "config",
            }
        )
    for paired in store.devices.paired():
        rows.append(
            {
                "id": paired.device_id,
                "driver": paired.driver,
                "where": paired.address,
                "source": "paired",
                "name": paired.name,
            }
        )
    for row in rows:
        state = states.get(row["id"])
        row["state"] = None if state is None else state["state"]
        row["frames"] = 0 if state is None else state["frames"]
        row["last_frame_wall_ns"] = None if state is None else state["last_frame_wall_ns"]
    return rows
