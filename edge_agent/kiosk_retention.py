"""What a kiosk box keeps, and for how long (docs/security.md, "Retention at a kiosk").

A kiosk (agent.role = "kiosk") stands unattended in a health hut: whatever it holds can
be carried off. So it keeps the least it can (PIPL 个人信息保护法 Art. 19: kept no
longer than the purpose needs; Art. 47: deleted when the purpose is met; GB/T
35273-2020 §6.1 retention, §6.2 and §3.14 de-identification):

- **Unbound readings**: a reading taken while no consented resident was signed in is
  held (bound to nobody, `readings unassigned`); `kiosk.unbound_purge_h` after it was
  taken (default 24 h) it is purged with every row made from it.
- **Identity after delivery**: once every reading of a resident's visits has been
  delivered to the county (ACK AA) and none of their visits is open,
  `kiosk.identity_after_delivery_h` later (default 0) their national id, name and phone
  are overwritten by a random pseudonym (`P-` and 128 random bits in hex), their blind
  indexes dropped, the monitor's PID in their frames and the delivered HL7 (its PID)
  cleared, their kiosk PIN and sessions deleted. Their readings stay, under the
  pseudonym; their consent rows stay (the record of what they agreed to). Coming back,
  they are registered anew.

Each purge and each pseudonymisation is one transaction and one audit row (user
`edge-agent`, action `change`); the WAL is truncated after a pass so no old page stays
in it (the writer runs with `secure_delete`). A box of another role keeps its data:
the pass does nothing there.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from device_drivers import registry
from edge_agent import audit
from edge_agent.clock import Clock
from edge_agent.config import Config
from edge_agent.store import StoreWriter

KIOSK = "kiosk"
ACTOR = "edge-agent"  # the daemon itself, in the trail
PURGE_OP = "kiosk.purge-unbound"
PSEUDONYMISE_OP = "kiosk.pseudonymise"
H = 3600 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Retention:
    purged_frames: int
    pseudonymised: tuple[int, ...]  # patient row ids

    @property
    def changed(self) -> bool:
        return bool(self.purged_frames or self.pseudonymised)


def new_pseudonym() -> str:
    return f"P-{secrets.token_hex(16)}"


def _audited(store: StoreWriter, clock: Clock, config: Config, op: str, subject: str) -> None:
    person = audit.person_of(store, subject)
    audit.append(
        store,
        audit.Event(
            user=ACTOR,
            role="-",
            station=config.agent.id,
            action="change",
            op=op,
            outcome=audit.OK,
            subject=subject,
            person=person,
        ),
        suite=config.security.suite,
        wall_ns=clock.wall_ns(),
        timezone=config.agent.timezone,
    )


def run_pass(store: StoreWriter, clock: Clock, config: Config) -> Retention:
    """One pass: purge what is due, pseudonymise who is due; nothing off a kiosk."""
    if config.agent.role != KIOSK:
        return Retention(0, ())
    now = clock.wall_ns()
    purged = 0
    while True:
        with store.transaction():
            due = store.kiosk_retention.unbound_before(now - int(config.kiosk.unbound_purge_h * H))
            if not due:
                break
            purged += store.kiosk_retention.purge_frames(due)
            shown = ",".join(map(str, due[:20]))
            _audited(store, clock, config, PURGE_OP, f"frames:{shown}")
    pseudonymised = []
    grace = int(config.kiosk.identity_after_delivery_h * H)
    for patient_id in store.kiosk_retention.delivered_residents(now - grace):
        with store.transaction():
            frames = store.kiosk_retention.frames_of(patient_id)
            store.kiosk_retention.forget_identity_in_frames(frames, registry.identity_drivers())
            store.kiosk_retention.forget_kiosk_access(patient_id)
            store.patients.pseudonymise(patient_id, new_pseudonym())
            _audited(store, clock, config, PSEUDONYMISE_OP, f"patient:{patient_id}")
        pseudonymised.append(patient_id)
    result = Retention(purged, tuple(pseudonymised))
    if result.changed:
        store.truncate_wal()
    return result
