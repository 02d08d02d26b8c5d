"""BerryMed BM1000 family and OEM fingertip oximeters: the "BCI protocol" over BLE.

Facts from public code (the vendor's protocol sheet is not published): adafruit
`adafruit_ble_berrymed_pulse_oximeter` (MIT), zh2x/BCI_Protocol,
ehborisov/BerryMed-Pulse-Oximeter-tool; docs/protocols/ble-vendor-formats.md: a
transparent-UART service streams 5-byte packets, about 60 a second, and only byte 0 of a
packet has bit 7 set.

| byte | bits |
|---|---|
| 0 | 0x80 sync; 0x40 pulse beep; 0x20 probe unplugged; 0x10 signal; 0x0F signal strength |
| 1 | pleth 0-100 |
| 2 | 0x40 = bit 7 of the pulse rate; 0x20 searching for pulse; 0x10 no finger; 0x0F bar graph |
| 3 | pulse rate bits 0-6 (whole rate 255 = invalid) |
| 4 | SpO2 (127 = invalid) |

The pulse rate is `byte3 | (byte2 & 0x40) << 1` (adafruit's reading): rates of 128/min
and up set the bit in byte 2 because byte 3 must keep bit 7 clear.

Byte 0's 0x10 is read three ways by the public sources ("signal present", "no signal",
"searching too long"); with its polarity in doubt it is not reported. Signal strength and
bar graph drive the device's own display and are not reported either.

Framing: `PacketFramer` (transport.Framer) cuts packets out of the byte stream, resyncing
on the byte with bit 7 set; a BLE notification may carry several packets or part of one.

Decoding, and why it aggregates: one packet carries one pleth sample and the device's
current SpO2 and pulse rate, which it repeats in every packet and updates about once a
beat. A reading per packet would store 120 rows a second of the same two numbers, so a
decoded run of packets (`decode_packets`, and `decode_notification` for one
notification's bytes) gives:
- one Waveform, MDC_PULS_OXIM_PLETH at 60 Hz, with every packet's sample in order;
- one SpO2 and one pulse-rate reading, the last packet's (the device's latest), flagged
  "continuous" so the driver's upload interval thins what goes up; an invalid value
  (SpO2 127, rate 255) is None with the flag "unavailable"; "searching" is added while
  the device searches for a pulse (its numbers are not settled yet);
- device alarms for probe unplugged and no finger (no usable numbers: "medium", like
  Nonin's sensor alarms), each once per run if any packet had it.
A bad packet (a data byte with bit 7 set, SpO2 101-126) rejects the whole run: without a
checksum, a value outside the layout means the bytes are not what we take them for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from device_drivers.declaration import BleService, DecoderFor, Quirk, every_channel
from edge_agent.model import Decoded, DecodeError, DeviceAlarm, Reading, Waveform

SERVICE_UUID = "49535343-fe7d-4ae5-8fa9-9fafd205e455"
NOTIFY_UUID = "49535343-1e4d-4bd9-ba61-23c647249616"
WRITE_UUID = "49535343-8841-43f4-a8d4-ecbe34729bb3"
CHARACTERISTICS = (NOTIFY_UUID,)

PACKET_LEN = 5
PLETH_RATE_HZ = 60.0  # ~60 packets/s, one sample each (the BCI sources above)

# Byte 0.
SYNC = 0x80
PULSE_BEEP = 0x40
PROBE_UNPLUGGED = 0x20
SIGNAL = 0x10  # meaning disputed between the sources: not reported
SIGNAL_STRENGTH = 0x0F
# Byte 2.
PULSE_RATE_BIT7 = 0x40
SEARCHING = 0x20
NO_FINGER = 0x10
BAR_GRAPH = 0x0F

PULSE_RATE_INVALID = 255
SPO2_INVALID = 127
SPO2_MAX = 100
PLETH_MAX = 0x7F  # 7 bits; the BCI sources give 0-100 as the range used

SPO2 = "MDC_PULS_OXIM_SAT_O2"
PULSE_RATE = "MDC_PULS_OXIM_PULS_RATE"
PLETH = "MDC_PULS_OXIM_PLETH"
PERCENT = "MDC_DIM_PERCENT"
BPM = "MDC_DIM_BEAT_PER_MIN"
DIMLESS = "MDC_DIM_DIMLESS"

CONTINUOUS_FLAG = "continuous"
UNAVAILABLE_FLAG = "unavailable"
SEARCHING_FLAG = "searching"

ALARM_PROBE_UNPLUGGED = DeviceAlarm("BERRYMED_PROBE_UNPLUGGED", "medium", "probe unplugged")
ALARM_NO_FINGER = DeviceAlarm("BERRYMED_NO_FINGER", "medium", "no finger in the probe")


# --- framing ---------------------------------------------------------------------------


class PacketFramer:
    """Whole 5-byte packets out of the notification byte stream (transport.Framer).

    A packet is a byte with bit 7 set followed by four with bit 7 clear. Bytes before a
    sync byte are dropped; a sync byte inside what would be a packet means bytes were
    lost, so the short packet is dropped and the new one starts there. At most 4 bytes (a
    partial packet) are held between calls, and a decision waits until the bytes it needs
    have arrived, so the output does not depend on how the stream is split. `discarded`
    counts the dropped bytes. Never raises.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.discarded = 0

    @property
    def pending(self) -> int:
        """Bytes held for the next call (a partial packet)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf.extend(data)
        packets: list[bytes] = []
        start = 0
        while start < len(buf):
            if not buf[start] & SYNC:
                start += 1
                self.discarded += 1
                continue
            end = min(start + PACKET_LEN, len(buf))
            cut = next((i for i in range(start + 1, end) if buf[i] & SYNC), None)
            if cut is not None:
                self.discarded += cut - start
                start = cut
            elif end - start == PACKET_LEN:
                packets.append(bytes(buf[start:end]))
                start = end
            else:
                break  # a partial packet: wait for the rest
        del buf[:start]
        return packets


def _split(data: bytes) -> list[tuple[int, bytes]]:
    """One notification's whole packets with their offsets (see decode_notification)."""
    first = next((i for i, byte in enumerate(data) if byte & SYNC), len(data))
    if first >= PACKET_LEN:
        raise DecodeError(f"{first} bytes without a packet start (a byte with bit 7 set)", 0)
    packets: list[tuple[int, bytes]] = []
    at = first
    while at < len(data):
        end = min(at + PACKET_LEN, len(data))
        for i in range(at + 1, end):
            if data[i] & SYNC:
                raise DecodeError(f"packet at byte {at} cut short by a packet start at byte {i}", i)
        if end - at < PACKET_LEN:
            break  # the head of a packet whose tail comes in the next notification
        packets.append((at, data[at:end]))
        at = end
    return packets


# --- decoding --------------------------------------------------------------------------


def _check(packet: bytes, at: int) -> None:
    if len(packet) != PACKET_LEN:
        raise DecodeError(
            f"packet is {len(packet)} bytes, not {PACKET_LEN}", at + min(len(packet), PACKET_LEN)
        )
    if not packet[0] & SYNC:
        raise DecodeError(f"first byte 0x{packet[0]:02x} has bit 7 clear (not a packet start)", at)
    for i in range(1, PACKET_LEN):
        if packet[i] & SYNC:
            raise DecodeError(
                f"data byte 0x{packet[i]:02x} has bit 7 set (a packet start: packet cut short?)",
                at + i,
            )
    spo2 = packet[4]
    if spo2 > SPO2_MAX and spo2 != SPO2_INVALID:
        raise DecodeError(f"SpO2 {spo2} outside 0..100 (127 = no value)", at + 4)


def pulse_rate(packet: bytes) -> int:
    """The 8-bit pulse rate: bits 0-6 in byte 3, bit 7 in byte 2 (0x40)."""
    return packet[3] | (packet[2] & PULSE_RATE_BIT7) << 1


def _decode(packets: Sequence[tuple[int, bytes]]) -> Decoded:
    for at, packet in packets:
        _check(packet, at)
    if not packets:
        return Decoded()
    samples = tuple(packet[1] for _, packet in packets)
    last = packets[-1][1]
    lead = (CONTINUOUS_FLAG, SEARCHING_FLAG) if last[2] & SEARCHING else (CONTINUOUS_FLAG,)
    rate, spo2 = pulse_rate(last), last[4]
    readings = (
        Reading(SPO2, None, PERCENT, flags=(*lead, UNAVAILABLE_FLAG))
        if spo2 == SPO2_INVALID
        else Reading(SPO2, Decimal(spo2), PERCENT, flags=lead),
        Reading(PULSE_RATE, None, BPM, flags=(*lead, UNAVAILABLE_FLAG))
        if rate == PULSE_RATE_INVALID
        else Reading(PULSE_RATE, Decimal(rate), BPM, flags=lead),
    )
    alarms: list[DeviceAlarm] = []
    if any(packet[0] & PROBE_UNPLUGGED for _, packet in packets):
        alarms.append(ALARM_PROBE_UNPLUGGED)
    if any(packet[2] & NO_FINGER for _, packet in packets):
        alarms.append(ALARM_NO_FINGER)
    pleth = Waveform(PLETH, PLETH_RATE_HZ, DIMLESS, samples)
    return Decoded(readings=readings, waveforms=(pleth,), alarms=tuple(alarms))


def decode_packets(packets: Sequence[bytes]) -> Decoded:
    """A run of packets (as PacketFramer cut them) -> one pleth waveform, the latest SpO2
    and pulse rate, and the run's alarms. Error offsets count in the joined packets."""
    offsets: list[tuple[int, bytes]] = []
    at = 0
    for packet in packets:
        offsets.append((at, packet))
        at += len(packet)
    return _decode(offsets)


def decode_packet(packet: bytes) -> Decoded:
    """One 5-byte packet -> SpO2, pulse rate, one pleth sample, alarms."""
    return _decode([(0, packet)])


def decode_notification(data: bytes) -> Decoded:
    """One notification's bytes -> as `decode_packets`, framing them itself.

    Stateless, so a packet split across notifications cannot be rebuilt: up to 4 bytes
    before the first packet start (the tail of the previous notification's packet) and a
    packet head at the end are skipped. BLE delivers a notification whole and checked,
    so anything else that does not frame (5 or more bytes before a packet start, a packet
    start inside a packet) means the bytes are not this protocol: DecodeError. A
    notification with no whole packet decodes to nothing. For lossless reassembly run
    `PacketFramer` on the stream instead and decode its packets.
    """
    return _decode(_split(data))


def _unexpected(channel: str) -> Callable[[bytes], Decoded]:
    def reject(data: bytes) -> Decoded:
        raise DecodeError(f"characteristic {channel} is not the BerryMed data characteristic")

    return reject


def decoder_for(channel: str | None) -> Callable[[bytes], Decoded]:
    """No channel or the notify characteristic -> decode_notification; else a rejecter."""
    if channel is None or channel.strip().lower() == NOTIFY_UUID:
        return decode_notification
    return _unexpected(channel)


# --- encoding (simulators and tests) ---------------------------------------------------


def encode_packet(
    spo2: int | None,
    rate: int | None,
    pleth: int,
    *,
    signal_strength: int = 0,
    signal: bool = False,
    probe_unplugged: bool = False,
    beep: bool = False,
    bar_graph: int = 0,
    no_finger: bool = False,
    searching: bool = False,
) -> bytes:
    """One packet. SpO2 None -> 127, pulse rate None -> 255 (the invalid values)."""
    spo2_value = SPO2_INVALID if spo2 is None else spo2
    rate_value = PULSE_RATE_INVALID if rate is None else rate
    if not (0 <= spo2_value <= SPO2_MAX or spo2_value == SPO2_INVALID):
        raise ValueError(f"SpO2 {spo2} outside 0..100")
    if not 0 <= rate_value <= PULSE_RATE_INVALID:
        raise ValueError(f"pulse rate {rate} does not fit 8 bits")
    if not 0 <= pleth <= PLETH_MAX:
        raise ValueError(f"pleth {pleth} does not fit 7 bits")
    for name, value in (("signal strength", signal_strength), ("bar graph", bar_graph)):
        if not 0 <= value <= 0x0F:
            raise ValueError(f"{name} {value} does not fit 4 bits")
    head = SYNC | signal_strength
    for on, bit in ((signal, SIGNAL), (probe_unplugged, PROBE_UNPLUGGED), (beep, PULSE_BEEP)):
        if on:
            head |= bit
    status = bar_graph | (PULSE_RATE_BIT7 if rate_value & 0x80 else 0)
    for on, bit in ((no_finger, NO_FINGER), (searching, SEARCHING)):
        if on:
            status |= bit
    return bytes((head, pleth, status, rate_value & 0x7F, spo2_value))


def _decoders() -> DecoderFor:
    """Per device: packets split across notifications are joined by its own framer."""
    framer = PacketFramer()

    def decode(data: bytes) -> Decoded:
        return decode_packets(framer.feed(data))

    return every_channel(decode)


# A quirk of `ble-plx-cont` (pulse_oximeter.DECLARATIONS): config model = "berrymed".
QUIRK = Quirk(
    "BerryMed BM1000 and OEM fingertip oximeters: BCI 5-byte packets, ~60/s",
    CHARACTERISTICS,
    _decoders,
    service=BleService(SERVICE_UUID, "BerryMed oximeter (BCI)"),
)
