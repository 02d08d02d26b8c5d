"""The sealing pass: every personal value under the active key, in small transactions.

One pass serves two cases: after `keys rotate` (values sealed under an older key id) and
after migrations 9, 12 and 14 (rows written plain before; or by a writer without keys,
edge_agent.store.sealing). It walks the residents, then every other sealed table
(store.sealing.SEALED_TABLES: raw identity frames, frame sources, outbox messages,
notices, reasons, 12-lead file names, cart statements), in that order. Each value names its key id, so what is
left is a query (`sealed_key` not the active id), not a position kept somewhere: a pass
killed at any point (SIGKILL, power loss) lost at most its open batch, which SQLite
rolls back, and the next pass goes on from there. The daemon runs it in the background
between its group commits; `edge-agent keys rotate` and `keys reseal` run it in the
command when no daemon runs.

After a pass that changed something, the WAL is checkpointed and truncated: with the
writer's `secure_delete`, an old value leaves no copy in the database file, and none in
the write-ahead log either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_drivers import registry
from edge_agent.config import Config
from edge_agent.crypto import keyring
from edge_agent.model import Refused
from edge_agent.store import PersonalDataLocked, StoreReader, StoreWriter, sealing

BATCH = 200  # rows per transaction: a few ms on a Pi, so a group commit waits little
FRAME_SHARE = 10  # a raw frame's batch is a tenth of that (a 12-lead file is large)


@dataclass(frozen=True, slots=True)
class KeysStatus:
    active: str
    suite: str
    values: dict[str, int]  # key id (or "plain") -> residents' sealed values under it
    stale_rows: int  # rows the pass still has to re-seal (residents and the rest)
    # key id (or "plain") -> other sealed values (a frame's bytes, a message, a notice)
    rows: dict[str, int] | None = None

    def as_text(self) -> str:
        per_key = ", ".join(f"{k}: {n}" for k, n in self.values.items()) or "none"
        other = ", ".join(f"{k}: {n}" for k, n in (self.rows or {}).items()) or "none"
        state = (
            f"re-sealing, {self.stale_rows} row(s) left"
            if self.stale_rows
            else "every value sealed under it"
        )
        return (
            f"active key {self.active} ({self.suite}); values per key id: {per_key};"
            f" frames and messages per key id: {other}; {state}"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "suite": self.suite,
            "values": self.values,
            "rows": self.rows or {},
            "resealing": self.stale_rows > 0,
            "rows_left": self.stale_rows,
        }


def key_file(config: Config) -> Path:
    return config.security.key_path(config.agent.data_dir)


def init_keys(config: Config, suite: str | None = None) -> dict[str, Any]:
    """`keys init`: the box's key file made (KeyringError if there is one already)."""
    path = key_file(config)
    keys = keyring.init(path, suite or config.security.suite)
    return {"key_file": str(path), "active": keys.active_id, "suite": keys.active.suite.name}


def show_mac(config: Config) -> str:
    """`keys show-mac`: the per-box MAC key, hex (what `gateway enroll` registers)."""
    return keyring.load(key_file(config)).mac_key.hex()


def rotate(
    store: StoreWriter, config: Config, suite: str, wake: Callable[[], None] | None
) -> dict[str, Any]:
    """A new active key in `suite` written to the key file and used by `store` from now
    on; `wake` (the daemon's pass) told, or the answer says the command re-seals."""
    keys = keyring.rotate(key_file(config), suite)
    store.use_keys(keys)
    if wake is not None:
        wake()
    return {**status(store).as_json(), "resealing_in": "command" if wake is None else "daemon"}


def wake_pass(store: StoreReader, wake: Callable[[], None] | None) -> dict[str, Any]:
    """`keys reseal` in the daemon: its sealing pass woken; where it stands now."""
    if wake is None or store.keys is None:
        raise Refused("keys reseal: this process runs no sealing pass")
    wake()
    return {**status(store).as_json(), "resealing_in": "daemon"}


def status(store: StoreReader) -> KeysStatus:
    """The active key and how many values each key id seals (needs the keyring)."""
    keys = store.keys
    if keys is None:
        raise PersonalDataLocked(store.no_keys or "keys: the store was opened without them")
    identity = registry.identity_drivers()
    rows: dict[str, int] = {}
    for t in sealing.SEALED_TABLES:
        for key_id, n in sealing.values_per_key(store.conn, t, identity).items():
            rows[key_id] = rows.get(key_id, 0) + n
    return KeysStatus(
        active=keys.active_id,
        suite=keys.active.suite.name,
        values=store.patients.values_per_key(),
        stale_rows=_stale(store, keys.active_id),
        rows=dict(sorted(rows.items())),
    )


def _stale(store: StoreReader, active_id: str) -> int:
    identity = registry.identity_drivers()
    return store.patients.stale_count(active_id) + sum(
        sealing.stale_count(store.conn, t, active_id, identity) for t in sealing.ROW_TABLES
    )


def reseal_batch(store: StoreWriter, batch: int = BATCH) -> int:
    """One transaction: up to `batch` rows sealed under the active key; how many. The
    residents first, then each other sealed table in turn."""
    if store.keys is None:
        return 0
    identity = registry.identity_drivers()
    with store.transaction():
        done = store.patients.reseal_stale(batch)
        for t in sealing.ROW_TABLES:
            if done >= batch:
                break
            # A raw frame can be a 12-lead file (hundreds of kB): fewer per transaction.
            big = t.table == "raw_frame" and not t.text
            limit = max(1, (batch - done) // FRAME_SHARE) if big else batch
            done += sealing.reseal_stale(store.conn, store.sealing, t, limit, identity)
        return done


def reseal_all(
    store: StoreWriter,
    *,
    batch: int = BATCH,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Batches until nothing is left; `on_progress(done, left)` after each. How many."""
    done = 0
    while n := reseal_batch(store, batch):
        done += n
        if on_progress is not None and store.keys is not None:
            on_progress(done, _stale(store, store.keys.active_id))
    if done:
        store.truncate_wal()
    return done
