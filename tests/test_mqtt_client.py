"""The MQTT adapter (sync.mqtt_client) against a real Mosquitto: what the box, the gateway
and the ER's reply count on, each seen as our own values."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as paho
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_agent.identifiers import IdentifierError
from edge_agent.local_broker import LocalBroker, free_port
from sync.mqtt_client import (
    UNREADABLE_TOPIC,
    Connected,
    Delivery,
    Disconnected,
    MqttClient,
    MqttEvent,
    MqttSettings,
    NotSent,
    PublishDone,
    Received,
    Subscribed,
    received_from,
)

E = TypeVar("E")
WAIT_S = 10.0


class Client:
    """An MqttClient whose events the test reads in order, waiting on them (no sleeps)."""

    def __init__(self, settings: MqttSettings) -> None:
        self.events: queue.Queue[MqttEvent] = queue.Queue()
        self.mqtt = MqttClient(settings, self.events.put)

    def next(self, kind: type[E], where: Callable[[E], bool] = lambda _e: True) -> E:
        """The next event of `kind` that `where` accepts (the others are passed over)."""
        while True:
            event = self.events.get(timeout=WAIT_S)
            if isinstance(event, kind) and where(event):
                return event

    def start(self) -> Client:
        self.mqtt.start()
        self.next(Connected)
        if self.mqtt.settings.subscriptions:
            assert self.next(Subscribed).ok
        return self


@pytest.fixture
def clients() -> Iterator[Callable[[MqttSettings], Client]]:
    made: list[Client] = []

    def make(settings: MqttSettings) -> Client:
        made.append(Client(settings))
        return made[-1]

    yield make
    for client in made:
        client.mqtt.stop()


def on(broker: LocalBroker, **fields: Any) -> MqttSettings:
    return dataclasses.replace(MqttSettings(host="127.0.0.1", port=broker.port), **fields)


def test_a_publish_gets_its_puback_and_arrives_as_our_value(
    broker: LocalBroker, clients: Callable[[MqttSettings], Client]
) -> None:
    box = clients(on(broker, client_id="box")).start()
    # Nobody subscribed yet: MQTT 5 says so (0x10, "No matching subscribers", §3.4.2.1),
    # which is below 0x80 and so a success, not a refusal.
    alone = box.mqtt.publish_and_wait("edge/v1/amb-017/up", b"first", timeout_s=WAIT_S)
    assert (alone.reason_code, alone.failed) == (0x10, False)
    gateway = clients(on(broker, client_id="gateway", subscriptions=("edge/v1/+/up",))).start()
    mid = box.mqtt.publish(
        "edge/v1/amb-017/up",
        b"MSH|^~\\&|",
        content_type="application/hl7-v2+er7; charset=utf-8",
        user_properties=[("mac", "ab12"), ("mac", "cd34")],
    )
    done = box.next(PublishDone, lambda e: e.mid == mid)
    assert (done.reason_code, done.reason, done.failed) == (0, "Success", False)
    assert gateway.next(Received) == Received(
        topic="edge/v1/amb-017/up",
        payload=b"MSH|^~\\&|",
        content_type="application/hl7-v2+er7; charset=utf-8",
        user_properties=(("mac", "ab12"), ("mac", "cd34")),
        delivery=None,  # acknowledged by the client itself: no manual_ack
    )


def test_a_publish_the_broker_refuses_is_a_failed_puback(
    tmp_path: Path, clients: Callable[[MqttSettings], Client]
) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite edge/v1/amb-017/#\n")
    broker = LocalBroker(tmp_path / "broker", extra_config=(f"acl_file {acl}",)).start()
    try:
        box = clients(on(broker, client_id="box")).start()
        refused = box.mqtt.publish_and_wait("edge/v1/amb-999/up", b"x", timeout_s=WAIT_S)
        assert (refused.reason_code, refused.reason, refused.failed) == (
            0x87,
            "Not authorized",
            True,
        )
        mid = box.mqtt.publish("edge/v1/amb-999/up", b"y")
        assert box.next(PublishDone, lambda e: e.mid == mid).failed
        allowed = box.mqtt.publish_and_wait("edge/v1/amb-017/up", b"z", timeout_s=WAIT_S)
        assert not allowed.failed
    finally:
        broker.stop()


# A gateway that stores what it receives and dies before its PUBACK: it prints each
# payload (flushed) and never acknowledges. Its will says it went away.
CRASHING_GATEWAY = """
import sys, threading
from sync.mqtt_client import MqttClient, MqttSettings, Received, Subscribed, Will

def on_event(event):
    if isinstance(event, Subscribed):
        print("subscribed", flush=True)
    elif isinstance(event, Received):
        print(event.payload.decode(), flush=True)

MqttClient(
    MqttSettings(
        host="127.0.0.1", port=int(sys.argv[1]), client_id="crash-gw", clean_start=False,
        session_expiry_s=3600, subscriptions=("edge/v1/+/up",), manual_ack=True,
        will=Will("gw/state", b"gone"),
    ),
    on_event,
).start()
threading.Event().wait()
"""


def test_a_message_not_acknowledged_before_a_crash_is_delivered_again(
    broker: LocalBroker, clients: Callable[[MqttSettings], Client]
) -> None:
    watcher = clients(on(broker, client_id="watcher", subscriptions=("gw/state",))).start()
    box = clients(on(broker, client_id="box")).start()
    crashing = subprocess.Popen(
        [sys.executable, "-c", CRASHING_GATEWAY, str(broker.port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert crashing.stdout is not None
        assert crashing.stdout.readline().strip() == "subscribed"
        box.mqtt.publish_and_wait("edge/v1/amb-017/up", b"m1", timeout_s=WAIT_S)
        assert crashing.stdout.readline().strip() == "m1"  # received, not acknowledged
    finally:
        crashing.send_signal(signal.SIGKILL)
        crashing.wait(WAIT_S)
        if crashing.stdout is not None:
            crashing.stdout.close()
    # The connection ended without DISCONNECT: the broker publishes the will.
    will = watcher.next(Received)
    assert (will.topic, will.payload) == ("gw/state", b"gone")

    settings = on(
        broker,
        client_id="crash-gw",
        clean_start=False,
        session_expiry_s=3600,
        subscriptions=("edge/v1/+/up",),
        manual_ack=True,
    )
    gateway = clients(settings)
    gateway.mqtt.start()
    assert gateway.next(Connected).session_present
    again = gateway.next(Received)
    assert again.payload == b"m1" and again.delivery is not None
    gateway.mqtt.acknowledge(again.delivery)
    # A round trip after the PUBACK on the same connection: the broker has read it (a
    # PUBACK still unread when the connection closes may be lost, and m1 come again).
    gateway.mqtt.publish_and_wait("gw/probe", b"", timeout_s=WAIT_S)
    gateway.mqtt.stop()

    # Acknowledged: the next session holds only what came since (m2), never m1 again.
    box.mqtt.publish_and_wait("edge/v1/amb-017/up", b"m2", timeout_s=WAIT_S)
    after = clients(settings)
    after.mqtt.start()
    assert after.next(Received).payload == b"m2"


def test_a_shared_subscription_gives_each_message_to_one_of_the_group(
    broker: LocalBroker, clients: Callable[[MqttSettings], Client]
) -> None:
    shared = ("$share/county-gateway/edge/v1/+/up",)
    first = clients(on(broker, client_id="gw-1", subscriptions=shared)).start()
    second = clients(on(broker, client_id="gw-2", subscriptions=shared)).start()
    box = clients(on(broker, client_id="box")).start()
    sent = [b"m%d" % i for i in range(10)]
    for payload in sent:
        box.mqtt.publish_and_wait("edge/v1/amb-017/up", payload, timeout_s=WAIT_S)
    got: dict[str, list[bytes]] = {"gw-1": [], "gw-2": []}
    arrived: queue.Queue[tuple[str, bytes]] = queue.Queue()

    def collect(name: str, client: Client) -> None:
        while True:
            try:
                event = client.events.get(timeout=WAIT_S)
            except queue.Empty:
                return
            if isinstance(event, Received):
                arrived.put((name, event.payload))

    for name, client in (("gw-1", first), ("gw-2", second)):
        threading.Thread(target=collect, args=(name, client), daemon=True).start()
    for _ in sent:
        name, payload = arrived.get(timeout=WAIT_S)
        got[name].append(payload)
    assert sorted(got["gw-1"] + got["gw-2"]) == sorted(sent)  # each once, none twice
    assert got["gw-1"] and got["gw-2"]  # both members of the group took some


def test_publishing_before_connecting_is_not_sent_and_bad_client_ids_are_refused() -> None:
    client = MqttClient(MqttSettings(host="127.0.0.1", port=1, client_id="box"), lambda _e: None)
    with pytest.raises(NotSent, match="not currently connected"):
        client.publish("edge/v1/amb-017/up", b"x")
    with pytest.raises(IdentifierError, match="MQTT client id"):
        MqttClient(MqttSettings(host="127.0.0.1", port=1, client_id="a/b"), lambda _e: None)
    with pytest.raises(OSError):
        MqttClient(MqttSettings(host="127.0.0.1", port=free_port()), lambda _e: None).connect()


def test_no_puback_in_time_is_a_timeout() -> None:
    """A peer that accepts the connection and never answers (a broker stuck on its disk)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        accepted: list[socket.socket] = []
        threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
        client = MqttClient(
            MqttSettings(host="127.0.0.1", port=server.getsockname()[1]), lambda _e: None
        )
        client.connect()
        try:
            with pytest.raises(TimeoutError, match=r"no PUBACK within 0\.3 s"):
                client.publish_and_wait("edge/v1/amb-017/up", b"x", timeout_s=0.3)
        finally:
            client.stop()
            for peer in accepted:
                peer.close()


def test_what_paho_received_becomes_our_value_and_never_raises() -> None:
    message = paho.MQTTMessage(mid=7, topic=b"edge/v1/\xff\xfe/up")
    message.payload = b"x"
    message.qos = 1
    received = received_from(message, manual_ack=True)
    # MQTT topics are UTF-8 (§1.5.4); paho raises when such a topic is read
    assert received == Received(UNREADABLE_TOPIC, b"x", None, (), Delivery(packet_id=7, qos=1))
    assert received_from(message, manual_ack=False).delivery is None
    message.qos = 0
    assert received_from(message, manual_ack=True).delivery is None  # nothing to acknowledge


# --- TLS from files, a client certificate, a user name and password -------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    ip: str | None = None,
) -> x509.Certificate:
    issuer_name, issuer_key = issuer or (subject, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip is not None:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(
    folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    (folder / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{stem}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[LocalBroker, int, Path]]:
    """A broker with a second listener: TLS, client certificate required, passwords."""
    pki = tmp_path / "pki"
    pki.mkdir()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("county test CA", ca_key, None, ca=True)
    _write(pki, "ca", ca, ca_key)
    for stem, ip in (("server", "127.0.0.1"), ("box", None)):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(pki, stem, _certificate(stem, key, ("county test CA", ca_key), ip=ip), key)
    passwords = pki / "passwords"
    passwords.touch()
    mosquitto_passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([mosquitto_passwd, "-b", str(passwords), "amb-017", "s3cret"], check=True)
    tls_port = free_port()
    broker = LocalBroker(
        tmp_path / "broker",
        extra_config=(
            f"password_file {passwords}",
            f"listener {tls_port} 127.0.0.1",
            f"cafile {pki / 'ca.crt'}",
            f"certfile {pki / 'server.crt'}",
            f"keyfile {pki / 'server.key'}",
            "require_certificate true",
        ),
    ).start()
    try:
        yield broker, tls_port, pki
    finally:
        broker.stop()


def test_tls_from_files_with_a_client_certificate_and_a_password(
    tls_broker: tuple[LocalBroker, int, Path], clients: Callable[[MqttSettings], Client]
) -> None:
    _broker, tls_port, pki = tls_broker

    def box(**changes: Any) -> MqttSettings:
        settings = MqttSettings(
            host="127.0.0.1",
            port=tls_port,
            client_id="edge-agent-amb-017",
            tls=True,
            ca_file=pki / "ca.crt",
            client_cert=pki / "box.crt",
            client_key=pki / "box.key",
            username="amb-017",
            password="s3cret",
        )
        return dataclasses.replace(settings, **changes)

    good = clients(box()).start()
    done = good.mqtt.publish_and_wait("edge/v1/amb-017/up", b"x", timeout_s=WAIT_S)
    assert not done.failed

    wrong = clients(box(client_id="wrong-password", password="guess"))
    wrong.mqtt.start()
    # Mosquitto answers a wrong password with CONNACK 0x87 (§3.2.2.2)
    assert wrong.next(Disconnected).reason == "connect refused: Not authorized"
    # The server's certificate is checked: not one the system trusts, so no connection.
    with pytest.raises(ssl.SSLCertVerificationError):
        MqttClient(box(client_id="no-ca", ca_file=None), lambda _e: None).connect()
    # And the broker checks ours: without a client certificate it ends the handshake.
    unnamed = clients(box(client_id="no-cert", client_cert=None, client_key=None))
    try:
        unnamed.mqtt.connect()
    except ssl.SSLError:
        pass  # TLS 1.2: the handshake itself fails
    else:
        # TLS 1.3: the broker's alert comes after the client's half of the handshake
        assert isinstance(unnamed.events.get(timeout=WAIT_S), Disconnected)
