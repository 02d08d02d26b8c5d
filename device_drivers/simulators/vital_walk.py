"""A vital sign drifting within its bounds: the one random walk every simulator uses.

A resting patient's values drift, they do not jump: each step adds a move drawn
uniformly from [-step, step], takes back `pull` of the distance to the resting value (so
a walk does not stick to a bound), and stays within [low, high]. A value measured now and
then (a cuff's pressures, a meter's glucose) walks with no pull: each reading is the last
one plus a move, clamped.

The walk is a value: `stepped` returns the next walk and leaves this one as it was, so
a simulator's resting patient is a set of constants and its path depends only on the
generator it draws from. Each simulator passes its own `random.Random(seed)`, the one it
also draws alarms and probe-off spells from; the same seed gives the same stream.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

# The share of the distance to the resting value a monitor's walk takes back each step.
PULL = 0.05


@dataclass(frozen=True, slots=True)
class VitalWalk:
    """A value in [low, high] (its unit: the simulator's), its resting value and its
    largest move per step."""

    value: float
    low: float
    high: float
    step: float
    rest: float
    pull: float = PULL

    @classmethod
    def resting(
        cls, value: float, low: float, high: float, step: float, *, pull: float = PULL
    ) -> VitalWalk:
        """A walk that starts at its resting value."""
        if not low <= value <= high:
            raise ValueError(f"resting value {value} is outside [{low}, {high}]")
        if step < 0 or not 0 <= pull <= 1:
            raise ValueError(f"step {step} must not be negative, pull {pull} must be in [0, 1]")
        return cls(value, low, high, step, rest=value, pull=pull)

    def moved(self, move: float) -> VitalWalk:
        """The walk after a move of `move`, the pull added, kept within its bounds."""
        # One sum, then the clamp: another order of the additions changes the last bits,
        # and so every seeded stream the simulators write.
        value = self.value + (move + (self.rest - self.value) * self.pull)
        return replace(self, value=min(self.high, max(self.low, value)))

    def stepped(self, rng: random.Random) -> VitalWalk:
        """The next walk, its move drawn from `rng` (one uniform draw)."""
        return self.moved(rng.uniform(-self.step, self.step))
