"""Philips XML as real carts write it (HeartStart MRx 1.03, PageWriter TC 1.04.01).

Real files failed with `XLI lead 1: LZW code 1023 beyond the dictionary (next code
1023)`: a cart's 10-second lead fills the 10-bit dictionary (codes up to 1022) and every
lead ends with code 1023, the end of data, then zero bits to a whole 16-bit word. The
readers the format is known from (sierra-ecg-tools, MIT: the C# `LzwDecompressor`, the C
`lzw.c` and the Python `sierraecg.lzw`) stop at any code above 1022 and grow the
dictionary to 1022 without a reset; a code equal to the next free one is the previous
string plus its first byte.

`cart_lzw` and `cart_xli_chunk` below are a reference encoder written here from that
description (strings as bytes, a bit string for packing), not from our encoder; what it
makes is decoded by ours and by sierraecg's, and both must agree byte for byte.

The documents are built here with the element names and nesting of the public sample
files of sierra-ecg-tools (`129DYPRG.XML`, a HeartStart MRx 1.03; `2020-5-18_15-48-11.xml`,
a PageWriter TC 1.04.01): `dataacquisition/machine` (model as text, @machineid,
@detaildescription), `patient/generalpatientdata/sex` and `age` (`years` in 1.03,
`dateofbirth` in 1.04.01), `interpretations/interpretation/statement` and, in 1.04.01,
the templates of `interpretationdatastructure/statementcomponents`.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import random
import struct
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sierraecg import lzw as sierra_lzw
from sierraecg import xli as sierra_xli

from device_drivers.ecg import philips_xml as px
from device_drivers.ecg.record import MAX_AGE, STANDARD_LEADS, limb_lead_errors
from edge_agent.clock import SystemClock
from edge_agent.model import DecodeError, Frame, RecordingContext
from edge_agent.recorder import Recorder
from edge_agent.store import StoreWriter
from sync.gateway import ecg_sheet
from sync.gateway.ecg import ecg_from_message
from sync.hl7.inbound import parse_inbound
from sync.outbox_messages import build_message

NS = "http://www3.medical.philips.com"
END = 1023  # 2^10 - 1
LAST_CODE = 1022  # 2^10 - 2


# --- a reference encoder, from the format description ---------------------------------


def cart_lzw(data: bytes) -> tuple[bytes, int]:
    """(LZW data as a cart writes it, the next free code when the data ended)."""
    strings = {bytes([value]): value for value in range(256)}
    next_code = 256
    codes: list[int] = []
    word = b""
    for value in data:
        longer = word + bytes([value])
        if longer in strings:
            word = longer
            continue
        codes.append(strings[word])
        if next_code <= LAST_CODE:
            strings[longer] = next_code
            next_code += 1
        word = bytes([value])
    if word:
        codes.append(strings[word])
    codes.append(END)
    bits = "".join(f"{code:010b}" for code in codes)
    bits += "0" * (-len(bits) % 16)  # whole 16-bit words
    return int(bits, 2).to_bytes(len(bits) // 8, "big"), next_code


def cart_xli_chunk(samples: list[int]) -> tuple[bytes, int]:
    """One lead as XLI (second differences, high bytes then low bytes, LZW, header)."""
    n = len(samples)
    stored = list(samples)
    start = 0
    if n >= 3:
        # sample k = 2 * sample k-1 - sample k-2 - correction; the first correction is
        # the header's start value, the next ones the stored value before, less 64.
        start = 2 * samples[1] - samples[0] - samples[2]
        for k in range(2, n - 1):
            stored[k] = 2 * samples[k] - samples[k - 1] - samples[k + 1] + 64
        stored[n - 1] = 64
    words = [value & 0xFFFF for value in stored]
    halves = bytes(w >> 8 for w in words) + bytes(w & 0xFF for w in words)
    lzw, next_code = cart_lzw(halves)
    return struct.pack("<iHh", len(lzw), 0, start) + lzw, next_code


def sierra_lzw_decode(data: bytes) -> bytes:
    decoder = sierra_lzw.LzwDecoder(data, bits=10)
    out = bytearray()
    while (value := decoder.read()) != -1:
        out.append(value)
    return bytes(out)


def ecg_like(seed: int, n: int = 5500, rate: int = 500) -> list[int]:
    """A lead as a cart stores it at 5 µV per unit: P, QRS and T each beat at 72/min,
    baseline wander and noise, so the LZW dictionary fills as on a real lead."""
    rng = random.Random(seed)
    beat = rate * 60 // 72
    wander = rng.uniform(0, 2 * math.pi)
    out = []
    for k in range(n):
        t = (k % beat) / rate
        value = 30 * math.exp(-(((t - 0.10) / 0.025) ** 2))  # P
        value += 220 * math.exp(-(((t - 0.25) / 0.010) ** 2))  # R
        value -= 40 * math.exp(-(((t - 0.27) / 0.008) ** 2))  # S
        value += 60 * math.exp(-(((t - 0.50) / 0.050) ** 2))  # T
        value += 25 * math.sin(2 * math.pi * 0.3 * k / rate + wander)
        out.append(round(value + rng.gauss(0, 3)))
    return out


def twelve_leads(seed: int, n: int = 5500) -> dict[str, list[int]]:
    """Twelve leads in which III and the augmented leads follow I and II (as XLI
    rebuilds them), the chest leads independent."""
    i, ii = ecg_like(seed, n), ecg_like(seed + 1, n)
    iii = [b - a for a, b in zip(i, ii, strict=True)]
    leads = {
        "I": i,
        "II": ii,
        "III": iii,
        "aVR": [-((a + b) // 2) for a, b in zip(i, ii, strict=True)],
        "aVL": [(a - c) // 2 for a, c in zip(i, iii, strict=True)],
        "aVF": [(b + c) // 2 for b, c in zip(ii, iii, strict=True)],
    }
    leads |= {f"V{k}": ecg_like(seed + 1 + k, n) for k in range(1, 7)}
    return leads


def xli_payload(leads: dict[str, list[int]]) -> bytes:
    """All twelve leads as a cart stores them: III, aVR, aVL, aVF as residuals."""
    i, ii, iii = leads["I"], leads["II"], leads["III"]
    stored = dict(leads)
    stored["III"] = [b - a - c for a, b, c in zip(i, ii, iii, strict=True)]
    stored["aVR"] = [-v - ((a + b) // 2) for a, b, v in zip(i, ii, leads["aVR"], strict=True)]
    stored["aVL"] = [((a - c) // 2) - v for a, c, v in zip(i, iii, leads["aVL"], strict=True)]
    stored["aVF"] = [((b + c) // 2) - v for b, c, v in zip(ii, iii, leads["aVF"], strict=True)]
    return b"".join(cart_xli_chunk(stored[name])[0] for name in STANDARD_LEADS)


# --- LZW: the regression and the oracle -----------------------------------------------


def test_a_carts_lead_fills_the_dictionary_and_decodes() -> None:
    # Before the fix: "XLI lead 1: LZW code 1023 beyond the dictionary (next code 1023)".
    lead = ecg_like(11)
    data, next_code = cart_xli_chunk(lead)
    assert next_code == LAST_CODE + 1  # the dictionary is full when the end code comes
    assert px.xli_decode(data) == [lead]
    assert [list(map(int, s)) for s in sierra_xli.xli_decode(data, ["I"])] == [lead]


def test_the_end_code_ends_a_short_lead_too() -> None:
    # A flat residual lead (III of a consistent record) leaves the dictionary half
    # empty: "code 1023 beyond the dictionary (next code 474)" before the fix.
    data, next_code = cart_xli_chunk([0] * 5500)
    assert next_code < LAST_CODE
    assert px.xli_decode(data) == [[0] * 5500]


@pytest.mark.parametrize("seed", [3, 4])
def test_cart_streams_decode_as_sierraecg_decodes_them(seed: int) -> None:
    rng = random.Random(seed)
    data = bytes(rng.choice(b"\x00\x01\x02\x03\xfe\xff\x7f") for _ in range(30_000))
    stream, next_code = cart_lzw(data)
    assert next_code == LAST_CODE + 1
    assert px.lzw_decode(stream) == sierra_lzw_decode(stream) == data


def test_bits_after_the_end_code_are_padding() -> None:
    # Carts pad to a whole 16-bit word; what follows the end code is never data.
    stream, _ = cart_lzw(b"ABABABA")
    assert px.lzw_decode(stream + b"\xff\xff") == b"ABABABA"


@given(st.binary(max_size=4000))
def test_any_bytes_through_the_reference_encoder(data: bytes) -> None:
    stream, _ = cart_lzw(data)
    assert px.lzw_decode(stream) == data
    assert sierra_lzw_decode(stream) == data


def _codes_stream(raw: list[int]) -> tuple[list[int], bytes]:
    """Valid code streams of any shape: each raw number picks a code the decoder can
    have at that step (0 .. next free code, so KwKwK too); the first one a byte."""
    codes: list[int] = []
    next_code = 256
    for number in raw:
        if not codes:
            codes.append(number % 256)
            continue
        codes.append(number % (next_code + 1))
        next_code = min(next_code + 1, LAST_CODE + 1)
    bits = "".join(f"{code:010b}" for code in [*codes, END])
    bits += "0" * (-len(bits) % 16)
    return codes, int(bits, 2).to_bytes(len(bits) // 8, "big")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=1 << 20), min_size=1, max_size=1600))
def test_any_valid_code_stream_decodes_as_sierraecg_does(raw: list[int]) -> None:
    # Up to 1600 codes: past 767 additions the dictionary is full and stays full.
    codes, stream = _codes_stream(raw)
    ours = px.lzw_decode(stream, limit=1 << 24)
    assert ours == sierra_lzw_decode(stream)
    assert len(ours) >= len(codes)  # every code gives at least one byte


@given(st.binary(min_size=1, max_size=600))
def test_garbage_is_refused_or_decoded_within_the_limit(data: bytes) -> None:
    try:
        out = px.lzw_decode(data, limit=20_000)
    except DecodeError as exc:
        assert "beyond the dictionary" in exc.reason or "expands past" in exc.reason
        assert exc.offset is not None and 0 <= exc.offset < len(data)
    else:
        assert len(out) <= 20_000


def test_our_writer_writes_what_carts_write() -> None:
    data = bytes(value & 0xFF for value in ecg_like(5, 20_000))
    assert px.lzw_encode(data) == cart_lzw(data)[0]


# --- whole documents with the carts' structure ----------------------------------------


def _waveforms_103(payload: bytes) -> str:
    return (
        '<parsedwaveforms compressflag="True" compressmethod="XLI" filterflag="True"'
        ' dataencoding="Base64" durationperchannel="11000" nbitspersample="16">\n'
        + base64.encodebytes(payload).decode("ascii")
        + "</parsedwaveforms>"
    )


def heartstart_103(payload: bytes, *, sex: str = "Male", age: str = "<years>50</years>") -> bytes:
    """The layout of a HeartStart MRx SierraECG 1.03 export (sierra-ecg-tools'
    129DYPRG.XML): the model as `machine` text, its detaildescription empty."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<restingecgdata xmlns="{NS}" status="Not yet determined" lang="en">
  <documentinfo>
    <documentname>03d494f2-0000-0000-0000-00095c028bdc.xml</documentname>
    <documenttype>SierraECG</documenttype>
    <documentversion>1.03</documentversion>
  </documentinfo>
  <reportinfo date="2026-12-03" time="16:43:00">
    <reporttype>STD-12</reporttype>
  </reportinfo>
  <dataacquisition date="2026-12-03" time="16:43:00" statflag="False">
    <machine machineid="0001" detaildescription="">HeartstartMRx</machine>
    <acquirer><departmentid>EMS</departmentid></acquirer>
    <signalcharacteristics>
      <samplingrate>500</samplingrate>
      <signalresolution>5</signalresolution>
      <signalbandwidth>0.05-150</signalbandwidth>
      <acquisitiontype>STD-12</acquisitiontype>
      <bitspersample>16</bitspersample>
      <signaloffset>0</signaloffset>
      <signalsigned>True</signalsigned>
      <numberchannelsallocated>12</numberchannelsallocated>
      <numberchannelsvalid>12</numberchannelsvalid>
      <leadset>STD-12</leadset>
    </signalcharacteristics>
  </dataacquisition>
  <patient criteriaversionforpatientdata="Custom">
    <generalpatientdata>
      <patientid>1112010721168bdc</patientid>
      <name><lastname/><firstname/></name>
      <age>{age}</age>
      <pacestatus>Unknown</pacestatus>
      <sex>{sex}</sex>
    </generalpatientdata>
  </patient>
  <interpretations>
    <interpretation date="2026-12-03" time="16:43:00" criteriaversion="Custom">
      <interpretationdatastructure/>
      <interpretationmeasurements arrhyflag="False" editedflag="False">
        <heartrate>41</heartrate>
        <meanprint>151</meanprint>
        <meanqrsdur>135</meanqrsdur>
        <meanqtint>476</meanqtint>
        <meanqtc>393</meanqtc>
        <pfrontaxis>66</pfrontaxis>
        <qrsfrontaxis>-21</qrsfrontaxis>
        <tfrontaxis>59</tfrontaxis>
        <sthorizaxis>Failed</sthorizaxis>
      </interpretationmeasurements>
      <mdsignatureline>Unconfirmed diagnosis</mdsignatureline>
      <severity code="AB">- ABNORMAL ECG -</severity>
      <statement>
        <statementcode/>
        <leftstatement>Sinus bradycardia</leftstatement>
        <rightstatement>rate&lt; 50</rightstatement>
      </statement>
      <statement>
        <statementcode/>
        <leftstatement>Inferior infarct, acute (LCx)</leftstatement>
        <rightstatement>ST&gt;0.10mV, II III aVF, STd V1-V3</rightstatement>
      </statement>
      <statement>
        <statementcode/>
        <leftstatement>&gt;&gt;&gt; Acute MI &lt;&lt;&lt;</leftstatement>
        <rightstatement/>
      </statement>
    </interpretation>
  </interpretations>
  <waveforms>
    {_waveforms_103(payload)}
  </waveforms>
</restingecgdata>
""".encode()


def pagewriter_10401(payload: bytes, *, sex: str = "Female", birth: str = "1951-01-01") -> bytes:
    """The layout of a PageWriter TC PhilipsECG 1.04.01 export (sierra-ecg-tools'
    2020-5-18_15-48-11.xml): the model as `machine` text, the part number and software
    in detaildescription; the statements both as templates (statementcomponents, with
    *** for their numbers) and as printed (statement)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<restingecgdata xmlns="{NS}" status="New" lang="en" locale="US">
  <documentinfo>
    <documentname>b8359e00-9949-11ea-4823-100b21b20029.xml</documentname>
    <documenttype>PhilipsECG</documenttype>
    <documentversion>1.04.01</documentversion>
  </documentinfo>
  <reportinfo date="2026-12-03" time="16:43:00"><reportlabel>STD 12 LEAD</reportlabel>
  </reportinfo>
  <dataacquisition date="2026-12-03" time="16:43:00" statflag="False">
    <machine machineid="US71621374"
      detaildescription="Philips Medical Products:860315:A.07.04.03">PageWriter TC</machine>
    <acquirer><operator id="ABC"/><departmentid>1</departmentid></acquirer>
    <signalcharacteristics>
      <samplingrate>500</samplingrate>
      <resolution>5</resolution>
      <hipass>0.05</hipass>
      <lowpass>150</lowpass>
      <acquisitiontype>10-WIRE</acquisitiontype>
      <bitspersample>16</bitspersample>
      <signaloffset>0</signaloffset>
      <signalsigned>True</signalsigned>
      <numberchannelsallocated>12</numberchannelsallocated>
      <numberchannelsvalid>12</numberchannelsvalid>
    </signalcharacteristics>
  </dataacquisition>
  <patient criteriaversionforpatientdata="0B">
    <generalpatientdata>
      <patientid>xxxxxx</patientid>
      <uniquepatientid/>
      <MRN/>
      <name><lastname>Li</lastname><firstname>Hua</firstname><middlename/></name>
      <age defaultage="50"><dateofbirth>{birth}</dateofbirth></age>
      <pacestatus>Unknown</pacestatus>
      <sex>{sex}</sex>
      <height><inch/></height>
    </generalpatientdata>
  </patient>
  <interpretations>
    <interpretation date="2026-12-03" time="16:43:00" criteriaversion="0B">
      <interpretationdatastructure>
        <statementcomponents>
          <codedstatement source="Analysis program" subtype="Analysis" deleted="False">
            <variables changed="False">
              <numericvalue ndigits="3" nprecision="0">50</numericvalue>
              <numericvalue ndigits="3" nprecision="0">99</numericvalue>
            </variables>
            <unparsedstatement statementnumber="65" code="SR" format="Narrow">
              <lhsstatement>Sinus rhythm</lhsstatement>
              <rhsstatement>normal P axis, V-rate ***-***</rhsstatement>
            </unparsedstatement>
          </codedstatement>
          <codedstatement source="Analysis program" subtype="Analysis" deleted="False">
            <unparsedstatement statementnumber="286" code="ET" format="Narrow">
              <lhsstatement>Abnormal R-wave progression, early transition</lhsstatement>
              <rhsstatement>QRS area&gt;0 in V2</rhsstatement>
            </unparsedstatement>
          </codedstatement>
        </statementcomponents>
      </interpretationdatastructure>
      <globalmeasurements editedflag="False">
        <heartrate editedflag="False">64</heartrate>
        <rrint editedflag="False">938</rrint>
        <print editedflag="False">164</print>
        <qrsdur editedflag="False">102</qrsdur>
        <qtint editedflag="False">399</qtint>
        <qtcb editedflag="False">412</qtcb>
        <qtcf editedflag="False">408</qtcf>
        <pfrontaxis editedflag="False">27</pfrontaxis>
        <qrsfrontaxis editedflag="False">22</qrsfrontaxis>
        <tfrontaxis editedflag="False">80</tfrontaxis>
      </globalmeasurements>
      <mdsignatureline>Unconfirmed Diagnosis</mdsignatureline>
      <severity code="ON" id="2">- OTHERWISE NORMAL ECG -</severity>
      <statement editedflag="False">
        <statementcode>SR</statementcode>
        <leftstatement>Sinus rhythm</leftstatement>
        <rightstatement>normal P axis, V-rate 50-99</rightstatement>
      </statement>
      <statement editedflag="False">
        <statementcode>ET</statementcode>
        <leftstatement>Abnormal R-wave progression, early transition</leftstatement>
        <rightstatement>QRS area&gt;0 in V2</rightstatement>
      </statement>
    </interpretation>
  </interpretations>
  <waveforms>
    <parsedwaveforms dataencoding="Base64" compression="XLI" numberofleads="12"
      leadlabels="I II III aVR aVL aVF V1 V2 V3 V4 V5 V6" durationperchannel="11000"
      samplespersecond="500" resolution="5" signaloffset="0" signalsigned="True"
      bitspersample="16" hipass="0.05" lowpass="150">
{base64.encodebytes(payload).decode("ascii")}</parsedwaveforms>
  </waveforms>
</restingecgdata>
""".encode()


LEADS = twelve_leads(21)
PAYLOAD = xli_payload(LEADS)


@pytest.mark.parametrize("make", [heartstart_103, pagewriter_10401])
def test_a_carts_file_decodes_every_lead(make: Callable[[bytes], bytes]) -> None:
    record = px.parse_philips_xml(make(PAYLOAD))
    assert {name: list(values) for name, values in record.leads.items()} == LEADS
    assert record.sample_count == 5500
    assert limb_lead_errors(record) == []


def test_heartstart_103_model_sex_age_statements() -> None:
    record = px.parse_philips_xml(heartstart_103(PAYLOAD))
    assert record.device == "HeartstartMRx"
    assert (record.patient_sex, record.patient_age, record.patient_age_unit) == (
        "M",
        50,
        "MDC_DIM_YR",
    )
    assert [s.text for s in record.statements] == [
        "Sinus bradycardia rate< 50",
        "Inferior infarct, acute (LCx) ST>0.10mV, II III aVF, STd V1-V3",
        ">>> Acute MI <<<",
    ]
    assert record.measurements["heart_rate"] == Decimal(41)


def test_pagewriter_10401_model_sex_age_statements() -> None:
    record = px.parse_philips_xml(pagewriter_10401(PAYLOAD))
    assert record.device == "PageWriter TC"
    # Born 1951-01-01, recorded 2026-12-03: 75 completed years. defaultage (50) is the
    # age the cart's criteria assume when none is entered, not the patient's.
    assert (record.patient_sex, record.patient_age, record.patient_age_unit) == (
        "F",
        75,
        "MDC_DIM_YR",
    )
    # The printed statements once each; the *** templates are not printed text.
    assert [(s.text, s.code) for s in record.statements] == [
        ("Sinus rhythm normal P axis, V-rate 50-99", "SR"),
        ("Abnormal R-wave progression, early transition QRS area>0 in V2", "ET"),
    ]
    assert record.start_time == dt.datetime(2026, 12, 3, 16, 43)


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        ("<years>50</years>", (50, "MDC_DIM_YR")),
        ("<days>12</days>", (12, "MDC_DIM_DAY")),
        ("<weeks>3</weeks>", (21, "MDC_DIM_DAY")),
        ("<hours>5</hours>", (5, "MDC_DIM_HR")),
        ("<months>30</months>", (2, "MDC_DIM_YR")),  # completed years
        ("<months>7</months>", (None, None)),  # no exact unit below a year: left out
        ("<years>Unknown</years>", (None, None)),
        ("<years>-3</years>", (None, None)),
        ("<dateofbirth>2026-11-20</dateofbirth>", (13, "MDC_DIM_DAY")),
        ("<dateofbirth>2027-01-01</dateofbirth>", (None, None)),  # after the recording
        ("<dateofbirth>not a date</dateofbirth>", (None, None)),
        ("", (None, None)),
    ],
)
def test_age_as_the_schema_allows_it(age: str, expected: tuple[object, object]) -> None:
    record = px.parse_philips_xml(heartstart_103(PAYLOAD, age=age))
    assert (record.patient_age, record.patient_age_unit) == expected


@pytest.mark.parametrize(
    ("sex", "code"), [("Male", "M"), ("Female", "F"), ("Unknown", None), ("", None)]
)
def test_sex_codes(sex: str, code: str | None) -> None:
    assert px.parse_philips_xml(pagewriter_10401(PAYLOAD, sex=sex)).patient_sex == code


@pytest.mark.parametrize("version", ["1.03", "1.04.01"])
def test_our_writer_keeps_model_sex_and_age(version: str) -> None:
    record = px.parse_philips_xml(pagewriter_10401(PAYLOAD))
    back = px.parse_philips_xml(px.encode_philips_xml(record, version=version))
    assert (back.device, back.patient_sex, back.patient_age, back.patient_age_unit) == (
        "PageWriter TC",
        "F",
        75,
        "MDC_DIM_YR",
    )
    assert back.leads == record.leads


# --- from the cart's file to the county gateway's sheet ---------------------------------


def test_a_carts_file_reaches_the_gateways_sheet(tmp_path: Path) -> None:
    store = StoreWriter.open(tmp_path / "agent.db")
    clock = SystemClock.create()
    data = heartstart_103(PAYLOAD)
    frame = Frame(
        "cart-1", "ecg-philips-xml", data, clock.wall_ns(), clock.mono_ns(), clock.boot_id
    )
    try:
        with store.transaction():
            done = Recorder(store).record(frame, px.decode_philips_xml)
        assert done.outcome == "decoded" and done.raw_frame_id is not None
        context = RecordingContext("HeartstartMRx", "M", 50, "MDC_DIM_YR")
        assert store.ecg.context(done.raw_frame_id) == context
        row = next(r for r in store.outbox.due(clock.wall_ns() + 1, 10) if r.kind == "oru_r01")
        text = build_message(
            store, row, agent_id="amb-017", tz="Asia/Shanghai", now_wall_ns=clock.wall_ns()
        )
    finally:
        store.close()
    obx = [s for s in text.split("\r") if s.startswith("OBX")]
    assert any("|67880^MDC_ATTR_ID_MODEL^MDC|" in s and "|HeartstartMRx|" in s for s in obx)
    assert any("|67937^MDC_ATTR_PT_SEX^MDC|" in s and "|M^Male^HL70001|" in s for s in obx)
    assert any(
        "|68056^MDC_ATTR_PT_AGE^MDC|" in s and "|50|264512^MDC_DIM_YR^MDC|" in s for s in obx
    )
    record = ecg_from_message(parse_inbound(text))  # hl7apy strict checks the structure
    assert record is not None
    assert (record.device, record.patient_sex, record.patient_age) == ("HeartstartMRx", "M", 50)
    assert [s.text for s in record.statements][-1] == ">>> Acute MI <<<"

    texts = [t.text for t in ecg_sheet.sheet_layout(record, title="t").texts]
    assert "性别 男     年龄 50岁" in texts
    # The cart's 16:43 on the box in Asia/Shanghai: local time with its offset.
    assert "采集时间 2026-12-03 16:43:00 +08:00     设备 HeartstartMRx" in texts
    assert "Inferior infarct, acute (LCx) ST>0.10mV, II III aVF, STd V1-V3" in texts
    english = [t.text for t in ecg_sheet.sheet_layout(record, language="en").texts]
    assert "Sex male     Age 50 y" in english
    assert "Acquired 2026-12-03 16:43:00 +08:00     Device HeartstartMRx" in english
    assert ecg_sheet.render_png(record, dpi=75).startswith(b"\x89PNG")


_XML_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40
)


@settings(max_examples=60, deadline=None)
@given(
    model=_XML_TEXT,
    sex=_XML_TEXT | st.sampled_from(["Male", "Female", "Unknown", "M", "女"]),
    age_element=st.sampled_from(["years", "months", "weeks", "days", "hours", "dateofbirth"]),
    age=_XML_TEXT | st.integers(-5, 100_000).map(str) | st.dates().map(str),
)
def test_what_the_cart_says_about_itself_and_the_patient(
    model: str, sex: str, age_element: str, age: str
) -> None:
    # Whatever a file puts there, the record holds a table-0001 sex, an age a person can
    # have in one of the three units, the model as written, or None: never garbage.
    escape = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
    model_xml, sex_xml, age_xml = (
        "".join(escape.get(ch, ch) for ch in text) for text in (model, sex, age)
    )
    data = heartstart_103(
        PAYLOAD, sex=sex_xml, age=f"<{age_element}>{age_xml}</{age_element}>"
    ).replace(b">HeartstartMRx<", f">{model_xml}<".encode())
    record = px.parse_philips_xml(data)
    assert record.device == (model.strip() or None)
    assert record.patient_sex in (None, "M", "F", "O")
    if record.patient_age is None:
        assert record.patient_age_unit is None
    else:
        assert record.patient_age_unit in MAX_AGE
        assert 0 <= record.patient_age <= MAX_AGE[record.patient_age_unit]
    assert record.leads["II"] == tuple(LEADS["II"])  # the ECG itself is never lost
