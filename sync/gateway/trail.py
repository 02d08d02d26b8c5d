"""The county gateway's own audit trail: who replied to which pre-arrival notice, who
enrolled which box, who added or disabled a user, rotated the keys, read the status or
the boxes' trails, and every sign-in and failed sign-in (docs/security.md, "The
gateway's own audit trail").

The box's trail, reused whole (edge_agent.audit): the same row (time, user, role,
station, action, operation, subject, outcome, reason), the same hash chain (each row's
hash the suite's digest of the previous hash and the row's canonical encoding; the
suite of the gateway's active key), the same head kept beside the chain, the same
`verify` naming the first bad row. The gateway's store holds it in `gateway_audit`
(SQLite refuses UPDATE and DELETE) and its head in `gateway_meta` (gateway migration 7).
A subject names a box, a notice or a user by id (`reply:amb-017/<MSH-10>`,
`box:amb-017`, `user:3`); a refusal's reason has the request's own text arguments (a
PIN, a MAC key, the ER's free text) named instead of quoted (audit.redacted).
"""

from __future__ import annotations

import os
from typing import Any

from edge_agent import audit
from edge_agent.model import Refused
from sync.gateway.store import GatewayStore

TIMEZONE = "Asia/Shanghai"  # the county's; the trail's `time` carries its offset
# Where it was done: this gateway (one store, one writer), by its host's name.
STATION = f"gateway@{os.uname().nodename}"[:64]
MAX_SHOWN = audit.MAX_SHOWN

# What each operation of the gateway is, as the trail says it (sync.gateway.operations).
ACTIONS: dict[str, str] = {
    "reply": "create",
    "enroll": "change",
    "status": "read",
    "audit": "read",
    "audit.verify-local": "read",
    "audit.show-local": "read",
    "users.add": "create",
    "users.list": "read",
    "users.disable": "change",
    "users.reset-pin": "change",
    "keys.rotate": audit.KEY_ROTATION,
    "keys.reseal": audit.KEY_ROTATION,
    "keys.status": "read",
}
SIGN_IN = "sign-in"


def record(
    store: GatewayStore,
    *,
    user: str,
    role: str,
    op: str,
    outcome: str,
    now_ns: int,
    action: str | None = None,
    subject: str | None = None,
    reason: str | None = None,
) -> None:
    """One row at the end of the chain, in the caller's transaction."""
    event = audit.Event(
        user=user,
        role=role,
        station=STATION,
        action=action or ACTIONS[op],
        op=op,
        outcome=outcome,
        subject=subject,
        reason=reason,
    )
    audit.append(
        store.trail,
        event,
        suite=store.keyring.active.suite.name,
        wall_ns=now_ns,
        timezone=TIMEZONE,
    )


def verify(store: GatewayStore) -> audit.Verdict:
    """`gateway audit verify-local`: the gateway's own chain, whole or its first bad row."""
    return audit.verify(store.trail)


def show(
    store: GatewayStore,
    *,
    user: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """`gateway audit show-local`: the rows matching every filter, oldest first."""
    if not 1 <= limit <= MAX_SHOWN:
        raise Refused(f"gateway audit show-local --limit: {limit} is not between 1 and {MAX_SHOWN}")
    rows = store.trail.audit.find(
        user=user,
        since_wall_ns=None if since is None else audit.parse_time(since, TIMEZONE, "--since"),
        until_wall_ns=None if until is None else audit.parse_time(until, TIMEZONE, "--until"),
        limit=limit,
    )
    return [audit.as_json(r) for r in rows]
