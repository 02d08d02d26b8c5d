"""A simulated BLE glucose meter (Glucose service 0x1808) behind the link interface.

Only the radio is fake: the bytes are real 0x2A18 / 0x2A34 notifications and 0x2A52
indications built by the driver's own encoders (GLS; docs/protocols/ble-health-profiles.md).
Like the meters village doctors hand out, it keeps its results in memory with increasing
sequence numbers and sends nothing by itself: the agent asks over the Record Access Control
Point, and the meter answers with the requested records (each measurement followed by its
context when it has one) and then the RACP response code.

Test knobs: `drop_after` hangs up after that many records in one connection (a meter
carried out of range mid-transfer), `supports_since=False` answers "operator not
supported" to anything but "all records" (meters that only do step 3's first form), and
`measure()` adds a result between connections. With `connect_timeout_s` the meter
behaves like a real one between measurements: it advertises (accepts a connection) only
while it holds a result no download has completed since, and a connect attempt waits
that long for one before failing as "not advertising" (the demo's meter; `run`
measures on a schedule).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from device_drivers.ble.current_time import CURRENT_TIME_UUID, CurrentTime, decode_current_time
from device_drivers.ble.glucose import (
    CHARACTERISTICS,
    CONTEXT_UUID,
    MEAL_FASTING,
    MEAL_POSTPRANDIAL,
    MEAL_PREPRANDIAL,
    MEASUREMENT_UUID,
    OP_ABORT,
    OP_REPORT_NUMBER,
    OP_REPORT_RECORDS,
    OPERATOR_ALL,
    OPERATOR_FIRST,
    OPERATOR_GREATER_OR_EQUAL,
    OPERATOR_LAST,
    OPERATOR_LESS_OR_EQUAL,
    OPERATOR_NULL,
    OPERATOR_RANGE,
    RACP_UUID,
    RESPONSE_INVALID_OPERAND,
    RESPONSE_INVALID_OPERATOR,
    RESPONSE_NO_RECORDS,
    RESPONSE_OP_NOT_SUPPORTED,
    RESPONSE_OPERAND_NOT_SUPPORTED,
    RESPONSE_OPERATOR_NOT_SUPPORTED,
    RESPONSE_SUCCESS,
    STATUS_BATTERY_LOW,
    RacpRequest,
    decode_racp_request,
    encode_context,
    encode_measurement,
    encode_racp_count,
    encode_racp_response,
)
from device_drivers.ble.link import stop_sending
from device_drivers.simulators.station_clock import DEFAULT_ZONE, device_wall_clock
from device_drivers.simulators.vital_walk import VitalWalk
from edge_agent.model import DecodeError

TESTER_SELF = 1
_MEALS = (MEAL_PREPRANDIAL, MEAL_POSTPRANDIAL, MEAL_FASTING)


@dataclass(frozen=True, slots=True)
class StoredRecord:
    sequence: int
    measurement: bytes
    context: bytes | None


class SimulatedMeter:
    def __init__(
        self,
        records: int = 5,
        seed: int = 0,
        *,
        start: dt.datetime | None = None,
        every_s: float = 6 * 3600.0,
        mol_per_l: bool = False,
        drop_after: int | None = None,
        supports_since: bool = True,
        first_sequence: int = 1,
        connect_timeout_s: float | None = None,
        live: bool = False,
        tz: str = DEFAULT_ZONE,
    ) -> None:
        self._rng = random.Random(seed)
        self._connect_timeout_s = connect_timeout_s
        # live: results taken from now on carry the wall-clock time (the demo); the
        # stored ones before them are spaced `every_s` apart, ending `every_s` ago.
        self._live = live
        self._stored_done = False  # the `records` results held before the first connection
        self._fresh = asyncio.Event()  # a result no completed download has taken yet
        self._every = dt.timedelta(seconds=max(1, round(every_s)))
        self._tz = tz  # the meter's clock shows the station's local time in this zone
        if start is None and live:
            start = device_wall_clock(tz) - self._every * (records + 1)
        self._clock = (start or dt.datetime(2024, 3, 1, 7, 0, 0)).replace(microsecond=0)
        self._mol_per_l = mol_per_l
        # A type 2 patient on treatment, fasting around 7 mmol/L: each result the last
        # one plus a move (no pull: hours lie between two), within what a meter shows.
        self._mmol = VitalWalk.resting(7.2, 3.0, 25.0, 1.5, pull=0)
        self._next_sequence = first_sequence
        self.memory: list[StoredRecord] = []
        self.drop_after = drop_after
        self.supports_since = supports_since
        self.connections = 0
        self.sent = 0  # records notified, over all connections
        self.requests: list[bytes] = []  # RACP requests written, in order
        self.clock_set: list[CurrentTime] = []  # Current Time writes
        for _ in range(records):
            self.measure()
        self._stored_done = True

    def link(self) -> _MeterLink:
        """A new link for one connection attempt (session.BleTransport's link factory)."""
        return _MeterLink(self)

    def measure(self) -> int:
        """Take one measurement now: store it (every other one with a meal context)."""
        rng = self._rng
        self._mmol = self._mmol.stepped(rng)
        sequence = self._next_sequence
        self._next_sequence += 1
        if self._mol_per_l:
            # Meters sold in China show mmol/L to 0.1: 6.3 mmol/L = 63 × 10^-4 mol/L.
            concentration = Decimal(round(self._mmol.value * 10)).scaleb(-4)
        else:
            # A mg/dL meter sends whole mg/dL as kg/L: 114 mg/dL = 114 × 10^-5 kg/L.
            concentration = Decimal(round(self._mmol.value * 18.016)).scaleb(-5)
        if self._live and self._stored_done:
            # A result taken now carries the meter's clock now (the station's local
            # time), never the next `every` step: that ran hours into the future.
            self._clock = device_wall_clock(self._tz)
        with_context = sequence % 2 == 0
        status = STATUS_BATTERY_LOW if rng.random() < 0.05 else None
        measurement = encode_measurement(
            sequence,
            self._clock,
            concentration=concentration,
            mol_per_l=self._mol_per_l,
            status=status,
            context_follows=with_context,
        )
        context = None
        if with_context:
            context = encode_context(
                sequence, meal=_MEALS[sequence // 2 % len(_MEALS)], tester=TESTER_SELF
            )
        self.memory.append(StoredRecord(sequence, measurement, context))
        self._clock += self._every
        self._fresh.set()
        return sequence

    async def run(self, stop: asyncio.Event, every_s: float) -> None:
        """Measure every `every_s` seconds until `stop` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
            if not stop.is_set():
                self.measure()

    async def wait_advertising(self) -> None:
        """Return when the meter would accept a connection; OSError when it stays asleep."""
        if self._connect_timeout_s is None:
            return
        try:
            await asyncio.wait_for(self._fresh.wait(), self._connect_timeout_s)
        except TimeoutError:
            raise OSError("simulated meter: not advertising (no new result)") from None

    def downloaded(self) -> None:
        """A report procedure completed: nothing new to advertise until the next result."""
        self._fresh.clear()

    def select(self, request: RacpRequest) -> list[StoredRecord] | int:
        """The records a report/count request asks for, or the RACP error code."""
        operator = request.operator
        if operator == OPERATOR_ALL:
            return list(self.memory) if not request.operand else RESPONSE_INVALID_OPERAND
        if not OPERATOR_LESS_OR_EQUAL <= operator <= OPERATOR_LAST:
            return RESPONSE_INVALID_OPERATOR
        if not self.supports_since:
            return RESPONSE_OPERATOR_NOT_SUPPORTED
        if operator in (OPERATOR_FIRST, OPERATOR_LAST):
            if request.operand:
                return RESPONSE_INVALID_OPERAND
            return self.memory[:1] if operator == OPERATOR_FIRST else self.memory[-1:]
        if not request.operand:
            return RESPONSE_INVALID_OPERAND
        values = request.sequence_operands()
        if values is None:
            # Filter type 0x02 (user-facing time) or a reserved type: this meter filters
            # by sequence number only.
            return RESPONSE_OPERAND_NOT_SUPPORTED
        want = 2 if operator == OPERATOR_RANGE else 1
        if len(values) != want or (want == 2 and values[0] > values[1]):
            return RESPONSE_INVALID_OPERAND
        low, high = {
            OPERATOR_LESS_OR_EQUAL: (0, values[0]),
            OPERATOR_GREATER_OR_EQUAL: (values[0], 0xFFFF),
            OPERATOR_RANGE: (values[0], values[-1]),
        }[operator]
        return [r for r in self.memory if low <= r.sequence <= high]


class _MeterLink:
    """One connection to the simulated meter (session.NotifyingLink, plus write)."""

    def __init__(self, meter: SimulatedMeter) -> None:
        self._meter = meter
        self._connected = False
        self._callbacks: dict[str, Callable[[bytes], None]] = {}
        self._procedure: asyncio.Task[None] | None = None
        self.sent = 0  # records notified on this connection

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        await self._meter.wait_advertising()
        self._connected = True
        self._meter.connections += 1

    async def start_notify(self, characteristic: str, callback: Callable[[bytes], None]) -> None:
        if not self._connected:
            raise OSError("simulated meter: start_notify while not connected")
        if characteristic not in CHARACTERISTICS:
            raise OSError(f"simulated meter: {characteristic} cannot notify")
        self._callbacks[characteristic] = callback

    async def write(self, characteristic: str, data: bytes) -> None:
        if not self._connected:
            raise OSError("simulated meter: write while not connected")
        if characteristic == CURRENT_TIME_UUID:
            try:
                self._meter.clock_set.append(decode_current_time(data))
            except DecodeError as exc:
                raise OSError(f"simulated meter: bad Current Time write: {exc}") from exc
            return
        if characteristic != RACP_UUID:
            raise OSError(f"simulated meter: {characteristic} is not writable")
        if RACP_UUID not in self._callbacks:
            # ATT error 0xFD: Client Characteristic Configuration Descriptor improperly
            # configured (indications off) — a real meter refuses the request.
            raise OSError("simulated meter: RACP indications not enabled")
        try:
            request = decode_racp_request(data)
        except DecodeError as exc:
            raise OSError(f"simulated meter: {exc}") from exc
        self._meter.requests.append(data)
        busy = self._procedure is not None and not self._procedure.done()
        if request.op == OP_ABORT:
            await self._stop_procedure()
            code = (
                RESPONSE_SUCCESS if request.operator == OPERATOR_NULL else RESPONSE_INVALID_OPERATOR
            )
            self._start([], encode_racp_response(OP_ABORT, code))
            return
        if busy:
            # ATT error 0xFE: procedure already in progress (one RACP procedure at a time).
            raise OSError("simulated meter: RACP procedure already in progress")
        if request.op not in (OP_REPORT_RECORDS, OP_REPORT_NUMBER):
            # Deleting (op 2) is left unsupported: the agent must never need it.
            self._start([], encode_racp_response(request.op, RESPONSE_OP_NOT_SUPPORTED))
            return
        selected = self._meter.select(request)
        if isinstance(selected, int):
            self._start([], encode_racp_response(request.op, selected))
        elif request.op == OP_REPORT_NUMBER:
            self._start([], encode_racp_count(len(selected)))
        elif not selected:
            self._start([], encode_racp_response(request.op, RESPONSE_NO_RECORDS), completes=True)
        else:
            self._start(
                selected, encode_racp_response(request.op, RESPONSE_SUCCESS), completes=True
            )

    async def disconnect(self) -> None:
        self._connected = False
        self._callbacks = {}
        await self._stop_procedure()

    def _start(self, records: list[StoredRecord], final: bytes, *, completes: bool = False) -> None:
        # After the write's response, as on air: the reply comes in its own task.
        self._procedure = asyncio.get_running_loop().create_task(
            self._send(records, final, completes)
        )

    async def _stop_procedure(self) -> None:
        task, self._procedure = self._procedure, None
        await stop_sending(task)

    def _notify(self, characteristic: str, data: bytes) -> None:
        callback = self._callbacks.get(characteristic)
        if callback is not None:  # a real meter sends only on a subscribed characteristic
            callback(data)

    async def _send(self, records: list[StoredRecord], final: bytes, completes: bool) -> None:
        await asyncio.sleep(0)
        for record in records:
            if not self._connected:
                return
            self._notify(MEASUREMENT_UUID, record.measurement)
            if record.context is not None:
                self._notify(CONTEXT_UUID, record.context)
            self.sent += 1
            self._meter.sent += 1
            drop_after = self._meter.drop_after
            if drop_after is not None and self.sent >= drop_after:
                self._connected = False  # carried out of range: the rest never comes
                self._callbacks = {}
                return
            await asyncio.sleep(0)
        if self._connected:
            self._notify(RACP_UUID, final)
            if completes:
                self._meter.downloaded()
