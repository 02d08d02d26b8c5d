"""A box's uplink and a county gateway on the test's real Mosquitto (the fixture
`broker`), for the tests that run both ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import gateway_keys
from waiting import until

from edge_agent.clock import Clock
from edge_agent.local_broker import LocalBroker
from edge_agent.store import StoreWriter
from sync import topics
from sync.gateway.service import Gateway
from sync.gateway.store import GatewayStore
from sync.message_auth import MessageKey
from sync.mqtt_client import MqttClient, MqttEvent, MqttSettings, Received
from sync.mqtt_link import LinkEvent, LinkSettings, MqttLink
from sync.uplink import Link, Uplink


def box_uplink(
    store: StoreWriter,
    broker: LocalBroker,
    key: MessageKey | None,
    *,
    agent: str,
    clock: Clock,
    ack_timeout_s: float = 60,
) -> Uplink:
    """Box `agent`'s uplink on `broker`, subscribed to its ACKs and notices."""
    settings = LinkSettings(
        host="127.0.0.1",
        port=broker.port,
        client_id=f"edge-agent-{agent}",
        subscriptions=(topics.ack(agent), topics.down(agent)),
    )

    def factory(on_event: Callable[[LinkEvent], None]) -> Link:
        return MqttLink(settings, on_event)

    return Uplink(
        store=store,
        link_factory=factory,
        agent_id=agent,
        clock=clock,
        message_key=key,
        ack_timeout_s=ack_timeout_s,
    )


@contextlib.asynccontextmanager
async def running(uplink: Uplink) -> AsyncIterator[None]:
    """The uplink running (connected) until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(uplink.run(stop))
    try:
        await until(lambda: uplink.stats.connected, 10, "the box connected")
        yield
    finally:
        stop.set()
        await task


@contextlib.contextmanager
def gateway_on(broker: LocalBroker, db: Path) -> Iterator[Gateway]:
    """The county gateway on store `db` (its key file made unless there), subscribed."""
    gateway_keys.made(db)
    gateway = Gateway(broker.url, db, client_id="county-gateway-1")
    gateway.start()
    try:
        gateway.wait_connected(10)
        yield gateway
    finally:
        gateway.stop()


class BrokerClient:
    """A third client on the broker (neither the box nor the gateway): it records what
    is published on `subscriptions` and publishes what it likes (a forger, a replayer)."""

    def __init__(self, broker: LocalBroker, *subscriptions: str) -> None:
        self.seen: list[tuple[str, bytes, tuple[tuple[str, str], ...]]] = []

        def on_event(event: MqttEvent) -> None:
            if isinstance(event, Received):
                self.seen.append((event.topic, event.payload, tuple(event.user_properties)))

        self.client = MqttClient(
            MqttSettings(host="127.0.0.1", port=broker.port, subscriptions=subscriptions),
            on_event,
        )
        self.client.connect()

    def publish(self, topic: str, payload: bytes, properties: tuple[tuple[str, str], ...]) -> None:
        done = self.client.publish_and_wait(
            topic, payload, timeout_s=10, user_properties=properties
        )
        assert not done.failed

    def close(self) -> None:
        self.client.stop()


@contextlib.contextmanager
def enrolled_gateway(
    folder: Path, agent: str, key: MessageKey
) -> Iterator[tuple[Gateway, GatewayStore]]:
    """A gateway (not started) and its store in `folder`, `agent` enrolled with `key`:
    for feeding the gateway's handlers in-process."""
    db = folder / "gateway.sqlite3"
    gateway_keys.made(db)
    gateway = Gateway("mqtt://127.0.0.1:9", db)
    store = GatewayStore.open(db)
    with store.transaction():
        store.enroll(agent, key, 1)
    gateway._keys = store.message_keys()  # what start() reads
    try:
        yield gateway, store
    finally:
        store.close()
