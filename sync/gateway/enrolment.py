"""`edge-agent gateway enroll`: register a box's message key, so the gateway signs what
it sends that box (its ACKs, the ER's down notices) with a `mac` the box checks
(sync.message_auth; docs/security.md, "Authenticated ACKs and notices").

The key is the box's, printed there by `edge-agent keys show-mac`; an agent not enrolled
gets unsigned ACKs and notices, as before, which a box holding a key ignores. Enrolling
again replaces the key (a box whose keys were made anew).

The one-writer rule holds as for `gateway reply`: while a gateway runs on the store the
enrolment goes to it over its control socket (operation "enroll", which it records and
uses from its next message on); otherwise the command records it under the store's
writer lock and the next gateway started reads it. Either way it is done for a named
gateway user (role county-it) and recorded in the gateway's trail: who enrolled which
box (sync.gateway.operations).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge_agent.control import STATUS_USAGE, OpError
from edge_agent.crypto.suites import INTL
from edge_agent.identifiers import AGENT_ID, IdentifierError
from sync.gateway.store import GatewayStore
from sync.message_auth import MessageKey, key_from_hex

ENROLL_OP = "enroll"


@dataclass(frozen=True, slots=True)
class Enrolment:
    """One box's key, checked: what is recorded."""

    agent: str
    key: MessageKey
    wall_ns: int

    def record(self, store: GatewayStore) -> bool:
        """True when it replaced the agent's earlier key."""
        return store.enroll(self.agent, self.key, self.wall_ns)

    def as_json(self, *, replaced: bool) -> dict[str, Any]:
        # Never the key: the operator compares it with `keys show-mac` on the box.
        return {"enrolled": self.agent, "suite": self.key.suite.name, "replaced": replaced}


def make_enrolment(agent: str, mac_key_hex: str, suite_name: str, *, now_ns: int) -> Enrolment:
    """ValueError naming what is wrong: the agent id, the key's hex or length, the suite."""
    try:
        AGENT_ID.check(agent)
    except IdentifierError as exc:
        raise ValueError(f"enroll --agent: {exc}") from None
    return Enrolment(agent, key_from_hex(mac_key_hex, suite_name), now_ns)


def enrol_op_args(args: Mapping[str, Any]) -> Enrolment:
    """The "enroll" operation's arguments, from the control socket (a boundary)."""
    known = {"agent", "mac_key", "suite"}
    unknown = sorted(set(args) - known)
    if unknown:
        raise OpError(f"enroll: unknown argument {unknown[0]!r}", STATUS_USAGE)
    agent, mac_key, suite_name = args.get("agent"), args.get("mac_key"), args.get("suite", INTL)
    if not (isinstance(agent, str) and isinstance(mac_key, str) and isinstance(suite_name, str)):
        raise OpError("enroll: agent, mac_key and suite must be text", STATUS_USAGE)
    try:
        return make_enrolment(agent, mac_key, suite_name, now_ns=time.time_ns())
    except ValueError as exc:
        raise OpError(str(exc), STATUS_USAGE) from None


def enroll(
    db: str,
    agent: str,
    mac_key_hex: str,
    suite_name: str = INTL,
    *,
    wait_s: float = 15.0,
    key_file: str | None = None,
    as_user: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Record the box's key in gateway store `db` (through its gateway when one runs),
    done for `as_user` (name, PIN; role county-it) and recorded in the gateway's trail.
    What was enrolled; OpError (one line, the exit status) if it was not."""
    from sync.gateway import operations

    args = {"agent": agent, "mac_key": mac_key_hex, "suite": suite_name}
    enrol_op_args(args)  # refused here, before the lock or the gateway
    return operations.perform(
        db, ENROLL_OP, args, as_user=as_user, key_file=key_file, wait_s=wait_s
    )
