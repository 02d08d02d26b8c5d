"""Alerts from reading to the county: raised once, cleared, sent as ORU^R40, acknowledged.

Real parts: a SQLite store, the recorder with the clinical rules, the HL7 writer and
reader, and (last test) the uplink and gateway on a real Mosquitto.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import gateway_keys
import pytest
from waiting import until

from edge_agent.alerts import KIND_ORU_R40, PRIORITY_ALERT
from edge_agent.clock import SystemClock
from edge_agent.local_broker import LocalBroker
from edge_agent.model import Decoded, DeviceAlarm, Frame, Reading
from edge_agent.recorder import Recorder
from edge_agent.rules.engine import ClinicalRules
from edge_agent.store import StoreWriter
from sync import topics
from sync.gateway.service import Gateway
from sync.gateway.store import GatewayStore
from sync.hl7.inbound import parse_inbound
from sync.mqtt_link import LinkEvent, LinkSettings, MqttLink
from sync.outbox_messages import build_message
from sync.uplink import Link, Uplink

AGENT = "amb-017"
MMHG = "MDC_DIM_MMHG"


def bp(sys_: int, dia: int) -> Decoded:
    return Decoded(
        readings=(
            Reading("MDC_PRESS_BLD_NONINV_SYS", Decimal(sys_), MMHG),
            Reading("MDC_PRESS_BLD_NONINV_DIA", Decimal(dia), MMHG),
            Reading("MDC_PRESS_BLD_NONINV_MEAN", Decimal((sys_ + 2 * dia) // 3), MMHG),
        )
    )


class Box:
    """A store and a recorder with the rules, recording frames as the daemon does."""

    def __init__(self, path: Path) -> None:
        self.store = StoreWriter.open(path)
        self.clock = SystemClock.create()
        self.recorder = Recorder(self.store, rules=ClinicalRules(news2_window_s=900))

    def record(self, device: str, driver: str, decoded: Decoded) -> None:
        frame = Frame(device, driver, b"frame", self.clock.wall_ns(), self.clock.mono_ns(), "b")
        with self.store.transaction():
            self.recorder.record(frame, lambda _b: decoded)

    def alert_messages(self) -> list[tuple[str, str, str]]:
        """(code, phase, outbox status) of every ORU^R40 queued, in order."""
        return self.store.conn.execute(
            "SELECT a.code, m.phase, o.status FROM alert_message m JOIN alert a ON a.id ="
            " m.alert_id JOIN outbox o ON o.id = m.outbox_id ORDER BY o.created_wall_ns, m.rowid"
        ).fetchall()

    def message(self, outbox_id: str) -> str:
        row = self.store.outbox.get(outbox_id)
        assert row is not None
        return build_message(
            self.store, row, agent_id=AGENT, tz="Asia/Shanghai", now_wall_ns=self.clock.wall_ns()
        )


def offline_box(tmp_path: Path) -> tuple[Path, Box]:
    """A config for a box with no broker in reach (CLI tests) and its store's Box."""
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[agent]\nid = "{AGENT}"\ndata_dir = "{tmp_path / "agent"}"\n'
        '[uplink]\nbroker = "mqtt://127.0.0.1:1"\nallow_insecure = true\n',
        encoding="utf-8",
    )
    return cfg, Box(tmp_path / "agent" / "edge-agent.sqlite3")


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = Box(tmp_path / "agent.db")
    yield b
    b.store.close()


def test_an_urgent_bp_is_one_alert_while_it_lasts_and_ends_when_it_goes(box: Box) -> None:
    box.record("cuff-1", "ble-bp", bp(185, 95))
    box.record("cuff-1", "ble-bp", bp(192, 112))  # still urgent: the same alert, seen again
    (alert,) = box.store.alerts.recent()
    assert (alert.code, alert.priority, alert.state, alert.source) == (
        "RULE_BP_URGENT",
        "high",
        "active",
        "rule",
    )
    assert (alert.metric, alert.value, alert.unit) == ("MDC_PRESS_BLD_NONINV_SYS", "185", MMHG)
    assert alert.text == "收缩压 185 mmHg ≥ 180 mmHg，需紧急转诊"
    assert alert.last_seen_wall_ns is not None and alert.last_seen_wall_ns > alert.raised_wall_ns
    box.record("cuff-1", "ble-bp", bp(150, 92))  # below the urgent thresholds: gone
    assert box.store.alerts.recent() == []
    assert box.alert_messages() == [
        ("RULE_BP_URGENT", "start", "pending"),
        ("RULE_BP_URGENT", "end", "pending"),
    ]
    rows = [r for r in box.store.outbox.due(box.clock.wall_ns() + 1, 20) if r.kind == KIND_ORU_R40]
    assert {r.priority for r in rows} == {PRIORITY_ALERT}


def test_an_alert_message_is_pcd04_and_reads_back(box: Box) -> None:
    box.record("cuff-1", "ble-bp", bp(185, 95))
    (start,) = [
        r for r in box.store.outbox.due(box.clock.wall_ns() + 1, 20) if r.kind == KIND_ORU_R40
    ]
    text = box.message(start.id)
    assert "|ORU^R40^ORU_R01|" in text
    message = parse_inbound(text)  # our checks and hl7apy strict on the ORU_R01 structure
    assert message.alert is not None
    assert (message.alert.code, message.alert.phase, message.alert.priority) == (
        "RULE_BP_URGENT",
        "start",
        "PH",
    )
    assert message.alert.text_en == "systolic 185 mmHg >= 180: urgent referral"
    (value,) = [o for o in message.observations if o.metric == "MDC_PRESS_BLD_NONINV_SYS"]
    assert value.value == "185" and value.unit == MMHG


def test_a_hypoglycaemia_and_its_recovery(box: Box) -> None:
    def glucose(mmol: str, *flags: str) -> Decoded:
        return Decoded(
            readings=(
                Reading(
                    "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD",
                    Decimal(mmol),
                    "MDC_DIM_MILLI_MOLE_PER_L",
                    None,
                    flags,
                ),
            )
        )

    box.record("glu-1", "ble-glucose", glucose("3.5"))
    box.record("glu-1", "ble-glucose", glucose("17.2", "meal:fasting"))  # low gone, high now
    assert [(c, p) for c, p, _ in box.alert_messages()] == [
        ("RULE_GLU_LOW_URGENT", "start"),
        ("RULE_GLU_LOW_URGENT", "end"),
        ("RULE_GLU_HIGH_URGENT", "start"),
    ]
    box.record("glu-1", "ble-glucose", glucose("6.1", "meal:fasting", "control-solution"))
    assert [a.code for a in box.store.alerts.recent()] == ["RULE_GLU_HIGH_URGENT"]  # a meter check


def test_a_device_alarm_is_raised_once_and_ended_when_the_device_drops_it(box: Box) -> None:
    spo2 = Reading("MDC_PULS_OXIM_SAT_O2", Decimal(84), "MDC_DIM_PERCENT")
    alarm = DeviceAlarm("MASIMO_SPO2_LOW", "high", "SpO2 LOW")
    for _ in range(3):
        box.record("monitor-1", "masimo-ascii", Decoded(readings=(spo2,), alarms=(alarm,)))
    box.record("monitor-1", "masimo-ascii", Decoded(readings=(spo2,)))
    assert [(c, p) for c, p, _ in box.alert_messages() if c.startswith("MASIMO")] == [
        ("MASIMO_SPO2_LOW", "start"),
        ("MASIMO_SPO2_LOW", "end"),
    ]


def test_news2_from_the_monitor_raises_an_alert_naming_what_is_missing(box: Box) -> None:
    vitals = Decoded(
        readings=(
            Reading("MDC_PULS_OXIM_SAT_O2", Decimal(90), "MDC_DIM_PERCENT"),  # 3
            Reading("MDC_ECG_HEART_RATE", Decimal(135), "MDC_DIM_BEAT_PER_MIN"),  # 3
            Reading("MDC_RESP_RATE", Decimal(26), "MDC_DIM_RESP_PER_MIN"),  # 3
        )
    )
    box.record("monitor-1", "intellivue", vitals)
    news = [a for a in box.store.alerts.recent() if a.code.startswith("NEWS2")]
    assert [(a.code, a.priority, a.value) for a in news] == [("NEWS2_HIGH", "high", "9")]
    assert news[0].text.startswith("NEWS2 9分，高风险") and "缺" in news[0].text
    assert "missing air_or_oxygen" in (news[0].text_en or "")
    rules = ClinicalRules(news2_window_s=900)
    now = rules.news2_now(box.store, box.clock.wall_ns(), None)
    assert (now.score, now.risk, now.complete) == (9, "high", False)


def test_alerts_are_listed_and_acknowledged_from_the_cli(tmp_path: Path) -> None:
    cfg, b = offline_box(tmp_path)
    b.record("cuff-1", "ble-bp", bp(200, 120))
    b.store.close()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge_agent.cli", *args, "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = cli("alerts", "--json")
    assert listed.returncode == 0, listed.stderr
    (alert,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (alert["code"], alert["state"], alert["ack_user"]) == ("RULE_BP_URGENT", "active", None)
    # Who acknowledged it is the OS user running the command, not what --user says.
    me = pwd.getpwuid(os.getuid()).pw_name
    acked = cli("alerts", "ack", str(alert["id"]), "--user", "李医生")
    assert acked.returncode == 0, acked.stderr
    assert "--user is ignored" in acked.stderr
    after = json.loads(acked.stdout)
    assert (after["state"], after["ack_user"]) == ("acknowledged", me)
    assert after["ack_wall_ns"] >= alert["raised_wall_ns"]
    again = cli("alerts", "ack", str(alert["id"]))
    assert json.loads(again.stdout)["ack_wall_ns"] == after["ack_wall_ns"]  # the first one kept
    missing = cli("alerts", "ack", "999")
    assert missing.returncode == 2 and "no such alert" in missing.stderr
    status = json.loads(cli("status", "--json").stdout)
    assert [a["code"] for a in status["alerts"]] == ["RULE_BP_URGENT"]
    assert status["news2"]["missing"]  # the box measured no vitals: all missing
    assert "alert" in cli("status").stdout


async def test_an_alert_reaches_the_county_gateway_and_is_acked(
    tmp_path: Path, broker: LocalBroker
) -> None:
    gateway_keys.made(tmp_path / "gateway.sqlite3")
    gateway = Gateway(broker.url, tmp_path / "gateway.sqlite3", client_id="alert-gateway")
    gateway.start()
    gateway.wait_connected(10)
    b = Box(tmp_path / "agent.db")
    try:
        b.record("cuff-1", "ble-bp", bp(185, 95))
        b.record("cuff-1", "ble-bp", bp(140, 85))
        settings = LinkSettings(
            host="127.0.0.1",
            port=broker.port,
            client_id="alert-box",
            subscriptions=(topics.ack(AGENT),),
        )

        def factory(on_event: Callable[[LinkEvent], None]) -> Link:
            return MqttLink(settings, on_event)

        uplink = Uplink(store=b.store, link_factory=factory, agent_id=AGENT, clock=b.clock)
        stop = asyncio.Event()
        task = asyncio.create_task(uplink.run(stop))
        try:
            await until(
                lambda: all(s == "delivered" for _, _, s in b.alert_messages()),
                20,
                "the alert's start and end delivered",
            )
        finally:
            stop.set()
            await task
        assert [(c, p, s) for c, p, s in b.alert_messages()] == [
            ("RULE_BP_URGENT", "start", "delivered"),
            ("RULE_BP_URGENT", "end", "delivered"),
        ]
    finally:
        b.store.close()
        gateway.stop()
    county = GatewayStore.open_readonly(str(tmp_path / "gateway.sqlite3"))
    try:
        events = county.status()["alerts"]
    finally:
        county.close()
    assert sorted((e["code"], e["phase"], e["priority"]) for e in events) == [
        ("RULE_BP_URGENT", "end", "PH"),
        ("RULE_BP_URGENT", "start", "PH"),
    ]


def test_the_crews_observations_complete_news2_and_move_its_alert(tmp_path: Path) -> None:
    """Scale 2 (hypercapnic), air and ACVPU from `edge-agent visit observe`: SpO2 90 %
    scores 3 on scale 1 but 0 on scale 2 on air; new confusion (C) scores 3 again."""
    cfg, b = offline_box(tmp_path)
    b.record(
        "monitor-1",
        "intellivue",
        Decoded(
            readings=(
                Reading("MDC_PULS_OXIM_SAT_O2", Decimal(90), "MDC_DIM_PERCENT"),
                Reading("MDC_ECG_HEART_RATE", Decimal(95), "MDC_DIM_BEAT_PER_MIN"),
                Reading("MDC_RESP_RATE", Decimal(18), "MDC_DIM_RESP_PER_MIN"),
                Reading("MDC_PRESS_BLD_NONINV_SYS", Decimal(124), MMHG),
                Reading("MDC_TEMP_BODY", Decimal("37.2"), "MDC_DIM_DEGC"),
            )
        ),
    )
    assert [a.code for a in b.store.alerts.recent()] == ["NEWS2_LOW_MEDIUM"]  # SpO2 90 on scale 1
    b.store.close()

    def observe(*args: str) -> dict[str, object]:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "edge_agent.cli",
                "visit",
                "observe",
                *args,
                "--config",
                str(cfg),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        result: dict[str, object] = json.loads(out.stdout)
        return result

    news = observe("--spo2-scale", "2", "--air", "--acvpu", "A", "--user", "张医生")
    assert (news["score"], news["risk"], news["complete"], news["scale"]) == (1, "low", True, 2)
    store = StoreWriter.open(tmp_path / "agent" / "edge-agent.sqlite3")
    try:
        assert store.alerts.recent() == []  # the low-medium alert has ended
    finally:
        store.close()
    news = observe("--acvpu", "c")  # the scale stays with the patient
    assert (news["score"], news["risk"], news["scale"]) == (4, "low-medium", 2)
    store = StoreWriter.open(tmp_path / "agent" / "edge-agent.sqlite3")
    try:
        assert [a.code for a in store.alerts.recent()] == ["NEWS2_LOW_MEDIUM"]
    finally:
        store.close()


def test_alert_type_says_whether_it_is_about_the_patient_or_the_device(box: Box) -> None:
    """PCD-04 alert type: SP for the patient's values, ST for the device's own state."""
    spo2 = Reading("MDC_PULS_OXIM_SAT_O2", Decimal(84), "MDC_DIM_PERCENT")
    from device_drivers.serial.masimo import decode_line

    line = b"11/22/26 10:00:05 SPO2=084% BPM=072 PI=01.20 SPCO=--.-% SPMET=--.-%"
    line += b" DESAT=-- PIDELTA=+-- ALARM=0042 EXC=000000"  # SpO2 low + low battery
    decoded = decode_line(line)
    assert {a.code: a.physiological for a in decoded.alarms} == {
        "MASIMO_SPO2_LOW": True,
        "MASIMO_LOW_BATTERY": False,
    }
    box.record("monitor-1", "masimo-ascii", Decoded(readings=(spo2,), alarms=decoded.alarms))
    kinds = {}
    for row in box.store.outbox.due(box.clock.wall_ns() + 1, 20):
        if row.kind == KIND_ORU_R40:
            alert = parse_inbound(box.message(row.id)).alert
            assert alert is not None
            kinds[alert.code] = alert.kind
    # (SpO2 84 % also scores NEWS2 3 on its own: a rule's alert, about the patient.)
    assert kinds == {"MASIMO_SPO2_LOW": "SP", "MASIMO_LOW_BATTERY": "ST", "NEWS2_LOW_MEDIUM": "SP"}


def test_alert_text_with_backslashes_reads_back_once_unescaped() -> None:
    """The gateway reads components already unescaped (er7.component): a second
    unescape turned a crew's "\\\\" into nothing (found by the ADT^A14 property test)."""
    import datetime as dt
    import zoneinfo

    from sync.hl7.pcd01 import DeviceIdentity
    from sync.hl7.pcd04 import AlertEvent, build_oru_r40

    now = dt.datetime(2026, 11, 23, 9, 40, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
    text = build_oru_r40(
        AlertEvent(
            "R40-ESC",
            AGENT,
            now,
            now,
            "start",
            "RULE_BP_URGENT",
            "路径 C:\\\\急救 ^|~&",
            "path \\\\",
            "high",
            True,
            DeviceIdentity("cuff-1", "ble-bp", None, "MDC_DEV_SPEC_PROFILE_BP"),
        )
    )
    alert = parse_inbound(text).alert
    assert alert is not None
    assert (alert.text, alert.text_en) == ("路径 C:\\\\急救 ^|~&", "path \\\\")
