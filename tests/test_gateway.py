"""The reference county gateway on a real Mosquitto: stores once, ACKs, keeps rejects."""

from __future__ import annotations

import datetime as dt
import queue
import subprocess
import sys
import zoneinfo
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import gateway_keys
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.clock import new_message_id
from edge_agent.local_broker import LocalBroker
from sync import topics
from sync.gateway.service import Gateway
from sync.gateway.store import GatewayStore, GatewayStoreError, sqlite_path
from sync.hl7.ack import AckResult, parse_ack
from sync.hl7.pcd01 import DeviceIdentity, PatientIdentity, StoredObservation, build_oru_r01

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
AGENT = "amb-017"


def oru(control_id: str, agent: str = AGENT) -> str:
    at = dt.datetime(2026, 11, 22, 10, 0, 0, tzinfo=TZ)
    return build_oru_r01(
        control_id=control_id,
        agent_id=agent,
        sent_at=at,
        device=DeviceIdentity("cuff-1", "ble-bp", "C47C8DFFFE6A0017", "MDC_DEV_SPEC_PROFILE_BP"),
        patient=PatientIdentity("11010519491231002X", "王秀英", dt.date(1949, 12, 31), "F", "E"),
        observations=[
            StoredObservation("MDC_PRESS_BLD_NONINV_SYS", Decimal("120"), "MDC_DIM_MMHG", at, ()),
            StoredObservation("MDC_PRESS_BLD_NONINV_DIA", Decimal("80"), "MDC_DIM_MMHG", at, ()),
            StoredObservation("MDC_PULS_RATE_NON_INV", None, "MDC_DIM_BEAT_PER_MIN", at, ("nres",)),
        ],
    )


class Box:
    """A bare paho client standing in for an agent: publishes up, collects ACKs."""

    def __init__(self, broker: LocalBroker, agent: str = AGENT) -> None:
        self.agent = agent
        self.acks: queue.Queue[AckResult] = queue.Queue()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"box-{agent}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_message = lambda c, u, m: self.acks.put(parse_ack(m.payload.decode()))
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe(topics.ack(agent), qos=1)
        self.client.loop_start()

    def send(self, payload: bytes | str, agent: str | None = None) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        self.client.publish(topics.up(agent or self.agent), data, qos=1).wait_for_publish(5)

    def ack(self, timeout: float = 10) -> AckResult:
        return self.acks.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def gateway(tmp_path: Path, broker: LocalBroker) -> Iterator[Gateway]:
    gateway_keys.made(tmp_path / "gateway.sqlite3")
    g = Gateway(broker.url, tmp_path / "gateway.sqlite3", client_id="test-gw")
    g.start()
    g.wait_connected(10)
    yield g
    g.stop()


@pytest.fixture
def box(broker: LocalBroker) -> Iterator[Box]:
    b = Box(broker)
    yield b
    b.close()


def status(path: Path) -> dict[str, object]:
    store = GatewayStore.open_readonly(path)
    try:
        return store.status()
    finally:
        store.close()


def test_stores_once_and_acks_every_delivery(tmp_path: Path, gateway: Gateway, box: Box) -> None:
    control_id = new_message_id()
    box.send(oru(control_id))
    first = box.ack()
    assert (first.code, first.acked) == ("AA", control_id)
    box.send(oru(control_id))  # the box retried: answered again, stored once
    second = box.ack()
    assert (second.code, second.acked) == ("AA", control_id)
    s = status(tmp_path / "gateway.sqlite3")
    assert s["messages"] == 1 and s["duplicates"] == 1 and s["agents"] == {AGENT: 1}
    store = GatewayStore.open_readonly(tmp_path / "gateway.sqlite3")
    try:
        rows = store.conn.execute(
            "SELECT metric, value, unit, status FROM observation ORDER BY set_id"
        ).fetchall()
    finally:
        store.close()
    by_metric = {r[0]: r for r in rows}
    assert by_metric["MDC_PRESS_BLD_NONINV_SYS"][1:3] == ("120", "MDC_DIM_MMHG")
    assert by_metric["MDC_PULS_RATE_NON_INV"][1] is None


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        # Readable MSH, broken body: an application error naming the message.
        ("MSH|^~\\&|X|amb-017|Y||20261122||ORU^R01^ORU_R01|BAD-1|P|2.6\rOBX|x", ("AE", "AR")),
        # Not an observation message at all.
        ("MSH|^~\\&|X|amb-017|Y||20261122||ADT^A01^ADT_A01|BAD-2|P|2.6\rEVN||20261122", ("AR",)),
        # A version we do not speak.
        ("MSH|^~\\&|X|amb-017|Y||20261122||ORU^R01|BAD-3|P|2.3\rPID|||1", ("AR",)),
    ],
)
def test_malformed_hl7_gets_an_error_ack_and_is_kept(
    tmp_path: Path, gateway: Gateway, box: Box, payload: str, code: tuple[str, ...]
) -> None:
    box.send(payload)
    ack = box.ack()
    assert ack.code in code and ack.acked.startswith("BAD-") and ack.text
    s = status(tmp_path / "gateway.sqlite3")
    assert s["rejected"] == 1 and s["messages"] == 0
    store = GatewayStore.open_readonly(tmp_path / "gateway.sqlite3")
    try:
        (row,) = store.kept_rejected()
        kept = row["payload"]
    finally:
        store.close()
    assert kept == payload.encode()  # the county keeps what it could not accept


def test_garbage_bytes_are_kept_and_do_not_stop_the_gateway(
    tmp_path: Path, gateway: Gateway, box: Box
) -> None:
    box.send(b"\xff\xfe\x00garbage")
    good = new_message_id()
    box.send(oru(good))
    ack = box.ack()
    assert (ack.code, ack.acked) == ("AA", good)  # no ACK for bytes without an MSH-10
    s = status(tmp_path / "gateway.sqlite3")
    assert s["rejected"] == 1 and s["messages"] == 1


def test_message_claiming_another_agent_is_refused(
    tmp_path: Path, gateway: Gateway, box: Box
) -> None:
    control_id = new_message_id()
    box.send(oru(control_id, agent="amb-999"))  # published on amb-017's topic
    ack = box.ack()
    assert ack.code == "AE" and ack.acked == control_id and "amb-999" in ack.text
    assert status(tmp_path / "gateway.sqlite3")["messages"] == 0


def test_messages_sent_while_the_gateway_is_down_arrive_after_restart(
    tmp_path: Path, broker: LocalBroker, box: Box
) -> None:
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    g = Gateway(broker.url, db, client_id="restart-gw")
    g.start()
    g.wait_connected(10)
    g.stop()  # its session (and the shared subscription) stay with the broker
    ids = [new_message_id() for _ in range(5)]
    for control_id in ids:
        box.send(oru(control_id))
    g = Gateway(broker.url, db, client_id="restart-gw")
    g.start()
    try:
        acked = {box.ack(15).acked for _ in ids}
    finally:
        g.stop()
    assert acked == set(ids)
    assert status(db)["messages"] == 5


def test_db_urls() -> None:
    assert sqlite_path("sqlite:////var/lib/g.sqlite3") == Path("/var/lib/g.sqlite3")
    assert sqlite_path("sqlite:///rel.sqlite3") == Path("rel.sqlite3")
    assert sqlite_path("/tmp/x.sqlite3") == Path("/tmp/x.sqlite3")
    with pytest.raises(GatewayStoreError, match="PostgreSQL"):
        sqlite_path("postgresql://county@db/platform")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["gateway", "status", "--db", "postgresql://x@y/z"], "PostgreSQL"),
        (["gateway", "status", "--db", "/nonexistent/g.sqlite3", "--json"], "does not exist"),
        (["gateway", "run", "--broker", "http://x", "--db", "/tmp/unused.sqlite3"], "mqtt://"),
    ],
)
def test_gateway_cli_errors_are_one_line(argv: list[str], message: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", *argv], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


def test_status_says_where_a_refused_message_came_from(tmp_path: Path) -> None:
    # A message refused for its topic has no agent, one refused for its MSH-10 no control
    # id: the operator reads where it came in and why, never "None".
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    store = GatewayStore.open(db)
    with store.transaction():
        store.store_unaddressed(
            "edge/v1/../up", reason="no ACK sent: bad agent", payload=b"x", received_wall_ns=1
        )
        store.store_rejected(
            "amb-017",
            None,
            ack_code="AR",
            error_code="102",
            reason="MSH-10 is not a control id",
            payload=b"y",
            received_wall_ns=2,
            topic="edge/v1/amb-017/up",
        )
    store.close()
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "gateway", "status", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "None" not in result.stdout
    assert "from topic edge/v1/../up: no ACK no ACK sent: bad agent" in result.stdout
    assert "(no usable MSH-10) from amb-017: AR" in result.stdout
