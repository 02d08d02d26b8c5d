"""A resident signs in at a kiosk by laying their ID card on the kiosk's own reader; the
session lasts while the card lies there (docs/security.md, "Consent and the resident at
a kiosk").

The daemon's reader loop (edge_agent.id_card_reader) tells the desk what the reader
sees at each poll: a card's text, no card, a card it could not read, or that the reader
itself went away. The desk turns that into sessions:

- a card placed: its text checked (edge_agent.id_card: the number by GB 11643 and
  agreeing with the card's birth date and sex, the card valid today), the resident
  signed in by it (edge_agent.kiosk_sign_in.sign_in_by_card: registered, consent
  standing) or refused; one audit row either way (`sign-in` or `sign-in-failed`, op
  `kiosk.card`), once per placement however long the card lies there;
- the same card at the next polls: nothing new;
- no card, or an unreadable one, at MISSES_BEFORE_GONE polls in a row (some modules
  answer "no card" once right after a read while the card still lies there), another
  card, or the reader gone: the session ends (`sign-out` row, naming why);
- the kiosk's screen asks `kiosk.card-session` (edge_agent.operations): it gets the
  session's token once, the first time it asks after the card was signed in (one
  `hand-over` row); later asks see the card's state without the token. A resident's
  own session cannot take it.

The live card session's token digest is kept in `meta` (`kiosk.card_session`): a
daemon that starts again ends the session its predecessor left (its card may be gone).
What the reader read is held in memory only, as a digest; nothing of the card is
logged or stored but the session and the audit rows (which name the resident by row).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from edge_agent import audit, id_card, kiosk_sign_in, users
from edge_agent.clock import Clock, wall_datetime
from edge_agent.config import Config
from edge_agent.store import StoreWriter

MISSES_BEFORE_GONE = 2
OP = "kiosk.card"  # the reader's events in the trail
SIGN_IN = "sign-in"
SIGN_OUT = "sign-out"
HAND_OVER = "hand-over"
META_KEY = "kiosk.card_session"  # the live card session's token digest ("" when none)
NONE, SIGNED_IN, REFUSED = "none", "signed-in", "refused"


@dataclass(frozen=True, slots=True)
class CardView:
    """What the kiosk's screen is told; `action`/`subject`: the audit row of a hand-over."""

    answer: dict[str, Any]
    subject: str | None = None
    action: str | None = None


class CardDesk:
    """The card on the kiosk's reader and the session it opened. Used on the daemon's
    event loop only (the reader loop and the control socket's operations)."""

    def __init__(self, store: StoreWriter, clock: Clock, config: Config) -> None:
        self._store = store
        self._clock = clock
        self._config = config
        self.reader = "starting"
        self._card: bytes | None = None  # the digest of the text of the card on the reader
        self._misses = 0
        self._placed = 0
        self._state = NONE
        self._signed: users.SignIn | None = None
        self._handed = False
        self._refusal: str | None = None
        self._end_left_over()

    # --- what the reader saw ------------------------------------------------------------

    def reader_state(self, state: str) -> None:
        self.reader = state

    def read(self, text: bytes) -> None:
        """A card's 256 bytes of text were read (the card on the reader now)."""
        digest = hashlib.sha256(text).digest()
        self._misses = 0
        if digest == self._card:
            return
        if self._card is not None:
            self._leave("another card was placed")
        self._placed += 1
        self._handed = False
        self._signed, self._refusal = None, None
        self._placing(text)  # a store that fails: no card taken as placed (read again)
        self._card = digest

    def absent(self) -> None:
        """The reader found no card (or could not read the one there) at this poll."""
        if self._card is None:
            return
        self._misses += 1
        if self._misses >= MISSES_BEFORE_GONE:
            self._leave("the card was taken off the reader")

    def reader_lost(self, why: str) -> None:
        """The reader went away (unplugged, not answering): no card can be vouched for."""
        self.reader = why
        if self._card is not None:
            self._leave("the reader went away")

    # --- what the screen asks -----------------------------------------------------------

    def view(self, caller: str) -> CardView:
        """The card's state for the kiosk's screen (`caller`), with the session's token
        the first time it is asked for after the sign-in."""
        if users.resident_of(caller) is not None:
            raise users.NotAllowed(
                "kiosk.card-session: a resident's session cannot take a card's session",
                users.Actor(caller, "kiosk"),
            )
        signed = self._signed
        answer: dict[str, Any] = {
            "reader": self.reader,
            "card": self._state,
            "placed": self._placed,
            "user": None if signed is None else signed.name,
            "session": None,
            "idle_lock_s": None if signed is None else signed.idle_lock_s,
            "refusal": self._refusal,
        }
        if signed is None or self._handed:
            return CardView(answer)
        self._handed = True
        answer["session"] = signed.token
        return CardView(answer, f"patient:{signed.user_id}", HAND_OVER)

    # --- the changes --------------------------------------------------------------------

    def _placing(self, text: bytes) -> None:
        """The card checked, its resident signed in or refused, with its audit row."""
        try:
            card = id_card.from_text(text, today=self._today())
        except id_card.IdCardError as exc:
            reason = f"kiosk sign-in by card: {exc}"
            with self._store.transaction():
                self._audit("resident:?", audit.SIGN_IN_FAILED, None, reason, audit.REFUSED)
            self._state, self._refusal = REFUSED, reason
            return
        with self._store.transaction():
            signed = kiosk_sign_in.sign_in_by_card(self._store, self._clock, self._config, card)
            if signed.token is None:
                self._audit(
                    signed.name, audit.SIGN_IN_FAILED, signed.user_id, signed.refusal, audit.REFUSED
                )
            else:
                self._store.meta.set(META_KEY, users.token_hash(signed.token, self._config))
                self._audit(signed.name, SIGN_IN, signed.user_id)
        if signed.token is None:
            self._state, self._refusal = REFUSED, signed.refusal
        else:
            self._state, self._signed = SIGNED_IN, signed

    def _leave(self, why: str) -> None:
        """The card is gone (or replaced): its session ends."""
        signed = self._signed
        if signed is not None and signed.token is not None:
            with self._store.transaction():
                kiosk_sign_in.end_card_session(self._store, self._config, signed.token)
                self._store.meta.set(META_KEY, "")
                self._audit(signed.name, SIGN_OUT, signed.user_id, why)
        self._card, self._misses, self._state = None, 0, NONE
        self._signed, self._handed, self._refusal = None, False, None

    def _end_left_over(self) -> None:
        left = self._store.meta.get(META_KEY)
        if left:
            with self._store.transaction():
                self._store.consent.end_session(left)
                self._store.meta.set(META_KEY, "")
                self._audit("edge-agent", SIGN_OUT, None, "a card session left by the last run")

    def _audit(
        self,
        who: str,
        action: str,
        patient_id: int | None,
        reason: str | None = None,
        outcome: str = audit.OK,
    ) -> None:
        audit.append(
            self._store,
            audit.Event(
                user=who,
                role="kiosk" if who.startswith(users.RESIDENT_PREFIX) else "-",
                station=f"{self._config.agent.id}/id-card-reader",
                action=action,
                op=OP,
                outcome=outcome,
                subject=None if patient_id is None else f"patient:{patient_id}",
                person=patient_id,
                reason=reason,
            ),
            suite=self._config.security.suite,
            wall_ns=self._clock.wall_ns(),
            timezone=self._config.agent.timezone,
        )

    def _today(self) -> dt.date:
        return wall_datetime(self._clock.wall_ns(), self._config.agent.timezone).date()


def hand_over(desk: CardDesk | None, caller: str) -> CardView:
    """`kiosk.card-session`: the desk's view, or (no reader on this box) that there is none."""
    if desk is None:
        answer = {
            "reader": NONE,
            "card": NONE,
            "placed": 0,
            "user": None,
            "session": None,
            "idle_lock_s": None,
            "refusal": None,
        }
        return CardView(answer)
    return desk.view(caller)
