"""Audit batches: the box's audit rows sent to the county gateway to be anchored
(docs/contracts.md "Audit batches", docs/security.md "Audit trail").

A batch is JSON (RFC 8259, UTF-8) on `edge/v1/{agent}/audit`:
{"batch": MSH-10-like id, "agent": id, "rows": [row, ...]}, each row every field of
`edge_agent.store.AuditRow` with the two hashes in lower-case hex, so that the gateway
recomputes each row's hash with the suite the row names (SHA-256, or SM3 of
GB/T 32905-2016) exactly as the box did. No personal data: `subject` and `person` are
row ids, `reason` was masked when the row was written (edge_agent.audit.redacted).

Pure: building, parsing (hostile input: one line naming what is wrong, nothing of the
payload quoted) and checking a batch against an anchored head.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edge_agent.audit import GENESIS, row_hash
from edge_agent.crypto.suites import SUITES
from edge_agent.identifiers import AGENT_ID, CONTROL_ID, shown
from edge_agent.store import AuditRow

MAX_ROWS = 200  # rows in one batch (~100 kB of JSON: well under the broker's limit)
MAX_BATCH_BYTES = 1_000_000

_FIELDS: tuple[tuple[str, type], ...] = tuple(
    (f.name, int if f.name in ("seq", "wall_ns", "person") else str)
    for f in dataclasses.fields(AuditRow)
)
_OPTIONAL = frozenset({"subject", "person", "reason"})
_HASHES = frozenset({"prev_hash", "hash"})


class BatchError(ValueError):
    """A batch that is not one: one line, quoting nothing of the payload but its id."""


@dataclass(frozen=True, slots=True)
class AuditBatch:
    batch: str
    agent: str
    rows: tuple[AuditRow, ...]


def row_json(row: AuditRow) -> dict[str, Any]:
    fields = dataclasses.asdict(row)
    fields["prev_hash"] = row.prev_hash.hex()
    fields["hash"] = row.hash.hex()
    return fields


def batch_payload(agent: str, batch_id: str, rows: Sequence[AuditRow]) -> bytes:
    body = {"batch": batch_id, "agent": agent, "rows": [row_json(r) for r in rows]}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _row_from(index: int, value: object) -> AuditRow:
    if not isinstance(value, dict):
        raise BatchError(f"rows[{index}] is not an object")
    if set(value) != {name for name, _ in _FIELDS}:
        raise BatchError(f"rows[{index}]: fields are not those of an audit row")
    fields: dict[str, Any] = {}
    for name, kind in _FIELDS:
        item = value[name]
        if item is None and name in _OPTIONAL:
            fields[name] = None
            continue
        if not isinstance(item, kind) or isinstance(item, bool):
            raise BatchError(f"rows[{index}].{name}: wrong type")
        if isinstance(item, str) and name in _HASHES:
            try:
                digest = bytes.fromhex(item)
            except ValueError:
                raise BatchError(f"rows[{index}].{name}: not hex") from None
            if len(digest) != len(GENESIS) or item != digest.hex():
                raise BatchError(f"rows[{index}].{name}: not 64 lower-case hex digits")
            item = digest
        fields[name] = item
    row = AuditRow(**fields)
    if row.suite not in SUITES:
        raise BatchError(f"rows[{index}]: unknown suite {shown(row.suite)}")
    if not 1 <= row.seq < 2**63:
        raise BatchError(f"rows[{index}].seq: {row.seq} is not a row number")
    return row


def parse_batch(payload: bytes, agent: str) -> AuditBatch:
    """The batch in `payload` from `agent` (the topic's); BatchError if it is not one."""
    if len(payload) > MAX_BATCH_BYTES:
        raise BatchError(f"batch is {len(payload)} bytes, more than {MAX_BATCH_BYTES}")
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BatchError("batch is not UTF-8 JSON") from None
    if not isinstance(body, dict) or set(body) != {"batch", "agent", "rows"}:
        raise BatchError('batch is not an object of "batch", "agent" and "rows"')
    batch_id, sender, rows = body["batch"], body["agent"], body["rows"]
    if not isinstance(batch_id, str) or not CONTROL_ID.valid(batch_id):
        raise BatchError("batch id is not a valid message id")
    if not isinstance(sender, str) or not AGENT_ID.valid(sender) or sender != agent:
        raise BatchError(f"batch {batch_id}: agent is not the topic's {agent!r}")
    if not isinstance(rows, list) or not 1 <= len(rows) <= MAX_ROWS:
        raise BatchError(f"batch {batch_id}: rows is not a list of 1 to {MAX_ROWS}")
    return AuditBatch(batch_id, agent, tuple(_row_from(i, r) for i, r in enumerate(rows)))


def break_in(
    rows: Sequence[AuditRow],
    head: tuple[int, bytes] | None,
    anchored: Callable[[int], bytes | None],
) -> str | None:
    """Why `rows` do not go on from the anchored `head` (seq, hash), None when they do:
    each row's hash its content's, each row linked to the one before, a row at or below
    the head the very row anchored before (`anchored(seq)` its hash), the first row
    after the head linked to it. No head yet: the first batch is taken as it chains."""
    previous: AuditRow | None = None
    for row in rows:
        if row_hash(row) != row.hash:
            return f"row {row.seq}: does not match its hash (edited)"
        if previous is not None and (row.seq != previous.seq + 1 or row.prev_hash != previous.hash):
            return f"row {row.seq}: not linked to row {previous.seq} before it in the batch"
        previous = row
        if head is None:
            continue
        head_seq, head_hash = head
        if row.seq <= head_seq:
            if anchored(row.seq) not in (None, row.hash):
                return f"row {row.seq}: not the row anchored before (rewritten on the box)"
        elif row.seq == head_seq + 1 and row.prev_hash != head_hash:
            return (
                f"row {row.seq}: not linked to the anchored head, row {head_seq}"
                " (rewritten or cut on the box)"
            )
        elif row.seq > head_seq + 1 and row is rows[0]:
            return f"rows {head_seq + 1} to {row.seq - 1} never came (cut on the box)"
    if head is not None and rows and rows[-1].seq < head[0]:
        return f"the trail ends at row {rows[-1].seq}, below the anchored head {head[0]} (cut)"
    return None
