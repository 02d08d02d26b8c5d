"""What `edge-agent status` reports: is the data safe, and did it reach the county?"""

from __future__ import annotations

from typing import Any

from edge_agent.store import Store


def collect(store: Store) -> dict[str, Any]:
    counts = store.outbox_counts()
    return {
        "agent": store.get_meta("agent_id"),
        "outbox": {
            # "sent" rows still wait for the gateway's ACK: to a user they are pending.
            "pending": counts["pending"] + counts["sent"],
            "awaiting_ack": counts["sent"],
            "delivered": counts["delivered"],
            "rejected": counts["rejected"],
        },
        "observations": store.observation_count(),
        "quarantine": store.quarantine_count(),
        "devices": store.devices(),
        "rejected": store.rejected_outbox(limit=10),
        "recent_quarantine": store.recent_quarantine(limit=5),
        "notices": store.notices(limit=10),
        "schema_version": store.schema_version(),
    }


def render_text(status: dict[str, Any]) -> str:
    out = status["outbox"]
    lines = [
        f"agent {status['agent'] or '?'}",
        f"outbox: {out['pending']} pending ({out['awaiting_ack']} awaiting ACK),"
        f" {out['delivered']} delivered, {out['rejected']} rejected",
        f"observations: {status['observations']}, quarantined frames: {status['quarantine']}",
    ]
    for dev in status["devices"]:
        lines.append(
            f"  device {dev['id']} ({dev['driver']}): {dev['state']}"
            f" {dev['state_detail'] or ''} frames={dev['frames']} quarantined={dev['quarantined']}"
        )
    for row in status["rejected"]:
        lines.append(f"  rejected {row['id']}: {row['ack_code']} {row['ack_text']}")
    return "\n".join(lines)
