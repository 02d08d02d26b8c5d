"""HL7 aECG files (HL7 v3 Annotated ECG; docs/protocols/ecg-files.md): hand-written
documents, unit conversions, a 12-lead round trip, refusals with their messages, and fuzzing
(only DecodeError may escape)."""

from __future__ import annotations

import datetime as dt
import math
import time
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.ecg.aecg import decode_aecg, encode_aecg, parse_aecg
from device_drivers.ecg.record import (
    MEASUREMENTS,
    STANDARD_LEADS,
    EcgRecord,
    lead_metric,
    limb_lead_errors,
)
from edge_agent.model import DecodeError, Statement

# --- a document written by hand after HL7 aECG ----------------------------------
# Three leads at 0.005 mV per digit with origin -0.1 mV, 2 ms between samples, a
# non-standard VCG lead (skipped), global measurements in the rhythm series (PR nested in a
# group, in seconds) and in the representative-beat series, a beat-bound QT (skipped),
# interpretation statements free-text and coded, patient and cart.

HAND = """<?xml version="1.0" encoding="UTF-8"?>
<AnnotatedECG xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <id root="0b9e3c52-5a1f-4d6e-9f43-2c8a7d1e6b10"/>
  <code code="93000" codeSystem="2.16.840.1.113883.6.12"/>
  <effectiveTime><center value="20240315083012.250+0800"/></effectiveTime>
  <componentOf><timepointEvent><componentOf><subjectAssignment><subject>
    <trialSubject>
      <id root="2.16.840.1.113883.3.400" extension="PT-0042"/>
      <subjectDemographicPerson>
        <name><given>San</given> <family>Zhang</family></name>
      </subjectDemographicPerson>
    </trialSubject>
  </subject></subjectAssignment></componentOf></timepointEvent></componentOf>
  <component>
    <series>
      <code code="RHYTHM" codeSystem="2.16.840.1.113883.5.4"/>
      <author><seriesAuthor><manufacturedSeriesDevice>
        <id extension="SN-77"/>
        <manufacturerModelName>ECG-1200</manufacturerModelName>
      </manufacturedSeriesDevice></seriesAuthor></author>
      <component>
        <sequenceSet>
          <component><sequence>
            <code code="TIME_ABSOLUTE" codeSystem="2.16.840.1.113883.5.4"/>
            <value xsi:type="GLIST_TS">
              <head value="20240315083012"/>
              <increment value="2" unit="ms"/>
            </value>
          </sequence></component>
          <component><sequence>
            <code code="MDC_ECG_LEAD_I" codeSystem="2.16.840.1.113883.6.24"/>
            <value xsi:type="SLIST_PQ">
              <origin value="-0.1" unit="mV"/>
              <scale value="0.005" unit="mV"/>
              <digits> 10 12 -4
                       7 0 </digits>
            </value>
          </sequence></component>
          <component><sequence>
            <code code="MDC_ECG_LEAD_X" codeSystem="2.16.840.1.113883.6.24"/>
            <value xsi:type="SLIST_PQ">
              <origin value="0" unit="uV"/>
              <scale value="1" unit="uV"/>
              <digits>1 2 3 4 5</digits>
            </value>
          </sequence></component>
          <component><sequence>
            <code code="MDC_ECG_LEAD_II" codeSystem="2.16.840.1.113883.6.24"/>
            <value xsi:type="SLIST_PQ">
              <origin value="-0.1" unit="mV"/>
              <scale value="0.005" unit="mV"/>
              <digits>20 25 -6 14 2</digits>
            </value>
          </sequence></component>
          <component><sequence>
            <code code="MDC_ECG_LEAD_III" codeSystem="2.16.840.1.113883.6.24"/>
            <value xsi:type="SLIST_PQ">
              <origin value="-0.1" unit="mV"/>
              <scale value="0.005" unit="mV"/>
              <digits>10 13 -2 7 2</digits>
            </value>
          </sequence></component>
        </sequenceSet>
      </component>
      <subjectOf>
        <annotationSet>
          <component><annotation>
            <code code="MDC_ECG_HEART_RATE" codeSystem="2.16.840.1.113883.6.24"/>
            <value xsi:type="PQ" value="72" unit="bpm"/>
          </annotation></component>
          <component><annotation>
            <code code="MDC_ECG_BEAT_NORMAL" codeSystem="2.16.840.1.113883.6.24"/>
            <support><supportingROI classCode="ROIBND">
              <code code="ROIPS" codeSystem="2.16.840.1.113883.5.4"/>
              <component><boundary>
                <code code="TIME_RELATIVE" codeSystem="2.16.840.1.113883.5.4"/>
                <value xsi:type="IVL_PQ"><low value="0" unit="ms"/><high value="800" unit="ms"/></value>
              </boundary></component>
            </supportingROI></support>
            <component><annotation>
              <code code="MDC_ECG_TIME_PD_QT" codeSystem="2.16.840.1.113883.6.24"/>
              <value xsi:type="PQ" value="999" unit="ms"/>
            </annotation></component>
          </annotation></component>
          <component><annotation>
            <code code="MDC_ECG_MEASUREMENTS" codeSystem="2.16.840.1.113883.6.24"/>
            <component><annotation>
              <code code="MDC_ECG_TIME_PD_PR" codeSystem="2.16.840.1.113883.6.24"/>
              <value xsi:type="PQ" value="0.16" unit="s"/>
            </annotation></component>
          </annotation></component>
          <component><annotation>
            <code code="MDC_ECG_INTERPRETATION" codeSystem="2.16.840.1.113883.6.24"/>
            <component><annotation>
              <code code="MDC_ECG_INTERPRETATION_STATEMENT" codeSystem="2.16.840.1.113883.6.24"/>
              <value xsi:type="ST">Sinus rhythm</value>
            </annotation></component>
            <component><annotation>
              <code code="MDC_ECG_RHY" codeSystem="2.16.840.1.113883.6.24"/>
              <value xsi:type="CD" code="MDC_ECG_RHY_SINUS_RHY"
                     codeSystem="2.16.840.1.113883.6.24" displayName="Normal sinus rhythm"/>
            </annotation></component>
            <component><annotation>
              <code code="MDC_ECG_INTERPRETATION_COMMENT" codeSystem="2.16.840.1.113883.6.24"/>
              <value xsi:type="ST">Patient moved</value>
            </annotation></component>
            <component><annotation>
              <code code="MDC_ECG_INTERPRETATION_SUMMARY" codeSystem="2.16.840.1.113883.6.24"/>
              <value xsi:type="ST">Normal ECG</value>
            </annotation></component>
          </annotation></component>
        </annotationSet>
      </subjectOf>
      <derivation><derivedSeries>
        <code code="REPRESENTATIVE_BEAT" codeSystem="2.16.840.1.113883.5.4"/>
        <subjectOf><annotationSet>
          <component><annotation>
            <code code="MDC_ECG_TIME_PD_PR" codeSystem="2.16.840.1.113883.6.24"/>
            <value xsi:type="PQ" value="170" unit="ms"/>
          </annotation></component>
          <component><annotation>
            <code code="MDC_ECG_TIME_PD_QRS" codeSystem="2.16.840.1.113883.6.24"/>
            <value xsi:type="PQ" value="88" unit="ms"/>
          </annotation></component>
          <component><annotation>
            <code code="MDC_ECG_TIME_PD_QT" codeSystem="2.16.840.1.113883.6.24"/>
            <value xsi:type="PQ" value="380" unit="ms"/>
          </annotation></component>
          <component><annotation>
            <code code="MDC_ECG_TIME_PD_QTcF" codeSystem="2.16.840.1.113883.6.24"/>
            <value xsi:type="PQ" value="398" unit="ms"/>
          </annotation></component>
          <component><annotation>
            <code code="MDC_ECG_TIME_PD_QTcB" codeSystem="2.16.840.1.113883.6.24"/>
            <value xsi:type="PQ" value="402" unit="ms"/>
          </annotation></component>
          <component><annotation>
            <code code="MDC_ECG_ANGLE_P_FRONT" codeSystem="2.16.840.1.113883.6.24"/>
            <value xsi:type="PQ" value="44" unit="deg"/>
          </annotation></component>
          <component><annotation>
            <code code="MDC_ECG_ANGLE_QRS_FRONT" codeSystem="2.16.840.1.113883.6.24"/>
            <value xsi:type="PQ" value="-30" unit="deg"/>
          </annotation></component>
          <component><annotation>
            <code code="MDC_ECG_ANGLE_T_FRONT" codeSystem="2.16.840.1.113883.6.24"/>
            <value xsi:type="PQ" nullFlavor="NA"/>
          </annotation></component>
        </annotationSet></subjectOf>
      </derivedSeries></derivation>
    </series>
  </component>
</AnnotatedECG>
"""

HAND_RECORD = EcgRecord(
    leads={
        "I": (10, 12, -4, 7, 0),
        "II": (20, 25, -6, 14, 2),
        "III": (10, 13, -2, 7, 2),
    },
    rate_hz=Decimal(500),
    uv_per_unit=Decimal(5),
    # The zone offset is dropped: the wall time stays as written (module docstring).
    start_time=dt.datetime(2024, 3, 15, 8, 30, 12, 250000),
    measurements={
        "heart_rate": Decimal(72),
        "pr": Decimal(160),  # 0.16 s, the first global PR (the derived series' 170 is later)
        "qrs": Decimal(88),
        "qt": Decimal(380),  # not the beat-bound 999
        "qtc": Decimal(402),  # no plain QTc: Bazett's before Fridericia's
        "p_axis": Decimal(44),
        "qrs_axis": Decimal(-30),
    },
    statements=(
        Statement("Sinus rhythm"),
        Statement("Normal sinus rhythm", "MDC_ECG_RHY_SINUS_RHY"),
        Statement("Normal ECG"),
    ),
    offset_uv=Decimal(-100),
    patient_id="PT-0042",
    patient_name="San Zhang",
    device="ECG-1200",
)


def test_hand_written_document() -> None:
    assert parse_aecg(HAND.encode()) == HAND_RECORD


@pytest.mark.parametrize(
    ("person", "expected"),
    [
        # HL7 v3 aECG subjectDemographicPerson: administrativeGenderCode (AdministrativeGender
        # M, F, UN) and birthTime (TS); the age is taken on the acquisition day, 2024-03-15.
        (
            '<administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>'
            '<birthTime value="19580316"/>',
            ("F", 65, "MDC_DIM_YR"),
        ),
        (
            '<administrativeGenderCode code="M"/><birthTime value="19580315"/>',
            ("M", 66, "MDC_DIM_YR"),
        ),
        (
            '<administrativeGenderCode code="UN"/><birthTime value="20240301"/>',
            (None, 14, "MDC_DIM_DAY"),
        ),
        ('<birthTime value="20250101"/>', (None, None, None)),  # born after the ECG
        ('<birthTime value="1958"/>', (None, None, None)),  # a year is no birth day
        ('<birthTime value="19581399"/>', (None, None, None)),
    ],
)
def test_subject_sex_and_age(person: str, expected: tuple[object, object, object]) -> None:
    document = HAND.replace("</name>", "</name>" + person)
    record = parse_aecg(document.encode())
    assert (record.patient_sex, record.patient_age, record.patient_age_unit) == expected


def test_document_without_namespace_reads_the_same() -> None:
    plain = HAND.replace(' xmlns="urn:hl7-org:v3"', "")
    assert parse_aecg(plain.encode()) == HAND_RECORD


def test_utf16_with_bom() -> None:
    text = HAND.replace('encoding="UTF-8"', 'encoding="UTF-16"')
    assert parse_aecg(text.encode("utf-16")) == HAND_RECORD
    assert parse_aecg(b"\xfe\xff" + text.encode("utf-16-be")) == HAND_RECORD


def test_gbk_document_from_a_chinese_cart() -> None:
    # expat reads no multi-byte legacy encoding; the declared codec decodes it instead.
    text = (
        HAND.replace('encoding="UTF-8"', 'encoding="GBK"')
        .replace("<given>San</given> <family>Zhang</family>", "张三")
        .replace(">Sinus rhythm<", ">窦性心律<")
    )
    record = parse_aecg(text.encode("gbk"))
    assert record.patient_name == "张三"
    assert record.statements[0] == Statement("窦性心律")


def test_decode_gives_readings_and_waveforms_in_microvolts() -> None:
    decoded = decode_aecg(HAND.encode())
    readings = {r.metric: (r.value, r.unit) for r in decoded.readings}
    assert readings["MDC_ECG_HEART_RATE"] == (Decimal(72), "MDC_DIM_BEAT_PER_MIN")
    assert readings["MDC_ECG_TIME_PD_QTc"] == (Decimal(402), "MDC_DIM_MILLI_SEC")
    assert [w.metric for w in decoded.waveforms] == [lead_metric(n) for n in ("I", "II", "III")]
    lead_i = decoded.waveforms[0]
    assert lead_i.rate_hz == 500.0
    # -0.1 mV + 10 × 0.005 mV = -50 uV
    assert [lead_i.physical(k) for k in range(5)] == [
        Decimal(v) for v in (-50, -40, -120, -65, -100)
    ]
    assert decoded.statements == HAND_RECORD.statements


# --- small documents built from parts, for the tables below ----------------------------


def lead_xml(
    code: str, digits: str, scale: str = '"2.5" unit="uV"', origin: str = '"0" unit="uV"'
) -> str:
    return f"""<component><sequence><code code="{code}"/><value xsi:type="SLIST_PQ">
      <origin value={origin}/><scale value={scale}/><digits>{digits}</digits>
    </value></sequence></component>"""


def time_xml(
    increment: str = '"0.002" unit="s"',
    code: str = "TIME_ABSOLUTE",
    head: str = '<head value="20240101120000"/>',
) -> str:
    kind = "GLIST_TS" if code == "TIME_ABSOLUTE" else "GLIST_PQ"
    return f"""<component><sequence><code code="{code}"/><value xsi:type="{kind}">
      {head}<increment value={increment}/></value></sequence></component>"""


def sequence_set(*parts: str) -> str:
    return f"<component><sequenceSet>{''.join(parts)}</sequenceSet></component>"


DEFAULT_SET = sequence_set(time_xml(), lead_xml("MDC_ECG_LEAD_I", "1 2 3"))


def doc(
    sets: str = DEFAULT_SET,
    annotations: str = "",
    root: str = "",
    series_code: str = "RHYTHM",
) -> bytes:
    subject = f"<subjectOf><annotationSet>{annotations}</annotationSet></subjectOf>"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<AnnotatedECG xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  {root}
  <component><series><code code="{series_code}"/>{sets}{subject}</series></component>
</AnnotatedECG>""".encode()


def annotation(code: str, value: str) -> str:
    return f'<component><annotation><code code="{code}"/><value xsi:type="PQ" {value}/></annotation></component>'


@pytest.mark.parametrize(
    ("scale", "uv_per_unit"),
    [
        ('"2.5" unit="uV"', Decimal("2.5")),  # FDA sample carts (Mortara ELI 250)
        ('"0.005" unit="mV"', Decimal(5)),
        ('"4.88" unit="uV"', Decimal("4.88")),  # GE MUSE's usual resolution (nagyl1999/muse2csv)
        ('"0.00000488" unit="V"', Decimal("4.88")),
        ('"2500" unit="nV"', Decimal("2.5")),
        ('"1E-3" unit="mV"', Decimal(1)),
    ],
)
def test_scale_units_convert_exactly(scale: str, uv_per_unit: Decimal) -> None:
    record = parse_aecg(doc(sequence_set(time_xml(), lead_xml("MDC_ECG_LEAD_I", "1", scale))))
    assert record.uv_per_unit == uv_per_unit
    assert str(record.uv_per_unit) == str(uv_per_unit)  # tidy: 5, not 5.000


@pytest.mark.parametrize(
    ("origin", "offset_uv"),
    [
        ('"0" unit="uV"', Decimal(0)),
        ('"-0.1" unit="mV"', Decimal(-100)),
        ('"12.5" unit="uV"', Decimal("12.5")),
    ],
)
def test_origin_units(origin: str, offset_uv: Decimal) -> None:
    lead = lead_xml("MDC_ECG_LEAD_I", "1", origin=origin)
    assert parse_aecg(doc(sequence_set(time_xml(), lead))).offset_uv == offset_uv


@pytest.mark.parametrize(
    ("increment", "rate_hz"),
    [
        ('"0.002" unit="s"', Decimal(500)),
        ('"2" unit="ms"', Decimal(500)),
        ('"1" unit="ms"', Decimal(1000)),
        ('"0.004" unit="s"', Decimal(250)),
        ('"0.0078125" unit="s"', Decimal(128)),
        ('"4000" unit="us"', Decimal(250)),
        # not a terminating decimal: 30 significant digits
        ('"0.003" unit="s"', Decimal("333.333333333333333333333333333")),
    ],
)
def test_rate_is_one_over_increment(increment: str, rate_hz: Decimal) -> None:
    record = parse_aecg(doc(sequence_set(time_xml(increment), lead_xml("MDC_ECG_LEAD_I", "1"))))
    assert record.rate_hz == rate_hz


def test_time_relative_gives_rate_without_start() -> None:
    time_part = time_xml('"4" unit="ms"', "TIME_RELATIVE", '<head value="0" unit="s"/>')
    record = parse_aecg(doc(sequence_set(time_part, lead_xml("MDC_ECG_LEAD_I", "1"))))
    assert (record.rate_hz, record.start_time) == (Decimal(250), None)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2024", dt.datetime(2024, 1, 1)),
        ("20240315", dt.datetime(2024, 3, 15)),
        ("202403150830", dt.datetime(2024, 3, 15, 8, 30)),
        ("20240315083012.1234", dt.datetime(2024, 3, 15, 8, 30, 12, 123400)),
        ("20240315083012-0500", dt.datetime(2024, 3, 15, 8, 30, 12)),  # wall time kept
    ],
)
def test_effective_time_precisions(ts: str, expected: dt.datetime) -> None:
    root = f'<effectiveTime><low value="{ts}"/><high value="20991231"/></effectiveTime>'
    assert parse_aecg(doc(root=root)).start_time == expected


def test_head_is_the_start_without_effective_time() -> None:
    assert parse_aecg(doc()).start_time == dt.datetime(2024, 1, 1, 12, 0)


def test_leads_with_different_scales_share_the_finest_when_exact() -> None:
    sets = sequence_set(
        time_xml(),
        lead_xml("MDC_ECG_LEAD_I", "1 2 3", '"2.5" unit="uV"'),
        lead_xml("MDC_ECG_LEAD_II", "1 2 3", '"0.005" unit="mV"', '"5" unit="uV"'),
        lead_xml("MDC_ECG_LEAD_V1", "-1 0 1", '"2.5" unit="uV"'),
    )
    record = parse_aecg(doc(sets))
    assert (record.uv_per_unit, record.offset_uv) == (Decimal("2.5"), Decimal(0))
    # II: 5 uV + 5 uV × d = 2.5 uV × (2d + 2)
    assert record.leads["II"] == (4, 6, 8)
    assert record.leads["I"] == (1, 2, 3)


@pytest.mark.parametrize(
    ("scale", "origin", "message"),
    [
        (
            '"4" unit="uV"',
            '"0" unit="uV"',
            "scale 4 uV is not a whole multiple of lead I scale 2.5 uV",
        ),
        ('"2.5" unit="uV"', '"1" unit="uV"', "origin 1 uV is not a whole number of 2.5 uV steps"),
    ],
)
def test_leads_that_cannot_share_a_resolution_are_refused(
    scale: str, origin: str, message: str
) -> None:
    sets = sequence_set(
        time_xml(),
        lead_xml("MDC_ECG_LEAD_I", "1 2 3"),
        lead_xml("MDC_ECG_LEAD_II", "1 2 3", scale, origin),
    )
    with pytest.raises(DecodeError, match=message):
        parse_aecg(doc(sets))


def test_leads_of_different_lengths_are_kept_as_they_are() -> None:
    sets = sequence_set(
        time_xml(), lead_xml("MDC_ECG_LEAD_I", "1 2 3 4"), lead_xml("MDC_ECG_LEAD_II", "5 6")
    )
    record = parse_aecg(doc(sets))
    assert record.leads == {"I": (1, 2, 3, 4), "II": (5, 6)}
    assert record.sample_count == 4


def test_sequence_sets_on_the_same_time_base_are_merged() -> None:
    sets = sequence_set(time_xml(), lead_xml("MDC_ECG_LEAD_I", "1")) + sequence_set(
        time_xml(), lead_xml("MDC_ECG_LEAD_II", "2")
    )
    assert parse_aecg(doc(sets)).leads == {"I": (1,), "II": (2,)}


def test_qtc_prefers_plain_then_bazett_then_fridericia() -> None:
    annotations = (
        annotation("MDC_ECG_TIME_PD_QTcF", 'value="398" unit="ms"')
        + annotation("MDC_ECG_TIME_PD_QTcB", 'value="402" unit="ms"')
        + annotation("MDC_ECG_TIME_PD_QTc_GL", 'value="0.41" unit="s"')
        + annotation("MDC_ECG_TIME_PD_RR_GL", 'value="833" unit="ms"')
        + annotation("MDC_ECG_HEART_RATE", 'value="72" unit="/min"')
    )
    measurements = parse_aecg(doc(annotations=annotations)).measurements
    assert measurements == {"qtc": Decimal(410), "rr": Decimal(833), "heart_rate": Decimal(72)}


# --- refusals: one line saying what is wrong -------------------------------------------

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE AnnotatedECG [
  <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
  <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
  <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
  <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
  <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
  <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
]>
<AnnotatedECG xmlns="urn:hl7-org:v3">&f;</AnnotatedECG>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE AnnotatedECG [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<AnnotatedECG xmlns="urn:hl7-org:v3"><id extension="&secret;"/></AnnotatedECG>"""


def with_lead(digits: str) -> bytes:
    return doc(sequence_set(time_xml(), lead_xml("MDC_ECG_LEAD_I", digits)))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not well-formed XML"),
        (b"\x00\x01\x02 binary", "not well-formed XML"),
        (b"I,II,III\n1,2,3\n", "not well-formed XML"),  # a CSV export, not aECG
        (HAND.encode()[:-40], "not well-formed XML"),  # truncated copy
        (b"<RestingECG><Waveform/></RestingECG>", "root element is 'RestingECG'"),  # MUSE XML
        (b'<AnnotatedECG xmlns="urn:other"/>', "'AnnotatedECG' in namespace urn:other"),
        (b'<AnnotatedECG xmlns="urn:hl7-org:v3"/>', "no rhythm series"),
        (doc(series_code="REPRESENTATIVE_BEAT"), "no rhythm series"),
        (doc(sets=""), "no sequenceSet"),
        (BOMB, "declares entities"),
        (EXTERNAL, "declares entities"),
        (b'<?xml version="1.0" encoding="no-such-codec"?><AnnotatedECG/>', "encoding"),
        (with_lead("1 2 x 4"), r"lead I digits: 'x' \(sample 2\) is not an integer"),
        (with_lead("1 2.5"), "'2.5' .* is not an integer"),
        (with_lead("1_000"), "'1_000' .* is not an integer"),
        (with_lead("1 ٣"), "is not an integer"),  # an Arabic-Indic digit: int() takes it, we do not
        (doc(sequence_set(lead_xml("MDC_ECG_LEAD_I", "1"))), "sampling rate unknown"),
        (
            doc(sequence_set(time_xml('"0" unit="s"'), lead_xml("MDC_ECG_LEAD_I", "1"))),
            "increment 0 s is not positive",
        ),
        (
            doc(sequence_set(time_xml('"2" unit="ks"'), lead_xml("MDC_ECG_LEAD_I", "1"))),
            "increment unit 'ks'",
        ),
        (
            doc(sequence_set(time_xml('"fast" unit="s"'), lead_xml("MDC_ECG_LEAD_I", "1"))),
            "'fast' is not a number",
        ),
        (
            doc(sequence_set(time_xml(), lead_xml("MDC_ECG_LEAD_I", "1", '"2.5" unit="furlong"'))),
            "lead I scale unit 'furlong'",
        ),
        (
            doc(sequence_set(time_xml(), lead_xml("MDC_ECG_LEAD_I", "1", '"0" unit="uV"'))),
            "scale 0 uV is not positive",
        ),
        (
            doc(sequence_set(time_xml(), lead_xml("MDC_ECG_LEAD_X", "1"))),
            "none of the 12 standard leads",
        ),
        (
            doc(
                sequence_set(
                    time_xml(), lead_xml("MDC_ECG_LEAD_I", "1"), lead_xml("MDC_ECG_LEAD_I", "2")
                )
            ),
            "lead I appears twice",
        ),
        (
            doc(
                sequence_set(time_xml(), lead_xml("MDC_ECG_LEAD_I", "1"))
                + sequence_set(
                    time_xml(head='<head value="20240101120010"/>'),
                    lead_xml("MDC_ECG_LEAD_II", "1"),
                )
            ),
            "different time bases",
        ),
        (
            doc(root='<effectiveTime><center value="2024-03-15"/></effectiveTime>'),
            "'2024-03-15' is not an HL7 TS",
        ),
        (
            doc(root='<effectiveTime><center value="20241315"/></effectiveTime>'),
            "month must be in 1..12",
        ),
        (
            doc(annotations=annotation("MDC_ECG_TIME_PD_PR", 'value="160" unit="cs"')),
            "annotation MDC_ECG_TIME_PD_PR unit 'cs'",
        ),
        (
            doc(annotations=annotation("MDC_ECG_HEART_RATE", 'value="NaN" unit="bpm"')),
            "'NaN' is not a number",
        ),
    ],
)
def test_refusals(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        parse_aecg(data)


def test_entity_bomb_is_refused_not_expanded() -> None:
    started = time.perf_counter()
    with pytest.raises(DecodeError) as caught:
        parse_aecg(BOMB)
    assert time.perf_counter() - started < 1.0
    assert "aaaa" not in str(caught.value)


# --- round trips -----------------------------------------------------------------------


def synthetic_12_lead(seconds: int = 10, rate: int = 500) -> dict[str, tuple[int, ...]]:
    """Beats every 0.8 s; I and II even so that every derived limb lead is an integer."""

    def beat(k: int, qrs: float, t_wave: float) -> float:
        phase = (k % (rate * 4 // 5)) / (rate * 4 // 5)
        return qrs * math.exp(-(((phase - 0.3) / 0.02) ** 2)) + t_wave * math.exp(
            -(((phase - 0.6) / 0.06) ** 2)
        )

    n = seconds * rate
    lead_i = [2 * round(beat(k, 100, 20) + 5 * math.sin(k / 90)) for k in range(n)]
    lead_ii = [2 * round(beat(k, 150, 35) - 3 * math.sin(k / 70)) for k in range(n)]
    leads = {
        "I": lead_i,
        "II": lead_ii,
        "III": [b - a for a, b in zip(lead_i, lead_ii, strict=True)],
        "aVR": [-(a + b) // 2 for a, b in zip(lead_i, lead_ii, strict=True)],
        "aVL": [a - b // 2 for a, b in zip(lead_i, lead_ii, strict=True)],
        "aVF": [b - a // 2 for a, b in zip(lead_i, lead_ii, strict=True)],
    }
    for v in range(1, 7):
        leads[f"V{v}"] = [round(beat(k, 60 * v - 200, 10 * v)) for k in range(n)]
    return {name: tuple(samples) for name, samples in leads.items()}


TWELVE_LEAD = EcgRecord(
    leads=synthetic_12_lead(),
    rate_hz=Decimal(500),
    uv_per_unit=Decimal("4.88"),
    start_time=dt.datetime(2024, 11, 2, 14, 5, 9, 500000),
    measurements={
        "heart_rate": Decimal(75),
        "rr": Decimal(800),
        "pr": Decimal(156),
        "qrs": Decimal(92),
        "qt": Decimal(384),
        "qtc": Decimal("429.3"),
        "p_axis": Decimal(51),
        "qrs_axis": Decimal(-12),
        "t_axis": Decimal(40),
    },
    statements=(
        Statement("Sinus rhythm", "MDC_ECG_RHY_SINUS_RHY"),
        Statement("** ACUTE MI / STEMI **"),
        Statement("ST elevation <anterior> & lateral", "SCP-160"),
    ),
    offset_uv=Decimal(0),
    patient_id="110101199003071234",
    patient_name="李四",
    device="ECG-1200",
)


def test_twelve_lead_ten_seconds_round_trip() -> None:
    assert {len(s) for s in TWELVE_LEAD.leads.values()} == {5000}
    assert limb_lead_errors(TWELVE_LEAD) == []
    data = encode_aecg(TWELVE_LEAD)
    started = time.perf_counter()
    record = parse_aecg(data)
    elapsed = time.perf_counter() - started
    assert record == TWELVE_LEAD
    assert limb_lead_errors(record) == []
    assert elapsed < 1.0  # 60 000 digits; about 15 ms on a laptop


def test_encoded_document_is_utf8_aecg() -> None:
    data = encode_aecg(TWELVE_LEAD)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    text = data.decode("utf-8")
    for fragment in (
        '<AnnotatedECG xmlns="urn:hl7-org:v3"',
        'xsi:type="GLIST_TS"',
        '<increment value="0.002" unit="s"',
        'xsi:type="SLIST_PQ"',
        '<scale value="4.88" unit="uV"',
        'xsi:type="PQ" value="429.3" unit="ms"',
        'xsi:type="CD" code="MDC_ECG_RHY_SINUS_RHY"',
        'xsi:type="ST">** ACUTE MI / STEMI **<',
        '<code code="MDC_ECG_LEAD_AVR"',
    ):
        assert fragment in text
    assert encode_aecg(TWELVE_LEAD) == data  # a pure function: same record, same bytes


def test_utf16_copy_of_an_encoded_document() -> None:
    text = encode_aecg(TWELVE_LEAD).decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    assert parse_aecg(text.encode("utf-16")) == TWELVE_LEAD


def test_round_trip_without_time_or_patient() -> None:
    record = EcgRecord(leads={"V2": (0, -1)}, rate_hz=Decimal(250), uv_per_unit=Decimal(1))
    assert parse_aecg(encode_aecg(record)) == record


@pytest.mark.parametrize(
    "record",
    [
        EcgRecord(leads={}, rate_hz=Decimal(500), uv_per_unit=Decimal(1)),
        EcgRecord(leads={"V7": (1,)}, rate_hz=Decimal(500), uv_per_unit=Decimal(1)),
        EcgRecord(leads={"I": (1,)}, rate_hz=Decimal(0), uv_per_unit=Decimal(1)),
        EcgRecord(
            leads={"I": (1,)}, rate_hz=Decimal(500), uv_per_unit=Decimal(1), patient_name="a\x00b"
        ),
        EcgRecord(
            leads={"I": (1,)},
            rate_hz=Decimal(500),
            uv_per_unit=Decimal(1),
            measurements={"st": Decimal(1)},
        ),
    ],
)
def test_encoder_refuses_what_aecg_cannot_carry(record: EcgRecord) -> None:
    with pytest.raises(ValueError, match="encode_aecg"):
        encode_aecg(record)


TEXT = (
    st.text(st.characters(categories=["L", "N", "P", "S", "Zs"]), min_size=1, max_size=24)
    .map(str.strip)
    .filter(bool)
)
SCALES = [Decimal(s) for s in ("1", "2.5", "4.88", "5", "0.5", "1.25", "10", "0.01", "3.90625")]
OFFSETS = [Decimal(s) for s in ("0", "-100", "12.5", "1000", "-0.25")]
RATES = [
    Decimal(s) for s in ("100", "128", "250", "300", "360", "500", "1000", "1024", "2000", "250.5")
]


@st.composite
def records(draw: st.DrawFn) -> EcgRecord:
    names = draw(st.sets(st.sampled_from(STANDARD_LEADS), min_size=1))
    samples = st.lists(st.integers(-(2**20), 2**20), min_size=1, max_size=200).map(tuple)
    measurement = st.decimals(-1000, 3000, places=1, allow_nan=False, allow_infinity=False)
    statement = st.builds(
        Statement, TEXT, st.none() | st.sampled_from(["MDC_ECG_RHY_AFIB", "A&B<1>"]) | TEXT
    )
    return EcgRecord(
        leads={name: draw(samples) for name in sorted(names)},
        rate_hz=draw(st.sampled_from(RATES)),
        uv_per_unit=draw(st.sampled_from(SCALES)),
        start_time=draw(st.none() | st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 1, 1))),
        measurements=draw(st.dictionaries(st.sampled_from(list(MEASUREMENTS)), measurement)),
        statements=tuple(draw(st.lists(statement, max_size=4))),
        offset_uv=draw(st.sampled_from(OFFSETS)),
        patient_id=draw(st.none() | TEXT),
        patient_name=draw(st.none() | TEXT),
        device=draw(st.none() | TEXT),
        patient_sex=draw(st.sampled_from([None, "M", "F"])),
    )


@given(records())
def test_random_records_round_trip(record: EcgRecord) -> None:
    assert parse_aecg(encode_aecg(record)) == record


# --- fuzz: whatever the bytes, only DecodeError escapes --------------------------------


def parse_or_refuse(data: bytes) -> None:
    try:
        record = parse_aecg(data)
    except DecodeError:
        return
    assert isinstance(record, EcgRecord)


@given(st.binary(max_size=2000))
def test_arbitrary_bytes(data: bytes) -> None:
    parse_or_refuse(data)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_after_a_valid_prefix(tail: bytes) -> None:
    parse_or_refuse(HAND.encode()[:1500] + tail)


@given(st.data())
def test_mutated_documents(data: st.DataObject) -> None:
    document = bytearray(HAND.encode())
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        position = data.draw(st.integers(0, len(document) - 1), label="position")
        document[position] = data.draw(st.integers(0, 255), label="byte")
    cut = data.draw(st.integers(0, len(document)), label="truncate at")
    parse_or_refuse(
        bytes(document[:cut]) if data.draw(st.booleans(), label="truncate") else bytes(document)
    )


# Changes that stay well-formed XML, so they reach the aECG reader rather than expat.
REPLACEMENTS = [
    ("0.005", "0"),
    ("0.005", "-1e999"),
    ("0.005", "1e-999"),
    ('unit="mV"', 'unit="V"'),
    ("20 25 -6 14 2", "20 25 -6 14 99999999999999999999999999999999999999"),
    ("10 13 -2", "1" * 5000),
    ('value="2" unit="ms"', 'value="1e-999" unit="ms"'),
    ('value="2" unit="ms"', 'value="1e999" unit="s"'),
    ("20240315083012.250+0800", "99999999999999"),
    ("MDC_ECG_LEAD_II", "MDC_ECG_LEAD_I"),
    ("MDC_ECG_LEAD_X", "MDC_ECG_LEAD_V1"),
    ("RHYTHM", "rhythm"),
    ('value="72"', 'value="+.5E-3"'),
    ("TIME_ABSOLUTE", "TIME_RELATIVE"),
    ('<head value="20240315083012"/>', ""),
    ("<scale", "<scales"),
    ("<digits>", '<digits xsi:type="x">'),
    ('xsi:type="CD" code=', 'xsi:type="CD" nocode='),
]


@given(st.sets(st.sampled_from(range(len(REPLACEMENTS))), max_size=5))
def test_well_formed_mutations(chosen: set[int]) -> None:
    document = HAND
    for index in sorted(chosen):
        old, new = REPLACEMENTS[index]
        document = document.replace(old, new)
    parse_or_refuse(document.encode())
