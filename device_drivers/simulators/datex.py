"""A simulated GE/Datex-Ohmeda S/5 monitor answering computer-interface requests on a pty.

Like the real monitor (docs/protocols/datex-s5.md) it sends nothing until asked. `S5Monitor` is the
monitor's pure logic: requests in, framed records out, on a clock the caller passes in;
`run` puts it on a pseudo-terminal master, so the agent reads the slave end with the same
SerialTransport, FrameReader, S5Conversation and decoder it uses on /dev/ttyUSB0.

What it does:
- a displayed-values request (main type 0, subrecord 0, phdb_rcrd_type 1) at a level it
  supports starts displayed-values records every tx_ival seconds (-1: one record, 0:
  stop); a second request within 5 s of the last one is ignored, as on the monitor;
  requests for the 10-s / 60-s trends are ignored (trends need an open patient case);
- a waveform request (main type 1) starts (or stops) records of the requested waveforms,
  one every 0.2 s, with the samples of those 0.2 s;
- requests at a level above `supported_level` (the newest interface level the simulated
  monitor speaks; it answers every level from 2 up to it) or below 2 get no answer.

The patient rests: heart rate, arterial line (P1, labelled ART), CVP (P2), oesophageal and
skin temperature, SpO2, EtCO2 and O2 drift; NIBP is measured every 5 minutes of monitor
time; now and then the SpO2 probe is off (invalid markers) or the skin probe is not
updated. `speed` runs the monitor's clock faster than real time (periods shrink with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import math
import os
import random
import struct
from dataclasses import dataclass

from device_drivers.serial.datex import (
    CLASS_DATA_LEN,
    CLASS_DENY_BASIC,
    LEVELS,
    MT_PHDB,
    MT_WAVE,
    PHDB_DISPLAYED,
    PHDB_REQUEST,
    WAVES,
    WF_START,
    WF_STOP,
    FrameReader,
    encode_frame,
    encode_record,
    parse_header,
    record_of,
)
from device_drivers.simulators.pty import open_pty, read_agent
from device_drivers.simulators.station_clock import DEFAULT_ZONE, device_wall_clock
from device_drivers.simulators.vital_walk import VitalWalk
from edge_agent.model import DecodeError

__all__ = ["S5Monitor", "open_pty", "run"]

SUPPORTED_LEVEL = 8  # an S/5 with '03 software
INVALID = -32767
NOT_UPDATED = -32766
EXISTS_ACTIVE = 0x3
NIBP_EVERY_S = 300.0
WAVE_CHUNK_S = 0.2
REQUEST_HOLDOFF_S = 5.0  # the S/5 ignores a second request within 5 s


def _group(status: int, label: int, *values: int) -> bytes:
    return struct.pack(f"<IH{len(values)}h", status, label, *values)


def _absent(values: int) -> bytes:
    return _group(0, 0, *([INVALID] * values))


@dataclass
class _Vitals:
    hr: float
    sys: float
    dia: float
    cvp: float
    t_eso: float
    t_skin: float
    spo2: float
    etco2: float
    rr: float


# The resting patient, one walk per _Vitals field (value, low, high, largest step per
# displayed-values update), in the units the records carry before scaling.
_RESTING: dict[str, VitalWalk] = {
    "hr": VitalWalk.resting(72, 50, 120, 1.2),
    "sys": VitalWalk.resting(122, 95, 160, 1.5),
    "dia": VitalWalk.resting(76, 55, 95, 1.0),
    "cvp": VitalWalk.resting(6, 2, 12, 0.3),
    "t_eso": VitalWalk.resting(36.9, 36.0, 38.0, 0.02),
    "t_skin": VitalWalk.resting(34.2, 32.0, 35.5, 0.05),
    "spo2": VitalWalk.resting(97.5, 90, 100, 0.3),
    "etco2": VitalWalk.resting(5.1, 4.2, 6.0, 0.05),
    "rr": VitalWalk.resting(14, 10, 22, 0.5),
}


class S5Monitor:
    """The monitor's side, without I/O: `handle` requests, `poll` for what is due.

    `now` is the caller's monotonic clock in seconds; the monitor's own wall clock is
    `start` plus the elapsed time times `speed`.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        speed: float = 1.0,
        supported_level: int = SUPPORTED_LEVEL,
        start: dt.datetime | None = None,
        now: float = 0.0,
        tz: str = DEFAULT_ZONE,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._rng = random.Random(seed)
        self._speed = speed
        self.supported_level = supported_level
        self._start_wall = (start or device_wall_clock(tz)).replace(microsecond=0)
        self._start_now = now
        self._nbr = 0
        # displayed values: (level, period in real seconds or None for once, next due)
        self._displayed: tuple[int, float | None, float] | None = None
        self._accepted_at: float | None = None
        self._waves: tuple[int, list[int], float] | None = None
        self._wave_t = 0.0  # monitor seconds of waveform already sent
        self._walks = dict(_RESTING)
        self._nibp: tuple[int, int, int, int] | None = None
        self._nibp_at = -math.inf
        self._vitals = self._step()

    # --- clock ---------------------------------------------------------------------------

    def monitor_time(self, now: float) -> dt.datetime:
        return self._start_wall + dt.timedelta(seconds=(now - self._start_now) * self._speed)

    def _r_time(self, now: float) -> int:
        return int((self.monitor_time(now) - dt.datetime(1970, 1, 1)).total_seconds())

    def _next_nbr(self) -> int:
        self._nbr = (self._nbr + 1) & 0xFF
        return self._nbr

    # --- requests ------------------------------------------------------------------------

    def handle(self, frame: bytes, now: float) -> None:
        """One frame body from the computer (as FrameReader cuts it); bad ones are ignored."""
        try:
            record = record_of(frame)
            header = parse_header(record)
        except DecodeError:
            return  # the monitor drops what it cannot read
        if header.dri_level not in LEVELS or header.dri_level > self.supported_level:
            return  # a level this monitor does not speak: no answer (as real monitors do)
        if len(header.subrecords) != 1 or header.subrecords[0][0] != PHDB_REQUEST:
            return
        at = header.subrecords[0][1]
        if header.maintype == MT_PHDB and at + 9 <= len(record):
            rtype, interval, classes, _ = struct.unpack_from("<BhIh", record, at)
            self._phdb_request(header.dri_level, rtype, interval, classes, now)
        elif header.maintype == MT_WAVE and at + 12 <= len(record):
            req_type, _ = struct.unpack_from("<hh", record, at)
            ids = list(record[at + 4 : at + 12])
            self._wave_request(header.dri_level, req_type, ids, now)

    def _phdb_request(
        self, level: int, rtype: int, interval: int, classes: int, now: float
    ) -> None:
        if rtype != PHDB_DISPLAYED:
            return  # trends need an open patient case; the simulated monitor has none
        held = self._accepted_at is not None and (now - self._accepted_at) * self._speed < (
            REQUEST_HOLDOFF_S
        )
        if held:
            return
        if interval == 0:
            self._displayed = None
        elif classes & CLASS_DENY_BASIC:
            return  # only the basic class is simulated
        elif interval == -1:
            self._displayed = (level, None, now)
        elif interval >= 5:
            self._displayed = (level, interval / self._speed, now)
        else:
            return
        self._accepted_at = now

    def _wave_request(self, level: int, req_type: int, ids: list[int], now: float) -> None:
        if req_type == WF_STOP:
            self._waves = None
            return
        if req_type != WF_START:
            return
        wanted: list[int] = []
        for wave_id in ids:
            if wave_id == 0xFF:
                break
            if wave_id in _WAVE_SOURCES and wave_id not in wanted:
                wanted.append(wave_id)
        self._waves = (level, wanted, now) if wanted else None

    # --- output --------------------------------------------------------------------------

    def next_due(self) -> float | None:
        due = [s[2] for s in (self._displayed, self._waves) if s is not None]
        return min(due) if due else None

    def poll(self, now: float) -> list[bytes]:
        """Framed records due by `now` (at most one of each kind: a late caller catches up
        by skipping, as a monitor does not queue what it could not send)."""
        out: list[bytes] = []
        if self._displayed is not None and self._displayed[2] <= now:
            level, period, due = self._displayed
            out.append(encode_frame(self.displayed_record(level, now)))
            if period is None:
                self._displayed = None
            else:
                self._displayed = (level, period, max(due + period, now))
        if self._waves is not None and self._waves[2] <= now:
            level, ids, due = self._waves
            out.append(encode_frame(self.wave_record(level, ids, now)))
            self._waves = (level, ids, max(due + WAVE_CHUNK_S / self._speed, now))
        return out

    def _step(self) -> _Vitals:
        # One step of every vital, in _RESTING's order (the order they draw from the seed).
        self._walks = {name: walk.stepped(self._rng) for name, walk in self._walks.items()}
        return _Vitals(**{name: walk.value for name, walk in self._walks.items()})

    def basic_class(self, now: float) -> bytes:
        """The 270 bytes of basic-class data (the group table) for the present moment."""
        v = self._vitals = self._step()
        rng = self._rng
        hr = round(v.hr)
        mean = v.dia + (v.sys - v.dia) / 3
        monitor_s = (now - self._start_now) * self._speed
        if monitor_s - self._nibp_at >= NIBP_EVERY_S:
            # A cuff measurement: a little off the arterial line, as in life.
            nsys = v.sys + rng.uniform(-6, 6)
            ndia = v.dia + rng.uniform(-4, 4)
            self._nibp = (
                round(nsys * 100),
                round(ndia * 100),
                round((ndia + (nsys - ndia) / 3) * 100),
                hr,
            )
            self._nibp_at = monitor_s
        probe_off = rng.random() < 0.03
        skin_stale = rng.random() < 0.03
        ecg_status = EXISTS_ACTIVE | (1 << 3)  # heart-rate source: ECG
        ecg_leads = 2 | (1 << 4) | (7 << 8)  # channels II, I, V
        parts = [
            _group(ecg_status, ecg_leads, hr, 5, -3, 2, round(v.rr)),
            _group(EXISTS_ACTIVE, 1, round(v.sys * 100), round(v.dia * 100), round(mean * 100), hr),
            _group(
                EXISTS_ACTIVE, 2, round((v.cvp + 2) * 100), round((v.cvp - 2) * 100),
                round(v.cvp * 100), INVALID,
            ),
            _group(0x1, 3, INVALID, INVALID, INVALID, INVALID),  # P3 exists, no transducer
            _absent(4),  # P4
            _group(EXISTS_ACTIVE, 0, *(self._nibp or (INVALID,) * 4)),
            _group(EXISTS_ACTIVE, 1, round(v.t_eso * 100)),  # T1 ESO
            _group(EXISTS_ACTIVE, 7, NOT_UPDATED if skin_stale else round(v.t_skin * 100)),
            _absent(1),  # T3
            _absent(1),  # T4
            _group(
                EXISTS_ACTIVE, 0,
                INVALID if probe_off else round(v.spo2 * 100),
                INVALID if probe_off else hr + rng.choice((-1, 0, 0, 1)),
                INVALID if probe_off else rng.randint(300, 900), INVALID,
            ),
            _group(EXISTS_ACTIVE, 1, round(v.etco2 * 100), rng.randint(0, 15), round(v.rr), 7600),
            _group(EXISTS_ACTIVE, 0, rng.randint(2550, 2650), rng.randint(2950, 3050)),
            _absent(2),  # N2O
            _absent(3),  # AA
            _absent(8),  # flow & volume
            _absent(4),  # CO & wedge
            _absent(3),  # NMT
            struct.pack("<3h", hr, hr + 9, hr - 11),  # ECG extra: no group header
            _absent(1),  # SvO2
            _absent(4),  # P5
            _absent(4),  # P6
            bytes(2),
        ]  # fmt: skip
        data = b"".join(parts)
        assert len(data) == CLASS_DATA_LEN, len(data)
        return data

    def displayed_record(self, level: int, now: float) -> bytes:
        r_time = self._r_time(now)
        subrecord = struct.pack("<I", r_time) + self.basic_class(now) + struct.pack("<BBH", 0, 0, 0)
        return encode_record(
            MT_PHDB,
            [(PHDB_DISPLAYED, subrecord)],
            level=level,
            r_time=r_time,
            r_nbr=self._next_nbr(),
        )

    def wave_record(self, level: int, ids: list[int], now: float) -> bytes:
        t0 = self._wave_t
        subrecords: list[tuple[int, bytes]] = []
        for wave_id in ids:
            rate = WAVES[wave_id].rate_hz
            count = round(rate * WAVE_CHUNK_S)
            shape = _WAVE_SOURCES[wave_id]
            samples = [shape(self._vitals, t0 + i / rate) for i in range(count)]
            subrecords.append((wave_id, struct.pack(f"<hHH{count}h", count, 0, 0, *samples)))
        self._wave_t += WAVE_CHUNK_S
        return encode_record(
            MT_WAVE, subrecords, level=level, r_time=self._r_time(now), r_nbr=self._next_nbr()
        )


def _beat_phase(v: _Vitals, t: float) -> float:
    period = 60.0 / max(v.hr, 1.0)
    return (t % period) / period


def _ecg(v: _Vitals, t: float) -> int:
    """Lead II in µV: P, QRS and T as Gaussian bumps over one beat."""
    p = _beat_phase(v, t)
    value = (
        120 * math.exp(-(((p - 0.10) / 0.025) ** 2))
        - 150 * math.exp(-(((p - 0.235) / 0.008) ** 2))
        + 1100 * math.exp(-(((p - 0.25) / 0.010) ** 2))
        - 250 * math.exp(-(((p - 0.265) / 0.009) ** 2))
        + 280 * math.exp(-(((p - 0.50) / 0.050) ** 2))
    )
    return round(value)


def _pleth(v: _Vitals, t: float) -> int:
    """Pleth in 1/100 % modulation, lagging the ECG by a fifth of a beat."""
    p = (_beat_phase(v, t) - 0.2) % 1.0
    return round(
        100 * (math.exp(-(((p - 0.25) / 0.12) ** 2)) + 0.4 * math.exp(-(((p - 0.55) / 0.1) ** 2)))
    )


def _art(v: _Vitals, t: float) -> int:
    """Arterial pressure in 1/100 mmHg between diastolic and systolic."""
    p = (_beat_phase(v, t) - 0.15) % 1.0
    pulse = math.exp(-(((p - 0.2) / 0.1) ** 2)) + 0.3 * math.exp(-(((p - 0.45) / 0.06) ** 2))
    return round((v.dia + (v.sys - v.dia) * min(pulse, 1.0)) * 100)


def _cvp(v: _Vitals, t: float) -> int:
    return round((v.cvp + 1.5 * math.sin(2 * math.pi * t * v.hr / 60)) * 100)


def _co2(v: _Vitals, t: float) -> int:
    """Capnogram in 1/100 %: a plateau during expiration, zero while breathing in."""
    breath = 60.0 / max(v.rr, 1.0)
    p = (t % breath) / breath
    return round(v.etco2 * 100) if 0.05 < p < 0.55 else 0


_WAVE_SOURCES = {1: _ecg, 2: _ecg, 3: _ecg, 4: _art, 5: _cvp, 8: _pleth, 9: _co2}


# --- the pty edge -------------------------------------------------------------------------


def _write(master_fd: int, data: bytes) -> None:
    """Write what the pty takes now. With nobody on the slave end (EIO) or a full buffer
    the rest is lost, as a monitor's bytes are on an unplugged cable."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(master_fd, view)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:
                return
            raise
        view = view[written:]


async def run(
    master_fd: int,
    stop: asyncio.Event | None = None,
    seed: int = 0,
    speed: float = 1.0,
    supported_level: int = SUPPORTED_LEVEL,
    start: dt.datetime | None = None,
    tz: str = DEFAULT_ZONE,
) -> None:
    """Be an S/5 monitor on `master_fd` until `stop` is set (or the task is cancelled);
    its clock shows the station's local time in `tz`."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    os.set_blocking(master_fd, False)
    monitor = S5Monitor(
        seed=seed,
        speed=speed,
        supported_level=supported_level,
        start=start,
        now=loop.time(),
        tz=tz,
    )
    reader = FrameReader()
    wake = asyncio.Event()
    listening = True

    def listen() -> None:
        if listening:
            loop.add_reader(master_fd, readable)

    def readable() -> None:
        data = read_agent(master_fd)
        if data is None:  # hung up: look again a little later
            loop.remove_reader(master_fd)
            loop.call_later(0.05, listen)
            return
        if not data:
            return
        for frame in reader.feed(data):
            monitor.handle(frame, loop.time())
        wake.set()

    loop.add_reader(master_fd, readable)
    try:
        while not stop.is_set():
            for frame in monitor.poll(loop.time()):
                _write(master_fd, frame)
            due = monitor.next_due()
            delay = 1.0 if due is None else max(due - loop.time(), 0.0)
            wake.clear()
            stopper = asyncio.ensure_future(stop.wait())
            waker = asyncio.ensure_future(wake.wait())
            try:
                await asyncio.wait({stopper, waker}, timeout=delay)
            finally:
                for task in (stopper, waker):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    finally:
        listening = False
        loop.remove_reader(master_fd)
