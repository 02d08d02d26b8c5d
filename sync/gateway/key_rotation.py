"""`edge-agent gateway keys rotate|reseal|status`: a new data key for the gateway's
store, and the sealing pass that puts every sealed value under it.

`rotate` adds a key (`k<N+1>`, the new active one) to the gateway's key file
(sync.gateway.keys, written atomically) and the store seals with it from then on; the
pass then re-seals every row of the tables in `sync.gateway.store.SEALED` whose
`sealed_key` is not the active id, and makes each row's blind index anew under the new
key, in batches of `BATCH` rows, each batch one transaction. What is left is a query,
not a saved position: a pass killed at any point (SIGKILL, power loss) loses at most its
open batch, which SQLite rolls back, and `gateway keys reseal` (or the gateway's next
start) goes on from there. A look-up by national id computes the blind index under
every key of the file, so a half-done pass finds everyone. After a pass the WAL is
checkpointed and truncated: with the store's `secure_delete`, an old sealed value
leaves no copy behind.

While a gateway runs on the store, its store thread runs the pass between its batches
of messages (sync.gateway.service); otherwise the command runs it under the store's
writer lock, printing its progress.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_agent.crypto.suites import SUITES
from edge_agent.model import Refused
from sync.gateway import keys as gateway_keys
from sync.gateway.store import GatewayStore

BATCH = 200  # rows a transaction: a few ms, so the messages of a batch wait little


def rotate(store: GatewayStore, suite_name: str | None) -> dict[str, Any]:
    """A new active key in `suite_name` (default: the active key's suite) in the store's
    key file, used by `store` from now on; where the keys stand."""
    chosen = suite_name or store.keyring.active.suite.name
    if chosen not in SUITES:
        raise Refused(f"gateway keys rotate --suite {chosen!r}: one of {', '.join(sorted(SUITES))}")
    store.use_keys(gateway_keys.rotate(store.key_file, chosen))
    return status(store)


def status(store: GatewayStore) -> dict[str, Any]:
    """The active key, the rows of each sealed table per key id, what is left to do."""
    per_table = store.values_per_key()
    totals: dict[str, int] = {}
    for counts in per_table.values():
        for key_id, n in counts.items():
            totals[key_id] = totals.get(key_id, 0) + n
    left = store.stale_rows()
    return {
        "key_file": str(store.key_file),
        "active": store.keyring.active_id,
        "suite": store.keyring.active.suite.name,
        "values": dict(sorted(totals.items())),
        "tables": per_table,
        "resealing": left > 0,
        "rows_left": left,
    }


def as_text(report: dict[str, Any]) -> str:
    per_key = ", ".join(f"{k}: {n}" for k, n in report["values"].items()) or "none"
    state = (
        f"re-sealing, {report['rows_left']} row(s) left"
        if report["resealing"]
        else "every value sealed under it"
    )
    return (
        f"active key {report['active']} ({report['suite']}); values per key id: {per_key}; {state}"
    )


def reseal_all(
    store: GatewayStore,
    *,
    batch: int = BATCH,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Batches until nothing is left; `on_progress(done, left)` after each. How many."""
    if batch < 1:
        raise Refused("gateway keys reseal --batch: at least 1 row per transaction")
    done = 0
    while n := store.reseal_batch(batch):
        done += n
        if on_progress is not None:
            on_progress(done, store.stale_rows())
    if done:
        store.truncate_wal()
    return done


# --- `edge-agent gateway keys rotate|reseal|status` ----------------------------------------


def _command(
    db: str,
    op: str,
    args: dict[str, Any],
    *,
    key_file: str | None,
    as_user: tuple[str, str] | None,
    batch: int,
    on_progress: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    from sync.gateway import operations

    if batch < 1:
        raise Refused(f"gateway {op} --batch: at least 1 row per transaction")
    finished: list[dict[str, Any]] = []

    def here(store: GatewayStore) -> None:
        reseal_all(store, batch=batch, on_progress=on_progress)
        finished.append(status(store))

    answer = operations.perform(db, op, args, as_user=as_user, key_file=key_file, reseal=here)
    if finished:  # no gateway ran: this process made the pass
        return {**finished[0], "resealing_in": "command"}
    return {**answer, "resealing_in": "gateway"}


def rotate_keys(
    db: str,
    suite_name: str | None = None,
    *,
    key_file: str | None = None,
    as_user: tuple[str, str] | None = None,
    batch: int = BATCH,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """`gateway keys rotate`: a new key, then the pass (the running gateway's, in its
    background; else here, batch by batch). Where the keys stand."""
    args = {} if suite_name is None else {"suite": suite_name}
    return _command(
        db,
        "keys.rotate",
        args,
        key_file=key_file,
        as_user=as_user,
        batch=batch,
        on_progress=on_progress,
    )


def reseal_keys(
    db: str,
    *,
    key_file: str | None = None,
    as_user: tuple[str, str] | None = None,
    batch: int = BATCH,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """`gateway keys reseal`: the pass of a rotation that was stopped, finished."""
    return _command(
        db,
        "keys.reseal",
        {},
        key_file=key_file,
        as_user=as_user,
        batch=batch,
        on_progress=on_progress,
    )


def keys_status(
    db: str, *, key_file: str | None = None, as_user: tuple[str, str] | None = None
) -> dict[str, Any]:
    """`gateway keys status`: the active key and the values under each key id."""
    from sync.gateway import operations

    return operations.perform(db, "keys.status", {}, as_user=as_user, key_file=key_file)
