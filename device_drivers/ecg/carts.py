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
from collections.abc import Callable

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
from device_drivers.transport import Framer, WholeFrames
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


def _cart(
    id: str,
    summary: str,
    source: FileFolder,
    framer: Callable[[], Framer],
    module: str,
    packages: tuple[str, ...] = (),
) -> Driver:
    """One format's declaration: what differs is its files, its framer and its module
    (whose `decode_<module>` reads the file); every cart's recording is the same kind."""
    return Driver(
        id=id,
        summary=summary,
        source=source,
        framer=framer,
        decoder_for=every_channel(_lazy(module, f"decode_{module}")),
        yields=_RECORDING,
        profile="MDC_DEV_SPEC_PROFILE_HYDRA",
        binding=Binding.CART,
        results=Results.STORED,
        uplink=_WHOLE,
        packages=packages,
        extra="ecg" if packages else "",
        carries_identity=True,  # every format has the patient's name and id fields
    )


def _xml_cart(id: str, summary: str, end_tag: bytes, module: str) -> Driver:
    """An XML format: `*.xml` files, cut from a serial stream at the root's end tag and
    parsed with defusedxml."""
    return _cart(
        id,
        summary,
        FileFolder(("*.xml",), EXAMPLE_FOLDER, serial=SERIAL_LINE),
        functools.partial(framing.XmlFramer, end_tag),
        module,
        packages=("defusedxml",),
    )


DECLARATIONS = (
    _cart(
        "ecg-scp",
        "12-lead ECG carts: SCP-ECG (EN 1064) files from a folder, or sent over RS-232",
        FileFolder(("*.scp",), EXAMPLE_FOLDER, serial=SERIAL_LINE),
        framing.ScpFramer,
        "scp",
    ),
    _xml_cart(
        "ecg-aecg",
        "12-lead ECG carts: HL7 aECG XML files from a folder, or sent over RS-232",
        b"</AnnotatedECG>",
        "aecg",
    ),
    _xml_cart(
        "ecg-philips-xml",
        "Philips PageWriter/TC carts: Philips XML (XLI leads) from a folder, or RS-232",
        b"</restingecgdata>",
        "philips_xml",
    ),
    _cart(
        "ecg-dicom",
        "12-lead ECG carts: DICOM 12-lead waveform files from a folder (share, USB stick)",
        FileFolder(
            ("*.dcm", "*.dicom", NO_EXTENSION),
            EXAMPLE_FOLDER,
            exclude=("DICOMDIR",),
            not_serial_because="DICOM is not sent over RS-232",
        ),
        WholeFrames,  # never on a serial line: the config wants a folder
        "dicom",
        packages=("pydicom",),
    ),
)
