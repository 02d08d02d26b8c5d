"""Philips IntelliVue Data Export over MIB/RS-232 (docs/protocols/intellivue.md): framing, types,
messages, decoder, conversation, simulator and the serial edge.

Vectors are built field by field from the Data Export Interface Programming Guide's
layouts (each field commented); no capture of a real monitor is published (VSCaptureMP
issue #6), so none is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from waiting import until

from device_drivers.serial.intellivue import SERIAL_SETTINGS, serial_settings
from device_drivers.serial.intellivue import messages as msg
from device_drivers.serial.intellivue.conversation import (
    ASSOCIATING,
    AWAITING_MDS,
    POLLING,
    RELEASED,
    RELEASING,
    WAITING,
    IntelliVueConversation,
)
from device_drivers.serial.intellivue.decode import decode_frame
from device_drivers.serial.intellivue.framing import (
    MAX_FRAME,
    FrameReader,
    encode_frame,
    escape,
    fcs16,
    fcs_register,
    unframe,
)
from device_drivers.serial.intellivue.parse import parse_user_data
from device_drivers.serial.intellivue.types import (
    FLOAT_NAN,
    Reader,
    decode_absolute_time,
    decode_float,
    encode_absolute_time,
    encode_attribute_list,
    encode_float,
    read_attribute_list,
    relative_time,
    ticks,
)
from device_drivers.serial.port import SerialTransport
from device_drivers.simulators import intellivue as sim
from edge_agent.model import Decoded, DecodeError

T = dt.datetime(2026, 11, 22, 10, 0, 5)


def h(*parts: str) -> bytes:
    """Hex fields written one per argument, so each can carry its comment."""
    return bytes.fromhex(" ".join(parts))


def frame_content(user_data: bytes) -> bytes:
    """What FrameReader emits for `user_data`: header + data + FCS, unescaped."""
    (content,) = FrameReader().feed(encode_frame(user_data))
    return content


# --- stage 1: framing, FCS, transparency -----------------------------------------------


def test_fcs_check_value_and_residue() -> None:
    # RFC 1662 / CRC-16/X-25: the FCS of "123456789" is 0x906E, sent 6E 90, and the
    # register over data + FCS is the residue 0xF0B8.
    assert fcs16(b"123456789") == 0x906E
    assert fcs_register(b"123456789" + h("6E 90")) == 0xF0B8
    assert fcs_register(b"123456789" + h("90 6E")) != 0xF0B8


def test_frame_layout() -> None:
    user_data = h("E1 00 00 02")
    body = h("11 01", "00 04") + user_data  # protocol id, message type, length (BE)
    fcs = fcs16(body)
    assert encode_frame(user_data) == h("C0") + body + fcs.to_bytes(2, "little") + h("C1")


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        (h("C0"), h("7D E0")),
        (h("C1"), h("7D E1")),
        (h("7D"), h("7D 5D")),
        (h("00 C1 7E"), h("00 7D E1 7E")),
    ],
)
def test_transparency(raw: bytes, escaped: bytes) -> None:
    assert escape(raw) == escaped


def _user_data_whose_fcs_needs_escaping() -> bytes:
    for n in range(5000):
        data = n.to_bytes(2, "big") + b"x"
        fcs = fcs16(h("11 01 00 03") + data).to_bytes(2, "little")
        if any(b in (0xC0, 0xC1, 0x7D) for b in fcs):
            return data
    raise AssertionError("no such data")


def test_fcs_bytes_are_escaped_too() -> None:
    # VSCaptureMP's quirk: its sender leaves header and FCS unescaped.
    data = _user_data_whose_fcs_needs_escaping()
    wire = encode_frame(data)
    assert wire[0] == 0xC0 and wire[-1] == 0xC1
    assert all(b not in (0xC0, 0xC1) for b in wire[1:-1])
    (content,) = FrameReader().feed(wire)
    assert unframe(content) == data


def test_length_byte_needing_escape() -> None:
    data = bytes(0xC0)  # 192 bytes: the length field 00 C0 must be escaped
    wire = encode_frame(data)
    assert wire[:5] == h("C0 11 01 00 7D")
    assert unframe(FrameReader().feed(wire)[0]) == data


def test_abort_sequence_drops_the_frame() -> None:
    good = encode_frame(h("E1 00 00 02"))
    aborted = h("C0 11 01 00 10 E1 00 7D C1")  # 7D C1: the sender gave up
    assert FrameReader().feed(aborted + good) == [frame_content(h("E1 00 00 02"))]


def test_lost_end_byte_and_noise_are_kept_for_quarantine() -> None:
    good = encode_frame(msg.release_request())
    reader = FrameReader()
    # noise before the first C0, then a frame whose C1 was lost, then a good frame
    frames = reader.feed(h("55 AA") + good[:-1] + good)
    content = frame_content(msg.release_request())
    assert frames == [h("55 AA"), content, content]
    with pytest.raises(DecodeError):
        decode_frame(frames[0])
    assert decode_frame(frames[1]) == Decoded()


def test_reader_bounds_its_buffer() -> None:
    reader = FrameReader()
    # A frame that never ends: its first MAX_FRAME bytes, then the rest as noise pieces.
    assert reader.feed(h("C0") + bytes(3 * MAX_FRAME)) == [bytes(MAX_FRAME)] * 3
    assert reader.feed(encode_frame(b"\xe1")) == [frame_content(b"\xe1")]


def test_framer_output_does_not_depend_on_read_splits() -> None:
    payloads = [h("E1 00 00 02"), bytes(range(256)), _user_data_whose_fcs_needs_escaping()]
    stream = h("01 02") + b"".join(encode_frame(p) for p in payloads)
    stream += h("C0 11 01 7D C1") + encode_frame(b"\x0d\x00")
    whole = FrameReader().feed(stream)
    assert whole[0] == h("01 02") and len(whole) == 5
    for cut in range(1, len(stream)):
        reader = FrameReader()
        assert reader.feed(stream[:cut]) + reader.feed(stream[cut:]) == whole
    reader = FrameReader()
    assert [f for b in stream for f in reader.feed(bytes((b,)))] == whole


@pytest.mark.parametrize(
    ("content", "offset", "reason"),
    [
        (h("11 01 00"), 0, "shorter than header + FCS"),
        (h("12 01 00 00 00 00"), 0, "protocol id 0x12"),
        (h("11 02 00 00 00 00"), 1, "message type 0x02"),
        (h("11 01 00 05 E1 00 00 00"), 2, "header says 5 bytes of user data, frame has 2"),
        (h("11 01 00 01 E1 00 00"), 5, "FCS 0x0000"),
    ],
)
def test_rejected_frames(content: bytes, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_frame(content)
    assert info.value.offset == offset
    assert reason in info.value.reason


@given(st.binary(max_size=300))
def test_fuzz_framer_never_raises(data: bytes) -> None:
    reader = FrameReader(max_frame=64)
    for frame in reader.feed(data):
        assert 0 < len(frame) <= 64


# --- stage 2: basic types --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value", "flag"),
    [
        (0xFF0002D0, Decimal("72.0"), None),  # exponent -1, mantissa 720
        (0x00000062, Decimal(98), None),  # exponent 0, mantissa 98
        (0xFE000F8D, Decimal("39.81"), None),  # exponent -2, mantissa 3981
        (0xFDFFFC18, Decimal("-1.000"), None),  # exponent -3, mantissa -1000
        (0x02000003, Decimal("3E+2"), None),  # exponent +2, mantissa 3
        (0x007FFFFF, None, "nan"),
        (0x00800000, None, "nres"),
        (0x007FFFFE, None, "+inf"),
        (0x00800002, None, "-inf"),
    ],
)
def test_float_type(raw: int, value: Decimal | None, flag: str | None) -> None:
    assert decode_float(raw) == (value, flag)
    if value is not None:
        assert encode_float(value) == raw


def test_float_encoding_keeps_digits_and_refuses_what_does_not_fit() -> None:
    assert encode_float(None) == FLOAT_NAN
    assert decode_float(encode_float(Decimal("40.955")))[0] == Decimal("40.955")
    with pytest.raises(ValueError):
        encode_float(Decimal("1E+200"))  # the exponent is a signed byte
    with pytest.raises(ValueError):
        encode_float(Decimal("123456789"))  # nine significant digits


@given(st.integers(-(2**23) + 3, 2**23 - 3), st.integers(-128, 127))
def test_float_round_trip(mantissa: int, exponent: int) -> None:
    raw = ((exponent & 0xFF) << 24) | (mantissa & 0xFFFFFF)
    value, flag = decode_float(raw)
    assert flag is None and value == Decimal(mantissa).scaleb(exponent)
    assert decode_float(encode_float(value))[0] == value


@pytest.mark.parametrize(
    ("bcd", "when"),
    [
        (h("20 26 11 22 10 00 05 00"), T),  # century, year, month, day, h, m, s, 1/100 s
        (h("20 24 02 29 23 59 59 50"), dt.datetime(2024, 2, 29, 23, 59, 59, 500_000)),
        (h("FF FF FF FF FF FF FF FF"), None),  # the guide's "not supported"
        (h("20 25 02 29 00 00 00 00"), None),  # no 29 February in 2025
        (h("20 2A 01 01 00 00 00 00"), None),  # 0x2A is no BCD digit
        (h("20 26 11 22"), None),  # short
    ],
)
def test_bcd_absolute_time(bcd: bytes, when: dt.datetime | None) -> None:
    assert decode_absolute_time(bcd) == when
    if when is not None:
        assert encode_absolute_time(when) == bcd


def test_relative_time_counts_eighth_milliseconds() -> None:
    assert relative_time(8000) == dt.timedelta(seconds=1)
    assert relative_time(1) == dt.timedelta(microseconds=125)
    assert ticks(0.256) == 2048
    assert ticks(600) == 0x00493E00


def test_attribute_list() -> None:
    data = h(
        "00 02",  # count
        "00 0E",  # length of what follows
        "09 96 00 02 0F 20",  # NOM_ATTR_UNIT_CODE, 2 bytes: mmHg
        "09 8D 00 04 00 00 00 10",  # NOM_ATTR_TIME_PD_SAMP, 4 bytes: 16 ticks
    )
    avas = read_attribute_list(Reader(data, 10))
    assert [(a.attribute_id, a.value, a.offset) for a in avas] == [
        (0x0996, h("0F 20"), 18),
        (0x098D, h("00 00 00 10"), 24),
    ]
    assert encode_attribute_list([(0x0996, h("0F 20")), (0x098D, h("00 00 00 10"))]) == data
    with pytest.raises(DecodeError) as info:
        read_attribute_list(Reader(h("00 02 00 06 09 96 00 02 0F 20"), 10))
    assert info.value.offset == 20 and "entry 1" in info.value.reason


# --- stage 3: association and MDS Create -----------------------------------------------

USER_INFO = h(
    "80 00 00 00",  # protocol version MDDL_VERSION1
    "40 00 00 00",  # nomenclature version NOMEN_VERSION
    "00 00 00 00",  # functional units
    "80 00 00 00",  # system type SYST_CLIENT
    "20 00 00 00",  # startup mode COLD_START
    "00 00 00 00",  # option list: empty AttributeList
    "00 01 00 2C",  # supported application profiles: 1 AVA, 44 bytes
    "00 01 00 28",  # NOM_POLL_PROFILE_SUPPORT, 40 bytes
    "80 00 00 00",  # poll profile revision POLL_PROFILE_REV_0
    "00 00 09 C4",  # min poll period 2500 x 1/8 ms = 312.5 ms (< 3.3 s: 10 s timeout)
    "00 00 05 54",  # max mtu rx 1364
    "00 00 03 E8",  # max mtu tx 1000
    "FF FF FF FF",  # max bw tx
    "60 00 00 00",  # options P_OPT_DYN_CREATE_OBJECTS | P_OPT_DYN_DELETE_OBJECTS
    "00 01 00 0C",  # optional packages: 1 AVA, 12 bytes
    "F0 01 00 08",  # NOM_ATTR_POLL_PROFILE_EXT, 8 bytes
    "88 00 00 00",  # POLL_EXT_PERIOD_NU_1SEC | POLL_EXT_PERIOD_RTSA
    "00 00 00 00",  # ext attributes: empty
)


def test_association_request_layout() -> None:
    request = msg.association_request()
    assert request[:2] == h("0D EC")  # connect SPDU, LI = 236 bytes follow
    assert len(request) == 2 + 0xEC
    assert request[2:16] == h("05 08 13 01 00 16 01 02 80 00", "14 02 00 02")  # session
    assert request[16:18] == h("C1 DC")  # presentation data, 220 bytes
    head = request[18 : -(72 + 16 + 1)]  # presentation header, up to the user info
    assert len(head) == 220 - 72 - 16 - 1
    assert head.startswith(h("31 80", "A0 80 80 01 01 00 00"))  # CP-type, normal mode
    assert head.endswith(
        h(
            "BE 80 28 80",  # user information: EXTERNAL
            "06 0C 2A 86 48 CE 14 02 01 00 00 00 01 01",  # direct reference: MDDL
            "02 01 02",  # indirect reference: presentation context 2
            "81",  # single-ASN1-type
        )
    )
    assert request[-(72 + 16 + 1)] == 72  # its ASN.1 length
    assert request[-(72 + 16) : -16] == USER_INFO
    assert request[-16:] == bytes(16)  # end-of-contents of 8 indefinite lengths
    parsed = parse_user_data(request)
    assert isinstance(parsed, msg.SessionMessage) and parsed.spdu == msg.CN_SPDU
    assert parsed.poll_profile is not None and parsed.poll_profile.ext_options == 0x88000000


def test_association_response_tells_what_was_granted() -> None:
    response = parse_user_data(msg.association_response(msg.POLL_EXT_PERIOD_NU_1SEC))
    assert isinstance(response, msg.SessionMessage) and response.name == "association response"
    assert response.poll_profile is not None
    assert response.poll_profile.ext_options == msg.POLL_EXT_PERIOD_NU_1SEC


@pytest.mark.parametrize(
    ("data", "spdu"),
    [
        (h("0C 03", "32 01 00"), msg.RF_SPDU),  # refuse: reason parameter
        (
            h(
                "09 18",
                "C1 16",
                "61 80 30 80 02 01 01 A0 80 62 80 80 01 00 00 00 00 00",
                "00 00 00 00",
            ),
            msg.FN_SPDU,
        ),
        (
            h(
                "0A 18",
                "C1 16",
                "61 80 30 80 02 01 01 A0 80 63 80 80 01 00 00 00 00 00",
                "00 00 00 00",
            ),
            msg.DN_SPDU,
        ),
    ],
)
def test_association_control_messages(data: bytes, spdu: int) -> None:
    builders = {
        msg.RF_SPDU: msg.refuse,
        msg.FN_SPDU: msg.release_request,
        msg.DN_SPDU: msg.release_response,
    }
    assert builders[spdu]() == data
    assert parse_user_data(data) == msg.SessionMessage(spdu)
    assert decode_frame(frame_content(data)) == Decoded()
    assert parse_user_data(msg.abort()) == msg.SessionMessage(msg.AB_SPDU)


MDS_CREATE = h(
    "E1 00",  # session id: data export
    "00 02",  # presentation context id
    "00 01",  # ROapdus: ROIV_APDU
    "00 38",  # ROapdus length: 56
    "00 07",  # invoke id 7
    "00 01",  # CMD_CONFIRMED_EVENT_REPORT
    "00 32",  # ROIV length: 50
    "00 21 00 00 00 00",  # managed object: MDS {33, context 0, handle 0}
    "00 01 F4 00",  # event time: 128000 ticks = 16 s
    "0D 06",  # NOM_NOTI_MDS_CREAT
    "00 24",  # event info length: 36
    "00 21 00 00 00 00",  # MdsCreateInfo: the MDS object
    "00 03 00 1A",  # attribute list: 3 AVAs, 26 bytes
    "09 87 00 08 20 26 11 22 10 00 05 00",  # NOM_ATTR_TIME_ABS: 2026-11-22 10:00:05
    "09 8F 00 04 00 01 F4 00",  # NOM_ATTR_TIME_REL: 128000 ticks
    "09 46 00 02 00 00",  # NOM_ATTR_MODE_OP
)
MDS_CREATE_RESULT = h(
    "E1 00 00 02",  # session id, presentation context
    "00 02",  # RORS_APDU
    "00 14",  # length 20
    "00 07",  # invoke id echoed
    "00 01",  # CMD_CONFIRMED_EVENT_REPORT
    "00 0E",  # length 14
    "00 21 00 00 00 00",  # the MDS object echoed
    "00 01 F4 00",  # current time: the event's time
    "0D 06",  # NOM_NOTI_MDS_CREAT
    "00 00",  # no reply info
)


def test_mds_create_event_and_its_result() -> None:
    fixed_attrs = [
        (msg.NOM_ATTR_TIME_ABS, encode_absolute_time(T)),
        (msg.NOM_ATTR_TIME_REL, h("00 01 F4 00")),
        (msg.NOM_ATTR_MODE_OP, h("00 00")),
    ]
    assert len(MDS_CREATE) == 8 + 0x38
    assert msg.mds_create_event(7, 128000, fixed_attrs) == MDS_CREATE
    report = parse_user_data(MDS_CREATE)
    assert isinstance(report, msg.EventReport) and report.confirmed
    assert report.event_type == msg.NOM_NOTI_MDS_CREAT and report.event_time == 128000
    assert decode_absolute_time(report.attributes[0].value) == T
    assert decode_frame(frame_content(MDS_CREATE)) == Decoded()
    assert msg.mds_create_result(7, 128000) == MDS_CREATE_RESULT
    assert parse_user_data(MDS_CREATE_RESULT) == msg.EventReportResult(
        7, msg.MDS, 128000, msg.NOM_NOTI_MDS_CREAT
    )


# --- stage 4: polls and numerics -------------------------------------------------------

NUMERICS_POLL = h(
    "E1 00 00 02",  # session id, presentation context
    "00 01",  # ROIV_APDU
    "00 1C",  # length 28
    "00 05",  # invoke id 5
    "00 07",  # CMD_CONFIRMED_ACTION
    "00 16",  # length 22
    "00 21 00 00 00 00",  # ActionArgument: the MDS
    "00 00 00 00",  # scope
    "0C 16",  # NOM_ACT_POLL_MDIB_DATA
    "00 08",  # length 8
    "00 09",  # poll number 9
    "00 01 00 06",  # polled object type {NOM_PART_OBJ, NOM_MOC_VMO_METRIC_NU}
    "00 00",  # attribute group: all
)
WAVES_EXT_POLL = h(
    "E1 00 00 02",
    "00 01 00 28",  # ROIV_APDU, length 40
    "00 06 00 07 00 22",  # invoke id 6, CMD_CONFIRMED_ACTION, length 34
    "00 21 00 00 00 00",  # the MDS
    "00 00 00 00",  # scope
    "F1 3B",  # NOM_ACT_POLL_MDIB_DATA_EXT
    "00 14",  # length 20
    "00 0A",  # poll number 10
    "00 01 00 09",  # {NOM_PART_OBJ, NOM_MOC_VMO_METRIC_SA_RT}
    "00 00",  # attribute group: all
    "00 01 00 08",  # poll extension attributes: 1 AVA, 8 bytes
    "F1 3E 00 04 00 07 53 00",  # NOM_ATTR_TIME_PD_POLL: 480000 ticks = 60 s
)


def test_poll_requests() -> None:
    assert msg.poll_request(5, 9, msg.NOM_MOC_VMO_METRIC_NU) == NUMERICS_POLL
    assert (
        msg.extended_poll_request(6, 10, msg.NOM_MOC_VMO_METRIC_SA_RT, period_s=60)
        == WAVES_EXT_POLL
    )
    assert parse_user_data(WAVES_EXT_POLL) == msg.PollRequest(
        6, msg.NOM_ACT_POLL_MDIB_DATA_EXT, 10, msg.NOM_MOC_VMO_METRIC_SA_RT, 0, 480000
    )
    keep_alive = parse_user_data(msg.keep_alive_request(1, 2))
    assert isinstance(keep_alive, msg.PollRequest)
    assert (keep_alive.obj_class, keep_alive.attr_group) == (54, 0x0811)
    assert decode_frame(frame_content(NUMERICS_POLL)) == Decoded()


NUMERICS_RESULT = h(
    "E1 00 00 02",  # session id, presentation context
    "00 02",  # RORS_APDU
    "00 6E",  # length 110
    "00 05",  # invoke id 5 (the request's)
    "00 07",  # CMD_CONFIRMED_ACTION
    "00 68",  # length 104
    "00 21 00 00 00 00",  # ActionResult: the MDS
    "0C 16",  # NOM_ACT_POLL_MDIB_DATA
    "00 5E",  # length 94
    "00 09",  # poll number 9
    "00 00 1F 40",  # relative time 8000 ticks
    "20 26 11 22 10 00 05 00",  # absolute time 2026-11-22 10:00:05
    "00 01 00 06",  # polled object type: numerics
    "00 00",  # attribute group: all
    "00 01 00 46",  # PollInfoList: 1 SingleContextPoll, 70 bytes
    "00 00",  # context id 0
    "00 02 00 40",  # 2 ObservationPolls, 64 bytes
    "00 10",  # object handle 0x10
    "00 01 00 0E",  # attribute list: 1 AVA, 14 bytes
    "09 50 00 0A",  # NOM_ATTR_NU_VAL_OBS, 10 bytes
    "41 82 0000 0A A0 FF 00 02 D0",  # HR, state ok, bpm, 72.0
    "00 11",  # object handle 0x11
    "00 01 00 26",  # attribute list: 1 AVA, 38 bytes
    "09 4B 00 22",  # NOM_ATTR_NU_CMPD_VAL_OBS, 34 bytes
    "00 03 00 1E",  # 3 NuObsValues, 30 bytes
    "4A 05 0000 0F 20 00 00 00 78",  # NIBP systolic 120 mmHg
    "4A 06 0000 0F 20 00 00 00 50",  # NIBP diastolic 80 mmHg
    "4A 07 0000 0F 20 00 00 00 5D",  # NIBP mean 93 mmHg
)


def _numerics_result_built() -> bytes:
    return msg.poll_result(
        5,
        9,
        msg.NOM_MOC_VMO_METRIC_NU,
        [
            (
                0,
                [
                    (
                        0x10,
                        [
                            (
                                msg.NOM_ATTR_NU_VAL_OBS,
                                msg.nu_obs_value(0x4182, 0x0AA0, Decimal("72.0")),
                            )
                        ],
                    ),
                    (
                        0x11,
                        [
                            (
                                msg.NOM_ATTR_NU_CMPD_VAL_OBS,
                                h("00 03 00 1E")
                                + msg.nu_obs_value(0x4A05, 0x0F20, Decimal(120))
                                + msg.nu_obs_value(0x4A06, 0x0F20, Decimal(80))
                                + msg.nu_obs_value(0x4A07, 0x0F20, Decimal(93)),
                            )
                        ],
                    ),
                ],
            )
        ],
        rel_time=8000,
        abs_time=T,
    )


def test_numerics_poll_result() -> None:
    assert _numerics_result_built() == NUMERICS_RESULT
    decoded = decode_frame(frame_content(NUMERICS_RESULT))
    assert [(r.metric, r.value, r.unit, r.device_time, r.flags) for r in decoded.readings] == [
        ("MDC_ECG_HEART_RATE", Decimal("72.0"), "MDC_DIM_BEAT_PER_MIN", T, ()),
        ("MDC_PRESS_BLD_NONINV_SYS", Decimal(120), "MDC_DIM_MMHG", T, ()),
        ("MDC_PRESS_BLD_NONINV_DIA", Decimal(80), "MDC_DIM_MMHG", T, ()),
        ("MDC_PRESS_BLD_NONINV_MEAN", Decimal(93), "MDC_DIM_MMHG", T, ()),
    ]


def _numeric_frame(
    *values: bytes, abs_time: dt.datetime | None = T, extra: list[tuple[int, bytes]] | None = None
) -> bytes:
    objects = [
        (0x20 + i, [(msg.NOM_ATTR_NU_VAL_OBS, v), *(extra or [])]) for i, v in enumerate(values)
    ]
    return frame_content(
        msg.poll_result(1, 1, msg.NOM_MOC_VMO_METRIC_NU, [(0, objects)], abs_time=abs_time)
    )


@pytest.mark.parametrize(
    ("physio", "unit", "metric", "unit_refid"),
    [
        (0x4182, 0x0AA0, "MDC_ECG_HEART_RATE", "MDC_DIM_BEAT_PER_MIN"),  # NOM_ECG_CARD_BEAT_RATE
        (0x4BB8, 0x0220, "MDC_PULS_OXIM_SAT_O2", "MDC_DIM_PERCENT"),  # NOM_PULS_OXIM_SAT_O2
        (0x4822, 0x0AA0, "MDC_PLETH_PULS_RATE", "MDC_DIM_BEAT_PER_MIN"),  # NOM_PLETH_PULS_RATE
        (0x500A, 0x0AE0, "MDC_RESP_RATE", "MDC_DIM_RESP_PER_MIN"),  # NOM_RESP_RATE
        (0x5012, 0x0AE0, "MDC_AWAY_RESP_RATE", "MDC_DIM_RESP_PER_MIN"),  # NOM_AWAY_RESP_RATE
        (0x4B48, 0x17A0, "MDC_TEMP", "MDC_DIM_DEGC"),  # NOM_TEMP
        (0x509C, 0x0F20, "MDC_AWAY_CO2_ET", "MDC_DIM_MMHG"),  # NOM_CONC_AWAY_CO2_ET
        (0x509C, 0x0F03, "MDC_AWAY_CO2_ET", "MDC_DIM_KILO_PASCAL"),
        (0x4A05, 0x0F20, "MDC_PRESS_BLD_NONINV_SYS", "MDC_DIM_MMHG"),
    ],
)
def test_physio_ids_are_mdc_term_codes(
    physio: int, unit: int, metric: str, unit_refid: str
) -> None:
    (reading,) = decode_frame(
        _numeric_frame(msg.nu_obs_value(physio, unit, Decimal("36.6")))
    ).readings
    assert (reading.metric, reading.unit, reading.value) == (metric, unit_refid, Decimal("36.6"))


@pytest.mark.parametrize(
    ("state", "raw", "value", "flags"),
    [
        (0x0000, 0xFF0002D0, Decimal("72.0"), ()),
        (0x8000, 0xFF0002D0, None, ("invalid",)),
        (0x4000, 0xFF0002D0, None, ("questionable",)),
        (0x2000, FLOAT_NAN, None, ("unavailable", "nan")),
        (0x0800, 0xFF0002D0, None, ("test-data",)),
        (0x0400, 0xFF0002D0, None, ("demo-data",)),
        (0x0002, 0xFF0002D0, Decimal("72.0"), ("in-alarm",)),
        (0x0080, 0xFF0002D0, Decimal("72.0"), ()),  # validated data: an ordinary value
        (0x0000, 0x00800000, None, ("nres",)),
        (0x0000, 0x007FFFFE, None, ("+inf",)),
    ],
)
def test_measurement_state_and_special_values(
    state: int, raw: int, value: Decimal | None, flags: tuple[str, ...]
) -> None:
    nu = h("41 82") + state.to_bytes(2, "big") + h("0A A0") + raw.to_bytes(4, "big")
    (reading,) = decode_frame(_numeric_frame(nu)).readings
    assert (reading.value, reading.flags) == (value, flags)


def test_unknown_physio_ids_are_skipped_and_unknown_units_flagged() -> None:
    decoded = decode_frame(
        _numeric_frame(
            msg.nu_obs_value(0x0300, 0x0000, Decimal(1)),  # ST segment: not reported here
            msg.nu_obs_value(0x4182, 0x1234, Decimal(60)),
        )
    )
    assert [(r.metric, r.unit, r.flags) for r in decoded.readings] == [
        ("MDC_ECG_HEART_RATE", "MDC_DIM_DIMLESS", ("unit-0x1234",))
    ]


def test_object_time_stamp_wins_and_extended_results_have_none() -> None:
    later = T + dt.timedelta(seconds=3)
    stamped = _numeric_frame(
        msg.nu_obs_value(0x4182, 0x0AA0, Decimal(60)),
        extra=[(msg.NOM_ATTR_TIME_STAMP_ABS, encode_absolute_time(later))],
    )
    assert decode_frame(stamped).readings[0].device_time == later
    extended = msg.poll_result(
        1,
        1,
        6,
        [(0, [(1, [(msg.NOM_ATTR_NU_VAL_OBS, msg.nu_obs_value(0x4182, 0x0AA0, Decimal(60)))])])],
        abs_time=T,
        extended=True,
        sequence_no=4,
    )
    assert extended[32:40] == bytes([0xFF] * 8)  # the guide: not supported in extended results
    parsed = parse_user_data(extended)
    assert isinstance(parsed, msg.PollResult) and parsed.sequence_no == 4
    assert decode_frame(frame_content(extended)).readings[0].device_time is None
    linked = msg.poll_result(1, 1, 6, [], extended=True, linked=(msg.RORLS_FIRST, 1))
    parsed = parse_user_data(linked)
    assert isinstance(parsed, msg.PollResult) and parsed.linked == (1, 1)


def _corrupt(vector: bytes, at: int, value: bytes) -> bytes:
    return vector[:at] + value + vector[at + len(value) :]


@pytest.mark.parametrize(
    ("user_data", "offset", "reason"),
    [
        (h("42"), 4, "unknown session id 0x42"),
        (h("E1 01 00 02"), 5, "expected 0xe100"),
        (
            _corrupt(NUMERICS_RESULT, 6, h("00 6F")),
            12,
            "remote operation: needs 111 bytes, 110 left",
        ),
        (_corrupt(NUMERICS_RESULT, 4, h("00 09")), 8, "unknown remote operation type 9"),
        # the offsets below are user-data offsets + 4 (the frame header)
        (_corrupt(NUMERICS_RESULT, 44, h("00 03")), 122, "context id: needs 2 bytes, 0 left"),
        (_corrupt(NUMERICS_RESULT, 56, h("00 0F")), 78, "entry 1 attribute id: needs 2 bytes"),
        (_corrupt(NUMERICS_RESULT, 62, h("00 0B")), 68, "attribute 0x0950: needs 11 bytes, 10"),
        (_corrupt(NUMERICS_RESULT, 84, h("00 04")), 122, "physio id: needs 2 bytes, 0 left"),
        (_corrupt(NUMERICS_RESULT, 84, h("00 02")), 112, "compound numeric list of 2: 10 bytes"),
        (NUMERICS_RESULT[:-1], 12, "remote operation: needs 110 bytes, 109 left"),
        (NUMERICS_RESULT + h("00"), 122, "data export message: 1 bytes beyond its end"),
        (_corrupt(h("0D 03 05 01 00"), 1, h("09")), 6, "needs 9 bytes, 3 left"),
        (h("0E 03 05 01 00"), 4, "association response without presentation data"),
    ],
)
def test_rejected_messages(user_data: bytes, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_frame(frame_content(user_data))
    assert reason in info.value.reason, info.value.reason
    assert info.value.offset == offset, info.value


def test_a_numeric_value_of_the_wrong_size_is_rejected() -> None:
    with pytest.raises(DecodeError) as info:
        decode_frame(_numeric_frame(h("41 82 00 00 0A A0 FF 00 02")))  # 9 bytes, not 10
    assert "numeric value: needs 4 bytes, 3 left" in info.value.reason


# --- stage 5: waves --------------------------------------------------------------------

ECG_SCALE = h(
    "FE FF F0 00",  # lower absolute value -40.96 (exponent -2, mantissa -4096)
    "FD 00 9F FB",  # upper absolute value 40.955 (exponent -3, mantissa 40955)
    "00 00",  # lower scaled value 0
    "3F FF",  # upper scaled value 16383
)


def _wave_frame(
    physio: int,
    samples: bytes,
    context: list[tuple[int, bytes]],
    *,
    state: int = 0,
) -> bytes:
    attrs = [(msg.NOM_ATTR_SA_VAL_OBS, msg.sa_obs_value(physio, samples, state)), *context]
    return frame_content(
        msg.poll_result(
            3, 4, msg.NOM_MOC_VMO_METRIC_SA_RT, [(0, [(0x30, attrs)])], extended=True, sequence_no=1
        )
    )


ECG_CONTEXT = [
    (
        msg.NOM_ATTR_SA_SPECN,
        h("00 80", "10 0E", "10 00"),
    ),  # 128 samples, 16 bits of which 14 significant, SA_EXT_VAL_RANGE
    (msg.NOM_ATTR_SCALE_SPECN_I16, ECG_SCALE),
    (msg.NOM_ATTR_TIME_PD_SAMP, h("00 00 00 10")),  # 16 x 1/8 ms = 2 ms: 500 per second
    (msg.NOM_ATTR_UNIT_CODE, h("10 B2")),  # NOM_DIM_MILLI_VOLT
]


def test_ecg_wave_with_its_context() -> None:
    assert msg.scale_range_spec16(Decimal("-40.96"), Decimal("40.955"), 0, 16383) == ECG_SCALE
    # 8192 is 0 mV; the top two bits (0xC000) are outside the 14 significant ones.
    samples = h("20 00", "20 C8", "1F 38", "E0 00")
    (wave,) = decode_frame(_wave_frame(0x0102, samples, ECG_CONTEXT)).waveforms
    assert (wave.metric, wave.rate_hz, wave.unit) == (
        "MDC_ECG_ELEC_POTL_II",
        500.0,
        "MDC_DIM_MILLI_VOLT",
    )
    assert wave.samples == (8192, 8392, 7992, 8192)
    assert [wave.physical(i) for i in range(4)] == [
        Decimal("0.000"),
        Decimal("1.000"),
        Decimal("-1.000"),
        Decimal("0.000"),
    ]
    assert wave.scale == Decimal("0.005") and wave.start_time is None


def test_pleth_wave_without_absolute_values_stays_raw_and_rate_falls_back_to_256_ms() -> None:
    context = [
        (msg.NOM_ATTR_SA_SPECN, msg.sa_spec(32, 16, 12)),
        (msg.NOM_ATTR_SCALE_SPECN_I16, msg.scale_range_spec16(None, None, 0, 4095)),  # NaN
    ]
    samples = b"".join(n.to_bytes(2, "big") for n in range(0, 3200, 100))
    (wave,) = decode_frame(_wave_frame(0x4BB4, samples, context)).waveforms
    assert wave.metric == "MDC_PULS_OXIM_PLETH"
    assert wave.rate_hz == 125.0  # 32 samples in the 256 ms of one real-time result
    assert (wave.unit, wave.scale, wave.offset) == ("MDC_DIM_DIMLESS", Decimal(1), Decimal(0))
    assert wave.samples == tuple(range(0, 3200, 100))


def test_wave_without_any_context_is_raw_16_bit() -> None:
    (wave,) = decode_frame(_wave_frame(0x0102, bytes(256), [])).waveforms
    assert (len(wave.samples), wave.rate_hz, wave.unit) == (128, 500.0, "MDC_DIM_DIMLESS")


def test_signed_8_bit_samples_and_compound_arrays() -> None:
    compound = (
        h("00 02 00 11")
        + msg.sa_obs_value(0x0102, h("01 FF 80"))
        + msg.sa_obs_value(0x0101, h("7F 00"))
    )
    attrs = [
        (msg.NOM_ATTR_SA_CMPD_VAL_OBS, compound),
        (msg.NOM_ATTR_SA_SPECN, msg.sa_spec(3, 8, 255)),  # 255: two's complement samples
        (msg.NOM_ATTR_TIME_PD_SAMP, h("00 00 00 20")),  # 4 ms: 250 per second
    ]
    content = frame_content(msg.poll_result(1, 1, 9, [(0, [(1, attrs)])], abs_time=T))
    waves = decode_frame(content).waveforms
    assert [(w.metric, w.samples, w.rate_hz, w.start_time) for w in waves] == [
        ("MDC_ECG_ELEC_POTL_II", (1, -1, -128), 250.0, T),
        ("MDC_ECG_ELEC_POTL_I", (127, 0), 250.0, T),
    ]


def test_invalid_and_unknown_waves_are_skipped() -> None:
    assert decode_frame(_wave_frame(0x0102, bytes(4), [], state=0x8000)).waveforms == ()
    assert decode_frame(_wave_frame(0x5123, bytes(4), [])).waveforms == ()


@pytest.mark.parametrize(
    ("samples", "context", "reason"),
    [
        (bytes(3), [], "3 bytes of samples are not whole 16-bit samples"),
        (
            bytes(4),
            [(msg.NOM_ATTR_SA_SPECN, h("00 02 20 20"))],
            "sample array specification of 4 bytes",
        ),
        (bytes(4), [(msg.NOM_ATTR_SA_SPECN, msg.sa_spec(1, 32, 32))], "sample size of 32 bits"),
        (bytes(4), [(msg.NOM_ATTR_TIME_PD_SAMP, h("00 00 00 00"))], "sample period of 0"),
        (
            bytes(4),
            [(msg.NOM_ATTR_SCALE_SPECN_I16, bytes(11))],
            "scale and range specification of 11",
        ),
    ],
)
def test_rejected_waves(samples: bytes, context: list[tuple[int, bytes]], reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_frame(_wave_frame(0x0102, samples, context))
    assert reason in info.value.reason


# --- stage 6: alarms -------------------------------------------------------------------

SPO2_LOW_ALARM = h(
    "4B B8",  # al_source: NOM_PULS_OXIM_SAT_O2
    "30 1A",  # al_code (an event code of the monitor's alarm table)
    "04 00",  # al_type HI_PRI_P_AL
    "00 00",  # al_state
    "00 06 00 00 00 21",  # object: numeric, context 0, handle 0x21
    "02 04",  # alert_info_id STR_ALMON_INFO (516)
    "00 18",  # length 24
    "00 01",  # al_inst_no
    "00 00 00 00",  # al_text (TextId)
    "04 00",  # priority
    "00 00",  # flags
    "00 0C",  # string length 12 bytes: 6 UTF-16 characters
    "00 53 00 70 00 4F 00 32 00 20 00 00",  # "SpO2 " and a NUL pad
)


def _alarm_frame(patient: bytes, technical: bytes = h("00 00 00 00")) -> bytes:
    attrs = [(msg.NOM_ATTR_AL_MON_P_AL_LIST, patient), (msg.NOM_ATTR_AL_MON_T_AL_LIST, technical)]
    return frame_content(
        msg.poll_result(1, 1, msg.NOM_MOC_VMO_AL_MON, [(0, [(1, attrs)])], attr_group=0x0801)
    )


def test_patient_and_technical_alarms() -> None:
    built = msg.dev_alarm_entry(
        0x4BB8, 0x301A, 0x0400, "SpO2 \x00", instance=1, obj=msg.ManagedObject(6, 0, 0x21)
    )
    assert built == SPO2_LOW_ALARM
    leads_off = msg.dev_alarm_entry(0x0102, 0x0201, 0x0002)  # MED_PRI_T_AL, no text
    quiet = msg.dev_alarm_entry(0x4182, 0x0001, 0x0000)  # NO_ALERT
    decoded = decode_frame(
        _alarm_frame(
            h("00 01 00 2A") + SPO2_LOW_ALARM,
            h("00 02") + len(leads_off + quiet).to_bytes(2, "big") + leads_off + quiet,
        )
    )
    assert [(a.code, a.priority, a.text) for a in decoded.alarms] == [
        ("INTELLIVUE_PATIENT_4BB8_301A", "high", "SpO2"),
        (
            "INTELLIVUE_TECHNICAL_0102_0201",
            "medium",
            "technical alarm 0x0201 on MDC_ECG_ELEC_POTL_II",
        ),
    ]


def test_empty_alarm_lists_and_a_bad_entry() -> None:
    assert decode_frame(_alarm_frame(h("00 00 00 00"))).alarms == ()
    with pytest.raises(DecodeError) as info:
        decode_frame(_alarm_frame(h("00 01 00 29") + SPO2_LOW_ALARM[:-1]))
    assert "alert info: needs 24 bytes, 23 left" in info.value.reason


# --- the conversation: scripted frames in, bytes out -----------------------------------


def sent(frames: list[bytes]) -> list[msg.Message]:
    """What the conversation wrote, parsed back (each write must be one whole frame)."""
    out = []
    for wire in frames:
        (content,) = FrameReader().feed(wire)
        out.append(parse_user_data(unframe(content)))
    return out


def kinds(frames: list[bytes]) -> list[str]:
    names = []
    for message in sent(frames):
        if isinstance(message, msg.SessionMessage):
            names.append(message.name)
        elif isinstance(message, msg.PollRequest):
            names.append(
                {
                    6: "numerics",
                    9: "waves",
                    54: "alarms" if message.attr_group == 0x0801 else "keep-alive",
                }[message.obj_class]
                + (" (extended)" if message.extended else "")
            )
        elif isinstance(message, msg.EventReportResult):
            names.append("event report result")
        else:
            names.append(type(message).__name__)
    return names


def associated(
    conversation: IntelliVueConversation, now: float = 0.0, granted: int = 0x88000000
) -> list[bytes]:
    assert kinds(conversation.opened(now)) == ["association request"]
    assert conversation.received(frame_content(msg.association_response(granted)), now + 0.1) == []
    assert conversation.state == AWAITING_MDS
    return conversation.received(frame_content(MDS_CREATE), now + 0.2)


def test_association_mds_create_and_first_polls() -> None:
    conversation = IntelliVueConversation()
    out = associated(conversation)
    assert out[0] == encode_frame(MDS_CREATE_RESULT)  # answered first, invoke id echoed
    assert kinds(out) == ["event report result", "numerics", "waves (extended)"]
    wave_poll = sent(out)[2]
    assert isinstance(wave_poll, msg.PollRequest) and wave_poll.period == ticks(60)
    assert conversation.state == POLLING and conversation.waves_granted


def test_polling_rhythm() -> None:
    conversation = IntelliVueConversation()
    associated(conversation)  # at 0.2: numerics and waves
    assert kinds(conversation.tick(0.7)) == []
    assert kinds(conversation.tick(1.2)) == ["numerics", "alarms"]  # alarms half a period later
    assert kinds(conversation.tick(2.2)) == ["numerics"]
    assert kinds(conversation.tick(3.2)) == ["numerics", "alarms"]
    conversation.received(frame_content(NUMERICS_RESULT), 3.3)  # keeps the link alive
    for now in range(4, 58):
        conversation.received(frame_content(NUMERICS_RESULT), now + 0.1)
        assert "waves (extended)" not in kinds(conversation.tick(now + 0.2))
    assert "waves (extended)" in kinds(conversation.tick(58.3))  # renewed before 60 s run out


def test_numbers_and_invoke_ids_increase() -> None:
    conversation = IntelliVueConversation()
    associated(conversation)
    polls = [
        m
        for m in sent(conversation.tick(1.2) + conversation.tick(2.2))
        if isinstance(m, msg.PollRequest)
    ]
    assert [p.invoke_id for p in polls] == [3, 4, 5] and [p.poll_number for p in polls] == [3, 4, 5]


def test_waves_not_granted_are_not_polled() -> None:
    conversation = IntelliVueConversation()
    out = associated(conversation, granted=msg.POLL_EXT_PERIOD_NU_1SEC)
    assert kinds(out) == ["event report result", "numerics"]
    assert not conversation.waves_granted


def test_a_refused_wave_poll_is_not_repeated() -> None:
    conversation = IntelliVueConversation(wave_poll_period_s=4)
    out = associated(conversation)
    wave_poll = sent(out)[2]
    assert isinstance(wave_poll, msg.PollRequest)
    conversation.received(frame_content(msg.remote_error(wave_poll.invoke_id, 2)), 0.3)
    for now in (1.2, 2.2, 3.2, 4.2, 5.2):
        assert "waves (extended)" not in kinds(conversation.tick(now))


def test_keep_alive_when_nothing_else_goes_out() -> None:
    conversation = IntelliVueConversation(numerics_period_s=None, alarms_period_s=None, waves=False)
    assert kinds(associated(conversation)) == ["event report result"]
    assert kinds(conversation.tick(2.0)) == []
    assert kinds(conversation.tick(3.3)) == ["keep-alive"]
    assert kinds(conversation.tick(4.0)) == []


def test_silence_means_abort_and_associate_again() -> None:
    conversation = IntelliVueConversation()
    associated(conversation)
    assert "abort" not in kinds(conversation.tick(10.1))  # last frame at 0.2
    assert kinds(conversation.tick(10.3)) == ["abort", "association request"]
    assert conversation.state == ASSOCIATING and conversation.associations == 2


@pytest.mark.parametrize("ending", [msg.abort(), msg.release_response()])
def test_monitor_ending_the_association(ending: bytes) -> None:
    conversation = IntelliVueConversation(retry_s=5)
    associated(conversation)
    assert conversation.received(frame_content(ending), 1.0) == []
    assert conversation.state == WAITING
    assert kinds(conversation.tick(5.9)) == []
    assert kinds(conversation.tick(6.0)) == ["association request"]


def test_monitor_asking_to_release() -> None:
    conversation = IntelliVueConversation()
    associated(conversation)
    assert kinds(conversation.received(frame_content(msg.release_request()), 1.0)) == [
        "release response"
    ]
    assert conversation.state == WAITING


def test_refused_then_retried() -> None:
    conversation = IntelliVueConversation(retry_s=5)
    conversation.opened(0.0)
    assert conversation.received(frame_content(msg.refuse()), 0.1) == []
    assert conversation.state == WAITING
    assert kinds(conversation.tick(3.0)) == []
    assert kinds(conversation.tick(5.2)) == ["association request"]


def test_unanswered_association_request_is_repeated() -> None:
    conversation = IntelliVueConversation(answer_timeout_s=5)
    conversation.opened(0.0)
    assert kinds(conversation.tick(4.9)) == []
    assert kinds(conversation.tick(5.0)) == ["association request"]


def test_mds_create_without_the_response_still_starts_polling() -> None:
    conversation = IntelliVueConversation()
    conversation.opened(0.0)
    out = conversation.received(frame_content(MDS_CREATE), 0.1)  # the response was lost
    assert kinds(out)[:2] == ["event report result", "numerics"]
    assert conversation.state == POLLING and not conversation.waves_granted


def test_repeated_mds_create_is_answered_again() -> None:
    conversation = IntelliVueConversation()
    associated(conversation)
    assert kinds(conversation.received(frame_content(MDS_CREATE), 0.5))[0] == "event report result"


def test_close_releases() -> None:
    conversation = IntelliVueConversation()
    assert conversation.close(0.0) == []  # nothing to release yet
    associated(conversation)
    assert kinds(conversation.close(1.0)) == ["release request"]
    assert conversation.state == RELEASING
    conversation.received(frame_content(msg.release_response()), 1.1)
    assert conversation.state == RELEASED
    assert conversation.tick(30.0) == []


def test_damaged_frames_change_nothing() -> None:
    conversation = IntelliVueConversation()
    conversation.opened(0.0)
    damaged = bytearray(frame_content(msg.association_response()))
    damaged[-1] ^= 0xFF  # FCS
    assert conversation.received(bytes(damaged), 0.1) == []
    assert conversation.received(h("55 AA"), 0.1) == []
    assert conversation.state == ASSOCIATING


# --- the simulated monitor -------------------------------------------------------------


def test_simulated_monitor_ends_a_silent_association() -> None:
    monitor = sim.Monitor(seed=1, timeout_s=10, start=T)
    answer = monitor.received(msg.association_request(), 0.0)
    assert [type(m) for m in map(parse_user_data, answer)] == [
        msg.SessionMessage,
        msg.EventReport,
    ]
    granted = parse_user_data(answer[0])
    assert isinstance(granted, msg.SessionMessage) and granted.poll_profile is not None
    assert granted.poll_profile.ext_options == 0x88000000
    report = parse_user_data(answer[1])
    assert isinstance(report, msg.EventReport)
    assert monitor.tick(3.0) != []  # the unanswered MDS Create, again
    monitor.received(msg.mds_create_result(report.invoke_id), 3.1)
    assert monitor.state == "ready"
    assert monitor.tick(13.0) == []
    assert monitor.tick(13.2) == [msg.abort()]  # 10 s after the last message
    assert monitor.state == "idle" and monitor.aborts == 1


def test_simulated_monitor_aborts_when_mds_create_is_never_answered() -> None:
    monitor = sim.Monitor(seed=1, timeout_s=100)
    monitor.received(msg.association_request(), 0.0)
    assert len(monitor.tick(3.0)) == 1 and len(monitor.tick(6.0)) == 1
    assert monitor.tick(9.0) == [msg.abort()]


def test_simulated_wave_subscription_runs_out() -> None:
    monitor = sim.Monitor(seed=2, timeout_s=100)
    monitor.received(msg.association_request(), 0.0)
    results = monitor.received(msg.extended_poll_request(9, 1, 9, period_s=1.0), 0.0)
    for step in range(1, 60):
        results += monitor.tick(step * 0.02)
    parsed = [parse_user_data(r) for r in results]
    assert all(isinstance(p, msg.PollResult) for p in parsed)
    linked = [p.linked for p in parsed if isinstance(p, msg.PollResult)]
    assert linked[0] == (msg.RORLS_FIRST, 1) and linked[-2:] == [(msg.RORLS_LAST, 5), None]
    assert len(results) == 4 + 2  # 0, 0.256, 0.512, 0.768 s; then last + closing result
    waves = [w for r in results for w in decode_frame(frame_content(r)).waveforms]
    assert {w.metric for w in waves} == {"MDC_ECG_ELEC_POTL_II", "MDC_PULS_OXIM_PLETH"}


# --- the serial edge: simulator -> pty -> SerialTransport -> FrameReader -> decoder -----

EXPECTED_NUMERICS = {
    "MDC_ECG_HEART_RATE",
    "MDC_PULS_OXIM_SAT_O2",
    "MDC_PLETH_PULS_RATE",
    "MDC_PRESS_BLD_NONINV_SYS",
    "MDC_PRESS_BLD_NONINV_DIA",
    "MDC_PRESS_BLD_NONINV_MEAN",
    "MDC_RESP_RATE",
    "MDC_TEMP",
    "MDC_AWAY_CO2_ET",
}


def test_serial_settings() -> None:
    settings_ = serial_settings("/dev/ttyUSB0")
    assert (settings_.baudrate, settings_.bytesize, settings_.parity, settings_.stopbits) == (
        115200,
        8,
        "N",
        1,
    )
    assert not settings_.rtscts and SERIAL_SETTINGS["baudrate"] == 115200


async def test_simulator_and_serial_transport_over_a_real_pty() -> None:
    master_fd, slave_path = sim.open_pty()
    stop = asyncio.Event()
    frames: list[bytes] = []
    states: list[str] = []
    seen: set[str] = set()
    waves: set[tuple[str, float, str]] = set()

    def emit(frame: bytes, channel: str | None, /, *, dedup_key: str | None = None) -> None:
        frames.append(frame)
        decoded = decode_frame(frame)  # every frame on the line decodes
        seen.update(r.metric for r in decoded.readings if r.value is not None)
        waves.update((w.metric, w.rate_hz, w.unit) for w in decoded.waveforms)
        if seen >= EXPECTED_NUMERICS and len(waves) >= 2:
            stop.set()

    transport = SerialTransport(
        serial_settings(slave_path), FrameReader, conversation_factory=IntelliVueConversation
    )
    try:
        monitor = asyncio.create_task(sim.run(master_fd, stop=stop, seed=3))
        await asyncio.wait_for(transport.run(emit, lambda s, _d: states.append(s), stop), 20)
        await monitor
    finally:
        stop.set()
        os.close(master_fd)
    assert "connected" in states
    assert seen >= EXPECTED_NUMERICS
    assert waves >= {
        ("MDC_ECG_ELEC_POTL_II", 500.0, "MDC_DIM_MILLI_VOLT"),
        ("MDC_PULS_OXIM_PLETH", 125.0, "MDC_DIM_DIMLESS"),
    }
    assert isinstance(parse_user_data(unframe(frames[0])), msg.SessionMessage)  # the accept


async def test_the_agent_associates_again_after_the_monitor_times_it_out() -> None:
    master_fd, slave_path = sim.open_pty()
    stop = asyncio.Event()
    monitor = sim.Monitor(seed=4, timeout_s=0.6)
    conversations: list[IntelliVueConversation] = []

    def quiet() -> IntelliVueConversation:
        # An agent that never polls: the monitor aborts it, it associates again.
        conversation = IntelliVueConversation(
            numerics_period_s=None, alarms_period_s=None, waves=False, keep_alive_s=60, retry_s=0.2
        )
        conversations.append(conversation)
        return conversation

    def emit(frame: bytes, channel: str | None, /, *, dedup_key: str | None = None) -> None:
        if monitor.aborts >= 2 and conversations[0].associations >= 3:
            stop.set()

    transport = SerialTransport(
        serial_settings(slave_path), FrameReader, conversation_factory=quiet
    )
    try:
        task = asyncio.create_task(sim.run(master_fd, stop=stop, monitor=monitor))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(transport.run(emit, lambda s, _d: None, stop), 10)
        stop.set()
        await task
    finally:
        os.close(master_fd)
    assert monitor.aborts >= 2
    assert conversations[0].associations >= 3


# --- fuzz ------------------------------------------------------------------------------

VECTORS = [
    NUMERICS_RESULT,
    MDS_CREATE,
    MDS_CREATE_RESULT,
    NUMERICS_POLL,
    WAVES_EXT_POLL,
    unframe(_wave_frame(0x0102, bytes(8), ECG_CONTEXT)),
    unframe(_alarm_frame(h("00 01 00 2A") + SPO2_LOW_ALARM)),
    msg.association_response(),
    msg.abort(),
]


@given(st.binary(max_size=400))
def test_fuzz_decoder_raises_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_frame(data)
    with contextlib.suppress(DecodeError):
        decode_frame(frame_content(data))


@settings(max_examples=400)
@given(st.sampled_from(VECTORS), st.data())
def test_fuzz_mutated_messages_raise_only_decode_error(vector: bytes, data: st.DataObject) -> None:
    mutated = bytearray(vector)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(mutated) - 1))
        mutated[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(mutated)))
    with contextlib.suppress(DecodeError):
        decode_frame(frame_content(bytes(mutated[:cut])))


def test_a_device_decoder_lends_the_last_wave_context_to_frames_without_it() -> None:
    from device_drivers.serial.intellivue import CalibratedDecoder

    samples = h("20 00", "E0 C8")  # 0xE0C8: top two bits outside the 14 significant ones
    with_context = _wave_frame(0x0102, samples, ECG_CONTEXT)
    without = _wave_frame(0x0102, samples, [])
    (raw,) = decode_frame(without).waveforms  # the pure decoder: raw counts
    assert (raw.unit, raw.samples) == ("MDC_DIM_DIMLESS", (0x2000, 0xE0C8))
    device = CalibratedDecoder()
    (before,) = device(without).waveforms  # nothing learnt yet: raw as well
    assert before == raw
    (first,) = device(with_context).waveforms
    (later,) = device(without).waveforms  # 256 ms later, no context in the frame
    assert later == first
    assert (later.unit, later.samples, later.rate_hz) == ("MDC_DIM_MILLI_VOLT", (8192, 8392), 500.0)
    assert later.physical(1) == Decimal("1.000")
    # Another device's decoder has learnt nothing.
    assert CalibratedDecoder()(without).waveforms[0] == raw


async def test_the_transport_releases_the_association_when_the_agent_stops() -> None:
    master_fd, slave_path = sim.open_pty()
    stop = asyncio.Event()
    monitor_stop = asyncio.Event()
    conversations: list[IntelliVueConversation] = []
    numerics = asyncio.Event()

    def conversation() -> IntelliVueConversation:
        conversations.append(IntelliVueConversation())
        return conversations[-1]

    def emit(frame: bytes, channel: str | None, /, *, dedup_key: str | None = None) -> None:
        if decode_frame(frame).readings:
            numerics.set()

    monitor = sim.Monitor(seed=5)
    transport = SerialTransport(
        serial_settings(slave_path), FrameReader, conversation_factory=conversation
    )
    try:
        simulator = asyncio.create_task(sim.run(master_fd, stop=monitor_stop, monitor=monitor))
        agent = asyncio.create_task(transport.run(emit, lambda s, _d: None, stop))
        await asyncio.wait_for(numerics.wait(), 10)
        stop.set()  # the agent shuts down
        await asyncio.wait_for(agent, 5)
        await until(lambda: monitor.releases == 1, 5, "the release request at the monitor")
        assert conversations[0].state == "releasing"
        assert monitor.releases == 1 and monitor.state == "idle"
    finally:
        monitor_stop.set()
        await asyncio.gather(simulator, return_exceptions=True)
        os.close(master_fd)
