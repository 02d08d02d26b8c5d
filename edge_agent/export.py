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
- HL7: the resident's readings as IHE PCD-01 ORU^R01 messages (HL7 v2.6, ER7), one per
  reading group (the readings one frame gave, in one visit), built by the uplink's own
  builder (sync.hl7.pcd01.build_oru_r01) from the same values the uplink gives it
  (sync.reported_readings): the PID of the resident (PID-3 the national id, CHN,
  NNCHN), PV1-2 the visit's class, MDC codes and units in OBX-3/OBX-6, the device's
  EUI-64 in OBX-18, the observation time with its offset in OBX-14. MSH-10 is the
  export's own (`EXP<ms>.<n>`), not the uplink's message id: the file is not a resend.
  The messages follow one another, each segment ending in CR (each message starts
  with its MSH). Visits and consent are not PCD-01 content: JSON and CSV carry them.
"""

from __future__ import annotations

import base64
import csv
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
from sync import reported_readings
from sync.hl7.eui64 import normalise_eui64
from sync.hl7.pcd01 import SEGMENT_END, build_oru_r01

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


def as_pcd01(
    store: StoreReader, patient: PatientRow, *, agent: str, timezone: str, now_wall_ns: int
) -> str:
    """The resident's readings as PCD-01 ORU^R01 messages, one per reading group, in
    the order they were stored (module docstring); Refused when there are none, or
    when a stored code is one the MDC table no longer has."""
    sent_at = wall_datetime(now_wall_ns, timezone)
    messages = []
    for n, group in enumerate(store.exports.reading_groups(patient.id), start=1):
        readings = [
            o
            for o in store.frames.observations(group.raw_frame_id)
            if o.encounter_id == group.encounter_id
        ]
        device_id = readings[0].device_id
        device_row = store.devices.get(device_id)
        frame = store.frames.get(group.raw_frame_id)
        # The EUI-64 the frame named, else the one the uplink reports for the device.
        eui64 = normalise_eui64(store.frames.source_eui64(group.raw_frame_id))
        if eui64 is None:
            eui64, _ = reported_readings.device_eui64(device_id, device_row, agent)
        try:
            messages.append(
                build_oru_r01(
                    control_id=f"EXP{now_wall_ns // 10**6}.{n}",
                    agent_id=agent,
                    sent_at=sent_at,
                    device=reported_readings.device_identity(
                        device_id, device_row, None if frame is None else frame.driver, eui64
                    ),
                    patient=reported_readings.resident_identity(patient, group.patient_class),
                    observations=[
                        reported_readings.stored_observation(o, timezone) for o in readings
                    ],
                )
            )
        except KeyError as exc:
            raise Refused(
                f"export --format hl7: frame {group.raw_frame_id}: {exc.args[0]}"
                " (json and csv export it as stored)"
            ) from None
    if not messages:
        raise Refused(
            "export --format hl7: the resident has no readings to report"
            " (json and csv hold the rest of the record)"
        )
    # build_oru_r01 separates segments; each one of the file ends in CR (Ch. 2.5.1).
    return "".join(m + SEGMENT_END for m in messages)


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
        raise Refused("export: this national id is not registered (edge-agent patients add)")
    if fmt == "json":
        text = json.dumps(record(store, patient, timezone), ensure_ascii=False, indent=1) + "\n"
    elif fmt == "csv":
        text = as_csv(record(store, patient, timezone))
    else:
        text = as_pcd01(store, patient, agent=agent, timezone=timezone, now_wall_ns=clock.wall_ns())
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
