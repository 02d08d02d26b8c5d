"""A resident's separate consent to the processing of their health data: given,
withdrawn and shown, each give or withdraw one row kept for good (docs/security.md,
"Consent and the resident at a kiosk").

PIPL (个人信息保护法) Art. 28-29: health data is sensitive personal information and
needs the individual's separate consent (单独同意); Art. 15: consent may be withdrawn,
easily, and a withdrawal does not undo what was lawfully done before it. GB/T
35273-2020 §5.4 (explicit consent for sensitive data) and §8.4 (withdrawal). A row
names the version of the text shown (edge_agent.consent_text) and its SHA-256, the
time, and who recorded it (a box user, or the resident at a kiosk).

- `give`: the resident's PIN is set at their first consent (4 to 12 digits, scrypt);
  later consents (a new version of the text, or after a withdrawal) need that PIN, so
  nobody re-consents for a resident by knowing their number. A consent to the version
  that already stands records nothing new.
- `withdraw`: needs no PIN (withdrawing must be as easy as consenting); it ends the
  resident's kiosk sessions and, at the same time and in the same transaction, every
  visit of theirs still open, so no reading recorded after it is bound to them.
- Binding (`needed_to_bind`), on every box role: no visit is opened and no reading
  assigned for a resident whose last consent event is a withdrawal, and the recorder
  binds nothing to one (edge_agent.recorder asks inside its own transaction,
  PatientsReader.station_visit: the one writer decides, so a frame committed after the
  withdrawal's commit never binds).
  A resident with no consent rows at all is treated under the clinic's or the crew's
  own basis for care (PIPL Art. 13(1)(3) and (4)) on a clinic or ambulance box; on a
  kiosk box, which gives no care, their consent is needed. Consent given again allows
  binding again; what was bound before the withdrawal stays (Art. 15: a withdrawal does
  not undo what was lawfully done before it).
- A kiosk acts only for the resident signed in on it (`resident:<patient id>`); a box
  user with the kiosk role and no resident is refused.
"""

from __future__ import annotations

from typing import Any

from edge_agent import consent_text, kiosk_sign_in, national_id, users
from edge_agent.clock import Clock, wall_datetime
from edge_agent.crypto import pins
from edge_agent.model import Refused
from edge_agent.store import ConsentEvent, PatientRow, StoreReader, StoreWriter

GIVE = kiosk_sign_in.GIVE
WITHDRAW = kiosk_sign_in.WITHDRAW


def text_of(version: str | None) -> consent_text.ConsentText:
    """The consent text of `version` (None: the current one); Refused naming the known."""
    try:
        return consent_text.text(version or consent_text.CURRENT)
    except KeyError as exc:
        raise Refused(str(exc.args[0])) from None


def actor_named(store: StoreReader, name: str) -> users.Actor:
    """The actor an operation runs for, with its role: a resident at a kiosk, a box
    user, or (a box with no users yet, setting it up) the OS user as an admin."""
    if users.resident_of(name) is not None:
        return users.Actor(name, "kiosk")
    user = store.users.by_name(name)
    return users.Actor(name, "admin" if user is None else user.role)


def _resident(store: StoreReader, actor: users.Actor, number: str, op: str) -> PatientRow:
    parsed = national_id.parse(number).number
    patient = store.patients.by_national_id(parsed)
    own = users.resident_of(actor.name)
    if actor.role == "kiosk" and (patient is None or own != patient.id):
        raise users.NotAllowed(f"{op}: a kiosk acts only for the resident signed in", actor)
    if patient is None:
        raise Refused(f"national id {parsed}: not registered (edge-agent patients add)")
    return patient


class NotConsented(Refused):
    """Readings are not bound to this resident: their consent is withdrawn (any box),
    or was never given (a kiosk). One line naming the resident by row; audited as a
    refusal (edge_agent.operations.run), not as a usage error."""


def binding_refusal(latest: ConsentEvent | None, *, kiosk: bool) -> str | None:
    """Why no reading may be bound to a resident whose last consent event is `latest`,
    or None when they may: a withdrawal refuses on every box, no consent at all only on
    a kiosk (a clinic or a crew cares under its own basis)."""
    if latest is not None and latest.action == WITHDRAW:
        return (
            "the resident has withdrawn consent to their health data (consent give to bind again)"
        )
    if latest is None and kiosk:
        return "on a kiosk the resident's consent is needed first (consent give)"
    return None


def needed_to_bind(store: StoreReader, patient_id: int, op: str, *, kiosk: bool) -> None:
    """A visit opened or readings assigned (`op`) only for a resident readings may be
    bound to (`binding_refusal`): NotConsented otherwise. Their readings stay unbound
    and held (on a kiosk, purged: edge_agent.kiosk_retention)."""
    refusal = binding_refusal(store.consent.latest(patient_id), kiosk=kiosk)
    if refusal is not None:
        raise NotConsented(f"{op}: patient {patient_id}: {refusal}")


def give(
    store: StoreWriter,
    clock: Clock,
    actor_name: str,
    *,
    national_id_number: str,
    version: str | None,
    pin: str | None,
) -> tuple[dict[str, Any], str | None]:
    """Record the resident's consent to `version` (None: the current text) for
    `actor_name` (a box user, or resident:N); (answer, refusal): a wrong or locked PIN
    is a refusal whose failure count is kept."""
    actor = actor_named(store, actor_name)
    patient = _resident(store, actor, national_id_number, "consent give")
    shown = text_of(version)
    if pin is None:
        raise Refused("consent give: the resident's PIN is needed (set at the first consent)")
    answer: dict[str, Any] = {"patient": patient.id, "version": shown.version}
    if store.consent.pin(patient.id) is None:
        try:
            store.consent.set_pin(patient.id, pins.hash_pin(pin), clock.wall_ns())
        except pins.PinError as exc:
            raise Refused(f"consent give: {exc}") from None
        answer["pin"] = "set"
    else:
        refusal = kiosk_sign_in.pin_refusal(store, clock, patient.id, pin)
        if refusal is not None:
            return answer, f"consent give: {refusal}"
        answer["pin"] = "checked"
    latest = store.consent.latest(patient.id)
    if latest is not None and latest.action == GIVE and latest.text_version == shown.version:
        return {**answer, "consent": "given", "recorded": False}, None
    _record(store, actor, patient.id, GIVE, shown.version, shown.sha256, clock.wall_ns())
    return {**answer, "consent": "given", "recorded": True, "text_sha256": shown.sha256}, None


def _record(
    store: StoreWriter,
    actor: users.Actor,
    patient_id: int,
    action: str,
    version: str,
    sha256: str,
    wall_ns: int,
) -> None:
    store.consent.record(
        patient_id,
        action,
        text_version=version,
        text_sha256=sha256,
        wall_ns=wall_ns,
        by_user=actor.name,
        by_role=actor.role,
    )


def withdraw(
    store: StoreWriter, clock: Clock, actor_name: str, *, national_id_number: str
) -> dict[str, Any]:
    """Record the withdrawal, end the resident's kiosk sessions and their open visits
    (`visits_ended`: their ids), all at one time in the caller's transaction: the
    recorder's next group commit binds nothing to them, and holds what the devices of a
    visit so ended send (PatientsReader.station_visit)."""
    actor = actor_named(store, actor_name)
    patient = _resident(store, actor, national_id_number, "consent withdraw")
    latest = store.consent.latest(patient.id)
    if latest is None or latest.action != GIVE:
        raise Refused(f"consent withdraw: patient {patient.id} has no consent standing")
    wall_ns = clock.wall_ns()
    _record(store, actor, patient.id, WITHDRAW, latest.text_version, latest.text_sha256, wall_ns)
    store.consent.end_sessions(patient.id)
    ended = store.patients.close_encounters_of(patient.id, wall_ns)
    return {
        "patient": patient.id,
        "consent": "withdrawn",
        "version": latest.text_version,
        "visits_ended": ended,
    }


def show(
    store: StoreReader, actor_name: str, *, national_id_number: str, timezone: str
) -> dict[str, Any]:
    actor = actor_named(store, actor_name)
    patient = _resident(store, actor, national_id_number, "consent show")
    events = store.consent.events(patient.id)
    latest = events[-1] if events else None
    return {
        "patient": patient.id,
        "consent": "none"
        if latest is None
        else ("given" if latest.action == GIVE else "withdrawn"),
        "version": None if latest is None else latest.text_version,
        "current_version": consent_text.CURRENT,
        "pin_set": store.consent.pin(patient.id) is not None,
        "events": [_event(e, timezone) for e in events],
    }


def _event(event: ConsentEvent, timezone: str) -> dict[str, Any]:
    return {
        "action": event.action,
        "version": event.text_version,
        "text_sha256": event.text_sha256,
        "time": wall_datetime(event.wall_ns, timezone).isoformat(timespec="seconds"),
        "by_user": event.by_user,
        "by_role": event.by_role,
    }
