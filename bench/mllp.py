"""MLLP listener: what its connection limits cost, and what a flood of idle connections does.

1. Messages per CPU second (this process: the sender and the server side) over one
   connection through MllpListener (admission, idle timeout and
   message deadline on every read, ordered answers) against a bare asyncio server that
   does the same per-message work (frame, decide locally, build the ACK) with no
   connection management, in the same run. No store: the recorder is measured by
   bench/ingest.py.
2. A monitor's first ACK with no other connections, and after 1,000 idle connections
   from 250 loopback addresses (the listener holds 64).
3. CPU share of one core while the listener holds 64 idle connections.

    .venv/bin/python bench/mllp.py [--messages 2000] [--idle 1000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import platform
import resource
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_drivers.network.mllp import (
    MllpFramer,
    MllpListener,
    _local_outcome,
    ack_for,
    frame_message,
)
from device_drivers.simulators import mllp_monitor

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _no_store(data: bytes, channel: str | None, /, *, dedup_key: str | None = None) -> None:
    return None  # the listener decides AA/AE itself (what it does without commit tracking)


def _messages(n: int) -> list[bytes]:
    source = mllp_monitor.messages(seed=1)
    return [frame_message(next(source)[1]) for _ in range(n)]


async def _exchange(port: int, frames: list[bytes]) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framer = MllpFramer()
    started = time.process_time()  # CPU, not wall: the machine may be shared
    for frame in frames:
        writer.write(frame)
        await writer.drain()
        got: list[bytes] = []
        while not got:
            data = await reader.read(65536)
            if not data:
                raise RuntimeError("closed before the ACK")
            got = framer.feed(data)
    elapsed = time.process_time() - started
    writer.close()
    return len(frames) / elapsed


async def _bare_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    framer = MllpFramer()
    while data := await reader.read(65536):
        for frame in framer.feed(data):
            outcome, reason = _local_outcome(frame)
            writer.write(ack_for(frame, outcome, reason, now=dt.datetime.now().astimezone()))
            await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def _listening() -> AsyncIterator[MllpListener]:
    listener = MllpListener("127.0.0.1", 0)
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(_no_store, lambda s, d: None, stop))
    await asyncio.wait_for(listener.listening.wait(), 5)
    try:
        yield listener
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def throughput(n: int) -> tuple[float, float]:
    frames = _messages(n)
    server = await asyncio.start_server(_bare_server, "127.0.0.1", 0)
    bare_port = int(server.sockets[0].getsockname()[1])
    async with _listening() as listener:
        await _exchange(listener.port, frames[:100])  # warm-up, both
        await _exchange(bare_port, frames[:100])
        ours = await _exchange(listener.port, frames)
        bare = await _exchange(bare_port, frames)
    server.close()
    return ours, bare


async def _first_ack_ms(port: int) -> float:
    started = time.perf_counter()
    log = await asyncio.wait_for(
        mllp_monitor.run("127.0.0.1", port, seed=2, rate_hz=100, count=1), 30
    )
    if log.codes() != ["AA"]:
        raise RuntimeError(f"monitor got {log.codes()}")
    return (time.perf_counter() - started) * 1000


async def flood(idle: int, seconds: float) -> dict[str, float]:
    async with _listening() as listener:
        quiet_ms = await _first_ack_ms(listener.port)
        conns: list[Connection] = []
        started = time.perf_counter()
        for i in range(idle):
            source = f"127.0.2.{1 + i % 250}"
            conns.append(
                await asyncio.open_connection("127.0.0.1", listener.port, local_addr=(source, 0))
            )
        opened_s = time.perf_counter() - started
        flooded_ms = await _first_ack_ms(listener.port)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.perf_counter()
        await asyncio.sleep(seconds)  # the measurement window: 64 idle connections held
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        wall1 = time.perf_counter()
        held = listener.open_connections
        dropped = listener.dropped
        for _, writer in conns:
            writer.close()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "first_ack_quiet_ms": quiet_ms,
        "first_ack_flooded_ms": flooded_ms,
        "idle_opened_s": opened_s,
        "held": held,
        "dropped": dropped,
        "idle_cpu_share": cpu / (wall1 - wall0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    print(f"machine: {platform.machine()} python {platform.python_version()}")
    ours, bare = asyncio.run(throughput(args.messages))
    print(f"{'one connection, messages/CPU s':40}{'listener':>12}{'bare server':>14}{'ratio':>8}")
    print(f"{'ORU^R01 8 OBX, ACK after each':40}{ours:>12,.0f}{bare:>14,.0f}{ours / bare:>8.3f}")
    f = asyncio.run(flood(args.idle, args.seconds))
    print(f"monitor's first ACK, no other connections:   {f['first_ack_quiet_ms']:8.1f} ms")
    print(
        f"monitor's first ACK after {args.idle} idle connections: "
        f"{f['first_ack_flooded_ms']:8.1f} ms (ratio {f['first_ack_flooded_ms'] / f['first_ack_quiet_ms']:.2f});"
        f" {args.idle} opened in {f['idle_opened_s']:.2f} s, {f['held']:.0f} held,"
        f" {f['dropped']:.0f} dropped"
    )
    print(f"64 idle connections held: {f['idle_cpu_share'] * 100:.2f} % of one core")
    print(
        json.dumps(
            {
                "messages_per_cpu_s": round(ours),
                "bare_messages_per_cpu_s": round(bare),
                "ratio": round(ours / bare, 3),
                **{k: round(v, 4) for k, v in f.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
