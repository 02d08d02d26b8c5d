"""The daemon keeps going when a part fails, and ends promptly when it cannot go on.

Real parts: monitors simulated on pseudo-terminals (in their own processes, like real
devices), a real Mosquitto and the reference gateway, `edge-agent run` as a process. The
BLE radio is the one fake: a cuff behind a BlueZ whose D-Bus connection drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from box_keys import enrolled
from waiting import until, wait_until

from device_drivers.ble.blood_pressure import MEASUREMENT_UUID, encode_measurement
from device_drivers.ble.link import ScriptedLink
from device_drivers.ble.session import BleTransport
from device_drivers.registry import decoder_for_channel
from device_drivers.simulators import ble_bp
from device_drivers.simulators import masimo as masimo_sim
from edge_agent.config import DeviceConfig, embedded_defaults
from edge_agent.daemon import bootstrap
from edge_agent.devices import DeviceRuntime, runtime_for
from edge_agent.local_broker import LocalBroker
from edge_agent.store import DeviceReport, open_readonly
from edge_agent.writer_lock import Holder, WriterLock
from sync.gateway.service import Gateway
from sync.gateway.store import GatewayStore

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")

_WRITER = """
import asyncio, sys
from device_drivers.simulators import masimo
asyncio.run(masimo.run(int(sys.argv[1]), model="radical-7", rate_hz=20, seed=int(sys.argv[2])))
"""


class Monitor:
    """A simulated Radical-7 in its own process, on a pty reached through a symlink (the
    udev name). `yank()` kills it: its master closes, as a pulled USB adapter vanishes."""

    def __init__(self, link: Path, seed: int) -> None:
        self.link = link
        self.seed = seed
        self.proc: subprocess.Popen[bytes] | None = None
        self.plug()

    def plug(self) -> None:
        master, slave = masimo_sim.open_pty()
        tmp = self.link.with_suffix(".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(slave)
        tmp.replace(self.link)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(master), str(self.seed)], pass_fds=(master,)
        )
        os.close(master)  # the simulator's process holds it now

    def yank(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        # udev removes the name with the adapter. Left behind, it would point at a freed
        # /dev/pts/N that the next pty on this machine (another test's) may get.
        self.link.unlink(missing_ok=True)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.yank()


def daemon_config(tmp_path: Path, broker: str, ports: dict[str, Path]) -> Path:
    devices = "".join(
        f'[[device]]\nid = "{name}"\ndriver = "masimo-ascii"\nport = "{port}"\n'
        for name, port in ports.items()
    )
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f"""
[agent]
id = "amb-017"
data_dir = "{tmp_path / "agent"}"
[uplink]
broker = "{broker}"
allow_insecure = true
ack_timeout_s = 5
[store]
commit_interval_ms = 50
{devices}""",
        encoding="utf-8",
    )
    enrolled(tmp_path / "agent", tmp_path / "gateway.sqlite3", "amb-017")
    return cfg


def start_daemon(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(EDGE_AGENT), "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def devices(db: Path) -> dict[str, DeviceReport]:
    if not db.exists():
        return {}
    store = open_readonly(db)
    try:
        return {d["id"]: d for d in store.devices.all()}
    except sqlite3.OperationalError:
        return {}  # the daemon has created the file, not yet its schema
    finally:
        store.close()


def delivered(db: Path) -> int:
    store = open_readonly(db)
    try:
        return store.outbox.counts()["delivered"]
    except sqlite3.OperationalError:
        return 0
    finally:
        store.close()


def frames(db: Path, device: str) -> int:
    report = devices(db).get(device)
    return 0 if report is None else report["frames"]


def state(db: Path, device: str) -> str | None:
    report = devices(db).get(device)
    return None if report is None else report["state"]


@pytest.fixture
def gateway(tmp_path: Path, broker: LocalBroker) -> Iterator[Gateway]:
    g = Gateway(broker.url, tmp_path / "gateway.sqlite3", client_id="supervision-gateway")
    g.start()
    g.wait_connected(10)
    yield g
    g.stop()


# --- one device's failure stops nothing else ------------------------------------------


def test_a_yanked_port_reconnects_while_the_other_monitor_and_the_uplink_go_on(
    tmp_path: Path, broker: LocalBroker, gateway: Gateway
) -> None:
    a = Monitor(tmp_path / "ttyA", seed=1)
    b = Monitor(tmp_path / "ttyB", seed=2)
    cfg = daemon_config(tmp_path, broker.url, {"monitor-a": a.link, "monitor-b": b.link})
    db = tmp_path / "agent" / "edge-agent.sqlite3"
    log = tmp_path / "agent.log"
    daemon = start_daemon(cfg, log)
    try:
        wait_until(lambda: frames(db, "monitor-a") > 5 and frames(db, "monitor-b") > 5, 30, "both")
        wait_until(lambda: delivered(db) > 0, 30, "first deliveries")
        a.yank()  # mid-stream: the slave's reads end in EIO / end of file
        wait_until(
            lambda: devices(db)["monitor-a"]["state"] == "disconnected", 10, "A disconnected"
        )
        assert "device gone" in str(devices(db)["monitor-a"]["state_detail"])
        b_before, sent_before = frames(db, "monitor-b"), delivered(db)
        wait_until(lambda: frames(db, "monitor-b") > b_before + 20, 20, "B recorded on")
        wait_until(lambda: delivered(db) > sent_before + 5, 20, "the uplink delivering on")
        a_before, b_before = frames(db, "monitor-a"), frames(db, "monitor-b")
        wait_until(lambda: frames(db, "monitor-b") > b_before + 10, 20, "B recorded on")
        assert frames(db, "monitor-a") == a_before  # nothing from the yanked one
        assert daemon.poll() is None
        a.plug()  # a new adapter at the same udev name
        wait_until(lambda: frames(db, "monitor-a") > a_before + 5, 20, "A recorded again")
        assert devices(db)["monitor-a"]["state"] == "connected"
    finally:
        daemon.send_signal(signal.SIGTERM)
        status = daemon.wait(20)
        a.close()
        b.close()
    assert status == 0
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in text and "task monitor-a failed" not in text


class BusDroppingLink(ScriptedLink):
    """A cuff behind a BlueZ whose D-Bus connection drops: dbus-fast raises EOFError,
    which bleak does not turn into a BleakError, so no link adapter expects it."""

    def __init__(self, failures: int, script: list[tuple[str, bytes]]) -> None:
        super().__init__(script)
        self.failures = failures

    async def connect(self) -> None:
        if self.failures:
            self.failures -= 1
            raise EOFError("D-Bus connection closed")
        await super().connect()


async def test_a_device_task_that_fails_is_restarted_with_back_off_and_reported(
    tmp_path: Path, broker: LocalBroker, gateway: Gateway
) -> None:
    master, slave = masimo_sim.open_pty()
    monitor = runtime_for(
        DeviceConfig(id="monitor-1", driver="masimo-ascii", port=slave, model="radical-7")
    )
    reading = encode_measurement(Decimal(128), Decimal(82), Decimal(97))
    link = BusDroppingLink(failures=2, script=[(MEASUREMENT_UUID, reading)])
    cuff = DeviceRuntime(
        DeviceConfig(id="cuff-1", driver="ble-bp", address="C4:7C:8D:6A:00:17"),
        BleTransport(lambda: link, ble_bp.CHARACTERISTICS),
        lambda channel: decoder_for_channel("ble-bp", channel),
    )
    config = embedded_defaults(data_dir=tmp_path / "agent", broker=broker.url)
    enrolled(config.agent.data_dir, tmp_path / "gateway.sqlite3", config.agent.id)
    agent = bootstrap(config, devices=[monitor, cuff])
    db = config.agent.db_path
    stop, sim_stop = asyncio.Event(), asyncio.Event()
    run = asyncio.create_task(agent.run(stop))
    sim = asyncio.create_task(
        masimo_sim.run(master, model="radical-7", rate_hz=10, seed=4, stop=sim_stop)
    )

    async def until_alive(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        def running_and() -> bool:
            assert not run.done(), f"the agent stopped: {run.exception()!r}"
            return condition()

        await until(running_and, timeout_s, what)

    try:
        await until_alive(lambda: state(db, "cuff-1") == "failed", 10, "failed")
        detail = str(devices(db)["cuff-1"]["state_detail"])
        assert "EOFError: D-Bus connection closed" in detail and "again in 1 s" in detail
        during = frames(db, "monitor-1"), delivered(db)
        await until_alive(
            lambda: "again in 2 s" in str(devices(db)["cuff-1"]["state_detail"]), 5, "2 s"
        )
        # While the cuff's task is down and waiting, the monitor is recorded and sent.
        await until_alive(lambda: frames(db, "monitor-1") > during[0] + 5, 10, "the monitor")
        await until_alive(lambda: delivered(db) > during[1], 10, "deliveries")
        await until_alive(lambda: frames(db, "cuff-1") == 1, 10, "the cuff's reading")
        assert link.failures == 0 and link.connections == 1  # two failed, the third took
    finally:
        sim_stop.set()
        stop.set()
        await asyncio.wait_for(run, 20)
        await sim
        agent.close()
        os.close(master)
    assert run.exception() is None
    # The uplink, the strips: never failed, never restarted.
    assert not any(r.restarts for r in agent.tasks.values())
    gw = GatewayStore.open_readonly(str(tmp_path / "gateway.sqlite3"))
    try:
        assert gw.status()["messages"] > 0
    finally:
        gw.close()


# --- a fatal error ends the process promptly, and SIGTERM always works --------------------


@pytest.fixture
def monitor_daemon(tmp_path: Path) -> Iterator[tuple[Path, Path, Monitor]]:
    """A config with one streaming monitor and no reachable broker (nothing is sent)."""
    monitor = Monitor(tmp_path / "ttyM", seed=3)
    cfg = daemon_config(tmp_path, "mqtt://127.0.0.1:9", {"monitor-1": monitor.link})
    try:
        yield cfg, tmp_path / "agent" / "edge-agent.sqlite3", monitor
    finally:
        monitor.close()


def lock_the_store_under_a_running_daemon(
    cfg: Path, db: Path, log: Path, then: Callable[[subprocess.Popen[bytes]], None]
) -> tuple[int, float]:
    """Start the daemon; once it records, another program takes the store's write lock
    and keeps it (its next group commit waits SQLite's busy timeout, 5 s, then fails);
    `then(daemon)`; the exit status, and the seconds from `then` to the exit."""
    daemon = start_daemon(cfg, log)
    blocker = None
    try:
        wait_until(lambda: frames(db, "monitor-1") > 5, 30, "frames recorded")
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        then(daemon)
        since = time.monotonic()
        status = daemon.wait(15)
        return status, time.monotonic() - since
    finally:
        if blocker is not None:
            blocker.close()
        if daemon.poll() is None:
            daemon.kill()


def test_a_failed_commit_ends_the_daemon_at_once_and_non_zero(
    tmp_path: Path, monitor_daemon: tuple[Path, Path, Monitor]
) -> None:
    cfg, db, _monitor = monitor_daemon
    log = tmp_path / "agent.log"
    status, took = lock_the_store_under_a_running_daemon(cfg, db, log, lambda _daemon: None)
    text = log.read_text(encoding="utf-8", errors="replace")
    assert status == 1, text
    assert took < 5 + 4, f"{took:.1f} s from the lock to the exit"  # busy timeout + 4 s
    assert "store commit failed" in text and "Traceback" not in text


def test_sigterm_while_the_store_is_being_written_by_a_command(
    tmp_path: Path, monitor_daemon: tuple[Path, Path, Monitor]
) -> None:
    """Starting while a CLI command holds the writer lock: it waits (and says so);
    SIGTERM then ends it at once, without touching the store."""
    cfg, db, _monitor = monitor_daemon
    log = tmp_path / "agent.log"
    lock = WriterLock(tmp_path / "agent")
    assert lock.try_acquire(Holder(role="cli", pid=os.getpid(), command="patients.add"))
    daemon = start_daemon(cfg, log)
    try:
        wait_until(lambda: "waiting for it" in log.read_text(), 10, "the daemon to wait")
        assert "patients.add" in log.read_text()
        daemon.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert daemon.wait(10) == 0
        assert time.monotonic() - signalled < 2
    finally:
        lock.release()
        if daemon.poll() is None:
            daemon.kill()
    assert not db.exists()


def test_sigterm_while_a_commit_waits_on_a_locked_store(
    tmp_path: Path, monitor_daemon: tuple[Path, Path, Monitor]
) -> None:
    """The event loop is stuck in SQLite's busy wait; the signal still ends the process."""
    cfg, db, _monitor = monitor_daemon
    log = tmp_path / "agent.log"

    def sigterm(daemon: subprocess.Popen[bytes]) -> None:
        time.sleep(0.5)  # time itself: the daemon's commit is now inside the 5 s busy wait
        daemon.send_signal(signal.SIGTERM)

    status, took = lock_the_store_under_a_running_daemon(cfg, db, log, sigterm)
    assert status in (0, 1)
    assert took < 5 + 4, f"{took:.1f} s from SIGTERM to the exit"
    assert "Traceback" not in log.read_text(encoding="utf-8", errors="replace")


def test_a_second_daemon_on_the_same_store_says_who_holds_it(
    tmp_path: Path, monitor_daemon: tuple[Path, Path, Monitor]
) -> None:
    cfg, db, _monitor = monitor_daemon
    first = start_daemon(cfg, tmp_path / "first.log")
    try:
        wait_until(lambda: frames(db, "monitor-1") > 0, 30, "the first daemon")
        second = subprocess.run(
            [str(EDGE_AGENT), "run", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert f"in use by daemon (pid {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.poll() is None
        status = json.loads(
            subprocess.run(
                [str(EDGE_AGENT), "status", "--json", "--config", str(cfg)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert status["agent_running"] is True
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(20) == 0
