"""The driver registry: one declaration per driver, checked when it is made.

Before issue 12 each policy below was a list of driver ids of its own in config.py,
recorder.py, outbox_messages.py, ble/presence.py and the store's SQL. The tables here
are those lists as they were: the declarations must say the same, driver for driver.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from device_drivers import registry
from device_drivers.ble import presence
from device_drivers.declaration import (
    LIMIT_KEYS,
    Binding,
    BlePeripheral,
    BleService,
    Driver,
    FileFolder,
    Lane,
    NetworkListener,
    Results,
    SerialPort,
    Uplink,
    Yields,
    every_channel,
)
from device_drivers.network.mllp import MllpListener
from edge_agent.config import LISTENER_KEYS
from edge_agent.model import Decoded
from sync.reported_readings import device_profile

SERIAL = {"masimo-ascii", "nonin-df2", "nonin-df7", "nonin-df8", "intellivue", "datex-s5"}
SERIAL |= {"scale-ascii"}
BLE = {"ble-bp", "ble-thermo", "ble-hr", "ble-plx-spot", "ble-plx-cont", "ble-glucose"}
BLE |= {"ble-weight"}
NETWORK = {"hl7-mllp"}
FILES = {"ecg-dicom", "ecg-scp", "ecg-aecg", "ecg-philips-xml"}
FILES_ALSO_SERIAL = FILES - {"ecg-dicom"}
PERSONAL = BLE | {"scale-ascii"}
STORED_RESULTS = PERSONAL | FILES
SPECIALISATION = {
    "ble-bp": "MDC_DEV_SPEC_PROFILE_BP",
    "ble-thermo": "MDC_DEV_SPEC_PROFILE_TEMP",
    "ble-glucose": "MDC_DEV_SPEC_PROFILE_GLUCOSE",
    "ble-weight": "MDC_DEV_SPEC_PROFILE_SCALE",
    "scale-ascii": "MDC_DEV_SPEC_PROFILE_SCALE",
    "ble-plx-spot": "MDC_DEV_SPEC_PROFILE_PULS_OXIM",
    "ble-plx-cont": "MDC_DEV_SPEC_PROFILE_PULS_OXIM",
    "masimo-ascii": "MDC_DEV_SPEC_PROFILE_PULS_OXIM",
    "nonin-df2": "MDC_DEV_SPEC_PROFILE_PULS_OXIM",
    "nonin-df7": "MDC_DEV_SPEC_PROFILE_PULS_OXIM",
    "nonin-df8": "MDC_DEV_SPEC_PROFILE_PULS_OXIM",
}
ONCE_A_SECOND = {"nonin-df2", "nonin-df7", "intellivue", "ble-plx-cont", "ble-hr"}
HEALTH_SERVICES = {
    "00001810-0000-1000-8000-00805f9b34fb": "blood pressure",
    "00001809-0000-1000-8000-00805f9b34fb": "health thermometer",
    "0000180d-0000-1000-8000-00805f9b34fb": "heart rate",
    "00001822-0000-1000-8000-00805f9b34fb": "pulse oximeter",
    "00001808-0000-1000-8000-00805f9b34fb": "glucose",
    "0000181d-0000-1000-8000-00805f9b34fb": "weight scale",
    "49535343-fe7d-4ae5-8fa9-9fafd205e455": "BerryMed oximeter (BCI)",
}


def ids(keep: Callable[[Driver], object]) -> set[str]:
    return {d.id for d in registry.DRIVERS.values() if keep(d)}


def test_the_declarations_say_what_the_old_lists_said() -> None:
    assert set(registry.DRIVERS) == SERIAL | BLE | NETWORK | FILES
    assert ids(lambda d: d.transport == "serial") == SERIAL
    assert ids(lambda d: d.transport == "ble") == BLE
    assert ids(lambda d: d.transport == "tcp") == NETWORK
    assert ids(lambda d: d.transport == "folder") == FILES
    assert ids(lambda d: isinstance(d.source, FileFolder) and d.source.serial) == FILES_ALSO_SERIAL
    assert ids(lambda d: d.binding is Binding.PERSONAL) == PERSONAL
    assert ids(lambda d: d.results is Results.STORED) == STORED_RESULTS
    assert ids(lambda d: d.watches_rejects) == SERIAL
    assert ids(lambda d: d.yields.recording) == FILES == set(registry.recording_drivers())
    assert ids(lambda d: d.uplink.lane is Lane.RECORDING) == FILES
    assert {d: device_profile(d) for d in registry.DRIVERS} == {
        d: SPECIALISATION.get(d, "MDC_DEV_SPEC_PROFILE_HYDRA") for d in registry.DRIVERS
    }
    assert {d.id: d.uplink.every_s for d in registry.DRIVERS.values()} == {
        d: 1.0 if d in ONCE_A_SECOND else 0.0 for d in registry.DRIVERS
    }
    assert registry.advertised_services() == HEALTH_SERVICES
    assert ids(lambda d: d.packages) == {"ecg-dicom", "ecg-aecg", "ecg-philips-xml"}


def test_config_takes_the_listener_keys_the_declarations_name() -> None:
    assert set(LISTENER_KEYS) == set(LIMIT_KEYS)
    assert ids(lambda d: set(LIMIT_KEYS) <= d.takes) == NETWORK
    assert ids(lambda d: "pattern" in d.takes) == {"scale-ascii"}


def test_a_scan_names_the_services_of_registered_drivers_too() -> None:
    service = "0000fff0-0000-1000-8000-00805f9b34fb"
    ad = presence.Advertisement("AA:BB:CC:DD:EE:FF", None, -60, (service,))
    assert not ad.health_services(registry.advertised_services())
    band = dataclasses.replace(
        registry.driver("ble-hr"),
        id="toy-band",
        source=BlePeripheral(BleService(service, "toy band"), ("0000fff1" + service[8:],)),
    )
    registry.register(band)
    try:
        assert ad.health_services(registry.advertised_services()) == ("toy band",)
        assert "toy-band" in registry.ids("ble")
    finally:
        registry.unregister("toy-band")
    assert not ad.health_services(registry.advertised_services())


def _toy(**changes: object) -> Driver:
    base: dict[str, object] = {
        "id": "toy-line",
        "summary": "a toy",
        "source": SerialPort(),
        "framer": lambda: None,
        "decoder_for": every_channel(lambda _frame: Decoded()),
        "yields": Yields(numerics=True),
        "profile": "MDC_DEV_SPEC_PROFILE_HYDRA",
        "binding": Binding.MONITOR,
        "results": Results.LIVE,
    }
    return Driver(**{**base, **changes})  # type: ignore[arg-type]


def test_register_and_unregister() -> None:
    toy = _toy()
    assert "toy-line" not in registry.DRIVERS
    registry.register(toy)
    try:
        assert registry.driver("toy-line") is toy and "toy-line" in registry.ids("serial")
        with pytest.raises(ValueError, match="known already"):
            registry.register(_toy())
    finally:
        registry.unregister("toy-line")
    assert "toy-line" not in registry.DRIVERS
    with pytest.raises(KeyError, match="not registered at run time"):
        registry.unregister("masimo-ascii")
    with pytest.raises(KeyError, match="not registered at run time"):
        registry.unregister("toy-line")
    with pytest.raises(ValueError, match="known already"):
        registry.register(_toy(id="masimo-ascii"))
    with pytest.raises(TypeError):
        registry.DRIVERS["toy-line"] = toy  # type: ignore[index]


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"id": "toy/line"}, "driver id must be letters"),
        ({"id": ""}, "driver id is empty"),
        ({"profile": "MDC_PULS_OXIM_SAT_O2"}, "is not a device specialisation"),
        ({"profile": "MDC_DEV_SPEC_PROFILE_NOPE"}, "is not a device specialisation"),
        ({"yields": Yields(recording=True)}, "a whole recording goes up whole"),
        ({"uplink": Uplink(lane=Lane.RECORDING)}, "a whole recording goes up whole"),
        ({"uplink": Uplink(every_s=-1)}, "every_s must be 0 or more"),
        ({"packages": ("pydicom",)}, "name the extra"),
    ],
)
def test_a_declaration_that_contradicts_itself_is_refused(
    changes: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        _toy(**changes)


def test_the_listener_limits_are_the_drivers() -> None:
    source = registry.driver("hl7-mllp").source
    assert isinstance(source, NetworkListener)
    listener = registry.listener("hl7-mllp", "127.0.0.1", 0)
    assert isinstance(listener, MllpListener) and listener.limits == source.limits
    with pytest.raises(KeyError, match="does not listen"):
        registry.listener("masimo-ascii", "127.0.0.1", 0)
