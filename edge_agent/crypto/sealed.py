"""Sealed values: personal text encrypted where it is stored, and blind indexes to find it.

A sealed value is ASCII text that names what opens it:

    v1.<suite>.<key id>.<base64url, no padding, of nonce(12) || ciphertext || tag(16)>

e.g. `v1.sm.k2.3q2-7w...`. The nonce is 96 random bits per value (NIST SP 800-38D
§8.2.2: random nonces, at most 2^32 values per key; a clinic seals thousands). The
associated data (RFC 5116 §2.1) is the header `v1.<suite>.<key id>.` followed by the
value's place (`patient.name`), so a value copied to another column, or given another
key id or suite in its header, does not open.

A blind index is the suite's MAC under the key's index key of `<kind>:<normalised
value>` (hex): the same number finds the same row without the store holding it. A
national id is normalised upper-case (GB 11643-1999's check character X), a phone to
its digits. An index depends on the key, so a look-up computes it under every key of
the keyring (the rows of an unfinished rotation are found too).

A sealed blob (`seal_bytes`) is the same value for bytes and long text (a monitor's
raw HL7 frame, a 12-lead file, an outbox message): the ASCII header, then nonce,
ciphertext and tag as they are, without base64 (a 12-lead file is hundreds of kB; the
column is a BLOB). Same header, same associated data.

`open_value` and `open_bytes` are boundaries: what they read comes from the store file,
which a thief can edit. Anything that is not a value this keyring sealed at this place
is a SealError.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets

from edge_agent.crypto.keyring import DataKey, Keyring
from edge_agent.crypto.suites import NONCE_BYTES, TAG_BYTES, SealError

VERSION = "v1"
_SEALED = re.compile(r"v1\.([a-z]{2,8})\.(k[1-9][0-9]{0,8})\.([A-Za-z0-9_-]+)")
_SEALED_BLOB_HEADER = re.compile(rb"v1\.([a-z]{2,8})\.(k[1-9][0-9]{0,8})\.")
MAX_SEALED_CHARS = 64 * 1024

NATIONAL_ID = "national_id"
PHONE = "phone"


def _header(key: DataKey) -> str:
    return f"{VERSION}.{key.suite.name}.{key.id}."


def seal(keyring: Keyring, place: str, plaintext: str) -> str:
    """`plaintext` sealed under the active key for column `place` ("patient.name")."""
    key = keyring.active
    header = _header(key)
    nonce = secrets.token_bytes(NONCE_BYTES)
    body = key.suite.seal(
        key.data_key, nonce, plaintext.encode("utf-8"), (header + place).encode("ascii")
    )
    return header + base64.urlsafe_b64encode(nonce + body).rstrip(b"=").decode("ascii")


def key_id_of(text: str) -> str | None:
    """The key id a sealed value names, None for text that is not a sealed value."""
    m = _SEALED.fullmatch(text) if len(text) <= MAX_SEALED_CHARS else None
    return None if m is None else m.group(2)


def open_value(keyring: Keyring, place: str, text: str) -> str:
    """The plaintext of a value sealed at `place`; SealError (one line) otherwise."""
    if len(text) > MAX_SEALED_CHARS:
        raise SealError(f"{place}: sealed value longer than {MAX_SEALED_CHARS} characters")
    m = _SEALED.fullmatch(text)
    if m is None:
        raise SealError(f"{place}: not a sealed value (v1.<suite>.<key id>.<data>)")
    suite_name, key_id, data = m.groups()
    key = keyring.key(key_id)
    if key is None:
        raise SealError(f"{place}: sealed under key {key_id}, which this keyring does not hold")
    if key.suite.name != suite_name:
        raise SealError(f"{place}: names suite {suite_name}, key {key_id} is {key.suite.name}")
    raw = _unbase64(place, data)
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise SealError(f"{place}: sealed value too short ({len(raw)} bytes)")
    nonce, body = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
    aad = (_header(key) + place).encode("ascii")
    try:
        plain = key.suite.open(key.data_key, nonce, body, aad)
    except SealError as exc:
        raise SealError(f"{place}: {exc}") from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:  # it opened, so we sealed it: only a bug gets here
        raise SealError(f"{place}: opened to bytes that are not UTF-8") from None


def _unbase64(place: str, data: str) -> bytes:
    # Canonical only: the unused low bits of the last character must be zero, so one
    # value has one text (no variant of a stored value opens to the same plaintext).
    if len(data) % 4 == 1:
        raise SealError(f"{place}: sealed value is not base64url")
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        raise SealError(f"{place}: sealed value is not base64url") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != data:
        raise SealError(f"{place}: sealed value is not canonical base64url")
    return raw


def seal_bytes(keyring: Keyring, place: str, plaintext: bytes) -> bytes:
    """`plaintext` sealed under the active key for column `place` ("raw_frame.data"):
    the header `v1.<suite>.<key id>.`, then nonce || ciphertext || tag."""
    key = keyring.active
    header = _header(key)
    nonce = secrets.token_bytes(NONCE_BYTES)
    body = key.suite.seal(key.data_key, nonce, plaintext, (header + place).encode("ascii"))
    return header.encode("ascii") + nonce + body


def open_bytes(keyring: Keyring, place: str, blob: bytes) -> bytes:
    """The plaintext of a blob sealed at `place`; SealError (one line) otherwise."""
    m = _SEALED_BLOB_HEADER.match(blob)
    if m is None:
        raise SealError(f"{place}: not a sealed blob (v1.<suite>.<key id>.<data>)")
    suite_name, key_id = m.group(1).decode("ascii"), m.group(2).decode("ascii")
    key = keyring.key(key_id)
    if key is None:
        raise SealError(f"{place}: sealed under key {key_id}, which this keyring does not hold")
    if key.suite.name != suite_name:
        raise SealError(f"{place}: names suite {suite_name}, key {key_id} is {key.suite.name}")
    raw = blob[m.end() :]
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise SealError(f"{place}: sealed blob too short ({len(raw)} bytes)")
    aad = (_header(key) + place).encode("ascii")
    try:
        return key.suite.open(key.data_key, raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
    except SealError as exc:
        raise SealError(f"{place}: {exc}") from None


def normalised(kind: str, value: str) -> str:
    """What a blind index is computed over: a national id upper-case, a phone's digits."""
    if kind == NATIONAL_ID:
        return value.strip().upper()
    if kind == PHONE:
        return "".join(c for c in value if c.isascii() and c.isdigit())
    raise ValueError(f"blind index kind {kind!r}: one of {NATIONAL_ID}, {PHONE}")


def blind_index_under(key: DataKey, kind: str, value: str) -> str:
    data = f"{kind}:{normalised(kind, value)}".encode()
    return key.suite.mac(key.index_key, data).hex()


def blind_index(keyring: Keyring, kind: str, value: str) -> str:
    """The index a value is stored with: under the active key."""
    return blind_index_under(keyring.active, kind, value)


def blind_indexes(keyring: Keyring, kind: str, value: str) -> list[str]:
    """The index under every key of the keyring: what a look-up searches for."""
    return [blind_index_under(k, kind, value) for k in keyring.keys.values()]
