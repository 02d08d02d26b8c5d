"""What `edge-agent status` reports: is the data safe, and did it reach the county?

`report` is the whole answer (`status --json` prints it), `render_text` the same for
people; the command only opens the store read-only and prints. Run by a user who cannot
read the key file, the parts that quote personal data (pre-arrival notices, the ER's
replies, rejected identity frames, the receiver's text of refused messages) are left out and `personal_data_sealed` says why:
the counts are all there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from edge_agent import audit
from edge_agent.clock import wall_datetime
from edge_agent.config import Config
from edge_agent.rules.engine import ClinicalRules
from edge_agent.store import NoticeRow, PersonalDataLocked, StoreReader
from edge_agent.supervisor import META_TASKS
from edge_agent.writer_lock import LOCK_NAME, is_held
from sync.uplink import META_NOTICES_IGNORED, META_REFUSED


def er_replies(notices: list[NoticeRow]) -> list[dict[str, Any]]:
    """The ER's replies among the down-topic notices (sync.gateway.reply), newest first."""
    replies = []
    for notice in notices:
        try:
            body = json.loads(notice["payload"])
        except (ValueError, TypeError):
            continue
        if isinstance(body, dict) and body.get("type") == "er-reply":
            replies.append({**body, "received_wall_ns": notice["received_wall_ns"]})
    return replies


def prealerts(store: StoreReader, limit: int = 5) -> list[dict[str, Any]]:
    """The newest pre-arrival notices and how far their ADT^A14 got."""
    out = []
    for a in store.prealerts.recent(limit=limit):
        row = store.outbox.get(a.outbox_id)
        out.append(
            {
                "id": a.outbox_id,
                "stemi": a.stemi,
                "source": a.source,
                "destination": a.destination,
                "eta_minutes": a.eta_minutes,
                "complaint": a.complaint,
                "status": None if row is None else row.status,
            }
        )
    return out


def refused_for_mac(store: StoreReader) -> dict[str, Any]:
    """ACKs and down notices the uplink ignored for a missing, malformed or wrong `mac`
    (sync.uplink.META_REFUSED), since the store was made."""
    counts: dict[str, Any] = {"ack": 0, "down": 0, "last_reason": None, "last_wall_ns": None}
    try:
        stored = json.loads(store.meta.get(META_REFUSED) or "{}")
    except ValueError:
        stored = {}
    if isinstance(stored, dict):
        counts.update({k: v for k, v in stored.items() if k in counts})
    return counts


def notices_ignored(store: StoreReader) -> dict[str, Any]:
    """Authentic down notices the uplink did not take (sync.notice_replay): repeats (a
    QoS 1 redelivery or a replay), stale ones, ones without an id and sent time."""
    counts: dict[str, Any] = {
        "repeated": 0, "stale": 0, "unstamped": 0, "last_reason": None, "last_wall_ns": None
    }  # fmt: skip
    try:
        stored = json.loads(store.meta.get(META_NOTICES_IGNORED) or "{}")
    except ValueError:
        stored = {}
    if isinstance(stored, dict):
        counts.update({k: v for k, v in stored.items() if k in counts})
    return counts


def audit_trail(store: StoreReader, timezone: str = "Asia/Shanghai") -> dict[str, Any]:
    """The audit trail and its anchoring: its rows, the last row's seq, the last row the
    county gateway acknowledged as anchored (the anchor the box keeps, edge_agent.audit)
    and when the box took that ACK, and the rows still waiting to be anchored."""
    last = store.audit.last()
    anchor = audit.gateway_anchor(store)
    anchored_ns = None if anchor is None else audit.gateway_anchor_wall_ns(store)
    anchored_seq = None if anchor is None else anchor.seq
    return {
        "rows": store.audit.count(),
        "last_seq": None if last is None else last.seq,
        "anchored_seq": anchored_seq,
        "anchored_wall_ns": anchored_ns,
        "anchored_at": (
            None
            if anchored_ns is None
            else wall_datetime(anchored_ns, timezone).isoformat(timespec="seconds")
        ),
        "waiting": store.audit.count_after(anchored_seq or 0),
    }


_T = TypeVar("_T")


def collect(store: StoreReader, timezone: str = "Asia/Shanghai") -> dict[str, Any]:
    counts = store.outbox.counts()
    sealed: list[str] = []

    def personal(read: Callable[[], list[_T]]) -> list[_T]:
        try:
            return read()
        except PersonalDataLocked as exc:
            if not sealed:
                sealed.append(str(exc))
            return []

    notices = personal(lambda: store.prealerts.notices(limit=20))
    quarantine = store.quarantine.counts()
    status = {
        "agent": store.meta.get("agent_id"),
        "outbox": {
            # "sent" rows still wait for the gateway's ACK: to a user they are pending.
            "pending": counts["pending"] + counts["sent"],
            "awaiting_ack": counts["sent"],
            "delivered": counts["delivered"],
            "rejected": counts["rejected"],
            # Waiting for the crew or doctor to say whose readings they are
            # (`edge-agent readings unassigned` lists them), by reason: no visit open,
            # or a monitor naming another patient than the open visit's resident.
            "held": counts["held"],
            "held_reasons": store.outbox.held_counts(),
        },
        "observations": store.frames.observation_count(),
        # Every bad frame; of them "kept" with their bytes, the rest only "counted"
        # (edge_agent.quarantine's per-device budget).
        "quarantine": quarantine["kept"] + quarantine["counted"],
        "quarantine_counts": quarantine,
        "quarantine_reasons": personal(lambda: store.quarantine.reasons(limit=10)),
        "devices": store.devices.all(),
        "rejected": personal(lambda: store.outbox.rejected(limit=10)),
        "recent_quarantine": personal(lambda: store.quarantine.recent(limit=5)),
        "notices": notices[:10],
        "er_replies": er_replies(notices),
        "prealerts": personal(lambda: prealerts(store)),
        "alerts": [a.as_json() for a in store.alerts.recent(limit=10)],
        "schema_version": store.schema_version(),
        "refused_for_mac": refused_for_mac(store),
        "notices_ignored": notices_ignored(store),
        "audit": audit_trail(store, timezone),
    }
    status["personal_data_sealed"] = sealed[0] if sealed else None
    return status


def report(config: Config, store: StoreReader, now_wall_ns: int | None = None) -> dict[str, Any]:
    """`collect`, with the box's NEWS2 now (every reading of the box: an ambulance's one
    patient), whether the daemon is there (it holds the writer lock) and how its
    supervised tasks are (edge_agent.supervisor)."""
    status = collect(store, config.agent.timezone)
    rules = ClinicalRules.for_box(config)
    now = time.time_ns() if now_wall_ns is None else now_wall_ns
    status["news2"] = rules.news2_now(store, now, None).as_json()
    tasks = store.meta.get(META_TASKS)
    status["agent_running"] = is_held(config.agent.data_dir / LOCK_NAME)
    status["tasks"] = json.loads(tasks) if tasks else {}
    return status


_RUNNING = {True: "running", False: "not running", None: "unknown (lock not readable)"}


def render_audit(trail: dict[str, Any]) -> str:
    """The audit trail's line of `status`."""
    if not trail["rows"]:
        return "audit trail: no rows yet"
    last = f"audit trail: {trail['rows']} rows, last row {trail['last_seq']}"
    if trail["anchored_seq"] is None:
        anchored = "not anchored at the county gateway yet"
    else:
        anchored = f"anchored at the county gateway up to row {trail['anchored_seq']}"
        if trail["anchored_at"]:
            anchored += f" ({trail['anchored_at']})"
    return f"{last}; {anchored}; {trail['waiting']} waiting to be anchored"


def render_text(status: dict[str, Any]) -> str:
    """A `report` for people, one line per fact."""
    out = status["outbox"]
    q = status["quarantine_counts"]
    lines = [
        f"agent {status['agent'] or '?'}",
        *(
            [f"personal data not shown: {status['personal_data_sealed']}"]
            if status.get("personal_data_sealed")
            else []
        ),
        f"outbox: {out['pending']} pending ({out['awaiting_ack']} awaiting ACK),"
        f" {out['delivered']} delivered, {out['rejected']} rejected",
        f"observations: {status['observations']}, quarantined frames: {status['quarantine']}"
        f" ({q['kept']} kept with their bytes, {q['counted']} only counted)",
    ]
    for dev in status["devices"]:
        lines.append(
            f"  device {dev['id']} ({dev['driver']}): {dev['state']}"
            f" {dev['state_detail'] or ''} frames={dev['frames']} quarantined={dev['quarantined']}"
            f" (kept {dev['quarantine_kept']})"
        )
    for row in status["quarantine_reasons"][:5]:
        lines.append(
            f"  quarantine {row['device_id']}: {row['frames']} x {row['last_reason']}"
            f" ({row['kept']} kept)"
        )
    held = out.get("held_reasons") or {}
    if held:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(held.items()))
        lines.append(f"held for assignment (readings unassigned): {why}")
    for row in status["rejected"]:
        lines.append(f"  rejected {row['id']}: {row['ack_code']} {row['ack_text']}")
    news = status.get("news2")
    if news is not None:
        missing = f", missing {', '.join(news['missing'])}" if news["missing"] else ""
        lines.append(f"NEWS2 {news['score']} ({news['risk']}{missing})")
    for a in status["alerts"]:
        seen = f", ack {a['ack_user']}" if a["ack_user"] else ""
        lines.append(f"  alert {a['id']} {a['priority']} {a['code']}: {a['text']}{seen}")
    answered = {r["ref"]: r for r in reversed(status["er_replies"])}
    for a in status["prealerts"]:
        reply = answered.get(a["id"])
        answer = f"ER: {reply['status']} {reply.get('text') or ''}" if reply else "no ER reply yet"
        lines.append(
            f"  pre-arrival {a['id']} {'STEMI ' if a['stemi'] else ''}-> {a['destination'] or '?'}"
            f" ({a['status']}): {answer}"
        )
    for r in status["er_replies"][:3]:
        lines.append(f"  ER reply to {r['ref']}: {r['status']} {r.get('text') or ''}")
    refused = status.get("refused_for_mac") or {}
    if refused.get("ack") or refused.get("down"):
        lines.append(
            f"ignored without a valid mac: {refused['ack']} ACK(s), {refused['down']} down"
            f" notice(s) (last: {refused['last_reason']})"
        )
    ignored = status.get("notices_ignored") or {}
    if ignored.get("repeated") or ignored.get("stale") or ignored.get("unstamped"):
        lines.append(
            f"down notices not taken: {ignored['repeated']} already taken (QoS 1 redelivery"
            f" or replay), {ignored['stale']} stale, {ignored['unstamped']} without id and"
            f" time (last: {ignored['last_reason']})"
        )
    trail = status.get("audit")
    if trail is not None:
        lines.append(render_audit(trail))
    lines.append(f"agent daemon: {_RUNNING[status['agent_running']]}")
    for name, task in sorted(status["tasks"].items()):
        if task.get("restarts"):
            lines.append(
                f"  task {name}: {task['state']}, {task['restarts']} restart(s): {task['error']}"
            )
    return "\n".join(lines)
