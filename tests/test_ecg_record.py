"""The one ECG resolution helper: leads of a cart file put on one resolution and offset,
exactly or not at all (record.on_finest_resolution, used by the aECG and DICOM readers)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.ecg.record import NoCommonResolution, ScaledLead, on_finest_resolution

D = Decimal


def lead(
    name: str, uv: str, offset: str = "0", samples: tuple[int, ...] = (0, 1, -2)
) -> ScaledLead:
    return ScaledLead(name, samples, D(uv), D(offset))


@pytest.mark.parametrize(
    ("leads", "offset", "want", "resolution"),
    [
        # One resolution, one offset: the samples as stored.
        ([lead("I", "4.88"), lead("II", "4.88")], "0", {"I": (0, 1, -2), "II": (0, 1, -2)}, "4.88"),
        # A coarser lead (5 µV = 2 × 2.5 µV): its samples doubled.
        ([lead("I", "2.5"), lead("II", "5")], "0", {"I": (0, 1, -2), "II": (0, 2, -4)}, "2.5"),
        # The finest need not come first; 1 mV per unit is 1000 µV steps of 1 µV.
        (
            [lead("V1", "1000"), lead("V2", "1")],
            "0",
            {"V1": (0, 1000, -2000), "V2": (0, 1, -2)},
            "1",
        ),
        # An offset 5 µV above the record's, at 2.5 µV per unit: two steps added.
        (
            [lead("I", "2.5"), lead("II", "2.5", "5")],
            "0",
            {"I": (0, 1, -2), "II": (2, 3, 0)},
            "2.5",
        ),
        # Both at once, and an offset below: 5 µV per unit from -2.5 µV, onto 2.5 from 0.
        (
            [lead("I", "2.5"), lead("II", "5", "-2.5")],
            "0",
            {"I": (0, 1, -2), "II": (-1, 1, -5)},
            "2.5",
        ),
    ],
)
def test_leads_are_put_on_the_finest_resolution_exactly(
    leads: list[ScaledLead], offset: str, want: dict[str, tuple[int, ...]], resolution: str
) -> None:
    samples, got = on_finest_resolution(leads, D(offset))
    assert samples == want and got == D(resolution)


@pytest.mark.parametrize(
    ("leads", "offset", "refused", "part"),
    [
        ([lead("I", "2.5"), lead("II", "4")], "0", "II", "scale"),  # 4 is 1.6 × 2.5
        ([lead("I", "2.5"), lead("II", "2.5", "1")], "0", "II", "offset"),  # 0.4 of a step
        # The first lead (in order) that cannot be is the one named.
        ([lead("I", "2.5", "1"), lead("II", "3.75")], "0", "I", "offset"),
        # Exponents too far apart to subtract exactly: refused, never rounded.
        ([lead("I", "1", "1E+999"), lead("II", "1", "1E-999")], "1E-999", "I", "offset"),
    ],
)
def test_a_lead_that_cannot_be_put_exactly_is_named(
    leads: list[ScaledLead], offset: str, refused: str, part: str
) -> None:
    with pytest.raises(NoCommonResolution) as caught:
        on_finest_resolution(leads, D(offset))
    assert (caught.value.lead.name, caught.value.part) == (refused, part)
    assert caught.value.finest == min(leads, key=lambda one: one.uv_per_unit)


resolutions = st.decimals(min_value=D("0.001"), max_value=D(1000), places=3).filter(bool)


@given(
    resolutions,
    st.decimals(min_value=-1000, max_value=1000, places=3),
    st.lists(
        st.tuples(
            st.integers(1, 8),
            st.integers(-50, 50),
            st.lists(st.integers(-32768, 32767), max_size=8),
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_every_sample_keeps_its_microvolts(
    finest: Decimal, offset: Decimal, shapes: list[tuple[int, int, list[int]]]
) -> None:
    """Leads at whole multiples of one resolution, offsets whole steps apart: every
    sample's physical value (offset + resolution × sample) is the same after."""
    leads = [
        ScaledLead(f"L{n}", tuple(samples), finest * factor, offset + finest * steps)
        for n, (factor, steps, samples) in enumerate(shapes)
    ]
    leads.append(ScaledLead("finest", (1,), finest, offset))
    samples, resolution = on_finest_resolution(leads, offset)
    assert resolution == finest
    for one in leads:
        before = [one.offset_uv + one.uv_per_unit * s for s in one.samples]
        assert [offset + resolution * s for s in samples[one.name]] == before
