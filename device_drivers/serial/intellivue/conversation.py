"""The agent's side of an IntelliVue data export session, without I/O.

The protocol: docs/protocols/intellivue.md.

Guide "Communication Flow": association request -> association response -> the monitor
sends the MDS Create event report, which must be answered -> polls. The monitor ends an
association it has not heard from for 10 s (its timeout for a min_poll_period below
3.3 s; OpenICE issue #128 is a client that fell silent), so polls also keep it alive.

`IntelliVueConversation` is the transport.Conversation the serial transport drives:
- opened: the association request.
- received: answers the MDS Create (and any other confirmed event report), starts
  polling, notes which extended-poll options the monitor granted; refuse, abort,
  release request/response make it associate again after a pause.
- tick (every `tick_s`): a single numerics poll every `numerics_period_s`, a poll of
  the alert monitor every `alarms_period_s`, and, when the monitor granted real-time
  waves, an extended wave poll with a polling period of `wave_poll_period_s` renewed
  shortly before it runs out (the monitor then sends a result every 256 ms by itself).
  If nothing else went out for `keep_alive_s`, the guide's keep-alive (a poll of the
  alert monitor's static context). No answer to an association request within
  `answer_timeout_s`: ask again. No frame at all for `silence_s` while associated:
  abort and associate again.
- close: the release request, for a caller that stops reading (the serial transport
  simply drops the port; the monitor then times the association out).
Frames that fail their checks are ignored here (the recorder quarantines them).
"""

from __future__ import annotations

from device_drivers.serial.intellivue import messages as msg
from device_drivers.serial.intellivue.framing import HEADER_LEN, encode_frame, unframe
from device_drivers.serial.intellivue.parse import parse_user_data
from edge_agent.model import DecodeError

IDLE = "idle"
ASSOCIATING = "associating"
AWAITING_MDS = "awaiting-mds-create"
POLLING = "polling"
WAITING = "waiting-to-reassociate"
RELEASING = "releasing"
RELEASED = "released"


class IntelliVueConversation:
    """transport.Conversation for an IntelliVue MP/MX monitor on its MIB/RS-232 port."""

    def __init__(
        self,
        *,
        tick_s: float = 0.25,
        numerics_period_s: float | None = 1.0,
        alarms_period_s: float | None = 2.0,
        waves: bool = True,
        wave_poll_period_s: float = 60.0,
        keep_alive_s: float = 3.0,
        silence_s: float = 10.0,
        answer_timeout_s: float = 5.0,
        retry_s: float = 5.0,
        poll_ext_options: int = msg.DEFAULT_POLL_EXT_OPTIONS,
    ) -> None:
        self.tick_s = tick_s
        self._numerics_period = numerics_period_s
        self._alarms_period = alarms_period_s
        self._waves_wanted = waves
        self._wave_period = wave_poll_period_s
        self._keep_alive = keep_alive_s
        self._silence = silence_s
        self._answer_timeout = answer_timeout_s
        self._retry = retry_s
        self._options = poll_ext_options if waves else poll_ext_options & ~msg.POLL_EXT_PERIOD_RTSA
        self.state = IDLE
        self.granted_options = 0
        self.associations = 0  # association requests sent, for status and tests
        self._invoke_id = 0
        self._poll_number = 0
        self._since = 0.0  # when the current state began
        self._last_rx = 0.0
        self._last_tx = 0.0
        self._next_numerics = 0.0
        self._next_alarms = 0.0
        self._next_waves: float | None = None
        self._wave_invoke: int | None = None

    # --- transport.Conversation ---------------------------------------------------------

    def opened(self, now: float) -> list[bytes]:
        return self._associate(now)

    def received(self, frame: bytes, now: float) -> list[bytes]:
        try:
            message = parse_user_data(unframe(frame), HEADER_LEN)
        except DecodeError:
            return []
        self._last_rx = now
        if isinstance(message, msg.SessionMessage):
            return self._session(message, now)
        if isinstance(message, msg.EventReport):
            return self._event(message, now)
        if isinstance(message, msg.RemoteError) and message.invoke_id == self._wave_invoke:
            # The monitor cannot export waves after all: stop asking this association.
            self._next_waves = None
        return []

    def tick(self, now: float) -> list[bytes]:
        if self.state == ASSOCIATING and now - self._since >= self._answer_timeout:
            return self._associate(now)
        if self.state == WAITING and now - self._since >= self._retry:
            return self._associate(now)
        if self.state in (AWAITING_MDS, POLLING) and now - self._last_rx >= self._silence:
            # The monitor has gone quiet (cable, power, its own timeout): clear whatever
            # it still believes and start over.
            return self._send([msg.abort()], now) + self._associate(now)
        if self.state == POLLING:
            return self._polls(now)
        return []

    # --- beyond the protocol ------------------------------------------------------------

    def close(self, now: float) -> list[bytes]:
        """The release request, when associated; the monitor answers 0x0A."""
        if self.state not in (AWAITING_MDS, POLLING):
            return []
        self._enter(RELEASING, now)
        return self._send([msg.release_request()], now)

    @property
    def waves_granted(self) -> bool:
        return bool(self.granted_options & msg.POLL_EXT_PERIOD_RTSA)

    # --- internals ----------------------------------------------------------------------

    def _enter(self, state: str, now: float) -> None:
        self.state = state
        self._since = now

    def _send(self, messages: list[bytes], now: float) -> list[bytes]:
        if messages:
            self._last_tx = now
        return [encode_frame(m) for m in messages]

    def _next_invoke(self) -> int:
        self._invoke_id = (self._invoke_id + 1) & 0xFFFF
        return self._invoke_id

    def _next_poll(self) -> int:
        self._poll_number = (self._poll_number + 1) & 0xFFFF
        return self._poll_number

    def _associate(self, now: float) -> list[bytes]:
        self._enter(ASSOCIATING, now)
        self.granted_options = 0
        self._next_waves = None
        self._wave_invoke = None
        self.associations += 1
        return self._send([msg.association_request(self._options)], now)

    def _session(self, message: msg.SessionMessage, now: float) -> list[bytes]:
        if message.spdu == msg.AC_SPDU and self.state == ASSOCIATING:
            profile = message.poll_profile
            self.granted_options = (profile.ext_options or 0) if profile else 0
            self._enter(AWAITING_MDS, now)
        elif message.spdu == msg.RF_SPDU and self.state == ASSOCIATING:
            self._enter(WAITING, now)  # another client holds the monitor: try later
        elif message.spdu == msg.DN_SPDU and self.state == RELEASING:
            self._enter(RELEASED, now)
        elif message.spdu == msg.FN_SPDU:
            self._enter(WAITING, now)
            return self._send([msg.release_response()], now)
        elif message.spdu in (msg.AB_SPDU, msg.DN_SPDU) and self.state != RELEASED:
            self._enter(WAITING, now)
        return []

    def _event(self, report: msg.EventReport, now: float) -> list[bytes]:
        out: list[bytes] = []
        if report.confirmed:
            out.append(
                msg.event_report_result(
                    report.invoke_id, report.managed_object, report.event_time, report.event_type
                )
            )
        if report.event_type == msg.NOM_NOTI_MDS_CREAT and self.state in (
            ASSOCIATING,  # the association response was lost, the MDS Create was not
            AWAITING_MDS,
        ):
            self._enter(POLLING, now)
            self._next_numerics = now
            # Half a period apart, so the monitor never gets two polls at once.
            self._next_alarms = now + (self._alarms_period or 0) / 2
            if self._waves_wanted and self.waves_granted:
                self._next_waves = now
        frames = self._send(out, now)
        if self.state == POLLING:
            frames += self._polls(now)
        return frames

    def _polls(self, now: float) -> list[bytes]:
        out: list[bytes] = []
        if self._numerics_period is not None and now >= self._next_numerics:
            out.append(
                msg.poll_request(self._next_invoke(), self._next_poll(), msg.NOM_MOC_VMO_METRIC_NU)
            )
            self._next_numerics = _next(self._next_numerics, self._numerics_period, now)
        if self._alarms_period is not None and now >= self._next_alarms:
            out.append(
                msg.poll_request(
                    self._next_invoke(),
                    self._next_poll(),
                    msg.NOM_MOC_VMO_AL_MON,
                    msg.NOM_ATTR_GRP_AL_MON,
                )
            )
            self._next_alarms = _next(self._next_alarms, self._alarms_period, now)
        if self._next_waves is not None and now >= self._next_waves:
            self._wave_invoke = self._next_invoke()
            out.append(
                msg.extended_poll_request(
                    self._wave_invoke,
                    self._next_poll(),
                    msg.NOM_MOC_VMO_METRIC_SA_RT,
                    period_s=self._wave_period,
                )
            )
            # Renew a little before the period ends so the wave stream has no gap.
            self._next_waves = now + max(self._wave_period - 2.0, self._wave_period / 2)
        if not out and now - self._last_tx >= self._keep_alive:
            out.append(msg.keep_alive_request(self._next_invoke(), self._next_poll()))
        return self._send(out, now)


def _next(due: float, period: float, now: float) -> float:
    """The next due time on the same grid, skipping slots missed by a stalled loop."""
    due += period
    return due if due > now else now + period
