"""A driver that exists only in this test runs end to end: one module's worth of code.

Adding a driver is one module plus its declaration (docs/architecture.md, "Adding a
driver"). The toy below is that module: a made-up line protocol (a bedside thermometer
printing `TEMP 36.8` and a newline; no real device speaks it), its framer, its decoder
and its declaration, registered at run time and nothing else changed. Then, on real
parts: `config check` accepts a device of it, a pseudo-terminal feeds it, the daemon's
own graph (daemon.bootstrap) records it, the uplink sends an ORU^R01 naming the
declared device specialisation to a real Mosquitto, and the reference gateway stores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import gateway_keys
import paho.mqtt.client as mqtt
import pytest
from box_keys import init_keys_in
from paho.mqtt.enums import CallbackAPIVersion

from device_drivers import registry
from device_drivers.declaration import (
    Binding,
    Driver,
    Lane,
    Results,
    SerialLine,
    SerialPort,
    Uplink,
    Yields,
    every_channel,
)
from device_drivers.simulators.pty import open_pty
from edge_agent.cli import main
from edge_agent.config import load
from edge_agent.daemon import bootstrap
from edge_agent.local_broker import LocalBroker
from edge_agent.model import Decoded, DecodeError, Reading
from sync import topics
from sync.gateway.service import Gateway
from sync.gateway.store import GatewayStore

# --- the toy driver: framer, decoder, declaration ---------------------------------------

_LINE = re.compile(rb"TEMP (\d{2}\.\d)")
_MAX_LINE = 64


class ToyFramer:
    """Lines ended by LF; a line longer than _MAX_LINE is emitted as it is (and rejected)."""

    def __init__(self) -> None:
        self._held = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._held.extend(data)
        lines = []
        while b"\n" in self._held or len(self._held) > _MAX_LINE:
            end = self._held.find(b"\n")
            cut = end if 0 <= end <= _MAX_LINE else _MAX_LINE
            lines.append(bytes(self._held[:cut]))
            del self._held[: cut + 1 if cut == end else cut]
        return lines


def decode_toy(line: bytes) -> Decoded:
    match = _LINE.fullmatch(line)
    if match is None:
        raise DecodeError(f"not a TEMP line: {line[:20]!r}", 0)
    value = Decimal(match.group(1).decode("ascii"))
    return Decoded(readings=(Reading("MDC_TEMP_BODY", value, "MDC_DIM_DEGC"),))


TOY = Driver(
    id="toy-thermo",
    summary="a made-up bedside thermometer: one 'TEMP 36.8' line a reading",
    source=SerialPort(SerialLine(baudrate=9600)),
    framer=ToyFramer,
    decoder_for=every_channel(decode_toy),
    yields=Yields(numerics=True),
    profile="MDC_DEV_SPEC_PROFILE_TEMP",
    binding=Binding.MONITOR,
    results=Results.LIVE,
)

# --- the test ----------------------------------------------------------------------------

AGENT = "amb-toy"


@pytest.fixture
def toy() -> Iterator[Driver]:
    registry.register(TOY)
    try:
        yield TOY
    finally:
        registry.unregister(TOY.id)


class AckWatch:
    """Sees the gateway's ACKs on the box's ack topic, as the box does: an ACK AA means
    the gateway has stored the message durably (it answers after its commit)."""

    def __init__(self, broker: LocalBroker, loop: asyncio.AbstractEventLoop) -> None:
        self.accepted: list[str] = []
        self.arrived = asyncio.Event()
        self._subscribed = asyncio.Event()
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

        def on_subscribe(*_args: object) -> None:
            loop.call_soon_threadsafe(self._subscribed.set)

        def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
            found = re.search(r"MSA\|AA\|([^|\r]+)", message.payload.decode("utf-8", "replace"))
            if found:
                loop.call_soon_threadsafe(self._accept, found.group(1))

        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect("127.0.0.1", broker.port)
        client.subscribe(topics.ack(AGENT), qos=1)
        client.loop_start()
        self._client = client

    def _accept(self, control_id: str) -> None:
        self.accepted.append(control_id)
        self.arrived.set()

    async def subscribed(self, timeout_s: float) -> None:
        await asyncio.wait_for(self._subscribed.wait(), timeout_s)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _config(tmp_path: Path, broker_url: str, port: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f"""
[agent]
id = "{AGENT}"
data_dir = "{tmp_path / "agent"}"
[uplink]
broker = "{broker_url}"
allow_insecure = true
ack_timeout_s = 5
[store]
commit_interval_ms = 50
[[device]]
id = "thermo-1"
driver = "{TOY.id}"
port = "{port}"
""",
        encoding="utf-8",
    )
    return path


def _segment(message: str, name: str) -> list[str]:
    return next(s for s in message.split("\r") if s.startswith(name + "|")).split("|")


def test_without_its_declaration_the_toy_is_no_driver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, "mqtt://127.0.0.1:1883", "/dev/ttyUSB0")
    assert main(["config", "check", "--config", str(path)]) == 2
    assert "'toy-thermo' is not a device driver" in capsys.readouterr().err


def test_the_toy_framer_cuts_lines_however_reads_split_them() -> None:
    stream = b"TEMP 36.8\nTEMP 37.1\n" + b"x" * 70 + b"\nTEMP 36.9\n"
    whole = ToyFramer().feed(stream)
    for cut in range(len(stream) + 1):
        framer = ToyFramer()
        assert framer.feed(stream[:cut]) + framer.feed(stream[cut:]) == whole
    assert [decode_toy(line).readings[0].value for line in whole if line.startswith(b"T")] == [
        Decimal("36.8"),
        Decimal("37.1"),
        Decimal("36.9"),
    ]


async def test_a_driver_registered_in_a_test_runs_end_to_end(
    tmp_path: Path, broker: LocalBroker, toy: Driver, capsys: pytest.CaptureFixture[str]
) -> None:
    assert TOY.uplink == Uplink(lane=Lane.VITALS)  # each frame's reading goes up
    master, port = open_pty()
    path = _config(tmp_path, broker.url, port)
    assert main(["config", "check", "--config", str(path)]) == 0, capsys.readouterr().err
    assert "ok (agent amb-toy, 1 device(s)" in capsys.readouterr().out
    config = load(path)

    gateway_db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(gateway_db)
    gateway = Gateway(broker.url, gateway_db, client_id="toy-gateway")
    gateway.start()
    acks = AckWatch(broker, asyncio.get_running_loop())
    init_keys_in(config.agent.data_dir)
    agent = bootstrap(config)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    try:
        gateway.wait_connected(10)
        await acks.subscribed(10)
        # The thermometer prints a reading every half second until the county has one.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        tenths = 365
        while not acks.arrived.is_set():
            assert loop.time() < deadline, "no ACK AA from the gateway within 30 s"
            assert not running.done(), running
            os.write(master, b"TEMP %d.%d\n" % divmod(tenths, 10))
            tenths += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(acks.arrived.wait(), 0.5)
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
        agent.close()
        acks.close()
        gateway.stop()
        os.close(master)

    box = sqlite3.connect(f"file:{config.agent.db_path}?mode=ro", uri=True)
    try:
        sent = {
            row[0]: row[1:]
            for row in box.execute(
                "SELECT x.id, f.driver, o.metric, o.value FROM outbox x JOIN raw_frame f"
                " ON f.id = x.raw_frame_id JOIN observation o ON o.raw_frame_id = f.id"
            )
        }
    finally:
        box.close()
    control_id = next(c for c in acks.accepted if c in sent)  # a reading the county has
    frame_driver, metric, value = sent[control_id]
    assert (frame_driver, metric) == ("toy-thermo", "MDC_TEMP_BODY")
    assert Decimal(value) >= Decimal("36.5")

    county = GatewayStore.open_readonly(gateway_db)  # the message as received, opened
    try:
        (stored,) = county.conn.execute(
            "SELECT o.value FROM message m JOIN observation o ON o.message_id = m.id"
            " WHERE m.agent = ? AND m.control_id = ? AND o.metric = 'MDC_TEMP_BODY'",
            (AGENT, control_id),
        ).fetchone()
        (message,) = [
            m["payload"]
            for m in county.messages()
            if (m["agent"], m["control_id"]) == (AGENT, control_id)
        ]
    finally:
        county.close()
    assert Decimal(stored) == Decimal(value)
    # The declared device specialisation, in OBR-4 and in the MDS row (IHE PCD-01).
    assert "MDC_DEV_SPEC_PROFILE_TEMP" in _segment(message, "OBR")[4]
    assert any(
        s.startswith("OBX|") and "MDC_DEV_SPEC_PROFILE_TEMP" in s.split("|")[3]
        for s in message.split("\r")
    )
