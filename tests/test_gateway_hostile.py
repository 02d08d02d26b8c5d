"""Gateway input is hostile input (issue 11), on a real Mosquitto with real sheets.

Any box can publish anything on its own topic, past the broker's ACL: a 12-lead whose
MSH-10 is `../../../../outside/PWNED` made the gateway write PWNED.png and .pdf outside
its folder, and `edge/v1/../up` was stored as agent `..`. Identifiers are checked where
they enter (docs/contracts.md); paths come from the store's own row ids.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import queue
import stat
import subprocess
import sys
import tempfile
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gateway_keys
import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from test_ecg_uplink import waves
from test_gateway import oru
from test_identifiers import NEAR_IDS, by_the_words
from waiting import wait_until

from device_drivers.simulators.ecg_cart import synthetic_12_lead
from edge_agent.identifiers import AGENT_ID, CONTROL_ID, IdentifierError
from edge_agent.local_broker import LocalBroker
from edge_agent.model import Statement
from sync.gateway.service import Gateway, _Inbound
from sync.gateway.sheet_files import SheetPathError, sheet_path, write_sheet
from sync.gateway.store import GatewayStore
from sync.hl7.ack import AckResult, parse_ack
from sync.hl7.inbound import parse_inbound
from sync.hl7.pcd01 import DeviceIdentity, build_oru_r01
from sync.mqtt_client import Delivery
from sync.uplink import wire_payload

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
AGENT = "amb-017"
CART = DeviceIdentity("cart-1", "ecg-scp", None, "MDC_DEV_SPEC_PROFILE_HYDRA")
PWNED = "../../../../outside/PWNED"  # the MSH-10, exactly


def twelve_lead_text(control_id: str, agent: str = AGENT, seed: int = 1) -> str:
    """A 2 s 12-lead ORU^R01 (ER7) as the box builds it, with this MSH-10 and MSH-4."""
    record = synthetic_12_lead(seconds=2.0, seed=seed, start=dt.datetime(2026, 11, 23, 9, 30))
    record = dataclasses.replace(record, statements=(Statement("Sinus rhythm"),))
    return build_oru_r01(
        control_id=control_id,
        agent_id=agent,
        sent_at=dt.datetime(2026, 11, 23, 9, 31, tzinfo=TZ),
        device=CART,
        patient=None,
        observations=[],
        waveforms=waves(record),
        statements=["Sinus rhythm"],
    )


def twelve_lead(control_id: str, agent: str = AGENT, seed: int = 1) -> tuple[bytes, str]:
    """The same as the box's uplink puts it on the wire (zlib-compressed above 4 kB)."""
    return wire_payload(twelve_lead_text(control_id, agent, seed))


class Sender:
    """A bare paho client: publishes on any topic (what a hostile box can do), reads ACKs."""

    def __init__(self, broker: LocalBroker) -> None:
        self.acks: queue.Queue[tuple[str, AckResult]] = queue.Queue()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="hostile-box",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_message = lambda c, u, m: self.acks.put(
            (m.topic, parse_ack(m.payload.decode()))
        )
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe("edge/v1/+/ack", qos=1)  # every ACK, whatever its agent
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes | str, content_type: str | None = None) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho leaves it untyped
        if content_type:
            props.ContentType = content_type
        info = self.client.publish(topic, data, qos=1, properties=props)
        info.wait_for_publish(5)

    def ack(self, timeout: float = 15) -> tuple[str, AckResult]:
        return self.acks.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def sender(broker: LocalBroker) -> Iterator[Sender]:
    s = Sender(broker)
    yield s
    s.close()


def start_gateway(broker: LocalBroker, db: Path, sheets: Path) -> Gateway:
    gateway_keys.made(db)
    gateway = Gateway(broker.url, db, client_id="hostile-test-gw", sheets_dir=sheets)
    gateway.start()
    gateway.wait_connected(10)
    return gateway


def read(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    store = GatewayStore.open_readonly(db)
    try:
        return [tuple(r) for r in store.conn.execute(sql, params).fetchall()]
    finally:
        store.close()


def kept_rejected(db: Path) -> list[dict[str, Any]]:
    """The refused messages as kept, their bytes opened (GatewayStore.kept_rejected)."""
    store = GatewayStore.open_readonly(db)
    try:
        return store.kept_rejected()
    finally:
        store.close()


def sheets_recorded(db: Path) -> int:
    return int(read(db, "SELECT COUNT(*) FROM ecg")[0][0]) if db.exists() else 0


def files_outside(root: Path, inside: Path) -> list[Path]:
    """Sheet-like files under `root` that are not under `inside`."""
    return [
        p
        for p in root.rglob("*")
        if p.suffix in (".png", ".pdf") and not p.resolve().is_relative_to(inside.resolve())
    ]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_msh10_path_traversal_writes_nothing_outside_the_sheets_folder(
    tmp_path: Path, broker: LocalBroker, sender: Sender
) -> None:
    # <sheets>/amb-017/../../../.. is tmp_path: the old gateway wrote tmp_path/outside/PWNED.*
    sheets = tmp_path / "gw" / "county" / "sheets"
    outside = tmp_path / "outside"
    outside.mkdir()
    db = tmp_path / "gw" / "gateway.sqlite3"
    gateway = start_gateway(broker, db, sheets)
    try:
        sender.publish(f"edge/v1/{AGENT}/up", *twelve_lead(PWNED))
        topic, refused = sender.ack()
        # The honest 12-lead after it: its sheet is drawn after anything queued before.
        sender.publish(f"edge/v1/{AGENT}/up", *twelve_lead("ECG-AFTER"))
        _, accepted = sender.ack()
        wait_until(lambda: sheets_recorded(db) >= 1, 30, "the honest 12-lead's sheet")
    finally:
        gateway.stop()
    assert list(outside.iterdir()) == []
    assert files_outside(tmp_path, sheets) == []
    assert topic == f"edge/v1/{AGENT}/ack"
    assert (refused.code, refused.acked, refused.error_code) == ("AR", "UNKNOWN", "102")
    assert "MSH-10" in refused.text and "'/'" in refused.text
    assert (accepted.code, accepted.acked) == ("AA", "ECG-AFTER")
    # kept as received, under the topic's agent, with no key made of the bad id
    ((agent, control_id, code, reason, payload, kept_topic),) = [
        (r["agent"], r["control_id"], r["ack_code"], r["reason"], r["payload"], r["topic"])
        for r in kept_rejected(db)
    ]
    assert (agent, control_id, code, kept_topic) == (AGENT, None, "AR", f"edge/v1/{AGENT}/up")
    # The reason names the field, not the value (a sender's MSH-10 can be anything).
    assert "MSH-10" in reason and PWNED not in reason and payload == twelve_lead(PWNED)[0]
    assert read(db, "SELECT control_id FROM message") == [("ECG-AFTER",)]
    ((png, pdf),) = read(db, "SELECT png_path, pdf_path FROM ecg")
    message_id = read(db, "SELECT id FROM message")[0][0]
    assert Path(png) == sheets.resolve() / AGENT / f"{message_id}.png"
    assert Path(pdf).read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize(
    "level",
    [
        "..",  # the edge/v1/../up
        ".",
        "a" * 65,  # one longer than an agent id may be
        "救护车-1",  # not ASCII
        "amb 017",  # a blank
        "amb-017\\..",
    ],
)
def test_a_topic_whose_agent_is_not_a_valid_id_is_refused_not_stored_as_that_agent(
    tmp_path: Path, broker: LocalBroker, sender: Sender, level: str
) -> None:
    sheets = tmp_path / "gw" / "sheets"
    db = tmp_path / "gw" / "gateway.sqlite3"
    topic = f"edge/v1/{level}/up"
    payload, content_type = twelve_lead("ECG-1", agent=level)  # MSH-4 matches the topic
    gateway = start_gateway(broker, db, sheets)
    try:
        sender.publish(topic, payload, content_type)
        sender.publish(f"edge/v1/{AGENT}/up", *twelve_lead("ECG-2"))
        _, after = sender.ack()  # the message after it is answered: the first was handled
        wait_until(lambda: sheets_recorded(db) >= 1, 30, "the honest 12-lead's sheet")
    finally:
        gateway.stop()
    assert (after.code, after.acked) == ("AA", "ECG-2")
    assert sender.acks.empty()  # no ACK went anywhere for the refused one
    assert read(db, "SELECT DISTINCT agent FROM message") == [(AGENT,)]
    ((agent, control_id, reason, kept, kept_topic),) = [
        (r["agent"], r["control_id"], r["reason"], r["payload"], r["topic"])
        for r in kept_rejected(db)
    ]
    assert (agent, control_id, kept, kept_topic) == (None, None, payload, topic)
    assert reason.startswith("no ACK sent: topic") and "\n" not in reason
    assert level not in reason  # the rule broken, not the sender's text
    assert files_outside(tmp_path, sheets) == []
    assert sorted(p.name for p in sheets.iterdir()) == [AGENT]


def test_one_ambulance_cannot_overwrite_another_ones_sheet(
    tmp_path: Path, broker: LocalBroker, sender: Sender
) -> None:
    sheets = tmp_path / "gw" / "sheets"
    db = tmp_path / "gw" / "gateway.sqlite3"
    gateway = start_gateway(broker, db, sheets)
    try:
        sender.publish("edge/v1/amb-001/up", *twelve_lead("ECG-SAME", "amb-001", seed=1))
        assert sender.ack()[1].code == "AA"
        wait_until(lambda: sheets_recorded(db) == 1, 30, "amb-001's sheet")
        ((first_png,),) = read(db, "SELECT png_path FROM ecg")
        before = digest(Path(first_png))
        # the same MSH-10 from another ambulance is its own message and its own sheet
        sender.publish("edge/v1/amb-002/up", *twelve_lead("ECG-SAME", "amb-002", seed=2))
        assert sender.ack()[1].code == "AA"
        # and a traversal aimed at amb-001's folder is refused
        sender.publish("edge/v1/amb-002/up", *twelve_lead("../amb-001/ECG-SAME", "amb-002"))
        assert sender.ack()[1].code == "AR"
        sender.publish("edge/v1/amb-002/up", *twelve_lead("..%2Famb-001%2F1", "amb-002"))
        assert sender.ack()[1].code == "AR"
        wait_until(lambda: sheets_recorded(db) == 2, 30, "amb-002's sheet")
    finally:
        gateway.stop()
    rows = read(db, "SELECT agent, control_id, png_path FROM ecg ORDER BY message_id")
    assert [(a, c) for a, c, _ in rows] == [("amb-001", "ECG-SAME"), ("amb-002", "ECG-SAME")]
    assert Path(rows[0][2]).parent.name == "amb-001" and Path(rows[1][2]).parent.name == "amb-002"
    assert digest(Path(first_png)) == before
    assert digest(Path(rows[0][2])) != digest(Path(rows[1][2]))
    assert sorted(p.name for p in (sheets / "amb-001").iterdir()) == ["1.pdf", "1.png"]


def test_symlinks_planted_in_the_sheets_folder_are_never_written_through(
    tmp_path: Path, broker: LocalBroker, sender: Sender
) -> None:
    sheets = tmp_path / "gw" / "sheets"
    db = tmp_path / "gw" / "gateway.sqlite3"
    outside = tmp_path / "outside"
    outside.mkdir()
    targets = [outside / name for name in ("passwd", "other-sheet.png")]
    for target in targets:
        target.write_bytes(b"not yours")
    # at the sheet's name, for this gateway (row id 1) and for the old one (MSH-10)
    (sheets / AGENT).mkdir(parents=True)
    (sheets / AGENT / "1.png").symlink_to(targets[0])
    (sheets / AGENT / "ECG-1.png").symlink_to(targets[1])
    # and another agent's whole folder pointing outside
    (sheets / "amb-002").symlink_to(outside, target_is_directory=True)
    gateway = start_gateway(broker, db, sheets)
    try:
        sender.publish(f"edge/v1/{AGENT}/up", *twelve_lead("ECG-1"))
        sender.publish("edge/v1/amb-002/up", *twelve_lead("ECG-2", "amb-002"))
        codes = sorted(sender.ack()[1].code for _ in range(2))
        wait_until(lambda: sheets_recorded(db) == 2, 30, "both sheets recorded")
    finally:
        gateway.stop()
    assert codes == ["AA", "AA"]  # the messages are stored whatever the disk holds
    assert [t.read_bytes() for t in targets] == [b"not yours", b"not yours"]
    assert sorted(p.name for p in outside.iterdir()) == ["other-sheet.png", "passwd"]
    rows = dict(
        (a, (png, err)) for a, png, err in read(db, "SELECT agent, png_path, render_error FROM ecg")
    )
    png, error = rows[AGENT]
    assert error is None and not Path(png).is_symlink()
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png, error = rows["amb-002"]
    assert png is None and "outside" in error


def test_a_stored_row_with_an_invalid_agent_is_not_drawn_on_restart(
    tmp_path: Path, broker: LocalBroker
) -> None:
    """A store written before agent ids were checked may hold agent '..': the redraw at
    start records why, and writes nothing."""
    sheets = tmp_path / "gw" / "sheets"
    db = tmp_path / "gw" / "gateway.sqlite3"
    text = twelve_lead_text("OLD-1", agent="..")
    gateway_keys.made(db)
    store = GatewayStore.open(db)
    try:
        with store.transaction():
            store.store_message("..", parse_inbound(text), text, 1)
    finally:
        store.close()
    gateway = start_gateway(broker, db, sheets)
    try:
        wait_until(lambda: sheets_recorded(db) == 1, 30, "the redraw recorded")
    finally:
        gateway.stop()
    ((png, error),) = read(db, "SELECT png_path, render_error FROM ecg")
    assert png is None and "agent id '..'" in error
    assert files_outside(tmp_path, sheets) == [] and not any(sheets.rglob("*.png"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--agent", "../amb-001", "--ref", "ECG-1"], "agent id '../amb-001'"),
        (["--agent", "amb-017/#", "--ref", "ECG-1"], "agent id 'amb-017/#'"),
        (["--agent", "amb-017", "--ref", "../../x"], "MSH-10"),
    ],
)
def test_gateway_reply_checks_the_agent_and_ref_before_sending(
    argv: list[str], message: str
) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent.cli",
            "gateway",
            "reply",
            "--broker",
            "mqtt://127.0.0.1:1",  # nothing listens there: the check comes first
            "--status",
            "received",
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: reply --") and message in lines[0]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--share-group", "county/+", "share group 'county/+'"),
        ("--share-group", "#", "share group '#'"),
        ("--client-id", "gw 1", "MQTT client id 'gw 1'"),
    ],
)
def test_gateway_run_checks_its_share_group_and_client_id(
    tmp_path: Path, flag: str, value: str, message: str
) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent.cli",
            "gateway",
            "run",
            "--broker",
            "mqtt://127.0.0.1:1",
            "--db",
            str(tmp_path / "g.sqlite3"),
            flag,
            value,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_msh10_and_msh4_checks_do_not_refuse_honest_messages(
    tmp_path: Path, broker: LocalBroker, sender: Sender
) -> None:
    """Control ids the box makes (26-character ULIDs) and others' UUIDs still pass."""
    db = tmp_path / "gw" / "gateway.sqlite3"
    gateway = start_gateway(broker, db, tmp_path / "gw" / "sheets")
    try:
        for control_id in ("01JD5ZQ3V6K2X8M4N7P9R0S1T2", "3f1c2b9e-8d7a-4c6b-9e5f-1a2b3c4d5e6f"):
            sender.publish(f"edge/v1/{AGENT}/up", oru(control_id))
            _, ack = sender.ack()
            assert (ack.code, ack.acked) == ("AA", control_id)
    finally:
        gateway.stop()


# --- sheet paths -----------------------------------------------------------------------


@given(agent=NEAR_IDS, message_id=st.integers(min_value=-5, max_value=2**63))
def test_every_sheet_path_stays_inside_the_sheets_folder(agent: str, message_id: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "sheets"
        ok = by_the_words(AGENT_ID, agent) and message_id >= 1
        try:
            path = sheet_path(root, agent, message_id, ".png")
        except (IdentifierError, SheetPathError):
            assert not ok
            return
        assert ok
        assert path == root.resolve() / agent / f"{message_id}.png"
        assert path.resolve().is_relative_to(root.resolve())


@given(
    agent=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True),
    message_id=st.integers(min_value=1, max_value=10**12),
    data=st.binary(max_size=200),
)
def test_a_written_sheet_holds_its_bytes_and_nothing_else_is_written(
    agent: str, message_id: int, data: bytes
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "sheets"
        path = write_sheet(root, agent, message_id, ".pdf", data)
        again = write_sheet(root, agent, message_id, ".pdf", data[::-1])  # a redraw
        assert path == again and path.read_bytes() == data[::-1]
        written = sorted(p for p in Path(tmp).rglob("*") if p.is_file())
        assert written == [path]  # no temporary file left behind, nothing elsewhere


def test_a_sheet_path_refuses_what_is_not_a_row_id_or_a_sheet(tmp_path: Path) -> None:
    for message_id in (0, -1, True):
        with pytest.raises(SheetPathError, match="positive integer"):
            sheet_path(tmp_path, "amb-017", message_id, ".png")
    with pytest.raises(SheetPathError, match="suffix"):
        sheet_path(tmp_path, "amb-017", 1, ".sh")


def test_sheets_are_readable_by_the_gateways_group_only(tmp_path: Path) -> None:
    """Folders 0750, files 0640, under a permissive umask as under a strict one; a
    folder an older gateway made 0755 is narrowed by the next sheet written into it."""
    root = tmp_path / "sheets"
    (root / "amb-002").mkdir(parents=True, mode=0o755)
    os.chmod(root / "amb-002", 0o755)
    for umask, agent in ((0o000, "amb-001"), (0o077, "amb-003"), (0o022, "amb-002")):
        old = os.umask(umask)
        try:
            png = write_sheet(root, agent, 7, ".png", b"png")
        finally:
            os.umask(old)
        assert stat.S_IMODE(png.stat().st_mode) == 0o640, (umask, agent)
        assert stat.S_IMODE(png.parent.stat().st_mode) == 0o750, (umask, agent)
    assert stat.S_IMODE(root.stat().st_mode) == 0o750


def test_an_agent_folder_replaced_by_a_symlink_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "sheets"
    root.mkdir()
    (root / "amb-002").mkdir()
    (root / "amb-001").symlink_to(root / "amb-002", target_is_directory=True)
    with pytest.raises(SheetPathError, match="symlink"):
        write_sheet(root, "amb-001", 1, ".png", b"x")
    assert list((root / "amb-002").iterdir()) == []


# --- the gateway's intake, property-tested on a real store -------------------------------

VALID_IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True)


@settings(max_examples=60)
@given(
    level=NEAR_IDS | VALID_IDS,
    control_id=(NEAR_IDS | VALID_IDS).filter(lambda v: v.strip() == v and v != ""),
)
def test_the_gateway_stores_a_message_exactly_when_its_ids_are_valid(
    level: str, control_id: str
) -> None:
    """Whatever the topic level and MSH-10 (MSH-4 always matching the topic): a message
    row only for valid ids, else a `rejected` row whose keys are valid or NULL."""
    with tempfile.TemporaryDirectory() as tmp:
        gateway_keys.made(Path(tmp) / "g.sqlite3")
        gateway = Gateway("mqtt://127.0.0.1:1", Path(tmp) / "g.sqlite3", sheets_dir=Path(tmp))
        store = GatewayStore.open(Path(tmp) / "g.sqlite3")
        try:
            item = _Inbound(
                topic=f"edge/v1/{level}/up",
                payload=oru(control_id, agent=level).encode("utf-8", "surrogatepass"),
                content_type=None,
                delivery=Delivery(packet_id=1, qos=1),
                received_wall_ns=1,
            )
            with store.transaction():
                outcome = gateway._accept(store, item)
            messages = store.conn.execute("SELECT agent, control_id FROM message").fetchall()
            rejected = store.conn.execute("SELECT agent, control_id FROM rejected").fetchall()
        finally:
            store.close()
    if by_the_words(AGENT_ID, level) and by_the_words(CONTROL_ID, control_id):
        assert messages == [(level, control_id)] and rejected == []
        assert outcome is not None and outcome.ack_code == "AA"
        return
    assert messages == [] and len(rejected) == 1
    ((agent, key),) = rejected
    assert agent is None or AGENT_ID.valid(agent)
    assert key is None or CONTROL_ID.valid(key)
    if not by_the_words(AGENT_ID, level):
        assert (agent, key, outcome) == (None, None, None)  # no ACK to address
    else:
        assert agent == level and outcome is not None and outcome.ack_code in ("AE", "AR")
