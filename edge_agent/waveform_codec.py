"""Waveform samples <-> a compact, exactly reversible blob.

Monitors send waves (ECG 250-500 Hz, pleth 75-125 Hz) as integer ADC counts with a
scale, a fraction of a second per frame (a Nonin packet carries 25 pleth samples). A row
per sample would cost ~60 bytes and an insert each; a segment is one blob instead.

The blob is the first sample and then the differences between neighbours (a wave changes
little from one sample to the next), each zig-zag mapped to an unsigned number and
written as a LEB128 varint: most differences take one byte, so a 25-sample pleth packet
is ~26 bytes, not 50 as int16 and not the ~100 a deflate stream costs for so few bytes.
Longer segments (a 10 s ECG strip) are then deflated when that is smaller. Decoding gives
back the very same integers: the cardiologist's trace is the device's.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

VARINT = "delta-varint"
VARINT_ZLIB = "delta-varint-zlib"
ENCODINGS = (VARINT, VARINT_ZLIB)
_DEFLATE_FROM = 128  # bytes of varints below which deflate's own overhead cannot pay


class WaveformCodecError(ValueError):
    """A blob that is not a segment of a known encoding (corrupted store, wrong encoding)."""


def encode_samples(samples: Sequence[int]) -> tuple[str, bytes]:
    """Integer samples -> (encoding, blob)."""
    out = bytearray()
    previous = 0
    for sample in samples:
        delta = sample - previous
        previous = sample
        number = delta * 2 if delta >= 0 else -delta * 2 - 1  # zig-zag
        while number > 0x7F:
            out.append((number & 0x7F) | 0x80)
            number >>= 7
        out.append(number)
    if len(out) >= _DEFLATE_FROM:
        deflated = zlib.compress(bytes(out), 6)
        if len(deflated) < len(out):
            return VARINT_ZLIB, deflated
    return VARINT, bytes(out)


def decode_samples(blob: bytes, encoding: str) -> tuple[int, ...]:
    """(encoding, blob) -> the exact samples that were encoded."""
    if encoding == VARINT_ZLIB:
        try:
            blob = zlib.decompress(blob)
        except zlib.error as exc:
            raise WaveformCodecError(f"waveform blob does not inflate: {exc}") from None
    elif encoding != VARINT:
        raise WaveformCodecError(f"unknown waveform encoding {encoding!r}")
    samples: list[int] = []
    previous = number = shift = 0
    for byte in blob:
        number |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 70:
                raise WaveformCodecError("waveform blob has a varint longer than 10 bytes")
            continue
        previous += (number >> 1) if not number & 1 else -((number + 1) >> 1)
        samples.append(previous)
        number = shift = 0
    if shift:
        raise WaveformCodecError("waveform blob ends inside a varint")
    return tuple(samples)
