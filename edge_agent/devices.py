"""Configured devices -> running transports: the edge where drivers meet real ports.

A serial device gets a SerialTransport on its port with its driver's line settings,
framer and (for monitors that must be asked) conversation; a BLE device gets a
BleTransport whose link is bleak (imported only when it connects); a network device gets
its listener; an ECG cart gets a FolderTransport on its folder (or, sending its files
over RS-232, a SerialTransport with the driver's file framer). All of it comes from the
driver's declaration (device_drivers.declaration), the decoder too: chosen per frame by
channel (the BLE characteristic a notification came on) and configured per device where
the driver needs it (a scale's line format).

`DeviceRuntime` lives here, with what builds it: the daemon imports it from this module
and never the other way round (an import-linter contract in pyproject.toml keeps it so);
`daemon.bootstrap` builds the graph.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass

from device_drivers import registry
from device_drivers.ble import current_time
from device_drivers.ble.link import BleakLink
from device_drivers.ble.session import BleTransport, NotifyingLink, Presence
from device_drivers.declaration import (
    BlePeripheral,
    DecoderFor,
    FileFolder,
    SerialLine,
    SerialPort,
)
from device_drivers.files.folder import FolderTransport, content_key
from device_drivers.network.admission import ConnectionLimits
from device_drivers.serial.port import SerialSettings, SerialTransport
from device_drivers.transport import Transport
from edge_agent.config import DeviceConfig


@dataclass
class DeviceRuntime:
    """A configured device: where its bytes come from and how they are decoded."""

    config: DeviceConfig
    transport: Transport
    decoder_for: DecoderFor


def serial_settings(config: DeviceConfig, spec: registry.Driver) -> SerialSettings:
    line = _serial_line(spec)
    if config.port is None or line is None:
        raise ValueError(f"device {config.id}: driver {config.driver} needs a serial port")
    return SerialSettings.on(config.port, line, config.baudrate)


def _serial_line(spec: registry.Driver) -> SerialLine | None:
    source = spec.source
    if isinstance(source, SerialPort):
        return source.line
    if isinstance(source, FileFolder):
        return source.serial
    return None


def connection_limits(
    config: DeviceConfig, default: ConnectionLimits | None = None
) -> ConnectionLimits:
    """A network device's listener limits: the configured keys over the driver's
    defaults (`default`, else the listener's own)."""
    default = default or ConnectionLimits()
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
    config: DeviceConfig,
    *,
    presence: Presence | None = None,
    tz: str = "Asia/Shanghai",
    ble_link: Callable[[], NotifyingLink] | None = None,
) -> DeviceRuntime:
    """The transport and decoders for one `[[device]]` entry (already validated), as
    its driver's declaration says.

    BLE sessions given the shared advertisement watcher (`presence`) connect when their
    device advertises instead of polling it with connection attempts. `tz`:
    `agent.timezone`, what a device's clock is set to. `ble_link`: the link to a BLE
    device instead of bleak's (the demo's simulated devices).
    """
    spec = registry.driver(config.driver)
    source = spec.source
    transport: Transport
    if isinstance(source, FileFolder):
        if config.folder is not None:
            transport = FolderTransport(config.folder, source.patterns, exclude=source.exclude)
        elif source.serial is not None:
            # A cart sending its files over RS-232: the same file by cable or by stick
            # has the same key, so it is recorded once.
            transport = SerialTransport(
                serial_settings(config, spec), spec.framer, dedup_key=content_key
            )
        else:
            raise ValueError(f"device {config.id}: driver {config.driver} needs a folder")
    elif isinstance(source, SerialPort):
        transport = SerialTransport(
            serial_settings(config, spec), spec.framer, conversation_factory=source.conversation
        )
    elif isinstance(source, BlePeripheral):
        address, bond = config.address, source.bonds
        if address is None:
            raise ValueError(f"device {config.id}: driver {config.driver} needs a BLE address")
        transport = BleTransport(
            ble_link or (lambda: BleakLink(address, bond=bond)),
            source.characteristics_for(config.model),
            conversation_factory=source.gatt_conversation() if source.gatt_conversation else None,
            dedup_key=source.dedup_key,
            presence=presence,
            address=address,
            set_clock=functools.partial(local_clock_write, tz) if source.sets_clock else None,
        )
    else:
        host, port = config.listen_address
        transport = source.listener(host, port, connection_limits(config, source.limits))
    return DeviceRuntime(config, transport, spec.decoders(config.model, config.pattern))
