"""The `mac` user property of ACKs and down notices: who may tell the box a message arrived.

A box deletes nothing on an ACK, but it stops sending the message again: a forged ACK AA
on `edge/v1/{agent}/ack` would make it believe the county has data it never got, and a
forged down notice would tell a crew "cath lab ready". So the gateway tags each ACK and
each notice it sends to an enrolled box with an HMAC (RFC 2104) under that box's key,
in the suite's hash (HMAC-SHA-256, or HMAC-SM3 with SM3 of GB/T 32905-2016), and the box
acts only on a message whose tag is right (docs/security.md, "Authenticated ACKs and
notices").

What is tagged: the topic's UTF-8 bytes, one 0x00 byte, then the payload exactly as
received. A topic name never holds U+0000 (OASIS MQTT 5.0, §1.5.4 and §4.7.3), so the
0x00 ends the topic unambiguously: no (topic, payload) pair tags like another one, and a
tag made for one box's topic is worth nothing on another box's. The tag travels as an
MQTT 5 User Property (§3.3.2.3.7) named `mac`, lower-case hex of the whole HMAC
(64 digits: SHA-256 and SM3 both give 32 bytes).

Pure: no I/O, no clock. Checking never raises on what came from the network: it gives a
reason for the log (`refusal`), None for a good tag; tags are compared in constant time.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

from edge_agent.crypto.suites import Suite, suite

MAC_PROPERTY = "mac"
# The per-box key shared at enrolment (`edge-agent keys show-mac` on the box, `edge-agent
# gateway enroll --mac-key` at the gateway): 32 bytes, the hash's output length, which
# RFC 2104 §3 names as the least a key should have.
MAC_KEY_BYTES = 32
_HEX = frozenset(string.hexdigits.lower())


@dataclass(frozen=True, slots=True)
class MessageKey:
    """One box's key for tagging and checking its ACKs and notices, with its suite."""

    suite: Suite
    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != MAC_KEY_BYTES:
            raise ValueError(f"message key: {len(self.key)} bytes, needs {MAC_KEY_BYTES}")

    def __repr__(self) -> str:  # never the key itself, in a log or a traceback
        return f"MessageKey(suite={self.suite.name!r})"


def key_from_hex(text: str, suite_name: str) -> MessageKey:
    """The key as `keys show-mac` prints it (hex, either case, spaces ignored); ValueError
    naming what is wrong: not hex, not 32 bytes, an unknown suite."""
    digits = "".join(text.split())
    try:
        key = bytes.fromhex(digits)
    except ValueError:
        raise ValueError(f"--mac-key: not hex ({len(digits)} characters given)") from None
    if len(key) != MAC_KEY_BYTES:
        raise ValueError(
            f"--mac-key: {len(key)} bytes, needs {MAC_KEY_BYTES} ({2 * MAC_KEY_BYTES} hex digits)"
        )
    return MessageKey(suite(suite_name), key)


def tagged_bytes(topic: str, payload: bytes) -> bytes:
    """What the HMAC covers: the topic's UTF-8, 0x00, the payload."""
    # surrogatepass: a str that is not valid Unicode still gives bytes (and a wrong tag),
    # never an exception; paho's topics and ours are valid UTF-8.
    return topic.encode("utf-8", "surrogatepass") + b"\x00" + payload


def tag(key: MessageKey, topic: str, payload: bytes) -> str:
    """The `mac` property's value for this message: lower-case hex."""
    return key.suite.mac(key.key, tagged_bytes(topic, payload)).hex()


def signed_properties(
    key: MessageKey | None, topic: str, payload: bytes
) -> tuple[tuple[str, str], ...]:
    """The user properties a sender adds: the `mac`, or none for a box not enrolled."""
    return () if key is None else ((MAC_PROPERTY, tag(key, topic, payload)),)


def refusal(
    key: MessageKey, topic: str, payload: bytes, user_properties: Sequence[tuple[str, str]]
) -> str | None:
    """None when the message carries exactly one `mac` and it is this message's tag under
    `key`; otherwise why not, one line that quotes nothing of the message."""
    macs = [value for name, value in user_properties if name == MAC_PROPERTY]
    if not macs:
        return "no mac property"
    if len(macs) > 1:
        return f"{len(macs)} mac properties (one expected)"
    given = macs[0]
    digits = 2 * len(key.suite.digest(b""))
    if len(given) != digits or not set(given) <= _HEX:
        return f"mac is not {digits} lower-case hex digits"
    if not key.suite.mac_equal(key.key, tagged_bytes(topic, payload), bytes.fromhex(given)):
        return "mac does not match (wrong key, or topic or payload altered)"
    return None
