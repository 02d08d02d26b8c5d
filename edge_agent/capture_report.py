"""What `edge-agent decode` says about a capture: the objects it prints and its problems.

device_drivers.capture reads the capture as the box reads the device live; this module
checks the request (a driver this release has, HEX or a file, the device's `model` /
`pattern` as `config check` checks them), reads a file within the size limit, and turns
the result into what the command prints (docs/architecture.md "Reading a capture"):
one JSON object per reading, waveform and statement, in stream order; one problem line
per rejected piece, up to DECODE_REPORTED, then one line counting the rest by kind of
reason (the quarantine tally's kinds, edge_agent.quarantine.reason_key); bytes skipped
outside any frame; a partial frame at the end. `decoded` says whether any whole valid
frame was found (exit 0, else 3).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_drivers import capture, registry
from edge_agent.config import decoding_problems
from edge_agent.model import Refused
from edge_agent.quarantine import reason_key

# Rejected frames of a capture reported one line each; past this, one line with counts.
DECODE_REPORTED = 10


class CaptureRequestError(Refused):
    """A decode request that cannot be read (unknown driver, text that is not hex, a
    file that is missing or too large): a usage error, not a rejected frame."""


@dataclass(frozen=True, slots=True)
class CaptureReport:
    capture: capture.Capture
    problems: tuple[str, ...]  # one line each, without the `error: ` the CLI adds

    @property
    def decoded(self) -> bool:
        """At least one whole valid frame."""
        return bool(self.capture.decoded)

    def objects(self) -> Iterator[dict[str, Any]]:
        """Each reading, waveform and statement as its JSON object, in stream order
        (made as they are printed: a day's capture is not held twice)."""
        for piece in self.capture.pieces:
            if piece.decoded is not None:
                for reading in piece.decoded.readings:
                    yield reading.as_json()
                for waveform in piece.decoded.waveforms:
                    yield waveform.as_json()
                for statement in piece.decoded.statements:
                    yield statement.as_json()


def decode(
    driver: str,
    hex_args: Sequence[str],
    file: str | None,
    *,
    model: str | None = None,
    pattern: str | None = None,
) -> CaptureReport:
    """The capture given as HEX arguments or as a file, read as a device of `driver`
    configured with `model` / `pattern` is read live. CaptureRequestError for usage."""
    if driver not in registry.DRIVERS:
        raise CaptureRequestError(
            f"decode: unknown driver {driver!r} (known: {', '.join(sorted(registry.DRIVERS))})"
        )
    if file and hex_args:
        raise CaptureRequestError("decode: give HEX or --file PATH, not both")
    for name, wrong in decoding_problems(driver, model, pattern):
        raise CaptureRequestError(f"decode --{name}: {wrong}")
    if file:
        data = _read_capture(file)
        try:
            result = capture.read_file(driver, data, model=model, pattern=pattern)
        except capture.HexError as exc:
            raise CaptureRequestError(f"decode {driver} {file}: {exc}") from None
        return report(driver, file, result)
    if hex_args:
        try:
            chunks = [capture.parse_hex(text) for text in hex_args]
        except capture.HexError as exc:
            raise CaptureRequestError(f"decode {driver}: {exc}") from None
        return report(driver, "hex", capture.read(driver, chunks, model=model, pattern=pattern))
    raise CaptureRequestError("decode: give HEX or --file PATH")


def _read_capture(file: str) -> bytes:
    """The file's bytes, at most MAX_CAPTURE_BYTES: memory stays bounded whatever it is."""
    too_big = CaptureRequestError(
        f"decode --file {file}: larger than {capture.MAX_CAPTURE_BYTES >> 20} MiB;"
        " cut the capture into parts"
    )
    try:
        path = Path(file)
        if path.stat().st_size > capture.MAX_CAPTURE_BYTES:
            raise too_big
        with path.open("rb") as stream:  # read at most the limit, even if it grows
            data = stream.read(capture.MAX_CAPTURE_BYTES + 1)
    except OSError as exc:
        raise CaptureRequestError(f"decode --file {file}: {exc.strerror}") from None
    if len(data) > capture.MAX_CAPTURE_BYTES:
        raise too_big
    return data


def report(driver: str, source: str, result: capture.Capture) -> CaptureReport:
    """What is said about `result`, read from `source` ("hex" or the file's name)."""
    problems: list[str] = []

    def problem(where: str, text: str) -> None:
        problems.append(f"decode {driver} {where}: {text}")

    alone = len(result.pieces) == 1 and not result.trailing and not result.skipped
    rejected = result.rejected
    for piece in rejected[:DECODE_REPORTED]:
        assert piece.error is not None
        problem(source if alone else f"{source} frame {piece.number}", str(piece.error))
    if len(rejected) > DECODE_REPORTED:
        problem(source, _counted(rejected[DECODE_REPORTED:]))
    if result.skipped:
        problem(source, f"{result.skipped} bytes outside any frame skipped (line noise?)")
    if result.trailing:
        problem(
            source,
            f"a partial frame after the last complete one: {result.trailing} bytes held, as"
            " the live port holds them until the rest arrives (capture cut mid-frame?)",
        )
    if not result.decoded and not rejected and not result.skipped and not result.trailing:
        problem(source, "no frame in the capture")
    return CaptureReport(result, tuple(problems))


def _counted(rest: Sequence[capture.Piece]) -> str:
    """Rejected pieces past the reported ones: how many, their bytes, the 3 commonest
    kinds of reason (each in the words of one of its pieces)."""
    kinds = Counter(reason_key(p.error.reason) for p in rest if p.error is not None)
    example = {reason_key(p.error.reason): p.error.reason for p in rest if p.error}
    counted = "; ".join(f"{n} x {example[kind]}" for kind, n in kinds.most_common(3))
    others = len(kinds) - 3
    return (
        f"{len(rest)} more rejected frames ({sum(len(p.data) for p in rest)} bytes): "
        + counted
        + (f"; and {others} other reasons" if others > 0 else "")
    )
