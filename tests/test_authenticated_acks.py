"""ACKs and down notices with a `mac`, on a real Mosquitto (docs/security.md,
"Authenticated ACKs and notices"): the enrolled gateway's are acted on; a third client's
forgeries, without a mac or with a wrong one, are ignored, counted, and leave the message
pending; a box with no key on allow_insecure takes unsigned ones; a box on mqtts://
without a key does not start."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import subprocess
import sys
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import box_uplinks
import gateway_keys
import pytest
from box_keys import init_keys_in
from box_uplinks import gateway_on, running
from outbox_rows import record, status_of
from waiting import until

from edge_agent import control, daemon
from edge_agent.clock import SystemClock, new_message_id
from edge_agent.config import from_dict
from edge_agent.crypto.suites import suite
from edge_agent.local_broker import LocalBroker
from edge_agent.status import collect
from edge_agent.store import StoreWriter
from sync import topics
from sync.gateway.enrolment import enroll
from sync.gateway.store import GatewayStore
from sync.hl7.ack import build_ack
from sync.message_auth import MAC_PROPERTY, MessageKey, signed_properties, tag
from sync.mqtt_client import MqttClient, MqttEvent, MqttSettings, Received
from sync.uplink import Uplink

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")
CLOCK = SystemClock(boot_id="mac-boot")
AGENT = "amb-017"
KEY = MessageKey(suite("intl"), bytes.fromhex("5a" * 32))
SM_KEY = MessageKey(suite("sm"), bytes(range(32)))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreWriter]:
    s = StoreWriter.open(tmp_path / "edge-agent.sqlite3")
    yield s
    s.close()


def box_uplink(
    store: StoreWriter, broker: LocalBroker, key: MessageKey | None, *, ack_timeout_s: float = 60
) -> Uplink:
    return box_uplinks.box_uplink(
        store, broker, key, agent=AGENT, clock=CLOCK, ack_timeout_s=ack_timeout_s
    )


@pytest.fixture
def forger(broker: LocalBroker) -> Iterator[box_uplinks.BrokerClient]:
    f = box_uplinks.BrokerClient(broker)
    yield f
    f.close()


def ack_aa(control_id: str) -> bytes:
    return build_ack(
        acked_control_id=control_id,
        code="AA",
        text="stored",
        control_id=new_message_id(),
        sent_at=dt.datetime.now(zoneinfo.ZoneInfo("Asia/Shanghai")),
    ).encode()


async def test_the_enrolled_gateways_acks_deliver_and_are_signed(
    tmp_path: Path, broker: LocalBroker, store: StoreWriter
) -> None:
    """Enrolled through the running gateway (its control socket), with the SM suite:
    every ACK it sends the box carries the HMAC-SM3 `mac`, and the box delivers."""
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    seen: list[tuple[str, bytes, tuple[tuple[str, str], ...]]] = []

    def watch(event: MqttEvent) -> None:
        if isinstance(event, Received):
            seen.append((event.topic, event.payload, event.user_properties))

    watcher = MqttClient(
        MqttSettings(host="127.0.0.1", port=broker.port, subscriptions=(topics.ack(AGENT),)),
        watch,
    )
    watcher.connect()
    ids = record(store, 5, CLOCK)
    try:
        with gateway_on(broker, db):
            enrolled = subprocess.run(
                [str(EDGE_AGENT), "gateway", "enroll", "--db", str(db), "--agent", AGENT,
                 "--mac-key", SM_KEY.key.hex(), "--suite", "sm"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert enrolled.returncode == 0, enrolled.stderr
            assert json.loads(enrolled.stdout) == {
                "enrolled": AGENT,
                "suite": "sm",
                "replaced": False,
            }
            assert SM_KEY.key.hex() not in enrolled.stdout + enrolled.stderr
            uplink = box_uplink(store, broker, SM_KEY)
            async with running(uplink):
                await until(lambda: uplink.stats.delivered == 5, 20, "5 delivered")
    finally:
        watcher.stop()
    assert {status_of(store, i) for i in ids} == {"delivered"}
    assert uplink.stats.unauthenticated == 0
    assert len(seen) >= 5
    for topic, payload, properties in seen:
        assert properties == ((MAC_PROPERTY, tag(SM_KEY, topic, payload)),)


async def test_forged_acks_are_ignored_counted_and_the_message_stays_pending(
    tmp_path: Path, broker: LocalBroker, store: StoreWriter, forger: box_uplinks.BrokerClient
) -> None:
    [message_id] = record(store, 1, CLOCK)
    ack_topic = topics.ack(AGENT)
    uplink = box_uplink(store, broker, KEY)
    async with running(uplink):
        await until(lambda: status_of(store, message_id) == "sent", 10, "the message sent")
        forged = ack_aa(message_id)
        wrong = MessageKey(KEY.suite, bytes(32))
        forger.publish(ack_topic, forged, ())  # no mac
        forger.publish(ack_topic, forged, signed_properties(wrong, ack_topic, forged))
        # A good tag, for another box's topic: worth nothing on this one.
        other = topics.ack("amb-018")
        forger.publish(ack_topic, forged, signed_properties(KEY, other, forged))
        forger.publish(ack_topic, forged, ((MAC_PROPERTY, "not-hex"),))
        await until(lambda: uplink.stats.unauthenticated == 4, 10, "4 refused ACKs")
        assert status_of(store, message_id) == "sent"  # still awaiting its ACK
        assert uplink.stats.delivered == 0
    assert store.outbox.rejected(limit=10) == []
    refused = collect(store)["refused_for_mac"]
    assert (refused["ack"], refused["down"]) == (4, 0)
    assert refused["last_reason"] == "ACK: mac is not 64 lower-case hex digits"
    # The real gateway, once the box is enrolled at it, delivers the same message.
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    enroll(str(db), AGENT, KEY.key.hex())  # no gateway running: recorded under the lock
    uplink = box_uplink(store, broker, KEY, ack_timeout_s=0.5)
    with gateway_on(broker, db):
        async with running(uplink):
            await until(lambda: status_of(store, message_id) == "delivered", 20, "delivered")
    assert collect(store)["refused_for_mac"]["ack"] == 4  # kept across the restart
    config = tmp_path / "edge-agent.toml"
    config.write_text(
        f'[agent]\nid = "{AGENT}"\ndata_dir = "{tmp_path}"\n'
        '[uplink]\nbroker = "mqtt://127.0.0.1:1883"\nallow_insecure = true\n',
        encoding="utf-8",
    )
    shown = subprocess.run(
        [str(EDGE_AGENT), "--config", str(config), "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert (
        "ignored without a valid mac: 4 ACK(s), 0 down notice(s)"
        " (last: ACK: mac is not 64 lower-case hex digits)"
    ) in shown.stdout


async def test_without_a_key_on_allow_insecure_unsigned_acks_are_taken_with_one_warning(
    tmp_path: Path, broker: LocalBroker, store: StoreWriter, caplog: pytest.LogCaptureFixture
) -> None:
    ids = record(store, 3, CLOCK)
    uplink = box_uplink(store, broker, None)
    with (
        caplog.at_level(logging.WARNING, logger="sync.uplink"),
        gateway_on(broker, tmp_path / "gateway.sqlite3"),  # nobody enrolled
    ):
        async with running(uplink):
            await until(lambda: uplink.stats.delivered == 3, 20, "3 delivered")
    assert {status_of(store, i) for i in ids} == {"delivered"}
    warnings = [r.getMessage() for r in caplog.records if "without a mac" in r.getMessage()]
    assert len(warnings) == 1 and "edge-agent keys init" in warnings[0]


async def test_a_signed_er_reply_is_kept_a_forged_one_ignored(
    tmp_path: Path, broker: LocalBroker, store: StoreWriter, forger: box_uplinks.BrokerClient
) -> None:
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    enroll(str(db), AGENT, KEY.key.hex())
    down = topics.down(AGENT)
    uplink = box_uplink(store, broker, KEY)
    with gateway_on(broker, db) as gateway:
        async with running(uplink):
            sent = await asyncio.to_thread(
                control.call,
                gateway.control_path,
                "reply",
                {"agent": AGENT, "ref": "01M8XSNY2YQ06WTF6GNSJ0MKK4", "status": "cath-lab-ready"},
            )
            await until(lambda: uplink.stats.notices == 1, 10, "the ER's reply")
            fake = json.dumps({"type": "er-reply", "ref": "X", "status": "diverted"}).encode()
            forger.publish(down, fake, ())
            forger.publish(down, fake, ((MAC_PROPERTY, tag(KEY, down, fake + b" ")),))
            await until(lambda: uplink.stats.unauthenticated == 2, 10, "2 refused notices")
    notices = store.prealerts.notices()
    assert [json.loads(n["payload"])["status"] for n in notices] == ["cath-lab-ready"]
    assert sent["sent"]["status"] == "cath-lab-ready"
    refused = collect(store)["refused_for_mac"]
    assert (refused["ack"], refused["down"]) == (0, 2)
    assert refused["last_reason"].startswith("down notice: mac does not match")


async def test_a_reply_sent_by_the_command_without_a_gateway_is_signed_from_the_store(
    tmp_path: Path, broker: LocalBroker, store: StoreWriter
) -> None:
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    enroll(str(db), AGENT, KEY.key.hex())
    uplink = box_uplink(store, broker, KEY)
    async with running(uplink):
        done = await asyncio.to_thread(
            subprocess.run,
            [str(EDGE_AGENT), "gateway", "reply", "--agent", AGENT, "--ref", "R1",
             "--status", "received", "--broker", broker.url, "--db", str(db)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        await until(lambda: uplink.stats.notices == 1, 10, "the reply")
    assert uplink.stats.unauthenticated == 0


def test_enrolment_is_kept_replaced_and_never_printed(tmp_path: Path) -> None:
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    assert enroll(str(db), AGENT, KEY.key.hex()) == {
        "enrolled": AGENT,
        "suite": "intl",
        "replaced": False,
    }
    again = subprocess.run(
        [str(EDGE_AGENT), "gateway", "enroll", "--db", str(db), "--agent", AGENT,
         "--mac-key", "-", "--suite", "sm"],
        input=SM_KEY.key.hex() + "\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 0 and json.loads(again.stdout)["replaced"] is True
    for bad, message in (
        ("ab" * 31, "error: --mac-key: 31 bytes, needs 32 (64 hex digits)\n"),
        ("xy" * 32, "error: --mac-key: not hex (64 characters given)\n"),
    ):
        refused = subprocess.run(
            [str(EDGE_AGENT), "gateway", "enroll", "--db", str(db), "--agent", AGENT,
             "--mac-key", bad],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert (refused.returncode, refused.stdout, refused.stderr) == (2, "", message)
    store = GatewayStore.open_readonly(db)
    try:
        assert store.message_keys() == {AGENT: SM_KEY}
    finally:
        store.close()


def test_the_daemon_checks_with_its_key_files_mac_key(tmp_path: Path) -> None:
    """bootstrap's default: the key file's MAC key in the configured suite, so a daemon
    (which does not start without its key file) never takes an unsigned ACK."""
    config = from_dict(
        {
            "agent": {"id": AGENT, "data_dir": str(tmp_path / "data")},
            "uplink": {"broker": "mqtts://county.example:8883"},
            "security": {"suite": "sm"},
        }
    )
    keys = init_keys_in(tmp_path / "data", "sm")
    agent = daemon.bootstrap(config, devices=[])
    try:
        assert agent.message_key == MessageKey(suite("sm"), keys.mac_key)
    finally:
        agent.close()
