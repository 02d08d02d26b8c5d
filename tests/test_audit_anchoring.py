"""Audit anchoring at the county gateway (docs/security.md "Audit trail", docs/contracts.md
"Audit batches"): the box sends its audit rows after the last anchor, the gateway keeps
each box's head and flags a batch that does not chain onto it; a box's `audit verify`
checks the chain against the head the gateway acknowledged. The batch parser takes
hostile input (hypothesis); the whole path runs on a real Mosquitto."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import box_uplinks
import gateway_keys
import pytest
from box_keys import enrolled
from box_uplinks import gateway_on, running
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waiting import until

from edge_agent import audit
from edge_agent.clock import SystemClock, new_message_id
from edge_agent.crypto.suites import suite
from edge_agent.local_broker import LocalBroker
from edge_agent.store import AuditRow, StoreWriter
from sync import audit_batches, topics
from sync.audit_batches import BatchError, batch_payload, break_in, parse_batch
from sync.gateway.service import Gateway, _Inbound
from sync.gateway.store import GatewayStore
from sync.message_auth import MessageKey, signed_properties
from sync.uplink import Uplink

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")
CLOCK = SystemClock(boot_id="anchor-boot")
AGENT = "amb-021"
TZ = "Asia/Shanghai"


def add_rows(store: StoreWriter, n: int, suite_name: str = "intl") -> list[AuditRow]:
    rows = []
    with store.transaction():
        for i in range(n):
            event = audit.Event(
                user="zhang.wei",
                role="doctor",
                station=AGENT,
                action="read",
                op="patients.list",
                outcome=audit.OK if i % 3 else audit.REFUSED,
                subject="patients:*",
                reason=None if i % 3 else "national id '<national_id>': check character",
            )
            rows.append(
                audit.append(store, event, suite=suite_name, wall_ns=CLOCK.wall_ns(), timezone=TZ)
            )
    return rows


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreWriter]:
    s = StoreWriter.open(tmp_path / "edge-agent.sqlite3")
    yield s
    s.close()


# --- the batch and its check (pure) -------------------------------------------------


def test_a_batch_round_trips_and_holds_no_personal_text(store: StoreWriter) -> None:
    rows = add_rows(store, 4, "sm")
    payload = batch_payload(AGENT, "01HZX0000000000000000000AB", rows)
    batch = parse_batch(payload, AGENT)
    assert batch.rows == tuple(rows)
    assert batch.batch == "01HZX0000000000000000000AB"
    body = json.loads(payload)
    assert set(body["rows"][0]) == {f.name for f in dataclasses.fields(AuditRow)}
    assert "zhang.wei" in payload.decode()  # the user (staff), as the trail holds it
    assert "national id '<national_id>'" in payload.decode()  # the reason, already masked
    with pytest.raises(BatchError, match="agent is not the topic's"):
        parse_batch(payload, "amb-999")


def test_the_check_names_each_kind_of_break(store: StoreWriter) -> None:
    rows = add_rows(store, 6)
    anchored = {r.seq: r.hash for r in rows[:3]}
    head = (3, rows[2].hash)
    assert break_in(rows[3:], head, anchored.get) is None
    assert break_in(rows, head, anchored.get) is None  # sent again from the start: same rows
    assert break_in(rows[:2], None, anchored.get) is None  # first contact
    edited = dataclasses.replace(rows[4], reason="x")
    assert (
        break_in([rows[3], edited], head, anchored.get) == "row 5: does not match its hash (edited)"
    )
    # a row rewritten with its hash recomputed, below the anchored head
    rewritten = audit._with_hash(dataclasses.replace(rows[1], user="ghost"))
    assert break_in([rewritten], head, anchored.get) == (
        "row 2: not the row anchored before (rewritten on the box)"
    )
    # the chain rebuilt on the box from row 4 on: no longer linked to the head
    rebuilt = audit._with_hash(dataclasses.replace(rows[3], prev_hash=bytes(32)))
    assert break_in([rebuilt], head, anchored.get) == (
        "row 4: not linked to the anchored head, row 3 (rewritten or cut on the box)"
    )
    assert break_in(rows[4:], head, anchored.get) == "rows 4 to 4 never came (cut on the box)"
    assert break_in(rows[:2], head, anchored.get) == (
        "the trail ends at row 2, below the anchored head 3 (cut)"
    )
    assert break_in([rows[3], rows[5]], head, anchored.get) == (
        "row 6: not linked to row 4 before it in the batch"
    )


def test_verify_checks_the_chain_against_the_gateways_anchor(
    tmp_path: Path, store: StoreWriter
) -> None:
    rows = add_rows(store, 10)
    with store.transaction():
        audit.record_gateway_anchor(store, 10, rows[9].hash)
        audit.record_gateway_anchor(store, 4, rows[3].hash)  # an older ACK: kept the newer
    assert audit.gateway_anchor(store) == audit.Anchor(10, rows[9].hash, "gateway")
    assert audit.verify(store).intact
    # The tail cut, and the box's own head moved down with it: the gateway's anchor shows it.
    cut(tmp_path / "edge-agent.sqlite3", after=7, head=rows[6])
    verdict = audit.verify(store)
    assert (verdict.first_bad, verdict.problem) == (
        8,
        "rows 8 to 10 are missing: the gateway anchor says the trail reached row 10 (tail cut)",
    )


# --- hostile batches at the gateway (what is stored) --------------------------------


def _mutations() -> st.SearchStrategy[bytes]:
    good = {
        "batch": "01HZX0000000000000000000AB",
        "agent": AGENT,
        "rows": [
            {
                "seq": 1, "wall_ns": 1, "time": "t", "user": "u", "role": "r", "station": AGENT,
                "action": "read", "op": "o", "subject": None, "person": None, "outcome": "ok",
                "reason": None, "suite": "intl", "prev_hash": "00" * 32, "hash": "00" * 32,
            }
        ],
    }  # fmt: skip
    values = st.one_of(
        st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=70),
        st.just("00" * 32), st.just("AB" * 32), st.lists(st.integers(), max_size=2),
    )  # fmt: skip

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        body: dict[str, Any] = json.loads(json.dumps(good))
        row = body["rows"][0]
        for key in draw(st.lists(st.sampled_from(sorted(row)), max_size=3)):
            row[key] = draw(values)
        for key in draw(st.lists(st.sampled_from(["batch", "agent", "rows"]), max_size=1)):
            body[key] = draw(values)
        return json.dumps(body).encode()

    return st.one_of(mutated(), st.binary(max_size=200))


BOX_KEY = MessageKey(suite("intl"), bytes.fromhex("3c" * 32))


@pytest.fixture
def gateway_store(tmp_path: Path) -> Iterator[tuple[Gateway, GatewayStore]]:
    """A gateway (not started) and its store, the box AGENT enrolled with BOX_KEY."""
    with box_uplinks.enrolled_gateway(tmp_path, AGENT, BOX_KEY) as both:
        yield both


def _kept(store: GatewayStore) -> int:
    one = store.conn.execute
    return sum(
        int(one(sql).fetchone()[0])
        for sql in (
            "SELECT COUNT(DISTINCT batch) FROM audit_row",
            "SELECT COUNT(*) FROM audit_break",
            "SELECT COUNT(*) FROM rejected",
        )
    )


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=_mutations())
def test_any_batch_is_anchored_flagged_or_kept_as_rejected(
    gateway_store: tuple[Gateway, GatewayStore], payload: bytes
) -> None:
    gateway, store = gateway_store
    before = _kept(store)
    head = store.audit_head(AGENT)
    topic = topics.audit(AGENT)
    signed = signed_properties(BOX_KEY, topic, payload)  # the box's own batch
    inbound = _Inbound(topic, payload, topics.CONTENT_TYPE_JSON, None, 1, signed)
    with store.transaction():
        outcome = gateway._accept_audit(store, inbound)
    try:
        batch = parse_batch(payload, AGENT)
    except BatchError:
        assert outcome is None
        assert _kept(store) == before + 1  # kept in `rejected`, with its payload
        assert store.audit_head(AGENT) == head
        return
    assert outcome is not None and outcome.control_id == batch.batch
    breaks = store.audit_report(AGENT)[0]["breaks"] if store.audit_report(AGENT) else []
    if outcome.ack_code == "AA":
        assert store.audit_head(AGENT) is not None
    else:
        assert outcome.ack_code == "AE"
        assert breaks[-1]["batch"] == batch.batch
        assert _kept(store) == before + 1  # kept whole, flagged
        assert store.audit_head(AGENT) == head


# --- box and gateway on a real Mosquitto ---------------------------------------------


def enrolled_box(tmp_path: Path, store: StoreWriter, broker: LocalBroker) -> tuple[Path, Uplink]:
    """The box enrolled at the gateway store tmp_path/gateway.sqlite3 (its path), and
    the box's uplink with its message key."""
    db = tmp_path / "gateway.sqlite3"
    keys = enrolled(tmp_path / "data", db, AGENT)
    key = MessageKey(suite("intl"), keys.mac_key)
    uplink = box_uplinks.box_uplink(store, broker, key, agent=AGENT, clock=CLOCK, ack_timeout_s=2)
    return db, uplink


def raw(db: Path) -> sqlite3.Connection:
    """The box's file as someone holding it: triggers dropped."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    return conn


def cut(db: Path, *, after: int, head: AuditRow) -> None:
    """Rows after `after` deleted and the box's own head moved onto `head`."""
    conn = raw(db)
    try:
        conn.execute("DELETE FROM audit WHERE seq > ?", (after,))
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = ?",
            (f"{head.seq}:{head.hash.hex()}", audit.HEAD_KEY),
        )
    finally:
        conn.close()


def rewrite_from(db: Path, rows: list[AuditRow], seq: int) -> list[AuditRow]:
    """Row `seq` changed and every hash from it on recomputed, the box's head and the
    gateway's anchor in meta rewritten to match or removed: a cover-up the box's own
    `verify` cannot see."""
    out = rows[: seq - 1]
    prev = out[-1].hash if out else audit.GENESIS
    for row in rows[seq - 1 :]:
        changed = dataclasses.replace(row, prev_hash=prev)
        if row.seq == seq:
            changed = dataclasses.replace(changed, user="ghost", outcome=audit.OK)
        changed = audit._with_hash(changed)
        out.append(changed)
        prev = changed.hash
    conn = raw(db)
    try:
        conn.execute("BEGIN")
        conn.execute("DELETE FROM audit")
        fields = [f.name for f in dataclasses.fields(AuditRow)]
        conn.executemany(
            f"INSERT INTO audit ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})",
            [dataclasses.astuple(r) for r in out],
        )
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = ?",
            (f"{out[-1].seq}:{out[-1].hash.hex()}", audit.HEAD_KEY),
        )
        conn.execute("DELETE FROM meta WHERE key = ?", (audit.GATEWAY_ANCHOR_KEY,))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return out


def gateway_audit(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EDGE_AGENT), "gateway", "audit", "--db", str(db), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def test_rows_are_anchored_then_a_rewrite_on_the_box_is_flagged_at_the_gateway(
    tmp_path: Path, broker: LocalBroker, store: StoreWriter
) -> None:
    box_db = tmp_path / "edge-agent.sqlite3"
    db, uplink = enrolled_box(tmp_path, store, broker)
    rows = add_rows(store, 250)
    with gateway_on(broker, db):
        async with running(uplink):
            # 250 rows: a batch of 200, then one of 50, each acknowledged before the next
            await until(lambda: uplink.stats.audit_anchored == 2, 20, "two batches anchored")
            assert audit.gateway_anchor(store) == audit.Anchor(250, rows[-1].hash, "gateway")
            rows += add_rows(store, 5)
            await until(lambda: uplink.stats.audit_anchored == 3, 20, "the 5 new rows anchored")
        assert uplink.stats.audit_batches == 3 and uplink.stats.audit_refused == 0
        assert audit.gateway_anchor(store) == audit.Anchor(255, rows[-1].hash, "gateway")
        assert audit.verify(store).intact

        # Someone with the file rewrites row 3, recomputes the chain and both heads.
        rows = rewrite_from(box_db, rows, 3)
        assert audit.verify(store).intact  # the box alone cannot tell
        rows += add_rows(store, 1)
        async with running(uplink):
            await until(lambda: uplink.stats.audit_refused >= 1, 20, "the next batch refused")
        assert audit.gateway_anchor(store) is None  # nothing anchored since
    shown = gateway_audit(db, "--agent", AGENT, "--json")
    assert shown.returncode == 1, shown.stderr
    [report] = json.loads(shown.stdout)
    assert report["head"]["seq"] == 255  # the head anchored before the rewrite stays
    assert report["head"]["hash"] == rows_hash_at(db, 255)
    first = report["breaks"][0]
    assert (first["first_seq"], first["last_seq"]) == (1, 200)
    assert first["problem"] == "row 3: not the row anchored before (rewritten on the box)"
    text = gateway_audit(db)
    assert text.returncode == 1
    assert f"{AGENT}: anchored to row 255" in text.stdout
    assert "row 3: not the row anchored before (rewritten on the box)" in text.stdout


def rows_hash_at(db: Path, seq: int) -> str:
    store = GatewayStore.open_readonly(db)
    try:
        digest = store.audit_row_hash(AGENT, seq)
    finally:
        store.close()
    assert digest is not None
    return digest.hex()


async def test_a_tail_cut_below_the_anchor_is_named_by_verify_and_flagged(
    tmp_path: Path, broker: LocalBroker, store: StoreWriter
) -> None:
    box_db = tmp_path / "edge-agent.sqlite3"
    db, uplink = enrolled_box(tmp_path, store, broker)
    rows = add_rows(store, 10)
    with gateway_on(broker, db):
        async with running(uplink):
            await until(lambda: uplink.stats.audit_anchored == 1, 20, "anchored")
        cut(box_db, after=6, head=rows[5])
        verdict = audit.verify(store)
        assert verdict.problem == (
            "rows 7 to 10 are missing: the gateway anchor says the trail reached row 10 (tail cut)"
        )
        # The cover-up: the gateway's anchor removed too; the trail goes on from row 6.
        conn = raw(box_db)
        conn.execute("DELETE FROM meta WHERE key = ?", (audit.GATEWAY_ANCHOR_KEY,))
        conn.close()
        add_rows(store, 1)
        async with running(uplink):
            await until(lambda: uplink.stats.audit_refused >= 1, 20, "refused")
    [report] = json.loads(gateway_audit(db, "--json").stdout)
    assert report["head"]["seq"] == 10
    assert report["breaks"][0]["problem"] == (
        "row 7: not the row anchored before (rewritten on the box)"
    )


def test_gateway_audit_refuses_a_bad_agent_id_and_names_no_batches(tmp_path: Path) -> None:
    db = tmp_path / "gateway.sqlite3"
    gateway_keys.made(db)
    GatewayStore.open(db).close()
    bad = gateway_audit(db, "--agent", "../x")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
    empty = gateway_audit(db)
    assert (empty.returncode, empty.stdout.strip()) == (0, "no audit batches received")
    assert gateway_audit(db, "--json").stdout.strip() == "[]"


def test_a_batch_is_at_most_max_rows(store: StoreWriter) -> None:
    rows = add_rows(store, 3)
    payload = batch_payload(AGENT, new_message_id(), rows * 70)
    with pytest.raises(BatchError, match=f"rows is not a list of 1 to {audit_batches.MAX_ROWS}"):
        parse_batch(payload, AGENT)
