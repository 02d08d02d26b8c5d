"""The gateway's side of HL7: reading an upload (AA / AE / AR) and the ACK both ways."""

from __future__ import annotations

import contextlib
import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from hypothesis import given
from hypothesis import strategies as st

from sync.hl7 import er7
from sync.hl7.ack import UNREADABLE_CONTROL_ID, build_ack, parse_ack
from sync.hl7.errors import Hl7Error
from sync.hl7.inbound import MAX_MESSAGE_BYTES, parse_inbound
from sync.hl7.pcd01 import DeviceIdentity, PatientIdentity, StoredObservation, build_oru_r01
from sync.hl7.timestamps import format_dtm, parse_dtm

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
T0 = dt.datetime(2026, 11, 22, 10, 0, 0, tzinfo=SHANGHAI)
DEVICE = DeviceIdentity(
    device_id="monitor-1",
    driver="masimo-ascii",
    eui64=None,
    spec_refid="MDC_DEV_SPEC_PROFILE_PULS_OXIM",
)
PATIENT = PatientIdentity(
    national_id="11010519491231002X", name="王秀英", birth_date=None, sex="F", patient_class="E"
)


def upload(
    control_id: str = "MSG-1", agent_id: str = "amb-017", patient: PatientIdentity | None = PATIENT
) -> str:
    return build_oru_r01(
        control_id=control_id,
        agent_id=agent_id,
        sent_at=T0,
        device=DEVICE,
        patient=patient,
        observations=[
            StoredObservation("MDC_PULS_OXIM_SAT_O2", Decimal("97"), "MDC_DIM_PERCENT", T0),
            StoredObservation(
                "MDC_PULS_OXIM_PERF_REL", None, "MDC_DIM_PERCENT", T0, ("unavailable",)
            ),
            StoredObservation("MDC_PULS_OXIM_PULS_RATE", Decimal("72"), "MDC_DIM_BEAT_PER_MIN", T0),
        ],
    )


def replace_segment(message: str, name: str, new: str) -> str:
    return "\r".join(new if s.split("|")[0] == name else s for s in message.split("\r"))


def rejection(message: str | bytes) -> Hl7Error:
    with pytest.raises(Hl7Error) as info:
        parse_inbound(message)
    assert "\n" not in str(info.value)
    return info.value


# --- reading an upload -------------------------------------------------------------------


def test_our_own_message_reads_back() -> None:
    got = parse_inbound(upload())
    assert (got.control_id, got.agent_id, got.message_type) == ("MSG-1", "amb-017", "ORU^R01")
    assert got.sent_at == T0
    assert (got.patient_national_id, got.patient_name, got.patient_class) == (
        "11010519491231002X",
        "王秀英",
        "E",
    )
    assert [(o.metric, o.value, o.unit, o.status) for o in got.observations] == [
        ("MDC_PULS_OXIM_SAT_O2", "97", "MDC_DIM_PERCENT", "F"),
        ("MDC_PULS_OXIM_PERF_REL", None, "MDC_DIM_PERCENT", "X"),
        ("MDC_PULS_OXIM_PULS_RATE", "72", "MDC_DIM_BEAT_PER_MIN", "F"),
    ]
    assert got.observations[0].code == 150456  # MDC_PULS_OXIM_SAT_O2 = 2::19384
    assert got.observations[1].flags == ("unavailable",)
    assert all(o.observed_at == T0 for o in got.observations)
    assert all(o.device_id for o in got.observations)


def test_bytes_and_mllp_framing_are_accepted() -> None:
    message = upload()
    assert parse_inbound(message.encode()).control_id == "MSG-1"
    assert parse_inbound("\x0b" + message + "\x1c\r").control_id == "MSG-1"


def test_without_patient() -> None:
    got = parse_inbound(upload(patient=None))
    assert got.patient_national_id is None and got.patient_name is None


@pytest.mark.parametrize(
    ("message", "ack", "code", "control_id", "reason"),
    [
        ("", "AR", "100", None, "message is empty"),
        ("PID|||1\rOBX|1", "AR", "100", None, "does not start with MSH"),
        ("MSH|", "AR", "102", None, "delimiters are unusable"),
        ("MSH|^~\\&|X|amb-017|Y||20261122||ORU^R01^ORU_R01||P|2.6", "AR", "101", None, "MSH-10"),
        (
            "MSH|^~\\&|X|amb-017|Y||20261122||ORU^R01^ORU_R01|V-1|P|2.3",
            "AR",
            "203",
            "V-1",
            "MSH-12 version is not supported",
        ),
        (
            "MSH|^~\\&|X|amb-017|Y||20261122||ADT^A01^ADT_A01|T-1|P|2.6",
            "AR",
            "200",
            "T-1",
            "MSH-9 message type",
        ),
        ("MSH|^~\\&|X|amb-017|Y||20261122||ORU^R30|E-1|P|2.6", "AR", "201", "E-1", "MSH-9 event"),
        # the gateway test's malformed message: understood enough to answer with its id
        (
            "MSH|^~\\&|X|amb-017|Y||20261122||ORU^R01^ORU_R01|BAD-1|P|2.6\rOBX|x",
            "AE",
            None,
            "BAD-1",
            "",
        ),
        (
            "MSH|^~\\&|X||Y||20261122100000+0800||ORU^R01^ORU_R01|A-1|P|2.6",
            "AE",
            "101",
            "A-1",
            "MSH-4",
        ),
        (
            "MSH|^~\\&|X|amb-017|Y||2026-11-22||ORU^R01^ORU_R01|D-1|P|2.6",
            "AE",
            "102",
            "D-1",
            "MSH-7",
        ),
    ],
)
def test_unusable_messages(
    message: str, ack: str, code: str | None, control_id: str | None, reason: str
) -> None:
    error = rejection(message)
    assert error.ack_code == ack
    assert error.control_id == control_id
    if code is not None:
        assert error.error_code == code
    assert reason in error.reason


@pytest.mark.parametrize(
    ("old", "new", "code", "reason"),
    [
        (
            "150456^MDC_PULS_OXIM_SAT_O2^MDC",
            "999999^MDC_NOPE^MDC",
            "103",
            "OBX 2: OBX-3 code is not in the MDC table",
        ),
        (
            "150456^MDC_PULS_OXIM_SAT_O2^MDC",
            "150456^MDC_TEMP_BODY^MDC",
            "103",
            "is MDC_PULS_OXIM_SAT_O2",
        ),
        ("|97|", "|9,7|", "102", "not an HL7 NM decimal"),
        ("|F|||", "|Q|||", "103", "OBX 2: OBX-11 is not in HL7 table 0085"),
    ],
)
def test_invalid_observations_are_ae_with_the_control_id(
    old: str, new: str, code: str, reason: str
) -> None:
    message = upload()
    assert old in message
    error = rejection(message.replace(old, new, 1))
    assert (error.ack_code, error.control_id, error.error_code) == ("AE", "MSG-1", code)
    assert reason in error.reason


def test_strict_structure_violation_is_ae() -> None:
    # OBR removed: our own checks pass, the v2.6 ORU_R01 structure does not
    message = "\r".join(s for s in upload().split("\r") if not s.startswith("OBR"))
    error = rejection(message)
    assert (error.ack_code, error.control_id) == ("AE", "MSG-1")
    assert error.reason.startswith("message MSG-1: not a valid v2.6 ORU^R01") or "ORU^R01" in str(
        error
    )


def test_size_and_encoding_caps() -> None:
    error = rejection(b"MSH|^~\\&|" + b"x" * MAX_MESSAGE_BYTES)
    assert error.ack_code == "AR" and "more than" in error.reason
    error = rejection(upload().encode("utf-8").replace("王".encode(), b"\xff\xfe\xfd"))
    assert error.ack_code == "AR" and "not UTF-8" in error.reason


def test_second_msh_is_refused() -> None:
    message = upload()
    msh = message.split("\r")[0]
    error = rejection(message + "\r" + msh)
    assert error.ack_code == "AE" and "second MSH" in error.reason


@given(st.text(max_size=400))
def test_fuzz_inbound_raises_only_hl7_error(text: str) -> None:
    with contextlib.suppress(Hl7Error):
        parse_inbound(text)


@given(st.data())
def test_fuzz_mutated_uploads_raise_only_hl7_error(data: st.DataObject) -> None:
    message = upload()
    start = data.draw(st.integers(0, len(message) - 1))
    end = data.draw(st.integers(start, min(len(message), start + 20)))
    insert = data.draw(st.text(alphabet="|^~\\&\r0123456789AZ.- ", max_size=10))
    with contextlib.suppress(Hl7Error):
        parse_inbound(message[:start] + insert + message[end:])


# --- acknowledgements --------------------------------------------------------------------


@pytest.mark.parametrize("code", ["AA", "AE", "AR"])
def test_ack_validates_and_round_trips(code: str) -> None:
    text = "" if code == "AA" else "OBX 3: OBX-5 '9,7' is not | an HL7 NM^decimal"
    ack = build_ack(
        acked_control_id="MSG-1",
        code=code,
        text=text,
        control_id="ACK-77",
        sent_at=T0,
        receiving_facility="amb-017",
        error_code=None if code == "AA" else "102",
    )
    parse_message(ack, validation_level=VALIDATION_LEVEL.STRICT).validate()
    got = parse_ack(ack)
    assert (got.acked, got.code, got.control_id) == ("MSG-1", code, "ACK-77")
    assert got.text == text  # delimiters escaped on the way out, restored on the way in
    assert got.error_code == (None if code == "AA" else "102")
    segments = ack.split("\r")
    assert segments[0].split("|")[8] == "ACK^R01^ACK"
    assert [s[:3] for s in segments if s] == (
        ["MSH", "MSA"] if code == "AA" else ["MSH", "MSA", "ERR"]
    )


def test_ack_for_an_unreadable_message_and_long_reasons() -> None:
    ack = build_ack(
        acked_control_id=None, code="AR", text="x\n" * 1000, control_id="A-2", sent_at=T0
    )
    got = parse_ack(ack)
    assert got.acked == UNREADABLE_CONTROL_ID
    assert len(got.text) <= 500 and "\n" not in got.text


def test_build_ack_refuses_commit_codes() -> None:
    with pytest.raises(ValueError, match="AA, AE, AR"):
        build_ack(acked_control_id="M", code="CA", text="", control_id="A", sent_at=T0)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "ACK is empty"),
        ("MSA|AA|M-1", "does not start with a usable MSH"),
        ("MSH|^~\\&|G||E||20261122||ORU^R01|X-1|P|2.6\rMSA|AA|M-1", "not ACK"),
        ("MSH|^~\\&|G||E||20261122||ACK^R01^ACK||P|2.6\rMSA|AA|M-1", "no MSH-10"),
        ("MSH|^~\\&|G||E||20261122||ACK^R01^ACK|A-1|P|2.6", "no MSA"),
        ("MSH|^~\\&|G||E||20261122||ACK^R01^ACK|A-1|P|2.6\rMSA|CA|M-1", "not AA, AE or AR"),
        ("MSH|^~\\&|G||E||20261122||ACK^R01^ACK|A-1|P|2.6\rMSA|AA|", "MSA-2"),
    ],
)
def test_parse_ack_rejects(text: str, reason: str) -> None:
    with pytest.raises(Hl7Error) as info:
        parse_ack(text)
    assert reason in info.value.reason


@given(st.text(max_size=300))
def test_fuzz_parse_ack_raises_only_hl7_error(text: str) -> None:
    with contextlib.suppress(Hl7Error):
        parse_ack(text)


# --- the ER7 and time helpers underneath ---------------------------------------------------


@given(st.text(max_size=60))
def test_escape_round_trip(text: str) -> None:
    escaped = er7.escape(text)
    assert not set("|^~&\r") & set(escaped)
    assert er7.unescape(escaped) == text


@pytest.mark.parametrize(
    ("text", "when"),
    [
        ("20261122100000+0800", T0),
        ("20261122100000.25+0800", T0.replace(microsecond=250000)),
        ("202611221000+0800", T0),
    ],
)
def test_parse_dtm(text: str, when: dt.datetime) -> None:
    assert parse_dtm(text) == when


def test_format_dtm_round_trip() -> None:
    when = T0.replace(microsecond=123000)
    assert parse_dtm(format_dtm(when)) == when


@given(st.text(max_size=30))
def test_fuzz_parse_dtm_raises_only_hl7_error(text: str) -> None:
    with contextlib.suppress(Hl7Error):
        parse_dtm(text)
