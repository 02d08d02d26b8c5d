"""PIN hashes: scrypt (RFC 7914) with its parameters and salt kept beside the hash.

A stored hash is one ASCII string, `scrypt$<log2 n>$<r>$<p>$<salt hex>$<hash hex>`, so
parameters can be raised later and old hashes still check. n = 2**14, r = 8, p = 1
(RFC 7914 §2 names r = 8, p = 1 as the common choice; 2**14 takes 16 MiB of memory,
and 40 to 70 ms a hash on the 2-core Xeon VM the tests run on; a Raspberry Pi takes
longer, still within a sign-in's budget), a 16-byte random salt, 32-byte output.
A PIN has few digits, so the hash alone protects nothing against a thief with time:
the lockout (edge_agent.users) and the key file protect the box; the slow hash only
makes a stolen store cost each PIN guess.
"""

from __future__ import annotations

import hmac
import os
import re

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

LOG2_N = 14
R = 8
P = 1
SALT_BYTES = 16
HASH_BYTES = 32
PIN_PATTERN = re.compile(r"[0-9]{4,12}")
_STORED = re.compile(r"scrypt\$(\d{1,2})\$(\d{1,2})\$(\d{1,2})\$([0-9a-f]{32})\$([0-9a-f]{64})")


class PinError(ValueError):
    """A PIN that is not 4 to 12 digits."""


def check_pin(pin: str) -> str:
    if not PIN_PATTERN.fullmatch(pin):
        raise PinError("PIN: must be 4 to 12 digits")
    return pin


def _derive(pin: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=HASH_BYTES, n=2**log2_n, r=r, p=p).derive(pin.encode())


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    """The stored form of `pin` (PinError when it is not 4 to 12 digits)."""
    check_pin(pin)
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = _derive(pin, salt, LOG2_N, R, P)
    return f"scrypt${LOG2_N}${R}${P}${salt.hex()}${digest.hex()}"


def pin_matches(pin: str, stored: str) -> bool:
    """Whether `pin` is the PIN `stored` was made from; compared in constant time. A
    stored value this module did not write never matches."""
    found = _STORED.fullmatch(stored)
    if found is None or not PIN_PATTERN.fullmatch(pin):
        return False
    log2_n, r, p = (int(found.group(i)) for i in (1, 2, 3))
    if not (10 <= log2_n <= 20 and 1 <= r <= 16 and 1 <= p <= 4):
        return False
    digest = _derive(pin, bytes.fromhex(found.group(4)), log2_n, r, p)
    return hmac.compare_digest(digest, bytes.fromhex(found.group(5)))
