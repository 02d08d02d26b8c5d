"""Configured devices -> running transports: the edge where drivers meet real ports.

A serial device gets a SerialTransport on its port with its driver's line settings,
framer and (for monitors that must be asked) conversation; a BLE device gets a
BleTransport whose link is bleak (imported only when it connects); a network device gets
its listener; an ECG cart gets a FolderTransport on its folder (or, sending its files
over RS-232, a SerialTransport with the driver's file framer). The decoder comes from
the driver registry, chosen per frame by channel (the BLE characteristic a notification
came on) and configured per device where the driver needs it (a scale's line format).
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from device_drivers import registry
from device_drivers.ble import current_time
from device_drivers.ble.link import BleakLink
from device_drivers.ble.session import BleTransport, Presence
from device_drivers.files.folder import FolderTransport, content_key
from device_drivers.network.admission import ConnectionLimits
from device_drivers.serial.port import SerialSettings, SerialTransport
from edge_agent.config import DeviceConfig
from edge_agent.daemon import DeviceRuntime, Transport


def serial_settings(config: DeviceConfig, spec: registry.Driver) -> SerialSettings:
    if config.port is None:
        raise ValueError(f"device {config.id}: driver {config.driver} needs a serial port")
    line = spec.line
    return SerialSettings(
        port=config.port,
        baudrate=config.baudrate or line.baudrate,
        bytesize=line.bytesize,
        parity=line.parity,
        stopbits=line.stopbits,
        rtscts=line.rtscts,
    )


def connection_limits(config: DeviceConfig) -> ConnectionLimits:
    """A network device's listener limits: the configured keys over the defaults."""
    default = ConnectionLimits()
    total = config.max_connections or default.max_connections
    return ConnectionLimits(
        max_connections=total,
        max_connections_per_address=(
            config.max_connections_per_address or min(default.max_connections_per_address, total)
        ),
        idle_timeout_s=config.idle_timeout_s or default.idle_timeout_s,
        message_timeout_s=config.message_timeout_s or default.message_timeout_s,
    )


def local_clock_write(tz: str = "Asia/Shanghai") -> tuple[str, bytes]:
    """Current Time for a device that stamps readings: the clinic's local wall clock.

    The characteristic has no zone: the device is set to the time in `agent.timezone`
    (`tz`), which is the zone its naive times are read in again (clock.device_instant),
    whatever zone the machine itself runs in (a Pi left on UTC).
    """
    now = dt.datetime.now(zoneinfo.ZoneInfo(tz)).replace(microsecond=0, tzinfo=None)
    return current_time.set_clock_write(now)


def runtime_for(
    config: DeviceConfig, *, presence: Presence | None = None, tz: str = "Asia/Shanghai"
) -> DeviceRuntime:
    """The transport and decoders for one `[[device]]` entry (already validated).

    BLE sessions given the shared advertisement watcher (`presence`) connect when their
    device advertises instead of polling it with connection attempts. `tz`:
    `agent.timezone`, what a device's clock is set to.
    """
    spec = registry.driver(config.driver)
    transport: Transport
    if spec.transport == "folder" and config.folder is not None:
        transport = FolderTransport(config.folder, spec.file_patterns, exclude=spec.file_exclude)
    elif spec.transport == "folder" and spec.also_serial:
        # A cart sending its files over RS-232: the same file by cable or by stick has
        # the same key, so it is recorded once.
        transport = SerialTransport(
            serial_settings(config, spec), spec.framer, dedup_key=content_key
        )
    elif spec.transport == "folder":
        raise ValueError(f"device {config.id}: driver {config.driver} needs a folder")
    elif spec.transport == "serial":
        transport = SerialTransport(
            serial_settings(config, spec), spec.framer, conversation_factory=spec.conversation
        )
    elif spec.transport == "ble":
        address = config.address
        if address is None:
            raise ValueError(f"device {config.id}: driver {config.driver} needs a BLE address")
        transport = BleTransport(
            lambda: BleakLink(address, bond=spec.bonds),
            spec.characteristics_for(config.model),
            conversation_factory=spec.gatt_conversation() if spec.gatt_conversation else None,
            dedup_key=spec.dedup_key,
            presence=presence,
            address=address,
            set_clock=functools.partial(local_clock_write, tz) if spec.sets_clock else None,
        )
    else:
        host, port = config.listen_address
        transport = registry.listener(spec.id, host, port, limits=connection_limits(config))
    return DeviceRuntime(
        config, transport, spec.decoders(config.model, config.pattern), spec.upload_every_s
    )
