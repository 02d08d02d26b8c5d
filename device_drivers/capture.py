"""A capture read the way the box reads the device live (`edge-agent decode`).

The decode CLI's only way in, so that decoding a capture gives what the box would have
recorded from the same bytes:

- serial and network drivers (`transport` "serial", "tcp"): everything given is one byte
  stream, as the port or socket delivered it, cut by the driver's own framer (a new one,
  as each connection gets) and each piece decoded by the driver's decoder as the daemon
  sets it up for one device. The framers emit every byte once, in a whole frame or in a
  rejected piece (line noise, a damaged frame), so rejected pieces are reported, not
  dropped; what the framer still holds at the end is a partial frame (`trailing`). A
  line-based format's last line counts only once its CR or LF has arrived, as live.
- BLE drivers: a GATT notification is a frame, not a piece of a stream (the link keeps
  notifications apart), so each argument, or each hex line of a capture file, is one.
- ECG file drivers: everything given is the one file.

A decoder that raises anything but DecodeError is reported as the recorder records it,
"decoder fault: ...". Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from device_drivers import registry
from edge_agent.model import Decoded, DecodeError

# The largest capture the CLI reads (a day of a Nonin DF2 port is ~32 MB): whatever the
# file, memory stays bounded.
MAX_CAPTURE_BYTES = 256 * 1024 * 1024


class HexError(ValueError):
    """Text that is not hex bytes: a usage error, not a device frame."""


@runtime_checkable
class _HoldsPartial(Protocol):
    @property
    def pending(self) -> int: ...


@runtime_checkable
class _SkipsOutside(Protocol):
    discarded_bytes: int  # MLLP: bytes outside any block, dropped by the framer


@dataclass(frozen=True, slots=True)
class Piece:
    """One frame the framer cut (or one notification, or the file), decoded or rejected.

    `number` counts pieces from 1 in stream order, valid and rejected alike."""

    number: int
    data: bytes
    decoded: Decoded | None = None
    error: DecodeError | None = None


@dataclass(frozen=True, slots=True)
class Capture:
    pieces: tuple[Piece, ...]
    # Bytes after the last piece that the framer still holds: a partial frame (or noise
    # too short to be emitted yet); live, they wait for the next bytes.
    trailing: int = 0
    # Bytes a framer dropped without emitting them (MLLP: outside any block).
    skipped: int = 0

    @property
    def decoded(self) -> list[Piece]:
        return [p for p in self.pieces if p.decoded is not None]

    @property
    def rejected(self) -> list[Piece]:
        return [p for p in self.pieces if p.error is not None]


_HEX_SEPARATORS = re.compile(r"[\s:_-]")


def parse_hex(text: str) -> bytes:
    """Bytes typed on the command line: '1E7800...', '1e 78 00', '1e:78:00', '0x1e78'."""
    cleaned = _HEX_SEPARATORS.sub("", text)
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    shown = text if len(text) <= 40 else text[:37] + "..."
    if not cleaned:
        raise HexError(f"{shown!r} is not hex: no digits")
    bad = re.search(r"[^0-9A-Fa-f]", cleaned)
    if bad is not None:
        raise HexError(f"{shown!r} is not hex: {bad.group()!r}")
    if len(cleaned) % 2:
        raise HexError(f"{shown!r} is not hex: odd number of digits ({len(cleaned)})")
    return bytes.fromhex(cleaned)


def cut(driver_id: str, data: bytes) -> tuple[list[bytes], int, int]:
    """A stream cut by the driver's framer: (pieces, bytes held at the end, bytes skipped).

    The framer the serial transport and the MLLP listener use, fed everything at once
    (framers give the same pieces however reads split the stream)."""
    framer = registry.framer(driver_id)
    pieces = framer.feed(data)
    held = framer.pending if isinstance(framer, _HoldsPartial) else 0
    skipped = framer.discarded_bytes if isinstance(framer, _SkipsOutside) else 0
    return pieces, held, skipped


def read(
    driver_id: str,
    chunks: Sequence[bytes],
    *,
    model: str | None = None,
    pattern: str | None = None,
) -> Capture:
    """What the box would make of `chunks` from one device of `driver_id`.

    Stream drivers: the chunks are one stream, joined. BLE: one notification each.
    ECG files: joined, the one file. `model` / `pattern` as in the device's config.
    Raises KeyError for an unknown driver.
    """
    spec = registry.driver(driver_id)
    decode = spec.decoders(model, pattern)(None)  # per device state, as the daemon's
    trailing = skipped = 0
    if spec.transport == "ble":
        frames = [bytes(c) for c in chunks if c]
    elif spec.transport == "folder":
        frames = [b"".join(chunks)]
    else:
        frames, trailing, skipped = cut(driver_id, b"".join(chunks))
    pieces = []
    for number, frame in enumerate(frames, 1):
        try:
            pieces.append(Piece(number, frame, decoded=decode(frame)))
        except DecodeError as exc:
            pieces.append(Piece(number, frame, error=exc))
        except Exception as exc:  # a decoder bug: reported as the recorder records it
            fault = DecodeError(f"decoder fault: {type(exc).__name__}: {exc}")
            pieces.append(Piece(number, frame, error=fault))
    return Capture(tuple(pieces), trailing, skipped)


def read_file(
    driver_id: str, data: bytes, *, model: str | None = None, pattern: str | None = None
) -> Capture:
    """A capture file: the bytes as received (stream drivers), the ECG file itself, or
    for BLE drivers one notification per line written as hex (blank lines skipped).

    Raises HexError naming the line of a BLE capture that is not hex."""
    spec = registry.driver(driver_id)
    if spec.transport != "ble":
        return read(driver_id, [data], model=model, pattern=pattern)
    notifications = []
    for number, line in enumerate(data.decode("ascii", "replace").splitlines(), 1):
        if line.strip():
            try:
                notifications.append(parse_hex(line))
            except HexError as exc:
                raise HexError(f"line {number}: {exc}") from None
    return read(driver_id, notifications, model=model, pattern=pattern)
