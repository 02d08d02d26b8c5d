"""`edge-agent decode DRIVER HEX... | --file PATH` exactly as docs/contracts.md specifies.

For serial and network drivers the HEX arguments (or the file) are one byte stream, cut
into frames as the live port does; every whole valid frame is decoded, every rejected
piece and a trailing partial frame reported on stderr (one line each); exit 0 when some
whole valid frame decoded, 3 when none did, 2 for usage errors (unknown driver, not hex).
BLE: one notification per HEX argument. ECG: all HEX together are the file.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers import capture


def decode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "decode", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ble_bp_hex_prints_one_json_object_per_reading() -> None:
    # BP measurement 0x2A35: flags 0x1E, 120/80/100 mmHg, 2026-11-22 10:00:00, pulse 72, user 1
    result = decode("ble-bp", "1E7800500064 00EA070B160A0000 4800 01 0000".replace(" ", ""))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {
        "metric": "MDC_PRESS_BLD_NONINV_SYS",
        "value": 120.0,
        "unit": "MDC_DIM_MMHG",
        "time": "2026-11-22T10:00:00",
        "flags": ["user:1"],
    }
    assert [line["metric"] for line in lines] == [
        "MDC_PRESS_BLD_NONINV_SYS",
        "MDC_PRESS_BLD_NONINV_DIA",
        "MDC_PRESS_BLD_NONINV_MEAN",
        "MDC_PULS_RATE_NON_INV",
    ]


def test_ble_bp_special_values_are_null_with_their_name() -> None:
    # systolic NaN (0x07FF), diastolic NRes (0x0800), MAP +INF (0x07FE)
    result = decode("ble-bp", "00FF07 0008 FE07".replace(" ", ""))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["value"], x["flags"]) for x in lines] == [
        (None, ["nan"]),
        (None, ["nres"]),
        (None, ["+inf"]),
    ]


def test_several_notifications_and_a_rejected_one() -> None:
    # BLE: one notification per argument (a GATT notification is a frame, not a stream)
    result = decode("ble-bp", "00780050006400", "00 78 00 50", "0x00780050006400")
    assert result.returncode == 0  # whole valid frames were decoded
    assert len(result.stdout.splitlines()) == 6  # both good frames are printed
    (error,) = result.stderr.splitlines()
    assert error.startswith("error: decode ble-bp hex frame 2: ")
    assert "truncated" in error


def test_rejected_frame_exits_3_with_one_error_line() -> None:
    result = decode("ble-bp", "E0780050006400")
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error:")
    assert "reserved bits" in result.stderr


@pytest.mark.parametrize(
    ("driver", "text"),
    [("masimo-ascii", "zzzz"), ("ble-bp", "zz"), ("nonin-df2", "01 8g"), ("ecg-scp", "")],
)
def test_not_hex_is_a_usage_error(driver: str, text: str) -> None:
    """Issue 11: `decode masimo-ascii zzzz` exited 3, kept for a rejected device frame."""
    result = decode(driver, "01", text)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: decode {driver}: {text!r} is not hex")


def test_a_ble_capture_file_with_a_line_that_is_not_hex_is_a_usage_error(
    tmp_path: Path,
) -> None:
    capture_file = tmp_path / "cuff.txt"
    capture_file.write_text("00 7800 5000 6400\nnot hex\n")
    result = decode("ble-bp", "--file", str(capture_file))
    assert result.returncode == 2
    assert result.stderr == (
        f"error: decode ble-bp {capture_file}: line 2: 'not hex' is not hex: 'n'\n"
    )


def test_masimo_hex_line() -> None:
    line = b"11/22/26 10:00:05 SPO2=097% BPM=072 PI=--.-- ALARM=0000 EXC=000800\r\n"
    result = decode("masimo-ascii", line.hex())
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert lines == [
        {
            "metric": "MDC_PULS_OXIM_SAT_O2",
            "value": 97.0,
            "unit": "MDC_DIM_PERCENT",
            "time": "2026-11-22T10:00:05",
            "flags": [],
        },
        {
            "metric": "MDC_PULS_OXIM_PULS_RATE",
            "value": 72.0,
            "unit": "MDC_DIM_BEAT_PER_MIN",
            "time": "2026-11-22T10:00:05",
            "flags": [],
        },
        {
            "metric": "MDC_PULS_OXIM_PERF_REL",
            "value": None,
            "unit": "MDC_DIM_PERCENT",
            "time": "2026-11-22T10:00:05",
            "flags": ["unavailable"],
        },
    ]


def test_a_line_without_its_cr_lf_is_a_partial_frame() -> None:
    # live, the port holds it until CR/LF comes; "SPO2=0" might be "SPO2=097%" cut short
    line = b"11/22/26 10:00:05 SPO2=097% BPM=072"
    result = decode("masimo-ascii", line.hex())
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr == (
        "error: decode masimo-ascii hex: a partial frame after the last complete one:"
        f" {len(line)} bytes held, as the live port holds them until the rest arrives"
        " (capture cut mid-frame?)\n"
    )


def test_masimo_capture_file_with_a_bad_line(tmp_path: Path) -> None:
    capture_file = tmp_path / "radical7.log"
    capture_file.write_bytes(
        b"11/22/26 10:00:05 SPO2=097% BPM=072\r\n"
        b"\x92\x81garbage\r\n"
        b"11/22/26 10:00:06 SPO2=098% BPM=071\r\n"
        b"11/22/26 10:00:07 SPO2=0"  # capture stopped mid-line
    )
    result = decode("masimo-ascii", "--file", str(capture_file))
    assert result.returncode == 0
    # the cut-off tail is reported, never read as "SPO2=0"
    assert [json.loads(x)["value"] for x in result.stdout.splitlines()] == [97.0, 72.0, 98.0, 71.0]
    errors = result.stderr.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(f"error: decode masimo-ascii {capture_file} frame 2: byte 0:")
    assert errors[1].startswith(
        f"error: decode masimo-ascii {capture_file}: a partial frame after the last complete"
        " one: 24 bytes held"
    )


def test_an_oversized_capture_file_is_refused_unread(tmp_path: Path) -> None:
    huge = tmp_path / "huge.bin"
    with huge.open("wb") as sparse:
        sparse.truncate(capture.MAX_CAPTURE_BYTES + 1)  # no blocks written: quick
    result = decode("nonin-df8", "--file", str(huge))
    assert result.returncode == 2
    assert result.stderr == (
        f"error: decode --file {huge}: larger than 256 MiB; cut the capture into parts\n"
    )


def test_ble_capture_file_is_hex_lines(tmp_path: Path) -> None:
    capture_file = tmp_path / "cuff.txt"
    capture_file.write_text("00 7800 5000 6400\n\n01 A0F0 6BF0 7DF0\n")
    result = decode("ble-bp", "--file", str(capture_file))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    # second frame in kPa: 16.0/10.7/12.5 kPa -> 120.0/80.3/93.8 mmHg, flagged
    assert [r["value"] for r in rows[3:]] == [120.0, 80.3, 93.8]
    assert rows[3]["flags"] == ["converted-from-kPa"]


def test_unknown_driver_and_missing_file_are_usage_errors(tmp_path: Path) -> None:
    result = decode("masimo", "00")
    assert result.returncode == 2
    assert result.stderr.startswith("error: decode: unknown driver 'masimo' (known: ble-bp, ")
    result = decode("ble-bp", "--file", str(tmp_path / "nope.txt"))
    assert result.returncode == 2
    assert "No such file" in result.stderr


@pytest.mark.parametrize(
    ("text", "data"),
    [("1e7800", b"\x1e\x78\x00"), ("1E 78 00", b"\x1e\x78\x00"), ("0x1e:78", b"\x1e\x78")],
)
def test_parse_hex(text: str, data: bytes) -> None:
    assert capture.parse_hex(text) == data


@pytest.mark.parametrize("text", ["", "1", "0xg0", "12 3"])
def test_parse_hex_rejects(text: str) -> None:
    with pytest.raises(capture.HexError):
        capture.parse_hex(text)


@given(st.binary(max_size=64), st.sampled_from(["", " ", ":", "-"]), st.booleans())
def test_parse_hex_reads_what_it_is_given(data: bytes, sep: str, upper: bool) -> None:
    text = sep.join(f"{b:02X}" if upper else f"{b:02x}" for b in data)
    if data:
        assert capture.parse_hex(text) == data
        assert capture.parse_hex("0x" + text.replace(sep, "")) == data
    else:
        with pytest.raises(capture.HexError):
            capture.parse_hex(text)


@given(st.text(max_size=80))
def test_parse_hex_returns_bytes_or_one_line_hex_error(text: str) -> None:
    try:
        data = capture.parse_hex(text)
    except capture.HexError as exc:
        assert "\n" not in str(exc) and len(str(exc)) <= 400
    else:
        digits = re.sub(r"[\s:_-]", "", text).lower()
        assert data.hex() == digits.removeprefix("0x")


# --- the monitor drivers through the same command (issue: monitors) -------------------------


def test_nonin_df7_packet_as_hex() -> None:
    from device_drivers.serial import nonin

    packet = nonin.encode_packet_df7(72, 97, [30000 + i for i in range(25)])
    result = decode("nonin-df7", packet.hex())
    assert result.returncode == 0, result.stderr
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    values = {r["metric"]: r["value"] for r in rows if "metric" in r}
    assert values == {"MDC_PULS_OXIM_PULS_RATE": 72.0, "MDC_PULS_OXIM_SAT_O2": 97.0}
    wave = next(r for r in rows if "waveform" in r)
    assert (wave["waveform"], wave["rate_hz"], wave["count"]) == ("MDC_PULS_OXIM_PLETH", 75.0, 25)


def test_nonin_capture_file_cut_mid_packet(tmp_path: Path) -> None:
    from device_drivers.serial import nonin

    packet = nonin.encode_packet_df7(72, 97, [0] * 25)
    capture_file = tmp_path / "nonin.bin"
    capture_file.write_bytes(packet * 2 + packet[:40])
    result = decode("nonin-df7", "--file", str(capture_file))
    assert result.returncode == 0
    assert len([x for x in result.stdout.splitlines() if '"metric"' in x]) == 4
    (error,) = result.stderr.splitlines()
    assert "a partial frame after the last complete one: 40 bytes held" in error


def test_datex_displayed_values_file(tmp_path: Path) -> None:
    from device_drivers.simulators.datex import S5Monitor

    monitor = S5Monitor(seed=1)
    capture_file = tmp_path / "s5.bin"
    from device_drivers.serial import datex

    capture_file.write_bytes(datex.encode_frame(monitor.displayed_record(8, 0.0)))
    result = decode("datex-s5", "--file", str(capture_file))
    assert result.returncode == 0, result.stderr
    metrics = {json.loads(x)["metric"] for x in result.stdout.splitlines()}
    assert {"MDC_ECG_HEART_RATE", "MDC_PULS_OXIM_SAT_O2"} <= metrics


def test_hl7_mllp_message_file(tmp_path: Path) -> None:
    from device_drivers.network import mllp
    from device_drivers.simulators.mllp_monitor import messages

    _, message = next(messages(seed=2))
    capture_file = tmp_path / "oru.hl7"
    capture_file.write_bytes(mllp.frame_message(message))
    result = decode("hl7-mllp", "--file", str(capture_file))
    assert result.returncode == 0, result.stderr
    assert any('"MDC_ECG_HEART_RATE"' in x for x in result.stdout.splitlines())


def test_scale_line_as_hex() -> None:
    result = decode("scale-ascii", b"W:070.0kg H:175.0cm\r\n".hex())
    assert result.returncode == 0, result.stderr
    values = {json.loads(x)["metric"]: json.loads(x)["value"] for x in result.stdout.splitlines()}
    assert values["MDC_RATIO_MASS_BODY_LEN_SQ"] == 22.9


# --- a capture is a stream (issue 11) --------------------------------------------------------
# Nonin frames built here from the specifications' Data Format #2 / #7 definitions (OEM III
# and WristOx2 3150 "Serial Data Format" tables), not by the driver's encoder: a frame is
# 01, status (bit 7 set, bit 0 SYNC on frame 1), pleth, data, checksum = sum of bytes 1-4
# mod 256 (DF7: status, pleth MSB, pleth LSB, data, checksum); 25 frames a packet, data
# byte of frames 1-3 = HR MSB, HR LSB, SpO2.


def nonin_packet(fmt: int, hr: int, spo2: int, pleth: int = 0x40) -> bytes:
    data = {1: hr >> 7, 2: hr & 0x7F, 3: spo2}
    out = b""
    for number in range(1, 26):
        status = 0x80 | 0x02 | (0x01 if number == 1 else 0)  # bit 7, perfusion green, SYNC
        if fmt == 2:
            head = bytes([0x01, status, pleth, data.get(number, 0)])
        else:
            head = bytes([status, 0x00, pleth, data.get(number, 0)])
        out += head + bytes([sum(head) % 256])
    return out


def test_a_df2_capture_of_2_6_packets_decodes_2_and_reports_the_partial_one() -> None:
    """Issue 11: 325 bytes (2.6 packets) were refused: 'DF2 packet is 325 bytes, not 125'."""
    stream = nonin_packet(2, 72, 97) + nonin_packet(2, 73, 98) + nonin_packet(2, 74, 99)
    capture_hex = stream[:325].hex()
    result = decode("nonin-df2", capture_hex)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    values = [(r["metric"], r["value"]) for r in rows if "metric" in r]
    assert values == [
        ("MDC_PULS_OXIM_PULS_RATE", 72.0),
        ("MDC_PULS_OXIM_SAT_O2", 97.0),
        ("MDC_PULS_OXIM_PULS_RATE", 73.0),
        ("MDC_PULS_OXIM_SAT_O2", 98.0),
    ]
    assert [r["count"] for r in rows if "waveform" in r] == [25, 25]
    (error,) = result.stderr.splitlines()
    assert error.startswith(
        "error: decode nonin-df2 hex: a partial frame after the last complete one: 75 bytes held"
    )
    # the same stream split over several arguments is the same stream
    split = decode("nonin-df2", capture_hex[:12], capture_hex[12:400], capture_hex[400:])
    assert (split.returncode, split.stdout, split.stderr) == (0, result.stdout, result.stderr)


def test_no_whole_valid_frame_exits_3() -> None:
    result = decode("nonin-df2", nonin_packet(2, 72, 97)[:124].hex())
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: decode nonin-df2")
    # DF8: one good-looking record is no stream yet (5 in a row are)
    one = bytes.fromhex("80486100")
    assert decode("nonin-df8", one.hex()).returncode == 3
    assert decode("nonin-df8", (one * 5).hex()).returncode == 0


def _intellivue_numerics(hr: int) -> bytes:
    from decimal import Decimal

    from device_drivers.serial.intellivue import encode_frame
    from device_drivers.serial.intellivue import messages as msg

    value = msg.nu_obs_value(0x4182, 0x0AA0, Decimal(hr))  # HR in bpm
    result = msg.poll_result(
        5, hr, msg.NOM_MOC_VMO_METRIC_NU, [(0, [(0x10, [(msg.NOM_ATTR_NU_VAL_OBS, value)])])]
    )
    return encode_frame(result)


def _datex(seed: int) -> bytes:
    from device_drivers.serial import datex
    from device_drivers.simulators.datex import S5Monitor

    return datex.encode_frame(S5Monitor(seed=seed).displayed_record(8, float(seed)))


def _mllp(seed: int) -> bytes:
    from device_drivers.network import mllp
    from device_drivers.simulators.mllp_monitor import messages

    _, message = next(messages(seed=seed))
    return mllp.frame_message(message)


def _flip(frame: bytes, at: int) -> bytes:
    return frame[:at] + bytes([frame[at] ^ 0x04]) + frame[at + 1 :]


def _line(when: int, spo2: str) -> bytes:
    return f"11/22/26 10:00:{when:02d} SPO2={spo2}% BPM=072\r\n".encode()


# driver -> (garbage in front, good frames before, a corrupt frame, good frames after,
# a partial tail, rejected lines expected). Garbage of a binary format is junk bytes; of a
# line format the tail of a line cut by opening the port mid-line.
CAPTURES: dict[str, tuple[bytes, list[bytes], bytes, list[bytes], bytes, int]] = {
    "nonin-df2": (
        b"\x01\x80\x37junk",
        [nonin_packet(2, 72, 97), nonin_packet(2, 73, 97)],
        _flip(nonin_packet(2, 74, 97), 33),  # frame 7's pleth: its checksum is wrong
        [nonin_packet(2, 75, 98)],
        nonin_packet(2, 76, 98)[:60],
        2,
    ),
    "nonin-df7": (
        b"\x81\x00junk",
        [nonin_packet(7, 72, 97), nonin_packet(7, 73, 97)],
        _flip(nonin_packet(7, 74, 97), 52),
        [nonin_packet(7, 75, 98)],
        nonin_packet(7, 76, 98)[:61],
        2,
    ),
    # DF8 records (3150 specification's DF8 table): status with bit 7 and HR bits 8-7, HR
    # bits 6-0, SpO2, STAT2; 72/min 97 % and 73/min 98 %.
    "nonin-df8": (
        b"\x00\xff\x13",
        [bytes.fromhex("80486100")] * 6,
        bytes.fromhex("80C86100"),  # bit 7 set in the HR byte: not a record
        [bytes.fromhex("80496200")] * 5,
        bytes.fromhex("8049"),
        2,
    ),
    "masimo-ascii": (
        b"=072 PI=--.--\r\n",
        [_line(5, "097"), _line(6, "098")],
        _line(7, "1x7"),
        [_line(8, "096")],
        b"11/22/26 10:00:09 SPO2=0",
        2,
    ),
    "scale-ascii": (
        b"0kg H:17\r\n",
        [b"W:070.0kg H:175.0cm\r\n", b"W:071.5kg H:175.0cm\r\n"],
        b"W:07x.0kg H:175.0cm\r\n",
        [b"W:069.9kg\r\n"],
        b"W:06",
        2,
    ),
    "datex-s5": (
        b"\x01\x02junk",
        [_datex(1), _datex(2)],
        _flip(_datex(3), 100),
        [_datex(4)],
        _datex(5)[:90],
        2,
    ),
    "intellivue": (
        b"junk",
        [_intellivue_numerics(72), _intellivue_numerics(73)],
        _flip(_intellivue_numerics(74), 30),
        [_intellivue_numerics(75)],
        _intellivue_numerics(76)[:20],
        2,
    ),
    # garbage outside MLLP blocks is skipped (its own line), not a rejected frame
    "hl7-mllp": (
        b"junk\r\n",
        [_mllp(1), _mllp(2)],
        b"\x0bno MSH here\x1c\r",
        [_mllp(3)],
        _mllp(4)[:50],
        1,
    ),
}


@pytest.mark.parametrize("driver", sorted(CAPTURES))
def test_a_capture_decodes_every_whole_valid_frame_and_reports_the_rest(
    driver: str, tmp_path: Path
) -> None:
    garbage, before, corrupt, after, tail, rejected = CAPTURES[driver]
    dirty = tmp_path / "dirty.bin"
    dirty.write_bytes(garbage + b"".join(before) + corrupt + b"".join(after) + tail)
    clean = tmp_path / "clean.bin"
    clean.write_bytes(b"".join(before + after))
    want = decode(driver, "--file", str(clean))
    assert want.returncode == 0 and want.stderr == "", want.stderr
    assert len(want.stdout.splitlines()) >= len(before) + len(after)
    got = decode(driver, "--file", str(dirty))
    assert got.returncode == 0, got.stderr
    assert got.stdout == want.stdout  # exactly the valid frames' readings, in order
    errors = got.stderr.splitlines()
    skipped = 1 if driver == "hl7-mllp" else 0
    assert len(errors) == rejected + skipped + 1, errors
    assert all(e.startswith(f"error: decode {driver} {dirty}") for e in errors)
    # framers hold a partial frame without its start flag and escapes: N bytes of content
    assert errors[-1].startswith(
        f"error: decode {driver} {dirty}: a partial frame after the last complete one: "
    )
    # the same bytes as HEX arguments read the same
    from_hex = decode(driver, dirty.read_bytes().hex())
    assert from_hex.stdout == got.stdout
    assert from_hex.stderr == got.stderr.replace(str(dirty), "hex")


def test_many_rejected_frames_are_counted_on_one_line() -> None:
    import random

    noise = random.Random(3).randbytes(4000)
    result = decode("nonin-df8", noise.hex())
    assert result.returncode == 3
    errors = result.stderr.splitlines()
    assert len(errors) == 12  # ten rejected pieces, one line of counts, the held tail
    assert errors[10].startswith(
        "error: decode nonin-df8 hex: 21 more rejected frames (2688 bytes): 21 x "
    )


def test_a_configured_device_shape_decodes_as_that_device_does() -> None:
    # A Tanita station (WB-3000 manual, "Output data": Hm, Wk, MI, CS) is a scale-ascii
    # device with model = "tanita": decoding its capture needs the same shape.
    line = b'{0,16,~0,1,~1,1,~2,1,MO,"WB-3000",Hm,170.0,Wk,65.4,MI,22.6,CS,5F\r\n'
    default = decode("scale-ascii", line.hex())
    assert default.returncode == 3 and not default.stdout
    tanita = decode("scale-ascii", "--model", "tanita", line.hex())
    assert tanita.returncode == 0, tanita.stderr
    weights = [json.loads(row) for row in tanita.stdout.splitlines()]
    assert {"metric": "MDC_MASS_BODY_ACTUAL", "value": 65.4} in [
        {"metric": w["metric"], "value": w["value"]} for w in weights
    ]
    pattern = decode(
        "scale-ascii", "--pattern", r"WT(?P<weight>\d+\.\d)(?P<unit>kg)", b"WT070.5kg\r\n".hex()
    )
    assert pattern.returncode == 0, pattern.stderr
    assert json.loads(pattern.stdout.splitlines()[0])["value"] == 70.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scale-ascii", "--model", "nope"], "decode --model: 'nope' is not a scale preset"),
        (["masimo-ascii", "--pattern", "x"], "decode --pattern: only scale-ascii"),
        (["ble-thermo", "--model", "berrymed"], "is not a quirk of ble-thermo"),
    ],
)
def test_a_shape_the_driver_does_not_have_is_a_usage_error(args: list[str], message: str) -> None:
    result = decode(*args, "00")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1
