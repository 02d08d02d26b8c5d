"""Every change a person makes to the box's store, as one named operation.

The CLI and the UI never write the store beside the daemon (docs/contracts.md: one writer).
`perform` sends an operation to the running daemon over its control socket; only when
no daemon holds the writer lock does it open the store itself, holding the lock for the
length of the change. Either way the same function below does the work, with the
caller's identity given by the transport (the OS user from SO_PEERCRED, or this
process's user) and never by a free-text option, and records who did it in the same
transaction (`operation_log`).

An operation takes validated arguments (types and sizes checked here, content by the
domain functions) and returns the JSON the CLI prints.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent import control, pairing, patients
from edge_agent.clock import Clock, SystemClock
from edge_agent.config import Config
from edge_agent.control import STATUS_FAILED, STATUS_USAGE, Caller, OpError
from edge_agent.model import Frame
from edge_agent.national_id import NationalIdError
from edge_agent.recorder import Recorder
from edge_agent.rules.engine import ClinicalRules, news2_subject
from edge_agent.store import StoreError, StoreWriter
from edge_agent.writer_lock import Holder, WriterLock, read_holder

log = logging.getLogger(__name__)

# A CLI command that finds the lock held but nobody on the socket (another CLI command
# writing, the daemon starting or stopping) looks again for this long.
ROUTE_WAIT_S = 15.0
MAX_TEXT = 1000  # any free-text argument (names, complaints, destinations)


@dataclass
class Services:
    """What an operation may use: the writer store and the box's clock and config."""

    store: StoreWriter
    clock: Clock
    config: Config
    wake_uplink: Callable[[], None] = field(default=lambda: None)


@dataclass(frozen=True, slots=True)
class Done:
    result: dict[str, Any]
    subject: str | None  # what it changed, for the operation log ("alert:7")
    queued: bool = False  # it put rows in the outbox: wake the uplink


# --- arguments -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arg:
    name: str
    kind: type  # str | int | bool | list (of ints)
    required: bool = False
    default: Any = None


def _check_args(op: str, spec: tuple[Arg, ...], args: Mapping[str, Any]) -> dict[str, Any]:
    known = {a.name for a in spec}
    unknown = sorted(set(args) - known)
    if unknown:
        raise OpError(f"{op}: unknown argument {unknown[0]!r}", STATUS_USAGE)
    out: dict[str, Any] = {}
    for a in spec:
        value = args.get(a.name)
        if value is None:
            if a.required:
                raise OpError(f"{op}: argument {a.name!r} is missing", STATUS_USAGE)
            out[a.name] = a.default
            continue
        if a.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise OpError(f"{op}: {a.name} must be a whole number", STATUS_USAGE)
        if a.kind is bool and not isinstance(value, bool):
            raise OpError(f"{op}: {a.name} must be true or false", STATUS_USAGE)
        if a.kind is str:
            if not isinstance(value, str):
                raise OpError(f"{op}: {a.name} must be text", STATUS_USAGE)
            if len(value) > MAX_TEXT or "\x00" in value:
                raise OpError(
                    f"{op}: {a.name} must be at most {MAX_TEXT} characters of text",
                    STATUS_USAGE,
                )
        if a.kind is list and (
            not isinstance(value, list)
            or not value
            or len(value) > 10_000
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise OpError(f"{op}: {a.name} must be a list of whole numbers", STATUS_USAGE)
        out[a.name] = value
    return out


# --- the operations ---------------------------------------------------------------------


def _patients_add(s: Services, caller: Caller, a: dict[str, Any]) -> Done:
    reg = patients.register(
        s.store, s.clock, national_id_number=a["national_id"], name=a["name"], phone=a["phone"]
    )
    p = reg.patient
    result = {
        "id": p.id,
        "national_id": p.national_id,
        "name": p.name,
        "sex": p.sex,
        "birth_date": p.birth_date,
        "created": reg.created,
    }
    return Done(result, f"patient:{p.id}")


def _visit_start(s: Services, caller: Caller, a: dict[str, Any]) -> Done:
    encounter = patients.start_visit(
        s.store,
        s.clock,
        national_id_number=a["national_id"],
        station=a["device"],
        patient_class=a["patient_class"],
    )
    return Done({"encounter": encounter, "station": a["device"]}, f"encounter:{encounter}")


def _visit_end(s: Services, caller: Caller, a: dict[str, Any]) -> Done:
    ended = patients.end_visit(s.store, s.clock, station=a["device"])
    return Done({"ended": ended, "station": a["device"]}, f"station:{a['device']}")


def _rules(config: Config) -> ClinicalRules:
    return ClinicalRules(news2_window_s=config.rules.news2_window_s, tz=config.agent.timezone)


def _stamp(s: Services, device: str) -> Frame:
    """The time and boot an operation's rows are dated with (as a frame's would be)."""
    clock = s.clock
    return Frame(device, "crew", b"", clock.wall_ns(), clock.mono_ns(), clock.boot_id)


def _visit_observe(s: Services, caller: Caller, a: dict[str, Any]) -> Done:
    """What NEWS2 needs that no device measures: SpO2 scale, air/oxygen, ACVPU."""
    if a["spo2_scale"] is None and a["oxygen"] is None and a["acvpu"] is None:
        raise OpError("visit observe: give --spo2-scale, --o2/--air or --acvpu", STATUS_USAGE)
    if a["spo2_scale"] not in (None, 1, 2):
        raise OpError("visit observe: the SpO2 scale is 1 or 2", STATUS_USAGE)
    acvpu = a["acvpu"].upper() if a["acvpu"] is not None else None
    if acvpu not in (None, "A", "C", "V", "P", "U"):
        raise OpError("visit observe: ACVPU is one of A C V P U", STATUS_USAGE)
    store = s.store
    encounter = store.patients.current_encounter(a["device"])
    encounter_id = None if encounter is None else encounter.id
    rules = _rules(s.config)
    stamp = _stamp(s, a["device"])
    subject = news2_subject(encounter_id)
    store.patients.add_news2_observation(
        subject,
        scale=a["spo2_scale"],
        oxygen=a["oxygen"],
        acvpu=acvpu,
        by=caller.user,
        wall_ns=stamp.received_wall_ns,
    )
    rules.reassess_news2(store, stamp, encounter_id)  # an ACVPU of C is 3 points
    result = rules.news2_now(store, stamp.received_wall_ns, encounter_id)
    return Done(result.as_json(), subject, queued=True)


def _readings_assign(s: Services, caller: Caller, a: dict[str, Any]) -> Done:
    assigned = patients.assign_readings(
        s.store,
        s.clock,
        national_id_number=a["national_id"],
        frame_ids=a["frames"],
        patient_class=a["patient_class"],
    )
    frames = ",".join(map(str, a["frames"][:20]))
    return Done({"assigned": assigned}, f"frames:{frames}", queued=True)


def _alerts_ack(s: Services, caller: Caller, a: dict[str, Any]) -> Done:
    """Who acknowledged an alert, and when (kept with it; the alert stays until cleared)."""
    store = s.store
    known = store.alerts.ack(a["id"], caller.user, s.clock.wall_ns())
    alert = store.alerts.get(a["id"])
    if not known or alert is None:
        raise OpError(f"alerts ack {a['id']}: no such alert", STATUS_USAGE)
    return Done(alert.as_json(), f"alert:{a['id']}")


def _prealert(s: Services, caller: Caller, a: dict[str, Any]) -> Done:
    """The crew's pre-arrival notice (ADT^A14), ahead of everything in the outbox."""
    eta = a["eta"]
    if eta is not None and not 0 <= eta <= 24 * 60:
        raise OpError(f"prealert --eta {eta}: minutes from now, 0 to 1440", STATUS_USAGE)
    complaint = a["complaint"].strip()
    if not complaint:
        raise OpError(
            "prealert --complaint: say why the patient is coming (e.g. 胸痛2小时)", STATUS_USAGE
        )
    destination = a["destination"].strip()
    if not destination:
        raise OpError("prealert --destination: name the receiving ER", STATUS_USAGE)
    if a["stemi"] and "STEMI" not in complaint.upper():
        complaint = f"STEMI: {complaint}"
    encounter = s.store.patients.current_encounter(a["device"])
    message_id = Recorder(s.store).prealert(
        _stamp(s, a["device"]),
        encounter_id=None if encounter is None else encounter.id,
        ecg_frame_id=None,
        stemi=a["stemi"],
        source="crew",
        complaint=complaint,
        destination=destination,
        eta_minutes=eta,
    )
    return Done({"prealert": message_id, "stemi": a["stemi"]}, f"outbox:{message_id}", True)


def _devices_pair(s: Services, caller: Caller, a: dict[str, Any]) -> Done:
    paired = pairing.pair(
        s.store,
        s.clock,
        s.config,
        address=a["address"],
        driver=a["driver"],
        device_id=a["id"],
        name=a["name"],
    )
    result = {"paired": paired.address, "id": paired.device_id, "driver": paired.driver}
    return Done(result, f"device:{paired.device_id}")


def _devices_forget(s: Services, caller: Caller, a: dict[str, Any]) -> Done:
    address = a["address"].strip().upper()
    if not pairing.forget(s.store, address):
        raise OpError(f"devices forget: {address} is not paired here", STATUS_USAGE)
    return Done({"forgotten": address}, f"ble:{address}")


Operation = Callable[[Services, Caller, dict[str, Any]], Done]

_STATION = Arg("device", str, default="*")
_CLASS = Arg("patient_class", str, default="O")

# name -> (what it does, its arguments). Every state-changing CLI command is one of these.
OPERATIONS: dict[str, tuple[Operation, tuple[Arg, ...]]] = {
    "patients.add": (
        _patients_add,
        (Arg("national_id", str, True), Arg("name", str, True), Arg("phone", str)),
    ),
    "visit.start": (_visit_start, (Arg("national_id", str, True), _STATION, _CLASS)),
    "visit.end": (_visit_end, (_STATION,)),
    "visit.observe": (
        _visit_observe,
        (_STATION, Arg("spo2_scale", int), Arg("oxygen", bool), Arg("acvpu", str)),
    ),
    "readings.assign": (
        _readings_assign,
        (Arg("national_id", str, True), Arg("frames", list, True), _CLASS),
    ),
    "alerts.ack": (_alerts_ack, (Arg("id", int, True),)),
    "prealert": (
        _prealert,
        (
            Arg("destination", str, True),
            Arg("complaint", str, True),
            Arg("eta", int),
            Arg("stemi", bool, default=False),
            _STATION,
        ),
    ),
    "devices.pair": (
        _devices_pair,
        (Arg("address", str, True), Arg("driver", str, True), Arg("id", str), Arg("name", str)),
    ),
    "devices.forget": (_devices_forget, (Arg("address", str, True),)),
}
# Not a change: tells a UI that the daemon is there and answering.
PING = "ping"


def run(services: Services, op: str, args: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
    """Do operation `op` for `caller` in one durable transaction, logged with who did it."""
    if op == PING:
        _check_args(op, (), args)
        return {"agent": services.config.agent.id, "pid": os.getpid()}
    entry = OPERATIONS.get(op)
    if entry is None:
        raise OpError(f"unknown operation {op!r}", STATUS_USAGE)
    fn, spec = entry
    checked = _check_args(op, spec, args)
    store = services.store
    try:
        with store.transaction():
            done = fn(services, caller, checked)
            store.operation_log.record(
                op,
                user=caller.user,
                uid=caller.uid,
                subject=done.subject,
                wall_ns=services.clock.wall_ns(),
            )
    except (NationalIdError, patients.PatientError, pairing.PairingError) as exc:
        raise OpError(str(exc), STATUS_USAGE) from None
    except (StoreError, sqlite3.Error) as exc:
        raise OpError(f"{op}: the store failed: {exc}", STATUS_FAILED) from None
    if done.queued:
        services.wake_uplink()
    log.info("%s by %s: %s", op, caller.user, done.subject)
    return done.result


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
    op: str,
    args: Mapping[str, Any],
    *,
    wait_s: float = ROUTE_WAIT_S,
    clock: Clock | None = None,
) -> dict[str, Any]:
    """Operation `op` by whoever writes the store now: the running daemon (through its
    socket), or this process holding the writer lock when no daemon does."""
    data_dir = config.agent.data_dir
    lock = WriterLock(data_dir)
    deadline = time.monotonic() + wait_s
    holder = None
    while True:
        try:
            mine = lock.try_acquire(Holder(role="cli", pid=os.getpid(), command=op))
        except OSError as exc:
            mine = False
            if not lock.path.exists():
                raise OpError(f"store {data_dir}: cannot take its writer lock ({exc})") from None
        if mine:
            try:
                return _locally(config, op, args, clock)
            finally:
                lock.release()
        # Where the holder said it listens; else where the config says (not this
        # process's $RUNTIME_DIRECTORY: a command is not the daemon's service).
        holder = read_holder(lock.path)
        configured = config.agent.control_dir / control.SOCKET_NAME
        path = Path(holder.socket) if holder and holder.socket else configured
        try:
            return control.call(path, op, args)
        except control.NotListening:
            pass  # another CLI command writing, or the daemon starting or stopping
        if time.monotonic() >= deadline:
            who = holder.describe() if holder else "another process"
            raise OpError(
                f"{op}: the store in {data_dir} is held by {who}, and nobody answers on"
                f" {path}; try again when it has finished"
            )
        time.sleep(0.05)


def _locally(
    config: Config, op: str, args: Mapping[str, Any], clock: Clock | None
) -> dict[str, Any]:
    try:
        store = StoreWriter.open(config.agent.db_path)
    except StoreError as exc:
        raise OpError(str(exc), STATUS_FAILED) from None
    try:
        services = Services(store, clock or SystemClock.create(), config)
        return run(services, op, args, Caller.this_process())
    finally:
        store.close()
