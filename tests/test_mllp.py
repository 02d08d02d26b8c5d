"""HL7 ORU^R01 over MLLP from monitors (docs/protocols/hl7-mllp-monitors.md): framer, reader,
ACKs, the TCP listener and the simulated monitor, on real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import TypedDict, Unpack

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waiting import until

from device_drivers.network.mllp import (
    OVERSIZED_MARK,
    MllpFramer,
    MllpListener,
    ack_for,
    control_id,
    decode_message,
    dedup_key,
    frame_message,
)
from device_drivers.simulators import mllp_monitor
from edge_agent.model import Decoded, DecodeError, SourcePatient
from sync.hl7.ack import AckResult, parse_ack

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 11, 22, 10, 0, 30, tzinfo=SHANGHAI)
T0 = dt.datetime(2026, 11, 22, 10, 0, 5)  # naive: the device's wall clock
T0_CST = T0.replace(tzinfo=SHANGHAI)  # the same clock reading, with the +0800 it was sent with

HR, SPO2, PR, RR = (
    "MDC_ECG_HEART_RATE",
    "MDC_PULS_OXIM_SAT_O2",
    "MDC_PULS_OXIM_PULS_RATE",
    "MDC_RESP_RATE",
)
BPM, PCT, MMHG, DEGC, RPM = (
    "MDC_DIM_BEAT_PER_MIN",
    "MDC_DIM_PERCENT",
    "MDC_DIM_MMHG",
    "MDC_DIM_DEGC",
    "MDC_DIM_RESP_PER_MIN",
)
UNAVAILABLE = ("unavailable",)


def msg(*segments: str) -> bytes:
    return "\r".join(segments).encode("utf-8") + b"\r"


# A Mindray monitor in its IHE PCD-01 export mode, written out by hand after the public
# sample messages of that export (field positions per IHE PCD TF-2;
# docs/protocols/hl7-mllp-monitors.md).
MINDRAY_IHE = "\r".join(
    [
        # MSH: MSH-3 model^EUI-64^EUI-64 (00A037 is Mindray's IEEE OUI), MSH-7 with the
        # monitor's UTC offset, MSH-10 control id 41, v2.4, MSH-15/16 AL/NE, MSH-18 charset.
        "MSH|^~\\&|XH80X^00A037009B000000^EUI-64||||20261122100005+0800||ORU^R01^ORU_R01"
        "|41|P|2.4|||AL|NE||UNICODE UTF-8",
        # PID: PID-3 id with type PI, PID-5 a Chinese name (family^given), PID-8 sex.
        "PID|||0012345^^^^PI||张^三^^^^^L|||M",
        # PV1: inpatient at ICU bed 3.
        "PV1||I|^^ICU&3",
        # OBR: OBR-3 device as filler, OBR-4 "monitoring of patient" (SNOMED), OBR-7 time.
        "OBR|1|41^XH80X^00A037009B000000^EUI-64|41^XH80X^00A037009B000000^EUI-64"
        "|182777000^monitoring of patient^SCT|||20261122100005+0800",
        # NIBP as cuff pressure, OBX-7 limits, OBX-14: measured 95 s before the message.
        "OBX|1|NM|150301^MDC_PRESS_CUFF_SYS^MDC|1.1.9.150301|128|266016^MDC_DIM_MMHG^MDC"
        "|90^160||||F|||20261122095830+0800",
        "OBX|2|NM|150302^MDC_PRESS_CUFF_DIA^MDC|1.1.9.150302|82|266016^MDC_DIM_MMHG^MDC"
        "|||||F|||20261122095830+0800",
        # HR above its limit: OBX-8 H kept; no OBX-14, so OBR-7's time.
        "OBX|3|NM|147842^MDC_ECG_HEART_RATE^MDC|1.7.4.147842|118"
        "|264864^MDC_DIM_BEAT_PER_MIN^MDC|50^100|H|||F",
        # SpO2 probe off: Mindray's -999 sentinel, not a value.
        "OBX|4|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1.150456|-999"
        "|262688^MDC_DIM_PERCENT^MDC|||||F",
        # Perfusion index the way this export codes it.
        "OBX|5|NM|150488^MDC_BLD_PERF_INDEX^MDC|1.3.1.150488|2.31|262688^MDC_DIM_PERCENT^MDC|||||F",
        # T1, unit with the reference id only (no code), as Chinese monitors often send.
        "OBX|6|NM|150344^MDC_TEMP^MDC|1.2.1.150344|36.9|^MDC_DIM_DEGC|||||F",
        # A vendor-private string row: skipped, the message is still read.
        "OBX|7|ST|2301^^99MNDRY||2|||||F",
    ]
)

# Mindray "Patient Data Share" flavour: v2.3.1, vendor ids in OBX-3, no units, OBR-7
# without an offset (ids as in caowm/pds-server).
MINDRAY_PDS = "\r".join(
    [
        "MSH|^~\\&|||||||ORU^R01|106|P|2.3.1|",  # no sender names, control id 106
        "PID|||14140f^^^^MR||^Tom||20110909|M",  # PID-5 given name only
        "PV1||I|^^ICU&1&3232237825&4601&&1|||||||||||||||A",  # bed, IP, port
        "OBR||||Mindray Monitor|||20261122100005",  # OBR-7: local time, no offset
        "OBX||NM|101^HR|2101|60||||||F",  # HR: bpm is the only unit
        "OBX||NM|151^RR|2102|20||||||F",  # RR: breaths per minute
        "OBX||NM|160^SpO2|2103|98||||||F",  # SpO2 %
        "OBX||NM|161^PR|2103|61||||||F",  # pulse rate from SpO2
        "OBX||NM|170^Sys|2105|120||||||F",  # NIBP: mmHg or kPa by setting -> skipped
        "OBX||NM|200^T1|2104|37.0|Cel|||||F",  # T1 with a unit given -> read
        "OBX||NM|102^PVCs|2101|0||||||F",  # not in the table -> skipped
    ]
)

V23_UCUM = msg(
    "MSH|^~\\&|BSM^NK|WARD3|||202611221000||ORU^R01|X7|P|2.3",
    "OBR|1||||||202611221000",
    "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||95|%|||||F",
    "OBX|2|NM|151562^MDC_RESP_RATE^MDC||18|/min|||||F",
    "OBX|3|NM|147842^MDC_ECG_HEART_RATE^MDC||72|/min|||||F",
    "OBX|4|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC||120|mm[Hg]^mm[Hg]^UCUM|||||F",
    "OBX|5|NM|150344^MDC_TEMP^MDC||37.2|Cel^Cel^UCUM|||||F",
    "OBX|6|NM|^MDC_CONC_GLU_CAPILLARY_PLASMA^MDC||6.1|mmol/L|||||F",
    "OBX|7|NM|150364^MDC_TEMP_BODY^MDC||98.6|degF|||||F",
)

# PCD-01 containment (IHE PCD TF-2 Appendix B.8.4): MDS row, compound container, metric.
PCD01_HIERARCHY = msg(
    "MSH|^~\\&|BP_CUFF^0123456789ABCDEF^EUI-64||EDGE||20261122100005+0000||ORU^R01^ORU_R01"
    "|P1|P|2.6|||NE|AL",
    "OBR|1|||528391^MDC_DEV_SPEC_PROFILE_BP^MDC|||20261122100005+0000",
    "OBX|1||528391^MDC_DEV_SPEC_PROFILE_BP^MDC|1|||||||X|||20261122100005+0000"
    "||||0123456789ABCDEF^EUI-64",
    "OBX|2||150020^MDC_PRESS_BLD_NONINV^MDC|1.0.1|||||||X",
    "OBX|3|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.0.1.1|120|266016^MDC_DIM_MMHG^MDC"
    "|||||R|||20261122100005+0000",
)

UNAVAILABLE_ROWS = msg(
    "MSH|^~\\&|MON||||20261122100005||ORU^R01|U1|P|2.5",
    "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||  |262688^MDC_DIM_PERCENT^MDC|||||X",
    "OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC||72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||X",
    "OBX|3|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|||264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F",
    "OBX|4|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC||-1|266016^MDC_DIM_MMHG^MDC|||||F",
)

UNKNOWN_CODE = msg(
    "MSH|^~\\&|MON||||20261122100005||ORU^R01|K1|P|2.6",
    "OBX|1|NM|999999^MDC_SOMETHING_NEW^MDC||5|262688^MDC_DIM_PERCENT^MDC|||||F",
    "OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||96|262688^MDC_DIM_PERCENT^MDC|||||F",
    "OBX|3|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||96|999^MDC_DIM_NEW^MDC|||||F",
    "OBX|4|NM|150456^MDC_ECG_HEART_RATE^MDC||96|262688^MDC_DIM_PERCENT^MDC|||||F",
)

Row = tuple[str, Decimal | None, str, dt.datetime | None, tuple[str, ...]]

DECODE_VECTORS: list[tuple[str, bytes, list[Row]]] = [
    (
        "mindray IHE export (hand-written, GB18030 name although MSH-18 says UTF-8)",
        MINDRAY_IHE.encode("gb18030") + b"\r",
        [
            (
                "MDC_PRESS_CUFF_SYS",
                Decimal(128),
                MMHG,
                dt.datetime(2026, 11, 22, 9, 58, 30, tzinfo=SHANGHAI),
                (),
            ),
            (
                "MDC_PRESS_CUFF_DIA",
                Decimal(82),
                MMHG,
                dt.datetime(2026, 11, 22, 9, 58, 30, tzinfo=SHANGHAI),
                (),
            ),
            (HR, Decimal(118), BPM, T0_CST, ("H",)),
            (SPO2, None, PCT, T0_CST, UNAVAILABLE),
            ("MDC_BLD_PERF_INDEX", Decimal("2.31"), PCT, T0_CST, ()),
            ("MDC_TEMP", Decimal("36.9"), DEGC, T0_CST, ()),
        ],
    ),
    (
        "mindray patient data share, vendor ids, v2.3.1",
        MINDRAY_PDS.encode("ascii"),
        [
            (HR, Decimal(60), BPM, T0, ()),
            (RR, Decimal(20), RPM, T0, ()),
            (SPO2, Decimal(98), PCT, T0, ()),
            (PR, Decimal(61), BPM, T0, ()),
            ("MDC_TEMP", Decimal("37.0"), DEGC, T0, ()),
        ],
    ),
    (
        "v2.3 with UCUM units, minute-precision times",
        V23_UCUM,
        [
            (SPO2, Decimal(95), PCT, dt.datetime(2026, 11, 22, 10, 0), ()),
            (RR, Decimal(18), RPM, dt.datetime(2026, 11, 22, 10, 0), ()),
            (HR, Decimal(72), BPM, dt.datetime(2026, 11, 22, 10, 0), ()),
            (
                "MDC_PRESS_BLD_NONINV_SYS",
                Decimal(120),
                MMHG,
                dt.datetime(2026, 11, 22, 10, 0),
                (),
            ),
            ("MDC_TEMP", Decimal("37.2"), DEGC, dt.datetime(2026, 11, 22, 10, 0), ()),
            (
                "MDC_CONC_GLU_CAPILLARY_PLASMA",
                Decimal("6.1"),
                "MDC_DIM_MILLI_MOLE_PER_L",
                dt.datetime(2026, 11, 22, 10, 0),
                (),
            ),
            (
                "MDC_TEMP_BODY",
                Decimal("98.6"),
                "MDC_DIM_FAHR",
                dt.datetime(2026, 11, 22, 10, 0),
                (),
            ),
        ],
    ),
    (
        "PCD-01 hierarchy: MDS and container rows are not results; +0000 offset kept",
        PCD01_HIERARCHY,
        [("MDC_PRESS_BLD_NONINV_SYS", Decimal(120), MMHG, T0.replace(tzinfo=dt.UTC), ())],
    ),
    (
        "OBX-11 X, empty OBX-5, sentinel -1 on a pressure: unavailable",
        UNAVAILABLE_ROWS,
        [
            (SPO2, None, PCT, T0, UNAVAILABLE),
            (HR, None, BPM, T0, UNAVAILABLE),
            (PR, None, BPM, T0, UNAVAILABLE),
            ("MDC_PRESS_BLD_NONINV_SYS", None, MMHG, T0, UNAVAILABLE),
        ],
    ),
    (
        "unknown code, unknown unit, contradictory code/refid: rows skipped",
        UNKNOWN_CODE,
        [(SPO2, Decimal(96), PCT, T0, ())],
    ),
]


def rows(decoded: Decoded) -> list[Row]:
    return [(r.metric, r.value, r.unit, r.device_time, r.flags) for r in decoded.readings]


@pytest.mark.parametrize(
    ("frame", "expected"), [v[1:] for v in DECODE_VECTORS], ids=[v[0] for v in DECODE_VECTORS]
)
def test_decode_vectors(frame: bytes, expected: list[Row]) -> None:
    assert rows(decode_message(frame)) == expected


def test_capture_with_mllp_bytes_still_reads() -> None:
    """The decode CLI may be handed a raw capture block; framing bytes are tolerated."""
    assert rows(decode_message(frame_message(PCD01_HIERARCHY)))[0][1] == Decimal(120)


def test_waveform_messages_are_empty_not_rejected() -> None:
    # ORU^W01 (v2.4 waveform) and an ORU^R01 carrying only NA rows (PCD waveform).
    w01 = msg(
        "MSH|^~\\&|XH80X^00A037009B000000^EUI-64||||||ORU^W01^ORU_W01|42|P|2.4",
        "OBX|1|NA|131329^MDC_ECG_ELEC_POTL_I^MDC|1.7.6.131329|0^0^0",
    )
    na_only = msg(
        "MSH|^~\\&|MON||||20261122100005||ORU^R01|W2|P|2.6",
        "OBR|1||||CONTINUOUS WAVEFORM",
        "OBX|1||528391^MDC_DEV_SPEC_PROFILE_BP^MDC|1|||||||X",  # device row
        "OBX|2||150020^MDC_PRESS_BLD_NONINV^MDC|1.0.1|||||||X",  # container row
        "OBX|3|NA|131329^MDC_ECG_ELEC_POTL_I^MDC|1.7.6.131329|1^2^3",
        "OBX|2|NM|0^MNDRY_SAMPLE_RATE^99MNDRY||500",
    )
    assert decode_message(w01) == Decoded()
    assert decode_message(na_only) == Decoded()


REJECTED: list[tuple[str, bytes, str]] = [
    ("empty block", b"", "empty message"),
    ("no MSH", msg("PID|||1", "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||96|%"), "start with MSH"),
    ("bad delimiters", msg("MSH|^^^^|MON"), "delimiters"),
    ("no OBX", msg("MSH|^~\\&|MON||||||ORU^R01|1|P|2.6", "PID|||1"), "without any OBX"),
    (
        "only a container row",
        msg(
            "MSH|^~\\&|MON||||||ORU^R01|1|P|2.6", "OBX|1||150020^MDC_PRESS_BLD_NONINV^MDC|1|||||||X"
        ),
        "only device, container or withdrawn rows",
    ),
    (
        "only unknown OBX",
        msg("MSH|^~\\&|MON||||||ORU^R01|1|P|2.6", "OBX|1|NM|110^HR||80|bpm|||||F"),
        "no usable OBX",
    ),
    (
        "non-numeric NM value",
        msg(
            "MSH|^~\\&|MON||||||ORU^R01|1|P|2.6",
            "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||9x6|262688^MDC_DIM_PERCENT^MDC|||||F",
        ),
        "not an HL7 NM number",
    ),
    (
        "not an observation result",
        msg("MSH|^~\\&|MON||||||ADT^A01|1|P|2.6", "PID|||1"),
        "not ORU^R01",
    ),
    (
        "no control id",
        msg("MSH|^~\\&|MON||||||ORU^R01||P|2.6", "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC"),
        "MSH-10",
    ),
    (
        "impossible OBX-14",
        msg(
            "MSH|^~\\&|MON||||||ORU^R01|1|P|2.6",
            "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||96|%|||||F|||20261340100000",
        ),
        "OBX 1: OBX-14",
    ),
    (
        "two messages glued together",
        msg("MSH|^~\\&|MON||||||ORU^R01|1|P|2.6", "MSH|^~\\&|MON||||||ORU^R01|2|P|2.6"),
        "second MSH",
    ),
    ("cut at the size cap", OVERSIZED_MARK + PCD01_HIERARCHY[:40], "limit"),
]


@pytest.mark.parametrize(
    ("frame", "needle"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED]
)
def test_rejected_messages(frame: bytes, needle: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_message(frame)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


# --- framer ----------------------------------------------------------------------------

M1 = MINDRAY_PDS.encode("ascii")
M2 = PCD01_HIERARCHY
STREAM = b"\r\n" + frame_message(M1) + b"garbage\x1c\r" + frame_message(M2) + b"\n"


def test_framer_split_at_every_byte_boundary() -> None:
    for cut in range(len(STREAM) + 1):
        framer = MllpFramer()
        got = framer.feed(STREAM[:cut]) + framer.feed(STREAM[cut:])
        assert got == [M1, M2], cut
        assert framer.discarded_bytes == len(b"\r\n") + len(b"garbage\x1c\r") + len(b"\n")


def test_framer_byte_by_byte() -> None:
    framer = MllpFramer()
    got = [frame for byte in STREAM for frame in framer.feed(bytes([byte]))]
    assert got == [M1, M2]


def test_framer_keeps_lone_0x1c_and_restarts_on_a_new_start_block() -> None:
    framer = MllpFramer()
    data = b"\x0bhalf a message" + b"\x0bAB\x1cCD\x1c\r"
    assert framer.feed(data) == [b"AB\x1cCD"]
    assert framer.discarded_bytes == len(b"\x0bhalf a message")


def test_oversized_block_is_cut_reported_and_the_stream_recovers() -> None:
    big = b"MSH|^~\\&|MON||||||ORU^R01|BIG|P|2.6\r" + b"OBX|1|ST|x||" + b"y" * 5000 + b"\r"
    small = b"MSH|^~\\&|MON||||||ORU^R01|NEXT|P|2.6\r"
    stream = frame_message(big) + b"noise" + frame_message(small)
    for cut in range(len(stream) + 1):
        framer = MllpFramer(max_bytes=100)
        frames = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert frames == [OVERSIZED_MARK + big[:100], small], cut
        assert framer.oversized_blocks == 1
    cut_frame = MllpFramer(max_bytes=100).feed(frame_message(big))[0]
    with pytest.raises(DecodeError):
        decode_message(cut_frame)
    ack = parse_ack(strip(ack_for(cut_frame, "quarantined", "x", now=NOW)))
    assert (ack.code, ack.acked) == ("AR", "BIG")


@given(st.lists(st.binary(max_size=64), max_size=12))
def test_framer_never_raises_and_ignores_read_splits(chunks: list[bytes]) -> None:
    framer = MllpFramer(max_bytes=32)
    pieces = [f for chunk in chunks for f in framer.feed(chunk)]
    assert pieces == MllpFramer(max_bytes=32).feed(b"".join(chunks))
    assert all(len(p) <= 33 for p in pieces)


# --- control id, dedup key, ACK --------------------------------------------------------


def ack_text(body: bytes) -> str:
    """An ACK's text in the character set its own MSH-18 names (HL7 table 0211), as a
    monitor reads it; UTF-8 when it names none."""
    fields = body.split(b"\r", 1)[0].split(b"|")
    name = fields[17].split(b"~")[0].decode("ascii") if len(fields) > 17 else ""
    return body.decode(TABLE_0211.get(name, "utf-8"))


# HL7 v2.6 table 0211 names -> codecs, for the sets these tests send in.
TABLE_0211 = {
    "UNICODE UTF-8": "utf-8",
    "GB 18030-2000": "gb18030",
    "8859/1": "latin-1",
    "ASCII": "ascii",
    "GB18030": "gb18030",
}


def strip(framed: bytes) -> str:
    assert framed.startswith(b"\x0b") and framed.endswith(b"\x1c\r")
    return ack_text(framed[1:-2])


def test_control_id_and_dedup_key() -> None:
    ihe = MINDRAY_IHE.encode("utf-8")
    assert control_id(ihe) == "41"
    assert dedup_key(ihe) == "XH80X^00A037009B000000^EUI-64/41"
    assert dedup_key(msg("MSH|^~\\&|22w|KC442440530G|||x||ORU^R01|7|P|2.4")) == "22w@KC442440530G/7"
    assert dedup_key(M1) == "-/106"
    assert control_id(b"garbage") is None
    assert control_id(msg("MSH|^~\\&|MON||||||ORU^R01||P|2.6")) is None
    long_id = msg("MSH|^~\\&|" + "A" * 150 + "||||||ORU^R01|" + "9" * 150 + "|P|2.6")
    key = dedup_key(long_id)
    assert key is not None and len(key) <= 200


@pytest.mark.parametrize(
    ("frame", "outcome", "reason", "code"),
    [
        (MINDRAY_IHE.encode(), "decoded", None, "AA"),
        (MINDRAY_IHE.encode(), "duplicate", None, "AA"),
        (MINDRAY_IHE.encode(), "empty", None, "AA"),
        (MINDRAY_IHE.encode(), "quarantined", "OBX 1: OBX-5 '9x6' is not a number", "AE"),
        (MINDRAY_IHE.encode(), None, "not recorded within 10 s; send again", "AR"),
        (b"no MSH here", "quarantined", "whatever", "AR"),
        (msg("MSH|^~\\&|MON||||||ORU^R01||P|2.6"), None, None, "AR"),
    ],
)
def test_ack_codes_and_addresses(
    frame: bytes, outcome: str | None, reason: str | None, code: str
) -> None:
    text = strip(ack_for(frame, outcome, reason, now=NOW))
    ack = parse_ack(text)
    assert ack.code == code
    assert ack.acked == (control_id(frame) or "UNKNOWN")
    if code == "AE":
        assert ack.text == reason and "ERR|" in text
    hl7 = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT)
    hl7.validate()
    assert hl7.msa.msa_1.value == code
    if control_id(frame) == "41":
        # MSH-5/MSH-6 address the sender: its MSH-3 (and MSH-4, empty here)
        assert hl7.msh.msh_5.value == "XH80X^00A037009B000000^EUI-64"
        assert hl7.msh.msh_7.value == "20261122100030+0800"


def test_ack_facility_and_escaping() -> None:
    frame = msg("MSH|^~\\&|22w|KC442440530G|||x||ORU^R01|a\\F\\b|P|2.4")
    text = strip(ack_for(frame, "decoded", None, now=NOW))
    assert text.split("\r")[0].split("|")[4:6] == ["22w", "KC442440530G"]
    assert parse_ack(text).acked == "a|b"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(alphabet="MSHOBX|^~\\&#0123456789.-+ NMXR\r", max_size=200).map(
            lambda t: ("MSH|^~\\&|" + t).encode()
        ),
    ),
    st.sampled_from(["decoded", "duplicate", "quarantined", "empty", "progress", None, "odd"]),
    st.one_of(st.none(), st.text(max_size=80)),
)
def test_ack_for_never_raises(frame: bytes, outcome: str | None, reason: str | None) -> None:
    ack = parse_ack(strip(ack_for(frame, outcome, reason, now=NOW)))
    assert ack.code in ("AA", "AE", "AR")
    assert ack.acked == (control_id(frame) or "UNKNOWN")


OBX_FIELD = st.text(alphabet="0123456789.-+ ^&~\\MDC_PULS_OXIM_SAT_O2DIMPERCENTX", max_size=40)


def _mixed(*known: str) -> st.SearchStrategy[str]:
    """Plausible values most of the time, anything now and then."""
    return st.one_of(st.sampled_from(known), OBX_FIELD)


# OBX rows built from real field values, mutated: reaches the reader's deep paths.
OBX_ROW = st.tuples(
    _mixed("NM", "", "ST", "NA"),
    _mixed("150456^MDC_PULS_OXIM_SAT_O2^MDC", "101^HR", "^MDC_TEMP^MDC", "150344", "x^y^z"),
    _mixed("96", "-999", "", "36.6", "-1", ".5", "+7", "1e3", "٣"),
    _mixed("262688^MDC_DIM_PERCENT^MDC", "%", "/min", "", "^MDC_DIM_DEGC", "Cel^Cel^UCUM"),
    _mixed("", "H", "L~HH", "intermediate"),
    _mixed("F", "R", "X", "", "D"),
    _mixed("", "20261122100005", "20261122100005+0800", "0", "2026113210", "20261122100005.123456"),
).map(lambda f: f"OBX|1|{f[0]}|{f[1]}|1.1|{f[2]}|{f[3]}||{f[4]}|||{f[5]}|||{f[6]}")


@settings(max_examples=400)
@given(
    st.one_of(
        st.binary(max_size=400),
        st.lists(OBX_FIELD, min_size=1, max_size=16).map(
            lambda fields: (
                "MSH|^~\\&|MON||||20261122100005||ORU^R01|F1|P|2.6\rOBX|" + "|".join(fields)
            ).encode()
        ),
        st.lists(OBX_ROW, min_size=1, max_size=4).map(
            lambda obx: msg("MSH|^~\\&|MON||||||ORU^R01|F2|P|2.6", *obx)
        ),
    )
)
def test_decode_raises_only_decode_error(frame: bytes) -> None:
    try:
        decoded = decode_message(frame)
    except DecodeError as exc:
        assert "\n" not in str(exc)
        return
    for reading in decoded.readings:
        assert reading.value is not None or "unavailable" in reading.flags


# --- the listener on real TCP ----------------------------------------------------------


class FakeSink:
    """The daemon's FrameSink as the listener sees it: a future resolved after a delay
    (the durable commit), duplicates by dedup key as the recorder decides them."""

    def __init__(self, delay: float = 0.02, *, track: bool = True, resolve: bool = True) -> None:
        self.delay = delay
        self.track = track
        self.resolve = resolve
        self.frames: list[bytes] = []
        self.keys: list[str | None] = []
        self.outcomes: list[str] = []
        self.pending: list[asyncio.Future[str]] = []
        self._seen: set[str] = set()

    def __call__(
        self, data: bytes, channel: str | None, /, *, dedup_key: str | None = None
    ) -> asyncio.Future[str] | None:
        self.frames.append(data)
        self.keys.append(dedup_key)
        if dedup_key is not None and dedup_key in self._seen:
            outcome = "duplicate"
        else:
            try:
                outcome = "decoded" if decode_message(data) else "empty"
            except DecodeError:
                outcome = "quarantined"
        if dedup_key is not None:
            self._seen.add(dedup_key)
        self.outcomes.append(outcome)
        if not self.track:
            return None
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        if self.resolve:
            asyncio.get_running_loop().call_later(self.delay, _settle, fut, outcome)
        return fut


def _settle(fut: asyncio.Future[str], outcome: str) -> None:
    if not fut.done():
        fut.set_result(outcome)


class ListenerOptions(TypedDict, total=False):
    """The MllpListener keyword arguments these tests set."""

    max_bytes: int
    ack_timeout_s: float


@contextlib.asynccontextmanager
async def serving(
    sink: FakeSink,
    states: list[tuple[str, str]] | None = None,
    **options: Unpack[ListenerOptions],
) -> AsyncIterator[MllpListener]:
    listener = MllpListener("127.0.0.1", 0, **options)
    stop = asyncio.Event()
    seen = states if states is not None else []
    task = asyncio.create_task(listener.run(sink, lambda s, d: seen.append((s, d)), stop))
    await asyncio.wait_for(listener.listening.wait(), 5)
    try:
        yield listener
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.framer = MllpFramer()
        self.backlog: list[bytes] = []

    @classmethod
    async def open(cls, port: int) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def ack(self, timeout: float = 5.0) -> AckResult:
        while not self.backlog:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            assert data, "the listener closed the connection"
            self.backlog.extend(self.framer.feed(data))
        return parse_ack(ack_text(self.backlog.pop(0)))

    async def exchange(self, message: bytes) -> AckResult:
        await self.send(frame_message(message))
        return await self.ack()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def oru(control: str, value: str = "96", sender: str = "MON^0123456789ABCDEF^EUI-64") -> bytes:
    return msg(
        f"MSH|^~\\&|{sender}||||20261122100005+0800||ORU^R01^ORU_R01|{control}|P|2.6",
        "OBR|1||||||20261122100005+0800",
        f"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1|{value}|262688^MDC_DIM_PERCENT^MDC|||||R",
    )


async def test_every_message_answered_in_order_after_its_commit() -> None:
    sink = FakeSink(delay=0.2)
    states: list[tuple[str, str]] = []
    async with serving(sink, states) as listener:
        client = await Client.open(listener.port)
        started = time.monotonic()
        await client.send(b"".join(frame_message(oru(f"M{i}")) for i in range(3)))
        acks = [await client.ack() for _ in range(3)]
        assert time.monotonic() - started >= 0.2  # not before the durable commit
        assert [(a.acked, a.code) for a in acks] == [("M0", "AA"), ("M1", "AA"), ("M2", "AA")]
        await client.close()
    assert sink.keys == [f"MON^0123456789ABCDEF^EUI-64/M{i}" for i in range(3)]
    assert [s for s, _ in states][:2] == ["listening", "client"]
    assert any("disconnected" in d for s, d in states if s == "client")


async def test_duplicate_control_id_gets_aa() -> None:
    sink = FakeSink()
    async with serving(sink) as listener:
        client = await Client.open(listener.port)
        first = await client.exchange(oru("DUP-1"))
        again = await client.exchange(oru("DUP-1"))
        other_sender = await client.exchange(oru("DUP-1", sender="OTHER"))
        await client.close()
    assert [first.code, again.code, other_sender.code] == ["AA", "AA", "AA"]
    assert sink.outcomes == ["decoded", "duplicate", "decoded"]


async def test_malformed_messages_are_answered_and_the_connection_stays_open() -> None:
    sink = FakeSink()
    async with serving(sink) as listener:
        client = await Client.open(listener.port)
        await client.send(b"line noise outside any block\r\n")
        garbage = await client.exchange(b"\x00\xff not hl7 at all")
        bad_value = await client.exchange(oru("BAD-1", value="9x6"))
        no_id = await client.exchange(oru(""))
        good = await client.exchange(oru("GOOD-1"))
        await client.close()
    assert (garbage.code, garbage.acked) == ("AR", "UNKNOWN")
    assert (bad_value.code, bad_value.acked) == ("AE", "BAD-1")
    assert "9x6" in bad_value.text and bad_value.error_code == "207"
    assert (no_id.code, no_id.error_code) == ("AR", "101")
    assert (good.code, good.acked) == ("AA", "GOOD-1")
    # the unusable ones are still handed over (quarantine keeps them), without a key
    assert sink.keys[0] is None and sink.keys[2] is None


async def test_two_clients_at_once() -> None:
    sink = FakeSink(delay=0.3)
    async with serving(sink) as listener:
        a, b = await Client.open(listener.port), await Client.open(listener.port)
        started = time.monotonic()
        got = await asyncio.gather(
            a.exchange(oru("A1", sender="BED1")), b.exchange(oru("B1", sender="BED2"))
        )
        elapsed = time.monotonic() - started
        more = await asyncio.gather(
            a.exchange(oru("A2", sender="BED1")), b.exchange(oru("B2", sender="BED2"))
        )
        await a.close()
        await b.close()
    assert [(x.acked, x.code) for x in got + more] == [
        ("A1", "AA"),
        ("B1", "AA"),
        ("A2", "AA"),
        ("B2", "AA"),
    ]
    assert elapsed < 0.55  # the two commits overlapped: one client does not wait for another


async def test_sink_without_commit_tracking_decides_locally() -> None:
    sink = FakeSink(track=False)
    async with serving(sink) as listener:
        client = await Client.open(listener.port)
        good = await client.exchange(oru("L1"))
        bad = await client.exchange(oru("L2", value="abc"))
        await client.close()
    assert (good.code, bad.code) == ("AA", "AE")


async def test_commit_timeout_answers_ar_and_a_resend_is_a_duplicate() -> None:
    sink = FakeSink(resolve=False)
    async with serving(sink, ack_timeout_s=0.1) as listener:
        client = await Client.open(listener.port)
        late = await client.exchange(oru("SLOW-1"))
        sink.pending[0].set_result("decoded")  # the commit lands after the ACK went out
        sink.resolve = True
        resent = await client.exchange(oru("SLOW-1"))
        await client.close()
    assert (late.code, late.acked) == ("AR", "SLOW-1")
    assert "send again" in late.text
    assert resent.code == "AA" and sink.outcomes[-1] == "duplicate"


async def test_client_leaving_mid_message_loses_nothing_committed() -> None:
    sink = FakeSink(delay=0.1)
    async with serving(sink) as listener:
        client = await Client.open(listener.port)
        assert (await client.exchange(oru("C1"))).code == "AA"
        half = frame_message(oru("C2"))
        await client.send(half[: len(half) // 2])
        await client.close()
        # gone before reading its ACK: the message is still handed over and committed
        quick = await Client.open(listener.port)
        await quick.send(frame_message(oru("C3")))
        await quick.close()
        await until(
            lambda: len(sink.pending) == 2 and all(f.done() for f in sink.pending),
            5,
            "C3 handed over and committed",
        )
        later = await Client.open(listener.port)
        assert (await later.exchange(oru("C4"))).code == "AA"
        await later.close()
    assert [control_id(f) for f in sink.frames] == ["C1", "C3", "C4"]
    assert all(f.done() and f.result() == "decoded" for f in sink.pending)


async def test_oversized_block_gets_ar_and_the_next_message_is_read() -> None:
    sink = FakeSink()
    big = oru("HUGE-1")[:-1] + b"\rOBX|2|ST|x||" + b"y" * 4000 + b"\r"
    async with serving(sink, max_bytes=1024) as listener:
        client = await Client.open(listener.port)
        refused = await client.exchange(big)
        fine = await client.exchange(oru("AFTER-1"))
        await client.close()
    assert (refused.code, refused.acked) == ("AR", "HUGE-1")
    assert "limit" in refused.text
    assert fine.code == "AA"
    assert sink.frames[0].startswith(OVERSIZED_MARK) and len(sink.frames[0]) == 1025
    assert sink.outcomes[0] == "quarantined"


async def test_ack_on_the_wire_parses_with_hl7apy() -> None:
    sink = FakeSink()
    async with serving(sink) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(frame_message(MINDRAY_IHE.encode("gb18030")))
        await writer.drain()
        framer = MllpFramer()
        frames: list[bytes] = []
        while not frames:
            frames = framer.feed(await asyncio.wait_for(reader.read(4096), 5))
        writer.close()
    hl7 = parse_message(frames[0].decode(), validation_level=VALIDATION_LEVEL.STRICT)
    hl7.validate()
    assert (hl7.msa.msa_1.value, hl7.msa.msa_2.value) == ("AA", "41")


# --- the simulated monitor -------------------------------------------------------------


async def test_simulator_end_to_end() -> None:
    sink = FakeSink()
    async with serving(sink) as listener:
        log = await asyncio.wait_for(
            mllp_monitor.run("127.0.0.1", listener.port, seed=3, rate_hz=200, count=5), 20
        )
    assert log.codes() == ["AA"] * 5
    assert log.sent == [cid for cid, _ in log.acks]
    assert sink.outcomes == ["decoded"] * 5
    decoded = [decode_message(f) for f in sink.frames]
    assert all(len(d.readings) == 8 for d in decoded)
    assert {r.metric for r in decoded[0].readings} >= {HR, SPO2, RR, "MDC_TEMP_BODY"}
    assert len(set(sink.keys)) == 5


async def test_simulator_resends_the_same_control_id_after_a_lost_ack() -> None:
    """The first connection swallows the message and hangs up; the simulator reconnects
    and sends the very same message again, which the box then acknowledges."""
    received: list[bytes] = []

    async def box(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = MllpFramer()
        while data := await reader.read(65536):
            for frame in framer.feed(data):
                received.append(frame)
                if len(received) == 1:
                    writer.close()  # lost: no ACK, connection gone
                    return
                writer.write(ack_for(frame, "decoded", None, now=NOW))
                await writer.drain()

    server = await asyncio.start_server(box, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        log = await asyncio.wait_for(
            mllp_monitor.run("127.0.0.1", port, rate_hz=100, count=2, resend_after_s=0.3), 20
        )
    finally:
        server.close()
    assert log.sent[0] == log.sent[1]
    assert received[0] == received[1]
    assert log.connections == 2
    assert log.codes() == ["AA", "AA"]


async def test_simulator_resends_on_the_same_connection_when_no_ack_comes() -> None:
    received: list[bytes] = []

    async def box(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = MllpFramer()
        while data := await reader.read(65536):
            for frame in framer.feed(data):
                received.append(frame)
                if len(received) > 1:  # the first one is never answered
                    writer.write(ack_for(frame, "duplicate", None, now=NOW))
                    await writer.drain()

    server = await asyncio.start_server(box, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        log = await asyncio.wait_for(
            mllp_monitor.run("127.0.0.1", port, rate_hz=100, count=1, resend_after_s=0.2), 20
        )
    finally:
        server.close()
    assert log.connections == 1
    assert log.sent == [log.sent[0]] * 2
    assert log.acks == [(log.sent[0], "AA")]


# --- what the monitor said: offsets, character sets, EUI-64, PID, OBX-4/11 (issue 11) -------

# A monitor on a UTC clock, its own offset in OBX-14 (HL7 v2.6 Ch. 2A.22: DTM with +ZZZZ).
UTC_MONITOR = msg(
    "MSH|^~\\&|MON^00A037009B000001^EUI-64||||20261203084600+0000||ORU^R01^ORU_R01|Z1|P|2.6"
    "|||AL|NE||UNICODE UTF-8",
    "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|97|262688^MDC_DIM_PERCENT^MDC"
    "|||||R|||20261203084600+0000",
)


def test_an_explicit_utc_offset_is_honoured() -> None:
    """`20261203084600+0000` is 16:46 in Shanghai, never 08:46 Shanghai time."""
    (reading,) = decode_message(UTC_MONITOR).readings
    assert reading.device_time == dt.datetime(2026, 12, 3, 8, 46, tzinfo=dt.UTC)
    assert reading.device_time.astimezone(SHANGHAI).hour == 16


@pytest.mark.parametrize("zone", ["+1500", "-1300", "+0860"])
def test_an_offset_no_zone_has_is_rejected(zone: str) -> None:
    frame = msg(
        "MSH|^~\\&|MON||||||ORU^R01|Z2|P|2.6",
        f"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|262688^MDC_DIM_PERCENT^MDC"
        f"|||||F|||20261203084600{zone}",
    )
    with pytest.raises(DecodeError):
        decode_message(frame)


def test_obx4_and_obx11_are_kept_as_the_monitor_sent_them() -> None:
    """PCD TF-2 Appendix B.8.4 (MDS.VMD.channel.metric) and HL7 table 0085: R stays R."""
    frame = msg(
        "MSH|^~\\&|MON||||||ORU^R01|S1|P|2.6",
        "OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R",
        "OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||F",
        "OBX|3|NM|151562^MDC_RESP_RATE^MDC|not a position|18|264928^MDC_DIM_RESP_PER_MIN^MDC|||||C",
    )
    got = [(r.sub_id, r.result_status) for r in decode_message(frame).readings]
    assert got == [("1.1.1.1", "R"), ("1.2.1.1", "F"), (None, "C")]


@pytest.mark.parametrize(
    ("msh3", "obx18", "eui64"),
    [
        # PCD TF-2: MSH-3 <application>^<EUI-64>^EUI-64, the sender's own
        ("MINDRAY_VS900^00A0370098006640^EUI-64", "", "00A0370098006640"),
        # the equipment an OBX-18 names wins (a central station forwarding a bed's data)
        (
            "CMS^00A0370098000001^EUI-64",
            "00A0370098006640^^00A0370098006640^EUI-64",
            "00A0370098006640",
        ),
        ("MON", "00a0370098006641^EUI-64", "00A0370098006641"),  # <EUI-64>^EUI-64
        ("MON", "bed-3", None),  # no EUI-64 named
        ("MON^not-hex-digits^EUI-64", "", None),
    ],
)
def test_the_senders_eui64(msh3: str, obx18: str, eui64: str | None) -> None:
    frame = msg(
        f"MSH|^~\\&|{msh3}||||||ORU^R01|E1|P|2.6",
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|262688^MDC_DIM_PERCENT^MDC"
        f"|||||F|||||||{obx18}",
    )
    assert decode_message(frame).device_eui64 == eui64


def test_the_monitors_pid_is_read_word_for_word() -> None:
    decoded = decode_message(MINDRAY_IHE.encode("gb18030"))
    assert decoded.patient == SourcePatient(
        identifier="0012345", authority="", id_type="PI", name="张三", sex="M", patient_class="I"
    )
    national = msg(
        "MSH|^~\\&|MON||||||ORU^R01|P1|P|2.6",
        # an MRN, then the resident identity number untyped: the valid GB 11643 one is chosen
        "PID|||A77^^^WARD3^MR~11010519491231002X||王^秀英||19491231|F",
        "PV1||E",
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|262688^MDC_DIM_PERCENT^MDC|||||F",
    )
    assert decode_message(national).patient == SourcePatient(
        identifier="11010519491231002X",
        name="王秀英",
        birth_date=dt.date(1949, 12, 31),
        sex="F",
        patient_class="E",
    )
    nobody = msg(
        "MSH|^~\\&|MON||||||ORU^R01|P2|P|2.6",
        "PID|||^^^Hospital^PI||^^^^^^L",  # Mindray's "no patient admitted"
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|262688^MDC_DIM_PERCENT^MDC|||||F",
    )
    assert decode_message(nobody).patient is None


def _gb18030_sender(app: str) -> bytes:
    return (
        f"MSH|^~\\&|{app}|急诊科|||20261203084600+0800||ORU^R01^ORU_R01|G1|P|2.6|||AL|NE"
        "||GB 18030-2000\r"
        "PID|||A1^^^急诊科^MR||欧阳^娜娜\r"
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|97|262688^MDC_DIM_PERCENT^MDC"
        "|||||F|||20261203084600+0800\r"
    ).encode("gb18030")


async def test_a_gb18030_sender_reads_its_own_msh3_back_byte_exact() -> None:
    """HL7 v2.6 Ch. 2.14.9.18: MSH-18 names the message's character set. A GB 18030
    monitor with a Chinese MSH-3 gets an ACK in GB 18030 that says so, its MSH-3 in
    MSH-5 byte for byte (a UTF-8 answer reads back as mojibake on the monitor)."""
    app = "迈瑞监护仪^00A037009B000001^EUI-64"
    sink = FakeSink()
    async with serving(sink) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"\x0b" + _gb18030_sender(app) + b"\x1c\r")
        await writer.drain()
        framer = MllpFramer()
        frames: list[bytes] = []
        while not frames:
            frames = framer.feed(await asyncio.wait_for(reader.read(4096), 5))
        writer.close()
    raw = frames[0]
    assert app.encode("gb18030") in raw and "急诊科".encode("gb18030") in raw
    text = raw.decode("gb18030")
    msh = text.split("\r")[0].split("|")
    assert (msh[4], msh[5], msh[17]) == (app, "急诊科", "GB 18030-2000")
    assert parse_ack(text).code == "AA"
    parse_message(text, validation_level=VALIDATION_LEVEL.STRICT).validate()
    assert sink.outcomes == ["decoded"]
    assert decode_message(sink.frames[0]).patient == SourcePatient(
        identifier="A1", authority="急诊科", id_type="MR", name="欧阳娜娜"
    )


def test_msh18_decides_the_character_set_not_the_guess() -> None:
    """Latin-1 bytes that also read as GB 18030 (0xFC 0x6C is a GB 18030 character):
    with MSH-18 8859/1 the name is Müller, and the ACK answers in ISO 8859-1."""
    frame = (
        "MSH|^~\\&|Müller-Monitor||||||ORU^R01|L1|P|2.6||||||8859/1\r"
        "PID|||A1^^^Ward^MR||Müller^Jürgen\r"
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|262688^MDC_DIM_PERCENT^MDC|||||F\r"
    ).encode("latin-1")
    assert frame.decode("gb18030")  # the old guess would have read it (as mojibake)
    decoded = decode_message(frame)
    assert decoded.patient is not None and decoded.patient.name == "Müller Jürgen"
    ack = ack_for(frame, "decoded", None, now=NOW)
    assert "Müller-Monitor".encode("latin-1") in ack
    assert ack[1:-2].decode("latin-1").split("\r")[0].split("|")[17] == "8859/1"


# Character sets of HL7 table 0211 a monitor may name, with text each can carry.
_CHARSET_TEXT = [
    ("UNICODE UTF-8", "utf-8", "欧阳娜娜 Müller ÅØ"),
    ("GB 18030-2000", "gb18030", "欧阳娜娜 王秀英"),
    ("8859/1", "latin-1", "Müller Åsa"),
    ("ASCII", "ascii", "Smith John"),
    ("BIG-5", "big5", "歐陽娜娜"),
]


@settings(max_examples=150)
@given(
    st.sampled_from(_CHARSET_TEXT).flatmap(
        lambda c: st.tuples(
            st.just(c[0]),
            st.just(c[1]),
            st.text(alphabet=sorted(set(c[2].replace(" ", ""))), min_size=1, max_size=12),
        )
    )
)
def test_any_declared_character_set_reads_back_exactly(case: tuple[str, str, str]) -> None:
    """Property: a name in the character set MSH-18 declares is stored as written, and
    the ACK quotes the sender's MSH-3 in the same bytes."""
    charset, codec, name = case
    frame = (
        f"MSH|^~\\&|{name}||||||ORU^R01|C1|P|2.6||||||{charset}\r"
        f"PID|||X1^^^W^MR||{name}\r"
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|262688^MDC_DIM_PERCENT^MDC|||||F\r"
    ).encode(codec)
    decoded = decode_message(frame)
    assert decoded.patient is not None and decoded.patient.name == name
    ack = ack_for(frame, "decoded", None, now=NOW)
    assert f"|{name}|".encode(codec) in ack
    text = ack[1:-2].decode(codec)
    assert text.split("\r")[0].split("|")[17] == charset  # MSH-18 echoed
    parse_message(text, validation_level=VALIDATION_LEVEL.STRICT).validate()


@settings(max_examples=300)
@given(
    st.lists(
        st.text(
            alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"])
            | st.sampled_from("|^~&"),
            max_size=300,
        ),
        min_size=1,
        max_size=9,
    )
)
def test_any_pid_is_kept_bounded_and_printable(fields: list[str]) -> None:
    """Property: whatever a PID holds, the reading is kept; what is stored of the patient
    is one printable line per field, within HL7's lengths."""
    frame = msg(
        "MSH|^~\\&|MON||||||ORU^R01|Q1|P|2.6",
        "PID|" + "|".join(f.replace("\r", " ").replace("\n", " ") for f in fields),
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|262688^MDC_DIM_PERCENT^MDC|||||F",
    )
    decoded = decode_message(frame)
    assert [r.value for r in decoded.readings] == [Decimal(97)]
    p = decoded.patient
    if p is not None:
        assert p.identifier and len(p.identifier) <= 199 and p.identifier.isprintable()
        assert len(p.authority) <= 20 and len(p.id_type) <= 5 and len(p.name) <= 100
        assert all(s.isprintable() for s in (p.authority, p.id_type, p.name))
