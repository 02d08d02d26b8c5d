"""Monitor strips: the last seconds of each streaming monitor's waves, sent at low priority.

A monitor's waves are stored as they come (waveform_segment) but not sent frame by frame:
a county platform does not want 4 ECG packets a second from every ambulance. Every
`every_s` (config `uplink.strip_every_s`, 0 = off) this queues, per monitor that
streamed waves in that time, one ORU^R01 with the last `seconds` of each signal (ECG II,
pleth ...) as NA rows, behind everything else in the outbox (recorder.PRIORITY_STRIPS):
the ER sees the rhythm that led up to arrival, and a 12-lead or an alarm never waits for
a strip. The message itself is built when it is sent (sync.outbox_messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from edge_agent.clock import Clock, new_message_id
from edge_agent.recorder import PRIORITY_STRIPS
from edge_agent.store import StoreWriter

log = logging.getLogger(__name__)

KIND_STRIP = "strip"
STRIP_SECONDS = 10.0


def queue_strips(
    store: StoreWriter,
    clock: Clock,
    *,
    since_wall_ns: int,
    seconds: float = STRIP_SECONDS,
    new_id: Callable[[int], str] = new_message_id,
) -> list[str]:
    """One outbox row per monitor that streamed waves since `since_wall_ns`: the last
    `seconds` of its waves, ending at the last one it sent. Their ids."""
    now = clock.wall_ns()
    queued = []
    with store.transaction():
        for device_id, last_wall_ns in store.frames.wave_devices_since(since_wall_ns):
            message_id = new_id(now)
            store.outbox.insert(
                message_id,
                kind=KIND_STRIP,
                priority=PRIORITY_STRIPS,
                raw_frame_id=None,
                created_wall_ns=now,
                created_mono_ns=clock.mono_ns(),
                boot_id=clock.boot_id,
            )
            end = last_wall_ns + 1
            store.frames.insert_strip(message_id, device_id, end - int(seconds * 1e9), end)
            queued.append(message_id)
    return queued


async def run_strips(
    store: StoreWriter,
    clock: Clock,
    every_s: float,
    stop: asyncio.Event,
    *,
    wake: Callable[[], None],
) -> None:
    """Queue strips every `every_s` seconds until `stop`; `wake` nudges the uplink."""
    if every_s <= 0:
        return
    since = clock.wall_ns() - int(every_s * 1e9)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
        if stop.is_set():
            return
        now = clock.wall_ns()
        queued = queue_strips(store, clock, since_wall_ns=since)
        since = now
        if queued:
            log.info("queued %d monitor strip(s)", len(queued))
            wake()
