"""The PCD-01 ORU^R01 builder: what goes up must pass hl7apy strict and read back exactly."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import zoneinfo
from decimal import Decimal

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge_agent.model import RecordingContext
from sync.hl7.adt import PrearrivalNotice, adt_a14_rows
from sync.hl7.adt import build_with_hl7apy as adt_with_hl7apy
from sync.hl7.inbound import parse_inbound
from sync.hl7.pcd01 import (
    PCD01_PROFILE,
    DeviceIdentity,
    PatientIdentity,
    StoredObservation,
    build_oru_r01,
    build_with_hl7apy,
    oru_r01_rows,
    write_er7,
)
from sync.hl7.pcd04 import PCD04_PROFILE, AlertEvent, oru_r40_rows

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
T0 = dt.datetime(2026, 11, 22, 10, 0, 0, tzinfo=SHANGHAI)
BP = DeviceIdentity(
    device_id="bp-1",
    driver="ble-bp",
    eui64="00:1C:05:FF:FE:12:34:56",
    spec_refid="MDC_DEV_SPEC_PROFILE_BP",
)
PATIENT = PatientIdentity(
    national_id="11010519491231002X",
    name="欧阳娜娜",
    birth_date=dt.date(1949, 12, 31),
    sex="F",
    patient_class="O",
)


def _derived(agent_id: str, device_id: str) -> str:
    """IEEE 802c AAI local address: HMAC-SHA-256(agent id, device id), first octet xxxx0010."""
    digest = bytearray(hmac.new(agent_id.encode(), device_id.encode(), hashlib.sha256).digest()[:8])
    digest[0] = (digest[0] & 0xF0) | 0x02
    return digest.hex().upper()


DERIVED_BP = _derived("amb-017", "bp-1")


def obs(
    metric: str = "MDC_PRESS_BLD_NONINV_SYS",
    value: Decimal | None = Decimal("120"),
    unit: str = "MDC_DIM_MMHG",
    at: dt.datetime = T0,
    flags: tuple[str, ...] = (),
) -> StoredObservation:
    return StoredObservation(metric=metric, value=value, unit=unit, observed_at=at, flags=flags)


def build(
    observations: list[StoredObservation] | None = None,
    *,
    device: DeviceIdentity = BP,
    patient: PatientIdentity | None = PATIENT,
    agent_id: str = "amb-017",
    control_id: str = "c0ffee-0001",
) -> str:
    return build_oru_r01(
        control_id=control_id,
        agent_id=agent_id,
        sent_at=T0 + dt.timedelta(seconds=5),
        device=device,
        patient=patient,
        observations=observations if observations is not None else [obs()],
    )


def segments(message: str, name: str) -> list[list[str]]:
    """Fields of each segment called `name`, indexed like HL7 (MSH-n is [n])."""
    out = []
    for segment in message.split("\r"):
        fields = segment.split("|")
        if fields[0] == name:
            out.append(["MSH", "|", *fields[1:]] if name == "MSH" else fields)
    return out


def strict(message: str) -> None:
    parse_message(message, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True).validate()


def test_message_validates_strictly_and_uses_cr_separators() -> None:
    message = build([obs(), obs("MDC_TEMP_BODY", Decimal("36.6"), "MDC_DIM_DEGC")])
    strict(message)
    assert "\n" not in message
    assert [s[:3] for s in message.split("\r")] == ["MSH", "PID", "PV1", "OBR", "OBX", "OBX", "OBX"]


def test_msh_header() -> None:
    (msh,) = segments(build(), "MSH")
    assert msh[2] == "^~\\&"
    assert msh[3] == "EDGE_AGENT"
    assert msh[4] == "amb-017"  # MSH-4 sending facility: the agent
    assert msh[5] == "COUNTY_PLATFORM"
    assert msh[7] == "20261122100005+0800"
    assert msh[9] == "ORU^R01^ORU_R01"
    assert msh[10] == "c0ffee-0001"  # the dedup key (docs/contracts.md)
    assert msh[11] == "P"
    assert msh[12] == "2.6"
    assert (msh[15], msh[16]) == ("AL", "NE")
    assert msh[18] == "UNICODE UTF-8"  # HL7 table 0211: names and texts are Chinese
    assert msh[21] == PCD01_PROFILE


def test_patient_segments() -> None:
    message = build()
    (pid,) = segments(message, "PID")
    assert pid[3] == "11010519491231002X^^^CHN^NNCHN"  # HL7 table 0203 NNxxx
    assert pid[5] == "欧阳娜娜"
    assert pid[7] == "19491231"
    assert pid[8] == "F"
    (pv1,) = segments(message, "PV1")
    assert pv1[2] == "O"


def test_unknown_patient_leaves_out_the_patient_group() -> None:
    message = build(patient=None)
    strict(message)
    assert segments(message, "PID") == []
    assert segments(message, "PV1") == []
    assert parse_inbound(message).patient_national_id is None


def test_obr_and_mds_row() -> None:
    later = obs(at=T0 + dt.timedelta(minutes=1))
    message = build([later, obs(at=T0)])
    (obr,) = segments(message, "OBR")
    assert obr[3] == "c0ffee-0001"
    assert obr[4] == "528391^MDC_DEV_SPEC_PROFILE_BP^MDC"
    assert obr[7] == "20261122100000+0800"  # the earliest observation
    mds = segments(message, "OBX")[0]
    assert mds[1] == "1"
    assert mds[2] == ""
    assert mds[3] == "528391^MDC_DEV_SPEC_PROFILE_BP^MDC"
    assert mds[4] == "1"
    assert mds[11] == "X"


def test_metric_rows() -> None:
    message = build([obs(), obs("MDC_PULS_RATE_NON_INV", Decimal("72"), "MDC_DIM_BEAT_PER_MIN")])
    rows = segments(message, "OBX")[1:]
    assert [r[1] for r in rows] == ["2", "3"]
    # MDS 1, VMD 3 (non-invasive BP), channel 1: systolic first, the cuff's pulse rate 8th
    assert [r[4] for r in rows] == ["1.3.1.1", "1.3.1.8"]
    sys_row = rows[0]
    assert sys_row[2] == "NM"
    assert sys_row[3] == "150021^MDC_PRESS_BLD_NONINV_SYS^MDC"
    assert sys_row[5] == "120"
    assert sys_row[6] == "266016^MDC_DIM_MMHG^MDC"
    assert sys_row[11] == "F"
    assert sys_row[14] == "20261122100000+0800"
    assert sys_row[18] == "001C05FFFE123456^^001C05FFFE123456^EUI-64"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("18.9"), "18.9"),  # never 18.899999 (model.py: Decimal from wire to OBX-5)
        (Decimal("-0.5"), "-0.5"),
        (Decimal("120"), "120"),
        (Decimal("18.90"), "18.90"),  # trailing zero is the device's precision: kept
        (Decimal("1E+2"), "100"),  # NM has no exponent (HL7 v2.6 Ch. 2A.47)
        (Decimal("0.000001"), "0.000001"),  # str() would give 0.000001, but 1E-7 would not
        (Decimal("1E-7"), "0.0000001"),
    ],
)
def test_value_is_exact_decimal_text(value: Decimal, text: str) -> None:
    message = build([obs(value=value)])
    strict(message)
    assert segments(message, "OBX")[1][5] == text
    assert parse_inbound(message).observations[0].value == text


def test_missing_value_is_status_x_with_flags() -> None:
    message = build([obs("MDC_PULS_OXIM_SAT_O2", None, "MDC_DIM_PERCENT", flags=("NRes",))])
    strict(message)
    row = segments(message, "OBX")[1]
    assert row[5] == ""
    assert row[8] == "NRes"
    assert row[11] == "X"
    (read,) = parse_inbound(message).observations
    assert (read.value, read.status, read.flags) == (None, "X", ("NRes",))


def test_non_finite_decimal_is_reported_as_cannot_be_obtained() -> None:
    message = build([obs(value=Decimal("NaN"))])
    row = segments(message, "OBX")[1]
    assert (row[5], row[8], row[11]) == ("", "NaN", "X")


def test_flags_with_delimiters_are_escaped() -> None:
    message = build([obs(flags=("a|b", "c~d"))])
    strict(message)
    assert segments(message, "OBX")[1][8] == "a\\F\\b~c\\R\\d"
    assert parse_inbound(message).observations[0].flags == ("a|b", "c~d")


def test_observation_time_keeps_offset_and_fraction() -> None:
    at = dt.datetime(2026, 11, 22, 10, 0, 1, 250_000, tzinfo=SHANGHAI)
    message = build([obs(at=at)])
    assert segments(message, "OBX")[1][14] == "20261122100001.25+0800"
    assert parse_inbound(message).observations[0].observed_at == at


@pytest.mark.parametrize(
    ("eui64", "obx18"),
    [
        ("001c05fffe123456", "001C05FFFE123456^^001C05FFFE123456^EUI-64"),
        ("00-1C-05-FF-FE-12-34-56", "001C05FFFE123456^^001C05FFFE123456^EUI-64"),
        # none, or not one: the locally administered EUI-64 derived for amb-017's bp-1
        (None, f"{DERIVED_BP}^^{DERIVED_BP}^EUI-64"),
        ("not-an-eui", f"{DERIVED_BP}^^{DERIVED_BP}^EUI-64"),
    ],
)
def test_equipment_identifier(eui64: str | None, obx18: str) -> None:
    device = DeviceIdentity(
        device_id="bp-1", driver="ble-bp", eui64=eui64, spec_refid="MDC_DEV_SPEC_PROFILE_BP"
    )
    message = build(device=device)
    strict(message)
    assert all(row[18] == obx18 for row in segments(message, "OBX"))


def test_long_agent_id_is_recoverable() -> None:
    agent = "county-12-township-07-village-clinic-003"  # > 20: too long for HD.1 (IS)
    message = build(
        agent_id=agent, device=DeviceIdentity("dev|1", "x", None, "MDC_DEV_SPEC_PROFILE_BP")
    )
    strict(message)
    assert segments(message, "MSH")[0][4] == f"^{agent}^L"
    inbound = parse_inbound(message)
    assert inbound.agent_id == agent
    assert inbound.observations[0].device_id == _derived(agent, "dev|1")


def test_names_and_ids_with_delimiters_round_trip() -> None:
    patient = PatientIdentity("11010519491231002X", "O'Neil|Mary^Ann\\", None, None, "E")
    message = build(patient=patient, control_id="id&with~odd|chars")
    strict(message)
    inbound = parse_inbound(message)
    assert inbound.patient_name == "O'Neil|Mary^Ann\\"
    assert inbound.control_id == "id&with~odd|chars"
    assert inbound.patient_class == "E"


def test_empty_name_still_gives_a_valid_pid() -> None:
    message = build(patient=PatientIdentity("11010519491231002X", " ", None, "X", "Z"))
    strict(message)
    (pid,) = segments(message, "PID")
    assert pid[5] == "^^^^^^U"  # XPN.7 name type U (table 0200)
    assert pid[8] == "U"  # outside table 0001
    assert segments(message, "PV1")[0][2] == "U"  # outside table 0004


@pytest.mark.parametrize(
    "bad",
    [
        obs(metric="MDC_NO_SUCH_METRIC"),
        obs(unit="MDC_DIM_NO_SUCH_UNIT"),
    ],
)
def test_unknown_code_is_a_key_error(bad: StoredObservation) -> None:
    with pytest.raises(KeyError, match="MDC_"):
        build([obs(), bad])


def test_unknown_device_specialisation_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="MDC_DEV_SPEC_PROFILE_NOPE"):
        build(device=DeviceIdentity("d", "x", None, "MDC_DEV_SPEC_PROFILE_NOPE"))


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        build([obs(at=dt.datetime(2026, 11, 22, 10, 0))])


def test_no_observations_is_refused() -> None:
    with pytest.raises(ValueError, match="no observations"):
        build([])


def test_outbox_builder_imports_this_api() -> None:
    # sync/outbox_messages.py calls build_oru_r01 with these names: keep them importable.
    # (It imports the name without exporting it, so the check reads the module's namespace.)
    import sync.outbox_messages as outbox

    assert vars(outbox)["build_oru_r01"] is build_oru_r01


def test_long_flags_are_cut_to_what_is_allows() -> None:
    long_flag = "msmt-state-al-inhibited"  # 23 characters; IS allows 20
    message = build([obs(flags=(long_flag, "|" * 30))])
    strict(message)
    flags = parse_inbound(message).observations[0].flags
    assert flags == (long_flag[:20], "|" * 6)  # \F\ is 3 characters: 6 fit in 20


# --- the fast ER7 writer is held to hl7apy ---------------------------------------------------

_METRICS = [
    ("MDC_PRESS_BLD_NONINV_SYS", "MDC_DIM_MMHG"),
    ("MDC_PULS_OXIM_SAT_O2", "MDC_DIM_PERCENT"),
    ("MDC_TEMP_BODY", "MDC_DIM_DEGC"),
    ("MDC_CONC_GLU_CAPILLARY_PLASMA", "MDC_DIM_MILLI_MOLE_PER_L"),
    ("MDC_MASS_BODY_ACTUAL", "MDC_DIM_KILO_G"),
]
_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))
    | st.sampled_from("|^~&\\"),
    max_size=12,
)
_observation = st.builds(
    lambda mu, value, flags, minutes, sub_id, status: StoredObservation(
        mu[0],
        value,
        mu[1],
        T0 + dt.timedelta(minutes=minutes, microseconds=1000 * minutes),
        flags,
        sub_id,
        status,
    ),
    st.sampled_from(_METRICS),
    st.one_of(
        st.none(),
        st.decimals(min_value=-1000, max_value=100000, places=2, allow_nan=False),
        st.sampled_from([Decimal("NaN"), Decimal("Infinity")]),
    ),
    st.lists(_TEXT, max_size=3).map(tuple),
    st.integers(0, 600),
    # OBX-4 as a monitor sent it (kept when it is a tree position), or ours
    st.sampled_from([None, None, "1.1.1.1", "1.2.1.150456", "2.3", "x|y", "1." * 20]),
    # OBX-11 as a monitor sent it (table 0085), or ours
    st.sampled_from([None, "F", "R", "C", "X", "Z", "RR"]),
)
_patient = st.one_of(
    st.none(),
    st.builds(
        PatientIdentity,
        national_id=st.sampled_from(["11010519491231002X", "440524188001010014", "x|y"]),
        name=_TEXT,
        birth_date=st.one_of(st.none(), st.dates(dt.date(1900, 1, 1), dt.date(2026, 1, 1))),
        sex=st.sampled_from([None, "F", "M", "Q"]),
        patient_class=st.sampled_from(["O", "E", "I", "zz"]),
    ),
)


# A 12-lead cart's context (issue 11): model text with delimiters and Chinese, the sexes
# of table 0001 and one outside it (left out), ages in each unit.
_context = st.one_of(
    st.none(),
    st.builds(
        RecordingContext,
        device_model=st.one_of(st.none(), _TEXT, st.just("PageWriter TC " + "x" * 80)),
        patient_sex=st.sampled_from([None, "M", "F", "O", "Q"]),
        patient_age=st.one_of(st.none(), st.integers(0, 54900)),
        patient_age_unit=st.sampled_from([None, "MDC_DIM_YR", "MDC_DIM_DAY", "MDC_DIM_HR"]),
    ),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(_observation, min_size=1, max_size=6),
    _patient,
    st.sampled_from(["amb-017", "clinic.town-3", "a" * 64]),
    st.sampled_from([None, "00:1C:05:FF:FE:12:34:56", "not-an-eui"]),
    _context,
)
def test_er7_writer_is_byte_identical_to_hl7apy_strict(
    observations: list[StoredObservation],
    patient: PatientIdentity | None,
    agent_id: str,
    eui64: str | None,
    context: RecordingContext | None,
) -> None:
    device = DeviceIdentity("dev-1", "ble-bp", eui64, "MDC_DEV_SPEC_PROFILE_BP")
    rows = oru_r01_rows(
        control_id="01M8-TEST",
        agent_id=agent_id,
        sent_at=T0,
        device=device,
        patient=patient,
        observations=observations,
        context=context,
    )
    text = write_er7(rows)
    assert text == build_with_hl7apy(rows, control_id="01M8-TEST")
    strict(text)


def test_verify_mode_checks_at_run_time() -> None:
    assert build([obs()]) == build_oru_r01(
        control_id="c0ffee-0001",
        agent_id="amb-017",
        sent_at=T0 + dt.timedelta(seconds=5),
        device=BP,
        patient=PATIENT,
        observations=[obs()],
        verify=True,
    )


_ALERT = st.builds(
    lambda phase, code, text, en, priority, physiological, patient, metric, eui: AlertEvent(
        control_id="01M8-R40",
        agent_id="amb-017",
        sent_at=T0,
        at=T0 - dt.timedelta(seconds=30),
        phase=phase,
        code=code,
        text=text,
        text_en=en,
        priority=priority,
        physiological=physiological,
        device=DeviceIdentity("mp50-1", "intellivue", eui, "MDC_DEV_SPEC_PROFILE_HYDRA"),
        patient=patient,
        metric=metric[0] if metric else None,
        value=metric[1] if metric else None,
        unit=metric[2] if metric else None,
    ),
    st.sampled_from(["start", "end"]),
    st.sampled_from(["NEWS2_HIGH", "INTELLIVUE_PATIENT_4BB8_301A", "a|b^c"]),
    _TEXT,
    st.one_of(st.none(), _TEXT),
    st.sampled_from(["high", "medium", "low", "info", "odd"]),
    st.booleans(),
    _patient,
    st.one_of(
        st.none(),
        st.tuples(
            st.just("MDC_PULS_OXIM_SAT_O2"),
            st.decimals(min_value=0, max_value=100, places=1),
            st.just("MDC_DIM_PERCENT"),
        ),
    ),
    st.sampled_from([None, "00A037009B000001", "bad"]),
)


@settings(max_examples=40, deadline=None)
@given(_ALERT)
def test_oru_r40_writer_is_byte_identical_to_hl7apy_strict(event: AlertEvent) -> None:
    """ORU^R40 uses the ORU_R01 structure (PCD TF-2 §3.4): the same hl7apy check."""
    rows = oru_r40_rows(event)
    text = write_er7(rows)
    assert text == build_with_hl7apy(rows, control_id=event.control_id)
    strict(text)
    msh = segments(text, "MSH")[0]
    assert (msh[18], msh[21]) == ("UNICODE UTF-8", PCD04_PROFILE)


@settings(max_examples=40, deadline=None)
@given(
    st.one_of(st.none(), st.sampled_from(["11010519491231002X", "x|y^z"])),
    st.one_of(st.none(), _TEXT),
    st.one_of(st.none(), _TEXT),
    _TEXT,
    st.one_of(st.none(), st.integers(0, 600)),
)
# A complaint of a no-break space only (found by hypothesis): hl7apy trims the field,
# so the writer's one_line must treat any Unicode white space as a blank.
@example(None, None, None, "\xa0", None)
@example(None, "张\u3000三 ", "急诊\xa0", " 胸痛\u3000", None)
def test_adt_a14_writer_is_byte_identical_to_hl7apy_strict(
    national_id: str | None,
    name: str | None,
    destination: str | None,
    complaint: str,
    eta_minutes: int | None,
) -> None:
    notice = PrearrivalNotice(
        control_id="01M8-A14",
        agent_id="amb-017",
        sent_at=T0,
        recorded_at=T0,
        patient_national_id=national_id,
        patient_name=name,
        local_patient_id="amb-017-7",
        destination=destination,
        complaint=complaint,
        eta=None if eta_minutes is None else T0 + dt.timedelta(minutes=eta_minutes),
    )
    rows = adt_a14_rows(notice)
    text = write_er7(rows)
    assert text == adt_with_hl7apy(rows, control_id=notice.control_id)
    assert segments(text, "MSH")[0][18] == "UNICODE UTF-8"


def test_every_metric_of_the_containment_tree_is_an_mdc_term() -> None:
    from edge_agent.mdc import BY_REFID
    from sync.hl7 import containment

    assert set(containment._PLACE) <= set(BY_REFID)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([m for m, _ in _METRICS] + ["MDC_ECG_HEART_RATE", "MDC_UNKNOWN"]),
            st.sampled_from([None, None, "1.1.1.1", "1.2.1.1", "1.3.1.1", "7.7", "x"]),
        ),
        max_size=12,
        unique_by=lambda pair: pair[1] or object(),
    )
)
def test_obx4_keeps_the_sources_positions_and_never_repeats_one(
    rows: list[tuple[str, str | None]],
) -> None:
    """Property (PCD TF-2 Appendix B.8.4): a source's tree position goes up unchanged;
    ours are MDS.VMD.channel.metric; no two rows of one message share a position."""
    from sync.hl7 import containment

    given_ = [containment.usable_sub_id(g) for _, g in rows]
    got = containment.sub_ids([m for m, _ in rows], given_)
    assert len(set(got)) == len(got)
    for position, source in zip(got, given_, strict=True):
        if source is not None:
            assert position == source
        else:
            assert re.fullmatch(r"1\.[1-9]\.[1-9]\.[1-9][0-9]*", position)
