"""A resident's record out of the box (`edge-agent export`): their identity, visits,
readings and consent history as JSON, CSV or HL7 v2, encrypted with a passphrase the
exporting user gives (edge_agent.crypto.export_file) unless they ask otherwise.

Who may: the `export` permission (admin, doctor); every export, refused ones too, is a
row of the audit trail with the action `export` (PIPL Art. 51, GB/T 35273-2020 §7.4).
The record is made inside the process that holds the keys (the daemon); what leaves it
is the file's bytes, sealed there when a passphrase is given.

- JSON: one object, UTF-8, `{"format": "edge-agent patient export", "version": 1, ...}`.
- CSV (RFC 4180, UTF-8 with CRLF line ends): one reading a row, the resident's
  identity repeated on each so a spreadsheet needs nothing else (one row of identity
  alone when there is no reading).
- HL7: one ORU^R01 message in ER7 (HL7 v2.6 Ch. 7.3.1): MSH, PID (PID-3 the national
  id, assigning authority CHN, identifier type NNCHN), and per visit a PV1 and an OBR
  with one OBX per reading (OBX-3 the metric code as the box stores it). A readable
  record for another system; not an IHE PCD-01 message (the uplink builds those).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import os
from pathlib import Path
from typing import Any

from edge_agent import national_id
from edge_agent.clock import Clock, wall_datetime
from edge_agent.crypto import export_file
from edge_agent.model import Refused
from edge_agent.store import PatientRow, StoreReader
from sync.hl7 import er7

FORMATS = export_file.FORMATS


def record(store: StoreReader, patient: PatientRow, timezone: str) -> dict[str, Any]:
    """Everything the box holds about `patient`, as JSON values."""

    def when(ns: int | None) -> str | None:
        return None if ns is None else wall_datetime(ns, timezone).isoformat(timespec="seconds")

    return {
        "format": "edge-agent patient export",
        "version": 1,
        "patient": {
            "national_id": patient.national_id,
            "name": patient.name,
            "phone": patient.phone,
            "sex": patient.sex,
            "birth_date": patient.birth_date,
        },
        "visits": [
            {"id": v[0], "station": v[1], "class": v[2], "started": when(v[3]), "ended": when(v[4])}
            for v in store.exports.visits(patient.id)
        ],
        "readings": [
            {
                "visit": r.encounter_id,
                "device": r.device_id,
                "metric": r.metric,
                "value": r.value,
                "unit": r.unit,
                "device_time": r.device_time,
                "received": when(r.received_wall_ns),
            }
            for r in store.exports.readings(patient.id)
        ],
        "consent": [
            {"action": e.action, "version": e.text_version, "time": when(e.wall_ns)}
            for e in store.consent.events(patient.id)
        ],
    }


_CSV_COLUMNS = (
    "national_id",
    "name",
    "sex",
    "birth_date",
    "visit",
    "device",
    "metric",
    "value",
    "unit",
    "device_time",
    "received",
)


def as_csv(rec: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_COLUMNS)
    who = rec["patient"]
    identity = [who["national_id"], who["name"], who["sex"], who["birth_date"]]
    for r in rec["readings"]:
        writer.writerow(
            identity
            + [r[k] for k in ("visit", "device", "metric", "value", "unit")]
            + [r["device_time"], r["received"]]
        )
    if not rec["readings"]:  # the resident's identity, with no reading
        writer.writerow(identity + [""] * (len(_CSV_COLUMNS) - len(identity)))
    return out.getvalue()


def _ts(iso: str | None) -> str:
    """An HL7 DTM (HL7 v2.6 Ch. 2A.22) from an ISO 8601 time: YYYYMMDDHHMMSS+ZZZZ."""
    if iso is None:
        return ""
    return dt.datetime.fromisoformat(iso).strftime("%Y%m%d%H%M%S%z")


def as_hl7(rec: dict[str, Any], *, agent: str, control_id: str, now_iso: str) -> str:
    e = er7.escape
    who = rec["patient"]
    birth = (who["birth_date"] or "").replace("-", "")
    segments = [
        f"MSH|^~\\&|EDGE-AGENT|{e(agent)}|||{_ts(now_iso)}||ORU^R01^ORU_R01|{e(control_id)}|P|2.6",
        f"PID|1||{e(who['national_id'])}^^^CHN^NNCHN||{e(who['name'])}||{birth}|{who['sex'] or 'U'}"
        + ("" if not who["phone"] else f"|||||{e(who['phone'])}"),
    ]
    for index, visit in enumerate(rec["visits"], start=1):
        segments.append(f"PV1|{index}|{e(visit['class'])}|{e(visit['station'])}")
        segments.append(
            f"OBR|{index}|||{visit['id']}^visit^EDGE-AGENT|||{_ts(visit['started'])}"
            f"|{_ts(visit['ended'])}"
        )
        readings = [r for r in rec["readings"] if r["visit"] == visit["id"]]
        for n, r in enumerate(readings, start=1):
            segments.append(
                f"OBX|{n}|NM|{e(r['metric'])}^^MDC|{n}|{e(r['value'] or '')}|{e(r['unit'])}"
                f"||||||F|||{_ts(r['received'])}|||{e(r['device'])}"
            )
    return er7.SEGMENT_SEPARATOR.join(segments) + er7.SEGMENT_SEPARATOR


def export(
    store: StoreReader,
    clock: Clock,
    *,
    national_id_number: str,
    fmt: str,
    passphrase: str | None,
    encrypt: bool,
    suite_name: str,
    agent: str,
    timezone: str,
) -> dict[str, Any]:
    """The export of the resident the number names: the patient row id, the format,
    whether it is encrypted, and the file's bytes (base64, as the socket carries them)."""
    if encrypt == (passphrase is None):
        raise Refused(
            "export: give a passphrase (asked, or stdin) or ask for --no-encryption, not both"
            if passphrase is not None
            else "export: a passphrase is needed to encrypt the file (or --no-encryption)"
        )
    if fmt not in FORMATS:
        raise Refused(f"export --format {fmt[:20]!r}: one of {', '.join(FORMATS)}")
    if passphrase is not None:
        try:
            export_file.check_passphrase(passphrase)
        except export_file.ExportFileError as exc:
            raise Refused(str(exc)) from None
    if not national_id_number:
        raise Refused("export: --patient NATIONAL_ID is needed (or --decrypt FILE)")
    number = national_id.parse(national_id_number).number
    patient = store.patients.by_national_id(number)
    if patient is None:
        raise Refused(f"national id {number}: not registered (edge-agent patients add)")
    rec = record(store, patient, timezone)
    now = wall_datetime(clock.wall_ns(), timezone).isoformat(timespec="seconds")
    if fmt == "json":
        text = json.dumps(rec, ensure_ascii=False, indent=1) + "\n"
    elif fmt == "csv":
        text = as_csv(rec)
    else:
        text = as_hl7(rec, agent=agent, control_id=f"EXP{clock.wall_ns() // 10**6}", now_iso=now)
    data = text.encode("utf-8")
    if passphrase is not None:
        data = export_file.seal(data, passphrase, suite_name=suite_name, fmt=fmt)
    return {
        "patient": patient.id,
        "format": fmt,
        "encrypted": passphrase is not None,
        "bytes": len(data),
        "data": base64.b64encode(data).decode("ascii"),
    }


# --- the file, where the command runs ---------------------------------------------------


def check_new(path: Path) -> None:
    """Refused when `path` is there already (a file, a symlink): an export never
    replaces anything."""
    if path.exists() or path.is_symlink():
        raise Refused(f"{path}: exists already; name a new file")


def write_new(path: Path, data: bytes) -> None:
    """`data` in a new file of mode 0600 (an export holds personal data), synced: never
    over an existing file or through a symlink."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise Refused(f"{path}: exists already; name a new file") from None
    except OSError as exc:
        raise Refused(f"{path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def save(answer: dict[str, Any], path: Path) -> dict[str, Any]:
    """An `export` answer's bytes written to the new file `path`; what to print."""
    data = base64.b64decode(str(answer["data"]))
    write_new(path, data)
    return {**{k: v for k, v in answer.items() if k != "data"}, "output": str(path)}


def decrypt_file(source: Path, target: Path, passphrase: str) -> dict[str, Any]:
    """`export --decrypt`: an encrypted export opened into the new file `target`."""
    check_new(target)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise Refused(f"{source}: {exc.strerror}") from None
    try:
        fmt, plain = export_file.open_file(data, passphrase)
    except export_file.ExportFileError as exc:
        raise Refused(str(exc)) from None
    write_new(target, plain)
    return {"decrypted": str(target), "format": fmt, "bytes": len(plain)}
