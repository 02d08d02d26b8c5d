"""The outbox: the uplink's durable queue (the SQLite outbox is the queue, not paho's).

A row is committed with what it reports (the recorder's transaction), built into its
HL7 text once (every retry sends the same bytes), sent, and final only on the
gateway's ACK: AA -> delivered, AE/AR -> rejected, kept and shown. A row of readings
nobody's visit claimed is `held` until a doctor says whose they are.

The HL7 text is stored sealed (its PID names the patient; edge_agent.store.sealing):
`set_payload` seals it, `due` and `get` open it, so the uplink publishes the same
bytes it built.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from edge_agent.model import (
    HELD_NO_VISIT,
    OUTBOX_DELIVERED,
    OUTBOX_HELD,
    OUTBOX_PENDING,
    OUTBOX_REJECTED,
    OUTBOX_SENT,
    Frame,
)
from edge_agent.store.frames import FramesReader
from edge_agent.store.sealing import Sealing

PAYLOAD_PLACE = "outbox.payload"
ACK_TEXT_PLACE = "outbox.ack_text"


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


class RejectedMessage(TypedDict):
    """A row the gateway (or the box itself) refused, as `edge-agent status` lists it."""

    id: str
    kind: str
    ack_code: str | None
    ack_text: str | None
    created_wall_ns: int


class HeldReading(TypedDict):
    metric: str
    value: str | None
    unit: str
    time: str | None


class DevicePatient(TypedDict):
    """Who a device said the patient is (an HL7 monitor's PID), when it named one."""

    identifier: str
    id_type: str
    name: str
    national_id: str | None
    conflict: bool


class HeldFrame(TypedDict):
    """A frame whose readings wait for a patient (`edge-agent readings unassigned`)."""

    frame_id: int
    device_id: str
    received_wall_ns: int
    message_id: str
    reason: str  # model.HELD_NO_VISIT | HELD_PATIENT_CONFLICT
    readings: list[HeldReading]
    device_patient: DevicePatient | None


_ROW_COLUMNS = (
    "id, kind, priority, status, raw_frame_id, created_wall_ns, payload, attempts, sealed_key"
)


class OutboxReader:
    def __init__(self, conn: sqlite3.Connection, sealing: Sealing | None = None) -> None:
        self._conn = conn
        self._sealing = sealing or Sealing(None)
        self._frames = FramesReader(conn, self._sealing)

    def _row(self, r: Sequence[Any]) -> OutboxRow:
        payload = self._sealing.open_maybe_text(PAYLOAD_PLACE, r[6], r[8])
        return OutboxRow(r[0], r[1], r[2], r[3], r[4], r[5], payload, r[7])

    def due(self, now_wall_ns: int, limit: int, exclude: Sequence[str] = ()) -> list[OutboxRow]:
        """Pending rows whose retry time has come, most urgent first, oldest first."""
        rows = self._conn.execute(
            f"SELECT {_ROW_COLUMNS} FROM outbox WHERE status = 'pending'"
            " AND next_attempt_wall_ns <= ? ORDER BY priority, created_wall_ns, id LIMIT ?",
            (now_wall_ns, limit + len(exclude)),
        ).fetchall()
        skip = set(exclude)
        return [self._row(r) for r in rows if r[0] not in skip][:limit]

    def get(self, message_id: str) -> OutboxRow | None:
        row = self._conn.execute(
            f"SELECT {_ROW_COLUMNS} FROM outbox WHERE id = ?", (message_id,)
        ).fetchone()
        return None if row is None else self._row(row)

    def counts(self) -> dict[str, int]:
        """Rows by status, every status present (0 when none)."""
        counts = {
            OUTBOX_PENDING: 0,
            OUTBOX_SENT: 0,
            OUTBOX_DELIVERED: 0,
            OUTBOX_REJECTED: 0,
            OUTBOX_HELD: 0,
        }
        for status, n in self._conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status"):
            counts[str(status)] = int(n)
        return counts

    def rejected(self, limit: int = 20) -> list[RejectedMessage]:
        """The newest refused rows, the refusal's text opened (PersonalDataLocked without
        keys: a receiver's text may quote the message)."""
        rows = self._conn.execute(
            "SELECT id, kind, ack_code, ack_text, created_wall_ns, ack_key FROM outbox"
            " WHERE status = 'rejected' ORDER BY created_wall_ns DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            RejectedMessage(
                id=r[0],
                kind=r[1],
                ack_code=r[2],
                ack_text=self._sealing.open_maybe_text(ACK_TEXT_PLACE, r[3], r[5]),
                created_wall_ns=r[4],
            )
            for r in rows
        ]

    def held_counts(self) -> dict[str, int]:
        """Held rows by why they wait (model.HELD_NO_VISIT, HELD_PATIENT_CONFLICT,
        HELD_CONSENT_WITHDRAWN)."""
        rows = self._conn.execute(
            "SELECT COALESCE(held_reason, 'no-visit'), COUNT(*) FROM outbox"
            " WHERE status = 'held' GROUP BY 1"
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def held_frames(self, device_id: str | None = None) -> list[HeldFrame]:
        """Frames of readings that wait for a patient, with their readings (oldest first),
        why they wait (`reason`) and who the device said the patient is (`device_patient`,
        an HL7 monitor's PID, when it named one)."""
        rows = self._conn.execute(
            "SELECT f.id, f.device_id, f.received_wall_ns, o.id,"
            " COALESCE(o.held_reason, 'no-visit')"
            " FROM outbox o JOIN raw_frame f ON f.id = o.raw_frame_id"
            " WHERE o.status = 'held' AND (? IS NULL OR f.device_id = ?) ORDER BY f.id",
            (device_id, device_id),
        ).fetchall()
        return [self._held_frame(*r) for r in rows]

    def _held_frame(
        self, frame_id: int, device_id: str, received_wall_ns: int, message_id: str, reason: str
    ) -> HeldFrame:
        source = self._frames.source(frame_id)
        patient = None if source is None else source.patient
        return HeldFrame(
            frame_id=frame_id,
            device_id=device_id,
            received_wall_ns=received_wall_ns,
            message_id=message_id,
            reason=reason,
            readings=[
                HeldReading(metric=o.metric, value=o.value, unit=o.unit, time=o.device_time)
                for o in self._frames.observations(frame_id)
            ],
            device_patient=(
                None
                if patient is None or source is None
                else DevicePatient(
                    identifier=patient.identifier,
                    id_type=patient.id_type,
                    name=patient.name,
                    national_id=source.national_id,
                    conflict=source.conflict,
                )
            ),
        )


class Outbox(OutboxReader):
    """The recorder's and the uplink's writes, each inside the caller's transaction."""

    def insert(
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
        `held_reason` why (model.HELD_NO_VISIT, the default, HELD_PATIENT_CONFLICT or
        HELD_CONSENT_WITHDRAWN)."""
        self._conn.execute(
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

    def insert_for_frame(
        self,
        message_id: str,
        frame: Frame,
        *,
        kind: str,
        priority: int,
        raw_frame_id: int | None = None,
        held: bool = False,
        held_reason: str | None = None,
    ) -> None:
        """A message about `frame`, dated with the time and boot it was received in."""
        self.insert(
            message_id,
            kind=kind,
            priority=priority,
            raw_frame_id=raw_frame_id,
            created_wall_ns=frame.received_wall_ns,
            created_mono_ns=frame.received_mono_ns,
            boot_id=frame.boot_id,
            held=held,
            held_reason=held_reason,
        )

    def release_held(self, raw_frame_id: int) -> bool:
        """A held frame's message may go up now (`readings assign`). False: not held."""
        cur = self._conn.execute(
            "UPDATE outbox SET status = 'pending' WHERE raw_frame_id = ? AND status = 'held'",
            (raw_frame_id,),
        )
        return cur.rowcount > 0

    def set_payload(self, message_id: str, payload: str) -> None:
        """The message's HL7 text, sealed, kept for every retry (once: never replaced)."""
        self._conn.execute(
            "UPDATE outbox SET payload = ?, sealed_key = ? WHERE id = ? AND payload IS NULL",
            (self._sealing.text(PAYLOAD_PLACE, payload), self._sealing.key_id, message_id),
        )

    def mark_sent(self, message_id: str, wall_ns: int) -> None:
        self._conn.execute(
            "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_wall_ns = ?"
            " WHERE id = ? AND status IN ('pending', 'sent')",
            (wall_ns, message_id),
        )

    def mark_retry(self, message_id: str, *, error: str, next_attempt_wall_ns: int) -> None:
        """Back to pending (PUBACK failure, ACK timeout, lost link): it will be sent again."""
        self._conn.execute(
            "UPDATE outbox SET status = 'pending', last_error = ?, next_attempt_wall_ns = ?"
            " WHERE id = ? AND status IN ('pending', 'sent')",
            (error, next_attempt_wall_ns, message_id),
        )

    def mark_acked(
        self, message_id: str, *, code: str, text: str, wall_ns: int, mono_ns: int, boot_id: str
    ) -> bool:
        """Record the gateway's HL7 ACK. AA -> delivered; AE/AR -> rejected (kept, shown).
        A refusal's text is sealed: it is the receiver's, and a receiver may quote the
        message it refuses (the reference gateway names fields only).

        Returns False when the id is unknown or already final (a duplicate ACK).
        """
        status = OUTBOX_DELIVERED if code == "AA" else OUTBOX_REJECTED
        refused = status == OUTBOX_REJECTED
        cur = self._conn.execute(
            "UPDATE outbox SET status = ?, ack_code = ?, ack_text = ?, delivered_wall_ns = ?,"
            " delivered_mono_ns = ?, delivered_boot_id = ?, ack_key = ?"
            " WHERE id = ? AND status IN ('pending', 'sent')",
            (
                status,
                code,
                self._sealing.text(ACK_TEXT_PLACE, text) if refused else text,
                wall_ns,
                mono_ns,
                boot_id,
                self._sealing.key_id if refused else None,
                message_id,
            ),
        )
        return cur.rowcount == 1

    def requeue_unacked(self) -> int:
        """At start-up: whatever was in flight when the process died goes out again."""
        cur = self._conn.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_wall_ns = 0 WHERE status = 'sent'"
        )
        return cur.rowcount
