"""The county gateway's users: ER staff (role er) and the county's IT staff (county-it),
what each may do is edge_agent.roles (docs/security.md, "The gateway's users").

The box's rules, reused rather than written twice (edge_agent.users): a name of 1 to
32 letters, digits, `_ . -`; a PIN of 4 to 12 digits kept only as its scrypt hash
(edge_agent.crypto.pins); after 5 failed PINs in a row the user is locked for 30 s, each
further failure doubling it up to an hour, the right PIN refused meanwhile; an unknown
name costs the same scrypt and gets the same answer as a wrong PIN (`judge_sign_in`).

The gateway keeps no sessions: its commands are one-shot, so each request carries its
user's name and PIN (the CLI's `--as NAME`, the PIN asked or read from stdin) and is
checked on its own.

Setting up: a store with no users yet takes a command from a trusted OS user (root, the
gateway's own user, or a member of its group: SO_PEERCRED on the control socket) as
that OS user, in the gateway role that holds what it asks, as the gateway did before it
had users; the first user added must be county-it. Once a user exists every command
names its user. The last county-it user cannot be disabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_agent import roles
from edge_agent import users as box_users
from edge_agent.control import Caller
from edge_agent.model import Refused
from edge_agent.store import UserRow
from edge_agent.users import Actor, Attempt
from sync.gateway.store import GatewayStore

FIRST_ROLE = "county-it"
MAX_CREDENTIAL = 64  # characters of a name or PIN a request may carry


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who a request says it is for: a user's name and PIN (never logged or recorded)."""

    user: str
    pin: str

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r})"


def _existing(store: GatewayStore, name: str) -> UserRow:
    user = store.users.by_name(name)
    if user is None:
        raise Refused(f"gateway user {name[:40]!r}: no such user")
    return user


def _enabled_county_it(store: GatewayStore) -> list[UserRow]:
    return [u for u in store.users.all() if u.role == FIRST_ROLE and not u.disabled]


# --- managing users (manage-users, county-it) --------------------------------------------


def add(store: GatewayStore, *, name: str, role: str, pin: str, now_ns: int) -> dict[str, Any]:
    box_users.check_name(name)
    try:
        roles.check_role(role, on_box=False)
    except ValueError as exc:
        raise Refused(f"gateway users add: {exc}") from None
    if store.users.by_name(name) is not None:
        raise Refused(f"gateway user {name!r}: already exists")
    if role != FIRST_ROLE and not _enabled_county_it(store):
        raise Refused(
            f"gateway users add {name}: the gateway's first user must be county-it"
            " (--role county-it)"
        )
    user_id = store.users.add(name, role, box_users.pin_hash(pin), now_ns)
    return {"id": user_id, "user": name, "role": role}


def listing(store: GatewayStore, *, now_ns: int) -> list[dict[str, Any]]:
    return [
        {
            "user": u.name,
            "role": u.role,
            "disabled": u.disabled,
            "failed_attempts": u.failed_attempts,
            "locked": u.locked_until_wall_ns is not None and u.locked_until_wall_ns > now_ns,
        }
        for u in store.users.all()
    ]


def disable(store: GatewayStore, *, name: str) -> dict[str, Any]:
    user = _existing(store, name)
    if [u.id for u in _enabled_county_it(store)] == [user.id]:
        raise Refused(
            f"gateway users disable {name}: the gateway's last county-it user"
            " (add another county-it user first)"
        )
    store.users.set_disabled(user.id)
    return {"id": user.id, "user": name, "disabled": True}


def reset_pin(store: GatewayStore, *, name: str, pin: str) -> dict[str, Any]:
    user = _existing(store, name)
    store.users.set_pin(user.id, box_users.pin_hash(pin))
    return {"id": user.id, "user": name, "pin": "reset"}


# --- who asks ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """Who a request is done for, or why it is refused, and what the attempt leaves to
    record (a sign-in's failure count, its trail row): decided from a read of the users,
    recorded by the store's writer with the operation (sync.gateway.operations)."""

    actor: Actor  # who it is done for, or whom the refusal is recorded against
    refusal: str | None
    attempt: Attempt | None = None  # a PIN was checked


def judge(
    user: UserRow | None,
    everyone: list[UserRow],
    credentials: Credentials | None,
    caller: Caller,
    op: str,
    permission: roles.Permission | None,
    *,
    now_ns: int,
) -> Decision:
    """Whether `op` may be done: by the user `credentials` name (whose row is `user`),
    or, without credentials, by the trusted OS user of a gateway that has no users yet
    (`everyone` is every user row). Then the role must hold `permission`. No writes: the
    scrypt check is here, outside the store's writer."""
    if credentials is not None:
        attempt = box_users.judge_sign_in(user, credentials.user, credentials.pin, now_ns)
        role = "-" if attempt.user is None else attempt.user.role
        who = Actor(attempt.shown, role, None if attempt.user is None else attempt.user.id)
        if attempt.refusal is not None:
            return Decision(who, f"gateway {attempt.refusal}", attempt)
        return _may(who, op, permission, attempt)
    os_user = Actor(caller.user, "-")
    op = op.replace(".", " ")
    if everyone:
        return Decision(
            os_user,
            f"gateway {op}: this gateway has users: name yours with --as NAME (its PIN is asked)",
        )
    if not box_users.os_user_trusted(caller.uid):
        return Decision(
            os_user,
            f"gateway {op}: {caller.user} is not the gateway's user or in its group",
        )
    # Setting up (no users yet): the OS user in the gateway role that holds the permission.
    role = next((r for r in roles.GATEWAY_ROLES[::-1] if roles.may(r, permission)), "-")
    return _may(Actor(caller.user, role), op, permission, None)


def _may(
    who: Actor, op: str, permission: roles.Permission | None, attempt: Attempt | None
) -> Decision:
    if roles.may(who.role, permission):
        return Decision(who, None, attempt)
    shown = op.replace(".", " ")
    return Decision(who, f"gateway {shown}: the role {who.role} may not {permission}", attempt)


def record_attempt(store: GatewayStore, decision: Decision) -> None:
    """What a checked PIN leaves on the user: the failure counted (and a lockout), or
    the count started again."""
    attempt = decision.attempt
    if attempt is None or attempt.user is None or attempt.check is None:
        return
    if attempt.check.ok:
        store.users.record_success(attempt.user.id)
    elif not attempt.check.still_locked_s:
        store.users.record_failure(
            attempt.user.id, attempt.check.failed, attempt.check.locked_until_wall_ns
        )
