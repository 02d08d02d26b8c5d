"""The audit trail's rows (`audit`, migration 11): appended only, by edge_agent.audit,
which computes each row's hash; SQLite's triggers refuse UPDATE and DELETE."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    wall_ns: int
    time: str
    user: str
    role: str
    station: str
    action: str
    op: str
    subject: str | None
    person: int | None
    outcome: str
    reason: str | None
    suite: str
    prev_hash: bytes
    hash: bytes


# The columns are AuditRow's fields, in its order.
_FIELDS = [f.name for f in dataclasses.fields(AuditRow)]
_COLUMNS = ", ".join(_FIELDS)


def _row(r: tuple[object, ...]) -> AuditRow:
    return AuditRow(*r)  # type: ignore[arg-type]


class AuditReader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def last(self) -> AuditRow | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM audit ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else _row(row)

    def in_order(self, batch: int = 1000) -> Iterator[AuditRow]:
        """Every row by seq, read in batches (a chain of millions fits no list)."""
        after = -(2**63)
        while True:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after, batch)
            ).fetchall()
            if not rows:
                return
            for r in rows:
                yield _row(r)
            after = rows[-1][0]

    def count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0])

    def count_after(self, seq: int) -> int:
        """Rows after row `seq` (all of them for 0): those still to be anchored."""
        row = self._conn.execute("SELECT COUNT(*) FROM audit WHERE seq > ?", (seq,)).fetchone()
        return int(row[0])

    def after(self, seq: int, limit: int) -> list[AuditRow]:
        """Up to `limit` rows after row `seq`, by seq (an audit batch for the gateway)."""
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        ).fetchall()
        return [_row(r) for r in rows]

    def find(
        self,
        *,
        person: int | None = None,
        user: str | None = None,
        since_wall_ns: int | None = None,
        until_wall_ns: int | None = None,
        limit: int = 1000,
    ) -> list[AuditRow]:
        """Rows matching every filter given, oldest first; a person's include the reads of
        everyone's records (`patients list`: subject `patients:*`)."""
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM audit"
            " WHERE (?1 IS NULL OR person = ?1 OR subject = 'patients:*') AND (?2 IS NULL OR user = ?2)"
            " AND (?3 IS NULL OR wall_ns >= ?3) AND (?4 IS NULL OR wall_ns < ?4)"
            " ORDER BY seq LIMIT ?5",
            (person, user, since_wall_ns, until_wall_ns, limit),
        ).fetchall()
        return [_row(r) for r in rows]


class Audit(AuditReader):
    def append(self, row: AuditRow) -> None:
        self._conn.execute(
            f"INSERT INTO audit ({_COLUMNS}) VALUES ({', '.join('?' * len(_FIELDS))})",
            dataclasses.astuple(row),
        )
