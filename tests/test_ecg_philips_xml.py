"""Philips XML 12-lead ECG files (docs/protocols/ecg-files.md): LZW, XLI, the document, the oracle.

Hand vectors are built here from the layout sierra-ecg-tools documents (10-bit codes written
out as bit strings, int16 halves, the un-prediction worked by hand), independently of the
module's encoder. Whole files made by our encoder are read back by sierraecg (PyPI, MIT), an
independent reader, and compared sample by sample.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import random
import struct
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TypedDict, Unpack

import pytest
import sierraecg
from hypothesis import given
from hypothesis import strategies as st
from sierraecg import xli as sierra_xli

from device_drivers.ecg import philips_xml as px
from device_drivers.ecg.record import STANDARD_LEADS, EcgRecord, limb_lead_errors
from edge_agent.model import DecodeError, Statement

NS = "http://www3.medical.philips.com"
int16s = st.integers(min_value=-0x8000, max_value=0x7FFF)


def pack_codes(codes: list[int]) -> bytes:
    """10-bit codes MSB first, zero-padded to a byte: written out as a bit string."""
    bits = "".join(f"{code:010b}" for code in codes)
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def chunk(lzw: bytes, start: int = 0) -> bytes:
    """XLI chunk header: LZW size int32 LE, 2 unused bytes, start value int16 LE."""
    return struct.pack("<iHh", len(lzw), 0, start) + lzw


def walk(rng: random.Random, n: int, step: int = 40, span: int = 3000) -> list[int]:
    value, out = 0, []
    for _ in range(n):
        value = max(-span, min(span, value + rng.randint(-step, step)))
        out.append(value)
    return out


def consistent_leads(n: int, seed: int = 1) -> dict[str, tuple[int, ...]]:
    """Twelve leads whose limb leads follow the residual rebuild exactly (III = II - I,
    the augmented leads with the floor half-sums), so XLI's rebuild reproduces them."""
    rng = random.Random(seed)
    i, ii = walk(rng, n), walk(rng, n)
    iii = [b - a for a, b in zip(i, ii, strict=True)]
    leads = {
        "I": i,
        "II": ii,
        "III": iii,
        "aVR": [-((a + b) // 2) for a, b in zip(i, ii, strict=True)],
        "aVL": [(a - c) // 2 for a, c in zip(i, iii, strict=True)],
        "aVF": [(b + c) // 2 for b, c in zip(ii, iii, strict=True)],
    }
    leads |= {f"V{k}": walk(rng, n) for k in range(1, 7)}
    return {name: tuple(values) for name, values in leads.items()}


class RecordChanges(TypedDict, total=False):
    """What a test changes in make_record's record."""

    leads: Mapping[str, tuple[int, ...]]
    rate_hz: Decimal


def make_record(n: int = 5500, **changes: Unpack[RecordChanges]) -> EcgRecord:
    record = EcgRecord(
        leads=changes.get("leads") or consistent_leads(n),
        rate_hz=Decimal(500),
        uv_per_unit=Decimal(5),
        start_time=dt.datetime(2024, 3, 1, 10, 14, 34),
        measurements={
            "heart_rate": Decimal(72),
            "rr": Decimal(833),
            "pr": Decimal(160),
            "qrs": Decimal(92),
            "qt": Decimal(384),
            "qtc": Decimal(420),
            "p_axis": Decimal(45),
            "qrs_axis": Decimal(-12),
            "t_axis": Decimal(30),
        },
        statements=(
            Statement("Sinus rhythm", "SR"),
            Statement("Anterior infarct, acute MI", "AMI"),
            Statement("Abnormal ECG"),
        ),
        patient_id="110101199001011234",
        patient_name="Wang Fang",
        device="Philips Medical Products:PageWriter TC50:A.07.07",
    )
    return dataclasses.replace(record, **changes)


SMALL = make_record(60)


# --- LZW ------------------------------------------------------------------------------


@given(st.binary(max_size=3000))
def test_lzw_round_trip(data: bytes) -> None:
    assert px.lzw_decode(px.lzw_encode(data)) == data


@pytest.mark.parametrize("seed", [1, 2])
def test_lzw_round_trip_past_a_full_dictionary(seed: int) -> None:
    # 40 kB of low-entropy bytes: the dictionary fills (code 1022) long before the end.
    rng = random.Random(seed)
    data = bytes(rng.choice(b"\x00\x01\x02\xfe\xff") for _ in range(40_000))
    encoded = px.lzw_encode(data)
    assert px.lzw_decode(encoded) == data
    assert len(encoded) < len(data) // 2


def test_lzw_hand_codes() -> None:
    # 0, then 256 = "00" defined by its own use (KwKwK), again 256, then literals.
    codes = [0, 256, 256, 10, 12, 70, 66, 64]
    raw = bytes(5) + bytes([10, 12, 70, 66, 64])
    assert px.lzw_decode(pack_codes(codes)) == raw
    # As carts write it: then the end code 1023, zero bits to a whole 16-bit word.
    # (9 codes = 90 bits: 12 bytes, already whole words.)
    assert px.lzw_encode(raw) == pack_codes([*codes, 1023])
    assert px.lzw_encode(b"A") == pack_codes([65, 1023]) + b"\x00"  # 20 bits: 3 bytes + 1


@pytest.mark.parametrize(
    ("codes", "index"),
    [
        ([300], 0),  # the first code must be a byte
        ([65, 66, 258], 2),  # next code is 258 only after two additions: 257
        ([65, 66, 256, 259], 3),  # after A, B, AB the next code is 258
    ],
)
def test_lzw_code_beyond_the_dictionary(codes: list[int], index: int) -> None:
    with pytest.raises(DecodeError, match="beyond the dictionary") as err:
        px.lzw_decode(pack_codes(codes))
    assert err.value.offset == index * 10 // 8


def test_lzw_output_limit() -> None:
    with pytest.raises(DecodeError, match="expands past 10 bytes"):
        px.lzw_decode(pack_codes([0] * 11), limit=10)


# --- XLI ------------------------------------------------------------------------------


def test_unprediction_hand_vector() -> None:
    # stored int16 10, 12, 70, 66, 64 (high bytes all 0, then the low bytes), start 3:
    #   s2 = 2*12 - 10 - 3 = 11           (the start value is the first correction)
    #   s3 = 2*11 - 12 - (70 - 64) = 4    (then the previous stored value - 64)
    #   s4 = 2*4 - 11 - (66 - 64) = -5    (the last stored value, 64, is read by nothing)
    data = chunk(pack_codes([0, 256, 256, 10, 12, 70, 66, 64]), start=3)
    assert px.xli_decode(data) == [[10, 12, 11, 4, -5]]
    assert [list(map(int, lead)) for lead in sierra_xli.xli_decode(data, ["I"])] == [
        [10, 12, 11, 4, -5]
    ]


def test_xli_halves_are_high_then_low_bytes() -> None:
    # Two samples 0x0102 = 258 and 0xFFFE = -2: high bytes 01 FF, then low bytes 02 FE.
    data = chunk(pack_codes([0x01, 0xFF, 0x02, 0xFE]))
    assert px.xli_decode(data) == [[258, -2]]


@given(st.lists(st.lists(int16s, max_size=400), min_size=1, max_size=3))
def test_xli_round_trip(leads: list[list[int]]) -> None:
    assert px.xli_decode(px.xli_encode(leads)) == leads


def test_xli_chunk_agrees_with_sierraecg() -> None:
    # Big steps (second differences far from the bias of 64) and a full dictionary.
    # Not full 16-bit swings: where the un-prediction leaves int16, we wrap (as int16
    # storage in C does) and sierraecg raises OverflowError; carts never get there.
    rng = random.Random(7)
    leads = [walk(rng, 3000, step=3000, span=20000), walk(rng, 5500)]
    data = px.xli_encode(leads)
    theirs = sierra_xli.xli_decode(data, ["V1", "V2"])
    assert [list(map(int, lead)) for lead in theirs] == leads == px.xli_decode(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x05\x00\x00\x00\x00", "chunk header needs 8 bytes, 5 left"),
        (chunk(b"\x00\x40\x10")[:-1], "says 3 bytes of LZW data, 2 left"),
        (struct.pack("<iHh", -1, 0, 0), "says -1 bytes"),
        (chunk(pack_codes([1, 2, 3])), "odd 3 bytes"),
        (chunk(pack_codes([7, 999])), "LZW code 999 beyond the dictionary"),
    ],
)
def test_xli_refuses(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message) as err:
        px.xli_decode(data)
    assert "XLI lead 1" in str(err.value)


def test_xli_second_chunk_error_names_lead_and_offset() -> None:
    first = px.xli_encode([[1, 2, 3, 4]])
    with pytest.raises(DecodeError, match="XLI lead 2") as err:
        px.xli_decode(first + b"\x00\x00", lead_count=2)
    assert err.value.offset == len(first)


@given(st.binary(max_size=600))
def test_xli_fuzz_random_bytes(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        px.xli_decode(data)


@given(st.binary(max_size=600), st.integers(-0x8000, 0x7FFF))
def test_xli_fuzz_random_lzw_bodies(body: bytes, start: int) -> None:
    with contextlib.suppress(DecodeError):
        px.xli_decode(chunk(body, start))


def test_limb_residuals_invert_the_rebuild() -> None:
    leads = {k: list(v) for k, v in consistent_leads(200, seed=3).items()}
    stored = dict(leads) | px.limb_residuals(leads)
    # Consistent limb leads leave residuals of zero.
    assert {tuple(set(stored[k])) for k in ("III", "aVR", "aVL", "aVF")} == {(0,)}
    px.rebuild_limb_leads(stored)
    assert stored == leads


def test_rebuild_uses_floor_for_negative_odd_half_sums() -> None:
    # I + II = -3: floor gives -2, so aVR = 2 with residual 0 (C and C# truncate to -1,
    # giving aVR = 1: the one-unit difference between the sierra-ecg-tools ports).
    leads = {"I": [-1], "II": [-2], "III": [0], "aVR": [0], "aVL": [0], "aVF": [0]}
    px.rebuild_limb_leads(leads)
    assert leads == {"I": [-1], "II": [-2], "III": [-1], "aVR": [2], "aVL": [0], "aVF": [-2]}


# --- whole documents ------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.03", "1.04", "1.04.01"])
def test_sierraecg_reads_our_files_sample_for_sample(version: str, tmp_path: Path) -> None:
    record = make_record()
    path = tmp_path / "ecg.xml"
    path.write_bytes(px.encode_philips_xml(record, version=version))
    theirs = sierraecg.read_file(str(path))
    assert (theirs.doc_type, theirs.doc_ver) == (px.DOCUMENT_TYPES[version], version)
    got = {lead.label: [int(v) for v in lead.samples] for lead in theirs.leads}
    assert list(got) == list(STANDARD_LEADS)
    for name in STANDARD_LEADS:
        assert got[name] == list(record.leads[name]), name
    assert {(lead.sampling_freq, lead.duration) for lead in theirs.leads} == {(500, 11000)}


@pytest.mark.parametrize("version", ["1.03", "1.04", "1.04.01"])
@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(version: str, compress: bool) -> None:
    record = make_record()
    back = px.parse_philips_xml(px.encode_philips_xml(record, version=version, compress=compress))
    assert back.leads == record.leads
    assert limb_lead_errors(back) == []
    assert (back.rate_hz, back.uv_per_unit, back.start_time) == (
        Decimal(500),
        Decimal(5),
        dt.datetime(2024, 3, 1, 10, 14, 34),
    )
    expected = dict(record.measurements)
    if version == "1.03":
        del expected["rr"]  # 1.03's interpretationmeasurements has no RR interval
    assert back.measurements == expected
    assert back.statements == record.statements
    assert (back.patient_id, back.patient_name, back.device) == (
        record.patient_id,
        record.patient_name,
        record.device,
    )


@given(st.lists(st.tuples(*[int16s] * 12), min_size=0, max_size=40), st.booleans())
def test_round_trip_any_int16_leads(rows: list[tuple[int, ...]], compress: bool) -> None:
    # Inconsistent limb leads too: residuals wrap in int16, so nothing is lost.
    leads = {name: tuple(row[k] for row in rows) for k, name in enumerate(STANDARD_LEADS)}
    record = make_record(leads=leads, rate_hz=Decimal(1000))
    back = px.parse_philips_xml(px.encode_philips_xml(record, compress=compress))
    assert back.leads == leads


def test_decode_gives_readings_waveforms_statements() -> None:
    decoded = px.decode_philips_xml(px.encode_philips_xml(SMALL))
    readings = {r.metric: (r.value, r.unit, r.device_time) for r in decoded.readings}
    assert readings["MDC_ECG_HEART_RATE"] == (
        Decimal(72),
        "MDC_DIM_BEAT_PER_MIN",
        dt.datetime(2024, 3, 1, 10, 14, 34),
    )
    assert readings["MDC_ECG_TIME_PD_QTc"][0] == Decimal(420)
    assert [w.metric for w in decoded.waveforms][:3] == [
        "MDC_ECG_ELEC_POTL_I",
        "MDC_ECG_ELEC_POTL_II",
        "MDC_ECG_ELEC_POTL_III",
    ]
    assert {(w.rate_hz, w.scale, len(w.samples)) for w in decoded.waveforms} == {
        (500.0, Decimal(5), 60)
    }
    assert [s.text for s in decoded.statements][1] == "Anterior infarct, acute MI"


def test_utf16_with_bom() -> None:
    text = px.encode_philips_xml(SMALL).decode("utf-8")
    text = text.replace("encoding='utf-8'", "encoding='UTF-16'")
    data = text.encode("utf-16")  # with its byte-order mark
    assert data[:2] in (b"\xff\xfe", b"\xfe\xff")
    assert px.parse_philips_xml(data).leads == SMALL.leads


def test_without_namespace() -> None:
    data = px.encode_philips_xml(SMALL).replace(f' xmlns="{NS}"'.encode(), b"")
    assert b"xmlns" not in data
    assert px.parse_philips_xml(data).leads == SMALL.leads


# Hand-written documents: element names as the 1.03 and 1.04.01 schemas have them
# (sierra-ecg-tools jsierraecg/src/org/sierraecg/schema), samples uncompressed.
def uncompressed(leads: list[list[int]]) -> str:
    return base64.b64encode(b"".join(struct.pack(f"<{len(v)}h", *v) for v in leads)).decode()


LEADS_4 = [[k * 10 + s for s in range(4)] for k in range(12)]

DOC_104 = f"""<?xml version="1.0" encoding="utf-8"?>
<restingecgdata xmlns="{NS}" status="Confirmed" lang="en">
  <documentinfo>
    <documentname>x.xml</documentname>
    <documenttype>PhilipsECG</documenttype>
    <documentversion>1.04.01</documentversion>
  </documentinfo>
  <dataacquisition date="2009-01-14" time="10:14:34">
    <machine machineid="7" detaildescription="Philips Medical Products:M5000:X.01">PageWriter TC</machine>
    <signalcharacteristics><samplingrate>500</samplingrate><resolution>5</resolution></signalcharacteristics>
  </dataacquisition>
  <patient><generalpatientdata>
    <patientid>MRN-42</patientid><name><lastname>Li</lastname><firstname>Lei</firstname></name>
  </generalpatientdata></patient>
  <interpretations><interpretation date="2009-01-14" time="10:15:00" criteriaversion="0A">
    <interpretationdatastructure><statementcomponents>
      <codedstatement source="Analysis program" subtype="Analysis">
        <unparsedstatement statementnumber="1" code="SR" format="Wide">
          <lhsstatement>Sinus rhythm</lhsstatement><rhsstatement/>
        </unparsedstatement>
      </codedstatement>
      <codedstatement source="Analysis program" subtype="Analysis">
        <unparsedstatement statementnumber="2" code="ASMI" format="Wide">
          <lhsstatement>Anteroseptal infarct</lhsstatement><rhsstatement>acute</rhsstatement>
        </unparsedstatement>
      </codedstatement>
    </statementcomponents></interpretationdatastructure>
    <globalmeasurements>
      <heartrate>75</heartrate><rrint>800</rrint><pdur>110</pdur><print>Invalid</print>
      <qrsdur>96</qrsdur><qtint>380</qtint><qtcb></qtcb><qtcf>401</qtcf>
      <pfrontaxis>52</pfrontaxis><qrsfrontaxis>Failed</qrsfrontaxis><tfrontaxis>-20</tfrontaxis>
    </globalmeasurements>
    <severity code="AB">Abnormal ECG</severity>
    <statement><statementcode>SR</statementcode>
      <leftstatement>Sinus rhythm</leftstatement><rightstatement></rightstatement></statement>
    <statement><statementcode>MIA</statementcode>
      <leftstatement>Anterior infarct</leftstatement><rightstatement>acute</rightstatement></statement>
  </interpretation></interpretations>
  <waveforms>
    <parsedwaveforms dataencoding="Base64" numberofleads="12" leadlabels="I II III aVR aVL aVF C1 C2 C3 C4 C5 C6"
      durationperchannel="8" samplespersecond="500" resolution="5" signalsigned="True" bitspersample="16">
      {uncompressed(LEADS_4)}
    </parsedwaveforms>
  </waveforms>
</restingecgdata>
"""

DOC_103 = f"""<?xml version="1.0" encoding="utf-8"?>
<restingecgdata xmlns="{NS}">
  <documentinfo><documenttype>SierraECG</documenttype><documentversion>1.03</documentversion></documentinfo>
  <dataacquisition date="2005-06-30" time="23:59:01" statflag="False">
    <signalcharacteristics><samplingrate>500</samplingrate><signalresolution>2.5</signalresolution></signalcharacteristics>
  </dataacquisition>
  <patient><generalpatientdata><patientid>7</patientid></generalpatientdata></patient>
  <measurements><globalmeasurements><meanprint>150</meanprint></globalmeasurements></measurements>
  <interpretations><interpretation>
    <interpretationmeasurements arrhyflag="False" editedflag="False">
      <heartrate>61</heartrate><meanprint>170</meanprint><meanqrsdur>88</meanqrsdur>
      <meanqtint>400</meanqtint><meanqtc>402</meanqtc>
      <pfrontaxis>60</pfrontaxis><qrsfrontaxis>15</qrsfrontaxis><tfrontaxis>Indeterminate</tfrontaxis>
    </interpretationmeasurements>
    <statement><statementcode>SR</statementcode>
      <leftstatement>Sinus rhythm</leftstatement><rightstatement>normal P axis, V-rate 50- 99</rightstatement></statement>
    <statement><statementcode/><leftstatement/><rightstatement/></statement>
  </interpretation></interpretations>
  <waveforms>
    <parsedwaveforms compressflag="False" compressmethod="XLI" dataencoding="Base64"
      durationperchannel="8" nbitspersample="16">{uncompressed(LEADS_4)}</parsedwaveforms>
  </waveforms>
</restingecgdata>
"""


def test_hand_written_104() -> None:
    record = px.parse_philips_xml(DOC_104.encode())
    # Uncompressed leads are the samples themselves (no residuals: those belong to XLI).
    assert record.leads == {name: tuple(v) for name, v in zip(STANDARD_LEADS, LEADS_4, strict=True)}
    assert record.measurements == {
        "heart_rate": Decimal(75),
        "rr": Decimal(800),
        "qrs": Decimal(96),
        "qt": Decimal(380),
        "qtc": Decimal(401),  # no QTcB given: Fridericia's
        "p_axis": Decimal(52),
        "t_axis": Decimal(-20),
    }
    # The printed statements only: statementcomponents are their templates (real 1.04
    # files print "V-rate 50-99" where the template has "V-rate ***-***").
    assert record.statements == (
        Statement("Sinus rhythm", "SR"),
        Statement("Anterior infarct acute", "MIA"),
    )
    assert record.start_time == dt.datetime(2009, 1, 14, 10, 14, 34)
    # The model is machine's text; detaildescription is vendor:part:software.
    assert (record.patient_id, record.patient_name, record.device) == (
        "MRN-42",
        "Li Lei",
        "PageWriter TC",
    )


def test_hand_written_103() -> None:
    record = px.parse_philips_xml(DOC_103.encode())
    assert list(record.leads) == list(STANDARD_LEADS)
    assert record.leads["V6"] == (110, 111, 112, 113)
    assert (record.rate_hz, record.uv_per_unit) == (Decimal(500), Decimal("2.5"))
    assert record.measurements == {
        "heart_rate": Decimal(61),
        "pr": Decimal(170),  # the interpretation's, not measurements/globalmeasurements
        "qrs": Decimal(88),
        "qt": Decimal(400),
        "qtc": Decimal(402),
        "p_axis": Decimal(60),
        "qrs_axis": Decimal(15),
    }
    assert record.statements == (Statement("Sinus rhythm normal P axis, V-rate 50- 99", "SR"),)
    assert record.start_time == dt.datetime(2005, 6, 30, 23, 59, 1)


@pytest.mark.parametrize(
    ("doc_type", "version", "message"),
    [
        ("SierraECG", "1.05", "unsupported Philips XML SierraECG 1.05"),
        ("PhilipsECG", "1.03", "unsupported Philips XML PhilipsECG 1.03"),
        ("SierraECG", "1.04", "unsupported Philips XML SierraECG 1.04"),
        ("Mortara", "1.0", "unsupported Philips XML Mortara 1.0"),
        ("", "", "unsupported Philips XML \\(no documenttype\\) \\(no documentversion\\)"),
    ],
)
def test_unsupported_versions(doc_type: str, version: str, message: str) -> None:
    data = DOC_104.replace(">PhilipsECG<", f">{doc_type}<").replace(">1.04.01<", f">{version}<")
    with pytest.raises(DecodeError, match=message):
        px.parse_philips_xml(data.encode())


def with_waveforms(attributes: str, payload: str) -> bytes:
    head, _, rest = DOC_104.partition("<parsedwaveforms")
    _, _, tail = rest.partition("</parsedwaveforms>")
    return f"{head}<parsedwaveforms {attributes}>{payload}</parsedwaveforms>{tail}".encode()


XLI_ATTRS = 'dataencoding="Base64" compression="XLI" numberofleads="1" leadlabels="V1" durationperchannel="8"'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # root and encoding
        (b"<AnnotatedECG xmlns='urn:hl7-org:v3'/>", "not a Philips XML ECG: root element is"),
        (b"<restingecgdata", "not well-formed XML"),
        (b"<?xml version='1.0' encoding='bogus'?><a/>", "unknown encoding"),
        # the waveforms element
        (DOC_104.replace("parsedwaveforms", "unparsedwaveforms").encode(), "no waveforms"),
        (with_waveforms('dataencoding="Plain" durationperchannel="8"', "1 2"), "only Base64"),
        (
            with_waveforms(
                'dataencoding="Base64" compression="Huffman" durationperchannel="8"', ""
            ),
            "compression 'Huffman' is not supported",
        ),
        (
            with_waveforms('dataencoding="Base64" durationperchannel="8"', "AAA*AAAA"),
            "not valid Base64",
        ),
        (
            with_waveforms('dataencoding="Base64" durationperchannel="soon"', ""),
            "durationperchannel 'soon'",
        ),
        (
            with_waveforms(
                'dataencoding="Base64" numberofleads="3" leadlabels="I II" durationperchannel="8"',
                "",
            ),
            "numberofleads 3 but 2 leadlabels",
        ),
        (
            with_waveforms(
                'dataencoding="Base64" numberofleads="2" leadlabels="V1 V1" durationperchannel="8"',
                "",
            ),
            "repeat a lead",
        ),
        (
            with_waveforms(
                'dataencoding="Base64" durationperchannel="8"', uncompressed(LEADS_4)[:-8]
            ),
            "holds 90 bytes, 12 leads × 4 samples need 96",
        ),
        # XLI data
        (
            with_waveforms(XLI_ATTRS, base64.b64encode(chunk(b"\x00\x40\x10")[:-1]).decode()),
            "XLI lead 1: XLI chunk says 3 bytes of LZW data, 2 left",
        ),
        (
            with_waveforms(XLI_ATTRS, base64.b64encode(chunk(pack_codes([7, 900]))).decode()),
            "LZW code 900 beyond the dictionary",
        ),
        (
            with_waveforms(XLI_ATTRS, base64.b64encode(px.xli_encode([[1, 2, 3]])).decode()),
            "XLI lead V1 holds 3 samples, durationperchannel needs 4",
        ),
        # numbers
        (
            DOC_104.replace('samplespersecond="500"', 'samplespersecond="NaN"').encode(),
            "samplingrate must be a number above 0",
        ),
        (DOC_104.replace('resolution="5"', 'resolution="-5"').encode(), "resolution"),
    ],
)
def test_refused(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        px.parse_philips_xml(data)


def test_xli_lead_longer_than_duration_is_cut() -> None:
    data = with_waveforms(XLI_ATTRS, base64.b64encode(px.xli_encode([[5, 6, 7, 8, 9]])).decode())
    assert px.parse_philips_xml(data).leads == {"V1": (5, 6, 7, 8)}


@pytest.mark.parametrize(
    "dtd",
    [
        # billion laughs
        '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>',
        # external entity: a file off the stick must not read the agent's files
        '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    ],
)
def test_entities_refused(dtd: str) -> None:
    data = DOC_104.replace('<?xml version="1.0" encoding="utf-8"?>\n', dtd).replace(
        "<patientid>MRN-42</patientid>", "<patientid>&b;&x;</patientid>"
    )
    with pytest.raises(DecodeError, match="not a safe XML document"):
        px.parse_philips_xml(data.encode())


def test_encoder_refuses_what_the_format_cannot_hold() -> None:
    with pytest.raises(ValueError, match="twelve standard leads"):
        px.encode_philips_xml(make_record(leads={"I": (1, 2)}), version="1.03")
    with pytest.raises(ValueError, match="outside int16"):
        px.encode_philips_xml(make_record(leads={"I": (40000,)}))
    with pytest.raises(ValueError, match="one length"):
        px.encode_philips_xml(make_record(leads={"I": (1,), "II": (1, 2)}))
    with pytest.raises(ValueError, match="version"):
        px.encode_philips_xml(SMALL, version="1.05")


# --- fuzz: only DecodeError escapes -----------------------------------------------------


@given(st.binary(max_size=400))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        px.parse_philips_xml(data)


VALID = px.encode_philips_xml(make_record(40), version="1.04")
VALID_103 = px.encode_philips_xml(make_record(40), version="1.03")


@given(
    st.sampled_from([VALID, VALID_103, DOC_104.encode(), DOC_103.encode()]),
    st.lists(
        st.tuples(
            st.sampled_from(["set", "insert", "delete", "cut"]),
            st.floats(0, 1),
            st.binary(min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_fuzz_mutated_documents(document: bytes, edits: list[tuple[str, float, bytes]]) -> None:
    data = bytearray(document)
    for kind, where, new in edits:
        pos = int(where * (len(data) - 1))
        if kind == "set":
            data[pos : pos + len(new)] = new
        elif kind == "insert":
            data[pos:pos] = new
        elif kind == "delete":
            del data[pos : pos + len(new)]
        else:
            del data[pos:]
    with contextlib.suppress(DecodeError):
        px.parse_philips_xml(bytes(data))


@given(st.data())
def test_fuzz_payload_bytes(data: st.DataObject) -> None:
    # Mutations inside the XLI payload itself (the XML around it stays valid).
    payload = bytearray(px.xli_encode([list(v) for v in make_record(40).leads.values()]))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(payload) - 1))
        payload[pos] = data.draw(st.integers(0, 255))
    doc = with_waveforms(
        'dataencoding="Base64" compression="XLI" durationperchannel="80"',
        base64.b64encode(bytes(payload)).decode(),
    )
    with contextlib.suppress(DecodeError):
        px.parse_philips_xml(doc)
