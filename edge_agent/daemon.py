"""The agent daemon: devices -> recorder -> store -> uplink, in one event loop.

Transports post raw frames; every `commit_interval_ms` the batch goes through the
recorder in one durable transaction (group commit), then the uplink is woken to send
what was committed. A failed commit (disk full, I/O error) is not retried as if it
had worked (the fsyncgate lesson): the daemon stops at once, non-zero, and systemd
restarts it.

The daemon is the store's only writer for as long as it runs: it holds the writer
lock on data_dir (edge_agent.writer_lock) and serves the control socket
(edge_agent.control), whose operations (edge_agent.operations) run on this loop between
two group commits. Every other task runs under the supervisor (edge_agent.supervisor):
a device, the uplink, the strips or the BLE watcher that fails is reported and started
again with back-off; the others keep going.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_drivers import registry
from device_drivers.transport import FrameSink, Outcome
from edge_agent import id_card_reader, key_rotation, kiosk_retention, operations, sd_notify
from edge_agent.clock import Clock, SystemClock
from edge_agent.config import Config
from edge_agent.control import ControlServer
from edge_agent.crypto import keyring as keyring_file
from edge_agent.crypto.suites import suite as suite_named
from edge_agent.devices import DeviceRuntime, runtime_for
from edge_agent.kiosk_card import CardDesk
from edge_agent.model import Frame
from edge_agent.recorder import Decoder, Recorded, Recorder
from edge_agent.rules.engine import ClinicalRules
from edge_agent.shutdown import Shutdown
from edge_agent.store import StoreError, StoreWriter
from edge_agent.strips import run_strips
from edge_agent.supervisor import META_TASKS, Supervisor, TaskReport
from edge_agent.writer_lock import Holder, WriterLock, WriterLockBusy
from sync import topics
from sync.message_auth import MessageKey
from sync.mqtt_link import LinkEvent, LinkSettings, MqttLink
from sync.uplink import Link, LinkFactory, Uplink

log = logging.getLogger(__name__)

# How long a starting daemon waits for a CLI command that is writing the store.
LOCK_WAIT_S = 10.0
# Once stopping, how long the tasks get to finish before they are cancelled.
TASK_STOP_S = 3.0
# The state a device shows while its task is waiting to be started again.
STATE_FAILED = "failed"
# Between two batches of the sealing pass: the loop's other work (a group commit, the
# control socket) goes first.
RESEAL_PAUSE_S = 0.01
KIOSK_RETENTION_EVERY_S = 300.0  # how often a kiosk looks for what it may let go of


@dataclass
class Agent:
    config: Config
    store: StoreWriter
    clock: Clock
    devices: list[DeviceRuntime]
    link_factory: LinkFactory
    on_recorded: Callable[[list[Recorded]], None] | None = None
    # Tasks that serve the devices (the shared BLE advertisement scanner).
    background: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = field(
        default_factory=list
    )
    # Where to serve the control socket; None: no socket (tests with scripted parts).
    control_path: Path | None = None
    # The writer lock on data_dir, held for the agent's life (bootstrap takes it).
    writer_lock: WriterLock | None = None
    # Told when the agent must stop at once (a failed commit), from the loop's thread.
    on_fatal: Callable[[BaseException], None] | None = None
    # The key the gateway's ACKs and notices must carry a `mac` of (sync.message_auth);
    # None (tests with scripted parts only): unsigned ones are taken, with a warning.
    message_key: MessageKey | None = None
    # The uplink's, the strips' and the BLE watcher's last report (devices report theirs
    # in their state).
    tasks: dict[str, TaskReport] = field(default_factory=dict, init=False)
    recorder: Recorder = field(init=False)
    uplink: Uplink = field(init=False)
    _pending: list[tuple[Frame, Decoder]] = field(default_factory=list, init=False)
    # Futures of frames in `_pending` whose transport waits for the commit (MLLP ACKs).
    _waiting: dict[int, asyncio.Future[Outcome]] = field(default_factory=dict, init=False)
    _fatal: BaseException | None = field(default=None, init=False)
    _reseal_wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    # The card on the kiosk's own ID-card reader (`kiosk.id_card_reader`), made in run().
    card_desk: CardDesk | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.recorder = Recorder(
            self.store,
            upload_every_s={
                d.config.id: registry.driver(d.config.driver).uplink.every_s for d in self.devices
            },
            rules=ClinicalRules.for_box(self.config),
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
            message_key=self.message_key,
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
                self.store.devices.set_state(device.config.id, state, detail, self.clock.wall_ns())

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
                self._fail(exc)
                stop.set()
                return
            if watchdog is not None and loop.time() >= next_ping:
                sd_notify.notify("WATCHDOG=1")
                next_ping = loop.time() + watchdog

    def _fail(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
            if self.on_fatal is not None:
                self.on_fatal(exc)

    def _device_report(self, device: DeviceRuntime) -> Callable[[TaskReport], None]:
        """A device whose task failed shows it in its state until it connects again."""

        def report(r: TaskReport) -> None:
            if r.state == "restarting":
                detail = f"{r.error}; starting again in {r.retry_in_s:g} s"
                self._state_for(device)(STATE_FAILED, detail)

        return report

    def _task_report(self, r: TaskReport) -> None:
        """The other tasks' states are kept in meta for `edge-agent status`."""
        self.tasks[r.name] = r
        states = {n: t.as_json() for n, t in self.tasks.items()}
        with self.store.transaction():
            self.store.meta.set(META_TASKS, json.dumps(states))

    def wake_reseal(self) -> None:
        self._reseal_wake.set()

    async def _reseal(self, stop: asyncio.Event) -> None:
        """The sealing pass (edge_agent.key_rotation), resumed at start and woken by
        `keys rotate`: one batch per transaction, between the group commits."""
        done = 0
        while not stop.is_set():
            self._reseal_wake.clear()
            resealed = key_rotation.reseal_batch(self.store)
            if resealed:
                done += resealed
                await asyncio.sleep(RESEAL_PAUSE_S)
                continue
            if done:
                self.store.truncate_wal()
                log.info("keys: %d row(s) re-sealed under key %s", done, self._active_key())
                done = 0
            waits = [
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(self._reseal_wake.wait()),
            ]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    async def _kiosk_retention(self, stop: asyncio.Event) -> None:
        """A kiosk's retention pass (edge_agent.kiosk_retention), at start and then every
        KIOSK_RETENTION_EVERY_S: unbound readings purged, delivered residents pseudonymised."""
        while not stop.is_set():
            done = kiosk_retention.run_pass(self.store, self.clock, self.config)
            if done.changed:
                log.info(
                    "kiosk: %d unbound frame(s) purged, %d resident(s) pseudonymised",
                    done.purged_frames,
                    len(done.pseudonymised),
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), KIOSK_RETENTION_EVERY_S)

    def _active_key(self) -> str:
        return "-" if self.store.keys is None else self.store.keys.active_id

    def _supervise(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        supervisor = Supervisor(stop)

        def device_task(d: DeviceRuntime) -> Callable[[], Awaitable[None]]:
            return lambda: d.transport.run(self._emit_for(d), self._state_for(d), stop)

        def background_task(
            job: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
        ) -> Callable[[], Awaitable[None]]:
            return lambda: job(stop)

        tasks = [
            supervisor.start(d.config.id, device_task(d), self._device_report(d))
            for d in self.devices
        ]
        for index, job in enumerate(self.background):
            name = "ble-watcher" if index == 0 else f"ble-watcher-{index}"
            tasks.append(supervisor.start(name, background_task(job), self._task_report))
        tasks.append(supervisor.start("uplink", lambda: self.uplink.run(stop), self._task_report))
        tasks.append(
            supervisor.start(
                "strips",
                lambda: run_strips(
                    self.store,
                    self.clock,
                    self.config.uplink.strip_every_s,
                    stop,
                    wake=self.uplink.wake,
                ),
                self._task_report,
            )
        )
        tasks.append(supervisor.start("reseal", lambda: self._reseal(stop), self._task_report))
        if self.config.agent.role == kiosk_retention.KIOSK:
            tasks.append(
                supervisor.start(
                    "kiosk-retention", lambda: self._kiosk_retention(stop), self._task_report
                )
            )
        desk = self.card_desk
        if desk is not None:  # its failures are its own: it retries, the others go on
            kiosk = self.config.kiosk
            tasks.append(
                supervisor.start(
                    "id-card-reader",
                    lambda: id_card_reader.run(
                        kiosk.id_card_reader, kiosk.id_card_baud, desk, stop
                    ),
                    self._task_report,
                )
            )
        return tasks

    async def run(self, stop: asyncio.Event) -> None:
        with self.store.transaction():
            self.store.meta.set("agent_id", self.config.agent.id)
            self.store.meta.set(META_TASKS, "{}")
            for device in self.devices:
                dev = device.config
                self.store.devices.upsert(
                    dev.id,
                    driver=dev.driver,
                    transport=dev.transport,
                    port=dev.port or dev.folder,
                    address=dev.address,
                )
        if self.config.kiosk.id_card_reader:
            self.card_desk = CardDesk(self.store, self.clock, self.config)
        server: ControlServer | None = None
        if self.control_path is not None:
            services = operations.Services(
                self.store,
                self.clock,
                self.config,
                self.uplink.wake,
                self.wake_reseal,
                card_desk=self.card_desk,
            )
            server = ControlServer(self.control_path, operations.handler(services))
            await server.start()
        tasks = self._supervise(stop)
        recorder = asyncio.create_task(self._commit_loop(stop), name="recorder")
        sd_notify.notify("READY=1")
        log.info("agent %s running with %d device(s)", self.config.agent.id, len(self.devices))
        try:
            await stop.wait()
            if self._fatal is not None:
                # The store cannot be written: nothing the tasks still do can be kept, and
                # what they would write would wait on the store. End them now.
                for task in tasks:
                    task.cancel()
            await _finish(tasks, TASK_STOP_S)
            await _finish([recorder], TASK_STOP_S)
        finally:
            stop.set()
            if server is not None:
                await server.close()
            sd_notify.notify("STOPPING=1")
            if self._fatal is None:
                try:
                    self.flush()  # frames that arrived during shutdown are still recorded
                except Exception as exc:
                    log.error("final commit failed: %s", exc)
                    self._fail(exc)
            else:
                self._drop_pending()
        if self._fatal is not None:
            raise RuntimeError(f"agent stopped: {self._fatal}") from self._fatal

    def _drop_pending(self) -> None:
        """After a failed commit nothing more is written: transports waiting for a
        commit (MLLP) are told it did not happen, so they do not acknowledge."""
        waiting, self._waiting, self._pending = self._waiting, {}, []
        for future in waiting.values():
            if not future.done():
                future.set_exception(RuntimeError("not recorded: the store failed"))

    def close(self) -> None:
        self.store.close()
        if self.writer_lock is not None:
            self.writer_lock.release()


async def _finish(tasks: list[asyncio.Task[None]], within_s: float) -> None:
    """Until `tasks` have ended; those still running after `within_s` are cancelled."""
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=within_s)
    for task in pending:
        log.warning("task %s did not stop within %g s: cancelling it", task.get_name(), within_s)
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=2.0)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("task %s ended with %r", task.get_name(), task.exception())


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


def box_message_key(config: Config, keys: keyring_file.Keyring) -> MessageKey:
    """The key this box's ACKs and notices are checked with: the key file's MAC key, in
    the configured suite (what `gateway enroll --suite` records at the gateway)."""
    return MessageKey(suite_named(config.security.suite), keys.mac_key)


def bootstrap(
    config: Config,
    *,
    devices: list[DeviceRuntime] | None = None,
    lock_wait_s: float = LOCK_WAIT_S,
    give_up: Callable[[], bool] | None = None,
    message_key: MessageKey | None = None,
) -> Agent:
    """Build the real dependency graph (tests build the same with scripted parts).

    Takes the writer lock on data_dir first (waiting `lock_wait_s` for a CLI command
    that is writing; WriterLockBusy names who holds it), loads the keyring
    (`security.key_file`; KeyringError, one line, when it is missing or wrong), then
    opens the store with it.
    Devices: the config's, plus the BLE devices paired at this station (`edge-agent
    devices pair`), the BLE ones sharing one advertisement watcher.
    The gateway's ACKs and notices are checked with `message_key`, by default the key
    file's MAC key (`box_message_key`): a box always has one, so on mqtts:// it never
    takes an unsigned one.
    """
    keys = keyring_file.load(config.security.key_path(config.agent.data_dir))
    if message_key is None:
        message_key = box_message_key(config, keys)
    from device_drivers.ble.presence import AdvertisementWatcher, BleakAdvertisements
    from edge_agent.pairing import paired_configs

    control_path = operations.socket_path(config)
    lock = WriterLock(config.agent.data_dir)
    lock.acquire(
        Holder(role="daemon", pid=os.getpid(), socket=str(control_path)),
        timeout_s=lock_wait_s,
        give_up=give_up,
    )
    try:
        store = StoreWriter.open(config.agent.db_path, keys)
    except BaseException:
        lock.release()
        raise
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
        control_path=control_path,
        writer_lock=lock,
        message_key=message_key,
    )


# After a failed commit the process must be gone within this, whatever still runs.
FATAL_EXIT_S = 3.0


def run_forever(
    config: Config, shutdown: Shutdown | None = None, *, message_key: MessageKey | None = None
) -> int:
    """`edge-agent run`: until SIGTERM/SIGINT; exit 1 when it cannot go on (a failed
    commit, the store held by another program), so that systemd starts it again.

    `shutdown`: signal handling already installed by the caller (the CLI does it before
    importing anything that may start threads)."""
    loop_box: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def request_stop() -> None:
        if loop_box:
            loop, stop = loop_box[0]
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stop.set)

    if shutdown is None:
        shutdown = Shutdown().install()
    shutdown.on_stop(request_stop)
    try:
        agent = bootstrap(config, give_up=shutdown.stopping.is_set, message_key=message_key)
    except WriterLockBusy as exc:
        if shutdown.stopping.is_set():
            return 0  # asked to stop while waiting for the store
        log.critical("cannot start: %s", exc)
        return 1
    except (StoreError, OSError, keyring_file.KeyringError) as exc:
        log.critical("cannot start: %s", exc)
        return 1
    agent.on_fatal = lambda exc: shutdown.begin(1, grace_s=FATAL_EXIT_S)

    async def main() -> None:
        stop = asyncio.Event()
        loop_box.append((asyncio.get_running_loop(), stop))
        if shutdown.stopping.is_set():
            stop.set()  # a signal came while the store was being opened
        await agent.run(stop)

    status = 0
    try:
        asyncio.run(main())
    except RuntimeError as exc:
        log.critical("%s", exc)
        status = 1
    except OSError as exc:  # the control socket could not be served
        log.critical("cannot run: %s", exc)
        status = 1
    finally:
        agent.close()
    shutdown.finished()
    return status
