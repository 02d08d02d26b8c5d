"""The BLE transport: keep a paired device's notifications flowing into the recorder.

Cuffs, meters and scales connect briefly after a measurement, push, and disconnect; the
session reconnects with backoff whenever the link drops, subscribes within a second of
connecting (devices push immediately), and never blocks other devices (one task each).
Each notification becomes one frame whose channel is the characteristic UUID, so the
recorder picks the right decoder (0x2A35 measurement vs 0x2A36 cuff progress).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from device_drivers.transport import FrameSink, GattConversation, StateSink

log = logging.getLogger(__name__)


class NotifyingLink(Protocol):
    """What the session needs of a GATT link (bleak's client, or a scripted one)."""

    @property
    def is_connected(self) -> bool: ...

    async def connect(self) -> None: ...

    async def start_notify(
        self, characteristic: str, callback: Callable[[bytes], None]
    ) -> None: ...

    async def write(self, characteristic: str, data: bytes) -> None: ...

    async def disconnect(self) -> None: ...


class Presence(Protocol):
    """Tells a session when its device is advertising (ble.presence.AdvertisementWatcher)."""

    async def wait_seen(self, address: str, stop: asyncio.Event) -> bool: ...


class BleTransport:
    """One paired device's session: connect, subscribe, converse, record, reconnect.

    Cuffs, meters and scales advertise only for a while after a measurement. With a
    `presence` (the shared advertisement watcher) the session connects when its device
    is seen, instead of polling it with connection attempts; without one it simply
    retries with backoff. Notifications are recorded in arrival order; a driver's
    `conversation` (glucose RACP) is told of each and its writes are made; when it is
    finished the session hangs up (the meter would otherwise keep the link open).
    `dedup_key` gives each frame its device-resend key (a glucose sequence number).
    """

    def __init__(
        self,
        link_factory: Callable[[], NotifyingLink],
        characteristics: Sequence[str],
        *,
        retry_s: float = 1.0,
        max_retry_s: float = 60.0,
        poll_s: float = 0.5,
        conversation_factory: Callable[[], GattConversation] | None = None,
        dedup_key: Callable[[str, bytes], str | None] | None = None,
        presence: Presence | None = None,
        address: str = "",
        set_clock: Callable[[], tuple[str, bytes]] | None = None,
    ) -> None:
        self._link_factory = link_factory
        self._characteristics = tuple(characteristics)
        self._retry_s = retry_s
        self._max_retry_s = max_retry_s
        self._poll_s = poll_s
        self._conversation_factory = conversation_factory
        self._dedup_key = dedup_key
        self._presence = presence
        self._address = address
        self._set_clock = set_clock
        self.connections = 0
        self.clock_set = 0  # connections on which the device took our time

    async def run(
        self,
        emit: FrameSink,
        on_state: StateSink,
        stop: asyncio.Event,
    ) -> None:
        delay = self._retry_s
        while not stop.is_set():
            if self._presence is not None and not await self._presence.wait_seen(
                self._address, stop
            ):
                break
            link = self._link_factory()
            inbox = _Inbox()
            try:
                if not await _unless_stopped(link.connect(), stop):
                    # Stopped while connecting (a BLE connect can take 20 s): leave now.
                    with contextlib.suppress(Exception):
                        await link.disconnect()
                    break
                for characteristic in self._characteristics:
                    await link.start_notify(characteristic, inbox.callback(characteristic))
                if self._set_clock is not None:
                    await self._try_set_clock(link, self._set_clock)
                conversation = self._conversation_factory() if self._conversation_factory else None
                if conversation is not None:
                    for characteristic, data in conversation.opened():
                        await link.write(characteristic, data)
            except (OSError, TimeoutError, RuntimeError, ValueError) as exc:
                # bleak raises BleakError (an Exception subclass) for most link problems;
                # the link adapter converts them to these built-in kinds.
                on_state("disconnected", f"connect failed: {exc}")
                with contextlib.suppress(Exception):
                    await link.disconnect()
                await _sleep_unless(stop, delay)
                delay = min(self._max_retry_s, delay * 2)
                continue
            delay = self._retry_s
            self.connections += 1
            on_state("connected", "notifications on " + ", ".join(self._characteristics))
            reason = await self._converse(link, inbox, conversation, emit, stop)
            with contextlib.suppress(Exception):
                await link.disconnect()
            if not stop.is_set():
                on_state("disconnected", reason)
                await _sleep_unless(stop, delay)

    async def _try_set_clock(
        self, link: NotifyingLink, set_clock: Callable[[], tuple[str, bytes]]
    ) -> None:
        """Current Time Service: set the device clock when it allows it (GSS "Current Time").

        Many cuffs and meters have no CTS, or refuse the write until bonded; that is not
        a reason to drop a link that is about to deliver readings.
        """
        characteristic, data = set_clock()
        try:
            await link.write(characteristic, data)
        except OSError as exc:
            log.info("%s: device clock not set: %s", self._address or "BLE device", exc)
        else:
            self.clock_set += 1

    async def _converse(
        self,
        link: NotifyingLink,
        inbox: _Inbox,
        conversation: GattConversation | None,
        emit: FrameSink,
        stop: asyncio.Event,
    ) -> str:
        """Record notifications until the link drops, the exchange ends, or `stop`."""
        while not stop.is_set():
            note = inbox.pop()
            if note is None:
                if not link.is_connected:
                    return "link dropped; reconnecting"
                if conversation is not None and conversation.finished:
                    return "exchange finished; hanging up"
                await inbox.wait(self._poll_s)
                continue
            characteristic, data = note
            ready = [note] if conversation is None else conversation.release(characteristic, data)
            for channel, payload in ready:
                key = self._dedup_key(channel, payload) if self._dedup_key else None
                emit(payload, channel, dedup_key=key)
            if conversation is None:
                continue
            try:
                for target, payload in conversation.received(characteristic, data):
                    await link.write(target, payload)
            except OSError as exc:
                return f"write failed: {exc}"
        return "stopped"


class _Inbox:
    """Notifications in arrival order, filled by bleak's callbacks on the event loop."""

    def __init__(self) -> None:
        self._items: deque[tuple[str, bytes]] = deque()
        self._ready = asyncio.Event()

    def callback(self, channel: str) -> Callable[[bytes], None]:
        def deliver(data: bytes) -> None:
            self._items.append((channel, bytes(data)))
            self._ready.set()

        return deliver

    def pop(self) -> tuple[str, bytes] | None:
        if not self._items:
            self._ready.clear()
            return None
        return self._items.popleft()

    async def wait(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout_s)


async def _unless_stopped(operation: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run `operation` until it finishes (True) or `stop` is set first (False, cancelled)."""
    task = asyncio.ensure_future(operation)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        task.result()  # re-raises the connect error
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return False


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
