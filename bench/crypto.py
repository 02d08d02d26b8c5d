"""Sealed residents: registering and looking up N residents with their national id, name
and phone sealed (edge_agent.patients over the store, each registration its own durable
transaction as `patients add` makes it) vs the same run unencrypted: a plain sqlite3
table of the same shape (unique index on the national id, index on the phone), the
same pragmas (WAL, synchronous=FULL), one transaction per registration.

Look-ups: by national id (blind index under every key of the keyring), by phone, and
reading everyone (`patients list`: every value opened). Also the sealing pass over the
same rows after a rotation (re-seal per resident), per suite.

Ingest (issue 13's target: < 1.3x): HL7/MLLP frames with a PID naming a resident
through the recorder (`--batch` frames per durable commit, as the daemon's group commit),
their raw bytes and the PID they name sealed in the transaction; then the uplink's
first send of each outbox row (the ER7 built, sealed into the row) and a retry (the
stored text read back opened, as `due` gives it); each with keys and the same run
without (a store opened without keys writes the same rows plain).

    .venv/bin/python bench/crypto.py [--residents 2000] [--lookups 2000] [--frames 5000]
        [--batch 50] [--rounds 3] [--dir /tmp]
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
sys.path.insert(0, str(ROOT / "bench"))

from ingest import record_frames  # noqa: E402
from residents import Resident, residents  # noqa: E402

from edge_agent import key_rotation, patients  # noqa: E402
from edge_agent.clock import SystemClock  # noqa: E402
from edge_agent.crypto import keyring  # noqa: E402
from edge_agent.crypto.keyring import Keyring  # noqa: E402
from edge_agent.recorder import Recorder  # noqa: E402
from edge_agent.store import StoreWriter  # noqa: E402
from sync.outbox_messages import build_message  # noqa: E402

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


def hl7_frames(people: list[Resident], n: int) -> list[bytes]:
    """n ORU^R01 a central station pushes: a PID naming a resident, SpO2 and pulse."""
    frames = []
    for i in range(n):
        r = people[i % len(people)]
        segments = [
            f"MSH|^~\\&|MON^00A037009B000001^EUI-64||||||ORU^R01^ORU_R01|B{i}|P|2.6"
            "|||AL|NE||UNICODE UTF-8",
            f"PID|||{r.national_id}^^^CHN^NNCHN||{r.name[0]}^{r.name[1:]}||19491231|F"
            f"|||||{r.phone}",
            "PV1||E",
            "OBR|1|||182777000^monitoring of patient^SCT",
            f"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|{90 + i % 10}"
            "|262688^MDC_DIM_PERCENT^MDC|||||F",
            f"OBX|2|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.2.1.2|{60 + i % 40}"
            "|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F",
        ]
        frames.append(("\r".join(segments) + "\r").encode("utf-8"))
    return frames


def bench_ingest(path: Path, frames: list[bytes], batch: int, keys: Keyring | None) -> Timing:
    store = StoreWriter.open(path, keys)
    clock = SystemClock.create()
    recorder = Recorder(store)
    try:

        def record() -> None:
            record_frames(recorder, frames, batch, "central-1", "hl7-mllp")

        def uplink() -> None:
            now = clock.wall_ns() + 10**12
            while rows := store.outbox.due(now, batch):
                with store.transaction():
                    for row in rows:
                        text = build_message(
                            store, row, agent_id="amb-017", tz="Asia/Shanghai", now_wall_ns=now
                        )
                        store.outbox.set_payload(row.id, text)
                        store.outbox.mark_sent(row.id, now)

        def retry() -> None:  # a message sent again (no ACK in time): the stored text
            for (message_id,) in store.conn.execute("SELECT id FROM outbox").fetchall():
                again = store.outbox.get(message_id)
                assert again is not None and again.payload is not None

        return {"record": _timed(record), "uplink": _timed(uplink), "retry": _timed(retry)}
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=2000)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=5000, help="HL7 frames ingested")
    parser.add_argument("--batch", type=int, default=50, help="frames per durable commit")
    parser.add_argument("--rounds", type=int, default=3, help="ingest runs of each kind")
    parser.add_argument("--dir", default=None, help="where the stores go (default: a temp dir)")
    args = parser.parse_args()
    people = residents(args.residents)
    frames = hl7_frames(people, args.frames)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        plain = bench_plain(folder / "plain.sqlite3", people, args.lookups)
        sealed = {
            suite: bench_sealed(folder / f"{suite}.sqlite3", people, args.lookups, suite)
            for suite in ("intl", "sm")
        }
        # Rounds in turn (plain, intl, sm, plain, ...), the fastest of each kept: the
        # box's other work (and an SD card's moods) land on every side alike.
        kinds: dict[str, Keyring | None] = {
            "plain": None,
            "intl": keyring.new_keyring("intl", keyring.now_utc()),
            "sm": keyring.new_keyring("sm", keyring.now_utc()),
        }
        best: dict[str, Timing] = {}
        for round_ in range(args.rounds):
            for kind, keys in kinds.items():
                run = bench_ingest(
                    folder / f"ingest-{kind}-{round_}.sqlite3", frames, args.batch, keys
                )
                best[kind] = {k: min(v, best.get(kind, run)[k]) for k, v in run.items()}
        ingest_plain = best["plain"]
        ingest = {suite: best[suite] for suite in ("intl", "sm")}
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
    print()
    print(
        f"ingest: {args.frames} HL7/MLLP frames with a PID, {args.batch} per durable commit"
        f" (WAL, synchronous=FULL), fastest of {args.rounds} rounds"
    )
    print()
    print("| step | plain µs a frame | intl µs a frame | ratio | sm µs a frame | ratio |")
    print("|---|---|---|---|---|---|")
    for step in ("record", "uplink", "retry"):
        base = ingest_plain[step]
        cells = [f"{base / args.frames * 1e6:.1f}"]
        for suite in ("intl", "sm"):
            took = ingest[suite][step]
            cells += [f"{took / args.frames * 1e6:.1f}", f"**{took / base:.2f}**"]
        print(f"| {step} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
