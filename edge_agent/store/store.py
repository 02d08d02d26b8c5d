"""The box's SQLite store: the only module that writes SQL strings.

One process owns one writer connection (Debian 12's SQLite 3.40 can corrupt a WAL
database when two connections write or checkpoint concurrently; reference
security-and-durability.md). WAL mode, synchronous=FULL: a commit that returned is on
the SD card, so anything acked to a device or shown as saved survives power loss.
Readers (status CLI, TUI) open their own read-only connections.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from edge_agent import waveform_codec
from edge_agent.model import (
    HELD_NO_VISIT,
    OUTBOX_DELIVERED,
    OUTBOX_HELD,
    OUTBOX_PENDING,
    OUTBOX_REJECTED,
    OUTBOX_SENT,
    Frame,
    Reading,
    RecordingContext,
    SourcePatient,
    Statement,
    Waveform,
)
from edge_agent.store.schema import LATEST_VERSION, MIGRATIONS

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """The store cannot be used (newer schema, unreadable file, failed sync)."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: str
    kind: str
    priority: int
    status: str
    raw_frame_id: int | None
    created_wall_ns: int
    payload: str | None
    attempts: int


@dataclass(frozen=True, slots=True)
class ObservationRow:
    id: int
    device_id: str
    metric: str
    value: str | None
    unit: str
    device_time: str | None
    flags: tuple[str, ...]
    received_wall_ns: int
    encounter_id: int | None
    sub_id: str | None = None  # OBX-4 as an HL7 monitor sent it
    result_status: str | None = None  # OBX-11 as an HL7 monitor sent it


@dataclass(frozen=True, slots=True)
class FrameSource:
    """What a frame said about its source (frame_source): the sending device's EUI-64
    and who it says the patient is (an HL7 monitor's PID); `national_id` when that
    identifier is a valid resident identity number."""

    device_eui64: str | None
    patient: SourcePatient | None
    national_id: str | None
    conflict: bool = False  # a visit was open for another resident: held, not forwarded


@dataclass(frozen=True, slots=True)
class WaveformSegment:
    id: int
    device_id: str
    received_wall_ns: int
    waveform: Waveform


@dataclass(frozen=True, slots=True)
class AlertRow:
    """An alert: a device's own alarm, or a clinical rule's (NEWS2, follow-up thresholds)."""

    id: int
    raw_frame_id: int | None
    device_id: str | None
    source: str  # device | rule
    code: str
    priority: str  # high | medium | low | info
    text: str  # as the device said it, or the rule's Chinese text
    text_en: str | None
    condition_key: str | None
    subject: str | None  # "encounter:<id>" | "device:<id>" | "station"
    state: str  # active | acknowledged | cleared
    raised_wall_ns: int
    value: str | None = None
    metric: str | None = None
    unit: str | None = None
    last_seen_wall_ns: int | None = None
    cleared_wall_ns: int | None = None
    ack_user: str | None = None
    ack_wall_ns: int | None = None
    physiological: bool = False  # about the patient (PCD-04 SP), else the device (ST)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "code": self.code,
            "priority": self.priority,
            "state": self.state,
            "source": self.source,
            "device": self.device_id,
            "subject": self.subject,
            "text": self.text,
            "text_en": self.text_en,
            "value": self.value,
            "metric": self.metric,
            "unit": self.unit,
            "raised_wall_ns": self.raised_wall_ns,
            "cleared_wall_ns": self.cleared_wall_ns,
            "ack_user": self.ack_user,
            "ack_wall_ns": self.ack_wall_ns,
            "physiological": self.physiological,
        }


@dataclass(frozen=True, slots=True)
class PrealertRow:
    id: int
    outbox_id: str
    encounter_id: int | None
    ecg_frame_id: int | None
    stemi: bool
    source: str
    destination: str | None
    eta_minutes: int | None
    complaint: str
    created_wall_ns: int


@dataclass(frozen=True, slots=True)
class PatientRow:
    id: int
    national_id: str
    name: str
    phone: str | None
    sex: str | None
    birth_date: str | None


@dataclass(frozen=True, slots=True)
class EncounterRow:
    id: int
    patient_id: int
    station: str
    patient_class: str


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        uri = f"file:{path}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    if not readonly:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"store {path}: could not switch to WAL (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    return conn


class Store:
    """The writer. Create one per process with `Store.open(path)`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.db = Database(conn)

    # --- life cycle -------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> Store:
        try:
            conn = _connect(path, readonly=False)
        except sqlite3.Error as exc:
            raise StoreError(f"store {path}: cannot open ({exc})") from None
        store = cls(conn, path)
        log.info("store %s: SQLite %s", path, sqlite3.sqlite_version)
        store.migrate()
        return store

    def migrate(self) -> int:
        with self.db.atomic():
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_wall_ns INTEGER)"
            )
            current = (
                self.conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
            )
            if current > LATEST_VERSION:
                raise StoreError(
                    f"store {self.path}: schema version {current} is newer than this program"
                    f" ({LATEST_VERSION}); refusing to touch it"
                )
            for version, name, apply in MIGRATIONS:
                if version <= current:
                    continue
                log.info("store %s: migrating to version %d (%s)", self.path, version, name)
                apply(self.db)
                self.conn.execute(
                    "INSERT INTO schema_version (version, name, applied_wall_ns)"
                    " VALUES (?, ?, CAST(strftime('%s','now') AS INTEGER) * 1000000000)",
                    (version, name),
                )
                current = version
        return current

    def schema_version(self) -> int:
        row = self.conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic, durable unit (synchronous=FULL: returns after the fsync)."""
        with self.db.atomic():
            yield

    # --- meta ---------------------------------------------------------------------------

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # --- operations by hand (edge_agent.operations) ------------------------------------

    def record_operation(
        self, op: str, *, user: str, uid: int | None, subject: str | None, wall_ns: int
    ) -> None:
        self.conn.execute(
            "INSERT INTO operation_log (op, user, uid, subject, done_wall_ns)"
            " VALUES (?, ?, ?, ?, ?)",
            (op, user, uid, subject, wall_ns),
        )

    def operations(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest changes made by hand, newest first."""
        cur = self.conn.execute(
            "SELECT id, op, user, uid, subject, done_wall_ns FROM operation_log"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    # --- devices ------------------------------------------------------------------------

    def upsert_device(
        self,
        device_id: str,
        *,
        driver: str,
        transport: str,
        port: str | None = None,
        address: str | None = None,
        eui64: str | None = None,
    ) -> None:
        self.conn.execute(
            "INSERT INTO device (id, driver, transport, port, address, eui64, state, frames,"
            " quarantined) VALUES (?, ?, ?, ?, ?, ?, 'configured', 0, 0)"
            " ON CONFLICT(id) DO UPDATE SET driver = excluded.driver,"
            " transport = excluded.transport, port = excluded.port,"
            " address = excluded.address, eui64 = COALESCE(excluded.eui64, device.eui64)",
            (device_id, driver, transport, port, address, eui64),
        )

    def set_device_eui64(self, device_id: str, eui64: str, *, source: str) -> bool:
        """Keep a device's EUI-64: its own ("device") or the one made for it ("derived").
        Only a device that has a row (every device a frame came from has one); the box
        itself ("station", rule alerts) is not made a device. False: no such row."""
        cur = self.conn.execute(
            "UPDATE device SET eui64 = ?, eui64_source = ? WHERE id = ?",
            (eui64, source, device_id),
        )
        return cur.rowcount == 1

    def set_device_state(self, device_id: str, state: str, detail: str, wall_ns: int) -> None:
        self.conn.execute(
            "UPDATE device SET state = ?, state_detail = ?, state_wall_ns = ? WHERE id = ?",
            (state, detail, wall_ns, device_id),
        )

    def device(self, device_id: str) -> dict[str, Any] | None:
        cur = self.conn.execute("SELECT * FROM device WHERE id = ?", (device_id,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cur.description], row, strict=True))

    # --- the recorder's writes (called inside one transaction) ---------------------------

    def insert_raw_frame(self, frame: Frame, channel: str | None) -> int:
        cur = self.conn.execute(
            "INSERT INTO raw_frame (device_id, driver, channel, data, received_wall_ns,"
            " received_mono_ns, boot_id, outcome, dedup_key) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
            (
                frame.device_id,
                frame.driver,
                channel,
                frame.data,
                frame.received_wall_ns,
                frame.received_mono_ns,
                frame.boot_id,
                frame.dedup_key,
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def seen_dedup_key(self, device_id: str, dedup_key: str) -> bool:
        """Whether a frame with this key from this device was recorded (not quarantined)."""
        row = self.conn.execute(
            "SELECT 1 FROM raw_frame WHERE device_id = ? AND dedup_key = ?"
            " AND outcome IN ('decoded', 'progress', 'empty') LIMIT 1",
            (device_id, dedup_key),
        ).fetchone()
        return row is not None

    def insert_waveforms(
        self,
        raw_frame_id: int,
        frame: Frame,
        encounter_id: int | None,
        waveforms: Sequence[Waveform],
    ) -> None:
        self.conn.executemany(
            "INSERT INTO waveform_segment (raw_frame_id, device_id, encounter_id, metric, unit,"
            " rate_hz, scale, offset, start_device_time, sample_count, encoding, data,"
            " received_wall_ns, received_mono_ns, boot_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    raw_frame_id,
                    frame.device_id,
                    encounter_id,
                    w.metric,
                    w.unit,
                    float(w.rate_hz),
                    str(w.scale),
                    str(w.offset),
                    None if w.start_time is None else w.start_time.isoformat(),
                    len(w.samples),
                    *waveform_codec.encode_samples(w.samples),
                    frame.received_wall_ns,
                    frame.received_mono_ns,
                    frame.boot_id,
                )
                for w in waveforms
            ],
        )

    def waveform_segments(
        self, device_id: str, metric: str, *, limit: int = 100
    ) -> list[WaveformSegment]:
        """The newest segments of one signal, oldest first, samples decoded exactly."""
        rows = self.conn.execute(
            "SELECT id, device_id, metric, unit, rate_hz, scale, offset, start_device_time,"
            " encoding, data, received_wall_ns FROM waveform_segment"
            " WHERE device_id = ? AND metric = ? ORDER BY id DESC LIMIT ?",
            (device_id, metric, limit),
        ).fetchall()
        segments = []
        for r in reversed(rows):
            start = dt.datetime.fromisoformat(r[7]) if r[7] else None
            waveform = Waveform(
                metric=r[2],
                rate_hz=float(r[4]),
                unit=r[3],
                samples=waveform_codec.decode_samples(r[9], r[8]),
                scale=Decimal(r[5]),
                offset=Decimal(r[6]),
                start_time=start,
            )
            segments.append(WaveformSegment(r[0], r[1], r[10], waveform))
        return segments

    def wave_devices_since(self, since_wall_ns: int) -> list[tuple[str, int]]:
        """Devices that stored waves since then (monitors streaming ECG, pleth), each with
        the time its last wave arrived. Whole recordings (12-lead carts' files: the
        drivers whose declaration says so) are not among them."""
        from device_drivers import registry

        recordings = registry.recording_drivers()
        rows = self.conn.execute(
            "SELECT w.device_id, MAX(w.received_wall_ns) FROM waveform_segment w"
            " JOIN raw_frame f ON f.id = w.raw_frame_id WHERE w.received_wall_ns >= ?"
            f" AND f.driver NOT IN ({', '.join('?' * len(recordings))})"
            " GROUP BY w.device_id ORDER BY w.device_id",
            (since_wall_ns, *recordings),
        ).fetchall()
        return [(r[0], int(r[1])) for r in rows]

    def waves_between(self, device_id: str, from_wall_ns: int, to_wall_ns: int) -> list[Waveform]:
        """A device's waves received in [from, to), one Waveform per signal: consecutive
        segments joined in order (same rate, scale and offset; a change starts over)."""
        rows = self.conn.execute(
            "SELECT metric, unit, rate_hz, scale, offset, start_device_time, encoding, data,"
            " received_wall_ns FROM waveform_segment WHERE device_id = ?"
            " AND received_wall_ns >= ? AND received_wall_ns < ? ORDER BY id",
            (device_id, from_wall_ns, to_wall_ns),
        ).fetchall()
        joined: dict[str, Waveform] = {}
        for r in rows:
            samples = waveform_codec.decode_samples(r[7], r[6])
            start = dt.datetime.fromisoformat(r[5]) if r[5] else None
            piece = Waveform(r[0], float(r[2]), r[1], samples, Decimal(r[3]), Decimal(r[4]), start)
            before = joined.get(r[0])
            if before is not None and (
                before.rate_hz,
                before.scale,
                before.offset,
                before.unit,
            ) == (
                piece.rate_hz,
                piece.scale,
                piece.offset,
                piece.unit,
            ):
                joined[r[0]] = dataclasses.replace(before, samples=before.samples + samples)
            else:
                joined[r[0]] = piece
        return list(joined.values())

    def insert_strip(
        self, outbox_id: str, device_id: str, from_wall_ns: int, to_wall_ns: int
    ) -> None:
        self.conn.execute(
            "INSERT INTO strip (outbox_id, device_id, from_wall_ns, to_wall_ns) VALUES (?, ?, ?, ?)",
            (outbox_id, device_id, from_wall_ns, to_wall_ns),
        )

    def strip_for_outbox(self, outbox_id: str) -> tuple[str, int, int] | None:
        row = self.conn.execute(
            "SELECT device_id, from_wall_ns, to_wall_ns FROM strip WHERE outbox_id = ?",
            (outbox_id,),
        ).fetchone()
        return None if row is None else (row[0], int(row[1]), int(row[2]))

    def raw_frame(self, raw_frame_id: int) -> dict[str, Any] | None:
        """A frame's metadata (not its bytes) and the visit its signals were bound to."""
        row = self.conn.execute(
            "SELECT f.id, f.device_id, f.driver, f.channel, f.received_wall_ns, f.outcome,"
            " COALESCE(f.encounter_id, (SELECT encounter_id FROM waveform_segment w"
            "  WHERE w.raw_frame_id = f.id AND encounter_id IS NOT NULL LIMIT 1))"
            " FROM raw_frame f WHERE f.id = ?",
            (raw_frame_id,),
        ).fetchone()
        if row is None:
            return None
        keys = ("id", "device_id", "driver", "channel", "received_wall_ns", "outcome")
        return {**dict(zip(keys, row[:6], strict=True)), "encounter_id": row[6]}

    def waveforms_for_frame(self, raw_frame_id: int) -> list[Waveform]:
        """A frame's signals (a 12-lead's leads) in the order they were stored, exact."""
        rows = self.conn.execute(
            "SELECT metric, unit, rate_hz, scale, offset, start_device_time, encoding, data"
            " FROM waveform_segment WHERE raw_frame_id = ? ORDER BY id",
            (raw_frame_id,),
        ).fetchall()
        return [
            Waveform(
                metric=r[0],
                rate_hz=float(r[2]),
                unit=r[1],
                samples=waveform_codec.decode_samples(r[7], r[6]),
                scale=Decimal(r[3]),
                offset=Decimal(r[4]),
                start_time=dt.datetime.fromisoformat(r[5]) if r[5] else None,
            )
            for r in rows
        ]

    def insert_statements(
        self,
        raw_frame_id: int,
        frame: Frame,
        encounter_id: int | None,
        statements: Sequence[Statement],
    ) -> None:
        self.conn.executemany(
            "INSERT INTO statement (raw_frame_id, device_id, encounter_id, seq, text, code,"
            " received_wall_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    raw_frame_id,
                    frame.device_id,
                    encounter_id,
                    n,
                    s.text,
                    s.code,
                    frame.received_wall_ns,
                )
                for n, s in enumerate(statements)
            ],
        )

    def statements_for_frame(self, raw_frame_id: int) -> list[Statement]:
        rows = self.conn.execute(
            "SELECT text, code FROM statement WHERE raw_frame_id = ? ORDER BY seq",
            (raw_frame_id,),
        ).fetchall()
        return [Statement(r[0], r[1]) for r in rows]

    def insert_ecg_context(self, raw_frame_id: int, context: RecordingContext) -> None:
        self.conn.execute(
            "INSERT INTO ecg_context (raw_frame_id, device_model, patient_sex, patient_age,"
            " patient_age_unit) VALUES (?, ?, ?, ?, ?)",
            (
                raw_frame_id,
                context.device_model,
                context.patient_sex,
                context.patient_age,
                context.patient_age_unit,
            ),
        )

    def ecg_context_for_frame(self, raw_frame_id: int) -> RecordingContext | None:
        row = self.conn.execute(
            "SELECT device_model, patient_sex, patient_age, patient_age_unit FROM ecg_context"
            " WHERE raw_frame_id = ?",
            (raw_frame_id,),
        ).fetchone()
        return None if row is None else RecordingContext(row[0], row[1], row[2], row[3])

    def insert_prealert(
        self,
        *,
        outbox_id: str,
        encounter_id: int | None,
        ecg_frame_id: int | None,
        stemi: bool,
        source: str,
        destination: str | None,
        eta_minutes: int | None,
        complaint: str,
        created_wall_ns: int,
    ) -> int:
        cur = self.conn.execute(
            "INSERT INTO prealert (outbox_id, encounter_id, ecg_frame_id, stemi, source,"
            " destination, eta_minutes, complaint, created_wall_ns)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                outbox_id,
                encounter_id,
                ecg_frame_id,
                int(stemi),
                source,
                destination,
                eta_minutes,
                complaint,
                created_wall_ns,
            ),
        )
        return int(cur.lastrowid or 0)

    _PREALERT_COLUMNS = (
        "id, outbox_id, encounter_id, ecg_frame_id, stemi, source, destination, eta_minutes,"
        " complaint, created_wall_ns"
    )

    def prealert_for_outbox(self, outbox_id: str) -> PrealertRow | None:
        row = self.conn.execute(
            f"SELECT {self._PREALERT_COLUMNS} FROM prealert WHERE outbox_id = ?", (outbox_id,)
        ).fetchone()
        return None if row is None else _prealert(row)

    def prealerts(self, limit: int = 10) -> list[PrealertRow]:
        rows = self.conn.execute(
            f"SELECT {self._PREALERT_COLUMNS} FROM prealert ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [_prealert(r) for r in rows]

    def waveform_stats(self) -> dict[str, int]:
        row = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(sample_count), 0), COALESCE(SUM(length(data)), 0)"
            " FROM waveform_segment"
        ).fetchone()
        return {"segments": int(row[0]), "samples": int(row[1]), "bytes": int(row[2])}

    # --- paired BLE devices (`edge-agent devices`) -----------------------------------------

    def pair_device(
        self, address: str, *, device_id: str, driver: str, name: str | None, wall_ns: int
    ) -> None:
        self.conn.execute(
            "INSERT INTO paired_device (address, device_id, driver, name, paired_wall_ns)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(address) DO UPDATE SET"
            " device_id = excluded.device_id, driver = excluded.driver, name = excluded.name,"
            " paired_wall_ns = excluded.paired_wall_ns",
            (address.upper(), device_id, driver, name, wall_ns),
        )

    def paired_devices(self) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT address, device_id, driver, name, paired_wall_ns FROM paired_device"
            " ORDER BY device_id"
        )
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def forget_device(self, address: str) -> bool:
        cur = self.conn.execute("DELETE FROM paired_device WHERE address = ?", (address.upper(),))
        return cur.rowcount == 1

    def set_frame_outcome(self, raw_frame_id: int, outcome: str) -> None:
        self.conn.execute("UPDATE raw_frame SET outcome = ? WHERE id = ?", (outcome, raw_frame_id))

    def insert_quarantine(
        self, raw_frame_id: int, frame: Frame, reason: str, byte_offset: int | None
    ) -> None:
        self.conn.execute(
            "INSERT INTO quarantine (raw_frame_id, device_id, driver, reason, byte_offset,"
            " received_wall_ns) VALUES (?, ?, ?, ?, ?, ?)",
            (
                raw_frame_id,
                frame.device_id,
                frame.driver,
                reason,
                byte_offset,
                frame.received_wall_ns,
            ),
        )

    def quarantine_kept(self, device_id: str) -> int:
        """Bad frames of this device kept with their bytes (edge_agent.quarantine)."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM quarantine WHERE device_id = ?", (device_id,)
        ).fetchone()
        return int(row[0])

    def quarantine_reason_keys(self, device_id: str) -> set[str]:
        rows = self.conn.execute(
            "SELECT reason FROM quarantine_tally WHERE device_id = ?", (device_id,)
        )
        return {str(r[0]) for r in rows}

    def tally_quarantine(self, frame: Frame, key: str, reason: str, *, kept: bool) -> None:
        """Count one bad frame under (device, reason key), whether its bytes are kept."""
        self.conn.execute(
            "INSERT INTO quarantine_tally (device_id, reason, driver, frames, kept, bytes,"
            " first_wall_ns, last_wall_ns, last_reason) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)"
            " ON CONFLICT(device_id, reason) DO UPDATE SET frames = frames + 1,"
            " kept = kept + excluded.kept, bytes = bytes + excluded.bytes,"
            " last_wall_ns = excluded.last_wall_ns, last_reason = excluded.last_reason",
            (
                frame.device_id,
                key,
                frame.driver,
                1 if kept else 0,
                len(frame.data),
                frame.received_wall_ns,
                frame.received_wall_ns,
                reason,
            ),
        )

    def mark_line_rejecting(self, device_id: str, detail: str, wall_ns: int) -> None:
        """The device's port gives mostly rejects (edge_agent.quarantine.RejectWatch).

        Only over a connected (or never reported) device: a batch recorded after the
        transport said "disconnected" must not hide that."""
        self.conn.execute(
            "UPDATE device SET state = 'rejecting', state_detail = ?, state_wall_ns = ?"
            " WHERE id = ? AND state IN ('connected', 'configured')",
            (detail, wall_ns, device_id),
        )

    def mark_line_clear(self, device_id: str, wall_ns: int) -> None:
        """Good frames again: back to what the serial transport says of an open port."""
        self.conn.execute(
            "UPDATE device SET state = 'connected', state_detail = COALESCE(port, ''),"
            " state_wall_ns = ? WHERE id = ? AND state = 'rejecting'",
            (wall_ns, device_id),
        )

    def count_frame(self, frame: Frame, *, quarantined: bool) -> None:
        # A device that is not in the config (e.g. `edge-agent decode` into a store, or a
        # device removed from the config) still gets a row: frames are never orphaned.
        self.conn.execute(
            "INSERT INTO device (id, driver, transport, state, frames, quarantined,"
            " last_frame_wall_ns) VALUES (?, ?, 'unknown', 'configured', 1, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET frames = frames + 1,"
            " quarantined = quarantined + excluded.quarantined,"
            " last_frame_wall_ns = excluded.last_frame_wall_ns",
            (frame.device_id, frame.driver, 1 if quarantined else 0, frame.received_wall_ns),
        )

    def insert_observations(
        self, raw_frame_id: int, frame: Frame, encounter_id: int | None, readings: Sequence[Reading]
    ) -> None:
        self.conn.executemany(
            "INSERT INTO observation (raw_frame_id, device_id, encounter_id, metric, value, unit,"
            " device_time, flags, received_wall_ns, received_mono_ns, boot_id, sub_id,"
            " result_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    raw_frame_id,
                    frame.device_id,
                    encounter_id,
                    r.metric,
                    None if r.value is None else str(r.value),
                    r.unit,
                    None if r.device_time is None else r.device_time.isoformat(),
                    json.dumps(list(r.flags)) if r.flags else "[]",
                    frame.received_wall_ns,
                    frame.received_mono_ns,
                    frame.boot_id,
                    r.sub_id,
                    r.result_status,
                )
                for r in readings
            ],
        )

    def insert_frame_source(
        self,
        raw_frame_id: int,
        *,
        device_eui64: str | None,
        patient: SourcePatient | None,
        national_id: str | None,
        conflict: bool = False,
    ) -> None:
        p = patient
        self.conn.execute(
            "INSERT INTO frame_source (raw_frame_id, device_eui64, patient_identifier,"
            " patient_authority, patient_id_type, patient_name, patient_birth_date,"
            " patient_sex, patient_class, patient_national_id, patient_conflict)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                raw_frame_id,
                device_eui64,
                None if p is None else p.identifier,
                None if p is None else p.authority,
                None if p is None else p.id_type,
                None if p is None else p.name,
                None if p is None or p.birth_date is None else p.birth_date.isoformat(),
                None if p is None else p.sex,
                None if p is None else p.patient_class,
                national_id,
                int(conflict),
            ),
        )

    def frame_source(self, raw_frame_id: int) -> FrameSource | None:
        row = self.conn.execute(
            "SELECT device_eui64, patient_identifier, patient_authority, patient_id_type,"
            " patient_name, patient_birth_date, patient_sex, patient_class,"
            " patient_national_id, COALESCE(patient_conflict, 0) = 1 FROM frame_source"
            " WHERE raw_frame_id = ?",
            (raw_frame_id,),
        ).fetchone()
        if row is None:
            return None
        patient = None
        if row[1]:
            patient = SourcePatient(
                identifier=row[1],
                authority=row[2] or "",
                id_type=row[3] or "",
                name=row[4] or "",
                birth_date=dt.date.fromisoformat(row[5]) if row[5] else None,
                sex=row[6],
                patient_class=row[7],
            )
        return FrameSource(row[0], patient, row[8], bool(row[9]))

    def set_frame_encounter(self, raw_frame_id: int, encounter_id: int | None) -> None:
        """The visit a frame's readings and alarms belong to (NULL: nobody's, yet)."""
        self.conn.execute(
            "UPDATE raw_frame SET encounter_id = ? WHERE id = ?", (encounter_id, raw_frame_id)
        )

    def insert_alert(self, alert: AlertRow) -> int:
        cur = self.conn.execute(
            "INSERT INTO alert (raw_frame_id, device_id, source, code, priority, text, text_en,"
            " condition_key, subject, value, metric, unit, raised_wall_ns, last_seen_wall_ns,"
            " state, physiological) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                alert.raw_frame_id,
                alert.device_id,
                alert.source,
                alert.code,
                alert.priority,
                alert.text,
                alert.text_en,
                alert.condition_key,
                alert.subject,
                alert.value,
                alert.metric,
                alert.unit,
                alert.raised_wall_ns,
                alert.raised_wall_ns,
                alert.state,
                int(alert.physiological),
            ),
        )
        return int(cur.lastrowid or 0)

    _ALERT_COLUMNS = (
        "id, raw_frame_id, device_id, source, code, priority, text, text_en, condition_key,"
        " subject, state, raised_wall_ns, value, metric, unit, last_seen_wall_ns,"
        " cleared_wall_ns, ack_user, ack_wall_ns, COALESCE(physiological, 0) = 1"
    )

    def open_alert(self, subject: str, condition_key: str) -> AlertRow | None:
        """The alert still open (active or acknowledged, not cleared) for a condition."""
        row = self.conn.execute(
            f"SELECT {self._ALERT_COLUMNS} FROM alert WHERE subject = ? AND condition_key = ?"
            " AND state != 'cleared' ORDER BY id DESC LIMIT 1",
            (subject, condition_key),
        ).fetchone()
        return None if row is None else AlertRow(*row)

    def open_alerts(self, subject: str | None = None) -> list[AlertRow]:
        sql = f"SELECT {self._ALERT_COLUMNS} FROM alert WHERE state != 'cleared'"
        params: tuple[Any, ...] = ()
        if subject is not None:
            sql += " AND subject = ?"
            params = (subject,)
        rows = self.conn.execute(sql + " ORDER BY id", params).fetchall()
        return [AlertRow(*r) for r in rows]

    def alert(self, alert_id: int) -> AlertRow | None:
        row = self.conn.execute(
            f"SELECT {self._ALERT_COLUMNS} FROM alert WHERE id = ?", (alert_id,)
        ).fetchone()
        return None if row is None else AlertRow(*row)

    def alerts(self, *, include_cleared: bool = False, limit: int = 50) -> list[AlertRow]:
        where = "" if include_cleared else " WHERE state != 'cleared'"
        rows = self.conn.execute(
            f"SELECT {self._ALERT_COLUMNS} FROM alert{where} ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [AlertRow(*r) for r in rows]

    def touch_alert(self, alert_id: int, wall_ns: int) -> None:
        self.conn.execute(
            "UPDATE alert SET last_seen_wall_ns = ? WHERE id = ?", (wall_ns, alert_id)
        )

    def clear_alert(self, alert_id: int, wall_ns: int) -> None:
        self.conn.execute(
            "UPDATE alert SET state = 'cleared', cleared_wall_ns = ? WHERE id = ?",
            (wall_ns, alert_id),
        )

    def ack_alert(self, alert_id: int, user: str, wall_ns: int) -> bool:
        """Who saw it and when; an alert already acknowledged or cleared keeps its state
        (a cleared one still records who acknowledged it). False: no such alert."""
        cur = self.conn.execute(
            "UPDATE alert SET ack_user = ?, ack_wall_ns = ?,"
            " state = CASE WHEN state = 'active' THEN 'acknowledged' ELSE state END"
            " WHERE id = ? AND ack_user IS NULL",
            (user, wall_ns, alert_id),
        )
        if cur.rowcount:
            return True
        return self.alert(alert_id) is not None

    def link_alert_message(self, outbox_id: str, alert_id: int, phase: str) -> None:
        self.conn.execute(
            "INSERT INTO alert_message (outbox_id, alert_id, phase) VALUES (?, ?, ?)",
            (outbox_id, alert_id, phase),
        )

    def alert_message(self, outbox_id: str) -> tuple[AlertRow, str] | None:
        row = self.conn.execute(
            "SELECT alert_id, phase FROM alert_message WHERE outbox_id = ?", (outbox_id,)
        ).fetchone()
        if row is None:
            return None
        alert = self.alert(int(row[0]))
        return None if alert is None else (alert, str(row[1]))

    def insert_outbox(
        self,
        message_id: str,
        *,
        kind: str,
        priority: int,
        raw_frame_id: int | None,
        created_wall_ns: int,
        created_mono_ns: int,
        boot_id: str,
        held: bool = False,
        held_reason: str | None = None,
    ) -> None:
        """`held`: waits for a doctor to say whose reading it is (readings assign);
        `held_reason` why (model.HELD_NO_VISIT, the default, or HELD_PATIENT_CONFLICT)."""
        self.conn.execute(
            "INSERT INTO outbox (id, kind, priority, status, raw_frame_id, created_wall_ns,"
            " created_mono_ns, boot_id, attempts, next_attempt_wall_ns, held_reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?)",
            (
                message_id,
                kind,
                priority,
                OUTBOX_HELD if held else OUTBOX_PENDING,
                raw_frame_id,
                created_wall_ns,
                created_mono_ns,
                boot_id,
                (held_reason or HELD_NO_VISIT) if held else None,
            ),
        )

    def held_frames(self, device_id: str | None = None) -> list[dict[str, Any]]:
        """Frames of readings that wait for a patient, with their readings (oldest first),
        why they wait (`reason`) and who the device said the patient is (`device_patient`,
        an HL7 monitor's PID, when it named one)."""
        cur = self.conn.execute(
            "SELECT f.id AS frame_id, f.device_id, f.received_wall_ns, o.id AS message_id,"
            " COALESCE(o.held_reason, 'no-visit') AS reason"
            " FROM outbox o JOIN raw_frame f ON f.id = o.raw_frame_id"
            " WHERE o.status = 'held' AND (? IS NULL OR f.device_id = ?) ORDER BY f.id",
            (device_id, device_id),
        )
        names = [c[0] for c in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        for row in rows:
            row["readings"] = [
                {"metric": o.metric, "value": o.value, "unit": o.unit, "time": o.device_time}
                for o in self.observations_for_frame(row["frame_id"])
            ]
            source = self.frame_source(row["frame_id"])
            patient = None if source is None else source.patient
            row["device_patient"] = (
                None
                if patient is None
                else {
                    "identifier": patient.identifier,
                    "id_type": patient.id_type,
                    "name": patient.name,
                    "national_id": source.national_id if source is not None else None,
                    "conflict": source.conflict if source is not None else False,
                }
            )
        return rows

    def held_counts(self) -> dict[str, int]:
        """Held outbox rows by why they wait (model.HELD_NO_VISIT, HELD_PATIENT_CONFLICT)."""
        rows = self.conn.execute(
            "SELECT COALESCE(held_reason, 'no-visit'), COUNT(*) FROM outbox"
            " WHERE status = 'held' GROUP BY 1"
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def assign_frames(self, frame_ids: Sequence[int], encounter_id: int) -> int:
        """Bind held frames' readings to a visit and release their messages for upload."""
        assigned = 0
        for frame_id in frame_ids:
            cur = self.conn.execute(
                "UPDATE outbox SET status = 'pending' WHERE raw_frame_id = ? AND status = 'held'",
                (frame_id,),
            )
            if cur.rowcount:
                self.conn.execute(
                    "UPDATE observation SET encounter_id = ? WHERE raw_frame_id = ?",
                    (encounter_id, frame_id),
                )
                self.set_frame_encounter(frame_id, encounter_id)
                assigned += 1
        return assigned

    # --- patients and encounters ----------------------------------------------------------

    def add_patient(
        self,
        *,
        national_id: str,
        name: str,
        phone: str | None,
        sex: str | None,
        birth_date: str | None,
        wall_ns: int,
    ) -> int:
        cur = self.conn.execute(
            "INSERT INTO patient (national_id, name, phone, sex, birth_date, created_wall_ns)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (national_id, name, phone, sex, birth_date, wall_ns),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def patient_by_national_id(self, national_id: str) -> PatientRow | None:
        row = self.conn.execute(
            "SELECT id, national_id, name, phone, sex, birth_date FROM patient"
            " WHERE national_id = ?",
            (national_id,),
        ).fetchone()
        return None if row is None else PatientRow(*row)

    def patient(self, patient_id: int) -> PatientRow | None:
        row = self.conn.execute(
            "SELECT id, national_id, name, phone, sex, birth_date FROM patient WHERE id = ?",
            (patient_id,),
        ).fetchone()
        return None if row is None else PatientRow(*row)

    def patients(self) -> list[PatientRow]:
        rows = self.conn.execute(
            "SELECT id, national_id, name, phone, sex, birth_date FROM patient ORDER BY id"
        ).fetchall()
        return [PatientRow(*r) for r in rows]

    def open_encounter(
        self,
        *,
        patient_id: int,
        station: str,
        patient_class: str,
        wall_ns: int,
        ended_wall_ns: int | None = None,
    ) -> int:
        """Start a visit; any open visit at the same station ends now (one patient at a time).

        With `ended_wall_ns` it is a visit recorded afterwards (readings assigned later):
        it leaves the station's open visit alone.
        """
        if ended_wall_ns is None:
            self.conn.execute(
                "UPDATE encounter SET ended_wall_ns = ? WHERE station = ? AND ended_wall_ns IS NULL",
                (wall_ns, station),
            )
        cur = self.conn.execute(
            "INSERT INTO encounter (patient_id, station, patient_class, started_wall_ns,"
            " ended_wall_ns) VALUES (?, ?, ?, ?, ?)",
            (patient_id, station, patient_class, wall_ns, ended_wall_ns),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def close_encounters(self, station: str, wall_ns: int) -> int:
        cur = self.conn.execute(
            "UPDATE encounter SET ended_wall_ns = ? WHERE station = ? AND ended_wall_ns IS NULL",
            (wall_ns, station),
        )
        return cur.rowcount

    def current_encounter(self, device_id: str) -> EncounterRow | None:
        """The open visit for this device, or for the whole box ('*'); never guessed."""
        row = self.conn.execute(
            "SELECT id, patient_id, station, patient_class FROM encounter"
            " WHERE ended_wall_ns IS NULL AND station IN (?, '*')"
            " ORDER BY station = '*', started_wall_ns DESC LIMIT 1",
            (device_id,),
        ).fetchone()
        return None if row is None else EncounterRow(*row)

    def encounter(self, encounter_id: int) -> EncounterRow | None:
        row = self.conn.execute(
            "SELECT id, patient_id, station, patient_class FROM encounter WHERE id = ?",
            (encounter_id,),
        ).fetchone()
        return None if row is None else EncounterRow(*row)

    # --- the uplink's reads and writes ----------------------------------------------------

    def due_outbox(
        self, now_wall_ns: int, limit: int, exclude: Sequence[str] = ()
    ) -> list[OutboxRow]:
        """Pending rows whose retry time has come, most urgent first, oldest first."""
        rows = self.conn.execute(
            "SELECT id, kind, priority, status, raw_frame_id, created_wall_ns, payload, attempts"
            " FROM outbox WHERE status = 'pending' AND next_attempt_wall_ns <= ?"
            " ORDER BY priority, created_wall_ns, id LIMIT ?",
            (now_wall_ns, limit + len(exclude)),
        ).fetchall()
        skip = set(exclude)
        return [OutboxRow(*r) for r in rows if r[0] not in skip][:limit]

    def outbox_row(self, message_id: str) -> OutboxRow | None:
        row = self.conn.execute(
            "SELECT id, kind, priority, status, raw_frame_id, created_wall_ns, payload, attempts"
            " FROM outbox WHERE id = ?",
            (message_id,),
        ).fetchone()
        return None if row is None else OutboxRow(*row)

    def observations_for_frame(self, raw_frame_id: int) -> list[ObservationRow]:
        rows = self.conn.execute(
            "SELECT id, device_id, metric, value, unit, device_time, flags, received_wall_ns,"
            " encounter_id, sub_id, result_status FROM observation WHERE raw_frame_id = ?"
            " ORDER BY id",
            (raw_frame_id,),
        ).fetchall()
        return [
            ObservationRow(
                r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[6])), r[7], r[8], r[9], r[10]
            )
            for r in rows
        ]

    def set_payload(self, message_id: str, payload: str) -> None:
        self.conn.execute(
            "UPDATE outbox SET payload = ? WHERE id = ? AND payload IS NULL", (payload, message_id)
        )

    def mark_sent(self, message_id: str, wall_ns: int) -> None:
        self.conn.execute(
            "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_wall_ns = ?"
            " WHERE id = ? AND status IN ('pending', 'sent')",
            (wall_ns, message_id),
        )

    def mark_retry(self, message_id: str, *, error: str, next_attempt_wall_ns: int) -> None:
        """Back to pending (PUBACK failure, ACK timeout, lost link): it will be sent again."""
        self.conn.execute(
            "UPDATE outbox SET status = 'pending', last_error = ?, next_attempt_wall_ns = ?"
            " WHERE id = ? AND status IN ('pending', 'sent')",
            (error, next_attempt_wall_ns, message_id),
        )

    def mark_acked(
        self, message_id: str, *, code: str, text: str, wall_ns: int, mono_ns: int, boot_id: str
    ) -> bool:
        """Record the gateway's HL7 ACK. AA -> delivered; AE/AR -> rejected (kept, shown).

        Returns False when the id is unknown or already final (a duplicate ACK).
        """
        status = OUTBOX_DELIVERED if code == "AA" else OUTBOX_REJECTED
        cur = self.conn.execute(
            "UPDATE outbox SET status = ?, ack_code = ?, ack_text = ?, delivered_wall_ns = ?,"
            " delivered_mono_ns = ?, delivered_boot_id = ?"
            " WHERE id = ? AND status IN ('pending', 'sent')",
            (status, code, text, wall_ns, mono_ns, boot_id, message_id),
        )
        return cur.rowcount == 1

    def requeue_unacked(self) -> int:
        """At start-up: whatever was in flight when the process died goes out again."""
        cur = self.conn.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_wall_ns = 0 WHERE status = 'sent'"
        )
        return cur.rowcount

    def add_notice(self, topic: str, payload: str, wall_ns: int) -> None:
        """A notice from the gateway/ER on the down topic (e.g. "ER ready")."""
        self.conn.execute(
            "INSERT INTO notice (topic, payload, received_wall_ns) VALUES (?, ?, ?)",
            (topic, payload, wall_ns),
        )

    def notices(self, limit: int = 20) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT id, topic, payload, received_wall_ns FROM notice ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    # --- status and reports (also used through read-only connections) ------------------

    def outbox_counts(self) -> dict[str, int]:
        counts = {
            OUTBOX_PENDING: 0,
            OUTBOX_SENT: 0,
            OUTBOX_DELIVERED: 0,
            OUTBOX_REJECTED: 0,
            OUTBOX_HELD: 0,
        }
        for status, n in self.conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status"):
            counts[str(status)] = int(n)
        return counts

    def quarantine_count(self) -> int:
        """Every bad frame recorded: kept with its bytes or only counted."""
        counts = self.quarantine_counts()
        return counts["kept"] + counts["counted"]

    def quarantine_counts(self) -> dict[str, int]:
        """Bad frames kept with their bytes, and those only counted (bytes not kept)."""
        kept = int(self.conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0])
        counted = self.conn.execute(
            "SELECT COALESCE(SUM(frames - kept), 0) FROM quarantine_tally"
        ).fetchone()[0]
        return {"kept": kept, "counted": int(counted)}

    def quarantine_reasons(self, limit: int = 10) -> list[dict[str, Any]]:
        """The commonest kinds of bad frame, per device."""
        cur = self.conn.execute(
            "SELECT device_id, driver, reason, frames, kept, bytes, first_wall_ns,"
            " last_wall_ns, last_reason FROM quarantine_tally"
            " ORDER BY frames DESC, device_id, reason LIMIT ?",
            (limit,),
        )
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def observation_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM observation").fetchone()[0])

    def devices(self) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT id, driver, transport, port, address, state, state_detail, state_wall_ns,"
            " last_frame_wall_ns, frames, quarantined, eui64,"
            " (SELECT COUNT(*) FROM quarantine q WHERE q.device_id = device.id)"
            " AS quarantine_kept FROM device ORDER BY id"
        )
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def rejected_outbox(self, limit: int = 20) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT id, kind, ack_code, ack_text, created_wall_ns FROM outbox"
            " WHERE status = 'rejected' ORDER BY created_wall_ns DESC LIMIT ?",
            (limit,),
        )
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def recent_quarantine(self, limit: int = 20) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT q.id, q.device_id, q.driver, q.reason, q.byte_offset, q.received_wall_ns,"
            " hex(f.data) AS data_hex FROM quarantine q JOIN raw_frame f ON f.id = q.raw_frame_id"
            " ORDER BY q.id DESC LIMIT ?",
            (limit,),
        )
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def latest_observations(self, limit: int = 50) -> list[ObservationRow]:
        rows = self.conn.execute(
            "SELECT id, device_id, metric, value, unit, device_time, flags, received_wall_ns,"
            " encounter_id FROM observation ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            ObservationRow(r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[6])), r[7], r[8])
            for r in rows
        ]

    def latest_readings(
        self,
        metrics: Sequence[str],
        since_wall_ns: int,
        encounter_id: int | None,
        *,
        patient_id: int | None = None,
        flag: str | None = None,
    ) -> dict[str, tuple[Reading, int]]:
        """The newest reading of each metric received since then, with its receive time:
        of one visit's patient, of one patient over all their visits (`patient_id`), or
        (neither) of the whole box (an ambulance's patient). `flag`: only readings that
        carry it (a fasting glucose: "meal:fasting").

        One indexed look-up per metric (observation (metric, received_wall_ns), newest
        first): the recorder asks on every vital sign, so this must not scan the window.
        """
        scope = "" if encounter_id is None else " AND encounter_id = ?"
        if patient_id is not None:
            scope += " AND encounter_id IN (SELECT id FROM encounter WHERE patient_id = ?)"
        if flag is not None:
            scope += " AND EXISTS (SELECT 1 FROM json_each(flags) WHERE value = ?)"
        sql = (
            "SELECT value, unit, device_time, flags, received_wall_ns FROM observation"
            f" WHERE metric = ? AND received_wall_ns >= ?{scope}"
            " ORDER BY received_wall_ns DESC, id DESC LIMIT 1"
        )
        found: dict[str, tuple[Reading, int]] = {}
        for metric in metrics:
            params: tuple[Any, ...] = (metric, since_wall_ns)
            if encounter_id is not None:
                params = (*params, encounter_id)
            if patient_id is not None:
                params = (*params, patient_id)
            if flag is not None:
                params = (*params, flag)
            r = self.conn.execute(sql, params).fetchone()
            if r is None:
                continue
            reading = Reading(
                metric,
                None if r[0] is None else Decimal(r[0]),
                r[1],
                dt.datetime.fromisoformat(r[2]) if r[2] else None,
                tuple(json.loads(r[3])),
            )
            found[metric] = (reading, int(r[4]))
        return found

    def add_news2_observation(
        self,
        subject: str,
        *,
        scale: int | None,
        oxygen: bool | None,
        acvpu: str | None,
        by: str | None,
        wall_ns: int,
    ) -> None:
        self.conn.execute(
            "INSERT INTO news2_observation (subject, scale, oxygen, acvpu, observed_by,"
            " observed_wall_ns) VALUES (?, ?, ?, ?, ?, ?)",
            (subject, scale, None if oxygen is None else int(oxygen), acvpu, by, wall_ns),
        )

    def news2_context(
        self, subject: str, since_wall_ns: int
    ) -> tuple[int, bool | None, str | None]:
        """(SpO2 scale, on oxygen, ACVPU) for a subject: the newest scale ever set (1 by
        default: a property of the patient), and the newest air/oxygen and ACVPU
        observed since then (older ones are stale: missing, never assumed)."""
        one = self.conn.execute
        scale = one(
            "SELECT scale FROM news2_observation WHERE subject = ? AND scale IS NOT NULL"
            " ORDER BY observed_wall_ns DESC, id DESC LIMIT 1",
            (subject,),
        ).fetchone()
        oxygen = one(
            "SELECT oxygen FROM news2_observation WHERE subject = ? AND oxygen IS NOT NULL"
            " AND observed_wall_ns >= ? ORDER BY observed_wall_ns DESC, id DESC LIMIT 1",
            (subject, since_wall_ns),
        ).fetchone()
        acvpu = one(
            "SELECT acvpu FROM news2_observation WHERE subject = ? AND acvpu IS NOT NULL"
            " AND observed_wall_ns >= ? ORDER BY observed_wall_ns DESC, id DESC LIMIT 1",
            (subject, since_wall_ns),
        ).fetchone()
        return (
            int(scale[0]) if scale else 1,
            None if oxygen is None else bool(oxygen[0]),
            None if acvpu is None else str(acvpu[0]),
        )

    def latest_by_metric(self) -> list[ObservationRow]:
        """The newest observation of each (device, metric): what a vitals screen shows."""
        rows = self.conn.execute(
            "SELECT o.id, o.device_id, o.metric, o.value, o.unit, o.device_time, o.flags,"
            " o.received_wall_ns, o.encounter_id FROM observation o"
            " JOIN (SELECT MAX(id) AS id FROM observation GROUP BY device_id, metric) m"
            " ON m.id = o.id ORDER BY o.device_id, o.metric"
        ).fetchall()
        return [
            ObservationRow(r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[6])), r[7], r[8])
            for r in rows
        ]

    def recent_alerts(self, limit: int = 10) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT id, device_id, source, code, priority, text, raised_wall_ns, state"
            " FROM alert ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def reading_delivery_counts(self) -> tuple[int, int, int]:
        """Readings with a value: (recorded, chosen for upload, of those ACKed AA).

        A fast monitor's numerics go up once a second (recorder upload policy); the
        others stay on the box for its own trend, so chosen <= recorded by design.
        """
        row = self.conn.execute(
            "SELECT COUNT(*), COUNT(o.id), COUNT(CASE WHEN o.status = 'delivered' THEN 1 END)"
            " FROM observation ob LEFT JOIN outbox o ON o.raw_frame_id = ob.raw_frame_id"
            " WHERE ob.value IS NOT NULL"
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def delivery_latencies_ms(self) -> list[float]:
        """Reading received -> ACK AA, for messages received and acked in the same boot."""
        rows = self.conn.execute(
            "SELECT (o.delivered_mono_ns - f.received_mono_ns) / 1e6 FROM outbox o"
            " JOIN raw_frame f ON f.id = o.raw_frame_id"
            " WHERE o.status = 'delivered' AND o.delivered_boot_id = f.boot_id"
        ).fetchall()
        return [float(r[0]) for r in rows]


def _prealert(row: Sequence[Any]) -> PrealertRow:
    return PrealertRow(
        id=row[0],
        outbox_id=row[1],
        encounter_id=row[2],
        ecg_frame_id=row[3],
        stemi=bool(row[4]),
        source=row[5],
        destination=row[6],
        eta_minutes=row[7],
        complaint=row[8],
        created_wall_ns=row[9],
    )


def open_readonly(path: Path) -> Store:
    """A reader for status/TUI: never blocks the daemon's writer, never migrates."""
    if not path.exists():
        raise StoreError(f"store {path}: does not exist (has the agent run yet?)")
    try:
        conn = _connect(path, readonly=True)
    except sqlite3.Error as exc:
        raise StoreError(f"store {path}: cannot open ({exc})") from None
    return Store(conn, path)
