"""Line noise: 1 MiB of random bytes on each serial driver's port, through the daemon.

A port read with the wrong driver or at the wrong baud rate delivers noise all day. For
each serial driver this runs the real path (a pty, the daemon's device set-up and Agent:
serial transport, framer, decoder, recorder with its bounded quarantine, SQLite with WAL
and synchronous=FULL) on the same random bytes (fixed seed) and reports what was
recorded. Baseline, measured in the same run: the same framer's pieces each kept as a
raw row in a plain SQLite table (what an unbounded quarantine stores); the ratio is the
store's growth over the baseline's.

    .venv/bin/python bench/line_noise.py [--mib 1] [--seed 11] [--drivers nonin-df8,...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_drivers import registry
from device_drivers.serial.port import SerialTransport
from device_drivers.simulators.pty import open_pty, write_within
from edge_agent.config import DeviceConfig, embedded_defaults
from edge_agent.daemon import bootstrap
from edge_agent.devices import runtime_for
from edge_agent.store import StoreWriter

SERIAL = sorted(d.id for d in registry.DRIVERS.values() if d.transport == "serial")


def _size(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))


def baseline_bytes(driver: str, noise: bytes, work: Path) -> int:
    """The framer's pieces, every one kept as a row (the unbounded quarantine)."""
    pieces = registry.framer(driver).feed(noise)
    db = work / f"baseline-{driver}.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE raw_frame (id INTEGER PRIMARY KEY, data BLOB, reason TEXT)")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO raw_frame (data, reason) VALUES (?, ?)",
        [(p, "a reason of some fifty characters, as decoders give") for p in pieces],
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return _size(db)


class Recorded(TypedDict):
    """What the daemon made of the noise: counts from its store."""

    frames: int
    readings: int
    alerts: int
    outbox: int
    kept: int
    counted: int
    state: str
    seconds: float


class NoiseRun(Recorded):
    growth: int  # bytes the store grew by, WAL checkpointed


async def through_the_daemon(driver: str, noise: bytes, work: Path) -> NoiseRun:
    master, slave = open_pty()
    os.set_blocking(master, False)
    config = embedded_defaults(data_dir=work / driver, broker="mqtt://127.0.0.1:1")
    runtime = runtime_for(DeviceConfig(id="dev-1", driver=driver, port=slave))
    assert isinstance(runtime.transport, SerialTransport)
    runtime.transport.settings.rtscts = False  # a pty has no RTS/CTS lines
    agent = bootstrap(config, devices=[runtime])
    db = config.agent.db_path
    empty = work / f"empty-{driver}.sqlite3"
    StoreWriter.open(empty).close()
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    await write_within(master, noise, stop, give_up_s=600)
    conn = sqlite3.connect(db)
    last, steady = -1, 0
    while steady < 20:  # recorded everything: the frame count still for 2 s
        await asyncio.sleep(0.1)
        frames = conn.execute("SELECT frames FROM device WHERE id = 'dev-1'").fetchone()[0]
        steady = steady + 1 if frames == last else 0
        last = frames
    seconds = time.perf_counter() - started - 2.0

    def one(sql: str) -> int:
        return int(conn.execute(sql).fetchone()[0] or 0)

    row: Recorded = {
        "frames": last,
        "readings": one("SELECT COUNT(*) FROM observation"),
        "alerts": one("SELECT COUNT(*) FROM alert"),
        "outbox": one("SELECT COUNT(*) FROM outbox"),
        "kept": one("SELECT COUNT(*) FROM quarantine"),
        "counted": one("SELECT SUM(frames - kept) FROM quarantine_tally"),
        "state": conn.execute("SELECT state FROM device WHERE id = 'dev-1'").fetchone()[0],
        "seconds": seconds,
    }
    conn.close()
    stop.set()
    await asyncio.wait_for(task, 60)
    agent.store.close()  # checkpoints the WAL: the size is the file's
    os.close(master)
    return {**row, "growth": _size(db) - _size(empty)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--drivers", default=",".join(SERIAL))
    args = parser.parse_args()
    noise = random.Random(args.seed).randbytes(int(args.mib * (1 << 20)))
    print(f"machine: {platform.machine()}  python {platform.python_version()}", end="")
    print(f" sqlite {sqlite3.sqlite_version}; {len(noise)} random bytes, seed {args.seed}")
    head = (
        f"{'driver':<13}{'frames':>8}{'readings':>9}{'alerts':>7}{'outbox':>7}{'kept':>6}"
        f"{'counted':>9}  {'state':<10}{'growth':>10}{'baseline':>11}{'ratio':>7}{'s':>6}"
    )
    print(head)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for driver in args.drivers.split(","):
            row = asyncio.run(through_the_daemon(driver, noise, work))
            base = baseline_bytes(driver, noise, work)
            growth = row["growth"]
            print(
                f"{driver:<13}{row['frames']:>8}{row['readings']:>9}{row['alerts']:>7}"
                f"{row['outbox']:>7}{row['kept']:>6}{row['counted']:>9}  {row['state']!s:<10}"
                f"{growth / 1e3:>8.0f}kB{base / 1e3:>9.0f}kB{growth / base:>7.3f}"
                f"{row['seconds']:>6.1f}"
            )


if __name__ == "__main__":
    main()
