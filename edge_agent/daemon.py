"""The agent daemon: devices -> recorder -> store -> uplink, in one event loop.

Transports post raw frames; every `commit_interval_ms` the batch goes through the
recorder in one durable transaction (group commit), then the uplink is woken to send
what was committed. A failed commit (disk full, I/O error) is not retried as if it
had worked (the fsyncgate lesson): the daemon stops and systemd restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from device_drivers.transport import FrameSink, Outcome, StateSink
from edge_agent import sd_notify
from edge_agent.clock import Clock, SystemClock
from edge_agent.config import Config, DeviceConfig
from edge_agent.model import Frame
from edge_agent.recorder import Decoder, Recorded, Recorder
from edge_agent.rules.engine import ClinicalRules
from edge_agent.store import Store
from edge_agent.strips import run_strips
from sync import topics
from sync.mqtt_link import LinkEvent, LinkSettings, MqttLink
from sync.uplink import Link, LinkFactory, Uplink

log = logging.getLogger(__name__)


class Transport(Protocol):
    async def run(self, emit: FrameSink, on_state: StateSink, stop: asyncio.Event) -> None: ...


@dataclass
class DeviceRuntime:
    """A configured device: where its bytes come from and how they are decoded."""

    config: DeviceConfig
    transport: Transport
    decoder_for: Callable[[str | None], Decoder]
    upload_every_s: float = 0.0  # registry.Driver.upload_every_s


@dataclass
class Agent:
    config: Config
    store: Store
    clock: Clock
    devices: list[DeviceRuntime]
    link_factory: LinkFactory
    on_recorded: Callable[[list[Recorded]], None] | None = None
    # Tasks that serve the devices (the shared BLE advertisement scanner).
    background: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = field(
        default_factory=list
    )
    recorder: Recorder = field(init=False)
    uplink: Uplink = field(init=False)
    _pending: list[tuple[Frame, Decoder]] = field(default_factory=list, init=False)
    # Futures of frames in `_pending` whose transport waits for the commit (MLLP ACKs).
    _waiting: dict[int, asyncio.Future[Outcome]] = field(default_factory=dict, init=False)
    _fatal: BaseException | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.recorder = Recorder(
            self.store,
            upload_every_s={d.config.id: d.upload_every_s for d in self.devices},
            rules=ClinicalRules(
                news2_window_s=self.config.rules.news2_window_s, tz=self.config.agent.timezone
            ),
            tz=self.config.agent.timezone,
        )
        self.uplink = Uplink(
            store=self.store,
            link_factory=self.link_factory,
            agent_id=self.config.agent.id,
            clock=self.clock,
            tz=self.config.agent.timezone,
            ack_timeout_s=self.config.uplink.ack_timeout_s,
            max_in_flight=self.config.uplink.max_in_flight,
        )

    def _emit_for(self, device: DeviceRuntime) -> FrameSink:
        dev = device.config

        def emit(
            data: bytes, channel: str | None, /, *, dedup_key: str | None = None
        ) -> asyncio.Future[Outcome]:
            frame = Frame(
                device_id=dev.id,
                driver=dev.driver,
                data=data,
                received_wall_ns=self.clock.wall_ns(),
                received_mono_ns=self.clock.mono_ns(),
                boot_id=self.clock.boot_id,
                extra={"channel": channel} if channel else {},
                dedup_key=dedup_key,
            )
            committed: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
            self._waiting[len(self._pending)] = committed
            self._pending.append((frame, device.decoder_for(channel)))
            return committed

        return emit

    def _state_for(self, device: DeviceRuntime) -> Callable[[str, str], None]:
        def on_state(state: str, detail: str) -> None:
            with self.store.transaction():
                self.store.set_device_state(device.config.id, state, detail, self.clock.wall_ns())

        return on_state

    def flush(self) -> list[Recorded]:
        batch, self._pending = self._pending, []
        waiting, self._waiting = self._waiting, {}
        if not batch:
            return []
        try:
            results = self.recorder.record_many(batch)
        except BaseException as exc:
            for future in waiting.values():
                if not future.done():
                    future.set_exception(RuntimeError(f"not recorded: {exc}"))
            raise
        for index, future in waiting.items():
            if not future.done():
                future.set_result(results[index].outcome)
        if any(r.message_id for r in results):
            self.uplink.wake()
        if self.on_recorded is not None:
            self.on_recorded(results)
        return results

    async def _commit_loop(self, stop: asyncio.Event) -> None:
        interval = self.config.store.commit_interval_ms / 1000
        watchdog = sd_notify.watchdog_interval_s()
        next_ping = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            try:
                self.flush()
            except Exception as exc:
                log.critical(
                    "store commit failed, stopping so nothing is acknowledged unsaved: %s", exc
                )
                self._fatal = exc
                stop.set()
                return
            if watchdog is not None and loop.time() >= next_ping:
                sd_notify.notify("WATCHDOG=1")
                next_ping = loop.time() + watchdog

    async def run(self, stop: asyncio.Event) -> None:
        with self.store.transaction():
            self.store.set_meta("agent_id", self.config.agent.id)
            for device in self.devices:
                dev = device.config
                self.store.upsert_device(
                    dev.id,
                    driver=dev.driver,
                    transport=dev.transport,
                    port=dev.port or dev.folder,
                    address=dev.address,
                )
        tasks = [
            asyncio.create_task(
                d.transport.run(self._emit_for(d), self._state_for(d), stop), name=d.config.id
            )
            for d in self.devices
        ]
        tasks += [asyncio.create_task(job(stop), name="background") for job in self.background]
        tasks.append(asyncio.create_task(self.uplink.run(stop), name="uplink"))
        tasks.append(
            asyncio.create_task(
                run_strips(
                    self.store,
                    self.clock,
                    self.config.uplink.strip_every_s,
                    stop,
                    wake=self.uplink.wake,
                ),
                name="strips",
            )
        )
        tasks.append(asyncio.create_task(self._commit_loop(stop), name="recorder"))
        sd_notify.notify("READY=1")
        log.info("agent %s running with %d device(s)", self.config.agent.id, len(self.devices))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None and not stop.is_set():
                    log.critical("task %s failed: %r", task.get_name(), task.exception())
                    self._fatal = task.exception()
                    stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            stop.set()
            sd_notify.notify("STOPPING=1")
            try:
                self.flush()  # frames that arrived during shutdown are still recorded
            except Exception as exc:
                log.error("final commit failed: %s", exc)
        if self._fatal is not None:
            raise RuntimeError(f"agent stopped: {self._fatal}") from self._fatal


def mqtt_link_factory(config: Config) -> LinkFactory:
    up = config.uplink
    password = up.password_file.read_text(encoding="utf-8").strip() if up.password_file else None
    settings = LinkSettings(
        host=up.host,
        port=up.port,
        client_id=f"edge-agent-{config.agent.id}",
        tls=up.tls,
        ca_file=up.ca_file,
        client_cert=up.client_cert,
        client_key=up.client_key,
        username=up.username,
        password=password,
        keepalive_s=up.keepalive_s,
        session_expiry_s=up.session_expiry_s,
        will_topic=topics.state(config.agent.id),
        will_payload=b'{"agent": "%s", "state": "offline"}' % config.agent.id.encode(),
        max_in_flight=up.max_in_flight,
        subscriptions=(topics.ack(config.agent.id), topics.down(config.agent.id)),
    )

    def factory(on_event: Callable[[LinkEvent], None]) -> Link:
        return MqttLink(settings, on_event)

    return factory


def bootstrap(config: Config, *, devices: list[DeviceRuntime] | None = None) -> Agent:
    """Build the real dependency graph (tests build the same with scripted parts).

    Devices: the config's, plus the BLE devices paired at this station (`edge-agent
    devices pair`), the BLE ones sharing one advertisement watcher.
    """
    from device_drivers.ble.presence import AdvertisementWatcher, BleakAdvertisements
    from edge_agent.devices import runtime_for
    from edge_agent.pairing import paired_configs

    store = Store.open(config.agent.db_path)
    background: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = []
    if devices is None:
        configs = list(config.devices) + paired_configs(store)
        watcher = AdvertisementWatcher()
        tz = config.agent.timezone
        devices = [runtime_for(d, presence=watcher, tz=tz) for d in configs]
        if any(d.transport == "ble" for d in configs):
            background.append(BleakAdvertisements(watcher).run)
    return Agent(
        config=config,
        store=store,
        clock=SystemClock.create(),
        devices=devices,
        link_factory=mqtt_link_factory(config),
        background=background,
    )


def run_forever(config: Config) -> int:
    """`edge-agent run`: until SIGTERM/SIGINT; non-zero exit when a commit failed."""
    agent = bootstrap(config)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await agent.run(stop)

    try:
        asyncio.run(main())
    except RuntimeError as exc:
        log.critical("%s", exc)
        return 1
    finally:
        agent.store.close()
    return 0
