"""The services behind the CLI's commands, called directly (the CLI only prints what
they return): what was reachable only through a subprocess before, now in-process.

The commands' own tests (test_cli_*.py, test_decode_cli.py, test_alerts.py,
test_one_writer.py, test_gateway*.py) still run the real `edge-agent` end to end.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from box_keys import keys_of

from device_drivers import capture
from edge_agent import (
    alerts,
    capture_report,
    crew_entries,
    operations,
    pairing,
    patients,
    status,
)
from edge_agent.clock import SystemClock
from edge_agent.config import Config, from_dict
from edge_agent.control import Caller, OpError
from edge_agent.model import Decoded, DecodeError, Frame, Reading, Refused
from edge_agent.recorder import Recorder
from edge_agent.rules.engine import ClinicalRules
from edge_agent.store import StoreWriter, open_readonly
from edge_agent.supervisor import META_TASKS
from sync.gateway.reply import send
from sync.gateway.status import GatewayStatus

CLOCK = SystemClock(boot_id="services-test")
RESIDENT = "11010519491231002X"  # GB 11643's worked example
ME = Caller("tester", 1000)


def box(tmp: Path) -> tuple[Config, StoreWriter]:
    data = tmp / "data"
    config = from_dict(
        {
            "agent": {"id": "box-1", "data_dir": str(data)},
            "uplink": {"broker": "mqtt://127.0.0.1:9", "allow_insecure": True},
        }
    )
    return config, StoreWriter.open(config.agent.db_path, keys_of(config))


def urgent_bp(store: StoreWriter) -> int:
    """One reading of 200/120 mmHg at a cuff: the urgent-BP alert; its id."""
    decoded = Decoded(
        readings=(
            Reading("MDC_PRESS_BLD_NONINV_SYS", Decimal(200), "MDC_DIM_MMHG"),
            Reading("MDC_PRESS_BLD_NONINV_DIA", Decimal(120), "MDC_DIM_MMHG"),
        )
    )
    frame = Frame("cuff-1", "ble-bp", b"bp", CLOCK.wall_ns(), CLOCK.mono_ns(), CLOCK.boot_id)
    Recorder(store, rules=ClinicalRules()).record(frame, lambda _: decoded)
    (alert,) = store.alerts.recent()
    return alert.id


# --- decode ------------------------------------------------------------------------------


def rejected(number: int, reason: str, size: int = 4) -> capture.Piece:
    return capture.Piece(number, bytes(size), error=DecodeError(reason))


def test_a_report_names_ten_rejected_pieces_and_counts_the_rest_by_kind() -> None:
    pieces = [rejected(n, f"checksum 0x{n:02x}, expected 0x17") for n in range(1, 15)]
    pieces += [rejected(n, f"status byte {n} without bit 7") for n in range(15, 18)]
    pieces += [rejected(18, "unexpected text 'xq'"), rejected(19, "a length field of 0")]
    report = capture_report.report("nonin-df7", "hex", capture.Capture(tuple(pieces)))
    assert not report.decoded and list(report.objects()) == []
    first, *_, counted = report.problems
    assert len(report.problems) == 11
    assert first == "decode nonin-df7 hex frame 1: checksum 0x01, expected 0x17"
    assert counted == (
        "decode nonin-df7 hex: 9 more rejected frames (36 bytes): 4 x checksum 0x0e,"
        " expected 0x17; 3 x status byte 17 without bit 7; 1 x unexpected text 'xq';"
        " and 1 other reasons"
    )


def test_a_report_of_one_decoded_frame_and_a_partial_one() -> None:
    reading = Reading("MDC_PULS_OXIM_SAT_O2", Decimal(97), "MDC_DIM_PERCENT")
    good = capture.Piece(1, b"f", decoded=Decoded(readings=(reading,)))
    report = capture_report.report("nonin-df8", "cap.bin", capture.Capture((good,), trailing=3))
    assert report.decoded and list(report.objects()) == [reading.as_json()]
    (partial,) = report.problems
    assert partial.startswith("decode nonin-df8 cap.bin: a partial frame after the last")
    assert "3 bytes held" in partial


def test_an_empty_capture_says_so() -> None:
    report = capture_report.report("masimo-ascii", "hex", capture.Capture(()))
    assert report.problems == ("decode masimo-ascii hex: no frame in the capture",)


@pytest.mark.parametrize(
    ("driver", "hex_args", "file", "message"),
    [
        ("no-such", ["00"], None, "decode: unknown driver 'no-such' (known: "),
        ("ble-bp", ["00"], "x.bin", "decode: give HEX or --file PATH, not both"),
        ("ble-bp", [], None, "decode: give HEX or --file PATH"),
        ("ble-bp", ["zz"], None, "decode ble-bp: 'zz' is not hex"),
        ("ble-bp", [], "/nonexistent/cap.bin", "decode --file /nonexistent/cap.bin: No such"),
    ],
)
def test_a_decode_request_that_cannot_be_read_is_refused(
    driver: str, hex_args: list[str], file: str | None, message: str
) -> None:
    with pytest.raises(capture_report.CaptureRequestError) as refused:
        capture_report.decode(driver, hex_args, file)
    assert str(refused.value).startswith(message)
    assert isinstance(refused.value, Refused)  # the CLI's exit 2


def test_a_decode_of_hex_gives_the_readings_as_the_cli_prints_them() -> None:
    # Blood Pressure Measurement 0x2A35 (GATT Specification Supplement): flags 0, 120/80/100 mmHg
    report = capture_report.decode("ble-bp", ["00780050006400"], None)
    assert report.decoded and report.problems == ()
    assert [o["value"] for o in report.objects()] == [120.0, 80.0, 100.0]


# --- status, alerts, lists ----------------------------------------------------------------


def test_status_reports_news2_the_daemon_and_its_tasks(tmp_path: Path) -> None:
    config, store = box(tmp_path)
    urgent_bp(store)
    tasks = {"uplink": {"state": "running", "restarts": 2, "error": "OSError: link down"}}
    with store.transaction():
        store.meta.set(META_TASKS, json.dumps(tasks))
    store.close()
    reader = open_readonly(config.agent.db_path)
    try:
        report = status.report(config, reader, CLOCK.wall_ns())
    finally:
        reader.close()
    assert report["agent_running"] is False  # nobody holds the writer lock
    assert report["tasks"] == tasks
    assert report["news2"]["missing"] and report["outbox"]["pending"] >= 1
    text = status.render_text(report).splitlines()
    assert text[-2:] == [
        "agent daemon: not running",
        "  task uplink: running, 2 restart(s): OSError: link down",
    ]
    assert any(line.startswith("NEWS2 ") for line in text)
    assert any("RULE_BP_URGENT" in line for line in text)


def test_alerts_are_listed_as_text_and_acknowledged_once(tmp_path: Path) -> None:
    _, store = box(tmp_path)
    alert_id = urgent_bp(store)
    (alert,) = alerts.recent(store)
    line = alerts.as_text(alert)
    assert line.startswith(f"{alert_id:>5} high  ") and "RULE_BP_URGENT [cuff-1]" in line
    first = alerts.acknowledge(store, alert_id, by="王医生", wall_ns=1)
    again = alerts.acknowledge(store, alert_id, by="李医生", wall_ns=2)
    assert (first.state, first.ack_user) == ("acknowledged", "王医生")
    assert (again.ack_user, again.ack_wall_ns) == ("王医生", 1)  # the first who saw it
    assert alerts.as_text(again).endswith(" ack 王医生")
    with pytest.raises(alerts.AlertError, match="alerts ack 999: no such alert"):
        alerts.acknowledge(store, 999, by="王医生", wall_ns=3)
    assert [a.id for a in alerts.recent(store)] == [alert_id]
    store.close()


def test_residents_and_held_readings_are_listed(tmp_path: Path) -> None:
    _, store = box(tmp_path)
    registered = patients.register(store, CLOCK, national_id_number=RESIDENT, name="王秀英")
    assert registered.as_json() == {
        "id": registered.patient.id,
        "national_id": RESIDENT,
        "name": "王秀英",
        "sex": "F",
        "birth_date": "1949-12-31",
        "created": True,
    }
    assert patients.residents(store) == [
        {
            "id": registered.patient.id,
            "national_id": RESIDENT,
            "name": "王秀英",
            "sex": "F",
            "birth_date": "1949-12-31",
            "phone": None,
        }
    ]
    urgent_bp(store)  # a personal device, no visit open: held for a doctor
    (held,) = patients.held_readings(store)
    assert (held["device_id"], held["reason"]) == ("cuff-1", "no-visit")
    assert patients.held_readings(store, "another-device") == []
    store.close()


# --- what the crew enters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"eta_minutes": 1441}, "prealert --eta 1441: minutes from now, 0 to 1440"),
        ({"eta_minutes": -1}, "prealert --eta -1: minutes from now, 0 to 1440"),
        ({"complaint": "  "}, "prealert --complaint: say why the patient is coming"),
        ({"destination": ""}, "prealert --destination: name the receiving ER"),
    ],
)
def test_a_prealert_without_what_the_er_needs_is_refused(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    _, store = box(tmp_path)
    given: dict[str, object] = {
        "destination": "县医院急诊",
        "complaint": "胸痛2小时",
        "eta_minutes": 15,
        "stemi": False,
        "station": "*",
    }
    with pytest.raises(crew_entries.EntryError, match=message):
        crew_entries.prealert(store, CLOCK, **{**given, **change})  # type: ignore[arg-type]
    assert store.prealerts.recent() == []
    store.close()


def test_a_stemi_prealert_says_so_once(tmp_path: Path) -> None:
    _, store = box(tmp_path)
    for complaint in ("胸痛2小时", "stemi inferior"):
        crew_entries.prealert(
            store,
            CLOCK,
            destination=" 县医院急诊 ",
            complaint=complaint,
            eta_minutes=None,
            stemi=True,
            station="*",
        )
    newest, oldest = store.prealerts.recent()
    assert (oldest.complaint, oldest.destination, oldest.source) == (
        "STEMI: 胸痛2小时",
        "县医院急诊",
        "crew",
    )
    assert newest.complaint == "stemi inferior" and newest.stemi
    store.close()


def test_an_observation_is_scored_for_the_open_visit(tmp_path: Path) -> None:
    _, store = box(tmp_path)
    with pytest.raises(crew_entries.EntryError, match="give --spo2-scale"):
        crew_entries.observe(
            store, CLOCK, ClinicalRules(), station="*", scale=None, oxygen=None, acvpu=None, by="x"
        )
    patients.register(store, CLOCK, national_id_number=RESIDENT, name="王秀英")
    encounter = patients.start_visit(store, CLOCK, national_id_number=RESIDENT)
    observed = crew_entries.observe(
        store, CLOCK, ClinicalRules(), station="*", scale=2, oxygen=False, acvpu="c", by="x"
    )
    assert observed.subject == f"encounter:{encounter}"
    assert observed.news2.parts["consciousness"].score == 3  # new confusion
    store.close()


# --- the operations' requests ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_type", "args", "message"),
    [
        (operations.AckAlert, {}, "alerts.ack: argument 'id' is missing"),
        (operations.AckAlert, {"id": True}, "alerts.ack: id must be a whole number"),
        (operations.AckAlert, {"id": 1, "by": "x"}, "alerts.ack: unknown argument 'by'"),
        (operations.Prealert, {"destination": "a", "complaint": 7}, "complaint must be text"),
        (operations.Prealert, {"destination": "a", "complaint": "b", "stemi": 1}, "true or false"),
        (operations.AssignReadings, {"national_id": "x", "frames": []}, "list of whole numbers"),
        (operations.AddPatient, {"national_id": "x", "name": "n" * 1001}, "at most 1000"),
    ],
)
def test_a_request_from_the_socket_is_checked_against_its_fields(
    request_type: type[operations.Change], args: dict[str, object], message: str
) -> None:
    with pytest.raises(OpError, match=message) as refused:
        operations.checked(request_type, args)
    assert refused.value.status == 2


def test_a_request_goes_over_the_socket_and_back_unchanged() -> None:
    request = operations.AssignReadings(national_id=RESIDENT, frames=(3, 5))
    args = operations.as_args(request)
    assert args == {"national_id": RESIDENT, "frames": [3, 5], "patient_class": "O"}
    assert operations.checked(operations.AssignReadings, json.loads(json.dumps(args))) == request
    assert operations.checked(operations.Prealert, {"destination": "a", "complaint": "b"}) == (
        operations.Prealert(destination="a", complaint="b", eta=None, stemi=False, device="*")
    )
    with pytest.raises(crew_entries.EntryError, match="ACVPU is one of"):
        operations.ObserveVisit(acvpu="Z")


def test_forgetting_a_device_that_is_not_paired_is_refused(tmp_path: Path) -> None:
    config, store = box(tmp_path)
    paired = pairing.pair(store, CLOCK, config, address="c4:7c:8d:00:00:01", driver="ble-bp")
    assert paired.as_json() == {
        "paired": "C4:7C:8D:00:00:01",
        "id": "bp-000001",
        "driver": "ble-bp",
    }
    assert pairing.forget(store, " c4:7c:8d:00:00:01 ") == "C4:7C:8D:00:00:01"
    with pytest.raises(pairing.PairingError, match="C4:7C:8D:00:00:01 is not paired here"):
        pairing.forget(store, "c4:7c:8d:00:00:01")
    store.close()


# --- the gateway's commands -------------------------------------------------------------------


def test_gateway_status_text_names_a_refused_message_without_agent_or_msh10() -> None:
    report = {
        "messages": 3,
        "observations": 12,
        "duplicates": 1,
        "rejected": 1,
        "agents": {"amb-017": 3},
        "prearrivals": [],
        "alerts": [],
        "ecgs": [],
    }
    refused = {
        "agent": None,
        "control_id": None,
        "ack_code": None,
        "reason": "topic agent is not a valid id",
        "topic": "edge/v1/../up",
    }
    text = GatewayStatus(report, (refused,)).as_text().splitlines()
    assert text == [
        "messages stored: 3 (12 observations)",
        "duplicates answered again: 1",
        "rejected: 1",
        "  amb-017: 3",
        "  rejected (no usable MSH-10) from topic edge/v1/../up: no ACK topic agent is not a valid id",
    ]


def test_a_reply_with_no_gateway_and_no_broker_is_a_usage_error() -> None:
    with pytest.raises(OpError, match="give --broker URL") as refused:
        send(None, "amb-017", "MSG1", "received", text=None, by=None, db=None)
    assert refused.value.status == 2
