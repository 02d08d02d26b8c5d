"""Monitors: one agent process reading 8 simulated monitors with ECG + pleth waves at once.

The monitors run in a child process (their CPU is not ours) and talk their real
protocols over pseudo-terminals: IntelliVue (association, MDS create, extended polls of
numerics and waves) and Datex S/5 (displayed values, ECG + pleth wave requests). This
process runs the agent's real path: serial transports with conversations, framers, pure
decoders, the recorder's group commits into SQLite (WAL, synchronous=FULL); the uplink
is left out (its HL7 cost is measured by bench/uplink.py).

Reported: CPU share of one core, peak RSS, waveform samples/s stored, and CPU per stored
sample against the same segments inserted by raw sqlite3 executemany (same pragmas,
same commit grouping) in the same run: the ratio is samples per CPU second, agent over
raw inserts.

    .venv/bin/python bench/monitors.py [--intellivue 4] [--datex 4] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_drivers.simulators.pty import open_pty
from edge_agent.clock import SystemClock
from edge_agent.config import DeviceConfig, embedded_defaults
from edge_agent.daemon import Agent
from edge_agent.devices import runtime_for
from edge_agent.store import StoreWriter

_SIMULATORS = """
import asyncio, sys
from device_drivers.simulators import datex, intellivue

async def main(kinds_fds):
    stop = asyncio.Event()
    tasks = []
    for i, (kind, fd) in enumerate(kinds_fds):
        if kind == "intellivue":
            tasks.append(intellivue.run(fd, stop, seed=i))
        else:
            tasks.append(datex.run(fd, stop=stop, seed=i))
    await asyncio.gather(*tasks)

pairs = [a.split(":") for a in sys.argv[1:]]
asyncio.run(main([(k, int(fd)) for k, fd in pairs]))
"""


class _NoUplink:
    connected = False

    def start(self) -> None: ...

    def stop(self, **_: object) -> None: ...

    def publish(self, *_: object, **__: object) -> int:
        raise RuntimeError("no uplink in this bench")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_agent(
    workdir: Path, kinds: list[str], warmup_s: float, seconds: float
) -> dict[str, float]:
    pairs = [(kind, *open_pty()) for kind in kinds]
    child = subprocess.Popen(
        [sys.executable, "-c", _SIMULATORS, *(f"{k}:{m}" for k, m, _ in pairs)],
        pass_fds=[m for _, m, _ in pairs],
        cwd=Path(__file__).resolve().parents[1],
    )
    for _, master, _ in pairs:
        os.close(master)  # the child holds them now
    config = embedded_defaults(data_dir=workdir, broker="mqtt://127.0.0.1:1")
    prefix = {"intellivue": "mp", "datex-s5": "s5"}
    devices = [
        runtime_for(DeviceConfig(id=f"{prefix[k]}-{i}", driver=k, port=slave))
        for i, (k, _, slave) in enumerate(pairs)
    ]
    store = StoreWriter.open(config.agent.db_path)
    agent = Agent(config, store, SystemClock.create(), devices, lambda _on_event: _NoUplink())
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await asyncio.sleep(warmup_s)
        samples0 = store.frames.waveform_stats()["samples"]
        cpu0, wall0 = _cpu_s(), time.perf_counter()
        rss_peak = _rss_mb()
        end = wall0 + seconds
        while time.perf_counter() < end:
            await asyncio.sleep(1.0)
            rss_peak = max(rss_peak, _rss_mb())
        cpu1, wall1 = _cpu_s(), time.perf_counter()
        samples1 = store.frames.waveform_stats()["samples"]
        frames = store.conn.execute("SELECT COUNT(*) FROM raw_frame").fetchone()[0]
        readings = store.frames.observation_count()
    finally:
        stop.set()
        await task
        child.terminate()
        child.wait(timeout=10)
    store.close()
    return {
        "cpu_share": (cpu1 - cpu0) / (wall1 - wall0),
        "rss_mb": rss_peak,
        "samples_per_s": (samples1 - samples0) / (wall1 - wall0),
        "frames": frames,
        "readings": readings,
    }


def raw_baseline(agent_db: Path, workdir: Path, batch: int) -> float:
    """samples/s when the very same segments are inserted with plain sqlite3."""
    source = sqlite3.connect(agent_db)
    rows = source.execute(
        "SELECT raw_frame_id, device_id, metric, unit, rate_hz, scale, offset, sample_count,"
        " encoding, data, received_wall_ns FROM waveform_segment"
    ).fetchall()
    source.close()
    samples: int = sum(r[7] for r in rows)  # sample_count
    conn = sqlite3.connect(workdir / "raw.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE seg (raw_frame_id INTEGER, device_id TEXT, metric TEXT, unit TEXT,"
        " rate_hz REAL, scale TEXT, offset TEXT, sample_count INTEGER, encoding TEXT,"
        " data BLOB, received_wall_ns INTEGER)"
    )
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO seg VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows[i : i + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return samples / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--intellivue", type=int, default=4)
    parser.add_argument("--datex", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30)
    # Datex monitors are probed from interface level 11 down (~10 s to find level 8).
    parser.add_argument("--warmup", type=float, default=15)
    args = parser.parse_args()
    kinds = ["intellivue"] * args.intellivue + ["datex-s5"] * args.datex
    with tempfile.TemporaryDirectory(prefix="bench-monitors-") as tmp:
        workdir = Path(tmp)
        result = asyncio.run(run_agent(workdir, kinds, args.warmup, args.seconds))
        db = workdir / "edge-agent.sqlite3"
        segments = (
            sqlite3.connect(db).execute("SELECT COUNT(*) FROM waveform_segment").fetchone()[0]
        )
        # The same grouping as the agent: one commit per 200 ms of segments.
        per_commit = max(1, round(segments / (args.warmup + args.seconds) / 5))
        raw = raw_baseline(db, workdir, per_commit)
    print(
        f"machine: {platform.machine()} python {platform.python_version()} sqlite {sqlite3.sqlite_version}"
    )
    print(
        f"{len(kinds)} monitors ({args.intellivue} IntelliVue, {args.datex} Datex S/5) with ECG + pleth,"
        f" {args.seconds:g} s measured after {args.warmup:g} s warm-up; uplink not included"
    )
    print(f"CPU share of one core:   {result['cpu_share'] * 100:.1f} %  (target < 25 %)")
    print(f"peak RSS:                {result['rss_mb']:.0f} MB")
    print(f"wave samples stored/s:   {result['samples_per_s']:,.0f}")
    print(f"frames recorded: {result['frames']}, readings: {result['readings']}")
    ours_us = result["cpu_share"] / result["samples_per_s"] * 1e6
    raw_us = 1e6 / raw
    print(
        f"CPU per wave sample: agent {ours_us:.2f} us (read, frame, decode, numerics, store);"
        f" raw sqlite3 executemany of the same segments {raw_us:.3f} us"
    )
    print(f"ratio agent/raw (wave samples per CPU second): {raw_us / ours_us:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
