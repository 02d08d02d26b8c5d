"""The box's users: adding them, PIN sign-in with lockout, sessions with an idle lock,
and who is asking for an operation (docs/security.md, "Users and roles").

- A PIN is 4 to 12 digits, stored as its scrypt hash (edge_agent.crypto.pins).
- After 5 failed sign-ins in a row a user is locked for 30 s, and each further failure
  doubles it (60 s, 120 s ... at most an hour); while locked even the right PIN is
  refused. A good sign-in (or a PIN reset) starts the count again. Lockout times are on
  the wall clock, so a reboot does not end one.
- A sign-in returns a random token (256 bits); only its digest (the box's suite) is
  stored. A session untouched longer than its role's idle lock (doctor and admin 600 s,
  kiosk 120 s, crew `users.crew_idle_lock_s`) is locked: the PIN must be entered again
  (a new sign-in). Idle time is counted on the monotonic clock of one boot (the box has
  no RTC); a session from an earlier boot is locked.
- Who asks for an operation (`acting`): the session's user when the request carries a
  token. Without one, the OS user the socket's peer credentials name (SO_PEERCRED) must
  be root, the daemon's own user or in its group, and then acts as the box's only user
  when that user is an admin (a single-user box), or as an admin named after the OS
  user while the box has no users yet (setting it up). A box with other users needs a
  sign-in: the CLI's `--as NAME` asks for NAME's PIN.

Idle lock durations follow the issue's requirement (doctor 10 min, kiosk 2 min); GB/T
22239-2019 §8.1.4.2 c) asks for a session time-out, and GB/T 35273-2020 §7.1 for
access by role.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd
import re
import secrets
from dataclasses import dataclass
from typing import Any

from edge_agent import roles
from edge_agent.clock import Clock
from edge_agent.config import Config
from edge_agent.crypto import pins
from edge_agent.crypto.suites import suite as suite_named
from edge_agent.model import Refused
from edge_agent.store import StoreReader, StoreWriter, UserRow

FAILURES_BEFORE_LOCKOUT = 5
FIRST_LOCKOUT_S = 30
MAX_LOCKOUT_S = 3600
IDLE_LOCK_S = {"admin": 600.0, "doctor": 600.0, "kiosk": 120.0}
TOKEN_BYTES = 32
# A well-formed stored hash no PIN matches (its hash is all zero bytes): what a sign-in
# with an unknown name is checked against.
NOBODY = f"scrypt${pins.LOG2_N}${pins.R}${pins.P}${'00' * pins.SALT_BYTES}${'00' * pins.HASH_BYTES}"
# Letters (Chinese ones included), digits, _ . -; first a letter or digit; at most 32.
NAME = re.compile(r"[^\W_][\w.\-]{0,31}")


class NotAllowed(Exception):
    """The caller may not do this (no session, a locked one, a role without the
    permission). `who` is whom the refusal is recorded against."""

    def __init__(self, message: str, who: Actor) -> None:
        super().__init__(message)
        self.who = who


@dataclass(frozen=True, slots=True)
class Actor:
    """Who an operation is done for: a box user, or the OS user (setup, sign-in)."""

    name: str
    role: str
    user_id: int | None = None


@dataclass(frozen=True, slots=True)
class SignIn:
    """What a sign-in attempt came to: a token, or why not (the attempt is recorded)."""

    name: str
    role: str
    user_id: int | None
    token: str | None
    refusal: str | None
    idle_lock_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "user": self.name,
            "role": self.role,
            "session": self.token,
            "idle_lock_s": self.idle_lock_s,
        }


@dataclass(frozen=True, slots=True)
class SessionState:
    """What a UI shows: whose session it is, and whether it is locked."""

    user: str | None
    role: str | None
    locked: bool
    idle_s: float | None
    idle_lock_s: float | None

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise Refused(
            f"user name {name[:40]!r}: 1 to 32 letters, digits, '_', '.' or '-',"
            " first a letter or digit"
        )
    return name


def idle_lock_s(role: str, config: Config) -> float:
    return config.users.crew_idle_lock_s if role == "crew" else IDLE_LOCK_S.get(role, 120.0)


def lockout_s(failed: int) -> int:
    """How long a user with `failed` failures in a row is locked (0: not locked)."""
    if failed < FAILURES_BEFORE_LOCKOUT:
        return 0
    return int(min(MAX_LOCKOUT_S, FIRST_LOCKOUT_S * 2 ** (failed - FAILURES_BEFORE_LOCKOUT)))


@dataclass(frozen=True, slots=True)
class PinCheck:
    """One PIN attempt against a stored hash, its lockout counted (a user's or a
    resident's: the same rule for both)."""

    ok: bool
    still_locked_s: int  # > 0: refused unchecked, locked this long more
    failed: int  # failures in a row after this attempt (what to record)
    locked_until_wall_ns: int | None  # what to record with a failure
    now_locked_s: int  # > 0: this failure locked it for so long


def check_pin(
    pin: str, pin_hash: str, failed_attempts: int, locked_until_wall_ns: int | None, now: int
) -> PinCheck:
    """`pin` checked unless a lockout still runs (then not even the right PIN passes)."""
    if locked_until_wall_ns is not None and locked_until_wall_ns > now:
        wait = (locked_until_wall_ns - now + 999_999_999) // 1_000_000_000
        return PinCheck(False, wait, failed_attempts, locked_until_wall_ns, 0)
    if pins.pin_matches(pin, pin_hash):
        return PinCheck(True, 0, 0, None, 0)
    failed = failed_attempts + 1
    lock = lockout_s(failed)
    return PinCheck(False, 0, failed, now + lock * 1_000_000_000 if lock else None, lock)


def pin_hash(pin: str) -> str:
    """The PIN's stored hash (edge_agent.crypto.pins); Refused for a PIN breaking the rule."""
    try:
        return pins.hash_pin(pin)
    except pins.PinError as exc:
        raise Refused(str(exc)) from None


def _existing(store: StoreReader, name: str) -> UserRow:
    user = store.users.by_name(name)
    if user is None:
        raise Refused(f"user {name[:40]!r}: no such user")
    return user


# --- managing users (manage-users) ------------------------------------------------------


def add(store: StoreWriter, clock: Clock, *, name: str, role: str, pin: str) -> dict[str, Any]:
    check_name(name)
    try:
        roles.check_role(role)
    except ValueError as exc:
        raise Refused(f"users add: {exc}") from None
    if store.users.by_name(name) is not None:
        raise Refused(f"user {name!r}: already exists")
    if role != "admin" and not _admins(store):
        raise Refused(f"users add {name}: the box's first user must be an admin (--role admin)")
    user_id = store.users.add(name, role, pin_hash(pin), clock.wall_ns())
    return {"id": user_id, "user": name, "role": role}


def listing(store: StoreReader, clock: Clock) -> list[dict[str, Any]]:
    now = clock.wall_ns()
    return [
        {
            "user": u.name,
            "role": u.role,
            "disabled": u.disabled,
            "failed_attempts": u.failed_attempts,
            "locked": u.locked_until_wall_ns is not None and u.locked_until_wall_ns > now,
        }
        for u in store.users.all()
    ]


def _admins(store: StoreReader) -> list[UserRow]:
    return [u for u in store.users.all() if u.role == "admin" and not u.disabled]


def disable(store: StoreWriter, *, name: str) -> dict[str, Any]:
    user = _existing(store, name)
    if [a.id for a in _admins(store)] == [user.id]:
        raise Refused(f"users disable {name}: the box's last admin (add another admin first)")
    store.users.set_disabled(user.id)
    return {"id": user.id, "user": name, "disabled": True}


def reset_pin(store: StoreWriter, *, name: str, pin: str) -> dict[str, Any]:
    user = _existing(store, name)
    store.users.set_pin(user.id, pin_hash(pin))
    return {"id": user.id, "user": name, "pin": "reset"}


# --- signing in, sessions ---------------------------------------------------------------


def token_hash(token: str, config: Config) -> str:
    return suite_named(config.security.suite).digest(token.encode("utf-8")).hex()


@dataclass(frozen=True, slots=True)
class Attempt:
    """A sign-in attempt judged against a user's row (the box's `app_user` or the
    gateway's `gateway_user`: the same columns): `refusal` None when it passed; `check`
    what to record on the user (None: no such user, or disabled)."""

    shown: str  # the name as the trail may show it ("?" for one that is no name)
    user: UserRow | None
    refusal: str | None
    check: PinCheck | None


def judge_sign_in(user: UserRow | None, name: str, pin: str, now: int) -> Attempt:
    """`pin` for `name`, whose row is `user` (None: no such user), checked with its
    lockout. An unknown name costs the same scrypt and gets the same answer as a wrong
    PIN. No I/O: the caller records what `check` says."""
    shown = name if NAME.fullmatch(name) else "?"
    if user is None:
        # The same slow hash as a real check, so a missing user takes as long.
        pins.pin_matches(pin, NOBODY)
        return Attempt(shown, None, f"sign-in {shown}: wrong user name or PIN", None)
    if user.disabled:
        return Attempt(name, user, f"sign-in {name}: the user is disabled", None)
    check = check_pin(pin, user.pin_hash, user.failed_attempts, user.locked_until_wall_ns, now)
    if check.still_locked_s:
        return Attempt(
            name,
            user,
            f"sign-in {name}: locked for {check.still_locked_s} s more (too many failed PINs)",
            check,
        )
    if not check.ok:
        then = f"; locked for {check.now_locked_s} s" if check.now_locked_s else ""
        return Attempt(name, user, f"sign-in {name}: wrong user name or PIN{then}", check)
    return Attempt(name, user, None, check)


def sign_in(store: StoreWriter, clock: Clock, config: Config, *, name: str, pin: str) -> SignIn:
    """Check `pin` for `name`; every attempt counts (and is recorded by the caller)."""
    user = store.users.by_name(name) if NAME.fullmatch(name) else None
    now = clock.wall_ns()
    attempt = judge_sign_in(user, name, pin, now)
    if user is None:
        return SignIn(attempt.shown, "-", None, None, attempt.refusal)
    check = attempt.check
    if attempt.refusal is not None:
        if check is not None and not check.still_locked_s:
            store.users.record_failure(user.id, check.failed, check.locked_until_wall_ns)
        return SignIn(name, user.role, user.id, None, attempt.refusal)
    store.users.record_success(user.id)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    store.users.start_session(
        token_hash(token, config),
        user.id,
        wall_ns=now,
        mono_ns=clock.mono_ns(),
        boot_id=clock.boot_id,
    )
    return SignIn(name, user.role, user.id, token, None, idle_lock_s(user.role, config))


def session_for(
    store: StoreReader, clock: Clock, config: Config, token: str | None
) -> tuple[SessionState, UserRow | None]:
    """The session `token` opens: its user, role and whether it is locked. A resident's
    kiosk session (by PIN or by card) is named `resident:<patient id>` with the kiosk
    role and its idle lock; the user row is then None."""
    row = None if not token else store.users.session(token_hash(token, config))
    user = None if row is None else store.users.get(row.user_id)
    if row is None or user is None:
        return _resident_state(store, clock, config, token), None
    limit = idle_lock_s(user.role, config)
    same_boot = row.boot_id == clock.boot_id
    idle = (clock.mono_ns() - row.last_used_mono_ns) / 1e9 if same_boot else None
    locked = row.ended or user.disabled or idle is None or idle > limit
    return SessionState(user.name, user.role, locked, idle, limit), user


def touch(store: StoreWriter, clock: Clock, config: Config, token: str | None) -> SessionState:
    """The UI saw its user act: an unlocked session's idle time starts again."""
    state, user = session_for(store, clock, config, token)
    if not state.locked and token:
        if user is None:  # a resident's (session_for names no one else without a user)
            store.consent.touch_session(token_hash(token, config), clock.mono_ns())
        else:
            store.users.touch_session(token_hash(token, config), clock.mono_ns())
        state = dataclasses.replace(state, idle_s=0.0)
    return state


# --- a resident at a kiosk (edge_agent.kiosk_sign_in makes their sessions) -------------

RESIDENT_PREFIX = "resident:"  # a box user's name cannot hold ':' (NAME)


def resident_name(patient_id: int) -> str:
    """How a resident signed in at a kiosk is named in the trail: never personal data."""
    return f"{RESIDENT_PREFIX}{patient_id}"


def resident_of(actor_name: str) -> int | None:
    """The patient row a resident's session acts for, or None for a box user."""
    prefix, _, number = actor_name.partition(":")
    return int(number) if prefix == "resident" and number.isdigit() else None


def resident_session(
    store: StoreReader, clock: Clock, config: Config, token: str
) -> tuple[Actor, bool] | None:
    """The resident a kiosk session is for, as the kiosk role, and whether it is locked
    (idle longer than the kiosk's idle lock, another boot, ended by a new PIN or a
    withdrawal); None when the token is no resident's."""
    state = _resident_state(store, clock, config, token)
    if state.user is None:
        return None
    return Actor(state.user, "kiosk"), state.locked


def _resident_state(
    store: StoreReader, clock: Clock, config: Config, token: str | None
) -> SessionState:
    """What a UI shows for a resident's session, or an unknown session's (locked)."""
    row = None if not token else store.consent.session(token_hash(token, config))
    if row is None:
        return SessionState(None, None, True, None, None)
    limit = idle_lock_s("kiosk", config)
    same_boot = row.boot_id == clock.boot_id
    idle = (clock.mono_ns() - row.last_used_mono_ns) / 1e9 if same_boot else None
    locked = row.ended or idle is None or idle > limit
    return SessionState(resident_name(row.patient_id), "kiosk", locked, idle, limit)


# --- who asks ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Asking:
    """Who is on the other end: the OS user (from the kernel) and a session token."""

    os_user: str
    uid: int | None
    session: str | None = None


def os_user_trusted(uid: int | None) -> bool:
    """Root, the daemon's own user, or a member of the daemon's group."""
    if uid is None:
        return False
    if uid in (0, os.geteuid()):
        return True
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return False
    service_gid = os.getegid()
    if entry.pw_gid == service_gid:
        return True
    try:
        return entry.pw_name in grp.getgrgid(service_gid).gr_mem
    except KeyError:
        return False


def acting(store: StoreWriter, clock: Clock, config: Config, caller: Asking, op: str) -> Actor:
    """Who `op` is done for, once they may do it; NotAllowed naming why not."""
    permission = roles.needed_for(op)
    if permission is None:  # sign-in, a session's own checks, ping
        return Actor(caller.os_user, "-")
    if caller.session is not None:
        state, user = session_for(store, clock, config, caller.session)
        resident = (
            None if user is not None else resident_session(store, clock, config, caller.session)
        )
        if resident is not None:  # a resident signed in at a kiosk (edge_agent.kiosk_sign_in)
            who, locked = resident
            if locked:
                raise NotAllowed(f"{op}: the session is locked: sign in again", who)
            store.consent.touch_session(token_hash(caller.session, config), clock.mono_ns())
            if not roles.may(who.role, permission):
                raise NotAllowed(f"{op}: the role {who.role} may not {permission}", who)
            return who
        if user is None:
            raise NotAllowed(f"{op}: the session is not known: sign in", Actor(caller.os_user, "-"))
        who = Actor(user.name, user.role, user.id)
        if state.locked:
            raise NotAllowed(f"{op}: the session is locked: enter the PIN again", who)
        store.users.touch_session(token_hash(caller.session, config), clock.mono_ns())
    else:
        who = _default_actor(store, caller, op)
    if not roles.may(who.role, permission):
        raise NotAllowed(f"{op}: the role {who.role} may not {permission}", who)
    return who


def _default_actor(store: StoreReader, caller: Asking, op: str) -> Actor:
    os_user = Actor(caller.os_user, "-")
    if not os_user_trusted(caller.uid):
        raise NotAllowed(
            f"{op}: {caller.os_user} is not the service's user or in its group: sign in with a PIN",
            os_user,
        )
    enabled = [u for u in store.users.all() if not u.disabled]
    if not enabled:
        return Actor(caller.os_user, "admin")
    if len(enabled) == 1 and enabled[0].role == "admin":
        return Actor(enabled[0].name, "admin", enabled[0].id)
    raise NotAllowed(
        f"{op}: this box has {len(enabled)} users: name yours with --as NAME (its PIN is asked)",
        os_user,
    )
