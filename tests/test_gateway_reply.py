"""`edge-agent gateway reply` goes through the running gateway (docs/contracts.md: the same
one-writer rule holds for the gateway's store); with no gateway running it publishes
and records itself, under the store's writer lock."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import gateway_keys
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent import control
from edge_agent.local_broker import LocalBroker
from sync import topics
from sync.gateway.reply import publish_reply
from sync.gateway.service import Gateway
from sync.gateway.store import GatewayStore

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")
ME = pwd.getpwuid(os.getuid()).pw_name
AGENT = "amb-017"


class Ambulance:
    """The box's side of the down topic: what reaches it."""

    def __init__(self, broker: LocalBroker) -> None:
        self.received: list[dict[str, object]] = []
        self.arrived = threading.Event()
        subscribed = threading.Event()
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.on_subscribe = lambda *_a: subscribed.set()

        def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
            self.received.append(json.loads(message.payload))
            self.arrived.set()

        client.on_message = on_message
        client.connect("127.0.0.1", broker.port)
        client.subscribe(topics.down(AGENT), qos=1)
        client.loop_start()
        assert subscribed.wait(10)
        self._client = client

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def ambulance(broker: LocalBroker) -> Iterator[Ambulance]:
    a = Ambulance(broker)
    yield a
    a.close()


def replies(db: Path) -> list[tuple[str, str, str, str | None, str | None]]:
    store = GatewayStore.open_readonly(str(db))
    try:
        rows = store.replies(AGENT)
    finally:
        store.close()
    return [(r["agent"], r["ref"], r["status"], r["text"], r["by"]) for r in rows]


def test_a_reply_waits_for_the_busy_gateway_instead_of_writing_beside_it(
    tmp_path: Path, broker: LocalBroker, ambulance: Ambulance
) -> None:
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    gateway = Gateway(broker.url, db, client_id="er-gateway")
    gateway.start()
    gateway.wait_connected(10)
    entered, release = threading.Event(), threading.Event()

    def slow_batch(store: GatewayStore) -> None:
        # The gateway's own writer in the middle of a transaction (a slow card): a
        # second writer would wait SQLite's busy timeout and fail "database is locked".
        store.record_reply("amb-other", "HOLD", "received", None, None, 0)
        entered.set()
        release.wait(30)

    held = gateway.submit(slow_batch)
    assert entered.wait(10)
    reply = subprocess.Popen(
        [
            str(EDGE_AGENT),
            "gateway",
            "reply",
            "--agent",
            AGENT,
            "--ref",
            "01M8XSNY2YQ06WTF6GNSJ0MKK4",
            "--status",
            "cath-lab-ready",
            "--text",
            "导管室已准备",
            "--db",
            str(db),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert ambulance.arrived.wait(20), "the reply did not reach the ambulance"
        # Time itself is under test: longer than the 5 s a second writer would wait.
        time.sleep(6)
        assert reply.poll() is None  # still waiting for the gateway to record it
        release.set()
        out, err = reply.communicate(timeout=30)
    finally:
        release.set()
        held.result(10)
        gateway.stop()
    assert reply.returncode == 0, err
    assert "database is locked" not in err and err == ""
    answer = json.loads(out)
    assert answer["sent"]["status"] == "cath-lab-ready" and answer["sent"]["by"] == ME
    (sent,) = ambulance.received
    assert (sent["type"], sent["ref"], sent["text"]) == (
        "er-reply",
        "01M8XSNY2YQ06WTF6GNSJ0MKK4",
        "导管室已准备",
    )
    assert replies(db) == [
        (AGENT, "01M8XSNY2YQ06WTF6GNSJ0MKK4", "cath-lab-ready", "导管室已准备", ME)
    ]


def test_bad_replies_are_refused_by_the_gateway_in_one_line(
    tmp_path: Path, broker: LocalBroker, ambulance: Ambulance
) -> None:
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    gateway = Gateway(broker.url, db, client_id="er-gateway")
    gateway.start()
    try:
        gateway.wait_connected(10)
        refusals: list[tuple[dict[str, object], str]] = [
            ({"agent": "amb/017", "ref": "R", "status": "received"}, "agent id .amb/017. must be"),
            ({"agent": AGENT, "ref": "R", "status": "maybe"}, "expected one of"),
            ({"agent": AGENT, "ref": " ", "status": "received"}, "is empty"),
            ({"agent": AGENT, "ref": "R", "status": "received", "text": 5}, "must be text"),
            ({"agent": AGENT, "ref": "R", "status": "received", "sql": "x"}, "unknown argument"),
        ]
        for args, message in refusals:
            with pytest.raises(control.OpError, match=message) as refused:
                control.call(gateway.control_path, "reply", args)
            assert refused.value.status == control.STATUS_USAGE
    finally:
        gateway.stop()
    assert replies(db) == [] and ambulance.received == []


def test_without_a_running_gateway_the_command_sends_and_records_itself(
    tmp_path: Path, broker: LocalBroker, ambulance: Ambulance
) -> None:
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    GatewayStore.open(db).close()
    base = ["gateway", "reply", "--agent", AGENT, "--ref", "R1", "--status", "received"]
    refused = subprocess.run(
        [str(EDGE_AGENT), *base, "--db", str(db)], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2 and refused.stderr.startswith("error: ")
    assert "--broker" in refused.stderr
    done = subprocess.run(
        [str(EDGE_AGENT), *base, "--by", "急诊科", "--broker", broker.url, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert ambulance.arrived.wait(10)
    assert replies(db) == [(AGENT, "R1", "received", None, "急诊科")]


def test_a_reply_the_broker_refuses_is_not_recorded(tmp_path: Path) -> None:
    """PUBACK 0x87 (the broker's ACL forbids the down topic) is a refusal, not a send:
    through the gateway and from the command alike."""
    acl = tmp_path / "acl"
    acl.write_text("topic read edge/v1/+/up\ntopic write edge/v1/+/ack\n")
    broker = LocalBroker(tmp_path / "broker", extra_config=(f"acl_file {acl}",)).start()
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    gateway = Gateway(broker.url, db, client_id="er-gateway")
    gateway.start()
    try:
        gateway.wait_connected(10)
        args = {"agent": AGENT, "ref": "R1", "status": "received"}
        with pytest.raises(control.OpError, match="refused it: 0x87 Not authorized") as refused:
            control.call(gateway.control_path, "reply", args)
        assert refused.value.status == control.STATUS_FAILED
    finally:
        gateway.stop()
    try:
        with pytest.raises(OSError, match="broker refused it: Not authorized"):
            publish_reply(broker.url, AGENT, b"{}")
    finally:
        broker.stop()
    assert replies(db) == []
