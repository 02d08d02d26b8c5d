"""Personal data in the columns beside the residents': sealed with the store's keyring.

What a device or a person says about a patient lands in more places than `patient`: a
monitor's raw HL7 frame (its PID) and a 12-lead cart's file (the patient section), who
a monitor said the patient is (`frame_source`), the ER7 text of every outbox message
(PID), a pre-arrival notice's complaint and destination, the ER's replies on the down
topic (`notice`), a rejected identity frame's reason (it may quote the frame), the name
a 12-lead cart gave its file (the frame's `channel`: carts name files after the
patient), the cart's statements (free text) and the receiver's text of a refused
outbox message (it may quote the message). Each of those columns holds a sealed
blob (edge_agent.crypto.sealed.seal_bytes; AAD its `table.column`) and its row's
`sealed_key` names the key (migrations 12 and 14); a column sealed later than the rest
of its row has a key id column of its own (`raw_frame.channel_key`, `outbox.ack_key`),
so rows sealed before it are found by that column being NULL.

A writer opened without the keyring (a test's store, a command run by a user who cannot
read the key file while no daemon runs) never loses what a device sent: it stores the
value plain with `sealed_key` NULL, and the sealing pass (edge_agent.key_rotation) seals
it once a process with the keys runs. The daemon never starts without its keys, so on a
box in service every such value is sealed in the transaction that writes it. Reading a
sealed value without the keyring raises PersonalDataLocked, never gives ciphertext.

`SEALED_TABLES` is what the sealing pass walks: per table, the columns it seals and
which rows need them (all, those with a value, or those of drivers whose declaration
says their frames carry identity).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from edge_agent.crypto import sealed
from edge_agent.crypto.keyring import Keyring
from edge_agent.crypto.suites import SealError
from edge_agent.store.patients import PLAIN, PersonalDataLocked


class Sealing:
    """The store's keyring as a repository seals and opens its columns with it."""

    def __init__(self, keys: Keyring | None, no_keys: str | None = None) -> None:
        self.keys = keys
        self._no_keys = no_keys

    @property
    def key_id(self) -> str | None:
        """The key id a value written now is sealed under; None: written plain."""
        return None if self.keys is None else self.keys.active_id

    def data(self, place: str, value: bytes) -> bytes:
        """`value` sealed for `place` ("raw_frame.data"), or itself without keys."""
        return value if self.keys is None else sealed.seal_bytes(self.keys, place, value)

    def text(self, place: str, value: str) -> bytes | str:
        """Text sealed for `place` (a blob), or the text itself without keys."""
        if self.keys is None:
            return value
        return sealed.seal_bytes(self.keys, place, value.encode("utf-8"))

    def maybe_text(self, place: str, value: str | None) -> bytes | str | None:
        return None if value is None else self.text(place, value)

    def open_data(self, place: str, stored: bytes | str, key_id: str | None) -> bytes:
        """A stored value as it was given: opened when `key_id` says it is sealed."""
        if key_id is None:
            return stored.encode("utf-8") if isinstance(stored, str) else bytes(stored)
        if self.keys is None:
            raise PersonalDataLocked(
                "personal data stays sealed in a store opened without keys"
                f" ({self._no_keys or 'none given'})"
            )
        if not isinstance(stored, bytes):
            raise SealError(f"{place}: sealed under {key_id} but stored as text")
        return sealed.open_bytes(self.keys, place, stored)

    def open_text(self, place: str, stored: bytes | str, key_id: str | None) -> str:
        if key_id is None and isinstance(stored, str):
            return stored
        raw = self.open_data(place, stored, key_id)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:  # text we sealed opens to UTF-8; only an edit gets here
            raise SealError(f"{place}: opened to bytes that are not UTF-8") from None

    def open_maybe_text(
        self, place: str, stored: bytes | str | None, key_id: str | None
    ) -> str | None:
        return None if stored is None else self.open_text(place, stored, key_id)


@dataclass(frozen=True, slots=True)
class SealedTable:
    """Columns of one table the sealing pass keeps under the active key.

    `column`: the sealed column; `text`: it holds text (opened to str), else bytes.
    `packed`: plain columns whose values are sealed together into `column` as one JSON
    array (who a monitor named: one seal, one open, not three), NULL once sealed.
    `where`: which rows hold personal data (SQL); `identity`: only rows of drivers whose
    frames carry identity. `key_column`: the column naming the key id (NULL: plain);
    the columns of one table that share it are sealed and re-sealed together."""

    table: str
    column: str
    text: bool = True
    packed: tuple[str, ...] = ()
    where: str = "1"
    identity: bool = False
    key_column: str = "sealed_key"


SOURCE_PATIENT = ("patient_identifier", "patient_name", "patient_national_id")

SEALED_TABLES: tuple[SealedTable, ...] = (
    SealedTable("raw_frame", "data", text=False, identity=True),
    SealedTable(
        "frame_source",
        "patient_sealed",
        packed=SOURCE_PATIENT,
        where="(patient_identifier IS NOT NULL OR patient_sealed IS NOT NULL)",
    ),
    SealedTable("outbox", "payload", where="payload IS NOT NULL"),
    SealedTable("prealert", "complaint"),
    SealedTable("prealert", "destination", where="destination IS NOT NULL"),
    SealedTable("notice", "payload"),
    SealedTable("quarantine", "reason", identity=True),
    SealedTable("quarantine_tally", "last_reason", identity=True),
    # Migration 14: a 12-lead file's name (`channel`) and the cart's statements.
    SealedTable(
        "raw_frame", "channel", where="channel IS NOT NULL", identity=True, key_column="channel_key"
    ),
    SealedTable("statement", "text"),
    # ... and the receiver's text of a refused message (it may quote the message).
    SealedTable(
        "outbox",
        "ack_text",
        where="ack_text IS NOT NULL AND status = 'rejected'",
        key_column="ack_key",
    ),
)


def _siblings(t: SealedTable) -> list[SealedTable]:
    """The entries sealed under the same key id column as `t` (a prealert's two)."""
    return [s for s in SEALED_TABLES if (s.table, s.key_column) == (t.table, t.key_column)]


def _row_table(t: SealedTable) -> SealedTable:
    """One entry for the rows of a key id column: those any of its columns needs."""
    siblings = _siblings(t)
    wheres = {s.where for s in siblings}
    where = t.where if len(wheres) == 1 else " OR ".join(f"({w})" for w in sorted(wheres))
    return SealedTable(t.table, t.column, t.text, t.packed, f"({where})", t.identity, t.key_column)


# One entry per key id column: what counts and re-seals rows.
ROW_TABLES: tuple[SealedTable, ...] = tuple(
    _row_table(t)
    for i, t in enumerate(SEALED_TABLES)
    if (t.table, t.key_column) not in {(u.table, u.key_column) for u in SEALED_TABLES[:i]}
)


def pack(values: Sequence[str | None]) -> str:
    """Several plain values as the one text `SealedTable.packed` seals."""
    return json.dumps(list(values), ensure_ascii=False)


def unpack(text: str, count: int) -> list[str | None]:
    values = json.loads(text)
    if not isinstance(values, list) or len(values) != count:
        raise SealError(f"sealed values: expected a list of {count}")
    return [None if v is None else str(v) for v in values]


def _scope(t: SealedTable, identity_drivers: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    if t.identity:
        marks = ", ".join("?" * len(identity_drivers))
        return f"{t.where} AND driver IN ({marks})", tuple(identity_drivers)
    return t.where, ()


def stale_count(
    conn: sqlite3.Connection, t: SealedTable, active_id: str, identity_drivers: Sequence[str]
) -> int:
    """Rows of `t` with personal data not sealed under `active_id` (plain ones too)."""
    scope, params = _scope(t, identity_drivers)
    key = t.key_column
    row = conn.execute(
        f"SELECT COUNT(*) FROM {t.table} WHERE {scope} AND ({key} IS NULL OR {key} != ?)",
        (*params, active_id),
    ).fetchone()
    return int(row[0])


def values_per_key(
    conn: sqlite3.Connection, t: SealedTable, identity_drivers: Sequence[str]
) -> dict[str, int]:
    """Values of `t` per key id (`plain`: not sealed yet)."""
    scope, params = _scope(t, identity_drivers)
    rows = conn.execute(
        f"SELECT COALESCE({t.key_column}, ?), COUNT(*) FROM {t.table} WHERE {scope} GROUP BY 1",
        (PLAIN, *params),
    ).fetchall()
    return {str(k): int(n) for k, n in rows}


def reseal_stale(
    conn: sqlite3.Connection,
    sealing: Sealing,
    t: SealedTable,
    limit: int,
    identity_drivers: Sequence[str],
) -> int:
    """Up to `limit` rows of `t` sealed under the active key (opened with the key they
    name, or read plain); how many. Inside the caller's transaction.

    Columns that share a key id column (a prealert's two) are re-sealed together: `t`
    is the first of them (ROW_TABLES)."""
    keys = sealing.keys
    if keys is None:
        raise PersonalDataLocked("the sealing pass needs the keyring")
    scope, params = _scope(t, identity_drivers)
    siblings = _siblings(t)
    columns = [c for s in siblings for c in (s.column, *s.packed)]
    key = t.key_column
    rows = conn.execute(
        f"SELECT rowid, {key}, {', '.join(columns)} FROM {t.table} WHERE {scope}"
        f" AND ({key} IS NULL OR {key} != ?) ORDER BY rowid LIMIT ?",
        (*params, keys.active_id, limit),
    ).fetchall()
    for rowid, key_id, *stored in rows:
        by_column = dict(zip(columns, stored, strict=True))
        update: dict[str, bytes | None] = {}
        for s in siblings:
            place = f"{s.table}.{s.column}"
            value = by_column[s.column]
            if s.packed:
                if key_id is None:
                    value = pack([by_column[c] for c in s.packed])
                update.update(dict.fromkeys(s.packed))
            if value is None:
                update[s.column] = None
                continue
            plain = (
                sealing.open_text(place, value, key_id).encode("utf-8")
                if s.text
                else sealing.open_data(place, value, key_id)
            )
            update[s.column] = sealed.seal_bytes(keys, place, plain)
        assignments = ", ".join(f"{c} = ?" for c in update)
        conn.execute(
            f"UPDATE {t.table} SET {assignments}, {key} = ? WHERE rowid = ?",
            (*update.values(), keys.active_id, rowid),
        )
    return len(rows)
