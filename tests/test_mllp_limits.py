"""The MLLP listener's connection limits (issue 11).

The listener held 64 connections and refused the 65th: 1,000 idle ones locked the real
monitor out. Real parts: the daemon's own graph built from a TOML config (bootstrap:
the listener, the recorder, the SQLite store, the uplink to a real Mosquitto), real TCP
connections from many loopback addresses (Linux routes all of 127.0.0.0/8 to lo), and
the simulated monitor speaking MLLP. The admission rules, being pure, also get a
property test.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import pytest
from box_keys import init_keys_in
from hypothesis import given
from hypothesis import strategies as st
from waiting import until

from device_drivers.network.admission import ConnectionLimits, admit
from device_drivers.network.mllp import MllpFramer, MllpListener, frame_message
from device_drivers.simulators import mllp_monitor
from edge_agent.config import LISTENER_KEYS, ConfigError, parse
from edge_agent.daemon import Agent, bootstrap
from edge_agent.local_broker import LocalBroker, free_port
from sync.hl7.ack import parse_ack

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture(autouse=True)
def enough_file_descriptors() -> Iterator[None]:
    """1,000 client sockets here plus the listener's own: more than a default 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def box_config(tmp_path: Path, broker: LocalBroker, limits: str = "") -> str:
    return f"""
[agent]
id = "clinic-7"
data_dir = "{tmp_path / "box"}"
[uplink]
broker = "{broker.url}"
allow_insecure = true
[[device]]
id = "mllp-1"
driver = "hl7-mllp"
listen = "127.0.0.1:{free_port()}"
{limits}
[store]
commit_interval_ms = 50
"""


@contextlib.asynccontextmanager
async def running_box(
    tmp_path: Path, broker: LocalBroker, limits: str = ""
) -> AsyncIterator[tuple[Agent, MllpListener]]:
    init_keys_in(tmp_path / "box")
    agent = bootstrap(parse(box_config(tmp_path, broker, limits)))
    listener = agent.devices[0].transport
    assert isinstance(listener, MllpListener)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await asyncio.wait_for(listener.listening.wait(), 10)
        yield agent, listener
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        agent.store.close()


async def connect(port: int, source: str) -> Connection:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def closed_by_the_listener(conn: Connection, within_s: float) -> bool:
    """True once the listener has closed it (EOF or reset); False if open `within_s`."""
    try:
        data = await asyncio.wait_for(conn[0].read(65536), within_s)
    except TimeoutError:  # before OSError: TimeoutError is one
        return False
    except (ConnectionError, OSError):
        return True
    return data == b""


async def close_all(conns: list[Connection]) -> None:
    for _, writer in conns:
        writer.close()
    for _, writer in conns:
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def attackers(n: int) -> list[str]:
    """Source addresses other than the monitor's 127.0.0.1."""
    return [f"127.0.{2 + i // 250}.{1 + i % 250}" for i in range(n)]


def recorded_frames(agent: Agent) -> int:
    device = agent.store.devices.get("mllp-1")
    return device.frames if device else 0


async def test_a_monitor_gets_in_past_1000_idle_connections_and_stays(
    tmp_path: Path, broker: LocalBroker
) -> None:
    loop = asyncio.get_running_loop()
    async with running_box(tmp_path, broker) as (agent, listener):
        sources = attackers(250)
        idle = [await connect(listener.port, sources[i % 250]) for i in range(1000)]
        assert listener.open_connections == 64  # the default limit, held by the flood
        started = loop.time()
        log = mllp_monitor.MonitorLog()
        monitor = asyncio.create_task(
            mllp_monitor.run("127.0.0.1", listener.port, seed=5, rate_hz=5, count=10, log=log)
        )
        await until(lambda: bool(log.acks), 10, "the monitor's first ACK", every_s=0.01)
        first_ack_s = loop.time() - started
        assert first_ack_s < 10, "no ACK for the monitor within 10 s"
        # The flood goes on while the monitor works: it is never the one dropped.
        idle += [await connect(listener.port, sources[i % 250]) for i in range(300)]
        await asyncio.wait_for(monitor, 20)
        assert log.codes() == ["AA"] * 10 and log.connections == 1
        assert len(set(log.sent)) == 10
        assert listener.open_connections <= 64 and listener.refused == 0
        assert listener.dropped >= 1300 - 64
        # The last commit is at most one commit interval away.
        await until(lambda: recorded_frames(agent) >= 10, 10, "the ten frames recorded")
        assert recorded_frames(agent) == 10
        print(f"first ACK through 1000 idle connections after {first_ack_s * 1000:.0f} ms")
        await close_all(idle)


async def test_one_address_holds_at_most_its_limit_and_busy_ones_are_kept(
    tmp_path: Path, broker: LocalBroker
) -> None:
    limits = "max_connections_per_address = 2"
    async with running_box(tmp_path, broker, limits) as (_, listener):
        port = listener.port
        busy = await connect(port, "127.0.3.1")
        half = frame_message(mllp_monitor_message("HALF-1"))
        busy[1].write(half[:40])  # mid-message: never the one dropped
        await busy[1].drain()
        await until(lambda: listener.busy_connections >= 1, 5, "the listener to read them")
        idle = await connect(port, "127.0.3.1")
        newest = await connect(port, "127.0.3.1")
        assert await closed_by_the_listener(idle, 5)  # the idle one made room
        other = await connect(port, "127.0.3.2")  # another address is not affected
        assert not await closed_by_the_listener(other, 0.3)
        busy[1].write(half[40:])  # the busy one finishes its message and is answered
        await busy[1].drain()
        framer = MllpFramer()
        frames: list[bytes] = []
        while not frames:
            data = await asyncio.wait_for(busy[0].read(65536), 5)
            assert data, "the busy connection was closed"
            frames = framer.feed(data)
        ack = parse_ack(frames[0].decode())
        assert (ack.code, ack.acked) == ("AA", "HALF-1")
        assert not await closed_by_the_listener(newest, 0.3)
        assert listener.open_connections == 3
        await close_all([busy, idle, newest, other])


async def test_idle_connections_are_closed_after_the_idle_timeout(
    tmp_path: Path, broker: LocalBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="device_drivers.network.mllp")
    loop = asyncio.get_running_loop()
    async with running_box(tmp_path, broker, "idle_timeout_s = 1") as (_, listener):
        opened = loop.time()
        idle = [await connect(listener.port, "127.0.4.1") for _ in range(3)]
        log = mllp_monitor.MonitorLog()
        monitor = asyncio.create_task(
            mllp_monitor.run("127.0.0.1", listener.port, seed=6, rate_hz=5, count=12, log=log)
        )
        for conn in idle:
            assert await closed_by_the_listener(conn, 5)
        assert loop.time() - opened >= 1.0  # not before the timeout
        await asyncio.wait_for(monitor, 20)  # 2.4 s of messages: never idle for 1 s
        assert log.codes() == ["AA"] * 12 and log.connections == 1
        await close_all(idle)
    closed = [
        r.getMessage() for r in caplog.records if "disconnected (idle for 1 s" in r.getMessage()
    ]
    assert len(closed) == 3 and all("127.0.4.1:" in line for line in closed)


async def test_a_slowloris_is_ended_by_the_message_deadline(
    tmp_path: Path, broker: LocalBroker
) -> None:
    loop = asyncio.get_running_loop()
    async with running_box(tmp_path, broker, "message_timeout_s = 1") as (agent, listener):
        reader, writer = await connect(listener.port, "127.0.5.1")
        first_byte = loop.time()
        message = frame_message(mllp_monitor_message("SLOW-1"))
        closed = False
        for byte in message[:-2]:  # one byte every 0.2 s: never idle, never finished
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except (ConnectionError, OSError):
                closed = True
                break
            if await closed_by_the_listener((reader, writer), 0.2):
                closed = True
                break
            assert loop.time() - first_byte < 5, "still open 5 s after the first byte"
        assert closed
        elapsed = loop.time() - first_byte
        assert 1.0 <= elapsed < 3.0, elapsed

        def detail() -> str:
            device = agent.store.devices.get("mllp-1")
            return (device.state_detail if device else None) or ""

        await until(lambda: "no whole message within 1 s" in detail(), 10, "the device state")
        assert "no whole message within 1 s" in detail()
        writer.close()


async def test_an_endless_block_is_cut_at_the_cap_then_ended_by_the_deadline(
    tmp_path: Path, broker: LocalBroker
) -> None:
    async with running_box(tmp_path, broker, "message_timeout_s = 2") as (_, listener):
        reader, writer = await connect(listener.port, "127.0.6.1")
        writer.write(b"\x0bMSH|^~\\&|FLOOD||||20261122100005||ORU^R01|F-1|P|2.6\r")
        chunk = b"x" * 65536
        for _ in range(48):  # 3 MiB, three times the 1 MiB frame cap, no end block
            writer.write(chunk)
            await writer.drain()
        framer = MllpFramer()
        frames: list[bytes] = []
        while not frames:
            data = await asyncio.wait_for(reader.read(65536), 10)
            assert data, "closed before answering the cut block"
            frames = framer.feed(data)
        ack = parse_ack(frames[0].decode())
        assert (ack.code, ack.acked) == ("AR", "F-1") and "limit" in ack.text
        assert await closed_by_the_listener((reader, writer), 10)
        writer.close()


def mllp_monitor_message(control_id: str) -> bytes:
    return (
        "MSH|^~\\&|MON^0123456789ABCDEF^EUI-64||||20261122100005+0800||ORU^R01^ORU_R01|"
        f"{control_id}|P|2.6\rOBR|1||||||20261122100005+0800\r"
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1|96|262688^MDC_DIM_PERCENT^MDC|||||R"
    ).encode()


# --- config ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        ("max_connections = 0", "max_connections: must be between 1 and 1024, got 0"),
        ("max_connections = 8.5", "max_connections: must be a whole number"),
        ("max_connections_per_address = true", "must be a whole number"),
        ("idle_timeout_s = 0", "idle_timeout_s: must be between 1 and 86400"),
        ("message_timeout_s = 'soon'", "message_timeout_s: must be a number"),
        (
            "max_connections = 8\nmax_connections_per_address = 9",
            "max_connections_per_address: 9 is more than max_connections (8)",
        ),
    ],
)
def test_listener_keys_are_checked(
    tmp_path: Path, broker: LocalBroker, limits: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(box_config(tmp_path, broker, limits))
    assert [p for p in caught.value.problems if problem in p], caught.value.problems


def test_listener_keys_only_on_network_devices() -> None:
    text = """
[agent]
id = "clinic-7"
[uplink]
broker = "mqtt://127.0.0.1:1883"
allow_insecure = true
[[device]]
id = "spo2-1"
driver = "masimo-ascii"
port = "/dev/ttyUSB0"
idle_timeout_s = 30
"""
    with pytest.raises(ConfigError, match=r"idle_timeout_s: driver masimo-ascii does not listen"):
        parse(text)


def test_listener_keys_reach_the_listener(tmp_path: Path, broker: LocalBroker) -> None:
    limits = "max_connections = 8\nidle_timeout_s = 45\nmessage_timeout_s = 20"
    init_keys_in(tmp_path / "box")
    agent = bootstrap(parse(box_config(tmp_path, broker, limits)))
    try:
        listener = agent.devices[0].transport
        assert isinstance(listener, MllpListener)
        assert listener.limits == ConnectionLimits(8, 4, 45.0, 20.0)
    finally:
        agent.store.close()


def test_listener_keys_are_documented() -> None:
    root = Path(__file__).resolve().parent.parent
    example = (root / "systemd" / "edge-agent.toml.example").read_text(encoding="utf-8")
    readme = (root / "README.md").read_text(encoding="utf-8")
    security = (root / "docs" / "security.md").read_text(encoding="utf-8")
    for key in LISTENER_KEYS:
        assert f"{key} = " in example and f"{key} = " in readme and f"`{key}`" in security


# --- the admission rules, pure ----------------------------------------------------------


@dataclass(eq=False)
class Conn:
    address: str
    busy: bool
    delivered: int
    last_active: float


CONNS = st.builds(
    Conn,
    address=st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]),
    busy=st.booleans(),
    delivered=st.integers(0, 3),
    last_active=st.floats(0, 1000, allow_nan=False),
)


def _key(c: Conn) -> tuple[bool, float]:
    return (c.delivered > 0, c.last_active)


@given(
    arrivals=st.lists(st.tuples(CONNS, st.booleans()), max_size=60),
    total=st.integers(1, 8),
    per_address=st.integers(1, 8),
)
def test_admission_keeps_the_limits_and_drops_only_the_longest_idle(
    arrivals: list[tuple[Conn, bool]], total: int, per_address: int
) -> None:
    limits = ConnectionLimits(total, min(per_address, total))
    held: list[Conn] = []
    for new, _ in arrivals:
        decision = admit(held, new.address, limits)
        same = [c for c in held if c.address == new.address]
        for victim in decision.drop:
            assert not victim.busy and any(victim is c for c in held)
        if decision.admit:
            # whatever was dropped was the first idle one in line where room was needed
            if len(same) >= limits.max_connections_per_address:
                idle_same = [c for c in same if not c.busy]
                assert decision.drop[0] is min(idle_same, key=_key)
            held = [c for c in held if all(c is not v for v in decision.drop)] + [new]
        else:
            assert decision.drop == () and decision.reason
            full_address = len(same) >= limits.max_connections_per_address
            assert (full_address and all(c.busy for c in same)) or (
                len(held) >= limits.max_connections
            )
        assert len(held) <= limits.max_connections
        counts = [sum(c.address == a for c in held) for a in {c.address for c in held}]
        assert all(n <= limits.max_connections_per_address for n in counts)


@given(held=st.lists(CONNS, min_size=1, max_size=8))
def test_when_full_the_new_connection_gets_in_if_anyone_is_idle(held: list[Conn]) -> None:
    limits = ConnectionLimits(len(held), len(held))
    decision = admit(held, "192.0.2.9", limits)  # an address holding nothing yet
    idle = [c for c in held if not c.busy]
    assert decision.admit is bool(idle)
    if idle:
        assert decision.drop == (min(idle, key=_key),)


class Limits(TypedDict, total=False):
    """ConnectionLimits' keyword arguments, any of them given."""

    max_connections: int
    max_connections_per_address: int
    idle_timeout_s: float
    message_timeout_s: float


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": 4, "max_connections_per_address": 5}, "per_address"),
        ({"idle_timeout_s": 0}, "idle_timeout_s"),
        ({"message_timeout_s": -1}, "message_timeout_s"),
    ],
)
def test_impossible_limits_are_refused(kwargs: Limits, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConnectionLimits(**kwargs)
