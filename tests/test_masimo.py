"""Masimo Radical-5/7, Rad-8 ASCII output: decoder, framer, simulator, serial port.

Layouts from the monitors' serial output ("ASCII 1") as docs/protocols/masimo.md sets
them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import os
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from waiting import until

from device_drivers.serial.masimo import (
    MAX_LINE,
    LineFramer,
    decode_line,
    encode_line,
)
from device_drivers.serial.port import SerialSettings, SerialTransport
from device_drivers.simulators import masimo as sim
from edge_agent.model import Decoded, DecodeError

SPO2, PR, PI = "MDC_PULS_OXIM_SAT_O2", "MDC_PULS_OXIM_PULS_RATE", "MDC_PULS_OXIM_PERF_REL"
PCT, BPM = "MDC_DIM_PERCENT", "MDC_DIM_BEAT_PER_MIN"
T = dt.datetime(2026, 11, 22, 10, 0, 5)

# Field sets (docs/protocols/masimo.md), written out by hand as each model prints them.
RADICAL_7 = (
    b"11/22/26 10:00:05 SN=0000012345 SPO2=097% BPM=072 PI=02.34 SPCO=01.5% "
    b"SPMET=00.8% DESAT=00 PIDELTA=+05 PVI=014 ALARM=0000 EXC=000800\r\n"
)
RAD_8 = (
    b"11/22/26 10:00:05 SN=0000012345 SPO2=097% BPM=072 PI=02.34 SPCO=--.-% "
    b"SPMET=--.-% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800\r\n"
)
RADICAL_5 = b"11/22/26 10:00:05 SPO2=097% BPM=072 PI=02.34 ALARM=0000 EXC=000800\r\n"


def values(decoded: Decoded) -> dict[str, tuple[Decimal | None, str, tuple[str, ...]]]:
    return {r.metric: (r.value, r.unit, r.flags) for r in decoded.readings}


def test_radical_7_line() -> None:
    decoded = decode_line(RADICAL_7)
    got = values(decoded)
    assert got[SPO2] == (Decimal(97), PCT, ())
    assert got[PR] == (Decimal(72), BPM, ())
    assert got[PI] == (Decimal("2.34"), PCT, ())
    assert got["MDCX_MASIMO_SPCO"] == (Decimal("1.5"), PCT, ())
    assert got["MDCX_MASIMO_SPMET"] == (Decimal("0.8"), PCT, ())
    assert got["MDCX_MASIMO_DESAT"][0] == Decimal(0)
    assert got["MDCX_MASIMO_PI_DELTA"][0] == Decimal(5)
    assert got["MDCX_MASIMO_PVI"][0] == Decimal(14)
    assert all(r.device_time == T for r in decoded.readings)
    assert decoded.alarms == ()  # EXC 0x000800 is "Masimo SET", the normal mode


def test_rad_8_line_has_no_pvi_and_dashes_are_unavailable() -> None:
    got = values(decode_line(RAD_8))
    assert "MDCX_MASIMO_PVI" not in got
    assert got[SPO2] == (Decimal(97), PCT, ())
    for metric in ("MDCX_MASIMO_SPCO", "MDCX_MASIMO_SPMET", "MDCX_MASIMO_DESAT"):
        assert got[metric][0] is None and got[metric][2] == ("unavailable",)
    assert got["MDCX_MASIMO_PI_DELTA"] == (None, PCT, ("unavailable",))


def test_radical_5_line() -> None:
    got = values(decode_line(RADICAL_5))
    assert set(got) == {SPO2, PR, PI}


def test_probe_off_line_keeps_the_gap_and_raises_the_exception() -> None:
    line = b"11/22/26 10:00:06 SPO2=---% BPM=--- PI=--.-- ALARM=0000 EXC=000828\r\n"
    decoded = decode_line(line)
    assert [(r.metric, r.value, r.flags) for r in decoded.readings] == [
        (SPO2, None, ("unavailable",)),
        (PR, None, ("unavailable",)),
        (PI, None, ("unavailable",)),
    ]
    # 0x28 = 0x20 sensor off + 0x08 pulse search; 0x800 (SET) is not reported
    assert [a.code for a in decoded.alarms] == ["MASIMO_EXC_PULSE_SEARCH", "MASIMO_EXC_SENSOR_OFF"]


@pytest.mark.parametrize(
    ("alarm", "codes"),
    [
        ("0012", ["MASIMO_SPO2_LOW"]),  # low SpO2 + "alarm active" summary bit
        ("0010", ["MASIMO_ALARM_ACTIVE"]),  # active, cause not reported
        ("0060", ["MASIMO_ALARM_SILENCED", "MASIMO_LOW_BATTERY"]),
        (
            "3005",
            ["MASIMO_SPO2_HIGH", "MASIMO_PULSE_HIGH", "MASIMO_DESAT_INDEX", "MASIMO_PI_DELTA"],
        ),
        ("8000", ["MASIMO_ALARM_0x8000"]),  # undocumented bit: kept, never dropped
    ],
)
def test_alarm_bits(alarm: str, codes: list[str]) -> None:
    line = f"11/22/26 10:00:05 SPO2=085% BPM=072 PI=02.34 ALARM={alarm} EXC=000800".encode()
    decoded = decode_line(line)
    got = [a.code for a in decoded.alarms]
    if alarm == "0012":
        assert got == ["MASIMO_SPO2_LOW"]
    else:
        assert sorted(got) == sorted(codes)


def test_alarm_priorities() -> None:
    decoded = decode_line(b"11/22/26 10:00:05 SPO2=085% ALARM=0012 EXC=000001")
    assert {a.code: a.priority for a in decoded.alarms} == {
        "MASIMO_SPO2_LOW": "high",
        "MASIMO_EXC_NO_SENSOR": "medium",
    }


def test_unknown_fields_are_skipped_but_known_ones_read() -> None:
    got = values(decode_line(b"11/22/26 10:00:05 SN=1 SPO2=099% SPOC=16.0 EXC1=0000 BPM=060"))
    assert set(got) == {SPO2, PR}


def test_two_digit_year_and_the_device_clock() -> None:
    decoded = decode_line(b"02/29/24 23:59:59 SPO2=097%")
    assert decoded.readings[0].device_time == dt.datetime(2024, 2, 29, 23, 59, 59)


@pytest.mark.parametrize(
    ("line", "offset", "reason"),
    [
        (b"", 0, "empty line"),
        (b"SPO2=097% BPM=072", 0, "no MM/DD/YY HH:MM:SS time stamp"),  # cut-off head
        (b"% BPM=072 PI=02.34 ALARM=0000 EXC=000800", 0, "no MM/DD/YY"),
        (b"13/22/26 10:00:05 SPO2=097%", 0, "bad time stamp"),
        (b"02/29/25 10:00:05 SPO2=097%", 0, "bad time stamp"),  # 2025 is no leap year
        (b"11/22/26 10:00:05 SPO2=097% garbage", 28, "unexpected text"),
        (b"11/22/26 10:00:05 SPO2=097% SPO2=098%", 28, "field SPO2 twice"),
        (b"11/22/26 10:00:05 SPO2=1O0%", 23, "not a number"),
        (b"11/22/26 10:00:05 SPO2=101%", 23, "outside 0..100"),
        (b"11/22/26 10:00:05 BPM=-12", 22, "outside 0..300"),
        (b"11/22/26 10:00:05 ALARM=00G0", 24, "not a hex bit field"),
        (b"11/22/26 10:00:05 SN=123", 0, "no Masimo fields"),
        (b"11/22/26 10:00:05 SPO2=097%\x00", 27, "byte 0x00"),
        (b"\xff\xfe11/22/26", 0, "byte 0xff"),
    ],
)
def test_rejected_lines(line: bytes, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_line(line)
    assert info.value.offset == offset
    assert reason in info.value.reason
    assert "\n" not in str(info.value)


@given(st.binary(max_size=600))
def test_fuzz_decode_raises_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_line(data)


@given(
    st.builds(
        dict,
        SPO2=st.one_of(st.none(), st.integers(0, 100)),
        BPM=st.one_of(st.none(), st.integers(0, 300)),
        PI=st.one_of(st.none(), st.decimals("0.02", "20", places=2)),
        PVI=st.one_of(st.none(), st.integers(0, 100)),
    ),
    st.sampled_from(["radical-5", "radical-7", "rad-8"]),
)
def test_encode_decode_round_trip(fields: dict[str, Decimal | int | None], model: str) -> None:
    decoded = decode_line(encode_line(T, fields, model=model))
    got = values(decoded)
    for name, metric in (("SPO2", SPO2), ("BPM", PR), ("PI", PI)):
        assert got[metric][0] == (None if fields[name] is None else Decimal(str(fields[name])))
    if model == "radical-7":
        expected = None if fields["PVI"] is None else Decimal(str(fields["PVI"]))
        assert got["MDCX_MASIMO_PVI"][0] == expected
    else:
        assert "MDCX_MASIMO_PVI" not in got


# --- framing ---------------------------------------------------------------------------


def test_framer_output_does_not_depend_on_how_reads_split_the_stream() -> None:
    stream = RADICAL_7 + b"\r\n" + RAD_8 + b"\n" + RADICAL_5
    whole = LineFramer().feed(stream)
    assert whole == [RADICAL_7.strip(), RAD_8.strip(), RADICAL_5.strip()]
    for size in (1, 2, 7, 64):
        framer = LineFramer()
        pieces: list[bytes] = []
        for start in range(0, len(stream), size):
            pieces += framer.feed(stream[start : start + size])
        assert pieces == whole


def test_framer_caps_a_run_without_terminator() -> None:
    framer = LineFramer()
    noise = bytes(itertools.islice(itertools.cycle(b"\x81\x92garbage"), 3 * MAX_LINE + 10))
    frames = framer.feed(noise)
    assert [len(f) for f in frames] == [MAX_LINE] * 3  # kept for quarantine, memory bounded
    assert framer.feed(b"\r\n" + RADICAL_5) == [noise[3 * MAX_LINE :], RADICAL_5.strip()]
    assert framer.feed(b"\r\n") == []


@given(st.lists(st.binary(max_size=80), max_size=20))
def test_framer_never_loses_bytes_between_terminators(chunks: list[bytes]) -> None:
    framer = LineFramer(max_line=64)
    out: list[bytes] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    out += framer.feed(b"\n")
    # Every byte that is not a terminator or blank padding comes out, in order (a run
    # over the cap is cut as it is, blanks included, for quarantine).
    blanks = b" \t\n\r\x0b\x0c"
    assert b"".join(out).translate(None, blanks) == b"".join(chunks).translate(None, blanks)
    assert all(0 < len(f) <= 64 and b"\n" not in f and b"\r" not in f for f in out)


# --- simulator -------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["radical-5", "radical-7", "rad-8"])
def test_simulator_lines_decode(model: str) -> None:
    start = dt.datetime(2026, 11, 22, 8, 0, 0)
    lines = list(itertools.islice(sim.lines(model, seed=3, start=start), 600))
    decoded = [decode_line(line) for line in lines]
    assert all(line.endswith(b"\r\n") for line in lines)
    assert [d.readings[0].device_time for d in decoded[:3]] == [
        start,
        start + dt.timedelta(seconds=1),
        start + dt.timedelta(seconds=2),
    ]
    spo2 = [v[0] for d in decoded if (v := values(d).get(SPO2)) and v[0] is not None]
    assert len(spo2) > 500 and all(86 <= s <= 100 for s in spo2)
    assert any(values(d)[SPO2][0] is None for d in decoded)  # a probe-off spell in 10 min


def test_simulator_garbage_is_rejected_and_is_one_frame() -> None:
    import random

    rng = random.Random(1)
    for _ in range(50):
        line = sim.garbage_line(rng)
        frames = LineFramer().feed(line)
        assert len(frames) == 1
        with pytest.raises(DecodeError):
            decode_line(frames[0])


# --- the serial edge: simulator -> pty -> SerialTransport -> framer -> decoder ----------


async def test_serial_transport_reads_the_simulator_over_a_real_pty() -> None:
    master_fd, slave_path = sim.open_pty()
    stop = asyncio.Event()
    frames: list[bytes] = []
    states: list[str] = []

    def emit(frame: bytes, channel: str | None, /, *, dedup_key: str | None = None) -> None:
        frames.append(frame)
        if len(frames) >= 20:
            stop.set()

    transport = SerialTransport(SerialSettings(port=slave_path, baudrate=9600), LineFramer)
    try:
        writer = asyncio.create_task(sim.run(master_fd, rate_hz=50, noise=True, seed=2, stop=stop))
        await asyncio.wait_for(transport.run(emit, lambda s, _d: states.append(s), stop), 20)
        await writer
    finally:
        os.close(master_fd)
    assert "connected" in states
    good = bad = 0
    for frame in frames:
        try:
            decode_line(frame)
            good += 1
        except DecodeError:
            bad += 1
    assert good >= 15 and good + bad == len(frames)


async def test_serial_transport_reopens_after_unplug(tmp_path: object) -> None:
    """A pty whose master closes is a USB adapter pulled out; a new one at the same
    path (a udev symlink) is the adapter plugged back in."""
    link = os.path.join(str(tmp_path), "ttyMasimo")
    stop = asyncio.Event()
    frames: list[bytes] = []
    states: list[tuple[str, str]] = []
    transport = SerialTransport(SerialSettings(port=link, baudrate=9600), LineFramer, reopen_s=0.1)

    def emit(frame: bytes, channel: str | None, /, *, dedup_key: str | None = None) -> None:
        frames.append(frame)

    task = asyncio.create_task(transport.run(emit, lambda s, d: states.append((s, d)), stop))
    try:
        for round_ in range(2):
            master_fd, slave_path = sim.open_pty()
            os.symlink(slave_path, link)
            os.set_blocking(master_fd, False)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            want = 3 * (round_ + 1)
            while len(frames) < want and loop.time() < deadline:
                if any(s == "connected" for s, _ in states[-1:]):
                    os.write(master_fd, RADICAL_5)
                await asyncio.sleep(0.05)  # the simulated monitor's line period, 20 lines/s
            os.close(master_fd)  # unplug
            os.unlink(link)
            assert len(frames) >= want, states
            await until(lambda: states[-1][0] == "disconnected", 5, "the unplug seen")
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert [s for s, _ in states].count("connected") == 2
    assert any(s == "disconnected" for s, _ in states)
    assert all(decode_line(f).readings for f in frames)
