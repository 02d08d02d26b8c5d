"""The box's SQLite store: schema and migrations, the one writer, the readers, and one
repository per aggregate (docs/architecture.md, "The store"). This package is the only
place that writes SQL strings."""

from edge_agent.store.alerts import AlertMessage, AlertRow, Alerts, AlertsReader, AlertSummary
from edge_agent.store.audit import Audit, AuditReader, AuditRow
from edge_agent.store.consent import ConsentEvent, ResidentPin, ResidentSession
from edge_agent.store.database import StoreError, StoreReader, StoreWriter, open_readonly
from edge_agent.store.devices import (
    DeviceReport,
    DeviceRow,
    Devices,
    DevicesReader,
    PairedDeviceRow,
)
from edge_agent.store.ecg import Ecg, EcgReader
from edge_agent.store.exports import ExportedReading, ReadingGroup
from edge_agent.store.frames import (
    Frames,
    FrameSource,
    FramesReader,
    ObservationRow,
    RawFrameRow,
    StripRow,
    WaveformSegment,
    WaveformStats,
)
from edge_agent.store.meta import Meta, MetaReader
from edge_agent.store.operation_log import OperationLog, OperationLogReader, OperationRow
from edge_agent.store.outbox import (
    DevicePatient,
    HeldFrame,
    HeldReading,
    Outbox,
    OutboxReader,
    OutboxRow,
    RejectedMessage,
)
from edge_agent.store.patients import (
    EncounterRow,
    News2Context,
    PatientRow,
    Patients,
    PatientsReader,
    PersonalDataLocked,
)
from edge_agent.store.prealerts import NoticeRow, PrealertRow, Prealerts, PrealertsReader
from edge_agent.store.quarantine import (
    Quarantine,
    QuarantineCounts,
    QuarantinedFrame,
    QuarantineReader,
    QuarantineReason,
)
from edge_agent.store.status import ReadingDelivery, StatusReader
from edge_agent.store.users import SessionRow, UserRow, Users, UsersReader

__all__ = [
    "AlertMessage",
    "AlertRow",
    "AlertSummary",
    "Alerts",
    "AlertsReader",
    "Audit",
    "AuditReader",
    "AuditRow",
    "ConsentEvent",
    "DevicePatient",
    "DeviceReport",
    "DeviceRow",
    "Devices",
    "DevicesReader",
    "Ecg",
    "EcgReader",
    "EncounterRow",
    "ExportedReading",
    "FrameSource",
    "Frames",
    "FramesReader",
    "HeldFrame",
    "HeldReading",
    "Meta",
    "MetaReader",
    "News2Context",
    "NoticeRow",
    "ObservationRow",
    "OperationLog",
    "OperationLogReader",
    "OperationRow",
    "Outbox",
    "OutboxReader",
    "OutboxRow",
    "PairedDeviceRow",
    "PatientRow",
    "Patients",
    "PatientsReader",
    "PersonalDataLocked",
    "PrealertRow",
    "Prealerts",
    "PrealertsReader",
    "Quarantine",
    "QuarantineCounts",
    "QuarantineReader",
    "QuarantineReason",
    "QuarantinedFrame",
    "RawFrameRow",
    "ReadingDelivery",
    "ReadingGroup",
    "RejectedMessage",
    "ResidentPin",
    "ResidentSession",
    "SessionRow",
    "StatusReader",
    "StoreError",
    "StoreReader",
    "StoreWriter",
    "StripRow",
    "UserRow",
    "Users",
    "UsersReader",
    "WaveformSegment",
    "WaveformStats",
    "open_readonly",
]
