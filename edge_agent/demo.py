"""`edge-agent demo`: the whole chain on embedded defaults, on this one machine.

A simulated Masimo pulse oximeter writes real ASCII lines to a pseudo-terminal, a
simulated BLE cuff sends real 0x2A35 notifications through a scripted link, the agent
records and uplinks them over a private Mosquitto to the reference county gateway, which
stores each message once and ACKs. With a screen, the terminal UI shows the ambulance
view; `--headless` prints a summary whose last line is JSON.

The demo's agent is a daemon like `edge-agent run`: it holds the writer lock and serves
the control socket, and the demo writes a config file for it, so CLI commands given
`--config` that file change the demo's store through the agent. SIGTERM, SIGINT and
SIGHUP end the demo like the end of its duration: the broker stopped, the temporary
directories removed, exit 0. While the terminal UI owns the screen the log goes to a
file (named on exit), never over the UI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from edge_agent.config import embedded_defaults
from edge_agent.crypto import keyring
from edge_agent.daemon import Agent, bootstrap
from edge_agent.demo_devices import SIMULATED, DemoRates
from edge_agent.local_broker import BrokerError, LocalBroker
from edge_agent.patients import register, start_visit
from edge_agent.store import StoreError, open_readonly
from sync.gateway.service import Gateway
from sync.gateway.store import GatewayStoreError

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
        # The demo box's agent.timezone, once its config is made (its screen shows it).
        self.timezone = "Asia/Shanghai"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_sims: asyncio.Event | None = None
        self._stop_agent: asyncio.Event | None = None
        self._stop_requested = asyncio.Event()  # replaced in the agent's loop
        self._ready = threading.Event()
        self.error: BaseException | None = None

    @property
    def agent_db(self) -> Path:
        return self.workdir / "agent" / "edge-agent.sqlite3"

    @property
    def gateway_db(self) -> Path:
        return self.workdir / "gateway.sqlite3"

    @property
    def config_path(self) -> Path:
        """The demo agent's config as a file, for CLI commands against the demo."""
        return self.workdir / "edge-agent.toml"

    def _config(self) -> Any:
        config = embedded_defaults(data_dir=self.workdir / "agent", broker=self.broker.url)
        agent, up = config.agent, config.uplink
        self.config_path.write_text(
            "# The running demo's agent: edge-agent --config THIS-FILE status | alerts | ...\n"
            "[agent]\n"
            f"id = {json.dumps(agent.id)}\n"
            f"data_dir = {json.dumps(str(agent.data_dir))}\n"
            f"role = {json.dumps(agent.role)}\n"
            "[uplink]\n"
            f"broker = {json.dumps(up.broker)}\n"
            "allow_insecure = true\n"
            f"ack_timeout_s = {up.ack_timeout_s:g}\n"
            f"strip_every_s = {up.strip_every_s:g}\n",
            encoding="utf-8",
        )
        return config

    def _keys_and_enrolment(self) -> None:
        """The demo's own box: its keys made on its first run, and its MAC key enrolled
        at the demo's gateway, so ACKs and the ER's replies are signed and checked as
        at the county (docs/security.md)."""
        from sync.gateway import keys as gateway_keys
        from sync.gateway.enrolment import enroll

        config = self._config()
        key_file = config.security.key_path(config.agent.data_dir)
        keys = (
            keyring.load(key_file)
            if key_file.exists()
            else keyring.init(key_file, config.security.suite)
        )
        # The gateway's own key file (its store seals the patients it receives).
        gateway_key_file = gateway_keys.default_key_file(self.gateway_db)
        if not gateway_key_file.exists():
            gateway_keys.init(gateway_key_file, config.security.suite)
        enroll(str(self.gateway_db), config.agent.id, keys.mac_key.hex(), config.security.suite)

    def start(self) -> None:
        self.broker.start()
        self._keys_and_enrolment()
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
        self._stop_requested = asyncio.Event()
        config = self._config()
        self.timezone = config.agent.timezone
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
        stop_sims, stop_agent = self._stop_sims, self._stop_agent
        sims = [asyncio.create_task(d.simulate(stop_sims)) for d in simulated]

        async def stop_simulators_on_request() -> None:
            await stop_sims.wait()
            for sim in sims:
                sim.cancel()

        async def stop_in_order() -> None:
            """Devices first, as when the crew switches the monitors off: the agent sees
            the simulated HL7 monitor hang up before it stops itself."""
            await self._stop_requested.wait()
            stop_sims.set()
            if sims:
                await asyncio.wait(sims, timeout=2)
            await asyncio.sleep(0.3)  # the listener reads the hang-up
            stop_agent.set()

        helpers = [
            asyncio.create_task(stop_simulators_on_request()),
            asyncio.create_task(stop_in_order()),
        ]
        self._ready.set()
        try:
            await agent.run(self._stop_agent)
        finally:
            self._stop_sims.set()
            for task in sims + helpers:
                task.cancel()
            await asyncio.gather(*sims, *helpers, return_exceptions=True)
            for device in simulated:
                device.close()
            agent.close()

    def stop_devices(self) -> None:
        loop, stop_sims = self._loop, self._stop_sims
        if loop is not None and stop_sims is not None:
            with contextlib.suppress(RuntimeError):  # the agent's loop has already ended
                loop.call_soon_threadsafe(stop_sims.set)

    def wait_drained(
        self, timeout_s: float, quiet_s: float = 2.0, interrupted: threading.Event | None = None
    ) -> bool:
        """Until every committed message has its ACK and nothing new came for `quiet_s`.

        Frames still in a pty buffer, the agent's current batch, or a cuff that still
        holds readings and reconnects after its 1 s back-off reach the outbox later; the
        counts must stay unchanged (and nothing pending or sent) for `quiet_s`.
        """
        deadline = time.monotonic() + timeout_s
        previous: dict[str, int] | None = None
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            if interrupted is not None and interrupted.wait(0.25):
                return False
            if interrupted is None:
                time.sleep(0.25)  # longer than the 200 ms commit interval
            reader = open_readonly(self.agent_db)
            try:
                counts = reader.outbox.counts()
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
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(self._stop_requested.set)
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
            counts = reader.outbox.counts()
            readings = reader.status.reading_delivery()
            latencies = reader.status.delivery_latencies_ms()
            quarantined = reader.quarantine.count()
        finally:
            reader.close()
        gw = GatewayStore.open_readonly(str(self.gateway_db))
        try:
            gw_status = gw.status()
        finally:
            gw.close()
        return DemoSummary(
            recorded=readings.recorded,
            taken=readings.chosen,
            delivered=readings.delivered,
            messages=sum(counts.values()),
            messages_delivered=counts["delivered"],
            gateway_messages=int(gw_status["messages"]),
            gateway_duplicates=int(gw_status["duplicates"]),
            quarantined=quarantined,
            latencies_ms=latencies,
        )


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM, SIGINT and SIGHUP (the terminal closed) end the demo the clean way."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            log.info("demo: %s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """Log lines go to `path` while the terminal UI owns the screen."""
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers = [handler]
    logging.captureWarnings(True)
    try:
        yield
    finally:
        root.handlers = saved
        handler.close()
        logging.captureWarnings(False)


def main(*, headless: bool, duration_s: float | None, data_dir: str | None) -> int:
    stop = threading.Event()
    with _stop_on_signals(stop):
        return _run(headless=headless, duration_s=duration_s, data_dir=data_dir, stop=stop)


def _run(
    *, headless: bool, duration_s: float | None, data_dir: str | None, stop: threading.Event
) -> int:
    workdir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="edge-agent-demo-"))
    keep = data_dir is not None
    try:
        return _run_in(workdir, headless=headless, duration_s=duration_s, keep=keep, stop=stop)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _run_in(
    workdir: Path, *, headless: bool, duration_s: float | None, keep: bool, stop: threading.Event
) -> int:
    # The log outlives a temporary work directory: next to it, named on exit. With the
    # terminal UI everything goes there, start and stop included: the screen is the UI's.
    log_path = workdir / "demo.log" if keep else workdir.with_name(f"{workdir.name}.log")
    logs: contextlib.AbstractContextManager[None] = (
        contextlib.nullcontext() if headless else _log_to(log_path)
    )
    with logs:
        status = _run_chain(workdir, headless=headless, duration_s=duration_s, stop=stop)
    if not headless:
        print(f"demo: log in {log_path}")
    return status


def _run_chain(
    workdir: Path, *, headless: bool, duration_s: float | None, stop: threading.Event
) -> int:
    chain = DemoChain(workdir)
    try:
        try:
            chain.start()
        except (BrokerError, RuntimeError, OSError, TimeoutError) as exc:
            print(f"error: demo: {exc}", file=sys.stderr)
            return 2
        print(
            f"demo: broker {chain.broker.url}, agent store {chain.agent_db},"
            f" gateway store {chain.gateway_db}"
        )
        print(f"demo: commands against this box: edge-agent --config {chain.config_path} ...")
        if headless:
            duration = 20.0 if duration_s is None else duration_s
            print(
                "demo: simulated Masimo Radical-7, Nonin DF7, Datex S/5, IntelliVue and a"
                " health-hut scale on ptys, an HL7/MLLP monitor, a BLE cuff and glucose meter,"
                " a 12-lead cart exporting SCP-ECG files (the first one a STEMI);"
                f" running {duration:g} s",
                flush=True,
            )
            stop.wait(duration)
        else:
            from tui.app import run_app

            run_app(
                mode="ambulance",
                db_path=chain.agent_db,
                language="zh_CN",
                duration_s=duration_s,
                stop_requested=stop,
                timezone=chain.timezone,
            )
        drained = False
        if not stop.is_set():
            chain.stop_devices()
            drained = chain.wait_drained(timeout_s=15, interrupted=stop)
    finally:
        chain.stop()
    if chain.error is not None:
        print(f"error: demo: the agent stopped: {chain.error}", file=sys.stderr)
    interrupted = stop.is_set()
    try:
        summary = chain.summary()
    except (StoreError, GatewayStoreError) as exc:
        print(f"error: demo: no summary: {exc}", file=sys.stderr)
        return 1
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
        ending = "stopped by a signal" if interrupted else f"all delivered before stop: {drained}"
        print(f"quarantined frames: {summary.quarantined}; {ending}")
        print(json.dumps(summary.as_json()), flush=True)
    if chain.error is not None:
        return 1
    return 0 if drained or interrupted else 1
