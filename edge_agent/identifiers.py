"""Identifiers that become paths, MQTT topics or store keys: one strict rule for each.

docs/contracts.md "Identifiers": agent ids, MSH-10 control ids and device ids match a strict
character set and length, checked where they enter (config, received topics, received
messages, CLI arguments); paths are never built from message content. Every rule here is
ASCII letters, digits, '-', '_' and '.', starting with a letter or a digit, so a valid id:

- is one MQTT topic level (no '/', and none of the wildcards '+' and '#', MQTT 5.0
  §4.7.1; no NUL, §1.5.4) and one path component that is never '.' or '..';
- needs no quoting in a shell, a log line, a SQL console or an HL7 field (none of the
  delimiters |^~\\& of HL7 v2.6 §2.5.4);
- has one spelling: no Unicode look-alikes, no normalisation forms, no bidi controls.

Errors are one line and name the value safely (`repr` of at most its first 40
characters: control characters escaped, the rest of a 100 kB "id" left out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "AGENT_ID",
    "CLIENT_ID",
    "CONTROL_ID",
    "DEVICE_ID",
    "SHARE_GROUP",
    "IdentifierError",
    "IdentifierRule",
    "shown",
]

_SHOWN_CHARS = 40
_ALLOWED = "letters, digits, '-', '_' or '.'"


def shown(value: object) -> str:
    """A value as it may appear in a one-line error: quoted, escaped, at most 40
    characters of the value and 80 of its escaped form (a `\U0003134b` is 10)."""
    if not isinstance(value, str):
        return f"<{type(value).__name__}>"
    escaped: list[str] = []
    width = 0
    for char in value[:_SHOWN_CHARS]:
        text = repr(char)[1:-1] if char != "'" else "\\'"
        if width + len(text) > 2 * _SHOWN_CHARS:
            break
        escaped.append(text)
        width += len(text)
    quoted = "'" + "".join(escaped) + "'"
    if len(escaped) == len(value):
        return quoted
    return f"{quoted}... ({len(value)} characters)"


@dataclass(frozen=True, slots=True)
class IdentifierRule:
    """One kind of identifier: its name in errors, its length cap and what it becomes."""

    what: str  # "agent id": how errors name it
    max_length: int
    becomes: str  # why the rule is strict, shown in errors
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.\-]{{0,{self.max_length - 1}}}", re.ASCII)
        object.__setattr__(self, "_pattern", pattern)

    def valid(self, value: object) -> bool:
        return isinstance(value, str) and self._pattern.fullmatch(value) is not None

    def problem(self, value: object) -> str | None:
        """What is wrong with `value` (without naming it), None when it is valid."""
        if self.valid(value):
            return None
        if not isinstance(value, str):
            return "must be text"
        if not value:
            return "is empty"
        if len(value) > self.max_length:
            return f"is too long: at most {self.max_length} characters ({self.becomes})"
        for position, char in enumerate(value):
            if not (char.isascii() and (char.isalnum() or char in "-_.")):
                return (
                    f"must be {_ALLOWED} (ASCII only): {char!r} at position {position + 1}"
                    f" is not ({self.becomes})"
                )
        return f"must start with a letter or a digit ({self.becomes})"

    def check(self, value: object) -> str:
        """`value` itself when it is valid; IdentifierError naming it otherwise."""
        if self.valid(value):
            assert isinstance(value, str)
            return value
        raise IdentifierError(self, value)


class IdentifierError(ValueError):
    """An identifier that breaks its rule; `str(e)` is one line naming it safely."""

    def __init__(self, rule: IdentifierRule, value: object) -> None:
        self.rule = rule
        self.value = value
        self.problem = rule.problem(value) or "is not valid"
        super().__init__(f"{rule.what} {shown(value)} {self.problem}")


# The box's name: a level of every topic it uses (edge/v1/{agent}/up), the gateway's
# key for its messages and the folder of its 12-lead sheets (<sheets_dir>/<agent>/).
AGENT_ID = IdentifierRule("agent id", 64, "it is an MQTT topic level and a folder name")

# A configured or paired device: the key of its readings, frames and state rows.
DEVICE_ID = IdentifierRule("device id", 64, "it is a key in the store and in HL7 messages")

# MSH-10, the gateway's dedup key (and MSA-2 of its ACK, `gateway reply --ref`). HL7
# v2.6 allows 199 characters of ST; ours are 26-character ULIDs (edge_agent.clock), a
# UUID is 36: 64 leaves room for other senders and keeps the store's key index small.
CONTROL_ID = IdentifierRule("message control id (MSH-10)", 64, "it is the dedup key of the message")

# The `$share/{group}/...` of several gateways on one subscription: MQTT 5.0 §4.8.2
# forbids '/', '+' and '#' in a ShareName; one group is one key at the broker.
SHARE_GROUP = IdentifierRule("share group", 64, "it is a level of the shared subscription")

# MQTT client ids name the broker's persistent session. MQTT 5.0 §3.1.3.1 only promises
# 1-23 characters of [0-9a-zA-Z]; Mosquitto takes longer ones, and the box's is
# "edge-agent-" + its agent id (at most 75).
CLIENT_ID = IdentifierRule("MQTT client id", 128, "it names the session at the broker")
