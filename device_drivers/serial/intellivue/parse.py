"""Parsing IntelliVue Data Export user data into typed messages (docs/protocols/intellivue.md).

One entry point, `parse_user_data`, for what either side sends: association control
(the session byte 0x0D/0x0E/0x0C/0x09/0x0A/0x19, with the poll profile of requests and
responses), and data export messages (0xE1: SPpdu, ROapdus, then ROIV / RORS / RORLS /
ROER apdus with event reports, event report results, poll requests and poll results).
Every length field is checked against what follows it (guide: "length fields denote the
length of data appended"), and every failure is a DecodeError carrying the absolute
byte offset of the field that does not fit.
"""

from __future__ import annotations

from device_drivers.serial.intellivue.messages import (
    AC_SPDU,
    CMD_CONFIRMED_ACTION,
    CMD_CONFIRMED_EVENT_REPORT,
    CMD_EVENT_REPORT,
    CN_SPDU,
    DATA_SPDU,
    NOM_ACT_POLL_MDIB_DATA_EXT,
    NOM_ATTR_POLL_PROFILE_EXT,
    NOM_ATTR_TIME_PD_POLL,
    NOM_NOTI_MDS_CREAT,
    NOM_POLL_PROFILE_SUPPORT,
    POLL_ACTIONS,
    ROER_APDU,
    ROIV_APDU,
    RORLS_APDU,
    RORS_APDU,
    SESSION_NAMES,
    USER_INFO_MARKER,
    USER_INFO_TRAILER,
    EventReport,
    EventReportResult,
    ManagedObject,
    Message,
    Observation,
    OtherOperation,
    PollProfile,
    PollRequest,
    PollResult,
    RemoteError,
    SessionMessage,
)
from device_drivers.serial.intellivue.types import (
    Ava,
    Reader,
    decode_absolute_time,
    read_asn_length,
    read_attribute_list,
    read_li,
)
from edge_agent.model import DecodeError

__all__ = ["parse_user_data"]


def parse_user_data(data: bytes, base: int = 0) -> Message:
    """The message in one frame's user data; `base` is its offset in the frame."""
    reader = Reader(data, base)
    first = reader.u8("session id")
    if first in SESSION_NAMES:
        return _parse_session(first, reader)
    if first != DATA_SPDU:
        raise DecodeError(f"unknown session id 0x{first:02x}", base)
    second = reader.u8("session id")
    if second != 0x00:
        raise DecodeError(f"session id 0xe1{second:02x}, expected 0xe100", base + 1)
    reader.u16("presentation context id")
    ro_type = reader.u16("ROapdus type")
    length = reader.u16("ROapdus length")
    apdu = reader.sub(length, "remote operation")
    reader.expect_end("data export message")
    if ro_type == ROIV_APDU:
        return _parse_invoke(apdu)
    if ro_type in (RORS_APDU, RORLS_APDU):
        linked = None
        if ro_type == RORLS_APDU:
            linked = (apdu.u8("RORLS state"), apdu.u8("RORLS count"))
        return _parse_result(apdu, ro_type, linked)
    if ro_type == ROER_APDU:
        invoke_id = apdu.u16("invoke id")
        error_value = apdu.u16("error value")
        apdu.sub(apdu.u16("error length"), "error parameter")
        apdu.expect_end("ROERapdu")
        return RemoteError(invoke_id, error_value)
    raise DecodeError(f"unknown remote operation type {ro_type}", reader.offset - length - 4)


def _parse_session(spdu: int, reader: Reader) -> SessionMessage:
    start = reader.offset - 1
    length = read_li(reader, "session length")
    body = reader.sub(length, f"{SESSION_NAMES[spdu]} body")
    reader.expect_end(SESSION_NAMES[spdu])
    presentation: Reader | None = None
    while body.left:
        parameter = body.u8("session parameter id")
        size = read_li(body, "session parameter length")
        if parameter == 0xC1:  # the presentation data: it runs to the end
            presentation = body.sub(size, "presentation data")
            body.expect_end(f"{SESSION_NAMES[spdu]} presentation data")
            break
        body.take(size, f"session parameter 0x{parameter:02x}")
    if spdu in (CN_SPDU, AC_SPDU):
        if presentation is None:
            raise DecodeError(f"{SESSION_NAMES[spdu]} without presentation data", start)
        return SessionMessage(spdu, _parse_user_info(presentation, spdu))
    return SessionMessage(spdu)


def _parse_user_info(presentation: Reader, spdu: int) -> PollProfile:
    """Finds MDSEUserInfoStd after the user-information marker (guide: search for
    BE 80 28 80, then skip the EXTERNAL's references up to the 0x81 tag)."""
    start = presentation.offset
    data = presentation.take(presentation.left, "presentation data")
    at = data.find(USER_INFO_MARKER)
    if at < 0:
        raise DecodeError(f"{SESSION_NAMES[spdu]}: no user information (BE 80 28 80)", start)
    reader = Reader(data[at + len(USER_INFO_MARKER) :], start + at + len(USER_INFO_MARKER))
    while True:
        tag = reader.u8("user information tag")
        if tag == 0x81:
            break
        if tag not in (0x02, 0x06):  # INTEGER (indirect ref.), OBJECT IDENTIFIER
            raise DecodeError(f"unexpected tag 0x{tag:02x} in user information", reader.offset - 1)
        reader.take(reader.u8("user information element length"), "user information element")
    info = reader.sub(read_asn_length(reader, "user information length"), "MDSEUserInfoStd")
    for field in (
        "protocol version",
        "nomenclature version",
        "functional units",
        "system type",
        "startup mode",
    ):
        info.u32(field)
    read_attribute_list(info, "option list")
    profiles = read_attribute_list(info, "supported profiles")
    info.expect_end("MDSEUserInfoStd")
    if not reader.left == len(USER_INFO_TRAILER) or any(reader.take(reader.left, "trailer")):
        raise DecodeError("association message: bad presentation trailer", reader.offset)
    for ava in profiles:
        if ava.attribute_id == NOM_POLL_PROFILE_SUPPORT:
            return _parse_poll_profile(ava)
    raise DecodeError("association message without poll profile support", info.offset)


def _parse_poll_profile(ava: Ava) -> PollProfile:
    reader = ava.reader()
    revision, period, mtu_rx, mtu_tx, bw_tx, options = (
        reader.u32(name)
        for name in (
            "poll profile revision",
            "min poll period",
            "max mtu rx",
            "max mtu tx",
            "max bw tx",
            "poll profile options",
        )
    )
    ext_options = None
    for package in read_attribute_list(reader, "optional packages"):
        if package.attribute_id == NOM_ATTR_POLL_PROFILE_EXT:
            ext = package.reader()
            ext_options = ext.u32("poll profile extension options")
            read_attribute_list(ext, "extension attributes")
            ext.expect_end("PollProfileExt")
    reader.expect_end("PollProfileSupport")
    return PollProfile(revision, period, mtu_rx, mtu_tx, bw_tx, options, ext_options)


def _managed_object(reader: Reader, what: str) -> ManagedObject:
    return ManagedObject(
        reader.u16(f"{what} class"), reader.u16(f"{what} context"), reader.u16(f"{what} handle")
    )


def _parse_invoke(apdu: Reader) -> Message:
    invoke_id = apdu.u16("invoke id")
    command = apdu.u16("command type")
    argument = apdu.sub(apdu.u16("ROIV length"), "ROIV argument")
    apdu.expect_end("ROIVapdu")
    if command in (CMD_EVENT_REPORT, CMD_CONFIRMED_EVENT_REPORT):
        managed = _managed_object(argument, "event object")
        event_time = argument.u32("event time")
        event_type = argument.u16("event type")
        info = argument.sub(argument.u16("event info length"), "event info")
        argument.expect_end("EventReportArgument")
        confirmed = command == CMD_CONFIRMED_EVENT_REPORT
        if event_type != NOM_NOTI_MDS_CREAT:
            return EventReport(invoke_id, confirmed, managed, event_time, event_type)
        mds = _managed_object(info, "MDS")
        attributes = read_attribute_list(info, "MDS attributes")
        info.expect_end("MdsCreateInfo")
        return EventReport(invoke_id, confirmed, managed, event_time, event_type, mds, attributes)
    if command == CMD_CONFIRMED_ACTION:
        _managed_object(argument, "action object")
        argument.u32("scope")
        action_type = argument.u16("action type")
        request = argument.sub(argument.u16("action length"), "action argument")
        argument.expect_end("ActionArgument")
        if action_type not in POLL_ACTIONS:
            return OtherOperation(ROIV_APDU, invoke_id, command)
        poll_number = request.u16("poll number")
        request.u16("polled object partition")
        obj_class = request.u16("polled object class")
        attr_group = request.u16("polled attribute group")
        period = None
        if action_type == NOM_ACT_POLL_MDIB_DATA_EXT:
            for ava in read_attribute_list(request, "poll extension attributes"):
                if ava.attribute_id == NOM_ATTR_TIME_PD_POLL:
                    value = ava.reader()
                    period = value.u32("poll period")
                    value.expect_end("poll period")
        request.expect_end("poll request")
        return PollRequest(invoke_id, action_type, poll_number, obj_class, attr_group, period)
    return OtherOperation(ROIV_APDU, invoke_id, command)


def _parse_result(apdu: Reader, ro_type: int, linked: tuple[int, int] | None) -> Message:
    invoke_id = apdu.u16("invoke id")
    command = apdu.u16("command type")
    result = apdu.sub(apdu.u16("result length"), "result")
    apdu.expect_end("result apdu")
    if command in (CMD_EVENT_REPORT, CMD_CONFIRMED_EVENT_REPORT):
        managed = _managed_object(result, "event object")
        current_time = result.u32("current time")
        event_type = result.u16("event type")
        result.sub(result.u16("event reply length"), "event reply info")
        result.expect_end("EventReportResult")
        return EventReportResult(invoke_id, managed, current_time, event_type)
    if command != CMD_CONFIRMED_ACTION:
        return OtherOperation(ro_type, invoke_id, command)
    _managed_object(result, "action object")
    action_type = result.u16("action type")
    reply = result.sub(result.u16("action result length"), "action result")
    result.expect_end("ActionResult")
    if action_type not in POLL_ACTIONS:
        return OtherOperation(ro_type, invoke_id, command)
    extended = action_type == NOM_ACT_POLL_MDIB_DATA_EXT
    poll_number = reply.u16("poll number")
    sequence_no = reply.u16("sequence number") if extended else None
    rel_time = reply.u32("relative time stamp")
    abs_time = decode_absolute_time(reply.take(8, "absolute time stamp"))
    reply.u16("polled object partition")
    obj_class = reply.u16("polled object class")
    attr_group = reply.u16("polled attribute group")
    observations = _parse_poll_info(reply)
    reply.expect_end("poll reply")
    return PollResult(
        invoke_id,
        action_type,
        poll_number,
        sequence_no,
        rel_time,
        abs_time,
        obj_class,
        attr_group,
        observations,
        linked,
    )


def _parse_poll_info(reader: Reader) -> tuple[Observation, ...]:
    """PollInfoList -> SingleContextPoll (context id, list) -> ObservationPoll."""
    observations = []
    count = reader.u16("poll info list count")
    body = reader.sub(reader.u16("poll info list length"), "poll info list")
    for _ in range(count):
        context_id = body.u16("context id")
        polls = body.u16("observation count")
        inner = body.sub(body.u16("observation list length"), "observation list")
        for _ in range(polls):
            handle = inner.u16("object handle")
            observations.append(Observation(context_id, handle, read_attribute_list(inner)))
        inner.expect_end(f"observation list of {polls} objects")
    body.expect_end(f"poll info list of {count} contexts")
    return tuple(observations)
