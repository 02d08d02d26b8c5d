"""Driver ids (docs/contracts.md "CLI") -> their declarations: the one list of drivers.

Every driver declares itself once, next to its decoder (`DECLARATIONS` at the end of
its module; device_drivers.declaration says what a declaration holds). This module
collects them from the explicit list below, `BUILT_IN`, and is what the rest of the box
asks: config check, the device set-up, the recorder, the uplink, BLE presence, the
store's strip query, the decode CLI and the demo. A driver whose module is on that list
is usable everywhere, and nothing else needs to know its id.

`register` adds a driver at run time (a site's own driver, a test's), `unregister`
takes one added so away again; the built-in ones stay. `DRIVERS` is a read-only mapping
that follows both.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from device_drivers.declaration import (
    BlePeripheral,
    Decoder,
    Driver,
    NetworkListener,
    TransportKind,
)
from device_drivers.network.admission import ConnectionLimits
from device_drivers.transport import Framer, Transport
from edge_agent.model import Decoded

__all__ = [
    "BUILT_IN",
    "DRIVERS",
    "Decoder",
    "Driver",
    "advertised_services",
    "decode",
    "decoder",
    "decoder_for_channel",
    "driver",
    "framer",
    "ids",
    "listener",
    "recording_drivers",
    "register",
    "unregister",
]

# The built-in drivers and the module that declares each (its `DECLARATIONS`). A module
# is imported when one of its drivers is first asked for: `config check` of a box with
# a Masimo and a cuff loads those two, not the MLLP listener nor the ECG formats.
BUILT_IN: Mapping[str, str] = {
    "masimo-ascii": "device_drivers.serial.masimo",
    "nonin-df2": "device_drivers.serial.nonin",
    "nonin-df7": "device_drivers.serial.nonin",
    "nonin-df8": "device_drivers.serial.nonin",
    "datex-s5": "device_drivers.serial.datex",
    "intellivue": "device_drivers.serial.intellivue",
    "hl7-mllp": "device_drivers.network.mllp",
    "scale-ascii": "device_drivers.serial.scale",
    "ble-plx-spot": "device_drivers.ble.pulse_oximeter",
    "ble-plx-cont": "device_drivers.ble.pulse_oximeter",
    "ble-bp": "device_drivers.ble.blood_pressure",
    "ble-glucose": "device_drivers.ble.glucose",
    "ble-thermo": "device_drivers.ble.thermometer",
    "ble-hr": "device_drivers.ble.heart_rate",
    "ble-weight": "device_drivers.ble.weight_scale",
    "ecg-scp": "device_drivers.ecg.carts",
    "ecg-aecg": "device_drivers.ecg.carts",
    "ecg-philips-xml": "device_drivers.ecg.carts",
    "ecg-dicom": "device_drivers.ecg.carts",
}


class _Drivers(Mapping[str, Driver]):
    """Every driver by id: the built-in ones (loaded from their module on first use),
    then those `register` added. Read-only to everyone else."""

    def __init__(self) -> None:
        self._loaded: dict[str, Driver] = {}
        self._added: dict[str, Driver] = {}

    def __getitem__(self, driver_id: str) -> Driver:
        found = self._loaded.get(driver_id) or self._added.get(driver_id)
        if found is None:
            self._load(BUILT_IN[driver_id])  # KeyError: no such driver
            found = self._loaded[driver_id]
        return found

    def __contains__(self, driver_id: object) -> bool:
        return driver_id in BUILT_IN or driver_id in self._added

    def __iter__(self) -> Iterator[str]:
        return iter([*BUILT_IN, *self._added])

    def __len__(self) -> int:
        return len(BUILT_IN) + len(self._added)

    def _load(self, name: str) -> None:
        """A module's declarations, which must be the drivers BUILT_IN names for it."""
        declared = getattr(importlib.import_module(name), "DECLARATIONS", None)
        if not isinstance(declared, tuple) or not all(isinstance(d, Driver) for d in declared):
            raise TypeError(f"{name}.DECLARATIONS must be a tuple of driver declarations")
        expected = {i for i, module in BUILT_IN.items() if module == name}
        if sorted(d.id for d in declared) != sorted(expected):
            raise ValueError(f"{name} declares {sorted(d.id for d in declared)}, not {expected}")
        self._loaded.update((d.id, d) for d in declared)

    def add(self, declaration: Driver) -> None:
        if declaration.id in self:
            raise ValueError(f"driver {declaration.id} is known already")
        self._added[declaration.id] = declaration

    def remove(self, driver_id: str) -> None:
        if driver_id not in self._added:
            raise KeyError(f"driver {driver_id!r} was not registered at run time")
        del self._added[driver_id]


_drivers = _Drivers()

# Every driver by id, the run-time ones included (read-only: `register` adds).
DRIVERS: Mapping[str, Driver] = _drivers


def driver(driver_id: str) -> Driver:
    if driver_id not in _drivers:
        known = ", ".join(sorted(_drivers))
        raise KeyError(f"unknown driver {driver_id!r} (known: {known})")
    return _drivers[driver_id]


def register(declaration: Driver) -> None:
    """Make a driver known from now on, as if it were built in (ValueError if its id is
    taken). It was checked as every declaration is, when it was made."""
    _drivers.add(declaration)


def unregister(driver_id: str) -> None:
    """Forget a driver `register` added (KeyError for a built-in or unknown one)."""
    _drivers.remove(driver_id)


def ids(transport: TransportKind | None = None) -> list[str]:
    """Driver ids, sorted; only those of one transport kind if given."""
    if transport is None:
        return sorted(_drivers)
    return sorted(d.id for d in _drivers.values() if d.transport == transport)


def recording_drivers() -> tuple[str, ...]:
    """Drivers whose frames are whole recordings (12-lead carts' files), sorted."""
    return tuple(sorted(d.id for d in _drivers.values() if d.yields.recording))


def identity_drivers() -> tuple[str, ...]:
    """Drivers whose frames can name the patient (their bytes are sealed), sorted."""
    return tuple(sorted(d.id for d in _drivers.values() if d.carries_identity))


def advertised_services() -> dict[str, str]:
    """BLE service UUID -> its name, for every service a driver's devices advertise."""
    services: dict[str, str] = {}
    for d in _drivers.values():
        if isinstance(d.source, BlePeripheral):
            services[d.source.service.uuid] = d.source.service.name
            for quirk in d.source.quirks.values():
                if quirk.service is not None:
                    services[quirk.service.uuid] = quirk.service.name
    return services


def listener(
    driver_id: str, host: str, port: int, *, limits: ConnectionLimits | None = None
) -> Transport:
    """The network transport of a `tcp` driver, listening on host:port."""
    source = driver(driver_id).source
    if not isinstance(source, NetworkListener):
        raise KeyError(f"driver {driver_id!r} does not listen on the network")
    return source.listener(host, port, limits or source.limits)


def decoder_for_channel(driver_id: str, channel: str | None) -> Decoder:
    """The decoder for a frame that arrived on `channel` (a BLE characteristic, or None)."""
    return driver(driver_id).decoder_for(channel)


def decoder(driver_id: str) -> Decoder:
    """The decoder for frames with no channel (a device with per-device state, such as
    an IntelliVue's wave calibration, gets its own from Driver.decoders())."""
    return decoder_for_channel(driver_id, None)


def decode(driver_id: str, frame: bytes) -> Decoded:
    return decoder(driver_id)(frame)


def framer(driver_id: str) -> Framer:
    return driver(driver_id).framer()
