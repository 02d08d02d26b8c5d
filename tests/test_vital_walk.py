"""The simulators' one random walk: bounded, pulled to rest, a value, reproducible."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.simulators.vital_walk import VitalWalk

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def walks(draw: st.DrawFn) -> VitalWalk:
    # + 0.0 turns -0.0 into 0.0: sorted() keeps (0.0, -0.0) as drawn, and
    # floats(min_value=0.0, max_value=-0.0) is an empty range to hypothesis.
    low, high = sorted((draw(finite) + 0.0, draw(finite) + 0.0))
    value = draw(st.floats(min_value=low, max_value=high))
    step = draw(st.floats(min_value=0, max_value=1e3))
    pull = draw(st.floats(min_value=0, max_value=1))
    return VitalWalk.resting(value, low, high, step, pull=pull)


def path(walk: VitalWalk, seed: int, steps: int) -> list[float]:
    rng = random.Random(seed)
    values = []
    for _ in range(steps):
        walk = walk.stepped(rng)
        values.append(walk.value)
    return values


@given(walks(), st.integers(0, 2**32), st.integers(1, 200))
def test_a_walk_stays_within_its_bounds(walk: VitalWalk, seed: int, steps: int) -> None:
    assert all(walk.low <= value <= walk.high for value in path(walk, seed, steps))


@given(walks(), st.integers(0, 2**32), st.integers(1, 100))
def test_the_same_seed_gives_the_same_path(walk: VitalWalk, seed: int, steps: int) -> None:
    assert path(walk, seed, steps) == path(walk, seed, steps)


@given(walks(), st.integers(0, 2**32))
def test_a_step_moves_at_most_its_step_plus_the_pull(walk: VitalWalk, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        after = walk.stepped(rng)
        reach = walk.step + walk.pull * abs(walk.rest - walk.value)
        assert abs(after.value - walk.value) <= reach * (1 + 1e-9) + 1e-9
        walk = after


@given(walks(), st.integers(0, 2**32))
def test_stepping_leaves_the_walk_as_it_was(walk: VitalWalk, seed: int) -> None:
    before = (walk.value, walk.low, walk.high, walk.step, walk.rest, walk.pull)
    walk.stepped(random.Random(seed))
    assert (walk.value, walk.low, walk.high, walk.step, walk.rest, walk.pull) == before


def test_the_pull_brings_a_walk_back_from_a_bound() -> None:
    walk = VitalWalk(value=100, low=86, high=100, step=0, rest=97, pull=0.05)
    assert walk.moved(0).value == pytest.approx(99.85)  # 5 % of the 3 points back
    assert VitalWalk.resting(97, 86, 100, 0, pull=0).moved(10).value == 100  # clamped


@pytest.mark.parametrize(
    ("walk", "seed", "values"),
    [
        # The Masimo simulator's SpO2, seed 7. Pinned: another order of the arithmetic
        # changes the last bits of every seeded stream the simulators write.
        (
            VitalWalk.resting(97, 86, 100, 0.6),
            7,
            [96.7885993177998, 96.3801883606192, 96.59230031023607, 96.09960883872532],
        ),
        # The cuff's systolic pressure (no pull), seed 7.
        (
            VitalWalk.resting(138.0, 95.0, 200.0, 6, pull=0),
            7,
            [135.88599317799796, 131.69618326509197, 133.50739694157022],
        ),
    ],
)
def test_a_seeded_walk_gives_the_values_it_always_gave(
    walk: VitalWalk, seed: int, values: list[float]
) -> None:
    assert path(walk, seed, len(values)) == values


@pytest.mark.parametrize(
    ("value", "step", "pull"), [(101, 1, 0.05), (85, 1, 0.05), (97, -1, 0.05), (97, 1, 1.5)]
)
def test_a_walk_that_cannot_be_is_refused(value: float, step: float, pull: float) -> None:
    with pytest.raises(ValueError, match=r"resting value|step"):
        VitalWalk.resting(value, 86, 100, step, pull=pull)
