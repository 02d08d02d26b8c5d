"""Blood Pressure 0x2A35 / 0x2A36 decoding and the BLE link/session.

Comments name where each vector comes from: BLS, HTS, HRS, PLXS, GLS, WSS = the
Bluetooth SIG Blood Pressure, Health Thermometer, Heart Rate, Pulse Oximeter, Glucose and
Weight Scale services with their GATT Specification Supplement field tables; SFLOAT,
FLOAT, Date Time = the IEEE 11073-20601 / GSS types; "SIG rule" = what every SIG health
characteristic obeys (flags first, optional fields in flag-bit order, reserved bits 0,
trailing bytes ignored). The tables: docs/protocols/ble-health-profiles.md and
docs/protocols/ieee11073-numbers.md.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from waiting import until

from device_drivers import registry
from device_drivers.ble.blood_pressure import (
    INTERMEDIATE_UUID,
    MEASUREMENT_UUID,
    decode_intermediate,
    decode_measurement,
    decoder_for,
    encode_measurement,
)
from device_drivers.ble.link import BleakLink, ScriptedLink
from device_drivers.ble.session import BleTransport
from device_drivers.declaration import BlePeripheral
from edge_agent.model import DecodeError, Reading

SYS, DIA, MAP = "MDC_PRESS_BLD_NONINV_SYS", "MDC_PRESS_BLD_NONINV_DIA", "MDC_PRESS_BLD_NONINV_MEAN"
PULSE = "MDC_PULS_RATE_NON_INV"
MMHG, BPM = "MDC_DIM_MMHG", "MDC_DIM_BEAT_PER_MIN"
T0 = dt.datetime(2023, 11, 22, 10, 0, 0)


def frame(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def summary(
    readings: tuple[Reading, ...],
) -> list[tuple[str, Decimal | None, str, tuple[str, ...]]]:
    return [(r.metric, r.value, r.unit, r.flags) for r in readings]


MEASUREMENTS = [
    # BLS minimum frame: flags 0 (mmHg, nothing optional), SFLOAT 120 / 80 / 100
    (
        "00 7800 5000 6400",
        None,
        [
            (SYS, Decimal(120), MMHG, ()),
            (DIA, Decimal(80), MMHG, ()),
            (MAP, Decimal(100), MMHG, ()),
        ],
    ),
    # BLS all optional fields: flags 0x1E = time stamp, pulse, user id, status;
    # Date Time 2023-11-22 10:00:00, pulse 72, user 1, status 0
    (
        "1e 7800 5000 6400 e707 0b 16 0a 00 00 4800 01 0000",
        T0,
        [
            (SYS, Decimal(120), MMHG, ("user:1",)),
            (DIA, Decimal(80), MMHG, ("user:1",)),
            (MAP, Decimal(100), MMHG, ("user:1",)),
            (PULSE, Decimal(72), BPM, ("user:1",)),
        ],
    ),
    # BLS units bit = 1 -> kPa; 16.0 / 10.7 / 12.5 kPa (mantissa 160/107/125, exponent -1)
    # × 7.50062 = 120.00992 / 80.256634 / 93.75775 -> 120.0 / 80.3 / 93.8 mmHg
    (
        "01 a0f0 6bf0 7df0",
        None,
        [
            (SYS, Decimal("120.0"), MMHG, ("converted-from-kPa",)),
            (DIA, Decimal("80.3"), MMHG, ("converted-from-kPa",)),
            (MAP, Decimal("93.8"), MMHG, ("converted-from-kPa",)),
        ],
    ),
    # BLS "any of the three pressures may be NaN (cuffs that do not compute MAP)"
    (
        "00 7800 5000 ff07",
        None,
        [(SYS, Decimal(120), MMHG, ()), (DIA, Decimal(80), MMHG, ()), (MAP, None, MMHG, ("nan",))],
    ),
    # SFLOAT negative exponent: 120.5 = 1205 × 10^-1 (word 0xF4B5), 79.5 = 795e-1 (0xF31B)
    (
        "00 b5f4 1bf3 6400",
        None,
        [
            (SYS, Decimal("120.5"), MMHG, ()),
            (DIA, Decimal("79.5"), MMHG, ()),
            (MAP, Decimal(100), MMHG, ()),
        ],
    ),
    # BLS pulse rate present (bit 2) as NRes (SFLOAT word 0x0800)
    (
        "04 7800 5000 6400 0008",
        None,
        [
            (SYS, Decimal(120), MMHG, ()),
            (DIA, Decimal(80), MMHG, ()),
            (MAP, Decimal(100), MMHG, ()),
            (PULSE, None, BPM, ("nres",)),
        ],
    ),
    # BLS status bits 0, 2, 5: body movement, irregular pulse, improper position (0x0025)
    (
        "10 7800 5000 6400 2500",
        None,
        [
            (m, v, MMHG, ("body-movement", "irregular-pulse", "improper-position"))
            for m, v in ((SYS, Decimal(120)), (DIA, Decimal(80)), (MAP, Decimal(100)))
        ],
    ),
    # BLS status bit 1 cuff too loose and bits 3-4 = 01 pulse above upper limit (0x000A)
    (
        "10 7800 5000 6400 0a00",
        None,
        [
            (m, v, MMHG, ("cuff-too-loose", "pulse-rate-above-range"))
            for m, v in ((SYS, Decimal(120)), (DIA, Decimal(80)), (MAP, Decimal(100)))
        ],
    ),
    # BLS bits 3-4 = 10: below lower limit; reserved bits 6-15 set too (ignored)
    (
        "10 7800 5000 6400 d0ff",
        None,
        [
            (m, v, MMHG, ("pulse-rate-below-range",))
            for m, v in ((SYS, Decimal(120)), (DIA, Decimal(80)), (MAP, Decimal(100)))
        ],
    ),
    # BLS bits 3-4 = 11 is reserved: no pulse-range flag
    (
        "10 7800 5000 6400 1800",
        None,
        [
            (SYS, Decimal(120), MMHG, ()),
            (DIA, Decimal(80), MMHG, ()),
            (MAP, Decimal(100), MMHG, ()),
        ],
    ),
    # BLS user id 0xFF = unknown user: no user flag
    (
        "08 7800 5000 6400 ff",
        None,
        [
            (SYS, Decimal(120), MMHG, ()),
            (DIA, Decimal(80), MMHG, ()),
            (MAP, Decimal(100), MMHG, ()),
        ],
    ),
    # Date Time of zeros: device clock not set -> device time unknown, reading kept
    (
        "02 7800 5000 6400 00000000000000",
        None,
        [
            (SYS, Decimal(120), MMHG, ()),
            (DIA, Decimal(80), MMHG, ()),
            (MAP, Decimal(100), MMHG, ()),
        ],
    ),
    # SIG rule: bytes beyond what the flags promise are ignored
    (
        "00 7800 5000 6400 dead beef",
        None,
        [
            (SYS, Decimal(120), MMHG, ()),
            (DIA, Decimal(80), MMHG, ()),
            (MAP, Decimal(100), MMHG, ()),
        ],
    ),
    # BLS kPa with special: systolic +INF stays +INF, no conversion of a missing value
    (
        "01 fe07 6bf0 ff07",
        None,
        [
            (SYS, None, MMHG, ("+inf", "converted-from-kPa")),
            (DIA, Decimal("80.3"), MMHG, ("converted-from-kPa",)),
            (MAP, None, MMHG, ("nan", "converted-from-kPa")),
        ],
    ),
]


@pytest.mark.parametrize(("hex_frame", "time", "expected"), MEASUREMENTS)
def test_decode_measurement(
    hex_frame: str, time: dt.datetime | None, expected: list[object]
) -> None:
    decoded = decode_measurement(frame(hex_frame))
    assert summary(decoded.readings) == expected
    assert {r.device_time for r in decoded.readings} == {time}
    assert not decoded.alarms and not decoded.waveforms


# Per-field wire pieces from the BLS layout, written out by hand:
_PRESSURES_MMHG = "7800 5000 6400"  # 120 / 80 / 100 mmHg
_PRESSURES_KPA = "a0f0 6bf0 7df0"  # 16.0 / 10.7 / 12.5 kPa
_TIME = "e707 0b 16 0a 00 00"  # 2023-11-22 10:00:00
_PULSE = "4800"  # 72 /min
_USER = "03"
_STATUS = "0100"  # body movement


@pytest.mark.parametrize("flags", range(32))
def test_every_flag_combination(flags: int) -> None:
    """All 32 combinations of flag bits 0-4, each frame assembled in BLS field order."""
    parts = [f"{flags:02x}", _PRESSURES_KPA if flags & 1 else _PRESSURES_MMHG]
    for bit, piece in ((2, _TIME), (4, _PULSE), (8, _USER), (16, _STATUS)):
        if flags & bit:
            parts.append(piece)
    decoded = decode_measurement(frame(" ".join(parts)))
    expected_values = (
        [Decimal("120.0"), Decimal("80.3"), Decimal("93.8")]
        if flags & 1
        else [Decimal(120), Decimal(80), Decimal(100)]
    )
    metrics = [SYS, DIA, MAP] + ([PULSE] if flags & 4 else [])
    assert [r.metric for r in decoded.readings] == metrics
    assert [r.value for r in decoded.readings[:3]] == expected_values
    for r in decoded.readings:
        assert r.device_time == (T0 if flags & 2 else None)
        assert ("user:3" in r.flags) == bool(flags & 8)
        assert ("body-movement" in r.flags) == bool(flags & 16)
        converted = bool(flags & 1) and r.metric != PULSE
        assert ("converted-from-kPa" in r.flags) == converted
    if flags & 4:
        assert decoded.readings[3].value == Decimal(72) and decoded.readings[3].unit == BPM


REJECTED = [
    # SIG rule: a flags byte is mandatory
    ("", 0, "empty"),
    # BLS flag bits 5-7 reserved
    ("20 7800 5000 6400", 0, "reserved"),
    # BLS field notes: a vendor-prefixed frame (4 vendor bytes first) shows reserved bits
    ("fa 01 02 03 00 7800 5000 6400", 0, "reserved"),
    # BLS 7-byte minimum: MAP cut short
    ("00 7800 5000 64", 5, "mean arterial pressure"),
    # SIG rule: shorter than the flags promise (time stamp)
    ("02 7800 5000 6400 e707 0b 16", 7, "date time"),
    # pulse rate promised, missing
    ("04 7800 5000 6400", 7, "pulse rate"),
    # user id promised, missing (after a pulse rate)
    ("0c 7800 5000 6400 4800", 9, "user id"),
    # status promised, one byte of two
    ("10 7800 5000 6400 01", 7, "measurement status"),
    # Date Time month 13 in the time stamp invalidates the frame (month is frame byte 9)
    ("02 7800 5000 6400 e707 0d 16 0a 00 00", 9, "month 13"),
]


@pytest.mark.parametrize(("hex_frame", "offset", "reason"), REJECTED)
def test_rejected_measurements(hex_frame: str, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_measurement(frame(hex_frame))
    assert info.value.offset == offset
    assert reason in info.value.reason
    assert str(info.value).startswith(f"byte {offset}: ")


INTERMEDIATES = [
    # BLS Intermediate Cuff Pressure: cuff pressure in the systolic field, NaN elsewhere
    ("00 9600 ff07 ff07", [("MDC_PRESS_CUFF", Decimal(150), MMHG, ("intermediate",))]),
    # BLS in kPa: 20.0 kPa × 7.50062 = 150.0124 -> 150.0 mmHg
    (
        "01 c8f0 ff07 ff07",
        [("MDC_PRESS_CUFF", Decimal("150.0"), MMHG, ("intermediate", "converted-from-kPa"))],
    ),
    # BLS same layout: a pulse rate during deflation
    (
        "04 5000 ff07 ff07 4500",
        [
            ("MDC_PRESS_CUFF", Decimal(80), MMHG, ("intermediate",)),
            (PULSE, Decimal(69), BPM, ("intermediate",)),
        ],
    ),
]


@pytest.mark.parametrize(("hex_frame", "expected"), INTERMEDIATES)
def test_decode_intermediate(hex_frame: str, expected: list[object]) -> None:
    assert summary(decode_intermediate(frame(hex_frame)).readings) == expected


def test_intermediate_rejects_like_measurement() -> None:
    with pytest.raises(DecodeError):
        decode_intermediate(frame("80 9600 ff07 ff07"))  # BLS reserved flag bit 7


def test_encode_measurement_matches_hand_built_frame() -> None:
    built = encode_measurement(
        Decimal(120), Decimal(80), Decimal(100), time=T0, pulse=Decimal(72), user=1, status=0
    )
    assert built == frame("1e 7800 5000 6400 e707 0b 16 0a 00 00 4800 01 0000")
    assert encode_measurement(Decimal("16.0"), Decimal("10.7"), Decimal("12.5"), kpa=True) == frame(
        "01 a0f0 6bf0 7df0"
    )
    assert encode_measurement(Decimal(120), time_unknown=True) == frame(
        "02 7800 ff07 ff07 00000000000000"
    )


@pytest.mark.parametrize(
    ("channel", "decoder"),
    [
        (MEASUREMENT_UUID, decode_measurement),
        (INTERMEDIATE_UUID, decode_intermediate),
        ("00002A35-0000-1000-8000-00805F9B34FB", decode_measurement),  # bleak may upper-case
        ("2a36", decode_intermediate),
        ("0x2A35", decode_measurement),
        (None, decode_measurement),  # a capture without channel is a 0x2A35 frame
    ],
)
def test_decoder_for(channel: str | None, decoder: object) -> None:
    assert decoder_for(channel) is decoder


def test_decoder_for_unknown_characteristic_quarantines() -> None:
    decode = decoder_for("00002a49-0000-1000-8000-00805f9b34fb")  # BP Feature, BLS
    with pytest.raises(DecodeError, match="not part of the Blood Pressure service"):
        decode(frame("00 7800 5000 6400"))


@given(st.binary(max_size=40))
def test_fuzz_decode_raises_only_decode_error(data: bytes) -> None:
    for decode in (decode_measurement, decode_intermediate):
        try:
            decoded = decode(data)
        except DecodeError:
            continue
        assert decoded.readings


_sfloat_values = st.one_of(
    st.none(), st.builds(lambda m, e: Decimal(m).scaleb(e), st.integers(0, 300), st.integers(-1, 0))
)


@given(
    _sfloat_values,
    _sfloat_values,
    _sfloat_values,
    st.one_of(st.none(), st.integers(30, 200).map(Decimal)),
    st.one_of(st.none(), st.integers(0, 255)),
    st.one_of(st.none(), st.integers(0, 0xFFFF)),
    st.one_of(st.none(), st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2099, 1, 1))),
)
def test_encode_decode_round_trip(
    sys_: Decimal | None,
    dia: Decimal | None,
    mean: Decimal | None,
    pulse: Decimal | None,
    user: int | None,
    status: int | None,
    when: dt.datetime | None,
) -> None:
    when = None if when is None else when.replace(microsecond=0)
    data = encode_measurement(sys_, dia, mean, pulse=pulse, user=user, status=status, time=when)
    readings = decode_measurement(data).readings
    assert [r.value for r in readings[:3]] == [sys_, dia, mean]
    if pulse is not None:
        assert readings[3].value == pulse
    assert all(r.device_time == when for r in readings)


# --- link and session -------------------------------------------------------------------


def test_bleak_link_imports_no_bleak() -> None:
    import subprocess
    import sys

    code = "import sys, device_drivers.ble.link as l; l.BleakLink('AA:BB:CC:DD:EE:FF'); print('bleak' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert not BleakLink("AA:BB:CC:DD:EE:FF").is_connected


def test_bleak_link_bonds_when_asked_and_reports_a_refusal_as_oserror(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The radio is the fake: bleak's client is replaced by one whose bond is refused."""
    import bleak
    from bleak.exc import BleakError

    made: list[dict[str, object]] = []

    class RefusingClient:
        def __init__(self, address: str, **kwargs: object) -> None:
            made.append({"address": address, **kwargs})

        async def connect(self) -> None:
            if made[-1]["pair"]:
                raise BleakError("org.bluez.Error.AuthenticationFailed")

    monkeypatch.setattr(bleak, "BleakClient", RefusingClient)
    asyncio.run(BleakLink("AA:BB:CC:DD:EE:FF").connect())
    with pytest.raises(OSError, match="AuthenticationFailed"):
        asyncio.run(BleakLink("AA:BB:CC:DD:EE:FF", bond=True).connect())
    assert [m["pair"] for m in made] == [False, True]
    glucose_meter, cuff = registry.driver("ble-glucose").source, registry.driver("ble-bp").source
    assert isinstance(glucose_meter, BlePeripheral) and isinstance(cuff, BlePeripheral)
    assert glucose_meter.bonds and not cuff.bonds


async def _run_until(
    transport: BleTransport, want: int, timeout_s: float = 5.0
) -> tuple[list[tuple[bytes, str | None]], list[tuple[str, str]]]:
    frames: list[tuple[bytes, str | None]] = []
    states: list[tuple[str, str]] = []
    stop = asyncio.Event()

    def emit(data: bytes, channel: str | None, *, dedup_key: str | None = None) -> None:
        frames.append((data, channel))
        if len(frames) >= want:
            stop.set()

    task = asyncio.create_task(transport.run(emit, lambda s, d: states.append((s, d)), stop))
    try:
        await asyncio.wait_for(stop.wait(), timeout_s)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    return frames, states


async def test_scripted_link_reconnects_and_delivers_with_channel() -> None:
    progress = frame("00 9600 ff07 ff07")
    first = encode_measurement(Decimal(120), Decimal(80), Decimal(100), time=T0)
    second = encode_measurement(Decimal(131), Decimal(85), Decimal(99), time=T0)
    link = ScriptedLink(
        [(INTERMEDIATE_UUID, progress), (MEASUREMENT_UUID, first), (MEASUREMENT_UUID, second)],
        connect_failures=1,  # out of range at first
        drop_after=2,  # walks off after two notifications, comes back for the third
    )
    transport = BleTransport(
        lambda: link, (MEASUREMENT_UUID, INTERMEDIATE_UUID), retry_s=0.01, poll_s=0.01
    )
    frames, states = await _run_until(transport, 3)
    assert frames == [
        (progress, INTERMEDIATE_UUID),
        (first, MEASUREMENT_UUID),
        (second, MEASUREMENT_UUID),
    ]
    kinds = [s for s, _ in states]
    assert kinds[:4] == ["disconnected", "connected", "disconnected", "connected"]
    assert "connect failed" in states[0][1]
    assert (link.connect_calls, link.connections, link.drops) == (3, 2, 1)
    # Each frame decodes with the decoder its channel selects.
    decoded = [decoder_for(channel)(data) for data, channel in frames]
    assert decoded[0].readings[0].flags == ("intermediate",)
    assert decoded[2].readings[0].value == Decimal(131)


async def test_scripted_link_waits_for_subscription() -> None:
    link = ScriptedLink([(MEASUREMENT_UUID, b"\x00")])
    await link.connect()
    await asyncio.sleep(0.02)  # time itself: 20 ms of the link's pump, unsubscribed
    assert link.remaining == 1  # nothing sent before the subscription
    got: list[bytes] = []
    await link.start_notify(MEASUREMENT_UUID, got.append)
    await until(lambda: bool(got), 5, "the notification")
    assert got == [b"\x00"]
    await link.disconnect()
    assert not link.is_connected


def test_all_flag_pieces_are_consistent() -> None:
    # The hand-built pieces above agree with the encoder (a check on the test table itself).
    for kpa, time, pulse, user, status in itertools.product([False, True], repeat=5):
        values = (
            (Decimal("16.0"), Decimal("10.7"), Decimal("12.5"))
            if kpa
            else (Decimal(120), Decimal(80), Decimal(100))
        )
        built = encode_measurement(
            *values,
            kpa=kpa,
            time=T0 if time else None,
            pulse=Decimal(72) if pulse else None,
            user=3 if user else None,
            status=1 if status else None,
        )
        parts = [_PRESSURES_KPA if kpa else _PRESSURES_MMHG]
        for on, piece in ((time, _TIME), (pulse, _PULSE), (user, _USER), (status, _STATUS)):
            if on:
                parts.append(piece)
        assert built[1:] == frame(" ".join(parts))


class _HangingLink:
    """A peripheral that never answers: connect() waits as long as BlueZ lets it."""

    is_connected = False
    disconnects = 0

    def __init__(self, connecting: asyncio.Event) -> None:
        self._connecting = connecting

    async def connect(self) -> None:
        self._connecting.set()
        await asyncio.Event().wait()  # never set: the answer that does not come

    async def start_notify(self, characteristic: str, callback: object) -> None:
        raise AssertionError("never connected")

    async def write(self, characteristic: str, data: bytes) -> None:
        raise AssertionError("never connected")

    async def disconnect(self) -> None:
        type(self).disconnects += 1


async def test_session_stops_promptly_while_a_connect_hangs() -> None:
    stop, connecting = asyncio.Event(), asyncio.Event()
    transport = BleTransport(lambda: _HangingLink(connecting), [MEASUREMENT_UUID])

    def emit(data: bytes, channel: str | None, /, *, dedup_key: str | None = None) -> None:
        pass  # no frame comes: the link never connects

    task = asyncio.create_task(transport.run(emit, lambda s, d: None, stop))
    await asyncio.wait_for(connecting.wait(), 5)  # the session is inside connect()
    stop.set()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(task, 2)
    assert loop.time() - started < 0.5
    assert _HangingLink.disconnects == 1


async def test_simulated_cuff_sends_its_memory_then_hangs_up() -> None:
    from device_drivers.simulators.ble_bp import CHARACTERISTICS, SimulatedCuff

    cuff = SimulatedCuff(seed=5, every_s=60, connect_timeout_s=0.2)
    link = cuff.link()
    with pytest.raises(OSError, match="not advertising"):
        await link.connect()  # nothing measured yet: the cuff is asleep
    for _ in range(3):
        cuff.measure()
    got: list[tuple[str, bytes]] = []
    link = cuff.link()
    await link.connect()
    for characteristic in CHARACTERISTICS:

        def on_notify(data: bytes, characteristic: str = characteristic) -> None:
            got.append((characteristic, data))

        await link.start_notify(characteristic, on_notify)
    await until(lambda: not link.is_connected, 5, "the cuff to hang up")
    assert not link.is_connected  # it hung up by itself
    measurements = [decode_measurement(d) for c, d in got if c == MEASUREMENT_UUID]
    progress = [decode_intermediate(d) for c, d in got if c == INTERMEDIATE_UUID]
    assert len(measurements) == 3 and cuff.sent == 3 and len(progress) == 3
    times = [t for m in measurements if (t := m.readings[0].device_time) is not None]
    assert times == sorted(times) and len(set(times)) == 3  # oldest first, distinct
    for m in measurements:
        sys_, dia, mean, pulse = (r.value for r in m.readings)
        assert sys_ is not None and dia is not None and mean is not None and pulse is not None
        assert 95 <= sys_ <= 200 and 55 <= dia <= 120 and dia < mean < sys_


async def test_a_cuff_that_refuses_the_clock_still_delivers() -> None:
    """Current Time is written on connect where the device has it; a refusal is no failure."""
    import datetime as dt

    from device_drivers.ble import current_time
    from device_drivers.ble.session import BleTransport
    from device_drivers.simulators.ble_bp import CHARACTERISTICS, SimulatedCuff

    cuff = SimulatedCuff(seed=2, every_s=60, connect_timeout_s=0.2)
    for _ in range(2):
        cuff.measure()
    writes: list[int] = []

    def clock() -> tuple[str, bytes]:
        writes.append(1)
        return current_time.set_clock_write(dt.datetime(2024, 3, 1, 8, 0))

    transport = BleTransport(cuff.link, CHARACTERISTICS, retry_s=0.01, poll_s=0.01, set_clock=clock)
    got: list[bytes] = []
    stop = asyncio.Event()

    def emit(data: bytes, channel: str | None, /, *, dedup_key: str | None = None) -> None:
        if channel == MEASUREMENT_UUID:
            got.append(data)
        if len(got) == 2:
            stop.set()

    await asyncio.wait_for(transport.run(emit, lambda _s, _d: None, stop), 5)
    assert len(got) == 2 and writes and transport.clock_set == 0
