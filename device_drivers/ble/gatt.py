"""Bluetooth SIG 16-bit UUIDs: the one place that spells the base UUID.

bleak names characteristics by their full 128-bit UUID; the specifications, the config
and people name them by 16 bits (0x2A35). `uuid16` and `short_uuid` go back and forth;
`by_characteristic` picks a profile's decoder for a notification's characteristic, and
`not_in_service` is the decoder for a characteristic the profile does not have.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from edge_agent.model import Decoded, DecodeError

BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"

Decoder = Callable[[bytes], Decoded]


def uuid16(short: int) -> str:
    """0x2A35 -> '00002a35-0000-1000-8000-00805f9b34fb'."""
    if not 0 <= short <= 0xFFFF:
        raise ValueError(f"0x{short:x} is not a 16-bit UUID")
    return f"0000{short:04x}{BASE_UUID_SUFFIX}"


def short_uuid(channel: str) -> str:
    """'00002a35-0000-1000-8000-00805f9b34fb', '2A35', '0x2a35' -> '2a35'.

    Anything that is not a SIG base UUID comes back lower-cased, so a vendor's 128-bit
    characteristic never matches a 16-bit one by accident.
    """
    text = channel.strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    if len(text) == 36 and text.endswith(BASE_UUID_SUFFIX) and text[:4] == "0000":
        return text[4:8]
    return text


def not_in_service(channel: str, service: str) -> Decoder:
    """A decoder that rejects every frame: a notification on a characteristic the profile
    does not have is quarantined with the reason, never read as that profile's data."""

    def reject(data: bytes) -> Decoded:
        raise DecodeError(f"characteristic {channel} is not part of the {service} service")

    return reject


def by_characteristic(
    channel: str | None, decoders: Mapping[str, Decoder], service: str, default: str
) -> Decoder:
    """The decoder of a notification's characteristic (the frame's channel).

    `decoders` maps a profile's 16-bit UUIDs ('2a35') to their decoders. No channel
    (captured frames, the decode CLI) means the `default` characteristic. A characteristic
    the profile does not have gets a decoder that rejects every frame (`not_in_service`),
    so its bytes are quarantined with the reason instead of read as this profile's data.
    """
    characteristic = default if channel is None else channel
    decode = decoders.get(short_uuid(characteristic))
    return decode if decode is not None else not_in_service(characteristic, service)
