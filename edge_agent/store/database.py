"""The box's SQLite database file: the one writer that owns it, and the readers.

One process owns one writer connection: SQLite 3.7.0 to 3.51.2 can corrupt a WAL
database when two connections write or checkpoint concurrently (fixed in 3.51.3, SQLite
release log), and Debian 12 ships 3.40.1. WAL mode, synchronous=FULL (sqlite.org,
"PRAGMA synchronous"): a commit that returned is on the SD card, so anything acked to a
device or shown as saved survives power loss.

`StoreWriter` opens the file, migrates it (edge_agent.store.schema), owns the one
transaction and exposes the repositories with their writes (`store.outbox.mark_sent`).
`open_readonly` gives a `StoreReader`: the same repositories on a read-only connection,
with their reads only (the status CLI, the TUI, the demo's summary); it never blocks the
writer, never migrates and never checkpoints.

Either is given the keyring (edge_agent.crypto.keyring) by the process that may hold it
(the daemon, a command run as the service user), or none: then the residents' personal
values stay sealed (store.patients raises PersonalDataLocked), and so do the other sealed
columns (raw identity frames, outbox messages, notices: edge_agent.store.sealing), which
a writer without keys stores plain for the sealing pass. The writer runs with
`secure_delete` (sqlite.org, "PRAGMA secure_delete"): a value re-sealed or deleted is
overwritten in the file, not left in a free page.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from sqlite_utils import Database

from edge_agent.crypto.keyring import Keyring
from edge_agent.store.alerts import Alerts, AlertsReader
from edge_agent.store.audit import Audit, AuditReader
from edge_agent.store.consent import Consent, ConsentReader
from edge_agent.store.devices import Devices, DevicesReader
from edge_agent.store.ecg import Ecg, EcgReader
from edge_agent.store.exports import ExportsReader
from edge_agent.store.frames import Frames, FramesReader
from edge_agent.store.kiosk_retention import KioskRetention, KioskRetentionReader
from edge_agent.store.meta import Meta, MetaReader
from edge_agent.store.operation_log import OperationLog, OperationLogReader
from edge_agent.store.outbox import Outbox, OutboxReader
from edge_agent.store.patients import Patients, PatientsReader
from edge_agent.store.prealerts import Prealerts, PrealertsReader
from edge_agent.store.quarantine import Quarantine, QuarantineReader
from edge_agent.store.schema import LATEST_VERSION, MIGRATIONS
from edge_agent.store.sealing import Sealing
from edge_agent.store.status import StatusReader
from edge_agent.store.users import Users, UsersReader

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """The store cannot be used (newer schema, unreadable file, failed sync)."""


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        uri = f"file:{path}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    if not readonly:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"store {path}: could not switch to WAL (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA secure_delete = ON")
    return conn


class StoreReader:
    """The store read through one read-only connection (SQLite `mode=ro`): every
    repository's reads, none of its writes. Made by `open_readonly`."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        keys: Keyring | None = None,
        no_keys: str | None = None,
    ) -> None:
        self.conn = conn  # tests look at the tables through it; code asks the repositories
        self.path = path
        self.keys = keys
        self.no_keys = no_keys  # why `keys` is None: the key file's one-line error
        self.sealing = Sealing(keys, no_keys)
        self.frames = FramesReader(conn, self.sealing)
        self.outbox = OutboxReader(conn, self.sealing)
        self.patients = PatientsReader(conn, keys, no_keys)
        self.alerts = AlertsReader(conn)
        self.devices = DevicesReader(conn)
        self.ecg = EcgReader(conn, self.sealing)
        self.prealerts = PrealertsReader(conn, self.sealing)
        self.quarantine = QuarantineReader(conn, self.sealing)
        self.status = StatusReader(conn)
        self.meta = MetaReader(conn)
        self.operation_log = OperationLogReader(conn)
        self.users = UsersReader(conn)
        self.audit = AuditReader(conn)
        self.consent = ConsentReader(conn)
        self.exports = ExportsReader(conn)
        self.kiosk_retention = KioskRetentionReader(conn)

    def use_keys(self, keys: Keyring) -> None:
        """The keyring from now on (after `keys rotate`: the new key seals)."""
        self.keys = keys
        self.patients = PatientsReader(self.conn, keys)
        self.sealing.keys = keys

    def schema_version(self) -> int:
        row = self.conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def close(self) -> None:
        self.conn.close()


class StoreWriter(StoreReader):
    """The writer: owns the process's one write connection and its transaction. Create
    one per process with `StoreWriter.open(path)`; its repositories read and write."""

    frames: Frames
    outbox: Outbox
    patients: Patients
    alerts: Alerts
    devices: Devices
    ecg: Ecg
    prealerts: Prealerts
    quarantine: Quarantine
    meta: Meta
    operation_log: OperationLog
    users: Users
    audit: Audit
    consent: Consent
    kiosk_retention: KioskRetention

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        keys: Keyring | None = None,
        no_keys: str | None = None,
    ) -> None:
        super().__init__(conn, path, keys, no_keys)
        self._db = Database(conn)
        self.frames = Frames(conn, self.sealing)
        self.outbox = Outbox(conn, self.sealing)
        self.patients = Patients(conn, keys, no_keys)
        self.alerts = Alerts(conn)
        self.devices = Devices(conn)
        self.ecg = Ecg(conn, self.sealing)
        self.prealerts = Prealerts(conn, self.sealing)
        self.quarantine = Quarantine(conn, self.sealing)
        self.meta = Meta(conn)
        self.operation_log = OperationLog(conn)
        self.users = Users(conn)
        self.audit = Audit(conn)
        self.consent = Consent(conn)
        self.kiosk_retention = KioskRetention(conn)

    def use_keys(self, keys: Keyring) -> None:
        self.keys = keys
        self.patients = Patients(self.conn, keys)
        self.sealing.keys = keys

    @classmethod
    def open(
        cls, path: Path, keys: Keyring | None = None, *, no_keys: str | None = None
    ) -> StoreWriter:
        """`no_keys`: why `keys` is None (what a personal-data refusal then says)."""
        try:
            conn = _connect(path, readonly=False)
        except sqlite3.Error as exc:
            raise StoreError(f"store {path}: cannot open ({exc})") from None
        store = cls(conn, path, keys, no_keys)
        log.info("store %s: SQLite %s", path, sqlite3.sqlite_version)
        store.migrate()
        return store

    def migrate(self) -> int:
        with self._db.atomic():
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_wall_ns INTEGER)"
            )
            current = (
                self.conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
            )
            if current > LATEST_VERSION:
                raise StoreError(
                    f"store {self.path}: schema version {current} is newer than this program"
                    f" ({LATEST_VERSION}); refusing to touch it"
                )
            for version, name, apply in MIGRATIONS:
                if version <= current:
                    continue
                log.info("store %s: migrating to version %d (%s)", self.path, version, name)
                apply(self._db)
                self.conn.execute(
                    "INSERT INTO schema_version (version, name, applied_wall_ns)"
                    " VALUES (?, ?, CAST(strftime('%s','now') AS INTEGER) * 1000000000)",
                    (version, name),
                )
                current = version
        return current

    def close(self) -> None:
        # Only the writer checkpoints (module docstring: one connection writes the file).
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self.conn.close()

    def truncate_wal(self) -> None:
        """Checkpoint and truncate the WAL, so that pages a re-seal replaced (personal
        values under an old key, or plain) leave no copy in it; skipped while a reader
        holds an older snapshot (the next pass does it)."""
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic, durable unit (synchronous=FULL: returns after the fsync)."""
        with self._db.atomic():
            yield


def open_readonly(
    path: Path, keys: Keyring | None = None, *, no_keys: str | None = None
) -> StoreReader:
    """A reader for status/TUI: never blocks the daemon's writer, never migrates."""
    if not path.exists():
        raise StoreError(f"store {path}: does not exist (has the agent run yet?)")
    try:
        conn = _connect(path, readonly=True)
    except sqlite3.Error as exc:
        raise StoreError(f"store {path}: cannot open ({exc})") from None
    return StoreReader(conn, path, keys, no_keys)
