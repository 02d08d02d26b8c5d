"""Ingest: readings/s through the recorder vs raw sqlite3 executemany of the same rows.

Both sides use the same pragmas (WAL, synchronous=FULL) and the same commit grouping
(`--batch` frames per durable commit), on files in the same directory, in the same run.
The recorder additionally writes the raw frame, the outbox row and the device counters,
and runs the decoder: the ratio says what that safety costs. A second recorder run adds
the clinical rules (follow-up thresholds, NEWS2 recomputed on every vital sign).

    .venv/bin/python bench/ingest.py [--frames 20000] [--batch 50] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_drivers import registry
from device_drivers.simulators.masimo import lines
from edge_agent.clock import SystemClock
from edge_agent.model import Frame
from edge_agent.recorder import Recorder
from edge_agent.rules.engine import ClinicalRules
from edge_agent.store import StoreWriter


def make_frames(n: int) -> list[bytes]:
    source = lines("radical-7", seed=7)
    return [next(source).rstrip(b"\r\n") for _ in range(n)]


def bench_recorder(
    path: Path, frames: list[bytes], batch: int, *, rules: bool = False
) -> tuple[float, int]:
    store = StoreWriter.open(path)
    recorder = Recorder(store, rules=ClinicalRules() if rules else None)
    start = time.perf_counter()
    readings = record_frames(recorder, frames, batch, "monitor-1", "masimo-ascii")
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed, readings


def record_frames(
    recorder: Recorder, frames: list[bytes], batch: int, device: str, driver: str
) -> int:
    """`frames` of one device through the recorder, `batch` a durable commit; readings."""
    clock = SystemClock.create()
    decode = registry.decoder(driver)
    readings = 0
    for i in range(0, len(frames), batch):
        items = [
            (Frame(device, driver, data, clock.wall_ns(), clock.mono_ns(), clock.boot_id), decode)
            for data in frames[i : i + batch]
        ]
        readings += sum(r.observations for r in recorder.record_many(items))
    return readings


def bench_raw(path: Path, frames: list[bytes], batch: int) -> tuple[float, int]:
    """The baseline: the same observation rows, pre-decoded, one executemany per batch."""
    decode = registry.decoder("masimo-ascii")
    rows_per_frame = [
        [(r.metric, None if r.value is None else str(r.value), r.unit) for r in decode(f).readings]
        for f in frames
    ]
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(
        "CREATE TABLE observation (id INTEGER PRIMARY KEY, device_id TEXT, metric TEXT, value TEXT,"
        " unit TEXT, received_wall_ns INTEGER)"
    )
    start = time.perf_counter()
    readings = 0
    for i in range(0, len(frames), batch):
        rows = [
            ("monitor-1", m, v, u, time.time_ns())
            for frame_rows in rows_per_frame[i : i + batch]
            for (m, v, u) in frame_rows
        ]
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO observation (device_id, metric, value, unit, received_wall_ns)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
        readings += len(rows)
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed, readings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=50, help="frames per durable commit")
    parser.add_argument(
        "--dir", default=None, help="where the database files go (default: a temp dir)"
    )
    args = parser.parse_args()
    frames = make_frames(args.frames)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        ours_s, ours_n = bench_recorder(Path(tmp) / "recorder.sqlite3", frames, args.batch)
        rules_s, rules_n = bench_recorder(
            Path(tmp) / "rules.sqlite3", frames, args.batch, rules=True
        )
        base_s, base_n = bench_raw(Path(tmp) / "raw.sqlite3", frames, args.batch)
    ours, base = ours_n / ours_s, base_n / base_s
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}"
        f" sqlite {sqlite3.sqlite_version}"
    )
    print(
        f"{args.frames} Masimo frames, {args.batch} frames per durable commit (WAL, synchronous=FULL)"
    )
    print(f"{'':28}{'readings/s':>14}{'readings':>10}{'seconds':>10}")
    print(f"{'recorder (decode+raw+outbox)':28}{ours:>14,.0f}{ours_n:>10}{ours_s:>10.2f}")
    rules = rules_n / rules_s
    print(f"{'  + clinical rules, NEWS2':28}{rules:>14,.0f}{rules_n:>10}{rules_s:>10.2f}")
    print(f"{'raw sqlite3 executemany':28}{base:>14,.0f}{base_n:>10}{base_s:>10.2f}")
    print(f"ratio recorder/raw: {ours / base:.2f}; with the rules: {rules / base:.2f}")


if __name__ == "__main__":
    main()
