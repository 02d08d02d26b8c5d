"""A simulated bedside monitor that pushes HL7 ORU^R01 over MLLP/TCP.

The protocol: docs/protocols/hl7-mllp-monitors.md.

It behaves like the monitors the `hl7-mllp` driver serves: it connects to the box, sends
one PCD-01-style ORU^R01 (IHE PCD TF-2: OBX-3 `code^refid^MDC`, OBX-6 MDC units, OBX-14
time with the monitor's UTC offset) per period with HR, SpO2, pulse rate, NIBP, resp
rate and temperature, and waits for the ACK. No ACK within `resend_after_s`: it sends the
same message again, same MSH-10, as real senders do (so the box must deduplicate). A
dropped connection is reopened and the unacknowledged message sent again. Everything it
sent and every ACK code it got is kept in a `MonitorLog` for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from device_drivers.network.mllp import MllpFramer, frame_message
from device_drivers.simulators.station_clock import DEFAULT_ZONE, station_now
from device_drivers.simulators.vital_walk import VitalWalk
from edge_agent.mdc import term
from sync.hl7 import er7
from sync.hl7.ack import parse_ack
from sync.hl7.errors import Hl7Error
from sync.hl7.timestamps import format_dtm

SENDING_APP = "EDGE_SIM_MONITOR"


@dataclass
class MonitorLog:
    """What the simulated monitor did, for tests and the demo."""

    sent: list[str] = field(default_factory=list)  # MSH-10 of every send, resends included
    messages: dict[str, str] = field(default_factory=dict)  # MSH-10 -> the message (ER7)
    acks: list[tuple[str, str]] = field(default_factory=list)  # (MSA-2, MSA-1) accepted
    stray_acks: int = 0  # ACKs for an earlier send, or that did not parse
    connections: int = 0

    def codes(self) -> list[str]:
        return [code for _, code in self.acks]


def _obx(set_id: int, refid: str, where: str, value: str, unit: str, when: str) -> str:
    return f"OBX|{set_id}|NM|{term(refid).coded}|{where}|{value}|{term(unit).coded}|||||R|||{when}"


def messages(
    seed: int = 0,
    *,
    eui64: str | None = None,
    clock: dt.datetime | None = None,
    tz: str = DEFAULT_ZONE,
) -> Iterator[tuple[str, str]]:
    """Endless (MSH-10, ORU^R01 in ER7) pairs, one monitor period apart.

    `clock` (aware) is the monitor's clock for the first message; by default the
    station's local time now in `tz` (with that zone's offset, as the monitor sends it),
    each later message stamped with the time it is generated.
    """
    rng = random.Random(seed)
    device = eui64 or f"{rng.getrandbits(64):016X}"
    # A patient at rest: value, low, high, largest step per message.
    hr = VitalWalk.resting(78, 45, 150, 1.5)  # /min
    spo2 = VitalWalk.resting(97, 86, 100, 0.5)  # %
    sys_bp = VitalWalk.resting(124, 85, 190, 2.0)  # mmHg
    resp = VitalWalk.resting(16, 8, 32, 0.6)  # /min
    temp = VitalWalk.resting(36.8, 35.5, 39.5, 0.03)  # °C
    number = 0
    step = dt.timedelta(seconds=1)
    fixed = clock
    while True:
        number += 1
        now = fixed + step * (number - 1) if fixed is not None else station_now(tz)
        when = format_dtm(now.replace(microsecond=0))
        control = f"SIM{seed:04d}{number:08d}"
        # In this order: the order a seed's messages draw in.
        hr, sys_bp, spo2 = hr.stepped(rng), sys_bp.stepped(rng), spo2.stepped(rng)
        heart, systolic = round(hr.value), round(sys_bp.value)
        pulse_rate = heart + rng.choice((-1, 0, 0, 1))
        resp, temp = resp.stepped(rng), temp.stepped(rng)
        diastolic = round(systolic * 0.62)
        mean = round(diastolic + (systolic - diastolic) / 3)
        app = er7.join([SENDING_APP, device, "EUI-64"], "^")
        segments = [
            f"MSH|^~\\&|{app}||EDGE_AGENT||{when}||ORU^R01^ORU_R01|{control}|P|2.6|||NE|AL"
            "||UNICODE UTF-8",
            "PID|||SIM-0001^^^SIM^MR||SIMULATED^PATIENT",
            "PV1||E",
            f"OBR|1|{control}^{SENDING_APP}|{control}^{SENDING_APP}"
            f"|182777000^monitoring of patient^SCT|||{when}",
            _obx(1, "MDC_ECG_HEART_RATE", "1.1.1.1", str(heart), "MDC_DIM_BEAT_PER_MIN", when),
            _obx(
                2,
                "MDC_PULS_OXIM_SAT_O2",
                "1.2.1.1",
                str(round(spo2.value)),
                "MDC_DIM_PERCENT",
                when,
            ),
            _obx(
                3,
                "MDC_PULS_OXIM_PULS_RATE",
                "1.2.1.2",
                str(pulse_rate),
                "MDC_DIM_BEAT_PER_MIN",
                when,
            ),
            _obx(4, "MDC_PRESS_BLD_NONINV_SYS", "1.3.1.1", str(systolic), "MDC_DIM_MMHG", when),
            _obx(5, "MDC_PRESS_BLD_NONINV_DIA", "1.3.1.2", str(diastolic), "MDC_DIM_MMHG", when),
            _obx(6, "MDC_PRESS_BLD_NONINV_MEAN", "1.3.1.3", str(mean), "MDC_DIM_MMHG", when),
            _obx(
                7, "MDC_RESP_RATE", "1.4.1.1", str(round(resp.value)), "MDC_DIM_RESP_PER_MIN", when
            ),
            _obx(8, "MDC_TEMP_BODY", "1.5.1.1", f"{temp.value:.1f}", "MDC_DIM_DEGC", when),
        ]
        yield control, "\r".join(segments) + "\r"


async def run(
    host: str,
    port: int,
    *,
    seed: int = 0,
    rate_hz: float = 1.0,
    stop: asyncio.Event | None = None,
    resend_after_s: float = 2.0,
    count: int | None = None,
    log: MonitorLog | None = None,
    eui64: str | None = None,
    tz: str = DEFAULT_ZONE,
) -> MonitorLog:
    """Push messages to host:port until `stop` is set (or `count` were acknowledged);
    the monitor's clock shows the station's local time in `tz`, with its offset."""
    stop = stop or asyncio.Event()
    log = log if log is not None else MonitorLog()
    source = messages(seed, eui64=eui64, tz=tz)
    pending: tuple[str, str] | None = None
    period = 1.0 / rate_hz
    while not stop.is_set() and (count is None or len(log.acks) < count):
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), max(resend_after_s, 0.1)
            )
        except (OSError, TimeoutError):
            await _sleep(stop, min(resend_after_s, 1.0))
            continue
        log.connections += 1
        framer = MllpFramer()
        try:
            while not stop.is_set() and (count is None or len(log.acks) < count):
                if pending is None:
                    pending = next(source)
                    log.messages[pending[0]] = pending[1]
                control, message = pending
                writer.write(frame_message(message))
                await writer.drain()
                log.sent.append(control)
                code = await _ack(reader, framer, control, resend_after_s, stop, log)
                if code is None:
                    continue  # no ACK in time: the same message again, same MSH-10
                log.acks.append((control, code))
                pending = None
                await _sleep(stop, period)
        except (ConnectionError, OSError, EOFError):
            pass  # the box went away: reconnect and send the pending message again
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
        if not stop.is_set() and (count is None or len(log.acks) < count):
            await _sleep(stop, min(resend_after_s, 0.2))
    return log


async def _ack(
    reader: asyncio.StreamReader,
    framer: MllpFramer,
    control: str,
    wait_s: float,
    stop: asyncio.Event,
    log: MonitorLog,
) -> str | None:
    """MSA-1 of the ACK for `control`, None when none came within `wait_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while not stop.is_set():
        left = deadline - loop.time()
        if left <= 0:
            return None
        try:
            data = await asyncio.wait_for(reader.read(65536), left)
        except TimeoutError:
            return None
        if not data:
            raise EOFError("connection closed by the box")
        for block in framer.feed(data):
            try:
                ack = parse_ack(block.decode("utf-8", "replace"))
            except Hl7Error:
                log.stray_acks += 1
                continue
            if ack.acked == control:
                return ack.code
            log.stray_acks += 1  # the late ACK of an earlier send of another message
    return None


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(seconds, 0.0))
