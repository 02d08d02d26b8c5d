"""Uplink: messages/s delivered with the gateway's ACK vs a bare paho QoS 1 publish loop.

Both run against the same private Mosquitto in the same run. Ours: N readings already
committed in the outbox, the agent builds each HL7 message, publishes it, the gateway
parses, validates, stores durably and ACKs, and the box marks it delivered (SQLite
writes on both sides, synchronous=FULL). Baseline: one paho client publishes the same
N payloads at QoS 1 and waits for every PUBACK (no parsing, no storage, no ACK message).
The gateway runs in its own process (`edge-agent gateway run`), as it does in the field.
Then a latency run: readings arrive at a steady rate while the uplink runs; latency is
reading received -> ACK AA recorded at the box.

    .venv/bin/python bench/uplink.py [--messages 1000] [--rate 50] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_drivers import registry
from device_drivers.simulators.masimo import lines
from edge_agent.config import embedded_defaults
from edge_agent.daemon import Agent, bootstrap
from edge_agent.local_broker import LocalBroker
from edge_agent.model import Frame


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def record_frames(agent: Agent, n: int) -> None:
    decode = registry.decoder("masimo-ascii")
    source = lines("radical-7", seed=11)
    clock = agent.clock
    items = [
        (
            Frame(
                "monitor-1",
                "masimo-ascii",
                next(source).rstrip(b"\r\n"),
                clock.wall_ns(),
                clock.mono_ns(),
                clock.boot_id,
            ),
            decode,
        )
        for _ in range(n)
    ]
    for i in range(0, n, 100):
        agent.recorder.record_many(items[i : i + 100])


Feeder = Callable[[Agent], Coroutine[Any, Any, None]]


def run_agent_until(
    agent: Agent, done: Callable[[], bool], timeout_s: float, feeder: Feeder | None = None
) -> float:
    async def main() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        feed = asyncio.create_task(feeder(agent)) if feeder else None
        start = time.perf_counter()
        deadline = start + timeout_s
        while not done() and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        if feed:
            feed.cancel()
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        return elapsed

    return asyncio.run(main())


def bench_ours(broker: LocalBroker, workdir: Path, n: int) -> tuple[float, list[str]]:
    config = embedded_defaults(data_dir=workdir / "agent", broker=broker.url, agent_id="bench-001")
    agent = bootstrap(config, devices=[])
    record_frames(agent, n)
    # Probe-off lines (all dashes) are kept on the box but not sent: count what is due.
    due = sum(agent.store.outbox.counts().values())
    elapsed = run_agent_until(agent, lambda: agent.store.outbox.counts()["delivered"] >= due, 300)
    delivered = agent.store.outbox.counts()["delivered"]
    payloads = [r[0] for r in agent.store.conn.execute("SELECT payload FROM outbox")]
    agent.store.close()
    if delivered < due:
        raise SystemExit(f"only {delivered}/{due} delivered")
    return elapsed, payloads


def bench_paho(broker: LocalBroker, payloads: list[str]) -> float:
    acked = threading.Event()
    count = 0

    def on_publish(
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        nonlocal count
        count += 1
        if count == len(payloads):
            acked.set()

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="bench-raw",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(20)  # the same window the agent uses
    client.on_publish = on_publish
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    time.sleep(0.3)
    start = time.perf_counter()
    for p in payloads:
        client.publish("edge/v1/bench-raw/up-baseline", p.encode(), qos=1)
    acked.wait(120)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return elapsed


def bench_latency(broker: LocalBroker, workdir: Path, rate: float, seconds: float) -> list[float]:
    config = embedded_defaults(
        data_dir=workdir / "latency", broker=broker.url, agent_id="bench-002"
    )
    agent = bootstrap(config, devices=[])
    decode = registry.decoder("masimo-ascii")
    source = lines("radical-7", seed=12)

    async def feeder(agent: Agent) -> None:
        clock = agent.clock
        while True:
            frame = Frame(
                "monitor-1",
                "masimo-ascii",
                next(source).rstrip(b"\r\n"),
                clock.wall_ns(),
                clock.mono_ns(),
                clock.boot_id,
            )
            agent._pending.append((frame, decode))
            await asyncio.sleep(1 / rate)

    end = time.perf_counter() + seconds
    run_agent_until(agent, lambda: time.perf_counter() > end, seconds + 5, feeder)
    # let the tail drain
    run_agent_until(
        agent,
        lambda: (
            agent.store.outbox.counts()["pending"] == 0 and agent.store.outbox.counts()["sent"] == 0
        ),
        30,
    )
    latencies = agent.store.status.delivery_latencies_ms()
    agent.store.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20, help="readings/s for the latency run")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = LocalBroker(work / "broker").start()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "edge_agent.cli",
                "gateway",
                "keys",
                "init",
                "--db",
                str(work / "gateway.sqlite3"),
            ],
            cwd=Path(__file__).resolve().parents[1],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # The county gateway in its own process, as in the field: its hl7apy strict parse
        # (~30 ms a message) must not share this process's CPU and GIL with the agent.
        gateway = subprocess.Popen(
            [sys.executable, "-m", "edge_agent.cli", "gateway", "run", "--broker", broker.url,
             "--db", str(work / "gateway.sqlite3")],
            cwd=Path(__file__).resolve().parents[1],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(3)  # connected and subscribed (persistent session from then on)
        try:
            cpu0 = _cpu_s()
            ours_s, payloads = bench_ours(broker, work, args.messages)
            agent_cpu_ms = (_cpu_s() - cpu0) / len(payloads) * 1000
            base_s = bench_paho(broker, payloads)
            latencies = sorted(bench_latency(broker, work, args.rate, args.seconds))
        finally:
            gateway.terminate()
            gateway.wait(timeout=10)
            broker.stop()
    sent = len(payloads)
    ours, base = sent / ours_s, sent / base_s
    size = statistics.mean(len(p) for p in payloads)
    print(
        f"machine: {platform.machine()} python {platform.python_version()}; loopback, Mosquitto"
        f" private instance; {sent} messages of ~{size:.0f} bytes (ORU^R01, one Masimo line each;"
        f" {args.messages - sent} probe-off lines of {args.messages} stay on the box)"
    )
    print(f"{'':40}{'msgs/s':>10}{'seconds':>10}")
    print(f"{'agent -> gateway, delivered on ACK AA':40}{ours:>10,.0f}{ours_s:>10.2f}")
    print(f"{'bare paho QoS 1 publish, PUBACK only':40}{base:>10,.0f}{base_s:>10.2f}")
    print(f"ratio ours/bare: {ours / base:.3f}")
    print(
        f"agent CPU per delivered message: {agent_cpu_ms:.2f} ms (record, build ER7, publish,"
        " read the ACK, mark delivered); the gateway's strict hl7apy parse sets the pace"
    )
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    print(
        f"latency reading received -> ACK AA at {args.rate:g} readings/s for {args.seconds:g} s"
        f" ({len(latencies)} messages): p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms,"
        f" max {latencies[-1]:.1f} ms (includes the {200} ms group-commit window)"
    )


if __name__ == "__main__":
    main()
