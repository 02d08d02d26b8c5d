"""ECG carts as devices: the watched folder, the serial file framers, the registry and
config entries, and `edge-agent decode ecg-* --file` end to end."""

from __future__ import annotations

import asyncio
import binascii
import datetime as dt
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import TypeVar

import pytest
from waiting import until

from device_drivers import capture, registry
from device_drivers.declaration import FileFolder
from device_drivers.ecg import aecg, dicom, philips_xml, scp
from device_drivers.ecg.framing import ScpFramer, XmlFramer
from device_drivers.ecg.record import STANDARD_LEADS, EcgRecord
from device_drivers.files.folder import NO_EXTENSION, FolderTransport, content_key, file_label
from device_drivers.serial.port import SerialTransport
from device_drivers.transport import Outcome
from edge_agent import config
from edge_agent.devices import runtime_for
from edge_agent.model import Statement

EDGE_AGENT = Path(sys.executable).parent / "edge-agent"


def twelve_lead(samples: int = 300) -> EcgRecord:
    """A synthetic 12-lead record whose limb leads obey Einthoven/Goldberger."""
    i = [round(200 * math.sin(k / 10)) for k in range(samples)]
    ii = [round(300 * math.sin(k / 10 + 0.5)) for k in range(samples)]
    leads = {
        "I": tuple(i),
        "II": tuple(ii),
        "III": tuple(b - a for a, b in zip(i, ii, strict=True)),
        "aVR": tuple(-(a + b) // 2 for a, b in zip(i, ii, strict=True)),
        "aVL": tuple(a - b // 2 for a, b in zip(i, ii, strict=True)),
        "aVF": tuple(b - a // 2 for a, b in zip(i, ii, strict=True)),
    }
    for v in range(1, 7):
        leads[f"V{v}"] = tuple(round(100 * v * math.cos(k / 7)) for k in range(samples))
    return EcgRecord(
        leads=leads,
        rate_hz=Decimal(500),
        uv_per_unit=Decimal(5),
        start_time=dt.datetime(2026, 11, 22, 10, 0, 0),
        measurements={
            "heart_rate": Decimal(72),
            "pr": Decimal(160),
            "qrs": Decimal(90),
            "qt": Decimal(380),
            "qtc": Decimal(410),
        },
        statements=(Statement("Sinus rhythm"), Statement("Normal ECG")),
    )


ENCODERS: dict[str, Callable[[EcgRecord], bytes]] = {
    "ecg-scp": scp.encode_scp,
    "ecg-aecg": aecg.encode_aecg,
    "ecg-philips-xml": philips_xml.encode_philips_xml,
    "ecg-dicom": dicom.encode_dicom,
}


# --- serial framers --------------------------------------------------------------------


def scp_shaped(length: int, fill: int) -> bytes:
    """The smallest thing the SCP framer takes for a record (EN 1064 §5.3 layout): CRC,
    record length, a 16-byte section 0 (its CRC over bytes 2.., id 0, length 16,
    versions, 'SCPECG'), filler."""
    section0 = (0).to_bytes(2, "little") + (16).to_bytes(4, "little") + b"\x14\x14SCPECG"
    section0 = binascii.crc_hqx(section0, 0xFFFF).to_bytes(2, "little") + section0
    header = b"\x00\x00" + length.to_bytes(4, "little")
    return header + section0 + bytes([fill]) * (length - 22)


Framer = TypeVar("Framer", ScpFramer, XmlFramer)


def feed_split(
    framer_factory: Callable[[], Framer], stream: bytes, cut: int
) -> tuple[Framer, list[bytes]]:
    framer = framer_factory()
    return framer, framer.feed(stream[:cut]) + framer.feed(stream[cut:])


def test_scp_framer_cuts_records_at_every_split() -> None:
    first, second = scp_shaped(30, 0xAA), scp_shaped(41, 0x55)
    stream = first + second
    for cut in range(len(stream) + 1):
        framer, frames = feed_split(ScpFramer, stream, cut)
        assert frames == [first, second], cut
        assert framer.pending == 0 and framer.dropped == 0


def test_scp_framer_resyncs_after_garbage_before_and_between() -> None:
    first, second = scp_shaped(30, 0xAA), scp_shaped(24, 0x55)
    garbage = b"\xff\xff\xff\xff\xff\xff\xffnoise" + bytes(30)  # zeros: lengths of 0
    stream = garbage + first + b"\x00\x01\x02" + second
    for cut in range(len(stream) + 1):
        framer, frames = feed_split(ScpFramer, stream, cut)
        assert frames == [first, second], cut
        assert framer.dropped == len(garbage) + 3 and framer.pending == 0


@pytest.mark.parametrize(
    "bad_length",
    [
        5,  # shorter than the record header itself
        21,  # no room for section 0's header
        64 * 1024 * 1024 + 1,  # over the file cap
    ],
)
def test_scp_framer_drops_an_absurd_length(bad_length: int) -> None:
    good = scp_shaped(30, 0xAA)
    absurd = b"\x00\x00" + bad_length.to_bytes(4, "little") + good[6:22]
    framer = ScpFramer()
    assert framer.feed(absurd + good) == [good]
    assert framer.dropped == len(absurd)


def test_scp_framer_holds_an_incomplete_record() -> None:
    record = scp_shaped(40, 0x11)
    framer = ScpFramer()
    assert framer.feed(record[:-1]) == []
    assert framer.pending == 39 and framer.dropped == 0
    assert framer.feed(record[-1:]) == [record]


def test_scp_framer_on_real_files_byte_by_byte() -> None:
    one = scp.encode_scp(twelve_lead(120))
    two = scp.encode_scp(twelve_lead(80))
    framer = ScpFramer()
    frames = [f for byte in (one + two) for f in framer.feed(bytes([byte]))]
    assert frames == [one, two]
    assert scp.parse_scp(frames[1]).sample_count == 80


AECG_END = b"</AnnotatedECG>"
DOC_1 = b'<?xml version="1.0"?>\n<AnnotatedECG xmlns="urn:hl7-org:v3"><id/></AnnotatedECG>'
DOC_2 = b"<AnnotatedECG><x>2</x></AnnotatedECG>"  # no declaration: starts at the root


def test_xml_framer_cuts_documents_at_every_split_with_garbage_around() -> None:
    garbage = b"\r\n\x00AT+OK\r\n<Annotated"
    stream = garbage + DOC_1 + b"\r\n--\r\n" + DOC_2 + b"\r\n"
    for cut in range(len(stream) + 1):
        framer, frames = feed_split(lambda: XmlFramer(AECG_END), stream, cut)
        assert frames == [DOC_1, DOC_2], cut
        assert framer.dropped == len(garbage) + 6
        assert framer.pending <= len(b"<AnnotatedECG")  # the trailing CR LF, at most


def test_xml_framer_hands_on_a_document_cut_off_by_a_new_one() -> None:
    # The cart was reset mid-file: the first half still reaches quarantine as a frame.
    half = DOC_1[:50]
    stream = half + DOC_1 + half + DOC_2
    for cut in range(len(stream) + 1):
        _, frames = feed_split(lambda: XmlFramer(AECG_END), stream, cut)
        assert frames == [half, DOC_1, half, DOC_2], cut


def test_xml_framer_needs_a_whole_root_name() -> None:
    framer = XmlFramer(AECG_END)
    assert framer.feed(b"<AnnotatedECGs>x</AnnotatedECGs>") == []
    assert framer.feed(DOC_2) == [DOC_2]


def test_xml_framer_hands_on_what_outgrows_the_cap() -> None:
    framer = XmlFramer(AECG_END, max_bytes=64)
    endless = b"<AnnotatedECG>" + b"x" * 100
    assert framer.feed(endless) == [endless]
    assert framer.pending == 0
    assert XmlFramer(b"</restingecgdata>").feed(b"..<restingecgdata/>") == []


def test_xml_framer_refuses_what_is_not_an_end_tag() -> None:
    with pytest.raises(ValueError, match="not an XML end tag"):
        XmlFramer(b"AnnotatedECG")


@pytest.mark.parametrize("driver_id", ["ecg-aecg", "ecg-philips-xml", "ecg-scp"])
def test_registry_framer_cuts_real_files_sent_in_chunks(driver_id: str) -> None:
    files = [ENCODERS[driver_id](twelve_lead(n)) for n in (100, 60)]
    stream = b"\r\n" + files[0] + b"\r\n" + files[1]
    framer = registry.framer(driver_id)
    frames = [f for at in range(0, len(stream), 97) for f in framer.feed(stream[at : at + 97])]
    assert frames == files
    decoded = registry.decode(driver_id, frames[1])
    assert len(decoded.waveforms) == 12 and len(decoded.waveforms[0].samples) == 60


# --- the watched folder ----------------------------------------------------------------


class Sink:
    """Records what the transport hands on; `commit` futures when asked for them."""

    def __init__(self, *, futures: bool = False) -> None:
        self.frames: list[tuple[bytes, str | None, str | None]] = []
        self.states: list[tuple[str, str]] = []
        self.futures: list[asyncio.Future[Outcome]] = []
        self._make_futures = futures

    def emit(
        self, data: bytes, channel: str | None, /, *, dedup_key: str | None = None
    ) -> asyncio.Future[Outcome] | None:
        self.frames.append((data, channel, dedup_key))
        if not self._make_futures:
            return None
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    def on_state(self, state: str, detail: str, /) -> None:
        self.states.append((state, detail))

    @property
    def channels(self) -> list[str | None]:
        return [channel for _, channel, _ in self.frames]


async def polls(transport: FolderTransport, sink: Sink, n: int = 1) -> None:
    stop = asyncio.Event()
    for _ in range(n):
        await transport.poll(sink.emit, sink.on_state, stop)


async def test_new_files_are_emitted_once_settled(tmp_path: Path) -> None:
    ecg = scp.encode_scp(twelve_lead())
    (tmp_path / "0001.scp").write_bytes(ecg)
    (tmp_path / "0002.SCP").write_bytes(ecg[::-1])
    (tmp_path / "notes.txt").write_text("not an ECG")
    (tmp_path / "._0001.scp").write_bytes(b"\x00\x05\x16\x07")  # macOS AppleDouble
    transport = FolderTransport(tmp_path, ("*.scp",), settle_polls=2)
    sink = Sink()
    await polls(transport, sink, 2)
    assert sink.frames == []  # first sighting, then stable once: not yet
    await polls(transport, sink)
    # key=str: a missing channel (None) would fail the comparison, not the sort.
    assert sorted(sink.channels, key=str) == ["0001.scp", "0002.SCP"]
    by_name = {channel: (data, key) for data, channel, key in sink.frames}
    assert by_name["0001.scp"] == (ecg, content_key(ecg))
    assert content_key(ecg).startswith("sha256:") and len(content_key(ecg)) == 7 + 64

    def read(name: str, data: bytes) -> str:
        info = (tmp_path / name).stat()
        return f"{tmp_path}: read {file_label(name, info.st_size, info.st_mtime_ns, content_key(data))}"

    assert sink.states == [
        ("connected", f"{tmp_path}: watching"),
        ("connected", read("0001.scp", ecg)),
        ("connected", read("0002.SCP", ecg[::-1])),
    ]
    # The state names no file: a cart's file name can be the patient's.
    assert not any("0001" in detail or "0002" in detail for _, detail in sink.states)
    assert ".scp file of" in sink.states[1][1]
    await polls(transport, sink, 5)
    assert len(sink.frames) == 2  # each file once


async def test_a_file_being_copied_is_emitted_only_when_complete(tmp_path: Path) -> None:
    ecg = aecg.encode_aecg(twelve_lead())
    target = tmp_path / "ecg-17.xml"
    transport = FolderTransport(tmp_path, ("*.xml",), settle_polls=2)
    sink = Sink()
    step = len(ecg) // 4 + 1
    with target.open("wb") as copy:
        for at in range(0, len(ecg), step):
            copy.write(ecg[at : at + step])
            copy.flush()
            await polls(transport, sink, 2)  # the copy is slower than one poll, not two
            assert sink.frames == []
    await polls(transport, sink)
    assert sink.frames == [(ecg, "ecg-17.xml", content_key(ecg))]


async def test_a_file_rewritten_with_the_same_size_is_seen_again(tmp_path: Path) -> None:
    target = tmp_path / "a.xml"
    target.write_bytes(b"<AnnotatedECG>one</AnnotatedECG>")
    transport = FolderTransport(tmp_path, ("*.xml",), settle_polls=1)
    sink = Sink()
    await polls(transport, sink, 2)
    target.write_bytes(b"<AnnotatedECG>two</AnnotatedECG>")
    os.utime(target, ns=(0, 1_000_000_000))  # an older mtime: only the time tells
    await polls(transport, sink, 2)
    assert [data for data, _, _ in sink.frames] == [
        b"<AnnotatedECG>one</AnnotatedECG>",
        b"<AnnotatedECG>two</AnnotatedECG>",
    ]


async def test_the_same_ecg_under_another_name_has_the_same_key(tmp_path: Path) -> None:
    ecg = scp.encode_scp(twelve_lead())
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "A.scp").write_bytes(ecg)
    transport = FolderTransport(tmp_path, ("*.scp",), settle_polls=1)
    sink = Sink()
    await polls(transport, sink, 2)
    (tmp_path / "B.scp").write_bytes(ecg)  # the cart exported it again
    await polls(transport, sink, 2)
    assert sink.channels == [os.path.join("export", "A.scp"), "B.scp"]
    assert {key for _, _, key in sink.frames} == {content_key(ecg)}


async def test_a_missing_folder_is_disconnected_until_it_appears(tmp_path: Path) -> None:
    stick = tmp_path / "usb"
    transport = FolderTransport(stick, ("*.dcm",), poll_s=0.01, settle_polls=1)
    sink = Sink()
    stop = asyncio.Event()
    task = asyncio.create_task(transport.run(sink.emit, sink.on_state, stop))
    try:
        await until(lambda: bool(sink.states))
        assert sink.states == [("disconnected", f"{stick}: not mounted / not found")]
        await asyncio.sleep(0.05)  # time itself: five polls of a missing folder
        assert len(sink.states) == 1  # said once, polled on
        stick.mkdir()
        (stick / "ECG1.DCM").write_bytes(b"DICM-ish")
        await until(lambda: bool(sink.frames))
        assert sink.states[1] == ("connected", f"{stick}: watching")
        assert sink.channels == ["ECG1.DCM"]
        (stick / "ECG1.DCM").unlink()
        stick.rmdir()  # the stick is pulled out
        await until(lambda: sink.states[-1][0] == "disconnected")
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_a_file_name_that_is_not_utf8_becomes_a_channel_a_store_can_hold(
    tmp_path: Path,
) -> None:
    """王.scp written by a cart in GB 18030 on a stick mounted for UTF-8: the OS gives
    the name with surrogates (PEP 383), which SQLite refuses; the channel escapes them."""
    ecg = scp.encode_scp(twelve_lead())
    name = "王".encode("gb18030") + b".scp"
    with open(os.path.join(os.fsencode(tmp_path), name), "wb") as file:
        file.write(ecg)
    transport = FolderTransport(tmp_path, ("*.scp",), settle_polls=1)
    sink = Sink()
    await polls(transport, sink, 3)
    assert sink.channels == ["\\xcd\\xf5.scp"]
    (channel,) = sink.channels
    assert channel is not None and channel.encode("utf-8")  # what a store can hold


async def test_an_oversize_file_is_skipped_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "huge.scp").write_bytes(b"\x00" * 101)
    (tmp_path / "ok.scp").write_bytes(b"\x00" * 100)
    transport = FolderTransport(tmp_path, ("*.scp",), settle_polls=1, max_bytes=100)
    sink = Sink()

    def never(relative: str, size: int) -> bytes | None:
        assert relative != "huge.scp", "an oversize file must not be read"
        return (tmp_path / relative).read_bytes()

    monkeypatch.setattr(transport, "_read", never)
    await polls(transport, sink, 4)
    assert sink.channels == ["ok.scp"]
    skipped = [d for s, d in sink.states if "skipped" in d]
    info = (tmp_path / "huge.scp").stat()
    assert skipped == [
        f"{tmp_path}: skipped {file_label('huge.scp', 101, info.st_mtime_ns)}:"
        " over the 100 bytes limit of an ECG file"
    ]
    assert "huge" not in skipped[0] and "a .scp file of 101 bytes modified" in skipped[0]


async def test_an_unreadable_file_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "locked.xml").write_bytes(b"<restingecgdata/>")
    transport = FolderTransport(tmp_path, ("*.xml",), settle_polls=1)
    sink = Sink()
    real_read = transport._read
    attempts = []

    def flaky(relative: str, size: int) -> bytes | None:
        attempts.append(relative)
        if len(attempts) < 3:
            raise PermissionError(13, "Permission denied")
        return real_read(relative, size)

    monkeypatch.setattr(transport, "_read", flaky)
    await polls(transport, sink, 2)
    assert sink.frames == []
    await polls(transport, sink, 2)
    assert sink.channels == ["locked.xml"] and len(attempts) == 3
    complaints = [d for _, d in sink.states if "cannot read" in d]
    info = (tmp_path / "locked.xml").stat()
    label = file_label("locked.xml", info.st_size, info.st_mtime_ns)
    assert complaints == [f"{tmp_path}: cannot read {label} (Permission denied); will retry"]
    assert "locked" not in complaints[0]


async def test_the_next_file_waits_for_the_commit(tmp_path: Path) -> None:
    for name in ("1.scp", "2.scp"):
        (tmp_path / name).write_bytes(name.encode())
    os.utime(tmp_path / "1.scp", ns=(0, 1_000_000_000))  # the older one goes first
    transport = FolderTransport(tmp_path, ("*.scp",), settle_polls=1)
    sink = Sink(futures=True)
    stop = asyncio.Event()
    await transport.poll(sink.emit, sink.on_state, stop)
    second_poll = asyncio.create_task(transport.poll(sink.emit, sink.on_state, stop))
    await until(lambda: bool(sink.frames))
    await asyncio.sleep(0.02)  # time itself: the second poll holds while nothing commits
    assert sink.channels == ["1.scp"]  # not read until the first is durably recorded
    sink.futures[0].set_result("decoded")
    await until(lambda: len(sink.frames) == 2)
    assert sink.channels == ["1.scp", "2.scp"]
    stop.set()  # stopping does not wait for a commit that will come in the last flush
    await asyncio.wait_for(second_poll, 5)


def test_dicom_folder_patterns() -> None:
    files = registry.driver("ecg-dicom").source
    assert isinstance(files, FileFolder)
    transport = FolderTransport("/media/ecg", files.patterns, exclude=files.exclude)
    assert NO_EXTENSION in files.patterns
    assert [n for n in ("IM000001", "ecg.DCM", "x.dicom") if transport.wanted(n)] == [
        "IM000001",
        "ecg.DCM",
        "x.dicom",
    ]
    assert not any(transport.wanted(n) for n in ("DICOMDIR", ".hidden", "ecg.xml", "a.scp"))


# --- registry and config ---------------------------------------------------------------

HEAD = '[agent]\nid = "a"\n[uplink]\nbroker = "mqtt://localhost"\nallow_insecure = true\n'


@pytest.mark.parametrize("driver_id", sorted(ENCODERS))
def test_registry_decodes_each_format_as_one_whole_file(driver_id: str) -> None:
    data = ENCODERS[driver_id](twelve_lead())
    whole = capture.read_file(driver_id, data)
    assert [p.data for p in whole.pieces] == [data] and whole.trailing == 0
    decoded = registry.decode(driver_id, data)
    assert [w.metric.removeprefix("MDC_ECG_ELEC_POTL_") for w in decoded.waveforms] == [
        lead.upper() for lead in STANDARD_LEADS
    ]
    assert [s.text for s in decoded.statements] == ["Sinus rhythm", "Normal ECG"]
    assert registry.driver(driver_id).transport == "folder"


def test_registry_import_loads_no_ecg_format_nor_pydicom() -> None:
    code = (
        "import sys, device_drivers.registry as r\n"
        "formats = ('scp', 'aecg', 'philips_xml', 'dicom')\n"
        "heavy = ('pydicom', 'defusedxml', *('device_drivers.ecg.' + f for f in formats))\n"
        "loaded = [m for m in sys.modules if m.startswith(heavy)]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ecg_devices_read_a_folder_or_a_port() -> None:
    cfg = config.parse(
        HEAD
        + '[[device]]\nid = "cart-1"\ndriver = "ecg-dicom"\nfolder = "/media/ecg"\n'
        + '[[device]]\nid = "cart-2"\ndriver = "ecg-scp"\nport = "/dev/ttyUSB1"\n'
        + '[[device]]\nid = "cart-3"\ndriver = "ecg-philips-xml"\nfolder = "/mnt/pagewriter"\n'
    )
    assert [(d.transport, d.folder, d.port) for d in cfg.devices] == [
        ("folder", "/media/ecg", None),
        ("serial", None, "/dev/ttyUSB1"),
        ("folder", "/mnt/pagewriter", None),
    ]
    folder = runtime_for(cfg.devices[0]).transport
    assert isinstance(folder, FolderTransport) and folder.path == Path("/media/ecg")
    assert folder.wanted("IM0001") and not folder.wanted("DICOMDIR")
    serial = runtime_for(cfg.devices[1]).transport
    assert isinstance(serial, SerialTransport)
    assert serial.settings.port == "/dev/ttyUSB1" and serial.settings.baudrate == 115200
    assert isinstance(serial._framer_factory(), ScpFramer)
    philips = runtime_for(cfg.devices[2]).transport
    assert isinstance(philips, FolderTransport) and philips.wanted("ECG_0001.XML")


async def test_a_cart_sending_files_over_a_real_pty(tmp_path: Path) -> None:
    from device_drivers.simulators.pty import open_pty, write_within

    master_fd, slave_path = open_pty()
    os.set_blocking(master_fd, False)
    cfg = config.parse(
        HEAD + f'[[device]]\nid = "cart"\ndriver = "ecg-aecg"\nport = "{slave_path}"\n'
    )
    runtime = runtime_for(cfg.devices[0])
    sink = Sink()
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.transport.run(sink.emit, sink.on_state, stop))
    files = [aecg.encode_aecg(twelve_lead(n)) for n in (50, 40)]
    try:
        await until(lambda: bool(sink.states) and sink.states[-1][0] == "connected")
        for data in files:
            await write_within(master_fd, b"\r\n" + data, stop, give_up_s=5)
        await until(lambda: len(sink.frames) == 2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        os.close(master_fd)
    assert [(data, key) for data, _, key in sink.frames] == [(f, content_key(f)) for f in files]
    assert runtime.decoder_for(None)(files[1]).waveforms[0].samples[:3] == (0, 20, 40)


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        (
            'id = "cart"\ndriver = "ecg-dicom"',
            'config device[0] (cart).folder: driver ecg-dicom reads files: set folder = "/media/ecg"',
        ),
        (
            'id = "cart"\ndriver = "ecg-scp"',
            'config device[0] (cart).folder: driver ecg-scp reads files: set folder = "/media/ecg"'
            ' (or port = "/dev/ttyUSB0" for a cart that sends them over RS-232)',
        ),
        (
            'id = "cart"\ndriver = "ecg-dicom"\nport = "/dev/ttyUSB0"',
            "config device[0] (cart).port: driver ecg-dicom reads files from a folder, not a"
            ' serial port (DICOM is not sent over RS-232): set folder = "/media/ecg"',
        ),
        (
            'id = "cart"\ndriver = "ecg-aecg"\nport = "/dev/ttyUSB0"\nfolder = "/media/ecg"',
            "config device[0] (cart).port: driver ecg-aecg reads a folder or a serial port,"
            " not both",
        ),
        (
            'id = "cart"\ndriver = "ecg-scp"\nfolder = "media/ecg"',
            "config device[0] (cart).folder: 'media/ecg' must be an absolute path (e.g. /media/ecg)",
        ),
        (
            'id = "m"\ndriver = "masimo-ascii"\nport = "/dev/ttyUSB0"\nfolder = "/media/ecg"',
            "config device[0] (m).folder: driver masimo-ascii does not read files from a folder",
        ),
    ],
)
def test_ecg_device_problems_name_the_key(device: str, expected: str) -> None:
    with pytest.raises(config.ConfigError) as info:
        config.parse(HEAD + "[[device]]\n" + device + "\n")
    assert info.value.problems == [expected]


def test_a_missing_format_package_is_a_config_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def without_pydicom(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "pydicom" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", without_pydicom)
    with pytest.raises(config.ConfigError) as info:
        config.parse(
            HEAD + '[[device]]\nid = "cart"\ndriver = "ecg-dicom"\nfolder = "/media/ecg"\n'
        )
    assert info.value.problems == [
        "config device[0] (cart).driver: driver ecg-dicom needs the Python package pydicom"
        " (pip install the 'ecg' extra; bash scripts/setup.sh does)"
    ]


# --- edge-agent decode ecg-* -----------------------------------------------------------


def decode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EDGE_AGENT), "decode", *args], capture_output=True, text=True, timeout=60
    )


def test_decode_scp_file_prints_readings_waveforms_and_statements(tmp_path: Path) -> None:
    record = twelve_lead()
    path = tmp_path / "cart.scp"
    path.write_bytes(scp.encode_scp(record))
    result = decode("ecg-scp", "--file", str(path))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    readings = [x for x in lines if "metric" in x]
    waves = [x for x in lines if "waveform" in x]
    statements = [x for x in lines if "statement" in x]
    assert len(readings) + len(waves) + len(statements) == len(lines)
    assert readings[0] == {
        "metric": "MDC_ECG_HEART_RATE",
        "value": 72.0,
        "unit": "MDC_DIM_BEAT_PER_MIN",
        "time": "2026-11-22T10:00:00",
        "flags": ["12-lead"],
    }
    assert {x["metric"] for x in readings} == {
        "MDC_ECG_HEART_RATE",
        "MDC_ECG_TIME_PD_PR_GL",
        "MDC_ECG_TIME_PD_QRS_GL",
        "MDC_ECG_TIME_PD_QT_GL",
        "MDC_ECG_TIME_PD_QTc",
    }
    assert [w["waveform"] for w in waves] == [
        f"MDC_ECG_ELEC_POTL_{lead.upper()}" for lead in STANDARD_LEADS
    ]
    lead_ii = waves[1]
    assert lead_ii == {
        "waveform": "MDC_ECG_ELEC_POTL_II",
        "rate_hz": 500.0,
        "count": 300,
        "unit": "MDC_DIM_MICRO_VOLT",
        "values": [5.0 * s for s in record.leads["II"][:10]],  # 5 µV a unit
    }
    assert all(w["unit"] == "MDC_DIM_MICRO_VOLT" and w["count"] == 300 for w in waves)
    assert statements == [
        {"statement": "Sinus rhythm", "code": None},
        {"statement": "Normal ECG", "code": None},
    ]


@pytest.mark.parametrize("driver_id", ["ecg-aecg", "ecg-philips-xml", "ecg-dicom"])
def test_decode_other_formats_from_file(driver_id: str, tmp_path: Path) -> None:
    path = tmp_path / "cart.bin"
    path.write_bytes(ENCODERS[driver_id](twelve_lead()))
    result = decode(driver_id, "--file", str(path))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sum("waveform" in x for x in lines) == 12
    assert sum("statement" in x for x in lines) == 2
    assert any(x.get("metric") == "MDC_ECG_HEART_RATE" for x in lines)


def test_decode_ecg_hex_arguments_are_one_file(tmp_path: Path) -> None:
    data = scp.encode_scp(twelve_lead(20))
    path = tmp_path / "cart.scp"
    path.write_bytes(data)
    hexed = data.hex()
    half = len(hexed) // 2 & ~1
    from_hex = decode("ecg-scp", hexed[:half], hexed[half:])
    assert from_hex.returncode == 0, from_hex.stderr
    assert from_hex.stdout == decode("ecg-scp", "--file", str(path)).stdout


def test_decode_corrupt_ecg_file_exits_3(tmp_path: Path) -> None:
    data = bytearray(scp.encode_scp(twelve_lead()))
    data[len(data) // 2] ^= 0xFF  # the record CRC no longer matches
    path = tmp_path / "broken.scp"
    path.write_bytes(bytes(data))
    result = decode("ecg-scp", "--file", str(path))
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: decode ecg-scp {path}: ")


# --- through the daemon: the recorder keeps each ECG once ---------------------------------


async def test_a_cart_folder_through_the_agent_records_each_ecg_once(tmp_path: Path) -> None:
    import sqlite3

    from edge_agent.clock import SystemClock
    from edge_agent.daemon import Agent
    from edge_agent.devices import DeviceRuntime
    from edge_agent.store import StoreWriter

    cfg = config.embedded_defaults(data_dir=tmp_path / "data", broker="mqtt://127.0.0.1:1")
    share = tmp_path / "share"
    device_config = config.DeviceConfig(id="cart-1", driver="ecg-scp", folder=str(share))
    spec = registry.driver("ecg-scp")
    assert isinstance(spec.source, FileFolder)
    transport = FolderTransport(share, spec.source.patterns, poll_s=0.02, settle_polls=1)
    device = DeviceRuntime(device_config, transport, spec.decoders())

    class NoLink:
        connected = False

        def start(self) -> None: ...

        def stop(self, **_: object) -> None: ...

        def publish(self, *_: object, **__: object) -> int:
            raise RuntimeError("no uplink in this test")

    store = StoreWriter.open(cfg.agent.db_path)
    agent = Agent(cfg, store, SystemClock(boot_id="b"), [device], lambda _on_event: NoLink())
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    ecg = scp.encode_scp(twelve_lead())
    db = sqlite3.connect(cfg.agent.db_path)

    def outcomes() -> list[tuple[str, str]]:
        rows = db.execute("SELECT channel, outcome FROM raw_frame ORDER BY id").fetchall()
        return [(str(channel), str(outcome)) for channel, outcome in rows]

    try:
        share.mkdir()
        (share / "0001.scp").write_bytes(ecg)
        await until(lambda: len(outcomes()) == 1, 10)
        (share / "again.scp").write_bytes(ecg)  # the cart exported it twice
        broken = bytearray(ecg)
        broken[100] ^= 0xFF
        (share / "broken.scp").write_bytes(bytes(broken))
        await until(lambda: len(outcomes()) == 3, 10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        store.close()
    assert sorted(outcomes()) == [
        ("0001.scp", "decoded"),
        ("again.scp", "duplicate"),
        ("broken.scp", "quarantined"),
    ]
    db.close()
