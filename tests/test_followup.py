"""`edge-agent followup`: a chronic-disease visit judged from the patient's stored readings,
as the operation `followup` (read-person, audited): through the running daemon's socket,
or in the command's own process under the writer lock when no daemon runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from box_keys import init_keys_in
from waiting import wait_until

from edge_agent import control
from edge_agent.clock import SystemClock
from edge_agent.control import OpError
from edge_agent.model import Decoded, Frame, Reading
from edge_agent.patients import register, start_visit
from edge_agent.recorder import Recorder
from edge_agent.store import AuditRow, StoreWriter, open_readonly

NID = "11010519491231002X"
UNREGISTERED = "110105195001010039"  # a valid GB 11643 number nobody registered
EDGE_AGENT = Path(sys.executable).with_name("edge-agent")


def _box(tmp_path: Path) -> tuple[Path, Path]:
    cfg = tmp_path / "agent.toml"
    data = tmp_path / "agent"
    cfg.write_text(
        f'[agent]\nid = "clinic-3"\ndata_dir = "{data}"\n'
        '[uplink]\nbroker = "mqtt://127.0.0.1:1"\nallow_insecure = true\n',
        encoding="utf-8",
    )
    return cfg, data / "edge-agent.sqlite3"


def _record(db: Path, *readings: Reading, visit: bool = True) -> None:
    store = StoreWriter.open(db, init_keys_in(db.parent))
    clock = SystemClock.create()
    try:
        if visit and store.patients.by_national_id(NID) is None:
            register(store, clock, national_id_number=NID, name="王秀英")
        if visit and store.patients.current_encounter("cuff-1") is None:
            start_visit(store, clock, national_id_number=NID, patient_class="O")
        frame = Frame("cuff-1", "ble-bp", b"f", clock.wall_ns(), clock.mono_ns(), clock.boot_id)
        with store.transaction():
            Recorder(store).record(frame, lambda _b: Decoded(readings=readings))
    finally:
        store.close()


def followup(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "followup", *args, "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def mmhg(metric: str, value: int) -> Reading:
    return Reading(metric, Decimal(value), "MDC_DIM_MMHG")


def test_a_controlled_then_an_urgent_hypertension_visit(tmp_path: Path) -> None:
    cfg, db = _box(tmp_path)
    _record(db, mmhg("MDC_PRESS_BLD_NONINV_SYS", 132), mmhg("MDC_PRESS_BLD_NONINV_DIA", 84))
    out = followup(cfg, "--national-id", NID, "--disease", "hypertension")
    assert out.returncode == 0, out.stderr
    visit = json.loads(out.stdout)
    assert (visit["classification"], visit["next_follow_up_days"]) == ("controlled", 90)
    assert visit["measured"]["sbp"] == 132 and visit["name"] == "王秀英"
    # A newer reading of 16.0/12.0 kPa (120/90 mmHg) is what counts: 90 is not < 90.
    _record(
        db,
        Reading("MDC_PRESS_BLD_NONINV_SYS", Decimal("16.0"), "MDC_DIM_KILO_PASCAL"),
        Reading("MDC_PRESS_BLD_NONINV_DIA", Decimal("12.0"), "MDC_DIM_KILO_PASCAL"),
    )
    visit = json.loads(followup(cfg, "--national-id", NID, "--disease", "hypertension").stdout)
    assert visit["classification"] == "uncontrolled" and visit["measured"]["dbp"] == 90
    again = followup(
        cfg, "--national-id", NID, "--disease", "hypertension", "--previous-uncontrolled", "1"
    )
    assert json.loads(again.stdout)["classification"] == "refer-after-two-uncontrolled"
    sign = followup(
        cfg, "--national-id", NID, "--disease", "hypertension", "--sign", "chest-tightness"
    )
    decided = json.loads(sign.stdout)
    assert decided["classification"] == "urgent-referral"
    assert any("胸闷" in r["zh"] for r in decided["reasons"]), decided["reasons"]


def test_a_diabetes_visit_without_a_fasting_glucose_is_incomplete(tmp_path: Path) -> None:
    cfg, db = _box(tmp_path)
    _record(
        db,
        Reading(
            "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD",
            Decimal("9.1"),
            "MDC_DIM_MILLI_MOLE_PER_L",
            None,
            ("meal:postprandial",),
        ),
    )
    visit = json.loads(followup(cfg, "--national-id", NID, "--disease", "diabetes").stdout)
    assert visit["classification"] == "incomplete"
    assert "fasting_glucose" in visit["missing"] and visit["next_follow_up_days"] is None


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cfg, db = _box(tmp_path)
    _record(db, mmhg("MDC_PRESS_BLD_NONINV_SYS", 120), visit=False)
    unknown = followup(cfg, "--national-id", UNREGISTERED, "--disease", "diabetes")
    assert unknown.returncode == 2 and "not registered" in unknown.stderr
    assert UNREGISTERED not in unknown.stderr  # an error never quotes the national id
    typo = followup(cfg, "--national-id", "110105194912310029", "--disease", "diabetes")
    assert typo.returncode == 2 and "check character" in typo.stderr
    _record(db, mmhg("MDC_PRESS_BLD_NONINV_SYS", 120))
    bad = followup(cfg, "--national-id", NID, "--disease", "diabetes", "--sign", "toothache")
    assert bad.returncode == 2 and bad.stderr.startswith("error: followup:")
    for days in ("0", "-1", "400", "nan", "inf"):
        out = followup(cfg, "--national-id", NID, "--disease", "diabetes", "--days", days)
        assert out.returncode == 2, (days, out.stderr)
        assert out.stderr.startswith("error: followup") and out.stderr.count("\n") == 1
    many = followup(
        cfg, "--national-id", NID, "--disease", "hypertension", "--previous-uncontrolled", "-1"
    )
    assert many.returncode == 2 and "--previous-uncontrolled -1" in many.stderr
    # Each refusal of the service is in the trail, the resident named by row when the
    # number was one, the number nowhere; NaN and inf never reach the service (the
    # request's check refuses them, as any malformed request).
    rows = _trail(db)
    assert [(r.op, r.outcome, r.person) for r in rows] == [
        ("followup", "failed", None),  # not registered
        ("followup", "failed", None),  # not a national id
        ("followup", "failed", 1),  # toothache
        ("followup", "failed", 1),  # --days 0
        ("followup", "failed", 1),  # --days -1
        ("followup", "failed", 1),  # --days 400
        ("followup", "failed", 1),  # --previous-uncontrolled -1
    ]
    reasons = " ".join(r.reason or "" for r in rows)
    assert NID not in reasons and UNREGISTERED not in reasons and "days" in reasons


def _trail(db: Path) -> list[AuditRow]:
    """The `followup` rows of the box's audit trail, oldest first."""
    reader = open_readonly(db, init_keys_in(db.parent))
    try:
        return [r for r in reader.audit.find(limit=10_000) if r.op == "followup"]
    finally:
        reader.close()


# --- as an operation: through the daemon, audited -----------------------------------------


def test_through_the_running_daemon_the_output_is_the_same_and_the_read_is_audited(
    tmp_path: Path,
) -> None:
    cfg, db = _box(tmp_path)
    _record(db, mmhg("MDC_PRESS_BLD_NONINV_SYS", 150), mmhg("MDC_PRESS_BLD_NONINV_DIA", 95))
    asked = ("--national-id", NID, "--disease", "hypertension", "--sign", "palpitations")
    alone = followup(cfg, *asked)  # no daemon: the command does it under the writer lock
    assert alone.returncode == 0, alone.stderr
    daemon = subprocess.Popen(
        [str(EDGE_AGENT), "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: (db.parent / "run" / "control.sock").exists(), 30, "the socket")
        through = followup(cfg, *asked)
        assert through.returncode == 0, through.stderr
        assert through.stdout == alone.stdout
        refused = followup(cfg, "--national-id", NID, "--disease", "hypertension", "--days", "0")
        assert refused.returncode == 2 and refused.stderr.startswith("error: followup --days 0")
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    visit = json.loads(alone.stdout)
    assert visit["classification"] == "urgent-referral" and visit["name"] == "王秀英"
    assert visit["measured"]["sbp"] == 150 and visit["national_id"] == NID
    rows = _trail(db)
    assert [(r.action, r.outcome, r.subject, r.person) for r in rows] == [
        ("read", "ok", "patient:1", 1),
        ("read", "ok", "patient:1", 1),
        ("read", "failed", "patient:1", 1),
    ]
    assert NID not in err and "王秀英" not in err  # the daemon's log names nobody


def test_a_role_without_read_person_is_refused_over_the_socket_and_audited(
    tmp_path: Path,
) -> None:
    from test_control import Served, seed

    served = Served(tmp_path)
    try:
        seed(served.store)  # the resident, a visit and a BP of 200/120 mmHg
        call = control.call
        call(served.path, "users.add", {"name": "admin", "role": "admin", "pin": "9999"})
        admin = call(served.path, "users.sign-in", {"name": "admin", "pin": "9999"})["session"]
        for name, role, pin in (("王医生", "doctor", "1234"), ("kiosk", "kiosk", "0000")):
            call(served.path, "users.add", {"name": name, "role": role, "pin": pin}, session=admin)
        args = {"national_id": NID, "disease": "hypertension", "signs": ["chest-tightness"]}
        doctor = call(served.path, "users.sign-in", {"name": "王医生", "pin": "1234"})["session"]
        visit = call(served.path, "followup", args, session=doctor)
        assert visit["classification"] == "urgent-referral" and visit["measured"]["sbp"] == 200
        kiosk = call(served.path, "users.sign-in", {"name": "kiosk", "pin": "0000"})["session"]
        with pytest.raises(OpError, match="the role kiosk may not read-person") as refused:
            call(served.path, "followup", args, session=kiosk)
        assert refused.value.status == 1
        with pytest.raises(OpError, match="followup: days must be a finite number") as bad:
            call(served.path, "followup", {**args, "days": float("nan")}, session=doctor)
        assert bad.value.status == 2
        rows = [r for r in served.store.audit.find() if r.op == "followup"]
        assert [(r.user, r.role, r.action, r.outcome, r.person) for r in rows] == [
            ("王医生", "doctor", "read", "ok", 1),
            ("kiosk", "kiosk", "read", "refused", 1),
        ]  # the NaN: a malformed request, refused before anyone is asked about (not a read)
        dumped = repr(served.store.conn.execute("SELECT * FROM audit").fetchall())
        assert NID not in dumped and "王秀英" not in dumped
    finally:
        served.close()
