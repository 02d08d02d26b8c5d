"""Bluetooth SIG Pulse Oximeter service 0x1822: spot-check 0x2A5E, continuous 0x2A5F, features 0x2A60.

Layouts (Bluetooth SIG Pulse Oximeter Service; GSS "PLX Spot-Check Measurement", "PLX
Continuous Measurement", "PLX Features"; docs/protocols/ble-health-profiles.md; numbers
and times: IEEE 11073-20601 SFLOAT and GSS Date Time, docs/protocols/ieee11073-numbers.md):

- Spot-check (0x2A5E, indicate; driver `ble-plx-spot`): flags, SpO2 SFLOAT (%), pulse rate
  SFLOAT (/min), then in flag-bit order: time stamp (bit 0, Date Time 7 B), measurement
  status (bit 1, uint16), device and sensor status (bit 2, uint24), pulse amplitude index
  (bit 3, SFLOAT %). Bit 4 = the device clock is not set (no field).
- Continuous (0x2A5F, notify; driver `ble-plx-cont`): flags, SpO2PR-Normal (2 SFLOAT), then
  in flag-bit order: SpO2PR-Fast (bit 0, 2 SFLOAT), SpO2PR-Slow (bit 1, 2 SFLOAT),
  measurement status (bit 2), device and sensor status (bit 3), pulse amplitude index
  (bit 4).
- Features (0x2A60, read): uint16 feature bits, then the supported measurement status
  (uint16, when bit 0) and the supported device and sensor status (uint24, when bit 1).

As for blood pressure, flag bits 5-7 are reserved and a frame that sets them is
rejected (it is not the layout we know, so its offsets are guesses); bytes beyond what the
flags promise are ignored (as in every SIG health characteristic). Reserved *status* bits
are ignored: a status is advice about a valid reading and a later revision may define them.

Metrics: SpO2 -> MDC_PULS_OXIM_SAT_O2 (%), pulse rate -> MDC_PULS_OXIM_PULS_RATE (/min),
pulse amplitude index -> MDC_PULS_OXIM_PERF_REL (%): the PAI is the PLX name of the
relative perfusion (perfusion index) that IEEE 11073-10404, the PHD oximeter PLX mirrors,
reports under that term. SFLOAT specials give no value and their flag (IEEE 11073-20601
SFLOAT reserved values).

Decisions (what the status words do to a reading):

- Demonstration or testing data (measurement status bits 10, 11): "must never reach a
  patient record" (PLXS measurement status: data for demonstration / for testing). The
  frame gives no readings, only a device alarm saying why, so the recorder keeps the raw
  bytes and raises a visible alert but stores no observation.
- Measurement unavailable (bit 13) and invalid measurement detected (bit 15): the device
  says its numbers are not measurements, so every reading of the frame loses its value
  (None, like an SFLOAT NaN) and carries the flag; the recorder keeps them locally and
  does not upload value-less readings.
- Other measurement status bits qualify the values: flags (ongoing, early estimate,
  validated, fully qualified, from storage, calibration ongoing, questionable).
- Device and sensor status: a state in which the device cannot measure the patient
  (equipment or sensor malfunction, sensor disconnected, unconnected to the user,
  displaced, unknown sensor) is a device alarm, "medium" like Nonin's sensor alarms (no
  usable numbers); signal-quality bits (poor/inadequate/erratic signal, low perfusion,
  interference, ...) qualify the numbers and become flags on every reading.
- Spot-check bit 4 (clock not set): the time stamp is the device's idea of a time it never
  knew, so the reading's device time is None (the recorder uses the receive time) and the
  readings carry "device-clock-not-set" (docs/protocols/ieee11073-numbers.md, Date Time).
- Continuous readings are flagged "continuous": they arrive about once a second or
  faster, and the driver's upload interval (its declaration's `Uplink.every_s`) thins what goes up.
  The fast and slow averages are the same quantities averaged differently; a consumer that
  keeps "the latest SpO2" would flicker between them and they would triple the rows, so
  (as for Nonin's extra values) they are validated always but reported only with
  `extras=True`, flagged "fast"/"slow".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from device_drivers.ble import berrymed
from device_drivers.ble.gatt import by_characteristic
from device_drivers.ble.measurement_frame import Fields, flags_byte
from device_drivers.ble.resend import time_stamped
from device_drivers.declaration import (
    Binding,
    BlePeripheral,
    BleService,
    Driver,
    Results,
    Uplink,
    Yields,
)
from device_drivers.ieee11073 import encode_date_time, sfloat_bytes, value_and_flags
from device_drivers.transport import WholeFrames
from edge_agent.model import Decoded, DeviceAlarm, Reading

SERVICE_UUID = "00001822-0000-1000-8000-00805f9b34fb"
SPOT_UUID = "00002a5e-0000-1000-8000-00805f9b34fb"
CONTINUOUS_UUID = "00002a5f-0000-1000-8000-00805f9b34fb"
FEATURES_UUID = "00002a60-0000-1000-8000-00805f9b34fb"
# Stored spot-checks are fetched through the RACP (write + indicate, PLXS); that
# needs a conversation, so the drivers subscribe to the measurement characteristics only.
RACP_UUID = "00002a52-0000-1000-8000-00805f9b34fb"
SPOT_CHARACTERISTICS = (SPOT_UUID,)
CONTINUOUS_CHARACTERISTICS = (CONTINUOUS_UUID,)

# Spot-check flags (GSS "PLX Spot-Check Measurement").
SPOT_TIME_STAMP = 0x01
SPOT_MEASUREMENT_STATUS = 0x02
SPOT_DEVICE_STATUS = 0x04
SPOT_PULSE_AMPLITUDE = 0x08
SPOT_CLOCK_NOT_SET = 0x10
# Continuous flags (GSS "PLX Continuous Measurement").
CONT_FAST = 0x01
CONT_SLOW = 0x02
CONT_MEASUREMENT_STATUS = 0x04
CONT_DEVICE_STATUS = 0x08
CONT_PULSE_AMPLITUDE = 0x10
FLAGS_RESERVED = 0xE0  # both characteristics
# Both measurements end with the same three optional fields, each with its own flag bit:
# measurement status (uint16), device and sensor status (uint24), pulse amplitude index.
_SPOT_STATUS_BITS = (SPOT_MEASUREMENT_STATUS, SPOT_DEVICE_STATUS, SPOT_PULSE_AMPLITUDE)
_CONT_STATUS_BITS = (CONT_MEASUREMENT_STATUS, CONT_DEVICE_STATUS, CONT_PULSE_AMPLITUDE)

# Measurement status (uint16; bits 0-4 reserved).
MS_ONGOING = 1 << 5
MS_EARLY_ESTIMATE = 1 << 6
MS_VALIDATED = 1 << 7
MS_FULLY_QUALIFIED = 1 << 8
MS_FROM_STORAGE = 1 << 9
MS_DEMONSTRATION = 1 << 10
MS_TESTING = 1 << 11
MS_CALIBRATION = 1 << 12
MS_UNAVAILABLE = 1 << 13
MS_QUESTIONABLE = 1 << 14
MS_INVALID = 1 << 15

# Device and sensor status (uint24; bits 16-23 reserved).
DS_DISPLAY_UPDATE = 1 << 0
DS_EQUIPMENT_MALFUNCTION = 1 << 1
DS_PROCESSING_IRREGULARITY = 1 << 2
DS_INADEQUATE_SIGNAL = 1 << 3
DS_POOR_SIGNAL = 1 << 4
DS_LOW_PERFUSION = 1 << 5
DS_ERRATIC_SIGNAL = 1 << 6
DS_NON_PULSATILE = 1 << 7
DS_QUESTIONABLE_PULSE = 1 << 8
DS_ANALYSIS_ONGOING = 1 << 9
DS_INTERFERENCE = 1 << 10
DS_UNCONNECTED_TO_USER = 1 << 11
DS_UNKNOWN_SENSOR = 1 << 12
DS_SENSOR_DISPLACED = 1 << 13
DS_SENSOR_MALFUNCTION = 1 << 14
DS_SENSOR_DISCONNECTED = 1 << 15

# PLX Features (uint16; bits 8-15 reserved).
FEAT_MEASUREMENT_STATUS = 1 << 0
FEAT_DEVICE_STATUS = 1 << 1
FEAT_STORAGE = 1 << 2
FEAT_SPOT_TIME_STAMP = 1 << 3
FEAT_FAST = 1 << 4
FEAT_SLOW = 1 << 5
FEAT_PULSE_AMPLITUDE = 1 << 6
FEAT_MULTIPLE_BONDS = 1 << 7

SPO2 = "MDC_PULS_OXIM_SAT_O2"
PULSE_RATE = "MDC_PULS_OXIM_PULS_RATE"
PULSE_AMPLITUDE = "MDC_PULS_OXIM_PERF_REL"
PERCENT = "MDC_DIM_PERCENT"
BPM = "MDC_DIM_BEAT_PER_MIN"

CONTINUOUS_FLAG = "continuous"
FAST_FLAG = "fast"
SLOW_FLAG = "slow"
CLOCK_NOT_SET_FLAG = "device-clock-not-set"
UNAVAILABLE_FLAG = "measurement-unavailable"
INVALID_FLAG = "invalid-measurement"

_MEASUREMENT_FLAGS = (
    (MS_ONGOING, "measurement-ongoing"),
    (MS_EARLY_ESTIMATE, "early-estimate"),
    (MS_VALIDATED, "validated"),
    (MS_FULLY_QUALIFIED, "fully-qualified"),
    (MS_FROM_STORAGE, "from-storage"),
    (MS_CALIBRATION, "calibration-ongoing"),
    (MS_UNAVAILABLE, UNAVAILABLE_FLAG),
    (MS_QUESTIONABLE, "questionable"),
    (MS_INVALID, INVALID_FLAG),
)
_VALUE_VOIDING = MS_UNAVAILABLE | MS_INVALID

ALARM_DEMONSTRATION = DeviceAlarm(
    "PLX_DEMONSTRATION_DATA", "medium", "oximeter sends demonstration data: nothing recorded"
)
ALARM_TESTING = DeviceAlarm(
    "PLX_TESTING_DATA", "medium", "oximeter sends testing data: nothing recorded"
)
_MEASUREMENT_ALARMS = (
    (MS_DEMONSTRATION, ALARM_DEMONSTRATION),
    (MS_TESTING, ALARM_TESTING),
)

_DEVICE_FLAGS = (
    (DS_DISPLAY_UPDATE, "extended-display-update"),
    (DS_PROCESSING_IRREGULARITY, "signal-processing-irregularity"),
    (DS_INADEQUATE_SIGNAL, "inadequate-signal"),
    (DS_POOR_SIGNAL, "poor-signal"),
    (DS_LOW_PERFUSION, "low-perfusion"),
    (DS_ERRATIC_SIGNAL, "erratic-signal"),
    (DS_NON_PULSATILE, "non-pulsatile-signal"),
    (DS_QUESTIONABLE_PULSE, "questionable-pulse"),
    (DS_ANALYSIS_ONGOING, "signal-analysis-ongoing"),
    (DS_INTERFERENCE, "sensor-interference"),
)
# The device cannot measure this patient: worth an alert, not only a qualifier.
_DEVICE_ALARMS = (
    (
        DS_EQUIPMENT_MALFUNCTION,
        DeviceAlarm("PLX_EQUIPMENT_MALFUNCTION", "medium", "equipment malfunction"),
    ),
    (
        DS_UNCONNECTED_TO_USER,
        DeviceAlarm("PLX_SENSOR_OFF_PATIENT", "medium", "sensor not on the patient"),
    ),
    (DS_UNKNOWN_SENSOR, DeviceAlarm("PLX_UNKNOWN_SENSOR", "medium", "unknown sensor connected")),
    (DS_SENSOR_DISPLACED, DeviceAlarm("PLX_SENSOR_DISPLACED", "medium", "sensor displaced")),
    (
        DS_SENSOR_MALFUNCTION,
        DeviceAlarm("PLX_SENSOR_MALFUNCTION", "medium", "sensor malfunctioning"),
    ),
    (
        DS_SENSOR_DISCONNECTED,
        DeviceAlarm("PLX_SENSOR_DISCONNECTED", "medium", "sensor disconnected"),
    ),
)

_Field = tuple[Decimal | None, str | None]


def measurement_status_flags(status: int) -> tuple[str, ...]:
    """The flag names of a measurement status word (demo/testing are alarms, not flags)."""
    return tuple(name for bit, name in _MEASUREMENT_FLAGS if status & bit)


def device_status_flags(status: int) -> tuple[str, ...]:
    """The flag names of the signal-quality bits of a device and sensor status word."""
    return tuple(name for bit, name in _DEVICE_FLAGS if status & bit)


def device_status_alarms(status: int) -> tuple[DeviceAlarm, ...]:
    """The device alarms of a device and sensor status word (device cannot measure)."""
    return tuple(alarm for bit, alarm in _DEVICE_ALARMS if status & bit)


# --- frame reading ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Status:
    """What a frame's status words do to its readings and alarms."""

    flags: tuple[str, ...]
    alarms: tuple[DeviceAlarm, ...]
    void: bool  # the device says the numbers are not measurements
    withhold: bool  # demonstration / testing data: no readings at all

    @classmethod
    def of(cls, measurement: int | None, device: int | None) -> _Status:
        flags: list[str] = []
        alarms: list[DeviceAlarm] = []
        void = withhold = False
        if measurement is not None:
            flags.extend(measurement_status_flags(measurement))
            alarms.extend(alarm for bit, alarm in _MEASUREMENT_ALARMS if measurement & bit)
            void = bool(measurement & _VALUE_VOIDING)
            withhold = bool(measurement & (MS_DEMONSTRATION | MS_TESTING))
        if device is not None:
            flags.extend(device_status_flags(device))
            alarms.extend(device_status_alarms(device))
        return cls(tuple(flags), tuple(alarms), void, withhold)


def _reading(
    metric: str,
    unit: str,
    field: _Field,
    time: dt.datetime | None,
    lead: tuple[str, ...],
    status: _Status,
) -> Reading:
    value, flags = value_and_flags(field, lead)
    if status.void:
        value = None
    return Reading(metric, value, unit, time, (*flags, *status.flags))


def _decoded(readings: list[Reading], status: _Status) -> Decoded:
    if status.withhold:
        return Decoded(alarms=status.alarms)
    return Decoded(readings=tuple(readings), alarms=status.alarms)


def _status_fields(
    fields: Fields, flags: int, bits: tuple[int, int, int]
) -> tuple[int | None, int | None, _Field | None]:
    """The three optional fields a PLX measurement ends with (`bits`: their flag bits)."""
    measurement_bit, device_bit, amplitude_bit = bits
    measurement = fields.uint(2, "measurement status") if flags & measurement_bit else None
    device = fields.uint(3, "device and sensor status") if flags & device_bit else None
    amplitude = fields.sfloat("pulse amplitude index") if flags & amplitude_bit else None
    return measurement, device, amplitude


def decode_spot_check(data: bytes) -> Decoded:
    """A PLX Spot-Check Measurement (0x2A5E) -> SpO2, pulse rate, [pulse amplitude index]."""
    flags = flags_byte(data, FLAGS_RESERVED, "not a 0x2A5E spot-check frame")
    fields = Fields(data, 1)
    spo2 = fields.sfloat("SpO2")
    rate = fields.sfloat("pulse rate")
    time = fields.date_time() if flags & SPOT_TIME_STAMP else None
    measurement, device, amplitude = _status_fields(fields, flags, _SPOT_STATUS_BITS)
    lead: tuple[str, ...] = ()
    if flags & SPOT_CLOCK_NOT_SET:
        # Flag bit 4: a clock that was never set gives a time that means nothing.
        time = None
        lead = (CLOCK_NOT_SET_FLAG,)
    status = _Status.of(measurement, device)
    readings = [
        _reading(SPO2, PERCENT, spo2, time, lead, status),
        _reading(PULSE_RATE, BPM, rate, time, lead, status),
    ]
    if amplitude is not None:
        readings.append(_reading(PULSE_AMPLITUDE, PERCENT, amplitude, time, lead, status))
    return _decoded(readings, status)


def decode_continuous(data: bytes, *, extras: bool = False) -> Decoded:
    """A PLX Continuous Measurement (0x2A5F) -> SpO2, pulse rate, [PAI], all "continuous".

    With `extras`, also the fast and slow SpO2/PR pairs (flagged); they are read and
    checked either way, so a frame too short for what its flags promise is rejected.
    """
    flags = flags_byte(data, FLAGS_RESERVED, "not a 0x2A5F continuous frame")
    fields = Fields(data, 1)
    normal = (fields.sfloat("SpO2"), fields.sfloat("pulse rate"))
    pairs: list[tuple[str, tuple[_Field, _Field]]] = []
    for bit, name in ((CONT_FAST, FAST_FLAG), (CONT_SLOW, SLOW_FLAG)):
        if flags & bit:
            pair = (fields.sfloat(f"SpO2 {name}"), fields.sfloat(f"pulse rate {name}"))
            pairs.append((name, pair))
    measurement, device, amplitude = _status_fields(fields, flags, _CONT_STATUS_BITS)
    status = _Status.of(measurement, device)
    lead = (CONTINUOUS_FLAG,)
    readings = [
        _reading(SPO2, PERCENT, normal[0], None, lead, status),
        _reading(PULSE_RATE, BPM, normal[1], None, lead, status),
    ]
    if extras:
        for name, (spo2, rate) in pairs:
            readings.append(_reading(SPO2, PERCENT, spo2, None, (*lead, name), status))
            readings.append(_reading(PULSE_RATE, BPM, rate, None, (*lead, name), status))
    if amplitude is not None:
        readings.append(_reading(PULSE_AMPLITUDE, PERCENT, amplitude, None, lead, status))
    return _decoded(readings, status)


# --- features --------------------------------------------------------------------------


def _bits(*switches: tuple[bool, int]) -> int:
    """The word with the bit of every switch that is on."""
    word = 0
    for on, bit in switches:
        if on:
            word |= bit
    return word


@dataclass(frozen=True, slots=True)
class PlxFeatures:
    """What a PLX device supports (0x2A60), i.e. which optional fields to expect.

    `supported_measurement_status` / `supported_device_status` are the status bits the
    device may set (0 when it does not send that status at all).
    """

    measurement_status: bool = False
    device_status: bool = False
    measurement_storage: bool = False
    spot_time_stamp: bool = False
    fast: bool = False
    slow: bool = False
    pulse_amplitude_index: bool = False
    multiple_bonds: bool = False
    supported_measurement_status: int = 0
    supported_device_status: int = 0

    @property
    def spot_flags(self) -> int:
        """The 0x2A5E flag bits the device may set (bit 4, clock not set, is a state)."""
        return _bits(
            (self.spot_time_stamp, SPOT_TIME_STAMP),
            (self.measurement_status, SPOT_MEASUREMENT_STATUS),
            (self.device_status, SPOT_DEVICE_STATUS),
            (self.pulse_amplitude_index, SPOT_PULSE_AMPLITUDE),
        )

    @property
    def continuous_flags(self) -> int:
        """The 0x2A5F flag bits the device may set."""
        return _bits(
            (self.fast, CONT_FAST),
            (self.slow, CONT_SLOW),
            (self.measurement_status, CONT_MEASUREMENT_STATUS),
            (self.device_status, CONT_DEVICE_STATUS),
            (self.pulse_amplitude_index, CONT_PULSE_AMPLITUDE),
        )


def decode_features(data: bytes) -> PlxFeatures:
    """A PLX Features (0x2A60) value -> PlxFeatures.

    Feature bits 8-15 are reserved and ignored: this is a description read once, and a
    later revision's extra feature must not make the device unusable.
    """
    fields = Fields(data, 0)
    bits = fields.uint(2, "PLX features")
    measurement = device = 0
    if bits & FEAT_MEASUREMENT_STATUS:
        measurement = fields.uint(2, "supported measurement status")
    if bits & FEAT_DEVICE_STATUS:
        device = fields.uint(3, "supported device and sensor status")
    return PlxFeatures(
        measurement_status=bool(bits & FEAT_MEASUREMENT_STATUS),
        device_status=bool(bits & FEAT_DEVICE_STATUS),
        measurement_storage=bool(bits & FEAT_STORAGE),
        spot_time_stamp=bool(bits & FEAT_SPOT_TIME_STAMP),
        fast=bool(bits & FEAT_FAST),
        slow=bool(bits & FEAT_SLOW),
        pulse_amplitude_index=bool(bits & FEAT_PULSE_AMPLITUDE),
        multiple_bonds=bool(bits & FEAT_MULTIPLE_BONDS),
        supported_measurement_status=measurement,
        supported_device_status=device,
    )


def decode_features_frame(data: bytes) -> Decoded:
    """A recorded 0x2A60 value: checked, and nothing measured (an empty Decoded)."""
    decode_features(data)
    return Decoded()


# --- encoding (simulators and tests) ---------------------------------------------------


def _uint_bytes(value: int, size: int, what: str) -> bytes:
    if not 0 <= value < 1 << (8 * size):
        raise ValueError(f"{what} {value} does not fit {8 * size} bits")
    return value.to_bytes(size, "little")


def _status_field_bytes(
    bits: tuple[int, int, int],
    measurement_status: int | None,
    device_status: int | None,
    pulse_amplitude: Decimal | None,
) -> tuple[int, bytes]:
    """The three optional fields a PLX measurement ends with (None: absent), and the flag
    bits (`bits`: theirs) that announce them; `_status_fields` reads them back."""
    measurement_bit, device_bit, amplitude_bit = bits
    flags = 0
    body = b""
    if measurement_status is not None:
        flags |= measurement_bit
        body += _uint_bytes(measurement_status, 2, "measurement status")
    if device_status is not None:
        flags |= device_bit
        body += _uint_bytes(device_status, 3, "device and sensor status")
    if pulse_amplitude is not None:
        flags |= amplitude_bit
        body += sfloat_bytes(pulse_amplitude)
    return flags, body


def encode_spot_check(
    spo2: Decimal | None,
    pulse_rate: Decimal | None,
    *,
    time: dt.datetime | None = None,
    time_unknown: bool = False,
    measurement_status: int | None = None,
    device_status: int | None = None,
    pulse_amplitude: Decimal | None = None,
    clock_not_set: bool = False,
) -> bytes:
    """A 0x2A5E frame. SpO2/PR None is NaN; an optional field None is absent (pass
    Decimal("NaN") for a present NaN). `time_unknown` sends an all-zero time stamp."""
    flags = SPOT_CLOCK_NOT_SET if clock_not_set else 0
    body = sfloat_bytes(spo2) + sfloat_bytes(pulse_rate)
    if time is not None or time_unknown:
        flags |= SPOT_TIME_STAMP
        body += encode_date_time(time)
    status_flags, status_body = _status_field_bytes(
        _SPOT_STATUS_BITS, measurement_status, device_status, pulse_amplitude
    )
    return bytes([flags | status_flags]) + body + status_body


def encode_continuous(
    spo2: Decimal | None,
    pulse_rate: Decimal | None,
    *,
    fast: tuple[Decimal | None, Decimal | None] | None = None,
    slow: tuple[Decimal | None, Decimal | None] | None = None,
    measurement_status: int | None = None,
    device_status: int | None = None,
    pulse_amplitude: Decimal | None = None,
) -> bytes:
    """A 0x2A5F frame; None conventions as `encode_spot_check` (a pair's None is NaN)."""
    flags = 0
    body = sfloat_bytes(spo2) + sfloat_bytes(pulse_rate)
    for bit, pair in ((CONT_FAST, fast), (CONT_SLOW, slow)):
        if pair is not None:
            flags |= bit
            body += sfloat_bytes(pair[0]) + sfloat_bytes(pair[1])
    status_flags, status_body = _status_field_bytes(
        _CONT_STATUS_BITS, measurement_status, device_status, pulse_amplitude
    )
    return bytes([flags | status_flags]) + body + status_body


def encode_features(features: PlxFeatures) -> bytes:
    """A 0x2A60 value; the supported-status fields follow when their feature bit is set."""
    bits = _bits(
        (features.measurement_status, FEAT_MEASUREMENT_STATUS),
        (features.device_status, FEAT_DEVICE_STATUS),
        (features.measurement_storage, FEAT_STORAGE),
        (features.spot_time_stamp, FEAT_SPOT_TIME_STAMP),
        (features.fast, FEAT_FAST),
        (features.slow, FEAT_SLOW),
        (features.pulse_amplitude_index, FEAT_PULSE_AMPLITUDE),
        (features.multiple_bonds, FEAT_MULTIPLE_BONDS),
    )
    out = bits.to_bytes(2, "little")
    if features.measurement_status:
        out += _uint_bytes(features.supported_measurement_status, 2, "measurement status")
    if features.device_status:
        out += _uint_bytes(features.supported_device_status, 3, "device and sensor status")
    return out


# --- routing ---------------------------------------------------------------------------


_DECODERS: dict[str, Callable[[bytes], Decoded]] = {
    "2a5e": decode_spot_check,
    "2a5f": decode_continuous,
    "2a60": decode_features_frame,
}


def decoder_for(channel: str | None, *, default: str = SPOT_UUID) -> Callable[[bytes], Decoded]:
    """The decoder for a notification's characteristic (the frame's channel).

    No channel (captured frames, the decode CLI) means the `default` characteristic: the
    spot-check for `ble-plx-spot`, the continuous measurement for `ble-plx-cont` (see
    `continuous_decoder_for`). An unknown characteristic gets a decoder that rejects every
    frame, so its bytes are quarantined with the reason instead of read as oximetry.
    """
    return by_characteristic(channel, _DECODERS, "Pulse Oximeter", default)


def spot_decoder_for(channel: str | None) -> Callable[[bytes], Decoded]:
    """`decoder_for` of the `ble-plx-spot` driver (no channel = 0x2A5E)."""
    return decoder_for(channel, default=SPOT_UUID)


def continuous_decoder_for(channel: str | None) -> Callable[[bytes], Decoded]:
    """`decoder_for` of the `ble-plx-cont` driver (no channel = 0x2A5F)."""
    return decoder_for(channel, default=CONTINUOUS_UUID)


_SERVICE = BleService(SERVICE_UUID, "pulse oximeter")

DECLARATIONS = (
    Driver(
        id="ble-plx-spot",
        summary="Bluetooth SIG Pulse Oximeter 0x1822: spot-check measurement 0x2A5E",
        source=BlePeripheral(
            _SERVICE,
            SPOT_CHARACTERISTICS,
            dedup_key=time_stamped(SPOT_TIME_STAMP),
            sets_clock=True,
        ),
        framer=WholeFrames,
        decoder_for=spot_decoder_for,
        yields=Yields(numerics=True, alarms=True),
        profile="MDC_DEV_SPEC_PROFILE_PULS_OXIM",
        binding=Binding.PERSONAL,
        results=Results.STORED,
    ),
    Driver(
        id="ble-plx-cont",
        summary="Bluetooth SIG Pulse Oximeter 0x1822: continuous measurement 0x2A5F",
        source=BlePeripheral(
            _SERVICE, CONTINUOUS_CHARACTERISTICS, quirks={"berrymed": berrymed.QUIRK}
        ),
        framer=WholeFrames,
        decoder_for=continuous_decoder_for,
        # Waves: a BerryMed's pleth (the standard continuous measurement has none).
        yields=Yields(numerics=True, waves=True, alarms=True),
        profile="MDC_DEV_SPEC_PROFILE_PULS_OXIM",
        binding=Binding.PERSONAL,
        results=Results.STORED,
        uplink=Uplink(every_s=1.0),
    ),
)
