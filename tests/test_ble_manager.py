"""The BLE connection manager: presence, conversations, resend dedup, pairing at a station."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from box_keys import init_keys_in
from waiting import until

from device_drivers import registry
from device_drivers.ble.link import ScriptedLink
from device_drivers.ble.presence import Advertisement, AdvertisementWatcher
from device_drivers.ble.session import BleTransport
from device_drivers.declaration import BlePeripheral

ADDRESS = "C4:7C:8D:6A:00:17"
NOTIFY = "00002a18-0000-1000-8000-00805f9b34fb"
CONTROL = "00002a52-0000-1000-8000-00805f9b34fb"


def ad(address: str = ADDRESS, services: tuple[str, ...] = ()) -> Advertisement:
    return Advertisement(address=address, name="cuff", rssi=-60, services=services)


# --- presence ------------------------------------------------------------------------------


async def test_a_session_connects_only_when_its_device_advertises() -> None:
    watcher = AdvertisementWatcher()
    link = ScriptedLink([(NOTIFY, b"\x01")], drop_after=1)
    transport = BleTransport(
        lambda: link, [NOTIFY], presence=watcher, address=ADDRESS, retry_s=0.01, poll_s=0.01
    )
    frames: list[bytes] = []
    stop = asyncio.Event()
    task = asyncio.create_task(
        transport.run(lambda d, c, **_: frames.append(d), lambda s, d: None, stop)
    )
    await asyncio.sleep(0.2)  # time itself: 20 retry periods in which nothing may connect
    assert link.connect_calls == 0  # asleep: not polled with connection attempts
    watcher.saw(ad("AA:BB:CC:DD:EE:FF"))  # somebody else's device
    await asyncio.sleep(0.1)  # time itself: 10 retry periods, still no attempt
    assert link.connect_calls == 0
    watcher.saw(ad(ADDRESS.lower()))
    await until(lambda: bool(frames), 5, "the frame after the advertisement")
    assert frames == [b"\x01"] and link.connect_calls == 1
    await asyncio.sleep(0.2)  # time itself: 20 retry periods after the drop, no attempt
    assert link.connect_calls == 1  # after the drop it waits for the next advertisement
    stop.set()
    await asyncio.wait_for(task, 2)


async def test_a_recent_sighting_counts_and_stop_ends_the_wait() -> None:
    now = [100.0]
    watcher = AdvertisementWatcher(fresh_s=10, clock=lambda: now[0])
    watcher.saw(ad())
    stop = asyncio.Event()
    assert await watcher.wait_seen(ADDRESS, stop)  # seen 0 s ago
    now[0] += 20
    waiter = asyncio.create_task(watcher.wait_seen(ADDRESS, stop))
    await asyncio.sleep(0.05)  # time itself: a while with no new sighting
    assert not waiter.done()  # that sighting was used; a new one is needed
    stop.set()
    assert await waiter is False


def test_health_services_are_named() -> None:
    assert ad(
        services=("00001810-0000-1000-8000-00805f9b34fb", "0000180a-0000-1000-8000-00805f9b34fb")
    ).health_services(registry.advertised_services()) == ("blood pressure",)


# --- conversation and dedup keys through the session ----------------------------------------


class _Download:
    """A minimal GATT conversation: ask for records, finish on the control point's answer."""

    def __init__(self) -> None:
        self.finished = False
        self.seen: list[bytes] = []

    def opened(self) -> list[tuple[str, bytes]]:
        return [(CONTROL, b"\x01\x01")]  # "report stored records: all"

    def release(self, characteristic: str, data: bytes) -> list[tuple[str, bytes]]:
        return [(characteristic, data)]

    def received(self, characteristic: str, data: bytes) -> list[tuple[str, bytes]]:
        if characteristic == CONTROL:
            self.finished = True
        else:
            self.seen.append(data)
        return []


async def test_the_session_converses_records_with_keys_and_hangs_up() -> None:
    link = ScriptedLink()
    link.on_write = lambda char, data: [
        (NOTIFY, b"rec-1"),
        (NOTIFY, b"rec-2"),
        (CONTROL, b"\x06\x00\x01\x01"),
    ]
    conversations: list[_Download] = []

    def conversation() -> _Download:
        conversations.append(_Download())
        return conversations[-1]

    transport = BleTransport(
        lambda: link,
        [NOTIFY, CONTROL],
        conversation_factory=conversation,
        dedup_key=lambda char, data: data.decode() if char == NOTIFY else None,
        retry_s=5,
        poll_s=0.01,
    )
    emitted: list[tuple[bytes, str | None, str | None]] = []
    states: list[str] = []
    stop = asyncio.Event()

    def emit(data: bytes, channel: str | None, /, *, dedup_key: str | None = None) -> None:
        emitted.append((data, channel, dedup_key))

    def on_state(state: str, detail: str) -> None:
        states.append(detail)
        if "finished" in detail:
            stop.set()

    await asyncio.wait_for(transport.run(emit, on_state, stop), 5)
    assert link.written == [(CONTROL, b"\x01\x01")]
    assert emitted == [
        (b"rec-1", NOTIFY, "rec-1"),
        (b"rec-2", NOTIFY, "rec-2"),
        (b"\x06\x00\x01\x01", CONTROL, None),
    ]
    assert conversations[0].seen == [b"rec-1", b"rec-2"]
    assert "exchange finished; hanging up" in states and not link.is_connected


async def test_a_failed_control_point_write_drops_and_retries() -> None:
    link = ScriptedLink(connect_failures=0)

    class Refusing(_Download):
        def opened(self) -> list[tuple[str, bytes]]:
            raise OSError("bond required (insufficient authentication)")

    transport = BleTransport(
        lambda: link, [NOTIFY], conversation_factory=Refusing, retry_s=0.01, poll_s=0.01
    )
    states: list[str] = []
    stop = asyncio.Event()

    def on_state(state: str, detail: str) -> None:
        states.append(detail)
        if len(states) >= 2:
            stop.set()

    await asyncio.wait_for(transport.run(lambda *a, **k: None, on_state, stop), 5)
    assert states[0].startswith("connect failed: bond required")
    assert link.connect_calls >= 2  # a bond failure is retried with backoff, not fatal


# --- pairing at a station ------------------------------------------------------------------


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def station(tmp_path: Path) -> Path:
    config = tmp_path / "edge-agent.toml"
    config.write_text(
        f'[agent]\nid = "clinic-1"\ndata_dir = "{tmp_path}"\nrole = "clinic"\n'
        '[uplink]\nbroker = "mqtt://127.0.0.1:1"\nallow_insecure = true\n'
        '[[device]]\nid = "cuff-1"\ndriver = "ble-bp"\naddress = "11:22:33:44:55:66"\n'
    )
    init_keys_in(tmp_path)
    return config


def test_pair_list_forget(station: Path) -> None:
    result = cli(
        station,
        "devices",
        "pair",
        ADDRESS.lower(),
        "--driver",
        "ble-bp",
        "--name",
        "王大爷的血压计",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"paired": ADDRESS, "id": "bp-6a0017", "driver": "ble-bp"}
    rows = [json.loads(x) for x in cli(station, "devices", "list").stdout.splitlines()]
    assert [(r["id"], r["source"], r["where"]) for r in rows] == [
        ("cuff-1", "config", "11:22:33:44:55:66"),
        ("bp-6a0017", "paired", ADDRESS),
    ]
    assert rows[1]["name"] == "王大爷的血压计"
    result = cli(station, "devices", "forget", ADDRESS)
    assert result.returncode == 0 and json.loads(result.stdout) == {"forgotten": ADDRESS}
    assert len(cli(station, "devices", "list").stdout.splitlines()) == 1
    result = cli(station, "devices", "forget", ADDRESS)
    assert result.returncode == 2 and "is not paired here" in result.stderr


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("AABBCC", "--driver", "ble-bp"), "is not a BLE address"),
        ((ADDRESS, "--driver", "masimo-ascii"), "is not a BLE driver of this release"),
        (("11:22:33:44:55:66", "--driver", "ble-bp"), "is in the config file already"),
        ((ADDRESS, "--driver", "ble-bp", "--id", "cuff-1"), "is in the config file already"),
        ((ADDRESS, "--driver", "ble-bp", "--id", "a/b"), "must be letters"),
        # `^...$` with re.match let a trailing newline through (edge_agent.identifiers)
        ((ADDRESS, "--driver", "ble-bp", "--id", "bp-2\n"), r"'bp-2\n' must be letters"),
    ],
)
def test_pair_refuses_with_one_line(station: Path, args: tuple[str, ...], error: str) -> None:
    result = cli(station, "devices", "pair", *args)
    assert result.returncode == 2
    last = result.stderr.splitlines()[-1]  # after the store's first-open migration log
    assert last.startswith("error: pair: ") and error in last


def test_the_daemon_connects_to_paired_devices(station: Path) -> None:
    from edge_agent.config import load
    from edge_agent.daemon import bootstrap

    assert cli(station, "devices", "pair", ADDRESS, "--driver", "ble-bp").returncode == 0
    agent = bootstrap(load(station))
    try:
        assert [d.config.id for d in agent.devices] == ["cuff-1", "bp-6a0017"]
        assert all(isinstance(d.transport, BleTransport) for d in agent.devices)
        assert len(agent.background) == 1  # one advertisement scanner for both
    finally:
        agent.store.close()


# --- readings taken with nobody's visit open -------------------------------------------------


def test_a_personal_reading_without_a_visit_waits_for_a_doctor(station: Path) -> None:
    from decimal import Decimal

    from device_drivers.ble import blood_pressure
    from edge_agent.clock import SystemClock
    from edge_agent.config import load
    from edge_agent.model import Frame
    from edge_agent.recorder import Recorder
    from edge_agent.store import StoreWriter

    cfg = load(station)
    clock = SystemClock(boot_id="b")
    store = StoreWriter.open(cfg.agent.db_path)
    cuff = blood_pressure.encode_measurement(Decimal(150), Decimal(95), Decimal(113))
    monitor_line = b"11/22/26 10:00:05 SPO2=097% BPM=072"
    from device_drivers.serial.masimo import decode_line

    def frame(device: str, driver: str, data: bytes) -> Frame:
        return Frame(device, driver, data, clock.wall_ns(), clock.mono_ns(), "b")

    recorder = Recorder(store)
    held = recorder.record(frame("cuff-1", "ble-bp", cuff), blood_pressure.decode_measurement)
    assert held.raw_frame_id is not None
    sent = recorder.record(frame("monitor-1", "masimo-ascii", monitor_line), decode_line)
    counts = store.outbox.counts()
    assert (counts["held"], counts["pending"]) == (1, 1)  # the monitor's goes up regardless
    assert [r.id for r in store.outbox.due(clock.wall_ns(), 10)] == [sent.message_id]
    store.close()

    rows = [json.loads(x) for x in cli(station, "readings", "unassigned").stdout.splitlines()]
    assert [(r["frame_id"], r["device_id"]) for r in rows] == [(held.raw_frame_id, "cuff-1")]
    assert rows[0]["readings"][0] == {
        "metric": "MDC_PRESS_BLD_NONINV_SYS",
        "value": "150",
        "unit": "MDC_DIM_MMHG",
        "time": None,
    }
    nid = "11010519491231002X"
    bad = cli(station, "readings", "assign", "--national-id", nid, str(held.raw_frame_id))
    assert bad.returncode == 2 and "not registered" in bad.stderr.splitlines()[-1]
    assert cli(station, "patients", "add", "--national-id", nid, "--name", "王秀英").returncode == 0
    ok = cli(station, "readings", "assign", "--national-id", nid, str(held.raw_frame_id), "999")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"assigned": 1}
    store = StoreWriter.open(cfg.agent.db_path)
    try:
        assert store.outbox.counts()["held"] == 0
        bound = store.frames.observations(held.raw_frame_id)
        assert all(o.encounter_id is not None for o in bound)
        open_visit = store.patients.current_encounter("cuff-1")
        assert open_visit is None  # the recorded visit is closed: later readings still wait
    finally:
        store.close()


# --- vendor quirks behind a standard driver id ----------------------------------------------


def test_a_berrymed_oximeter_is_ble_plx_cont_with_its_quirk() -> None:
    from device_drivers.ble import berrymed
    from edge_agent.config import DeviceConfig
    from edge_agent.devices import runtime_for

    runtime = runtime_for(
        DeviceConfig(id="spo2-1", driver="ble-plx-cont", address=ADDRESS, model="berrymed")
    )
    assert isinstance(runtime.transport, BleTransport)
    assert runtime.transport._characteristics == berrymed.CHARACTERISTICS
    decode = runtime.decoder_for(berrymed.NOTIFY_UUID)
    stream = b"".join(berrymed.encode_packet(97, 72 + i, 50 + i) for i in range(6))
    first = decode(stream[:13])  # notifications split packets anywhere
    rest = decode(stream[13:])
    waves = first.waveforms + rest.waveforms
    assert sum(len(w.samples) for w in waves) == 6  # no sample lost at the split
    rates = [
        r.value for d in (first, rest) for r in d.readings if r.metric == "MDC_PULS_OXIM_PULS_RATE"
    ]
    assert rates[-1] == 77
    # Each device has its own framer: another oximeter's stream does not mix in.
    other = runtime_for(
        DeviceConfig(
            id="spo2-2", driver="ble-plx-cont", address="AA:BB:CC:DD:EE:01", model="berrymed"
        )
    ).decoder_for(berrymed.NOTIFY_UUID)
    assert other(stream[:5]).readings


def test_an_unknown_quirk_is_a_config_error() -> None:
    from edge_agent.config import ConfigError, parse

    text = (
        '[agent]\nid = "a"\n[uplink]\nbroker = "mqtt://localhost"\nallow_insecure = true\n'
        f'[[device]]\nid = "s"\ndriver = "ble-plx-cont"\naddress = "{ADDRESS}"\nmodel = "acme"\n'
    )
    with pytest.raises(
        ConfigError, match=r"'acme' is not a quirk of ble-plx-cont \(known: berrymed\)"
    ):
        parse(text)


def test_decode_cli_reads_a_spot_check() -> None:
    from decimal import Decimal

    from device_drivers.ble import pulse_oximeter

    frame = pulse_oximeter.encode_spot_check(Decimal(96), Decimal(70))
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "decode", "ble-plx-spot", frame.hex()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    values = {json.loads(x)["metric"]: json.loads(x)["value"] for x in result.stdout.splitlines()}
    assert values == {"MDC_PULS_OXIM_SAT_O2": 96.0, "MDC_PULS_OXIM_PULS_RATE": 70.0}


# --- a device replaying its memory ---------------------------------------------------------


def test_a_replayed_time_stamped_reading_is_recorded_once(tmp_path: Path) -> None:
    import datetime as dt
    from decimal import Decimal

    from device_drivers.ble import blood_pressure
    from device_drivers.registry import driver
    from edge_agent.clock import SystemClock
    from edge_agent.model import Frame
    from edge_agent.recorder import Recorder
    from edge_agent.store import StoreWriter

    cuff = driver("ble-bp").source
    assert isinstance(cuff, BlePeripheral)
    key = cuff.dedup_key
    assert key is not None
    stamped = blood_pressure.encode_measurement(
        Decimal(130), Decimal(85), Decimal(100), time=dt.datetime(2026, 11, 22, 8, 30)
    )
    plain = blood_pressure.encode_measurement(Decimal(130), Decimal(85), Decimal(100))
    uuid = blood_pressure.MEASUREMENT_UUID
    assert key(uuid, plain) is None  # two equal readings without a time may both be real
    clock = SystemClock(boot_id="b")
    store = StoreWriter.open(tmp_path / "a.sqlite3")
    recorder = Recorder(store)
    outcomes = [
        recorder.record(
            Frame(
                "cuff-1",
                "ble-bp",
                data,
                clock.wall_ns(),
                clock.mono_ns(),
                "b",
                dedup_key=key(uuid, data),
            ),
            blood_pressure.decode_measurement,
        ).outcome
        for data in (stamped, plain, stamped, plain)  # the cuff sends its memory again
    ]
    store.close()
    assert outcomes == ["decoded", "decoded", "duplicate", "decoded"]
