"""What the county gateway makes of an uploaded message: checked, then read.

The order of the checks decides the answer (HL7 v2.6 Ch. 2.9.2, original-mode ACK):

1. size, text encoding, MSH present with usable delimiters, MSH-10, MSH-12 = 2.6,
   MSH-9 = ORU^R01 — failing any of these, the message cannot be processed: AR
   (table 0357: 100 segment sequence, 101 required field, 200 message type, 201 event,
   203 version);
2. our PCD-01 reading: MDC codes in OBX-3/OBX-6 (103), NM values and DTM times (102),
   result status from table 0085 (103);
3. hl7apy strict parse and validation against the v2.6 ORU_R01 structure (100/101/102).

Failing 2 or 3 the message was understood but is invalid: AE, with the control id.

A reason names the field and what is wrong with it, never the field's value: it goes
into the ACK (kept by the box), the gateway's store and its log, and a value can be
anyone's name or national id (a monitor that puts the name in OBX-5, a birth date
field holding the ID number). hl7apy's own messages quote values, so only what they
say of the structure is kept (`_described`).
Our own checks run before hl7apy's because they are cheap and hl7apy's are not: a
gateway flooded with bad messages refuses most of them before the expensive step.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import (
    ChildNotFound,
    ChildNotValid,
    InvalidDateFormat,
    InvalidDateOffset,
    InvalidEncodingChars,
    InvalidName,
    MaxChildLimitReached,
    MaxLengthReached,
    ValidationError,
)
from hl7apy.parser import parse_message

from edge_agent.mdc import BY_CODE, BY_REFID, Term
from sync.hl7 import er7
from sync.hl7.errors import (
    APPLICATION_INTERNAL_ERROR,
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    UNSUPPORTED_VERSION_ID,
    Hl7Error,
)
from sync.hl7.pcd01 import NATIONAL_ID_TYPE, VERSION
from sync.hl7.timestamps import parse_dtm

# A PCD-01 message from a box is a few kB; these caps keep one bad sender from holding
# a gateway worker (hl7apy's strict parse costs several ms per segment).
MAX_MESSAGE_BYTES = 1 << 20
MAX_SEGMENTS = 500

# HL7 v2.6 table 0085, observation result status (OBX-11).
RESULT_STATUSES = frozenset("CDFINOPRSUWX")

# HL7 NM (Ch. 2A.47): optional sign, digits, optional decimal point. No exponent, no
# blanks inside; leading/trailing blanks are not part of the value either.
_NM = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)


@dataclass(frozen=True, slots=True)
class InboundObservation:
    set_id: int  # OBX-1
    metric: str  # MDC reference id (OBX-3)
    code: int  # MDC code (OBX-3)
    value: str | None  # NM: decimal text exactly as sent; other types: OBX-5 as sent
    unit: str | None  # MDC reference id (OBX-6)
    observed_at: dt.datetime | None  # OBX-14
    device_id: str | None  # OBX-18 EI.1 (EUI-64 or device id), else the MDS row's
    status: str  # OBX-11, table 0085: F final, X cannot be obtained, ...
    flags: tuple[str, ...] = ()  # OBX-8 repetitions
    # NA rows (a waveform): the samples as integers, with `sample_exponent` the power of
    # ten they are in (decimal text "-0.125" -> -125 with exponent -3). `value` is None.
    samples: tuple[int, ...] | None = None
    sample_exponent: int = 0
    sub_id: str = ""  # OBX-4: ties a waveform's rate/resolution rows (<id>.1, <id>.2) to it


@dataclass(frozen=True, slots=True)
class InboundAlert:
    """ORU^R40: the alert an agent reports starting or ending (sync.hl7.pcd04)."""

    code: str
    text: str | None
    text_en: str | None
    phase: str | None  # start | end
    state: str | None  # active | inactive
    priority: str | None  # PH | PM | PL | PI
    kind: str | None  # SP | ST


@dataclass(frozen=True, slots=True)
class Prearrival:
    """ADT^A14 pending admit: an ambulance tells the receiving ER who is coming."""

    destination: str | None  # PV1-3 point of care
    complaint: str | None  # PV2-3 admit reason (text)
    expected_at: dt.datetime | None  # PV2-8 expected admit date/time: the ETA


@dataclass(frozen=True, slots=True)
class InboundMessage:
    control_id: str  # MSH-10, the dedup key
    agent_id: str  # MSH-4 (HD.2 when set, else HD.1)
    sent_at: dt.datetime | None  # MSH-7
    message_type: str  # MSH-9.1^MSH-9.2, e.g. "ORU^R01"
    patient_national_id: str | None  # PID-3 (the NNCHN identifier, else the first)
    patient_name: str | None  # PID-5 family name, then given name
    patient_class: str | None  # PV1-2
    observations: tuple[InboundObservation, ...]
    statements: tuple[str, ...] = ()  # NTE-3 after the OBR (an ECG cart's statements)
    prearrival: Prearrival | None = None  # ADT^A14
    alert: InboundAlert | None = None  # ORU^R40


def parse_inbound(message: str | bytes) -> InboundMessage:
    """Check and read an uploaded ORU^R01 or ADT^A14; Hl7Error says how to answer a bad one."""
    text = _decode(message)
    segments = er7.split_segments(text.lstrip("\x0b").rstrip("\x1c\r\n"))
    if not segments:
        raise _reject("message is empty", SEGMENT_SEQUENCE_ERROR)
    if len(segments) > MAX_SEGMENTS:
        raise _reject(
            f"message has {len(segments)} segments, more than the {MAX_SEGMENTS} accepted",
            APPLICATION_INTERNAL_ERROR,
        )
    enc = er7.read_encoding(segments[0])
    if enc is None:
        start = segments[0][:20]
        if start.startswith("MSH"):
            raise _reject("MSH-1/MSH-2 delimiters are unusable", DATA_TYPE_ERROR)
        raise _reject("message does not start with MSH", SEGMENT_SEQUENCE_ERROR)
    msh = er7.segment_fields(segments[0], enc)
    control_id = er7.component(er7.field(msh, 10), 1, enc).strip()
    if not control_id:
        raise _reject("MSH-10 message control id is empty", REQUIRED_FIELD_MISSING)
    reader = _Reader(enc, control_id)
    message_type = reader.check_msh(msh)
    sent_at = reader.dtm(er7.component(er7.field(msh, 7), 1, enc), "MSH-7")
    agent_id = er7.component(er7.field(msh, 4), 2, enc) or er7.component(er7.field(msh, 4), 1, enc)
    if not agent_id:
        raise reader.error("MSH-4 sending facility (the agent id) is empty", REQUIRED_FIELD_MISSING)

    national_id: str | None = None
    name: str | None = None
    patient_class: str | None = None
    observations: list[InboundObservation] = []
    statements: list[str] = []
    destination: str | None = None
    complaint: str | None = None
    expected_at: dt.datetime | None = None
    mds_device: str | None = None
    obx_count = 0
    for segment in segments[1:]:
        fields = er7.segment_fields(segment, enc)
        kind = fields[0]
        if kind == "NTE":
            text = er7.unescape(er7.field(fields, 3), enc).strip()
            if text:
                statements.append(text)
        elif kind == "PV2" and message_type == "ADT^A14":
            pv2_3 = er7.field(fields, 3)
            complaint = reader.comp(pv2_3, 2) or reader.comp(pv2_3, 1) or None
            expected_at = reader.dtm(reader.comp(er7.field(fields, 8), 1), "PV2-8")
        elif kind == "OBX":
            obx_count += 1
            obs, device = reader.obx(fields, obx_count, mds_device)
            if obs is None:
                mds_device = device
            else:
                observations.append(obs)
        elif kind == "PID" and national_id is None:
            national_id = reader.national_id(er7.field(fields, 3))
            name = reader.name(er7.field(fields, 5))
        elif kind == "PV1" and patient_class is None:
            patient_class = er7.component(er7.field(fields, 2), 1, enc) or None
            destination = reader.comp(er7.field(fields, 3), 1) or None
        elif kind == "MSH":
            raise reader.error("a second MSH segment inside the message", SEGMENT_SEQUENCE_ERROR)

    if message_type == "ADT^A14" and national_id is None:
        raise reader.error("ADT^A14 without a PID-3 patient identifier", REQUIRED_FIELD_MISSING)
    reader.validate_structure(_without_samples(segments, enc), message_type)
    return InboundMessage(
        control_id=control_id,
        agent_id=agent_id,
        sent_at=sent_at,
        message_type=message_type,
        patient_national_id=national_id,
        patient_name=name,
        patient_class=patient_class,
        observations=tuple(observations),
        statements=tuple(statements),
        prearrival=(
            Prearrival(destination, complaint, expected_at) if message_type == "ADT^A14" else None
        ),
        alert=_alert(observations, enc, reader) if message_type == "ORU^R40" else None,
    )


_ALERT_ATTRIBUTES = {
    "MDC_ATTR_EVENT_PHASE": "phase",
    "MDC_ATTR_ALARM_STATE": "state",
    "MDC_ATTR_ALARM_PRIORITY": "priority",
    "MDC_ATTR_ALERT_TYPE": "kind",
}


def _alert(
    observations: list[InboundObservation], enc: er7.Encoding, reader: _Reader
) -> InboundAlert:
    """The alert an ORU^R40's rows describe: the MDC_EVT_ALARM row and its attributes."""
    event = next((o for o in observations if o.metric == "MDC_EVT_ALARM" and o.value), None)
    if event is None or event.value is None:
        raise reader.error(
            "ORU^R40 without an MDC_EVT_ALARM row naming the alert", REQUIRED_FIELD_MISSING
        )
    parts = {
        _ALERT_ATTRIBUTES[o.metric]: er7.unescape(o.value, enc)
        for o in observations
        if o.metric in _ALERT_ATTRIBUTES and o.value
    }
    return InboundAlert(
        code=reader.comp(event.value, 1),
        text=reader.comp(event.value, 2) or None,
        text_en=reader.comp(event.value, 5) or None,
        phase=parts.get("phase"),
        state=parts.get("state"),
        priority=parts.get("priority"),
        kind=parts.get("kind"),
    )


def _without_samples(segments: list[str], enc: er7.Encoding) -> str:
    """The message for hl7apy with each NA row's OBX-5 cut to its first sample.

    hl7apy builds an object per component: a 12-lead's 60 000 samples take it ~7 s.
    Our own reader has checked every sample (`_Reader.samples`); hl7apy still checks the
    structure, the data types and the rows around them.
    """
    out = []
    for segment in segments:
        fields = segment.split(enc.field) if segment.startswith("OBX") else []
        if len(fields) > 5 and fields[2] == "NA":
            fields[5] = fields[5].split(enc.component, 1)[0]
            out.append(enc.field.join(fields))
        else:
            out.append(segment)
    return "\r".join(out)


def _decode(message: str | bytes) -> str:
    if isinstance(message, bytes):
        if len(message) > MAX_MESSAGE_BYTES:
            raise _too_big(len(message))
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _reject(f"message is not UTF-8 (byte {exc.start})", DATA_TYPE_ERROR) from None
    # A str is at most 4 bytes a character in UTF-8: count bytes only near the cap.
    if len(message) > MAX_MESSAGE_BYTES or (
        len(message) * 4 > MAX_MESSAGE_BYTES
        and len(message.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES
    ):
        raise _too_big(len(message.encode("utf-8", "surrogatepass")))
    return message


def _too_big(size: int) -> Hl7Error:
    return _reject(
        f"message is {size} bytes, more than the {MAX_MESSAGE_BYTES} accepted",
        APPLICATION_INTERNAL_ERROR,
    )


def _reject(reason: str, error_code: str, control_id: str | None = None) -> Hl7Error:
    return Hl7Error(reason, control_id=control_id, error_code=error_code, ack_code="AR")


class _Reader:
    """Reads fields of one message; its errors carry the message's control id."""

    __slots__ = ("control_id", "enc")

    def __init__(self, enc: er7.Encoding, control_id: str) -> None:
        self.enc = enc
        self.control_id = control_id

    def error(self, reason: str, error_code: str) -> Hl7Error:
        return Hl7Error(reason, control_id=self.control_id, error_code=error_code, ack_code="AE")

    def comp(self, raw: str, number: int) -> str:
        return er7.component(raw, number, self.enc)

    def check_msh(self, msh: list[str]) -> str:
        """MSH-12 and MSH-9: what we cannot process at all is AR (Ch. 2.9.2.2)."""
        version = self.comp(er7.field(msh, 12), 1)
        if version != VERSION:
            raise _reject(
                f"MSH-12 version is not supported (only {VERSION})",
                UNSUPPORTED_VERSION_ID,
                self.control_id,
            )
        msh9 = er7.field(msh, 9)
        code, event, structure = self.comp(msh9, 1), self.comp(msh9, 2), self.comp(msh9, 3)
        if code == "ADT" and event == "A14" and structure in ("", "ADT_A05"):
            return "ADT^A14"  # a pre-arrival notice (pending admit)
        if code == "ORU" and event == "R40" and structure in ("", "ORU_R01"):
            return "ORU^R40"  # an alert (IHE PCD-04), in the ORU_R01 structure
        if code != "ORU":
            raise _reject(
                "MSH-9 message type is not supported (ORU^R01, ORU^R40, ADT^A14)",
                UNSUPPORTED_MESSAGE_TYPE,
                self.control_id,
            )
        if event != "R01":
            raise _reject(
                "MSH-9 event is not supported (ORU^R01, ORU^R40, ADT^A14)",
                UNSUPPORTED_EVENT_CODE,
                self.control_id,
            )
        if structure not in ("", "ORU_R01"):
            raise _reject(
                "MSH-9 message structure is not ORU_R01",
                UNSUPPORTED_MESSAGE_TYPE,
                self.control_id,
            )
        return f"{code}^{event}"

    def dtm(self, value: str, where: str) -> dt.datetime | None:
        if not value:
            return None
        return parse_dtm(value, field=where, control_id=self.control_id)

    def mdc(self, raw: str, where: str) -> Term:
        """The MDC term a CWE names, by code or by reference id (PCD TF-2 Appendix A)."""
        for first in (1, 4):  # the primary triple, then the alternate one (CWE.4-6)
            code, refid, system = (self.comp(raw, first + i) for i in range(3))
            if not (code or refid) or system not in ("MDC", ""):
                continue
            if code:
                if not code.isdigit() or int(code) not in BY_CODE:
                    raise self.error(f"{where} code is not in the MDC table", TABLE_VALUE_NOT_FOUND)
                found = BY_CODE[int(code)]
                if refid and refid != found.refid:
                    raise self.error(
                        f"{where} code is {found.refid}, not the reference id given beside it",
                        TABLE_VALUE_NOT_FOUND,
                    )
                return found
            if refid in BY_REFID:
                return BY_REFID[refid]
            raise self.error(
                f"{where} reference id is not in the MDC table",
                TABLE_VALUE_NOT_FOUND,
            )
        raise self.error(f"{where} carries no MDC code", TABLE_VALUE_NOT_FOUND)

    def obx(
        self, fields: list[str], position: int, mds_device: str | None
    ) -> tuple[InboundObservation | None, str | None]:
        """(observation, None) for a metric row; (None, device id) for a device (MDS) row."""
        where = f"OBX {position}"
        set_id_text = er7.field(fields, 1)
        if set_id_text and not set_id_text.isdigit():
            raise self.error(f"{where}: OBX-1 is not a number", DATA_TYPE_ERROR)
        set_id = int(set_id_text) if set_id_text else position
        where = f"OBX {set_id}"
        metric = self.mdc(er7.field(fields, 3), f"{where}: OBX-3")
        device = self.comp(er7.field(fields, 18), 1) or None
        if metric.refid.startswith("MDC_DEV_"):
            return None, device  # the MDS row: the device itself, not a measurement
        status = er7.field(fields, 11)
        if not status:
            raise self.error(f"{where}: OBX-11 result status is empty", REQUIRED_FIELD_MISSING)
        if status not in RESULT_STATUSES:
            raise self.error(f"{where}: OBX-11 is not in HL7 table 0085", TABLE_VALUE_NOT_FOUND)
        value_type = er7.field(fields, 2)
        raw_value = er7.field(fields, 5)
        value: str | None = None
        samples: tuple[int, ...] | None = None
        exponent = 0
        if value_type == "NA":
            samples, exponent = self.samples(raw_value, where)
        elif value_type == "NM" and raw_value:
            if not _NM.fullmatch(raw_value):
                raise self.error(f"{where}: OBX-5 is not an HL7 NM decimal", DATA_TYPE_ERROR)
            value = raw_value
        elif raw_value:
            value = raw_value  # other value types (ST, CWE, NA...): ER7 as sent
        unit_raw = er7.field(fields, 6)
        unit = self.mdc(unit_raw, f"{where}: OBX-6").refid if unit_raw else None
        flags_raw = er7.field(fields, 8)
        flags = tuple(
            er7.unescape(flag, self.enc) for flag in flags_raw.split(self.enc.repetition) if flag
        )
        return (
            InboundObservation(
                set_id=set_id,
                metric=metric.refid,
                code=metric.code,
                value=value,
                unit=unit,
                observed_at=self.dtm(self.comp(er7.field(fields, 14), 1), f"{where}: OBX-14"),
                device_id=device or mds_device,
                status=status,
                flags=flags,
                samples=samples,
                sample_exponent=exponent,
                sub_id=er7.field(fields, 4),
            ),
            None,
        )

    def samples(self, raw: str, where: str) -> tuple[tuple[int, ...], int]:
        """An NA value: NM decimals separated by the component separator, as integers
        and the power of ten they are in (all scaled to the finest decimal given)."""
        texts = raw.split(self.enc.component) if raw else []
        if not texts:
            return (), 0
        decimals = 0
        for n, text in enumerate(texts):
            if not _NM.fullmatch(text):
                raise self.error(
                    f"{where}: OBX-5 sample {n + 1} is not an HL7 NM decimal",
                    DATA_TYPE_ERROR,
                )
            point = text.find(".")
            if point >= 0:
                decimals = max(decimals, len(text) - point - 1)
        if decimals == 0:
            return tuple(map(int, texts)), 0
        scale = 10**decimals
        return tuple(int(Decimal(text) * scale) for text in texts), -decimals

    def national_id(self, raw: str) -> str | None:
        """PID-3: the identifier typed NNCHN if there is one, else the first."""
        first: str | None = None
        for repetition in raw.split(self.enc.repetition):
            number = self.comp(repetition, 1)
            if not number:
                continue
            if self.comp(repetition, 5) == NATIONAL_ID_TYPE:
                return number
            first = first or number
        return first

    def name(self, raw: str) -> str | None:
        family, given = self.comp(raw, 1), self.comp(raw, 2)
        return " ".join(part for part in (family, given) if part) or None

    def validate_structure(self, text: str, message_type: str) -> None:
        """hl7apy strict: the v2.6 ORU_R01 structure, cardinalities and data types."""
        try:
            parse_message(
                text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True
            ).validate()
        except Exception as exc:  # hl7apy's exception types, ValueError, and worse
            raise self.error(
                f"not a valid v2.6 {message_type}: {_described(exc)}", _error_code(exc)
            ) from None


def _error_code(exc: Exception) -> str:
    """The table 0357 code closest to what hl7apy found wrong."""
    text = str(exc)
    if isinstance(exc, ValidationError):
        if text.startswith("Missing required"):
            return REQUIRED_FIELD_MISSING
        if text.startswith("Datatype"):
            return DATA_TYPE_ERROR
        return SEGMENT_SEQUENCE_ERROR
    if isinstance(exc, ChildNotValid | ChildNotFound | InvalidName | MaxChildLimitReached):
        return SEGMENT_SEQUENCE_ERROR
    if isinstance(
        exc, MaxLengthReached | InvalidDateFormat | InvalidDateOffset | InvalidEncodingChars
    ):
        return DATA_TYPE_ERROR
    if isinstance(exc, ValueError):  # hl7apy's "is not an HL7 valid NM/date value"
        return DATA_TYPE_ERROR
    return APPLICATION_INTERNAL_ERROR


# What of hl7apy's messages is kept: the names of the elements it speaks of (segments'
# fields as PID_7 or OBX_5_1, message groups as ORU_R01_PATIENT_RESULT), which are
# HL7's, never the sender's. Anything else in its text may be a value.
_ELEMENT = re.compile(
    r"\b(?:[A-Z][A-Z0-9]{2}_\d{1,3}(?:_\d{1,3}){0,2}|[A-Z]{3}_[A-Z]\d{2}(?:_[A-Z]+)*)"
    r"(?:\.(?:[A-Z][A-Z0-9]{2}_\d{1,3}(?:_\d{1,3}){0,2}|[A-Z]{3}_[A-Z]\d{2}(?:_[A-Z]+)*))*\b",
    re.ASCII,
)
# hl7apy's wordings (hl7apy.exceptions, hl7apy.validation) that say what is wrong
# without a value, by the start of its message.
_WORDINGS = (
    ("Missing required child", "a required element is missing"),
    ("Child limit exceeded", "an element repeats more often than allowed"),
    ("Datatype", "an element has the wrong data type"),
)
_VALUE_WORDING = re.compile(r"is not an HL7 valid (\w+) value", re.ASCII)


def _described(exc: Exception) -> str:
    """What hl7apy found wrong, without any value the message held: its wording when it
    is one of the known value-free ones, else its kind, and the elements it names."""
    text = " ".join((str(exc) or "").split())
    what = next((said for start, said in _WORDINGS if text.startswith(start)), None)
    if what is None:
        value = _VALUE_WORDING.search(text)
        what = (
            f"a value is not an HL7 {value.group(1)} value"
            if value is not None
            else type(exc).__name__
        )
    elements = list(dict.fromkeys(_ELEMENT.findall(text)))[:4]
    return f"{what} ({', '.join(elements)})" if elements else what
