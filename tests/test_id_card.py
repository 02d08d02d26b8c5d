"""The ID-card reader's line (edge_agent/id_card.py): a hostile input, parsed purely.
No reader was at hand: the lines here are this project's bridge format."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from operated_box import RESIDENT
from residents import resident

from edge_agent import id_card

TODAY = dt.date(2026, 12, 3)
# GB 11643-1999's worked example: born 1949-12-31, female.
GOOD = f"张三|女|汉|19491231|北京市朝阳区某街1号|{RESIDENT}|北京市公安局朝阳分局|20100101|长期"


class Bridge:
    """A reader bridge handing out lines given in advance."""

    def __init__(self, *lines: bytes | None) -> None:
        self.lines = list(lines)

    def read_line(self) -> bytes | None:
        return self.lines.pop(0)


def test_a_card_gives_its_number_name_sex_and_validity_and_nothing_else() -> None:
    card = id_card.parse(GOOD.encode() + b"\r\n", today=TODAY)
    assert card == id_card.IdCard(RESIDENT, "张三", "F", dt.date(1949, 12, 31), None)
    assert "朝阳区" not in repr(card)  # the address is dropped
    bridge = Bridge(None, GOOD.encode())
    assert id_card.read(bridge, today=TODAY) is None  # no card on the reader
    assert id_card.read(bridge, today=TODAY) == card
    limited = GOOD.replace("长期", "20300101").replace("张三", "阿依古丽·买买提")
    assert id_card.parse(limited.encode(), today=TODAY).valid_until == dt.date(2030, 1, 1)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (GOOD.replace("|长期", ""), "9 fields"),
        (GOOD.replace("女", "男"), "does not agree"),
        (GOOD.replace("19491231", "19491230", 1), "does not agree"),
        (GOOD.replace(RESIDENT, RESIDENT[:-1] + "1"), "not valid"),
        (GOOD.replace("长期", "20201231"), "expired"),
        (GOOD.replace("20100101", "20270101"), "not valid yet"),
        (GOOD.replace("张三", ""), "name must be 1 to 30"),
        (GOOD.replace("张三", "张\x00三"), "control"),
        (GOOD.replace("张三", "张\u202e三"), "control"),
        (GOOD.replace("女", "F"), "男 or 女"),
        (GOOD.replace("20100101", "2010-1-1"), "valid from is not a date"),
        (GOOD + "|" + "x" * 1100, "longer than 1024"),
    ],
)
def test_a_bad_line_is_one_error_that_never_quotes_it(line: str, message: str) -> None:
    with pytest.raises(id_card.IdCardError, match=message) as bad:
        id_card.parse(line.encode(), today=TODAY)
    assert "\n" not in str(bad.value) and RESIDENT not in str(bad.value)
    assert "张" not in str(bad.value)


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(id_card.IdCardError, match="not UTF-8"):
        id_card.parse(GOOD.encode("gb18030"), today=TODAY)


@given(st.binary(max_size=1500))
def test_any_bytes_give_a_valid_card_or_one_id_card_error(raw: bytes) -> None:
    try:
        card = id_card.parse(raw, today=TODAY)
    except id_card.IdCardError as exc:
        assert "\n" not in str(exc)
        return
    assert card.birth_date <= TODAY and card.sex in ("M", "F")


@given(
    n=st.integers(min_value=0, max_value=20_000),
    name=st.text(min_size=1, max_size=40),
    field=st.sampled_from([0, 2, 4, 6]),
    edit=st.text(max_size=60),
)
def test_any_name_or_free_field_is_kept_exactly_or_refused(
    n: int, name: str, field: int, edit: str
) -> None:
    who = resident(n)
    number = who.national_id
    born = number[6:14]
    sex = "男" if int(number[16]) % 2 else "女"
    fields = [name, sex, "汉", born, "某地", number, "某公安局", "20200101", "长期"]
    if field:
        fields[field] = edit
    try:
        card = id_card.parse("|".join(fields).encode(), today=TODAY)
    except id_card.IdCardError:
        return
    assert card.national_id == number and card.name == name.strip()
    assert "|" not in card.name and 1 <= len(card.name) <= id_card.MAX_NAME
    assert all(c == " " or c.isprintable() for c in card.name)
