"""The uplink's delivery rules: a row is delivered only on ACK AA; a PUBACK >= 0x80 is a
failure; silence means the same MSH-10 is sent again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import pytest
from outbox_rows import record, status_of
from waiting import until

from edge_agent.clock import SystemClock, new_message_id
from edge_agent.local_broker import LocalBroker
from edge_agent.store import StoreWriter
from sync import topics
from sync.hl7.ack import build_ack
from sync.mqtt_client import Connected, PublishDone, Received
from sync.mqtt_link import LinkEvent, LinkSettings, MqttLink
from sync.uplink import Link, Uplink

CLOCK = SystemClock(boot_id="uplink-boot")
AGENT = "amb-017"


class ScriptedLink:
    """Stands in for MqttLink: records publishes; the test plays the broker's part."""

    def __init__(self, on_event: Callable[[LinkEvent], None]) -> None:
        self.on_event = on_event
        self.connected = False
        self.published: list[tuple[str, bytes, int]] = []
        self.properties: dict[int, tuple[tuple[str, str], ...]] = {}
        self._mid = 0

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
        qos: int = 1,
        retain: bool = False,
        content_type: str | None = None,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> int:
        self._mid += 1
        self.published.append((topic, payload, self._mid))
        self.properties[self._mid] = tuple(user_properties)
        return self._mid

    def up(self) -> list[tuple[bytes, int]]:
        return [(p, mid) for t, p, mid in self.published if t == topics.up(AGENT)]


def control_id_of(payload: bytes) -> str:
    return payload.decode().split("\r")[0].split("|")[9]


def ack_for(control_id: str, code: str, text: str = "") -> Received:
    import datetime as dt
    import zoneinfo

    message = build_ack(
        acked_control_id=control_id,
        code=code,
        text=text or code,
        control_id=new_message_id(),
        sent_at=dt.datetime.now(zoneinfo.ZoneInfo("Asia/Shanghai")),
        error_code=None if code == "AA" else "207",
    )
    return Received(topics.ack(AGENT), message.encode(), None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreWriter]:
    s = StoreWriter.open(tmp_path / "agent.sqlite3")
    yield s
    s.close()


@contextlib.asynccontextmanager
async def running(uplink: Uplink) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(uplink.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await task


async def test_only_ack_aa_delivers_and_ae_rejects_with_reason(store: StoreWriter) -> None:
    ids = record(store, 2, CLOCK)
    links: list[ScriptedLink] = []

    def factory(on_event: Callable[[LinkEvent], None]) -> Link:
        links.append(ScriptedLink(on_event))
        return links[-1]

    uplink = Uplink(store=store, link_factory=factory, agent_id=AGENT, clock=CLOCK)
    async with running(uplink):
        await until(lambda: bool(links) and len(links[0].up()) == 2)
        link = links[0]
        for _payload, mid in link.up():
            link.on_event(PublishDone(mid, 0, "Success"))
        await asyncio.sleep(0.3)  # time itself: a while after the PUBACKs, no ACK yet
        assert {status_of(store, i) for i in ids} == {"sent"}  # a PUBACK is not a delivery
        link.on_event(ack_for(ids[0], "AA"))
        link.on_event(ack_for(ids[1], "AE", "OBX-5 not numeric"))
        await until(lambda: status_of(store, ids[1]) == "rejected")
    assert status_of(store, ids[0]) == "delivered"
    rejected = store.outbox.rejected()
    assert rejected[0]["id"] == ids[1] and rejected[0]["ack_text"] == "OBX-5 not numeric"


async def test_puback_failure_is_not_a_delivery(store: StoreWriter) -> None:
    [message_id] = record(store, 1, CLOCK)
    links: list[ScriptedLink] = []

    def factory(on_event: Callable[[LinkEvent], None]) -> Link:
        links.append(ScriptedLink(on_event))
        return links[-1]

    uplink = Uplink(store=store, link_factory=factory, agent_id=AGENT, clock=CLOCK)
    async with running(uplink):
        await until(lambda: bool(links) and len(links[0].up()) == 1)
        link = links[0]
        link.on_event(PublishDone(link.up()[0][1], 0x87, "Not authorized"))
        await until(lambda: uplink.stats.puback_failures == 1)
        # even an ACK-less wait does not make it delivered; it waits for its retry
        await asyncio.sleep(0.3)  # time itself: a while of that wait
        assert status_of(store, message_id) == "pending"
    assert "0x87" in (uplink.stats.last_error or "")


async def test_silence_means_the_same_message_again(store: StoreWriter) -> None:
    [message_id] = record(store, 1, CLOCK)
    links: list[ScriptedLink] = []

    def factory(on_event: Callable[[LinkEvent], None]) -> Link:
        links.append(ScriptedLink(on_event))
        return links[-1]

    uplink = Uplink(
        store=store, link_factory=factory, agent_id=AGENT, clock=CLOCK, ack_timeout_s=0.5
    )
    async with running(uplink):
        await until(lambda: bool(links) and len(links[0].up()) >= 2)
        link = links[0]
        first, second = link.up()[0][0], link.up()[1][0]
        assert first == second and control_id_of(first) == message_id
        link.on_event(ack_for(message_id, "AA"))
        await until(lambda: status_of(store, message_id) == "delivered")
    assert uplink.stats.ack_timeouts >= 1


async def test_real_broker_refusing_a_publish_gives_puback_0x87(
    tmp_path: Path, store: StoreWriter
) -> None:
    """Mosquitto with an ACL that forbids the up topic answers PUBACK 0x87 to MQTT 5."""
    acl = tmp_path / "acl"
    acl.write_text(f"topic read {topics.ack(AGENT)}\ntopic readwrite {topics.state(AGENT)}\n")
    broker = LocalBroker(tmp_path / "broker", extra_config=(f"acl_file {acl}",)).start()
    try:
        [message_id] = record(store, 1, CLOCK)
        settings = LinkSettings(
            host="127.0.0.1",
            port=broker.port,
            client_id="acl-box",
            subscriptions=(topics.ack(AGENT),),
        )

        def factory(on_event: Callable[[LinkEvent], None]) -> Link:
            return MqttLink(settings, on_event)

        uplink = Uplink(store=store, link_factory=factory, agent_id=AGENT, clock=CLOCK)
        async with running(uplink):
            await until(lambda: uplink.stats.puback_failures >= 1, 15)
        assert status_of(store, message_id) == "pending"
        assert "0x87" in (uplink.stats.last_error or "")
    finally:
        broker.stop()
