"""A simulated Philips IntelliVue monitor answering Data Export on a pseudo-terminal.

The agent opens the pty's slave end as it would the MIB/RS-232 port of an MP/MX monitor
(same SerialTransport, FrameReader, conversation and decoder), so the demo and the
end-to-end tests run the real path. No capture of a real monitor is published (VSCaptureMP
issue #6), so this plays the monitor's side as the Data Export Interface Programming Guide
describes it (docs/protocols/intellivue.md), built with the driver's own message builders:

- association request -> association response granting what it supports (1 s numerics,
  real-time waves), then the MDS Create event report, repeated every `mds_retry_s` until
  answered and, after three tries, an abort;
- single polls of numerics (HR, SpO2, pleth pulse rate, NIBP sys/dia/mean, resp rate,
  temperature, etCO2, airway resp rate of a resting adult), the alert monitor (a SpO2 low
  alarm while the saturation dips below 90 %) and the MDS (its clock);
- extended polls with a polling period: a linked result every 256 ms for waves (ECG II at
  500/s, pleth at 125/s, each with its static context) or every second otherwise, until
  the period runs out (RORLS LAST, then an empty RORS);
- release request -> release response; no message from the client for `timeout_s`
  (the guide's 10 s association timeout) -> abort.
`Monitor` holds that logic without I/O (tests drive it with their own clock); `run` puts
it on a pty master with the event loop's reader and a writer that never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import math
import os
import random
from dataclasses import dataclass
from decimal import Decimal

from device_drivers.serial.intellivue import messages as msg
from device_drivers.serial.intellivue.framing import FrameReader, encode_frame, unframe
from device_drivers.serial.intellivue.parse import parse_user_data
from device_drivers.serial.intellivue.types import encode_absolute_time, encode_list, ticks
from device_drivers.serial.port import NonBlockingWriter
from device_drivers.simulators.pty import open_pty, read_agent
from device_drivers.simulators.station_clock import DEFAULT_ZONE, device_wall_clock
from device_drivers.simulators.vital_walk import VitalWalk
from edge_agent.model import DecodeError

__all__ = ["Monitor", "open_pty", "run"]

# Physio ids and unit codes (guide "Physiological Identifiers", "Units of Measurement").
HR, SPO2, PLETH_PR = 0x4182, 0x4BB8, 0x4822
NIBP_SYS, NIBP_DIA, NIBP_MEAN = 0x4A05, 0x4A06, 0x4A07
RESP_RATE, TEMP, ETCO2, AWAY_RR = 0x500A, 0x4B48, 0x509C, 0x5012
ECG_II, PLETH = 0x0102, 0x4BB4
BPM, PERCENT, MMHG, RPM, DEGC, MV, DIMLESS = 0x0AA0, 0x0220, 0x0F20, 0x0AE0, 0x17A0, 0x10B2, 0x0200
SPO2_LOW_CODE = 0x301A  # the alarm's event code, as the monitor's table would give it
HI_PRI_P_AL = 0x0400
SA_EXT_VAL_RANGE = 0x1000
SUPPORTED_OPTIONS = msg.POLL_EXT_PERIOD_NU_1SEC | msg.POLL_EXT_PERIOD_RTSA | msg.POLL_EXT_ENUM
WAVE_RESULT_S = 0.256  # real-time waves: one result per 256 ms
ECG_ZERO = 8192  # 14-bit samples, 0.005 mV each: 8192 is 0 mV


@dataclass
class _Subscription:
    """An extended poll with a period: results go out every `every` s until `until`."""

    invoke_id: int
    poll_number: int
    obj_class: int
    attr_group: int
    every: float
    until: float
    next_at: float
    sequence_no: int = 0
    count: int = 0


class Monitor:
    """The monitor's side of Data Export: user data in, user data out, no I/O."""

    def __init__(
        self,
        seed: int = 0,
        *,
        timeout_s: float = 10.0,
        mds_retry_s: float = 3.0,
        start: dt.datetime | None = None,
        tz: str = DEFAULT_ZONE,
    ) -> None:
        self._rng = random.Random(seed)
        self._timeout = timeout_s
        self._mds_retry = mds_retry_s
        self._clock = (start or device_wall_clock(tz)).replace(microsecond=0)
        self._t0: float | None = None
        self.state = "idle"  # "idle" | "associated" (MDS Create unanswered) | "ready"
        self.aborts = 0
        self.releases = 0  # release requests answered (the agent said goodbye)
        self._last_rx = 0.0
        self._mds_sent_at = 0.0
        self._mds_tries = 0
        self._invoke_id = 0
        self._subscriptions: list[_Subscription] = []
        # The resting patient: value, low, high, largest step per numerics poll.
        self._hr = VitalWalk.resting(72, 50, 120, 1.0)  # /min
        self._spo2 = VitalWalk.resting(97, 85, 100, 0.5)  # %
        self._rr = VitalWalk.resting(14, 8, 25, 0.5)  # /min
        self._temp = VitalWalk.resting(36.8, 35.5, 38.5, 0.02)  # °C
        self._etco2 = VitalWalk.resting(38, 30, 46, 0.5)  # mmHg
        self._nibp = (Decimal(118), Decimal(76), Decimal(90))
        self._phase = 0.0  # cardiac cycle phase of the next wave sample, in beats
        self._last_numerics: dict[int, Decimal] = {}

    # --- clocks -------------------------------------------------------------------------

    def _rel(self, now: float) -> int:
        return ticks(now - (self._t0 or now))

    def _abs(self, now: float) -> dt.datetime:
        return self._clock + dt.timedelta(seconds=round(now - (self._t0 or now), 2))

    # --- requests -----------------------------------------------------------------------

    def received(self, user_data: bytes, now: float) -> list[bytes]:
        if self._t0 is None:
            self._t0 = now
        try:
            message = parse_user_data(user_data)
        except DecodeError:
            return []  # a monitor ignores what it cannot parse
        self._last_rx = now
        if isinstance(message, msg.SessionMessage):
            return self._session(message, now)
        if self.state == "idle":
            return []
        if isinstance(message, msg.EventReportResult):
            if message.event_type == msg.NOM_NOTI_MDS_CREAT:
                self.state = "ready"
            return []
        if isinstance(message, msg.PollRequest):
            return self._poll(message, now)
        if isinstance(message, msg.OtherOperation) and message.ro_type == msg.ROIV_APDU:
            return [msg.remote_error(message.invoke_id, 0)]  # NO_SUCH_OBJECT_CLASS
        return []

    def _session(self, message: msg.SessionMessage, now: float) -> list[bytes]:
        if message.spdu == msg.CN_SPDU:
            wanted = message.poll_profile.ext_options if message.poll_profile else 0
            granted = (wanted or 0) & SUPPORTED_OPTIONS
            self.state = "associated"
            self._subscriptions.clear()
            self._mds_tries = 1
            self._mds_sent_at = now
            return [msg.association_response(granted), self._mds_create(now)]
        if message.spdu == msg.FN_SPDU:
            self.releases += 1
            self._end()
            return [msg.release_response()]
        if message.spdu == msg.AB_SPDU:
            self._end()
        return []

    def _end(self) -> None:
        self.state = "idle"
        self._subscriptions.clear()

    def _next_invoke(self) -> int:
        self._invoke_id = (self._invoke_id + 1) & 0xFFFF
        return self._invoke_id

    def _mds_create(self, now: float) -> bytes:
        attributes = [
            (msg.NOM_ATTR_TIME_ABS, encode_absolute_time(self._abs(now))),
            (msg.NOM_ATTR_TIME_REL, self._rel(now).to_bytes(4, "big")),
            (msg.NOM_ATTR_MODE_OP, (0x0080).to_bytes(2, "big")),  # monitoring, not demo
        ]
        return msg.mds_create_event(self._next_invoke(), self._rel(now), attributes)

    def _poll(self, request: msg.PollRequest, now: float) -> list[bytes]:
        if not request.extended or request.period is None:
            return [
                self._result(
                    request.invoke_id,
                    request.poll_number,
                    request.obj_class,
                    request.attr_group,
                    now,
                    request.extended,
                )
            ]
        every = WAVE_RESULT_S if request.obj_class == msg.NOM_MOC_VMO_METRIC_SA_RT else 1.0
        # A new extended poll of the same class replaces the running one.
        self._subscriptions = [s for s in self._subscriptions if s.obj_class != request.obj_class]
        sub = _Subscription(
            request.invoke_id,
            request.poll_number,
            request.obj_class,
            request.attr_group,
            every,
            until=now + request.period / 8000,
            next_at=now,
        )
        self._subscriptions.append(sub)
        return self._publish(sub, now)

    # --- time passing -------------------------------------------------------------------

    def tick(self, now: float) -> list[bytes]:
        if self.state == "idle":
            return []
        if now - self._last_rx >= self._timeout:
            # The guide's association timeout: the client fell silent.
            self._end()
            self.aborts += 1
            return [msg.abort()]
        out: list[bytes] = []
        if self.state == "associated" and now - self._mds_sent_at >= self._mds_retry:
            if self._mds_tries >= 3:
                self._end()
                self.aborts += 1
                return [msg.abort()]
            self._mds_tries += 1
            self._mds_sent_at = now
            out.append(self._mds_create(now))
        for sub in list(self._subscriptions):
            out += self._publish(sub, now)
        return out

    def _publish(self, sub: _Subscription, now: float) -> list[bytes]:
        out: list[bytes] = []
        while sub.next_at <= now and sub.next_at < sub.until:
            sub.count += 1
            state = msg.RORLS_FIRST if sub.sequence_no == 0 else msg.RORLS_NOT_FIRST_NOT_LAST
            out.append(
                self._result(
                    sub.invoke_id,
                    sub.poll_number,
                    sub.obj_class,
                    sub.attr_group,
                    sub.next_at,
                    extended=True,
                    sequence_no=sub.sequence_no,
                    linked=(state, sub.count & 0xFF),
                )
            )
            sub.sequence_no = (sub.sequence_no + 1) & 0xFFFF
            sub.next_at += sub.every
        if sub.next_at >= sub.until and now >= sub.until:
            # The period is over: the last linked result, then the closing result.
            self._subscriptions.remove(sub)
            last = (msg.RORLS_LAST, (sub.count + 1) & 0xFF)
            out += [self._empty_result(sub, now, last), self._empty_result(sub, now, None)]
        return out

    def _empty_result(
        self, sub: _Subscription, now: float, linked: tuple[int, int] | None
    ) -> bytes:
        """A result with no objects: the last linked one, or (`linked` None) the closing one."""
        return msg.poll_result(
            sub.invoke_id,
            sub.poll_number,
            sub.obj_class,
            [],
            extended=True,
            sequence_no=sub.sequence_no,
            linked=linked,
            rel_time=self._rel(now),
            attr_group=sub.attr_group,
        )

    def _result(
        self,
        invoke_id: int,
        poll_number: int,
        obj_class: int,
        attr_group: int,
        now: float,
        extended: bool,
        sequence_no: int = 0,
        linked: tuple[int, int] | None = None,
    ) -> bytes:
        if obj_class == msg.NOM_MOC_VMO_METRIC_NU:
            objects = self._numerics()
        elif obj_class == msg.NOM_MOC_VMO_METRIC_SA_RT:
            objects = self._waves()
        elif obj_class == msg.NOM_MOC_VMO_AL_MON:
            objects = [
                (0x0001, self._alarms() if attr_group in (0, msg.NOM_ATTR_GRP_AL_MON) else [])
            ]
        elif obj_class == msg.NOM_MOC_VMS_MDS:
            objects = [
                (
                    0x0000,
                    [
                        (msg.NOM_ATTR_TIME_ABS, encode_absolute_time(self._abs(now))),
                        (msg.NOM_ATTR_TIME_REL, self._rel(now).to_bytes(4, "big")),
                    ],
                )
            ]
        else:
            objects = []
        return msg.poll_result(
            invoke_id,
            poll_number,
            obj_class,
            [(0, objects)] if objects else [],
            rel_time=self._rel(now),
            abs_time=self._abs(now),
            attr_group=attr_group,
            extended=extended,
            sequence_no=sequence_no,
            linked=linked,
        )

    # --- the patient --------------------------------------------------------------------

    def _numerics(self) -> list[tuple[int, list[tuple[int, bytes]]]]:
        rng = self._rng
        self._hr, self._spo2 = self._hr.stepped(rng), self._spo2.stepped(rng)
        hr, spo2 = Decimal(round(self._hr.value)), Decimal(round(self._spo2.value))
        # A short desaturation now and then, so the alarm path runs too.
        if rng.random() < 0.03:
            spo2 = Decimal(rng.randint(86, 89))
        if rng.random() < 0.02:  # an NIBP cycle finished
            sys_ = Decimal(rng.randint(108, 132))
            dia = Decimal(rng.randint(66, 84))
            self._nibp = (sys_, dia, ((sys_ + 2 * dia) / 3).quantize(Decimal(1)))
        # Drawn before RR, temperature and EtCO2 move: the order a seed's stream has.
        pleth_pr = hr + rng.choice((-1, 0, 0, 1))
        self._rr, self._temp = self._rr.stepped(rng), self._temp.stepped(rng)
        self._etco2 = self._etco2.stepped(rng)
        values = {
            HR: (hr, BPM),
            SPO2: (spo2, PERCENT),
            PLETH_PR: (pleth_pr, BPM),
            RESP_RATE: (Decimal(round(self._rr.value)), RPM),
            TEMP: (Decimal(f"{self._temp.value:.1f}"), DEGC),
            ETCO2: (Decimal(round(self._etco2.value)), MMHG),
            AWAY_RR: (Decimal(round(self._rr.value)), RPM),
        }
        self._last_numerics = {k: v for k, (v, _) in values.items()}
        objects = [
            (0x0100 + i, [(msg.NOM_ATTR_NU_VAL_OBS, msg.nu_obs_value(physio, unit, value))])
            for i, (physio, (value, unit)) in enumerate(values.items())
        ]
        nibp = b"".join(
            msg.nu_obs_value(physio, MMHG, value)
            for physio, value in zip((NIBP_SYS, NIBP_DIA, NIBP_MEAN), self._nibp, strict=True)
        )
        compound = (3).to_bytes(2, "big") + len(nibp).to_bytes(2, "big") + nibp
        objects.append((0x0120, [(msg.NOM_ATTR_NU_CMPD_VAL_OBS, compound)]))
        return objects

    def _alarms(self) -> list[tuple[int, bytes]]:
        spo2 = self._last_numerics.get(SPO2, Decimal(97))
        entries = []
        if spo2 < 90:
            entries.append(
                msg.dev_alarm_entry(SPO2, SPO2_LOW_CODE, HI_PRI_P_AL, f"**SpO2 {spo2} < 90")
            )
        patient = encode_list(entries)
        return [
            (msg.NOM_ATTR_AL_MON_P_AL_LIST, patient),
            (msg.NOM_ATTR_AL_MON_T_AL_LIST, encode_list([])),
        ]

    def _waves(self) -> list[tuple[int, list[tuple[int, bytes]]]]:
        beat_s = 60.0 / max(self._hr.value, 30.0)
        ecg, pleth = [], []
        for i in range(128):  # 256 ms at 500/s
            phase = (self._phase + i * 0.002 / beat_s) % 1.0
            # P wave, QRS spike and T wave as Gaussians over one beat; 1 mV = 200 counts.
            mv = (
                0.15 * math.exp(-(((phase - 0.15) / 0.025) ** 2))
                + 1.1 * math.exp(-(((phase - 0.30) / 0.008) ** 2))
                - 0.2 * math.exp(-(((phase - 0.33) / 0.01) ** 2))
                + 0.3 * math.exp(-(((phase - 0.55) / 0.05) ** 2))
            )
            ecg.append(ECG_ZERO + round(mv * 200) + self._rng.randint(-2, 2))
            if i % 4 == 0:  # 125/s
                pulse = (
                    math.sin(math.pi * min(phase / 0.35, 1.0))
                    if phase < 0.35
                    else 0.3 * math.exp(-(phase - 0.35) * 4)
                )
                pleth.append(round(800 + 2400 * max(pulse, 0.0)))
        self._phase = (self._phase + 128 * 0.002 / beat_s) % 1.0
        return [
            (
                0x0200,
                [
                    (
                        msg.NOM_ATTR_SA_VAL_OBS,
                        msg.sa_obs_value(ECG_II, b"".join(v.to_bytes(2, "big") for v in ecg)),
                    ),
                    (msg.NOM_ATTR_SA_SPECN, msg.sa_spec(128, 16, 14, SA_EXT_VAL_RANGE)),
                    (
                        msg.NOM_ATTR_SCALE_SPECN_I16,
                        msg.scale_range_spec16(Decimal("-40.96"), Decimal("40.955"), 0, 16383),
                    ),
                    (msg.NOM_ATTR_TIME_PD_SAMP, (16).to_bytes(4, "big")),  # 2 ms
                    (msg.NOM_ATTR_UNIT_CODE, MV.to_bytes(2, "big")),
                ],
            ),
            (
                0x0201,
                [
                    (
                        msg.NOM_ATTR_SA_VAL_OBS,
                        msg.sa_obs_value(PLETH, b"".join(v.to_bytes(2, "big") for v in pleth)),
                    ),
                    (msg.NOM_ATTR_SA_SPECN, msg.sa_spec(32, 16, 12, SA_EXT_VAL_RANGE)),
                    (msg.NOM_ATTR_SCALE_SPECN_I16, msg.scale_range_spec16(None, None, 0, 4095)),
                    (msg.NOM_ATTR_TIME_PD_SAMP, (64).to_bytes(4, "big")),  # 8 ms
                    (msg.NOM_ATTR_UNIT_CODE, DIMLESS.to_bytes(2, "big")),
                ],
            ),
        ]


def _no_cable(exc: OSError) -> None:
    """With nobody on the slave end Linux answers EIO: like a monitor with no cable, the
    bytes are lost. Any other write error is raised."""
    if exc.errno != errno.EIO:
        raise exc


async def run(
    master_fd: int,
    stop: asyncio.Event | None = None,
    seed: int = 0,
    *,
    timeout_s: float = 10.0,
    monitor: Monitor | None = None,
    tz: str = DEFAULT_ZONE,
) -> None:
    """Play the monitor on `master_fd` until `stop` is set (or the task is cancelled);
    its clock shows the station's local time in `tz`."""
    stop = stop or asyncio.Event()
    monitor = monitor or Monitor(seed, timeout_s=timeout_s, tz=tz)
    loop = asyncio.get_running_loop()
    os.set_blocking(master_fd, False)
    reader = FrameReader()
    # More than 256 KiB waiting (a reader that stopped) drops the oldest, as a UART's
    # buffer would overflow.
    writer = NonBlockingWriter(master_fd, _no_cable, limit=256 * 1024, warn=False)
    reading = False

    def send(messages: list[bytes]) -> None:
        for message in messages:
            writer.write([encode_frame(message)])

    def readable() -> None:
        nonlocal reading
        data = read_agent(master_fd)
        if data is None:  # the agent closed the port: listen again on the next tick
            loop.remove_reader(master_fd)
            reading = False
            return
        now = loop.time()
        for frame in reader.feed(data):
            with contextlib.suppress(DecodeError):
                send(monitor.received(unframe(frame), now))

    try:
        while not stop.is_set():
            if not reading:
                loop.add_reader(master_fd, readable)
                reading = True
            send(monitor.tick(loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.02)
    finally:
        if reading:
            loop.remove_reader(master_fd)
        writer.close()
