"""`edge-agent export` (edge_agent/export.py, edge_agent/crypto/export_file.py): only for
roles with export, always audited, encrypted with a passphrase unless asked otherwise;
on real SQLite files, readings recorded as the recorder records them."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from box_keys import box_config, init_keys_in
from cli_box import cli
from hypothesis import given, settings
from hypothesis import strategies as st
from operated_box import RESIDENT, Box, open_box, with_users
from outbox_rows import record

from edge_agent.control import OpError
from edge_agent.crypto import export_file

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
    hl7 = data_of(exported(box, "hl7", doctor, encrypt=False)).decode().split("\r")
    assert hl7[0].startswith("MSH|^~\\&|EDGE-AGENT|amb-017") and "ORU^R01^ORU_R01" in hl7[0]
    assert hl7[1].startswith(f"PID|1||{RESIDENT}^^^CHN^NNCHN||张三||19491231|F")
    assert [s[:3] for s in hl7 if s] == ["MSH", "PID", "PV1", "OBR", "OBX", "OBX", "OBX"]


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
