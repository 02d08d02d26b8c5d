"""The recorder: everything a frame produces goes into the store in one transaction.

For each frame: the decoder's verdict, then in the same transaction the raw bytes with
the decoded readings, device alarms and an outbox row, or, for a frame the decoder
rejects, a quarantine row with the reason and the raw bytes, within the device's
quarantine budget (edge_agent.quarantine: the first bad frames and a sample keep their
bytes, every one is counted). A frame that decodes is always kept whole; as the
transaction is atomic, deciding before writing loses nothing. Several frames share one
durable commit (group commit): an SD card manages few fsyncs per second, a monitor
sends many frames.

A serial port whose recent frames are mostly rejects is read with the wrong driver or at
the wrong baud rate: its device state says so (`rejecting`, "wrong driver or baud rate:
...") until good frames return; nothing of such a stream is a reading, as nothing of it
decodes.

What a driver's frames are is its declaration's (device_drivers.declaration), read per
frame: a whole recording (a 12-lead cart's file) or a frame of vitals; whether a reading
with no visit open is held (personal devices); whether an old device time is a wrong
clock (live results); whether the reject watch runs (serial ports). How often a device's
vitals go up is its driver's too (`upload_every_s`, given per device by the daemon). A
frame of a driver the registry does not know (none comes from a configured device) is
treated as a monitor's.

Whose readings a frame's are is decided here, against the store as this transaction
sees it, never when the frame arrived: a resident's withdrawal of consent (edge_agent.
consent, an operation the daemon runs between two group commits) ends their visits, so
a frame recorded in any later group commit, even one read from the port before the
withdrawal, is not bound to them. While the station's last visit is one a withdrawal
ended, its device's readings are held (`consent-withdrawn`) for a doctor to assign,
not sent unbound; a 12-lead is never held (it is the ER's), it goes up unbound.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from device_drivers import registry
from device_drivers.declaration import Binding, Driver, Results
from edge_agent import alerts, national_id
from edge_agent.clock import (
    DEVICE_CLOCK_SKEW_FLAG,
    ClockSync,
    device_clock_skewed,
    new_message_id,
)
from edge_agent.model import (
    HELD_CONSENT_WITHDRAWN,
    HELD_NO_VISIT,
    HELD_PATIENT_CONFLICT,
    Decoded,
    DecodeError,
    DeviceAlarm,
    Frame,
    Reading,
    SourcePatient,
)
from edge_agent.quarantine import QuarantineBudget, RejectWatch
from edge_agent.stemi import acute_mi_statement
from edge_agent.store import EncounterRow, StoreWriter

log = logging.getLogger(__name__)


class RuleEngine(Protocol):
    """What the recorder asks of the clinical rules (edge_agent.rules.engine)."""

    def evaluate(
        self,
        store: StoreWriter,
        frame: Frame,
        raw_frame_id: int,
        encounter_id: int | None,
        readings: Sequence[Reading],
    ) -> None: ...


Decoder = Callable[[bytes], Decoded]

# Outbox priorities: lower goes first. A 12-lead and its STEMI notice outrank alarms,
# alarms outrank routine vitals, continuous strips go last (issues 5 and 6 use these).
PRIORITY_STEMI = 0
PRIORITY_ECG = 1
PRIORITY_ALARM = 1
PRIORITY_VITALS = 5
PRIORITY_STRIPS = 8

KIND_ORU_R01 = "oru_r01"
KIND_ADT_A14 = "adt_a14"  # pre-arrival notice to the receiving ER (issue 5)

STEMI_ALARM_CODE = "ECG_STEMI"
STEMI_ALERT_TEXT = "12导联心电图: 机器判读为急性心肌梗死/STEMI"
STEMI_ALERT_TEXT_EN = "12-lead: the cart reads acute MI / STEMI"

# A reading flagged like this is a progress display (BLE intermediate cuff pressure),
# not a result: the raw frame is kept, nothing is stored as a measurement or sent.
PROGRESS_FLAG = "intermediate"


@dataclass(frozen=True, slots=True)
class Recorded:
    # None: a bad frame only counted, its bytes beyond the device's quarantine budget.
    raw_frame_id: int | None
    outcome: str  # decoded | quarantined | progress | empty | duplicate
    observations: int
    message_id: str | None
    reason: str | None = None


class Recorder:
    """Owns the write path from frames to the store (the store owns the connection)."""

    def __init__(
        self,
        store: StoreWriter,
        *,
        new_id: Callable[[int], str] = new_message_id,
        upload_every_s: Mapping[str, float] | None = None,
        rules: RuleEngine | None = None,
        quarantine: QuarantineBudget | None = None,
        tz: str = "Asia/Shanghai",
        clock_synchronised: Callable[[], bool] | None = None,
    ) -> None:
        self._store = store
        self._budget = quarantine or QuarantineBudget()
        self._watch = RejectWatch()
        self._new_id = new_id
        # `agent.timezone`: the zone a device's naive clock shows (clock.device_instant).
        self._tz = tz
        # Device clocks are judged against the box's only while the box's own clock is
        # synchronised (clock.kernel_clock_synchronised); otherwise nothing is flagged.
        self._clock_synchronised = clock_synchronised or ClockSync()
        # Clinical rules (NEWS2, follow-up thresholds) judged in the same transaction.
        self._rules = rules
        # Per device: numerics go up at most this often (its driver's Uplink.every_s,
        # which the daemon gives for each device); not given: every frame.
        self._upload_every_ns = {
            device: int(seconds * 1e9) for device, seconds in (upload_every_s or {}).items()
        }
        self._last_upload_ns: dict[str, int] = {}
        # Each driver's declaration, as the registry gave it (one dict look-up a frame).
        self._declarations: dict[str, Driver] = {}
        # Per device: the alarm codes of its last frame. A monitor repeats an active alarm
        # in every frame (a Nonin 3 times a second); it becomes an alert and goes up once,
        # when it appears, not with every repetition.
        self._active_alarms: dict[str, frozenset[str]] = {}

    def _declaration(self, driver_id: str) -> Driver | None:
        spec = self._declarations.get(driver_id)
        if spec is None:
            spec = registry.DRIVERS.get(driver_id)
            if spec is not None:
                self._declarations[driver_id] = spec
        return spec

    def record(self, frame: Frame, decoder: Decoder) -> Recorded:
        return self.record_many([(frame, decoder)])[0]

    def record_many(self, items: Sequence[tuple[Frame, Decoder]]) -> list[Recorded]:
        """All frames in one transaction; returns after the durable commit."""
        if not items:
            return []
        with self._store.transaction():
            return [self._record_one(frame, decoder) for frame, decoder in items]

    def _record_one(self, frame: Frame, decoder: Decoder) -> Recorded:
        store = self._store
        spec = self._declaration(frame.driver)
        channel = frame.extra.get("channel")
        if frame.dedup_key is not None and store.frames.seen_dedup_key(
            frame.device_id, frame.dedup_key
        ):
            # The bytes are kept (what the device sent, when), the readings are not
            # counted twice.
            raw_id = store.frames.insert(frame, channel, sealed=_identity(spec))
            store.frames.set_outcome(raw_id, "duplicate")
            store.devices.count_frame(frame, quarantined=False)
            return Recorded(raw_id, "duplicate", 0, None)
        try:
            decoded = decoder(frame.data)
        except DecodeError as exc:
            return self._quarantine(frame, spec, channel, exc.reason, exc.offset)
        except Exception as exc:
            recorded = self._quarantine(
                frame, spec, channel, f"decoder fault: {type(exc).__name__}: {exc}", None
            )
            if recorded.raw_frame_id is not None and _identity(spec):
                # Its message may quote the frame (a name): the kind of fault only.
                log.error(
                    "decoder for %s crashed on frame %d: %s",
                    frame.driver,
                    recorded.raw_frame_id,
                    type(exc).__name__,
                )
            elif recorded.raw_frame_id is not None:  # the traceback as often as the bytes
                log.exception(
                    "decoder for %s crashed on frame %d", frame.driver, recorded.raw_frame_id
                )
            return recorded
        raw_id = store.frames.insert(frame, channel, sealed=_identity(spec))
        self._line_outcome(frame, spec, None)

        if spec is not None and spec.yields.recording:
            return self._record_ecg(raw_id, frame, spec, decoded)
        readings = [r for r in decoded.readings if PROGRESS_FLAG not in r.flags]
        if not readings and not decoded.alarms and not decoded.waveforms:
            outcome = "progress" if decoded.readings else "empty"
            store.frames.set_outcome(raw_id, outcome)
            store.devices.count_frame(frame, quarantined=False)
            return Recorded(raw_id, outcome, 0, None)
        readings = self._flag_skewed_clocks(frame, spec, readings)

        encounter, withheld = self._binding(frame.device_id)
        named = _national_id(decoded.patient)
        conflict = encounter is not None and self._names_someone_else(named, encounter)
        self._record_source(raw_id, decoded, named, conflict)
        if conflict:
            # The monitor says it measures someone other than the open visit's resident:
            # whose readings these are is not guessed. They are kept unbound and held
            # until the crew or doctor assigns them (`edge-agent readings assign`). The
            # log names no one (personal data stays in the store).
            log.warning(
                "frame %d from %s names another resident than the open visit's: held",
                raw_id,
                frame.device_id,
            )
            encounter = None
        encounter_id = None if encounter is None else encounter.id
        if encounter_id is not None:
            store.frames.set_encounter(raw_id, encounter_id)
        if readings:
            store.frames.insert_observations(raw_id, frame, encounter_id, readings)
        if decoded.waveforms:
            # Monitor waves: stored for the trend and the hand-off; not sent per frame.
            store.frames.insert_waveforms(raw_id, frame, encounter_id, decoded.waveforms)
        raised, ended = self._alarm_changes(frame.device_id, readings, decoded)
        device_subject = alerts.subject_for(None, frame.device_id)
        for alarm in raised:
            alerts.raise_finding(
                store,
                frame,
                alerts.Finding(
                    alarm.code,
                    alarm.priority,
                    alarm.text,
                    alarm.text,
                    alarm.code,
                    physiological=alarm.physiological,
                ),
                subject=device_subject,
                source="device",
                raw_frame_id=raw_id,
                new_id=self._new_id,
            )
        for code in ended:
            alerts.clear_condition(
                store, frame, subject=device_subject, condition_key=code, new_id=self._new_id
            )
        if readings and self._rules is not None and not conflict:
            self._rules.evaluate(store, frame, raw_id, encounter_id, readings)
        message_id = None
        # A new alarm sends its frame's readings at once, ahead of the queue. An alarm
        # with no reading beside it (an IntelliVue alarm poll) stays a local alert: a
        # PCD-01 ORU^R01 carries observations; alarms proper go as ORU^R40 (docs/contracts.md),
        # which the alarm work adds.
        worth = _worth_sending(readings)
        if worth and (raised or self._upload_due(frame)):
            message_id = self._new_id(frame.received_wall_ns)
            self._last_upload_ns[frame.device_id] = frame.received_wall_ns
            store.outbox.insert_for_frame(
                message_id,
                frame,
                held=conflict
                or withheld
                or (encounter is None and spec is not None and spec.binding is Binding.PERSONAL),
                held_reason=HELD_PATIENT_CONFLICT
                if conflict
                else (HELD_CONSENT_WITHDRAWN if withheld else HELD_NO_VISIT),
                kind=KIND_ORU_R01,
                priority=PRIORITY_ALARM if raised else PRIORITY_VITALS,
                raw_frame_id=raw_id,
            )
        store.frames.set_outcome(raw_id, "decoded")
        store.devices.count_frame(frame, quarantined=False)
        return Recorded(raw_id, "decoded", len(readings), message_id)

    def _record_ecg(self, raw_id: int, frame: Frame, spec: Driver, decoded: Decoded) -> Recorded:
        """A whole recording (a 12-lead): measurements, leads, statements and the cart's
        model and patient sex/age (ecg_context) stored; the whole ECG goes up in its
        lane, ahead of any backlog. If the cart's statements say acute MI / STEMI, an
        alert is raised and a pre-arrival notice to the ER goes first of all (prealert
        table)."""
        store = self._store
        if not decoded.waveforms:
            store.frames.set_outcome(raw_id, "empty")
            store.devices.count_frame(frame, quarantined=False)
            return Recorded(raw_id, "empty", 0, None, "no leads in the ECG file")
        encounter, _withheld = self._binding(frame.device_id)
        encounter_id = None if encounter is None else encounter.id
        if encounter_id is not None:
            store.frames.set_encounter(raw_id, encounter_id)
        readings = self._flag_skewed_clocks(frame, spec, list(decoded.readings))
        if readings:
            store.frames.insert_observations(raw_id, frame, encounter_id, readings)
        store.frames.insert_waveforms(raw_id, frame, encounter_id, decoded.waveforms)
        if decoded.statements:
            store.ecg.insert_statements(raw_id, frame, encounter_id, decoded.statements)
        if decoded.context:
            store.ecg.insert_context(raw_id, decoded.context)
        acute = acute_mi_statement(decoded.statements)
        message_id = self._new_id(frame.received_wall_ns)
        store.outbox.insert_for_frame(
            message_id,
            frame,
            kind=KIND_ORU_R01,
            priority=PRIORITY_STEMI if acute else PRIORITY_ECG,
            raw_frame_id=raw_id,
        )
        if acute is not None:
            # The alert names the finding, not the cart's words: a statement is free text
            # a cart may write the patient into, and alerts are read without keys (the
            # statement itself is stored sealed and goes up with the 12-lead).
            alerts.raise_finding(
                store,
                frame,
                alerts.Finding(
                    STEMI_ALARM_CODE,
                    "high",
                    STEMI_ALERT_TEXT,
                    STEMI_ALERT_TEXT_EN,
                    STEMI_ALARM_CODE,
                ),
                subject=alerts.subject_for(encounter_id, frame.device_id),
                source="device",
                raw_frame_id=raw_id,
                new_id=self._new_id,
            )
            self.prealert(
                frame,
                encounter_id=encounter_id,
                ecg_frame_id=raw_id,
                stemi=True,
                source="ecg",
                complaint=f"STEMI on 12-lead ECG: {acute.text}",
            )
        store.frames.set_outcome(raw_id, "decoded")
        store.devices.count_frame(frame, quarantined=False)
        return Recorded(raw_id, "decoded", len(readings), message_id)

    def prealert(
        self,
        frame: Frame,
        *,
        encounter_id: int | None,
        ecg_frame_id: int | None,
        stemi: bool,
        source: str,
        complaint: str,
        destination: str | None = None,
        eta_minutes: int | None = None,
    ) -> str:
        """A pre-arrival notice (ADT^A14) to the receiving ER, first in the queue.

        `frame` only gives the time and boot the notice is dated with. The crew's own
        notice (`edge-agent prealert`) uses the same path with source "crew"."""
        message_id = self._new_id(frame.received_wall_ns)
        self._store.outbox.insert_for_frame(
            message_id,
            frame,
            kind=KIND_ADT_A14,
            priority=PRIORITY_STEMI,
        )
        self._store.prealerts.insert(
            outbox_id=message_id,
            encounter_id=encounter_id,
            ecg_frame_id=ecg_frame_id,
            stemi=stemi,
            source=source,
            destination=destination,
            eta_minutes=eta_minutes,
            complaint=complaint,
            created_wall_ns=frame.received_wall_ns,
        )
        return message_id

    def _binding(self, device_id: str) -> tuple[EncounterRow | None, bool]:
        """The visit a frame of this device binds to, and whether a withdrawal of consent
        withholds its readings: the open visit's resident has withdrawn (a visit left
        open by a store written before withdrawals ended visits), or the station's last
        visit is one a withdrawal ended. Asked in the recorder's transaction (see the
        module's docstring)."""
        visit = self._store.patients.station_visit(device_id)
        return (None, True) if visit.withdrawn else (visit.open, False)

    def _flag_skewed_clocks(
        self, frame: Frame, spec: Driver | None, readings: list[Reading]
    ) -> list[Reading]:
        """Readings whose device clock is more than 5 minutes off the box's (while the
        box's clock is synchronised) get DEVICE_CLOCK_SKEW_FLAG; both times are kept
        (device_time and the frame's received_wall_ns). Nothing is shifted here."""
        if not any(r.device_time is not None for r in readings):
            return readings
        if not self._clock_synchronised():
            return readings
        live = spec is None or spec.results is Results.LIVE
        return [
            dataclasses.replace(r, flags=(*r.flags, DEVICE_CLOCK_SKEW_FLAG))
            if r.device_time is not None
            and DEVICE_CLOCK_SKEW_FLAG not in r.flags
            and device_clock_skewed(r.device_time, frame.received_wall_ns, self._tz, live=live)
            else r
            for r in readings
        ]

    def _record_source(
        self, raw_id: int, decoded: Decoded, named: str | None, conflict: bool
    ) -> None:
        """Keep what the frame said about its source (an HL7 monitor's EUI-64 and PID,
        the resident identity number it names, whether that conflicted with the visit)."""
        if decoded.device_eui64 is None and decoded.patient is None:
            return
        self._store.frames.insert_source(
            raw_id,
            device_eui64=decoded.device_eui64,
            patient=decoded.patient,
            national_id=named,
            conflict=conflict,
        )

    def _names_someone_else(self, named: str | None, encounter: EncounterRow) -> bool:
        """The frame names a resident (a valid national id) other than the visit's. An
        identifier that is not a national id (a ward's MRN) cannot be compared: the
        readings stay with the visit, and the monitor's PID is kept beside them."""
        if named is None:
            return False
        resident = self._store.patients.get(encounter.patient_id)
        return resident is not None and resident.national_id.upper() != named

    def _alarm_changes(
        self, device_id: str, readings: Sequence[Reading], decoded: Decoded
    ) -> tuple[list[DeviceAlarm], list[str]]:
        """The frame's alarms its device's previous frame did not have, and the codes
        the previous frame had that this one no longer shows (the alarm has ended)."""
        if not readings and not decoded.alarms:
            return [], []  # a frame of waves only says nothing about the alarm state
        before = self._active_alarms.get(device_id, frozenset())
        now = frozenset(a.code for a in decoded.alarms)
        self._active_alarms[device_id] = now
        return [a for a in decoded.alarms if a.code not in before], sorted(before - now)

    def _upload_due(self, frame: Frame) -> bool:
        every = self._upload_every_ns.get(frame.device_id, 0)
        if every <= 0:
            return True
        last = self._last_upload_ns.get(frame.device_id)
        # A wall clock set backwards (no RTC, NTP catching up) must not stop uploads.
        return last is None or not 0 <= frame.received_wall_ns - last < every

    def _quarantine(
        self,
        frame: Frame,
        spec: Driver | None,
        channel: str | None,
        reason: str,
        offset: int | None,
    ) -> Recorded:
        """A rejected frame: counted always, its bytes kept within the device's budget."""
        store, budget, device = self._store, self._budget, frame.device_id
        if not budget.known(device):
            budget.load(device, store.quarantine.kept(device), store.quarantine.reason_keys(device))
        keep = budget.keep(device, frame.received_wall_ns)
        raw_id: int | None = None
        sealed = _identity(spec)
        key = budget.key(device, reason)
        if keep:
            raw_id = store.frames.insert(frame, channel, sealed=sealed)
            store.quarantine.insert(raw_id, frame, reason, offset, sealed=sealed)
            store.frames.set_outcome(raw_id, "quarantined")
            # Bounded like the rows: a port of noise must not fill the log either. A
            # frame that may name the patient is logged with its reason's kind (what
            # the reason quotes blanked): logs carry no personal data.
            log.warning(
                "quarantined frame %d from %s (%s): %s",
                raw_id,
                device,
                frame.driver,
                key if sealed else reason,
            )
        store.quarantine.tally(frame, key, reason, kept=keep, sealed=sealed)
        store.devices.count_frame(frame, quarantined=True)
        self._line_outcome(frame, spec, reason)
        return Recorded(raw_id, "quarantined", 0, None, reason)

    def _line_outcome(self, frame: Frame, spec: Driver | None, rejected: str | None) -> None:
        """Feed the reject watch of a serial device; write its state when it changes.

        `rejected` is the reason of a rejected frame, None for a frame that decoded. Not
        ECG carts on a serial line (Driver.watches_rejects): a file now and then is no
        window."""
        if spec is None or not spec.watches_rejects:
            return
        device = frame.device_id
        change = self._watch.note(device, rejected is not None)
        if change is False:
            self._store.devices.mark_line_clear(device, frame.received_wall_ns)
            log.info("%s: valid frames again", device)
        elif rejected is not None and self._watch.rejecting(device):
            # Also while it goes on: a reopened port ("connected") is still read wrong.
            detail = self._watch.detail(device, rejected)
            self._store.devices.mark_line_rejecting(device, detail, frame.received_wall_ns)
            if change:
                log.warning("%s (%s): %s", device, frame.driver, detail)


def _national_id(patient: SourcePatient | None) -> str | None:
    """The resident identity number a device's PID names (any identifier type: monitors
    rarely type it NNCHN), None when it names none that is valid (GB 11643 check)."""
    if patient is None:
        return None
    try:
        return national_id.parse(patient.identifier).number
    except national_id.NationalIdError:
        return None


def _identity(spec: Driver | None) -> bool:
    """The frame may name the patient (its driver's declaration): its bytes are sealed.
    A driver the registry does not know is read as a monitor's, whose frames do not."""
    return spec is not None and spec.carries_identity


def _worth_sending(readings: Sequence[Reading]) -> bool:
    # A probe-off line (all dashes) is kept locally for the trend, but the county
    # platform gets measurements, not a stream of "nothing measured".
    return any(r.value is not None for r in readings)
