"""An EUI-64 for every device: its own when it has one, else one derived and kept.

IHE PCD TF-2 Appendix B.8.18 identifies the equipment behind every observation by its
EUI-64 in OBX-18, written `<EUI-64>^^<EUI-64>^EUI-64`. Where it comes from (IEEE
"Guidelines for Use of Extended Unique Identifier (EUI), Organizationally Unique
Identifier (OUI), and Company ID (CID)"):

- the device's own: a BLE device's public address is an EUI-48, mapped to EUI-64 by
  inserting FFFE after its OUI (the guidelines' mapping of an EUI-48 into EUI-64 space);
  an HL7 monitor names its own in MSH-3 or OBX-18 (`...^00A037009B000000^EUI-64`);
- else one we make (serial monitors, the box itself): a locally administered EUI-64 in
  the AAI quadrant of IEEE 802c-2017's structured local address plan (first octet
  `xxxx0010`: U/L bit 1 "local", I/G bit 0 "individual", Y and Z bits 0 "administratively
  assigned"), the other 60 bits from HMAC-SHA-256 keyed by the agent's id over the
  device's id. Unique per box and device (ids are unique per box, agent ids county-wide;
  60 bits make a collision among a county's devices negligible), and the store keeps it
  once made, so it survives restarts and a later change of the agent's id.

Pure: no store. sync.outbox_messages asks here and keeps what it made in `device.eui64`.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_EUI64 = re.compile(r"[0-9A-F]{16}")
_EUI48 = re.compile(r"[0-9A-F]{12}")
_SEPARATORS = str.maketrans("", "", ":-. ")

# IEEE 802c-2017 SLAP: X (U/L) bit set, M (I/G) bit clear, AAI quadrant (Y = Z = 0).
_LOCAL_AAI = 0x02
_QUADRANT_BITS = 0x0F


def normalise_eui64(eui64: str | None) -> str | None:
    """16 upper-case hex digits, or None when the value is not an EUI-64."""
    if not eui64:
        return None
    digits = eui64.translate(_SEPARATORS).upper()
    return digits if _EUI64.fullmatch(digits) else None


def from_eui48(address: str | None) -> str | None:
    """A BLE/Ethernet EUI-48 (`C4:7C:8D:6A:00:17`) as EUI-64: OUI, FFFE, extension."""
    if not address:
        return None
    digits = address.translate(_SEPARATORS).upper()
    if not _EUI48.fullmatch(digits):
        return None
    return digits[:6] + "FFFE" + digits[6:]


def derived_eui64(agent_id: str, device_id: str) -> str:
    """The locally administered EUI-64 of a device that has none (module docstring)."""
    digest = hmac.new(agent_id.encode("utf-8"), device_id.encode("utf-8"), hashlib.sha256)
    octets = bytearray(digest.digest()[:8])
    octets[0] = (octets[0] & ~_QUADRANT_BITS & 0xFF) | _LOCAL_AAI
    return octets.hex().upper()


def is_locally_administered(eui64: str) -> bool:
    """The U/L bit: set for an EUI-64 we made, clear for a manufacturer's."""
    return bool(int(eui64[:2], 16) & _LOCAL_AAI)
