"""Decode of a capture is what the live path records; line noise is never a reading.

Real parts: pseudo-terminals, the daemon's own device set-up (devices.runtime_for:
registry line settings, framer, conversation) and Agent (serial transport, group commits,
recorder, bounded quarantine) on a real SQLite file; `edge-agent decode --file` as a
subprocess. The hypothesis property runs the same framer + recorder pipeline in process,
with reads split anywhere, into a real store.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import TypedDict

import pytest
from box_keys import init_keys_in
from hypothesis import given, settings
from hypothesis import strategies as st
from waiting import until

from device_drivers import capture, registry
from device_drivers.serial import datex, nonin, scale
from device_drivers.serial.intellivue import encode_frame as intellivue_frame
from device_drivers.serial.intellivue import messages as msg
from device_drivers.serial.port import SerialTransport
from device_drivers.simulators import masimo as masimo_sim
from device_drivers.simulators import nonin as nonin_sim
from device_drivers.simulators.datex import S5Monitor
from device_drivers.simulators.pty import open_pty, write_within
from edge_agent import quarantine
from edge_agent.clock import SystemClock
from edge_agent.config import DeviceConfig, embedded_defaults
from edge_agent.daemon import bootstrap
from edge_agent.devices import runtime_for
from edge_agent.model import Frame
from edge_agent.recorder import PROGRESS_FLAG, Decoder, Recorder
from edge_agent.store import StoreWriter

SERIAL_DRIVERS = sorted(d.id for d in registry.DRIVERS.values() if d.transport == "serial")
START = dt.datetime(2026, 11, 22, 10, 0, 0)


def _intellivue(hr: int) -> bytes:
    value = msg.nu_obs_value(0x4182, 0x0AA0, Decimal(hr))  # HR, bpm
    result = msg.poll_result(
        5,
        hr,
        msg.NOM_MOC_VMO_METRIC_NU,
        [(0, [(0x10, [(msg.NOM_ATTR_NU_VAL_OBS, value)])])],
        abs_time=START,
    )
    return intellivue_frame(result)


def good_frames(driver: str, count: int, seed: int = 1) -> list[bytes]:
    """`count` whole frames as the device puts them on the wire."""
    rng = random.Random(seed)
    if driver.startswith("nonin-"):
        fmt = int(driver[-1])
        return list(itertools.islice(nonin_sim.packets(fmt, seed=seed), count))
    if driver == "masimo-ascii":
        return list(itertools.islice(masimo_sim.lines("radical-7", seed, START), count))
    if driver == "scale-ascii":
        return [
            scale.encode_line(
                Decimal(rng.randrange(400, 1200)) / 10, Decimal(rng.randrange(1500, 1900)) / 10
            )
            for _ in range(count)
        ]
    if driver == "datex-s5":
        monitor = S5Monitor(seed=seed)
        return [datex.encode_frame(monitor.displayed_record(8, 5.0 * i)) for i in range(count)]
    assert driver == "intellivue"
    return [_intellivue(rng.randrange(50, 130)) for _ in range(count)]


def dirty_stream(driver: str, seed: int = 2) -> bytes:
    """Garbage in front, frames, damaged frames, noise between, a partial frame at the end."""
    rng = random.Random(seed)
    # DF8 is trusted after 5 records in a row: runs of them; the others one frame a unit
    run = nonin.DF8_TRUSTED_RUN if driver == "nonin-df8" else 1
    frames = good_frames(driver, 12 * run, seed)
    units = [b"".join(frames[i : i + run]) for i in range(0, len(frames), run)]
    out = bytearray(rng.randbytes(37))
    for i, unit in enumerate(units[:-1]):
        if i % 4 == 2:
            at = rng.randrange(len(unit))
            out += unit[:at] + bytes([unit[at] ^ 0x84]) + unit[at + 1 :]
        elif i % 4 == 3:
            out += rng.randbytes(rng.randrange(1, 300)) + unit
        else:
            out += unit
    out += units[-1][: len(units[-1]) // 2]
    return bytes(out)


class ReadingLine(TypedDict):
    """A reading as the decode CLI prints it (Reading.as_json, docs/contracts.md "CLI")."""

    metric: str
    value: float | None
    unit: str
    time: str | None
    flags: list[str]


def cli_decode(driver: str, path: Path) -> tuple[int, list[ReadingLine], list[str]]:
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "decode", driver, "--file", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return result.returncode, [r for r in rows if "metric" in r], result.stderr.splitlines()


def stored_readings(db: Path) -> list[ReadingLine]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT metric, value, unit, device_time, flags FROM observation ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    return [
        {
            "metric": metric,
            "value": None if value is None else float(Decimal(value)),
            "unit": unit,
            "time": device_time,
            "flags": json.loads(flags),
        }
        for metric, value, unit, device_time, flags in rows
    ]


def counts(db: Path, device: str) -> dict[str, int]:
    conn = sqlite3.connect(db)

    def one(sql: str, *args: str) -> int:
        try:
            return int(conn.execute(sql, args).fetchone()[0] or 0)
        except sqlite3.OperationalError:  # no tally table: the code before the fix
            return -1

    try:
        return {
            "frames": one("SELECT frames FROM device WHERE id = ?", device),
            "quarantined": one("SELECT quarantined FROM device WHERE id = ?", device),
            "observations": one("SELECT COUNT(*) FROM observation"),
            "alerts": one("SELECT COUNT(*) FROM alert"),
            "outbox": one("SELECT COUNT(*) FROM outbox"),
            "raw_frames": one("SELECT COUNT(*) FROM raw_frame"),
            "quarantine_rows": one("SELECT COUNT(*) FROM quarantine"),
            "rejected_bytes": one("SELECT SUM(bytes) FROM quarantine_tally"),
        }
    finally:
        conn.close()


def device_state(db: Path, device: str) -> tuple[str, str]:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT state, state_detail FROM device WHERE id = ?", (device,)
        ).fetchone()
    finally:
        conn.close()
    return ("", "") if row is None else (str(row[0]), str(row[1] or ""))


class Box:
    """The daemon (edge_agent.daemon.Agent, as bootstrap builds it) on one pty device."""

    def __init__(self, tmp_path: Path, driver: str) -> None:
        self.master_fd, slave = open_pty()
        os.set_blocking(self.master_fd, False)
        self.config = embedded_defaults(data_dir=tmp_path / "data", broker="mqtt://127.0.0.1:1")
        self.device = "dev-1"
        runtime = runtime_for(DeviceConfig(id=self.device, driver=driver, port=slave))
        assert isinstance(runtime.transport, SerialTransport)
        runtime.transport.settings.rtscts = False  # a pty has no RTS/CTS lines (Datex)
        init_keys_in(self.config.agent.data_dir)
        self.agent = bootstrap(self.config, devices=[runtime])
        self.db = self.config.agent.db_path
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Box:
        self.task = asyncio.create_task(self.agent.run(self.stop))
        await until(lambda: device_state(self.db, self.device)[0] == "connected", 10)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 20)
        self.agent.store.close()
        os.close(self.master_fd)

    async def write(self, data: bytes) -> None:
        await write_within(self.master_fd, data, self.stop, give_up_s=120)


# --- 1 MiB of line noise on a DF8 port (issue 11) -------------------------------------------


async def test_a_mebibyte_of_noise_on_a_df8_port_records_nothing(tmp_path: Path) -> None:
    """Before: 22 492 "valid" records, 50 484 alerts, ~124 000 outbox rows, ~150 MB."""
    noise = random.Random(11).randbytes(1 << 20)
    held_at_most = 4 * 5 + 128  # a DF8 framer holds an untrusted run and a noise piece
    async with Box(tmp_path, "nonin-df8") as box:
        await box.write(noise)

        def done() -> bool:
            now = counts(box.db, box.device)
            return now["observations"] > 0 or now["rejected_bytes"] >= len(noise) - held_at_most

        await until(done, 120)
    got = counts(box.db, box.device)
    assert (got["observations"], got["alerts"], got["outbox"]) == (0, 0, 0), got
    assert got["rejected_bytes"] >= len(noise) - held_at_most, got  # all of it was read
    # every piece counted, a bounded few kept with their bytes (the run takes seconds:
    # the first ones and at most one minute's sample)
    assert got["quarantined"] == got["frames"] >= len(noise) // 128 - 1
    assert got["raw_frames"] == got["quarantine_rows"] <= quarantine.KEEP_FIRST + 2
    state, detail = device_state(box.db, box.device)
    assert state == "rejecting"
    assert detail.startswith("wrong driver or baud rate: ")
    db_bytes = sum(p.stat().st_size for p in box.db.parent.glob(box.db.name + "*"))
    assert db_bytes < 2 * 1024 * 1024  # was ~150 MB


async def test_the_verdict_clears_when_good_records_return(tmp_path: Path) -> None:
    records = good_frames("nonin-df8", 8, seed=3)
    async with Box(tmp_path, "nonin-df8") as box:
        await box.write(random.Random(5).randbytes(20_000))
        await until(lambda: device_state(box.db, box.device)[0] == "rejecting", 20)
        assert device_state(box.db, box.device)[0] == "rejecting"
        await box.write(b"".join(records))
        await until(lambda: counts(box.db, box.device)["observations"] == 16, 20)
        await until(lambda: device_state(box.db, box.device)[0] == "connected", 5)
    assert counts(box.db, box.device)["observations"] == 16  # 8 records: HR and SpO2 each
    assert device_state(box.db, box.device)[0] == "connected"


# --- the same capture: CLI and daemon ---------------------------------------------------------


@pytest.mark.parametrize("driver", SERIAL_DRIVERS)
async def test_decode_of_a_capture_is_what_the_daemon_records(driver: str, tmp_path: Path) -> None:
    stream = dirty_stream(driver)
    path = tmp_path / "capture.bin"
    path.write_bytes(stream)
    status, readings, errors = cli_decode(driver, path)
    assert status == 0, errors
    assert readings
    rejected = [e for e in errors if "frame" in e and "partial frame" not in e]
    assert rejected and "partial frame" in errors[-1]  # the capture is dirty, as meant
    pieces = capture.read_file(driver, stream).pieces
    async with Box(tmp_path, driver) as box:
        await box.write(stream)
        await until(lambda: counts(box.db, box.device)["frames"] >= len(pieces), 30)
    got = counts(box.db, box.device)
    assert got["frames"] == len(pieces)
    assert got["quarantined"] == len([p for p in pieces if p.error is not None])
    assert stored_readings(box.db) == [r for r in readings if PROGRESS_FLAG not in r["flags"]]


# --- hypothesis: the pipeline the daemon runs, reads split anywhere ---------------------------


def pools() -> dict[str, list[bytes]]:
    return {d: good_frames(d, 6 if d != "nonin-df8" else 12, seed=7) for d in SERIAL_DRIVERS}


POOLS = pools()


@st.composite
def captures(draw: st.DrawFn, driver: str) -> tuple[bytes, list[bytes]]:
    pool = POOLS[driver]
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(["good", "good", "good", "damaged", "cut", "junk"]))
        frame = pool[draw(st.integers(0, len(pool) - 1))]
        if driver == "nonin-df8" and kind == "good":
            frame = b"".join(pool[:5]) if draw(st.booleans()) else frame
        if kind == "damaged":
            at = draw(st.integers(0, len(frame) - 1))
            frame = frame[:at] + bytes([frame[at] ^ draw(st.integers(1, 255))]) + frame[at + 1 :]
        elif kind == "cut":
            frame = frame[: draw(st.integers(0, len(frame)))]
        elif kind == "junk":
            frame = draw(st.binary(max_size=80))
        parts.append(frame)
    stream = b"".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    return stream, [stream[a:b] for a, b in itertools.pairwise([0, *cuts, len(stream)])]


def live(driver: str, reads: list[bytes], db: Path) -> list[ReadingLine | dict[str, int]]:
    """What the daemon does with these reads: the transport's framer loop (one framer per
    connection), the device's decoder, group commits through the recorder."""
    spec = registry.driver(driver)
    framer = spec.framer()
    decoder = spec.decoders(None, None)(None)
    clock = SystemClock(boot_id="b")
    store = StoreWriter.open(db)
    try:
        recorder = Recorder(store)
        batch: list[tuple[Frame, Decoder]] = []
        for data in reads:
            for piece in framer.feed(data):
                batch.append(
                    (Frame("dev-1", driver, piece, clock.wall_ns(), clock.mono_ns(), "b"), decoder)
                )
            recorder.record_many(batch)
            batch = []
        return [
            *stored_readings(db),
            {"quarantined": store.quarantine.count()},
        ]
    finally:
        store.close()


@pytest.mark.parametrize("driver", SERIAL_DRIVERS)
@settings(max_examples=25)
@given(data=st.data())
def test_decode_of_a_capture_gives_exactly_what_the_live_path_records(
    driver: str, data: st.DataObject
) -> None:
    stream, reads = data.draw(captures(driver))
    result = capture.read(driver, [stream])
    expected = [
        r.as_json()
        for p in result.decoded
        if p.decoded is not None  # Capture.decoded: the pieces that decoded
        for r in p.decoded.readings
        if PROGRESS_FLAG not in r.flags
    ]
    with tempfile.TemporaryDirectory() as tmp:
        got = live(driver, reads, Path(tmp) / "agent.sqlite3")
    assert got == [*expected, {"quarantined": len(result.rejected)}]
