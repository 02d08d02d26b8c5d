"""IntelliVue frames -> readings, waveforms and alarms (docs/protocols/intellivue.md).

`decode_frame` is the pure decoder the recorder calls on every recorded frame: it checks
the frame (framing.unframe), parses the message (messages.parse_user_data) and, for poll
results, turns the objects' attributes into our values. Association, MDS Create, poll
requests and other control messages decode to an empty `Decoded`; anything malformed
raises DecodeError with the byte offset inside the frame, never another exception.

Decisions (guide "Attribute Data Types": NuObsValue, SaObsValue, MeasurementState):
- Numerics: physio id -> MDC term through edge_agent.mdc (the physio id *is* the 10101
  SCADA term code); numerics without a term there (ST segments, indices we do not
  report) are skipped, their raw frame stays recorded. Unit codes likewise map to DIM
  terms; an unknown unit gives MDC_DIM_DIMLESS and the flag "unit-0xNNNN".
- MeasurementState: the guide calls a value valid only when the state's upper byte is
  zero. Any of invalid (0x8000), questionable (0x4000), unavailable (0x2000),
  calibration ongoing (0x1000), test data (0x0800), demo data (0x0400) therefore gives
  value None with a flag per bit set, so demo or test values never reach a health
  record but the trend shows the gap. In-alarm (0x0002) and alarm-inhibited (0x0001)
  are kept as flags on a valid value. NaN/NRes/INF give None and "nan"/"nres"/...
- Time: an object's own absolute time stamp (0x0990), else the poll result's, else
  None. Extended poll results carry no absolute time (all 0xFF, per the guide), so
  their values have no device time; the conversation could map relative time through
  the MDS Create's clock attributes, but a frame decoded alone cannot.
- Waves: samples are taken as SaSpec says (8/16-bit, significant bits masked when
  SA_EXT_VAL_RANGE is set, two's complement when significant_bits is 255). The rate
  comes from the sample period (0x098D, 1/8 ms ticks) when the frame has it, else from
  the 256 ms covered by each real-time wave result (guide "Wave Data Export": 128
  samples = 500/s, 32 = 125/s, 16 = 62.5/s). Monitors send the static context only
  once per 1024 ms, so a frame without ScaleRangeSpec16 (or with NaN absolutes, like
  pleth) yields raw counts: scale 1, offset 0, unit MDC_DIM_DIMLESS. Waves whose state
  is not valid are skipped (Waveform has no flags to say so).
- Alarms: DevAlarmList entries (patient 0x0902, technical 0x0904) with a priority;
  NO_ALERT entries are skipped. The code names source and alarm code, the text is the
  monitor's own alarm string (StrAlMonInfo) when it sends one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TypeVar

from device_drivers.serial.intellivue.framing import HEADER_LEN, unframe
from device_drivers.serial.intellivue.messages import (
    GEN_ALMON_INFO,
    NOM_ATTR_AL_MON_P_AL_LIST,
    NOM_ATTR_AL_MON_T_AL_LIST,
    NOM_ATTR_NU_CMPD_VAL_OBS,
    NOM_ATTR_NU_VAL_OBS,
    NOM_ATTR_SA_CMPD_VAL_OBS,
    NOM_ATTR_SA_SPECN,
    NOM_ATTR_SA_VAL_OBS,
    NOM_ATTR_SCALE_SPECN_I16,
    NOM_ATTR_TIME_PD_SAMP,
    NOM_ATTR_TIME_STAMP_ABS,
    NOM_ATTR_UNIT_CODE,
    STR_ALMON_INFO,
    Observation,
    PollResult,
)
from device_drivers.serial.intellivue.parse import parse_user_data
from device_drivers.serial.intellivue.types import (
    TICKS_PER_SECOND,
    Ava,
    Reader,
    decode_absolute_time,
    decode_float,
)
from edge_agent import mdc
from edge_agent.model import Decoded, DecodeError, DeviceAlarm, Reading, Waveform

# MeasurementState bits, upper byte first (guide "MeasurementState").
STATE_FLAGS = (
    (0x8000, "invalid"),
    (0x4000, "questionable"),
    (0x2000, "unavailable"),
    (0x1000, "calibration-ongoing"),
    (0x0800, "test-data"),
    (0x0400, "demo-data"),
    (0x0002, "in-alarm"),
    (0x0001, "alarm-inhibited"),
)
STATE_NOT_VALID = 0xFF00
SA_EXT_VAL_RANGE = 0x1000  # SaFlags: mask the non-significant bits
SIGNED_SAMPLES = 255  # SampleType.significant_bits: samples are two's complement
RTSA_PERIOD_S = Decimal("0.256")  # one real-time wave result covers 256 ms
RAW_UNIT = "MDC_DIM_DIMLESS"
_T = TypeVar("_T")

# AlertType (guide "DevAlarmEntry"): technical 0x0001..0x0004, patient 0x0100..0x0400.
_PRIORITIES = ((0x0404, "high"), (0x0202, "medium"), (0x0101, "low"))


def decode_frame(frame: bytes) -> Decoded:
    """Everything one unescaped frame (as FrameReader emits it) carried."""
    message = parse_user_data(unframe(frame), HEADER_LEN)
    if isinstance(message, PollResult):
        return decode_poll_result(message)
    return Decoded()


def decode_poll_result(result: PollResult) -> Decoded:
    readings: list[Reading] = []
    waveforms: list[Waveform] = []
    alarms: list[DeviceAlarm] = []
    for observation in result.observations:
        when = _object_time(observation) or result.abs_time
        for ava in observation.attributes:
            if ava.attribute_id == NOM_ATTR_NU_VAL_OBS:
                reader = ava.reader()
                value = _nu_obs(reader)
                reader.expect_end("numeric observed value")
                readings += _numerics([value], when)
            elif ava.attribute_id == NOM_ATTR_NU_CMPD_VAL_OBS:
                reader = ava.reader()
                values = _counted(reader, "compound numeric", _nu_obs)
                reader.expect_end("compound numeric value")
                readings += _numerics(values, when)
            elif ava.attribute_id in (NOM_ATTR_SA_VAL_OBS, NOM_ATTR_SA_CMPD_VAL_OBS):
                waveforms += _waves(ava, observation, when)
            elif ava.attribute_id in (NOM_ATTR_AL_MON_P_AL_LIST, NOM_ATTR_AL_MON_T_AL_LIST):
                alarms += _alarms(ava)
    return Decoded(tuple(readings), tuple(waveforms), tuple(alarms))


def _find(observation: Observation, attribute_id: int) -> Ava | None:
    for ava in observation.attributes:
        if ava.attribute_id == attribute_id:
            return ava
    return None


def _object_time(observation: Observation) -> dt.datetime | None:
    ava = _find(observation, NOM_ATTR_TIME_STAMP_ABS)
    if ava is None:
        return None
    if len(ava.value) != 8:
        raise DecodeError(f"absolute time stamp of {len(ava.value)} bytes, expected 8", ava.offset)
    return decode_absolute_time(ava.value)


def _counted(reader: Reader, what: str, item: Callable[[Reader], _T]) -> list[_T]:
    """count u16, length u16, then exactly `length` bytes of `count` items."""
    count = reader.u16(f"{what} count")
    body = reader.sub(reader.u16(f"{what} length"), what)
    items = [item(body) for _ in range(count)]
    body.expect_end(f"{what} list of {count}")
    return items


# --- numerics --------------------------------------------------------------------------

_NuObs = tuple[int, int, int, int, int]  # physio id, state, unit code, raw float, offset


def _nu_obs(reader: Reader) -> _NuObs:
    offset = reader.offset
    return (
        reader.u16("physio id"),
        reader.u16("measurement state"),
        reader.u16("unit code"),
        reader.u32("numeric value"),
        offset,
    )


def _numerics(values: Sequence[_NuObs], when: dt.datetime | None) -> list[Reading]:
    readings = []
    for physio_id, state, unit_code, raw, _offset in values:
        metric = mdc.BY_CODE.get(mdc.PART_SCADA << 16 | physio_id)
        if metric is None:
            continue
        value, special = decode_float(raw)
        flags = [name for bit, name in STATE_FLAGS if state & bit]
        if special is not None:
            flags.append(special)
        if state & STATE_NOT_VALID:
            value = None
        unit = _unit(unit_code, flags)
        readings.append(Reading(metric.refid, value, unit, when, tuple(flags)))
    return readings


def _unit(unit_code: int, flags: list[str]) -> str:
    term = mdc.BY_CODE.get(mdc.PART_DIM << 16 | unit_code)
    if term is None:
        flags.append(f"unit-0x{unit_code:04x}")
        return RAW_UNIT
    return term.refid


# --- waves -----------------------------------------------------------------------------


def _fixed(observation: Observation, attribute_id: int, size: int, what: str) -> Reader | None:
    ava = _find(observation, attribute_id)
    if ava is None:
        return None
    if len(ava.value) != size:
        raise DecodeError(f"{what} of {len(ava.value)} bytes, expected {size}", ava.offset)
    return ava.reader()


def _waves(ava: Ava, observation: Observation, when: dt.datetime | None) -> list[Waveform]:
    reader = ava.reader()

    def one(r: Reader) -> tuple[int, int, bytes, int]:
        physio_id = r.u16("wave physio id")
        state = r.u16("wave state")
        offset = r.offset + 2
        return physio_id, state, r.take(r.u16("sample array length"), "samples"), offset

    if ava.attribute_id == NOM_ATTR_SA_VAL_OBS:
        arrays = [one(reader)]
    else:
        arrays = _counted(reader, "compound sample array", one)
    reader.expect_end("sample array observed value")

    sample_bits, significant, flags = 16, 16, 0
    spec = _fixed(observation, NOM_ATTR_SA_SPECN, 6, "sample array specification")
    if spec is not None:
        spec.u16("array size")
        sample_bits, significant = spec.u8("sample size"), spec.u8("significant bits")
        flags = spec.u16("sample array flags")
        if sample_bits not in (8, 16):
            raise DecodeError(f"sample size of {sample_bits} bits", spec.offset - 4)
    rate: Decimal | None = None
    period = _fixed(observation, NOM_ATTR_TIME_PD_SAMP, 4, "sample period")
    if period is not None:
        ticks = period.u32("sample period")
        if ticks == 0:
            raise DecodeError("sample period of 0", period.offset - 4)
        rate = Decimal(TICKS_PER_SECOND) / ticks
    scale, offset, unit = Decimal(1), Decimal(0), RAW_UNIT
    calibrated = _scale(observation)
    if calibrated is not None:
        scale, offset = calibrated
        unit_reader = _fixed(observation, NOM_ATTR_UNIT_CODE, 2, "unit code")
        if unit_reader is not None:
            term = mdc.BY_CODE.get(mdc.PART_DIM << 16 | unit_reader.u16("unit code"))
            unit = term.refid if term is not None else RAW_UNIT
            if term is None:  # values in an unknown unit would mislead: keep raw counts
                scale, offset = Decimal(1), Decimal(0)

    waves = []
    width = sample_bits // 8
    for physio_id, state, data, data_offset in arrays:
        if len(data) % width:
            raise DecodeError(
                f"{len(data)} bytes of samples are not whole {sample_bits}-bit samples", data_offset
            )
        metric = mdc.BY_CODE.get(mdc.PART_SCADA << 16 | physio_id)
        if metric is None or state & STATE_NOT_VALID or not data:
            continue
        samples = _samples(data, width, significant, flags)
        wave_rate = rate if rate is not None else Decimal(len(samples)) / RTSA_PERIOD_S
        waves.append(Waveform(metric.refid, float(wave_rate), unit, samples, scale, offset, when))
    return waves


def _samples(data: bytes, width: int, significant: int, flags: int) -> tuple[int, ...]:
    values = [int.from_bytes(data[i : i + width], "big") for i in range(0, len(data), width)]
    bits = width * 8
    if significant == SIGNED_SAMPLES:
        half = 1 << (bits - 1)
        return tuple(v - (1 << bits) if v >= half else v for v in values)
    if flags & SA_EXT_VAL_RANGE and 0 < significant < bits:
        mask = (1 << significant) - 1
        return tuple(v & mask for v in values)
    return tuple(values)


def _scale(observation: Observation) -> tuple[Decimal, Decimal] | None:
    """(scale, offset) with physical = offset + scale x sample, from ScaleRangeSpec16."""
    reader = _fixed(observation, NOM_ATTR_SCALE_SPECN_I16, 12, "scale and range specification")
    if reader is None:
        return None
    lower_abs, _ = decode_float(reader.u32("lower absolute value"))
    upper_abs, _ = decode_float(reader.u32("upper absolute value"))
    lower_scaled = reader.u16("lower scaled value")
    upper_scaled = reader.u16("upper scaled value")
    if lower_abs is None or upper_abs is None or lower_scaled == upper_scaled:
        return None  # the guide's NaN absolutes: a wave with no physical value (pleth)
    scale = (upper_abs - lower_abs) / (upper_scaled - lower_scaled)
    return scale, lower_abs - lower_scaled * scale


# --- alarms ----------------------------------------------------------------------------


def _alarms(ava: Ava) -> list[DeviceAlarm]:
    kind = "PATIENT" if ava.attribute_id == NOM_ATTR_AL_MON_P_AL_LIST else "TECHNICAL"
    reader = ava.reader()
    entries = _counted(reader, "alarm list", _alarm_entry)
    reader.expect_end("alarm list")
    alarms = []
    for source, code, al_type, text in entries:
        if al_type == 0:  # NO_ALERT
            continue
        priority = next((name for bits, name in _PRIORITIES if al_type & bits), "info")
        source_term = mdc.BY_CODE.get(mdc.PART_SCADA << 16 | source)
        source_name = source_term.refid if source_term else f"source 0x{source:04x}"
        alarms.append(
            DeviceAlarm(
                code=f"INTELLIVUE_{kind}_{source:04X}_{code:04X}",
                priority=priority,
                text=text or f"{kind.lower()} alarm 0x{code:04x} on {source_name}",
                physiological=kind == "PATIENT",
            )
        )
    return alarms


def _alarm_entry(reader: Reader) -> tuple[int, int, int, str]:
    source = reader.u16("alarm source")
    code = reader.u16("alarm code")
    al_type = reader.u16("alarm type")
    reader.u16("alarm state")
    for field in ("alarm object class", "alarm object context", "alarm object handle"):
        reader.u16(field)
    info_id = reader.u16("alert info id")
    info = reader.sub(reader.u16("alert info length"), "alert info")
    text = ""
    if info_id in (GEN_ALMON_INFO, STR_ALMON_INFO):
        info.u16("alarm instance")
        info.u32("alarm text id")
        info.u16("alarm priority")
        info.u16("alarm flags")
        if info_id == STR_ALMON_INFO:
            raw = info.take(info.u16("alarm string length"), "alarm string")
            # Unicode, big-endian; monitors pad with NULs and use control characters for
            # layout, which a one-line alarm text drops.
            text = "".join(c for c in raw.decode("utf-16-be", "replace") if c.isprintable())
            text = text.strip()
        info.expect_end("alert info")
    return source, code, al_type, text


class CalibratedDecoder:
    """decode_frame for one monitor, remembering each wave object's context.

    A monitor sends a wave's sample array specification, scale and range, sample period
    and unit with the first poll result and then about once every 1024 ms, while wave
    samples come every 256 ms (Data Export guide, extended poll of RTSA). A pure decode
    of a frame without them can only give raw counts (and cannot mask the bits outside
    the significant ones). This decoder keeps the last context seen per wave object
    (its handle) of its own device and lends it to the frames that lack it. A frame
    before any context stays raw counts (unit MDC_DIM_DIMLESS), as decode_frame gives.
    """

    CONTEXT = (
        NOM_ATTR_SA_SPECN,
        NOM_ATTR_SCALE_SPECN_I16,
        NOM_ATTR_TIME_PD_SAMP,
        NOM_ATTR_UNIT_CODE,
    )

    def __init__(self) -> None:
        self._context: dict[tuple[int, int], dict[int, Ava]] = {}

    def __call__(self, frame: bytes) -> Decoded:
        message = parse_user_data(unframe(frame), HEADER_LEN)
        if not isinstance(message, PollResult):
            return Decoded()
        return decode_poll_result(
            dataclasses.replace(
                message, observations=tuple(self._lend(o) for o in message.observations)
            )
        )

    def _lend(self, observation: Observation) -> Observation:
        ids = {ava.attribute_id for ava in observation.attributes}
        if not ids & {NOM_ATTR_SA_VAL_OBS, NOM_ATTR_SA_CMPD_VAL_OBS}:
            return observation
        key = (observation.context_id, observation.handle)
        known = self._context.setdefault(key, {})
        for ava in observation.attributes:
            if ava.attribute_id in self.CONTEXT:
                known[ava.attribute_id] = ava
        lent = tuple(ava for attribute, ava in known.items() if attribute not in ids)
        if not lent:
            return observation
        return dataclasses.replace(observation, attributes=observation.attributes + lent)
