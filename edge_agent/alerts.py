"""Alerts: raised once while their condition lasts, cleared when it ends, sent as ORU^R40.

An alert is a device's own alarm (a monitor's "SpO2 LOW") or a clinical rule's finding
(edge_agent.rules: NEWS2, the hypertension / diabetes urgent-referral thresholds). Each
has a subject (the open visit, else the device) and a condition key; while an alert is
open for (subject, key), the same finding again only marks it seen, so a BP of 185 taken
three times is one alert, not three. The same key at another level (NEWS2 medium, then
high) ends the old alert and starts a new one. When a reading shows the condition has
gone, the alert is cleared. Starting and ending each queue an ORU^R40 (IHE PCD-04,
sync.hl7.pcd04) at the top of the outbox. `edge-agent alerts ack` records who saw it.

Raising and clearing run inside the recorder's transaction, with the frame that caused
it. Listing (`edge-agent alerts`) reads a read-only store; acknowledging is the
"alerts.ack" operation (edge_agent.operations).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from edge_agent.clock import new_message_id
from edge_agent.model import Frame, Refused
from edge_agent.store import AlertRow, StoreReader, StoreWriter

KIND_ORU_R40 = "oru_r40"
PRIORITY_ALERT = 0  # issue 6: alerts travel at the top priority, with STEMI notices


@dataclass(frozen=True, slots=True)
class Finding:
    """What a rule (or a device) found: an alert to raise unless it is already open."""

    code: str
    priority: str  # high | medium | low | info
    text: str  # Chinese first (the clinic reads it)
    text_en: str
    condition_key: str
    metric: str | None = None
    value: Decimal | None = None
    unit: str | None = None
    physiological: bool = True  # about the patient (a rule's finding always is)


class AlertError(Refused):
    """An alert that cannot be acted on (no such alert): one line."""


def subject_for(encounter_id: int | None, device_id: str) -> str:
    """Whose condition it is: the open visit's patient, else the device's wearer."""
    return f"encounter:{encounter_id}" if encounter_id is not None else f"device:{device_id}"


def raise_finding(
    store: StoreWriter,
    frame: Frame,
    finding: Finding,
    *,
    subject: str,
    source: str,
    raw_frame_id: int | None,
    new_id: Callable[[int], str] = new_message_id,
) -> int | None:
    """Open an alert for the finding, or mark the open one seen. Returns a new alert's id."""
    current = store.alerts.open_for(subject, finding.condition_key)
    if current is not None and current.code == finding.code:
        store.alerts.touch(current.id, frame.received_wall_ns)
        return None
    if current is not None:  # the same condition at another level
        _end(store, frame, current, new_id)
    alert_id = store.alerts.insert(
        AlertRow(
            id=0,
            raw_frame_id=raw_frame_id,
            device_id=frame.device_id,
            source=source,
            code=finding.code,
            priority=finding.priority,
            text=finding.text,
            text_en=finding.text_en,
            condition_key=finding.condition_key,
            subject=subject,
            state="active",
            raised_wall_ns=frame.received_wall_ns,
            value=None if finding.value is None else str(finding.value),
            metric=finding.metric,
            unit=finding.unit,
            physiological=finding.physiological,
        )
    )
    _queue(store, frame, alert_id, "start", new_id)
    return alert_id


def clear_condition(
    store: StoreWriter,
    frame: Frame,
    *,
    subject: str,
    condition_key: str,
    new_id: Callable[[int], str] = new_message_id,
) -> int | None:
    """The condition has gone: end its open alert (if any). Returns the alert's id."""
    current = store.alerts.open_for(subject, condition_key)
    if current is None:
        return None
    _end(store, frame, current, new_id)
    return current.id


def _end(store: StoreWriter, frame: Frame, alert: AlertRow, new_id: Callable[[int], str]) -> None:
    store.alerts.clear(alert.id, frame.received_wall_ns)
    _queue(store, frame, alert.id, "end", new_id)


def _queue(
    store: StoreWriter, frame: Frame, alert_id: int, phase: str, new_id: Callable[[int], str]
) -> None:
    message_id = new_id(frame.received_wall_ns)
    store.outbox.insert_for_frame(
        message_id,
        frame,
        kind=KIND_ORU_R40,
        priority=PRIORITY_ALERT,
    )
    store.alerts.link_message(message_id, alert_id, phase)


# --- what people do with them ----------------------------------------------------------


def recent(store: StoreReader, *, include_cleared: bool = False, limit: int = 50) -> list[AlertRow]:
    """The open alerts (all of them with `include_cleared`), newest first."""
    return store.alerts.recent(include_cleared=include_cleared, limit=limit)


def as_text(alert: AlertRow) -> str:
    """One alert on one line, for people (`edge-agent alerts` without --json)."""
    seen = f" ack {alert.ack_user}" if alert.ack_user else ""
    value = f" {alert.value} {alert.unit or ''}" if alert.value else ""
    return (
        f"{alert.id:>5} {alert.priority:<6} {alert.state:<12} {alert.code}"
        f" [{alert.device_id}]{value}: {alert.text}{seen}"
    )


def acknowledge(store: StoreWriter, alert_id: int, *, by: str, wall_ns: int) -> AlertRow:
    """Who saw an alert, and when: kept with it (the first one who did); the alert stays
    open until its condition ends. AlertError for an alert that does not exist."""
    with store.transaction():
        known = store.alerts.ack(alert_id, by, wall_ns)
        alert = store.alerts.get(alert_id)
    if not known or alert is None:
        raise AlertError(f"alerts ack {alert_id}: no such alert")
    return alert
