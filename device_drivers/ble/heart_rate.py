"""Bluetooth SIG Heart Rate service 0x180D: Heart Rate Measurement 0x2A37.

Layout (Bluetooth SIG Heart Rate Service; GSS "Heart Rate Measurement";
docs/protocols/ble-health-profiles.md): flags, heart rate (uint8, or uint16 when flag bit 0 is set),
then energy expended (bit 3, uint16 kJ) and RR intervals (bit 4: every remaining whole
uint16, each in 1/1024 s; at least one when the bit is set). Flag bits 1-2 are the sensor
contact status. Bits 5-7 are reserved and must be 0 (as in every SIG health characteristic): such a
frame is rejected. Bytes the flags do not account for are ignored; with RR intervals present that
can only be one odd trailing byte, which Nordic's parser ignores too.

Readings:
- the heart rate as MDC_ECG_HEART_RATE in beats/min. HRS sensors are mostly chest straps
  measuring R waves through skin electrodes (hence "sensor contact" and RR intervals); an
  optical band reports the same characteristic, and the profile does not say which it is
  (Body Sensor Location 0x2A38 is a separate read), so one term for all, the one
  IHE PCD example messages use (147842, docs/protocols/mdc-nomenclature.md).
- each RR interval as its own MDC_ECG_TIME_PD_RR_GL reading in ms, in frame order. A term
  exists (edge_agent.mdc, 147240), so the intervals stay queryable data, not flag text.
  1/1024 s = 125/128 ms, so ms = ticks × 125 / 128 is exact in Decimal (at most 7
  decimals) and `encode_measurement` can invert it.
- energy expended as the flag "energy-expended-kJ:<n>" on the heart rate reading: its
  11073 term (MDC_HF_ENERGY) lives in the health-and-fitness partition 129, which
  edge_agent.mdc does not carry, and it is a fitness figure, not a clinical one.
- sensor contact "supported, no contact" (status 2) flags every reading
  "no-sensor-contact": the value is the sensor's guess without skin contact. Status 0/1
  (not supported) and 3 (contact) add nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from device_drivers.ble.gatt import Decoder, by_characteristic, uuid16
from device_drivers.ble.measurement_frame import Fields, flags_byte
from device_drivers.declaration import (
    Binding,
    BlePeripheral,
    BleService,
    Driver,
    Results,
    Uplink,
    Yields,
)
from device_drivers.transport import WholeFrames
from edge_agent.model import Decoded, DecodeError, Reading

MEASUREMENT_UUID = "00002a37-0000-1000-8000-00805f9b34fb"
CHARACTERISTICS = (MEASUREMENT_UUID,)

FLAG_UINT16 = 0x01
FLAGS_CONTACT = 0x06
FLAG_ENERGY = 0x08
FLAG_RR = 0x10
FLAGS_RESERVED = 0xE0

CONTACT_NOT_SUPPORTED = 0
CONTACT_NOT_SUPPORTED_ALT = 1  # the spec gives "not supported" two codes
CONTACT_NOT_DETECTED = 2
CONTACT_DETECTED = 3

HEART_RATE = "MDC_ECG_HEART_RATE"
RR_INTERVAL = "MDC_ECG_TIME_PD_RR_GL"
BPM = "MDC_DIM_BEAT_PER_MIN"
MS = "MDC_DIM_MILLI_SEC"
NO_CONTACT_FLAG = "no-sensor-contact"
ENERGY_FLAG = "energy-expended-kJ"


@dataclass(frozen=True, slots=True)
class HeartRateMeasurement:
    """The fields of one 0x2A37 frame, in wire units."""

    rate: int  # beats/min
    contact: int  # the 2-bit sensor contact status, CONTACT_*
    energy_kj: int | None
    rr_ticks: tuple[int, ...]  # RR intervals in 1/1024 s


def rr_ms(ticks: int) -> Decimal:
    """An RR interval in 1/1024 s -> ms, exact: 1024 ticks -> 1000, 1 tick -> 0.9765625.

    Decimal division of exact operands keeps the shortest exact form, so whole ms carry
    no trailing zeros into OBX-5.
    """
    return Decimal(ticks * 125) / 128


def parse_measurement(data: bytes) -> HeartRateMeasurement:
    """One 0x2A37 frame -> its fields; DecodeError names the bad byte."""
    flags = flags_byte(data, FLAGS_RESERVED, "vendor-prefixed or not a 0x2A37 frame")
    fields = Fields(data, 1)
    rate = fields.uint(2 if flags & FLAG_UINT16 else 1, "heart rate")
    energy = fields.uint(2, "energy expended") if flags & FLAG_ENERGY else None
    offset = fields.offset
    rr: tuple[int, ...] = ()
    if flags & FLAG_RR:
        if offset + 2 > len(data):
            raise DecodeError(
                "truncated: RR interval flag set, but no whole RR interval follows"
                f" ({len(data) - offset} bytes)",
                offset,
            )
        end = offset + (len(data) - offset) // 2 * 2
        rr = tuple(int.from_bytes(data[i : i + 2], "little") for i in range(offset, end, 2))
    return HeartRateMeasurement(
        rate=rate, contact=(flags & FLAGS_CONTACT) >> 1, energy_kj=energy, rr_ticks=rr
    )


def decode_measurement(data: bytes) -> Decoded:
    """A Heart Rate Measurement (0x2A37) frame -> heart rate, then one reading per RR."""
    parsed = parse_measurement(data)
    common = (NO_CONTACT_FLAG,) if parsed.contact == CONTACT_NOT_DETECTED else ()
    rate_flags = common
    if parsed.energy_kj is not None:
        rate_flags = (*common, f"{ENERGY_FLAG}:{parsed.energy_kj}")
    # No time stamp in 0x2A37: it is live data, the receive time is its time.
    readings = [Reading(HEART_RATE, Decimal(parsed.rate), BPM, None, rate_flags)]
    readings.extend(Reading(RR_INTERVAL, rr_ms(t), MS, None, common) for t in parsed.rr_ticks)
    return Decoded(readings=tuple(readings))


def encode_measurement(
    rate: int,
    *,
    uint16: bool = False,
    contact: int = CONTACT_NOT_SUPPORTED,
    energy_kj: int | None = None,
    rr_ticks: Sequence[int] = (),
) -> bytes:
    """A 0x2A37 frame, for simulators and tests.

    A rate above 255 is sent as uint16 whatever `uint16` says. `contact` is the 2-bit
    sensor contact status; `rr_ticks` are RR intervals in 1/1024 s.
    """
    if not 0 <= contact <= 3:
        raise ValueError(f"sensor contact status {contact} is not 2 bits")
    wide = uint16 or rate > 0xFF
    flags = (FLAG_UINT16 if wide else 0) | (contact << 1)
    body = rate.to_bytes(2 if wide else 1, "little")
    if energy_kj is not None:
        flags |= FLAG_ENERGY
        body += energy_kj.to_bytes(2, "little")
    if rr_ticks:
        flags |= FLAG_RR
        body += b"".join(t.to_bytes(2, "little") for t in rr_ticks)
    return bytes([flags]) + body


def decoder_for(channel: str | None) -> Decoder:
    """The decoder for a notification's characteristic (the frame's channel).

    No channel means a measurement (captures, the decode CLI). Any other characteristic
    (Body Sensor Location 0x2A38 is read, the control point 0x2A39 written) gets a decoder
    that rejects every frame, so its bytes are quarantined with the reason.
    """
    return by_characteristic(channel, {"2a37": decode_measurement}, "Heart Rate", default="2a37")


DECLARATIONS = (
    Driver(
        id="ble-hr",
        summary="Bluetooth SIG Heart Rate 0x180D: 0x2A37 (rate, contact, energy, RR intervals)",
        source=BlePeripheral(BleService(uuid16(0x180D), "heart rate"), CHARACTERISTICS),
        framer=WholeFrames,
        decoder_for=decoder_for,
        yields=Yields(numerics=True),
        # The generic multi-parameter profile: edge_agent.mdc has no term for a
        # heart-rate specialisation (IEEE 11073-10406's basic ECG would be a candidate).
        profile="MDC_DEV_SPEC_PROFILE_HYDRA",
        binding=Binding.PERSONAL,
        results=Results.STORED,
        # A strap notifies once a second or faster; one a second goes up.
        uplink=Uplink(every_s=1.0),
    ),
)
