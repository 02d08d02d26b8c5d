"""`edge-agent demo`: the whole chain on embedded defaults, on this one machine.

A simulated Masimo pulse oximeter writes real ASCII lines to a pseudo-terminal, a
simulated BLE cuff sends real 0x2A35 notifications through a scripted link, the agent
records and uplinks them over a private Mosquitto to the reference county gateway, which
stores each message once and ACKs. With a screen, the terminal UI shows the ambulance
view; `--headless` prints a summary whose last line is JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.config import embedded_defaults
from edge_agent.daemon import Agent, bootstrap
from edge_agent.demo_devices import SIMULATED, DemoRates
from edge_agent.local_broker import BrokerError, LocalBroker
from edge_agent.patients import register, start_visit
from edge_agent.store import open_readonly
from sync.gateway.service import Gateway

log = logging.getLogger(__name__)

# What `edge-agent demo` runs: an ambulance's monitors and 12-lead cart, a home cuff, a
# health-hut scale and glucose meter.
DEMO_DEVICES = (
    "masimo",
    "cuff",
    "nonin",
    "datex",
    "intellivue",
    "mllp",
    "scale",
    "glucose",
    "ecg",
)
DEMO_RESIDENT = ("11010519491231002X", "王秀英")  # GB 11643's worked example number


@dataclass
class DemoSummary:
    recorded: int
    taken: int
    delivered: int
    messages: int
    messages_delivered: int
    gateway_messages: int
    gateway_duplicates: int
    quarantined: int
    latencies_ms: list[float]

    def as_json(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "taken": self.taken,
            "recorded": self.recorded,
            "delivered": self.delivered,
            "latency_ms": {
                "p50": round(_percentile(lat, 50), 1) if lat else None,
                "p99": round(_percentile(lat, 99), 1) if lat else None,
            },
        }


def _percentile(sorted_values: list[float], pct: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[int(pct) - 1]


class DemoChain:
    """Broker, gateway, simulators and agent, started and stopped together."""

    def __init__(
        self,
        workdir: Path,
        *,
        masimo_rate_hz: float = 1.0,
        cuff_every_s: float = 6.0,
        masimo_noise: bool = False,
        broker: LocalBroker | None = None,
        devices: Sequence[str] = DEMO_DEVICES,
    ) -> None:
        unknown = set(devices) - set(SIMULATED)
        if unknown:
            raise ValueError(
                f"demo: no simulated device {sorted(unknown)} (known: {sorted(SIMULATED)})"
            )
        self.devices = tuple(devices)
        self.workdir = workdir
        self.masimo_rate_hz = masimo_rate_hz
        self.cuff_every_s = cuff_every_s
        self.masimo_noise = masimo_noise
        self.broker = broker or LocalBroker(workdir / "broker")
        self.gateway: Gateway | None = None
        self.agent: Agent | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_sims: asyncio.Event | None = None
        self._stop_agent: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None

    @property
    def agent_db(self) -> Path:
        return self.workdir / "agent" / "edge-agent.sqlite3"

    @property
    def gateway_db(self) -> Path:
        return self.workdir / "gateway.sqlite3"

    def start(self) -> None:
        self.broker.start()
        self.gateway = Gateway(self.broker.url, self.gateway_db, client_id="demo-county-gateway")
        self.gateway.start()
        self.gateway.wait_connected(10)
        self._thread = threading.Thread(target=self._run_agent, name="agent", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("demo: the agent did not start within 15 s")
        if self.error is not None:
            raise RuntimeError(f"demo: the agent failed to start: {self.error}")

    def _run_agent(self) -> None:
        try:
            asyncio.run(self._agent_main())
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    async def _agent_main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_sims = asyncio.Event()
        self._stop_agent = asyncio.Event()
        config = embedded_defaults(data_dir=self.workdir / "agent", broker=self.broker.url)
        rates = DemoRates(
            masimo_hz=self.masimo_rate_hz,
            masimo_noise=self.masimo_noise,
            cuff_every_s=self.cuff_every_s,
            timezone=config.agent.timezone,
        )
        simulated = [SIMULATED[name](rates) for name in self.devices]
        agent = bootstrap(config, devices=[d.runtime for d in simulated])
        self.agent = agent
        register(
            agent.store, agent.clock, national_id_number=DEMO_RESIDENT[0], name=DEMO_RESIDENT[1]
        )
        start_visit(
            agent.store, agent.clock, national_id_number=DEMO_RESIDENT[0], patient_class="E"
        )
        stop_sims = self._stop_sims
        sims = [asyncio.create_task(d.simulate(stop_sims)) for d in simulated]

        async def stop_simulators_on_request() -> None:
            await stop_sims.wait()
            for sim in sims:
                sim.cancel()

        sims.append(asyncio.create_task(stop_simulators_on_request()))
        self._ready.set()
        try:
            await agent.run(self._stop_agent)
        finally:
            self._stop_sims.set()
            for sim in sims:
                sim.cancel()
            await asyncio.gather(*sims, return_exceptions=True)
            for device in simulated:
                device.close()
            agent.store.close()

    def stop_devices(self) -> None:
        if self._loop is not None and self._stop_sims is not None:
            self._loop.call_soon_threadsafe(self._stop_sims.set)

    def wait_drained(self, timeout_s: float, quiet_s: float = 2.0) -> bool:
        """Until every committed message has its ACK and nothing new came for `quiet_s`.

        Frames still in a pty buffer, the agent's current batch, or a cuff that still
        holds readings and reconnects after its 1 s back-off reach the outbox later; the
        counts must stay unchanged (and nothing pending or sent) for `quiet_s`.
        """
        deadline = time.monotonic() + timeout_s
        previous: dict[str, int] | None = None
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.25)  # longer than the 200 ms commit interval
            reader = open_readonly(self.agent_db)
            try:
                counts = reader.outbox_counts()
            finally:
                reader.close()
            if counts != previous or counts["pending"] or counts["sent"]:
                previous = counts
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return True
        return False

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and self._stop_agent is not None:
            stop_sims, stop_agent = self._stop_sims, self._stop_agent
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                if stop_sims is not None:
                    loop.call_soon_threadsafe(stop_sims.set)
                loop.call_soon_threadsafe(stop_agent.set)
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None
        self.broker.stop()

    def summary(self) -> DemoSummary:
        from sync.gateway.store import GatewayStore

        reader = open_readonly(self.agent_db)
        try:
            counts = reader.outbox_counts()
            recorded, taken, delivered = reader.reading_delivery_counts()
            latencies = reader.delivery_latencies_ms()
            quarantined = reader.quarantine_count()
        finally:
            reader.close()
        gw = GatewayStore.open_readonly(str(self.gateway_db))
        try:
            gw_status = gw.status()
        finally:
            gw.close()
        return DemoSummary(
            recorded=recorded,
            taken=taken,
            delivered=delivered,
            messages=sum(counts.values()),
            messages_delivered=counts["delivered"],
            gateway_messages=int(gw_status["messages"]),
            gateway_duplicates=int(gw_status["duplicates"]),
            quarantined=quarantined,
            latencies_ms=latencies,
        )


def main(*, headless: bool, duration_s: float | None, data_dir: str | None) -> int:
    workdir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="edge-agent-demo-"))
    keep = data_dir is not None
    chain = DemoChain(workdir)
    try:
        chain.start()
    except (BrokerError, RuntimeError, OSError) as exc:
        print(f"error: demo: {exc}", file=sys.stderr)
        chain.stop()
        return 2
    try:
        if headless:
            duration = 20.0 if duration_s is None else duration_s
            print(
                f"demo: broker {chain.broker.url}, agent store {chain.agent_db}, gateway store {chain.gateway_db}"
            )
            print(
                "demo: simulated Masimo Radical-7, Nonin DF7, Datex S/5, IntelliVue and a"
                " health-hut scale on ptys, an HL7/MLLP monitor, a BLE cuff and glucose meter,"
                " a 12-lead cart exporting SCP-ECG files (the first one a STEMI);"
                f" running {duration:g} s"
            )
            time.sleep(duration)
        else:
            from tui.app import run_app

            run_app(
                mode="ambulance", db_path=chain.agent_db, language="zh_CN", duration_s=duration_s
            )
        chain.stop_devices()
        drained = chain.wait_drained(timeout_s=15)
    finally:
        chain.stop()
    summary = chain.summary()
    if headless:
        print(
            f"readings taken for the county: {summary.taken}, delivered (ACK AA):"
            f" {summary.delivered}; recorded on the box: {summary.recorded}"
            " (fast monitors go up once a second)"
        )
        print(
            f"messages: {summary.messages}, delivered: {summary.messages_delivered},"
            f" gateway stored: {summary.gateway_messages} (duplicates seen: {summary.gateway_duplicates})"
        )
        print(f"quarantined frames: {summary.quarantined}; all delivered before stop: {drained}")
        print(json.dumps(summary.as_json()))
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if drained else 1
