"""What `edge-agent gateway status` reports: what the county has stored, and from whom.

`--json` prints the store's counts as docs/contracts.md "CLI" gives them (messages,
duplicates, rejected, per agent, with the 12-leads, pre-arrival notices, alerts and ER
replies received); the text adds the newest refused messages. Reading is an operation
of a named gateway user like any other (sync.gateway.operations: the running gateway
answers it, or this process under the store's lock), recorded in the gateway's trail;
the patients the notices name are shown to the ER's role only (read-inbound).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edge_agent import audit as edge_audit
from edge_agent.identifiers import AGENT_ID, IdentifierError
from sync.gateway import operations
from sync.gateway.store import GatewayStoreError, sqlite_path

RECENT_REJECTED = 5
SHOWN = 5  # of each list (notices, alerts, 12-leads) in the text


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    report: dict[str, Any]  # GatewayStore.status(): what `--json` prints
    rejected: tuple[dict[str, Any], ...]  # the newest refused messages, newest first

    def as_text(self) -> str:
        report = self.report
        lines = [
            f"messages stored: {report['messages']} ({report['observations']} observations)",
            f"duplicates answered again: {report['duplicates']}",
            f"rejected: {report['rejected']}",
        ]
        lines += [f"  {agent}: {n}" for agent, n in report["agents"].items()]
        for r in self.rejected:
            # A message refused for its topic has no agent, and one refused for its MSH-10
            # no control id: say so instead of printing None (the topic names where it
            # came in); one with no agent got no ACK, none can be addressed.
            sender = r["agent"] or f"topic {r.get('topic') or '?'}"
            what = r["control_id"] or "(no usable MSH-10)"
            answer = r["ack_code"] if r["agent"] else "no ACK"
            lines.append(f"  rejected {what} from {sender}: {answer} {r['reason']}")
        for a in report["prearrivals"][:SHOWN]:
            lines.append(
                f"  pre-arrival {a['control_id']} from {a['agent']}: {a['complaint']}"
                f" -> {a['destination'] or '?'} ETA {a['expected_at'] or '?'}"
            )
        for a in report["alerts"][:SHOWN]:
            lines.append(
                f"  alert {a['code']} {a['phase']} ({a['priority']}) from {a['agent']}:"
                f" {a['text'] or a['text_en'] or ''}"
            )
        for e in report["ecgs"][:SHOWN]:
            mark = "STEMI " if e["stemi"] else ""
            sheet = e["pdf_path"] or e["render_error"] or "-"
            lines.append(f"  {mark}12-lead {e['control_id']} from {e['agent']}: {sheet}")
        return "\n".join(lines)


def _existing(db: str) -> None:
    """A report reads a store: one that is not there is an error, never made anew."""
    path = sqlite_path(db)
    if not path.exists():
        raise GatewayStoreError(f"gateway store {path}: does not exist")


def read(
    db: str, key_file: str | None = None, *, as_user: tuple[str, str] | None = None
) -> GatewayStatus:
    """The status of the gateway store `db` (a path or URL), the patients it names
    opened with its key file (sync.gateway.keys) and shown to the ER's role only; the
    operation "status" done for `as_user` (sync.gateway.operations: the running
    gateway, or this process under the lock). GatewayStoreError when the store is not
    there, OpError when it cannot be read or the user may not."""
    _existing(db)
    answer = operations.perform(db, "status", {}, as_user=as_user, key_file=key_file)
    return GatewayStatus(answer["report"], tuple(answer["rejected"]))


@dataclass(frozen=True, slots=True)
class AuditReport:
    """`edge-agent gateway audit`: GatewayStore.audit_report(), what `--json` prints.
    A box's `refused` counts the batches that were not its own (sent while it was not
    enrolled, or without its right `mac`), with the last reason."""

    boxes: list[dict[str, Any]]

    @property
    def broken(self) -> bool:
        return any(box["breaks"] for box in self.boxes)

    @property
    def refused(self) -> bool:
        return any(box.get("refused") for box in self.boxes)

    def as_json(self) -> str:
        return json.dumps(self.boxes, ensure_ascii=False)

    def as_text(self) -> str:
        lines = []
        for box in self.boxes:
            head, refused = box["head"], box.get("refused")
            if head is not None:
                anchored = (
                    f"anchored to row {head['seq']} ({head['hash'][:16]}…, batch {head['batch']})"
                )
            elif refused is not None:
                anchored = f"not anchored: {refused['last_reason']}"
            else:
                anchored = "nothing anchored"
            lines.append(f"{box['agent']}: {anchored}")
            if refused is not None:
                lines.append(
                    f"  refused batches: {refused['batches']} (last: {refused['last_reason']})"
                )
            lines += [
                f"  break in batch {b['batch']} (rows {b['first_seq']} to {b['last_seq']}):"
                f" {b['problem']}"
                for b in box["breaks"]
            ]
        return "\n".join(lines) if lines else "no audit batches received"


def audit(
    db: str,
    agent: str | None = None,
    key_file: str | None = None,
    *,
    local: str | None = None,
    user: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 1000,
    as_user: tuple[str, str] | None = None,
) -> AuditReport | LocalTrail:
    """`gateway audit`: the boxes' anchored trails, or (`local` "verify-local" or
    "show-local") the gateway's own."""
    if local == "verify-local":
        return verify_local(db, key_file, as_user=as_user)
    if local == "show-local":
        return show_local(
            db, key_file, user=user, since=since, until=until, limit=limit, as_user=as_user
        )
    return boxes(db, agent, key_file, as_user=as_user)


def boxes(
    db: str,
    agent: str | None = None,
    key_file: str | None = None,
    *,
    as_user: tuple[str, str] | None = None,
) -> AuditReport:
    """Each box's anchored audit head and breaks in store `db` (only `agent`'s when
    given); GatewayStoreError for a store that is not there or an invalid agent id,
    OpError when it cannot be read or the user may not (role county-it)."""
    if agent is not None and not AGENT_ID.valid(agent):
        raise GatewayStoreError(f"--agent: {IdentifierError(AGENT_ID, agent)}")
    _existing(db)
    args = {} if agent is None else {"agent": agent}
    answer = operations.perform(db, "audit", args, as_user=as_user, key_file=key_file)
    return AuditReport(answer["boxes"])


@dataclass(frozen=True, slots=True)
class LocalTrail:
    """`gateway audit verify-local` / `show-local`: the gateway's own trail."""

    verdict: dict[str, Any] | None = None  # audit.Verdict.as_json()
    rows: tuple[dict[str, Any], ...] = ()

    @property
    def broken(self) -> bool:
        return self.verdict is not None and not self.verdict["intact"]

    @property
    def refused(self) -> bool:
        return False  # the gateway's own trail takes no batches

    def as_json(self) -> str:
        """The verdict, or one JSON object a row (a line each)."""
        if self.verdict is not None:
            return json.dumps(self.verdict)
        return "\n".join(json.dumps(r, ensure_ascii=False) for r in self.rows)

    def as_text(self) -> str:
        if self.verdict is not None:
            v = self.verdict
            if v["intact"]:
                return f"the gateway's audit trail is intact ({v['rows']} rows)"
            return f"the gateway's audit trail breaks: {v['problem']}"
        return "\n".join(edge_audit.as_text(r) for r in self.rows) or "no rows"


def verify_local(
    db: str, key_file: str | None = None, *, as_user: tuple[str, str] | None = None
) -> LocalTrail:
    """Whether the gateway's own trail is whole (edge_agent.audit.verify on it)."""
    _existing(db)
    verdict = operations.perform(db, "audit.verify-local", {}, as_user=as_user, key_file=key_file)
    return LocalTrail(verdict=verdict)


def show_local(
    db: str,
    key_file: str | None = None,
    *,
    user: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 1000,
    as_user: tuple[str, str] | None = None,
) -> LocalTrail:
    """The gateway's own trail, oldest first, filtered by user and time."""
    _existing(db)
    args: dict[str, Any] = {"limit": limit}
    args.update({k: v for k, v in (("user", user), ("since", since), ("until", until)) if v})
    answer = operations.perform(db, "audit.show-local", args, as_user=as_user, key_file=key_file)
    return LocalTrail(rows=tuple(answer["rows"]))
