"""12-lead wire budget: bytes on the wire vs raw int16, and delivery over 256 kbit/s.

A 10 s, 12-lead, 500 Hz ECG (the simulated cart's, 5 µV per unit) goes the real way:
recorded into a SQLite store, built into the ORU^R01 (NA rows), zlib-compressed by the
uplink, published over MQTT 5 through a TCP proxy on loopback that shapes the box's
upstream to 256 kbit/s (and adds a one-way delay, as a 4G link does), stored by the
county gateway from a real Mosquitto, and ACKed back. Printed:

- raw int16 size (12 x 5000 x 2 bytes) = the baseline, the ER7 text, the compressed
  payload, and the MQTT bytes that crossed the shaped link, each as a ratio to raw;
- seconds from "pending" to "delivered (ACK AA)" at 256 kbit/s, and the time the same
  bytes need at that rate (the floor);
- CPU to build and compress the message on this machine.

    .venv/bin/python bench/ecg_wire.py [--kbit 256] [--delay-ms 60] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_drivers.ecg.record import to_decoded
from device_drivers.simulators.ecg_cart import synthetic_12_lead
from edge_agent.clock import SystemClock
from edge_agent.local_broker import LocalBroker, free_port
from edge_agent.model import Frame
from edge_agent.recorder import Recorder
from edge_agent.store import StoreWriter
from sync import topics
from sync.gateway import keys as gateway_keys
from sync.gateway.service import Gateway
from sync.mqtt_link import LinkEvent, LinkSettings, MqttLink
from sync.outbox_messages import build_message
from sync.uplink import Link, Uplink, wire_payload

AGENT = "amb-bench"


class ShapedProxy:
    """TCP proxy: box -> broker at `rate_bps` with a one-way `delay_s`; back unshaped."""

    def __init__(self, target_port: int, rate_bps: float, delay_s: float) -> None:
        self.target_port = target_port
        self.rate = rate_bps / 8  # bytes per second
        self.delay_s = delay_s
        self.port = free_port()
        self.upstream_bytes = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(
                self._pump(reader, up_writer, shaped=True),
                self._pump(up_reader, writer, shaped=False),
                return_exceptions=True,
            )

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, shaped: bool
    ) -> None:
        if not shaped:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()
            return
        # Shaped: bytes leave at the link rate (the reader waits, so TCP backs off the
        # sender), and each chunk arrives `delay_s` after it left: a pipe, not a queue.
        loop = asyncio.get_running_loop()
        in_flight: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def deliver() -> None:
            while (item := await in_flight.get()) is not None:
                arrival, data = item
                await asyncio.sleep(max(0.0, arrival - loop.time()))
                dst.write(data)
                await dst.drain()
            dst.close()

        writer = asyncio.create_task(deliver())
        next_free = loop.time()
        try:
            while data := await src.read(1024):
                self.upstream_bytes += len(data)
                next_free = max(next_free, loop.time()) + len(data) / self.rate
                await asyncio.sleep(max(0.0, next_free - loop.time()))
                in_flight.put_nowait((next_free + self.delay_s, data))
        except ConnectionError:
            pass
        finally:
            in_flight.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer


async def deliver_once(broker: LocalBroker, proxy: ShapedProxy, workdir: Path) -> float:
    """Seconds from a pending 12-lead to its ACK AA, through the shaped link."""
    store = StoreWriter.open(workdir / "agent.sqlite3")
    clock = SystemClock.create()
    record = synthetic_12_lead(seed=7, stemi=False)
    with store.transaction():
        frame = Frame("cart-1", "ecg-scp", b"bench", clock.wall_ns(), clock.mono_ns(), "b")
        done = Recorder(store).record(frame, lambda _b: to_decoded(record))
    settings = LinkSettings(
        host="127.0.0.1",
        port=proxy.port,
        client_id=f"box-{workdir.name}",
        subscriptions=(topics.ack(AGENT), topics.down(AGENT)),
    )

    def factory(on_event: Callable[[LinkEvent], None]) -> Link:
        return MqttLink(settings, on_event)

    uplink = Uplink(store=store, link_factory=factory, agent_id=AGENT, clock=clock)
    stop = asyncio.Event()
    start = time.perf_counter()
    task = asyncio.create_task(uplink.run(stop))
    try:
        while True:
            row = store.outbox.get(done.message_id or "")
            if row is not None and row.status == "delivered":
                return time.perf_counter() - start
            if time.perf_counter() - start > 120:
                raise TimeoutError("the 12-lead was not delivered within 120 s")
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await task
        store.close()


def sizes() -> tuple[int, int, int, float]:
    """(raw int16 bytes, ER7 bytes, compressed bytes, ms of CPU to build + compress)."""
    record = synthetic_12_lead(seed=7)
    with tempfile.TemporaryDirectory() as tmp:
        store = StoreWriter.open(Path(tmp) / "a.sqlite3")
        clock = SystemClock.create()
        with store.transaction():
            frame = Frame("cart-1", "ecg-scp", b"x", clock.wall_ns(), clock.mono_ns(), "b")
            done = Recorder(store).record(frame, lambda _b: to_decoded(record))
        row = store.outbox.get(done.message_id or "")
        assert row is not None
        cpu0 = time.process_time()
        text = build_message(store, row, agent_id=AGENT, tz="Asia/Shanghai", now_wall_ns=1)
        body, _ = wire_payload(text)
        cpu_ms = (time.process_time() - cpu0) * 1000
        store.close()
    raw = sum(len(s) for s in record.leads.values()) * 2
    return raw, len(text.encode()), len(body), cpu_ms


async def main_async(kbit: float, delay_ms: float, runs: int) -> None:
    raw, er7, compressed, cpu_ms = sizes()
    print(f"machine: {platform.machine()} python {platform.python_version()}")
    print("10 s, 12-lead, 500 Hz ECG (60 000 samples):")
    print(f"  raw int16 (baseline)         {raw:>9,} B   1.000")
    print(f"  HL7 ORU^R01, ER7 text        {er7:>9,} B   {er7 / raw:.3f}")
    print(f"  zlib payload published       {compressed:>9,} B   {compressed / raw:.3f}")
    print(f"  build + compress CPU          {cpu_ms:>8.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = LocalBroker(work / "broker").start()
        gateway_keys.init(gateway_keys.default_key_file(work / "gateway.sqlite3"))
        gateway = Gateway(broker.url, work / "gateway.sqlite3", client_id="bench-gateway")
        gateway.start()
        gateway.wait_connected(10)
        try:
            times = []
            for n in range(runs):
                proxy = ShapedProxy(broker.port, kbit * 1000, delay_ms / 1000)
                await proxy.start()
                try:
                    run_dir = work / f"run{n}"
                    run_dir.mkdir()
                    seconds = await deliver_once(broker, proxy, run_dir)
                finally:
                    await proxy.stop()
                times.append(seconds)
                wire = proxy.upstream_bytes
                floor = wire * 8 / (kbit * 1000)
                print(
                    f"  run {n + 1}: delivered (ACK AA) in {seconds:.2f} s over {kbit:g} kbit/s"
                    f" + {delay_ms:g} ms; {wire:,} B upstream ({wire / raw:.3f} x raw),"
                    f" line time {floor:.2f} s"
                )
            print(f"  best {min(times):.2f} s, worst {max(times):.2f} s (target < 5 s)")
        finally:
            gateway.stop()
            broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kbit", type=float, default=256)
    parser.add_argument("--delay-ms", type=float, default=60)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main_async(args.kbit, args.delay_ms, args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
