"""Bounded quarantine and the reject watch: real SQLite store, the real recorder, the CLI.

docs/contracts.md: "Quarantine is bounded per device: the first bad frames and a sample after
that keep their bytes, the rest only their count (a port full of line noise must not
fill the disk)." A port that produces mostly rejects is reported as "wrong driver or
baud rate" until good frames return.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers import registry
from edge_agent import quarantine
from edge_agent.model import Decoded, DecodeError, Frame, Reading
from edge_agent.quarantine import QuarantineBudget, RejectWatch, reason_key
from edge_agent.recorder import Recorder
from edge_agent.store import StoreWriter

SECOND = 1_000_000_000


def frame(data: bytes, at_s: float, device: str = "spo2-1", driver: str = "nonin-df8") -> Frame:
    ns = int(at_s * SECOND)
    return Frame(device, driver, data, ns, ns, "boot")


def good(_: bytes) -> Decoded:
    return Decoded(readings=(Reading("MDC_PULS_OXIM_SAT_O2", Decimal(97), "MDC_DIM_PERCENT"),))


def bad(data: bytes) -> Decoded:
    # a reason that quotes the input, as real decoders' reasons do
    raise DecodeError(f"checksum 0x{data[0]:02x}, expected 0x17 in {data.hex()!r}", 4)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreWriter]:
    s = StoreWriter.open(tmp_path / "agent.sqlite3")
    yield s
    s.close()


def rows(store: StoreWriter, table: str) -> int:
    return int(store.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_only_the_first_bad_frames_and_a_sample_keep_their_bytes(store: StoreWriter) -> None:
    budget = QuarantineBudget(keep_first=3, sample_every_s=60, keep_max=5)
    recorder = Recorder(store, quarantine=budget)
    results = [recorder.record(frame(bytes([i, 1, 2, 3]), i), bad) for i in range(100)]
    assert all(r.outcome == "quarantined" for r in results)
    kept = [i for i, r in enumerate(results) if r.raw_frame_id is not None]
    # 0-2 the first three; 3 the first sample; 63 the next, a minute later; then the cap
    assert kept == [0, 1, 2, 3, 63]
    assert rows(store, "quarantine") == rows(store, "raw_frame") == 5
    assert [r["data_hex"] for r in store.quarantine.recent()][-1] == "00010203"
    (tally,) = store.quarantine.reasons()
    assert (tally["frames"], tally["kept"], tally["bytes"]) == (100, 5, 400)
    assert tally["reason"] == "checksum 0x…, expected 0x… in '…'"
    assert tally["last_reason"] == "checksum 0x63, expected 0x17 in '63010203'"
    assert store.quarantine.counts() == {"kept": 5, "counted": 95}
    assert store.quarantine.count() == 100
    dev = store.devices.get("spo2-1")
    assert dev is not None and (dev.frames, dev.quarantined) == (100, 100)
    # a frame that decodes is kept whole, whatever the budget says
    ok = recorder.record(frame(b"good", 101), good)
    assert ok.outcome == "decoded" and ok.raw_frame_id is not None
    stored = store.conn.execute(
        "SELECT data, outcome FROM raw_frame WHERE id = ?", (ok.raw_frame_id,)
    )
    assert stored.fetchone() == (b"good", "decoded")


def test_the_budget_survives_a_restart_and_is_per_device(store: StoreWriter) -> None:
    first = Recorder(store, quarantine=QuarantineBudget(keep_first=2, keep_max=2))
    for i in range(4):
        first.record(frame(b"\x01", i), bad)
    # the daemon restarts: its new recorder reads what the store already keeps
    again = Recorder(store, quarantine=QuarantineBudget(keep_first=2, keep_max=2))
    assert again.record(frame(b"\x02", 10), bad).raw_frame_id is None
    # another device has its own budget
    other = again.record(frame(b"\x03", 11, device="spo2-2"), bad)
    assert other.raw_frame_id is not None
    assert store.quarantine.counts() == {"kept": 3, "counted": 3}


def test_reasons_are_counted_by_kind_and_their_number_is_capped(store: StoreWriter) -> None:
    recorder = Recorder(store, quarantine=QuarantineBudget(keep_first=0, keep_max=0))

    def quoting(data: bytes) -> Decoded:
        raise DecodeError(f"unexpected text {data.decode()!r} at {len(data)}")

    for n in range(quarantine.MAX_REASONS + 10):
        word = "".join(chr(ord("a") + int(d)) for d in str(n))
        recorder.record(frame(word.encode(), n, driver="masimo-ascii"), quoting)
        recorder.record(frame(bytes([n]), n, driver="masimo-ascii"), bad)
    reasons = {r["reason"]: r["frames"] for r in store.quarantine.reasons(limit=100)}
    assert reasons == {
        "unexpected text '…' at #": quarantine.MAX_REASONS + 10,
        "checksum 0x…, expected 0x… in '…'": quarantine.MAX_REASONS + 10,
    }

    def unique(data: bytes) -> Decoded:
        raise DecodeError(f"reason kind {data.decode()}")  # no digits: a new key each

    for n in range(quarantine.MAX_REASONS + 5):
        word = "".join(chr(ord("a") + int(d)) for d in str(n))
        recorder.record(frame(word.encode(), n, device="odd-1", driver="masimo-ascii"), unique)
    odd = [r for r in store.quarantine.reasons(limit=100) if r["device_id"] == "odd-1"]
    assert len(odd) == quarantine.MAX_REASONS + 1
    assert {r["frames"] for r in odd if r["reason"] == quarantine.OTHER_REASONS} == {5}


@given(st.text(max_size=200))
def test_reason_keys_never_keep_digits_or_quoted_input(reason: str) -> None:
    key = reason_key(reason)
    assert len(key) <= quarantine.MAX_REASON_KEY
    assert not any(c.isdigit() and c.isascii() for c in key.replace("0x…", ""))
    assert reason_key(reason.replace("7", "3")) == key


def line_state(store: StoreWriter, device: str = "spo2-1") -> tuple[str, str]:
    dev = store.devices.get(device)
    assert dev is not None
    return dev.state, dev.state_detail or ""


def connected(store: StoreWriter, device: str = "spo2-1", driver: str = "nonin-df8") -> None:
    with store.transaction():
        store.devices.upsert(device, driver=driver, transport="serial", port="/dev/ttyUSB0")
        store.devices.set_state(device, "connected", "/dev/ttyUSB0", 1)


def test_a_port_of_mostly_rejects_says_wrong_driver_or_baud_rate_until_good_frames_return(
    store: StoreWriter,
) -> None:
    connected(store)
    recorder = Recorder(store)
    for i in range(quarantine.REJECTING_AT - 1):
        recorder.record(frame(b"\x00", i), bad)
    assert line_state(store)[0] == "connected"  # not yet: one bad frame is no verdict
    recorder.record(frame(b"\x00", 9), bad)
    state, detail = line_state(store)
    assert state == "rejecting"
    assert detail.startswith("wrong driver or baud rate: 10 of the last 10 frames rejected")
    assert "checksum 0x00" in detail
    # the transport reopened the port: still read wrong, so said again at the next reject
    with store.transaction():
        store.devices.set_state("spo2-1", "connected", "/dev/ttyUSB0", 2)
    recorder.record(frame(b"\x00", 10), bad)
    assert line_state(store)[0] == "rejecting"
    for i in range(quarantine.CLEAR_RUN - 1):
        recorder.record(frame(b"ok", 20 + i), good)
        assert line_state(store)[0] == "rejecting"
    recorder.record(frame(b"ok", 30), good)
    assert line_state(store) == ("connected", "/dev/ttyUSB0")
    assert store.frames.observation_count() == quarantine.CLEAR_RUN


def test_an_odd_bad_frame_is_no_verdict_and_an_unplugged_port_stays_disconnected(
    store: StoreWriter,
) -> None:
    connected(store)
    recorder = Recorder(store)
    for i in range(200):  # a noisy cable: one frame in ten lost
        recorder.record(frame(b"x", i), bad if i % 10 == 0 else good)
    assert line_state(store)[0] == "connected"
    for i in range(30):
        recorder.record(frame(b"\x00", 300 + i), bad)
    assert line_state(store)[0] == "rejecting"
    with store.transaction():
        store.devices.set_state("spo2-1", "disconnected", "device gone (end of file)", 3)
    recorder.record(frame(b"\x00", 400), bad)  # recorded after the unplug was reported
    assert line_state(store) == ("disconnected", "device gone (end of file)")


def test_only_serial_line_drivers_are_watched(store: StoreWriter) -> None:
    connected(store, "cuff-1", "ble-bp")
    recorder = Recorder(store)
    for i in range(30):
        recorder.record(frame(b"\x00", i, device="cuff-1", driver="ble-bp"), bad)
    assert line_state(store, "cuff-1")[0] == "connected"
    serial = {d.id for d in registry.DRIVERS.values() if d.transport == "serial"}
    watched = {d.id for d in registry.DRIVERS.values() if d.watches_rejects}
    assert serial == watched


@settings(max_examples=200)
@given(st.lists(st.booleans(), max_size=120))
def test_reject_watch_follows_the_window(outcomes: list[bool]) -> None:
    watch = RejectWatch()
    window: list[bool] = []
    rejecting = False
    run = 0
    for rejected in outcomes:
        change = watch.note("d", rejected)
        window = [*window, rejected][-quarantine.WINDOW :]
        run = 0 if rejected else run + 1
        if not rejecting:
            bad_n = sum(window)
            now = bad_n >= quarantine.REJECTING_AT and bad_n * 2 > len(window)
            assert change is (True if now else None)
            rejecting = now
        else:
            now = run < quarantine.CLEAR_RUN
            assert change is (None if now else False)
            if not now:
                rejecting, window = False, []
        assert watch.rejecting("d") == rejecting


def test_status_shows_kept_and_counted_and_the_line_verdict(tmp_path: Path) -> None:
    data = tmp_path / "agent"
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[agent]\nid = "amb-017"\ndata_dir = "{data}"\n'
        '[uplink]\nbroker = "mqtt://127.0.0.1:1"\nallow_insecure = true\n',
        encoding="utf-8",
    )
    store = StoreWriter.open(data / "edge-agent.sqlite3")
    connected(store)
    recorder = Recorder(store, quarantine=QuarantineBudget(keep_first=4, keep_max=4))
    for i in range(40):
        recorder.record(frame(bytes([i]), i), bad)
    store.close()

    def status(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge_agent.cli", "status", *extra, "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    as_json = status("--json")
    assert as_json.returncode == 0, as_json.stderr
    got = json.loads(as_json.stdout)
    assert got["quarantine"] == 40
    assert got["quarantine_counts"] == {"kept": 4, "counted": 36}
    (dev,) = got["devices"]
    assert (dev["state"], dev["quarantined"], dev["quarantine_kept"]) == ("rejecting", 40, 4)
    assert dev["state_detail"].startswith("wrong driver or baud rate")
    assert got["quarantine_reasons"][0]["frames"] == 40
    text = status()
    assert text.returncode == 0, text.stderr
    assert "quarantined frames: 40 (4 kept with their bytes, 36 only counted)" in text.stdout
    assert "rejecting wrong driver or baud rate" in text.stdout
    assert "quarantine spo2-1: 40 x checksum 0x27" in text.stdout
