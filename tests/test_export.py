"""`edge-agent export` (edge_agent/export.py, edge_agent/crypto/export_file.py): only for
roles with export, always audited, encrypted with a passphrase unless asked otherwise;
on real SQLite files, readings recorded as the recorder records them."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from box_keys import box_config, init_keys_in
from cli_box import cli
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from hypothesis import given, settings
from hypothesis import strategies as st
from operated_box import RESIDENT, Box, open_box, with_users
from outbox_rows import record

from edge_agent.control import OpError
from edge_agent.crypto import export_file
from edge_agent.export import as_pcd01
from edge_agent.model import Decoded, Frame, Reading
from edge_agent.national_id import check_character
from edge_agent.patients import register, start_visit
from edge_agent.recorder import Recorder
from edge_agent.store import ObservationRow
from sync.hl7.inbound import parse_inbound
from sync.hl7.pcd01 import PCD01_PROFILE
from sync.outbox_messages import build_message

PHRASE = "马上到 county 2026"


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    opened = open_box(tmp_path)
    with_users(opened)
    doctor = opened.sign_in("王医生", "1234")
    opened.run(
        "patients.add",
        {"national_id": RESIDENT, "name": "张三", "phone": "13900001111"},
        session=doctor,
    )
    opened.run("visit.start", {"national_id": RESIDENT, "device": "monitor-1"}, session=doctor)
    record(opened.store, 3, opened.clock)
    yield opened
    opened.store.close()


def exported(box: Box, fmt: str, session: str, **more: object) -> dict[str, object]:
    args = {"national_id": RESIDENT, "format": fmt, **more}
    return box.run("export", args, session=session)


def data_of(answer: dict[str, object]) -> bytes:
    return base64.b64decode(str(answer["data"]))


def test_an_encrypted_export_opens_only_with_its_passphrase_and_holds_the_record(
    box: Box,
) -> None:
    doctor = box.sign_in("王医生", "1234")
    for fmt in ("json", "csv", "hl7"):
        answer = exported(box, fmt, doctor, passphrase=PHRASE)
        sealed = data_of(answer)
        assert answer["encrypted"] is True and sealed.startswith(export_file.MAGIC)
        for plain in (RESIDENT, "张三", "13900001111"):
            assert plain.encode() not in sealed
        with pytest.raises(export_file.ExportFileError, match="wrong passphrase"):
            export_file.open_file(sealed, PHRASE + "x")
        opened_fmt, plain_bytes = export_file.open_file(sealed, PHRASE)
        assert opened_fmt == fmt
        text = plain_bytes.decode("utf-8")
        assert RESIDENT in text and "张三" in text and "MDC_PULS_OXIM_SAT_O2" in text
    rec = json.loads(
        export_file.open_file(data_of(exported(box, "json", doctor, passphrase=PHRASE)), PHRASE)[1]
    )
    assert rec["patient"]["national_id"] == RESIDENT and len(rec["readings"]) == 3
    assert {r["value"] for r in rec["readings"]} == {"97"}
    rows = list(
        csv.reader(io.StringIO(data_of(exported(box, "csv", doctor, encrypt=False)).decode()))
    )
    assert rows[0][:3] == ["national_id", "name", "sex"] and len(rows) == 4
    hl7 = messages_of(data_of(exported(box, "hl7", doctor, encrypt=False)).decode())
    assert len(hl7) == 3  # one PCD-01 message per frame's readings
    for message in hl7:
        segments = message.split("\r")
        assert segments[0].startswith("MSH|^~\\&|EDGE_AGENT|amb-017|")
        assert "|ORU^R01^ORU_R01|" in segments[0] and segments[0].endswith(PCD01_PROFILE)
        assert segments[1] == f"PID|||{RESIDENT}^^^CHN^NNCHN||张三||19491231|F"
        assert [s[:3] for s in segments if s] == ["MSH", "PID", "PV1", "OBR", "OBX", "OBX"]


def messages_of(text: str) -> list[str]:
    """An HL7 export's messages: each starts at its MSH, every segment ends in CR."""
    assert text.endswith("\r") and text.startswith("MSH|")
    return ["MSH|" + m.rstrip("\r") for m in text[len("MSH|") :].split("\rMSH|")]


def without_ids(message: str) -> list[str]:
    """A message's segments from the PID on, the OBR's filler number (MSH-10) blanked."""
    segments = message.split("\r")[1:]
    return [re.sub(r"^OBR\|\|\|[^|]*", "OBR|||", s) for s in segments]


def strict(message: str) -> None:
    """hl7apy at strict validation, against the HL7 v2.6 ORU_R01 structure."""
    parse_message(message, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True).validate()


CUFF_TIME = dt.datetime(2027, 1, 15, 15, 58, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def bp(at: dt.datetime) -> Decoded:
    """A cuff's measurement: what a BLE blood-pressure device gives (kPa, with a pulse)."""
    return Decoded(
        readings=(
            Reading("MDC_PRESS_BLD_NONINV_SYS", Decimal("17.33"), "MDC_DIM_KILO_PASCAL", at),
            Reading("MDC_PRESS_BLD_NONINV_DIA", Decimal("10.7"), "MDC_DIM_KILO_PASCAL", at),
            Reading("MDC_PRESS_BLD_NONINV_MEAN", Decimal("12.9"), "MDC_DIM_KILO_PASCAL", at),
            Reading("MDC_PULS_RATE_NON_INV", Decimal("72"), "MDC_DIM_BEAT_PER_MIN", at),
        )
    )


def test_an_hl7_export_is_pcd01_per_reading_group_with_the_stored_values(box: Box) -> None:
    doctor = box.sign_in("王医生", "1234")
    clock = box.clock
    # A second visit, in the ER, at a cuff: its measurement says its UTC offset.
    box.run(
        "visit.start",
        {"national_id": RESIDENT, "device": "cuff-1", "patient_class": "E"},
        session=doctor,
    )
    cuff = Frame("cuff-1", "ble-bp", b"bp", clock.wall_ns(), clock.mono_ns(), clock.boot_id)
    Recorder(box.store).record(cuff, lambda _: bp(CUFF_TIME))
    # Somebody else's reading, on a thermometer: never in this resident's export.
    other = "110105195001010039"
    box.run("patients.add", {"national_id": other, "name": "李四"}, session=doctor)
    box.run("visit.start", {"national_id": other, "device": "thermo-1"}, session=doctor)
    thermo = Frame("thermo-1", "ble-thermo", b"t", clock.wall_ns(), clock.mono_ns(), "b")
    temperature = Reading("MDC_TEMP_BODY", Decimal("36.6"), "MDC_DIM_DEGC")
    Recorder(box.store).record(thermo, lambda _: Decoded(readings=(temperature,)))

    text = data_of(exported(box, "hl7", doctor, encrypt=False)).decode("utf-8")
    assert "李四" not in text and other not in text
    messages = messages_of(text)
    groups = box.store.exports.reading_groups(1)
    assert len(messages) == len(groups) == 4  # three SpO2 frames, one cuff measurement
    for message, group in zip(messages, groups, strict=True):
        strict(message)
        read = parse_inbound(message)  # as the county gateway reads an uploaded one
        assert read.message_type == "ORU^R01" and read.agent_id == "amb-017"
        assert (read.patient_national_id, read.patient_name) == (RESIDENT, "张三")
        assert read.patient_class == group.patient_class
        stored = box.store.frames.observations(group.raw_frame_id)
        assert [(r.metric, r.value, r.unit) for r in read.observations] == [
            (o.metric, o.value, o.unit) for o in stored
        ]
        assert all(r.status == "F" and r.device_id for r in read.observations)
    *spo2, cuff_message = [parse_inbound(m) for m in messages]
    assert [m.patient_class for m in spo2] == ["O"] * 3 and cuff_message.patient_class == "E"
    assert {r.observed_at for r in cuff_message.observations} == {CUFF_TIME}
    assert [r.value for r in cuff_message.observations] == ["17.33", "10.7", "12.9", "72"]
    assert len({m.control_id for m in [*spo2, cuff_message]}) == 4
    # The uplink's message of the same frame says the same from the PID on (its own
    # MSH-7, MSH-10 and OBR-3 aside): the same builder, given the same values.
    rows = {r.raw_frame_id: r for r in box.store.outbox.due(clock.wall_ns() + 10**12, 10)}
    for group, exported_message in zip(groups, messages, strict=True):
        uplink = build_message(
            box.store,
            rows[group.raw_frame_id],
            agent_id="amb-017",
            tz=box.services.config.agent.timezone,
            now_wall_ns=clock.wall_ns(),
        )
        assert without_ids(uplink) == without_ids(exported_message)


# (metric, unit) pairs the drivers store, from the MDC table (edge_agent.mdc).
MEASURED = [
    ("MDC_PRESS_BLD_NONINV_SYS", "MDC_DIM_MMHG"),
    ("MDC_PRESS_BLD_NONINV_DIA", "MDC_DIM_KILO_PASCAL"),
    ("MDC_PULS_OXIM_SAT_O2", "MDC_DIM_PERCENT"),
    ("MDC_TEMP_BODY", "MDC_DIM_DEGC"),
    ("MDC_MASS_BODY_ACTUAL", "MDC_DIM_KILO_G"),
    ("MDC_CONC_GLU_CAPILLARY_PLASMA", "MDC_DIM_MILLI_MOLE_PER_L"),
]
device_times = st.none() | st.datetimes(
    min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2035, 1, 1)
).map(lambda t: t.replace(microsecond=0)).flatmap(
    lambda t: st.sampled_from(
        [
            t,
            *(
                t.replace(tzinfo=dt.timezone(dt.timedelta(minutes=m)))
                for m in (-720, -150, 0, 330, 480, 840)
            ),
        ]
    )
)
readings = st.builds(
    lambda pair, value, at: Reading(pair[0], value, pair[1], at),
    st.sampled_from(MEASURED),
    st.none()
    | st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-1e6, max_value=1e6),
    device_times,
)


def test_any_stored_readings_export_as_pcd01_that_reads_back_as_stored(tmp_path: Path) -> None:
    opened = open_box(tmp_path)
    store, clock = opened.store, opened.clock
    tz = opened.services.config.agent.timezone
    residents = iter(range(1, 10_000))

    @settings(max_examples=40, deadline=None)
    @given(frames=st.lists(st.lists(readings, min_size=1, max_size=4), min_size=1, max_size=3))
    def check(frames: list[list[Reading]]) -> None:
        first17 = f"11010519500101{next(residents):03d}"
        number = first17 + check_character(first17)
        register(store, clock, national_id_number=number, name="欧阳娜娜")
        station = f"dev-{number[-4:]}"
        start_visit(store, clock, national_id_number=number, station=station)
        ids: list[int] = []
        for i, frame_readings in enumerate(frames):
            clock.advance(7)
            frame = Frame(station, "ble-bp", b"%d" % i, clock.wall_ns(), clock.mono_ns(), "b1")
            recorded = Recorder(store).record(frame, decoding_to(frame_readings))
            assert recorded.raw_frame_id is not None
            ids.append(recorded.raw_frame_id)
        person = store.patients.by_national_id(number)
        assert person is not None
        text = as_pcd01(store, person, agent="amb-017", timezone=tz, now_wall_ns=clock.wall_ns())
        messages = messages_of(text)
        assert len(messages) == len(frames)
        for message, raw_frame_id in zip(messages, ids, strict=True):
            strict(message)
            read = parse_inbound(message)
            assert read.patient_national_id == number and read.patient_name == "欧阳娜娜"
            stored = store.frames.observations(raw_frame_id)
            assert len(read.observations) == len(stored)
            for got, kept in zip(read.observations, stored, strict=True):
                assert (got.metric, got.unit) == (kept.metric, kept.unit)
                if kept.value is None:
                    assert (got.value, got.status) == (None, "X")
                else:
                    # NM text (HL7 v2.6 Ch. 2A.47): the stored digits, never an exponent.
                    assert got.value == format(Decimal(kept.value), "f")
                assert got.observed_at == _when(kept, tz)

    try:
        check()
    finally:
        store.close()


def decoding_to(found: list[Reading]) -> Callable[[bytes], Decoded]:
    """A decoder that finds `found` in any frame."""
    return lambda _: Decoded(readings=tuple(found))


def _when(kept: ObservationRow, tz: str) -> dt.datetime:
    """When a stored reading was taken, as OBX-14 must say: the device's time (its own
    offset, else read in the box's zone) unless it was skewed or absent, then receipt."""
    if kept.device_time is None or "device-clock-skew" in kept.flags:
        return dt.datetime.fromtimestamp(kept.received_wall_ns / 1e9, ZoneInfo(tz))
    at = dt.datetime.fromisoformat(kept.device_time)
    return at if at.tzinfo is not None else at.replace(tzinfo=ZoneInfo(tz))


def test_an_hl7_export_of_a_resident_without_readings_is_refused_in_one_line(box: Box) -> None:
    doctor = box.sign_in("王医生", "1234")
    other = "110105195001010039"
    box.run("patients.add", {"national_id": other, "name": "李四"}, session=doctor)
    with pytest.raises(OpError, match=r"^export --format hl7: the resident has no readings"):
        box.run("export", {"national_id": other, "format": "hl7", "encrypt": False}, session=doctor)
    assert [r.outcome for r in box.store.audit.find(limit=1000) if r.op == "export"] == ["failed"]


def test_an_sm_box_seals_its_exports_with_sm4() -> None:
    sealed = export_file.seal(b"record", PHRASE, suite_name="sm", fmt="csv")
    assert b'"suite":"sm"' in sealed.split(b"\n")[1]
    assert export_file.open_file(sealed, PHRASE) == ("csv", b"record")


def test_every_export_is_audited_and_roles_without_export_are_refused(box: Box) -> None:
    doctor = box.sign_in("王医生", "1234")
    exported(box, "json", doctor, passphrase=PHRASE)
    for name, pin in (("crew-1", "5678"), ("kiosk", "0000")):
        with pytest.raises(OpError, match=f"the role {name.split('-')[0]} may not export"):
            exported(box, "json", box.sign_in(name, pin), passphrase=PHRASE)
    with pytest.raises(OpError, match="a passphrase is needed"):
        exported(box, "json", doctor)
    with pytest.raises(OpError, match="at least 10 characters"):
        exported(box, "json", doctor, passphrase="short")
    with pytest.raises(OpError, match="one of json, csv, hl7"):
        exported(box, "pdf", doctor, encrypt=False)
    rows = [r for r in box.store.audit.find(limit=1000) if r.op == "export"]
    assert [(r.user, r.action, r.outcome, r.person) for r in rows] == [
        ("王医生", "export", "ok", 1),
        ("crew-1", "export", "refused", 1),
        ("kiosk", "export", "refused", 1),
        ("王医生", "export", "failed", 1),
        ("王医生", "export", "failed", 1),
        ("王医生", "export", "failed", 1),
    ]
    dumped = repr(box.store.conn.execute("SELECT * FROM audit").fetchall())
    assert PHRASE not in dumped and "short" not in dumped and RESIDENT not in dumped


def test_an_edited_header_or_body_does_not_open() -> None:
    sealed = export_file.seal(b"record", PHRASE, suite_name="intl", fmt="json")
    head, body = sealed.split(b"\n", 2)[:2], sealed.split(b"\n", 2)[2]
    other = b"\n".join([head[0], head[1].replace(b'"json"', b'"csv"'), body])
    with pytest.raises(export_file.ExportFileError, match="wrong passphrase, or the file was"):
        export_file.open_file(other, PHRASE)
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(export_file.ExportFileError, match="wrong passphrase, or the file was"):
        export_file.open_file(flipped, PHRASE)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=600), cut=st.integers(min_value=0, max_value=400))
def test_any_bytes_open_as_the_export_they_are_or_fail_in_one_line(data: bytes, cut: int) -> None:
    real = export_file.seal(b"ok", PHRASE, suite_name="intl", fmt="hl7")
    for candidate in (data, export_file.MAGIC + data, real[:cut] + data):
        try:
            fmt, plain = export_file.open_file(candidate, PHRASE)
        except export_file.ExportFileError as exc:
            assert "\n" not in str(exc)
            continue
        assert (fmt, plain) == ("hl7", b"ok") and candidate == real


# --- the CLI ----------------------------------------------------------------------------


def test_the_cli_writes_a_new_0600_file_and_decrypts_it(tmp_path: Path) -> None:
    cfg = box_config(tmp_path)
    init_keys_in(tmp_path / "data")
    assert cli(cfg, "users", "add", "admin", "--role", "admin", stdin="9999\n").returncode == 0
    assert cli(cfg, "patients", "add", "--national-id", RESIDENT, "--name", "张三").returncode == 0
    out = tmp_path / "张三.json.enc"
    done = cli(cfg, "export", "--patient", RESIDENT, "--output", str(out), stdin=PHRASE + "\n")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["encrypted"] is True
    assert out.stat().st_mode & 0o777 == 0o600 and RESIDENT.encode() not in out.read_bytes()
    again = cli(cfg, "export", "--patient", RESIDENT, "--output", str(out), stdin=PHRASE + "\n")
    assert (again.returncode, again.stderr) == (
        2,
        f"error: {out}: exists already; name a new file\n",
    )
    no_phrase = cli(cfg, "export", "--patient", RESIDENT, "--output", str(tmp_path / "x"))
    assert no_phrase.returncode == 2 and "passphrase: none on stdin" in no_phrase.stderr
    plain = tmp_path / "plain.json"
    wrong = cli(
        cfg, "export", "--decrypt", str(out), "--output", str(plain), stdin="nope-nope-nope\n"
    )
    assert wrong.returncode == 2 and "wrong passphrase" in wrong.stderr and not plain.exists()
    opened = cli(cfg, "export", "--decrypt", str(out), "--output", str(plain), stdin=PHRASE + "\n")
    assert opened.returncode == 0, opened.stderr
    assert json.loads(plain.read_text(encoding="utf-8"))["patient"]["name"] == "张三"
    clear = tmp_path / "clear.csv"
    done = cli(
        cfg,
        "export",
        "--patient",
        RESIDENT,
        "--format",
        "csv",
        "--no-encryption",
        "--output",
        str(clear),
    )
    assert done.returncode == 0, done.stderr
    assert RESIDENT in clear.read_text(encoding="utf-8")
    shown = cli(cfg, "audit", "show", "--json")
    actions = [json.loads(line)["action"] for line in shown.stdout.splitlines()]
    assert actions.count("export") == 2
