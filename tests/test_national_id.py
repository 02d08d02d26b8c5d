"""GB 11643-1999 resident identity numbers (docs/protocols/national-id.md)."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent import national_id


def _valid(first17: str) -> str:
    return first17 + national_id.check_character(first17)


@pytest.mark.parametrize(
    ("number", "birth", "sex"),
    [
        # GB 11643-1999's own worked example: 11010519491231002X (female, 1949-12-31)
        ("11010519491231002X", dt.date(1949, 12, 31), "F"),
        # check digit computed by hand: weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
        (_valid("44030419900307451"), dt.date(1990, 3, 7), "M"),
        ("11010519491231002x", dt.date(1949, 12, 31), "F"),  # lower-case x accepted
    ],
)
def test_valid_numbers(number: str, birth: dt.date, sex: str) -> None:
    parsed = national_id.parse(number)
    assert parsed.birth_date == birth and parsed.sex == sex and parsed.number == number.upper()


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("110105194912310021", "check character is 1, expected X"),
        ("1101051949123100", "must be 18 characters"),
        ("11010519491331002X", "are not a birth date"),
        ("1101051949A231002X", "17 digits then a digit or X"),
        (_valid("11010530000101001"), "not plausible"),
    ],
)
def test_invalid_numbers(number: str, message: str) -> None:
    with pytest.raises(national_id.NationalIdError, match=message):
        national_id.parse(number)


@given(st.text(max_size=30))
def test_parse_only_raises_its_own_error(text: str) -> None:
    with contextlib.suppress(national_id.NationalIdError):
        national_id.parse(text)


@given(st.from_regex(r"\A[0-9]{17}[0-9X]\Z") | st.from_regex(r"\A[0-9]{12,20}\Z"))
def test_a_refusal_never_quotes_the_number_or_its_birth_date(number: str) -> None:
    try:
        national_id.parse(number)
    except national_id.NationalIdError as exc:
        message = str(exc)
        # any 6 digits in a row of the number (its area, its birth date, its sequence)
        quoted = [number[i : i + 6] for i in range(len(number) - 5) if number[i : i + 6] in message]
        assert not quoted, message
