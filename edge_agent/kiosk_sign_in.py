"""A resident proves who they are at a kiosk: their national id number and the PIN they
set at their first consent (docs/security.md, "Consent and the resident at a kiosk").

A national id number is printed on the card, on forms, in family books: it is not a
secret, so the number alone never opens a record. The PIN is 4 to 12 digits, stored as
its scrypt hash (edge_agent.crypto.pins); lockout as for the box's users
(edge_agent.users.lockout_s: 5 failures, then 30 s doubling to an hour, the right PIN
refused meanwhile). Only a resident whose consent stands may sign in (a withdrawal
ends their sessions). The session's token is 256 random bits, stored as the suite's
digest; it acts as the kiosk role (read-own-record, measure-self, record-consent), for
its own record only, and locks after the kiosk's idle time (120 s).

The ID card itself is the other way in (`sign_in_by_card`): the card the daemon's own
reader read (edge_agent.id_card_reader, edge_agent.kiosk_card), checked by
edge_agent.id_card (GB 11643 number agreeing with the card's birth date and sex, valid
today), proves the resident is there with it; no PIN is asked. The resident must be
registered and their consent must stand, as for a PIN; the session is the same kind,
and it ends when the card leaves the reader (`end_card_session`). A card a UI claims to
have read is never taken: no operation accepts a card's fields.
"""

from __future__ import annotations

import secrets

from edge_agent import national_id, users
from edge_agent.clock import Clock
from edge_agent.config import Config
from edge_agent.crypto import pins
from edge_agent.id_card import IdCard
from edge_agent.store import StoreWriter


def sign_in(
    store: StoreWriter, clock: Clock, config: Config, *, national_id_number: str, pin: str
) -> users.SignIn:
    """Check `pin` for the resident `national_id_number` names; every attempt counts.
    The answer names the resident only as `resident:<patient id>`."""
    try:
        number = national_id.parse(national_id_number).number
    except national_id.NationalIdError:
        number = None
    patient = None if number is None else store.patients.by_national_id(number)
    if patient is None:
        pins.pin_matches(pin, users.NOBODY)  # the same cost as a real check
        return users.SignIn("resident:?", "kiosk", None, None, _wrong)
    who = users.resident_name(patient.id)
    refusal = pin_refusal(store, clock, patient.id, pin)
    if refusal is not None:
        return users.SignIn(who, "kiosk", patient.id, None, f"kiosk sign-in: {refusal}")
    latest = store.consent.latest(patient.id)
    if latest is None or latest.action != GIVE:
        return users.SignIn(
            who, "kiosk", patient.id, None, "kiosk sign-in: the resident's consent is withdrawn"
        )
    return _session(store, clock, config, who, patient.id)


def sign_in_by_card(store: StoreWriter, clock: Clock, config: Config, card: IdCard) -> users.SignIn:
    """A session for the resident whose valid card is on the kiosk's reader, or why not
    (not registered, consent not standing). Named only as `resident:<patient id>`."""
    patient = store.patients.by_national_id(card.national_id)
    if patient is None:
        return users.SignIn(
            "resident:?",
            "kiosk",
            None,
            None,
            "kiosk sign-in by card: the resident is not registered",
        )
    who = users.resident_name(patient.id)
    latest = store.consent.latest(patient.id)
    if latest is None or latest.action != GIVE:
        return users.SignIn(
            who, "kiosk", patient.id, None, "kiosk sign-in by card: no consent stands"
        )
    return _session(store, clock, config, who, patient.id)


def end_card_session(store: StoreWriter, config: Config, token: str) -> None:
    """The card's session is over (the card left the reader, another came, the reader
    went away): its token opens nothing any more."""
    store.consent.end_session(users.token_hash(token, config))


def _session(
    store: StoreWriter, clock: Clock, config: Config, who: str, patient_id: int
) -> users.SignIn:
    token = secrets.token_urlsafe(users.TOKEN_BYTES)
    store.consent.start_session(
        users.token_hash(token, config),
        patient_id,
        wall_ns=clock.wall_ns(),
        mono_ns=clock.mono_ns(),
        boot_id=clock.boot_id,
    )
    return users.SignIn(who, "kiosk", patient_id, token, None, users.idle_lock_s("kiosk", config))


_wrong = "kiosk sign-in: wrong national id or PIN"
GIVE = "give"
WITHDRAW = "withdraw"


def pin_refusal(store: StoreWriter, clock: Clock, patient_id: int, pin: str) -> str | None:
    """None when `pin` is the resident's PIN (their failures start again), else why not:
    no PIN set, locked, or wrong (counted; the 5th in a row locks)."""
    stored = store.consent.pin(patient_id)
    if stored is None:
        pins.pin_matches(pin, users.NOBODY)
        return "wrong national id or PIN"
    check = users.check_pin(
        pin, stored.pin_hash, stored.failed_attempts, stored.locked_until_wall_ns, clock.wall_ns()
    )
    if check.still_locked_s:
        return f"locked for {check.still_locked_s} s more (too many failed PINs)"
    if not check.ok:
        store.consent.record_failure(patient_id, check.failed, check.locked_until_wall_ns)
        lock = check.now_locked_s
        return "wrong national id or PIN" + (f"; locked for {lock} s" if lock else "")
    store.consent.record_success(patient_id)
    return None
