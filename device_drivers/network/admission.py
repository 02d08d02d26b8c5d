"""Which TCP connections a listener keeps when more arrive than it should hold.

The MLLP listener held 64 connections and refused the 65th: 1,000 idle connections
(a port scanner, a misconfigured central station, anyone on the clinic LAN) locked
the real monitor out. The rules now, decided here without sockets or clocks:

- An address holds at most `per_address` connections. A new one from an address at its
  limit replaces that address's longest-idle connection (a monitor that reconnects after
  a cable pull leaves a dead socket behind); only if all of them are mid-message is the
  new one refused. One address can no longer take every slot.
- The listener holds at most `total`. When full, a new connection replaces the
  longest-idle one of any address, so a monitor that just connected gets in.
- Idle means not in the middle of a message: no bytes since the last whole message and
  no answer being committed or written. A connection mid-message is never dropped.
  Among idle ones, those that never delivered a whole message go first (a flood of new
  connections does not push out a monitor that is working), then the one silent longest.

The listener itself closes a connection silent for `idle_timeout_s`, and one whose
message has not ended `message_timeout_s` after its first byte (a slowloris sending a
byte every few seconds); the framer's size cap already bounds an endless block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

__all__ = ["Admission", "ConnectionLimits", "Held", "admit"]


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """A listener's connection limits (config keys of the same names, edge_agent.config)."""

    max_connections: int = 64
    max_connections_per_address: int = 4
    idle_timeout_s: float = 300.0
    message_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {self.max_connections}")
        if not 1 <= self.max_connections_per_address <= self.max_connections:
            raise ValueError(
                "max_connections_per_address must be between 1 and max_connections"
                f" ({self.max_connections}), got {self.max_connections_per_address}"
            )
        for name in ("idle_timeout_s", "message_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0, got {getattr(self, name)}")


class Held(Protocol):
    """What admission needs to know of an open connection."""

    @property
    def address(self) -> str: ...

    @property
    def busy(self) -> bool: ...  # mid-message: bytes of an unfinished one, or answering

    @property
    def delivered(self) -> int: ...  # whole messages received on it

    @property
    def last_active(self) -> float: ...  # monotonic time of its last byte (or its accept)


C = TypeVar("C", bound=Held)


@dataclass(frozen=True, slots=True)
class Admission(Generic[C]):
    """Whether a new connection is kept, and which held ones to drop to make room."""

    admit: bool
    drop: tuple[C, ...] = ()
    reason: str = ""  # why something was dropped or refused; "" when nothing was


def _first_to_drop(candidates: Sequence[C]) -> C | None:
    idle = [c for c in candidates if not c.busy]
    if not idle:
        return None
    return min(idle, key=lambda c: (c.delivered > 0, c.last_active))


def admit(held: Sequence[C], address: str, limits: ConnectionLimits) -> Admission[C]:
    """The decision for a new connection from `address`, given the connections held."""
    drop: list[C] = []
    reasons: list[str] = []
    same = [c for c in held if c.address == address]
    if len(same) >= limits.max_connections_per_address:
        victim = _first_to_drop(same)
        if victim is None:
            return Admission(
                False,
                reason=f"{address} has {len(same)} connections (the limit), all mid-message",
            )
        drop.append(victim)
        reasons.append(f"{address} is at its limit of {limits.max_connections_per_address}")
    if len(held) - len(drop) >= limits.max_connections:
        victim = _first_to_drop([c for c in held if all(c is not d for d in drop)])
        if victim is None:
            return Admission(False, reason=f"{len(held)} connections (the limit), all mid-message")
        drop.append(victim)
        reasons.append(f"the listener is at its limit of {limits.max_connections}")
    return Admission(True, tuple(drop), "; ".join(reasons))
