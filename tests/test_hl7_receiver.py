"""What an HL7 receiver sees (issue 11, IHE PCD-01 / PCD-04), through the real recorder,
store and HL7 writer: the patient on alarms, MSH-18, an EUI-64 for every device, OBX-4 and
OBX-11 as the source said, a monitor's own PID forwarded or, when it names someone else
than the open visit's resident, held. Every message is checked by hl7apy strict."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from box_keys import KEYS, init_keys_in
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers import registry
from device_drivers.serial.intellivue import messages as intellivue_msg
from device_drivers.serial.intellivue.decode import decode_frame
from device_drivers.serial.intellivue.framing import FrameReader, encode_frame
from edge_agent import patients
from edge_agent.clock import SystemClock
from edge_agent.crypto.keyring import Keyring
from edge_agent.model import HELD_PATIENT_CONFLICT, OUTBOX_HELD, Decoded, Frame
from edge_agent.recorder import Recorded, Recorder
from edge_agent.rules.engine import ClinicalRules
from edge_agent.store import StoreWriter
from sync.hl7 import eui64
from sync.hl7.ack import build_ack
from sync.hl7.inbound import InboundAlert, parse_inbound
from sync.hl7.pcd04 import PCD04_PROFILE
from sync.outbox_messages import KIND_ORU_R40, build_message

AGENT = "amb-017"
RESIDENT = ("11010519491231002X", "王秀英")  # GB 11643's worked example
OTHER = ("440524188001010014", "李四")  # another valid resident identity number
EUI64_EI = re.compile(r"([0-9A-F]{16})\^\^\1\^EUI-64")


class Box:
    def __init__(self, path: Path, keys: Keyring = KEYS) -> None:
        self.path = path
        self.store = StoreWriter.open(path, keys)
        self.clock = SystemClock.create()
        self.recorder = Recorder(self.store, rules=ClinicalRules(news2_window_s=900))

    def record(
        self, device: str, driver: str, data: bytes, decoder: Callable[[bytes], Decoded]
    ) -> Recorded:
        frame = Frame(device, driver, data, self.clock.wall_ns(), self.clock.mono_ns(), "boot")
        return self.recorder.record(frame, decoder)

    def visit(self, resident: tuple[str, str], station: str = "*") -> int:
        patients.register(self.store, self.clock, national_id_number=resident[0], name=resident[1])
        return patients.start_visit(
            self.store, self.clock, national_id_number=resident[0], station=station
        )

    def build(self, message_id: str) -> str:
        row = self.store.outbox.get(message_id)
        assert row is not None
        text = build_message(
            self.store, row, agent_id=AGENT, tz="Asia/Shanghai", now_wall_ns=self.clock.wall_ns()
        )
        parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True).validate()
        return text

    def messages(self, kind: str | None = None) -> list[str]:
        rows = self.store.conn.execute(
            "SELECT id FROM outbox WHERE (? IS NULL OR kind = ?) ORDER BY created_wall_ns, rowid",
            (kind, kind),
        ).fetchall()
        return [self.build(r[0]) for r in rows]


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = Box(tmp_path / "agent.db")
    yield b
    b.store.close()


def alert_in(message: str) -> InboundAlert:
    """The alarm an ORU^R40 carries."""
    alert = parse_inbound(message).alert
    assert alert is not None, message
    return alert


def fields(message: str, name: str) -> list[list[str]]:
    out = []
    for segment in message.split("\r"):
        parts = segment.split("|")
        if parts[0] == name:
            out.append(["MSH", "|", *parts[1:]] if name == "MSH" else parts)
    return out


def decoder(driver: str, channel: str | None = None) -> Callable[[bytes], Decoded]:
    return registry.driver(driver).decoders()(channel)


def masimo_line(spo2: int = 97, alarm: str = "0000") -> bytes:
    """A Radical-7 ASCII line (Masimo operator's manual): ALARM bits 0x0002 = SpO2 low."""
    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).replace(tzinfo=None)
    return (
        f"{now:%m/%d/%y %H:%M:%S} SPO2={spo2:03d}% BPM=072 PI=01.20 SPCO=--.-% SPMET=--.-%"
        f" DESAT=-- PIDELTA=+-- ALARM={alarm} EXC=000000\r\n"
    ).encode("ascii")


def h(*parts: str) -> bytes:
    return bytes.fromhex(" ".join(parts))


# A patient alarm as an IntelliVue lists it (Data Export Interface Programming Guide,
# DevAlarmEntry with StrAlMonInfo): source NOM_PULS_OXIM_SAT_O2, HI_PRI_P_AL, its text.
SPO2_86_ENTRY = h(
    "4B B8",  # al_source: NOM_PULS_OXIM_SAT_O2
    "30 1A",  # al_code
    "04 00",  # al_type HI_PRI_P_AL
    "00 00",  # al_state
    "00 06 00 00 00 21",  # object: numeric, context 0, handle 0x21
    "02 04",  # alert_info_id STR_ALMON_INFO (516)
    "00 26",  # length 38
    "00 01",  # al_inst_no
    "00 00 00 00",  # al_text (TextId)
    "04 00",  # priority
    "00 00",  # flags
    "00 1A",  # string length 26 bytes: 13 UTF-16 characters
    "00 53 00 70 00 4F 00 32 00 20 00 38 00 36 00 20 00 3C 00 20 00 39 00 30 00 00",
)


def intellivue_alarm_frame() -> bytes:
    attrs = [
        (intellivue_msg.NOM_ATTR_AL_MON_P_AL_LIST, h("00 01 00 38") + SPO2_86_ENTRY),
        (intellivue_msg.NOM_ATTR_AL_MON_T_AL_LIST, h("00 00 00 00")),
    ]
    user_data = intellivue_msg.poll_result(
        1, 1, intellivue_msg.NOM_MOC_VMO_AL_MON, [(0, [(1, attrs)])], attr_group=0x0801
    )
    (content,) = FrameReader().feed(encode_frame(user_data))
    return content


def mllp_message(
    control: str, pid: str | None, rows: list[str], msh3: str = "MON^00A037009B000001^EUI-64"
) -> bytes:
    segments = [f"MSH|^~\\&|{msh3}||||||ORU^R01^ORU_R01|{control}|P|2.6|||AL|NE||UNICODE UTF-8"]
    if pid is not None:
        segments += [pid, "PV1||E"]
    segments.append("OBR|1|||182777000^monitoring of patient^SCT")
    segments += rows
    return ("\r".join(segments) + "\r").encode("utf-8")


SPO2_ROW = "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||F"


# --- alarms carry the patient the readings carry -------------------------------------------


def test_a_monitor_alarm_carries_the_patient_its_readings_carry(box: Box) -> None:
    """IntelliVue "SpO2 86 < 90" (an alarm-only poll result) and a Masimo SpO2-low line,
    both in the resident's visit: every ORU^R40 has the PID/PV1 its ORU^R01 has."""
    box.visit(RESIDENT)
    box.record("monitor-1", "masimo-ascii", masimo_line(84, "0002"), decoder("masimo-ascii"))
    alarm = box.record("mp50-1", "intellivue", intellivue_alarm_frame(), decode_frame)
    assert alarm.outcome == "decoded"
    r01 = box.messages("oru_r01")
    r40 = box.messages(KIND_ORU_R40)
    codes = {alert_in(m).code: m for m in r40}
    assert {"MASIMO_SPO2_LOW", "INTELLIVUE_PATIENT_4BB8_301A"} <= set(codes)
    assert alert_in(codes["INTELLIVUE_PATIENT_4BB8_301A"]).text == "SpO2 86 < 90"
    expected = f"{RESIDENT[0]}^^^CHN^NNCHN"
    assert [fields(m, "PID")[0][3] for m in r01] == [expected]
    for message in r40:
        (pid,) = fields(message, "PID")
        assert pid[3] == expected and pid[5] == RESIDENT[1]
        assert fields(message, "PV1")


def test_an_alarm_with_no_visit_open_names_nobody(box: Box) -> None:
    box.record("mp50-1", "intellivue", intellivue_alarm_frame(), decode_frame)
    (message,) = box.messages(KIND_ORU_R40)
    assert fields(message, "PID") == []


# --- MSH-18, MSH-21 ---------------------------------------------------------------------


def test_every_message_we_build_declares_its_character_set(box: Box) -> None:
    """HL7 v2.6 Ch. 2.14.9.18 / table 0211: UTF-8 text with Chinese in it says so."""
    box.visit(RESIDENT)
    rec = box.record("monitor-1", "masimo-ascii", masimo_line(84, "0002"), decoder("masimo-ascii"))
    frame = Frame("crew", "crew", b"", box.clock.wall_ns(), box.clock.mono_ns(), "boot")
    box.recorder.prealert(
        frame, encounter_id=None, ecg_frame_id=None, stemi=False, source="crew", complaint="胸痛"
    )
    built = box.messages()
    kinds = {fields(m, "MSH")[0][9] for m in built}
    assert kinds == {"ORU^R01^ORU_R01", "ORU^R40^ORU_R01", "ADT^A14^ADT_A05"}
    assert rec.message_id is not None
    ack = build_ack(
        acked_control_id=rec.message_id,
        code="AA",
        text="",
        control_id="GW1",
        sent_at=dt.datetime.now(dt.UTC),
    )
    for message in [*built, ack]:
        assert fields(message, "MSH")[0][18] == "UNICODE UTF-8", message
    parse_message(ack, validation_level=VALIDATION_LEVEL.STRICT).validate()


def test_oru_r40_names_the_pcd04_profile_not_pcd01s(box: Box) -> None:
    """IHE PCD TF-2 §3.4 (PCD-04 Report Alert, ACM): MSH-21 its own message profile."""
    box.record("mp50-1", "intellivue", intellivue_alarm_frame(), decode_frame)
    (message,) = box.messages(KIND_ORU_R40)
    assert fields(message, "MSH")[0][21] == PCD04_PROFILE
    assert PCD04_PROFILE == "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.4.4^ISO"


# --- an EUI-64 for every device -------------------------------------------------------------


def _derived(agent_id: str, device_id: str) -> str:
    """IEEE 802c AAI local EUI-64: HMAC-SHA-256(agent id, device id), first octet xxxx0010."""
    octets = bytearray(hmac.new(agent_id.encode(), device_id.encode(), hashlib.sha256).digest()[:8])
    octets[0] = (octets[0] & 0xF0) | 0x02
    return octets.hex().upper()


def test_every_device_has_a_stable_eui64(tmp_path: Path) -> None:
    """OBX-18 `<EUI-64>^^<EUI-64>^EUI-64` (PCD TF-2 Appendix B.8.18) for a serial monitor
    (derived, kept, the same after a restart), a BLE cuff (its address, EUI-48 -> 64) and
    an MLLP monitor (its own, from MSH-3)."""
    b = Box(tmp_path / "agent.db")
    b.store.devices.upsert("cuff-1", driver="ble-bp", transport="ble", address="C4:7C:8D:6A:00:17")
    from device_drivers.ble.blood_pressure import MEASUREMENT_UUID

    # GATT Blood Pressure Measurement (0x2A35): flags time stamp + pulse, 120/80/96 mmHg
    cuff = h("06", "7800", "5000", "6000", "EA07 0C03 0A00 05", "4800")
    recs = [
        b.record("monitor-1", "masimo-ascii", masimo_line(), decoder("masimo-ascii")),
        b.record("cuff-1", "ble-bp", cuff, decoder("ble-bp", MEASUREMENT_UUID)),
        b.record("mllp-1", "hl7-mllp", mllp_message("E1", None, [SPO2_ROW]), decoder("hl7-mllp")),
    ]
    b.visit(RESIDENT)  # the cuff's reading was held: no visit at its station then
    equipment = []
    for rec in recs:
        assert rec.message_id is not None
        obx18 = {row[18] for row in fields(b.build(rec.message_id), "OBX")}
        assert len(obx18) == 1 and EUI64_EI.fullmatch(obx18.pop() or "")
        equipment.append(fields(b.build(rec.message_id), "OBX")[0][18].split("^")[0])
    assert equipment == [_derived(AGENT, "monitor-1"), "C47C8DFFFE6A0017", "00A037009B000001"]
    kept = b.store.devices.get("monitor-1")
    assert kept is not None and (kept.eui64, kept.eui64_source) == (equipment[0], "derived")
    b.store.close()
    # A restart (and a rename of the box) keeps the EUI-64 once made.
    again = Box(tmp_path / "agent.db")
    try:
        rec = again.record("monitor-1", "masimo-ascii", masimo_line(), decoder("masimo-ascii"))
        assert rec.message_id is not None
        row = again.store.outbox.get(rec.message_id)
        assert row is not None
        text = build_message(
            again.store, row, agent_id="renamed-1", tz="Asia/Shanghai", now_wall_ns=0
        )
        assert fields(text, "OBX")[1][18].split("^")[0] == equipment[0]
    finally:
        again.store.close()


@settings(max_examples=200)
@given(st.text(min_size=1, max_size=64), st.text(min_size=1, max_size=64))
def test_a_derived_eui64_is_a_local_individual_address(agent_id: str, device_id: str) -> None:
    """Property: 16 hex digits, U/L bit set (local), I/G bit clear (individual), in the
    IEEE 802c AAI quadrant; another device of the same box gets another one."""
    made = eui64.derived_eui64(agent_id, device_id)
    first = int(made[:2], 16)
    assert re.fullmatch(r"[0-9A-F]{16}", made)
    assert first & 0x0F == 0x02 and eui64.is_locally_administered(made)
    assert made == eui64.derived_eui64(agent_id, device_id)
    assert made != eui64.derived_eui64(agent_id, device_id + "x")


# --- OBX-4 and OBX-11 as the source said ------------------------------------------------------


def test_obx4_and_obx11_are_forwarded_as_the_monitor_sent_them(box: Box) -> None:
    rows = [
        "OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R",
        "OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||F",
    ]
    rec = box.record("mllp-1", "hl7-mllp", mllp_message("C1", None, rows), decoder("hl7-mllp"))
    assert rec.message_id is not None
    got = [(r[4], r[11]) for r in fields(box.build(rec.message_id), "OBX")[1:]]
    assert got == [("1.1.1.1", "R"), ("1.2.1.1", "F")]


def test_our_drivers_rows_sit_in_a_containment_tree(box: Box) -> None:
    """PCD TF-2 Appendix B.8.4: MDS.VMD.channel.metric; SpO2 at VMD 2 (pulse oximetry),
    pulse rate beside it (sync.hl7.containment), never 1.0.0.n."""
    rec = box.record("monitor-1", "masimo-ascii", masimo_line(), decoder("masimo-ascii"))
    assert rec.message_id is not None
    got = {r[3].split("^")[1]: r[4] for r in fields(box.build(rec.message_id), "OBX")[1:]}
    assert got["MDC_PULS_OXIM_SAT_O2"] == "1.2.1.1"
    assert got["MDC_PULS_OXIM_PULS_RATE"] == "1.2.1.2"
    assert not any(sub.startswith("1.0.0.") for sub in got.values())


# --- the monitor's own PID --------------------------------------------------------------------


def test_a_monitors_pid_is_forwarded_when_no_visit_is_open(box: Box) -> None:
    pid = "PID|||A77^^^WARD3^MR||张^三||19800101|M"
    rec = box.record("mllp-1", "hl7-mllp", mllp_message("F1", pid, [SPO2_ROW]), decoder("hl7-mllp"))
    assert rec.message_id is not None
    (sent,) = fields(box.build(rec.message_id), "PID")
    assert (sent[3], sent[5], sent[7], sent[8]) == ("A77^^^WARD3^MR", "张三", "19800101", "M")
    assert fields(box.build(rec.message_id), "PV1")[0][2] == "E"


def test_a_monitors_pid_naming_the_visits_resident_goes_with_the_visit(box: Box) -> None:
    box.visit(RESIDENT)
    pid = f"PID|||{RESIDENT[0]}^^^CHN^NNCHN||王^秀英"
    rec = box.record("mllp-1", "hl7-mllp", mllp_message("F2", pid, [SPO2_ROW]), decoder("hl7-mllp"))
    assert rec.message_id is not None
    row = box.store.outbox.get(rec.message_id)
    assert row is not None and row.status == "pending"
    assert fields(box.build(rec.message_id), "PID")[0][3] == f"{RESIDENT[0]}^^^CHN^NNCHN"


def test_a_monitor_naming_someone_else_is_held_for_the_crew_to_assign(tmp_path: Path) -> None:
    """A visit is open for 王秀英; the monitor's PID names another resident: never guessed.
    The readings are held (status and `readings unassigned` say why) until assigned."""
    data_dir = tmp_path / "agent"
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nid = "{AGENT}"\ndata_dir = "{data_dir}"\n'
        '[uplink]\nbroker = "mqtt://127.0.0.1:1"\nallow_insecure = true\n',
        encoding="utf-8",
    )
    b = Box(data_dir / "edge-agent.sqlite3", init_keys_in(data_dir))
    b.visit(RESIDENT)
    pid = f"PID|||{OTHER[0]}||李^四"
    rec = b.record("mllp-1", "hl7-mllp", mllp_message("H1", pid, [SPO2_ROW]), decoder("hl7-mllp"))
    assert rec.message_id is not None
    row = b.store.outbox.get(rec.message_id)
    assert row is not None and row.status == OUTBOX_HELD
    assert rec.raw_frame_id is not None
    assert [o.encounter_id for o in b.store.frames.observations(rec.raw_frame_id)] == [None]
    assert fields(b.build(rec.message_id), "PID") == []  # nobody's until assigned
    b.store.close()

    def cli(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "edge_agent.cli", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    status = json.loads(cli("status", "--json"))
    assert status["outbox"]["held_reasons"] == {HELD_PATIENT_CONFLICT: 1}
    (held,) = [json.loads(line) for line in cli("readings", "unassigned").splitlines()]
    assert held["reason"] == HELD_PATIENT_CONFLICT
    assert held["device_patient"]["national_id"] == OTHER[0]
    cli("patients", "add", "--national-id", OTHER[0], "--name", OTHER[1])
    cli("readings", "assign", "--national-id", OTHER[0], str(held["frame_id"]))
    b = Box(data_dir / "edge-agent.sqlite3", init_keys_in(data_dir))
    try:
        row = b.store.outbox.get(rec.message_id)
        assert row is not None and row.status == "pending"
        assert fields(b.build(rec.message_id), "PID")[0][3] == f"{OTHER[0]}^^^CHN^NNCHN"
    finally:
        b.store.close()


def test_an_alert_the_crew_raised_adds_no_device(box: Box) -> None:
    """`edge-agent visit observe --acvpu C` reassesses NEWS2 with the crew as source
    (device "*"): its ORU^R40 names a derived EUI-64 and "*" does not become a device."""
    box.record("monitor-1", "masimo-ascii", masimo_line(84), decoder("masimo-ascii"))
    stamp = Frame("*", "crew", b"", box.clock.wall_ns(), box.clock.mono_ns(), "boot")
    rules = ClinicalRules(news2_window_s=900)
    box.store.patients.add_news2_observation(
        "station", scale=None, oxygen=None, acvpu="C", by="crew", wall_ns=stamp.received_wall_ns
    )
    rules.reassess_news2(box.store, stamp, None)
    crew_alerts = [a for a in box.store.alerts.recent(include_cleared=True) if a.device_id == "*"]
    assert crew_alerts
    for message in box.messages(KIND_ORU_R40):
        assert EUI64_EI.fullmatch(fields(message, "OBX")[0][18])
    assert {d["id"] for d in box.store.devices.all()} == {"monitor-1"}
