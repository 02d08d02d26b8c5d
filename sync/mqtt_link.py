"""The MQTT 5 edge: paho-mqtt behind a small interface, events converted to our own values.

paho runs its network loop in its own thread and keeps unsent messages in memory only,
so nothing here is the queue: the SQLite outbox is (eclipse/paho.mqtt.python issues #223, #634). This
module only publishes what it is given and reports what happened, as LinkEvent values
passed to a callback that must be thread-safe (the uplink hands them to its event loop).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.identifiers import CLIENT_ID

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Connected:
    session_present: bool


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str


@dataclass(frozen=True, slots=True)
class PublishDone:
    """The broker's PUBACK. MQTT 5 reason codes >= 0x80 are failures (0x87 not authorised)."""

    mid: int
    reason_code: int
    reason: str

    @property
    def failed(self) -> bool:
        return self.reason_code >= 0x80


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    content_type: str | None


LinkEvent = Connected | Disconnected | PublishDone | Received


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


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]  # paho leaves it untyped


def _reason_value(rc: ReasonCode | int) -> int:
    return rc.value if isinstance(rc, ReasonCode) else int(rc)


class MqttLink:
    """One MQTT 5 connection with a persistent session, reconnecting with backoff."""

    def __init__(self, settings: LinkSettings, on_event: Callable[[LinkEvent], None]) -> None:
        self.settings = settings
        self._on_event = on_event
        self._connected = False
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            # It names the persistent session at the broker: the same rule as every id
            # that becomes a key. Topics come from sync.topics, which checks the agent id.
            client_id=CLIENT_ID.check(settings.client_id),
            protocol=mqtt.MQTTv5,
        )
        client.max_inflight_messages_set(settings.max_in_flight)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        if settings.tls:
            # paho's defaults verify the server certificate and host name; never relax them.
            context = ssl.create_default_context(
                cafile=str(settings.ca_file) if settings.ca_file else None
            )
            if settings.client_cert and settings.client_key:
                context.load_cert_chain(str(settings.client_cert), str(settings.client_key))
            client.tls_set_context(context)
        if settings.username:
            client.username_pw_set(settings.username, settings.password)
        if settings.will_topic:
            client.will_set(settings.will_topic, settings.will_payload, qos=1, retain=True)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        self._client = client

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> None:
        props = _properties(PacketTypes.CONNECT)
        # A persistent session: ACKs the gateway sends while we are in a dead zone are
        # queued by the broker and delivered when the 4G link comes back.
        props.SessionExpiryInterval = self.settings.session_expiry_s
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()

    def stop(self, *, final_topic: str | None = None, final_payload: bytes = b"") -> None:
        if final_topic and self._connected:
            info = self._client.publish(final_topic, final_payload, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        content_type: str | None = None,
    ) -> int:
        if not self._connected:
            raise LinkDown("not connected to the broker")
        props = _properties(PacketTypes.PUBLISH)
        if content_type:
            props.ContentType = content_type
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise LinkDown(f"publish refused locally: {mqtt.error_string(info.rc)}")
        return int(info.mid)

    # --- paho callbacks (paho's thread) ------------------------------------------------

    def _handle_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the connection: %s", reason_code)
            self._on_event(Disconnected(reason=f"connect refused: {reason_code}"))
            return
        for topic in self.settings.subscriptions:
            client.subscribe(topic, qos=1)
        self._connected = True
        log.info(
            "connected to %s:%d (session present: %s)",
            self.settings.host,
            self.settings.port,
            flags.session_present,
        )
        self._on_event(Connected(session_present=bool(flags.session_present)))

    def _handle_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was = self._connected
        self._connected = False
        if was:
            log.warning("disconnected from broker: %s", reason_code)
        self._on_event(Disconnected(reason=str(reason_code)))

    def _handle_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._on_event(
            PublishDone(mid=mid, reason_code=_reason_value(reason_code), reason=str(reason_code))
        )

    def _handle_message(
        self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        content_type = None
        props = message.properties
        if props is not None and hasattr(props, "ContentType"):
            content_type = str(props.ContentType)
        self._on_event(
            Received(topic=message.topic, payload=bytes(message.payload), content_type=content_type)
        )
