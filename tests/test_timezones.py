"""Device time zones and device clocks (issue 11), through the real recorder, store and
HL7 writer, with real decoders fed bytes written from the formats' public descriptions.

- An explicit UTC offset (an HL7 monitor's OBX-14 `+0000`) is honoured all the way up.
- A naive device time (a Masimo line, GATT Date Time) is read in `agent.timezone`.
- A device clock more than 5 minutes off the box's synchronised clock is flagged; the
  reading keeps both times; the message reports the box's time with the flag in OBX-8.
- The demo's simulators speak the configured zone whatever zone the machine runs in.
- `edge-agent status` counts RR, SBP and temperature in NEWS2 under any TZ.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import json
import os
import subprocess
import sys
import time
import zoneinfo
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers import registry
from edge_agent.clock import DEVICE_CLOCK_SKEW_FLAG, SystemClock
from edge_agent.model import Decoded, Frame
from edge_agent.recorder import Recorded, Recorder
from edge_agent.rules.engine import ClinicalRules
from edge_agent.store import StoreWriter
from sync.hl7.timestamps import parse_dtm
from sync.outbox_messages import build_message

AGENT = "amb-017"
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
ZONES = ["UTC", "America/New_York", "Asia/Shanghai"]


def mllp_decoder() -> Callable[[bytes], Decoded]:
    return registry.driver("hl7-mllp").decoders()(None)


def masimo_decoder() -> Callable[[bytes], Decoded]:
    return registry.driver("masimo-ascii").decoders()(None)


class Box:
    def __init__(
        self, path: Path, *, tz: str = "Asia/Shanghai", synchronised: bool = False
    ) -> None:
        self.store = StoreWriter.open(path)
        self.clock = SystemClock.create()
        self.tz = tz
        self.recorder = Recorder(
            self.store,
            rules=ClinicalRules(news2_window_s=900, tz=tz),
            tz=tz,
            clock_synchronised=lambda: synchronised,
        )

    def record(
        self,
        device: str,
        driver: str,
        data: bytes,
        decoder: Callable[[bytes], Decoded],
        *,
        wall_ns: int | None = None,
    ) -> Recorded:
        frame = Frame(
            device,
            driver,
            data,
            wall_ns if wall_ns is not None else self.clock.wall_ns(),
            self.clock.mono_ns(),
            "boot",
        )
        return self.recorder.record(frame, decoder)

    def message(self, recorded: Recorded) -> str:
        assert recorded.message_id is not None
        row = self.store.outbox.get(recorded.message_id)
        assert row is not None
        text = build_message(
            self.store, row, agent_id=AGENT, tz=self.tz, now_wall_ns=self.clock.wall_ns()
        )
        parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True).validate()
        return text


def obx_rows(message: str) -> list[list[str]]:
    return [s.split("|") for s in message.split("\r") if s.startswith("OBX|")][1:]  # no MDS


def dtm(when: dt.datetime) -> str:
    offset = when.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{when:%Y%m%d%H%M%S}{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def monitor_message(control: str, when: dt.datetime, rows: list[tuple[str, str, str]]) -> bytes:
    """An IHE PCD-01 ORU^R01 as a monitor pushes it (IHE PCD-01), OBX-14 in `when`'s zone."""
    stamp = dtm(when)
    segments = [
        f"MSH|^~\\&|MON^00A037009B000001^EUI-64||||{stamp}||ORU^R01^ORU_R01|{control}|P|2.6"
        "|||AL|NE||UNICODE UTF-8",
        f"OBR|1|||182777000^monitoring of patient^SCT|||{stamp}",
    ]
    for n, (code, value, unit) in enumerate(rows, start=1):
        segments.append(f"OBX|{n}|NM|{code}||{value}|{unit}|||||F|||{stamp}")
    return ("\r".join(segments) + "\r").encode("utf-8")


RR = ("151562^MDC_RESP_RATE^MDC", "18", "264928^MDC_DIM_RESP_PER_MIN^MDC")
SBP = ("150021^MDC_PRESS_BLD_NONINV_SYS^MDC", "124", "266016^MDC_DIM_MMHG^MDC")
TEMP = ("150364^MDC_TEMP_BODY^MDC", "36.8", "268192^MDC_DIM_DEGC^MDC")
SPO2 = ("150456^MDC_PULS_OXIM_SAT_O2^MDC", "97", "262688^MDC_DIM_PERCENT^MDC")


def masimo_line(when: dt.datetime) -> bytes:
    """A Radical-7 serial line (Masimo operator's manual, ASCII 1 output): the monitor's
    own naive wall clock, no zone."""
    return (
        f"{when:%m/%d/%y %H:%M:%S} SPO2=097% BPM=072 PI=01.20 SPCO=--.-% SPMET=--.-%"
        " DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000000\r\n"
    ).encode("ascii")


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = Box(tmp_path / "agent.db")
    yield b
    b.store.close()


# --- device time zones -------------------------------------------------------------------


def test_a_monitors_explicit_utc_offset_goes_upstream_unshifted(box: Box) -> None:
    """The issue's case: OBX-14 `20261203084600+0000` is 16:46 in Shanghai. It went up
    as `20261203084600+0800`, 8 hours wrong."""
    when = dt.datetime(2026, 12, 3, 8, 46, tzinfo=dt.UTC)
    recorded = box.record("mllp-1", "hl7-mllp", monitor_message("T1", when, [SPO2]), mllp_decoder())
    (row,) = obx_rows(box.message(recorded))
    assert parse_dtm(row[14]) == when  # the same instant, whatever offset it is written in
    assert recorded.raw_frame_id is not None
    stored = box.store.frames.observations(recorded.raw_frame_id)[0].device_time
    assert stored == "2026-12-03T08:46:00+00:00"  # the offset is kept in the store too


@pytest.mark.parametrize("tz", ["Asia/Shanghai", "America/New_York", "Asia/Kolkata"])
def test_a_naive_device_time_is_read_in_agent_timezone(tmp_path: Path, tz: str) -> None:
    local = dt.datetime(2026, 12, 3, 16, 43, 0)  # the monitor's clock, no zone
    b = Box(tmp_path / "agent.db", tz=tz)
    try:
        recorded = b.record("monitor-1", "masimo-ascii", masimo_line(local), masimo_decoder())
        rows = obx_rows(b.message(recorded))
    finally:
        b.store.close()
    assert rows and all(
        parse_dtm(r[14]) == local.replace(tzinfo=zoneinfo.ZoneInfo(tz)) for r in rows
    )


OFFSETS = st.integers(-12 * 4, 14 * 4).map(lambda quarters: dt.timedelta(minutes=15 * quarters))


@settings(max_examples=40, deadline=None)
@given(
    st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2099, 12, 31)).map(
        lambda d: d.replace(microsecond=0)
    ),
    OFFSETS,
)
def test_any_explicit_offset_keeps_its_instant_through_store_and_message(
    tmp_path_factory: pytest.TempPathFactory, naive: dt.datetime, offset: dt.timedelta
) -> None:
    """Property: whatever offset the monitor writes, what is stored and what goes up name
    the instant the monitor meant."""
    when = naive.replace(tzinfo=dt.timezone(offset))
    b = Box(tmp_path_factory.mktemp("tz") / "agent.db")
    try:
        recorded = b.record(
            "mllp-1", "hl7-mllp", monitor_message("P1", when, [SPO2]), mllp_decoder()
        )
        assert recorded.raw_frame_id is not None
        stored = b.store.frames.observations(recorded.raw_frame_id)[0].device_time
        (row,) = obx_rows(b.message(recorded))
    finally:
        b.store.close()
    assert stored is not None and dt.datetime.fromisoformat(stored) == when
    assert dt.datetime.fromisoformat(stored).utcoffset() == offset
    assert parse_dtm(row[14]) == when


# --- device clocks against the box's -------------------------------------------------------


def test_a_skewed_monitor_clock_is_flagged_and_keeps_both_times(tmp_path: Path) -> None:
    """Box clock synchronised; the monitor's clock 8 hours behind (a UTC clock read as
    local): flagged, not shifted; the message carries the box's time and the flag."""
    b = Box(tmp_path / "agent.db", synchronised=True)
    try:
        received_ns = b.clock.wall_ns()
        wrong = dt.datetime.fromtimestamp(received_ns / 1e9, SHANGHAI) - dt.timedelta(hours=8)
        naive_wrong = wrong.replace(tzinfo=None, microsecond=0)
        recorded = b.record(
            "monitor-1",
            "masimo-ascii",
            masimo_line(naive_wrong),
            masimo_decoder(),
            wall_ns=received_ns,
        )
        assert recorded.raw_frame_id is not None
        observations = b.store.frames.observations(recorded.raw_frame_id)
        rows = obx_rows(b.message(recorded))
    finally:
        b.store.close()
    assert observations and all(DEVICE_CLOCK_SKEW_FLAG in o.flags for o in observations)
    assert {o.device_time for o in observations} == {naive_wrong.isoformat()}  # device's
    assert {o.received_wall_ns for o in observations} == {received_ns}  # and the box's
    for row in rows:
        assert DEVICE_CLOCK_SKEW_FLAG in row[8].split("~")
        assert abs(parse_dtm(row[14]).timestamp() - received_ns / 1e9) < 1


def test_skew_is_judged_only_on_a_synchronised_box_and_within_five_minutes(tmp_path: Path) -> None:
    unsynced = Box(tmp_path / "a.db", synchronised=False)
    synced = Box(tmp_path / "b.db", synchronised=True)
    try:
        now_ns = synced.clock.wall_ns()
        local = dt.datetime.fromtimestamp(now_ns / 1e9, SHANGHAI).replace(tzinfo=None)
        hours_off = masimo_line((local - dt.timedelta(hours=8)).replace(microsecond=0))
        four_min = masimo_line((local - dt.timedelta(minutes=4)).replace(microsecond=0))
        cases = [
            (unsynced, hours_off, False),  # cannot tell whose clock is wrong: not flagged
            (synced, four_min, False),  # within 5 minutes: a drifting clock, believed
            (synced, hours_off, True),
        ]
        for target, line, flagged in cases:
            rec = target.record("monitor-1", "masimo-ascii", line, masimo_decoder(), wall_ns=now_ns)
            assert rec.raw_frame_id is not None
            got = target.store.frames.observations(rec.raw_frame_id)
            assert {DEVICE_CLOCK_SKEW_FLAG in o.flags for o in got} == {flagged}
    finally:
        unsynced.store.close()
        synced.store.close()


def test_an_old_time_from_a_meters_memory_is_not_skew_but_a_future_one_is(tmp_path: Path) -> None:
    """A glucose meter hands over yesterday's results (Bluetooth SIG Glucose Profile,
    Record Access Control Point): old is normal; a time ahead of the box is a wrong clock."""
    from device_drivers.ble.glucose import MEASUREMENT_UUID

    b = Box(tmp_path / "agent.db", synchronised=True)
    decoder = registry.driver("ble-glucose").decoders()(MEASUREMENT_UUID)
    try:
        now_ns = b.clock.wall_ns()
        local = dt.datetime.fromtimestamp(now_ns / 1e9, SHANGHAI).replace(tzinfo=None)
        flags = []
        for seq, when in ((1, local - dt.timedelta(hours=20)), (2, local + dt.timedelta(hours=4))):
            rec = b.record(
                "glucose-1", "ble-glucose", glucose_record(seq, when), decoder, wall_ns=now_ns
            )
            assert rec.raw_frame_id is not None
            flags.append(
                {
                    DEVICE_CLOCK_SKEW_FLAG in o.flags
                    for o in b.store.frames.observations(rec.raw_frame_id)
                }
            )
    finally:
        b.store.close()
    assert flags == [{False}, {True}]


def glucose_record(sequence: int, when: dt.datetime) -> bytes:
    """A Glucose Measurement (0x2A18, GLS v1.0 §3.106): flags 0x02 (concentration and
    type-sample location present, kg/L), sequence, Date Time, 5.6 mmol/L ≈ 101 mg/dL as
    SFLOAT 101e-5 kg/L, capillary whole blood / finger."""
    t = when.replace(microsecond=0)
    return (
        bytes([0x02])
        + sequence.to_bytes(2, "little")
        + t.year.to_bytes(2, "little")
        + bytes([t.month, t.day, t.hour, t.minute, t.second])
        + (0xB000 | 101).to_bytes(2, "little")  # SFLOAT: exponent -5, mantissa 101
        + bytes([0x11])  # type 1 capillary whole blood, location 1 finger
    )


# --- the simulators speak the configured zone, whatever zone the machine is in -----------

_SIMULATOR_CLOCKS = r"""
import datetime as dt, json, zoneinfo
from device_drivers.simulators import masimo, mllp_monitor, datex, intellivue, ble_bp
from device_drivers.simulators import glucose_meter, ecg_cart
from device_drivers.serial.masimo import decode_line
from device_drivers.network.mllp import decode_message
from edge_agent.devices import local_clock_write
from device_drivers.ble.current_time import decode_current_time

tz = "Asia/Shanghai"
out = {}
line = next(masimo.lines(seed=1, tz=tz))
out["masimo"] = decode_line(line.rstrip(b"\r\n")).readings[0].device_time.isoformat()
_, text = next(mllp_monitor.messages(seed=1, tz=tz))
out["mllp"] = decode_message(text.encode()).readings[0].device_time.isoformat()
out["datex"] = datex.S5Monitor(tz=tz).monitor_time(0.0).isoformat()
out["intellivue"] = intellivue.Monitor(tz=tz)._clock.isoformat()
out["cuff"] = ble_bp.SimulatedCuff(tz=tz)._clock.isoformat()
meter = glucose_meter.SimulatedMeter(records=1, live=True, every_s=6 * 3600, tz=tz)
meter.measure()
from device_drivers.ble.glucose import decode_measurement
out["glucose_live"] = decode_measurement(meter.memory[-1].measurement).readings[0].device_time.isoformat()
out["ecg"] = ecg_cart.synthetic_12_lead(seconds=0.1, start=None).start_time.isoformat()
_, data = local_clock_write(tz)
out["clock_write"] = decode_current_time(data).time.isoformat()
print(json.dumps(out))
"""


@pytest.mark.parametrize("machine_tz", ["UTC", "America/New_York"])
def test_simulators_and_the_box_clock_write_speak_the_configured_zone(machine_tz: str) -> None:
    """On a machine whose TZ is not the station's, every simulated device clock (and the
    Current Time the box writes into BLE devices) shows Asia/Shanghai wall time."""
    env = {**os.environ, "TZ": machine_tz}
    result = subprocess.run(
        [sys.executable, "-c", _SIMULATOR_CLOCKS],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    clocks = json.loads(result.stdout)
    now = dt.datetime.now(SHANGHAI)
    for name in ("masimo", "mllp", "datex", "intellivue", "cuff", "glucose_live", "clock_write"):
        shown = dt.datetime.fromisoformat(clocks[name])
        instant = shown if shown.tzinfo else shown.replace(tzinfo=SHANGHAI)
        assert abs((instant - now).total_seconds()) < 60, (name, clocks[name])
    assert dt.datetime.fromisoformat(clocks["mllp"]).utcoffset() == dt.timedelta(hours=8)


# --- NEWS2 in `edge-agent status`, under several TZ values -------------------------------


@pytest.mark.parametrize("monitor_zone", ["UTC", "America/New_York", "Asia/Shanghai"])
@pytest.mark.parametrize("machine_tz", ZONES)
def test_status_news2_counts_rr_sbp_and_temperature_under_any_tz(
    tmp_path: Path, machine_tz: str, monitor_zone: str
) -> None:
    """A monitor stamping its own zone's offset (RR, SBP, temperature) and a Masimo
    with naive station time (SpO2, pulse), agent.timezone Asia/Shanghai, the CLI run
    under TZ=UTC, New York and Shanghai: all five parameters are in NEWS2."""
    data_dir = tmp_path / "agent"
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nid = "{AGENT}"\ndata_dir = "{data_dir}"\ntimezone = "Asia/Shanghai"\n'
        '[uplink]\nbroker = "mqtt://127.0.0.1:1"\nallow_insecure = true\n',
        encoding="utf-8",
    )
    b = Box(data_dir / "edge-agent.sqlite3")
    try:
        now_ns = time.time_ns()
        monitor_now = dt.datetime.fromtimestamp(now_ns / 1e9, zoneinfo.ZoneInfo(monitor_zone))
        b.record(
            "mllp-1",
            "hl7-mllp",
            monitor_message("N1", monitor_now.replace(microsecond=0), [RR, SBP, TEMP]),
            mllp_decoder(),
            wall_ns=now_ns,
        )
        station_now = dt.datetime.fromtimestamp(now_ns / 1e9, SHANGHAI).replace(tzinfo=None)
        b.record(
            "monitor-1",
            "masimo-ascii",
            masimo_line(station_now.replace(microsecond=0)),
            masimo_decoder(),
            wall_ns=now_ns,
        )
    finally:
        b.store.close()
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "status", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "TZ": machine_tz},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    news2 = json.loads(result.stdout)["news2"]
    present = {name for name, part in news2["parts"].items() if part["score"] is not None}
    assert {"respiration_rate", "systolic_bp", "temperature", "spo2", "pulse"} <= present, news2


# --- is the box's own clock synchronised? ------------------------------------------------


class _Timex(ctypes.Structure):
    """glibc's struct timex head (sys/timex.h), enough to read `status`."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("rest", ctypes.c_char * 400),
    ]


STA_UNSYNC = 0x0040  # sys/timex.h: "clock unsynchronized"


def test_the_kernel_says_whether_the_box_clock_is_synchronised() -> None:
    """adjtimex(2) read-only: an unsynchronised clock (STA_UNSYNC set, as in a box no NTP
    client has disciplined) is never taken for a synchronised one."""
    from edge_agent.clock import kernel_clock_synchronised

    timex = _Timex()
    state = ctypes.CDLL(None).adjtimex(ctypes.byref(timex))
    assert state >= 0
    assert kernel_clock_synchronised() == (not timex.status & STA_UNSYNC and state != 5)


def test_the_synchronisation_state_is_asked_at_most_every_ten_seconds() -> None:
    from edge_agent.clock import ClockSync

    asked: list[bool] = []
    now = [100.0]

    def probe() -> bool:
        asked.append(True)
        return len(asked) % 2 == 1  # the kernel's answer changes between asks

    sync = ClockSync(probe=probe, monotonic=lambda: now[0])
    assert all(sync() for _ in range(100)) and len(asked) == 1
    now[0] += 9.9
    assert sync() and len(asked) == 1
    now[0] += 0.1
    assert not sync() and len(asked) == 2
