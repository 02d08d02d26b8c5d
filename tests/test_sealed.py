"""Sealed values and blind indexes (edge_agent.crypto.sealed).

Opening is a boundary (a stolen store can be edited): any text gives a SealError or the
plaintext that was sealed at that place, never another one."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.crypto import keyring, sealed
from edge_agent.crypto.suites import SealError

INTL = keyring.new_keyring("intl", "2026-01-01T00:00:00Z")
BOTH = INTL.with_new_key("sm", "2026-02-01T00:00:00Z")  # k1 intl, k2 sm (active)
NAME = "patient.name"


@pytest.mark.parametrize("keys", [INTL, BOTH], ids=["intl", "sm"])
@pytest.mark.parametrize("text", ["张三", "", "欧阳 娜娜", "11010519491231002X", "x" * 300])
def test_a_sealed_value_opens_to_what_was_sealed(keys: keyring.Keyring, text: str) -> None:
    token = sealed.seal(keys, NAME, text)
    suite_name, key_id = keys.active.suite.name, keys.active_id
    assert token.startswith(f"v1.{suite_name}.{key_id}.") and token.isascii()
    assert sealed.key_id_of(token) == key_id
    assert sealed.open_value(keys, NAME, token) == text
    assert text.encode() not in token.encode() or text == ""


def test_each_seal_has_its_own_nonce() -> None:
    tokens = {sealed.seal(INTL, NAME, "张三") for _ in range(50)}
    assert len(tokens) == 50


def test_old_values_open_after_the_suite_changed() -> None:
    old = sealed.seal(INTL, NAME, "李四")  # k1, intl
    assert sealed.open_value(BOTH, NAME, old) == "李四"
    new = sealed.seal(BOTH, NAME, "李四")
    assert new.startswith("v1.sm.k2.")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("v1.intl.k1.", "v1.sm.k1."), "names suite sm, key k1 is intl"),
        (lambda t: t.replace("v1.intl.k1.", "v1.intl.k7."), "key k7, which this keyring"),
        (lambda t: t.replace("v1.", "v2.", 1), "not a sealed value"),
        (lambda t: "v1.intl.k1.AAAA", "too short"),
        (lambda t: "v1.intl.k1.AAAAA", "not base64url"),
        (lambda t: t[:-1] + "!", "not a sealed value"),
        (lambda t: t + "==", "not a sealed value"),
        (lambda t: "plain 张三", "not a sealed value"),
    ],
)
def test_a_value_altered_does_not_open(change: Callable[[str], str], message: str) -> None:
    token = sealed.seal(INTL, NAME, "张三")
    with pytest.raises(SealError, match=message):
        sealed.open_value(INTL, NAME, change(token))


def test_a_value_moved_to_another_column_does_not_open() -> None:
    # The place is part of what was authenticated.
    token = sealed.seal(INTL, NAME, "张三")
    with pytest.raises(SealError, match=r"patient\.phone: does not open"):
        sealed.open_value(INTL, "patient.phone", token)


def test_a_value_under_another_box_key_does_not_open() -> None:
    other = keyring.new_keyring("intl", "2026-01-01T00:00:00Z")
    with pytest.raises(SealError, match="does not open"):
        sealed.open_value(other, NAME, sealed.seal(INTL, NAME, "张三"))


@given(st.text(max_size=200))
def test_any_text_does_not_open(text: str) -> None:
    with pytest.raises(SealError):
        sealed.open_value(BOTH, NAME, text)


@given(
    plaintext=st.text(max_size=40),
    position=st.integers(min_value=0),
    replacement=st.characters(),
    cut=st.integers(min_value=0, max_value=200),
)
def test_an_edited_sealed_value_opens_to_its_plaintext_or_not_at_all(
    plaintext: str, position: int, replacement: str, cut: int
) -> None:
    token = sealed.seal(BOTH, NAME, plaintext)
    i = position % len(token)
    for edited in (
        token[:i] + replacement + token[i + 1 :],
        token[:cut],
        token[:i] + token[i + 1 :],
    ):
        try:
            opened = sealed.open_value(BOTH, NAME, edited)
        except SealError as exc:
            assert "\n" not in str(exc)
        else:
            assert opened == plaintext and edited == token


@given(st.binary(max_size=80))
def test_random_bytes_after_a_valid_header_do_not_open(data: bytes) -> None:
    body = base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    with pytest.raises(SealError):
        sealed.open_value(BOTH, NAME, f"v1.sm.k2.{body}")


def test_blind_indexes_normalise_and_depend_on_the_key() -> None:
    nid = sealed.blind_index(INTL, sealed.NATIONAL_ID, "11010519491231002x")
    assert nid == sealed.blind_index(INTL, sealed.NATIONAL_ID, " 11010519491231002X ")
    assert len(nid) == 64 and int(nid, 16) >= 0
    phone = sealed.blind_index(INTL, sealed.PHONE, "+86 138-0013-8000")
    assert phone == sealed.blind_index(INTL, sealed.PHONE, "8613800138000")
    assert phone != sealed.blind_index(INTL, sealed.PHONE, "13800138000")
    # The kind is part of the MAC: a phone and an id of the same digits differ.
    assert sealed.blind_index(INTL, sealed.PHONE, "123") != sealed.blind_index(
        INTL, sealed.NATIONAL_ID, "123"
    )
    assert sealed.blind_indexes(BOTH, sealed.NATIONAL_ID, "11010519491231002X") == [
        nid,
        sealed.blind_index(BOTH, sealed.NATIONAL_ID, "11010519491231002X"),
    ]
    assert nid != sealed.blind_index(BOTH, sealed.NATIONAL_ID, "11010519491231002X")
    with pytest.raises(ValueError, match="blind index kind"):
        sealed.blind_index(INTL, "name", "张三")
