"""DICOM 12-lead ECG Waveform Storage (PS3.3 C.10.9): the pydicom sample file checked
sample by sample against pydicom's own reader, round trips, scale handling, annotations,
errors and fuzzing."""

from __future__ import annotations

import datetime as dt
import io
import math
import struct
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import examples
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian
from pydicom.waveforms.numpy_handler import multiplex_array

from device_drivers.ecg.dicom import (
    TWELVE_LEAD_ECG,
    decode_dicom,
    encode_dicom,
    parse_dicom,
)
from device_drivers.ecg.record import (
    LEAD_CODES,
    MEASUREMENTS,
    STANDARD_LEADS,
    EcgRecord,
    limb_lead_errors,
)
from edge_agent.model import DecodeError, Statement

SAMPLE_PATH = Path(examples.get_path("waveform"))  # Mortara ELI 250 (pydicom.examples)
SAMPLE = SAMPLE_PATH.read_bytes()
CT_IMAGE = Path(examples.get_path("ct")).read_bytes()
# Where the sample's WaveformSequence data begins: flips before it hit the header,
# the measurements and the statements rather than sample values.
SAMPLE_HEADER_END = SAMPLE.find(b"\x00\x54\x00\x01")  # tag (5400,0100), little endian

SAMPLE_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


# --- helpers ---------------------------------------------------------------------------


def synthetic(seconds: int = 10, rate: int = 500, **changes: Any) -> EcgRecord:
    """A 12-lead record whose limb leads obey Einthoven/Goldberger exactly: I and II
    are even, so III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2 are
    integers."""
    n = seconds * rate
    a = [
        round(300 * math.sin(2 * math.pi * 1.2 * k / rate) + 40 * math.sin(k / 7)) for k in range(n)
    ]
    b = [
        round(500 * math.sin(2 * math.pi * 1.2 * k / rate + 0.4) - 30 * math.cos(k / 5))
        for k in range(n)
    ]
    leads: dict[str, tuple[int, ...]] = {
        "I": tuple(2 * x for x in a),
        "II": tuple(2 * y for y in b),
        "III": tuple(2 * y - 2 * x for x, y in zip(a, b, strict=True)),
        "aVR": tuple(-(x + y) for x, y in zip(a, b, strict=True)),
        "aVL": tuple(2 * x - y for x, y in zip(a, b, strict=True)),
        "aVF": tuple(2 * y - x for x, y in zip(a, b, strict=True)),
    }
    for v in range(1, 7):
        leads[f"V{v}"] = tuple(
            round(v * 90 * math.sin(2 * math.pi * 1.2 * k / rate + v)) for k in range(n)
        )
    fields: dict[str, Any] = {
        "leads": leads,
        "rate_hz": Decimal(rate),
        "uv_per_unit": Decimal("2.5"),
        "start_time": dt.datetime(2024, 3, 5, 14, 7, 31, 250000),
        "measurements": {
            "heart_rate": Decimal(72),
            "rr": Decimal(833),
            "pr": Decimal(164),
            "qrs": Decimal(92),
            "qt": Decimal(388),
            "qtc": Decimal("424.5"),
            "p_axis": Decimal(51),
            "qrs_axis": Decimal(-12),
            "t_axis": Decimal(40),
        },
        "statements": (
            Statement("窦性心律"),
            Statement("ACUTE MI / STEMI", "MDC_ECG_INTERPRETATION_STEMI"),
            Statement("ST elevation V1-V4 \\ see reading"),
        ),
        "offset_uv": Decimal(0),
        "patient_id": "110101199003071234",
        "patient_name": "张^三",
        "device": "Edge demo cart",
    }
    fields.update(changes)
    return EcgRecord(**fields)


def rewrite(data: bytes, edit: Callable[[Dataset], None]) -> bytes:
    """Read a file with pydicom, change it, write it back."""
    ds = pydicom.dcmread(io.BytesIO(data))
    edit(ds)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def interleave(columns: list[tuple[int, ...]], fmt: str) -> bytes:
    flat = [s for frame in zip(*columns, strict=True) for s in frame]
    return struct.pack(f"<{len(flat)}{fmt}", *flat)


def physical_uv(record: EcgRecord, lead: str) -> np.ndarray:
    return float(record.offset_uv) + float(record.uv_per_unit) * np.asarray(
        record.leads[lead], dtype=float
    )


# --- the pydicom sample file (pydicom.examples.waveform) --------------------------------------


def test_sample_matches_pydicom_sample_by_sample() -> None:
    record = parse_dicom(SAMPLE)
    ds = pydicom.dcmread(SAMPLE_PATH)
    assert ds.WaveformSequence[0].MultiplexGroupLabel == "RHYTHM"
    assert list(record.leads) == SAMPLE_LEADS  # the file's channel order
    raw = multiplex_array(ds, 0, as_raw=True)
    volts = ds.waveform_array(0)  # µV: the sample's sensitivity unit is uV
    assert volts.shape == (10000, 12)
    for channel, lead in enumerate(SAMPLE_LEADS):
        assert record.leads[lead] == tuple(int(v) for v in raw[:, channel])
        np.testing.assert_allclose(physical_uv(record, lead), volts[:, channel], rtol=0, atol=1e-9)


def test_sample_measurements_statements_and_header() -> None:
    record = parse_dicom(SAMPLE)
    assert record.rate_hz == 1000
    assert record.uv_per_unit == Decimal("1.25")
    assert record.offset_uv == 0
    assert record.sample_count == 10000
    assert record.duration_s == 10
    assert record.start_time == dt.datetime(2013, 1, 25, 10, 59, 19)
    assert (record.patient_id, record.patient_name) == ("642341", "Anonymous")
    assert record.device == "Mortara Instrument, Inc. el250"
    # The cart gives RR but no heart rate; the zero PP interval is not a MEASUREMENTS key.
    assert record.measurements == {
        "rr": Decimal(982),
        "pr": Decimal(161),
        "qrs": Decimal(75),
        "qt": Decimal(368),
        "qtc": Decimal(370),
        "p_axis": Decimal(74),
        "qrs_axis": Decimal(52),
        "t_axis": Decimal(57),
    }
    assert record.statements == (Statement("RITMO SINUSALE"), Statement("ECG NORMALE"))


def test_sample_limb_leads_are_consistent() -> None:
    # The Mortara file stores all 12 leads; they agree to within half a unit (1.25 µV).
    record = parse_dicom(SAMPLE)
    assert limb_lead_errors(record) == []
    assert limb_lead_errors(record, tolerance_units=0) == []


def test_decode_sample_for_the_recorder() -> None:
    decoded = decode_dicom(SAMPLE)
    assert [r.metric for r in decoded.readings] == [
        "MDC_ECG_TIME_PD_RR_GL",
        "MDC_ECG_TIME_PD_PR_GL",
        "MDC_ECG_TIME_PD_QRS_GL",
        "MDC_ECG_TIME_PD_QT_GL",
        "MDC_ECG_TIME_PD_QTc",
        "MDC_ECG_ANGLE_P_FRONT",
        "MDC_ECG_ANGLE_QRS_FRONT",
        "MDC_ECG_ANGLE_T_FRONT",
    ]
    assert all(r.flags == ("12-lead",) for r in decoded.readings)
    assert all(r.device_time == dt.datetime(2013, 1, 25, 10, 59, 19) for r in decoded.readings)
    assert len(decoded.waveforms) == 12
    first = decoded.waveforms[0]
    assert (first.metric, first.rate_hz, first.unit, first.scale) == (
        "MDC_ECG_ELEC_POTL_I",
        1000.0,
        "MDC_DIM_MICRO_VOLT",
        Decimal("1.25"),
    )
    assert first.physical(0) == Decimal("100.00")  # pydicom: 100.0 µV
    assert [s.text for s in decoded.statements] == ["RITMO SINUSALE", "ECG NORMALE"]


# --- round trips ---------------------------------------------------------------------------


def test_round_trip_12_leads_10_s_500_hz() -> None:
    record = synthetic()
    data = encode_dicom(record)
    assert data[128:132] == b"DICM"
    back = parse_dicom(data)
    assert back == record
    assert limb_lead_errors(back, tolerance_units=0) == []
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.SOPClassUID == TWELVE_LEAD_ECG
    assert ds.file_meta.MediaStorageSOPClassUID == TWELVE_LEAD_ECG
    volts = ds.waveform_array(0)  # pydicom, independently
    assert volts.shape == (5000, 12)
    for channel, lead in enumerate(STANDARD_LEADS):
        np.testing.assert_allclose(physical_uv(record, lead), volts[:, channel], rtol=0, atol=1e-9)


def test_round_trip_with_offset_and_no_time() -> None:
    record = synthetic(seconds=1, offset_uv=Decimal("-37.5"), start_time=None, patient_id=None)
    assert parse_dicom(encode_dicom(record)) == record


def test_round_trip_big_endian_file() -> None:
    # Explicit VR Big Endian is retired but a file may still use it: OW bytes swap.
    record = synthetic(seconds=1)
    ds = pydicom.dcmread(io.BytesIO(encode_dicom(record)))
    flat = [
        s for frame in zip(*(record.leads[n] for n in STANDARD_LEADS), strict=True) for s in frame
    ]
    ds.WaveformSequence[0].WaveformData = struct.pack(f">{len(flat)}h", *flat)
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, implicit_vr=False, little_endian=False, force_encoding=True)
    assert parse_dicom(out.getvalue()) == record


DECIMALS = st.sampled_from(
    [Decimal("4.88"), Decimal("2.5"), Decimal(1), Decimal("0.5"), Decimal("1.25")]
)


@st.composite
def records(draw: st.DrawFn) -> EcgRecord:
    names = draw(st.lists(st.sampled_from(STANDARD_LEADS), min_size=1, max_size=12, unique=True))
    count = draw(st.integers(1, 40))
    int16 = st.integers(-32768, 32767)
    leads = {n: tuple(draw(st.lists(int16, min_size=count, max_size=count))) for n in names}
    measured = draw(
        st.dictionaries(st.sampled_from(list(MEASUREMENTS)), st.integers(-500, 3000).map(Decimal))
    )
    text = st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=60)
    code = st.none() | st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789", min_size=1, max_size=40)
    statements = draw(st.lists(st.builds(Statement, text, code), max_size=4))
    # An age comes with its unit, or neither is given.
    patient_age, patient_age_unit = draw(
        st.just((None, None))
        | st.tuples(st.integers(0, 150), st.sampled_from(["MDC_DIM_YR", "MDC_DIM_DAY"]))
    )
    return EcgRecord(
        leads=leads,
        rate_hz=draw(
            st.sampled_from([Decimal(250), Decimal(500), Decimal(1000), Decimal("499.5")])
        ),
        uv_per_unit=draw(DECIMALS),
        start_time=draw(st.none() | st.datetimes(dt.datetime(1950, 1, 1), dt.datetime(2100, 1, 1))),
        measurements=measured,
        statements=tuple(statements),
        offset_uv=draw(st.integers(-1000, 1000).map(lambda v: Decimal(v) / 4)),
        patient_id=draw(st.none() | st.text("0123456789ABCX-", min_size=1, max_size=18)),
        patient_name=draw(st.none() | st.sampled_from(["Anonymous", "王^小明", "DOE^JANE"])),
        device=draw(st.none() | st.just("ECG-1200G")),
        patient_sex=draw(st.sampled_from([None, "M", "F", "O"])),
        patient_age=patient_age,
        patient_age_unit=patient_age_unit,
    )


@settings(max_examples=40)
@given(records())
def test_round_trip_property(record: EcgRecord) -> None:
    assert parse_dicom(encode_dicom(record)) == record


@pytest.mark.parametrize(
    ("sex", "age", "birth", "expected"),
    [
        # PS3.3 C.7.1.1 PatientSex M / F / O; PS3.5 6.2 AS "nnnD|W|M|Y".
        ("M", "050Y", "", ("M", 50, "MDC_DIM_YR")),
        ("F", "003W", "", ("F", 21, "MDC_DIM_DAY")),
        ("O", "010D", "", ("O", 10, "MDC_DIM_DAY")),
        ("", "018M", "", (None, 1, "MDC_DIM_YR")),
        ("", "006M", "", (None, None, None)),
        ("", "50Y", "", (None, None, None)),  # not an AS value
        ("", "", "19700101", (None, 56, "MDC_DIM_YR")),  # acquired 2026-12-03
        ("", "", "20261201", (None, 2, "MDC_DIM_DAY")),
        ("", "", "20270101", (None, None, None)),
        ("", "", "19701301", (None, None, None)),
    ],
)
# Some cases write values pydicom warns about on purpose: such files are what they test.
@pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")
def test_patient_sex_and_age(
    sex: str, age: str, birth: str, expected: tuple[object, object, object]
) -> None:
    record = synthetic(1, start_time=dt.datetime(2026, 12, 3, 16, 43))

    def edit(ds: Dataset) -> None:
        ds.PatientSex = sex
        ds.PatientBirthDate = birth
        if age:
            ds.PatientAge = age

    back = parse_dicom(rewrite(encode_dicom(record), edit))
    assert (back.patient_sex, back.patient_age, back.patient_age_unit) == expected


# --- scales: mixed sensitivities, baselines, units, sample formats ---------------------


def _set_channels(
    record: EcgRecord,
    sensitivity: dict[str, str],
    baseline: dict[str, str],
    raw: dict[str, tuple[int, ...]],
    unit: str = "uV",
) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        group = ds.WaveformSequence[0]
        names = [n for n, _ in record.ordered_leads()]
        for name, channel in zip(names, group.ChannelDefinitionSequence, strict=True):
            channel.ChannelSensitivity = sensitivity.get(name, channel.ChannelSensitivity)
            channel.ChannelBaseline = baseline.get(name, channel.ChannelBaseline)
            channel.ChannelSensitivityUnitsSequence[0].CodeValue = unit
        group.WaveformData = interleave([raw.get(n, record.leads[n]) for n in names], "h")

    return edit


def test_mixed_sensitivities_and_baselines_are_rescaled_exactly() -> None:
    record = synthetic(seconds=2)
    edit = _set_channels(
        record,
        # lead II at twice the step (its samples are even), lead III three steps up.
        sensitivity={"II": "5", "aVR": "2.50"},
        baseline={"III": "7.5"},
        raw={
            "II": tuple(s // 2 for s in record.leads["II"]),
            "III": tuple(s - 3 for s in record.leads["III"]),
        },
    )
    data = rewrite(encode_dicom(record), edit)
    back = parse_dicom(data)
    assert back == record
    volts = pydicom.dcmread(io.BytesIO(data)).waveform_array(0)
    for channel, lead in enumerate(STANDARD_LEADS):
        np.testing.assert_allclose(physical_uv(back, lead), volts[:, channel], rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("sensitivity", "baseline"),
    [
        ({"II": "3.75"}, {}),  # 1.5 × the finest step
        ({"II": "1"}, {}),  # finer than the others, which are not whole multiples of it
        ({}, {"V3": "1"}),  # a baseline 0.4 steps away
    ],
)
def test_mixed_scales_that_cannot_be_exact_are_refused(
    sensitivity: dict[str, str], baseline: dict[str, str]
) -> None:
    record = synthetic(seconds=1)
    data = rewrite(encode_dicom(record), _set_channels(record, sensitivity, baseline, {}))
    with pytest.raises(DecodeError, match="cannot be put exactly"):
        parse_dicom(data)


def test_millivolt_sensitivity_and_baseline() -> None:
    record = synthetic(seconds=1)
    sens = {n: "0.0025" for n in STANDARD_LEADS}
    base = {n: "0.1" for n in STANDARD_LEADS}
    data = rewrite(encode_dicom(record), _set_channels(record, sens, base, {}, unit="mV"))
    back = parse_dicom(data)
    assert (back.uv_per_unit, back.offset_uv) == (Decimal("2.5"), Decimal(100))
    assert back.leads == record.leads
    millivolts = pydicom.dcmread(io.BytesIO(data)).waveform_array(0)
    for channel, lead in enumerate(STANDARD_LEADS):
        np.testing.assert_allclose(
            physical_uv(back, lead), 1000 * millivolts[:, channel], rtol=1e-12, atol=1e-9
        )


@pytest.mark.parametrize(
    ("bits", "interpretation", "fmt", "values"),
    [
        (16, "US", "H", (0, 1, 2048, 65535)),  # PS3.3 C.10.9.1.5: unsigned 16-bit
        (8, "SB", "b", (-128, -1, 0, 127)),  # signed 8-bit
        (8, "UB", "B", (0, 1, 128, 255)),  # unsigned 8-bit
    ],
)
def test_other_supported_sample_formats(
    bits: int, interpretation: str, fmt: str, values: tuple[int, ...]
) -> None:
    record = EcgRecord(
        leads={"I": (0, 0, 0, 0), "II": (0, 0, 0, 0)}, rate_hz=Decimal(500), uv_per_unit=Decimal(5)
    )
    reversed_values = tuple(reversed(values))

    def edit(ds: Dataset) -> None:
        group = ds.WaveformSequence[0]
        group.WaveformBitsAllocated = bits
        group.WaveformSampleInterpretation = interpretation
        del group["WaveformData"]
        group.add_new(
            0x54001010, "OW" if bits == 16 else "OB", interleave([values, reversed_values], fmt)
        )

    data = rewrite(encode_dicom(record), edit)
    back = parse_dicom(data)
    assert back.leads == {"I": values, "II": reversed_values}
    volts = pydicom.dcmread(io.BytesIO(data)).waveform_array(0)
    np.testing.assert_allclose(physical_uv(back, "I"), volts[:, 0], rtol=0, atol=1e-9)


# --- leads, groups, annotations, times ---------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "code", "meaning", "lead"),
    [
        ("SCPECG", "5.6.3-9-61", "Lead III", "III"),  # SCP-ECG lead 61, as the sample writes
        ("MDC", "2:1", "Lead I", "I"),  # DICOM CID 3001
        ("MDC", "2:64", "aVF, augmented voltage, foot", "aVF"),
        ("MDC", "2:8", "whatever the meaning says", "V6"),  # the code wins
        ("99LOCAL", "X5", "Lead V5", "V5"),  # unknown scheme: the meaning
        ("99LOCAL", "X5", "Lead I (Einthoven)", "I"),
        ("SCPECG", "5.6.3-9-9", "Lead V7", None),  # not one of the 12: left out
        ("MDC", "2:130", "Lead aVR", None),  # a known scheme's code is not overridden
    ],
)
def test_lead_from_channel_source(scheme: str, code: str, meaning: str, lead: str | None) -> None:
    record = EcgRecord(
        leads={"II": (1, 2, 3), "V1": (4, 5, 6)}, rate_hz=Decimal(500), uv_per_unit=Decimal(5)
    )

    def edit(ds: Dataset) -> None:
        ds.WaveformSequence[0].ChannelDefinitionSequence[0].ChannelSourceSequence = [
            code_item(code, scheme, meaning)
        ]

    back = parse_dicom(rewrite(encode_dicom(record), edit))
    expected = {"V1": (4, 5, 6)} if lead is None else {lead: (1, 2, 3), "V1": (4, 5, 6)}
    assert back.leads == expected


@pytest.mark.parametrize(
    ("labels", "chosen"),
    [
        (["MEDIAN BEAT", "RHYTHM"], 1),
        (["RHYTHM", "MEDIAN BEAT"], 0),
        (["MEDIAN BEAT", ""], 1),  # first group not labelled as a beat
        (["REPRESENTATIVE", "LEADS"], 1),
        (["MEDIAN", "AVERAGE BEAT"], 0),  # all beat groups: the first
    ],
)
def test_rhythm_group_choice(labels: list[str], chosen: int) -> None:
    record = EcgRecord(leads={"I": (1, 2, 3, 4)}, rate_hz=Decimal(500), uv_per_unit=Decimal(5))

    def edit(ds: Dataset) -> None:
        first = ds.WaveformSequence[0]
        groups = []
        for number, label in enumerate(labels):
            group = Dataset()
            group.update(first)
            group.ChannelDefinitionSequence = first.ChannelDefinitionSequence
            group.MultiplexGroupLabel = label
            group.WaveformData = struct.pack("<4h", *(100 * number + k for k in range(4)))
            groups.append(group)
        ds.WaveformSequence = groups

    back = parse_dicom(rewrite(encode_dicom(record), edit))
    assert back.leads == {"I": tuple(100 * chosen + k for k in range(4))}


def measurement(
    code: str, scheme: str, value: str, unit: str, channels: tuple[int, ...] = (1, 0)
) -> Dataset:
    item = Dataset()
    item.ReferencedWaveformChannels = list(channels)
    item.ConceptNameCodeSequence = [code_item(code, scheme, "measurement")]
    item.NumericValue = value
    item.MeasurementUnitsCodeSequence = [code_item(unit, "UCUM", "unit")]
    return item


def coded(code: str, meaning: str) -> Dataset:
    item = Dataset()
    item.ConceptNameCodeSequence = [code_item("finding", "99LOCAL", "Finding")]
    item.ConceptCodeSequence = [code_item(code, "99LOCAL", meaning)]
    return item


def text(value: str) -> Dataset:
    item = Dataset()
    item.UnformattedTextValue = value
    return item


def fiducial() -> Dataset:
    # A point annotation, as the sample has (P onset at sample 299): not a measurement.
    item = Dataset()
    item.ConceptNameCodeSequence = [code_item("5.10.3-1", "SCPECG", "P Onset")]
    item.TemporalRangeType = "POINT"
    item.ReferencedSamplePositions = 299
    return item


@pytest.mark.parametrize(
    ("items", "measurements", "statements"),
    [
        # TID 3713 ventricular rate in heart beats per minute
        ([measurement("2:16016", "MDC", "75", "{H.B.}/min")], {"heart_rate": Decimal(75)}, ()),
        ([measurement("2:16770", "MDC", "61", "/min")], {"heart_rate": Decimal(61)}, ()),
        # seconds become milliseconds
        ([measurement("5.13.5-9", "SCPECG", "0.092", "s")], {"qrs": Decimal(92)}, ()),
        ([measurement("2:16168", "MDC", "1.2", "s")], {"rr": Decimal(1200)}, ()),
        # a per-lead value (channel 3 of group 1) is not the global one
        ([measurement("2:15872", "MDC", "150", "ms", (1, 3))], {}, ()),
        # a unit that is not a duration
        ([measurement("2:15872", "MDC", "150", "mV")], {}, ()),
        # the plain QTc wins over a formula's, in either order (CID 3227)
        ([measurement("2:15880", "MDC", "431", "ms")], {"qtc": Decimal(431)}, ()),
        (
            [
                measurement("2:15892", "MDC", "420", "ms"),
                measurement("2:15876", "MDC", "431", "ms"),
            ],
            {"qtc": Decimal(431)},
            (),
        ),
        ([measurement("2:16164", "MDC", "431", "ms")], {"qtc": Decimal(431)}, ()),
        ([measurement("2:16132", "MDC", "-30", "deg")], {"qrs_axis": Decimal(-30)}, ()),
        # an unknown concept, a fiducial point
        ([measurement("5.10.2.1-5", "SCPECG", "0", "ms"), fiducial()], {}, ()),
        # statements in file order, text and coded
        (
            [text("SINUS RHYTHM"), coded("SR", "Sinus rhythm"), text("ACUTE MI")],
            {},
            (Statement("SINUS RHYTHM"), Statement("Sinus rhythm", "SR"), Statement("ACUTE MI")),
        ),
    ],
)
def test_annotations(
    items: list[Dataset], measurements: dict[str, Decimal], statements: tuple[Statement, ...]
) -> None:
    record = EcgRecord(leads={"I": (1, 2)}, rate_hz=Decimal(500), uv_per_unit=Decimal(5))

    def edit(ds: Dataset) -> None:
        ds.WaveformAnnotationSequence = items

    back = parse_dicom(rewrite(encode_dicom(record), edit))
    assert back.measurements == measurements
    assert back.statements == statements


# pydicom warns about the deliberately legacy or invalid values.
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    ("acquisition", "content", "study", "expected"),
    [
        ("20130125105919", ("20200101", "000000"), ("", ""), dt.datetime(2013, 1, 25, 10, 59, 19)),
        # fraction and a UTC offset, which is dropped (times stay naive)
        (
            "20130125105919.25+0100",
            ("", ""),
            ("", ""),
            dt.datetime(2013, 1, 25, 10, 59, 19, 250000),
        ),
        ("201301251059", ("", ""), ("", ""), dt.datetime(2013, 1, 25, 10, 59)),
        # no time of day in the DT: the content date and time
        ("20130125", ("20130126", "0800"), ("", ""), dt.datetime(2013, 1, 26, 8, 0)),
        (None, ("20130126", "080005.5"), ("", ""), dt.datetime(2013, 1, 26, 8, 0, 5, 500000)),
        # the study date and time, legacy "HH:MM:SS"
        ("", ("", ""), ("20130127", "07:30:00"), dt.datetime(2013, 1, 27, 7, 30)),
        ("20131301120000", ("", "120000"), ("20130127", ""), None),  # month 13; halves only
    ],
)
def test_start_time(
    acquisition: str | None,
    content: tuple[str, str],
    study: tuple[str, str],
    expected: dt.datetime | None,
) -> None:
    record = EcgRecord(leads={"I": (1, 2)}, rate_hz=Decimal(500), uv_per_unit=Decimal(5))

    def edit(ds: Dataset) -> None:
        if acquisition is None:
            del ds["AcquisitionDateTime"]
        else:
            ds.AcquisitionDateTime = acquisition
        ds.ContentDate, ds.ContentTime = content
        ds.StudyDate, ds.StudyTime = study

    assert parse_dicom(rewrite(encode_dicom(record), edit)).start_time == expected


# --- errors ------------------------------------------------------------------------------


def _small() -> bytes:
    return encode_dicom(
        EcgRecord(leads={"I": (1, 2), "II": (3, 4)}, rate_hz=Decimal(500), uv_per_unit=Decimal(5))
    )


def _edit_group(**values: Any) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        for keyword, value in values.items():
            setattr(ds.WaveformSequence[0], keyword, value)

    return edit


def _edit_channel(keyword: str, value: Any) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        channel = ds.WaveformSequence[0].ChannelDefinitionSequence[1]
        if value is None:
            del channel[keyword]
        else:
            setattr(channel, keyword, value)

    return edit


def _drop_waveforms(ds: Dataset) -> None:
    del ds["WaveformSequence"]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (lambda: b"", "not a DICOM file"),
        (lambda: b"MSH|^~\\&|" * 40, "not a DICOM file"),
        (lambda: CT_IMAGE, r"not a DICOM ECG \(CT Image Storage"),  # pydicom's CT_small.dcm
        (lambda: SAMPLE[:132], "not a DICOM ECG"),  # preamble and DICM only
        (lambda: SAMPLE[:1000], "without a WaveformSequence"),  # cut inside the header
        (lambda: SAMPLE[: len(SAMPLE) // 2], "unreadable DICOM file"),  # cut inside the samples
        (lambda: rewrite(_small(), _drop_waveforms), "without a WaveformSequence"),
        (
            lambda: rewrite(_small(), _edit_group(WaveformData=struct.pack("<3h", 1, 3, 2))),
            "WaveformData holds 6 bytes, 2 channels × 2 samples need 8",
        ),
        (
            lambda: rewrite(
                _small(), _edit_group(WaveformBitsAllocated=32, WaveformSampleInterpretation="SL")
            ),
            "32-bit SL samples are not supported",
        ),
        (
            lambda: rewrite(
                _small(), _edit_group(WaveformBitsAllocated=8, WaveformSampleInterpretation="MB")
            ),
            "8-bit MB samples are not supported",  # µ-law is not linear
        ),
        (
            lambda: rewrite(_small(), _edit_group(WaveformBitsAllocated=8)),
            "8-bit SS samples are not supported",
        ),
        (lambda: rewrite(_small(), _edit_group(SamplingFrequency="0")), "SamplingFrequency"),
        (
            lambda: rewrite(_small(), _edit_group(NumberOfWaveformChannels=3)),
            "2 channel definitions for 3",
        ),
        (
            lambda: rewrite(_small(), _edit_channel("ChannelSensitivity", None)),
            "no ChannelSensitivity",
        ),
        (lambda: rewrite(_small(), _edit_channel("ChannelSensitivity", "-5")), "not positive"),
        (
            lambda: rewrite(_small(), _edit_channel("ChannelSensitivityUnitsSequence", [])),
            "'missing' is not a voltage",
        ),
        (
            lambda: rewrite(
                _small(),
                _edit_channel(
                    "ChannelSensitivityUnitsSequence", [code_item("mm[Hg]", "UCUM", "mmHg")]
                ),
            ),
            r"'mm\[Hg\]' is not a voltage",
        ),
        (
            lambda: rewrite(
                _small(),
                _edit_channel(
                    "ChannelSourceSequence", [code_item("5.6.3-9-1", "SCPECG", "Lead I")]
                ),
            ),
            "lead I appears twice",
        ),
    ],
)
def test_errors(data: Callable[[], bytes], match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        parse_dicom(data())


def test_no_standard_lead_is_an_error() -> None:
    def edit(ds: Dataset) -> None:
        for channel in ds.WaveformSequence[0].ChannelDefinitionSequence:
            channel.ChannelSourceSequence = [code_item("2:130", "MDC", "Lead V7")]

    with pytest.raises(DecodeError, match="no channel is one of the 12 standard ECG leads"):
        parse_dicom(rewrite(_small(), edit))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"leads": {}}, "without leads"),
        ({"leads": {"V7": (1, 2)}}, "no SCP-ECG lead code"),
        ({"leads": {"I": (1, 2), "II": (1,)}}, "equal lengths"),
        ({"leads": {"I": (1, 40000)}}, "16-bit signed range"),
        ({"uv_per_unit": Decimal(0)}, "uv_per_unit 0 is not positive"),
        ({"rate_hz": Decimal(0)}, "rate_hz 0 is not positive"),
        ({"uv_per_unit": Decimal("1.2345678901234567")}, "DS value"),
        ({"measurements": {"qt": Decimal("388.00000000000001")}}, "measurement qt"),
        ({"statements": (Statement("x" * 1025),)}, "longer than 1024"),
        ({"patient_id": "A\\B"}, "backslash"),
    ],
)
def test_encode_refuses(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode_dicom(synthetic(seconds=1, **changes))


# --- fuzzing: only DecodeError may escape ------------------------------------------------


def _parses_or_refuses(data: bytes) -> None:
    try:
        record = parse_dicom(data)
    except DecodeError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert record.leads
    assert set(record.leads) <= set(LEAD_CODES)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on broken values
@settings(max_examples=80)
@given(st.binary(max_size=600))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _parses_or_refuses(data)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on broken values
@settings(max_examples=60)
@given(st.binary(max_size=600))
def test_fuzz_bytes_after_a_dicom_preamble(tail: bytes) -> None:
    _parses_or_refuses(bytes(128) + b"DICM" + tail)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on broken values
@settings(max_examples=40)
@given(st.integers(0, len(SAMPLE)))
def test_fuzz_truncated_sample(length: int) -> None:
    _parses_or_refuses(SAMPLE[:length])


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on broken values
@settings(max_examples=80)
@given(
    st.lists(
        st.tuples(
            st.integers(0, SAMPLE_HEADER_END) | st.integers(0, len(SAMPLE) - 1), st.integers(1, 255)
        ),
        min_size=1,
        max_size=6,
    )
)
def test_fuzz_byte_flips_in_sample(flips: list[tuple[int, int]]) -> None:
    data = bytearray(SAMPLE)
    for position, mask in flips:
        data[position] ^= mask
    _parses_or_refuses(bytes(data))


def test_importing_the_module_does_not_load_pydicom() -> None:
    # The daemon and the decode CLI import every driver; pydicom loads on first parse.
    code = "import sys, device_drivers.ecg.dicom; assert 'pydicom' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_a_damaged_sop_class_is_shown_on_one_printable_line() -> None:
    """Found by the fuzz test in CI: a flipped byte turned the SOP class UID into a run of
    other elements' bytes, newlines included, and the error message quoted it all."""
    data = bytearray(SAMPLE)
    data[165] ^= 1  # the flip hypothesis found (flips=[(165, 1)])
    with pytest.raises(DecodeError) as caught:
        parse_dicom(bytes(data))
    message = str(caught.value)
    assert "\n" not in message and message.isprintable() and len(message) < 200
