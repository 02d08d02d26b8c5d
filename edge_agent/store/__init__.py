"""SQLite store: schema/migrations and the single writer."""

from edge_agent.store.store import (
    EncounterRow,
    ObservationRow,
    OutboxRow,
    PatientRow,
    PrealertRow,
    Store,
    StoreError,
    WaveformSegment,
    open_readonly,
)

__all__ = [
    "EncounterRow",
    "ObservationRow",
    "OutboxRow",
    "PatientRow",
    "PrealertRow",
    "Store",
    "StoreError",
    "WaveformSegment",
    "open_readonly",
]
