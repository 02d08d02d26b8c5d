"""The UI's one way to the daemon: sign-in, idle touches and session state over the
control socket (edge_agent.control, docs/contracts.md).

Blocking calls, made from Textual workers (threads), never from the event loop. Every
answer is a typed value; whatever goes wrong is one of two values a screen can show:
`Refused` (the daemon said no, in one line) or `Unreachable` (no daemon answers). No
exception leaves this module, so no traceback reaches a screen.

The sign-in refusal is judged here, not shown as the daemon words it: a screen says only
"wrong user name or PIN" (never which part was wrong) and, when the daemon reports a
lockout, how long it still runs. The session token lives in the caller's memory only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent import control

CALL_TIMEOUT_S = 10.0
# The daemon's words for a lockout: "locked for 30 s more" (a lockout still running) or
# "...; locked for 30 s" (this failure started one): edge_agent.users.judge_sign_in.
_LOCKED_FOR = re.compile(r"locked for (\d{1,7}) s")


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: str
    role: str
    token: str
    idle_lock_s: float | None


@dataclass(frozen=True, slots=True)
class Session:
    """What the daemon says of a session: whose it is and whether it is locked."""

    user: str | None
    role: str | None
    locked: bool
    idle_s: float | None
    idle_lock_s: float | None


@dataclass(frozen=True, slots=True)
class Refused:
    """The daemon said no. `locked_for_s`: a sign-in lockout still runs this long."""

    message: str
    locked_for_s: int | None = None


@dataclass(frozen=True, slots=True)
class Unreachable:
    """No daemon answers on the socket (not running, starting, or not ours to reach)."""

    message: str


@dataclass(frozen=True, slots=True)
class Registered:
    """The resident the daemon registered (or found already registered: created False)."""

    national_id: str
    name: str
    sex: str
    created: bool


class DaemonClient:
    """Calls on the control socket at `socket_path`; each a new connection."""

    def __init__(self, socket_path: Path, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s

    def sign_in(self, name: str, pin: str) -> SignedIn | Refused | Unreachable:
        answer = self._call("users.sign-in", {"name": name, "pin": pin}, None)
        if not isinstance(answer, dict):
            if isinstance(answer, Refused):
                return sign_in_refusal(answer.message)
            return answer
        token, user, role = answer.get("session"), answer.get("user"), answer.get("role")
        if not (isinstance(token, str) and isinstance(user, str) and isinstance(role, str)):
            return Refused("the agent's sign-in answer has no session")
        return SignedIn(user, role, token, _number(answer.get("idle_lock_s")))

    def touch(self, token: str) -> Session | Refused | Unreachable:
        """The user acted: the session's idle time starts again (unless it is locked)."""
        return _session(self._call("users.touch", {}, token))

    def session(self, token: str | None) -> Session | Refused | Unreachable:
        """Whose `token` is and whether it is locked; with None, only whether the daemon
        answers (an unknown session is a locked one)."""
        return _session(self._call("users.session", {}, token))

    def add_patient(
        self, token: str | None, national_id: str, name: str, phone: str | None
    ) -> Registered | Refused | Unreachable:
        """Register a resident (the `patients.add` operation, edge_agent.operations)."""
        args = {"national_id": national_id, "name": name, "phone": phone}
        answer = self._call("patients.add", args, token)
        if not isinstance(answer, dict):
            return answer
        number, who, sex = answer.get("national_id"), answer.get("name"), answer.get("sex")
        if not (isinstance(number, str) and isinstance(who, str) and isinstance(sex, str)):
            return Refused("the agent's answer names no resident")
        return Registered(number, who, sex, answer.get("created") is True)

    def patients(self, token: str | None) -> list[dict[str, Any]] | Refused | Unreachable:
        """Every registered resident (`patients.list`, an audited read)."""
        answer = self._call("patients.list", {}, token)
        if not isinstance(answer, dict):
            return answer
        residents = answer.get("residents")
        if not isinstance(residents, list):
            return Refused("the agent's answer has no residents")
        return [r for r in residents if isinstance(r, dict)]

    def _call(
        self, op: str, args: dict[str, Any], token: str | None
    ) -> dict[str, Any] | Refused | Unreachable:
        try:
            return control.call(self.socket_path, op, args, session=token, timeout_s=self.timeout_s)
        except control.NotListening:
            return Unreachable(f"the agent is not running (no answer on {self.socket_path})")
        except control.OpError as exc:
            return Refused(control.one_line(str(exc)))
        except (OSError, ValueError) as exc:  # a socket error the client did not name
            return Unreachable(control.one_line(f"control socket {self.socket_path}: {exc}"))


def sign_in_refusal(message: str) -> Refused:
    """A refused sign-in as a screen may show it: the lockout's remaining time if the
    daemon reported one, and nothing of which part (name or PIN) was wrong."""
    found = _LOCKED_FOR.search(message)
    return Refused("wrong user name or PIN", int(found.group(1)) if found else None)


def _session(answer: dict[str, Any] | Refused | Unreachable) -> Session | Refused | Unreachable:
    if not isinstance(answer, dict):
        return answer
    user, role, locked = answer.get("user"), answer.get("role"), answer.get("locked")
    if not isinstance(locked, bool):
        return Refused("the agent's session answer has no lock state")
    return Session(
        user if isinstance(user, str) else None,
        role if isinstance(role, str) else None,
        locked,
        _number(answer.get("idle_s")),
        _number(answer.get("idle_lock_s")),
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
