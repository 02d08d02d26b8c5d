"""`edge-agent followup`: a chronic-disease visit judged from the patient's stored readings."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from box_keys import init_keys_in

from edge_agent.clock import SystemClock
from edge_agent.model import Decoded, Frame, Reading
from edge_agent.patients import register, start_visit
from edge_agent.recorder import Recorder
from edge_agent.store import StoreWriter

NID = "11010519491231002X"


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
    unknown = followup(cfg, "--national-id", "110105194912310029", "--disease", "diabetes")
    assert unknown.returncode == 2 and "not registered" in unknown.stderr
    _record(db, mmhg("MDC_PRESS_BLD_NONINV_SYS", 120))
    bad = followup(cfg, "--national-id", NID, "--disease", "diabetes", "--sign", "toothache")
    assert bad.returncode == 2 and bad.stderr.startswith("error: followup:")
