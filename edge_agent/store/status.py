"""Reports across aggregates: how many readings were recorded, chosen for upload and
delivered, and how long delivery took (the demo's summary, bench/uplink.py).

Counts of one aggregate are its repository's (`outbox.counts`, `quarantine.counts`,
`frames.observation_count`); what `edge-agent status` puts together is
edge_agent.status.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReadingDelivery:
    """Readings with a value: recorded, chosen for upload, and of those ACKed AA."""

    recorded: int
    chosen: int
    delivered: int


class StatusReader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def reading_delivery(self) -> ReadingDelivery:
        """A fast monitor's numerics go up once a second (recorder upload policy); the
        others stay on the box for its own trend, so chosen <= recorded by design."""
        row = self._conn.execute(
            "SELECT COUNT(*), COUNT(o.id), COUNT(CASE WHEN o.status = 'delivered' THEN 1 END)"
            " FROM observation ob LEFT JOIN outbox o ON o.raw_frame_id = ob.raw_frame_id"
            " WHERE ob.value IS NOT NULL"
        ).fetchone()
        return ReadingDelivery(int(row[0]), int(row[1]), int(row[2]))

    def delivery_latencies_ms(self) -> list[float]:
        """Reading received -> ACK AA, for messages received and acked in the same boot."""
        rows = self._conn.execute(
            "SELECT (o.delivered_mono_ns - f.received_mono_ns) / 1e6 FROM outbox o"
            " JOIN raw_frame f ON f.id = o.raw_frame_id"
            " WHERE o.status = 'delivered' AND o.delivered_boot_id = f.boot_id"
        ).fetchall()
        return [float(r[0]) for r in rows]
