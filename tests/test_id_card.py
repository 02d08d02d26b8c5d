"""The ID card's text (edge_agent/id_card.py, GA/T 490-2019's layout): a hostile input,
decoded purely. The bytes are written out in tests/id_card_bytes.py from the layout."""

from __future__ import annotations

import datetime as dt

import id_card_bytes as b
import pytest
from hypothesis import given
from hypothesis import strategies as st
from operated_box import RESIDENT
from residents import resident

from edge_agent import id_card

TODAY = dt.date(2026, 12, 3)


def test_a_card_gives_its_number_name_sex_and_validity_and_nothing_else() -> None:
    card = id_card.from_text(b.TEXT, today=TODAY)
    assert card == id_card.IdCard(RESIDENT, "张三", "F", dt.date(1949, 12, 31), None)
    assert "朝阳" not in repr(card)  # the address and the authority are dropped
    limited = b.card_text(valid_until="32 00 30 00 33 00 30 00 30 00 31 00 30 00 31 00 ")
    assert id_card.from_text(limited, today=TODAY).valid_until == dt.date(2030, 1, 1)


def test_the_encoder_writes_the_bytes_the_layout_gives() -> None:
    made = id_card.to_text(
        name="张三",
        sex_code="2",
        ethnic_code="01",
        birth="19491231",
        address="北京市朝阳区某街1号",
        number=RESIDENT,
        authority="北京市公安局朝阳分局",
        valid_from="20100101",
        valid_until="长期",
    )
    assert made == b.TEXT
    with pytest.raises(ValueError, match="name is longer than 15"):
        id_card.to_text(
            name="张" * 16, sex_code="2", ethnic_code="01", birth="19491231", address="x",
            number=RESIDENT, authority="x", valid_from="20100101", valid_until="长期",
        )  # fmt: skip


def _with(text: bytes, at: int, raw: bytes) -> bytes:
    return text[:at] + raw + text[at + len(raw) :]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # the capture's validity, 2011-03-03 to 2021-03-03: expired by now
        (b.EXPIRED_TEXT, "expired"),
        (
            b.card_text(valid_from="32 00 30 00 32 00 37 00 30 00 31 00 30 00 31 00 "),
            "not valid yet",
        ),
        (b.card_text(sex=b.SEX_MALE), "does not agree"),
        (b.card_text(sex="33 00 "), "sex code is not 1 or 2"),
        (b.card_text(number=b.NUMBER.replace("58 00", "31 00")), "number is not valid"),
        (b.card_text(name=b.SPACES * 15), "name is empty"),
        (b.card_text(name="20 5F 00 00 09 4E " + b.SPACES * 12), "control"),
        (b.card_text(name="20 5F 2E 20 09 4E " + b.SPACES * 12), "control"),  # U+202E
        (b.card_text(name="3D D8 00 DE " + b.SPACES * 13), "surrogate"),
        (b.card_text(valid_from="32 00 30 00 31 00 30 00 2D 00 31 00 2D 00 31 00 "), "valid from"),
        # a card-type letter at byte 248, in the reserved area (other cards' layouts)
        (b.card_text(reserved=b.SPACES * 14 + "4A 00 " + b.SPACES * 3), "not a resident ID"),
        (_with(b.TEXT, 32, b.hx("41 00")), "ethnic code"),
        (b.TEXT[:255], "255 bytes, not 256"),
        (b.TEXT + b"\x20", "257 bytes"),
    ],
)
def test_bad_text_is_one_error_that_never_quotes_it(text: bytes, message: str) -> None:
    with pytest.raises(id_card.IdCardError, match=message) as bad:
        id_card.from_text(text, today=TODAY)
    said = str(bad.value)
    assert "\n" not in said and RESIDENT not in said and "张" not in said


def test_nul_padding_is_taken_as_space_padding() -> None:
    """A reader that pads with NULs instead of spaces (not seen, cheap to allow)."""
    nul_padded = b.card_text(name="20 5F 09 4E " + "00 00 " * 13)
    assert id_card.from_text(nul_padded, today=TODAY).name == "张三"


@given(st.binary(min_size=256, max_size=256))
def test_any_256_bytes_give_a_valid_card_or_one_id_card_error(raw: bytes) -> None:
    try:
        card = id_card.from_text(raw, today=TODAY)
    except id_card.IdCardError as exc:
        assert "\n" not in str(exc)
        return
    assert card.birth_date <= TODAY and card.sex in ("M", "F")


@given(st.binary(max_size=600).filter(lambda raw: len(raw) != 256))
def test_text_of_another_length_is_refused(raw: bytes) -> None:
    with pytest.raises(id_card.IdCardError, match="not 256"):
        id_card.from_text(raw, today=TODAY)


_NAME_CHARS = st.characters(exclude_categories=("C", "Z"), max_codepoint=0xFFFF)


@given(
    name=st.text(_NAME_CHARS, min_size=1, max_size=15),
    n=st.integers(0, 24_000),
    male=st.booleans(),
)
def test_what_is_decoded_is_what_the_card_holds(name: str, n: int, male: bool) -> None:
    person = resident(n)
    number = person.national_id
    sex = "1" if int(number[16]) % 2 else "2"
    text = id_card.to_text(
        name=name,
        sex_code=sex,
        ethnic_code="01",
        birth=number[6:14],
        address="某地",
        number=number,
        authority="某公安局",
        valid_from="20200101",
        valid_until="长期" if male else "20401231",
    )
    card = id_card.from_text(text, today=TODAY)
    assert card.name == name.strip(" ") and card.national_id == number
    assert card.sex == ("M" if sex == "1" else "F")
    assert card.valid_until == (None if male else dt.date(2040, 12, 31))
