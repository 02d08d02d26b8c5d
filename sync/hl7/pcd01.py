"""IHE PCD-01 "Communicate PCD Data": the ORU^R01 (HL7 v2.6) a box sends upstream.

Shape (IHE PCD TF-2 §3.1 and Appendix B; HL7 v2.6 Ch. 7.3.1 ORU_R01); docs/hl7.md says
where every field comes from:

    MSH  EDGE_AGENT | <agent> | COUNTY_PLATFORM | ... | ORU^R01^ORU_R01 | <MSH-10> | P | 2.6
         | AL | NE | UNICODE UTF-8 (MSH-18) | IHE PCD-01 profile (MSH-21)
    PID  <national id>^^^CHN^NNCHN | <name> | <birth date> | <sex>      (only when known)
    PV1  <patient class>                                                 (with PID)
    OBR  <MSH-10> in OBR-3 | <device specialisation> in OBR-4 | earliest time in OBR-7
    OBX  1 | | <device specialisation> | 1 | ... | X | ... | <EUI-64>             (MDS)
    OBX  n | NM | <metric> | 1.v.c.m | <value> | <unit> | <flags> | F, R or X | <time> | <EUI-64>
    OBX  n | ST | MDC_ATTR_ID_MODEL | 1.0.0.k | <model> ...       (a 12-lead cart's, when known)
    OBX  n | CWE | MDC_ATTR_PT_SEX | 1.0.0.k | M^Male^HL70001 ...  (as the cart was told)
    OBX  n | NM | MDC_ATTR_PT_AGE | 1.0.0.k | 50 | MDC_DIM_YR ...   (as the cart was told)

Values go into OBX-5 as the decimal text the device gave (`Decimal`, never a float), so
18.9 arrives as "18.9" and 120 as "120". OBX-4 and OBX-11 are what the source said when
it said it (an HL7 monitor's `1.2.1.1` and `R`), else our containment tree
(sync.hl7.containment) and F; OBX-18 is always an EUI-64 (sync.hl7.eui64).

Every message is built as an hl7apy `Message` at strict validation and validated before it
is written out: a message the county platform would refuse is a bug found here, on the
box, not a rejected row found a day later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Group, Message

from edge_agent.mdc import term
from edge_agent.model import RecordingContext
from sync.hl7 import containment, er7, strict
from sync.hl7.eui64 import derived_eui64, normalise_eui64
from sync.hl7.timestamps import format_date, format_dtm

VERSION = "2.6"
SENDING_APPLICATION = "EDGE_AGENT"
RECEIVING_APPLICATION = "COUNTY_PLATFORM"
# MSH-21: the IHE PCD-01 message profile (PCD TF-2 §3.1.4.1, "IHE PCD ORU-R01 2006").
PCD01_PROFILE = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
# MSH-18 (HL7 v2.6 Ch. 2.14.9.18, table 0211): the character set of the whole message.
# Names (PID-5), a cart's statements (NTE) and alert texts are Chinese, and every
# message we build is UTF-8 on the wire; without MSH-18 a receiver may assume ASCII.
CHARSET = "UNICODE UTF-8"
# OBX-11 values (HL7 table 0085) a source's status may keep; D and W rows are never
# stored (device_drivers.network.mllp) and X is written for a row without a value.
_FORWARDED_STATUSES = frozenset("CFIOPRSU")

# PID-3 for the resident identity number (GB 11643). CX.5 identifier type code from HL7
# table 0203, "NNxxx: National Person Identifier where xxx is the ISO 3166 alpha-3 country
# code"; CX.4 assigning authority names the issuing country, as the number is unique
# nationwide and has no regional namespace.
NATIONAL_ID_AUTHORITY = "CHN"
NATIONAL_ID_TYPE = "NNCHN"

# HL7 v2.6 table 0001 (administrative sex) and 0004 (patient class). A value outside the
# table becomes U (unknown) rather than a message the platform refuses.
_SEXES = frozenset({"F", "M", "O", "U", "A", "N"})
_PATIENT_CLASSES = frozenset({"E", "I", "O", "P", "R", "B", "C", "N", "U"})

# hl7apy applies HL7 v2.6's 20-character limit to IS values (HD.1, EI.2 namespace ids,
# OBX-8 flags). Agent ids may be up to 64 characters (edge_agent.config): those go into
# the universal-id component instead, with type L (local, HL7 table 0301).
IS_MAX = 20

SEGMENT_END = er7.SEGMENT_SEPARATOR


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """The device the observations came from (OBR-4, the MDS OBX, every OBX-18).

    `eui64`: its EUI-64 (sync.hl7.eui64: its own, else the one derived for it and kept
    in the store); a missing or malformed one is replaced by the derived one, so OBX-18
    always names an EUI-64.
    """

    device_id: str
    driver: str
    eui64: str | None
    spec_refid: str  # MDC_DEV_SPEC_PROFILE_* (edge_agent.mdc)


@dataclass(frozen=True, slots=True)
class PatientIdentity:
    """PID/PV1: a registered resident (national id, CHN, NNCHN), or the patient an HL7
    monitor named when no visit is open, forwarded with its own assigning authority and
    identifier type (`id_authority`, `id_type`: PID-3 CX.4 and CX.5 as it sent them)."""

    national_id: str  # PID-3 CX.1: the resident identity number, or the monitor's id
    name: str
    birth_date: dt.date | None
    sex: str | None  # HL7 table 0001: M, F, ...
    patient_class: str  # HL7 table 0004, PV1-2: O outpatient, E emergency, ...
    id_authority: str = NATIONAL_ID_AUTHORITY
    id_type: str = NATIONAL_ID_TYPE


@dataclass(frozen=True, slots=True)
class StoredObservation:
    """One stored reading, as the message reports it.

    `value` None is a special value (NaN, NRes, a dashed field): OBX-11 says X
    ("results cannot be obtained for this observation") and `flags` name why.
    """

    metric: str  # MDC reference id
    value: Decimal | None
    unit: str  # MDC reference id
    observed_at: dt.datetime  # aware
    flags: tuple[str, ...] = ()
    sub_id: str | None = None  # OBX-4 as the source said it (None: our containment tree)
    status: str | None = None  # OBX-11 as the source said it (None: F)


@dataclass(frozen=True, slots=True)
class StoredWaveform:
    """One signal of the message (a 12-lead's lead): the stored integers, their rate and
    resolution. OBX-5 carries the integers (NA); the physical value of a sample is
    sample × resolution in `unit` (PCD waveform content as monitors that export HL7
    write it: an NA row, then MDC_ATTR_SAMP_RATE and MDC_ATTR_NU_MSMT_RES beside it)."""

    metric: str  # MDC reference id (MDC_ECG_ELEC_POTL_II ...)
    rate_hz: Decimal
    resolution: Decimal  # `unit` per sample step
    unit: str  # MDC reference id (MDC_DIM_MICRO_VOLT)
    samples: tuple[int, ...]
    start: dt.datetime  # aware: the time of the first sample


def local_id(agent_id: str) -> tuple[str, str, str]:
    """An id as (namespace, universal id, universal id type) for HD/EI fields."""
    if len(agent_id) <= IS_MAX:
        return (agent_id, "", "")
    return ("", agent_id, "L")


def device_eui64(device: DeviceIdentity, agent_id: str) -> str:
    """The device's EUI-64, or the one derived for it (a stored value that is not a
    valid EUI-64 is never sent as one)."""
    return normalise_eui64(device.eui64) or derived_eui64(agent_id, device.device_id)


def equipment_id(device: DeviceIdentity, agent_id: str) -> str:
    """OBX-18 (EI) as PCD TF-2 Appendix B.8.18 writes it: `<EUI-64>^^<EUI-64>^EUI-64`
    (EI.1 entity id, EI.3 universal id, EI.4 its type), for every device."""
    eui = device_eui64(device, agent_id)
    return er7.join([eui, "", eui, "EUI-64"], er7.DEFAULT.component)


def decimal_text(value: Decimal) -> str:
    """HL7 NM text (Ch. 2A.47: optional sign, digits, optional point; no exponent)."""
    return format(value, "f")


# One segment as its fields: field number -> ER7 text (already escaped); a list is a
# repeating field. The same rows are written by the fast ER7 writer (what the box sends)
# and by hl7apy (what the tests and `verify=True` hold it to): the logic of what goes
# where lives once, here.
Fields = dict[int, str | list[str]]
Row = tuple[str, Fields]


def build_oru_r01(
    *,
    control_id: str,
    agent_id: str,
    sent_at: dt.datetime,
    device: DeviceIdentity,
    patient: PatientIdentity | None,
    observations: Sequence[StoredObservation],
    waveforms: Sequence[StoredWaveform] = (),
    statements: Sequence[str] = (),
    context: RecordingContext | None = None,
    verify: bool = False,
) -> str:
    """The PCD-01 message in ER7, segments separated by CR.

    Written directly as text (~0.2 ms), because hl7apy takes 5-7 ms per segment to build
    (docs/benchmarks.md): a monitor's numerics every second would cost a Pi a third of a
    core. The tests hold the text to hl7apy: for generated inputs it is byte-identical
    to the message hl7apy builds from the same rows at strict validation, and that
    message validates. `verify=True` does the same check at run time (Hl7Error if not).

    An unknown metric, unit or device specialisation is a KeyError naming it (the MDC
    table is the one place codes live). Input the message cannot carry (a naive time,
    no observations) is a ValueError.
    """
    rows = oru_r01_rows(
        control_id=control_id,
        agent_id=agent_id,
        sent_at=sent_at,
        device=device,
        patient=patient,
        observations=observations,
        waveforms=waveforms,
        statements=statements,
        context=context,
    )
    text = write_er7(rows)
    if not verify:
        return text
    oracle = partial(build_with_hl7apy, rows, control_id=control_id)
    return strict.agreed(text, oracle, what="ORU^R01", control_id=control_id)


def oru_r01_rows(
    *,
    control_id: str,
    agent_id: str,
    sent_at: dt.datetime,
    device: DeviceIdentity,
    patient: PatientIdentity | None,
    observations: Sequence[StoredObservation],
    waveforms: Sequence[StoredWaveform] = (),
    statements: Sequence[str] = (),
    context: RecordingContext | None = None,
) -> list[Row]:
    """What each segment of the message holds, in message order.

    A 12-lead adds its interpretation statements as NTE rows after the OBR (word for
    word); after the numeric OBX rows the cart's context (its model, the patient's sex
    and age as the cart was told them: `_context_rows`); then per lead an NA row with
    its samples and two NM rows beside it: the sample rate and the resolution (PCD
    waveform content).
    """
    if not observations and not waveforms:
        raise ValueError(f"message {control_id}: no observations to report")
    comp = er7.DEFAULT.component
    spec = term(device.spec_refid)
    metrics = [(obs, term(obs.metric), term(obs.unit)) for obs in observations]
    obx18 = equipment_id(device, agent_id)
    earliest = min([obs.observed_at for obs in observations] + [w.start for w in waveforms])

    rows: list[Row] = [
        (
            "MSH",
            {
                3: SENDING_APPLICATION,
                4: er7.join([er7.escape(part) for part in local_id(agent_id)], comp),
                5: RECEIVING_APPLICATION,
                7: format_dtm(sent_at),
                9: "ORU^R01^ORU_R01",
                10: er7.escape(control_id),
                11: "P",
                12: VERSION,
                # Accept acknowledgement always (the gateway ACKs on the ack topic,
                # docs/contracts.md); no application-level acknowledgement (PCD TF-2
                # §3.1.4.1: AL / NE).
                15: "AL",
                16: "NE",
                18: CHARSET,
                21: PCD01_PROFILE,
            },
        )
    ]
    if patient is not None:
        rows.extend(_patient_rows(patient))
    # A box measures before anyone is registered (a kiosk walk-up, an ambulance's unknown
    # patient). HL7 v2.6 ORU_R01 makes the PATIENT group optional (Ch. 7.3.1), so such
    # a message has no PID rather than an invented identifier; the gateway files it as
    # "not associated with a patient".

    # OBR-3 filler order number: the message's own id, unique county-wide (MSH-10).
    rows.append(("OBR", {3: er7.escape(control_id), 4: spec.coded, 7: format_dtm(earliest)}))
    for number, text in enumerate(statements, start=1):
        # NTE-3 (FT): the cart's statement as it wrote it (on one line); NTE-1 numbers them.
        rows.append(("NTE", {1: str(number), 3: er7.escape(er7.one_line(text))}))
    # The MDS row (PCD TF-2 Appendix B.8.4: OBX-4 "1" is the device itself), with no
    # value of its own: result status X.
    rows.append(("OBX", {1: "1", 3: spec.coded, 4: "1", 11: "X", 18: obx18}))
    # MDS.VMD.channel.metric (PCD TF-2 Appendix B.8.4): where the source put the row when
    # it said so, else our tree (sync.hl7.containment).
    positions = containment.sub_ids(
        [obs.metric for obs in observations],
        [containment.usable_sub_id(obs.sub_id) for obs in observations],
    )
    for index, (obs, metric, unit) in enumerate(metrics, start=1):
        flags = list(obs.flags)
        value = obs.value
        if value is not None and not value.is_finite():
            flags.append(str(value))
            value = None
        fields: Fields = {
            1: str(index + 1),
            2: "NM",
            3: metric.coded,
            4: positions[index - 1],
            6: unit.coded,
            # OBX-11 (HL7 table 0085): as the source said (R stays R), F for our own
            # drivers; X when the device gave no value.
            11: _result_status(obs.status) if value is not None else "X",
            14: format_dtm(obs.observed_at),
            18: obx18,
        }
        if value is not None:
            fields[5] = decimal_text(value)
        # OBX-8 abnormal flags, which PCD TF-2 Appendix B.8.8 also uses for the 11073
        # measurement status; one repetition per flag.
        kept = [er7.escape_fit(flag, IS_MAX) for flag in flags if flag]
        if kept:
            fields[8] = kept
        rows.append(("OBX", fields))
    context_rows = _context_rows(context, first_index=len(metrics) + 1, obx18=obx18)
    rows.extend(context_rows)
    rows.extend(
        _waveform_rows(waveforms, first_set_id=len(metrics) + len(context_rows) + 2, obx18=obx18)
    )
    return rows


# HL7 v2.6 table 0001 names, for CWE.2 of the sex row.
_SEX_NAMES = {"M": "Male", "F": "Female", "O": "Other"}
# An ST value is one line and short in practice; a file's model text is cut here.
MODEL_MAX = 64


def _context_rows(context: RecordingContext | None, *, first_index: int, obx18: str) -> list[Row]:
    """A cart's model and the patient's sex and age as the cart was told them.

    Where: observation rows of the device's MDS, numbered on after its metrics (OBX-4
    1.0.0.k, PCD TF-2 Appendix B.8.4). The model is the MDS's System-Model attribute
    (IEEE 11073-10201, MDC_ATTR_ID_MODEL) as ST. Sex and age are the 11073-10201 Patient
    Demographics attributes MDC_ATTR_PT_SEX (CWE, HL7 table 0001) and MDC_ATTR_PT_AGE
    (NM with its MDC unit): OBX rows, not a PID, because the cart knows them without a
    registered resident, and a PID needs an identifier (PID-3 is required in v2.6) that
    we would have to invent; the cart's interpretation was made with these values, so
    they travel with its statements even when a PID is there too.
    """
    if not context:
        return []
    cells: list[tuple[str, str, str, str | None]] = []  # type, code, value, unit
    model = er7.one_line(context.device_model or "").strip()[:MODEL_MAX].strip()
    if model:
        cells.append(("ST", "MDC_ATTR_ID_MODEL", er7.escape(model), None))
    sex = context.patient_sex
    if sex is not None and sex in _SEX_NAMES:
        cells.append(("CWE", "MDC_ATTR_PT_SEX", f"{sex}^{_SEX_NAMES[sex]}^HL70001", None))
    if context.patient_age is not None and context.patient_age_unit:
        age_unit = term(context.patient_age_unit).coded
        cells.append(("NM", "MDC_ATTR_PT_AGE", str(context.patient_age), age_unit))
    rows: list[Row] = []
    for offset, (kind, refid, value, unit) in enumerate(cells):
        index = first_index + offset
        fields: Fields = {
            1: str(index + 1),
            2: kind,
            3: term(refid).coded,
            4: f"1.0.0.{index}",
            5: value,
            11: "F",
            18: obx18,
        }
        if unit is not None:
            fields[6] = unit
        rows.append(("OBX", fields))
    return rows


def _result_status(status: str | None) -> str:
    status = (status or "").strip().upper()
    return status if status in _FORWARDED_STATUSES and len(status) == 1 else "F"


def _waveform_rows(
    waveforms: Sequence[StoredWaveform], *, first_set_id: int, obx18: str
) -> list[Row]:
    """Per signal: NA samples (OBX-4 1.0.1.<n>), then its rate (.1) and resolution (.2)."""
    rate_term, res_term = term("MDC_ATTR_SAMP_RATE"), term("MDC_ATTR_NU_MSMT_RES")
    hz, dimless = term("MDC_DIM_HZ"), term("MDC_DIM_DIMLESS")
    rows: list[Row] = []
    set_id = first_set_id
    for channel, wave in enumerate(waveforms, start=1):
        if not wave.samples:
            continue
        sub_id = f"1.0.1.{channel}"
        rows.append(
            (
                "OBX",
                {
                    1: str(set_id),
                    2: "NA",
                    3: term(wave.metric).coded,
                    4: sub_id,
                    5: er7.DEFAULT.component.join(map(str, wave.samples)),
                    6: dimless.coded,
                    11: "F",
                    14: format_dtm(wave.start),
                    18: obx18,
                },
            )
        )
        rows.append(
            (
                "OBX",
                {
                    1: str(set_id + 1),
                    2: "NM",
                    3: rate_term.coded,
                    4: f"{sub_id}.1",
                    5: decimal_text(wave.rate_hz),
                    6: hz.coded,
                    11: "F",
                },
            )
        )
        rows.append(
            (
                "OBX",
                {
                    1: str(set_id + 2),
                    2: "NM",
                    3: res_term.coded,
                    4: f"{sub_id}.2",
                    5: decimal_text(wave.resolution),
                    6: term(wave.unit).coded,
                    11: "F",
                },
            )
        )
        set_id += 3
    return rows


def write_er7(rows: Sequence[Row]) -> str:
    """The rows as ER7 text: `|` between fields, `~` between repetitions, CR after each."""
    enc = er7.DEFAULT
    segments = []
    for name, fields in rows:
        last = max(fields)
        values = [""] * (last + 1)
        for number, value in fields.items():
            values[number] = value if isinstance(value, str) else enc.repetition.join(value)
        if name == "MSH":
            # MSH-1 is the field separator itself and MSH-2 the other delimiters.
            segments.append("MSH" + enc.field + enc.msh2 + enc.field + enc.field.join(values[3:]))
        else:
            values[0] = name
            segments.append(enc.field.join(values))
    return SEGMENT_END.join(segments)


def build_with_hl7apy(rows: Sequence[Row], *, control_id: str) -> str:
    """The same rows built as an hl7apy message at strict validation, validated, in ER7."""
    return strict.validated_er7(
        partial(_hl7apy_oru_r01, rows), what="ORU^R01", control_id=control_id
    )


def _hl7apy_oru_r01(rows: Sequence[Row]) -> Message:
    msg = Message("ORU_R01", version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
    result = msg.add_group("ORU_R01_PATIENT_RESULT")
    order: Group | None = None
    patient: Group | None = None
    for name, fields in rows:
        if name == "MSH":
            segment = msg.msh
        elif name == "PID":
            patient = result.add_group("ORU_R01_PATIENT")
            segment = patient.pid
        elif name == "PV1":
            assert patient is not None
            segment = patient.add_group("ORU_R01_VISIT").pv1
        elif name == "OBR":
            order = result.add_group("ORU_R01_ORDER_OBSERVATION")
            segment = order.obr
        elif name == "NTE":
            assert order is not None
            segment = order.add_segment("NTE")
        elif name == "OBX":
            assert order is not None
            segment = order.add_group("ORU_R01_OBSERVATION").obx
        else:
            raise ValueError(f"no place for a {name} segment in ORU_R01")
        prefix = name.lower()
        for number, value in sorted(fields.items()):
            if isinstance(value, list):
                for repetition in value:
                    segment.add_field(f"{name}_{number}").value = repetition
            else:
                setattr(segment, f"{prefix}_{number}", value)
    return msg


def _patient_rows(patient: PatientIdentity) -> list[Row]:
    pid: Fields = {
        3: er7.join(
            [
                er7.escape(patient.national_id),
                "",
                "",
                er7.escape_fit(patient.id_authority, IS_MAX),
                er7.escape_fit(patient.id_type, 5),
            ],
            er7.DEFAULT.component,
        ),
        # The whole name as the family-name component (XPN.1): Chinese names are written
        # family name first without a separator, and splitting them guesses wrong for
        # two-character surnames (欧阳, 司马). No name at all: XPN.7 name type U
        # (unspecified, HL7 table 0200), since PID-5 is required.
        5: er7.escape(patient.name) if patient.name.strip() else "^^^^^^U",
    }
    if patient.birth_date is not None:
        pid[7] = format_date(patient.birth_date)
    if patient.sex:
        pid[8] = patient.sex if patient.sex in _SEXES else "U"
    patient_class = patient.patient_class if patient.patient_class in _PATIENT_CLASSES else "U"
    return [("PID", pid), ("PV1", {2: patient_class})]
