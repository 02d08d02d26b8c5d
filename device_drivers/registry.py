"""Driver ids (docs/contracts.md "CLI") -> their pure decoder and framer.

The one place that knows which driver reads which bytes: the decode CLI (through
device_drivers.capture, which reads a capture with the same framer and decoder), the
daemon's device set-up and the demo all ask here, so a driver added here is usable
everywhere.
Every contract driver id is here (edge_agent.config.DEVICE_DRIVERS; a test keeps the
two equal). Transports: "serial" (a tty), "ble" (GATT notifications), "tcp" (a listener)
and "folder" (ECG carts' files, one file one frame; most carts can also send them over
a serial line, cut by the driver's framer).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from device_drivers.ble import (
    berrymed,
    blood_pressure,
    glucose,
    heart_rate,
    pulse_oximeter,
    thermometer,
    weight_scale,
)
from device_drivers.ecg import framing as ecg_framing
from device_drivers.files.folder import NO_EXTENSION
from device_drivers.network import mllp
from device_drivers.network.admission import ConnectionLimits
from device_drivers.serial import datex, intellivue, masimo, nonin, scale
from device_drivers.transport import (
    Conversation,
    Framer,
    FrameSink,
    GattConversation,
    StateSink,
)
from edge_agent.model import Decoded

Decoder = Callable[[bytes], Decoded]


class _WholeFrames:
    """The framer of a transport that already delivers whole frames (BLE notifications)."""

    def feed(self, data: bytes) -> list[bytes]:
        return [data] if data else []


@dataclass(frozen=True, slots=True)
class SerialLine:
    """A device's fixed serial settings (a config `baudrate` may override the speed)."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"  # pyserial: N, E, O
    stopbits: float = 1
    rtscts: bool = False


@dataclass(frozen=True, slots=True)
class Quirk:
    """A vendor's device behind a standard driver id (docs/protocols/ble-vendor-formats.md), by `model`."""

    summary: str
    characteristics: tuple[str, ...]
    decoders: Callable[[], Callable[[str | None], Decoder]]  # per device: its own state


@dataclass(frozen=True, slots=True)
class Driver:
    id: str
    transport: str  # "serial" | "ble" | "tcp" | "folder"
    summary: str
    decoder_for: Callable[[str | None], Decoder]
    framer: Callable[[], Framer]
    characteristics: tuple[str, ...] = ()  # BLE: what to subscribe to
    line: SerialLine = SerialLine()
    # Serial devices that must be asked (association, data requests, keep-alive).
    conversation: Callable[[], Conversation] | None = None
    # Drivers whose decoding depends on the device's config (a scale's line format):
    # (model, pattern) -> decoder_for. None: `decoder_for` serves every device.
    configured: Callable[[str | None, str | None], Callable[[str | None], Decoder]] | None = None
    # Numerics of a device that reports faster than the county needs them (a Nonin at
    # 3 packets/s) go up at most this often; every reading is still stored on the box.
    # 0: every frame with a value goes up. Alarms go up whenever they change.
    upload_every_s: float = 0.0
    # BLE: a request/response exchange after subscribing (glucose RACP). Called once per
    # device, it gives that device's conversation factory (one conversation per
    # connection, so a download resumes where the last connection dropped).
    gatt_conversation: Callable[[], Callable[[], GattConversation]] | None = None
    # BLE: the key that makes a resent reading (a meter replaying its memory) a duplicate.
    dedup_key: Callable[[str, bytes], str | None] | None = None
    # BLE: the device stamps readings with its own clock; set it (Current Time 0x2A2B)
    # on every connection, where the device offers it.
    sets_clock: bool = False
    # BLE: the device only talks over an encrypted link; bond on connect.
    bonds: bool = False
    quirks: Mapping[str, Quirk] = field(default_factory=dict)
    # Folder: which files are this driver's (globs, case-insensitive; folder.NO_EXTENSION
    # for names without one) and which of those are not (a DICOM medium's index).
    file_patterns: tuple[str, ...] = ()
    file_exclude: tuple[str, ...] = ()
    # Folder: the cart can also send its files over RS-232 (a `port` instead of a
    # `folder`); `framer` then cuts the stream into files and `line` is the default line.
    also_serial: bool = False
    # Python packages the decoder imports on first use (the `ecg` extra), so that
    # `config check` can say they are missing before the first ECG is quarantined.
    packages: tuple[str, ...] = ()

    def characteristics_for(self, model: str | None) -> tuple[str, ...]:
        quirk = self.quirks.get(model or "")
        return quirk.characteristics if quirk else self.characteristics

    def decoders(
        self, model: str | None = None, pattern: str | None = None
    ) -> Callable[[str | None], Decoder]:
        """decoder_for, as configured for one device."""
        quirk = self.quirks.get(model or "")
        if quirk is not None:
            return quirk.decoders()
        if self.configured is None:
            return self.decoder_for
        return self.configured(model, pattern)


def _per_device(decode: Decoder) -> Callable[[str | None], Decoder]:
    return lambda _channel: decode


def _resent_if_time_stamped(time_stamp_flag: int) -> Callable[[str, bytes], str | None]:
    """The resend key of a profile whose frames may carry the device's time stamp.

    A device replaying its memory (docs/protocols/ble-health-profiles.md) sends the same reading again; the
    same device time and values (the very same bytes, time stamp included) are the same
    reading. Without a time stamp two equal frames may be two real measurements, so no
    key: both are kept.
    """

    def key(characteristic: str, data: bytes) -> str | None:
        if data and data[0] & time_stamp_flag:
            return f"{characteristic[4:8]}:{data.hex()}"
        return None

    return key


def _thermometer_quirk(name: str) -> Quirk:
    def decoders() -> Callable[[str | None], Decoder]:
        return lambda channel: thermometer.decoder_for(channel, quirk=name)

    return Quirk(f"thermometer firmware quirk: {name}", thermometer.CHARACTERISTICS, decoders)


def _berrymed_decoders() -> Callable[[str | None], Decoder]:
    """BCI packets split across notifications are joined by one framer per device."""
    framer = berrymed.PacketFramer()

    def decode(data: bytes) -> Decoded:
        return berrymed.decode_packets(framer.feed(data))

    return lambda _channel: decode


def _scale_decoders(model: str | None, pattern: str | None) -> Callable[[str | None], Decoder]:
    """A scale's line format: its own `pattern`, else the preset named by `model`."""
    line_format = scale.pattern_from_config(pattern or model or scale.DEFAULT_PRESET)
    decode = scale.decoder(line_format)
    return lambda _channel: decode


# 12-lead ECG files. The format modules are imported on the first file, not with the
# registry: the daemon of a box without a cart never loads them (nor pydicom).
def _lazy(module: str, function: str) -> Decoder:
    """A decoder that imports `device_drivers.ecg.<module>` on its first frame."""

    def decode(frame: bytes) -> Decoded:
        found: Decoder = getattr(importlib.import_module(f"device_drivers.ecg.{module}"), function)
        return found(frame)

    return decode


_decode_scp = _lazy("scp", "decode_scp")
_decode_aecg = _lazy("aecg", "decode_aecg")
_decode_philips_xml = _lazy("philips_xml", "decode_philips_xml")
_decode_dicom = _lazy("dicom", "decode_dicom")


# What a cart's serial output usually runs at; `baudrate` in the config when it differs.
_ECG_SERIAL_LINE = SerialLine(baudrate=115200)


DRIVERS: dict[str, Driver] = {
    "masimo-ascii": Driver(
        id="masimo-ascii",
        transport="serial",
        summary="Masimo Radical-5/7, Rad-8 serial ASCII (one line a second)",
        decoder_for=lambda _channel: masimo.decode_line,
        framer=masimo.LineFramer,
    ),
    "nonin-df2": Driver(
        id="nonin-df2",
        transport="serial",
        summary="Nonin OEM III Data Format #2: 5-byte frames, 3 packets/s, 8-bit pleth",
        decoder_for=lambda _channel: nonin.decode_packet_df2,
        framer=functools.partial(nonin.PacketFramer, 2),
        upload_every_s=1.0,
    ),
    "nonin-df7": Driver(
        id="nonin-df7",
        transport="serial",
        summary="Nonin Data Format #7: 5-byte frames, 3 packets/s, 16-bit pleth",
        decoder_for=lambda _channel: nonin.decode_packet_df7,
        framer=functools.partial(nonin.PacketFramer, 7),
        upload_every_s=1.0,
    ),
    "nonin-df8": Driver(
        id="nonin-df8",
        transport="serial",
        summary="Nonin Data Format #8: one 4-byte record a second",
        decoder_for=lambda _channel: nonin.decode_record_df8,
        framer=nonin.RecordFramer,
    ),
    "datex-s5": Driver(
        id="datex-s5",
        transport="serial",
        summary="GE/Datex-Ohmeda S/5 computer interface: displayed values, ECG and pleth waves",
        decoder_for=lambda _channel: datex.decode_frame,
        framer=datex.FrameReader,
        line=SerialLine(baudrate=19200, bytesize=8, parity="E", stopbits=1, rtscts=True),
        # ECG 300/s + pleth 100/s: within the 600 samples/s the 19200 baud line carries.
        # A monitor answers a request at a level it supports within a second; probing
        # from level 11 down at 3 s a level finds a '03 (level 8) S/5 in ~10 s.
        conversation=functools.partial(
            datex.S5Conversation,
            waves=(datex.WAVE_ECG1, datex.WAVE_PLETH),
            tick_s=1.0,
            answer_timeout_s=3.0,
        ),
    ),
    "intellivue": Driver(
        id="intellivue",
        transport="serial",
        summary="Philips IntelliVue Data Export (MIB/RS-232): numerics, waves, alarms by poll",
        decoder_for=lambda _channel: intellivue.decode_frame,
        framer=intellivue.FrameReader,
        line=SerialLine(baudrate=115200),
        # Per monitor: wave calibration comes once a second, samples every 256 ms.
        configured=lambda _model, _pattern: _per_device(intellivue.CalibratedDecoder()),
        conversation=intellivue.IntelliVueConversation,
        upload_every_s=1.0,
    ),
    "hl7-mllp": Driver(
        id="hl7-mllp",
        transport="tcp",
        summary="monitors and central stations pushing HL7 v2 ORU^R01 over MLLP/TCP",
        decoder_for=lambda _channel: mllp.decode_message,
        framer=mllp.MllpFramer,
    ),
    "scale-ascii": Driver(
        id="scale-ascii",
        transport="serial",
        summary="health-hut height/weight stations and weighing indicators, ASCII lines",
        decoder_for=_scale_decoders(None, None),
        framer=masimo.LineFramer,
        configured=_scale_decoders,
    ),
    "ble-plx-spot": Driver(
        id="ble-plx-spot",
        transport="ble",
        summary="Bluetooth SIG Pulse Oximeter 0x1822: spot-check measurement 0x2A5E",
        decoder_for=pulse_oximeter.spot_decoder_for,
        framer=_WholeFrames,
        characteristics=pulse_oximeter.SPOT_CHARACTERISTICS,
        dedup_key=_resent_if_time_stamped(pulse_oximeter.SPOT_TIME_STAMP),
        sets_clock=True,
    ),
    "ble-plx-cont": Driver(
        id="ble-plx-cont",
        transport="ble",
        summary="Bluetooth SIG Pulse Oximeter 0x1822: continuous measurement 0x2A5F",
        decoder_for=pulse_oximeter.continuous_decoder_for,
        framer=_WholeFrames,
        characteristics=pulse_oximeter.CONTINUOUS_CHARACTERISTICS,
        upload_every_s=1.0,
        quirks={
            "berrymed": Quirk(
                "BerryMed BM1000 and OEM fingertip oximeters: BCI 5-byte packets, ~60/s",
                berrymed.CHARACTERISTICS,
                _berrymed_decoders,
            )
        },
    ),
    "ble-bp": Driver(
        id="ble-bp",
        transport="ble",
        summary="Bluetooth SIG Blood Pressure 0x2A35 / intermediate cuff 0x2A36",
        decoder_for=blood_pressure.decoder_for,
        framer=_WholeFrames,
        characteristics=(blood_pressure.MEASUREMENT_UUID, blood_pressure.INTERMEDIATE_UUID),
        dedup_key=_resent_if_time_stamped(blood_pressure.FLAG_TIME_STAMP),
        sets_clock=True,
    ),
    "ble-glucose": Driver(
        id="ble-glucose",
        transport="ble",
        summary="Bluetooth SIG Glucose 0x1808: stored records over RACP 0x2A52, context 0x2A34",
        decoder_for=glucose.decoder_for,
        framer=_WholeFrames,
        characteristics=glucose.CHARACTERISTICS,
        # Per meter: a record's context joins its reading (glucose.RecordDecoder).
        configured=lambda _model, _pattern: glucose.RecordDecoder().decoder_for,
        gatt_conversation=glucose.RecordDownloads,
        dedup_key=glucose.dedup_key,
        sets_clock=True,
        bonds=True,
    ),
    "ble-thermo": Driver(
        id="ble-thermo",
        transport="ble",
        summary="Bluetooth SIG Health Thermometer 0x1809: 0x2A1C (and intermediate 0x2A1E)",
        decoder_for=thermometer.decoder_for,
        framer=_WholeFrames,
        characteristics=thermometer.CHARACTERISTICS,
        dedup_key=_resent_if_time_stamped(thermometer.FLAG_TIME_STAMP),
        sets_clock=True,
        quirks={name: _thermometer_quirk(name) for name in thermometer.QUIRKS},
    ),
    "ble-hr": Driver(
        id="ble-hr",
        transport="ble",
        summary="Bluetooth SIG Heart Rate 0x180D: 0x2A37 (rate, contact, energy, RR intervals)",
        decoder_for=heart_rate.decoder_for,
        framer=_WholeFrames,
        characteristics=heart_rate.CHARACTERISTICS,
        upload_every_s=1.0,
    ),
    "ble-weight": Driver(
        id="ble-weight",
        transport="ble",
        summary="Bluetooth SIG Weight Scale 0x181D: 0x2A9D (kg/lb, BMI, height)",
        decoder_for=weight_scale.decoder_for,
        framer=_WholeFrames,
        characteristics=weight_scale.CHARACTERISTICS,
        dedup_key=_resent_if_time_stamped(weight_scale.FLAG_TIME_STAMP),
        sets_clock=True,
    ),
    "ecg-scp": Driver(
        id="ecg-scp",
        transport="folder",
        summary="12-lead ECG carts: SCP-ECG (EN 1064) files from a folder, or sent over RS-232",
        decoder_for=_per_device(_decode_scp),
        framer=ecg_framing.ScpFramer,
        line=_ECG_SERIAL_LINE,
        file_patterns=("*.scp",),
        also_serial=True,
    ),
    "ecg-aecg": Driver(
        id="ecg-aecg",
        transport="folder",
        summary="12-lead ECG carts: HL7 aECG XML files from a folder, or sent over RS-232",
        decoder_for=_per_device(_decode_aecg),
        framer=functools.partial(ecg_framing.XmlFramer, b"</AnnotatedECG>"),
        line=_ECG_SERIAL_LINE,
        file_patterns=("*.xml",),
        also_serial=True,
        packages=("defusedxml",),
    ),
    "ecg-philips-xml": Driver(
        id="ecg-philips-xml",
        transport="folder",
        summary="Philips PageWriter/TC carts: Philips XML (XLI leads) from a folder, or RS-232",
        decoder_for=_per_device(_decode_philips_xml),
        framer=functools.partial(ecg_framing.XmlFramer, b"</restingecgdata>"),
        line=_ECG_SERIAL_LINE,
        file_patterns=("*.xml",),
        also_serial=True,
        packages=("defusedxml",),
    ),
    "ecg-dicom": Driver(
        id="ecg-dicom",
        transport="folder",
        summary="12-lead ECG carts: DICOM 12-lead waveform files from a folder (share, USB stick)",
        decoder_for=_per_device(_decode_dicom),
        framer=_WholeFrames,  # never on a serial line: the config wants a folder
        file_patterns=("*.dcm", "*.dicom", NO_EXTENSION),
        file_exclude=("DICOMDIR",),
        packages=("pydicom",),
    ),
}


def driver(driver_id: str) -> Driver:
    try:
        return DRIVERS[driver_id]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise KeyError(f"unknown driver {driver_id!r} (known: {known})") from None


class Listener(Protocol):
    async def run(self, emit: FrameSink, on_state: StateSink, stop: asyncio.Event) -> None: ...


def listener(
    driver_id: str, host: str, port: int, *, limits: ConnectionLimits | None = None
) -> Listener:
    """The network transport of a `tcp` driver, listening on host:port."""
    if driver(driver_id).transport != "tcp":
        raise KeyError(f"driver {driver_id!r} does not listen on the network")
    return mllp.MllpListener(host, port, limits=limits)


def decoder_for_channel(driver_id: str, channel: str | None) -> Decoder:
    """The decoder for a frame that arrived on `channel` (a BLE characteristic, or None)."""
    return driver(driver_id).decoder_for(channel)


def decoder(driver_id: str) -> Decoder:
    """The decoder for frames with no channel (a device with per-device state, such as
    an IntelliVue's wave calibration, gets its own from Driver.decoders())."""
    return decoder_for_channel(driver_id, None)


def decode(driver_id: str, frame: bytes) -> Decoded:
    return decoder(driver_id)(frame)


def framer(driver_id: str) -> Framer:
    return driver(driver_id).framer()
