"""The `mac` of ACKs and down notices (sync.message_auth): accepted only with the right tag,
for any topic, payload and user properties; a flipped bit anywhere is refused with a
reason, never an exception."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.crypto.suites import SUITES, suite
from sync.message_auth import (
    MAC_PROPERTY,
    MessageKey,
    key_from_hex,
    refusal,
    signed_properties,
    tag,
    tagged_bytes,
)

KEY = bytes(range(32))
keys = st.builds(
    MessageKey,
    st.sampled_from(sorted(SUITES.values(), key=lambda s: s.name)),
    st.binary(min_size=32, max_size=32),
)
REASONS = {
    "mac is not 64 lower-case hex digits",
    "mac does not match (wrong key, or topic or payload altered)",
}
properties = st.lists(st.tuples(st.text(max_size=20), st.text(max_size=80)), max_size=6)


def flip(data: bytes, bit: int) -> bytes:
    bit %= 8 * len(data)
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_the_tag_is_hmac_of_topic_zero_payload_in_lower_case_hex() -> None:
    """Checked against the standard library's HMAC-SHA-256 (RFC 2104, FIPS 180-4)."""
    topic, payload = "edge/v1/amb-017/ack", b"MSH|^~\\&|..."
    expected = hmac.new(KEY, b"edge/v1/amb-017/ack\x00MSH|^~\\&|...", hashlib.sha256).hexdigest()
    assert tag(MessageKey(suite("intl"), KEY), topic, payload) == expected
    assert expected == expected.lower() and len(expected) == 64
    # HMAC-SM3 is another tag under the same key, as long.
    sm = tag(MessageKey(suite("sm"), KEY), topic, payload)
    assert sm != expected and len(sm) == 64
    assert sm == suite("sm").mac(KEY, tagged_bytes(topic, payload)).hex()


@given(keys, st.text(max_size=100), st.binary(max_size=2000), properties)
def test_a_message_is_accepted_only_with_its_own_tag(
    key: MessageKey, topic: str, payload: bytes, others: list[tuple[str, str]]
) -> None:
    others = [(name, value) for name, value in others if name != MAC_PROPERTY]
    assert refusal(key, topic, payload, others) == "no mac property"
    signed = [*others, *signed_properties(key, topic, payload)]
    assert refusal(key, topic, payload, signed) is None
    # The same tag twice is still one tag too many: a sender sends one.
    assert refusal(key, topic, payload, [*signed, *signed_properties(key, topic, payload)])


@given(keys, st.text(max_size=100), st.binary(max_size=500), st.integers(min_value=0))
def test_a_flipped_bit_in_topic_payload_or_tag_is_refused(
    key: MessageKey, topic: str, payload: bytes, bit: int
) -> None:
    good = tag(key, topic, payload)
    props = [(MAC_PROPERTY, good)]
    if payload:
        assert refusal(key, topic, flip(payload, bit), props) == (
            "mac does not match (wrong key, or topic or payload altered)"
        )
    if topic:
        other = flip(topic.encode("utf-8"), bit).decode("utf-8", "surrogateescape")
        assert refusal(key, other, payload, props) is not None
    bad_tag = flip(bytes.fromhex(good), bit).hex()
    assert refusal(key, topic, payload, [(MAC_PROPERTY, bad_tag)]) is not None
    wrong_key = MessageKey(key.suite, flip(key.key, bit))
    assert refusal(wrong_key, topic, payload, props) is not None


@given(keys, st.text(max_size=50), st.binary(max_size=200), st.text(max_size=200))
def test_any_mac_value_gets_a_reason_never_an_exception(
    key: MessageKey, topic: str, payload: bytes, value: str
) -> None:
    reason = refusal(key, topic, payload, [(MAC_PROPERTY, value)])
    if value == tag(key, topic, payload):
        assert reason is None
    else:
        # One of the fixed reasons: nothing of the message is quoted into the log.
        assert reason in REASONS


def test_an_upper_case_or_short_tag_is_refused_with_its_reason() -> None:
    key = MessageKey(suite("intl"), KEY)
    good = tag(key, "t", b"p")
    for value in (good.upper(), good[:-2], good + "00", "zz" * 32):
        assert refusal(key, "t", b"p", [(MAC_PROPERTY, value)]) == (
            "mac is not 64 lower-case hex digits"
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("xyz", "--mac-key: not hex"),
        ("abc", "--mac-key: not hex"),
        ("00" * 16, "--mac-key: 16 bytes, needs 32 (64 hex digits)"),
        ("00" * 33, "--mac-key: 33 bytes, needs 32"),
    ],
)
def test_a_mac_key_that_is_not_32_bytes_of_hex_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        key_from_hex(text, "intl")


def test_a_mac_key_is_read_in_either_case_and_never_shown() -> None:
    key = key_from_hex(KEY.hex().upper(), "sm")
    assert key.key == KEY and key.suite.name == "sm"
    assert KEY.hex() not in repr(key) and KEY.hex() not in str(key)
    with pytest.raises(ValueError, match="crypto suite 'des'"):
        key_from_hex(KEY.hex(), "des")
    with pytest.raises(ValueError, match="message key: 31 bytes"):
        MessageKey(suite("intl"), KEY[:31])
