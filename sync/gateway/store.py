"""The reference county gateway's store: each message once, keyed on (agent, MSH-10).

SQLite (the embedded default) with the same durability rules as the box: WAL,
synchronous=FULL, one writer. A batch of messages is committed before any of them is
acknowledged, so an ACK AA always means "on disk here". A redelivered message (the box
retried, or the broker redelivered after a gateway crash) is counted as a duplicate and
answered again, never stored twice. A message that cannot be accepted is kept in
`rejected` with its bytes and the reason, so nothing the county received is lost.

What identifies a person is sealed (edge_agent.crypto.sealed) under the gateway's key
file (sync.gateway.keys), every such column declared once in `SEALED_COLUMNS`: since
migration 5 a message as received (`message.payload`), its patient's ID and name
(`message`, `prearrival`), a refused message's bytes (`rejected.payload`, its base64
sealed) and each enrolled box's MAC key (`enrolment.mac_key`, its hex sealed); since
migration 8 the free text people and devices write (a notice's destination and
complaint, the cart's statements, alert texts, the ER's replies and who sent them) and
what is kept of a refused message beside its bytes (the reason, which may have quoted
it, and its topic). A key id column (`sealed_key`, or one of its own for a column
sealed later than the rest of its row) names the key id a value was sealed with
(NULL: written before its column was sealed, sealed when the store is next opened for
writing). The patient's ID is found again by its blind index (`patient_index`, the
suite's HMAC of `national_id:<ID upper-case>` under the key's index key), never stored
plain. Every read that shows a person opens it; a value that does not open is a
GatewayStoreError naming the row. The store is opened only with its key file: a key
file that is missing, open to others, or not the one that sealed this store (checked
on a sealed probe, `key_check`) is one line, before anything is read or written.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlite_utils import Database

from edge_agent import waveform_codec
from edge_agent.crypto import sealed
from edge_agent.crypto.keyring import Keyring
from edge_agent.crypto.suites import SealError, suite
from edge_agent.identifiers import AGENT_ID, CONTROL_ID
from edge_agent.store import AuditRow, UserRow
from sync.audit_batches import AuditBatch, row_json
from sync.gateway import keys as gateway_keys
from sync.hl7.inbound import MAX_MESSAGE_BYTES, InboundMessage
from sync.message_auth import MessageKey

# A whole message sealed: its base64 is 4/3 of its bytes; a refused message's bytes are
# base64'd before they are sealed (the broker's 1 MiB packet cap, and some).
MAX_SEALED_MESSAGE = 2 * MAX_MESSAGE_BYTES + 1024
MAX_SEALED_REJECTED = 4 * MAX_MESSAGE_BYTES + 1024
KEY_CHECK_PLACE = "key_check"
KEY_CHECK_TEXT = "edge-agent gateway store"
# Boxes whose refused audit batches are counted (one row each): every box of a county and
# many more, but not every agent id someone can put in a topic.
MAX_REFUSING_BOXES = 10_000


class GatewayStoreError(RuntimeError):
    """The gateway database cannot be used (bad URL, unsupported backend, newer schema)."""


PLAIN = "plain"  # how `keys status` counts rows not sealed yet


def _v1_initial(db: Database) -> None:
    db.create_table(
        "message",
        {
            "id": int,
            "agent": str,
            "control_id": str,
            "message_type": str,
            "sent_at": str,
            "received_wall_ns": int,
            "patient_national_id": str,
            "patient_name": str,
            "patient_class": str,
            "payload": str,
        },
        pk="id",
        not_null=["agent", "control_id", "received_wall_ns", "payload"],
    )
    db.table("message").create_index(["agent", "control_id"], unique=True)
    db.create_table(
        "observation",
        {
            "id": int,
            "message_id": int,
            "set_id": int,
            "metric": str,
            "code": int,
            "value": str,
            "unit": str,
            "observed_at": str,
            "device_id": str,
            "status": str,
        },
        pk="id",
        foreign_keys=[("message_id", "message", "id")],
        not_null=["message_id", "metric"],
    )
    db.table("observation").create_index(["message_id"])
    db.create_table(
        "duplicate",
        {"id": int, "agent": str, "control_id": str, "received_wall_ns": int},
        pk="id",
        not_null=["agent", "control_id", "received_wall_ns"],
    )
    db.create_table(
        "rejected",
        {
            "id": int,
            "agent": str,
            "control_id": str,
            "ack_code": str,
            "error_code": str,
            "reason": str,
            "payload": bytes,
            "received_wall_ns": int,
            "times_seen": int,
        },
        pk="id",
        not_null=["ack_code", "reason", "payload", "received_wall_ns", "times_seen"],
        defaults={"times_seen": 1},
    )


def _v2_ecg_and_prearrival(db: Database) -> None:
    """12-leads (their leads, statements and rendered sheets), pre-arrival notices,
    alerts (ORU^R40), the ER's replies sent back to the ambulances."""
    db.create_table(
        "waveform",
        {
            "id": int,
            "message_id": int,
            "set_id": int,
            "metric": str,
            "sub_id": str,  # OBX-4
            "sample_exponent": int,  # samples are integers x 10^exponent (NA decimals)
            "sample_count": int,
            "encoding": str,  # edge_agent.waveform_codec
            "data": bytes,
        },
        pk="id",
        foreign_keys=[("message_id", "message", "id")],
        not_null=["message_id", "metric", "sample_count", "encoding", "data"],
    )
    db.table("waveform").create_index(["message_id"])
    db.create_table(
        "statement",
        {"id": int, "message_id": int, "seq": int, "text": str},
        pk="id",
        foreign_keys=[("message_id", "message", "id")],
        not_null=["message_id", "seq", "text"],
    )
    db.create_table(
        "ecg",
        {
            "message_id": int,
            "agent": str,
            "control_id": str,
            "stemi": int,  # the cart's statements say acute MI / STEMI
            "png_path": str,
            "pdf_path": str,
            "render_error": str,
            "received_wall_ns": int,
        },
        pk="message_id",
        foreign_keys=[("message_id", "message", "id")],
        not_null=["agent", "control_id", "stemi", "received_wall_ns"],
    )
    db.create_table(
        "prearrival",
        {
            "message_id": int,
            "agent": str,
            "control_id": str,
            "patient_id": str,
            "patient_name": str,
            "destination": str,
            "complaint": str,
            "expected_at": str,
            "received_wall_ns": int,
        },
        pk="message_id",
        foreign_keys=[("message_id", "message", "id")],
        not_null=["agent", "control_id", "received_wall_ns"],
    )
    db.create_table(
        "alert_event",
        {
            "message_id": int,
            "agent": str,
            "control_id": str,
            "code": str,
            "text": str,
            "text_en": str,
            "phase": str,  # start | end
            "state": str,
            "priority": str,  # PH | PM | PL | PI
            "kind": str,  # SP | ST
            "received_wall_ns": int,
        },
        pk="message_id",
        foreign_keys=[("message_id", "message", "id")],
        not_null=["agent", "control_id", "code", "received_wall_ns"],
    )
    db.create_table(
        "er_reply",
        {
            "id": int,
            "agent": str,
            "ref": str,  # the MSH-10 replied to (a pre-arrival notice or a 12-lead)
            "status": str,  # received | cath-lab-ready | ...
            "text": str,
            "by": str,
            "sent_wall_ns": int,
        },
        pk="id",
        not_null=["agent", "ref", "status", "sent_wall_ns"],
    )


def _v3_rejected_topic(db: Database) -> None:
    """The topic a rejected message came on. A topic whose agent level is not a valid
    agent id (`edge/v1/../up`) has no agent to file it under: `agent` stays NULL and
    the topic is kept here, so nothing the county received is lost."""
    db.table("rejected").add_column("topic", str)


def _v4_enrolment(db: Database) -> None:
    """The boxes enrolled for authenticated ACKs and notices: each agent's suite and the
    32-byte key its `mac` is made with (sync.message_auth). Kept in the store, which only
    the gateway's user reads (docs/security.md)."""
    db.create_table(
        "enrolment",
        {"agent": str, "suite": str, "mac_key": bytes, "enrolled_wall_ns": int},
        pk="agent",
        not_null=["suite", "mac_key", "enrolled_wall_ns"],
    )


def _v5_sealed(db: Database) -> None:
    """What identifies a person sealed under the gateway's key file (the module
    docstring): the key id each row was sealed with, the patient's blind index, and the
    probe that tells this store's key file from another's. Rows already there are sealed
    by `GatewayStore.open` (it has the keys; a migration has not)."""
    for table in ("message", "prearrival", "rejected", "enrolment"):
        db.table(table).add_column("sealed_key", str)
    for table in ("message", "prearrival"):
        db.table(table).add_column("patient_index", str)
        db.table(table).create_index(["patient_index"])
    db.create_table("key_check", {"id": int, "sealed": str}, pk="id", not_null=["sealed"])


def _v6_audit_anchors(db: Database) -> None:
    """Each box's anchored audit head and the rows anchored (sync.audit_batches: no
    personal data, kept as they came), and the batches that did not chain onto the head
    (kept whole, with why: a trail truncated or rewritten on the box)."""
    db.create_table(
        "audit_head",
        {"agent": str, "seq": int, "hash": str, "batch": str, "anchored_wall_ns": int},
        pk="agent",
        not_null=["seq", "hash", "batch", "anchored_wall_ns"],
    )
    db.create_table(
        "audit_row",
        {"agent": str, "seq": int, "hash": str, "row": str, "batch": str},
        pk=("agent", "seq"),
        not_null=["hash", "row", "batch"],
    )
    db.create_table(
        "audit_break",
        {
            "id": int,
            "agent": str,
            "batch": str,
            "first_seq": int,
            "last_seq": int,
            "problem": str,
            "payload": str,
            "received_wall_ns": int,
        },
        pk="id",
        not_null=["agent", "batch", "problem", "payload", "received_wall_ns"],
    )
    db.table("audit_break").create_index(["agent"])


def _v7_users_and_trail(db: Database) -> None:
    """The gateway's users (er, county-it: sync.gateway.users; the box's columns, a PIN
    only as its scrypt hash), the gateway's own audit trail of what they did (the box's
    row and hash chain, edge_agent.audit; SQLite refuses to change or remove a row) and
    the key-value place of that trail's head."""
    db.create_table(
        "gateway_user",
        {
            "id": int,
            "name": str,
            "role": str,  # edge_agent.roles.GATEWAY_ROLES
            "pin_hash": str,
            "disabled": int,
            "failed_attempts": int,
            "locked_until_wall_ns": int,
            "created_wall_ns": int,
        },
        pk="id",
        not_null=["name", "role", "pin_hash", "disabled", "failed_attempts", "created_wall_ns"],
        defaults={"disabled": 0, "failed_attempts": 0},
    )
    db.table("gateway_user").create_index(["name"], unique=True)
    db.create_table(
        "gateway_audit",
        {
            "seq": int,
            "wall_ns": int,
            "time": str,
            "user": str,
            "role": str,
            "station": str,
            "action": str,
            "op": str,
            "subject": str,  # "reply:amb-017/MSG-1", "box:amb-017", "user:3": no personal data
            "person": int,
            "outcome": str,
            "reason": str,
            "suite": str,
            "prev_hash": bytes,
            "hash": bytes,
        },
        pk="seq",
        not_null=["wall_ns", "time", "user", "role", "station", "action", "op", "outcome"],
    )
    db.table("gateway_audit").create_index(["user", "wall_ns"])
    for event in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER gateway_audit_no_{event.lower()} BEFORE {event} ON gateway_audit"
            " BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"
        )
    db.create_table("gateway_meta", {"key": str, "value": str}, pk="key", not_null=["value"])


def _v8_sealed_free_text(db: Database) -> None:
    """Free text and what is kept of a refused message, sealed (`SEALED_COLUMNS`): the
    key id column of the statements, alert events, ER replies and observations (a
    value that is not a number: an alert's text, an ST row; their rows before this:
    NULL, sealed by `GatewayStore.open`), and key id columns of their own for a
    notice's destination and complaint (`prearrival.text_key`) and a refused message's
    reason and topic (`rejected.reason_key`), whose rows are sealed already otherwise."""
    for table in ("statement", "alert_event", "er_reply", "observation"):
        db.table(table).add_column("sealed_key", str)
    db.table("prearrival").add_column("text_key", str)
    db.table("rejected").add_column("reason_key", str)


def _v9_audit_refusals_and_reply_ids(db: Database) -> None:
    """Audit batches refused per box (not enrolled, or without its right `mac`): a count
    and the last reason, never the batch (anyone may publish them); and the id of each
    ER reply, as it went in the notice (sync.notice_replay)."""
    db.create_table(
        "audit_refusal",
        {
            "agent": str,
            "batches": int,
            "last_reason": str,
            "first_wall_ns": int,
            "last_wall_ns": int,
        },
        pk="agent",
        not_null=["batches", "last_reason", "first_wall_ns", "last_wall_ns"],
    )
    db.table("er_reply").add_column("notice_id", str)


Migration = tuple[int, str, Callable[[Database], None]]
MIGRATIONS: tuple[Migration, ...] = (
    (1, "initial schema", _v1_initial),
    (2, "12-lead ECGs, pre-arrival notices, alerts, ER replies", _v2_ecg_and_prearrival),
    (3, "the topic of rejected messages", _v3_rejected_topic),
    (4, "boxes enrolled for authenticated ACKs and notices", _v4_enrolment),
    (5, "personal values sealed under the gateway's key file", _v5_sealed),
    (6, "audit heads anchored for each box, and the batches that broke", _v6_audit_anchors),
    (7, "the gateway's users and its own audit trail", _v7_users_and_trail),
    (8, "free text and refused messages' reasons sealed", _v8_sealed_free_text),
    (
        9,
        "audit batches refused per box; the id of each ER reply",
        _v9_audit_refusals_and_reply_ids,
    ),
)
LATEST_VERSION = MIGRATIONS[-1][0]


TEXT = "text"  # the value is text, sealed as it is
BASE64 = "base64"  # bytes, sealed as their base64 (refused bytes need not be UTF-8)
HEX = "hex"  # bytes, sealed as their hex (a MAC key)


@dataclass(frozen=True, slots=True)
class SealedColumn:
    """A column that holds a sealed value (AAD `table.column`: edge_agent.crypto.sealed).

    `form`: what is sealed (TEXT, BASE64, HEX). `key_column`: the column of its row that
    names the key id (NULL: the value is plain, sealed by the next `open`); the columns
    of a table that share one are sealed and opened together. `index`: a national id,
    its blind index kept in the row's `patient_index`. `limit`: the longest sealed text
    that opens (a whole message is long). `where`: which rows hold a value to seal
    (SQL; the writer follows the same rule)."""

    table: str
    column: str
    form: str = TEXT
    key_column: str = "sealed_key"
    index: bool = False
    limit: int = sealed.MAX_SEALED_CHARS
    where: str = "1"

    @property
    def place(self) -> str:
        return f"{self.table}.{self.column}"


# Every sealed column of the store: what sealing a plain row, opening, and a rotation
# pass read. A new one goes here (with its migration), nowhere else.
SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn("message", "payload", limit=MAX_SEALED_MESSAGE),
    SealedColumn("message", "patient_national_id", index=True),
    SealedColumn("message", "patient_name"),
    SealedColumn("prearrival", "patient_id", index=True),
    SealedColumn("prearrival", "patient_name"),
    SealedColumn("rejected", "payload", form=BASE64, limit=MAX_SEALED_REJECTED),
    SealedColumn("enrolment", "mac_key", form=HEX),
    # migration 8
    SealedColumn("prearrival", "destination", key_column="text_key"),
    SealedColumn("prearrival", "complaint", key_column="text_key"),
    SealedColumn("rejected", "reason", key_column="reason_key"),
    SealedColumn("rejected", "topic", key_column="reason_key"),
    SealedColumn("statement", "text"),
    SealedColumn("alert_event", "text"),
    SealedColumn("alert_event", "text_en"),
    SealedColumn("er_reply", "text"),
    SealedColumn("er_reply", "by"),
    # An OBX-5 that is not a number (an alarm row's code^text, an ST row) may be free
    # text; numbers stay plain (`_free_text`).
    SealedColumn("observation", "value", where="value GLOB '*[^0-9.+-]*'"),
)
SEALED = {c.place: c for c in SEALED_COLUMNS}


def _free_text(value: str | None) -> bool:
    """An observation value sealed: one with anything but digits, '.', '+' and '-' (the
    same rule as its `where`)."""
    return value is not None and any(c not in "0123456789.+-" for c in value)


def sealed_groups() -> dict[tuple[str, str], tuple[SealedColumn, ...]]:
    """The sealed columns by (table, key id column): each group sealed row by row."""
    groups: dict[tuple[str, str], list[SealedColumn]] = {}
    for c in SEALED_COLUMNS:
        groups.setdefault((c.table, c.key_column), []).append(c)
    return {k: tuple(v) for k, v in groups.items()}


def sqlite_path(url_or_path: str) -> Path:
    """`--db` accepts a path or sqlite:///path; anything else is a clear error."""
    if "://" not in url_or_path:
        return Path(url_or_path)
    parts = urlsplit(url_or_path)
    if parts.scheme == "sqlite":
        # sqlite:///rel/path or sqlite:////abs/path (SQLAlchemy's convention)
        return Path(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if parts.scheme in ("postgresql", "postgres"):
        raise GatewayStoreError(
            f"gateway --db {url_or_path}: PostgreSQL is not built into the reference gateway;"
            " give a file path or sqlite:///path"
        )
    raise GatewayStoreError(f"gateway --db {url_or_path}: unknown scheme {parts.scheme!r}")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the gateway answers for one received message."""

    agent: str
    control_id: str | None
    ack_code: str  # AA | AE | AR
    text: str
    error_code: str | None = None
    duplicate: bool = False
    message_id: int | None = None  # the stored row (new messages only)
    # control_id is None because MSH-10 broke its rule: still answer, MSA-2 "UNKNOWN"
    answer_unquoted: bool = False


def _keyring_for(path: Path, key_file: str | Path | None) -> tuple[Keyring, Path]:
    file = gateway_keys.key_file_for(path, key_file)
    try:
        return gateway_keys.load(file), file
    except gateway_keys.GatewayKeysError as exc:
        raise GatewayStoreError(str(exc)) from None


_USER_COLUMNS = (
    "id, name, role, pin_hash, disabled, failed_attempts, locked_until_wall_ns, created_wall_ns"
)


def _user(row: tuple[Any, ...]) -> UserRow:
    return UserRow(
        id=int(row[0]),
        name=str(row[1]),
        role=str(row[2]),
        pin_hash=str(row[3]),
        disabled=bool(row[4]),
        failed_attempts=int(row[5]),
        locked_until_wall_ns=None if row[6] is None else int(row[6]),
        created_wall_ns=int(row[7]),
    )


class GatewayUsers:
    """The gateway's users (`gateway_user`): the box's user row (edge_agent.store.UserRow),
    written by sync.gateway.users only. No sessions: every command signs in."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def by_name(self, name: str) -> UserRow | None:
        row = self._conn.execute(
            f"SELECT {_USER_COLUMNS} FROM gateway_user WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else _user(row)

    def all(self) -> list[UserRow]:
        rows = self._conn.execute(f"SELECT {_USER_COLUMNS} FROM gateway_user ORDER BY id")
        return [_user(r) for r in rows.fetchall()]

    def add(self, name: str, role: str, pin_hash: str, wall_ns: int) -> int:
        cur = self._conn.execute(
            "INSERT INTO gateway_user (name, role, pin_hash, disabled, failed_attempts,"
            " created_wall_ns) VALUES (?, ?, ?, 0, 0, ?)",
            (name, role, pin_hash, wall_ns),
        )
        return int(cur.lastrowid or 0)

    def set_disabled(self, user_id: int) -> None:
        self._conn.execute("UPDATE gateway_user SET disabled = 1 WHERE id = ?", (user_id,))

    def set_pin(self, user_id: int, pin_hash: str) -> None:
        """A new PIN: the failure count and any lockout start again."""
        self._conn.execute(
            "UPDATE gateway_user SET pin_hash = ?, failed_attempts = 0,"
            " locked_until_wall_ns = NULL WHERE id = ?",
            (pin_hash, user_id),
        )

    def record_failure(self, user_id: int, failed: int, locked_until_wall_ns: int | None) -> None:
        self._conn.execute(
            "UPDATE gateway_user SET failed_attempts = ?, locked_until_wall_ns = ? WHERE id = ?",
            (failed, locked_until_wall_ns, user_id),
        )

    def record_success(self, user_id: int) -> None:
        self._conn.execute(
            "UPDATE gateway_user SET failed_attempts = 0, locked_until_wall_ns = NULL WHERE id = ?",
            (user_id,),
        )


_AUDIT_FIELDS = [f.name for f in dataclasses.fields(AuditRow)]
_AUDIT_COLUMNS = ", ".join(_AUDIT_FIELDS)


class GatewayAuditRows:
    """The gateway's own trail (`gateway_audit`): rows as the box's (edge_agent.audit
    computes their hashes), appended only."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def last(self) -> AuditRow | None:
        row = self._conn.execute(
            f"SELECT {_AUDIT_COLUMNS} FROM gateway_audit ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else AuditRow(*row)

    def in_order(self, batch: int = 1000) -> Iterator[AuditRow]:
        after = -(2**63)
        while True:
            rows = self._conn.execute(
                f"SELECT {_AUDIT_COLUMNS} FROM gateway_audit WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, batch),
            ).fetchall()
            if not rows:
                return
            for r in rows:
                yield AuditRow(*r)
            after = rows[-1][0]

    def find(
        self,
        *,
        user: str | None = None,
        since_wall_ns: int | None = None,
        until_wall_ns: int | None = None,
        limit: int = 1000,
    ) -> list[AuditRow]:
        rows = self._conn.execute(
            f"SELECT {_AUDIT_COLUMNS} FROM gateway_audit WHERE (?1 IS NULL OR user = ?1)"
            " AND (?2 IS NULL OR wall_ns >= ?2) AND (?3 IS NULL OR wall_ns < ?3)"
            " ORDER BY seq LIMIT ?4",
            (user, since_wall_ns, until_wall_ns, limit),
        ).fetchall()
        return [AuditRow(*r) for r in rows]

    def append(self, row: AuditRow) -> None:
        self._conn.execute(
            f"INSERT INTO gateway_audit ({_AUDIT_COLUMNS})"
            f" VALUES ({', '.join('?' * len(_AUDIT_FIELDS))})",
            dataclasses.astuple(row),
        )


class GatewayMeta:
    """Key-value facts of the gateway (`gateway_meta`): its trail's head."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM gateway_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO gateway_meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


@dataclass(frozen=True, slots=True)
class GatewayTrail:
    """Where edge_agent.audit keeps the gateway's chain (its TrailWriter)."""

    audit: GatewayAuditRows
    meta: GatewayMeta


class GatewayStore:
    def __init__(
        self, conn: sqlite3.Connection, path: Path, keyring: Keyring, key_file: Path
    ) -> None:
        self.conn = conn
        self.path = path
        self.db = Database(conn)
        self.keyring = keyring
        self.key_file = key_file
        self.users = GatewayUsers(conn)
        self.trail = GatewayTrail(GatewayAuditRows(conn), GatewayMeta(conn))

    @classmethod
    def open(cls, url_or_path: str | Path, *, key_file: str | Path | None = None) -> GatewayStore:
        """The store for writing, migrated, its rows from before migration 5 sealed.
        GatewayStoreError (one line) for a key file that is missing, unusable, or not
        this store's (sync.gateway.keys; `key_file` None: the store's default one)."""
        path = sqlite_path(str(url_or_path))
        keyring, file = _keyring_for(path, key_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            # A value overwritten (a plain row sealed) leaves no copy in a free page.
            conn.execute("PRAGMA secure_delete = ON")
        except sqlite3.Error as exc:
            raise GatewayStoreError(f"gateway store {path}: cannot open ({exc})") from None
        store = cls(conn, path, keyring, file)
        try:
            store._migrate()
            store._check_key(write=True)
            if store._seal_plain_rows():
                # The plain pages the pass overwrote must not stay in the log either.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def open_readonly(
        cls, url_or_path: str | Path, *, key_file: str | Path | None = None
    ) -> GatewayStore:
        path = sqlite_path(str(url_or_path))
        if not path.exists():
            raise GatewayStoreError(f"gateway store {path}: does not exist")
        keyring, file = _keyring_for(path, key_file)
        try:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout = 5000")
            version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise GatewayStoreError(f"gateway store {path}: cannot open ({exc})") from None
        store = cls(conn, path, keyring, file)
        if int(version or 0) < LATEST_VERSION:
            conn.close()
            raise GatewayStoreError(
                f"gateway store {path}: schema {version}, this program reads {LATEST_VERSION}"
                " (start the gateway once: it migrates and seals the store)"
            )
        try:
            store._check_key(write=False)
        except BaseException:
            conn.close()
            raise
        return store

    # --- sealing ---------------------------------------------------------------------------

    def _check_key(self, *, write: bool) -> None:
        """The key file is this store's: its probe opens (a store with none gets one)."""
        row = self.conn.execute("SELECT sealed FROM key_check WHERE id = 1").fetchone()
        if row is None:
            if write:
                probe = sealed.seal(self.keyring, KEY_CHECK_PLACE, KEY_CHECK_TEXT)
                with self.db.atomic():
                    self.conn.execute("INSERT INTO key_check (id, sealed) VALUES (1, ?)", (probe,))
            return
        try:
            opened = sealed.open_value(self.keyring, KEY_CHECK_PLACE, str(row[0]))
        except SealError:
            opened = None
        if opened != KEY_CHECK_TEXT:
            raise GatewayStoreError(
                f"gateway store {self.path}: key file {self.key_file} does not open it"
                " (another store's key file?)"
            )

    def _seal(self, place: str, value: str | None) -> str | None:
        return None if value is None else sealed.seal(self.keyring, place, value)

    def _patient_index(self, national_id: str | None) -> str | None:
        if national_id is None or not national_id.strip():
            return None
        return sealed.blind_index(self.keyring, sealed.NATIONAL_ID, national_id)

    def _open(
        self, place: str, value: object, key_id: object, *, limit: int = sealed.MAX_SEALED_CHARS
    ) -> str | None:
        """A stored value, opened; a plain one (key_id NULL: before migration 5) as is."""
        if value is None:
            return None
        if key_id is None:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        try:
            return sealed.open_value(self.keyring, place, str(value), limit=limit)
        except SealError as exc:
            raise GatewayStoreError(f"gateway store {self.path}: {exc}") from None

    def _seal_plain_rows(self) -> int:
        """Seal every value still plain (written before its column was sealed), a batch
        a transaction; how many rows."""
        done = 0
        while n := self.reseal_batch(plain_only=True):
            done += n
        return done

    # --- the sealing pass (sync.gateway.key_rotation) ----------------------------------

    def use_keys(self, keyring: Keyring) -> None:
        """The keyring from now on (after `gateway keys rotate`: its new key seals)."""
        self.keyring = keyring

    def reseal_batch(self, batch: int = 200, *, plain_only: bool = False) -> int:
        """One transaction: up to `batch` rows of the groups of `sealed_groups` sealed
        under the active key (opened with the key they name, or read plain); how many.
        What is left is a query (the group's key id column NULL on a row that holds a
        value, or not the active id), so a pass killed at any point lost at most this
        open transaction, and the next one goes on."""
        done = 0
        with self.db.atomic():
            for (table, key_column), columns in sealed_groups().items():
                if done >= batch:
                    break
                done += self._reseal_group(
                    table, key_column, columns, batch - done, plain_only=plain_only
                )
        return done

    def _stale_where(
        self, key_column: str, columns: tuple[SealedColumn, ...], *, plain_only: bool
    ) -> tuple[str, tuple[str, ...]]:
        holds = " OR ".join(f"({c.where})" for c in columns)
        plain = f"({key_column} IS NULL AND ({holds}))"
        if plain_only:
            return plain, ()
        return f"({plain} OR {key_column} != ?)", (self.keyring.active_id,)

    def _reseal_group(
        self,
        table: str,
        key_column: str,
        columns: tuple[SealedColumn, ...],
        limit: int,
        *,
        plain_only: bool,
    ) -> int:
        where, params = self._stale_where(key_column, columns, plain_only=plain_only)
        names = ", ".join(c.column for c in columns)
        rows = self.conn.execute(
            f"SELECT rowid, {key_column}, {names} FROM {table}"
            f" WHERE {where} ORDER BY rowid LIMIT ?",
            (*params, limit),
        ).fetchall()
        for rowid, key_id, *stored in rows:
            update: dict[str, str | None] = {}
            for c, value in zip(columns, stored, strict=True):
                if key_id is None:
                    update[c.column] = self._seal_plain(c, value)
                    text = None if value is None else str(value)
                else:
                    text = self._open(c.place, value, key_id, limit=c.limit)
                    update[c.column] = self._seal(c.place, text)
                if c.index:
                    update["patient_index"] = self._patient_index(text)
            assignments = ", ".join(f"{name} = ?" for name in update)
            self.conn.execute(
                f"UPDATE {table} SET {assignments}, {key_column} = ? WHERE rowid = ?",
                (*update.values(), self.keyring.active_id, rowid),
            )
        return len(rows)

    def stale_rows(self) -> int:
        """Rows the sealing pass still has to seal under the active key (a row counted
        once for each group of its columns)."""
        total = 0
        for (table, key_column), columns in sealed_groups().items():
            where, params = self._stale_where(key_column, columns, plain_only=False)
            total += int(
                self.conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", params).fetchone()[
                    0
                ]
            )
        return total

    def values_per_key(self) -> dict[str, dict[str, int]]:
        """Per group of sealed columns (its table, or `table.key_column` for a group
        with a key id column of its own), the rows holding a value per key id (`plain`:
        not sealed yet)."""
        report: dict[str, dict[str, int]] = {}
        for (table, key_column), columns in sealed_groups().items():
            holds = " OR ".join(f"({c.where})" for c in columns)
            name = table if key_column == "sealed_key" else f"{table}.{key_column}"
            report[name] = {
                str(key_id): int(n)
                for key_id, n in self.conn.execute(
                    f"SELECT COALESCE({key_column}, ?), COUNT(*) FROM {table}"
                    f" WHERE {key_column} IS NOT NULL OR ({holds}) GROUP BY 1 ORDER BY 1",
                    (PLAIN,),
                ).fetchall()
            }
        return report

    def truncate_wal(self) -> None:
        """After a pass: the old values' pages leave the write-ahead log too
        (`secure_delete` already clears them in the database file)."""
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _seal_plain(self, column: SealedColumn, value: object) -> str | None:
        """A plain stored value sealed for its column, as its `form` says."""
        if value is None:
            return None
        if column.form == TEXT:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            return sealed.seal(self.keyring, column.place, text)
        data = bytes(value) if isinstance(value, bytes) else str(value).encode("utf-8")
        if column.form == BASE64:
            return self._seal_bytes(column.place, data)
        return sealed.seal(self.keyring, column.place, data.hex())

    def _sealed(self, place: str, value: str | None) -> str | None:
        """`value` sealed for a column of `SEALED_COLUMNS` (KeyError for any other). A
        text that has no UTF-8 form (a lone surrogate: a topic or an argument handed in
        as `str`, never text decoded from the wire) is kept with those characters
        escaped, `\\ud800`, rather than lost with its row."""
        column = SEALED[place]
        try:
            return self._seal(column.place, value)
        except UnicodeEncodeError:
            assert value is not None
            return self._seal(column.place, value.encode("utf-8", "backslashreplace").decode())

    def _opened(self, place: str, value: object, key_id: object) -> str | None:
        """A stored value of a column of `SEALED_COLUMNS`, opened (plain: as is)."""
        return self._open(place, value, key_id, limit=SEALED[place].limit)

    def _seal_bytes(self, place: str, data: bytes) -> str:
        return sealed.seal(self.keyring, place, base64.b64encode(data).decode("ascii"))

    def _open_bytes(self, place: str, value: object, key_id: object) -> bytes:
        if key_id is None:
            return bytes(value) if isinstance(value, bytes) else str(value).encode("utf-8")
        text = self._open(place, value, key_id, limit=MAX_SEALED_REJECTED) or ""
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise GatewayStoreError(f"gateway store {self.path}: {place}: not base64") from None

    def _migrate(self) -> None:
        with self.db.atomic():
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
            )
            current = self.conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
            current = int(current or 0)
            if current > LATEST_VERSION:
                raise GatewayStoreError(
                    f"gateway store {self.path}: schema {current} is newer than this program"
                )
            for version, name, apply in MIGRATIONS:
                if version > current:
                    apply(self.db)
                    self.conn.execute(
                        "INSERT INTO schema_version (version, name) VALUES (?, ?)", (version, name)
                    )

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Atomic and durable (synchronous=FULL): ACKs are sent only after this returns."""
        with self.db.atomic():
            yield

    # --- writes (inside a transaction) ---------------------------------------------------

    def store_message(
        self, agent: str, message: InboundMessage, payload: str, received_wall_ns: int
    ) -> Outcome:
        known = self.conn.execute(
            "SELECT id FROM message WHERE agent = ? AND control_id = ?",
            (agent, message.control_id),
        ).fetchone()
        if known is not None:
            self.conn.execute(
                "INSERT INTO duplicate (agent, control_id, received_wall_ns) VALUES (?, ?, ?)",
                (agent, message.control_id, received_wall_ns),
            )
            return Outcome(agent, message.control_id, "AA", "duplicate, already stored", None, True)
        index = self._patient_index(message.patient_national_id)
        cur = self.conn.execute(
            "INSERT INTO message (agent, control_id, message_type, sent_at, received_wall_ns,"
            " patient_national_id, patient_name, patient_class, payload, patient_index,"
            " sealed_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                agent,
                message.control_id,
                message.message_type,
                None if message.sent_at is None else message.sent_at.isoformat(),
                received_wall_ns,
                self._sealed("message.patient_national_id", message.patient_national_id),
                self._sealed("message.patient_name", message.patient_name),
                message.patient_class,
                self._sealed("message.payload", payload),
                index,
                self.keyring.active_id,
            ),
        )
        message_id = int(cur.lastrowid or 0)
        active = self.keyring.active_id
        self.conn.executemany(
            "INSERT INTO observation (message_id, set_id, metric, code, value, unit,"
            " observed_at, device_id, status, sealed_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    message_id,
                    o.set_id,
                    o.metric,
                    o.code,
                    self._sealed("observation.value", o.value) if _free_text(o.value) else o.value,
                    o.unit,
                    None if o.observed_at is None else o.observed_at.isoformat(),
                    o.device_id,
                    o.status,
                    active if _free_text(o.value) else None,
                )
                for o in message.observations
            ],
        )
        self.conn.executemany(
            "INSERT INTO waveform (message_id, set_id, metric, sub_id, sample_exponent,"
            " sample_count, encoding, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    message_id,
                    o.set_id,
                    o.metric,
                    o.sub_id,
                    o.sample_exponent,
                    len(o.samples),
                    *waveform_codec.encode_samples(o.samples),
                )
                for o in message.observations
                if o.samples is not None
            ],
        )
        self.conn.executemany(
            "INSERT INTO statement (message_id, seq, text, sealed_key) VALUES (?, ?, ?, ?)",
            [
                (message_id, n, self._sealed("statement.text", text), self.keyring.active_id)
                for n, text in enumerate(message.statements)
            ],
        )
        if message.prearrival is not None:
            notice = message.prearrival
            self.conn.execute(
                "INSERT INTO prearrival (message_id, agent, control_id, patient_id, patient_name,"
                " destination, complaint, expected_at, received_wall_ns, patient_index,"
                " sealed_key, text_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message_id,
                    agent,
                    message.control_id,
                    self._sealed("prearrival.patient_id", message.patient_national_id),
                    self._sealed("prearrival.patient_name", message.patient_name),
                    self._sealed("prearrival.destination", notice.destination),
                    self._sealed("prearrival.complaint", notice.complaint),
                    None if notice.expected_at is None else notice.expected_at.isoformat(),
                    received_wall_ns,
                    index,
                    self.keyring.active_id,
                    self.keyring.active_id,
                ),
            )
        if message.alert is not None:
            a = message.alert
            self.conn.execute(
                "INSERT INTO alert_event (message_id, agent, control_id, code, text, text_en,"
                " phase, state, priority, kind, received_wall_ns, sealed_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message_id,
                    agent,
                    message.control_id,
                    a.code,
                    self._sealed("alert_event.text", a.text),
                    self._sealed("alert_event.text_en", a.text_en),
                    a.phase,
                    a.state,
                    a.priority,
                    a.kind,
                    received_wall_ns,
                    self.keyring.active_id,
                ),
            )
        return Outcome(
            agent,
            message.control_id,
            "AA",
            f"stored {len(message.observations)} OBX",
            message_id=message_id,
        )

    def record_ecg(
        self,
        message_id: int,
        agent: str,
        control_id: str,
        *,
        stemi: bool,
        png_path: str | None,
        pdf_path: str | None,
        render_error: str | None,
        received_wall_ns: int,
    ) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO ecg (message_id, agent, control_id, stemi, png_path,"
            " pdf_path, render_error, received_wall_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message_id,
                agent,
                control_id,
                int(stemi),
                png_path,
                pdf_path,
                render_error,
                received_wall_ns,
            ),
        )

    def record_reply(
        self,
        agent: str,
        ref: str,
        status: str,
        text: str | None,
        by: str | None,
        sent_wall_ns: int,
        notice_id: str | None = None,
    ) -> None:
        """IdentifierError (a ValueError) for an agent, ref or notice id that breaks its
        rule."""
        AGENT_ID.check(agent)
        CONTROL_ID.check(ref)
        if notice_id is not None:
            CONTROL_ID.check(notice_id)
        self.conn.execute(
            "INSERT INTO er_reply"
            " (agent, ref, status, text, by, sent_wall_ns, sealed_key, notice_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                agent,
                ref,
                status,
                self._sealed("er_reply.text", text),
                self._sealed("er_reply.by", by),
                sent_wall_ns,
                self.keyring.active_id,
                notice_id,
            ),
        )

    def enroll(self, agent: str, key: MessageKey, wall_ns: int) -> bool:
        """Sign what goes to `agent` with `key` from now on; True when it replaced a key.
        IdentifierError (a ValueError) for an agent id that breaks its rule."""
        AGENT_ID.check(agent)
        known = self.conn.execute("SELECT 1 FROM enrolment WHERE agent = ?", (agent,)).fetchone()
        self.conn.execute(
            "INSERT INTO enrolment (agent, suite, mac_key, enrolled_wall_ns, sealed_key)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(agent) DO UPDATE SET suite = excluded.suite,"
            " mac_key = excluded.mac_key, enrolled_wall_ns = excluded.enrolled_wall_ns,"
            " sealed_key = excluded.sealed_key",
            (
                agent,
                key.suite.name,
                self._sealed("enrolment.mac_key", key.key.hex()),
                wall_ns,
                self.keyring.active_id,
            ),
        )
        return known is not None

    def store_rejected(
        self,
        agent: str,
        control_id: str | None,
        *,
        ack_code: str,
        error_code: str | None,
        reason: str,
        payload: bytes,
        received_wall_ns: int,
        topic: str | None = None,
    ) -> Outcome:
        """Keep what we could not accept; a resend of the same id is counted, not re-added."""
        if control_id is not None:
            row = self.conn.execute(
                "SELECT id FROM rejected WHERE agent = ? AND control_id = ?", (agent, control_id)
            ).fetchone()
            if row is not None:
                self.conn.execute(
                    "UPDATE rejected SET times_seen = times_seen + 1 WHERE id = ?", (row[0],)
                )
                return Outcome(agent, control_id, ack_code, reason, error_code)
        self.conn.execute(
            "INSERT INTO rejected (agent, control_id, ack_code, error_code, reason, payload,"
            " received_wall_ns, times_seen, topic, sealed_key, reason_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
            (
                agent,
                control_id,
                ack_code,
                error_code,
                self._sealed("rejected.reason", reason),
                self._seal_bytes("rejected.payload", payload),
                received_wall_ns,
                self._sealed("rejected.topic", topic),
                self.keyring.active_id,
                self.keyring.active_id,
            ),
        )
        return Outcome(agent, control_id, ack_code, reason, error_code)

    def store_unaddressed(
        self, topic: str, *, reason: str, payload: bytes, received_wall_ns: int
    ) -> None:
        """Keep a message that came on a topic with no valid agent id: no agent, no
        control id (no ACK can be addressed), its topic and bytes as received."""
        self.conn.execute(
            "INSERT INTO rejected (agent, control_id, ack_code, error_code, reason, payload,"
            " received_wall_ns, times_seen, topic, sealed_key, reason_key)"
            " VALUES (NULL, NULL, 'AR', NULL, ?, ?, ?, 1, ?, ?, ?)",
            (
                self._sealed("rejected.reason", reason),
                self._seal_bytes("rejected.payload", payload),
                received_wall_ns,
                self._sealed("rejected.topic", topic),
                self.keyring.active_id,
                self.keyring.active_id,
            ),
        )

    def store_audit_batch(
        self, batch: AuditBatch, *, problem: str | None, payload: bytes, received_wall_ns: int
    ) -> None:
        """An audit batch that chains (its rows kept, the head moved) or does not (kept
        whole in `audit_break` with `problem`; the head stays)."""
        if problem is not None:
            self.conn.execute(
                "INSERT INTO audit_break (agent, batch, first_seq, last_seq, problem, payload,"
                " received_wall_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    batch.agent,
                    batch.batch,
                    batch.rows[0].seq,
                    batch.rows[-1].seq,
                    problem,
                    payload.decode("utf-8"),
                    received_wall_ns,
                ),
            )
            return
        self.conn.executemany(
            "INSERT OR IGNORE INTO audit_row (agent, seq, hash, row, batch) VALUES (?, ?, ?, ?, ?)",
            [
                (batch.agent, r.seq, r.hash.hex(), json.dumps(row_json(r)), batch.batch)
                for r in batch.rows
            ],
        )
        last = batch.rows[-1]
        head = self.audit_head(batch.agent)
        if head is None or last.seq > head[0]:
            self.conn.execute(
                "INSERT OR REPLACE INTO audit_head (agent, seq, hash, batch, anchored_wall_ns)"
                " VALUES (?, ?, ?, ?, ?)",
                (batch.agent, last.seq, last.hash.hex(), batch.batch, received_wall_ns),
            )

    def record_audit_refusal(self, agent: str, reason: str, wall_ns: int) -> bool:
        """One more audit batch from `agent` refused for `reason` (one line, ours); False
        when it is not recorded: a new agent beyond MAX_REFUSING_BOXES."""
        AGENT_ID.check(agent)
        updated = self.conn.execute(
            "UPDATE audit_refusal SET batches = batches + 1, last_reason = ?, last_wall_ns = ?"
            " WHERE agent = ?",
            (reason, wall_ns, agent),
        ).rowcount
        if updated:
            return True
        (boxes,) = self.conn.execute("SELECT COUNT(*) FROM audit_refusal").fetchone()
        if int(boxes) >= MAX_REFUSING_BOXES:
            return False
        self.conn.execute(
            "INSERT INTO audit_refusal (agent, batches, last_reason, first_wall_ns, last_wall_ns)"
            " VALUES (?, 1, ?, ?, ?)",
            (agent, reason, wall_ns, wall_ns),
        )
        return True

    # --- reads ------------------------------------------------------------------------------

    def audit_head(self, agent: str) -> tuple[int, bytes] | None:
        row = self.conn.execute(
            "SELECT seq, hash FROM audit_head WHERE agent = ?", (agent,)
        ).fetchone()
        return None if row is None else (int(row[0]), bytes.fromhex(row[1]))

    def audit_row_hash(self, agent: str, seq: int) -> bytes | None:
        row = self.conn.execute(
            "SELECT hash FROM audit_row WHERE agent = ? AND seq = ?", (agent, seq)
        ).fetchone()
        return None if row is None else bytes.fromhex(row[0])

    def audit_report(self, agent: str | None = None) -> list[dict[str, Any]]:
        """`edge-agent gateway audit`: per box its anchored head and its breaks."""
        heads = self._rows(
            "SELECT agent, seq, hash, batch, anchored_wall_ns FROM audit_head"
            " WHERE ?1 IS NULL OR agent = ?1",
            (agent,),
        )
        breaks = self._rows(
            "SELECT agent, batch, first_seq, last_seq, problem, received_wall_ns"
            " FROM audit_break WHERE ?1 IS NULL OR agent = ?1 ORDER BY id",
            (agent,),
        )
        refusals = self._rows(
            "SELECT agent, batches, last_reason, first_wall_ns, last_wall_ns"
            " FROM audit_refusal WHERE ?1 IS NULL OR agent = ?1",
            (agent,),
        )
        report: dict[str, dict[str, Any]] = {}

        def box(name: str) -> dict[str, Any]:
            return report.setdefault(
                name, {"agent": name, "head": None, "breaks": [], "refused": None}
            )

        for head in heads:
            box(head.pop("agent"))["head"] = head
        for found in breaks:
            box(found.pop("agent"))["breaks"].append(found)
        for refused in refusals:
            box(refused.pop("agent"))["refused"] = refused
        return [report[name] for name in sorted(report)]

    def status(self) -> dict[str, Any]:
        """`edge-agent gateway status --json` (docs/contracts.md "CLI")."""
        one = self.conn.execute
        agents = {
            str(agent): int(n)
            for agent, n in one(
                "SELECT agent, COUNT(*) FROM message GROUP BY agent ORDER BY agent"
            ).fetchall()
        }
        last = one("SELECT MAX(received_wall_ns) FROM message").fetchone()[0]
        ecgs = self._rows(
            "SELECT agent, control_id, stemi, png_path, pdf_path, render_error, received_wall_ns"
            " FROM ecg ORDER BY received_wall_ns DESC LIMIT 20"
        )
        for ecg in ecgs:
            ecg["stemi"] = bool(ecg["stemi"])
        prearrivals = self._rows(
            "SELECT agent, control_id, patient_id, patient_name, destination, complaint,"
            " expected_at, received_wall_ns, sealed_key, text_key FROM prearrival"
            " ORDER BY received_wall_ns DESC LIMIT 20"
        )
        self._open_rows("prearrival", prearrivals)
        alerts = self._rows(
            "SELECT agent, control_id, code, text, text_en, phase, priority, kind,"
            " received_wall_ns, sealed_key FROM alert_event"
            " ORDER BY received_wall_ns DESC LIMIT 20"
        )
        self._open_rows("alert_event", alerts)
        replies = self._rows(
            "SELECT agent, ref, status, text, by, sent_wall_ns, sealed_key, notice_id"
            " FROM er_reply"
            " ORDER BY id DESC LIMIT 20"
        )
        self._open_rows("er_reply", replies)
        return {
            "messages": int(one("SELECT COUNT(*) FROM message").fetchone()[0]),
            "observations": int(one("SELECT COUNT(*) FROM observation").fetchone()[0]),
            "duplicates": int(one("SELECT COUNT(*) FROM duplicate").fetchone()[0]),
            "rejected": int(one("SELECT COUNT(*) FROM rejected").fetchone()[0]),
            "agents": agents,
            "last_received_wall_ns": None if last is None else int(last),
            "ecgs": ecgs,
            "prearrivals": prearrivals,
            "alerts": alerts,
            "er_replies": replies,
        }

    def _open_rows(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Each row's sealed columns of `table` opened in place, its key id columns
        dropped (a row holds what `_rows` read: the columns and their key id columns)."""
        groups = [g for (t, _), g in sealed_groups().items() if t == table]
        for row in rows:
            for group in groups:
                if group[0].key_column not in row:
                    continue  # not read: neither are its columns
                key_id = row.pop(group[0].key_column)
                for c in group:
                    if c.column in row and c.form == TEXT:
                        row[c.column] = self._opened(c.place, row[c.column], key_id)

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, params)
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def message_keys(self) -> dict[str, MessageKey]:
        """Every enrolled box's key, by agent id. GatewayStoreError for a row this
        program cannot use (an unknown suite, a key of the wrong length)."""
        keys = {}
        for agent, suite_name, key, key_id in self.conn.execute(
            "SELECT agent, suite, mac_key, sealed_key FROM enrolment ORDER BY agent"
        ).fetchall():
            try:
                raw = (
                    bytes(key)
                    if key_id is None
                    else bytes.fromhex(self._open("enrolment.mac_key", key, key_id) or "")
                )
                keys[str(agent)] = MessageKey(suite(str(suite_name)), raw)
            except ValueError as exc:
                raise GatewayStoreError(
                    f"gateway store {self.path}: enrolment of {agent!r}: {exc}"
                ) from None
        return keys

    def undrawn_ecgs(self, limit: int = 100) -> list[tuple[int, str, str, str]]:
        """12-leads (8 or more ECG leads) stored without a sheet row: the gateway stopped
        between its ACK and the drawing. (message id, agent, control id, payload)."""
        rows = self.conn.execute(
            "SELECT m.id, m.agent, m.control_id, m.payload, m.sealed_key FROM message m"
            " WHERE NOT EXISTS (SELECT 1 FROM ecg e WHERE e.message_id = m.id)"
            " AND (SELECT COUNT(DISTINCT w.metric) FROM waveform w WHERE w.message_id = m.id"
            "      AND w.metric LIKE 'MDC_ECG_ELEC_POTL_%') >= 8"
            " ORDER BY m.id LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            (
                int(r[0]),
                str(r[1]),
                str(r[2]),
                self._open("message.payload", r[3], r[4], limit=MAX_SEALED_MESSAGE) or "",
            )
            for r in rows
        ]

    def waveforms(self, message_id: int) -> dict[str, tuple[int, ...]]:
        """A stored message's NA rows by OBX-4 sub-id, samples exact."""
        rows = self.conn.execute(
            "SELECT sub_id, encoding, data FROM waveform WHERE message_id = ? ORDER BY set_id",
            (message_id,),
        ).fetchall()
        return {r[0]: waveform_codec.decode_samples(r[2], r[1]) for r in rows}

    def replies(self, agent: str | None = None) -> list[dict[str, Any]]:
        """The ER's replies (to one box, or all), oldest first, their text and sender
        opened."""
        rows = self._rows(
            "SELECT agent, ref, status, text, by, sent_wall_ns, sealed_key, notice_id"
            " FROM er_reply"
            " WHERE ?1 IS NULL OR agent = ?1 ORDER BY id",
            (agent,),
        )
        self._open_rows("er_reply", rows)
        return rows

    def recent_rejected(self, limit: int = 10) -> list[dict[str, Any]]:
        """The newest refused messages (not their bytes), their reason and topic opened."""
        rows = self._rows(
            "SELECT agent, control_id, ack_code, error_code, reason, times_seen, topic,"
            " reason_key FROM rejected ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        self._open_rows("rejected", rows)
        return rows

    def kept_rejected(self) -> list[dict[str, Any]]:
        """Every refused message as kept, oldest first, its bytes opened."""
        rows = self._rows(
            "SELECT id, agent, control_id, ack_code, error_code, reason, payload, topic,"
            " times_seen, sealed_key, reason_key FROM rejected ORDER BY id"
        )
        for row in rows:
            row["payload"] = self._open_bytes("rejected.payload", row["payload"], row["sealed_key"])
        self._open_rows("rejected", rows)
        return rows

    def messages(self, *, national_id: str | None = None) -> list[dict[str, Any]]:
        """The stored messages (a person's only, by the blind index of `national_id`),
        oldest first, their patient's ID and name and the message text opened."""
        sql = (
            "SELECT id, agent, control_id, message_type, sent_at, received_wall_ns,"
            " patient_national_id, patient_name, patient_class, payload, sealed_key"
            " FROM message"
        )
        params: tuple[Any, ...] = ()
        if national_id is not None:
            indexes = sealed.blind_indexes(self.keyring, sealed.NATIONAL_ID, national_id)
            sql += f" WHERE patient_index IN ({', '.join('?' * len(indexes))})"
            params = tuple(indexes)
        rows = self._rows(sql + " ORDER BY id", params)
        for row in rows:
            key_id = row.pop("sealed_key")
            for column in ("patient_national_id", "patient_name"):
                row[column] = self._open(f"message.{column}", row[column], key_id)
            row["payload"] = self._open(
                "message.payload", row["payload"], key_id, limit=MAX_SEALED_MESSAGE
            )
        return rows
