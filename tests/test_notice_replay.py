"""Replayed and redelivered down notices (docs/security.md "Replayed notices"): a notice
is taken once, by its id; one made long before the newest taken is stale; the memory is
bounded and kept in the box's store. The rules (pure), hostile notices (hypothesis, on
what the box stores), a QoS 1 redelivery, and a real notice captured off a real
Mosquitto and published again."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import box_uplinks
import gateway_keys
import pytest
from box_uplinks import gateway_on, running
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waiting import until

from edge_agent import control
from edge_agent.clock import SystemClock, new_message_id
from edge_agent.crypto.suites import suite
from edge_agent.local_broker import LocalBroker
from edge_agent.status import collect
from edge_agent.store import StoreWriter
from sync import notice_replay, topics
from sync.gateway.enrolment import enroll
from sync.gateway.reply import reply_payload
from sync.gateway.store import GatewayStore
from sync.message_auth import MessageKey, signed_properties
from sync.mqtt_client import Received
from sync.mqtt_link import LinkEvent
from sync.notice_replay import (
    MAX_REMEMBERED,
    NOTICE_WINDOW_S,
    REPEAT,
    STALE,
    TAKE,
    NoticeMemory,
    NoticeStampError,
    Stamp,
    judge,
    memory_from_json,
    memory_json,
    stamp_of,
)
from sync.uplink import META_NOTICES_TAKEN, Link, Uplink

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")
CLOCK = SystemClock(boot_id="replay-boot")
AGENT = "amb-041"
KEY = MessageKey(suite("intl"), bytes.fromhex("a5" * 32))
TZ = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 12, 4, 19, 30, tzinfo=TZ)
S = 1_000_000_000


def notice(at: dt.datetime, notice_id: str | None = None, ref: str = "REF-1") -> bytes:
    return reply_payload(
        ref, "cath-lab-ready", text="导管室已准备", by="急诊", at=at, notice_id=notice_id
    )


def ns(at: dt.datetime) -> int:
    return int(at.timestamp()) * S + at.microsecond * 1000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreWriter]:
    s = StoreWriter.open(tmp_path / "edge-agent.sqlite3")
    yield s
    s.close()


# --- the rules (pure) --------------------------------------------------------------


def test_a_notice_says_its_id_and_when_it_was_made_inside_what_is_tagged() -> None:
    payload = notice(T0 + dt.timedelta(milliseconds=123), "01KBQ0000000000000000000AA")
    body = json.loads(payload)
    assert (body["id"], body["at"]) == (
        "01KBQ0000000000000000000AA",
        "2026-12-04T19:30:00.123+08:00",
    )
    assert stamp_of(payload) == Stamp("01KBQ0000000000000000000AA", ns(T0) + 123_000_000)
    assert stamp_of(notice(T0)).id != stamp_of(notice(T0)).id  # a fresh id by default
    with pytest.raises(ValueError, match="UTC offset"):
        notice(T0.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff", "notice is not UTF-8 JSON"),
        (b"[1]", "notice is not a JSON object"),
        (b'{"type": "er-reply", "at": "2026-12-04T19:30:00+08:00"}', 'no "id"'),
        (b'{"id": "../x", "at": "2026-12-04T19:30:00+08:00"}', 'no "id"'),
        (b'{"id": "N1"}', 'notice N1 has no "at" sent time'),
        (b'{"id": "N1", "at": "2026-12-04T19:30:00"}', "with a UTC offset"),
        (b'{"id": "N1", "at": "yesterday"}', "with a UTC offset"),
        (b" " * (notice_replay.MAX_NOTICE_BYTES + 1), "more than 16384"),
    ],
)
def test_a_notice_without_a_usable_id_and_time_is_named_in_one_line(
    payload: bytes, message: str
) -> None:
    with pytest.raises(NoticeStampError, match=message) as caught:
        stamp_of(payload)
    assert "\n" not in str(caught.value)


def test_taken_once_stale_outside_the_window_and_bounded() -> None:
    first = judge(NoticeMemory(), Stamp("N1", ns(T0)))
    assert first.kind == TAKE and first.memory.taken == (("N1", ns(T0)),)
    again = judge(first.memory, Stamp("N1", ns(T0)))
    assert (again.kind, again.memory) == (REPEAT, first.memory)
    # Out of order within the window (another sender's clock a little behind): taken.
    late = judge(first.memory, Stamp("N2", ns(T0) - 600 * S))
    assert late.kind == TAKE and late.memory.newest_ns == ns(T0)
    stale = judge(late.memory, Stamp("N3", ns(T0) - NOTICE_WINDOW_S * S - 1))
    assert stale.kind == STALE and "more than 3600 s before the newest" in (stale.reason or "")
    # A newer notice moves the window on, and what falls out of it is forgotten.
    later = judge(late.memory, Stamp("N4", ns(T0) + NOTICE_WINDOW_S * S))
    assert [i for i, _ in later.memory.taken] == ["N1", "N4"]
    assert judge(later.memory, Stamp("N2", ns(T0) - 600 * S)).kind == STALE
    # Bounded: the oldest are forgotten, and nothing at or before them is taken again.
    memory = NoticeMemory()
    for i in range(5):
        memory = judge(memory, Stamp(f"M{i}", ns(T0) + i * S), remembered=3).memory
    assert [i for i, _ in memory.taken] == ["M2", "M3", "M4"]
    assert memory.floor_ns == ns(T0) + S
    forgotten = judge(memory, Stamp("M1", ns(T0) + S), remembered=3)
    assert forgotten.kind == STALE and "older than the notices this box remembers" in (
        forgotten.reason or ""
    )
    assert judge(memory, Stamp("M5", ns(T0) + 2 * S), remembered=3).kind == TAKE
    assert memory_from_json(memory_json(memory)) == memory


@settings(max_examples=300)
@given(payload=st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode)))
def test_any_bytes_give_a_stamp_or_one_error(payload: bytes) -> None:
    try:
        stamp = stamp_of(payload)
    except NoticeStampError as exc:
        assert "\n" not in str(exc)
        return
    body = json.loads(payload)
    assert stamp.id == body["id"]


@given(text=st.one_of(st.none(), st.text(max_size=200)))
def test_any_kept_memory_reads_back_or_is_refused(text: str | None) -> None:
    try:
        memory = memory_from_json(text)
    except ValueError:
        return
    assert len(memory.taken) <= MAX_REMEMBERED
    assert memory_from_json(memory_json(memory)) == memory


# --- what the box stores ---------------------------------------------------------------


def no_link(_on_event: Callable[[LinkEvent], None]) -> Link:
    raise AssertionError("the uplink is not run here: the test hands it what arrives")


def uplink_on(store: StoreWriter, key: MessageKey | None = None) -> Uplink:
    """An uplink whose received messages the test hands it (no link started)."""
    return Uplink(store=store, link_factory=no_link, agent_id=AGENT, clock=CLOCK, message_key=key)


def deliver(uplink: Uplink, store: StoreWriter, payload: bytes, key: MessageKey | None) -> None:
    topic = topics.down(AGENT)
    with store.transaction():
        uplink._on_received(
            Received(
                topic, payload, topics.CONTENT_TYPE_JSON, signed_properties(key, topic, payload)
            )
        )


@st.composite
def _notices(draw: st.DrawFn) -> list[bytes]:
    """Notices the gateway made (each id made once, at one time), arriving in any order,
    any of them again (redelivered or replayed), among bytes that are no notice."""
    made = draw(
        st.dictionaries(
            st.sampled_from([new_message_id(ns(T0)) for _ in range(8)]),
            st.integers(-3 * NOTICE_WINDOW_S, 3 * NOTICE_WINDOW_S),
            min_size=1,
            max_size=8,
        )
    )
    sent = st.sampled_from(sorted(made.items())).map(
        lambda n: notice(T0 + dt.timedelta(seconds=n[1]), n[0])
    )
    return draw(st.lists(st.one_of(sent, st.binary(max_size=60)), max_size=25))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=_notices())
def test_any_notices_are_stored_once_each_and_none_is_lost_unseen(
    tmp_path_factory: pytest.TempPathFactory, payloads: list[bytes]
) -> None:
    store = StoreWriter.open(tmp_path_factory.mktemp("box") / "edge-agent.sqlite3")
    try:
        uplink = uplink_on(store, KEY)
        newest: int | None = None
        for payload in payloads:
            before = [json.loads(n["payload"])["id"] for n in store.prealerts.notices(limit=1000)]
            deliver(uplink, store, payload, KEY)
            stored = store.prealerts.notices(limit=1000)
            try:
                stamp = stamp_of(payload)
            except NoticeStampError:
                assert len(stored) == len(before)  # kept nothing of it
                continue
            fresh = len(stored) == len(before) + 1
            if stamp.id in before:
                assert not fresh  # a repeat is never stored again
            elif newest is None or stamp.at_ns >= newest:
                assert fresh  # a new notice, no older than any taken, is always taken
            if fresh:
                assert stored[0]["payload"] == payload.decode()
                newest = stamp.at_ns if newest is None else max(newest, stamp.at_ns)
        ids = [json.loads(n["payload"])["id"] for n in store.prealerts.notices(limit=1000)]
        assert len(ids) == len(set(ids))  # never one id twice
        ignored = collect(store)["notices_ignored"]
        taken = uplink.stats.notices
        refused = ignored["repeated"] + ignored["stale"] + ignored["unstamped"]
        assert taken + refused == len(payloads) and taken == len(ids)
        kept = memory_from_json(store.meta.get(META_NOTICES_TAKEN))
        assert len(kept.taken) <= MAX_REMEMBERED
    finally:
        store.close()


def test_a_qos1_redelivery_is_shown_once_and_is_no_error(
    store: StoreWriter, caplog: pytest.LogCaptureFixture
) -> None:
    payload = notice(T0)
    uplink = uplink_on(store, KEY)
    with caplog.at_level(logging.INFO, logger="sync.uplink"):
        deliver(uplink, store, payload, KEY)
        deliver(uplink, store, payload, KEY)  # the broker sends it again (DUP)
        # ... and again after the daemon restarted: the memory is in the store.
        deliver(uplink_on(store, KEY), store, payload, KEY)
    assert len(collect(store)["er_replies"]) == 1
    assert collect(store)["notices_ignored"]["repeated"] == 2
    assert uplink.stats.notices == 1 and uplink.stats.notice_repeats == 1
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    infos = [r.getMessage() for r in caplog.records if "ignored down notice" in r.getMessage()]
    assert len(infos) == 2 and "a QoS 1 redelivery or a replay" in infos[0]


# --- a real notice, captured off the broker, published again -------------------------


async def test_a_captured_notice_published_again_is_ignored_and_counted_once(
    tmp_path: Path, broker: LocalBroker, store: StoreWriter, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    enroll(str(db), AGENT, KEY.key.hex())
    recorder = box_uplinks.BrokerClient(broker, topics.down(AGENT))
    try:
        with caplog.at_level(logging.INFO, logger="sync.uplink"), gateway_on(broker, db) as gateway:
            uplink = box_uplinks.box_uplink(store, broker, KEY, agent=AGENT, clock=CLOCK)
            async with running(uplink):
                sent = await asyncio.to_thread(
                    control.call, gateway.control_path, "reply",
                    {"agent": AGENT, "ref": "01M8XSNY2YQ06WTF6GNSJ0MKK4", "status": "cath-lab-ready"},
                )  # fmt: skip
                await until(lambda: uplink.stats.notices == 1, 10, "the ER's reply")
                await until(lambda: len(recorder.seen) == 1, 10, "the reply recorded")
                [(_topic, captured, mac)] = recorder.seen
                assert json.loads(captured)["id"] == sent["sent"]["id"]
                recorder.publish(
                    topics.down(AGENT), captured, mac
                )  # the replay: same bytes, same tag
                await until(lambda: uplink.stats.notice_repeats == 1, 10, "the replay")
                # Its id changed, the tag kept: the tag no longer matches.
                body = json.loads(captured)
                body["id"] = new_message_id()
                altered = json.dumps(body, ensure_ascii=False).encode()
                recorder.publish(topics.down(AGENT), altered, mac)
                await until(lambda: uplink.stats.unauthenticated == 1, 10, "the altered one")
                # Signed, new, but made two hours before the reply taken: stale.
                old = notice(dt.datetime.now(TZ) - dt.timedelta(hours=2))
                recorder.publish(
                    topics.down(AGENT), old, signed_properties(KEY, topics.down(AGENT), old)
                )
                await until(lambda: uplink.stats.notices_refused == 1, 10, "the stale one")
            # After a restart, the capture is still a repeat (the memory is the store's).
            uplink = box_uplinks.box_uplink(store, broker, KEY, agent=AGENT, clock=CLOCK)
            async with running(uplink):
                recorder.publish(topics.down(AGENT), captured, mac)
                await until(lambda: uplink.stats.notice_repeats == 1, 10, "replayed again")
    finally:
        recorder.close()
    assert [json.loads(n["payload"])["status"] for n in store.prealerts.notices()] == [
        "cath-lab-ready"
    ]
    # Each replay logged once, for the technician; not a warning.
    replays = [r for r in caplog.records if "was taken already" in r.getMessage()]
    assert [r.levelno for r in replays] == [logging.INFO, logging.INFO]
    status = collect(store)
    assert len(status["er_replies"]) == 1
    ignored = status["notices_ignored"]
    assert (ignored["repeated"], ignored["stale"], ignored["unstamped"]) == (2, 1, 0)
    assert status["refused_for_mac"]["down"] == 1
    # The gateway recorded the reply with the id the notice carried.
    gateway_store = GatewayStore.open_readonly(db)
    try:
        [reply] = gateway_store.status()["er_replies"]
    finally:
        gateway_store.close()
    assert reply["notice_id"] == sent["sent"]["id"]
    config = tmp_path / "edge-agent.toml"
    config.write_text(
        f'[agent]\nid = "{AGENT}"\ndata_dir = "{tmp_path}"\n'
        '[uplink]\nbroker = "mqtt://127.0.0.1:1883"\nallow_insecure = true\n',
        encoding="utf-8",
    )
    shown = subprocess.run(
        [str(EDGE_AGENT), "--config", str(config), "status"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "down notices not taken: 2 already taken (QoS 1 redelivery or replay), 1 stale" in (
        shown.stdout
    )
