"""Audit batches signed by the box (docs/security.md "Anchoring at the county gateway"):
the gateway anchors a batch only from an enrolled box with its right `mac`; a forged,
unsigned or other box's batch is refused, counted with its reason in `gateway audit`,
not answered, and moves no anchor; a box without an enrolled key keeps delivering its
messages and its trail shows "not anchored: box not enrolled". `edge-agent status`
shows the trail and its anchor. Real Mosquitto, real SQLite files, the real programs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import box_uplinks
import gateway_keys
import pytest
from box_keys import init_keys_in
from box_uplinks import gateway_on, running
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from outbox_rows import record, status_of
from waiting import until

from edge_agent import audit
from edge_agent.clock import SystemClock, new_message_id
from edge_agent.crypto.suites import suite
from edge_agent.local_broker import LocalBroker
from edge_agent.status import collect
from edge_agent.store import AuditRow, StoreWriter
from sync import topics
from sync.audit_batches import BatchError, batch_payload, parse_batch
from sync.gateway.enrolment import enroll
from sync.gateway.service import Gateway, _Inbound
from sync.gateway.status import boxes as gateway_audit_report
from sync.gateway.store import GatewayStore
from sync.message_auth import MAC_PROPERTY, MessageKey, signed_properties, tag
from sync.mqtt_client import Connected
from sync.mqtt_link import LinkEvent
from sync.uplink import Link, Uplink

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")
CLOCK = SystemClock(boot_id="signed-audit-boot")
AGENT = "amb-031"
OTHER = "amb-032"
TZ = "Asia/Shanghai"
KEY = MessageKey(suite("intl"), bytes.fromhex("7e" * 32))


def add_rows(store: StoreWriter, n: int) -> list[AuditRow]:
    rows = []
    with store.transaction():
        for _ in range(n):
            event = audit.Event(
                user="li.na", role="crew", station=AGENT, action="read", op="patients.list",
                outcome=audit.OK, subject="patients:*",
            )  # fmt: skip
            rows.append(
                audit.append(store, event, suite="intl", wall_ns=CLOCK.wall_ns(), timezone=TZ)
            )
    return rows


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreWriter]:
    s = StoreWriter.open(tmp_path / "edge-agent.sqlite3")
    yield s
    s.close()


def gateway_audit(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EDGE_AGENT), "gateway", "audit", "--db", str(db), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def box_status(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "edge-agent.toml"
    config.write_text(
        f'[agent]\nid = "{AGENT}"\ndata_dir = "{tmp_path}"\n'
        '[uplink]\nbroker = "mqtt://127.0.0.1:1883"\nallow_insecure = true\n',
        encoding="utf-8",
    )
    return subprocess.run(
        [str(EDGE_AGENT), "--config", str(config), "status", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


# --- the gateway's check, in-process (hostile input, what is stored) ----------------


@pytest.fixture
def gateway_store(tmp_path: Path) -> Iterator[tuple[Gateway, GatewayStore]]:
    """A gateway (not started) and its store; AGENT enrolled with KEY, OTHER not."""
    with box_uplinks.enrolled_gateway(tmp_path, AGENT, KEY) as both:
        yield both


def _refusals(store: GatewayStore, agent: str) -> int:
    report = store.audit_report(agent)
    refused = report[0]["refused"] if report else None
    return 0 if refused is None else int(refused["batches"])


def _stored_batches(store: GatewayStore) -> int:
    one = store.conn.execute
    return sum(
        int(one(sql).fetchone()[0])
        for sql in (
            "SELECT COUNT(DISTINCT batch) FROM audit_row",
            "SELECT COUNT(*) FROM audit_break",
            "SELECT COUNT(*) FROM rejected",
        )
    )


def _good_batch(n: int) -> bytes:
    """A well-made chain of n rows from a box of our own (what a forger can make too)."""
    rows: list[AuditRow] = []
    prev = audit.GENESIS
    for seq in range(1, n + 1):
        row = audit._with_hash(
            AuditRow(
                seq, 1_700_000_000_000_000_000 + seq, "t", "u", "crew", AGENT, "read", "o",
                None, None, "ok", None, "intl", prev, b"",
            )
        )  # fmt: skip
        rows.append(row)
        prev = row.hash
    return batch_payload(AGENT, new_message_id(), rows)


_PROPERTIES = st.sampled_from(["right", "none", "wrong key", "other topic", "two", "upper"])


def _properties(kind: str, topic: str, payload: bytes) -> tuple[tuple[str, str], ...]:
    right = tag(KEY, topic, payload)
    return {
        "right": ((MAC_PROPERTY, right),),
        "none": (),
        "wrong key": signed_properties(MessageKey(KEY.suite, bytes(32)), topic, payload),
        "other topic": signed_properties(KEY, topics.audit(OTHER), payload),
        "two": ((MAC_PROPERTY, right), (MAC_PROPERTY, right)),
        "upper": ((MAC_PROPERTY, right.upper()),),
    }[kind]


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.one_of(
        st.integers(1, 4).map(_good_batch), st.binary(max_size=300), st.text().map(str.encode)
    ),
    kind=_PROPERTIES,
    agent=st.sampled_from([AGENT, OTHER]),
)
def test_only_the_enrolled_boxs_own_batch_can_move_its_anchor(
    gateway_store: tuple[Gateway, GatewayStore], payload: bytes, kind: str, agent: str
) -> None:
    gateway, store = gateway_store
    topic = topics.audit(agent)
    before = (store.audit_head(agent), _stored_batches(store), _refusals(store, agent))
    inbound = _Inbound(
        topic, payload, topics.CONTENT_TYPE_JSON, None, 1, _properties(kind, topic, payload)
    )
    with store.transaction():
        outcome = gateway._accept_audit(store, inbound)
    if agent != AGENT or kind != "right":
        # Refused before it is read: no answer, nothing of it kept, the head unchanged,
        # one more refusal counted for the topic's box, with its reason.
        assert outcome is None
        assert store.audit_head(agent) == before[0]
        assert _stored_batches(store) == before[1]
        assert _refusals(store, agent) == before[2] + 1
        [box] = store.audit_report(agent)
        reason = box["refused"]["last_reason"]
        assert reason == (
            "box not enrolled"
            if agent == OTHER
            else {
                "none": "no mac property",
                "two": "2 mac properties (one expected)",
                "upper": "mac is not 64 lower-case hex digits",
            }.get(kind, "mac does not match (wrong key, or topic or payload altered)")
        )
        return
    assert _refusals(store, agent) == before[2]
    try:
        batch = parse_batch(payload, agent)
    except BatchError:
        assert outcome is None and _stored_batches(store) == before[1] + 1  # in `rejected`
        return
    assert outcome is not None and outcome.control_id == batch.batch
    assert outcome.ack_code in ("AA", "AE")


def test_refusals_are_bounded_per_box_and_in_number_of_boxes(
    gateway_store: tuple[Gateway, GatewayStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sync.gateway import store as gateway_store_module

    gateway, store = gateway_store
    monkeypatch.setattr(gateway_store_module, "MAX_REFUSING_BOXES", 3)
    for i in range(5):
        topic = topics.audit(f"box-{i}")
        for _ in range(4):
            inbound = _Inbound(topic, _good_batch(1), topics.CONTENT_TYPE_JSON, None, 1)
            with store.transaction():
                assert gateway._accept_audit(store, inbound) is None
    report = {box["agent"]: box["refused"]["batches"] for box in store.audit_report()}
    assert report == {"box-0": 4, "box-1": 4, "box-2": 4}  # one row a box, 3 boxes at most
    assert gateway.stats["audit_refused"] == 20


# --- box and gateway on a real Mosquitto ---------------------------------------------


async def test_an_enrolled_box_signs_its_batches_and_they_are_anchored(
    tmp_path: Path, broker: LocalBroker, store: StoreWriter
) -> None:
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    enroll(str(db), AGENT, KEY.key.hex())
    rows = add_rows(store, 12)
    watcher = box_uplinks.BrokerClient(broker, topics.audit(AGENT))
    uplink = box_uplinks.box_uplink(store, broker, KEY, agent=AGENT, clock=CLOCK, ack_timeout_s=2)
    try:
        with gateway_on(broker, db) as gateway:
            async with running(uplink):
                await until(lambda: uplink.stats.audit_anchored == 1, 20, "anchored")
            assert gateway.stats["audit_refused"] == 0
    finally:
        watcher.close()
    assert audit.gateway_anchor(store) == audit.Anchor(12, rows[-1].hash, "gateway")
    [(topic, payload, properties)] = watcher.seen
    assert properties == ((MAC_PROPERTY, tag(KEY, topic, payload)),)
    [box] = json.loads(gateway_audit(db, "--json").stdout)
    assert box["head"]["seq"] == 12 and box["refused"] is None and box["breaks"] == []

    # `edge-agent status`: the trail, its anchor and when, and what waits.
    add_rows(store, 3)
    trail = collect(store)["audit"]
    anchored_ns = audit.gateway_anchor_wall_ns(store)
    assert anchored_ns is not None and abs(anchored_ns - CLOCK.wall_ns()) < 60e9
    assert trail == {
        "rows": 15,
        "last_seq": 15,
        "anchored_seq": 12,
        "anchored_wall_ns": anchored_ns,
        "anchored_at": trail["anchored_at"],
        "waiting": 3,
    }
    assert trail["anchored_at"].endswith("+08:00")
    shown = box_status(tmp_path, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["audit"] == trail
    text = box_status(tmp_path)
    assert (
        f"audit trail: 15 rows, last row 15; anchored at the county gateway up to row 12"
        f" ({trail['anchored_at']}); 3 waiting to be anchored"
    ) in text.stdout


async def test_forged_batches_are_refused_counted_and_move_no_anchor(
    tmp_path: Path, broker: LocalBroker, store: StoreWriter
) -> None:
    """A third client on the broker sends a well-made chain on the box's audit topic:
    before this, the first batch a gateway saw from a box was taken as it chained."""
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    enroll(str(db), AGENT, KEY.key.hex())
    audit_topic = topics.audit(AGENT)
    forger = box_uplinks.BrokerClient(
        broker, topics.ack(AGENT)
    )  # also sees any ACK the gateway sends
    forged = [_good_batch(3) for _ in range(3)]
    try:
        with gateway_on(broker, db) as gateway:
            forger.publish(audit_topic, forged[0], ())  # no mac
            wrong = MessageKey(KEY.suite, bytes.fromhex("11" * 32))
            forger.publish(audit_topic, forged[1], signed_properties(wrong, audit_topic, forged[1]))
            # Another box's tag (here: the right key over OTHER's topic): worthless here.
            other = topics.audit(OTHER)
            forger.publish(audit_topic, forged[2], signed_properties(KEY, other, forged[2]))
            await until(lambda: gateway.stats["audit_refused"] == 3, 10, "3 refused")
            # The real box, signed, is anchored afterwards: nothing was taken from the forger.
            rows = add_rows(store, 2)
            uplink = box_uplinks.box_uplink(
                store, broker, KEY, agent=AGENT, clock=CLOCK, ack_timeout_s=2
            )
            async with running(uplink):
                await until(lambda: uplink.stats.audit_anchored == 1, 20, "the box anchored")
        acks = [p for t, p, _ in forger.seen]
    finally:
        forger.close()
    forged_ids = {json.loads(p)["batch"] for p in forged}
    assert not any(any(i.encode() in ack for i in forged_ids) for ack in acks)  # no answer
    assert audit.gateway_anchor(store) == audit.Anchor(2, rows[-1].hash, "gateway")
    shown = gateway_audit(db, "--agent", AGENT, "--json")
    assert shown.returncode == 1  # refused batches are a finding
    [box] = json.loads(shown.stdout)
    assert box["head"]["seq"] == 2 and box["head"]["hash"] == rows[-1].hash.hex()
    assert box["refused"]["batches"] == 3
    assert box["refused"]["last_reason"] == (
        "mac does not match (wrong key, or topic or payload altered)"
    )
    text = gateway_audit(db)
    assert f"{AGENT}: anchored to row 2" in text.stdout
    assert (
        "  refused batches: 3 (last: mac does not match (wrong key, or topic or payload altered))"
    ) in text.stdout


async def test_a_box_not_enrolled_keeps_working_and_its_trail_is_not_anchored(
    tmp_path: Path, broker: LocalBroker, store: StoreWriter
) -> None:
    """A box with no key (allow_insecure) at a gateway that has not enrolled it: its
    messages are delivered, its audit batches are refused and sent again (backing off),
    its anchor does not move; once enrolled (and keyed), it anchors."""
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    ids = record(store, 3, CLOCK)
    add_rows(store, 4)
    uplink = box_uplinks.box_uplink(
        store, broker, None, agent=AGENT, clock=CLOCK, ack_timeout_s=0.3
    )
    with gateway_on(broker, db) as gateway:
        async with running(uplink):
            await until(lambda: uplink.stats.delivered == 3, 20, "the messages delivered")
            await until(lambda: uplink.stats.audit_batches >= 2, 20, "the batch sent again")
            await until(lambda: uplink.stats.audit_unanswered >= 1, 20, "no answer to it")
        assert uplink.stats.audit_anchored == 0
        assert gateway.stats["audit_refused"] >= 2
    assert {status_of(store, i) for i in ids} == {"delivered"}
    assert audit.gateway_anchor(store) is None
    text = gateway_audit(db)
    assert text.returncode == 1
    assert f"{AGENT}: not anchored: box not enrolled" in text.stdout
    trail = collect(store)["audit"]
    assert (trail["rows"], trail["anchored_seq"], trail["waiting"]) == (4, None, 4)
    shown = box_status(tmp_path)
    assert (
        "audit trail: 4 rows, last row 4; not anchored at the county gateway yet;"
        " 4 waiting to be anchored"
    ) in shown.stdout

    # The technician gives the box its key and enrols it: the trail is anchored.
    keys = init_keys_in(tmp_path / "data")
    key = MessageKey(suite("intl"), keys.mac_key)
    enroll(str(db), AGENT, key.key.hex())
    uplink = box_uplinks.box_uplink(store, broker, key, agent=AGENT, clock=CLOCK, ack_timeout_s=2)
    with gateway_on(broker, db):
        async with running(uplink):
            await until(lambda: uplink.stats.audit_anchored == 1, 20, "anchored")
    assert collect(store)["audit"]["waiting"] == 0
    report: list[dict[str, Any]] = gateway_audit_report(str(db), AGENT).boxes
    assert report[0]["head"]["seq"] == 4
    assert report[0]["refused"]["last_reason"] == "box not enrolled"  # the history stays


class RecordingLink:
    """Stands in for the MQTT link: connected, records what is published, never answers."""

    def __init__(self, on_event: Callable[[LinkEvent], None]) -> None:
        self.on_event = on_event
        self.connected = False
        self.published: list[tuple[str, bytes, tuple[tuple[str, str], ...]]] = []

    def start(self) -> None:
        self.connected = True
        self.on_event(Connected(session_present=False))

    def stop(self, *, final_topic: str | None = None, final_payload: bytes = b"") -> None:
        self.connected = False

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        content_type: str | None = None,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> int:
        self.published.append((topic, payload, tuple(user_properties)))
        return len(self.published)


async def test_audit_batches_back_off_while_nobody_answers(store: StoreWriter) -> None:
    """Unanswered (a gateway refusing the box's tag, or away), the next batch waits
    ack_timeout_s, then twice as long each time: not a batch every timeout for ever."""
    add_rows(store, 2)
    links: list[RecordingLink] = []

    def factory(on_event: Callable[[LinkEvent], None]) -> Link:
        links.append(RecordingLink(on_event))
        return links[-1]

    uplink = Uplink(
        store=store, link_factory=factory, agent_id=AGENT, clock=CLOCK, ack_timeout_s=0.2,
        message_key=KEY,
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(uplink.run(stop))
    await asyncio.sleep(2.0)  # time itself: how many tries fit in 2 s
    stop.set()
    await task
    sent = [(t, p, props) for t, p, props in links[0].published if t == topics.audit(AGENT)]
    # Timeouts of 0.2 s, the loop waking every 0.25 s: tries at ~0, ~0.5 and ~1.25 s (the
    # next waits 0.8 s more); without the back-off there would be about 8.
    assert 2 <= len(sent) <= 4, len(sent)
    for topic, payload, properties in sent:
        assert properties == signed_properties(KEY, topic, payload)
    assert uplink.stats.audit_unanswered >= len(sent) - 1
    assert audit.gateway_anchor(store) is None
