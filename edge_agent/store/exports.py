"""What a patient's export holds beside their identity: their visits and the readings
bound to them, and the groups those readings came in (read-only; edge_agent.export)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ExportedReading:
    encounter_id: int
    station: str
    patient_class: str
    device_id: str
    metric: str
    value: str | None
    unit: str
    device_time: str | None
    received_wall_ns: int | None


@dataclass(frozen=True, slots=True)
class ReadingGroup:
    """The readings one frame gave that are bound to one visit: one PCD-01 message."""

    raw_frame_id: int
    encounter_id: int
    patient_class: str


class ExportsReader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def visits(self, patient_id: int) -> list[tuple[int, str, str, int, int | None]]:
        """(id, station, class, started, ended) of the patient's visits, oldest first."""
        return [
            (int(r[0]), str(r[1]), str(r[2]), int(r[3]), None if r[4] is None else int(r[4]))
            for r in self._conn.execute(
                "SELECT id, station, patient_class, started_wall_ns, ended_wall_ns"
                " FROM encounter WHERE patient_id = ? ORDER BY id",
                (patient_id,),
            )
        ]

    def readings(self, patient_id: int) -> list[ExportedReading]:
        rows = self._conn.execute(
            "SELECT e.id, e.station, e.patient_class, o.device_id, o.metric, o.value, o.unit,"
            " o.device_time, o.received_wall_ns FROM observation o"
            " JOIN encounter e ON e.id = o.encounter_id WHERE e.patient_id = ?"
            " ORDER BY o.received_wall_ns, o.id",
            (patient_id,),
        ).fetchall()
        return [ExportedReading(*row) for row in rows]

    def reading_groups(self, patient_id: int) -> list[ReadingGroup]:
        """The frames whose readings are bound to the patient's visits, each with its
        visit and that visit's patient class (PV1-2), in the order they were stored."""
        rows = self._conn.execute(
            "SELECT o.raw_frame_id, e.id, e.patient_class FROM observation o"
            " JOIN encounter e ON e.id = o.encounter_id WHERE e.patient_id = ?"
            " GROUP BY o.raw_frame_id, e.id ORDER BY MIN(o.id)",
            (patient_id,),
        ).fetchall()
        return [ReadingGroup(int(r[0]), int(r[1]), str(r[2])) for r in rows]
