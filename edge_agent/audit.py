"""The audit trail: who did what to which record, when, where, and how it ended;
append-only and hash-chained (docs/security.md, "Audit trail").

Every row's hash is the crypto suite's digest (SHA-256 or SM3, the suite named in the
row) of the previous row's hash followed by the row's canonical encoding (a compact
JSON array of its fields in a fixed order, seq first; UTF-8). The first row's previous
hash is 32 zero bytes. Because seq is inside what is hashed, an edited, inserted,
removed or reordered row breaks the chain at that row. A cut tail leaves a whole chain,
so the head (seq, hash) is also kept beside it: in `meta` (`audit.head`), written in
the same transaction as the row. That one anchor only sees a cut made by someone who
did not also rewrite `meta`; the county gateway will keep the same head (`head()` is
what a box sends), and `verify` takes such anchors too.

Which record-keeping this serves: 《中华人民共和国个人信息保护法》(PIPL) Art. 51 and
55, GB/T 35273-2020 §7.4 and §11.5 (records of access to personal information), and
GB/T 22239-2019 (等级保护 2.0) §8.1.4.3 security audit: date and time, user, type of
event, success or failure, and protection of the records against deletion and change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from edge_agent.clock import wall_datetime
from edge_agent.crypto.suites import SUITES
from edge_agent.crypto.suites import suite as suite_named
from edge_agent.model import Refused
from edge_agent.national_id import NationalIdError
from edge_agent.national_id import parse as parse_national_id
from edge_agent.store import AuditRow, PersonalDataLocked, StoreReader, StoreWriter

GENESIS = bytes(32)
HEAD_KEY = "audit.head"
# The last head the county gateway acknowledged (ACK AA to an audit batch, sync.uplink).
GATEWAY_ANCHOR_KEY = "audit.gateway_anchor"
# ... and when the box took that ACK (its wall clock, ns): `edge-agent status` shows it.
GATEWAY_ANCHOR_TIME_KEY = "audit.gateway_anchor_wall_ns"
MAX_SHOWN = 20_000  # rows one `audit show` returns (~7 MB: within control.MAX_ANSWER)

OK = "ok"
REFUSED = "refused"
FAILED = "failed"

# What an operation is, as the trail says it (the ops of edge_agent.operations).
# ping, users.touch and users.session are not recorded: they show nothing and change
# nothing a person did (a screen's heartbeat would fill the trail).
ACTIONS: dict[str, str] = {
    "patients.add": "create",
    "patients.list": "read",
    "visit.start": "change",
    "visit.end": "change",
    "visit.observe": "change",
    "readings.assign": "change",
    "readings.unassigned": "read",
    "alerts.ack": "change",
    "prealert": "create",
    "devices.pair": "change",
    "devices.forget": "change",
    "users.add": "create",
    "users.list": "read",
    "users.disable": "change",
    "users.reset-pin": "change",
    "users.sign-in": "sign-in",
    "audit.show": "read",
    "audit.verify": "read",
    "keys.rotate": "key-rotation",
    "keys.reseal": "key-rotation",
    "kiosk.sign-in": "sign-in",
    "consent.give": "create",
    "consent.withdraw": "change",
    "consent.show": "read",
    "export": "export",
    "followup": "read",
}
SIGN_IN_FAILED = "sign-in-failed"
KEY_ROTATION = "key-rotation"  # for `keys rotate` and `keys reseal`
EXPORT = "export"  # for `export`
# kiosk.card-session: a screen's poll; the hand-over of a card's session is recorded
# (action hand-over), and the card's sign-in by the reader itself (edge_agent.kiosk_card).
NOT_AUDITED = frozenset({"ping", "users.touch", "users.session", "kiosk.card-session"})


class _ChainRows(Protocol):
    def last(self) -> AuditRow | None: ...

    def in_order(self) -> Iterator[AuditRow]: ...


class _ChainRowsWriter(_ChainRows, Protocol):
    def append(self, row: AuditRow) -> None: ...


class _HeadStore(Protocol):
    def get(self, key: str) -> str | None: ...


class _HeadStoreWriter(_HeadStore, Protocol):
    def set(self, key: str, value: str) -> None: ...


class TrailReader(Protocol):
    """Where a chain is kept: its rows, and the key-value place of its head. The box's
    store (`audit`, `meta`); the county gateway keeps its own trail the same way
    (sync.gateway.store: `gateway_audit`, `gateway_meta`)."""

    @property
    def audit(self) -> _ChainRows: ...

    @property
    def meta(self) -> _HeadStore: ...


class TrailWriter(Protocol):
    @property
    def audit(self) -> _ChainRowsWriter: ...

    @property
    def meta(self) -> _HeadStoreWriter: ...


@dataclass(frozen=True, slots=True)
class Event:
    """One thing to record; the trail adds seq, time, suite and the hashes."""

    user: str
    role: str
    station: str
    action: str
    op: str
    outcome: str
    subject: str | None = None
    person: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Anchor:
    """A (seq, hash) the chain must pass through; `head`: it must end there too."""

    seq: int
    hash: bytes
    source: str  # "meta" (the head on the box), "gateway" (the head the gateway anchored)
    head: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    rows: int
    first_bad: int | None = None  # the seq of the first row that does not verify
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.first_bad is None

    def as_json(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "rows": self.rows,
            "first_bad_seq": self.first_bad,
            "problem": self.problem,
        }


def canonical(row: AuditRow) -> bytes:
    """What is hashed after the previous hash: every field but the two hashes, in
    AuditRow's order (seq first; that order is part of every stored hash)."""
    fields = dataclasses.astuple(row)[:-2]
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def row_hash(row: AuditRow) -> bytes:
    return suite_named(row.suite).digest(row.prev_hash + canonical(row))


def append(
    store: TrailWriter, event: Event, *, suite: str, wall_ns: int, timezone: str
) -> AuditRow:
    """Add `event` at the end of the chain and move the head; in the caller's
    transaction, with the change it records."""
    seq, prev = _next_link(store)
    unhashed = AuditRow(
        seq=seq,
        wall_ns=wall_ns,
        time=wall_datetime(wall_ns, timezone).isoformat(timespec="milliseconds"),
        user=event.user,
        role=event.role,
        station=event.station,
        action=event.action,
        op=event.op,
        subject=event.subject,
        person=event.person,
        outcome=event.outcome,
        reason=event.reason,
        suite=suite,
        prev_hash=prev,
        hash=b"",
    )
    row = _with_hash(unhashed)
    store.audit.append(row)
    store.meta.set(HEAD_KEY, f"{row.seq}:{row.hash.hex()}")
    return row


def _next_link(store: TrailReader) -> tuple[int, bytes]:
    """The seq and previous hash of the next row. When the stored head is ahead of the
    last row (a cut tail), the chain goes on from the head, so the gap stays visible
    to every later `verify` instead of being covered by new rows."""
    last = store.audit.last()
    seq, prev = (0, GENESIS) if last is None else (last.seq, last.hash)
    for anchor in stored_anchors(store):
        if anchor.seq > seq and len(anchor.hash) == len(GENESIS):
            seq, prev = anchor.seq, anchor.hash
    return seq + 1, prev


def _with_hash(row: AuditRow) -> AuditRow:
    return dataclasses.replace(row, hash=row_hash(row))


def person_of(store: StoreReader, subject: str | None) -> int | None:
    """The patient row an operation's subject concerns: `patient:N`, or the patient of
    `encounter:N`."""
    kind, _, number = (subject or "").partition(":")
    if not number.isdigit():
        return None
    if kind == "patient":
        return int(number)
    if kind == "encounter":
        encounter = store.patients.encounter(int(number))
        return None if encounter is None else encounter.patient_id
    return None


def head(store: TrailReader) -> Anchor | None:
    """The chain's last (seq, hash): what the box sends the gateway to anchor."""
    last = store.audit.last()
    return None if last is None else Anchor(last.seq, last.hash, "chain", head=True)


def stored_anchors(store: TrailReader) -> list[Anchor]:
    """The head kept in `meta` beside the chain (absent before the first row), and the
    last head the gateway anchored (absent before its first ACK AA): the chain must
    pass through it."""
    anchors = []
    for key, source, is_head in ((HEAD_KEY, "meta", True), (GATEWAY_ANCHOR_KEY, "gateway", False)):
        text = store.meta.get(key)
        if text is None:
            continue
        seq, _, digest = text.partition(":")
        try:
            anchors.append(Anchor(int(seq), bytes.fromhex(digest), source, head=is_head))
        except ValueError:
            anchors.append(Anchor(0, b"", f"{source} (unreadable {key!r})", head=is_head))
    return anchors


def gateway_anchor(store: TrailReader) -> Anchor | None:
    """The head the gateway last anchored; None before the first (or if unreadable)."""
    for anchor in stored_anchors(store):
        if anchor.source == "gateway":
            return anchor
    return None


def record_gateway_anchor(
    store: StoreWriter, seq: int, digest: bytes, *, wall_ns: int | None = None
) -> None:
    """The gateway acknowledged the chain up to row `seq` (hash `digest`), at `wall_ns`."""
    known = gateway_anchor(store)
    if known is None or seq >= known.seq:
        store.meta.set(GATEWAY_ANCHOR_KEY, f"{seq}:{digest.hex()}")
        if wall_ns is not None:
            store.meta.set(GATEWAY_ANCHOR_TIME_KEY, str(wall_ns))


def gateway_anchor_wall_ns(store: StoreReader) -> int | None:
    """When the box took the gateway's last anchor; None before (or if unreadable)."""
    text = store.meta.get(GATEWAY_ANCHOR_TIME_KEY)
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def verify(store: TrailReader, anchors: Iterable[Anchor] | None = None) -> Verdict:
    """Whether the chain is whole: each row in seq order 1, 2, 3 ..., each linked to the
    one before, each hash its content's, and every anchor on it (the `meta` head by
    default). The first row that fails is named with why."""
    return check_chain(
        store.audit.in_order(), stored_anchors(store) if anchors is None else anchors
    )


def check_chain(rows: Iterator[AuditRow], anchors: Iterable[Anchor]) -> Verdict:
    """`verify` over rows in seq order (pure: tests give it rows)."""
    wanted = sorted(anchors, key=lambda a: (a.seq, a.head))
    seqs = {a.seq for a in wanted}
    expected, prev, count = 1, GENESIS, 0
    seen: dict[int, bytes] = {}
    for row in rows:
        if row.seq != expected:
            return Verdict(count, expected, f"row {expected} is missing (deleted)")
        if row.suite not in SUITES:
            return Verdict(count, row.seq, f"row {row.seq}: unknown suite {row.suite!r}")
        self_consistent = row_hash(row) == row.hash
        if row.prev_hash != prev or not self_consistent:
            return _first_bad(row, count, linked=row.prev_hash == prev, whole=self_consistent)
        if row.seq in seqs:
            seen[row.seq] = row.hash
        prev, expected, count = row.hash, expected + 1, count + 1
    last = expected - 1
    for anchor in wanted:
        seq = anchor.seq
        if seq > last:
            return Verdict(
                count,
                last + 1,
                f"rows {last + 1} to {seq} are missing: the {anchor.source} anchor says the"
                f" trail reached row {seq} (tail cut)",
            )
        if seen.get(seq) != anchor.hash:
            return Verdict(count, seq, f"row {seq}: not the row the {anchor.source} anchor holds")
        if anchor.head and seq < last:
            return Verdict(
                count,
                seq + 1,
                f"row {seq + 1}: after the head the {anchor.source} anchor holds (inserted)",
            )
    return Verdict(count)


def _first_bad(row: AuditRow, count: int, *, linked: bool, whole: bool) -> Verdict:
    """Which row a break at `row` shows to be the first bad one, and why."""
    seq = row.seq
    if whole and seq > 1:
        # Row seq is as it was written (its hash covers its prev_hash), so the row
        # before it is not the one it was chained to.
        return Verdict(
            count,
            seq - 1,
            f"row {seq - 1} is not the row that row {seq} was chained to (inserted or replaced)",
        )
    if row_hash(dataclasses.replace(row, seq=seq - 1)) == row.hash:
        return Verdict(count, seq - 1, f"row {seq - 1} was inserted (the rows after it renumbered)")
    if row_hash(dataclasses.replace(row, seq=seq + 1)) == row.hash:
        return Verdict(count, seq, f"row {seq} is missing (deleted, the rows after it renumbered)")
    if not linked:
        return Verdict(count, seq, f"row {seq}: not linked to the row before it")
    return Verdict(count, seq, f"row {seq}: does not match its hash (edited)")


_LONG_NUMBER = re.compile(r"\d{6,}[0-9Xx]?")


def redacted(reason: str, args: Mapping[str, Any]) -> str:
    """`reason` without what identifies a person: the request's own text arguments
    (a national id, a name, a phone, a PIN) named instead of quoted, and any run of 6
    or more digits masked. The trail is append-only: what goes in stays in."""
    for key, value in args.items():
        if isinstance(value, str) and len(value) >= 2:
            reason = reason.replace(value, f"<{key}>")
    return _LONG_NUMBER.sub("<number>", reason)


def attempted(
    store: StoreReader, op: str, args: Mapping[str, Any]
) -> tuple[str | None, int | None]:
    """What a refused or failed request was about (subject, person), from its arguments:
    a read of everyone's list, or the resident a national id names."""
    if op == "patients.list":
        return "patients:*", None
    number = args.get("national_id")
    if not isinstance(number, str):
        return None, None
    try:
        found = store.patients.by_national_id(parse_national_id(number).number)
    except (NationalIdError, PersonalDataLocked):  # no keys here: the person stays unnamed
        return None, None
    return (None, None) if found is None else (f"patient:{found.id}", found.id)


# --- audit show ---------------------------------------------------------------------


def parse_time(text: str, timezone: str, what: str) -> int:
    """An ISO 8601 date or time (naive: in the box's zone) as wall ns; Refused if not."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Refused(f"audit show {what}: {text[:40]!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=wall_datetime(0, timezone).tzinfo)
    return int(when.timestamp() * 1e9)


def person_id(store: StoreReader, person: str) -> int:
    """A patient row id from `--person`: the id itself, or a national id number."""
    if person.isdigit() and len(person) < 15:
        return int(person)
    try:
        parsed = parse_national_id(person)
    except NationalIdError as exc:
        raise Refused(f"audit show --person: {exc}") from None
    found = store.patients.by_national_id(parsed.number)
    if found is None:
        raise Refused("audit show --person: no resident with this national id")
    return found.id


def show(
    store: StoreReader,
    *,
    timezone: str,
    person: str | None = None,
    user: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """The rows matching every filter, oldest first, as `audit show` prints them."""
    if not 1 <= limit <= MAX_SHOWN:
        raise Refused(f"audit show --limit: {limit} is not between 1 and {MAX_SHOWN}")
    rows = store.audit.find(
        person=None if person is None else person_id(store, person),
        user=user,
        since_wall_ns=None if since is None else parse_time(since, timezone, "--since"),
        until_wall_ns=None if until is None else parse_time(until, timezone, "--until"),
        limit=limit,
    )
    return [as_json(r) for r in rows]


def as_json(row: AuditRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "time": row.time,
        "user": row.user,
        "role": row.role,
        "station": row.station,
        "action": row.action,
        "op": row.op,
        "subject": row.subject,
        "person": row.person,
        "outcome": row.outcome,
        "reason": row.reason,
        "suite": row.suite,
        "hash": row.hash.hex(),
    }


def as_text(row: dict[str, Any]) -> str:
    outcome = row["outcome"] + (f" ({row['reason']})" if row["reason"] else "")
    subject = row["subject"] or "-"
    return (
        f"{row['seq']:>6} {row['time']} {row['user']} [{row['role']}] @{row['station']}"
        f" {row['action']} {row['op']} {subject}: {outcome}"
    )
