"""Waveform segments stored compressed and read back exactly; frames deduplicated per device;
the daemon tells a waiting transport what became of its frame after the commit."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from waiting import until

from device_drivers.transport import FrameSink, Outcome, StateSink
from edge_agent.clock import SystemClock
from edge_agent.config import embedded_defaults
from edge_agent.daemon import Agent
from edge_agent.devices import DeviceRuntime
from edge_agent.model import Decoded, DecodeError, Frame, Reading, Waveform
from edge_agent.recorder import Decoder, Recorder
from edge_agent.store import StoreWriter
from edge_agent.waveform_codec import (
    VARINT,
    VARINT_ZLIB,
    WaveformCodecError,
    decode_samples,
    encode_samples,
)

CLOCK = SystemClock(boot_id="test-boot")
T0 = dt.datetime(2026, 11, 22, 10, 0, 0)


def frame(data: bytes, device: str = "monitor-1", dedup_key: str | None = None) -> Frame:
    return Frame(
        device,
        "intellivue",
        data,
        CLOCK.wall_ns(),
        CLOCK.mono_ns(),
        CLOCK.boot_id,
        dedup_key=dedup_key,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreWriter]:
    s = StoreWriter.open(tmp_path / "agent.sqlite3")
    yield s
    s.close()


# --- codec ---------------------------------------------------------------------------------


@given(st.lists(st.integers(-(2**62), 2**62), max_size=2000))
def test_codec_round_trip_is_exact(samples: list[int]) -> None:
    encoding, blob = encode_samples(samples)
    assert decode_samples(blob, encoding) == tuple(samples)


def test_a_short_pleth_packet_costs_about_a_byte_a_sample() -> None:
    # 25 samples of a Nonin DF7 packet (Nonin data format #7): a smooth 16-bit curve
    pleth = [30000 + 40 * i - i * i for i in range(25)]
    encoding, blob = encode_samples(pleth)
    assert encoding == VARINT
    assert len(blob) <= 27  # first sample 3 bytes, then one byte per difference
    assert decode_samples(blob, encoding) == tuple(pleth)


def test_a_long_ecg_strip_is_deflated_well_under_raw_int16() -> None:
    # 10 s of a 500 Hz ECG-like signal in 5 uV counts: slow baseline + a spike per beat
    samples = [(200 if i % 400 < 8 else 0) + (i % 250) // 25 - 5 for i in range(5000)]
    encoding, blob = encode_samples(samples)
    assert encoding == VARINT_ZLIB
    assert decode_samples(blob, encoding) == tuple(samples)
    assert len(blob) < len(samples) * 2 / 10


@pytest.mark.parametrize(
    ("blob", "encoding", "reason"),
    [
        (b"not zlib", VARINT_ZLIB, "does not inflate"),
        (b"\x80", VARINT, "ends inside a varint"),
        (b"\xff" * 11, VARINT, "longer than 10 bytes"),
        (b"\x00", "gzip", "unknown waveform encoding"),
    ],
)
def test_codec_rejects_corrupt_blobs(blob: bytes, encoding: str, reason: str) -> None:
    with pytest.raises(WaveformCodecError, match=reason):
        decode_samples(blob, encoding)


@given(st.binary(max_size=200), st.sampled_from([VARINT, VARINT_ZLIB]))
def test_fuzz_decode_raises_only_codec_error(blob: bytes, encoding: str) -> None:
    with contextlib.suppress(WaveformCodecError):
        decode_samples(blob, encoding)


# --- recorder: waveforms ---------------------------------------------------------------------


def ecg_and_hr(_: bytes) -> Decoded:
    return Decoded(
        readings=(Reading("MDC_ECG_HEART_RATE", Decimal(72), "MDC_DIM_BEAT_PER_MIN", T0),),
        waveforms=(
            Waveform(
                "MDC_ECG_ELEC_POTL_II",
                500.0,
                "MDC_DIM_MICRO_VOLT",
                tuple(range(-250, 250)),
                scale=Decimal("4.88"),
                start_time=T0,
            ),
            Waveform("MDC_PULS_OXIM_PLETH", 125.0, "MDC_DIM_DIMLESS", tuple([3] * 125)),
        ),
    )


def waves_only(_: bytes) -> Decoded:
    return Decoded(waveforms=(Waveform("MDC_PULS_OXIM_PLETH", 75.0, "MDC_DIM_DIMLESS", (1, 2, 3)),))


def test_waveforms_are_stored_as_segments_and_read_back_exactly(store: StoreWriter) -> None:
    recorded = Recorder(store).record_many([(frame(b"poll-1"), ecg_and_hr)] * 3)
    assert [r.outcome for r in recorded] == ["decoded"] * 3
    assert all(r.message_id for r in recorded)  # the numerics still go up
    segments = store.frames.waveform_segments("monitor-1", "MDC_ECG_ELEC_POTL_II")
    assert len(segments) == 3
    wave = segments[0].waveform
    assert wave.samples == tuple(range(-250, 250))
    assert (wave.rate_hz, wave.scale, wave.unit, wave.start_time) == (
        500.0,
        Decimal("4.88"),
        "MDC_DIM_MICRO_VOLT",
        T0,
    )
    assert wave.physical(0) == Decimal("-1220.00")
    stats = store.frames.waveform_stats()
    assert stats["segments"] == 6 and stats["samples"] == 3 * (500 + 125)
    assert stats["bytes"] < stats["samples"] * 2  # smaller than raw int16


def test_a_frame_with_only_waves_is_decoded_but_sends_nothing(store: StoreWriter) -> None:
    recorded = Recorder(store).record(frame(b"wave"), waves_only)
    assert (recorded.outcome, recorded.message_id) == ("decoded", None)
    assert store.frames.waveform_segments("monitor-1", "MDC_PULS_OXIM_PLETH")[
        0
    ].waveform.samples == (
        1,
        2,
        3,
    )


def test_waveform_rows_need_their_frame(store: StoreWriter) -> None:
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        store.conn.execute("PRAGMA foreign_keys = ON")
        store.frames.insert_waveforms(999, frame(b"x"), None, waves_only(b"").waveforms)


# --- recorder: dedup ---------------------------------------------------------------------


def hr(_: bytes) -> Decoded:
    return Decoded(readings=(Reading("MDC_ECG_HEART_RATE", Decimal(72), "MDC_DIM_BEAT_PER_MIN"),))


def reject(_: bytes) -> Decoded:
    raise DecodeError("bad", 0)


def test_a_resent_frame_is_kept_but_counted_once(store: StoreWriter) -> None:
    recorder = Recorder(store)
    first = recorder.record(frame(b"MSH...1", dedup_key="MON1/MSG-1"), hr)
    again = recorder.record(frame(b"MSH...1", dedup_key="MON1/MSG-1"), hr)
    other_device = recorder.record(frame(b"MSH...1", "monitor-2", "MON1/MSG-1"), hr)
    assert [r.outcome for r in (first, again, other_device)] == [
        "decoded",
        "duplicate",
        "decoded",
    ]
    assert again.message_id is None
    assert store.frames.observation_count() == 2
    outcomes = [r[0] for r in store.conn.execute("SELECT outcome FROM raw_frame ORDER BY id")]
    assert outcomes == ["decoded", "duplicate", "decoded"]  # the resent bytes are kept


def test_a_quarantined_frame_does_not_block_a_good_resend(store: StoreWriter) -> None:
    recorder = Recorder(store)
    assert recorder.record(frame(b"bad", dedup_key="K"), reject).outcome == "quarantined"
    assert recorder.record(frame(b"good", dedup_key="K"), hr).outcome == "decoded"


# --- daemon: commit outcome back to the transport ------------------------------------------


class _OneShot:
    """A transport that sends two frames and waits for their commit, like MLLP does."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    async def run(self, emit: FrameSink, on_state: StateSink, stop: asyncio.Event) -> None:
        futures = [emit(b"ok", None, dedup_key="A"), emit(b"ok", None, dedup_key="A")]
        outcomes = []
        for future in futures:
            assert future is not None  # the daemon's sink tracks each commit
            outcomes.append(await future)
        self.outcomes = outcomes
        await stop.wait()


async def test_emit_resolves_after_the_durable_commit(tmp_path: Path) -> None:
    from edge_agent.config import DeviceConfig

    config = embedded_defaults(data_dir=tmp_path, broker="mqtt://127.0.0.1:1")
    transport = _OneShot()
    device = DeviceRuntime(
        DeviceConfig(id="mon-1", driver="masimo-ascii", port="/dev/null"),
        transport,
        lambda _c: hr,
    )

    class _NoLink:
        connected = False

        def start(self) -> None: ...

        def stop(self, **_: object) -> None: ...

        def publish(self, *_: object, **__: object) -> int:
            raise RuntimeError("no uplink in this test")

    store = StoreWriter.open(config.agent.db_path)
    agent = Agent(config, store, CLOCK, [device], lambda _on_event: _NoLink())
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await until(lambda: bool(transport.outcomes), 10, "the batch recorded")
    stop.set()
    await task
    store.close()
    # Both frames in one batch: the second is a resend of the first.
    assert transport.outcomes == ["decoded", "duplicate"]


# --- recorder: what goes up from a fast monitor ---------------------------------------------


def _at(ns: int, device: str = "spo2-1") -> Frame:
    return Frame(device, "nonin-df7", b"p", ns, ns, "b")


def with_alarm(*codes: str) -> Decoder:
    from edge_agent.model import DeviceAlarm

    def decode(_: bytes) -> Decoded:
        return Decoded(
            readings=hr(b"").readings,
            alarms=tuple(DeviceAlarm(c, "medium", c) for c in codes),
        )

    return decode


def test_numerics_of_a_fast_device_go_up_once_a_second_but_all_are_stored(
    store: StoreWriter,
) -> None:
    recorder = Recorder(store, upload_every_s={"spo2-1": 1.0})
    second = 1_000_000_000
    times = [0, second // 3, 2 * second // 3, second, second + second // 3, 3 * second]
    sent = [recorder.record(_at(t), hr).message_id is not None for t in times]
    assert sent == [True, False, False, True, False, True]
    assert store.frames.observation_count() == len(times)  # the box keeps every reading
    # A wall clock stepped back (no RTC) does not silence the device.
    assert recorder.record(_at(second), hr).message_id is not None
    # Other devices are not throttled.
    assert all(Recorder(store).record(_at(t, "cuff"), hr).message_id for t in (1, 2, 3))


def test_a_repeated_alarm_is_raised_and_sent_once_until_it_clears(store: StoreWriter) -> None:
    recorder = Recorder(store, upload_every_s={"spo2-1": 60.0})
    second = 1_000_000_000
    script = [
        with_alarm(),  # no alarm
        with_alarm("NONIN_ARTIFACT"),  # raised -> alert + alarm message
        with_alarm("NONIN_ARTIFACT"),  # still on: nothing new
        with_alarm("NONIN_ARTIFACT", "NONIN_SENSOR_OFF"),  # a second one joins
        with_alarm(),  # cleared
        with_alarm("NONIN_ARTIFACT"),  # back again: raised again
    ]
    results = [recorder.record(_at(i * second), d) for i, d in enumerate(script)]
    assert [r.message_id is not None for r in results] == [True, True, False, True, False, True]
    codes = [r[0] for r in store.conn.execute("SELECT code FROM alert ORDER BY id")]
    assert codes == ["NONIN_ARTIFACT", "NONIN_SENSOR_OFF", "NONIN_ARTIFACT"]
    priorities = [
        r[0] for r in store.conn.execute("SELECT priority FROM outbox ORDER BY created_wall_ns")
    ]
    assert priorities[1] < priorities[0]  # alarm messages jump the queue


def test_an_alarm_without_readings_is_a_local_alert_only(store: StoreWriter) -> None:
    from edge_agent.model import DeviceAlarm

    def alarm_poll(_: bytes) -> Decoded:
        return Decoded(alarms=(DeviceAlarm("INTELLIVUE_PATIENT_HR_HIGH", "high", "HR high"),))

    recorded = Recorder(store).record(_at(1, "mp50-1"), alarm_poll)
    assert (recorded.outcome, recorded.message_id) == ("decoded", None)
    assert store.alerts.summaries()[0]["code"] == "INTELLIVUE_PATIENT_HR_HIGH"
