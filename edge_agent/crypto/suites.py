"""The two crypto suites a box may run: `intl` and `sm` (national, 商用密码).

| suite | AEAD                  | hash    | MAC          | key   |
|-------|-----------------------|---------|--------------|-------|
| intl  | AES-256-GCM           | SHA-256 | HMAC-SHA-256 | 32 B  |
| sm    | SM4-GCM (RFC 8998)    | SM3     | HMAC-SM3     | 16 B  |

SM3 is GB/T 32905-2016, SM4 GB/T 32907-2016; SM4 in GCM mode is as RFC 8998 §3.2
uses it (12-byte nonce, 16-byte tag). Both come from `cryptography` (OpenSSL 3 in its
wheels, aarch64 included). Every sealed value and every audit chain records the suite's
name, so a box that switches suites still reads what the other one wrote.
"""

from __future__ import annotations

import hmac as std_hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
TAG_BYTES = 16
INTL = "intl"
SM = "sm"


class SealError(Exception):
    """A sealed value that does not open: wrong key, altered bytes or associated data."""


@dataclass(frozen=True, slots=True)
class Suite:
    """One suite's primitives. Keys are raw bytes of `key_bytes`."""

    name: str
    key_bytes: int
    hash_name: str  # as the audit rows and docs name it: "SHA-256", "SM3"

    def _hash(self) -> hashes.HashAlgorithm:
        return hashes.SM3() if self.name == SM else hashes.SHA256()

    def digest(self, data: bytes) -> bytes:
        """SHA-256 or SM3 of `data` (32 bytes either way)."""
        h = hashes.Hash(self._hash())
        h.update(data)
        return h.finalize()

    def mac(self, key: bytes, data: bytes) -> bytes:
        """HMAC-SHA-256 or HMAC-SM3 of `data` under `key` (RFC 2104)."""
        h = hmac.HMAC(key, self._hash())
        h.update(data)
        return h.finalize()

    def mac_equal(self, key: bytes, data: bytes, tag: bytes) -> bool:
        return std_hmac.compare_digest(self.mac(key, data), tag)

    def seal(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Ciphertext followed by the 16-byte tag."""
        self._check(key, nonce)
        if self.name == INTL:
            return AESGCM(key).encrypt(nonce, plaintext, aad)
        enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(aad)
        body = enc.update(plaintext) + enc.finalize()
        return body + enc.tag

    def open(self, key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
        """The plaintext; SealError when key, bytes or `aad` are not what sealed it."""
        self._check(key, nonce)
        if len(sealed) < TAG_BYTES:
            raise SealError(f"sealed value of {len(sealed)} bytes is shorter than its tag")
        try:
            if self.name == INTL:
                return AESGCM(key).decrypt(nonce, sealed, aad)
            body, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
            dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
            dec.authenticate_additional_data(aad)
            return dec.update(body) + dec.finalize()
        except InvalidTag:
            raise SealError("does not open with this key (wrong key, or altered)") from None

    def _check(self, key: bytes, nonce: bytes) -> None:
        if len(key) != self.key_bytes:
            raise ValueError(f"{self.name} key: {len(key)} bytes, needs {self.key_bytes}")
        if len(nonce) != NONCE_BYTES:
            raise ValueError(f"nonce: {len(nonce)} bytes, needs {NONCE_BYTES}")


SUITES: dict[str, Suite] = {
    INTL: Suite(INTL, key_bytes=32, hash_name="SHA-256"),
    SM: Suite(SM, key_bytes=16, hash_name="SM3"),
}


def suite(name: str) -> Suite:
    """The suite called `name`; ValueError naming the choices otherwise."""
    try:
        return SUITES[name]
    except KeyError:
        raise ValueError(f"crypto suite {name!r}: one of {', '.join(sorted(SUITES))}") from None
