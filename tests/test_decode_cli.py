"""`edge-agent decode DRIVER HEX... | --file PATH` exactly as DESIGN.md §4 specifies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from device_drivers import registry
from edge_agent.model import DecodeError


def decode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "decode", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ble_bp_hex_prints_one_json_object_per_reading() -> None:
    # devices.md §2.1: flags 0x1E, 120/80/100 mmHg, 2026-11-22 10:00:00, pulse 72, user 1
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


def test_several_hex_frames_and_a_rejected_one() -> None:
    result = decode("ble-bp", "00780050006400", "00 78 00 50", "0x00780050006400")
    assert result.returncode == 3
    assert len(result.stdout.splitlines()) == 6  # both good frames are printed
    errors = result.stderr.splitlines()
    assert errors[0].startswith("error: decode ble-bp hex frame 2: ")
    assert "truncated" in errors[0]


def test_rejected_frame_exits_3_with_one_error_line() -> None:
    result = decode("ble-bp", "E0780050006400")
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error:")
    assert "reserved bits" in result.stderr


def test_not_hex_exits_3() -> None:
    result = decode("ble-bp", "zz")
    assert result.returncode == 3
    assert result.stderr.startswith("error: decode ble-bp: 'zz' is not hex")


def test_masimo_hex_line() -> None:
    line = b"11/22/26 10:00:05 SPO2=097% BPM=072 PI=--.-- ALARM=0000 EXC=000800"
    result = decode("masimo-ascii", line.hex())
    assert result.returncode == 0, result.stderr
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


def test_masimo_capture_file_with_a_bad_line(tmp_path: Path) -> None:
    capture = tmp_path / "radical7.log"
    capture.write_bytes(
        b"11/22/26 10:00:05 SPO2=097% BPM=072\r\n"
        b"\x92\x81garbage\r\n"
        b"11/22/26 10:00:06 SPO2=098% BPM=071\r\n"
        b"11/22/26 10:00:07 SPO2=0"  # capture stopped mid-line
    )
    result = decode("masimo-ascii", "--file", str(capture))
    assert result.returncode == 3
    # the cut-off tail is reported, never read as "SPO2=0"
    assert [json.loads(x)["value"] for x in result.stdout.splitlines()] == [97.0, 72.0, 98.0, 71.0]
    errors = result.stderr.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(f"error: decode masimo-ascii {capture} frame 2: byte 0:")
    assert errors[1] == (
        f"error: decode masimo-ascii {capture}: 24 bytes after the last complete frame"
        " (capture cut mid-frame?)"
    )


def test_ble_capture_file_is_hex_lines(tmp_path: Path) -> None:
    capture = tmp_path / "cuff.txt"
    capture.write_text("00 7800 5000 6400\n\n01 A0F0 6BF0 7DF0\n")
    result = decode("ble-bp", "--file", str(capture))
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
    assert registry.parse_hex(text) == data


@pytest.mark.parametrize("text", ["", "1", "0xg0", "12 3"])
def test_parse_hex_rejects(text: str) -> None:
    with pytest.raises(DecodeError):
        registry.parse_hex(text)


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
    capture = tmp_path / "nonin.bin"
    capture.write_bytes(packet * 2 + packet[:40])
    result = decode("nonin-df7", "--file", str(capture))
    assert result.returncode == 3
    assert len([x for x in result.stdout.splitlines() if '"metric"' in x]) == 4
    assert "40 bytes after the last complete frame" in result.stderr


def test_datex_displayed_values_file(tmp_path: Path) -> None:
    from device_drivers.simulators.datex import S5Monitor

    monitor = S5Monitor(seed=1)
    capture = tmp_path / "s5.bin"
    from device_drivers.serial import datex

    capture.write_bytes(datex.encode_frame(monitor.displayed_record(8, 0.0)))
    result = decode("datex-s5", "--file", str(capture))
    assert result.returncode == 0, result.stderr
    metrics = {json.loads(x)["metric"] for x in result.stdout.splitlines()}
    assert {"MDC_ECG_HEART_RATE", "MDC_PULS_OXIM_SAT_O2"} <= metrics


def test_hl7_mllp_message_file(tmp_path: Path) -> None:
    from device_drivers.network import mllp
    from device_drivers.simulators.mllp_monitor import messages

    _, message = next(messages(seed=2))
    capture = tmp_path / "oru.hl7"
    capture.write_bytes(mllp.frame_message(message))
    result = decode("hl7-mllp", "--file", str(capture))
    assert result.returncode == 0, result.stderr
    assert any('"MDC_ECG_HEART_RATE"' in x for x in result.stdout.splitlines())


def test_scale_line_as_hex() -> None:
    result = decode("scale-ascii", b"W:070.0kg H:175.0cm".hex())
    assert result.returncode == 0, result.stderr
    values = {json.loads(x)["metric"]: json.loads(x)["value"] for x in result.stdout.splitlines()}
    assert values["MDC_RATIO_MASS_BODY_LEN_SQ"] == 22.9
