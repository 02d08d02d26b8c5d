"""What every transport (serial port, BLE link, TCP listener, folder) shares with the daemon.

Transports are thin async edges (`Transport`). They hand raw frames to a `FrameSink`
(the daemon's recorder queue) and report link state to a `StateSink`. A driver whose device must be
spoken to (an association, a data request, a keep-alive, an HL7 ACK) supplies a
`Conversation`: pure logic that says which bytes to write and when; the transport only
writes them.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

# What the recorder made of a frame, once it is durably committed (edge_agent.recorder):
# "decoded" | "quarantined" | "progress" | "empty" | "duplicate".
Outcome = str


class Framer(Protocol):
    """Bytes in, whole frames out; keeps partial frames between calls. No I/O."""

    def feed(self, data: bytes) -> list[bytes]: ...


class FrameSink(Protocol):
    """Hands one raw frame to the daemon.

    `channel` names where on the device it came from (a BLE characteristic). A
    `dedup_key` (an HL7 MSH-10, a glucose sequence number) makes the recorder keep a
    frame it has already recorded for this device as a duplicate, not a second reading.
    The returned future resolves to the outcome after the durable commit (a transport
    that must acknowledge to its device, like MLLP, waits for it); None when the sink
    does not track commits (tests, the decode CLI).
    """

    def __call__(
        self, data: bytes, channel: str | None, /, *, dedup_key: str | None = None
    ) -> asyncio.Future[Outcome] | None: ...


class StateSink(Protocol):
    def __call__(self, state: str, detail: str, /) -> None: ...


class Transport(Protocol):
    """One device's running edge (a serial port, a BLE session, a TCP listener, a watched
    folder): reads until `stop` is set, handing frames to `emit` and its state to
    `on_state`. The daemon runs one per device (edge_agent.devices builds them)."""

    async def run(self, emit: FrameSink, on_state: StateSink, stop: asyncio.Event) -> None: ...


class WholeFrames:
    """The framer of a transport that already delivers whole frames (BLE notifications,
    a file read from a folder)."""

    def feed(self, data: bytes) -> list[bytes]:
        return [data] if data else []


class Conversation(Protocol):
    """A driver's side of a request/response device protocol, without I/O.

    The transport makes a new one per connection, calls `opened` once, `received` with
    every frame its framer cuts (the frame is also emitted for recording), and `tick`
    every `tick_s` seconds; each returns the frames to write, already framed. `now` is
    monotonic seconds. A conversation may also have `close(now) -> list[bytes]`: what to
    send when the agent stops on purpose (a release request); the transport writes it
    and gives it half a second to leave.
    """

    tick_s: float

    def opened(self, now: float) -> list[bytes]: ...

    def received(self, frame: bytes, now: float) -> list[bytes]: ...

    def tick(self, now: float) -> list[bytes]: ...


class GattConversation(Protocol):
    """A BLE driver's side of a request/response exchange (the glucose RACP), without I/O.

    The BLE transport makes a new one per connection, calls `opened` once all
    subscriptions are in place, and `received` with every notification or indication;
    each returns (characteristic UUID, bytes) writes to make, with response. `finished`
    tells the transport the device has nothing more to say on this connection.

    `release` decides when a notification is recorded: the (characteristic, bytes) to
    record now, in order. A driver may hold one back until the notification that
    completes it arrives (a glucose record and its context are recorded together, the
    context first, so the record's reading carries the meal); what is still held when
    the link drops is not recorded, and the device is asked for it again.
    """

    @property
    def finished(self) -> bool: ...

    def opened(self) -> list[tuple[str, bytes]]: ...

    def release(self, characteristic: str, data: bytes) -> list[tuple[str, bytes]]: ...

    def received(self, characteristic: str, data: bytes) -> list[tuple[str, bytes]]: ...
