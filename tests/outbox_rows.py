"""Outbox rows for the uplink's tests: readings recorded as the recorder records them,
one message each, and the status a row is in."""

from __future__ import annotations

from decimal import Decimal

from edge_agent.clock import Clock
from edge_agent.model import Decoded, Frame, Reading
from edge_agent.recorder import Recorder
from edge_agent.store import StoreWriter


def spo2(_: bytes) -> Decoded:
    return Decoded(readings=(Reading("MDC_PULS_OXIM_SAT_O2", Decimal("97"), "MDC_DIM_PERCENT"),))


def record(store: StoreWriter, n: int, clock: Clock, driver: str = "masimo-ascii") -> list[str]:
    """`n` SpO2 frames of `driver` recorded, each with its outbox row; the rows' ids
    (MSH-10)."""
    recorder = Recorder(store)
    ids = []
    for i in range(n):
        frame = Frame(
            "monitor-1", driver, b"%d" % i, clock.wall_ns(), clock.mono_ns(), clock.boot_id
        )
        result = recorder.record(frame, spo2)
        assert result.message_id is not None
        ids.append(result.message_id)
    return ids


def status_of(store: StoreWriter, message_id: str) -> str:
    row = store.outbox.get(message_id)
    assert row is not None
    return row.status
