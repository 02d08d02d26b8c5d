"""Monitor strips: the last seconds of a streaming monitor's waves, behind everything else."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from pathlib import Path

from waiting import until

from edge_agent.clock import SystemClock
from edge_agent.model import Decoded, Frame, Reading, Waveform
from edge_agent.recorder import PRIORITY_STRIPS, Recorder
from edge_agent.store import StoreWriter
from edge_agent.strips import KIND_STRIP, queue_strips, run_strips
from sync.gateway.ecg import ecg_from_message
from sync.hl7.inbound import parse_inbound
from sync.outbox_messages import build_message


def _packet(n: int) -> Decoded:
    """What an IntelliVue poll gives: 128 ECG II samples at 500 Hz, 32 pleth at 125 Hz."""
    ecg = tuple(range(n * 128, n * 128 + 128))
    pleth = tuple(range(n * 32, n * 32 + 32))
    return Decoded(
        readings=(Reading("MDC_ECG_HEART_RATE", Decimal(80), "MDC_DIM_BEAT_PER_MIN"),),
        waveforms=(
            Waveform("MDC_ECG_ELEC_POTL_II", 500.0, "MDC_DIM_MICRO_VOLT", ecg, Decimal("2.5")),
            Waveform("MDC_PULS_OXIM_PLETH", 125.0, "MDC_DIM_DIMLESS", pleth),
        ),
    )


def test_a_strip_carries_each_signal_joined_and_goes_last(tmp_path: Path) -> None:
    store = StoreWriter.open(tmp_path / "agent.db")
    clock = SystemClock.create()
    try:
        recorder = Recorder(store)
        with store.transaction():
            for n in range(4):
                frame = Frame(
                    "mp50-1", "intellivue", b"poll", clock.wall_ns(), clock.mono_ns(), "b"
                )

                def poll(_data: bytes, n: int = n) -> Decoded:
                    return _packet(n)

                recorder.record(frame, poll)
        (strip_id,) = queue_strips(store, clock, since_wall_ns=clock.wall_ns() - 60 * 10**9)
        rows = store.outbox.due(clock.wall_ns() + 1, 10)
        assert rows[-1].id == strip_id  # behind the monitor's own numerics
        strip = rows[-1]
        assert (strip.kind, strip.priority) == (KIND_STRIP, PRIORITY_STRIPS)
        text = build_message(
            store, strip, agent_id="amb-017", tz="Asia/Shanghai", now_wall_ns=clock.wall_ns()
        )
        message = parse_inbound(text)
        waves = {o.metric: o.samples for o in message.observations if o.samples is not None}
        assert waves["MDC_ECG_ELEC_POTL_II"] == tuple(range(4 * 128))  # joined, in order
        assert waves["MDC_PULS_OXIM_PLETH"] == tuple(range(4 * 32))
        assert ecg_from_message(message) is None  # a strip, not a 12-lead sheet
        assert "2327^MDC_ATTR_NU_MSMT_RES^MDC|1.0.1.1.2|2.5|266419^MDC_DIM_MICRO_VOLT" in text
    finally:
        store.close()


def test_no_waves_no_strip_and_12_leads_are_not_strips(tmp_path: Path) -> None:
    store = StoreWriter.open(tmp_path / "agent.db")
    clock = SystemClock.create()
    try:
        assert queue_strips(store, clock, since_wall_ns=clock.wall_ns() - 60 * 10**9) == []
        with store.transaction():
            frame = Frame("cart-1", "ecg-scp", b"file", clock.wall_ns(), clock.mono_ns(), "b")
            Recorder(store).record(frame, lambda _b: _packet(0))
        assert (
            queue_strips(store, clock, since_wall_ns=clock.wall_ns() - 60 * 10**9) == []
        )  # the cart's ECG already went up whole
    finally:
        store.close()


async def test_the_strip_task_queues_on_its_period_and_wakes_the_uplink(tmp_path: Path) -> None:
    store = StoreWriter.open(tmp_path / "agent.db")
    clock = SystemClock.create()
    woken: list[dt.datetime] = []
    try:
        with store.transaction():
            frame = Frame("mp50-1", "intellivue", b"poll", clock.wall_ns(), clock.mono_ns(), "b")
            Recorder(store).record(frame, lambda _b: _packet(0))
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_strips(store, clock, 0.2, stop, wake=lambda: woken.append(dt.datetime.now()))
        )
        await until(lambda: bool(woken), 5, "a strip queued on the 0.2 s period")
        stop.set()
        await asyncio.wait_for(task, 2)
        assert len(woken) >= 1
        assert store.outbox.counts()["pending"] >= 2  # the numerics + at least one strip
        await run_strips(store, clock, 0, stop, wake=lambda: None)  # 0: off, returns at once
    finally:
        store.close()
