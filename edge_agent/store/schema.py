"""Schema and migrations, in order, each a small function (applied on start).

A migration runs inside the start-up transaction together with its version row, so a
box that loses power mid-migration starts again from the previous version.
Times are integers: `*_wall_ns` (the box's wall clock, may be wrong: no RTC),
`*_mono_ns` (monotonic, valid within `boot_id`).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlite_utils import Database


def _v1_initial(db: Database) -> None:
    db.create_table(
        "meta",
        {"key": str, "value": str},
        pk="key",
    )
    db.create_table(
        "device",
        {
            "id": str,
            "driver": str,
            "transport": str,
            "port": str,
            "address": str,
            "eui64": str,
            "state": str,
            "state_detail": str,
            "state_wall_ns": int,
            "last_frame_wall_ns": int,
            "frames": int,
            "quarantined": int,
        },
        pk="id",
        not_null=["driver", "state", "frames", "quarantined"],
        defaults={"state": "configured", "frames": 0, "quarantined": 0},
    )
    db.create_table(
        "raw_frame",
        {
            "id": int,
            "device_id": str,
            "driver": str,
            "channel": str,  # e.g. the GATT characteristic a notification came on
            "data": bytes,
            "received_wall_ns": int,
            "received_mono_ns": int,
            "boot_id": str,
            "outcome": str,  # decoded | quarantined | progress | empty | duplicate
        },
        pk="id",
        not_null=["device_id", "driver", "data", "received_wall_ns", "received_mono_ns", "boot_id"],
    )
    db.table("raw_frame").create_index(["device_id", "received_wall_ns"])
    db.create_table(
        "quarantine",
        {
            "id": int,
            "raw_frame_id": int,
            "device_id": str,
            "driver": str,
            "reason": str,
            "byte_offset": int,
            "received_wall_ns": int,
        },
        pk="id",
        foreign_keys=[("raw_frame_id", "raw_frame", "id")],
        not_null=["raw_frame_id", "device_id", "driver", "reason"],
    )
    db.create_table(
        "patient",
        {
            "id": int,
            "national_id": str,
            "name": str,
            "phone": str,
            "sex": str,
            "birth_date": str,
            "created_wall_ns": int,
        },
        pk="id",
        not_null=["national_id", "name", "created_wall_ns"],
    )
    db.table("patient").create_index(["national_id"], unique=True)
    db.create_table(
        "encounter",
        {
            "id": int,
            "patient_id": int,
            "station": str,  # a device id, or "*" for every device of this box
            "patient_class": str,  # HL7 PV1-2: O outpatient, E emergency, ...
            "started_wall_ns": int,
            "ended_wall_ns": int,
        },
        pk="id",
        foreign_keys=[("patient_id", "patient", "id")],
        not_null=["patient_id", "station", "patient_class", "started_wall_ns"],
    )
    db.create_table(
        "observation",
        {
            "id": int,
            "raw_frame_id": int,
            "device_id": str,
            "encounter_id": int,
            "metric": str,
            "value": str,  # exact decimal text: never a binary float
            "unit": str,
            "device_time": str,  # the device's own time, ISO 8601 (see v6), or NULL
            "flags": str,  # JSON array
            "received_wall_ns": int,
            "received_mono_ns": int,
            "boot_id": str,
        },
        pk="id",
        foreign_keys=[("raw_frame_id", "raw_frame", "id"), ("encounter_id", "encounter", "id")],
        not_null=["raw_frame_id", "device_id", "metric", "unit", "flags"],
    )
    db.table("observation").create_index(["raw_frame_id"])
    db.table("observation").create_index(["metric", "received_wall_ns"])
    # latest value per (device, metric) for the vitals screen: the rowid rides in the index
    db.table("observation").create_index(["device_id", "metric"])
    db.create_table(
        "alert",
        {
            "id": int,
            "raw_frame_id": int,
            "device_id": str,
            "source": str,  # device | rule
            "code": str,
            "priority": str,
            "text": str,
            "raised_wall_ns": int,
            "state": str,  # active | acknowledged | cleared
            "ack_user": str,
            "ack_wall_ns": int,
        },
        pk="id",
        foreign_keys=[("raw_frame_id", "raw_frame", "id")],
        not_null=["source", "code", "priority", "raised_wall_ns", "state"],
    )
    db.create_table(
        "outbox",
        {
            "id": str,  # = HL7 MSH-10, the gateway's dedup key
            "kind": str,
            "priority": int,  # 0 = most urgent
            "status": str,  # pending | sent | delivered | rejected
            "raw_frame_id": int,
            "created_wall_ns": int,
            "created_mono_ns": int,
            "boot_id": str,
            "payload": str,  # the ER7 text, built once and re-sent byte-identical
            "attempts": int,
            "next_attempt_wall_ns": int,
            "sent_wall_ns": int,
            "delivered_wall_ns": int,
            "delivered_mono_ns": int,
            "delivered_boot_id": str,
            "ack_code": str,
            "ack_text": str,
            "last_error": str,
        },
        pk="id",
        foreign_keys=[("raw_frame_id", "raw_frame", "id")],
        not_null=["kind", "priority", "status", "created_wall_ns", "attempts"],
        defaults={"attempts": 0, "next_attempt_wall_ns": 0},
    )
    db.table("outbox").create_index(["status", "priority", "created_wall_ns"])
    db.create_table(
        "notice",
        {
            "id": int,
            "topic": str,
            "payload": str,
            "received_wall_ns": int,
        },
        pk="id",
        not_null=["topic", "payload", "received_wall_ns"],
    )


def _v2_waveforms_and_dedup(db: Database) -> None:
    """Waveform segments (monitors' ECG, pleth) and per-device frame dedup keys."""
    db.create_table(
        "waveform_segment",
        {
            "id": int,
            "raw_frame_id": int,
            "device_id": str,
            "encounter_id": int,
            "metric": str,  # MDC reference id of the signal (MDC_ECG_ELEC_POTL_II ...)
            "unit": str,  # MDC unit of scale * sample + offset
            "rate_hz": float,
            "scale": str,  # exact decimal text
            "offset": str,
            "start_device_time": str,  # the device's naive wall time of sample 0, or NULL
            "sample_count": int,
            "encoding": str,  # one of edge_agent.waveform_codec.ENCODINGS
            "data": bytes,
            "received_wall_ns": int,
            "received_mono_ns": int,
            "boot_id": str,
        },
        pk="id",
        foreign_keys=[("raw_frame_id", "raw_frame", "id"), ("encounter_id", "encounter", "id")],
        not_null=[
            "raw_frame_id",
            "device_id",
            "metric",
            "unit",
            "rate_hz",
            "scale",
            "offset",
            "sample_count",
            "encoding",
            "data",
            "received_wall_ns",
        ],
    )
    db.table("waveform_segment").create_index(["device_id", "metric", "received_wall_ns"])
    # A device that resends (an HL7 monitor without our ACK, a cuff replaying its
    # memory) gives the same key again: the recorder keeps the bytes, not a 2nd reading.
    db.table("raw_frame").add_column("dedup_key", str)
    db.execute(
        "CREATE INDEX idx_raw_frame_dedup ON raw_frame (device_id, dedup_key)"
        " WHERE dedup_key IS NOT NULL"
    )


def _v3_paired_devices(db: Database) -> None:
    """BLE devices paired at this station (`edge-agent devices pair`), besides the config."""
    db.create_table(
        "paired_device",
        {
            "address": str,  # AA:BB:CC:DD:EE:FF, upper case
            "device_id": str,
            "driver": str,
            "name": str,  # what it advertised when paired
            "paired_wall_ns": int,
        },
        pk="address",
        not_null=["device_id", "driver", "paired_wall_ns"],
    )
    db.table("paired_device").create_index(["device_id"], unique=True)


def _v4_statements_and_prealerts(db: Database) -> None:
    """ECG carts' statements, pre-arrival notices to the ER, monitors' wave strips,
    alerts that de-duplicate and travel as ORU^R40."""
    db.create_table(
        "statement",
        {
            "id": int,
            "raw_frame_id": int,
            "device_id": str,
            "encounter_id": int,
            "seq": int,  # order within the frame
            "text": str,  # word for word, as the device wrote it
            "code": str,  # the format's code for it, when it has one
            "received_wall_ns": int,
        },
        pk="id",
        foreign_keys=[("raw_frame_id", "raw_frame", "id"), ("encounter_id", "encounter", "id")],
        not_null=["raw_frame_id", "device_id", "seq", "text", "received_wall_ns"],
    )
    db.table("statement").create_index(["raw_frame_id"])
    db.create_table(
        "prealert",
        {
            "id": int,
            "outbox_id": str,  # the ADT^A14 that carries it (MSH-10)
            "encounter_id": int,
            "ecg_frame_id": int,  # the 12-lead it is about, when there is one
            "stemi": int,  # 1: acute MI / STEMI (the cart said so, or the crew)
            "source": str,  # "ecg" (the cart's statements) or "crew"
            "destination": str,
            "eta_minutes": int,
            "complaint": str,
            "created_wall_ns": int,
        },
        pk="id",
        not_null=["outbox_id", "stemi", "source", "complaint", "created_wall_ns"],
    )
    db.table("prealert").create_index(["outbox_id"], unique=True)
    # Alerts (device alarms and clinical rules, issue 6): what condition, for whom, and
    # each ORU^R40 that reported it (raised: event phase start; cleared: end).
    alert = db.table("alert")
    alert.add_column("condition_key", str)  # de-duplication while the condition persists
    alert.add_column("subject", str)  # "encounter:<id>" or "device:<id>"
    alert.add_column("text_en", str)
    alert.add_column("value", str)  # the triggering reading, as text, with its metric/unit
    alert.add_column("metric", str)
    alert.add_column("unit", str)
    alert.add_column("last_seen_wall_ns", int)
    alert.add_column("cleared_wall_ns", int)
    alert.add_column("physiological", int)  # 1: about the patient (SP), 0: the device (ST)
    db.execute(
        "CREATE INDEX idx_alert_active ON alert (subject, condition_key) WHERE state != 'cleared'"
    )
    db.create_table(
        "alert_message",
        {"outbox_id": str, "alert_id": int, "phase": str},  # phase: start | end
        pk="outbox_id",
        foreign_keys=[("alert_id", "alert", "id")],
        not_null=["alert_id", "phase"],
    )
    # What NEWS2 needs that no device measures, as the crew or the doctor observed it:
    # the SpO2 scale (a patient's property: scale 2 for hypercapnic respiratory failure),
    # air or oxygen and ACVPU (observations: they age like readings).
    db.create_table(
        "news2_observation",
        {
            "id": int,
            "subject": str,  # "encounter:<id>" or "station"
            "scale": int,  # 1 | 2 | NULL (unchanged)
            "oxygen": int,  # 1 oxygen, 0 air, NULL not observed
            "acvpu": str,  # A C V P U, NULL not observed
            "observed_by": str,
            "observed_wall_ns": int,
        },
        pk="id",
        not_null=["subject", "observed_wall_ns"],
    )
    db.table("news2_observation").create_index(["subject", "observed_wall_ns"])
    # A monitor's waves for a window of time, sent at low priority (the ER sees the
    # rhythm that led up to arrival): which device and window an outbox row reports.
    db.create_table(
        "strip",
        {
            "outbox_id": str,
            "device_id": str,
            "from_wall_ns": int,
            "to_wall_ns": int,
        },
        pk="outbox_id",
        not_null=["device_id", "from_wall_ns", "to_wall_ns"],
    )


def _v5_bounded_quarantine(db: Database) -> None:
    """Bad frames counted per device and kind of reason; only some keep their bytes
    (edge_agent.quarantine: a port full of line noise must not fill the disk)."""
    db.create_table(
        "quarantine_tally",
        {
            "device_id": str,
            "reason": str,  # quarantine.reason_key: the reason without what it quotes
            "driver": str,
            "frames": int,  # every bad frame with this reason, bytes kept or not
            "kept": int,  # those of them with a raw_frame + quarantine row
            "bytes": int,
            "first_wall_ns": int,
            "last_wall_ns": int,
            "last_reason": str,  # the newest one word for word
        },
        pk=("device_id", "reason"),
        not_null=["driver", "frames", "kept", "bytes", "first_wall_ns", "last_wall_ns"],
        defaults={"frames": 0, "kept": 0, "bytes": 0},
    )
    # The recorder counts a device's kept rows once per start (its budget).
    db.execute("CREATE INDEX idx_quarantine_device ON quarantine (device_id)")


def _v6_ecg_context(db: Database) -> None:
    """What a 12-lead file says beyond its signals (issue 11): the cart's model and the
    patient's sex and age as the cart was told them, one row per file (raw frame)."""
    db.create_table(
        "ecg_context",
        {
            "raw_frame_id": int,
            "device_model": str,  # as the file names it
            "patient_sex": str,  # HL7 table 0001: M, F, O
            "patient_age": int,
            "patient_age_unit": str,  # MDC_DIM_YR | MDC_DIM_DAY | MDC_DIM_HR
        },
        pk="raw_frame_id",
        foreign_keys=[("raw_frame_id", "raw_frame", "id")],
    )


def _v7_device_identity_and_sources(db: Database) -> None:
    """What a receiver needs to see as the source said it (issue 11).

    - observation.device_time keeps the device's UTC offset when it gave one (ISO 8601
      text with `+00:00`); naive text is the device's wall clock, read in
      `agent.timezone`. Rows written before keep their naive text, which is what it was.
    - observation.sub_id / result_status: an HL7 monitor's OBX-4 and OBX-11 as it sent
      them (NULL for our own drivers: the uplink places them, and they are final).
    - device.eui64_source: "device" (its own: BLE address, an HL7 monitor's MSH-3/OBX-18)
      or "derived" (made for it once by sync.hl7.eui64 and kept).
    - raw_frame.encounter_id: the visit a frame's readings and alarms were bound to when
      recorded (its ORU^R40 names the same patient as its ORU^R01).
    - frame_source: what a frame said about where it came from: the sending device's
      EUI-64 and the patient the device named (an HL7 monitor's PID), word for word,
      and whether that patient conflicted with the visit open at the time.
    - outbox.held_reason: why a held row waits (no visit open; a monitor naming another
      patient than the open visit's resident).
    """
    db.table("observation").add_column("sub_id", str)
    db.table("observation").add_column("result_status", str)
    db.table("device").add_column("eui64_source", str)
    db.table("raw_frame").add_column("encounter_id", int)
    db.table("outbox").add_column("held_reason", str)
    db.create_table(
        "frame_source",
        {
            "raw_frame_id": int,
            "device_eui64": str,  # 16 hex digits, as the frame named it, or NULL
            "patient_identifier": str,  # PID-3 CX.1
            "patient_authority": str,  # PID-3 CX.4
            "patient_id_type": str,  # PID-3 CX.5 (HL7 table 0203)
            "patient_name": str,
            "patient_birth_date": str,  # ISO date
            "patient_sex": str,
            "patient_class": str,  # PV1-2
            "patient_national_id": str,  # the identifier when it is a valid GB 11643 number
            "patient_conflict": int,  # 1: a visit was open for another resident (held)
        },
        pk="raw_frame_id",
        foreign_keys=[("raw_frame_id", "raw_frame", "id")],
    )


def _v8_operation_log(db: Database) -> None:
    # Who changed what by hand (edge_agent.operations): the OS user the control socket's
    # peer credentials name, or the user of a CLI command that wrote with no daemon
    # running. What changed is named, not copied: no personal data is repeated here.
    db.create_table(
        "operation_log",
        {
            "id": int,
            "op": str,  # patients.add | visit.start | alerts.ack | prealert | ...
            "user": str,
            "uid": int,
            "subject": str,  # e.g. "alert:7", "patient:3", "outbox:<MSH-10>"
            "done_wall_ns": int,
        },
        pk="id",
        not_null=["op", "user", "done_wall_ns"],
    )


def _v9_sealed_patients(db: Database) -> None:
    # A resident's national id, name and phone are sealed values (edge_agent.crypto.sealed)
    # from now on; `sealed_key` is the key id all three are sealed under (NULL: rows
    # written before, still plain, until the sealing pass re-seals them). They are found
    # by keyed blind indexes: the national id's is unique, the phone's is not (a family
    # shares one). The index on the plain column stays: plain rows keep their uniqueness
    # until sealed, sealed values are random.
    patient = db.table("patient")
    patient.add_column("national_id_index", str)
    patient.add_column("phone_index", str)
    patient.add_column("sealed_key", str)
    patient.create_index(["national_id_index"], unique=True)
    patient.create_index(["phone_index"])
    patient.create_index(["sealed_key"])


def _v10_users_and_sessions(db: Database) -> None:
    # The box's users (edge_agent.users): a PIN hash (edge_agent.crypto.pins: scrypt with
    # its parameters), lockout after repeated failures, and sign-in sessions kept as the
    # hash of their token only (a copy of the store gives no usable token).
    db.create_table(
        "app_user",
        {
            "id": int,
            "name": str,
            "role": str,  # edge_agent.roles.BOX_ROLES
            "pin_hash": str,
            "disabled": int,
            "failed_attempts": int,  # since the last good sign-in
            "locked_until_wall_ns": int,  # refused until then, even with the right PIN
            "created_wall_ns": int,
        },
        pk="id",
        not_null=["name", "role", "pin_hash", "disabled", "failed_attempts", "created_wall_ns"],
        defaults={"disabled": 0, "failed_attempts": 0},
    )
    db.table("app_user").create_index(["name"], unique=True)
    db.create_table(
        "user_session",
        {
            "token_hash": str,  # hex of the suite's digest of the token
            "user_id": int,
            "started_wall_ns": int,
            # Idle is measured on the monotonic clock of one boot (the box has no RTC:
            # its wall clock may jump); a session from another boot is locked.
            "last_used_mono_ns": int,
            "boot_id": str,
            "ended": int,  # 1: locked by idleness or signed out; a new sign-in is needed
        },
        pk="token_hash",
        foreign_keys=[("user_id", "app_user", "id")],
        not_null=["user_id", "started_wall_ns", "last_used_mono_ns", "boot_id", "ended"],
        defaults={"ended": 0},
    )


def _v11_audit_trail(db: Database) -> None:
    # The audit trail (edge_agent.audit): append-only, each row's hash the suite's digest
    # of the previous hash and the row's canonical encoding. The triggers make SQLite
    # itself refuse to change or remove a row; someone holding the file can drop them,
    # which `audit verify` then finds (and the head anchored elsewhere, `meta`
    # `audit.head` now and the county gateway later, shows a cut tail).
    db.create_table(
        "audit",
        {
            "seq": int,
            "wall_ns": int,
            "time": str,  # the same instant, ISO 8601 with the zone's offset
            "user": str,
            "role": str,
            "station": str,  # agent id, and the device or station the action was at
            "action": str,  # create | read | change | export | sign-in | ...
            "op": str,  # the operation asked (patients.add, users.sign-in, ...)
            "subject": str,  # e.g. "patient:12"; never personal data itself
            "person": int,  # the patient row it concerns, when it concerns one
            "outcome": str,  # ok | refused | failed
            "reason": str,
            "suite": str,
            "prev_hash": bytes,
            "hash": bytes,
        },
        pk="seq",
        not_null=["wall_ns", "time", "user", "role", "station", "action", "op", "outcome"],
    )
    db.table("audit").create_index(["person"])
    db.table("audit").create_index(["user", "wall_ns"])
    for event in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER audit_no_{event.lower()} BEFORE {event} ON audit"
            " BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"
        )


def _v12_sealed_frames_and_messages(db: Database) -> None:
    # Beyond the residents (edge_agent.store.sealing): raw frames of drivers whose frames
    # carry identity (an HL7 PID, a 12-lead file's patient), who a monitor said the
    # patient is, every outbox message's ER7, pre-arrival notices, the ER's notices, and
    # the reasons of rejected identity frames. `sealed_key` names the key of a row's
    # sealed columns; NULL: written plain (before this, or by a writer without keys),
    # which the sealing pass seals.
    for table in (
        "raw_frame",
        "frame_source",
        "outbox",
        "prealert",
        "notice",
        "quarantine",
        "quarantine_tally",
    ):
        db.table(table).add_column("sealed_key", str)
    # Who a monitor named (identifier, name, national id) sealed together as one value.
    db.table("frame_source").add_column("patient_sealed", bytes)


def _v13_consent_and_resident_sign_in(db: Database) -> None:
    # A resident's separate consent to their health data (edge_agent.consent): each give
    # or withdraw one row, never changed, with the version of the text shown and the
    # text's SHA-256; their kiosk PIN (scrypt hash, lockout as for users) and their kiosk
    # sessions (the token's digest only). edge_agent.store.consent. On a kiosk box a
    # resident whose readings were delivered keeps only a pseudonym (edge_agent.
    # kiosk_retention): `patient.pseudonym` set, the identity columns overwritten.
    db.table("patient").add_column("pseudonym", str)
    db.table("patient").create_index(["pseudonym"], unique=True)
    db.create_table(
        "consent_event",
        {
            "id": int,
            "patient_id": int,
            "action": str,  # give | withdraw
            "text_version": str,  # edge_agent.consent_text.TEXTS
            "text_sha256": str,
            "wall_ns": int,
            "by_user": str,  # the box user who recorded it, or resident:<patient id>
            "by_role": str,
        },
        pk="id",
        foreign_keys=[("patient_id", "patient", "id")],
        not_null=[
            "patient_id",
            "action",
            "text_version",
            "text_sha256",
            "wall_ns",
            "by_user",
            "by_role",
        ],
    )
    db.table("consent_event").create_index(["patient_id", "id"])
    for event in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER consent_event_no_{event.lower()} BEFORE {event} ON consent_event"
            " BEGIN SELECT RAISE(ABORT, 'consent events are append-only'); END"
        )
    db.create_table(
        "resident_pin",
        {
            "patient_id": int,
            "pin_hash": str,
            "failed_attempts": int,
            "locked_until_wall_ns": int,
            "set_wall_ns": int,
        },
        pk="patient_id",
        foreign_keys=[("patient_id", "patient", "id")],
        not_null=["pin_hash", "failed_attempts", "set_wall_ns"],
        defaults={"failed_attempts": 0},
    )
    db.create_table(
        "resident_session",
        {
            "token_hash": str,
            "patient_id": int,
            "started_wall_ns": int,
            "last_used_mono_ns": int,
            "boot_id": str,
            "ended": int,
        },
        pk="token_hash",
        foreign_keys=[("patient_id", "patient", "id")],
        not_null=["patient_id", "started_wall_ns", "last_used_mono_ns", "boot_id", "ended"],
        defaults={"ended": 0},
    )


def _v14_sealed_file_names_and_statements(db: Database) -> None:
    # A 12-lead cart's file name as the cart chose it (`raw_frame.channel` of a frame of
    # a driver whose frames carry identity): carts name files after the patient
    # (`王秀英_110101199003077777.xml`). Its own key id column, `channel_key`: frames
    # sealed before this have their bytes sealed and their name plain, which the sealing
    # pass finds by `channel_key` NULL and seals. The cart's statements (`statement.text`,
    # free text that may carry the name) sealed, `statement.sealed_key` naming the key.
    db.table("raw_frame").add_column("channel_key", str)
    db.table("statement").add_column("sealed_key", str)
    # The receiver's text of a refused outbox message (`outbox.ack_text`): a receiver may
    # quote the message it refuses. `ack_key` names its key (the row's payload has its own).
    db.table("outbox").add_column("ack_key", str)


Migration = tuple[int, str, Callable[[Database], None]]

MIGRATIONS: tuple[Migration, ...] = (
    (1, "initial schema", _v1_initial),
    (2, "waveform segments, frame dedup keys", _v2_waveforms_and_dedup),
    (3, "paired BLE devices", _v3_paired_devices),
    (
        4,
        "ECG statements, pre-arrival notices, monitor strips, alerts",
        _v4_statements_and_prealerts,
    ),
    (5, "bounded quarantine: counts per device and reason", _v5_bounded_quarantine),
    (6, "12-lead cart model, patient sex and age", _v6_ecg_context),
    (
        7,
        "device EUI-64s, source sub-ids, statuses and patients, held reasons",
        _v7_device_identity_and_sources,
    ),
    (8, "operation log: who changed what", _v8_operation_log),
    (9, "sealed national id, name and phone; blind indexes", _v9_sealed_patients),
    (10, "users, PIN hashes, sign-in sessions", _v10_users_and_sessions),
    (11, "hash-chained audit trail", _v11_audit_trail),
    (
        12,
        "sealed raw identity frames, frame sources, outbox messages, notices, reasons",
        _v12_sealed_frames_and_messages,
    ),
    (13, "residents' consent, kiosk PINs and sessions", _v13_consent_and_resident_sign_in),
    (
        14,
        "sealed 12-lead file names, cart statements, refusal texts",
        _v14_sealed_file_names_and_statements,
    ),
)

LATEST_VERSION = MIGRATIONS[-1][0]
