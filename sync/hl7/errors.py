"""The one error every HL7 builder and parser here raises.

It carries what an HL7 acknowledgement needs to say why a message was refused, so the
gateway can answer it without guessing: the acknowledgement code (MSA-1), the HL7 error
code from table 0357 (ERR-3) and, when it could be read, the refused MSH-10 (MSA-2).
"""

from __future__ import annotations

# HL7 v2.6 table 0357 "Message error condition codes" (Ch. 2, ERR-3).
SEGMENT_SEQUENCE_ERROR = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNSUPPORTED_VERSION_ID = "203"
APPLICATION_INTERNAL_ERROR = "207"

ERROR_CODES: dict[str, str] = {
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_VERSION_ID: "Unsupported version id",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}

# HL7 v2.6 table 0008 "Acknowledgment code" (original mode, Ch. 2.9.2): AE when the
# message was understood but is invalid, AR when it cannot be processed at all (MSH
# unusable, message type or version not supported).
ACK_APPLICATION_ERROR = "AE"
ACK_APPLICATION_REJECT = "AR"


class Hl7Error(ValueError):
    """A message that must be refused. `str(e)` is one line naming what is wrong."""

    def __init__(
        self,
        reason: str,
        *,
        control_id: str | None = None,
        error_code: str = APPLICATION_INTERNAL_ERROR,
        ack_code: str = ACK_APPLICATION_ERROR,
    ) -> None:
        if ack_code not in (ACK_APPLICATION_ERROR, ACK_APPLICATION_REJECT):
            raise ValueError(f"Hl7Error ack_code must be AE or AR, got {ack_code!r}")
        self.reason = " ".join(reason.split())  # one line, whatever the cause said
        self.control_id = control_id
        self.error_code = error_code
        self.ack_code = ack_code
        super().__init__(self.reason)

    def __str__(self) -> str:
        where = f"message {self.control_id}: " if self.control_id else ""
        return f"{where}{self.reason} ({self.ack_code} {self.error_code})"
