"""What `edge-agent gateway status` reports: what the county has stored, and from whom.

`--json` prints the store's counts as docs/contracts.md "CLI" gives them (messages,
duplicates, rejected, per agent, with the 12-leads, pre-arrival notices, alerts and ER
replies received); the text adds the newest refused messages. Read on a read-only
connection: a running gateway keeps writing meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_agent.identifiers import AGENT_ID, IdentifierError
from sync.gateway.store import GatewayStore, GatewayStoreError

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


def read(db: str, key_file: str | None = None) -> GatewayStatus:
    """The status of the gateway store `db` (a path or URL), the patients it names
    opened with its key file (sync.gateway.keys); GatewayStoreError when it cannot be
    opened, or the key file cannot open it."""
    store = GatewayStore.open_readonly(db, key_file=key_file)
    try:
        return GatewayStatus(store.status(), tuple(store.recent_rejected(RECENT_REJECTED)))
    finally:
        store.close()


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


def audit(db: str, agent: str | None = None, key_file: str | None = None) -> AuditReport:
    """Each box's anchored audit head and breaks in store `db` (only `agent`'s when
    given); GatewayStoreError for a store that cannot be opened or an invalid agent id."""
    if agent is not None and not AGENT_ID.valid(agent):
        raise GatewayStoreError(f"--agent: {IdentifierError(AGENT_ID, agent)}")
    store = GatewayStore.open_readonly(db, key_file=key_file)
    try:
        return AuditReport(store.audit_report(agent))
    finally:
        store.close()
