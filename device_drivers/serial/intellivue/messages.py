"""IntelliVue Data Export messages: constants, values and builders (docs/protocols/intellivue.md).

Layouts follow the Philips "Data Export Interface Programming Guide": "Association
Control" (request, response, refuse, release, abort), "Data Export Protocol" (SPpdu,
ROapdus, ROIVapdu, RORSapdu, RORLSapdu, ROERapdu), "Event Report" (MDS Create),
"Poll Request / Poll Result" and "Extended Poll Request / Result" (PollMdibDataReq(Ext),
PollMdibDataReply(Ext), PollInfoList -> SingleContextPoll -> ObservationPoll ->
AttributeList). Field order was cross-checked against VSCaptureMP and OpenICE (read
only); the code and test vectors here are our own.

Builders return *user data* (what goes between the frame header and the FCS); wrap them
with framing.encode_frame. The client side (this agent) builds the association request,
the MDS Create result, poll requests and the release request; the monitor side builders
(association response, MDS Create event, poll results, alarm lists) exist for the
simulator and the tests. The typed values below are what parse.parse_user_data makes of
any message of either side.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from device_drivers.serial.intellivue.types import (
    Ava,
    encode_absolute_time,
    encode_asn_length,
    encode_attribute_list,
    encode_float,
    encode_li,
    encode_list,
    ticks,
)

# --- session layer: the first byte of the user data ("Association Control") -----------
CN_SPDU = 0x0D  # association request (connect)
AC_SPDU = 0x0E  # association accepted
RF_SPDU = 0x0C  # association refused
FN_SPDU = 0x09  # release request (finish)
DN_SPDU = 0x0A  # release response (disconnect)
AB_SPDU = 0x19  # abort
DATA_SPDU = 0xE1  # data export message: SPpdu session_id 0xE100
SESSION_NAMES = {
    CN_SPDU: "association request",
    AC_SPDU: "association response",
    RF_SPDU: "refuse",
    FN_SPDU: "release request",
    DN_SPDU: "release response",
    AB_SPDU: "abort",
}
SESSION_ID = 0xE100
PRESENTATION_CONTEXT_ID = 0x0002  # MDDL context of the association request

# --- remote operations -----------------------------------------------------------------
ROIV_APDU = 1  # invoke
RORS_APDU = 2  # result
ROER_APDU = 3  # error
RORLS_APDU = 5  # linked result (one of a series)
CMD_EVENT_REPORT = 0
CMD_CONFIRMED_EVENT_REPORT = 1
CMD_GET = 3
CMD_SET = 4
CMD_CONFIRMED_SET = 5
CMD_CONFIRMED_ACTION = 7
RORLS_FIRST = 1
RORLS_NOT_FIRST_NOT_LAST = 2
RORLS_LAST = 3  # the last linked result; one RORSapdu follows

NOM_NOTI_MDS_CREAT = 0x0D06
NOM_ACT_POLL_MDIB_DATA = 0x0C16
NOM_ACT_POLL_MDIB_DATA_EXT = 0xF13B
POLL_ACTIONS = (NOM_ACT_POLL_MDIB_DATA, NOM_ACT_POLL_MDIB_DATA_EXT)

# --- nomenclature partitions and object classes ----------------------------------------
NOM_PART_OBJ = 1
NOM_PART_SCADA = 2
NOM_PART_DIM = 4
NOM_MOC_VMO_METRIC_NU = 6  # numerics
NOM_MOC_VMO_METRIC_SA_RT = 9  # real-time sample arrays (waves)
NOM_MOC_VMS_MDS = 33  # the medical device system (the monitor itself)
NOM_MOC_PT_DEMOG = 42
NOM_MOC_VMO_AL_MON = 54  # alert monitor

# --- attribute groups and attribute ids ------------------------------------------------
NOM_ATTR_GRP_ALL = 0
NOM_ATTR_GRP_AL_MON = 0x0801
NOM_ATTR_GRP_METRIC_VAL_OBS = 0x0803
NOM_ATTR_GRP_VMO_STATIC = 0x0811

NOM_ATTR_AL_MON_P_AL_LIST = 0x0902
NOM_ATTR_AL_MON_T_AL_LIST = 0x0904
NOM_ATTR_DEV_AL_COND = 0x0916
NOM_ATTR_ID_HANDLE = 0x0921
NOM_ATTR_ID_LABEL = 0x0924
NOM_ATTR_ID_LABEL_STRING = 0x0927
NOM_ATTR_ID_TYPE = 0x092F
NOM_ATTR_METRIC_SPECN = 0x093F
NOM_ATTR_NU_CMPD_VAL_OBS = 0x094B
NOM_ATTR_NU_VAL_OBS = 0x0950
NOM_ATTR_SA_CMPD_VAL_OBS = 0x0967
NOM_ATTR_SA_SPECN = 0x096D
NOM_ATTR_SA_VAL_OBS = 0x096E
NOM_ATTR_SCALE_SPECN_I16 = 0x096F
NOM_ATTR_TIME_ABS = 0x0987
NOM_ATTR_TIME_PD_SAMP = 0x098D
NOM_ATTR_TIME_REL = 0x098F
NOM_ATTR_TIME_STAMP_ABS = 0x0990
NOM_ATTR_TIME_STAMP_REL = 0x0991
NOM_ATTR_UNIT_CODE = 0x0996
NOM_ATTR_MODE_OP = 0x0946
NOM_ATTR_TIME_PD_POLL = 0xF13E  # PollDataReqPeriod of an extended poll

# --- association user information (MDSEUserInfoStd) ------------------------------------
MDDL_VERSION1 = 0x80000000
NOMEN_VERSION = 0x40000000
SYST_CLIENT = 0x80000000
SYST_SERVER = 0x00800000
COLD_START = 0x20000000
NOM_POLL_PROFILE_SUPPORT = 0x0001
NOM_ATTR_POLL_PROFILE_EXT = 0xF001
POLL_PROFILE_REV_0 = 0x80000000
P_OPT_DYN_CREATE_OBJECTS = 0x40000000
P_OPT_DYN_DELETE_OBJECTS = 0x20000000
POLL_EXT_PERIOD_NU_1SEC = 0x80000000
POLL_EXT_PERIOD_NU_AVG_12SEC = 0x40000000
POLL_EXT_PERIOD_NU_AVG_60SEC = 0x20000000
POLL_EXT_PERIOD_NU_AVG_300SEC = 0x10000000
POLL_EXT_PERIOD_RTSA = 0x08000000  # real-time sample arrays: waves
POLL_EXT_ENUM = 0x04000000
POLL_EXT_NU_PRIO_LIST = 0x02000000
POLL_EXT_DYN_MODALITIES = 0x01000000
# The guide ignores the whole extension unless a numeric period bit is set, so waves
# are asked for as NU_1SEC | RTSA.
DEFAULT_POLL_EXT_OPTIONS = POLL_EXT_PERIOD_NU_1SEC | POLL_EXT_PERIOD_RTSA

# --- fixed ISO session / presentation encodings (guide appendix "Association Request"
# and "Association Response" byte listings; ASN.1 BER with indefinite lengths) ---------
# ISO 8327 session parameters of connect and accept: the connect/accept item (PGI 0x05:
# protocol options, version 2) and the session user requirements (PI 0x14: duplex).
_SESSION_PARAMETERS = bytes.fromhex("05 08 13 01 00 16 01 02 80 0014 02 00 02")
_OID_MDDL_ABSTRACT = bytes.fromhex("06 0C 2A 86 48 CE 14 02 01 00 00 00 01 01")
_OID_MDDL_TRANSFER = bytes.fromhex("06 0C 2A 86 48 CE 14 02 01 00 00 00 02 01")
_OID_MDDL_CONTEXT = bytes.fromhex("06 0C 2A 86 48 CE 14 02 01 00 00 00 03 01")
_REQUEST_PRESENTATION = (
    bytes.fromhex("31 80")  # CP-type SET
    + bytes.fromhex("A0 80 80 01 01 00 00")  # mode-selector: normal mode
    + bytes.fromhex("A2 80")  # normal-mode parameters
    + bytes.fromhex("A0 03 00 00 01")  # protocol version 1
    + bytes.fromhex("A4 80")  # presentation context definition list:
    # context 1: ACSE (2.2.1.0.1) in BER (2.1.1)
    + bytes.fromhex("30 80 02 01 01 06 04 52 01 00 01 30 80 06 02 51 01 00 00 00 00")
    # context 2: the MDDL abstract and transfer syntaxes (1.2.840.10004.2.1...)
    + bytes.fromhex("30 80 02 01 02")
    + _OID_MDDL_ABSTRACT
    + bytes.fromhex("30 80")
    + _OID_MDDL_TRANSFER
    + bytes.fromhex("00 00 00 00 00 00")  # end of transfer list, context, list
    + bytes.fromhex("61 80 30 80 02 01 01 A0 80")  # user data: PDV list, context 1
    + bytes.fromhex("60 80")  # AARQ apdu
    + bytes.fromhex("A1 80")  # application context name
    + _OID_MDDL_CONTEXT
    + bytes.fromhex("00 00")
    + bytes.fromhex("BE 80 28 80")  # user information: EXTERNAL
    + _OID_MDDL_ABSTRACT  # direct reference
    + bytes.fromhex("02 01 02")  # indirect reference: presentation context 2
    + bytes.fromhex("81")  # single-ASN1-type; the ASN.1 length and MDSEUserInfoStd follow
)
_RESPONSE_PRESENTATION = (
    bytes.fromhex("31 80 A0 80 80 01 01 00 00 A2 80 A0 03 00 00 01")
    + bytes.fromhex("A5 80")  # presentation context definition result list:
    + bytes.fromhex("30 80 80 01 00 81 02 51 01 00 00")  # context 1 accepted, BER
    + bytes.fromhex("30 80 80 01 00 81 0C 2A 86 48 CE 14 02 01 00 00 00 02 01 00 00")
    + bytes.fromhex("00 00")
    + bytes.fromhex("61 80 30 80 02 01 01 A0 80")
    + bytes.fromhex("61 80")  # AARE apdu
    + bytes.fromhex("A1 80")
    + _OID_MDDL_CONTEXT
    + bytes.fromhex("00 00")
    + bytes.fromhex("A2 03 02 01 00")  # result: accepted
    + bytes.fromhex("A3 05 A1 03 02 01 00")  # result source diagnostic: null
    + bytes.fromhex("BE 80 28 80 02 01 02 81")  # user information, context 2
)
# Closes the eight indefinite-length constructions opened above.
USER_INFO_TRAILER = bytes(16)
# The guide locates the user information of a response by searching for these.
USER_INFO_MARKER = bytes.fromhex("BE 80 28 80")
_RELEASE_REQUEST_PRESENTATION = bytes.fromhex(
    "61 80 30 80 02 01 01 A0 80 62 80 80 01 00 00 00 00 00"
)
_RELEASE_RESPONSE_PRESENTATION = bytes.fromhex(
    "61 80 30 80 02 01 01 A0 80 63 80 80 01 00 00 00 00 00"
)
_ABORT_PRESENTATION = bytes.fromhex(
    "A0 80 A0 80 30 80 02 01 01 06 02 51 01 00 00 00 00"
    "61 80 30 80 02 01 01 A0 80 64 80 80 01 01 00 00 00 00 00 00"
)
_SHORT_TRAILER = bytes(4)
_ABORT_PARAMETERS = bytes.fromhex("11 01 03")  # PI 0x11 transport disconnect: abort
_REFUSE_PARAMETERS = bytes.fromhex("32 01 00")  # PI 0x32 reason code


# --- values ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ManagedObject:
    """ManagedObjectId: object class and global handle (context id, handle)."""

    obj_class: int
    context_id: int = 0
    handle: int = 0

    def encode(self) -> bytes:
        return b"".join(
            v.to_bytes(2, "big") for v in (self.obj_class, self.context_id, self.handle)
        )


MDS = ManagedObject(NOM_MOC_VMS_MDS)


@dataclass(frozen=True, slots=True)
class PollProfile:
    """PollProfileSupport and, when present, its PollProfileExt options."""

    revision: int
    min_poll_period: int  # RelativeTime ticks
    max_mtu_rx: int
    max_mtu_tx: int
    max_bw_tx: int
    options: int
    ext_options: int | None


@dataclass(frozen=True, slots=True)
class SessionMessage:
    """An association-control message; `poll_profile` for requests and responses."""

    spdu: int
    poll_profile: PollProfile | None = None

    @property
    def name(self) -> str:
        return SESSION_NAMES[self.spdu]


@dataclass(frozen=True, slots=True)
class EventReport:
    """ROIV event report; MDS Create carries the MDS object and its attributes."""

    invoke_id: int
    confirmed: bool
    managed_object: ManagedObject
    event_time: int
    event_type: int
    mds: ManagedObject | None = None
    attributes: tuple[Ava, ...] = ()


@dataclass(frozen=True, slots=True)
class EventReportResult:
    invoke_id: int
    managed_object: ManagedObject
    current_time: int
    event_type: int


@dataclass(frozen=True, slots=True)
class PollRequest:
    """ROIV confirmed action asking for a (single or extended) poll."""

    invoke_id: int
    action_type: int
    poll_number: int
    obj_class: int
    attr_group: int
    period: int | None = None  # extended poll: NOM_ATTR_TIME_PD_POLL, in ticks

    @property
    def extended(self) -> bool:
        return self.action_type == NOM_ACT_POLL_MDIB_DATA_EXT


@dataclass(frozen=True, slots=True)
class Observation:
    """ObservationPoll: one object's attributes, inside a SingleContextPoll."""

    context_id: int
    handle: int
    attributes: tuple[Ava, ...]


@dataclass(frozen=True, slots=True)
class PollResult:
    """PollMdibDataReply(Ext) in a RORS or (one of a series) RORLS apdu."""

    invoke_id: int
    action_type: int
    poll_number: int
    sequence_no: int | None  # extended polls only
    rel_time: int
    abs_time: dt.datetime | None
    obj_class: int
    attr_group: int
    observations: tuple[Observation, ...]
    linked: tuple[int, int] | None = None  # RORLS (state, count)


@dataclass(frozen=True, slots=True)
class RemoteError:
    invoke_id: int
    error_value: int


@dataclass(frozen=True, slots=True)
class OtherOperation:
    """A remote operation we neither send nor act on (get/set results...)."""

    ro_type: int
    invoke_id: int
    command: int


Message = (
    SessionMessage
    | EventReport
    | EventReportResult
    | PollRequest
    | PollResult
    | RemoteError
    | OtherOperation
)


# --- association control builders ------------------------------------------------------


def _session(spdu: int, parameters: bytes, presentation: bytes | None) -> bytes:
    body = parameters
    if presentation is not None:
        body += b"\xc1" + encode_li(len(presentation)) + presentation
    return bytes((spdu,)) + encode_li(len(body)) + body


def user_info(
    *,
    system_type: int,
    poll_ext_options: int,
    min_poll_period: int = 2500,
    max_mtu_rx: int = 1364,
    max_mtu_tx: int = 1000,
) -> bytes:
    """MDSEUserInfoStd with one PollProfileSupport (and its PollProfileExt).

    2500 ticks (312.5 ms) is below the guide's 3.3 s threshold, so the monitor's
    association timeout is 10 s; 1364 bytes is the largest message it negotiates.
    """
    ext = poll_ext_options.to_bytes(4, "big") + encode_attribute_list(())
    profile = b"".join(
        v.to_bytes(4, "big")
        for v in (
            POLL_PROFILE_REV_0,
            min_poll_period,
            max_mtu_rx,
            max_mtu_tx,
            0xFFFFFFFF,  # max_bw_tx: no limit
            P_OPT_DYN_CREATE_OBJECTS | P_OPT_DYN_DELETE_OBJECTS,
        )
    ) + encode_attribute_list([(NOM_ATTR_POLL_PROFILE_EXT, ext)])
    return (
        b"".join(
            v.to_bytes(4, "big") for v in (MDDL_VERSION1, NOMEN_VERSION, 0, system_type, COLD_START)
        )
        + encode_attribute_list(())  # option list: none
        + encode_attribute_list([(NOM_POLL_PROFILE_SUPPORT, profile)])  # supported profiles
    )


def association_request(poll_ext_options: int = DEFAULT_POLL_EXT_OPTIONS) -> bytes:
    """The client's association request (0x0D), asking for `poll_ext_options`."""
    info = user_info(system_type=SYST_CLIENT, poll_ext_options=poll_ext_options)
    presentation = _REQUEST_PRESENTATION + encode_asn_length(len(info)) + info + USER_INFO_TRAILER
    return _session(CN_SPDU, _SESSION_PARAMETERS, presentation)


def association_response(poll_ext_options: int = DEFAULT_POLL_EXT_OPTIONS) -> bytes:
    """The monitor's acceptance (0x0E), granting `poll_ext_options` (simulator side)."""
    info = user_info(system_type=SYST_SERVER, poll_ext_options=poll_ext_options)
    presentation = _RESPONSE_PRESENTATION + encode_asn_length(len(info)) + info + USER_INFO_TRAILER
    return _session(AC_SPDU, _SESSION_PARAMETERS, presentation)


def refuse() -> bytes:
    """The monitor's refusal (0x0C): it already serves another client."""
    return _session(RF_SPDU, _REFUSE_PARAMETERS, None)


def release_request() -> bytes:
    """The client's release request (0x09), sent when it stops listening."""
    return _session(FN_SPDU, b"", _RELEASE_REQUEST_PRESENTATION + _SHORT_TRAILER)


def release_response() -> bytes:
    return _session(DN_SPDU, b"", _RELEASE_RESPONSE_PRESENTATION + _SHORT_TRAILER)


def abort() -> bytes:
    return _session(AB_SPDU, _ABORT_PARAMETERS, _ABORT_PRESENTATION + _SHORT_TRAILER)


# --- data export builders --------------------------------------------------------------


def _data_export(ro_type: int, apdu: bytes) -> bytes:
    """SPpdu (session id, presentation context) + ROapdus (type, length) + apdu."""
    return (
        SESSION_ID.to_bytes(2, "big")
        + PRESENTATION_CONTEXT_ID.to_bytes(2, "big")
        + ro_type.to_bytes(2, "big")
        + len(apdu).to_bytes(2, "big")
        + apdu
    )


def _operation(invoke_id: int, command: int, body: bytes) -> bytes:
    """ROIVapdu / RORSapdu / ROERapdu head: invoke id, command (or error), length."""
    return (
        invoke_id.to_bytes(2, "big")
        + command.to_bytes(2, "big")
        + len(body).to_bytes(2, "big")
        + body
    )


def event_report_result(
    invoke_id: int, managed_object: ManagedObject, event_time: int, event_type: int
) -> bytes:
    """The client's answer to a confirmed event report (RORS, EventReportResult):
    echoes the report's invoke id, object and event type, with no reply info."""
    result = (
        managed_object.encode()
        + event_time.to_bytes(4, "big")  # current_time: the report's own RelativeTime
        + event_type.to_bytes(2, "big")
        + (0).to_bytes(2, "big")
    )
    return _data_export(RORS_APDU, _operation(invoke_id, CMD_CONFIRMED_EVENT_REPORT, result))


def mds_create_result(invoke_id: int, event_time: int = 0, mds: ManagedObject = MDS) -> bytes:
    """The answer to the MDS Create event report; until it arrives the monitor repeats
    the event and finally aborts the association (VSCaptureMP's mds_create_resp_msg)."""
    return event_report_result(invoke_id, mds, event_time, NOM_NOTI_MDS_CREAT)


def _poll_action(invoke_id: int, action_type: int, request: bytes) -> bytes:
    argument = (
        MDS.encode()  # polls are actions on the MDS {33, 0, 0}
        + (0).to_bytes(4, "big")  # scope
        + action_type.to_bytes(2, "big")
        + len(request).to_bytes(2, "big")
        + request
    )
    return _data_export(ROIV_APDU, _operation(invoke_id, CMD_CONFIRMED_ACTION, argument))


def poll_request(
    invoke_id: int, poll_number: int, obj_class: int, attr_group: int = NOM_ATTR_GRP_ALL
) -> bytes:
    """Single poll (NOM_ACT_POLL_MDIB_DATA): one result with the current values."""
    request = (
        poll_number.to_bytes(2, "big")
        + NOM_PART_OBJ.to_bytes(2, "big")  # polled_obj_type: TYPE {partition, code}
        + obj_class.to_bytes(2, "big")
        + attr_group.to_bytes(2, "big")
    )
    return _poll_action(invoke_id, NOM_ACT_POLL_MDIB_DATA, request)


def extended_poll_request(
    invoke_id: int,
    poll_number: int,
    obj_class: int,
    attr_group: int = NOM_ATTR_GRP_ALL,
    period_s: float | None = None,
) -> bytes:
    """Extended poll (NOM_ACT_POLL_MDIB_DATA_EXT): with a period, the monitor sends
    results by itself (waves every 256 ms, numerics every second) until it ends."""
    attributes = []
    if period_s is not None:
        attributes.append((NOM_ATTR_TIME_PD_POLL, ticks(period_s).to_bytes(4, "big")))
    request = (
        poll_number.to_bytes(2, "big")
        + NOM_PART_OBJ.to_bytes(2, "big")
        + obj_class.to_bytes(2, "big")
        + attr_group.to_bytes(2, "big")
        + encode_attribute_list(attributes)
    )
    return _poll_action(invoke_id, NOM_ACT_POLL_MDIB_DATA_EXT, request)


def keep_alive_request(invoke_id: int, poll_number: int) -> bytes:
    """The guide's recommended keep-alive: a poll of the alert monitor's static context,
    whose result is short."""
    return poll_request(invoke_id, poll_number, NOM_MOC_VMO_AL_MON, NOM_ATTR_GRP_VMO_STATIC)


def mds_create_event(
    invoke_id: int,
    event_time: int,
    attributes: Iterable[tuple[int, bytes]],
    mds: ManagedObject = MDS,
) -> bytes:
    """The monitor's MDS Create event report (confirmed), simulator side."""
    info = mds.encode() + encode_attribute_list(attributes)
    argument = (
        MDS.encode()
        + event_time.to_bytes(4, "big")
        + NOM_NOTI_MDS_CREAT.to_bytes(2, "big")
        + len(info).to_bytes(2, "big")
        + info
    )
    return _data_export(ROIV_APDU, _operation(invoke_id, CMD_CONFIRMED_EVENT_REPORT, argument))


def poll_result(
    invoke_id: int,
    poll_number: int,
    obj_class: int,
    contexts: Sequence[tuple[int, Sequence[tuple[int, Sequence[tuple[int, bytes]]]]]],
    *,
    rel_time: int = 0,
    abs_time: dt.datetime | None = None,
    attr_group: int = NOM_ATTR_GRP_ALL,
    extended: bool = False,
    sequence_no: int = 0,
    linked: tuple[int, int] | None = None,
) -> bytes:
    """A poll result, simulator side: `contexts` is [(context_id, [(handle, attributes)])].

    Extended results carry a sequence number and (the guide says) no absolute time;
    `linked` = (state, count) makes it one RORLSapdu of a series.
    """
    info_list = encode_list(
        context_id.to_bytes(2, "big")
        + encode_list(
            handle.to_bytes(2, "big") + encode_attribute_list(attrs) for handle, attrs in objects
        )
        for context_id, objects in contexts
    )
    reply = poll_number.to_bytes(2, "big")
    if extended:
        reply += sequence_no.to_bytes(2, "big")
    reply += (
        rel_time.to_bytes(4, "big")
        + encode_absolute_time(None if extended else abs_time)
        + NOM_PART_OBJ.to_bytes(2, "big")
        + obj_class.to_bytes(2, "big")
        + attr_group.to_bytes(2, "big")
        + info_list
    )
    action = NOM_ACT_POLL_MDIB_DATA_EXT if extended else NOM_ACT_POLL_MDIB_DATA
    result = MDS.encode() + action.to_bytes(2, "big") + len(reply).to_bytes(2, "big") + reply
    apdu = _operation(invoke_id, CMD_CONFIRMED_ACTION, result)
    if linked is None:
        return _data_export(RORS_APDU, apdu)
    return _data_export(RORLS_APDU, bytes(linked) + apdu)


def remote_error(invoke_id: int, error_value: int) -> bytes:
    return _data_export(ROER_APDU, _operation(invoke_id, error_value, b""))


# --- attribute value encoders (simulator and tests) ------------------------------------


def nu_obs_value(physio_id: int, unit_code: int, value: Decimal | None, state: int = 0) -> bytes:
    """NuObsValue: physio id, measurement state, unit code, FLOATType value."""
    return (
        physio_id.to_bytes(2, "big")
        + state.to_bytes(2, "big")
        + unit_code.to_bytes(2, "big")
        + encode_float(value).to_bytes(4, "big")
    )


def sa_obs_value(physio_id: int, samples: bytes, state: int = 0) -> bytes:
    """SaObsValue: physio id, state, then the samples as a length-prefixed octet string."""
    return (
        physio_id.to_bytes(2, "big")
        + state.to_bytes(2, "big")
        + len(samples).to_bytes(2, "big")
        + samples
    )


def sa_spec(
    array_size: int, sample_size: int = 16, significant_bits: int = 16, flags: int = 0
) -> bytes:
    """SaSpec: array size, SampleType {sample size bits, significant bits}, SaFlags."""
    return (
        array_size.to_bytes(2, "big")
        + bytes((sample_size, significant_bits))
        + flags.to_bytes(2, "big")
    )


def scale_range_spec16(
    lower_abs: Decimal | None, upper_abs: Decimal | None, lower_scaled: int, upper_scaled: int
) -> bytes:
    """ScaleRangeSpec16: absolute range (FLOATType, NaN when none) over the scaled range."""
    return (
        encode_float(lower_abs).to_bytes(4, "big")
        + encode_float(upper_abs).to_bytes(4, "big")
        + lower_scaled.to_bytes(2, "big")
        + upper_scaled.to_bytes(2, "big")
    )


def dev_alarm_entry(
    al_source: int,
    al_code: int,
    al_type: int,
    text: str | None = None,
    *,
    al_state: int = 0,
    instance: int = 0,
    obj: ManagedObject = ManagedObject(NOM_MOC_VMO_METRIC_NU),
) -> bytes:
    """DevAlarmEntry with StrAlMonInfo (text) or AlMonGenInfo (no text)."""
    info = instance.to_bytes(2, "big") + (0).to_bytes(4, "big")  # al_inst_no, al_text TextId
    info += al_type.to_bytes(2, "big") + (0).to_bytes(2, "big")  # priority, flags
    if text is None:
        info_id = GEN_ALMON_INFO
    else:
        info_id = STR_ALMON_INFO
        encoded = text.encode("utf-16-be")
        info += len(encoded).to_bytes(2, "big") + encoded
    return (
        al_source.to_bytes(2, "big")
        + al_code.to_bytes(2, "big")
        + al_type.to_bytes(2, "big")
        + al_state.to_bytes(2, "big")
        + obj.encode()
        + info_id.to_bytes(2, "big")
        + len(info).to_bytes(2, "big")
        + info
    )


GEN_ALMON_INFO = 513
STR_ALMON_INFO = 516
