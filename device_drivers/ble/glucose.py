"""Bluetooth SIG Glucose service 0x1808 and the Current Time Service 0x1805 (GLS, CTS).

A glucose meter keeps its results and hands them over on request: the agent writes a
Record Access Control Point (RACP, 0x2A52) request, the meter notifies each stored record
as a Glucose Measurement (0x2A18), followed by a Measurement Context (0x2A34) when it has
one, and ends the transfer with an RACP response-code indication. This module holds the
pure decoders and encoders of those characteristics and `GlucoseConversation`, the pure
state machine of one download (transport.GattConversation): no I/O, no clocks.

Measurement (GSS "Glucose Measurement"; docs/protocols/ble-health-profiles.md): flags,
sequence number uint16, base time (GSS Date Time), then in flag-bit order time offset (bit
0, sint16 minutes, added to the base time), the concentration SFLOAT and the
type-and-location byte (bit 1), the sensor status annunciation (bit 3, uint16). Bit 2 picks
the unit (0 kg/L, 1 mol/L), bit 4 says a 0x2A34 frame with the same sequence number follows.
Bits 5-7 are reserved: a frame that sets them is rejected, as the blood pressure driver
does. Bytes beyond the flags' promise are ignored (forward compatibility).

Units: the store and the county platform get mmol/L, what Chinese clinics read
(docs/protocols/clinical-rules.md, units). mol/L × 1000 is exact. kg/L is what mg/dL
meters send (kg/L × 100 000 = mg/dL), converted with the molar mass of glucose: 1 mmol/L =
18.016 mg/dL (glucose 180.16 g/mol), in Decimal, rounded half-up to 0.01 mmol/L. That is
finer than the meter's own 1 mg/dL step (0.056 mmol/L), so nothing real is lost, and every
converted reading carries the flag "converted-from-mg/dL".

Sequence numbers are how records are matched and resumed: every reading of a record
carries the flag "seq:<n>", and `dedup_key` gives the transport a key per characteristic
and sequence number (a context shares its measurement's number, so the key must name the
characteristic or the context would be dropped as a duplicate).

Context frames (0x2A34) are recorded as frames of their own, right before the record they
belong to (GlucoseConversation.release holds a record that promises a context until the
context comes). Their categorical fields (meal, tester, health, carbohydrate, exercise,
medication) become flags; `RecordDecoder`, one per meter, puts them on the record's
glucose reading, because the meal decides which diabetes threshold applies
(docs/protocols/clinical-rules.md). Only HbA1c has a SCADA term (MDC_CONC_HBA1C) and becomes
a reading of its own, carrying the same flags. The other context terms of IEEE 11073-10417
(MDC_CTXT_GLU_MEAL ...) live in the PHD disease management partition, which edge_agent.mdc
does not hold.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import struct
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from device_drivers.ble.gatt import by_characteristic, short_uuid, uuid16
from device_drivers.ble.measurement_frame import Fields, flags_byte
from device_drivers.declaration import (
    Binding,
    BlePeripheral,
    BleService,
    DecoderFor,
    Driver,
    Results,
    Yields,
)
from device_drivers.ieee11073 import (
    DATE_TIME_SIZE,
    encode_date_time,
    sfloat_bytes,
    uint_at,
    value_and_flags,
)
from device_drivers.transport import WholeFrames
from edge_agent.model import Decoded, DecodeError, DeviceAlarm, Reading
from edge_agent.units import mg_per_dl_to_mmol_per_l

SERVICE_UUID = uuid16(0x1808)
MEASUREMENT_UUID = uuid16(0x2A18)
CONTEXT_UUID = uuid16(0x2A34)
FEATURE_UUID = uuid16(0x2A51)
RACP_UUID = uuid16(0x2A52)

# What the transport subscribes to (GLP record transfer, step 1 in
# docs/protocols/ble-health-profiles.md): 0x2A18 and 0x2A34 are notified, 0x2A52 indicated;
# bleak's start_notify enables either kind.
CHARACTERISTICS = (MEASUREMENT_UUID, CONTEXT_UUID, RACP_UUID)

# --- Glucose Measurement 0x2A18 ------------------------------------------------------------

FLAG_TIME_OFFSET = 0x01
FLAG_CONCENTRATION = 0x02
FLAG_UNIT_MOL_PER_L = 0x04
FLAG_STATUS = 0x08
FLAG_CONTEXT_FOLLOWS = 0x10
FLAGS_RESERVED = 0xE0
MEASUREMENT_MIN_SIZE = 1 + 2 + DATE_TIME_SIZE

MMOL_PER_L = "MDC_DIM_MILLI_MOLE_PER_L"
PERCENT = "MDC_DIM_PERCENT"
GLUCOSE_GENERIC = "MDC_CONC_GLU_GEN"
GLUCOSE_CONTROL = "MDC_CONC_GLU_CONTROL"
HBA1C = "MDC_CONC_HBA1C"

MG_PER_DL_PER_MMOL_PER_L = Decimal("18.016")  # molar mass of glucose, 180.16 g/mol
MG_PER_DL_PER_KG_PER_L = 100_000  # 1 kg/L = 10^6 mg / 10 dL = 100 000 mg/dL
MMOL_STEP = Decimal("0.01")
CONVERTED_FLAG = "converted-from-mg/dL"
CONTROL_FLAG = "control-solution"
NO_RESULT_FLAG = "no-result"
CONTEXT_FOLLOWS_FLAG = "context-follows"

TYPE_CAPILLARY_WHOLE_BLOOD = 1
TYPE_CAPILLARY_PLASMA = 2
TYPE_CONTROL_SOLUTION = 10
LOCATION_FINGER = 1
LOCATION_CONTROL_SOLUTION = 4
LOCATION_NOT_AVAILABLE = 15

# Sample type (low nibble) -> IEEE 11073-10417 metric; 7/8 "undetermined" have their own
# terms. Reserved types (0, 11-15) fall back to the generic glucose term with a flag.
_SAMPLE_TYPES: dict[int, str] = {
    1: "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD",
    2: "MDC_CONC_GLU_CAPILLARY_PLASMA",
    3: "MDC_CONC_GLU_VENOUS_WHOLEBLOOD",
    4: "MDC_CONC_GLU_VENOUS_PLASMA",
    5: "MDC_CONC_GLU_ARTERIAL_WHOLEBLOOD",
    6: "MDC_CONC_GLU_ARTERIAL_PLASMA",
    7: "MDC_CONC_GLU_UNDETERMINED_WHOLEBLOOD",
    8: "MDC_CONC_GLU_UNDETERMINED_PLASMA",
    9: "MDC_CONC_GLU_ISF",
    TYPE_CONTROL_SOLUTION: GLUCOSE_CONTROL,
}
# Sample location (high nibble, GSS "Glucose Measurement"). 15 = not available: no flag.
_LOCATIONS: dict[int, str] = {
    1: "finger",
    2: "alternate-site",
    3: "earlobe",
    LOCATION_CONTROL_SOLUTION: "control-solution",
    5: "subcutaneous",
}

# Sensor status annunciation, in the SIG GLS / GSS order. Nordic's GlucoseStatus swaps bits
# 5 and 6; the GSS text, the Wireshark btatt dissector and the SIG characteristic XML all
# give 5 = higher, 6 = lower, so that is what is read here. Bits 12-15 are reserved and
# ignored (advice about a valid reading, not a new layout).
STATUS_BATTERY_LOW = 0x0001
STATUS_SENSOR_MALFUNCTION = 0x0002
STATUS_SAMPLE_SIZE = 0x0004
STATUS_STRIP_INSERTION = 0x0008
STATUS_STRIP_TYPE = 0x0010
STATUS_RESULT_HIGH = 0x0020
STATUS_RESULT_LOW = 0x0040
STATUS_TEMPERATURE_HIGH = 0x0080
STATUS_TEMPERATURE_LOW = 0x0100
STATUS_READ_INTERRUPTED = 0x0200
STATUS_DEVICE_FAULT = 0x0400
STATUS_TIME_FAULT = 0x0800
_STATUS_FLAGS = (
    (STATUS_BATTERY_LOW, "battery-low"),
    (STATUS_SENSOR_MALFUNCTION, "sensor-malfunction"),
    (STATUS_SAMPLE_SIZE, "sample-size-insufficient"),
    (STATUS_STRIP_INSERTION, "strip-insertion-error"),
    (STATUS_STRIP_TYPE, "strip-type-incorrect"),
    (STATUS_RESULT_HIGH, "result-above-device-range"),
    (STATUS_RESULT_LOW, "result-below-device-range"),
    (STATUS_TEMPERATURE_HIGH, "temperature-too-high"),
    (STATUS_TEMPERATURE_LOW, "temperature-too-low"),
    (STATUS_READ_INTERRUPTED, "read-interrupted"),
    (STATUS_DEVICE_FAULT, "device-fault"),
    (STATUS_TIME_FAULT, "time-fault"),
)
# Every status bit is a flag on the result it qualifies. Conditions of the meter itself,
# and results outside what the meter can measure ("HI"/"LO", glucose above ~33 mmol/L or
# below ~1 mmol/L: urgent whatever the number), are also device alarms.
_STATUS_ALARMS = (
    (
        STATUS_RESULT_HIGH,
        DeviceAlarm("GLU_RESULT_HIGH", "high", "glucose above the meter's range (HI)", True),
    ),
    (
        STATUS_RESULT_LOW,
        DeviceAlarm("GLU_RESULT_LOW", "high", "glucose below the meter's range (LO)", True),
    ),
    (
        STATUS_SENSOR_MALFUNCTION,
        DeviceAlarm("GLU_SENSOR_MALFUNCTION", "medium", "meter sensor malfunction"),
    ),
    (
        STATUS_DEVICE_FAULT,
        DeviceAlarm("GLU_DEVICE_FAULT", "medium", "meter reports a device fault"),
    ),
    (STATUS_BATTERY_LOW, DeviceAlarm("GLU_BATTERY_LOW", "low", "meter battery low")),
    (STATUS_TIME_FAULT, DeviceAlarm("GLU_TIME_FAULT", "low", "meter clock may be wrong: set it")),
)


def status_flags(status: int) -> tuple[str, ...]:
    """The flag names of a sensor status annunciation word, in bit order."""
    return tuple(name for bit, name in _STATUS_FLAGS if status & bit)


def status_alarms(status: int) -> tuple[DeviceAlarm, ...]:
    """The device alarms a sensor status annunciation word raises."""
    return tuple(alarm for bit, alarm in _STATUS_ALARMS if status & bit)


def seq_flag(sequence: int) -> str:
    return f"seq:{sequence}"


def sequence_number(data: bytes) -> int:
    """The sequence number of a 0x2A18 or 0x2A34 frame (both carry it at bytes 1-2)."""
    if not data:
        raise DecodeError("empty frame: no flags byte", 0)
    return uint_at(data, 1, 2, "sequence number")


def dedup_key(characteristic: str | None, data: bytes) -> str | None:
    """The transport's dedup key of a notification: characteristic, sequence number, bytes.

    A re-sent record (a resumed or "all records" download) is the same bytes again, so it
    gets the same key and the recorder keeps it as a duplicate. The sequence number
    alone is not enough: a meter whose memory was reset numbers its new records from 1
    again, and those must not be dropped as old ones (their time differs, so their bytes
    do). The context shares its measurement's sequence number, hence the characteristic
    in the key. None for RACP indications and for frames too short to carry a number
    (those are recorded and quarantined as they are).
    """
    short = "2a18" if characteristic is None else short_uuid(characteristic)
    if short not in ("2a18", "2a34"):
        return None
    try:
        return f"{short}:{sequence_number(data)}:{data.hex()}"
    except DecodeError:
        return None


def _to_mmol(value: Decimal, mol_per_l: bool) -> Decimal:
    if mol_per_l:
        # Exact: 0.0055 mol/L (mantissa 55, exponent -4) is 5.5 mmol/L.
        return value.scaleb(3)
    return mg_per_dl_to_mmol_per_l(value.scaleb(5))


@dataclass(frozen=True, slots=True)
class GlucoseMeasurement:
    """The fields of one 0x2A18 frame, before they become a reading."""

    sequence: int
    time: dt.datetime | None  # base time + offset, device wall clock; None: not known
    time_offset: int | None  # minutes, as sent
    concentration: tuple[Decimal | None, str | None] | None  # SFLOAT in the frame's unit
    mol_per_l: bool
    sample_type: int | None
    location: int | None
    status: int | None
    context_follows: bool


def parse_measurement(data: bytes) -> GlucoseMeasurement:
    """A 0x2A18 frame -> its fields; DecodeError (with the offset) for a bad frame."""
    flags = flags_byte(data, FLAGS_RESERVED, "vendor-prefixed or not a 0x2A18 frame")
    fields = Fields(data, 1)
    sequence = fields.uint(2, "sequence number")
    base_time = fields.date_time()
    time_offset = fields.sint(2, "time offset") if flags & FLAG_TIME_OFFSET else None
    time = base_time
    if base_time is not None and time_offset:
        try:
            time = base_time + dt.timedelta(minutes=time_offset)
        except OverflowError:
            raise DecodeError(
                f"time offset {time_offset} min takes {base_time:%Y-%m-%d} out of range",
                MEASUREMENT_MIN_SIZE,
            ) from None
    concentration = None
    sample_type = location = None
    if flags & FLAG_CONCENTRATION:
        at = fields.offset
        concentration = fields.sfloat("glucose concentration")
        value = concentration[0]
        if value is not None and value < 0:
            raise DecodeError(f"glucose concentration {value} is negative", at)
        type_location = fields.uint(1, "type and sample location")
        sample_type, location = type_location & 0x0F, type_location >> 4
    status = fields.uint(2, "sensor status annunciation") if flags & FLAG_STATUS else None
    return GlucoseMeasurement(
        sequence=sequence,
        time=time,
        time_offset=time_offset,
        concentration=concentration,
        mol_per_l=bool(flags & FLAG_UNIT_MOL_PER_L),
        sample_type=sample_type,
        location=location,
        status=status,
        context_follows=bool(flags & FLAG_CONTEXT_FOLLOWS),
    )


def decode_measurement(data: bytes) -> Decoded:
    """A Glucose Measurement (0x2A18) frame -> one glucose reading in mmol/L (+ alarms).

    A record without a concentration (flag bit 1 clear: a meter's error record, "E-3")
    is kept as a reading without value flagged "no-result", so its time, sequence number
    and status stay on the box; the recorder does not send value-less readings up.
    """
    m = parse_measurement(data)
    flags = [seq_flag(m.sequence)]
    metric = GLUCOSE_GENERIC
    value: Decimal | None = None
    if m.concentration is None or m.sample_type is None or m.location is None:
        flags.append(NO_RESULT_FLAG)
    else:
        raw, flags = value_and_flags(m.concentration, flags)
        if raw is not None:
            value = _to_mmol(raw, m.mol_per_l)
        if not m.mol_per_l:
            flags.append(CONVERTED_FLAG)
        metric = _SAMPLE_TYPES.get(m.sample_type, GLUCOSE_GENERIC)
        if m.sample_type not in _SAMPLE_TYPES:
            flags.append(f"sample-type:{m.sample_type}")
        if m.location != LOCATION_NOT_AVAILABLE:
            flags.append(f"location:{_LOCATIONS.get(m.location, m.location)}")
        # A control-solution check is a test of the meter, not the patient's glucose:
        # its own metric keeps it out of the patient's series (GSS sample type 10 /
        # location 4, control solution).
        if m.sample_type == TYPE_CONTROL_SOLUTION or m.location == LOCATION_CONTROL_SOLUTION:
            metric = GLUCOSE_CONTROL
            flags.append(CONTROL_FLAG)
    alarms: tuple[DeviceAlarm, ...] = ()
    if m.status is not None:
        flags.extend(status_flags(m.status))
        alarms = status_alarms(m.status)
    if m.context_follows:
        flags.append(CONTEXT_FOLLOWS_FLAG)
    reading = Reading(metric, value, MMOL_PER_L, m.time, tuple(flags))
    return Decoded(readings=(reading,), alarms=alarms)


def encode_measurement(
    sequence: int,
    base_time: dt.datetime | None,
    *,
    time_offset: int | None = None,
    concentration: Decimal | None = None,
    mol_per_l: bool = False,
    sample_type: int = TYPE_CAPILLARY_WHOLE_BLOOD,
    location: int = LOCATION_FINGER,
    status: int | None = None,
    context_follows: bool = False,
) -> bytes:
    """A 0x2A18 frame, for simulators and tests.

    `concentration` is in the frame's unit (kg/L, or mol/L when `mol_per_l`); None leaves
    the field out, Decimal("NaN") sends NaN. `base_time` None sends the all-zero Date
    Time (clock not set, GSS "Date Time").
    """
    flags = FLAG_CONTEXT_FOLLOWS if context_follows else 0
    body = struct.pack("<H", sequence) + encode_date_time(base_time)
    if time_offset is not None:
        flags |= FLAG_TIME_OFFSET
        body += struct.pack("<h", time_offset)
    if concentration is not None:
        flags |= FLAG_CONCENTRATION
        if mol_per_l:
            flags |= FLAG_UNIT_MOL_PER_L
        if not (0 <= sample_type <= 15 and 0 <= location <= 15):
            raise ValueError("sample type and location are 4-bit values")
        body += sfloat_bytes(concentration) + bytes([location << 4 | sample_type])
    if status is not None:
        flags |= FLAG_STATUS
        body += struct.pack("<H", status)
    return bytes([flags]) + body


# --- Glucose Measurement Context 0x2A34 ----------------------------------------------------

CTX_CARBOHYDRATE = 0x01
CTX_MEAL = 0x02
CTX_TESTER_HEALTH = 0x04
CTX_EXERCISE = 0x08
CTX_MEDICATION = 0x10
CTX_MEDICATION_LITRES = 0x20
CTX_HBA1C = 0x40
CTX_EXTENDED = 0x80

MEAL_PREPRANDIAL = 1
MEAL_POSTPRANDIAL = 2
MEAL_FASTING = 3
MEAL_CASUAL = 4
MEAL_BEDTIME = 5
NOT_AVAILABLE = 15  # tester / health nibble
EXERCISE_OVERRUN = 0xFFFF  # duration longer than the field holds

_CARBOHYDRATES = {
    1: "breakfast",
    2: "lunch",
    3: "dinner",
    4: "snack",
    5: "drink",
    6: "supper",
    7: "brunch",
}
_MEALS = {
    MEAL_PREPRANDIAL: "preprandial",
    MEAL_POSTPRANDIAL: "postprandial",
    MEAL_FASTING: "fasting",
    MEAL_CASUAL: "casual",
    MEAL_BEDTIME: "bedtime",
}
_TESTERS = {1: "self", 2: "professional", 3: "lab"}
_HEALTH = {1: "minor-issues", 2: "major-issues", 3: "menses", 4: "stress", 5: "none"}
_MEDICATIONS = {
    1: "rapid-acting-insulin",
    2: "short-acting-insulin",
    3: "intermediate-acting-insulin",
    4: "long-acting-insulin",
    5: "pre-mixed-insulin",
}

SFloat = tuple[Decimal | None, str | None]


@dataclass(frozen=True, slots=True)
class GlucoseContext:
    """The fields of one 0x2A34 frame, as sent (SI units: kg, litres, seconds, %)."""

    sequence: int
    extended_flags: int | None = None
    carbohydrate: tuple[int, SFloat] | None = None  # (id, kg)
    meal: int | None = None
    tester: int | None = None
    health: int | None = None
    exercise: tuple[int, int] | None = None  # (duration s, intensity %)
    medication: tuple[int, SFloat] | None = None  # (id, kg or litres)
    medication_litres: bool = False
    hba1c: SFloat | None = None  # %


def parse_context(data: bytes) -> GlucoseContext:
    """A 0x2A34 frame -> its fields; DecodeError (with the offset) for a bad frame.

    Layout (GSS "Glucose Measurement Context"): flags, sequence number, [extended flags],
    then the fields in flag-bit order. All eight flag bits are defined, so none is rejected
    as reserved.
    """
    if not data:
        raise DecodeError("empty frame: no flags byte", 0)
    flags = data[0]
    fields = Fields(data, 1)
    sequence = fields.uint(2, "sequence number")
    extended = fields.uint(1, "extended flags") if flags & CTX_EXTENDED else None
    carbohydrate = None
    if flags & CTX_CARBOHYDRATE:
        carbohydrate = (fields.uint(1, "carbohydrate id"), fields.sfloat("carbohydrate"))
    meal = fields.uint(1, "meal") if flags & CTX_MEAL else None
    tester = health = None
    if flags & CTX_TESTER_HEALTH:
        tester_health = fields.uint(1, "tester-health")
        tester, health = tester_health & 0x0F, tester_health >> 4
    exercise = None
    if flags & CTX_EXERCISE:
        exercise = (fields.uint(2, "exercise duration"), fields.uint(1, "exercise intensity"))
    medication = None
    if flags & CTX_MEDICATION:
        medication = (fields.uint(1, "medication id"), fields.sfloat("medication"))
    hba1c = fields.sfloat("HbA1c") if flags & CTX_HBA1C else None
    return GlucoseContext(
        sequence=sequence,
        extended_flags=extended,
        carbohydrate=carbohydrate,
        meal=meal,
        tester=tester,
        health=health,
        exercise=exercise,
        medication=medication,
        medication_litres=bool(flags & CTX_MEDICATION_LITRES),
        hba1c=hba1c,
    )


def _plain(value: Decimal) -> str:
    """A Decimal as plain digits without exponent or trailing zeros: 50, 0.5, 12.25."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _amount(name: str, field: SFloat, scale: int) -> str:
    value, special = field
    return f"{name}:{special}" if value is None else f"{name}:{_plain(value.scaleb(scale))}"


def context_flags(context: GlucoseContext) -> tuple[str, ...]:
    """The flags naming a context's fields: "seq:42", "meal:preprandial", ...

    Amounts are turned into the units a clinic writes: carbohydrate in grams, medication
    in milligrams or millilitres. A value outside the named ones stays visible as its
    number ("meal:9"); tester or health 15 (not available) adds nothing.
    """
    flags = [seq_flag(context.sequence)]
    if context.carbohydrate is not None:
        carb_id, amount = context.carbohydrate
        flags.append(f"carbohydrate:{_CARBOHYDRATES.get(carb_id, carb_id)}")
        flags.append(_amount("carbohydrate-g", amount, 3))
    if context.meal is not None:
        flags.append(f"meal:{_MEALS.get(context.meal, context.meal)}")
    if context.tester is not None and context.tester != NOT_AVAILABLE:
        flags.append(f"tester:{_TESTERS.get(context.tester, context.tester)}")
    if context.health is not None and context.health != NOT_AVAILABLE:
        flags.append(f"health:{_HEALTH.get(context.health, context.health)}")
    if context.exercise is not None:
        duration, intensity = context.exercise
        flags.append(f"exercise-s:{'overrun' if duration == EXERCISE_OVERRUN else duration}")
        flags.append(f"exercise-intensity-%:{intensity}")
    if context.medication is not None:
        medication_id, amount = context.medication
        flags.append(f"medication:{_MEDICATIONS.get(medication_id, medication_id)}")
        # kg -> mg is 10^6; litres -> mL is 10^3 (context flag bit 5 picks the unit).
        if context.medication_litres:
            flags.append(_amount("medication-ml", amount, 3))
        else:
            flags.append(_amount("medication-mg", amount, 6))
    return tuple(flags)


def decode_context(data: bytes) -> Decoded:
    """A Glucose Measurement Context (0x2A34) frame -> an HbA1c reading, if it has one.

    See the module docstring: the context's other fields are flags on that reading; a
    context without HbA1c decodes to nothing (an "empty" frame, its bytes kept). Its
    meal, tester and the rest join the glucose reading through `RecordDecoder`.
    """
    return _context_decoded(parse_context(data))


def _context_decoded(context: GlucoseContext) -> Decoded:
    if context.hba1c is None:
        return Decoded()
    value, flags = value_and_flags(context.hba1c, context_flags(context))
    return Decoded(readings=(Reading(HBA1C, value, PERCENT, None, tuple(flags)),))


class RecordDecoder:
    """One meter's decoder: a record's context joins the record's glucose reading.

    The meal decides which diabetes threshold applies (docs/protocols/clinical-rules.md),
    so it belongs on the reading. The session records a context right before its record
    (GlucoseConversation.release), so this decoder keeps the last context it decoded and
    puts its fields on the next record's reading when the sequence numbers match:
    "meal:fasting", "tester:self", ... replace "context-follows". Anything else forgets it.
    One instance per paired meter (the registry makes it per device).
    """

    def __init__(self) -> None:
        self._context: GlucoseContext | None = None

    def decoder_for(self, channel: str | None) -> Callable[[bytes], Decoded]:
        decoders = {"2a18": self.measurement, "2a34": self.context, "2a52": self.racp}
        return by_characteristic(channel, decoders, "Glucose", default="2a18")

    def context(self, data: bytes) -> Decoded:
        self._context = None
        context = parse_context(data)
        self._context = context
        return _context_decoded(context)

    def racp(self, data: bytes) -> Decoded:
        self._context = None
        return decode_racp(data)

    def measurement(self, data: bytes) -> Decoded:
        context, self._context = self._context, None
        decoded = decode_measurement(data)
        (reading,) = decoded.readings
        if context is None or context.sequence != sequence_number(data):
            return decoded
        flags = [f for f in reading.flags if f != CONTEXT_FOLLOWS_FLAG]
        flags.extend(f for f in context_flags(context) if f not in flags)
        joined = dataclasses.replace(reading, flags=tuple(flags))
        return Decoded(readings=(joined,), alarms=decoded.alarms)


def encode_context(
    sequence: int,
    *,
    carbohydrate: tuple[int, Decimal] | None = None,
    meal: int | None = None,
    tester: int | None = None,
    health: int | None = None,
    exercise: tuple[int, int] | None = None,
    medication: tuple[int, Decimal] | None = None,
    medication_litres: bool = False,
    hba1c: Decimal | None = None,
    extended_flags: int | None = None,
) -> bytes:
    """A 0x2A34 frame, for simulators and tests (amounts in kg / litres, HbA1c in %).

    Tester-health goes out when either is given; the missing nibble is 15 (n/a).
    """
    flags = 0
    body = b""
    if extended_flags is not None:
        flags |= CTX_EXTENDED
        body += bytes([extended_flags])
    if carbohydrate is not None:
        flags |= CTX_CARBOHYDRATE
        body += bytes([carbohydrate[0]]) + sfloat_bytes(carbohydrate[1])
    if meal is not None:
        flags |= CTX_MEAL
        body += bytes([meal])
    if tester is not None or health is not None:
        flags |= CTX_TESTER_HEALTH
        t = NOT_AVAILABLE if tester is None else tester
        h = NOT_AVAILABLE if health is None else health
        if not (0 <= t <= 15 and 0 <= h <= 15):
            raise ValueError("tester and health are 4-bit values")
        body += bytes([h << 4 | t])
    if exercise is not None:
        flags |= CTX_EXERCISE
        body += struct.pack("<HB", *exercise)
    if medication is not None:
        flags |= CTX_MEDICATION
        if medication_litres:
            flags |= CTX_MEDICATION_LITRES
        body += bytes([medication[0]]) + sfloat_bytes(medication[1])
    if hba1c is not None:
        flags |= CTX_HBA1C
        body += sfloat_bytes(hba1c)
    return bytes([flags]) + struct.pack("<H", sequence) + body


# --- Record Access Control Point 0x2A52 ----------------------------------------------------

OP_REPORT_RECORDS = 1
OP_DELETE_RECORDS = 2
OP_ABORT = 3
OP_REPORT_NUMBER = 4
OP_NUMBER_RESPONSE = 5
OP_RESPONSE_CODE = 6

OPERATOR_NULL = 0
OPERATOR_ALL = 1
OPERATOR_LESS_OR_EQUAL = 2
OPERATOR_GREATER_OR_EQUAL = 3
OPERATOR_RANGE = 4
OPERATOR_FIRST = 5
OPERATOR_LAST = 6

FILTER_SEQUENCE = 0x01
FILTER_USER_TIME = 0x02

RESPONSE_SUCCESS = 1
RESPONSE_OP_NOT_SUPPORTED = 2
RESPONSE_INVALID_OPERATOR = 3
RESPONSE_OPERATOR_NOT_SUPPORTED = 4
RESPONSE_INVALID_OPERAND = 5
RESPONSE_NO_RECORDS = 6
RESPONSE_ABORT_UNSUCCESSFUL = 7
RESPONSE_NOT_COMPLETED = 8
RESPONSE_OPERAND_NOT_SUPPORTED = 9

RESPONSE_MEANINGS = {
    RESPONSE_SUCCESS: "success",
    RESPONSE_OP_NOT_SUPPORTED: "op code not supported",
    RESPONSE_INVALID_OPERATOR: "invalid operator",
    RESPONSE_OPERATOR_NOT_SUPPORTED: "operator not supported",
    RESPONSE_INVALID_OPERAND: "invalid operand",
    RESPONSE_NO_RECORDS: "no records found",
    RESPONSE_ABORT_UNSUCCESSFUL: "abort unsuccessful",
    RESPONSE_NOT_COMPLETED: "procedure not completed",
    RESPONSE_OPERAND_NOT_SUPPORTED: "operand not supported",
}
OP_NAMES = {
    OP_REPORT_RECORDS: "report stored records",
    OP_DELETE_RECORDS: "delete stored records",
    OP_ABORT: "abort operation",
    OP_REPORT_NUMBER: "report number of stored records",
    OP_NUMBER_RESPONSE: "number of stored records response",
    OP_RESPONSE_CODE: "response code",
}
SEQUENCE_MAX = 0xFFFF


def encode_racp(op: int, operator: int = OPERATOR_NULL, operand: bytes = b"") -> bytes:
    """An RACP request (or, for simulators, response): op code, operator, operand."""
    if not (0 <= op <= 0xFF and 0 <= operator <= 0xFF):
        raise ValueError("RACP op code and operator are single bytes")
    return bytes([op, operator]) + operand


def sequence_filter(*values: int) -> bytes:
    """The operand of a sequence-number filter: filter type 0x01 + uint16 value(s)."""
    for value in values:
        if not 0 <= value <= SEQUENCE_MAX:
            raise ValueError(f"sequence number {value} outside 0..65535")
    return bytes([FILTER_SEQUENCE]) + b"".join(struct.pack("<H", v) for v in values)


def report_all() -> bytes:
    """Report stored records: all (first contact; GLS RACP op 1, operator 1)."""
    return encode_racp(OP_REPORT_RECORDS, OPERATOR_ALL)


def report_since(first_sequence: int) -> bytes:
    """Report stored records with sequence number >= `first_sequence` (step 3, later)."""
    return encode_racp(
        OP_REPORT_RECORDS, OPERATOR_GREATER_OR_EQUAL, sequence_filter(first_sequence)
    )


def encode_racp_response(request_op: int, code: int) -> bytes:
    """A response-code indication (op 6, operator null, request op, code)."""
    return encode_racp(OP_RESPONSE_CODE, OPERATOR_NULL, bytes([request_op, code]))


def encode_racp_count(count: int) -> bytes:
    """A number-of-stored-records indication (op 5, operator null, uint16)."""
    return encode_racp(OP_NUMBER_RESPONSE, OPERATOR_NULL, struct.pack("<H", count))


@dataclass(frozen=True, slots=True)
class RacpRequest:
    """An RACP request as written to the meter (what a simulated meter reads)."""

    op: int
    operator: int
    operand: bytes

    def sequence_operands(self) -> tuple[int, ...] | None:
        """The uint16 values of a sequence-number filter, None for another filter type."""
        if not self.operand or self.operand[0] != FILTER_SEQUENCE:
            return None
        body = self.operand[1:]
        if len(body) % 2:
            return None
        return tuple(v for (v,) in struct.iter_unpack("<H", body))


def decode_racp_request(data: bytes) -> RacpRequest:
    if len(data) < 2:
        raise DecodeError(f"truncated: RACP request needs 2 bytes, frame has {len(data)}", 0)
    return RacpRequest(data[0], data[1], bytes(data[2:]))


@dataclass(frozen=True, slots=True)
class RacpResult:
    """A response-code indication: how the meter ended a request."""

    request_op: int
    code: int

    @property
    def meaning(self) -> str:
        return RESPONSE_MEANINGS.get(self.code, f"reserved response code {self.code}")

    @property
    def ok(self) -> bool:
        """Success, or no records found, which is a normal end of a transfer (RACP op 6)."""
        return self.code in (RESPONSE_SUCCESS, RESPONSE_NO_RECORDS)

    def describe(self) -> str:
        op = OP_NAMES.get(self.request_op, f"op {self.request_op}")
        return f"RACP {op}: {self.meaning} ({self.code})"


@dataclass(frozen=True, slots=True)
class RacpCount:
    """A number-of-stored-records indication."""

    count: int


def decode_racp_response(data: bytes) -> RacpResult | RacpCount:
    """An RACP indication from the meter -> a result or a record count.

    The count is a uint16 (GSS "Record Access Control Point"); 1- and 4-byte counts from
    non-conforming meters are read too, as Nordic's parser does, since the count is only
    advice.
    """
    if len(data) < 2:
        raise DecodeError(f"truncated: RACP indication needs 2 bytes, frame has {len(data)}", 0)
    op, operator = data[0], data[1]
    if operator != OPERATOR_NULL:
        raise DecodeError(f"RACP indication operator {operator}: a response has null (0)", 1)
    if op == OP_RESPONSE_CODE:
        if len(data) < 4:
            raise DecodeError(
                f"truncated: RACP response code needs 4 bytes, frame has {len(data)}", len(data)
            )
        return RacpResult(data[2], data[3])
    if op == OP_NUMBER_RESPONSE:
        size = len(data) - 2
        if size not in (1, 2, 4):
            raise DecodeError(f"RACP record count of {size} bytes (expected 2)", 2)
        return RacpCount(int.from_bytes(data[2:], "little"))
    raise DecodeError(f"RACP op code {op} is not a response (5 or 6)", 0)


def decode_racp(data: bytes) -> Decoded:
    """An RACP indication as a recorded frame: no reading; malformed ones are rejected."""
    decode_racp_response(data)
    return Decoded()


# --- routing -------------------------------------------------------------------------------


_DECODERS: dict[str, Callable[[bytes], Decoded]] = {
    "2a18": decode_measurement,
    "2a34": decode_context,
    "2a52": decode_racp,
}


def decoder_for(channel: str | None) -> Callable[[bytes], Decoded]:
    """The decoder for a notification's characteristic (the frame's channel).

    No channel means a measurement (a captured 0x2A18 frame, the decode CLI). An unknown
    characteristic gets a decoder that rejects every frame, so it is quarantined with the
    reason rather than read as glucose.
    """
    return by_characteristic(channel, _DECODERS, "Glucose", default="2a18")


# --- the download conversation -------------------------------------------------------------

Write = tuple[str, bytes]
_FALLBACK_CODES = (RESPONSE_OPERATOR_NOT_SUPPORTED, RESPONSE_OPERAND_NOT_SUPPORTED)


class GlucoseConversation:
    """One connection's download of stored records over RACP (transport.GattConversation).

    - opened: "report stored records: all" on first contact (`last_sequence` None), else
      "sequence number >= last_sequence + 1" (step 3 of the download in
      docs/protocols/ble-health-profiles.md). With `ask_count`, the number of those records
      is asked first (step 2), and a count of zero ends the conversation. (The meter's clock
      is set by the session before this opens: session.BleTransport `set_clock`,
      current_time.py.)
    - received: 0x2A18 records move `last_sequence`; the response-code indication ends
      the conversation: "success" or "no records found" normally, anything else with
      `error` set. "Operator/operand not supported" to a "since" request falls back to
      "all records" once (step 5); the recorder drops the repeats by `dedup_key`.
    - resume: a link drop leaves the conversation unfinished; the next connection's
      conversation, made with this one's `last_sequence`, asks for what is left (step 6).
      `last_sequence` only counts complete records: one whose context was promised (flag
      bit 4) but not yet received is asked for again, so a drop between a measurement and
      its context loses neither (the measurement comes back as a duplicate).
    """

    def __init__(
        self,
        last_sequence: int | None = None,
        *,
        ask_count: bool = False,
    ) -> None:
        if last_sequence is not None and not 0 <= last_sequence <= SEQUENCE_MAX:
            raise ValueError(f"last sequence {last_sequence} outside 0..65535")
        self._start = last_sequence
        self._complete = last_sequence
        self._pending: set[int] = set()
        self._held: tuple[int, str, bytes] | None = None  # a record waiting for its context
        self._ask_count = ask_count
        self._awaiting_count = False
        self._fell_back = False
        self._finished = False
        self.sequences: list[int] = []  # measurement sequence numbers, in arrival order
        self.stored_count: int | None = None
        self.result: RacpResult | None = None
        self.error: str | None = None

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def last_sequence(self) -> int | None:
        """The highest sequence number whose record arrived whole: the resume point."""
        return self._complete

    def request(self) -> bytes:
        """The report request this conversation makes (all, or since last)."""
        if self._start is None or self._fell_back:
            return report_all()
        # Sequence numbers do not wrap (uint16): at 65535, ask for 65535 again rather
        # than for nothing; the recorder drops the repeat.
        return report_since(min(self._start + 1, SEQUENCE_MAX))

    def _operand(self) -> bytes:
        return self.request()[2:]

    def opened(self) -> list[Write]:
        writes: list[Write] = []
        if self._ask_count:
            self._awaiting_count = True
            operator = self.request()[1]
            writes.append((RACP_UUID, encode_racp(OP_REPORT_NUMBER, operator, self._operand())))
        else:
            writes.append((RACP_UUID, self.request()))
        return writes

    def release(self, characteristic: str, data: bytes) -> list[Write]:
        """What to record now (transport.GattConversation): a record whose context is
        promised waits for it, then the context is recorded first and the record right
        after, so `RecordDecoder` puts the meal on the reading. A held record goes alone
        when anything else comes (the meter did not send the context it promised); one
        still held when the link drops is not recorded and is asked for again (it is
        not counted in `last_sequence`)."""
        short = short_uuid(characteristic)
        held, self._held = self._held, None
        before = [] if held is None else [(held[1], held[2])]
        try:
            sequence = sequence_number(data)
        except DecodeError:
            return [*before, (characteristic, data)]  # recorded (and quarantined) as sent
        if short == "2a18" and data[0] & FLAG_CONTEXT_FOLLOWS:
            self._held = (sequence, characteristic, data)
            return before
        if short == "2a34" and held is not None and held[0] == sequence:
            return [(characteristic, data), (held[1], held[2])]
        return [*before, (characteristic, data)]

    def received(self, characteristic: str, data: bytes) -> list[Write]:
        short = short_uuid(characteristic)
        if short == "2a18":
            self._measurement(data)
        elif short == "2a34":
            self._context(data)
        elif short == "2a52":
            return self._racp(data)
        return []

    def _advance(self, sequence: int) -> None:
        if self._complete is None or sequence > self._complete:
            self._complete = sequence

    def _measurement(self, data: bytes) -> None:
        # Only the number and flag bit 4 are needed here: a record whose body is bad is
        # still delivered (the recorder quarantines it) and asking again brings the same.
        try:
            sequence = sequence_number(data)
        except DecodeError:
            return
        self.sequences.append(sequence)
        if data[0] & FLAG_CONTEXT_FOLLOWS:
            self._pending.add(sequence)
        else:
            self._advance(sequence)

    def _context(self, data: bytes) -> None:
        try:
            sequence = sequence_number(data)
        except DecodeError:
            return
        if sequence in self._pending:
            self._pending.discard(sequence)
            self._advance(sequence)

    def _finish(self, error: str | None = None) -> list[Write]:
        self._finished = True
        self.error = error
        return []

    def _racp(self, data: bytes) -> list[Write]:
        if self._finished:
            return []
        try:
            response = decode_racp_response(data)
        except DecodeError as exc:
            return self._finish(f"malformed RACP indication: {exc}")
        if isinstance(response, RacpCount):
            self.stored_count = response.count
            if not self._awaiting_count:
                return []
            self._awaiting_count = False
            if response.count == 0:
                return self._finish()
            return [(RACP_UUID, self.request())]
        self.result = response
        if self._awaiting_count and response.request_op == OP_REPORT_NUMBER:
            # The count is optional (step 2): a meter without it still reports records.
            self._awaiting_count = False
            return [(RACP_UUID, self.request())]
        if response.request_op != OP_REPORT_RECORDS:
            return self._finish(f"unexpected {response.describe()}")
        if response.code == RESPONSE_SUCCESS:
            # The transfer is complete: a context promised but never sent will not come.
            for sequence in self._pending:
                self._advance(sequence)
            self._pending.clear()
            return self._finish()
        if response.code == RESPONSE_NO_RECORDS:
            return self._finish()
        if response.code in _FALLBACK_CODES and self._start is not None and not self._fell_back:
            self._fell_back = True
            return [(RACP_UUID, report_all())]
        return self._finish(response.describe())


class RecordDownloads:
    """One meter's downloads, connection after connection (the session's conversation factory).

    Each connection gets a GlucoseConversation that starts where the previous one got
    to, so a meter carried out of range mid-transfer is asked only for what is left
    when it comes back (step 6 of the download in docs/protocols/ble-health-profiles.md).
    The resume point lives as long as the daemon: after a restart the first download asks
    for all records again and the recorder drops what it already holds by `dedup_key`, which
    also makes a meter whose numbering restarted (memory reset, a replaced meter under the
    same pairing) safe.
    """

    def __init__(self, last_sequence: int | None = None, *, ask_count: bool = False) -> None:
        self._last = last_sequence
        self._ask_count = ask_count
        self._current: GlucoseConversation | None = None
        self.errors: list[str] = []

    @property
    def last_sequence(self) -> int | None:
        self._settle()
        return self._last

    def _settle(self) -> None:
        current, self._current = self._current, None
        if current is None:
            return
        if current.last_sequence is not None:
            self._last = current.last_sequence
        if current.error is not None:
            self.errors.append(current.error)

    def __call__(self) -> GlucoseConversation:
        self._settle()
        self._current = GlucoseConversation(self._last, ask_count=self._ask_count)
        return self._current


def _per_meter(_model: str | None, _pattern: str | None) -> DecoderFor:
    """Per meter: a record's context joins its reading (RecordDecoder)."""
    return RecordDecoder().decoder_for


DECLARATIONS = (
    Driver(
        id="ble-glucose",
        summary="Bluetooth SIG Glucose 0x1808: stored records over RACP 0x2A52, context 0x2A34",
        source=BlePeripheral(
            BleService(SERVICE_UUID, "glucose"),
            CHARACTERISTICS,
            dedup_key=dedup_key,
            sets_clock=True,
            bonds=True,
            gatt_conversation=RecordDownloads,
        ),
        framer=WholeFrames,
        decoder_for=decoder_for,
        configured=_per_meter,
        yields=Yields(numerics=True, alarms=True),
        profile="MDC_DEV_SPEC_PROFILE_GLUCOSE",
        binding=Binding.PERSONAL,
        results=Results.STORED,
    ),
)
