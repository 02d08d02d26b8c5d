"""Bad frames: the ones kept with their bytes (`quarantine`, beside their `raw_frame`)
and the count of every one, per device and kind of reason (`quarantine_tally`).

Which bad frames keep their bytes is edge_agent.quarantine's budget; it counts what
the store holds (`kept`, `reason_keys`), so a restart does not start it again.

A rejected frame of a driver whose frames carry identity keeps its bytes sealed (its
raw_frame) and its reason sealed too, word for word (a reason may quote the frame); the
tally's key has what it quotes blanked (edge_agent.quarantine.reason_key) and stays
plain, so counting works without keys.
"""

from __future__ import annotations

import sqlite3
from typing import TypedDict

from edge_agent.model import Frame
from edge_agent.store.frames import RAW_DATA_PLACE
from edge_agent.store.sealing import Sealing

REASON_PLACE = "quarantine.reason"
LAST_REASON_PLACE = "quarantine_tally.last_reason"


class QuarantineCounts(TypedDict):
    kept: int  # bad frames kept with their bytes
    counted: int  # the others, only counted


class QuarantineReason(TypedDict):
    """One device's bad frames of one kind (edge_agent.quarantine.reason_key)."""

    device_id: str
    driver: str
    reason: str
    frames: int
    kept: int
    bytes: int
    first_wall_ns: int
    last_wall_ns: int
    last_reason: str  # the newest one word for word


class QuarantinedFrame(TypedDict):
    """A bad frame kept with its bytes (hex) and why it was refused."""

    id: int
    device_id: str
    driver: str
    reason: str
    byte_offset: int | None
    received_wall_ns: int
    data_hex: str


class QuarantineReader:
    def __init__(self, conn: sqlite3.Connection, sealing: Sealing | None = None) -> None:
        self._conn = conn
        self._sealing = sealing or Sealing(None)

    def kept(self, device_id: str) -> int:
        """Bad frames of this device kept with their bytes (edge_agent.quarantine)."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM quarantine WHERE device_id = ?", (device_id,)
        ).fetchone()
        return int(row[0])

    def reason_keys(self, device_id: str) -> set[str]:
        rows = self._conn.execute(
            "SELECT reason FROM quarantine_tally WHERE device_id = ?", (device_id,)
        )
        return {str(r[0]) for r in rows}

    def count(self) -> int:
        """Every bad frame recorded: kept with its bytes or only counted."""
        counts = self.counts()
        return counts["kept"] + counts["counted"]

    def counts(self) -> QuarantineCounts:
        """Bad frames kept with their bytes, and those only counted (bytes not kept)."""
        kept = int(self._conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0])
        counted = self._conn.execute(
            "SELECT COALESCE(SUM(frames - kept), 0) FROM quarantine_tally"
        ).fetchone()[0]
        return {"kept": kept, "counted": int(counted)}

    def reasons(self, limit: int = 10) -> list[QuarantineReason]:
        """The commonest kinds of bad frame, per device."""
        rows = self._conn.execute(
            "SELECT device_id, driver, reason, frames, kept, bytes, first_wall_ns,"
            " last_wall_ns, last_reason, sealed_key FROM quarantine_tally"
            " ORDER BY frames DESC, device_id, reason LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            QuarantineReason(
                device_id=r[0],
                driver=r[1],
                reason=r[2],
                frames=r[3],
                kept=r[4],
                bytes=r[5],
                first_wall_ns=r[6],
                last_wall_ns=r[7],
                last_reason=self._sealing.open_text(LAST_REASON_PLACE, r[8], r[9]),
            )
            for r in rows
        ]

    def recent(self, limit: int = 20) -> list[QuarantinedFrame]:
        rows = self._conn.execute(
            "SELECT q.id, q.device_id, q.driver, q.reason, q.byte_offset, q.received_wall_ns,"
            " f.data, q.sealed_key, f.sealed_key"
            " FROM quarantine q JOIN raw_frame f ON f.id = q.raw_frame_id"
            " ORDER BY q.id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            QuarantinedFrame(
                id=r[0],
                device_id=r[1],
                driver=r[2],
                reason=self._sealing.open_text(REASON_PLACE, r[3], r[7]),
                byte_offset=r[4],
                received_wall_ns=r[5],
                data_hex=self._sealing.open_data(RAW_DATA_PLACE, r[6], r[8]).hex().upper(),
            )
            for r in rows
        ]


class Quarantine(QuarantineReader):
    """The recorder's writes for a rejected frame, inside its transaction."""

    def _reason(self, place: str, reason: str, sealed: bool) -> tuple[bytes | str, str | None]:
        if not sealed or self._sealing.key_id is None:
            return reason, None
        return self._sealing.text(place, reason), self._sealing.key_id

    def insert(
        self,
        raw_frame_id: int,
        frame: Frame,
        reason: str,
        byte_offset: int | None,
        *,
        sealed: bool = False,
    ) -> None:
        """`sealed`: the frame may name the patient, so may its reason."""
        stored, key_id = self._reason(REASON_PLACE, reason, sealed)
        self._conn.execute(
            "INSERT INTO quarantine (raw_frame_id, device_id, driver, reason, byte_offset,"
            " received_wall_ns, sealed_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                raw_frame_id,
                frame.device_id,
                frame.driver,
                stored,
                byte_offset,
                frame.received_wall_ns,
                key_id,
            ),
        )

    def tally(
        self, frame: Frame, key: str, reason: str, *, kept: bool, sealed: bool = False
    ) -> None:
        """Count one bad frame under (device, reason key), whether its bytes are kept."""
        stored, key_id = self._reason(LAST_REASON_PLACE, reason, sealed)
        self._conn.execute(
            "INSERT INTO quarantine_tally (device_id, reason, driver, frames, kept, bytes,"
            " first_wall_ns, last_wall_ns, last_reason, sealed_key)"
            " VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(device_id, reason) DO UPDATE SET frames = frames + 1,"
            " kept = kept + excluded.kept, bytes = bytes + excluded.bytes,"
            " last_wall_ns = excluded.last_wall_ns, last_reason = excluded.last_reason,"
            " sealed_key = excluded.sealed_key",
            (
                frame.device_id,
                key,
                frame.driver,
                1 if kept else 0,
                len(frame.data),
                frame.received_wall_ns,
                frame.received_wall_ns,
                stored,
                key_id,
            ),
        )
