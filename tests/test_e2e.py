"""End to end on real parts: simulator on a pty -> agent -> Mosquitto -> gateway -> ACK.

Every test checks the same two facts from both ends: each reading the box committed is
stored exactly once at the gateway, and the box marked it delivered.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gateway_keys
import pytest
from box_keys import enrolled, init_keys_in
from waiting import wait_until

from device_drivers.simulators import masimo as masimo_sim
from edge_agent.demo import DemoChain
from edge_agent.local_broker import LocalBroker
from edge_agent.store import open_readonly
from sync.gateway.service import Gateway
from sync.gateway.store import GatewayStore
from sync.hl7.eui64 import derived_eui64


def agent_counts(db: Path) -> dict[str, int]:
    empty = {"pending": 0, "sent": 0, "delivered": 0, "rejected": 0}
    if not db.exists():
        return empty
    store = open_readonly(db)
    try:
        return store.outbox.counts()
    except sqlite3.OperationalError:
        return empty  # the agent has created the file but not yet its schema
    finally:
        store.close()


def agent_message_ids(db: Path) -> dict[str, str]:
    store = open_readonly(db)
    try:
        return dict(store.conn.execute("SELECT id, status FROM outbox").fetchall())
    finally:
        store.close()


def gateway_control_ids(db: Path) -> list[str]:
    gw = GatewayStore.open_readonly(str(db))
    try:
        return [r[0] for r in gw.conn.execute("SELECT control_id FROM message").fetchall()]
    finally:
        gw.close()


def _rejections(db: Path) -> list[tuple[str, str, str]]:
    store = open_readonly(db)
    try:
        return store.conn.execute(
            "SELECT o.status, o.ack_text, f.device_id FROM outbox o"
            " JOIN raw_frame f ON f.id = o.raw_frame_id WHERE o.status != 'delivered' LIMIT 5"
        ).fetchall()
    finally:
        store.close()


def assert_exactly_once(agent_db: Path, gateway_db: Path) -> None:
    ids = agent_message_ids(agent_db)
    assert ids, "the agent recorded nothing"
    assert set(ids.values()) == {"delivered"}, _rejections(agent_db)
    stored = gateway_control_ids(gateway_db)
    assert len(stored) == len(set(stored)), "a message was stored twice at the gateway"
    assert sorted(stored) == sorted(ids), "gateway and box disagree on what was delivered"


@pytest.fixture
def chain(tmp_path: Path, broker: LocalBroker) -> Iterator[DemoChain]:
    c = DemoChain(
        tmp_path,
        masimo_rate_hz=20,
        cuff_every_s=0.5,
        masimo_noise=True,
        broker=broker,
        devices=("masimo", "cuff"),
    )
    yield c
    c.stop()


def test_pty_and_ble_to_gateway_exactly_once(chain: DemoChain) -> None:
    chain.start()
    wait_until(lambda: agent_counts(chain.agent_db)["delivered"] >= 40, 30, "40 delivered messages")
    chain.stop_devices()
    assert chain.wait_drained(20)
    chain.stop()
    assert_exactly_once(chain.agent_db, chain.gateway_db)
    summary = chain.summary()
    assert summary.taken > 0 and summary.delivered == summary.taken
    # The noisy simulator's garbage went to quarantine, the good lines all arrived.
    assert summary.quarantined > 0
    store = open_readonly(chain.agent_db)
    try:
        drivers = {d["id"]: d for d in store.devices.all()}
        assert drivers["monitor-1"]["frames"] > 0 and drivers["cuff-1"]["frames"] > 0
        metrics = {o.metric for o in store.frames.latest_observations(500)}
    finally:
        store.close()
    assert {"MDC_PULS_OXIM_SAT_O2", "MDC_PRESS_BLD_NONINV_SYS"} <= metrics
    # Values arrive at the county exactly as measured (decimal text, not floats).
    gw = GatewayStore.open_readonly(str(chain.gateway_db))
    try:
        row = gw.conn.execute(
            "SELECT value, unit FROM observation WHERE metric = 'MDC_PULS_OXIM_SAT_O2'"
            " AND value IS NOT NULL LIMIT 1"
        ).fetchone()
        national_ids = {m["patient_national_id"] for m in gw.messages()}
    finally:
        gw.close()
    assert row[1] == "MDC_DIM_PERCENT" and 50 <= float(row[0]) <= 100
    assert national_ids == {"11010519491231002X"}  # the visit opened by the demo


def test_broker_outage_loses_nothing_and_stores_nothing_twice(chain: DemoChain) -> None:
    chain.start()
    wait_until(lambda: agent_counts(chain.agent_db)["delivered"] >= 10, 30, "first deliveries")
    chain.broker.stop()
    before = agent_counts(chain.agent_db)

    def backlog() -> int:
        now = agent_counts(chain.agent_db)
        return now["pending"] + now["sent"]

    # Readings keep coming in while the county is unreachable.
    wait_until(lambda: backlog() > before["pending"] + before["sent"], 30, "readings queued")
    during = agent_counts(chain.agent_db)
    assert during["pending"] + during["sent"] > before["pending"] + before["sent"]
    chain.broker.start()  # same port, persistent sessions restored from its store
    # The devices go on until the box delivers again: readings taken while it reconnects.
    wait_until(
        lambda: agent_counts(chain.agent_db)["delivered"] > during["delivered"],
        45,
        "deliveries after the outage",
    )
    chain.stop_devices()
    assert chain.wait_drained(45), agent_counts(chain.agent_db)
    chain.stop()
    assert_exactly_once(chain.agent_db, chain.gateway_db)


def _agent_config(tmp_path: Path, broker: LocalBroker, port: str) -> Path:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f"""
[agent]
id = "amb-017"
data_dir = "{tmp_path / "agent"}"
role = "ambulance"
[uplink]
broker = "{broker.url}"
allow_insecure = true
ack_timeout_s = 5
[[device]]
id = "monitor-1"
driver = "masimo-ascii"
port = "{port}"
[store]
commit_interval_ms = 50
""",
        encoding="utf-8",
    )
    init_keys_in(tmp_path / "agent")
    return cfg


def _start_agent(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def test_sigkill_mid_stream_then_restart_delivers_each_committed_reading_once(
    tmp_path: Path, broker: LocalBroker
) -> None:
    gateway_keys.made(tmp_path / "gateway.sqlite3")
    gateway = Gateway(broker.url, tmp_path / "gateway.sqlite3", client_id="test-gateway")
    gateway.start()
    gateway.wait_connected(10)
    master_fd, slave = masimo_sim.open_pty()
    writer = subprocess.Popen(  # the simulator in its own process, like a real monitor
        [sys.executable, "-c", _WRITER, str(master_fd)], pass_fds=(master_fd,)
    )
    cfg = _agent_config(tmp_path, broker, slave)
    enrolled(tmp_path / "agent", tmp_path / "gateway.sqlite3", "amb-017")
    db = tmp_path / "agent" / "edge-agent.sqlite3"
    log = tmp_path / "agent.log"
    agent = _start_agent(cfg, log)
    try:
        wait_until(lambda: agent_counts(db)["delivered"] >= 5, 30, "first deliveries")
        # Kill it while something is not yet delivered. The uplink can drain the backlog
        # between our look and the signal (rarely, at 25 lines/s): then look and kill again.
        for _attempt in range(5):
            wait_until(
                lambda: agent_counts(db)["pending"] + agent_counts(db)["sent"] > 0,
                10,
                "a backlog",
            )
            agent.send_signal(signal.SIGKILL)
            agent.wait(10)
            killed_at = agent_message_ids(db)
            if any(s != "delivered" for s in killed_at.values()):
                break
            agent = _start_agent(cfg, log)
        assert any(s != "delivered" for s in killed_at.values())
        agent = _start_agent(cfg, log)
        # The monitor goes on until the restarted agent records it again.
        wait_until(
            lambda: len(agent_message_ids(db)) > len(killed_at),
            30,
            "the restarted agent to record new readings",
        )
        writer.terminate()
        writer.wait(10)
        wait_until(
            lambda: agent_counts(db)["pending"] + agent_counts(db)["sent"] == 0,
            45,
            "the restarted agent to drain its outbox",
        )
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(15)
        if writer.poll() is None:
            writer.kill()
        gateway.stop()
        os.close(master_fd)
    after = agent_message_ids(db)
    assert set(killed_at) <= set(after)  # every committed row survived the kill
    assert_exactly_once(db, tmp_path / "gateway.sqlite3")
    assert "Traceback" not in log.read_text(encoding="utf-8", errors="replace")


_WRITER = """
import asyncio, sys
from device_drivers.simulators import masimo
asyncio.run(masimo.run(int(sys.argv[1]), model="rad-8", rate_hz=25, seed=3))
"""


def test_gateway_rejection_is_kept_and_shown(tmp_path: Path, broker: LocalBroker) -> None:
    """A message the county refuses (AE/AR) is 'rejected' at the box with the reason."""
    chain = DemoChain(
        tmp_path, masimo_rate_hz=5, cuff_every_s=3600, broker=broker, devices=("masimo",)
    )
    chain.start()
    try:
        wait_until(lambda: agent_counts(chain.agent_db)["delivered"] >= 2, 30, "first deliveries")
        agent = chain.agent
        assert agent is not None and agent.store is not None
        # Corrupt one pending payload the way a buggy firmware update might.
        loop = chain._loop
        assert loop is not None

        def corrupt() -> None:
            store = agent.store
            with store.transaction():
                store.conn.execute(
                    "INSERT INTO outbox (id, kind, priority, status, created_wall_ns, attempts,"
                    " next_attempt_wall_ns, payload) VALUES ('BROKEN-0001', 'oru_r01', 0, 'pending',"
                    " 0, 0, 0, 'MSH|^~\\&|X||Y||20261122||ORU^R01^ORU_R01|BROKEN-0001|P|2.6\rOBX|x')"
                )
            agent.uplink.wake()

        loop.call_soon_threadsafe(corrupt)
        wait_until(lambda: agent_counts(chain.agent_db)["rejected"] == 1, 20, "the rejection")
        keys = agent.store.keys  # the refusal's text is sealed: read with the box's keys
    finally:
        chain.stop()
    store = open_readonly(chain.agent_db, keys)
    try:
        rejected = store.outbox.rejected()
    finally:
        store.close()
    assert rejected[0]["id"] == "BROKEN-0001" and rejected[0]["ack_code"] in ("AE", "AR")
    assert rejected[0]["ack_text"]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent.cli",
            "gateway",
            "status",
            "--db",
            str(chain.gateway_db),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    status = json.loads(out.stdout)
    assert status["rejected"] == 1 and status["messages"] >= 2
    assert status["agents"]["demo-001"] == status["messages"]


def test_every_simulated_monitor_reaches_the_county(tmp_path: Path, broker: LocalBroker) -> None:
    """The demo's whole device set: monitors with conversations and waves, a scale, BLE."""
    chain = DemoChain(tmp_path, cuff_every_s=2, broker=broker)
    chain.start()
    try:
        wait_until(
            lambda: (
                _gateway_devices(chain.gateway_db)
                >= {
                    # OBX-18 names every device by EUI-64: serial devices and the cart
                    # have none of their own, so one derived for them (sync.hl7.eui64)
                    *(derived_eui64("demo-001", d) for d in ("monitor-1", "oximeter-1")),
                    *(derived_eui64("demo-001", d) for d in ("s5-1", "scale-1", "cart-1")),
                    "C47C8DFFFE6A0017",  # the cuff's own (its BLE address, EUI-48 -> 64)
                    "C47C8DFFFE6A0021",  # the glucose meter's
                }
            ),
            40,
            "a message from every monitor at the gateway",
        )
        chain.stop_devices()
        assert chain.wait_drained(20)
    finally:
        chain.stop()
    assert_exactly_once(chain.agent_db, chain.gateway_db)
    store = open_readonly(chain.agent_db)
    try:
        waves = store.frames.waveform_stats()
        metrics = {o.metric for o in store.frames.latest_by_metric()}
        states = {d["id"]: d["state"] for d in store.devices.all()}
    finally:
        store.close()
    assert waves["segments"] > 0 and waves["bytes"] < waves["samples"] * 2  # < raw int16
    assert {
        "MDC_ECG_HEART_RATE",
        "MDC_PULS_OXIM_SAT_O2",
        "MDC_PRESS_BLD_NONINV_SYS",
        "MDC_MASS_BODY_ACTUAL",
        "MDC_RATIO_MASS_BODY_LEN_SQ",
        "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD",
    } <= metrics
    assert set(states) == {
        "monitor-1",
        "oximeter-1",
        "s5-1",
        "mp50-1",
        "mllp-1",
        "scale-1",
        "cuff-1",
        "glucose-1",
        "cart-1",
    }
    gw = GatewayStore.open_readonly(str(chain.gateway_db))
    try:
        county = gw.status()
    finally:
        gw.close()
    # The cart's first recording is a STEMI: its notice and its 12-lead sheet are there.
    assert [e["stemi"] for e in county["ecgs"]][-1:] == [True]
    assert county["prearrivals"] and county["ecgs"][-1]["pdf_path"]


def _gateway_devices(db: Path) -> set[str]:
    if not db.exists():
        return set()
    gw = GatewayStore.open_readonly(str(db))
    try:
        return {r[0] for r in gw.conn.execute("SELECT DISTINCT device_id FROM observation")}
    finally:
        gw.close()
