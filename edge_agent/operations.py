"""Every change a person makes to the box's store, as one named operation.

The CLI and the UI never write the store beside the daemon (docs/contracts.md: one writer).
`perform` sends an operation to the running daemon over its control socket; only when
no daemon holds the writer lock does it open the store itself, holding the lock for the
length of the change. Either way the same function below does the work, with the
caller's identity given by the transport (the OS user from SO_PEERCRED, or this
process's user) and never by a free-text option, and records who did it in the same
transaction (`operation_log`).

An operation's arguments are one typed request (a frozen dataclass below, named by its
`op`); `run` checks what arrives (from the socket, or this process) against its fields
here, the one place the types and sizes are checked, and the operation is one call of
the service that owns the change (edge_agent.patients, .crew_entries, .alerts,
.pairing), which checks the content and whose answer is the JSON the CLI prints.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sqlite3
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from edge_agent import (
    alerts,
    audit,
    consent,
    control,
    crew_entries,
    export,
    followup,
    key_rotation,
    kiosk_card,
    kiosk_sign_in,
    pairing,
    patients,
    users,
    writer_route,
)
from edge_agent.clock import Clock, SystemClock
from edge_agent.config import Config
from edge_agent.control import STATUS_FAILED, STATUS_USAGE, Caller, OpError
from edge_agent.crypto import keyring as keyring_file
from edge_agent.crypto.suites import SUITES
from edge_agent.model import Refused
from edge_agent.national_id import NationalIdError
from edge_agent.rules.engine import ClinicalRules
from edge_agent.store import PersonalDataLocked, StoreError, StoreWriter
from edge_agent.writer_lock import WriterLock

log = logging.getLogger(__name__)

# A CLI command that finds the lock held but nobody on the socket (another CLI command
# writing, the daemon starting or stopping) looks again for this long.
ROUTE_WAIT_S = 15.0
MAX_TEXT = 1000  # any free-text argument (names, complaints, destinations)
MAX_FRAMES = 10_000  # frame ids in one `readings assign`
MAX_SIGNS = 64  # danger signs ticked in one `followup` (edge_agent.rules.chronic has 20)
KIOSK = "kiosk"  # agent.role of a health hut's self-service box
# The audit row of a visit a withdrawal of consent ended says so.
VISIT_ENDED_BY_WITHDRAWAL = "ended by the resident's withdrawal of consent"


@dataclass
class Services:
    """What an operation may use: the writer store and the box's clock and config."""

    store: StoreWriter
    clock: Clock
    config: Config
    wake_uplink: Callable[[], None] = field(default=lambda: None)
    # The daemon's sealing pass (edge_agent.key_rotation), woken after `keys rotate`;
    # None: no pass runs in this process (a command re-seals itself, with progress).
    wake_reseal: Callable[[], None] | None = None
    # The card on the kiosk's own ID-card reader (edge_agent.kiosk_card), in the daemon
    # of a box with `kiosk.id_card_reader`; None elsewhere.
    card_desk: kiosk_card.CardDesk | None = None

    def rules(self) -> ClinicalRules:
        return ClinicalRules.for_box(self.config)


@dataclass(frozen=True, slots=True)
class Done:
    result: dict[str, Any]
    subject: str | None  # what it changed, for the operation log ("alert:7")
    queued: bool = False  # it put rows in the outbox: wake the uplink
    # For the audit trail: a refusal the service recorded (a wrong PIN: its count is
    # kept, then the caller gets the error), whom to record it for when nobody was
    # signed in yet (user, role), and an action other than the op's own.
    refusal: str | None = None
    audit_as: tuple[str, str] | None = None
    action: str | None = None
    # Changes it made beside its own, each its own audit row: (op, subject, why) (a
    # withdrawal of consent ends the resident's open visits).
    also: tuple[tuple[str, str, str], ...] = ()


ITEMS = "items"  # a list field's metadata: the fewest and the most items it may carry
MAX_ITEMS = 10_000  # a list field without `items`: 0 to this many


def items(fewest: int, most: int) -> dict[str, tuple[int, int]]:
    """A list field's bounds, as its metadata: `field(metadata=items(1, 20))`."""
    return {ITEMS: (fewest, most)}


# --- the requests: one per operation, its arguments as fields ---------------------------
# A field's type says what the socket may carry for it (str, int, bool, float, a tuple or
# list of one of those sent as a JSON list, its length bounded by `items`; `| None` or a
# default: it may be left out).


@dataclass(frozen=True, slots=True)
class AddPatient:
    op: ClassVar[str] = "patients.add"
    national_id: str
    name: str
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class StartVisit:
    op: ClassVar[str] = "visit.start"
    national_id: str
    device: str = "*"
    patient_class: str = "O"


@dataclass(frozen=True, slots=True)
class EndVisit:
    op: ClassVar[str] = "visit.end"
    device: str = "*"


@dataclass(frozen=True, slots=True)
class ObserveVisit:
    op: ClassVar[str] = "visit.observe"
    device: str = "*"
    spo2_scale: int | None = None
    oxygen: bool | None = None
    acvpu: str | None = None

    def __post_init__(self) -> None:
        # An entry that says nothing NEWS2 can use is refused where it is made: in the
        # CLI before it takes the lock or asks the daemon, in the daemon on arrival.
        crew_entries.check_observation(self.spo2_scale, self.oxygen, self.acvpu)


@dataclass(frozen=True, slots=True)
class AssignReadings:
    op: ClassVar[str] = "readings.assign"
    national_id: str
    frames: tuple[int, ...] = field(metadata=items(1, MAX_FRAMES))
    patient_class: str = "O"


@dataclass(frozen=True, slots=True)
class AckAlert:
    op: ClassVar[str] = "alerts.ack"
    id: int


@dataclass(frozen=True, slots=True)
class Prealert:
    op: ClassVar[str] = "prealert"
    destination: str
    complaint: str
    eta: int | None = None
    stemi: bool = False
    device: str = "*"


@dataclass(frozen=True, slots=True)
class PairDevice:
    op: ClassVar[str] = "devices.pair"
    address: str
    driver: str
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ForgetDevice:
    op: ClassVar[str] = "devices.forget"
    address: str


@dataclass(frozen=True, slots=True)
class RotateKeys:
    op: ClassVar[str] = "keys.rotate"
    suite: str  # the suite the new key is in: the config's `security.suite`

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise Refused(f"keys rotate: suite {self.suite!r}: one of {', '.join(sorted(SUITES))}")


@dataclass(frozen=True, slots=True)
class ResealKeys:
    """Not a change of its own: the daemon's sealing pass is asked to run (its batches
    are the changes)."""

    op: ClassVar[str] = "keys.reseal"


@dataclass(frozen=True, slots=True)
class Ping:
    """Not a change: tells a UI that the daemon is there and answering."""

    op: ClassVar[str] = "ping"


# --- users, sign-in, the audit trail (docs/security.md) ---------------------------------
# A PIN travels only inside a request on the local socket (mode 0660), never in argv,
# a log line or the trail.


@dataclass(frozen=True, slots=True)
class ListPatients:
    """A read of everyone's record: through the daemon, so that it is audited."""

    op: ClassVar[str] = "patients.list"


@dataclass(frozen=True, slots=True)
class ListHeldReadings:
    """Readings waiting for a patient, with the resident a monitor's PID named: a read
    of personal data, so audited."""

    op: ClassVar[str] = "readings.unassigned"
    device: str | None = None


@dataclass(frozen=True, slots=True)
class AddUser:
    op: ClassVar[str] = "users.add"
    name: str
    role: str
    pin: str


@dataclass(frozen=True, slots=True)
class ListUsers:
    op: ClassVar[str] = "users.list"


@dataclass(frozen=True, slots=True)
class DisableUser:
    op: ClassVar[str] = "users.disable"
    name: str


@dataclass(frozen=True, slots=True)
class ResetPin:
    op: ClassVar[str] = "users.reset-pin"
    name: str
    pin: str


@dataclass(frozen=True, slots=True)
class SignIn:
    op: ClassVar[str] = "users.sign-in"
    name: str
    pin: str


@dataclass(frozen=True, slots=True)
class TouchSession:
    """The UI saw its user act (the request's session): its idle time starts again."""

    op: ClassVar[str] = "users.touch"


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """Whose the request's session is, and whether it is locked (the UI hides personal
    data while it is)."""

    op: ClassVar[str] = "users.session"


@dataclass(frozen=True, slots=True)
class ShowAudit:
    op: ClassVar[str] = "audit.show"
    person: str | None = None
    user: str | None = None
    since: str | None = None
    until: str | None = None
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class VerifyAudit:
    op: ClassVar[str] = "audit.verify"


# --- a resident's consent and their sign-in at a kiosk (docs/security.md) -------------


@dataclass(frozen=True, slots=True)
class KioskSignIn:
    """A resident at a kiosk: their national id number and the PIN of their first consent."""

    op: ClassVar[str] = "kiosk.sign-in"
    national_id: str
    pin: str


@dataclass(frozen=True, slots=True)
class GiveConsent:
    op: ClassVar[str] = "consent.give"
    national_id: str
    pin: str  # set at the first consent, checked at later ones
    version: str | None = None  # None: the current text (edge_agent.consent_text.CURRENT)


@dataclass(frozen=True, slots=True)
class WithdrawConsent:
    op: ClassVar[str] = "consent.withdraw"
    national_id: str


@dataclass(frozen=True, slots=True)
class ShowConsent:
    op: ClassVar[str] = "consent.show"
    national_id: str


@dataclass(frozen=True, slots=True)
class KioskCardSession:
    """The kiosk's screen asks what is on the kiosk's ID-card reader: the card's state,
    and the session of a resident it signed in, handed over once (edge_agent.kiosk_card)."""

    op: ClassVar[str] = "kiosk.card-session"


@dataclass(frozen=True, slots=True)
class ExportPatient:
    """A resident's record out of the box (edge_agent.export): sealed with `passphrase`
    unless `encrypt` is false. The passphrase travels only on the local socket."""

    op: ClassVar[str] = "export"
    national_id: str
    format: str
    passphrase: str | None = None
    encrypt: bool = True


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A chronic-disease follow-up judged from a resident's stored readings
    (edge_agent.followup): a read of their identity and record, so audited."""

    op: ClassVar[str] = "followup"
    national_id: str
    disease: str
    signs: tuple[str, ...] = field(default=(), metadata=items(0, MAX_SIGNS))
    previous_uncontrolled: int = 0
    days: float = followup.DEFAULT_DAYS


Change = (
    AddPatient
    | StartVisit
    | EndVisit
    | ObserveVisit
    | AssignReadings
    | AckAlert
    | Prealert
    | PairDevice
    | ForgetDevice
    | RotateKeys
    | ResealKeys
    | ListPatients
    | ListHeldReadings
    | AddUser
    | ListUsers
    | DisableUser
    | ResetPin
    | SignIn
    | TouchSession
    | SessionInfo
    | ShowAudit
    | VerifyAudit
    | KioskSignIn
    | GiveConsent
    | WithdrawConsent
    | ShowConsent
    | ExportPatient
    | FollowUp
    | KioskCardSession
)


class _Request(Protocol):
    op: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]


R = TypeVar("R", bound=_Request)


def _given_type(hint: Any) -> Any:
    """What a field holds when it is given: `X | None` -> X."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    return hint


# What a value of each kind must be, as an error says it (a list's: its items').
_MUST_BE = {
    int: "a whole number",
    bool: "true or false",
    float: "a finite number",
    str: f"text of at most {MAX_TEXT} characters",
}
_ITEMS_ARE = {
    int: "whole numbers",
    bool: "true or false values",
    float: "finite numbers",
    str: f"texts of at most {MAX_TEXT} characters",
}


def _scalar(kind: Any, value: object) -> object | None:
    """`value` as a field of type `kind` holds it (JSON's number as a float), or None
    when it is not one: a bool is not a number, NaN and infinities are not finite, text
    is bounded and has no NUL."""
    if kind is bool:
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if kind is int:
        return value if isinstance(value, int) else None
    if kind is float:
        if not isinstance(value, int | float):
            return None
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            return None
        return number if math.isfinite(number) else None
    if kind is str:
        ok = isinstance(value, str) and len(value) <= MAX_TEXT and "\x00" not in value
        return value if ok else None
    raise TypeError(f"a request field of type {kind!r} cannot come from the socket")


def _checked_value(op: str, f: dataclasses.Field[Any], hint: Any, value: object) -> object:
    """`value` (from JSON) as field `f` of type `hint` holds it; OpError (usage) if not."""
    origin = typing.get_origin(hint)
    if origin not in (tuple, list):
        checked_value = _scalar(hint, value)
        if checked_value is None:
            raise OpError(f"{op}: {f.name} must be {_MUST_BE[hint]}", STATUS_USAGE)
        return checked_value
    kind = typing.get_args(hint)[0]
    fewest, most = f.metadata.get(ITEMS, (0, MAX_ITEMS))
    what = f"{op}: {f.name} must be a list of {_ITEMS_ARE[kind]}"
    if not isinstance(value, list):
        raise OpError(what, STATUS_USAGE)
    if not fewest <= len(value) <= most:
        raise OpError(f"{what}, {fewest} to {most} of them", STATUS_USAGE)
    given = [_scalar(kind, v) for v in value]
    if any(v is None for v in given):
        raise OpError(what, STATUS_USAGE)
    return tuple(given) if origin is tuple else given


def checked(request: type[R], args: Mapping[str, Any]) -> R:
    """The request `args` make (JSON from the socket): OpError (usage) naming the first
    argument that is unknown, missing, of the wrong type or too long."""
    op = request.op
    fields = dataclasses.fields(request)
    unknown = sorted(set(args) - {f.name for f in fields})
    if unknown:
        raise OpError(f"{op}: unknown argument {str(unknown[0])[:40]!r}", STATUS_USAGE)
    hints = typing.get_type_hints(request)
    given: dict[str, object] = {}
    for f in fields:
        value = args.get(f.name)
        if value is None:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise OpError(f"{op}: argument {f.name!r} is missing", STATUS_USAGE)
            continue  # its default
        given[f.name] = _checked_value(op, f, _given_type(hints[f.name]), value)
    return request(**given)


def as_args(request: Change) -> dict[str, Any]:
    """A request as the socket carries it (JSON: a tuple goes as a list)."""
    return {
        f.name: list(value) if isinstance(value := getattr(request, f.name), tuple) else value
        for f in dataclasses.fields(request)
    }


# --- the operations: each one call of the service that owns the change ------------------


def _patients_add(s: Services, caller: Caller, r: AddPatient) -> Done:
    registration = patients.register(
        s.store, s.clock, national_id_number=r.national_id, name=r.name, phone=r.phone
    )
    return Done(registration.as_json(), f"patient:{registration.patient.id}")


def _visit_start(s: Services, caller: Caller, r: StartVisit) -> Done:
    encounter = patients.start_visit(
        s.store,
        s.clock,
        kiosk=s.config.agent.role == KIOSK,
        national_id_number=r.national_id,
        station=r.device,
        patient_class=r.patient_class,
    )
    return Done({"encounter": encounter, "station": r.device}, f"encounter:{encounter}")


def _visit_end(s: Services, caller: Caller, r: EndVisit) -> Done:
    ended = patients.end_visit(s.store, s.clock, station=r.device)
    return Done({"ended": ended, "station": r.device}, f"station:{r.device}")


def _visit_observe(s: Services, caller: Caller, r: ObserveVisit) -> Done:
    observed = crew_entries.observe(
        s.store,
        s.clock,
        s.rules(),
        station=r.device,
        scale=r.spo2_scale,
        oxygen=r.oxygen,
        acvpu=r.acvpu,
        by=caller.user,
    )
    return Done(observed.news2.as_json(), observed.subject, queued=True)


def _readings_assign(s: Services, caller: Caller, r: AssignReadings) -> Done:
    assigned = patients.assign_readings(
        s.store,
        s.clock,
        kiosk=s.config.agent.role == KIOSK,
        national_id_number=r.national_id,
        frame_ids=list(r.frames),
        patient_class=r.patient_class,
    )
    frames = ",".join(map(str, r.frames[:20]))
    return Done({"assigned": assigned}, f"frames:{frames}", queued=True)


def _alerts_ack(s: Services, caller: Caller, r: AckAlert) -> Done:
    alert = alerts.acknowledge(s.store, r.id, by=caller.user, wall_ns=s.clock.wall_ns())
    return Done(alert.as_json(), f"alert:{r.id}")


def _prealert(s: Services, caller: Caller, r: Prealert) -> Done:
    message_id = crew_entries.prealert(
        s.store,
        s.clock,
        destination=r.destination,
        complaint=r.complaint,
        eta_minutes=r.eta,
        stemi=r.stemi,
        station=r.device,
    )
    return Done({"prealert": message_id, "stemi": r.stemi}, f"outbox:{message_id}", True)


def _devices_pair(s: Services, caller: Caller, r: PairDevice) -> Done:
    paired = pairing.pair(
        s.store,
        s.clock,
        s.config,
        address=r.address,
        driver=r.driver,
        device_id=r.id,
        name=r.name,
    )
    return Done(paired.as_json(), f"device:{paired.device_id}")


def _devices_forget(s: Services, caller: Caller, r: ForgetDevice) -> Done:
    address = pairing.forget(s.store, r.address)
    return Done({"forgotten": address}, f"ble:{address}")


def _keys_reseal(s: Services, caller: Caller, r: ResealKeys) -> Done:
    """Wakes the daemon's sealing pass (a command with no daemon runs its own: reseal)."""
    woken = key_rotation.wake_pass(s.store, s.wake_reseal)
    return Done(woken, f"key:{woken['active']}")


def _keys_rotate(s: Services, caller: Caller, r: RotateKeys) -> Done:
    answer = key_rotation.rotate(s.store, s.config, r.suite, s.wake_reseal)
    return Done(answer, f"key:{answer['active']}")


def _patients_list(s: Services, caller: Caller, r: ListPatients) -> Done:
    return Done({"residents": patients.residents(s.store)}, "patients:*")


def _readings_unassigned(s: Services, caller: Caller, r: ListHeldReadings) -> Done:
    return Done({"readings": patients.held_readings(s.store, r.device)}, "readings:held")


def _users_add(s: Services, caller: Caller, r: AddUser) -> Done:
    added = users.add(s.store, s.clock, name=r.name, role=r.role, pin=r.pin)
    return Done(added, f"user:{added['id']}")


def _users_list(s: Services, caller: Caller, r: ListUsers) -> Done:
    return Done({"users": users.listing(s.store, s.clock)}, "users:*")


def _users_disable(s: Services, caller: Caller, r: DisableUser) -> Done:
    disabled = users.disable(s.store, name=r.name)
    return Done(disabled, f"user:{disabled['id']}")


def _users_reset_pin(s: Services, caller: Caller, r: ResetPin) -> Done:
    reset = users.reset_pin(s.store, name=r.name, pin=r.pin)
    return Done(reset, f"user:{reset['id']}")


def _sign_in(s: Services, caller: Caller, r: SignIn) -> Done:
    signed = users.sign_in(s.store, s.clock, s.config, name=r.name, pin=r.pin)
    return Done(
        signed.as_json(),
        None if signed.user_id is None else f"user:{signed.user_id}",
        refusal=signed.refusal,
        audit_as=(signed.name, signed.role),
        action=None if signed.refusal is None else audit.SIGN_IN_FAILED,
    )


def _touch_session(s: Services, caller: Caller, r: TouchSession) -> Done:
    return Done(users.touch(s.store, s.clock, s.config, caller.session).as_json(), None)


def _session_info(s: Services, caller: Caller, r: SessionInfo) -> Done:
    state, _user = users.session_for(s.store, s.clock, s.config, caller.session)
    return Done(state.as_json(), None)


def _audit_show(s: Services, caller: Caller, r: ShowAudit) -> Done:
    rows = audit.show(
        s.store,
        timezone=s.config.agent.timezone,
        person=r.person,
        user=r.user,
        since=r.since,
        until=r.until,
        limit=r.limit,
    )
    return Done({"rows": rows}, "audit")


def _audit_verify(s: Services, caller: Caller, r: VerifyAudit) -> Done:
    return Done(audit.verify(s.store).as_json(), "audit")


def _kiosk_sign_in(s: Services, caller: Caller, r: KioskSignIn) -> Done:
    signed = kiosk_sign_in.sign_in(
        s.store, s.clock, s.config, national_id_number=r.national_id, pin=r.pin
    )
    return Done(
        signed.as_json(),
        None if signed.user_id is None else f"patient:{signed.user_id}",
        refusal=signed.refusal,
        audit_as=(signed.name, signed.role),
        action=None if signed.refusal is None else audit.SIGN_IN_FAILED,
    )


def _consent_give(s: Services, caller: Caller, r: GiveConsent) -> Done:
    answer, refusal = consent.give(
        s.store,
        s.clock,
        caller.user,
        national_id_number=r.national_id,
        version=r.version,
        pin=r.pin,
    )
    return Done(answer, f"patient:{answer['patient']}", refusal=refusal)


def _consent_withdraw(s: Services, caller: Caller, r: WithdrawConsent) -> Done:
    answer = consent.withdraw(s.store, s.clock, caller.user, national_id_number=r.national_id)
    ended = tuple(
        (EndVisit.op, f"encounter:{e}", VISIT_ENDED_BY_WITHDRAWAL) for e in answer["visits_ended"]
    )
    return Done(answer, f"patient:{answer['patient']}", also=ended)


def _consent_show(s: Services, caller: Caller, r: ShowConsent) -> Done:
    answer = consent.show(
        s.store, caller.user, national_id_number=r.national_id, timezone=s.config.agent.timezone
    )
    return Done(answer, f"patient:{answer['patient']}")


def _export(s: Services, caller: Caller, r: ExportPatient) -> Done:
    answer = export.export(
        s.store,
        s.clock,
        national_id_number=r.national_id,
        fmt=r.format,
        passphrase=r.passphrase,
        encrypt=r.encrypt,
        suite_name=s.config.security.suite,
        agent=s.config.agent.id,
        timezone=s.config.agent.timezone,
    )
    return Done(answer, f"patient:{answer['patient']}")


def _followup(s: Services, caller: Caller, r: FollowUp) -> Done:
    visit = followup.judge(
        s.store,
        national_id_number=r.national_id,
        disease=r.disease,
        signs=r.signs,
        previous_uncontrolled=r.previous_uncontrolled,
        days=r.days,
        now_wall_ns=s.clock.wall_ns(),
    )
    return Done(visit.as_json(), f"patient:{visit.patient_id}")


def _kiosk_card_session(s: Services, caller: Caller, r: KioskCardSession) -> Done:
    view = kiosk_card.hand_over(s.card_desk, caller.user)
    return Done(view.answer, view.subject, action=view.action)


@dataclass(frozen=True, slots=True)
class Operation(Generic[R]):
    request: type[R]
    do: Callable[[Services, Caller, R], Done]


# name -> its request and what it does. Every state-changing CLI command is one of these.
OPERATIONS: dict[str, Operation[Any]] = {
    AddPatient.op: Operation(AddPatient, _patients_add),
    StartVisit.op: Operation(StartVisit, _visit_start),
    EndVisit.op: Operation(EndVisit, _visit_end),
    ObserveVisit.op: Operation(ObserveVisit, _visit_observe),
    AssignReadings.op: Operation(AssignReadings, _readings_assign),
    AckAlert.op: Operation(AckAlert, _alerts_ack),
    Prealert.op: Operation(Prealert, _prealert),
    PairDevice.op: Operation(PairDevice, _devices_pair),
    ForgetDevice.op: Operation(ForgetDevice, _devices_forget),
    RotateKeys.op: Operation(RotateKeys, _keys_rotate),
    ResealKeys.op: Operation(ResealKeys, _keys_reseal),
    ListPatients.op: Operation(ListPatients, _patients_list),
    ListHeldReadings.op: Operation(ListHeldReadings, _readings_unassigned),
    AddUser.op: Operation(AddUser, _users_add),
    ListUsers.op: Operation(ListUsers, _users_list),
    DisableUser.op: Operation(DisableUser, _users_disable),
    ResetPin.op: Operation(ResetPin, _users_reset_pin),
    SignIn.op: Operation(SignIn, _sign_in),
    TouchSession.op: Operation(TouchSession, _touch_session),
    SessionInfo.op: Operation(SessionInfo, _session_info),
    ShowAudit.op: Operation(ShowAudit, _audit_show),
    VerifyAudit.op: Operation(VerifyAudit, _audit_verify),
    KioskSignIn.op: Operation(KioskSignIn, _kiosk_sign_in),
    GiveConsent.op: Operation(GiveConsent, _consent_give),
    WithdrawConsent.op: Operation(WithdrawConsent, _consent_withdraw),
    ShowConsent.op: Operation(ShowConsent, _consent_show),
    ExportPatient.op: Operation(ExportPatient, _export),
    FollowUp.op: Operation(FollowUp, _followup),
    KioskCardSession.op: Operation(KioskCardSession, _kiosk_card_session),
}
PING = Ping.op


def run(services: Services, op: str, args: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
    """Do operation `op` for `caller` in one durable transaction, logged with who did it.

    Who it is done for and whether they may (edge_agent.users.acting, edge_agent.roles),
    and its audit row, are in the same transaction; a refusal or a failure is audited
    in a transaction of its own (the change itself is rolled back)."""
    if op == PING:
        checked(Ping, args)
        return {"agent": services.config.agent.id, "pid": os.getpid()}
    operation = OPERATIONS.get(op)
    if operation is None:
        raise OpError(f"unknown operation {op!r}", STATUS_USAGE)
    store = services.store
    asking = users.Asking(caller.user, caller.uid, caller.session)
    actor = users.Actor(caller.user, "-")
    try:
        request = checked(operation.request, args)
        with store.transaction():
            actor = users.acting(store, services.clock, services.config, asking, op)
            done = operation.do(services, dataclasses.replace(caller, user=actor.name), request)
            if audit.ACTIONS.get(op) in _CHANGES and done.refusal is None:
                store.operation_log.record(
                    op,
                    user=actor.name,
                    uid=caller.uid,
                    subject=done.subject,
                    wall_ns=services.clock.wall_ns(),
                )
            _audit(services, op, _station(services, args), actor, done)
    except users.NotAllowed as exc:
        _audit_alone(services, op, args, exc.who, audit.REFUSED, str(exc))
        raise OpError(str(exc), STATUS_FAILED) from None
    except consent.NotConsented as exc:
        _audit_alone(services, op, args, actor, audit.REFUSED, str(exc))
        raise OpError(str(exc), STATUS_FAILED) from None
    except (NationalIdError, Refused) as exc:
        _audit_alone(services, op, args, actor, audit.FAILED, str(exc))
        raise OpError(str(exc), STATUS_USAGE) from None
    except (StoreError, sqlite3.Error) as exc:
        raise OpError(f"{op}: the store failed: {exc}", STATUS_FAILED) from None
    except (PersonalDataLocked, keyring_file.KeyringError) as exc:
        raise OpError(f"{op}: {exc}", STATUS_FAILED) from None
    if done.refusal is not None:
        raise OpError(done.refusal, STATUS_FAILED)
    if done.queued:
        services.wake_uplink()
    if op not in audit.NOT_AUDITED or done.action is not None:  # a screen's polls: no line
        log.info("%s by %s: %s", op, actor.name, done.subject)
    return done.result


_CHANGES = ("create", "change", audit.KEY_ROTATION)


def _station(services: Services, args: Mapping[str, Any]) -> str:
    """Where it was done: the agent, and the device or station the request names."""
    device = args.get("device")
    agent = services.config.agent.id
    return agent if not isinstance(device, str) or device == "*" else f"{agent}/{device[:64]}"


def _audit(services: Services, op: str, station: str, actor: users.Actor, done: Done) -> None:
    action = done.action or audit.ACTIONS.get(op)
    if action is None:  # not audited (audit.NOT_AUDITED)
        return
    user, role = done.audit_as or (actor.name, actor.role)
    event = audit.Event(
        user=user,
        role=role,
        station=station,
        action=action,
        op=op,
        outcome=audit.OK if done.refusal is None else audit.REFUSED,
        subject=done.subject,
        person=audit.person_of(services.store, done.subject),
        reason=done.refusal,
    )
    _append(services, event)
    for also_op, subject, why in done.also:
        also = audit.Event(
            user=user,
            role=role,
            station=station,
            action=audit.ACTIONS[also_op],
            op=also_op,
            outcome=audit.OK,
            subject=subject,
            person=audit.person_of(services.store, subject),
            reason=why,
        )
        _append(services, also)


def _append(services: Services, event: audit.Event) -> None:
    audit.append(
        services.store,
        event,
        suite=services.config.security.suite,
        wall_ns=services.clock.wall_ns(),
        timezone=services.config.agent.timezone,
    )


def _audit_alone(
    services: Services,
    op: str,
    args: Mapping[str, Any],
    actor: users.Actor,
    outcome: str,
    reason: str,
) -> None:
    """A refused or failed operation's row, in its own transaction (the change was
    rolled back). A store that cannot take it fails the operation as the store would."""
    action = audit.ACTIONS.get(op)
    if action is None:
        return
    subject, person = audit.attempted(services.store, op, args)
    event = audit.Event(
        user=actor.name,
        role=actor.role,
        station=_station(services, args),
        action=action,
        op=op,
        outcome=outcome,
        subject=subject,
        person=person,
        reason=control.one_line(audit.redacted(reason, args), 300),
    )
    try:
        with services.store.transaction():
            _append(services, event)
    except (StoreError, sqlite3.Error) as exc:
        raise OpError(f"{op}: the store failed: {exc}", STATUS_FAILED) from None


def handler(services: Services) -> control.Handler:
    """The daemon's control-socket handler: every request is one `run`."""

    def handle(request: control.Request, caller: Caller) -> dict[str, Any]:
        return run(services, request.op, request.args, caller)

    return handle


def socket_path(config: Config, environ: Mapping[str, str] | None = None) -> Path:
    """Where the daemon of `config` listens: $RUNTIME_DIRECTORY under systemd (its
    RuntimeDirectory=), else `agent.runtime_dir`, else `run/` in the data directory."""
    env = os.environ if environ is None else environ
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return Path(runtime) / control.SOCKET_NAME
    return config.agent.control_dir / control.SOCKET_NAME


# --- from a CLI process ----------------------------------------------------------------


def perform(
    config: Config,
    request: Change,
    *,
    wait_s: float = ROUTE_WAIT_S,
    clock: Clock | None = None,
    as_user: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """`request` done by whoever writes the store now: the running daemon (through its
    socket), or this process holding the writer lock when no daemon does. `as_user`
    (name, PIN): signed in as that user first, and done in their session."""
    session = None
    if as_user is not None:
        name, pin = as_user
        signed = perform(config, SignIn(name=name, pin=pin), wait_s=wait_s, clock=clock)
        session = str(signed["session"])
    op, args = request.op, as_args(request)
    return writer_route.change(
        _route(config, op, wait_s),
        op,
        args,
        lambda: _locally(config, op, args, clock, session),
        session=session,
    )


def _route(config: Config, op: str, wait_s: float) -> writer_route.Route:
    data_dir = config.agent.data_dir
    return writer_route.Route(
        lock=WriterLock(data_dir),
        store=f"the store in {data_dir}",
        # Where the config says the daemon listens, when the lock's holder does not say
        # (not this process's $RUNTIME_DIRECTORY: a command is not the daemon's service).
        socket=config.agent.control_dir / control.SOCKET_NAME,
        command=op,
        wait_s=wait_s,
    )


def export_to_file(
    config: Config,
    request: ExportPatient,
    output: str,
    *,
    as_user: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """`export`: the record made by whoever writes the store (it holds the keys), written
    here to the new file `output` (mode 0600), never over one."""
    path = Path(output)
    export.check_new(path)
    return export.save(perform(config, request, as_user=as_user), path)


def rotate_keys(
    config: Config,
    request: RotateKeys,
    *,
    batch: int = key_rotation.BATCH,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """`keys rotate`: the new key made by whoever writes the store; the re-seal then in
    the daemon's background, or (no daemon) here, batch by batch."""
    if batch < 1:
        raise Refused("keys rotate --batch: at least 1 resident per transaction")
    rotated = perform(config, request)
    if rotated.get("resealing_in") == "daemon":
        return rotated
    return reseal(config, batch=batch, on_progress=on_progress)


def reseal(
    config: Config,
    *,
    batch: int = key_rotation.BATCH,
    on_progress: Callable[[int, int], None] | None = None,
    wait_s: float = ROUTE_WAIT_S,
) -> dict[str, Any]:
    """The sealing pass (`keys rotate`, `keys reseal`): the running daemon's, woken, or
    run here under the writer lock, batch by batch (`on_progress(done, left)`)."""
    if batch < 1:
        raise Refused("keys reseal --batch: at least 1 resident per transaction")

    def here() -> dict[str, Any]:
        keys, no_keys = load_keys(config)
        if keys is None:
            raise OpError(f"keys reseal: {no_keys}", STATUS_FAILED)
        try:
            store = StoreWriter.open(config.agent.db_path, keys)
        except StoreError as exc:
            raise OpError(str(exc), STATUS_FAILED) from None
        try:
            key_rotation.reseal_all(store, batch=batch, on_progress=on_progress)
            return {**key_rotation.status(store).as_json(), "resealing_in": "command"}
        except sqlite3.Error as exc:
            raise OpError(f"keys reseal: the store failed: {exc}", STATUS_FAILED) from None
        finally:
            store.close()

    return writer_route.change(_route(config, ResealKeys.op, wait_s), ResealKeys.op, {}, here)


def _open_writer(config: Config) -> StoreWriter:
    """The store with the box's keys, or without them when this user cannot load them:
    then a change that touches personal data is refused naming the key file's problem
    (a pairing or an alert acknowledged needs no keys)."""
    keys, no_keys = load_keys(config)
    try:
        return StoreWriter.open(config.agent.db_path, keys, no_keys=no_keys)
    except StoreError as exc:
        raise OpError(str(exc), STATUS_FAILED) from None


def load_keys(config: Config) -> tuple[keyring_file.Keyring | None, str | None]:
    """The box's keyring, or None and why not (the key file's one-line error)."""
    try:
        return keyring_file.load(config.security.key_path(config.agent.data_dir)), None
    except keyring_file.KeyringError as exc:
        return None, str(exc)


def _locally(
    config: Config,
    op: str,
    args: Mapping[str, Any],
    clock: Clock | None,
    session: str | None = None,
) -> dict[str, Any]:
    store = _open_writer(config)
    try:
        services = Services(store, clock or SystemClock.create(), config)
        caller = dataclasses.replace(Caller.this_process(), session=session)
        return run(services, op, args, caller)
    finally:
        store.close()
