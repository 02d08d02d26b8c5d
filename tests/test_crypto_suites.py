"""Known answers from the standards' published examples, and properties of both suites."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.crypto.suites import SUITES, SealError, suite

SM = suite("sm")
INTL = suite("intl")


@pytest.mark.parametrize(
    ("message", "digest"),
    [
        # GB/T 32905-2016 Appendix A.1: "abc"
        (b"abc", "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"),
        # GB/T 32905-2016 Appendix A.2: "abcd" sixteen times (512 bits)
        (b"abcd" * 16, "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"),
    ],
)
def test_sm3_known_answers(message: bytes, digest: str) -> None:
    assert SM.digest(message).hex() == digest


def test_sha256_known_answer() -> None:
    # FIPS 180-2 Appendix B.1: "abc"
    assert INTL.digest(b"abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_hmac_sha256_known_answer() -> None:
    # RFC 4231 §4.2, test case 1
    tag = INTL.mac(b"\x0b" * 20, b"Hi There")
    assert tag.hex() == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"


def test_sm4_gcm_known_answer() -> None:
    # RFC 8998 Appendix A.1 (SM4-GCM)
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    nonce = bytes.fromhex("00001234567800000000ABCD")
    aad = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    plaintext = bytes.fromhex(
        "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
        "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
    )
    ciphertext = bytes.fromhex(
        "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
        "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
    )
    tag = bytes.fromhex("83DE3541E4C2B58177E065A9BF7B62EC")
    sealed = SM.seal(key, nonce, plaintext, aad)
    assert sealed == ciphertext + tag
    assert SM.open(key, nonce, sealed, aad) == plaintext


def test_aes_256_gcm_known_answer() -> None:
    # McGrew & Viega, "The Galois/Counter Mode of Operation", test case 14 (AES-256,
    # zero key, zero nonce, one zero block)
    key = bytes(32)
    sealed = INTL.seal(key, bytes(12), bytes(16), b"")
    assert sealed.hex() == "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"


@pytest.mark.parametrize("name", sorted(SUITES))
@given(data=st.binary(max_size=300), aad=st.binary(max_size=40), flip=st.integers(0, 10_000))
def test_sealed_values_open_only_unaltered(name: str, data: bytes, aad: bytes, flip: int) -> None:
    s = suite(name)
    key = bytes(range(s.key_bytes))
    nonce = bytes(12)
    sealed = s.seal(key, nonce, data, aad)
    assert len(sealed) == len(data) + 16
    assert s.open(key, nonce, sealed, aad) == data
    altered = bytearray(sealed)
    altered[flip % len(altered)] ^= 0x01
    with pytest.raises(SealError):
        s.open(key, nonce, bytes(altered), aad)
    with pytest.raises(SealError):
        s.open(key, nonce, sealed, aad + b"x")
    other = bytes(s.key_bytes)
    with pytest.raises(SealError, match="wrong key"):
        s.open(other, nonce, sealed, aad)


def test_an_unknown_suite_is_named() -> None:
    with pytest.raises(ValueError, match="crypto suite 'rsa': one of intl, sm"):
        suite("rsa")


def test_wrong_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="sm key: 32 bytes, needs 16"):
        SM.seal(bytes(32), bytes(12), b"", b"")
    with pytest.raises(ValueError, match="nonce: 8 bytes"):
        INTL.seal(bytes(32), bytes(8), b"", b"")
