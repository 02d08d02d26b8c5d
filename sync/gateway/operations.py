"""Every action of a person on the county gateway, as one named operation, done for a
named user and recorded in the gateway's own trail (docs/security.md, "The gateway's
users").

The one-writer rule holds as on the box: while a gateway runs on the store, a command
sends its operation over the gateway's control socket and the gateway's store thread
does the writing; otherwise the command takes the store's writer lock and does it
itself (`perform`; edge_agent.writer_route). Either way `run` below does the work:

  1. who asks (sync.gateway.users.judge): the user the request names with its PIN
     (args `sign_in`: {"user", "pin"}), or the trusted OS user of a gateway with no
     users yet; the role must hold what the operation needs (edge_agent.roles
     GATEWAY_OPERATION_PERMISSION). Decided from a read, outside the store's writer
     (the scrypt check takes ~50 ms);
  2. the request's arguments checked (a boundary: the socket, or the command line);
  3. what the operation does outside the store first (a reply is published before it
     is recorded: a recorded reply is one the broker took);
  4. one transaction: the sign-in's consequence (failure count or its reset), the
     `sign-in` row, the change and its trail row. A refusal records the failed sign-in
     or the refusal alone; a failure, its row alone (the change rolled back).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from edge_agent import audit, roles, writer_route
from edge_agent.control import STATUS_FAILED, STATUS_USAGE, Caller, OpError, one_line
from edge_agent.identifiers import AGENT_ID, IdentifierError
from edge_agent.model import Refused
from edge_agent.users import Actor
from sync.gateway import key_rotation, trail
from sync.gateway import users as gateway_users
from sync.gateway.keys import GatewayKeysError
from sync.gateway.store import SEALED_COLUMNS, GatewayStore, GatewayStoreError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

SIGN_IN_ARG = "sign_in"
RECENT_REJECTED = 5
WITHHELD = "withheld"


class StoreThread(Protocol):
    """Runs a function with the store: on its writer, in one transaction (`write`), or
    reading what is committed (`read`)."""

    def __call__(self, fn: Callable[[GatewayStore], T], /) -> T: ...


def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Where:
    """What an operation runs with: the store, and the gateway's own effects."""

    write: StoreThread
    read: StoreThread
    # A down notice to an agent: the running gateway's client, or a command's one-shot.
    publish: Callable[[str, bytes], None]
    # A box enrolled: the running gateway signs with its key from its next message on.
    enrolled: Callable[[str, Any], None] = lambda _agent, _key: None
    # A key rotated, or a pass asked for: the gateway's background pass, or the command's.
    reseal: Callable[[], None] = _nothing


@dataclass(frozen=True, slots=True)
class Operation(Generic[R]):
    parse: Callable[[Mapping[str, Any], Actor], R]  # OpError (usage) for bad arguments
    apply: Callable[[GatewayStore, R, Actor, int], tuple[dict[str, Any], str | None]]
    before: Callable[[Where, R], None] | None = None  # outside the store, first
    after: Callable[[Where, R], None] | None = None  # once committed


# --- checking what arrives ---------------------------------------------------------------


def _args(op: str, args: Mapping[str, Any], spec: Mapping[str, type]) -> dict[str, Any]:
    """`args` holding only the names of `spec`, each of its type or None."""
    unknown = sorted(set(args) - set(spec))
    if unknown:
        raise OpError(f"gateway {op}: unknown argument {unknown[0]!r}", STATUS_USAGE)
    out: dict[str, Any] = {}
    for name, kind in spec.items():
        value = args.get(name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise OpError(f"gateway {op}: {name} must be {kind.__name__}", STATUS_USAGE)
        if isinstance(value, str) and len(value) > 1000:
            raise OpError(f"gateway {op}: {name} is longer than 1000 characters", STATUS_USAGE)
        out[name] = value
    return out


def _required(op: str, fields: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if fields.get(n) is None]
    if missing:
        raise OpError(f"gateway {op}: {', '.join(missing)} required", STATUS_USAGE)


def take_credentials(
    args: Mapping[str, Any],
) -> tuple[gateway_users.Credentials | None, dict[str, Any]]:
    """The request's `sign_in` (name and PIN, checked for type and size) and the rest."""
    rest = {k: v for k, v in args.items() if k != SIGN_IN_ARG}
    given = args.get(SIGN_IN_ARG)
    if given is None:
        return None, rest
    if not isinstance(given, Mapping) or set(given) != {"user", "pin"}:
        raise OpError('gateway: sign_in must be {"user": NAME, "pin": PIN}', STATUS_USAGE)
    user, pin = given["user"], given["pin"]
    limit = gateway_users.MAX_CREDENTIAL
    if (
        not (isinstance(user, str) and isinstance(pin, str))
        or len(user) > limit
        or len(pin) > limit
    ):
        raise OpError(f"gateway: sign_in user and pin are text of at most {limit}", STATUS_USAGE)
    return gateway_users.Credentials(user, pin), rest


# --- the operations ------------------------------------------------------------------------


def _reply_parse(args: Mapping[str, Any], actor: Actor) -> Any:
    from sync.gateway.reply import reply_op_args

    return reply_op_args(args, Caller(actor.name))


def _reply_apply(
    store: GatewayStore, reply: Any, actor: Actor, now: int
) -> tuple[dict[str, Any], str | None]:
    reply.record(store)
    return reply.as_json(), f"reply:{reply.agent}/{reply.ref}"


def _enroll_parse(args: Mapping[str, Any], actor: Actor) -> Any:
    from sync.gateway.enrolment import enrol_op_args

    return enrol_op_args(args)


def _enroll_apply(
    store: GatewayStore, enrolment: Any, actor: Actor, now: int
) -> tuple[dict[str, Any], str | None]:
    replaced = enrolment.record(store)
    return enrolment.as_json(replaced=replaced), f"box:{enrolment.agent}"


def _no_args(op: str) -> Callable[[Mapping[str, Any], Actor], None]:
    def parse(args: Mapping[str, Any], actor: Actor) -> None:
        _args(op, args, {})

    return parse


# The sections of `gateway status` that show rows of a table with sealed columns.
_STATUS_SECTIONS = {"prearrivals": "prearrival", "alerts": "alert_event", "er_replies": "er_reply"}


def _status_apply(
    store: GatewayStore, _r: None, actor: Actor, now: int
) -> tuple[dict[str, Any], str | None]:
    report = store.status()
    if not roles.may(actor.role, roles.Permission.READ_INBOUND):
        # Who the notices name, and the free text people wrote (a complaint, the ER's
        # reply, an alarm's text: any may name the patient), is for the ER
        # (read-inbound): every sealed column's value withheld; the rest is operations'.
        for section, table in _STATUS_SECTIONS.items():
            withheld = {c.column for c in SEALED_COLUMNS if c.table == table}
            for row in report[section]:
                row.update({column: None for column in withheld if column in row})
        report["personal_data"] = f"{WITHHELD}: the role {actor.role} may not read-inbound"
    return {"report": report, "rejected": store.recent_rejected(RECENT_REJECTED)}, "status"


def _audit_parse(args: Mapping[str, Any], actor: Actor) -> str | None:
    agent: str | None = _args("audit", args, {"agent": str})["agent"]
    if agent is not None:
        try:
            AGENT_ID.check(agent)
        except IdentifierError as exc:
            raise OpError(f"gateway audit --agent: {exc}", STATUS_USAGE) from None
    return agent


def _audit_apply(
    store: GatewayStore, agent: str | None, actor: Actor, now: int
) -> tuple[dict[str, Any], str | None]:
    return {"boxes": store.audit_report(agent)}, f"audit:{agent or '*'}"


def _verify_local_apply(
    store: GatewayStore, _r: None, actor: Actor, now: int
) -> tuple[dict[str, Any], str | None]:
    return trail.verify(store).as_json(), "gateway-audit:*"


def _show_local_parse(args: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
    fields = _args(
        "audit.show-local", args, {"user": str, "since": str, "until": str, "limit": int}
    )
    if fields["limit"] is None:
        fields["limit"] = 1000
    return fields


def _show_local_apply(
    store: GatewayStore, r: dict[str, Any], actor: Actor, now: int
) -> tuple[dict[str, Any], str | None]:
    return {"rows": trail.show(store, **r)}, "gateway-audit:*"


def _user_parse(op: str, *names: str) -> Callable[[Mapping[str, Any], Actor], dict[str, Any]]:
    def parse(args: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        fields = _args(op, args, dict.fromkeys(names, str))
        _required(op, fields, *names)
        return fields

    return parse


def _users_add_apply(
    store: GatewayStore, r: dict[str, Any], actor: Actor, now: int
) -> tuple[dict[str, Any], str | None]:
    added = gateway_users.add(store, name=r["name"], role=r["role"], pin=r["pin"], now_ns=now)
    return added, f"user:{added['id']}"


def _users_list_apply(
    store: GatewayStore, _r: None, actor: Actor, now: int
) -> tuple[dict[str, Any], str | None]:
    return {"users": gateway_users.listing(store, now_ns=now)}, "users:*"


def _users_disable_apply(
    store: GatewayStore, r: dict[str, Any], actor: Actor, now: int
) -> tuple[dict[str, Any], str | None]:
    disabled = gateway_users.disable(store, name=r["name"])
    return disabled, f"user:{disabled['id']}"


def _users_reset_pin_apply(
    store: GatewayStore, r: dict[str, Any], actor: Actor, now: int
) -> tuple[dict[str, Any], str | None]:
    reset = gateway_users.reset_pin(store, name=r["name"], pin=r["pin"])
    return reset, f"user:{reset['id']}"


def _rotate_parse(args: Mapping[str, Any], actor: Actor) -> str | None:
    suite: str | None = _args("keys.rotate", args, {"suite": str})["suite"]
    return suite


def _rotate_apply(
    store: GatewayStore, suite: str | None, actor: Actor, now: int
) -> tuple[dict[str, Any], str | None]:
    rotated = key_rotation.rotate(store, suite)
    return rotated, f"key:{rotated['active']}"


def _keys_status_apply(
    store: GatewayStore, _r: object, actor: Actor, now: int
) -> tuple[dict[str, Any], str | None]:
    report = key_rotation.status(store)
    return report, f"key:{report['active']}"


def _reseal(where: Where, _r: object) -> None:
    where.reseal()


def _enrolled(where: Where, enrolment: Any) -> None:
    where.enrolled(enrolment.agent, enrolment.key)


def _publish(where: Where, reply: Any) -> None:
    where.publish(reply.agent, reply.payload)


# name -> what it does; each one is in roles.GATEWAY_OPERATION_PERMISSION (ping aside).
OPERATIONS: dict[str, Operation[Any]] = {
    "reply": Operation(_reply_parse, _reply_apply, before=_publish),
    "enroll": Operation(_enroll_parse, _enroll_apply, after=_enrolled),
    "status": Operation(_no_args("status"), _status_apply),
    "audit": Operation(_audit_parse, _audit_apply),
    "audit.verify-local": Operation(_no_args("audit.verify-local"), _verify_local_apply),
    "audit.show-local": Operation(_show_local_parse, _show_local_apply),
    "users.add": Operation(_user_parse("users.add", "name", "role", "pin"), _users_add_apply),
    "users.list": Operation(_no_args("users.list"), _users_list_apply),
    "users.disable": Operation(_user_parse("users.disable", "name"), _users_disable_apply),
    "users.reset-pin": Operation(
        _user_parse("users.reset-pin", "name", "pin"), _users_reset_pin_apply
    ),
    "keys.rotate": Operation(_rotate_parse, _rotate_apply, after=_reseal),
    "keys.reseal": Operation(_no_args("keys.reseal"), _keys_status_apply, after=_reseal),
    "keys.status": Operation(_no_args("keys.status"), _keys_status_apply),
}


# --- doing one --------------------------------------------------------------------------


def _record_decision(
    store: GatewayStore,
    decision: gateway_users.Decision,
    op: str,
    now: int,
    args: Mapping[str, Any],
) -> None:
    """A sign-in's consequence and its row, or (no PIN checked) a refusal's row."""
    gateway_users.record_attempt(store, decision)
    who = decision.actor
    subject = None if who.user_id is None else f"user:{who.user_id}"
    attempt = decision.attempt
    if attempt is not None:
        failed = attempt.refusal is not None
        trail.record(
            store,
            user=who.name,
            role=who.role,
            op=op,
            action=audit.SIGN_IN_FAILED if failed else trail.SIGN_IN,
            outcome=audit.REFUSED if failed else audit.OK,
            subject=subject,
            reason=_reason(attempt.refusal, args) if failed else None,
            now_ns=now,
        )
        if failed:
            return
    if decision.refusal is not None:
        trail.record(
            store,
            user=who.name,
            role=who.role,
            op=op,
            outcome=audit.REFUSED,
            reason=_reason(decision.refusal, args),
            now_ns=now,
        )


def _reason(reason: str | None, args: Mapping[str, Any]) -> str | None:
    """What the trail may keep of a refusal: the request's text arguments named."""
    return None if reason is None else one_line(audit.redacted(reason, args), 300)


# Arguments a reason must never quote: a PIN, a box's MAC key, the ER's free text and
# the name it is signed with (the rest are ids and words of this program's own).
SECRET_ARGS = ("pin", "mac_key", "text", "by")


def _flat(args: Mapping[str, Any], credentials: gateway_users.Credentials | None) -> dict[str, Any]:
    """The arguments a refusal's reason must not quote, the acting user's PIN among them."""
    given = {**args, **({} if credentials is None else {"pin": credentials.pin})}
    return {k: v for k, v in given.items() if k in SECRET_ARGS}


def run(
    where: Where,
    op: str,
    args: Mapping[str, Any],
    caller: Caller,
    *,
    clock: Callable[[], int] = time.time_ns,
) -> dict[str, Any]:
    """Operation `op` for whom `args` names (or the OS user `caller` of a gateway that
    has no users yet), recorded in the trail; OpError (one line, the exit status)."""
    operation = OPERATIONS.get(op)
    if operation is None:
        raise OpError(f"unknown operation {op!r}", STATUS_USAGE)
    permission = roles.needed_for(op, on_box=False)
    credentials, rest = take_credentials(args)
    secret = _flat(rest, credentials)
    name = None if credentials is None else credentials.user
    user, everyone = where.read(
        lambda s: (None if name is None else s.users.by_name(name), s.users.all())
    )
    decision = gateway_users.judge(
        user, everyone, credentials, caller, op, permission, now_ns=clock()
    )
    if decision.refusal is not None:
        where.write(lambda s: _record_decision(s, decision, op, clock(), secret))
        raise OpError(decision.refusal, STATUS_FAILED)
    actor = decision.actor
    done_before = False
    try:
        request = operation.parse(rest, actor)
        if operation.before is not None:
            operation.before(where, request)
            done_before = True

        def apply(store: GatewayStore) -> tuple[dict[str, Any], str | None]:
            now = clock()
            _record_decision(store, decision, op, now, secret)
            result, subject = operation.apply(store, request, actor, now)
            trail.record(
                store,
                user=actor.name,
                role=actor.role,
                op=op,
                outcome=audit.OK,
                subject=subject,
                now_ns=now,
            )
            return result, subject

        result, _subject = where.write(apply)
    except (OpError, Refused, ValueError, GatewayStoreError, GatewayKeysError) as exc:
        status = (
            exc.status
            if isinstance(exc, OpError)
            else (STATUS_FAILED if isinstance(exc, GatewayStoreError) else STATUS_USAGE)
        )
        message = f"sent, but not recorded: {exc}" if done_before else str(exc)
        try:
            _record_failure(where, decision, op, clock, secret, message)
        except Exception as unrecorded:  # the store failed too: the caller hears the first
            log.error("gateway: %s failed and its trail row was not written: %s", op, unrecorded)
        raise OpError(message, status) from None
    log.info("gateway: %s by %s (%s): %s", op, actor.name, actor.role, _subject)
    if operation.after is not None:
        try:
            operation.after(where, request)
        except (GatewayStoreError, GatewayKeysError) as exc:
            shown = op.replace(".", " ")
            raise OpError(f"gateway {shown}: done, then stopped: {exc}", STATUS_FAILED) from None
    return result


def _record_failure(
    where: Where,
    decision: gateway_users.Decision,
    op: str,
    clock: Callable[[], int],
    args: Mapping[str, Any],
    message: str,
) -> None:
    actor = decision.actor

    def failed(store: GatewayStore) -> None:
        now = clock()
        _record_decision(store, decision, op, now, args)
        trail.record(
            store,
            user=actor.name,
            role=actor.role,
            op=op,
            outcome=audit.FAILED,
            reason=_reason(message, args),
            now_ns=now,
        )

    where.write(failed)


# --- from a command ----------------------------------------------------------------------

ROUTE_WAIT_S = 15.0


def with_credentials(args: Mapping[str, Any], as_user: tuple[str, str] | None) -> dict[str, Any]:
    """`args` with the acting user's name and PIN (`--as NAME`), when one is given."""
    if as_user is None:
        return dict(args)
    return {**args, SIGN_IN_ARG: {"user": as_user[0], "pin": as_user[1]}}


def perform(
    db: str,
    op: str,
    args: Mapping[str, Any],
    *,
    as_user: tuple[str, str] | None = None,
    key_file: str | None = None,
    publish: Callable[[GatewayStore, str, bytes], None] | None = None,
    reseal: Callable[[GatewayStore], None] | None = None,
    wait_s: float = ROUTE_WAIT_S,
) -> dict[str, Any]:
    """`op` done by whoever writes gateway store `db` now: the running gateway (its
    control socket), or this process under the store's writer lock, where `publish`
    sends a down notice and `reseal` runs the sealing pass. OpError if it was not done."""
    from sync.gateway.service import change_route

    sent = with_credentials(args, as_user)
    # The operations name themselves in their errors ("gateway reply: ...").
    route = dataclasses.replace(change_route(db, f"gateway {op}", wait_s=wait_s), refused_by="")
    return writer_route.change(
        route, op, sent, lambda: _here(db, op, sent, key_file, publish, reseal)
    )


def _here(
    db: str,
    op: str,
    args: Mapping[str, Any],
    key_file: str | None,
    publish: Callable[[GatewayStore, str, bytes], None] | None,
    reseal: Callable[[GatewayStore], None] | None,
) -> dict[str, Any]:
    """No gateway runs: the store opened here (holding the lock)."""
    try:
        store = GatewayStore.open(db, key_file=key_file)
    except GatewayStoreError as exc:
        raise OpError(str(exc), STATUS_USAGE) from None

    def write(fn: Callable[[GatewayStore], T]) -> T:
        with store.transaction():
            return fn(store)

    def read(fn: Callable[[GatewayStore], T]) -> T:
        return fn(store)

    def no_publish(_agent: str, _payload: bytes) -> None:
        raise OpError(f"gateway {op}: publishes nothing", STATUS_FAILED)

    try:
        where = Where(
            write=write,
            read=read,
            publish=no_publish if publish is None else lambda a, p: publish(store, a, p),
            reseal=(lambda: None) if reseal is None else lambda: reseal(store),
        )
        return run(where, op, args, Caller.this_process())
    finally:
        store.close()
