"""HL7 v2.6 original-mode acknowledgements (Ch. 2.9.2): ACK^R01^ACK with MSA and ERR.

The gateway answers every ORU^R01 with one of these on the agent's ack topic; MSA-2
carries the acknowledged MSH-10, which the agent's outbox uses as the row id. AA means
stored; AE (understood but invalid) and AR (not processable at all) say why in ERR.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message

from sync.hl7 import er7, strict
from sync.hl7.errors import (
    APPLICATION_INTERNAL_ERROR,
    ERROR_CODES,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    UNSUPPORTED_MESSAGE_TYPE,
    Hl7Error,
)
from sync.hl7.pcd01 import CHARSET, SENDING_APPLICATION, VERSION, local_id
from sync.hl7.timestamps import format_dtm

# HL7 table 0008 (original acknowledgement mode only: the agent treats anything but AA
# as a refusal, so enhanced-mode commit ACKs CA/CE/CR must not be taken for one).
ACK_CODES = frozenset({"AA", "AE", "AR"})

# MSA-2 is required (Ch. 2.14.8.2) but a message too broken to read has no control id
# to quote; this placeholder matches no outbox row.
UNREADABLE_CONTROL_ID = "UNKNOWN"

MAX_TEXT = 500  # an ACK explains in a line; a whole traceback does not go back


@dataclass(frozen=True, slots=True)
class AckResult:
    acked: str  # MSA-2: the MSH-10 this acknowledges
    code: str  # MSA-1: AA | AE | AR
    text: str  # ERR-8 user message, else MSA-3, else ""
    control_id: str  # the ACK's own MSH-10
    error_code: str | None = None  # ERR-3.1, HL7 table 0357


def sanitise(text: str) -> str:
    """One line of at most MAX_TEXT characters: line breaks and runs of blanks collapse.

    HL7 delimiters are escaped when the text is written (er7.escape), so `|^~\\&`
    in an error message cannot break the ACK.
    """
    line = " ".join(text.split())
    return line if len(line) <= MAX_TEXT else line[: MAX_TEXT - 1] + "…"


def build_ack(
    *,
    acked_control_id: str | None,
    code: str,
    text: str,
    control_id: str,
    sent_at: dt.datetime,
    sending_app: str = "COUNTY_GATEWAY",
    receiving_facility: str = "",
    error_code: str | None = None,
    charset: str = CHARSET,
) -> str:
    """ACK^R01^ACK in ER7; ERR for AE/AR (ERR-3 from table 0357, default 207).

    `charset` goes to MSH-18 (HL7 table 0211): the character set the ACK's bytes will be
    in. Ours are UTF-8; the MLLP listener answers a monitor in the monitor's own.
    """
    if code not in ACK_CODES:
        raise ValueError(f"ACK code {code!r}: one of AA, AE, AR")
    comp = er7.DEFAULT.component
    message_text = sanitise(text)
    msg = Message("ACK", version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
    msh = msg.msh
    msh.msh_3 = er7.join([er7.escape(p) for p in local_id(sending_app)], comp)
    msh.msh_5 = SENDING_APPLICATION
    if receiving_facility:
        msh.msh_6 = er7.join([er7.escape(p) for p in local_id(receiving_facility)], comp)
    msh.msh_7 = format_dtm(sent_at)
    msh.msh_9 = "ACK^R01^ACK"
    msh.msh_10 = er7.escape(control_id)
    msh.msh_11 = "P"
    msh.msh_12 = VERSION
    if charset:
        msh.msh_18 = er7.escape(charset)
    msa = msg.msa
    msa.msa_1 = code
    msa.msa_2 = er7.escape(acked_control_id or UNREADABLE_CONTROL_ID)
    if message_text:
        # MSA-3 is kept in v2.6 for backward compatibility only (Ch. 2.14.8.3); older
        # receivers still read the reason there.
        msa.msa_3 = er7.escape(message_text)
    if code != "AA":
        err_code = error_code or APPLICATION_INTERNAL_ERROR
        err = msg.add_segment("ERR")
        err.err_3 = er7.join([err_code, er7.escape(ERROR_CODES.get(err_code, "")), "HL70357"], comp)
        err.err_4 = "E"  # HL7 table 0516: E error
        if message_text:
            err.err_8 = er7.escape(message_text)
    return strict.validated_er7(lambda: msg, what="ACK", control_id=control_id)


def parse_ack(text: str) -> AckResult:
    """The acknowledgement in an ACK; Hl7Error for anything that is not one.

    Checked by hand rather than by hl7apy: the agent must understand every ACK its
    gateway can send, cheaply, and a strict-validation quirk must not leave a row
    unacknowledged forever.
    """
    segments = er7.split_segments(text)
    if not segments:
        raise Hl7Error("ACK is empty", error_code=SEGMENT_SEQUENCE_ERROR, ack_code="AR")
    enc = er7.read_encoding(segments[0])
    if enc is None:
        raise Hl7Error(
            f"ACK does not start with a usable MSH segment: {segments[0][:30]!r}",
            error_code=SEGMENT_SEQUENCE_ERROR,
            ack_code="AR",
        )
    msh = er7.segment_fields(segments[0], enc)
    control_id = er7.component(er7.field(msh, 10), 1, enc)
    message_code = er7.component(er7.field(msh, 9), 1, enc)
    if message_code != "ACK":
        raise Hl7Error(
            f"MSH-9 is {message_code!r}, not ACK",
            control_id=control_id or None,
            error_code=UNSUPPORTED_MESSAGE_TYPE,
            ack_code="AR",
        )
    if not control_id:
        raise Hl7Error("ACK has no MSH-10 control id", error_code=REQUIRED_FIELD_MISSING)
    msa: list[str] | None = None
    err: list[str] | None = None
    for segment in segments[1:]:
        fields = er7.segment_fields(segment, enc)
        if fields[0] == "MSA" and msa is None:
            msa = fields
        elif fields[0] == "ERR" and err is None:
            err = fields
        elif fields[0] == "MSH":
            raise Hl7Error(
                "ACK has a second MSH segment",
                control_id=control_id,
                error_code=SEGMENT_SEQUENCE_ERROR,
            )
    if msa is None:
        raise Hl7Error(
            "ACK has no MSA segment", control_id=control_id, error_code=SEGMENT_SEQUENCE_ERROR
        )
    code = er7.component(er7.field(msa, 1), 1, enc)
    if code not in ACK_CODES:
        raise Hl7Error(
            f"MSA-1 {code[:10]!r} is not AA, AE or AR",
            control_id=control_id,
            error_code=TABLE_VALUE_NOT_FOUND,
        )
    acked = er7.component(er7.field(msa, 2), 1, enc)
    if not acked.strip():
        raise Hl7Error(
            "MSA-2 (acknowledged control id) is empty",
            control_id=control_id,
            error_code=REQUIRED_FIELD_MISSING,
        )
    reason = ""
    error_code: str | None = None
    if err is not None:
        reason = er7.component(er7.field(err, 8), 1, enc)
        # Kept as sent, even outside table 0357: the outcome is MSA-1, and an odd
        # error code must not leave the row waiting for an ACK that never parses.
        error_code = er7.component(er7.field(err, 3), 1, enc)[:20] or None
    if not reason:
        reason = er7.component(er7.field(msa, 3), 1, enc)
    return AckResult(
        acked=acked,
        code=code,
        text=sanitise(reason),
        control_id=control_id,
        error_code=error_code,
    )
