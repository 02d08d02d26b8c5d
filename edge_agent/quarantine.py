"""What a device's bad frames may cost the store, and what they say about its line.

Bounded quarantine (docs/contracts.md). Every frame a decoder rejects is counted, per device
and kind of reason, in `quarantine_tally`; only some keep their bytes (a `raw_frame` row
and a `quarantine` row): the first KEEP_FIRST of each device, then one every
SAMPLE_EVERY_S seconds, never more than KEEP_MAX per device. A port full of line noise
(a wrong baud rate gives a serial port a few bad frames a second, all day) then costs a
few hundred rows and one counter per reason, not a database the size of the noise.
Frames that decode are never touched by any of this: they are always kept whole.

Reasons quote the bad input ("checksum 0x3a, expected 0x17", "unexpected text 'xq'"),
so they are counted under a key with quotes, hex and digits blanked; a device gets at
most MAX_REASONS keys, the rest count under OTHER_REASONS.

The reject watch: a serial port whose recent frames are mostly rejects is read with the
wrong driver or at the wrong baud rate (noise never decodes); the device's state says so
until good frames return. Pure logic: the recorder gives it outcomes and writes the
state it decides.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

KEEP_FIRST = 20
SAMPLE_EVERY_S = 60.0
KEEP_MAX = 200
MAX_REASONS = 32
OTHER_REASONS = "other reasons"
MAX_REASON_KEY = 160

# A recent window of frames: at least REJECTING_AT of the last WINDOW rejected (and more
# rejects than good frames) says "wrong driver or baud rate"; CLEAR_RUN good frames in a
# row say the line is right again. A real device's odd bad frame (a lost byte: 1 in 20
# at worst on a noisy cable) stays far below; noise on a 9600 baud line fills the window
# in a few seconds.
WINDOW = 20
REJECTING_AT = 10
CLEAR_RUN = 5
REJECTING = "rejecting"  # device.state while the watch says so
WRONG_LINE = "wrong driver or baud rate"

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"0x[0-9A-Fa-f]+|\d+")


def _blank(number: re.Match[str]) -> str:
    return "0x…" if number.group().startswith("0x") else "#"


def reason_key(reason: str) -> str:
    """The kind of a reason, without what it quotes: counting key of the tally."""
    return _NUMBER.sub(_blank, _QUOTED.sub("'…'", reason))[:MAX_REASON_KEY]


@dataclass
class _DeviceBudget:
    kept: int
    reasons: set[str]
    last_sample_ns: int | None = None


class QuarantineBudget:
    """Which bad frames keep their bytes, per device; the store's counts seed it.

    `known(device)` says whether the device's counts are loaded; `load` gives them (what
    the store holds: bad frames kept so far, reason keys in the tally).
    """

    def __init__(
        self,
        *,
        keep_first: int = KEEP_FIRST,
        sample_every_s: float = SAMPLE_EVERY_S,
        keep_max: int = KEEP_MAX,
        max_reasons: int = MAX_REASONS,
    ) -> None:
        self._keep_first = keep_first
        self._sample_every_ns = int(sample_every_s * 1e9)
        self._keep_max = keep_max
        self._max_reasons = max_reasons
        self._devices: dict[str, _DeviceBudget] = {}

    def known(self, device_id: str) -> bool:
        return device_id in self._devices

    def load(self, device_id: str, kept: int, reasons: set[str]) -> None:
        self._devices[device_id] = _DeviceBudget(kept, set(reasons))

    def keep(self, device_id: str, wall_ns: int) -> bool:
        """Whether this bad frame keeps its bytes; counts it as kept if so."""
        budget = self._devices[device_id]
        if budget.kept >= self._keep_max:
            return False
        if budget.kept >= self._keep_first:
            last = budget.last_sample_ns
            # A wall clock set backwards (no RTC) must not stop the sampling for good.
            if last is not None and 0 <= wall_ns - last < self._sample_every_ns:
                return False
            budget.last_sample_ns = wall_ns
        budget.kept += 1
        return True

    def key(self, device_id: str, reason: str) -> str:
        """The tally key for `reason` at this device (OTHER_REASONS past the cap)."""
        budget = self._devices[device_id]
        key = reason_key(reason)
        if key in budget.reasons:
            return key
        if len(budget.reasons) >= self._max_reasons:
            return OTHER_REASONS
        budget.reasons.add(key)
        return key


@dataclass
class _Window:
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=WINDOW))
    good_run: int = 0
    rejecting: bool = False


class RejectWatch:
    """Per device: is its line producing mostly rejects? Changes only, to be written."""

    def __init__(self) -> None:
        self._devices: dict[str, _Window] = {}

    def rejecting(self, device_id: str) -> bool:
        window = self._devices.get(device_id)
        return window is not None and window.rejecting

    def note(self, device_id: str, rejected: bool) -> bool | None:
        """One more frame's outcome; True when the device starts producing mostly
        rejects, False when good frames have returned, None when nothing changed."""
        window = self._devices.setdefault(device_id, _Window())
        window.outcomes.append(rejected)
        window.good_run = 0 if rejected else window.good_run + 1
        if not window.rejecting:
            bad = sum(window.outcomes)
            if bad >= REJECTING_AT and bad * 2 > len(window.outcomes):
                window.rejecting = True
                return True
            return None
        if window.good_run >= CLEAR_RUN:
            window.rejecting = False
            window.outcomes.clear()
            return False
        return None

    def detail(self, device_id: str, last_reason: str) -> str:
        window = self._devices[device_id]
        bad = sum(window.outcomes)
        return (
            f"{WRONG_LINE}: {bad} of the last {len(window.outcomes)} frames rejected"
            f" (last: {last_reason})"
        )
