"""SQLite store: schema/migrations and the single writer."""

from edge_agent.store.store import (
    AlertRow,
    EncounterRow,
    FrameSource,
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
    "AlertRow",
    "EncounterRow",
    "FrameSource",
    "ObservationRow",
    "OutboxRow",
    "PatientRow",
    "PrealertRow",
    "Store",
    "StoreError",
    "WaveformSegment",
    "open_readonly",
]
