"""Nonin DF2 / DF7 / DF8 binary serial formats (Nonin OEM III, WristOx2 3150 and Onyx II
9560 specifications, "Serial Data Format #2/#7/#8"): decoders, framers, encoders,
simulator, and the serial edge over a real pty."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
from collections.abc import Callable, Sequence
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers.serial import nonin
from device_drivers.serial.nonin import (
    DF8_TRUSTED_RUN,
    MAX_NOISE_PIECE,
    PACKET_LEN,
    SERIAL_SETTINGS,
    PacketFramer,
    RecordFramer,
    checksum,
    decode_packet_df2,
    decode_packet_df7,
    decode_record_df8,
    df8_problem,
    encode_frame_df2,
    encode_packet_df2,
    encode_packet_df7,
    encode_record_df8,
)
from device_drivers.serial.port import SerialSettings, SerialTransport
from device_drivers.simulators import nonin as sim
from edge_agent.model import Decoded, DecodeError

PR, SPO2, PLETH = "MDC_PULS_OXIM_PULS_RATE", "MDC_PULS_OXIM_SAT_O2", "MDC_PULS_OXIM_PLETH"
BPM, PCT = "MDC_DIM_BEAT_PER_MIN", "MDC_DIM_PERCENT"
UNAVAILABLE = ("unavailable",)

# --- hand-built byte vectors (independent of the module's encoders) --------------------
# Nonin spec: DF2 frame = 01 status pleth data checksum; DF7 frame = status pleth-MSB pleth-LSB
# data checksum; checksum = sum of bytes 1-4 mod 256; status bit 7 always 1, bit 0 SYNC.


def frame2(status: int, pleth: int, data: int) -> bytes:
    head = bytes([0x01, status, pleth, data])
    return head + bytes([sum(head) % 256])


def frame7(status: int, pleth: int, data: int) -> bytes:
    head = bytes([status, pleth >> 8, pleth & 0xFF, data])
    return head + bytes([sum(head) % 256])


def packet(
    fmt: int,
    data: dict[int, int],
    status: int | Sequence[int] = 0x02,
    pleth: Sequence[int] | None = None,
) -> bytes:
    """A packet from data bytes by frame number (others 0); `status` without bit 7/SYNC."""
    statuses = [status] * 25 if isinstance(status, int) else list(status)
    samples = list(pleth) if pleth is not None else [0x37] * 25
    make = frame2 if fmt == 2 else frame7
    return b"".join(
        make(0x80 | statuses[i] | (0x01 if i == 0 else 0), samples[i], data.get(i + 1, 0))
        for i in range(25)
    )


def fix_checksums(raw: bytes | bytearray) -> bytes:
    out = bytearray(raw)
    for at in range(0, len(out) - 4, 5):
        out[at + 4] = sum(out[at : at + 4]) % 256
    return bytes(out)


def readings(decoded: Decoded) -> list[tuple[str, Decimal | None, str, tuple[str, ...]]]:
    return [(r.metric, r.value, r.unit, r.flags) for r in decoded.readings]


DECODERS: dict[int, Callable[[bytes], Decoded]] = {
    2: decode_packet_df2,
    7: decode_packet_df7,
    8: decode_record_df8,
}


# --- checksum and heart-rate rule -------------------------------------------------------


def test_worked_checksum_example() -> None:
    # Nonin spec: 01 80 37 5F -> 0x01 + 0x80 + 0x37 + 0x5F = 0x117 -> checksum byte 0x17
    assert checksum(bytes.fromhex("0180375F")) == 0x17
    assert encode_frame_df2(0x80, 0x37, 0x5F) == bytes.fromhex("0180375F17")
    assert frame2(0x80, 0x37, 0x5F) == bytes.fromhex("0180375F17")


@pytest.mark.parametrize("fmt", [2, 7])
@pytest.mark.parametrize(
    ("hr_msb", "hr_lsb", "spo2", "want_hr", "want_spo2"),
    [
        (0x00, 0x48, 0x61, Decimal(72), Decimal(97)),  # plain values
        (0x01, 0x48, 0x61, Decimal(200), Decimal(97)),  # Nonin spec: 1 x 128 + 72; not 0x148 = 328
        (0x02, 0x00, 0x5A, Decimal(256), Decimal(90)),  # OpenICE's MSB x 256 + LSB says 512
        (0x01, 0x7F, 0x64, Decimal(255), Decimal(100)),
        (0x00, 0x00, 0x00, Decimal(0), Decimal(0)),
        (0x05, 0xC8, 0xE1, Decimal(200), Decimal(97)),  # masks: MSB & 0x03, LSB/SpO2 & 0x7F
        (0x03, 0x7F, 0x7F, None, None),  # 511 / 127: missing data
        (0x03, 0x7F, 0x61, None, Decimal(97)),
        (0x00, 0x48, 0x7F, Decimal(72), None),
    ],
)
def test_heart_rate_and_spo2(
    fmt: int,
    hr_msb: int,
    hr_lsb: int,
    spo2: int,
    want_hr: Decimal | None,
    want_spo2: Decimal | None,
) -> None:
    decoded = DECODERS[fmt](packet(fmt, {1: hr_msb, 2: hr_lsb, 3: spo2, 9: 0x61, 16: 0x61}))
    assert readings(decoded) == [
        (PR, want_hr, BPM, UNAVAILABLE if want_hr is None else ()),
        (SPO2, want_spo2, PCT, UNAVAILABLE if want_spo2 is None else ()),
    ]


def test_pleth_waveform_df2_8_bit_and_df7_16_bit() -> None:
    samples = [i * 10 for i in range(25)]
    wave = decode_packet_df2(packet(2, {3: 97}, pleth=samples)).waveforms
    assert len(wave) == 1
    assert (wave[0].metric, wave[0].rate_hz, wave[0].unit) == (PLETH, 75.0, "MDC_DIM_DIMLESS")
    assert wave[0].samples == tuple(samples)
    big = [0x1234 + i * 0x0101 for i in range(25)]
    wave7 = decode_packet_df7(packet(7, {3: 97}, pleth=big)).waveforms[0]
    assert wave7.samples == tuple(big)
    # the first DF7 frame on the wire: status 0x83, pleth 12 34 big-endian
    assert packet(7, {3: 97}, pleth=big)[:3] == bytes.fromhex("831234")


# --- status bits -> device alarms -------------------------------------------------------


@pytest.mark.parametrize("fmt", [2, 7])
@pytest.mark.parametrize(
    ("status", "codes"),
    [
        (0x02, []),  # perfusion green: nothing to say
        (0x00, []),  # no perfusion indication (between pulses)
        (0x40, ["NONIN_SENSOR_DISCONNECTED"]),  # bit 6 SNSD
        (0x20, ["NONIN_ARTIFACT"]),  # bit 5 ARTF
        (0x10, ["NONIN_OUT_OF_TRACK"]),  # bit 4 OOT
        (0x08, ["NONIN_SENSOR_ALARM"]),  # bit 3 SNSA
        (0x04, ["NONIN_LOW_PERFUSION"]),  # bits 2-1 = 10 red
        (0x06, ["NONIN_MARGINAL_PERFUSION"]),  # bits 2-1 = 11 yellow
        (0x7C, [  # everything at once, in a fixed order
            "NONIN_SENSOR_DISCONNECTED", "NONIN_OUT_OF_TRACK", "NONIN_SENSOR_ALARM",
            "NONIN_ARTIFACT", "NONIN_LOW_PERFUSION",
        ]),
    ],
)  # fmt: skip
def test_status_bits(fmt: int, status: int, codes: list[str]) -> None:
    decoded = DECODERS[fmt](packet(fmt, {3: 97}, status=status))
    assert [a.code for a in decoded.alarms] == codes


def test_alarms_are_deduplicated_per_packet_and_worst_perfusion_wins() -> None:
    statuses = [0x22, 0x22, 0x06, 0x04, 0x06, 0x20] + [0x00] * 19
    decoded = decode_packet_df2(packet(2, {3: 97}, status=statuses))
    assert [(a.code, a.priority) for a in decoded.alarms] == [
        ("NONIN_ARTIFACT", "low"),
        ("NONIN_LOW_PERFUSION", "medium"),
    ]


def test_alarm_priorities() -> None:
    decoded = decode_packet_df2(packet(2, {3: 97}, status=0x5E))
    assert {a.code: a.priority for a in decoded.alarms} == {
        "NONIN_SENSOR_DISCONNECTED": "medium",
        "NONIN_OUT_OF_TRACK": "medium",
        "NONIN_SENSOR_ALARM": "medium",
        "NONIN_MARGINAL_PERFUSION": "low",
    }


@pytest.mark.parametrize(
    ("stat2", "codes", "flags"),
    [
        (0x00, [], ()),
        (0x01, ["NONIN_LOW_BATTERY"], ()),  # OpenICE: STAT2 0x01 low battery
        (0x20, [], ("smartpoint",)),  # OpenICE: STAT2 0x20 SmartPoint qualified reading
        (0x21, ["NONIN_LOW_BATTERY"], ("smartpoint",)),
    ],
)
def test_df7_stat2_in_frame_8(stat2: int, codes: list[str], flags: tuple[str, ...]) -> None:
    decoded = decode_packet_df7(packet(7, {1: 0, 2: 72, 3: 97, 8: stat2}))
    assert [a.code for a in decoded.alarms] == codes
    assert [r.flags for r in decoded.readings] == [flags, flags]


def test_df2_frame_8_is_reserved() -> None:
    assert decode_packet_df2(packet(2, {3: 97, 8: 0x21})).alarms == ()


def test_extras_are_flagged_readings_of_the_same_metrics() -> None:
    data = {1: 0, 2: 72, 3: 97, 9: 96, 10: 95, 11: 94, 14: 1, 15: 2, 16: 93, 17: 92}
    data |= {20: 0, 21: 70, 22: 0x03, 23: 0x7F}  # HR-D 70, E-HR-D missing
    raw = packet(2, data)
    assert len(decode_packet_df2(raw).readings) == 2  # default: the 4-beat values only
    got = readings(decode_packet_df2(raw, extras=True))
    assert got == [
        (PR, Decimal(72), BPM, ()),
        (SPO2, Decimal(97), PCT, ()),
        (PR, Decimal(70), BPM, ("display",)),
        (PR, Decimal(130), BPM, ("8-beat",)),
        (PR, None, BPM, ("8-beat", "display", "unavailable")),
        (SPO2, Decimal(96), PCT, ("display",)),
        (SPO2, Decimal(95), PCT, ("fast",)),
        (SPO2, Decimal(94), PCT, ("beat-to-beat",)),
        (SPO2, Decimal(93), PCT, ("8-beat",)),
        (SPO2, Decimal(92), PCT, ("8-beat", "display")),
    ]


# --- DF8 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hex_record", "hr", "spo2", "codes", "flags"),
    [
        # status (bit 7 set), HR bits 6-0, SpO2, STAT2 (Nonin spec)
        ("80486100", Decimal(72), Decimal(97), [], ()),
        ("81486100", Decimal(200), Decimal(97), [], ()),  # status bits 1-0 = HR bits 8-7
        ("82006100", Decimal(256), Decimal(97), [], ()),
        ("837F7F00", None, None, [], None),  # 511 / 127 missing
        ("C37F7F00", None, None, ["NONIN_SENSOR_DISCONNECTED"], None),  # 0x40
        ("A0486100", Decimal(72), Decimal(97), ["NONIN_OUT_OF_TRACK"], ()),  # 0x20
        ("90486100", Decimal(72), Decimal(97), ["NONIN_LOW_PERFUSION"], ()),  # 0x10
        ("88486100", Decimal(72), Decimal(97), ["NONIN_MARGINAL_PERFUSION"], ()),  # 0x08
        ("98486100", Decimal(72), Decimal(97), ["NONIN_LOW_PERFUSION"], ()),  # worst wins
        ("84486100", Decimal(72), Decimal(97), ["NONIN_ARTIFACT"], ()),  # 0x04
        ("80486108", Decimal(72), Decimal(97), ["NONIN_SENSOR_ALARM"], ()),  # STAT2 0x08
        ("80486104", Decimal(72), Decimal(97), [], ("spot-check",)),  # STAT2 0x04
        ("80486102", Decimal(72), Decimal(97), ["NONIN_BATTERY_CRITICAL"], ()),  # 0x02
        ("80486101", Decimal(72), Decimal(97), ["NONIN_LOW_BATTERY"], ()),  # 0x01
        ("80486103", Decimal(72), Decimal(97), ["NONIN_BATTERY_CRITICAL"], ()),
        ("80486120", Decimal(72), Decimal(97), [], ("smartpoint",)),  # STAT2 0x20
    ],
)
def test_df8_records(
    hex_record: str,
    hr: Decimal | None,
    spo2: Decimal | None,
    codes: list[str],
    flags: tuple[str, ...] | None,
) -> None:
    decoded = decode_record_df8(bytes.fromhex(hex_record))
    hr_flags = UNAVAILABLE if hr is None else flags
    spo2_flags = UNAVAILABLE if spo2 is None else flags
    assert readings(decoded) == [(PR, hr, BPM, hr_flags), (SPO2, spo2, PCT, spo2_flags)]
    assert [a.code for a in decoded.alarms] == codes
    assert decoded.waveforms == ()


def test_df8_battery_critical_is_high_priority() -> None:
    (alarm,) = decode_record_df8(bytes.fromhex("80486102")).alarms
    assert alarm.priority == "high"


# --- rejected input ------------------------------------------------------------------------

GOOD2 = packet(2, {1: 0, 2: 72, 3: 97})
GOOD7 = packet(7, {1: 0, 2: 72, 3: 97})


def mutate(raw: bytes, at: int, value: int, fix: bool = True) -> bytes:
    out = bytearray(raw)
    out[at] = value
    return fix_checksums(out) if fix else bytes(out)


@pytest.mark.parametrize(
    ("fmt", "raw", "offset", "reason"),
    [
        (2, mutate(GOOD2, 14, 0x00, fix=False), 14, "frame 3: checksum 0x00, expected 0x"),
        (7, mutate(GOOD7, 124, 0x00, fix=False), 124, "frame 25: checksum"),
        (2, mutate(GOOD2, 10, 0x02), 10, "frame 3: first byte 0x02, DF2 frames start with 0x01"),
        (2, mutate(GOOD2, 16, 0x02), 16, "frame 4: status 0x02 has bit 7 clear"),
        (7, mutate(GOOD7, 15, 0x02), 15, "frame 4: status 0x02 has bit 7 clear"),
        (2, mutate(GOOD2, 1, 0x82), 1, "frame 1: status 0x82 has no SYNC bit"),
        (7, mutate(GOOD7, 0, 0x82), 0, "frame 1: status 0x82 has no SYNC bit"),
        (2, mutate(GOOD2, 21, 0x83), 21, "frame 5: SYNC inside the packet"),
        (2, GOOD2[:124], None, "124 bytes that are not a DF2 packet"),
        (7, GOOD7 + b"\x00", None, "126 bytes that are not a DF7 packet"),
        (2, b"", None, "0 bytes that are not a DF2 packet"),
        (2, GOOD2[5:] + GOOD2[:5], 1, "frame 1: status 0x82 has no SYNC bit"),  # mid-stream
        (2, mutate(GOOD2, 13, 0x70), 13, "SpO2 112 outside 0..100"),
        (7, mutate(GOOD7, 83, 0x65), 83, "E-SpO2-D 101 outside 0..100"),  # frame 17
        # HR 3 x 128 + 16 = 400: above the specifications' 321/min, and not 511
        (2, mutate(mutate(GOOD2, 3, 0x03), 8, 0x10), 8, "HR 400 outside 0..321"),
        (7, mutate(mutate(GOOD7, 3, 0x02), 8, 0x42), 8, "HR 322 outside 0..321"),
        # the 8-beat HR of frames 14-15 is checked even when it is not reported
        (2, mutate(GOOD2, 68, 0x03), 73, "E-HR 384 outside 0..321"),
    ],
)
def test_rejected_packets(fmt: int, raw: bytes, offset: int | None, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        DECODERS[fmt](raw)
    assert info.value.offset == offset
    assert reason in info.value.reason
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("hex_record", "offset", "reason"),
    [
        ("", None, "0 bytes that are not DF8 records"),
        ("804861", None, "3 bytes that are not DF8 records"),
        ("8048610000", None, "5 bytes that are not DF8 records"),
        ("00486100", 0, "status 0x00 has bit 7 clear"),
        ("80C86100", 1, "HR byte 0xc8 has bit 7 set"),
        ("8048E100", 2, "SpO2 byte 0xe1 has bit 7 set"),
        ("80486180", 3, "STAT2 byte 0x80 has bit 7 set"),
        ("80486500", 2, "SpO2 101 outside 0..100"),
        ("80487E00", 2, "SpO2 126 outside 0..100"),
        ("80486140", 3, "STAT2 0x40 sets undefined bits 0x40"),  # 6 and 4 are not defined
        ("80486111", 3, "STAT2 0x11 sets undefined bits 0x10"),
        ("82426100", 1, "HR 322 outside 0..321"),  # 2 x 128 + 66
        ("83106100", 1, "HR 400 outside 0..321"),
    ],
)
def test_rejected_df8_records(hex_record: str, offset: int | None, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_record_df8(bytes.fromhex(hex_record))
    assert info.value.offset == offset
    assert reason in info.value.reason


def test_encoders_refuse_what_the_format_cannot_carry() -> None:
    pleth = [0] * 25
    for call in (
        lambda: encode_packet_df2(512, 97, pleth),
        lambda: encode_packet_df2(72, 101, pleth),
        lambda: encode_packet_df2(72, 97, [256] * 25),
        lambda: encode_packet_df2(72, 97, pleth[:24]),
        lambda: encode_packet_df2(72, 97, pleth, 0x81),  # bit 7 / SYNC are the encoder's
        lambda: encode_packet_df7(72, 97, [65536] * 25),
        lambda: encode_packet_df7(72, 97, pleth, data={26: 0}),
        lambda: encode_record_df8(72, 97, status=0x01),
        lambda: encode_record_df8(72, 97, stat2=0x80),
        lambda: encode_record_df8(72, 97, stat2=0x40),
        lambda: encode_record_df8(400, 97),
        lambda: encode_packet_df2(322, 97, pleth),
        lambda: RecordFramer(0),
        lambda: PacketFramer(8),
    ):
        with pytest.raises(ValueError):
            call()


# --- encode / decode round trips -----------------------------------------------------------

hr_values = st.one_of(st.none(), st.integers(0, nonin.HR_MAX))
spo2_values = st.one_of(st.none(), st.integers(0, 100))
flag_bits = st.sampled_from([0x00, 0x02, 0x04, 0x06, 0x08, 0x10, 0x20, 0x40, 0x7E])


def expected(value: int | None) -> Decimal | None:
    return None if value is None else Decimal(value)


@given(
    hr_values,
    spo2_values,
    st.lists(st.integers(0, 255), min_size=25, max_size=25),
    st.lists(flag_bits, min_size=25, max_size=25),
)
def test_df2_round_trip(
    hr: int | None, spo2: int | None, pleth: list[int], status: list[int]
) -> None:
    decoded = decode_packet_df2(encode_packet_df2(hr, spo2, pleth, status), extras=True)
    assert all(r.value == expected(hr) for r in decoded.readings if r.metric == PR)
    assert all(r.value == expected(spo2) for r in decoded.readings if r.metric == SPO2)
    assert decoded.waveforms[0].samples == tuple(pleth)
    assert len({a.code for a in decoded.alarms}) == len(decoded.alarms)


@given(
    hr_values,
    spo2_values,
    st.lists(st.integers(0, 65535), min_size=25, max_size=25),
    flag_bits,
    st.integers(0, 255),
)
def test_df7_round_trip(
    hr: int | None, spo2: int | None, pleth: list[int], status: int, stat2: int
) -> None:
    decoded = decode_packet_df7(encode_packet_df7(hr, spo2, pleth, status, stat2=stat2))
    assert [r.value for r in decoded.readings] == [expected(hr), expected(spo2)]
    assert decoded.waveforms[0].samples == tuple(pleth)
    assert ("NONIN_LOW_BATTERY" in [a.code for a in decoded.alarms]) == bool(stat2 & 0x01)


@given(
    hr_values,
    spo2_values,
    st.sampled_from([0x00, 0x04, 0x08, 0x10, 0x20, 0x40, 0x7C]),
    st.integers(0, 0x2F).map(lambda v: v & 0x2F),  # STAT2's defined bits
)
def test_df8_round_trip(hr: int | None, spo2: int | None, status: int, stat2: int) -> None:
    record = encode_record_df8(hr, spo2, status, stat2)
    assert [r.value for r in decode_record_df8(record).readings] == [expected(hr), expected(spo2)]
    # one record alone is not trusted; a run of them is, all of it
    assert RecordFramer().feed(record) == []
    assert RecordFramer().feed(record * DF8_TRUSTED_RUN) == [record] * DF8_TRUSTED_RUN


@given(st.binary(min_size=4, max_size=4))
def test_df8_framer_and_decoder_check_the_same(record: bytes) -> None:
    """The framer's lookup tables and df8_problem (the decoder's reasons) agree."""
    framed = RecordFramer(trusted_run=1).feed(record)
    assert (framed == [record]) == (df8_problem(record) is None)
    if framed:
        decode_record_df8(record)


def test_encoder_matches_the_hand_built_vectors() -> None:
    # The encoder copies the 4-beat values into the display / 8-beat slots (a steady signal).
    hr_200 = {1: 0x01, 2: 0x48, 14: 0x01, 15: 0x48, 20: 0x01, 21: 0x48, 22: 0x01, 23: 0x48}
    spo2_97 = {3: 97, 9: 97, 10: 97, 11: 97, 16: 97, 17: 97}
    assert encode_packet_df2(200, 97, [0x37] * 25) == packet(2, hr_200 | spo2_97)
    assert encode_packet_df7(200, 97, [0x37] * 25, stat2=0x01) == packet(
        7, hr_200 | spo2_97 | {8: 0x01}
    )
    assert encode_record_df8(200, 97) == bytes.fromhex("81486100")


# --- hypothesis: decoders raise only DecodeError, framers never raise ---------------------


@given(st.binary(max_size=300), st.sampled_from([2, 7, 8]))
def test_fuzz_decoders_raise_only_decode_error(data: bytes, fmt: int) -> None:
    with contextlib.suppress(DecodeError):
        DECODERS[fmt](data)


@given(
    st.sampled_from([2, 7]),
    st.lists(st.tuples(st.integers(0, PACKET_LEN - 1), st.integers(0, 255)), max_size=6),
    st.booleans(),
)
def test_fuzz_damaged_packets_raise_only_decode_error(
    fmt: int, damage: list[tuple[int, int]], fix: bool
) -> None:
    raw = bytearray(GOOD2 if fmt == 2 else GOOD7)
    for at, value in damage:
        raw[at] = value
    data = fix_checksums(raw) if fix else bytes(raw)  # fixed sums reach the deeper checks
    with contextlib.suppress(DecodeError):
        DECODERS[fmt](data)


def valid_stream_pieces(fmt: int) -> st.SearchStrategy[bytes]:
    if fmt == 8:
        # a run long enough to be trusted, or a lone record that must not be
        return st.builds(encode_record_df8, hr_values, spo2_values).flatmap(
            lambda r: st.sampled_from([r, r * DF8_TRUSTED_RUN])
        )
    encode = encode_packet_df2 if fmt == 2 else encode_packet_df7
    return st.builds(lambda hr, spo2: encode(hr, spo2, [1] * 25), hr_values, spo2_values)


@st.composite
def streams(draw: st.DrawFn, fmt: int) -> list[bytes]:
    """Chunks of a stream mixing whole packets, cut packets and garbage."""
    pieces = draw(
        st.lists(
            st.one_of(
                valid_stream_pieces(fmt),
                valid_stream_pieces(fmt).map(lambda p: p[: len(p) // 2]),
                st.binary(max_size=40),
            ),
            max_size=12,
        )
    )
    stream = b"".join(pieces)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    return [stream[a:b] for a, b in itertools.pairwise([0, *cuts, len(stream)])]


def new_framer(fmt: int) -> PacketFramer | RecordFramer:
    return RecordFramer() if fmt == 8 else PacketFramer(fmt)


def unit_len(fmt: int) -> int:
    return 4 if fmt == 8 else PACKET_LEN


def valid(pieces: list[bytes], fmt: int) -> list[bytes]:
    """The pieces a framer emitted that decode: its packets or records."""
    out = []
    for piece in pieces:
        with contextlib.suppress(DecodeError):
            DECODERS[fmt](piece)
            out.append(piece)
    return out


HELD_AT_MOST = {2: PACKET_LEN + MAX_NOISE_PIECE, 7: PACKET_LEN + MAX_NOISE_PIECE}
HELD_AT_MOST[8] = 4 * DF8_TRUSTED_RUN + MAX_NOISE_PIECE


@settings(max_examples=150)
@given(st.data(), st.sampled_from([2, 7, 8]))
def test_fuzz_framers_emit_every_byte_once_in_order(data: st.DataObject, fmt: int) -> None:
    """Nothing is dropped: whole units and rejected pieces, in stream order, then what is
    held; a piece either decodes (a unit) or is rejected by the decoder, never both ways."""
    chunks = data.draw(streams(fmt))
    framer = new_framer(fmt)
    pieces = [f for chunk in chunks for f in framer.feed(chunk)]
    stream = b"".join(chunks)
    assert b"".join(pieces) == stream[: len(stream) - framer.pending]
    assert framer.pending < HELD_AT_MOST[fmt]
    for piece in pieces:
        assert 0 < len(piece) <= max(MAX_NOISE_PIECE, unit_len(fmt))
    assert all(len(p) == unit_len(fmt) for p in valid(pieces, fmt))


@given(st.lists(st.binary(max_size=64), max_size=20))
def test_fuzz_df8_framer_on_noise_only_emits_runs(chunks: list[bytes]) -> None:
    framer = RecordFramer()
    pieces = [p for chunk in chunks for p in framer.feed(chunk)]
    good = [p for p in pieces if df8_problem(p) is None] if pieces else []
    records = valid(pieces, 8)
    assert records == [p for p in good if len(p) == 4]
    # a record only comes out as part of a run of DF8_TRUSTED_RUN adjacent ones
    stream = b"".join(pieces)
    at = 0
    run = 0
    for piece in pieces:
        if piece in records:
            run += 1
        else:
            assert run == 0 or run >= DF8_TRUSTED_RUN
            run = 0
        at += len(piece)
    assert at == len(stream)
    assert run == 0 or run >= DF8_TRUSTED_RUN


# --- framing --------------------------------------------------------------------------------


def sim_chunks(fmt: int, count: int, seed: int = 4) -> list[bytes]:
    return list(itertools.islice(sim.packets(fmt, seed=seed), count))


@pytest.mark.parametrize("fmt", [2, 7, 8])
def test_framer_output_does_not_depend_on_how_reads_split_the_stream(fmt: int) -> None:
    count = 4 if fmt != 8 else 4 * DF8_TRUSTED_RUN
    good = sim_chunks(fmt, count)
    if fmt == 8:  # units of a trusted run each
        good = [b"".join(good[i : i + DF8_TRUSTED_RUN]) for i in range(0, count, DF8_TRUSTED_RUN)]
    # garbage first (a receiver joining mid-stream), a damaged unit in the middle
    at, bit = (2, 0x80) if fmt == 8 else (7, 0x10)  # DF8 only sees bit-7 damage
    damaged = good[1][:at] + bytes([good[1][at] ^ bit]) + good[1][at + 1 :]
    stream = b"\x01\x7f" + good[0][1:] + good[0] + damaged + good[2] + good[3]
    whole = new_framer(fmt).feed(stream)
    if fmt == 8:
        # the cut first unit's 4 whole records and good[0] make one run; the damaged
        # record alone is lost, the records after it run on into good[2] and good[3]
        assert valid(whole, 8) == [
            *records(good[0])[1:], *records(good[0]), *records(good[1])[1:],
            *records(good[2]), *records(good[3]),
        ]  # fmt: skip
    else:
        assert valid(whole, fmt) == [good[0], good[2], good[3]]
    assert b"".join(whole) == stream  # every byte out once: nothing was held back here
    for cut in range(len(stream) + 1):
        framer = new_framer(fmt)
        assert framer.feed(stream[:cut]) + framer.feed(stream[cut:]) == whole, cut
    framer = new_framer(fmt)
    assert [f for i in range(len(stream)) for f in framer.feed(stream[i : i + 1])] == whole


def records(data: bytes) -> list[bytes]:
    return [data[i : i + 4] for i in range(0, len(data), 4)]


@pytest.mark.parametrize("fmt", [2, 7])
def test_framer_rejects_bad_frames(fmt: int) -> None:
    good = sim_chunks(fmt, 3)
    status_at = 1 if fmt == 2 else 0
    bad_sum = bytearray(good[0])
    bad_sum[54] ^= 0xFF  # frame 11's checksum
    bit7 = bytearray(good[0])
    bit7[50 + status_at] &= 0x7F  # frame 11's status, checksum made right again
    bit7 = bytearray(fix_checksums(bit7))
    short = good[0][:60]  # frames lost whole: the next SYNC frame arrives early
    for damaged in (bad_sum, bit7, short):
        framer = PacketFramer(fmt)
        # the damaged packet comes out whole as one rejected piece, before the good ones
        assert framer.feed(bytes(damaged) + good[1] + good[2]) == [bytes(damaged), *good[1:]]
        with pytest.raises(DecodeError):
            DECODERS[fmt](bytes(damaged))


def test_df2_framer_does_not_take_df7_and_vice_versa() -> None:
    df7 = b"".join(sim_chunks(7, 3))
    df2 = b"".join(sim_chunks(2, 3))
    assert valid(PacketFramer(2).feed(df7), 2) == []
    assert valid(PacketFramer(7).feed(df2), 7) == []


@pytest.mark.parametrize("fmt", [2, 7])
def test_one_lost_byte_costs_at_most_two_packets(fmt: int) -> None:
    """Drop each byte of the stream in turn: count packets lost or altered."""
    touched_worst = altered_total = 0
    for seed in range(6):
        units = sim_chunks(fmt, 4, seed=seed)
        stream = b"".join(units)
        for at in range(len(stream)):
            got = valid(new_framer(fmt).feed(stream[:at] + stream[at + 1 :]), fmt)
            exact = [g for g in got if g in units]
            rest = iter(units)
            assert all(any(g == u for u in rest) for g in exact), at  # in order, no repeats
            altered = [g for g in got if g not in units]
            for g in altered:
                # PacketFramer's DF7 residual case: only frame 25 can be wrong
                assert fmt == 7 and any(g[:120] == u[:120] for u in units), at
                original = next(u for u in units if g[:120] == u[:120])
                assert decode_packet_df7(g).readings == decode_packet_df7(original).readings
            altered_total += len(altered)
            touched_worst = max(touched_worst, len(units) - len(exact))
    assert touched_worst <= 2
    if fmt != 7:
        assert touched_worst == 1 and altered_total == 0  # DF2: the 0x01 lead byte


@pytest.mark.parametrize("damage", ["lost", "bit7"])
def test_df8_damage_in_a_trusted_stream_costs_exactly_its_record(damage: str) -> None:
    """A trusted stream (DF8_TRUSTED_RUN records before), a run after: drop each byte of
    the records between in turn, or flip its bit 7; only that record is lost."""
    run = DF8_TRUSTED_RUN
    for seed in range(3):
        units = sim_chunks(8, 2 * run + 6, seed=seed)
        stream = b"".join(units)
        for at in range(4 * run, 4 * (run + 6)):
            if damage == "lost":
                noisy = stream[:at] + stream[at + 1 :]
            else:
                noisy = stream[:at] + bytes([stream[at] ^ 0x80]) + stream[at + 1 :]
            got = valid(RecordFramer().feed(noisy), 8)
            assert got == [u for i, u in enumerate(units) if i != at // 4], (seed, at)


def test_df8_damage_before_the_stream_is_trusted_costs_the_run_so_far() -> None:
    units = sim_chunks(8, 3 * DF8_TRUSTED_RUN, seed=2)
    stream = b"".join(units)
    hit = 2  # the third record loses its status byte: records 0-1 were no run yet
    noisy = stream[: 4 * hit] + stream[4 * hit + 1 :]
    assert valid(RecordFramer().feed(noisy), 8) == units[hit + 1 :]


def test_df8_a_lone_good_looking_record_in_noise_is_never_a_reading() -> None:
    lone = encode_record_df8(72, 97)
    stream = b"\x01\x02\x03" + lone + b"\x04" + lone * (DF8_TRUSTED_RUN - 1) + b"\x05"
    framer = RecordFramer()
    pieces = framer.feed(stream)
    pieces += framer.feed(b"\x00" * MAX_NOISE_PIECE)  # more noise pushes it all out
    assert valid(pieces, 8) == []
    assert b"".join(pieces).startswith(stream)


@pytest.mark.parametrize("fmt", [2, 7, 8])
def test_a_mebibyte_of_line_noise_gives_no_frame(fmt: int) -> None:
    """Issue 11: 1 MiB of random bytes on a DF8 port gave 22 492 "valid" records (pulse
    rate 0-510). Nothing of it may decode; all of it comes out, to be counted as rejects."""
    noise = random.Random(11).randbytes(1 << 20)
    framer = new_framer(fmt)
    pieces = [p for at in range(0, len(noise), 4096) for p in framer.feed(noise[at : at + 4096])]
    assert valid(pieces, fmt) == []
    assert sum(len(p) for p in pieces) + framer.pending == len(noise)
    assert len(pieces) >= len(noise) // MAX_NOISE_PIECE - 1


@pytest.mark.parametrize("fmt", [2, 7, 8])
def test_framer_memory_is_bounded(fmt: int) -> None:
    rng = random.Random(1)
    framer = new_framer(fmt)
    good = sim_chunks(fmt, 2 if fmt != 8 else DF8_TRUSTED_RUN + 1)
    emitted = []
    for _ in range(200):
        emitted += framer.feed(rng.randbytes(rng.randrange(1, 600)))
        assert framer.pending < HELD_AT_MOST[fmt]
    emitted += framer.feed(b"".join(good))
    assert valid(emitted, fmt)[-2:] == good[-2:]  # and it still finds packets after the noise


# --- simulator ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [2, 7, 8])
def test_simulator_output_decodes_like_a_resting_patient(fmt: int) -> None:
    count = 1800 if fmt != 8 else 600  # ten minutes
    decoded = [DECODERS[fmt](unit) for unit in sim_chunks(fmt, count, seed=0)]
    hr = [d.readings[0].value for d in decoded if d.readings[0].value is not None]
    spo2 = [d.readings[1].value for d in decoded if d.readings[1].value is not None]
    assert len(spo2) > 0.8 * count
    assert all(55 <= v <= 110 for v in hr) and all(91 <= v <= 100 for v in spo2)
    codes = {a.code for d in decoded for a in d.alarms}
    assert {"NONIN_SENSOR_DISCONNECTED", "NONIN_OUT_OF_TRACK"} <= codes  # a probe-off spell
    assert any(d.readings[1].flags == UNAVAILABLE for d in decoded)
    if fmt != 8:
        assert all(len(d.waveforms[0].samples) == 25 for d in decoded)
        assert len({s for d in decoded[:30] for s in d.waveforms[0].samples}) > 10  # a wave


@pytest.mark.parametrize("fmt", [2, 7, 8])
def test_noise_costs_exactly_the_damaged_units(fmt: int) -> None:
    rng = random.Random(3)
    units = sim_chunks(fmt, 300, seed=1)
    damaged = {i for i in range(len(units)) if rng.random() < 0.1}
    stream = b"".join(sim.corrupt(u, rng) if i in damaged else u for i, u in enumerate(units))
    framer = new_framer(fmt)
    pieces = framer.feed(stream)
    got = valid(pieces, fmt)
    kept = [u for i, u in enumerate(units) if i not in damaged]
    assert b"".join(pieces) == stream[: len(stream) - framer.pending]
    if fmt == 8:
        # DF8 has no checksum: a flipped low bit may pass as a (wrong) value; a damaged
        # record before the run is complete costs the run so far; framing holds.
        assert all(len(r) == 4 for r in got)
        assert len([g for g in got if g in kept]) >= 0.8 * len(kept)
    else:
        assert got == kept


def test_simulator_refuses_unknown_formats() -> None:
    with pytest.raises(ValueError, match="one of"):
        next(sim.packets(3))


async def test_simulator_writes_at_the_device_byte_rate() -> None:
    master_fd, slave_path = sim.open_pty()
    reader = os.open(slave_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    stop = asyncio.Event()
    try:
        task = asyncio.create_task(sim.run(master_fd, fmt=2, stop=stop))
        await asyncio.sleep(0.6)  # time itself: the byte rate is what is measured
        stop.set()
        await asyncio.wait_for(task, 2)
        received = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(reader, 4096):
                received += chunk
    finally:
        os.close(reader)
        os.close(master_fd)
    # 75 frames/s x 5 bytes = 375 B/s: about 225 bytes in 0.6 s (loose: loaded CI boxes)
    assert 120 <= len(received) <= 330
    assert len(received) % 5 == 0


# --- the serial edge: simulator -> pty -> SerialTransport -> framer -> decoder -----------


@pytest.mark.parametrize(
    ("fmt", "rate_factor", "want"), [(7, 10.0, 15), (2, 10.0, 15), (8, 40.0, 20)]
)
async def test_serial_transport_reads_the_simulator_over_a_real_pty(
    fmt: int, rate_factor: float, want: int
) -> None:
    master_fd, slave_path = sim.open_pty()
    stop = asyncio.Event()
    frames: list[bytes] = []
    states: list[str] = []

    def emit(frame: bytes, channel: str | None, *, dedup_key: str | None = None) -> None:
        frames.extend(valid([frame], fmt))  # the noise's rejected pieces come out too
        if len(frames) >= want:
            stop.set()

    settings_ = SerialSettings(
        port=slave_path,
        baudrate=SERIAL_SETTINGS.baudrate,
        bytesize=SERIAL_SETTINGS.bytesize,
        parity=SERIAL_SETTINGS.parity,
        stopbits=SERIAL_SETTINGS.stopbits,
    )
    framer: Callable[[], PacketFramer | RecordFramer] = (
        RecordFramer if fmt == 8 else lambda: PacketFramer(fmt)
    )
    transport = SerialTransport(settings_, framer)
    try:
        writer = asyncio.create_task(
            sim.run(master_fd, fmt=fmt, rate_factor=rate_factor, noise=True, seed=2, stop=stop)
        )
        await asyncio.wait_for(transport.run(emit, lambda s, _d: states.append(s), stop), 20)
        await writer
    finally:
        os.close(master_fd)
    assert "connected" in states
    assert len(frames) >= want
    decoded = [DECODERS[fmt](frame) for frame in frames]
    assert sum(d.readings[1].value is not None for d in decoded) >= want // 2


def test_serial_settings_are_9600_8n1() -> None:
    assert (SERIAL_SETTINGS.baudrate, SERIAL_SETTINGS.bytesize) == (9600, 8)
    assert (SERIAL_SETTINGS.parity, SERIAL_SETTINGS.stopbits) == ("N", 1)
    assert nonin.PACKET_LEN == 125 and nonin.PACKETS_PER_SECOND == 3
