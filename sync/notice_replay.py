"""Replay protection for down notices: a recorded notice, correctly tagged, published
again later is not taken a second time (docs/security.md, "Replayed notices").

The `mac` (sync.message_auth) proves that the gateway made a notice, not that it is
new: anyone who recorded "cath lab ready" for one transport could publish the same bytes,
with the same tag, during the next one. So every notice carries, inside the tagged
payload, an `id` (a fresh message id, the rules of MSH-10) and `at`, when its sender
made it (ISO 8601 with the sender's UTC offset), and the box remembers what it took:

- a notice whose id the box remembers is a repeat: MQTT's QoS 1 is "at least once"
  (OASIS MQTT 5.0 §4.3.2), so the same PUBLISH comes again after a lost PUBACK or a
  reconnect, and a replay looks the same. Either way it is ignored quietly: shown once,
  never an error;
- a notice made more than NOTICE_WINDOW_S before the newest one the box has taken is
  stale: a replay of a notice the box no longer remembers, or news too old for a crew;
- a notice made at or before `floor_ns`, the newest of the notices the box had to forget
  to stay within MAX_REMEMBERED, is stale too: the box cannot tell whether it took it.

The reference is the senders' time in the notices taken, not the box's clock: the box
has no RTC. Pure: no I/O, no clock; parsing never raises anything but NoticeStampError,
whose line quotes nothing of the notice.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace

from edge_agent.identifiers import CONTROL_ID

# An ER reply answers a transport under way: from the crew's pre-arrival notice to the
# patient's arrival takes minutes, about an hour at most in a county. The senders (the
# county gateway, the ER's `gateway reply`) keep NTP time within seconds of each other,
# and one broker session delivers a sender's notices in order (MQTT 5.0 §4.6), so a
# genuine notice comes well within an hour of the newest one taken: older is a replay,
# or too old to tell a crew anything.
NOTICE_WINDOW_S = 3600
# Ids kept at most: an ambulance takes a few notices per transport, so 256 covers days of
# them; the window forgets sooner. Kept in the box's store (~12 kB of JSON).
MAX_REMEMBERED = 256
# A notice is one short JSON object (the ER's free text is at most 1000 characters).
MAX_NOTICE_BYTES = 16_384
_MAX_AT = 40  # "2026-12-04T19:30:05.123+08:00" is 29

TAKE = "take"
REPEAT = "repeat"
STALE = "stale"


class NoticeStampError(ValueError):
    """A notice without a usable id or sent time: one line, nothing of it quoted."""


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a notice says of itself: its id and when its sender made it."""

    id: str
    at_ns: int


@dataclass(frozen=True, slots=True)
class NoticeMemory:
    """The notices a box has taken: (id, at_ns) oldest first, the newest `at` taken, and
    how far it has forgotten (notices at or before `floor_ns` are refused)."""

    taken: tuple[tuple[str, int], ...] = ()
    newest_ns: int | None = None
    floor_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Judgement:
    kind: str  # TAKE, REPEAT or STALE
    reason: str | None  # why not taken, one line
    memory: NoticeMemory  # what to remember after it (unchanged unless taken)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _at_ns(text: str) -> int:
    when = dt.datetime.fromisoformat(text)
    if when.utcoffset() is None:
        raise ValueError("no UTC offset")
    return (when - _EPOCH) // dt.timedelta(microseconds=1) * 1000


def stamp_of(payload: bytes) -> Stamp:
    """The notice's id and sent time; NoticeStampError when it has no usable pair."""
    if len(payload) > MAX_NOTICE_BYTES:
        raise NoticeStampError(f"notice is {len(payload)} bytes, more than {MAX_NOTICE_BYTES}")
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise NoticeStampError("notice is not UTF-8 JSON") from None
    if not isinstance(body, dict):
        raise NoticeStampError("notice is not a JSON object")
    notice_id, at = body.get("id"), body.get("at")
    if not isinstance(notice_id, str) or not CONTROL_ID.valid(notice_id):
        raise NoticeStampError('notice has no "id" that is a valid message id')
    if not isinstance(at, str) or len(at) > _MAX_AT:
        raise NoticeStampError(f'notice {notice_id} has no "at" sent time')
    try:
        at_ns = _at_ns(at)
    except (ValueError, OverflowError):
        raise NoticeStampError(
            f'notice {notice_id}: "at" is not an ISO 8601 time with a UTC offset'
        ) from None
    return Stamp(notice_id, at_ns)


def judge(
    memory: NoticeMemory,
    stamp: Stamp,
    *,
    window_s: int = NOTICE_WINDOW_S,
    remembered: int = MAX_REMEMBERED,
) -> Judgement:
    """Whether to take the notice `stamp` names, and what to remember after it."""
    if any(notice_id == stamp.id for notice_id, _ in memory.taken):
        return Judgement(REPEAT, f"notice {stamp.id} was taken already", memory)
    window_ns = window_s * 1_000_000_000
    if memory.newest_ns is not None and stamp.at_ns < memory.newest_ns - window_ns:
        return Judgement(
            STALE,
            f"notice {stamp.id} was made more than {window_s} s before the newest one taken",
            memory,
        )
    if memory.floor_ns is not None and stamp.at_ns <= memory.floor_ns:
        return Judgement(
            STALE, f"notice {stamp.id} is older than the notices this box remembers", memory
        )
    newest = stamp.at_ns if memory.newest_ns is None else max(memory.newest_ns, stamp.at_ns)
    # What the window refuses need not be remembered (the newest only moves forward).
    taken = sorted(
        (
            entry
            for entry in (*memory.taken, (stamp.id, stamp.at_ns))
            if entry[1] >= newest - window_ns
        ),
        key=lambda entry: entry[1],
    )
    floor = memory.floor_ns
    while len(taken) > remembered:
        _, forgotten = taken.pop(0)
        floor = forgotten if floor is None else max(floor, forgotten)
    return Judgement(
        TAKE, None, replace(memory, taken=tuple(taken), newest_ns=newest, floor_ns=floor)
    )


def memory_json(memory: NoticeMemory) -> str:
    """What the box keeps in its store (meta)."""
    return json.dumps(
        {"taken": [list(e) for e in memory.taken], "newest_ns": memory.newest_ns,
         "floor_ns": memory.floor_ns},
        separators=(",", ":"),
    )  # fmt: skip


def memory_from_json(text: str | None) -> NoticeMemory:
    """The memory kept by `memory_json` (empty for None); ValueError for anything else."""
    if text is None:
        return NoticeMemory()
    body = json.loads(text)
    if not isinstance(body, dict) or set(body) != {"taken", "newest_ns", "floor_ns"}:
        raise ValueError("not a notice memory")
    newest, floor, taken = body["newest_ns"], body["floor_ns"], body["taken"]
    for value in (newest, floor):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError("a time is not an integer")
    if not isinstance(taken, list) or len(taken) > MAX_REMEMBERED:
        raise ValueError("taken is not a list of remembered notices")
    entries: list[tuple[str, int]] = []
    for entry in taken:
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], str)
            or not CONTROL_ID.valid(entry[0])
            or not isinstance(entry[1], int)
            or isinstance(entry[1], bool)
        ):
            raise ValueError("a remembered notice is not (id, time)")
        entries.append((entry[0], entry[1]))
    return NoticeMemory(tuple(entries), newest, floor)
