"""12-lead ECG carts: the declarations of the four file-format drivers.

A cart exports each recording as one file (to a share or a USB stick the box watches)
or, all but DICOM carts, sends it over RS-232, where `framing` cuts the stream into
files. The format modules (scp, aecg, philips_xml, dicom) are imported on the first file,
not with the registry: the daemon of a box without a cart never loads them, nor the
`ecg` extra's packages (pydicom, defusedxml) they need.
"""

from __future__ import annotations

import functools
import importlib

from device_drivers.declaration import (
    Binding,
    Decoder,
    Driver,
    FileFolder,
    Lane,
    Results,
    SerialLine,
    Uplink,
    Yields,
    every_channel,
)
from device_drivers.ecg import framing
from device_drivers.files.folder import NO_EXTENSION
from device_drivers.transport import WholeFrames
from edge_agent.model import Decoded


def _lazy(module: str, function: str) -> Decoder:
    """A decoder that imports `device_drivers.ecg.<module>` on its first frame."""

    def decode(frame: bytes) -> Decoded:
        found: Decoder = getattr(importlib.import_module(f"device_drivers.ecg.{module}"), function)
        return found(frame)

    return decode


# What a cart's serial output usually runs at; `baudrate` in the config when it differs.
SERIAL_LINE = SerialLine(baudrate=115200)
EXAMPLE_FOLDER = "/media/ecg"

# What every cart's file is: one whole 12-lead recording, sent up whole ahead of every
# vital sign, belonging to the open visit (never held), read after it was taken.
_RECORDING = Yields(numerics=True, waves=True, recording=True)
_WHOLE = Uplink(lane=Lane.RECORDING)

DECLARATIONS = (
    Driver(
        id="ecg-scp",
        summary="12-lead ECG carts: SCP-ECG (EN 1064) files from a folder, or sent over RS-232",
        source=FileFolder(("*.scp",), EXAMPLE_FOLDER, serial=SERIAL_LINE),
        framer=framing.ScpFramer,
        decoder_for=every_channel(_lazy("scp", "decode_scp")),
        yields=_RECORDING,
        profile="MDC_DEV_SPEC_PROFILE_HYDRA",
        binding=Binding.CART,
        results=Results.STORED,
        uplink=_WHOLE,
    ),
    Driver(
        id="ecg-aecg",
        summary="12-lead ECG carts: HL7 aECG XML files from a folder, or sent over RS-232",
        source=FileFolder(("*.xml",), EXAMPLE_FOLDER, serial=SERIAL_LINE),
        framer=functools.partial(framing.XmlFramer, b"</AnnotatedECG>"),
        decoder_for=every_channel(_lazy("aecg", "decode_aecg")),
        yields=_RECORDING,
        profile="MDC_DEV_SPEC_PROFILE_HYDRA",
        binding=Binding.CART,
        results=Results.STORED,
        uplink=_WHOLE,
        packages=("defusedxml",),
        extra="ecg",
    ),
    Driver(
        id="ecg-philips-xml",
        summary="Philips PageWriter/TC carts: Philips XML (XLI leads) from a folder, or RS-232",
        source=FileFolder(("*.xml",), EXAMPLE_FOLDER, serial=SERIAL_LINE),
        framer=functools.partial(framing.XmlFramer, b"</restingecgdata>"),
        decoder_for=every_channel(_lazy("philips_xml", "decode_philips_xml")),
        yields=_RECORDING,
        profile="MDC_DEV_SPEC_PROFILE_HYDRA",
        binding=Binding.CART,
        results=Results.STORED,
        uplink=_WHOLE,
        packages=("defusedxml",),
        extra="ecg",
    ),
    Driver(
        id="ecg-dicom",
        summary="12-lead ECG carts: DICOM 12-lead waveform files from a folder (share, USB stick)",
        source=FileFolder(
            ("*.dcm", "*.dicom", NO_EXTENSION),
            EXAMPLE_FOLDER,
            exclude=("DICOMDIR",),
            not_serial_because="DICOM is not sent over RS-232",
        ),
        framer=WholeFrames,  # never on a serial line: the config wants a folder
        decoder_for=every_channel(_lazy("dicom", "decode_dicom")),
        yields=_RECORDING,
        profile="MDC_DEV_SPEC_PROFILE_HYDRA",
        binding=Binding.CART,
        results=Results.STORED,
        uplink=_WHOLE,
        packages=("pydicom",),
        extra="ecg",
    ),
)
