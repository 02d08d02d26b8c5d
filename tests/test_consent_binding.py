"""A withdrawn consent stops binding, on every box role (edge_agent/consent.py,
edge_agent/recorder.py): `visit start` and `readings assign` refused and audited as
refused, the resident's open visits ended at the withdrawal (audited), the device's
next readings held unbound (`consent-withdrawn`), what was bound before kept and still
queued for the county; consent given again binds again. On real SQLite files through
edge_agent.operations as the daemon runs them, frames through the real recorder, with a
clock the tests step; the daemon itself with a simulated pulse oximeter on a pty.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from box_keys import init_keys_in, keys_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from operated_box import RESIDENT, Box, StepClock
from residents import resident
from waiting import until

from device_drivers import registry
from device_drivers.ecg import scp
from device_drivers.serial.port import SerialTransport
from device_drivers.simulators import nonin as nonin_sim
from device_drivers.simulators.ecg_cart import synthetic_12_lead
from device_drivers.simulators.pty import open_pty
from edge_agent import operations
from edge_agent.config import Config, DeviceConfig, from_dict
from edge_agent.control import Caller, OpError
from edge_agent.daemon import bootstrap
from edge_agent.devices import runtime_for
from edge_agent.model import (
    HELD_CONSENT_WITHDRAWN,
    HELD_NO_VISIT,
    OUTBOX_HELD,
    OUTBOX_PENDING,
    Decoded,
    Frame,
    Reading,
)
from edge_agent.recorder import Recorder
from edge_agent.store import StoreWriter

OTHER = resident(7).national_id
PIN = "246810"
ROLES = ["clinic", "ambulance", "kiosk"]
MONITOR = ("monitor-1", "masimo-ascii")  # a monitor: with no visit open, sent unbound
CUFF = ("cuff-1", "ble-plx-spot")  # a personal device: with no visit open, held


def box_config(tmp: Path, role: str) -> Config:
    return from_dict(
        {
            "agent": {"id": "box-9", "data_dir": str(tmp / "data"), "role": role},
            "uplink": {"broker": "mqtt://127.0.0.1:9", "allow_insecure": True},
        }
    )


def open_box(tmp: Path, role: str) -> Box:
    """A box of `role` with no users (the OS user acts as its admin), two residents."""
    config = box_config(tmp, role)
    clock = StepClock()
    box = Box(
        operations.Services(StoreWriter.open(config.agent.db_path, keys_of(config)), clock, config),
        clock,
    )
    for number, name in ((RESIDENT, "张三"), (OTHER, "李四")):
        box.run("patients.add", {"national_id": number, "name": name})
    return box


@pytest.fixture(params=ROLES)
def box(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Box]:
    opened = open_box(tmp_path, request.param)
    yield opened
    opened.store.close()


def spo2(_: bytes) -> Decoded:
    return Decoded(readings=(Reading("MDC_PULS_OXIM_SAT_O2", Decimal("97"), "MDC_DIM_PERCENT"),))


def frame(box: Box, device: tuple[str, str], at_wall_ns: int | None = None) -> Frame:
    device_id, driver = device
    wall = box.clock.wall_ns() if at_wall_ns is None else at_wall_ns
    return Frame(device_id, driver, b"97", wall, box.clock.mono_ns(), box.clock.boot_id)


def record(box: Box, *frames: Frame) -> list[int]:
    """The frames recorded in one group commit, as the daemon's recorder does; their
    raw frame ids. Each sends its readings (no upload interval)."""
    results = Recorder(box.store).record_many([(f, spo2) for f in frames])
    ids = [r.raw_frame_id for r in results]
    assert all(i is not None for i in ids) and all(r.message_id for r in results)
    box.clock.advance(1)
    return [i for i in ids if i is not None]


def bound_to(box: Box, frame_id: int) -> int | None:
    """The patient a frame's readings are bound to (through their visit), or None."""
    rows = box.store.conn.execute(
        "SELECT DISTINCT e.patient_id FROM observation o LEFT JOIN encounter e"
        " ON e.id = o.encounter_id WHERE o.raw_frame_id = ?",
        (frame_id,),
    ).fetchall()
    assert len(rows) == 1, rows
    frame_visit = box.store.conn.execute(
        "SELECT e.patient_id FROM raw_frame f LEFT JOIN encounter e ON e.id = f.encounter_id"
        " WHERE f.id = ?",
        (frame_id,),
    ).fetchone()
    assert frame_visit == rows[0]  # the frame and its readings agree
    return None if rows[0][0] is None else int(rows[0][0])


def outbox_of(box: Box, frame_id: int) -> tuple[str, str | None]:
    status, reason = box.store.conn.execute(
        "SELECT status, held_reason FROM outbox WHERE raw_frame_id = ?", (frame_id,)
    ).fetchone()
    return str(status), reason


def give(box: Box, number: str = RESIDENT) -> None:
    box.run("consent.give", {"national_id": number, "pin": PIN})


def withdraw(box: Box, number: str = RESIDENT) -> dict[str, object]:
    return box.run("consent.withdraw", {"national_id": number})


def audit_rows(box: Box, op: str) -> list[tuple[object, ...]]:
    return [
        (r.action, r.subject, r.person, r.outcome, r.reason)
        for r in box.store.audit.find(limit=10_000)
        if r.op == op
    ]


# --- the withdrawal mid-visit, on each role -------------------------------------------


def test_a_withdrawal_ends_the_visits_and_holds_the_next_readings_unbound(box: Box) -> None:
    give(box)
    visit = box.run("visit.start", {"national_id": RESIDENT, "device": MONITOR[0]})["encounter"]
    box_visit = box.run("visit.start", {"national_id": RESIDENT})["encounter"]  # the box's
    before = record(box, frame(box, MONITOR), frame(box, CUFF))
    assert [bound_to(box, f) for f in before] == [1, 1]
    box.clock.advance(60)
    at = box.clock.wall_ns()
    answer = withdraw(box)
    assert answer["visits_ended"] == [visit, box_visit]
    ended = box.store.conn.execute(
        "SELECT id, ended_wall_ns FROM encounter WHERE patient_id = 1 ORDER BY id"
    ).fetchall()
    assert ended == [(visit, at), (box_visit, at)]  # at the withdrawal's own time
    assert audit_rows(box, "visit.end") == [
        ("change", f"encounter:{e}", 1, "ok", "ended by the resident's withdrawal of consent")
        for e in (visit, box_visit)
    ]
    assert audit_rows(box, "consent.withdraw") == [("change", "patient:1", 1, "ok", None)]

    after = record(box, frame(box, MONITOR), frame(box, CUFF))
    assert [bound_to(box, f) for f in after] == [None, None]
    assert [outbox_of(box, f) for f in after] == [(OUTBOX_HELD, HELD_CONSENT_WITHDRAWN)] * 2
    held = {h["frame_id"]: h["reason"] for h in box.store.outbox.held_frames()}
    assert held == dict.fromkeys(after, HELD_CONSENT_WITHDRAWN)
    # What was bound before stays bound, and still goes to the county.
    assert [bound_to(box, f) for f in before] == [1, 1]
    assert [outbox_of(box, f)[0] for f in before] == [OUTBOX_PENDING] * 2


def test_visit_start_and_readings_assign_are_refused_and_audited_as_refused(box: Box) -> None:
    give(box)
    give(box, OTHER)
    withdraw(box)
    held = record(box, frame(box, CUFF))
    refused: list[tuple[str, dict[str, object]]] = [
        ("visit.start", {"national_id": RESIDENT, "device": MONITOR[0]}),
        ("readings.assign", {"national_id": RESIDENT, "frames": held}),
    ]
    for op, args in refused:
        with pytest.raises(OpError, match=rf"^{op}: patient 1: the resident has withdrawn") as no:
            box.run(op, args)
        assert "\n" not in str(no.value) and RESIDENT not in str(no.value)
        assert audit_rows(box, op) == [("change", "patient:1", 1, "refused", str(no.value))]
    assert box.store.conn.execute("SELECT COUNT(*) FROM encounter").fetchone() == (0,)
    assert [h["frame_id"] for h in box.store.outbox.held_frames()] == held
    # Another resident is not affected: the held readings are theirs if a doctor says so.
    assert box.run("readings.assign", {"national_id": OTHER, "frames": held}) == {"assigned": 1}
    assert bound_to(box, held[0]) == 2


def test_consent_given_again_binds_again(box: Box) -> None:
    give(box)
    box.run("visit.start", {"national_id": RESIDENT, "device": MONITOR[0]})
    withdraw(box)
    (held,) = record(box, frame(box, MONITOR))
    give(box)  # the PIN set at the first consent, checked
    # No visit open now: a monitor's readings go up unbound as before any visit, a
    # personal device's wait for a visit (no longer for the withdrawal).
    monitor, cuff = record(box, frame(box, MONITOR), frame(box, CUFF))
    assert [bound_to(box, f) for f in (monitor, cuff)] == [None, None]
    assert [outbox_of(box, f) for f in (monitor, cuff)] == [
        (OUTBOX_PENDING, None),
        (OUTBOX_HELD, HELD_NO_VISIT),
    ]
    visit = box.run("visit.start", {"national_id": RESIDENT, "device": MONITOR[0]})["encounter"]
    (bound,) = record(box, frame(box, MONITOR))
    assert bound_to(box, bound) == 1
    assert box.store.conn.execute(
        "SELECT encounter_id FROM raw_frame WHERE id = ?", (bound,)
    ).fetchone() == (visit,)
    # The reading held while consent was withdrawn may be assigned to them now.
    assert box.run("readings.assign", {"national_id": RESIDENT, "frames": [held]}) == {
        "assigned": 1
    }
    assert bound_to(box, held) == 1 and outbox_of(box, held)[0] == OUTBOX_PENDING


def test_with_no_consent_rows_a_clinic_or_crew_binds_and_a_kiosk_does_not(box: Box) -> None:
    if box.services.config.agent.role == "kiosk":
        with pytest.raises(OpError, match="on a kiosk the resident's consent is needed first"):
            box.run("visit.start", {"national_id": RESIDENT, "device": MONITOR[0]})
        assert audit_rows(box, "visit.start")[-1][3] == "refused"
        (unbound,) = record(box, frame(box, MONITOR))
        assert bound_to(box, unbound) is None
        return
    box.run("visit.start", {"national_id": RESIDENT, "device": MONITOR[0]})
    (bound,) = record(box, frame(box, MONITOR))
    assert bound_to(box, bound) == 1
    assert box.store.consent.latest(1) is None  # care under the clinic's own basis


# --- the race: decided inside the writer ----------------------------------------------


def test_a_frame_read_before_the_withdrawal_but_committed_after_it_is_not_bound(
    box: Box,
) -> None:
    """The daemon reads frames into a batch and commits the batch every
    commit_interval_ms; the withdrawal runs on the same loop between two commits. A
    frame read before it but in the next group commit is not bound: binding is decided
    by the recorder against the store, in the commit's own transaction."""
    give(box)
    box.run("visit.start", {"national_id": RESIDENT})  # for every device of the box
    read_at = box.clock.wall_ns()
    before = record(box, frame(box, MONITOR, read_at))  # the commit before the withdrawal
    box.clock.advance(0.1)
    withdraw(box)
    withdrawn_at = box.clock.wall_ns()
    # The batch that was waiting: read before the withdrawal, of both devices.
    batch = record(
        box, frame(box, MONITOR, read_at + 1), frame(box, CUFF, read_at + 2), frame(box, MONITOR)
    )
    received = box.store.conn.execute(
        f"SELECT received_wall_ns FROM raw_frame WHERE id IN ({','.join('?' * len(batch))})",
        batch,
    ).fetchall()
    assert [r[0] < withdrawn_at for r in received] == [True, True, False]
    assert bound_to(box, before[0]) == 1
    assert [bound_to(box, f) for f in batch] == [None, None, None]
    assert {outbox_of(box, f) for f in batch} == {(OUTBOX_HELD, HELD_CONSENT_WITHDRAWN)}


def test_a_visit_left_open_past_a_withdrawal_binds_nothing(box: Box) -> None:
    """A store written before a withdrawal ended visits: the withdrawal recorded, the
    visit still open. The recorder asks the consent itself, so it binds nothing."""
    give(box)
    box.run("visit.start", {"national_id": RESIDENT, "device": MONITOR[0]})
    latest = box.store.consent.latest(1)
    assert latest is not None
    with box.store.transaction():  # the withdrawal as an older box recorded it
        box.store.consent.record(
            1,
            "withdraw",
            text_version=latest.text_version,
            text_sha256=latest.text_sha256,
            wall_ns=box.clock.wall_ns(),
            by_user="root",
            by_role="admin",
        )
    assert box.store.patients.current_encounter(MONITOR[0]) is not None
    (frame_id,) = record(box, frame(box, MONITOR))
    assert bound_to(box, frame_id) is None
    assert outbox_of(box, frame_id) == (OUTBOX_HELD, HELD_CONSENT_WITHDRAWN)


def test_a_12_lead_after_a_withdrawal_goes_up_unbound_not_held(box: Box) -> None:
    """A 12-lead's lane is the ER's (a STEMI notice must not wait): unbound, sent."""
    give(box)
    box.run("visit.start", {"national_id": RESIDENT, "device": "cart-1"})
    withdraw(box)
    ecg = scp.encode_scp(synthetic_12_lead(stemi=True))
    result = Recorder(box.store).record(
        Frame("cart-1", "ecg-scp", ecg, box.clock.wall_ns(), 1, "boot-1"),
        registry.driver("ecg-scp").decoder_for(None),
    )
    assert result.outcome == "decoded" and result.message_id is not None
    row = box.store.outbox.get(result.message_id)
    assert row is not None and row.status == OUTBOX_PENDING
    assert box.store.conn.execute(
        "SELECT encounter_id FROM raw_frame WHERE id = ?", (result.raw_frame_id,)
    ).fetchone() == (None,)
    (notice,) = box.store.prealerts.recent(limit=10)
    assert notice.stemi and notice.encounter_id is None  # the ER is told all the same


# --- property: whatever the order, nothing binds while a withdrawal stands ------------

STEP_NAMES = (
    "give",
    "withdraw",
    "visit *",  # for every device of the box
    "visit monitor-1",
    "end *",
    "end monitor-1",
    "monitor",  # a frame from the monitor
    "cuff",  # a frame from the personal device
)
STEPS = st.lists(st.sampled_from(STEP_NAMES), max_size=14)


@dataclass
class Visit:
    station: str
    open: bool = True
    ended_by_withdrawal: bool = False


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(role=st.sampled_from(ROLES), steps=STEPS)
def test_any_order_of_consents_visits_and_readings_binds_only_as_consent_allows(
    tmp_path_factory: pytest.TempPathFactory, role: str, steps: list[str]
) -> None:
    """A model of the rules beside the real box: after every step, what the store holds
    for each frame (bound to the resident, held and why) is what the model says, and
    the recorder's look at a station finds the visit every other reader finds."""
    box = open_box(tmp_path_factory.mktemp("box"), role)
    consent, visits = "none", list[Visit]()
    try:
        for step in steps:
            box.clock.advance(1)  # a real clock moves between two things people do
            verb, _, station = step.partition(" ")
            if step == "give":
                give(box)
                consent = "given"
            elif step == "withdraw":
                if consent != "given":
                    with pytest.raises(OpError, match="no consent standing"):
                        withdraw(box)
                    continue
                withdraw(box)
                consent = "withdrawn"
                for v in visits:  # only the visits it ended count as ended by it
                    v.ended_by_withdrawal, v.open = v.open, False
            elif verb == "visit":
                if consent == "withdrawn" or (consent == "none" and role == "kiosk"):
                    with pytest.raises(OpError, match=r"^visit\.start: patient 1: "):
                        box.run("visit.start", {"national_id": RESIDENT, "device": station})
                    continue
                box.run("visit.start", {"national_id": RESIDENT, "device": station})
                for v in visits:
                    if v.station == station and v.open:
                        v.open, v.ended_by_withdrawal = False, False
                visits.append(Visit(station))
            elif verb == "end":
                box.run("visit.end", {"device": station})
                for v in visits:
                    if v.station == station and v.open:
                        v.open, v.ended_by_withdrawal = False, False
            else:
                device = MONITOR if step == "monitor" else CUFF
                (frame_id,) = record(box, frame(box, device))
                here = [v for v in visits if v.station in (device[0], "*")]
                open_here = [v for v in here if v.open]
                open_now = [v for v in open_here if v.station != "*"] or open_here
                withheld = consent == "withdrawn" and bool(here) and here[-1].ended_by_withdrawal
                assert bound_to(box, frame_id) == (1 if open_now else None), steps
                if open_now:
                    expected: tuple[str, str | None] = (OUTBOX_PENDING, None)
                elif withheld:
                    expected = (OUTBOX_HELD, HELD_CONSENT_WITHDRAWN)
                elif device == CUFF:
                    expected = (OUTBOX_HELD, HELD_NO_VISIT)
                else:
                    expected = (OUTBOX_PENDING, None)
                assert outbox_of(box, frame_id) == expected, steps
            for device_id in (MONITOR[0], CUFF[0]):
                visit = box.store.patients.station_visit(device_id)
                assert visit.open == box.store.patients.current_encounter(device_id), steps
        # Nothing recorded while a withdrawal stood is bound, whatever came after.
        assert box.store.conn.execute(
            "SELECT COUNT(*) FROM observation o JOIN encounter e ON e.id = o.encounter_id"
            " WHERE EXISTS (SELECT 1 FROM consent_event c WHERE c.patient_id = e.patient_id"
            " AND c.action = 'withdraw' AND c.wall_ns <= o.received_wall_ns AND NOT EXISTS"
            " (SELECT 1 FROM consent_event g WHERE g.patient_id = c.patient_id"
            " AND g.action = 'give' AND g.id > c.id AND g.wall_ns <= o.received_wall_ns))"
        ).fetchone() == (0,)
    finally:
        box.store.close()


# --- the daemon, a pulse oximeter on a pty, the withdrawal mid-visit -------------------


@pytest.mark.parametrize("role", ROLES)
async def test_a_withdrawal_mid_visit_with_a_live_device(tmp_path: Path, role: str) -> None:
    """edge_agent.daemon as bootstrap builds it, a Nonin DF7 simulator on a pty. The
    operations run on the daemon's loop as its control socket runs them (operations.
    handler), so the test sees exactly which group commits came before the withdrawal's
    and which after, and waits for a moment when frames read from the port wait for
    the next group commit (the race)."""
    master_fd, slave = open_pty()
    config = box_config(tmp_path, role)
    runtime = runtime_for(DeviceConfig(id="spo2-1", driver="nonin-df7", port=slave))
    assert isinstance(runtime.transport, SerialTransport)
    init_keys_in(config.agent.data_dir)
    agent = bootstrap(config, devices=[runtime])
    services = operations.Services(agent.store, agent.clock, agent.config, agent.uplink.wake)
    me = Caller(user="root", uid=os.getuid(), session=None)
    conn = agent.store.conn

    def run(op: str, args: dict[str, object]) -> dict[str, object]:
        return operations.run(services, op, args, me)

    def frames_of(encounter: int | None, after: int = 0) -> int:
        return int(
            conn.execute(
                "SELECT COUNT(*) FROM raw_frame WHERE id > ? AND outcome = 'decoded'"
                " AND encounter_id IS ?",
                (after, encounter),
            ).fetchone()[0]
        )

    stop, device_stop = asyncio.Event(), asyncio.Event()
    daemon = asyncio.create_task(agent.run(stop))
    device = asyncio.create_task(nonin_sim.run(master_fd, fmt=7, seed=3, stop=device_stop))
    try:
        run("patients.add", {"national_id": RESIDENT, "name": "张三"})
        run("consent.give", {"national_id": RESIDENT, "pin": PIN})
        visit = run("visit.start", {"national_id": RESIDENT, "device": "spo2-1"})["encounter"]
        assert isinstance(visit, int)
        await until(lambda: frames_of(visit) >= 3, 20, "readings bound to the visit")
        # Frames read from the port that wait for the next group commit (the daemon's
        # batch): the withdrawal runs now, between two commits, as the socket's would.
        await until(lambda: len(agent._pending) >= 1, 10, "a frame waiting for its commit")
        waiting = len(agent._pending)
        run("consent.withdraw", {"national_id": RESIDENT})
        withdrawn_at = agent.store.consent.latest(1).wall_ns  # type: ignore[union-attr]
        boundary = int(conn.execute("SELECT MAX(id) FROM raw_frame").fetchone()[0])
        assert len(agent._pending) >= waiting  # nothing was committed in between
        await until(lambda: len(agent.store.outbox.held_frames("spo2-1")) >= 1, 20, "held readings")
        with pytest.raises(OpError, match="the resident has withdrawn consent"):
            run("visit.start", {"national_id": RESIDENT, "device": "spo2-1"})
        run("consent.give", {"national_id": RESIDENT, "pin": PIN})
        again = run("visit.start", {"national_id": RESIDENT, "device": "spo2-1"})["encounter"]
        assert isinstance(again, int)
        await until(lambda: frames_of(again) >= 3, 20, "readings bound again after consent")
    finally:
        device_stop.set()
        stop.set()
        await asyncio.wait_for(asyncio.gather(daemon, device), 20)
        agent.close()
        os.close(master_fd)

    store = StoreWriter.open(config.agent.db_path, keys_of(config))
    try:
        rows = store.conn.execute(
            "SELECT id, received_wall_ns, encounter_id FROM raw_frame WHERE outcome = 'decoded'"
            " ORDER BY id"
        ).fetchall()
        regiven_at = store.consent.latest(1).wall_ns  # type: ignore[union-attr]
        before = [r for r in rows if r[0] <= boundary]
        after = [r for r in rows if boundary < r[0] and r[2] is None]
        # Every frame committed before the withdrawal is bound to the visit, every one
        # after it to nobody until the new visit; among them the ones read before it.
        assert before and all(r[2] == visit for r in before)
        assert all(r[1] < regiven_at for r in after)
        assert len([r for r in after if r[1] < withdrawn_at]) >= waiting
        assert {r[2] for r in rows if r[0] > boundary} == {None, again}
        first_again = min(r[0] for r in rows if r[2] == again)
        assert all(r[2] == again for r in rows if r[0] >= first_again)
        held = store.outbox.held_frames("spo2-1")
        assert held and {h["reason"] for h in held} == {HELD_CONSENT_WITHDRAWN}
        assert all(boundary < h["frame_id"] < first_again for h in held)
        # The bound readings before the withdrawal still wait to go to the county.
        bound_out = store.conn.execute(
            "SELECT DISTINCT o.status FROM outbox o JOIN raw_frame f ON f.id = o.raw_frame_id"
            " WHERE f.encounter_id = ?",
            (visit,),
        ).fetchall()
        assert bound_out == [(OUTBOX_PENDING,)]
    finally:
        store.close()
