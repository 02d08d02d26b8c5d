"""The box's uplink link: one MQTT 5 client (sync.mqtt_client) set up as the box needs it.

A persistent session (the ACKs the gateway sends while the ambulance is in a dead zone
wait at the broker), a retained last will saying the box is offline, the ack and down
topics subscribed, back-off to 30 s. paho keeps unsent messages in memory only, so
nothing here is the queue: the SQLite outbox is (eclipse/paho.mqtt.python
issues #223, #634). The link publishes only while
connected (LinkDown otherwise: the row stays pending) and reports what happened as the
adapter's values, passed to a callback that must be thread-safe (the uplink hands them
to its event loop).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sync.mqtt_client import MqttClient, MqttEvent, MqttSettings, NotSent, Will

# What the link reports: Connected, Disconnected, Subscribed, PublishDone, Received.
LinkEvent = MqttEvent
# The final "offline" state message waits this long for its PUBACK when the box stops.
FINAL_PUBACK_WAIT_S = 2.0


class LinkDown(ConnectionError):
    """Publishing while the link is down: the outbox keeps the row pending."""


@dataclass(frozen=True, slots=True)
class LinkSettings:
    host: str
    port: int
    client_id: str
    tls: bool = False
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600
    will_topic: str | None = None
    will_payload: bytes = b""
    max_in_flight: int = 20
    subscriptions: tuple[str, ...] = ()


class MqttLink:
    """The uplink's Link (sync.uplink.Link) over one MqttClient."""

    def __init__(self, settings: LinkSettings, on_event: Callable[[LinkEvent], None]) -> None:
        self.settings = settings
        self._client = MqttClient(
            MqttSettings(
                host=settings.host,
                port=settings.port,
                # Topics come from sync.topics, which checks the agent id; the client id
                # is checked by the client.
                client_id=settings.client_id,
                tls=settings.tls,
                ca_file=settings.ca_file,
                client_cert=settings.client_cert,
                client_key=settings.client_key,
                username=settings.username,
                password=settings.password,
                keepalive_s=settings.keepalive_s,
                clean_start=False,
                session_expiry_s=settings.session_expiry_s,
                will=(
                    Will(settings.will_topic, settings.will_payload, retain=True)
                    if settings.will_topic
                    else None
                ),
                max_in_flight=settings.max_in_flight,
                subscriptions=settings.subscriptions,
                reconnect_min_s=1,
                reconnect_max_s=30,
            ),
            on_event,
        )

    @property
    def connected(self) -> bool:
        return self._client.connected

    def start(self) -> None:
        self._client.start()

    def stop(self, *, final_topic: str | None = None, final_payload: bytes = b"") -> None:
        if final_topic and self._client.connected:
            with contextlib.suppress(NotSent, TimeoutError):
                self._client.publish_and_wait(
                    final_topic, final_payload, retain=True, timeout_s=FINAL_PUBACK_WAIT_S
                )
        self._client.stop()

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        content_type: str | None = None,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> int:
        if not self._client.connected:
            raise LinkDown("not connected to the broker")
        try:
            return self._client.publish(
                topic,
                payload,
                retain=retain,
                content_type=content_type,
                user_properties=user_properties,
            )
        except NotSent as exc:
            raise LinkDown(f"publish refused locally: {exc}") from None
