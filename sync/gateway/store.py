"""The reference county gateway's store: each message once, keyed on (agent, MSH-10).

SQLite (the embedded default) with the same durability rules as the box: WAL,
synchronous=FULL, one writer. A batch of messages is committed before any of them is
acknowledged, so an ACK AA always means "on disk here". A redelivered message (the box
retried, or the broker redelivered after a gateway crash) is counted as a duplicate and
answered again, never stored twice. A message that cannot be accepted is kept in
`rejected` with its bytes and the reason, so nothing the county received is lost.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlite_utils import Database

from edge_agent import waveform_codec
from edge_agent.crypto.suites import suite
from edge_agent.identifiers import AGENT_ID, CONTROL_ID
from sync.hl7.inbound import InboundMessage
from sync.message_auth import MessageKey


class GatewayStoreError(RuntimeError):
    """The gateway database cannot be used (bad URL, unsupported backend, newer schema)."""


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


Migration = tuple[int, str, Callable[[Database], None]]
MIGRATIONS: tuple[Migration, ...] = (
    (1, "initial schema", _v1_initial),
    (2, "12-lead ECGs, pre-arrival notices, alerts, ER replies", _v2_ecg_and_prearrival),
    (3, "the topic of rejected messages", _v3_rejected_topic),
    (4, "boxes enrolled for authenticated ACKs and notices", _v4_enrolment),
)
LATEST_VERSION = MIGRATIONS[-1][0]


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


class GatewayStore:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.db = Database(conn)

    @classmethod
    def open(cls, url_or_path: str | Path) -> GatewayStore:
        path = sqlite_path(str(url_or_path))
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise GatewayStoreError(f"gateway store {path}: cannot open ({exc})") from None
        store = cls(conn, path)
        store._migrate()
        return store

    @classmethod
    def open_readonly(cls, url_or_path: str | Path) -> GatewayStore:
        path = sqlite_path(str(url_or_path))
        if not path.exists():
            raise GatewayStoreError(f"gateway store {path}: does not exist")
        try:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout = 5000")
        except sqlite3.Error as exc:
            raise GatewayStoreError(f"gateway store {path}: cannot open ({exc})") from None
        return cls(conn, path)

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
        cur = self.conn.execute(
            "INSERT INTO message (agent, control_id, message_type, sent_at, received_wall_ns,"
            " patient_national_id, patient_name, patient_class, payload)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                agent,
                message.control_id,
                message.message_type,
                None if message.sent_at is None else message.sent_at.isoformat(),
                received_wall_ns,
                message.patient_national_id,
                message.patient_name,
                message.patient_class,
                payload,
            ),
        )
        message_id = int(cur.lastrowid or 0)
        self.conn.executemany(
            "INSERT INTO observation (message_id, set_id, metric, code, value, unit,"
            " observed_at, device_id, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    message_id,
                    o.set_id,
                    o.metric,
                    o.code,
                    o.value,
                    o.unit,
                    None if o.observed_at is None else o.observed_at.isoformat(),
                    o.device_id,
                    o.status,
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
            "INSERT INTO statement (message_id, seq, text) VALUES (?, ?, ?)",
            [(message_id, n, text) for n, text in enumerate(message.statements)],
        )
        if message.prearrival is not None:
            notice = message.prearrival
            self.conn.execute(
                "INSERT INTO prearrival (message_id, agent, control_id, patient_id, patient_name,"
                " destination, complaint, expected_at, received_wall_ns)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message_id,
                    agent,
                    message.control_id,
                    message.patient_national_id,
                    message.patient_name,
                    notice.destination,
                    notice.complaint,
                    None if notice.expected_at is None else notice.expected_at.isoformat(),
                    received_wall_ns,
                ),
            )
        if message.alert is not None:
            a = message.alert
            self.conn.execute(
                "INSERT INTO alert_event (message_id, agent, control_id, code, text, text_en,"
                " phase, state, priority, kind, received_wall_ns)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message_id,
                    agent,
                    message.control_id,
                    a.code,
                    a.text,
                    a.text_en,
                    a.phase,
                    a.state,
                    a.priority,
                    a.kind,
                    received_wall_ns,
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
        self, agent: str, ref: str, status: str, text: str | None, by: str | None, sent_wall_ns: int
    ) -> None:
        """IdentifierError (a ValueError) for an agent or ref that breaks its rule."""
        AGENT_ID.check(agent)
        CONTROL_ID.check(ref)
        self.conn.execute(
            "INSERT INTO er_reply (agent, ref, status, text, by, sent_wall_ns)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (agent, ref, status, text, by, sent_wall_ns),
        )

    def enroll(self, agent: str, key: MessageKey, wall_ns: int) -> bool:
        """Sign what goes to `agent` with `key` from now on; True when it replaced a key.
        IdentifierError (a ValueError) for an agent id that breaks its rule."""
        AGENT_ID.check(agent)
        known = self.conn.execute("SELECT 1 FROM enrolment WHERE agent = ?", (agent,)).fetchone()
        self.conn.execute(
            "INSERT INTO enrolment (agent, suite, mac_key, enrolled_wall_ns) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(agent) DO UPDATE SET suite = excluded.suite,"
            " mac_key = excluded.mac_key, enrolled_wall_ns = excluded.enrolled_wall_ns",
            (agent, key.suite.name, key.key, wall_ns),
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
            " received_wall_ns, times_seen, topic) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)",
            (
                agent,
                control_id,
                ack_code,
                error_code,
                reason,
                payload,
                received_wall_ns,
                topic,
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
            " received_wall_ns, times_seen, topic) VALUES (NULL, NULL, 'AR', NULL, ?, ?, ?, 1, ?)",
            (reason, payload, received_wall_ns, topic),
        )

    # --- reads ------------------------------------------------------------------------------

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
            " expected_at, received_wall_ns FROM prearrival"
            " ORDER BY received_wall_ns DESC LIMIT 20"
        )
        alerts = self._rows(
            "SELECT agent, control_id, code, text, text_en, phase, priority, kind,"
            " received_wall_ns FROM alert_event ORDER BY received_wall_ns DESC LIMIT 20"
        )
        replies = self._rows(
            "SELECT agent, ref, status, text, by, sent_wall_ns FROM er_reply"
            " ORDER BY id DESC LIMIT 20"
        )
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

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, params)
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def message_keys(self) -> dict[str, MessageKey]:
        """Every enrolled box's key, by agent id. GatewayStoreError for a row this
        program cannot use (an unknown suite, a key of the wrong length)."""
        keys = {}
        for agent, suite_name, key in self.conn.execute(
            "SELECT agent, suite, mac_key FROM enrolment ORDER BY agent"
        ).fetchall():
            try:
                keys[str(agent)] = MessageKey(suite(str(suite_name)), bytes(key))
            except ValueError as exc:
                raise GatewayStoreError(
                    f"gateway store {self.path}: enrolment of {agent!r}: {exc}"
                ) from None
        return keys

    def undrawn_ecgs(self, limit: int = 100) -> list[tuple[int, str, str, str]]:
        """12-leads (8 or more ECG leads) stored without a sheet row: the gateway stopped
        between its ACK and the drawing. (message id, agent, control id, payload)."""
        rows = self.conn.execute(
            "SELECT m.id, m.agent, m.control_id, m.payload FROM message m"
            " WHERE NOT EXISTS (SELECT 1 FROM ecg e WHERE e.message_id = m.id)"
            " AND (SELECT COUNT(DISTINCT w.metric) FROM waveform w WHERE w.message_id = m.id"
            "      AND w.metric LIKE 'MDC_ECG_ELEC_POTL_%') >= 8"
            " ORDER BY m.id LIMIT ?",
            (limit,),
        ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]

    def waveforms(self, message_id: int) -> dict[str, tuple[int, ...]]:
        """A stored message's NA rows by OBX-4 sub-id, samples exact."""
        rows = self.conn.execute(
            "SELECT sub_id, encoding, data FROM waveform WHERE message_id = ? ORDER BY set_id",
            (message_id,),
        ).fetchall()
        return {r[0]: waveform_codec.decode_samples(r[2], r[1]) for r in rows}

    def recent_rejected(self, limit: int = 10) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT agent, control_id, ack_code, error_code, reason, times_seen, topic"
            " FROM rejected"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
