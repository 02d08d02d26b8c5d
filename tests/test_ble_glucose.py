"""Glucose service 0x1808: records, contexts, RACP downloads, Current Time.

Vectors are built by hand from the GLS and Date Time layouts; the simulated meter sends real
0x2A18 / 0x2A34 / 0x2A52 bytes and only the radio is fake.

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
import contextlib
import datetime as dt
import json
import zoneinfo
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers import registry
from device_drivers.ble import current_time, glucose
from device_drivers.ble.session import BleTransport
from device_drivers.declaration import BlePeripheral
from device_drivers.simulators.glucose_meter import SimulatedMeter
from edge_agent import mdc
from edge_agent.model import DecodeError, Frame
from edge_agent.units import mg_per_dl_to_mmol_per_l

T0 = dt.datetime(2024, 3, 1, 7, 0, 0)
_T0 = "e807 03 01 07 00 00"  # GSS Date Time 2024-03-01 07:00:00
MMOL = "MDC_DIM_MILLI_MOLE_PER_L"
CAP_WB, CAP_PLASMA = "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", "MDC_CONC_GLU_CAPILLARY_PLASMA"


def frame(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# --- Glucose Measurement 0x2A18 --------------------------------------------------------------


@pytest.mark.parametrize(
    ("hex_frame", "metric", "value", "time", "flags"),
    [
        # flags 0x02: concentration in kg/L. 100 mg/dL = 100e-5 kg/L: SFLOAT exponent -5
        # (0xB), mantissa 100 (0x064) -> 0xB064. Finger (1) / capillary whole blood (1).
        # 100 / 18.016 = 5.5506... -> 5.55 mmol/L.
        (
            f"02 0100 {_T0} 64b0 11",
            CAP_WB,
            Decimal("5.55"),
            T0,
            ("seq:1", "converted-from-mg/dL", "location:finger"),
        ),
        # flags 0x06: mol/L. 6.3 mmol/L = 63e-4 mol/L -> 0xC03F. Capillary plasma (2).
        (f"06 0200 {_T0} 3fc0 12", CAP_PLASMA, Decimal("6.3"), T0, ("seq:2", "location:finger")),
        # flags 0x07: time offset -60 min (0xFFC4): user-facing time is 06:00.
        (
            f"07 0300 {_T0} c4ff 3fc0 12",
            CAP_PLASMA,
            Decimal("6.3"),
            dt.datetime(2024, 3, 1, 6, 0, 0),
            ("seq:3", "location:finger"),
        ),
        # flags 0x0E: status 0x0020, result above the meter's range ("HI"); 0xC13F = 319e-4.
        (
            f"0e 0400 {_T0} 3fc1 12 2000",
            CAP_PLASMA,
            Decimal("31.9"),
            T0,
            ("seq:4", "location:finger", "result-above-device-range"),
        ),
        # Control solution: type 10, location 4 -> its own metric, never the patient's.
        (
            f"06 0500 {_T0} 3fc0 4a",
            "MDC_CONC_GLU_CONTROL",
            Decimal("6.3"),
            T0,
            ("seq:5", "location:control-solution", "control-solution"),
        ),
        # No concentration (an error record): kept without value, flagged.
        (f"00 0600 {_T0}", "MDC_CONC_GLU_GEN", None, T0, ("seq:6", "no-result")),
        # Base time all zero: the meter's clock was never set.
        (
            "16 0700 0000 00 00 00 00 00 3fc0 f7",
            "MDC_CONC_GLU_UNDETERMINED_WHOLEBLOOD",
            Decimal("6.3"),
            None,
            ("seq:7", "context-follows"),
        ),
    ],
)
def test_measurement_vectors(
    hex_frame: str,
    metric: str,
    value: Decimal | None,
    time: dt.datetime | None,
    flags: tuple[str, ...],
) -> None:
    decoded = glucose.decode_measurement(frame(hex_frame))
    (reading,) = decoded.readings
    assert (reading.metric, reading.value, reading.unit) == (metric, value, MMOL)
    assert reading.device_time == time
    assert reading.flags == flags
    assert mdc.term(metric).code and mdc.term(MMOL).code


def test_out_of_range_results_and_meter_faults_are_alarms() -> None:
    data = glucose.encode_measurement(
        9,
        T0,
        concentration=Decimal("0.0006"),
        mol_per_l=True,
        status=glucose.STATUS_RESULT_LOW | glucose.STATUS_BATTERY_LOW,
    )
    decoded = glucose.decode_measurement(data)
    assert [a.code for a in decoded.alarms] == ["GLU_RESULT_LOW", "GLU_BATTERY_LOW"]
    assert decoded.readings[0].flags[-2:] == ("battery-low", "result-below-device-range")


@pytest.mark.parametrize("flags", range(0x20))
def test_every_measurement_flag_combination(flags: int) -> None:
    """Each defined flag bit adds exactly its field (GLS layout), in bit order."""
    offset = -90 if flags & glucose.FLAG_TIME_OFFSET else None
    data = glucose.encode_measurement(
        300,
        T0,
        time_offset=offset,
        concentration=Decimal("0.0063") if flags & glucose.FLAG_CONCENTRATION else None,
        mol_per_l=bool(flags & glucose.FLAG_UNIT_MOL_PER_L),
        status=glucose.STATUS_TIME_FAULT if flags & glucose.FLAG_STATUS else None,
        context_follows=bool(flags & glucose.FLAG_CONTEXT_FOLLOWS),
    )
    has_value = bool(flags & glucose.FLAG_CONCENTRATION)
    expected_size = 10 + 2 * bool(offset) + 3 * has_value + 2 * bool(flags & glucose.FLAG_STATUS)
    assert len(data) == expected_size
    assert data[0] == flags & ~(0 if has_value else glucose.FLAG_UNIT_MOL_PER_L)
    (reading,) = glucose.decode_measurement(data).readings
    assert reading.device_time == (T0 - dt.timedelta(minutes=90) if offset else T0)
    assert ("time-fault" in reading.flags) == bool(flags & glucose.FLAG_STATUS)
    assert ("context-follows" in reading.flags) == bool(flags & glucose.FLAG_CONTEXT_FOLLOWS)
    if not has_value:
        assert reading.value is None and "no-result" in reading.flags
    elif flags & glucose.FLAG_UNIT_MOL_PER_L:
        assert reading.value == Decimal("6.3")  # 0.0063 mol/L
    else:
        assert reading.value == Decimal("34.97")  # 0.0063 kg/L = 630 mg/dL: 630 / 18.016
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            glucose.decode_measurement(data[:cut])


@pytest.mark.parametrize("flags", range(0x100))
def test_every_context_flag_combination(flags: int) -> None:
    data = glucose.encode_context(
        5,
        extended_flags=0 if flags & glucose.CTX_EXTENDED else None,
        carbohydrate=(1, Decimal("0.05")) if flags & glucose.CTX_CARBOHYDRATE else None,
        meal=glucose.MEAL_FASTING if flags & glucose.CTX_MEAL else None,
        tester=1 if flags & glucose.CTX_TESTER_HEALTH else None,
        exercise=(600, 50) if flags & glucose.CTX_EXERCISE else None,
        medication=(4, Decimal("0.01")) if flags & glucose.CTX_MEDICATION else None,
        medication_litres=bool(flags & glucose.CTX_MEDICATION_LITRES),
        hba1c=Decimal("6.5") if flags & glucose.CTX_HBA1C else None,
    )
    # Bit 5 only qualifies a medication: the encoder leaves it off without one, and a
    # meter that sets it alone still parses (nothing follows from it).
    no_medication = not flags & glucose.CTX_MEDICATION
    assert data[0] == (flags & ~glucose.CTX_MEDICATION_LITRES if no_medication else flags)
    if no_medication:
        assert glucose.parse_context(bytes([data[0] | 0x20]) + data[1:]).medication is None
    context = glucose.parse_context(data)
    assert (context.meal is not None) == bool(flags & glucose.CTX_MEAL)
    assert (context.hba1c is not None) == bool(flags & glucose.CTX_HBA1C)
    readings = glucose.decode_context(data).readings
    assert len(readings) == bool(flags & glucose.CTX_HBA1C)
    for cut in range(3, len(data)):
        with pytest.raises(DecodeError):
            glucose.parse_context(data[:cut])


@pytest.mark.parametrize(
    ("hex_frame", "reason"),
    [
        ("", "empty frame"),
        ("02 01", "sequence number needs 2 bytes"),
        ("02 0100 e807 03", "date time"),
        (f"02 0100 {_T0} 64", "glucose concentration"),
        (f"02 0100 {_T0} 64b0", "type and sample location needs 1 byte"),
        (f"0a 0100 {_T0} 64b0 11 20", "sensor status annunciation"),
        (f"22 0100 {_T0} 64b0 11", "reserved bits 0x20"),
        ("02 0100 e807 0d 01 07 00 00 64b0 11", "month"),
        (f"02 0100 {_T0} 64b8 11", "negative"),
    ],
)
def test_bad_measurements_are_rejected_with_a_reason(hex_frame: str, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        glucose.decode_measurement(frame(hex_frame))
    assert reason in str(caught.value)


def test_mg_per_dl_conversion_is_exact_decimal_rounding() -> None:
    # 1 mmol/L = 18.016 mg/dL (glucose 180.16 g/mol): the fasting and 2-hour diabetes thresholds.
    # The driver converts with edge_agent.units (one conversion for the product).
    assert mg_per_dl_to_mmol_per_l(Decimal(126)) == Decimal("6.99")
    assert mg_per_dl_to_mmol_per_l(Decimal(200)) == Decimal("11.10")
    assert mg_per_dl_to_mmol_per_l(Decimal("18.016")) == Decimal("1.00")


@given(st.integers(1, 600), st.booleans())
def test_mg_per_dl_and_mmol_meters_agree_within_the_meter_step(mg_dl: int, plasma: bool) -> None:
    sample = glucose.TYPE_CAPILLARY_PLASMA if plasma else glucose.TYPE_CAPILLARY_WHOLE_BLOOD
    as_kg = glucose.encode_measurement(
        1, T0, concentration=Decimal(mg_dl).scaleb(-5), sample_type=sample
    )
    value = glucose.decode_measurement(as_kg).readings[0].value
    assert value is not None
    assert abs(value - Decimal(mg_dl) / Decimal("18.016")) <= Decimal("0.005")


# --- Glucose Measurement Context 0x2A34 ------------------------------------------------------


def test_context_with_hba1c_is_a_reading_carrying_the_meal() -> None:
    # flags 0x46: meal, tester-health, HbA1c. Meal 1 (preprandial); tester 1 (self),
    # health 5 (none) -> 0x51; HbA1c 6.5 % = 65e-1 -> 0xF041.
    decoded = glucose.decode_context(frame("46 0200 01 51 41f0"))
    (reading,) = decoded.readings
    assert (reading.metric, reading.value, reading.unit) == (
        "MDC_CONC_HBA1C",
        Decimal("6.5"),
        "MDC_DIM_PERCENT",
    )
    assert reading.flags == (
        "seq:2",
        "meal:preprandial",
        "tester:self",
        "health:none",
    )


def test_context_fields_in_clinic_units() -> None:
    # Extended flags present (bit 7) come right after the sequence number; carbohydrate
    # lunch 50 g = 0.05 kg = 5e-2 -> 0xE005; exercise 1800 s at 60 %; 8 mg rapid insulin
    # = 8e-6 kg -> 0xA008.
    data = frame("9b 0a00 00 02 05e0 03 0807 3c 01 08a0")
    context = glucose.parse_context(data)
    assert context.sequence == 10 and context.extended_flags == 0
    assert glucose.context_flags(context) == (
        "seq:10",
        "carbohydrate:lunch",
        "carbohydrate-g:50",
        "meal:fasting",
        "exercise-s:1800",
        "exercise-intensity-%:60",
        "medication:rapid-acting-insulin",
        "medication-mg:8",
    )
    assert not glucose.decode_context(data)  # no HbA1c: the raw frame is kept, no reading


def test_context_encoder_round_trips() -> None:
    data = glucose.encode_context(
        12,
        carbohydrate=(1, Decimal("0.03")),
        meal=glucose.MEAL_POSTPRANDIAL,
        tester=1,
        medication=(5, Decimal("0.012")),
        medication_litres=True,
        hba1c=Decimal("7.2"),
    )
    context = glucose.parse_context(data)
    assert context.meal == glucose.MEAL_POSTPRANDIAL and context.health == 15
    assert "medication-ml:12" in glucose.context_flags(context)
    assert glucose.decode_context(data).readings[0].value == Decimal("7.2")


# --- RACP 0x2A52 and Current Time 0x2A2B -----------------------------------------------------


def test_racp_requests_and_responses_on_the_wire() -> None:
    assert glucose.report_all() == frame("01 01")
    assert glucose.report_since(6) == frame("01 03 01 0600")
    assert glucose.encode_racp(glucose.OP_REPORT_NUMBER, glucose.OPERATOR_ALL) == frame("04 01")
    assert glucose.decode_racp_response(frame("06 00 01 01")) == glucose.RacpResult(1, 1)
    refused = glucose.decode_racp_response(frame("06 00 01 06"))
    assert isinstance(refused, glucose.RacpResult) and refused.ok
    assert glucose.decode_racp_response(frame("05 00 0700")) == glucose.RacpCount(7)
    assert glucose.decode_racp_response(frame("05 00 07")) == glucose.RacpCount(7)
    result = glucose.decode_racp_response(frame("06 00 01 04"))
    assert isinstance(result, glucose.RacpResult) and not result.ok
    assert result.describe() == "RACP report stored records: operator not supported (4)"
    for bad in ("06", "06 01 01 01", "06 00 01", "07 00 01 01", "05 00 070000"):
        with pytest.raises(DecodeError):
            glucose.decode_racp_response(frame(bad))


def test_current_time_vector() -> None:
    # 2024-03-01 is a Friday (5); 0.5 s = 128/256; reason bit 1: external reference.
    data = current_time.encode_current_time(T0.replace(microsecond=500_000))
    assert data == frame(f"{_T0} 05 80 02")
    decoded = current_time.decode_current_time(data)
    assert decoded.time == T0 and decoded.day_of_week == 5 and decoded.fractions256 == 128
    assert decoded.adjust_flags == ("external-reference",)
    with pytest.raises(ValueError, match="naive local time"):
        current_time.encode_current_time(dt.datetime(2024, 3, 1, tzinfo=dt.UTC))
    with pytest.raises(DecodeError, match="day of week 8"):
        current_time.decode_current_time(frame(f"{_T0} 08 00 02"))
    with pytest.raises(DecodeError, match="truncated"):
        current_time.decode_current_time(frame(f"{_T0} 05"))


# --- the download conversation ---------------------------------------------------------------

SUCCESS = glucose.encode_racp_response(glucose.OP_REPORT_RECORDS, glucose.RESPONSE_SUCCESS)
M, C, R = glucose.MEASUREMENT_UUID, glucose.CONTEXT_UUID, glucose.RACP_UUID


def record(sequence: int, *, context: bool = False) -> bytes:
    return glucose.encode_measurement(
        sequence, T0, concentration=Decimal("0.0063"), mol_per_l=True, context_follows=context
    )


def test_first_contact_asks_for_all_and_later_ones_for_the_rest() -> None:
    first = glucose.GlucoseConversation()
    assert first.opened() == [(R, frame("01 01"))]
    for n in (1, 2, 3):
        assert first.received(M, record(n)) == []
    assert not first.finished
    assert first.received(R, SUCCESS) == [] and first.finished and first.error is None
    later = glucose.GlucoseConversation(first.last_sequence)
    assert later.opened() == [(R, frame("01 03 01 0400"))]
    no_records = glucose.encode_racp_response(1, glucose.RESPONSE_NO_RECORDS)
    later.received(R, no_records)
    assert later.finished and later.error is None and later.last_sequence == 3


def test_a_meter_without_filters_is_asked_for_all_once() -> None:
    conversation = glucose.GlucoseConversation(41)
    conversation.opened()
    refused = glucose.encode_racp_response(1, glucose.RESPONSE_OPERATOR_NOT_SUPPORTED)
    assert conversation.received(R, refused) == [(R, frame("01 01"))]
    assert not conversation.finished
    assert conversation.received(R, refused) == []  # no second fallback: an error
    assert conversation.finished and conversation.error is not None
    assert "operator not supported" in conversation.error


def test_a_record_whose_context_did_not_arrive_is_asked_for_again() -> None:
    conversation = glucose.GlucoseConversation()
    conversation.opened()
    conversation.received(M, record(1))
    conversation.received(M, record(2, context=True))  # the link drops before 0x2A34
    assert conversation.last_sequence == 1
    resumed = glucose.GlucoseConversation(conversation.last_sequence)
    assert resumed.request() == frame("01 03 01 0200")
    resumed.received(M, record(2, context=True))
    resumed.received(C, glucose.encode_context(2, meal=glucose.MEAL_FASTING))
    assert resumed.last_sequence == 2


def test_the_count_is_asked_first_when_wanted() -> None:
    conversation = glucose.GlucoseConversation(5, ask_count=True)
    assert conversation.opened() == [(R, frame("04 03 01 0600"))]
    assert conversation.received(R, glucose.encode_racp_count(2)) == [(R, frame("01 03 01 0600"))]
    assert conversation.stored_count == 2
    empty = glucose.GlucoseConversation(5, ask_count=True)
    empty.opened()
    assert empty.received(R, glucose.encode_racp_count(0)) == [] and empty.finished


def test_a_meter_error_ends_the_download_with_the_reason_kept() -> None:
    conversation = glucose.GlucoseConversation()
    conversation.opened()
    conversation.received(R, glucose.encode_racp_response(1, glucose.RESPONSE_NOT_COMPLETED))
    assert conversation.finished
    assert conversation.error == "RACP report stored records: procedure not completed (8)"
    garbled = glucose.GlucoseConversation()
    garbled.received(R, b"\x06")
    assert garbled.finished and garbled.error and "malformed" in garbled.error


@given(st.lists(st.tuples(st.sampled_from([M, C, R, "2a19"]), st.binary(max_size=24))))
def test_the_conversation_never_raises_on_what_a_meter_sends(
    notes: list[tuple[str, bytes]],
) -> None:
    conversation = glucose.GlucoseConversation(7, ask_count=True)
    conversation.opened()
    for characteristic, data in notes:
        for target, payload in conversation.received(characteristic, data):
            assert target == R and payload[0] in (glucose.OP_REPORT_RECORDS,)
    last = conversation.last_sequence
    assert last is not None and last >= 7


# --- decoders, keys and the registry ---------------------------------------------------------


@given(st.binary(max_size=40))
def test_every_glucose_decoder_raises_only_its_decode_error(data: bytes) -> None:
    for decode in (
        glucose.decode_measurement,
        glucose.decode_context,
        glucose.decode_racp,
        current_time.decode_current_time,
        glucose.decoder_for("2a19"),
    ):
        with contextlib.suppress(DecodeError):
            decode(data)


@given(st.integers(0, 0xFFFF), st.binary(max_size=12))
def test_dedup_keys_name_the_characteristic_and_the_very_bytes(seq: int, tail: bytes) -> None:
    data = bytes([0x02]) + seq.to_bytes(2, "little") + tail
    key = glucose.dedup_key(M, data)
    assert key == f"2a18:{seq}:{data.hex()}"
    assert glucose.dedup_key(C, data) == f"2a34:{seq}:{data.hex()}"
    assert glucose.dedup_key(R, data) is None
    assert glucose.dedup_key(M, data[:2]) is None


def test_the_registry_routes_glucose_frames_by_characteristic() -> None:
    spec = registry.driver("ble-glucose")
    ble = spec.source
    assert isinstance(ble, BlePeripheral)
    assert spec.transport == "ble" and ble.sets_clock
    assert ble.characteristics == (M, C, R)
    assert spec.decoder_for(M) is glucose.decode_measurement
    assert spec.decoder_for("2A34") is glucose.decode_context
    with pytest.raises(DecodeError, match="not part of the Glucose service"):
        spec.decoder_for("2a19")(b"\x00")
    assert ble.gatt_conversation is not None
    a, b = ble.gatt_conversation(), ble.gatt_conversation()
    assert a is not b  # each paired meter keeps its own resume point


# --- whole downloads from a simulated meter through the BLE session --------------------------


class Collected:
    def __init__(self) -> None:
        self.frames: list[tuple[str | None, bytes, str | None]] = []
        self.states: list[str] = []

    def emit(self, data: bytes, channel: str | None, /, *, dedup_key: str | None = None) -> None:
        self.frames.append((channel, data, dedup_key))

    def measurements(self) -> list[int]:
        return [glucose.sequence_number(d) for c, d, _ in self.frames if c == M]


async def _download(
    meter: SimulatedMeter,
    downloads: glucose.RecordDownloads,
    *,
    sessions: int,
    set_clock: bool = False,
) -> Collected:
    """Run one BLE session until the meter has hung up `sessions` times."""
    got = Collected()
    stop = asyncio.Event()

    def on_state(state: str, detail: str) -> None:
        got.states.append(f"{state}: {detail}")
        if state == "disconnected" and sum(s.startswith("disconnected") for s in got.states) >= (
            sessions
        ):
            stop.set()

    transport = BleTransport(
        meter.link,
        glucose.CHARACTERISTICS,
        conversation_factory=downloads,
        dedup_key=glucose.dedup_key,
        retry_s=0.01,
        poll_s=0.01,
        set_clock=(lambda: current_time.set_clock_write(T0)) if set_clock else None,
    )
    await asyncio.wait_for(transport.run(got.emit, on_state, stop), 10)
    return got


async def test_a_whole_download_then_only_what_is_new() -> None:
    meter = SimulatedMeter(records=5, seed=3)
    downloads = glucose.RecordDownloads()
    got = await _download(meter, downloads, sessions=1, set_clock=True)
    assert got.measurements() == [1, 2, 3, 4, 5]
    assert "disconnected: exchange finished; hanging up" in got.states
    assert meter.clock_set[0].time == T0  # the clock was set before the download
    assert downloads.last_sequence == 5 and downloads.errors == []
    # Contexts (every even record) are recorded right before their measurement.
    channels = [c for c, _, _ in got.frames]
    assert channels[:5] == [M, C, M, M, C] and channels[-1] == R

    meter.measure()
    meter.measure()
    again = await _download(meter, downloads, sessions=1)
    assert again.measurements() == [6, 7]
    assert meter.requests == [frame("01 01"), frame("01 03 01 0600")]


async def test_a_download_cut_mid_transfer_resumes_where_it_stopped() -> None:
    meter = SimulatedMeter(records=9, seed=5, drop_after=4)
    downloads = glucose.RecordDownloads()
    got = await _download(meter, downloads, sessions=3)
    # 4 records, link lost; 4 more from seq 5, lost again; the last one and success.
    assert got.measurements() == list(range(1, 10))
    assert meter.requests == [frame("01 01"), frame("01 03 01 0500"), frame("01 03 01 0900")]
    assert [s for s in got.states if s.startswith("disconnected")] == [
        "disconnected: link dropped; reconnecting",
        "disconnected: link dropped; reconnecting",
        "disconnected: exchange finished; hanging up",
    ]
    assert downloads.last_sequence == 9


async def test_resent_records_are_stored_once(tmp_path: Path) -> None:
    """A meter that only knows "all records" resends everything: the store keeps one copy."""
    from edge_agent.clock import SystemClock
    from edge_agent.recorder import Recorder
    from edge_agent.store import StoreWriter

    meter = SimulatedMeter(records=4, seed=9, supports_since=False)
    downloads = glucose.RecordDownloads()
    first = await _download(meter, downloads, sessions=1)
    meter.measure()
    second = await _download(meter, downloads, sessions=1)
    assert meter.requests == [frame("01 01"), frame("01 03 01 0500"), frame("01 01")]
    assert second.measurements() == [1, 2, 3, 4, 5] and downloads.errors == []

    store = StoreWriter.open(tmp_path / "agent.db")
    clock = SystemClock(boot_id="b")
    recorder = Recorder(store)
    decoder_for = registry.driver("ble-glucose").decoders()  # this meter's own
    outcomes: list[str] = []
    try:
        for channel, data, key in first.frames + second.frames:
            assert channel is not None
            item = Frame(
                "meter-1",
                "ble-glucose",
                data,
                clock.wall_ns(),
                clock.mono_ns(),
                "b",
                extra={"channel": channel},
                dedup_key=key,
            )
            outcomes.append(recorder.record(item, decoder_for(channel)).outcome)
        rows = store.conn.execute(
            "SELECT flags FROM observation WHERE metric LIKE 'MDC_CONC_GLU%' ORDER BY id"
        ).fetchall()
        glucose_rows = len(rows)
    finally:
        store.close()
    assert glucose_rows == 5  # 4 + 1 new, not 4 + 5
    # Second download: 4 old records (and their 2 contexts) are duplicates.
    assert outcomes.count("duplicate") == 6
    # Records 2 and 4 had a context: their readings carry its meal and tester.
    meals = [[f for f in json.loads(r[0]) if f.startswith(("meal:", "tester:"))] for r in rows]
    assert meals == [
        [],
        ["meal:postprandial", "tester:self"],
        [],
        ["meal:fasting", "tester:self"],
        [],
    ]
    assert not any("context-follows" in json.loads(r[0]) for r in rows)


def test_a_configured_meter_gets_its_own_downloads_and_the_box_clock() -> None:
    from edge_agent.config import DeviceConfig
    from edge_agent.devices import runtime_for

    def make(address: str) -> BleTransport:
        runtime = runtime_for(DeviceConfig(id="glu", driver="ble-glucose", address=address))
        assert isinstance(runtime.transport, BleTransport)
        return runtime.transport

    one, two = make("AA:BB:CC:DD:EE:01"), make("AA:BB:CC:DD:EE:02")
    assert isinstance(one._conversation_factory, glucose.RecordDownloads)
    assert one._conversation_factory is not two._conversation_factory
    assert one._set_clock is not None
    characteristic, data = one._set_clock()
    assert characteristic == current_time.CURRENT_TIME_UUID
    written = current_time.decode_current_time(data).time
    assert written is not None
    # the clinic's wall time in agent.timezone (default Asia/Shanghai), not the machine's
    shanghai = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
    assert abs((shanghai - written).total_seconds()) < 5


async def test_a_meter_advertises_only_while_it_holds_a_new_result() -> None:
    meter = SimulatedMeter(records=2, seed=4, connect_timeout_s=0.05)
    downloads = glucose.RecordDownloads()
    got = await _download(meter, downloads, sessions=1)
    assert got.measurements() == [1, 2]
    with pytest.raises(OSError, match="not advertising"):
        await meter.link().connect()
    meter.measure()
    link = meter.link()
    await link.connect()  # a new result: it advertises again
    assert link.is_connected
    await link.disconnect()


# --- a record and its context are recorded together -------------------------------------------


def test_a_record_waits_for_its_context_which_is_recorded_first() -> None:
    conversation = glucose.GlucoseConversation()
    m1, m2 = record(1), record(2, context=True)
    c2 = glucose.encode_context(2, meal=glucose.MEAL_FASTING)
    assert conversation.release(M, m1) == [(M, m1)]
    assert conversation.release(M, m2) == []  # held for its context
    assert conversation.release(C, c2) == [(C, c2), (M, m2)]
    # A promised context that never comes: the record goes alone before what follows.
    m3 = record(3, context=True)
    assert conversation.release(M, m3) == []
    assert conversation.release(R, SUCCESS) == [(M, m3), (R, SUCCESS)]
    # A context for another record does not release the held one with it.
    m4 = record(4, context=True)
    c9 = glucose.encode_context(9, meal=glucose.MEAL_FASTING)
    conversation.release(M, m4)
    assert conversation.release(C, c9) == [(M, m4), (C, c9)]
    assert conversation.release(M, b"\x02") == [(M, b"\x02")]  # bad bytes pass, to quarantine


def test_the_meter_decoder_puts_the_context_on_the_record() -> None:
    meter = glucose.RecordDecoder()
    context = glucose.encode_context(
        2, meal=glucose.MEAL_PREPRANDIAL, tester=1, health=5, hba1c=Decimal("6.8")
    )
    hba1c = meter.decoder_for(C)(context).readings
    assert [r.metric for r in hba1c] == ["MDC_CONC_HBA1C"]
    (reading,) = meter.decoder_for(M)(record(2, context=True)).readings
    assert reading.flags == (
        "seq:2",
        "location:finger",
        "meal:preprandial",
        "tester:self",
        "health:none",
    )
    # The context is used once, and only by its own record.
    assert "meal:preprandial" not in meter.decoder_for(M)(record(2, context=True)).readings[0].flags
    meter.decoder_for(C)(context)
    assert meter.decoder_for(M)(record(3)).readings[0].flags == ("seq:3", "location:finger")
    with pytest.raises(DecodeError):
        meter.decoder_for(C)(b"\x02\x01")
    assert meter.decoder_for(M)(record(2, context=True)).readings[0].flags[-1] == "context-follows"
    with pytest.raises(DecodeError, match="not part of the Glucose service"):
        meter.decoder_for("2a19")(b"")


async def test_a_record_cut_off_from_its_context_is_asked_for_again() -> None:
    """The link drops after a record that promised a context: it is not recorded alone."""
    from device_drivers.ble.link import ScriptedLink

    m1, m2 = record(1), record(2, context=True)
    c2 = glucose.encode_context(2, meal=glucose.MEAL_FASTING)
    first = ScriptedLink(drop_after=2)
    first.on_write = lambda _c, _d: [(M, m1), (M, m2)]
    second = ScriptedLink()
    second.on_write = lambda _c, d: [(M, m2), (C, c2), (R, SUCCESS)] if d[1] == 3 else []
    links = iter([first, second])
    downloads = glucose.RecordDownloads()
    transport = BleTransport(
        lambda: next(links),
        glucose.CHARACTERISTICS,
        conversation_factory=downloads,
        dedup_key=glucose.dedup_key,
        retry_s=0.01,
        poll_s=0.01,
    )
    got = Collected()
    stop = asyncio.Event()

    def on_state(state: str, detail: str) -> None:
        if "finished" in detail:
            stop.set()

    await asyncio.wait_for(transport.run(got.emit, on_state, stop), 5)
    assert first.written == [(R, frame("01 01"))]
    assert second.written == [(R, frame("01 03 01 0200"))]
    assert [(c, d) for c, d, _ in got.frames] == [(M, m1), (C, c2), (M, m2), (R, SUCCESS)]
