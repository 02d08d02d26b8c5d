"""MQTT 5 through paho-mqtt: the one module that knows paho (an import-linter contract).

The box's uplink link (sync.mqtt_link), the county gateway (sync.gateway.service) and
the ER's one-shot reply (sync.gateway.reply) all use `MqttClient`; what they get back
are the values below, never a paho object (the habit aiomqtt has with paho).

What it guarantees (section numbers: OASIS "MQTT Version 5.0", 7 March 2019):
- MQTT 5 only, so a PUBACK carries a reason code. On MQTT 3.1.1 a broker that denies a
  publish by its ACL still answers a plain PUBACK and drops the data; on MQTT 5 it says
  0x87 "Not authorized" (§3.4.2.1). Every reason code >= 0x80 is a failure (§2.4):
  `PublishDone.failed`; below it, 0x10 "No matching subscribers" included, a success.
- QoS 1 for every publish and every subscription (our topics' contract).
- A client id is checked (edge_agent.identifiers.CLIENT_ID) before it names a session
  at the broker; none at all lets the broker assign one (§3.1.3.1), for a one-shot
  client that keeps no session.
- A persistent session is clean start 0 with a session expiry (§3.1.2.4, §3.1.2.11.2):
  the broker keeps subscriptions and queued QoS 1 messages across a dead zone, and
  sends again what was not acknowledged (§4.4).
- With `manual_ack` a received QoS 1 message is acknowledged only when the caller says
  so (`acknowledge`, with the `Delivery` it came with): the gateway PUBACKs after its
  durable store, so a crash in between means the broker delivers it again.
- Nothing from the network raises in paho's thread: a topic that is not UTF-8 (MQTT
  wants UTF-8, §1.5.4; paho raises when its topic is read) arrives as UNREADABLE_TOPIC.
- paho keeps what it has not sent in memory only: it is never the queue (the SQLite
  outbox is). A publish paho will not send now raises NotSent.

Events are delivered to `on_event` on paho's network thread, so it must be thread-safe
and quick (queue the event, return). TLS verifies the server's certificate and host name
with Python's defaults, never relaxed.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.identifiers import CLIENT_ID

log = logging.getLogger(__name__)

QOS = 1
# Reason codes from 0x80 up are failures (§2.4).
FAILURE = 0x80
# What a received message's topic reads as when it is not UTF-8.
UNREADABLE_TOPIC = "<topic that is not UTF-8>"

UserProperties = tuple[tuple[str, str], ...]


# --- what the rest of the code sees --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    session_present: bool


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection ended or was refused (reason "connect refused: ..."); unless the
    client was stopped it is tried again with back-off."""

    reason: str


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The broker's SUBACK for the subscriptions made on connecting."""

    refused: tuple[tuple[str, str], ...] = ()  # (topic filter, reason) the broker refused

    @property
    def ok(self) -> bool:
        return not self.refused


@dataclass(frozen=True, slots=True)
class PublishDone:
    """The broker's PUBACK for the publish that returned `mid`."""

    mid: int
    reason_code: int
    reason: str

    @property
    def failed(self) -> bool:
        return self.reason_code >= FAILURE


@dataclass(frozen=True, slots=True)
class Delivery:
    """The handle to acknowledge one received QoS 1 message (`MqttClient.acknowledge`)."""

    packet_id: int
    qos: int


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    content_type: str | None
    user_properties: UserProperties = ()
    # Set only with manual_ack: until acknowledged, the broker keeps the message for us.
    delivery: Delivery | None = None


MqttEvent = Connected | Disconnected | Subscribed | PublishDone | Received


class NotSent(ConnectionError):
    """paho did not send a publish (not connected, its in-flight queue full).

    While merely disconnected paho keeps the message and sends it after reconnecting;
    callers must not count on that (it is memory only)."""


@dataclass(frozen=True, slots=True)
class Will:
    """The message the broker publishes when the connection ends without DISCONNECT."""

    topic: str
    payload: bytes
    retain: bool = True


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str
    port: int
    client_id: str | None = None  # None: the broker assigns one (no session to resume)
    tls: bool = False
    ca_file: Path | None = None  # None with tls: the system's trusted CAs
    client_cert: Path | None = None
    client_key: Path | None = None
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    # A persistent session: clean_start=False and a session expiry (seconds).
    clean_start: bool = True
    session_expiry_s: int = 0
    will: Will | None = None
    max_in_flight: int = 20
    subscriptions: tuple[str, ...] = ()  # subscribed at QoS 1 on every connect
    manual_ack: bool = False
    reconnect_min_s: int = 1
    reconnect_max_s: int = 30


# --- paho, converted -----------------------------------------------------------------


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]  # paho leaves it untyped


def _reason_value(rc: ReasonCode | int) -> int:
    return rc.value if isinstance(rc, ReasonCode) else int(rc)


def _tls_context(settings: MqttSettings) -> ssl.SSLContext:
    # Python's defaults verify the server certificate and its host name; never relax them.
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if settings.client_cert and settings.client_key:
        context.load_cert_chain(str(settings.client_cert), str(settings.client_key))
    return context


def received_from(message: paho.MQTTMessage, *, manual_ack: bool) -> Received:
    """Our value for what paho received; never raises on what the network sent."""
    try:
        topic = message.topic
    except UnicodeDecodeError:
        topic = UNREADABLE_TOPIC
    content_type: str | None = None
    user_properties: UserProperties = ()
    props = message.properties
    if props is not None:
        if hasattr(props, "ContentType"):
            content_type = str(props.ContentType)
        if hasattr(props, "UserProperty"):
            user_properties = tuple((str(k), str(v)) for k, v in props.UserProperty)
    delivery = Delivery(message.mid, message.qos) if manual_ack and message.qos > 0 else None
    return Received(topic, bytes(message.payload), content_type, user_properties, delivery)


class MqttClient:
    """One MQTT 5 connection, its network thread, reconnecting with back-off."""

    def __init__(self, settings: MqttSettings, on_event: Callable[[MqttEvent], None]) -> None:
        self.settings = settings
        self._on_event = on_event
        self._connected = False
        self._stopping = False
        # publish_and_wait: the PUBACKs of publishes someone waits for (paho's thread
        # records them while _waiting > 0, the waiting thread takes its own).
        self._puback = threading.Condition()
        self._waiting = 0
        self._outcomes: dict[int, PublishDone] = {}
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            # It names the persistent session at the broker: the same rule as every id
            # that becomes a key.
            client_id=CLIENT_ID.check(settings.client_id) if settings.client_id is not None else "",
            protocol=paho.MQTTv5,
            manual_ack=settings.manual_ack,
        )
        client.max_inflight_messages_set(settings.max_in_flight)
        client.reconnect_delay_set(
            min_delay=settings.reconnect_min_s, max_delay=settings.reconnect_max_s
        )
        if settings.tls:
            client.tls_set_context(_tls_context(settings))
        if settings.username:
            client.username_pw_set(settings.username, settings.password)
        if settings.will:
            will = settings.will
            client.will_set(will.topic, will.payload, qos=QOS, retain=will.retain)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_subscribe = self._handle_subscribe
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        self._client = client

    @property
    def connected(self) -> bool:
        return self._connected

    def _where(self) -> str:
        return f"{self.settings.client_id or 'mqtt'} at {self.settings.host}:{self.settings.port}"

    def _connect_properties(self) -> Properties | None:
        if not self.settings.session_expiry_s:
            return None  # absent: the session ends with the connection (§3.1.2.11.2)
        props = _properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        return props

    # --- life cycle --------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; after any loss, again with back-off."""
        self._open(self._client.connect_async)

    def connect(self) -> None:
        """Connect now (OSError when the broker cannot be reached), then run as `start`."""
        self._open(self._client.connect)

    def _open(self, connect: Callable[..., object]) -> None:
        self._stopping = False
        connect(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=self.settings.clean_start,
            properties=self._connect_properties(),
        )
        self._client.loop_start()

    def disconnect(self) -> None:
        """Disconnect and stay disconnected (what is not acknowledged stays with the broker)."""
        self._stopping = True
        self._client.disconnect()

    def stop(self) -> None:
        """Disconnect and end the network thread."""
        self.disconnect()
        self._client.loop_stop()
        self._connected = False

    # --- publishing --------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        content_type: str | None = None,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> int:
        """Publish at QoS 1; its PUBACK comes as PublishDone with the id returned."""
        props = _properties(PacketTypes.PUBLISH)
        if content_type:
            props.ContentType = content_type
        if user_properties:
            props.UserProperty = list(user_properties)
        info = self._client.publish(topic, payload, qos=QOS, retain=retain, properties=props)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise NotSent(paho.error_string(info.rc))
        return int(info.mid)

    def publish_and_wait(
        self,
        topic: str,
        payload: bytes,
        *,
        timeout_s: float,
        retain: bool = False,
        content_type: str | None = None,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> PublishDone:
        """Publish at QoS 1 and wait for the broker's PUBACK (look at `failed`).

        NotSent when paho does not send it; TimeoutError when no PUBACK comes in time."""
        with self._puback:
            self._waiting += 1
        try:
            mid = self.publish(
                topic,
                payload,
                retain=retain,
                content_type=content_type,
                user_properties=user_properties,
            )
            with self._puback:
                if not self._puback.wait_for(lambda: mid in self._outcomes, timeout_s):
                    raise TimeoutError(f"no PUBACK within {timeout_s:g} s")
                return self._outcomes.pop(mid)
        finally:
            with self._puback:
                self._waiting -= 1
                if not self._waiting:
                    self._outcomes.clear()

    def acknowledge(self, delivery: Delivery) -> None:
        """PUBACK a received message (manual_ack); from here on the broker forgets it."""
        self._client.ack(delivery.packet_id, delivery.qos)

    # --- paho's callbacks (its network thread) -----------------------------------------

    def _handle_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("%s: the broker refused the connection: %s", self._where(), reason_code)
            self._on_event(Disconnected(reason=f"connect refused: {reason_code}"))
            return
        if self.settings.subscriptions:
            client.subscribe([(topic, QOS) for topic in self.settings.subscriptions])
        self._connected = True
        log.info("%s: connected (session present: %s)", self._where(), flags.session_present)
        self._on_event(Connected(session_present=bool(flags.session_present)))

    def _handle_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was = self._connected
        self._connected = False
        if self._stopping:
            log.info("%s: disconnected: %s", self._where(), reason_code)
        elif was:
            log.warning("%s: disconnected: %s", self._where(), reason_code)
        self._on_event(Disconnected(reason=str(reason_code)))

    def _handle_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = tuple(
            (topic, str(rc))
            for topic, rc in zip(self.settings.subscriptions, reason_codes, strict=False)
            if rc.is_failure
        )
        if refused:
            log.error("%s: the broker refused the subscription: %s", self._where(), refused)
        self._on_event(Subscribed(refused=refused))

    def _handle_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        done = PublishDone(mid=mid, reason_code=_reason_value(reason_code), reason=str(reason_code))
        if self._waiting:  # read without the lock: a waiter counts itself before publishing
            with self._puback:
                self._outcomes[mid] = done
                self._puback.notify_all()
        self._on_event(done)

    def _handle_message(
        self, client: paho.Client, userdata: Any, message: paho.MQTTMessage
    ) -> None:
        self._on_event(received_from(message, manual_ack=self.settings.manual_ack))
