"""The file `edge-agent export` writes when it encrypts: a passphrase-derived key and
the box's suite's AEAD, with a small readable header.

    line 1: `edge-agent export 1`
    line 2: compact JSON: {"suite": "intl"|"sm", "kdf": "scrypt", "log2_n": 15, "r": 8,
            "p": 1, "salt": <16 bytes hex>, "nonce": <12 bytes hex>, "format": "json"|"csv"|"hl7"}
    then:   the ciphertext and its 16-byte tag, binary, to the end of the file

The key is scrypt (RFC 7914) of the passphrase's UTF-8 under the salt, n = 2^15, r = 8,
p = 1, as long as the suite's key (32 bytes for AES-256-GCM, 16 for SM4-GCM); the AEAD
(NIST SP 800-38D; SM4 in GCM as RFC 8998 uses it) takes the two header lines, newlines
included, as its associated data (RFC 5116 §2.1), so a header edited (another format,
another salt) does not open. The nonce is random (96 bits) and each file has its own
salt, hence its own key. Anyone with the passphrase can open it with this module
(`edge-agent export --decrypt`) or any scrypt and AES-GCM tool reading this layout.

Pure: bytes in, bytes out; the passphrase is never kept or shown.
"""

from __future__ import annotations

import json
import os

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from edge_agent.crypto.suites import SUITES, SealError, suite

MAGIC = b"edge-agent export 1\n"
LOG2_N = 15
R = 8
P = 1
SALT_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
MIN_PASSPHRASE = 10  # characters
MAX_HEADER = 512
FORMATS = ("json", "csv", "hl7")


class ExportFileError(ValueError):
    """A file this module did not write, a wrong passphrase, or a passphrase too short."""


def check_passphrase(passphrase: str) -> str:
    if len(passphrase) < MIN_PASSPHRASE:
        raise ExportFileError(f"export passphrase: at least {MIN_PASSPHRASE} characters")
    return passphrase


def _key(passphrase: str, salt: bytes, length: int, log2_n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=length, n=2**log2_n, r=r, p=p).derive(
        passphrase.encode("utf-8")
    )


def seal(
    plaintext: bytes,
    passphrase: str,
    *,
    suite_name: str,
    fmt: str,
    salt: bytes | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """The encrypted file of `plaintext` (an export in `fmt`)."""
    check_passphrase(passphrase)
    if fmt not in FORMATS:
        raise ExportFileError(f"export format {fmt!r}: one of {', '.join(FORMATS)}")
    chosen = suite(suite_name)
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    header = {
        "suite": chosen.name,
        "kdf": "scrypt",
        "log2_n": LOG2_N,
        "r": R,
        "p": P,
        "salt": salt.hex(),
        "nonce": nonce.hex(),
        "format": fmt,
    }
    head = MAGIC + json.dumps(header, separators=(",", ":")).encode("ascii") + b"\n"
    key = _key(passphrase, salt, chosen.key_bytes, LOG2_N, R, P)
    return head + chosen.seal(key, nonce, plaintext, head)


def open_file(data: bytes, passphrase: str) -> tuple[str, bytes]:
    """(format, plaintext) of an encrypted export; ExportFileError in one line for
    anything else (not such a file, an edited header or body, a wrong passphrase)."""
    if not data.startswith(MAGIC):
        raise ExportFileError("not an encrypted edge-agent export (its first line differs)")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER)
    if end < 0:
        raise ExportFileError("encrypted export: its header line is missing or too long")
    head, body = data[: end + 1], data[end + 1 :]
    try:
        header = json.loads(head[len(MAGIC) :].decode("ascii"))
        suite_name, fmt = header["suite"], header["format"]
        log2_n, r, p = int(header["log2_n"]), int(header["r"]), int(header["p"])
        salt, nonce = bytes.fromhex(header["salt"]), bytes.fromhex(header["nonce"])
        kdf = header["kdf"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ExportFileError("encrypted export: its header is not readable") from None
    if (
        kdf != "scrypt"
        or suite_name not in SUITES
        or fmt not in FORMATS
        or not (14 <= log2_n <= 17 and 1 <= r <= 16 and 1 <= p <= 4)
        or len(salt) != SALT_BYTES
        or len(nonce) != NONCE_BYTES
        or len(body) < TAG_BYTES
    ):
        raise ExportFileError("encrypted export: its header names what this box cannot read")
    chosen = suite(suite_name)
    key = _key(passphrase, salt, chosen.key_bytes, log2_n, r, p)
    try:
        return str(fmt), chosen.open(key, nonce, body, head)
    except SealError:
        raise ExportFileError(
            "encrypted export: wrong passphrase, or the file was changed"
        ) from None
