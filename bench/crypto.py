"""Sealed residents: registering and looking up N residents with their national id, name
and phone sealed (edge_agent.patients over the store, each registration its own durable
transaction as `patients add` makes it) vs the same run unencrypted: a plain sqlite3
table of the same shape (unique index on the national id, index on the phone), the
same pragmas (WAL, synchronous=FULL), one transaction per registration.

Look-ups: by national id (blind index under every key of the keyring), by phone, and
reading everyone (`patients list`: every value opened). Also the sealing pass over the
same rows after a rotation (re-seal per resident), per suite.

    .venv/bin/python bench/crypto.py [--residents 2000] [--lookups 2000] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the made-up residents the tests use

from residents import Resident, residents  # noqa: E402

from edge_agent import key_rotation, patients  # noqa: E402
from edge_agent.clock import SystemClock  # noqa: E402
from edge_agent.crypto import keyring  # noqa: E402
from edge_agent.store import StoreWriter  # noqa: E402

Timing = dict[str, float]


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def bench_sealed(path: Path, people: list[Resident], lookups: int, suite: str) -> Timing:
    keys = keyring.new_keyring(suite, keyring.now_utc())
    store = StoreWriter.open(path, keys)
    clock = SystemClock.create()
    wanted = [people[i * 7919 % len(people)] for i in range(lookups)]
    try:

        def register() -> None:
            for r in people:
                patients.register(
                    store, clock, national_id_number=r.national_id, name=r.name, phone=r.phone
                )

        def by_id() -> None:
            for r in wanted:
                assert store.patients.by_national_id(r.national_id) is not None

        def by_phone() -> None:
            for r in wanted:
                assert patients.find_by_phone(store, r.phone)

        t = {
            "register": _timed(register),
            "by national id": _timed(by_id),
            "by phone": _timed(by_phone),
            "read everyone": _timed(lambda: patients.residents(store)),
        }
        store.use_keys(keys.with_new_key(suite, keyring.now_utc()))
        t["re-seal everyone"] = _timed(lambda: key_rotation.reseal_all(store))
        return t
    finally:
        store.close()


def bench_plain(path: Path, people: list[Resident], lookups: int) -> Timing:
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(
        "CREATE TABLE patient (id INTEGER PRIMARY KEY, national_id TEXT NOT NULL, name TEXT"
        " NOT NULL, phone TEXT, sex TEXT, birth_date TEXT, created_wall_ns INTEGER NOT NULL)"
    )
    conn.execute("CREATE UNIQUE INDEX patient_nid ON patient (national_id)")
    conn.execute("CREATE INDEX patient_phone ON patient (phone)")
    wanted = [people[i * 7919 % len(people)] for i in range(lookups)]
    try:

        def register() -> None:
            for r in people:
                conn.execute("BEGIN")
                if not conn.execute(
                    "SELECT id FROM patient WHERE national_id = ?", (r.national_id,)
                ).fetchone():
                    conn.execute(
                        "INSERT INTO patient (national_id, name, phone, sex, birth_date,"
                        " created_wall_ns) VALUES (?, ?, ?, 'M', '1940-01-01', ?)",
                        (r.national_id, r.name, r.phone, time.time_ns()),
                    )
                conn.execute("COMMIT")

        def by_id() -> None:
            for r in wanted:
                assert conn.execute(
                    "SELECT * FROM patient WHERE national_id = ?", (r.national_id,)
                ).fetchone()

        def by_phone() -> None:
            for r in wanted:
                assert conn.execute("SELECT * FROM patient WHERE phone = ?", (r.phone,)).fetchall()

        return {
            "register": _timed(register),
            "by national id": _timed(by_id),
            "by phone": _timed(by_phone),
            "read everyone": _timed(
                lambda: conn.execute("SELECT * FROM patient ORDER BY id").fetchall()
            ),
        }
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=2000)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--dir", default=None, help="where the stores go (default: a temp dir)")
    args = parser.parse_args()
    people = residents(args.residents)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        plain = bench_plain(folder / "plain.sqlite3", people, args.lookups)
        sealed = {
            suite: bench_sealed(folder / f"{suite}.sqlite3", people, args.lookups, suite)
            for suite in ("intl", "sm")
        }
    n = {"register": args.residents, "read everyone": args.residents}
    print(
        f"{args.residents} residents, {args.lookups} look-ups; {platform.machine()},"
        f" Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    print()
    print("| step | plain µs each | intl µs each | ratio | sm µs each | ratio |")
    print("|---|---|---|---|---|---|")
    for step in ("register", "by national id", "by phone", "read everyone", "re-seal everyone"):
        count = n.get(step, args.residents if step == "re-seal everyone" else args.lookups)
        base = plain.get(step)
        cells = [f"{base / count * 1e6:.1f}" if base is not None else "-"]
        for suite in ("intl", "sm"):
            took = sealed[suite][step]
            cells.append(f"{took / count * 1e6:.1f}")
            cells.append(f"**{took / base:.2f}**" if base else "-")
        print(f"| {step} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
