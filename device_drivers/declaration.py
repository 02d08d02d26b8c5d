"""What a driver declares about itself, once: the one value the rest of the box reads.

Each driver module ends with its `DECLARATIONS` (a family module such as nonin.py
declares its three formats); device_drivers.registry collects them. Config check, the
device set-up, the recorder, the uplink, BLE presence and the store's strip query all
read these fields instead of keeping lists of driver ids of their own, so adding a
driver is one module and its declaration (docs/architecture.md, "Adding a driver").

A declaration holds:
- `source`: where the bytes come from and how that transport is set up: a serial port
  (its line, a conversation for monitors that must be asked), a BLE peripheral (what it
  advertises, which characteristics, bonding, clock setting, resend key, vendor quirks),
  a TCP listener (and its connection limits) or a watched folder (file patterns; a cart
  that can also send its files over RS-232). The config keys a device takes and needs
  follow from it (`takes`, `requires`).
- `framer` and `decoder_for`: the pure protocol code (bytes in, frames out; frame in,
  readings out), chosen per BLE characteristic and, where the driver needs it, set up
  per device (`configured`, `model`, `pattern`).
- `yields`: what its frames carry (numerics, waves, alarms, whole recordings).
- `profile`: its IEEE 11073 device specialisation (MDC_DEV_SPEC_PROFILE_*), which every
  ORU^R01 it produces names in OBR-4 and in its MDS-level OBX (IHE PCD Technical
  Framework Vol. 2, PCD-01; docs/hl7.md).
- `uplink`: its lane to the county (per-frame vitals, thinned to `every_s`; or whole
  recordings ahead of every vital sign).
- `binding`: whose readings they are when no visit is open (a personal device's are
  held for a doctor to assign; a monitor's and a cart's never are).
- `results`: whether its readings are measured now or handed over from memory (an old
  device time is a wrong clock only for the former).
- `packages`: Python packages its decoder imports on first use, so `config check` can
  name what is missing before the first frame is quarantined.
- `carries_identity`: its frames can name the patient (an HL7 PID, a 12-lead file's
  patient section): the recorder seals their bytes, and a rejected one's reason, in the
  store (edge_agent.store.sealing).

Nothing here does I/O; a declaration is checked when it is made (ValueError), so a
driver that contradicts itself fails when its module is imported, not silently later.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from device_drivers.network.admission import ConnectionLimits
from device_drivers.transport import Conversation, Framer, GattConversation, Transport
from edge_agent.identifiers import IdentifierRule
from edge_agent.mdc import BY_REFID
from edge_agent.model import Decoded

Decoder = Callable[[bytes], Decoded]
# The decoder for frames that arrived on a channel (a BLE characteristic; None: the only one).
DecoderFor = Callable[[str | None], Decoder]
TransportKind = Literal["serial", "ble", "tcp", "folder"]

# A driver id is a store key (raw_frame.driver, device.driver), a config value and part
# of log lines and errors: one strict spelling, as every identifier that becomes a key.
DRIVER_ID = IdentifierRule("driver id", 32, "a store key and a config value")

DEVICE_PROFILE_PREFIX = "MDC_DEV_SPEC_PROFILE_"

# The listener limits a network device takes in its config (edge_agent.config checks
# their ranges; the defaults are the driver's `NetworkListener.limits`).
LIMIT_KEYS = (
    "max_connections",
    "max_connections_per_address",
    "idle_timeout_s",
    "message_timeout_s",
)


def every_channel(decode: Decoder) -> DecoderFor:
    """`decoder_for` of a driver with one decoder, whatever the frame came on."""
    return lambda _channel: decode


# --- where the bytes come from ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SerialLine:
    """A device's fixed serial settings (a config `baudrate` may override the speed)."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"  # pyserial: N, E, O
    stopbits: float = 1
    rtscts: bool = False


@dataclass(frozen=True, slots=True)
class SerialPort:
    """A tty (RS-232, a USB-serial adapter): config `port`, optionally `baudrate`."""

    kind: ClassVar[TransportKind] = "serial"
    takes: ClassVar[frozenset[str]] = frozenset({"port", "baudrate"})
    requires: ClassVar[tuple[str, ...]] = ("port",)

    line: SerialLine = SerialLine()
    # Monitors that only talk when asked (association, data requests, keep-alive).
    conversation: Callable[[], Conversation] | None = None
    # A stream of continuous frames can be read with the wrong driver or at the wrong
    # baud rate: its reject ratio sets the device state (edge_agent.quarantine.RejectWatch).
    reject_watch: bool = True


@dataclass(frozen=True, slots=True)
class BleService:
    """A GATT service a device advertises, and how `devices scan` names it."""

    uuid: str  # lower-case 128-bit
    name: str


@dataclass(frozen=True, slots=True)
class Quirk:
    """A vendor's device behind a standard driver id, chosen by the config's `model`."""

    summary: str
    characteristics: tuple[str, ...]
    decoders: Callable[[], DecoderFor]  # per device: its own state
    # What the vendor's device advertises instead of the standard service, if it does.
    service: BleService | None = None


@dataclass(frozen=True, slots=True)
class BlePeripheral:
    """A Bluetooth LE device: config `address`, `model` for a vendor quirk."""

    kind: ClassVar[TransportKind] = "ble"
    takes: ClassVar[frozenset[str]] = frozenset({"address", "model"})
    requires: ClassVar[tuple[str, ...]] = ("address",)

    service: BleService
    characteristics: tuple[str, ...]  # what to subscribe to
    # The key that makes a resent reading (a meter replaying its memory) a duplicate.
    dedup_key: Callable[[str, bytes], str | None] | None = None
    # The device stamps readings with its own clock: set it (Current Time 0x2A2B) on
    # every connection, where the device offers it.
    sets_clock: bool = False
    # The device only talks over an encrypted link: bond on connect.
    bonds: bool = False
    # A request/response exchange after subscribing (glucose RACP). Called once per
    # device, it gives that device's conversation factory (one conversation per
    # connection, so a download resumes where the last connection dropped).
    gatt_conversation: Callable[[], Callable[[], GattConversation]] | None = None
    quirks: Mapping[str, Quirk] = field(default_factory=dict)

    def characteristics_for(self, model: str | None) -> tuple[str, ...]:
        quirk = self.quirks.get(model or "")
        return quirk.characteristics if quirk else self.characteristics


_LISTENER_DEFAULTS = ConnectionLimits()


@dataclass(frozen=True, slots=True)
class NetworkListener:
    """Devices that connect to the box (monitors pushing HL7): config `listen` and limits."""

    kind: ClassVar[TransportKind] = "tcp"
    takes: ClassVar[frozenset[str]] = frozenset({"listen", *LIMIT_KEYS})
    requires: ClassVar[tuple[str, ...]] = ("listen",)

    # The listener on host:port with the device's limits.
    listener: Callable[[str, int, ConnectionLimits], Transport]
    # What a device gets for the limit keys its config leaves out.
    limits: ConnectionLimits = _LISTENER_DEFAULTS


@dataclass(frozen=True, slots=True)
class FileFolder:
    """Files that appear in a folder (a cart's export share, a USB stick), one file one
    frame: config `folder`; with a `serial` line, a `port` instead (the cart sends its
    files over RS-232 and `Driver.framer` cuts the stream into files)."""

    kind: ClassVar[TransportKind] = "folder"

    # Which files are this driver's (globs, case-insensitive; folder.NO_EXTENSION for
    # names without one) and which of those are not (a DICOM medium's index).
    patterns: tuple[str, ...]
    example: str  # a folder to suggest in config errors
    exclude: tuple[str, ...] = ()
    serial: SerialLine | None = None
    # Said when a config gives a `port` to a driver that reads folders only.
    not_serial_because: str = ""

    @property
    def takes(self) -> frozenset[str]:
        return frozenset({"folder", "port", "baudrate"} if self.serial else {"folder"})

    @property
    def requires(self) -> tuple[str, ...]:
        return ("folder",)  # or, with a serial line, `port` instead


Source = SerialPort | BlePeripheral | NetworkListener | FileFolder


# --- what it yields, and what becomes of it ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Yields:
    """What a driver's frames carry."""

    numerics: bool = False
    waves: bool = False  # streamed signals (ECG, pleth), stored and sent as strips
    alarms: bool = False  # the device's own alarms, raised and ended as it shows them
    # A whole recording (a 12-lead ECG file): leads, measurements, interpretation
    # statements and the cart's context, stored together and sent whole.
    recording: bool = False


class Lane(enum.Enum):
    """How a driver's frames go up to the county (edge_agent.recorder's priorities)."""

    # A frame's numerics in one ORU^R01 at vitals priority; a frame that raises an alarm
    # goes at alarm priority. Monitors' waves go separately, as strips.
    VITALS = "vitals"
    # A whole recording in one ORU^R01 (leads, statements, context), ahead of every
    # vital sign; one whose statements say acute MI goes first of all, after its notice.
    RECORDING = "recording"


@dataclass(frozen=True, slots=True)
class Uplink:
    lane: Lane = Lane.VITALS
    # Numerics of a device that reports faster than the county needs them (a Nonin at 3
    # packets/s) go up at most this often; every reading is still stored on the box.
    # 0: every frame with a value goes up. Alarms go up whenever they change.
    every_s: float = 0.0


class Binding(enum.Enum):
    """Whose readings a device's are when no visit is open at its station."""

    # Devices residents bring or share (home cuffs, meters, scales, health-hut
    # stations): a reading taken with no visit open is held for a doctor to assign.
    PERSONAL = "personal"
    # A monitor on the patient being treated: bound to the open visit, never held (an
    # ambulance's unknown patient still reaches the ER, identified later).
    MONITOR = "monitor"
    # A 12-lead cart: its recording belongs to the open visit, or to nobody yet; never held.
    CART = "cart"


class Results(enum.Enum):
    """When a device's readings were measured, which says what an old device time means."""

    # Measured now (monitors): a device time well behind the box's is a wrong clock.
    LIVE = "live"
    # Handed over from memory (a meter's or cuff's stored results, a cart's file read
    # later): an old time is legitimate; only a time ahead of the box's is a wrong clock.
    STORED = "stored"


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """A config `model` that must be one of a set (a scale's line presets)."""

    what: str  # how errors name a valid one: "a scale preset"
    choices: Callable[[], Collection[str]]


# --- the declaration ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Driver:
    id: str
    summary: str
    source: Source
    framer: Callable[[], Framer]
    decoder_for: DecoderFor
    yields: Yields
    profile: str  # MDC_DEV_SPEC_PROFILE_* (edge_agent.mdc)
    binding: Binding
    results: Results
    uplink: Uplink = Uplink()
    # Drivers whose decoding depends on the device's config (a scale's line format, an
    # IntelliVue's wave calibration): (model, pattern) -> decoder_for. None:
    # `decoder_for` serves every device.
    configured: Callable[[str | None, str | None], DecoderFor] | None = None
    # A `model` the driver understands. None: a BLE driver's model names one of its
    # quirks; any other driver's is the device's name for the record only.
    model: ModelChoice | None = None
    # The driver takes a config `pattern` (a scale's line format): what is wrong with
    # one, None when it can work. None: the driver takes no pattern.
    pattern: Callable[[str], str | None] | None = None
    # Python packages the decoder imports on first use, and the extra that installs them.
    packages: tuple[str, ...] = ()
    extra: str = ""
    # Its frames can name the patient (an HL7 PID; SCP-ECG section 1, aECG's and
    # Philips' patient elements, DICOM's Patient module): their bytes are sealed.
    carries_identity: bool = False

    def __post_init__(self) -> None:
        problem = DRIVER_ID.problem(self.id)
        if problem is not None:
            raise ValueError(f"driver {self.id!r}: driver id {problem}")
        if not self.profile.startswith(DEVICE_PROFILE_PREFIX) or self.profile not in BY_REFID:
            raise ValueError(
                f"driver {self.id}: {self.profile!r} is not a device specialisation"
                f" ({DEVICE_PROFILE_PREFIX}* in edge_agent.mdc)"
            )
        if self.yields.recording != (self.uplink.lane is Lane.RECORDING):
            raise ValueError(
                f"driver {self.id}: a whole recording goes up whole, in the recording"
                " lane, and nothing else does"
            )
        if not self.uplink.every_s >= 0:
            raise ValueError(f"driver {self.id}: uplink every_s must be 0 or more")
        if self.packages and not self.extra:
            raise ValueError(f"driver {self.id}: name the extra that installs its packages")

    @property
    def transport(self) -> TransportKind:
        """Its kind: "serial", "ble", "tcp" or "folder" (the source's)."""
        return self.source.kind

    @property
    def watches_rejects(self) -> bool:
        """Its device state says so when most frames are rejected (wrong driver or baud)."""
        return isinstance(self.source, SerialPort) and self.source.reject_watch

    @property
    def takes(self) -> frozenset[str]:
        """The `[[device]]` keys beyond id and driver that a device of this driver uses."""
        keys = set(self.source.takes)
        if self.model is not None:
            keys.add("model")
        if self.pattern is not None:
            keys.add("pattern")
        return frozenset(keys)

    def model_problem(self, model: str) -> str | None:
        """What is wrong with a config `model` for this driver, None when it is fine."""
        if self.model is not None:
            what, choices = self.model.what, sorted(self.model.choices())
        elif isinstance(self.source, BlePeripheral):
            what, choices = f"a quirk of {self.id}", sorted(self.source.quirks)
        else:
            return None
        if model in choices:
            return None
        return f"{model!r} is not {what} (known: {', '.join(choices) or 'none'})"

    def decoders(self, model: str | None = None, pattern: str | None = None) -> DecoderFor:
        """decoder_for, as configured for one device."""
        if isinstance(self.source, BlePeripheral):
            quirk = self.source.quirks.get(model or "")
            if quirk is not None:
                return quirk.decoders()
        if self.configured is None:
            return self.decoder_for
        return self.configured(model, pattern)
