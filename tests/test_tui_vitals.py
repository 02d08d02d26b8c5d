"""The vitals screen as a crew reads it, driven with Textual's Pilot over a real store.

Clinical names in both languages, NEWS2 colours, alarms pinned and escaped, every
section reachable at 80x24, the kiosk's keys, and no log line on the terminal.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from decimal import Decimal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from textual.widgets import Digits, Footer, Static
from textual.widgets._footer import FooterKey

from edge_agent.clock import SystemClock
from edge_agent.model import Decoded, Frame, Reading
from edge_agent.recorder import Recorder
from edge_agent.rules import news2
from edge_agent.store import AlertRow, StoreWriter
from tui import vitals_view
from tui.app import EdgeAgentApp, app_for
from tui.logs import LOG_NAME
from tui.screens.vitals import VitalsScreen
from tui.widgets.tile import VitalTile

CLOCK = SystemClock(boot_id="tui-vitals-boot")
SEC = 10**9

# What a monitor and a cuff in an ambulance send (metric, value, unit).
VITALS = [
    ("MDC_ECG_HEART_RATE", "75", "MDC_DIM_BEAT_PER_MIN"),
    ("MDC_PULS_OXIM_SAT_O2", "88", "MDC_DIM_PERCENT"),
    ("MDC_PRESS_BLD_NONINV_SYS", "128", "MDC_DIM_MMHG"),
    ("MDC_RESP_RATE", "22", "MDC_DIM_RESP_PER_MIN"),
    ("MDC_TEMP_BODY", "36.8", "MDC_DIM_DEGC"),
    ("MDC_AWAY_CO2_ET", "4.9", "MDC_DIM_KILO_PASCAL"),
]
CUFF_TIME = dt.datetime(2026, 12, 4, 16, 40, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def record_vitals(path: Path) -> None:
    store = StoreWriter.open(path)
    with store.transaction():
        store.devices.upsert(
            "monitor-1", driver="masimo-ascii", transport="serial", port="/dev/ttyUSB0"
        )
        store.devices.set_state("monitor-1", "connected", "", CLOCK.wall_ns())
    recorder = Recorder(store)
    readings = tuple(
        Reading(
            metric,
            Decimal(value),
            unit,
            device_time=CUFF_TIME if metric == "MDC_PRESS_BLD_NONINV_SYS" else None,
        )
        for metric, value, unit in VITALS
    )
    frame = Frame(
        "monitor-1", "masimo-ascii", b"line", CLOCK.wall_ns(), CLOCK.mono_ns(), CLOCK.boot_id
    )
    recorder.record(frame, lambda _: Decoded(readings=readings))
    store.close()


def alert(code: str, priority: str, text: str, raised_wall_ns: int, state: str) -> AlertRow:
    return AlertRow(
        id=0,
        raw_frame_id=None,
        device_id="monitor-1",
        source="device",
        code=code,
        priority=priority,
        text=text,
        text_en=text,
        condition_key=code,
        subject="device:monitor-1",
        state=state,
        raised_wall_ns=raised_wall_ns,
    )


def add_alerts(path: Path, alerts: list[AlertRow]) -> None:
    store = StoreWriter.open(path)
    with store.transaction():
        for row in alerts:
            alert_id = store.alerts.insert(row)
            if row.state == "cleared":
                store.alerts.clear(alert_id, row.raised_wall_ns + SEC)
    store.close()


def vitals(app: EdgeAgentApp) -> VitalsScreen:
    screen = app.screen
    assert isinstance(screen, VitalsScreen), screen
    return screen


async def drawn(app: EdgeAgentApp, pilot: object, count: int) -> VitalsScreen:
    """The vitals screen once `count` tiles carry their values (at most 5 s)."""
    from textual.pilot import Pilot

    assert isinstance(pilot, Pilot)
    for _ in range(100):
        await pilot.pause(0.05)
        screen = app.screen
        if isinstance(screen, VitalsScreen):
            tiles = list(screen.query(VitalTile))
            if len(tiles) == count and all(t.value_text and t.drawn_text == t.text for t in tiles):
                return screen
    raise AssertionError("the tiles were never drawn")


def by_metric(screen: VitalsScreen) -> dict[str, VitalTile]:
    return {tile.key.split("/", 1)[1]: tile for tile in screen.query(VitalTile)}


def plain(widget: Static) -> str:
    return str(widget.render())


ZH = {
    "MDC_ECG_HEART_RATE": ("心率", "次/分"),
    "MDC_PULS_OXIM_SAT_O2": ("血氧饱和度", "%"),
    "MDC_PRESS_BLD_NONINV_SYS": ("无创血压", "mmHg"),
    "MDC_RESP_RATE": ("呼吸频率", "次/分"),
    "MDC_TEMP_BODY": ("体温", "°C"),
    "MDC_AWAY_CO2_ET": ("呼气末二氧化碳", "kPa"),
}
EN = {
    "MDC_ECG_HEART_RATE": ("Heart rate", "bpm"),
    "MDC_PULS_OXIM_SAT_O2": ("SpO₂", "%"),
    "MDC_PRESS_BLD_NONINV_SYS": ("NIBP systolic", "mmHg"),
    "MDC_RESP_RATE": ("Respiration rate", "/min"),
    "MDC_TEMP_BODY": ("Temperature", "°C"),
    "MDC_AWAY_CO2_ET": ("End-tidal CO₂", "kPa"),
}


async def test_tiles_carry_clinical_names_in_chinese_then_english(tmp_path: Path) -> None:
    db = tmp_path / "edge-agent.sqlite3"
    record_vitals(db)
    for size in ((80, 24), (120, 40)):
        app = EdgeAgentApp(mode="ambulance", db_path=db)
        async with app.run_test(size=size) as pilot:
            tiles = by_metric(await drawn(app, pilot, len(VITALS)))
            for metric, value, _unit in VITALS:
                tile = tiles[metric]
                name, unit = ZH[metric]
                assert name in tile.label_text and tile.unit_text == unit, (size, tile.text)
                assert "MDC" not in tile.text and tile.query_one(Digits).value == value
            # the cuff's value says when the cuff measured, in the clinic's zone
            assert "测量于 16:40:05" in tiles["MDC_PRESS_BLD_NONINV_SYS"].caption_text
            # NEWS2 bands: SpO2 88 % scores 3, RR 22 scores 2, HR 75 scores 0
            assert tiles["MDC_PULS_OXIM_SAT_O2"].band == "band-3"
            assert tiles["MDC_RESP_RATE"].band == "band-1"
            assert tiles["MDC_ECG_HEART_RATE"].band == "band-0"
            assert tiles["MDC_AWAY_CO2_ET"].band is None  # NEWS2 does not chart it
            await pilot.press("l")
            tiles = by_metric(await drawn(app, pilot, len(VITALS)))
            for metric, _value, _unit in VITALS:
                name, unit = EN[metric]
                assert name in tiles[metric].label_text, tiles[metric].text
                assert tiles[metric].unit_text == unit
            assert "measured 16:40:05" in tiles["MDC_PRESS_BLD_NONINV_SYS"].caption_text


async def test_tiles_sit_side_by_side_two_across_at_80_and_four_at_120(tmp_path: Path) -> None:
    db = tmp_path / "edge-agent.sqlite3"
    record_vitals(db)
    for size, across in (((80, 24), 2), ((120, 40), 4)):
        app = EdgeAgentApp(mode="clinic", db_path=db)
        async with app.run_test(size=size) as pilot:
            screen = await drawn(app, pilot, len(VITALS))
            await pilot.pause(0.1)
            first_row_y = min(t.region.y for t in screen.query(VitalTile))
            first_row = [t for t in screen.query(VitalTile) if t.region.y == first_row_y]
            assert len(first_row) == across, (size, [t.region for t in first_row])
            # in a monitor's order: heart rate, SpO2, blood pressure, respiration ...
            shown = [t.key.split("/")[1] for t in sorted(first_row, key=lambda t: t.region.x)]
            assert shown == [m for m, _v, _u in VITALS[:across]], shown


async def test_an_alarm_text_in_brackets_is_shown_literally(tmp_path: Path) -> None:
    db = tmp_path / "edge-agent.sqlite3"
    record_vitals(db)
    now = CLOCK.wall_ns()
    add_alerts(
        db, [alert("LEAD_OFF", "medium", "[high] lead V2 off [/]", now - 65 * SEC, "active")]
    )
    app = EdgeAgentApp(mode="clinic", db_path=db, language="en")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await drawn(app, pilot, len(VITALS))
        shown = plain(screen.query_one("#active-alarms", Static))
        assert "[high] lead V2 off [/]" in shown, shown
        assert "[medium]" in shown and "1 min ago" in shown


async def test_an_active_stemi_alarm_stays_on_screen_above_20_cleared_ones(tmp_path: Path) -> None:
    db = tmp_path / "edge-agent.sqlite3"
    record_vitals(db)
    now = CLOCK.wall_ns()
    stemi = alert("STEMI", "high", "疑似急性 ST 段抬高型心肌梗死", now - 600 * SEC, "active")
    low = alert("BATTERY", "low", "电池电量低", now - 30 * SEC, "active")
    cleared = [
        alert(f"ART{i}", "high", f"伪差 {i}", now - (500 - i) * SEC, "cleared") for i in range(20)
    ]
    add_alerts(db, [stemi, low, *cleared])  # the STEMI alarm is the oldest row
    app = EdgeAgentApp(mode="ambulance", db_path=db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await drawn(app, pilot, len(VITALS))
        pinned = screen.query_one("#active-alarms", Static)
        lines = plain(pinned).splitlines()
        assert "疑似急性 ST 段抬高型心肌梗死" in lines[0] and "10 分钟前" in lines[0], lines
        assert "电池电量低" in lines[1] and len(lines) == 2  # high first; cleared ones apart
        listed = plain(screen.query_one("#alarms", Static))
        assert "伪差 19" in listed and "伪差 0" not in listed and "另有 15 条未显示" in listed
        for key in ("end", "pagedown", "home", "end"):
            await pilot.press(key)
            await pilot.pause(0.05)
            assert screen.region.contains_region(pinned.region) and pinned.region.height >= 2


async def test_every_section_is_reached_by_scrolling_at_80x24(tmp_path: Path) -> None:
    db = tmp_path / "edge-agent.sqlite3"
    record_vitals(db)
    now = CLOCK.wall_ns()
    add_alerts(db, [alert("ART", "low", "伪差", now - 5 * SEC, "cleared")])
    app = EdgeAgentApp(mode="clinic", db_path=db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await drawn(app, pilot, len(VITALS))
        await pilot.pause(0.1)
        body = screen.query_one("#body")
        sync = screen.query_one("#sync", Static)
        assert not body.region.contains_region(sync.region)  # below the fold at first
        sections = [
            *screen.query(VitalTile),
            *(screen.query_one(s) for s in ("#alarms", "#devices", "#sync")),
        ]
        for widget in sections:
            for _ in range(40):
                if widget.region.height and body.region.contains_region(widget.region):
                    break
                await pilot.press("down")
                await pilot.pause(0.02)
            else:
                raise AssertionError(f"{widget} never scrolled into view")
            assert screen.region.contains_region(widget.region)
        assert "monitor-1" in plain(screen.query_one("#devices", Static))
        assert "待发送" in plain(sync)


async def test_kiosk_footer_has_no_quit_and_the_escape_keys_do_nothing(tmp_path: Path) -> None:
    db = tmp_path / "edge-agent.sqlite3"
    record_vitals(db)
    app = app_for("kiosk", db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await drawn(app, pilot, len(VITALS))
        await pilot.pause(0.1)
        actions = {key.action for key in screen.query_one(Footer).query(FooterKey)}
        assert "app.switch_language" in actions or "switch_language" in actions, actions
        assert not {a for a in actions if "quit" in a or "palette" in a}, actions
        for key in ("q", "ctrl+q", "ctrl+c", "ctrl+p", "escape", "ctrl+z"):
            await pilot.press(key)
            await pilot.pause(0.05)
            assert app.is_running and app.screen is screen, key
        assert not list(app._notifications), "a key told the resident how to quit"
    # The clinic's screen keeps its quit key, in the footer and working.
    app = app_for("clinic", db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await drawn(app, pilot, len(VITALS))
        await pilot.pause(0.1)
        actions = {key.action for key in screen.query_one(Footer).query(FooterKey)}
        assert "app.quit" in actions or "quit" in actions, actions
        await pilot.press("q")
    assert app.return_value == 0


async def test_no_log_record_reaches_the_terminal_while_the_ui_runs(tmp_path: Path) -> None:
    db = tmp_path / "edge-agent.sqlite3"
    record_vitals(db)
    terminal = io.StringIO()  # stands for stderr, where the CLI's basicConfig logs
    stderr_handler = logging.StreamHandler(terminal)
    root = logging.getLogger()
    root.addHandler(stderr_handler)
    try:
        app = EdgeAgentApp(mode="ambulance", db_path=db)
        async with app.run_test(size=(80, 24)) as pilot:
            await drawn(app, pilot, len(VITALS))
            logging.getLogger("edge_agent.uplink").warning("broker refused: not authorised")
            await pilot.pause(0.05)
        assert terminal.getvalue() == ""
        assert "broker refused: not authorised" in (tmp_path / LOG_NAME).read_text("utf-8")
        assert stderr_handler in root.handlers  # given back when the UI closed
        logging.getLogger("edge_agent.uplink").warning("after the UI")
        assert "after the UI" in terminal.getvalue()
    finally:
        root.removeHandler(stderr_handler)


def test_every_metric_news2_reads_has_a_band() -> None:
    assert set(news2.SOURCE_METRICS) == set(vitals_view.NEWS2_PARAMETER)
    # kPa from a cuff is banded as the mmHg the chart is drawn in: 12 kPa = 90 mmHg
    assert vitals_view.news2_score("MDC_PRESS_BLD_NONINV_SYS", "MDC_DIM_KILO_PASCAL", "12") == 3
    assert vitals_view.news2_score("MDC_TEMP_BODY", "MDC_DIM_FAHR", "98.6") == 0
    assert vitals_view.news2_score("MDC_TEMP_BODY", "MDC_DIM_MMHG", "37") is None


@given(
    st.sampled_from(sorted(vitals_view.NEWS2_PARAMETER)),
    st.one_of(st.text(max_size=12), st.decimals(allow_nan=True).map(str), st.none()),
)
def test_a_tile_band_is_the_charts_score_or_none_for_any_value(
    metric: str, value: str | None
) -> None:
    units = {
        news2.RESPIRATION_RATE: "MDC_DIM_RESP_PER_MIN",
        news2.SPO2: "MDC_DIM_PERCENT",
        news2.SYSTOLIC_BP: "MDC_DIM_MMHG",
        news2.PULSE: "MDC_DIM_BEAT_PER_MIN",
        news2.TEMPERATURE: "MDC_DIM_DEGC",
    }
    parameter = vitals_view.NEWS2_PARAMETER[metric]
    score = vitals_view.news2_score(metric, units[parameter], value)
    try:
        number = Decimal(value) if value is not None else None
    except ArithmeticError:
        number = None
    if number is None or not number.is_finite():
        assert score is None
        return
    field = {"respiration_rate": "rr", "spo2": "spo2", "systolic_bp": "sbp", "pulse": "hr"}
    inputs = news2.News2Inputs(**{field.get(parameter, "temp"): number})  # type: ignore[arg-type]
    assert score == news2.score(inputs).parts[parameter].score
    assert vitals_view.band_class(score) in vitals_view.BAND_CLASSES


def test_active_alarms_are_ordered_high_first_and_cleared_ones_kept_apart() -> None:
    rows = [
        alert("A", "low", "a", 5, "active"),
        alert("B", "high", "b", 1, "acknowledged"),
        alert("C", "high", "c", 3, "active"),
        alert("D", "high", "d", 9, "cleared"),
    ]
    assert [a.code for a in vitals_view.active_first(rows)] == ["C", "B", "A"]
    assert [a.code for a in vitals_view.cleared_recent(rows, 5)] == ["D"]


def test_every_metric_name_is_clinical_words_not_an_mdc_identifier() -> None:
    from edge_agent import mdc
    from tui import i18n

    metrics = [t.refid for t in mdc.BY_REFID.values() if t.code >> 16 == mdc.PART_SCADA]
    for metric in metrics:
        for language in i18n.LANGUAGES:
            name = i18n.metric_label(metric, language)
            assert "MDC" not in name and "_" not in name, (metric, language, name)
    assert i18n.metric_label("MDC_AWAY_CO2_ET", "zh_CN").startswith("呼气末二氧化碳")
    assert i18n.metric_label("MDC_PLETH_PULS_RATE", "zh_CN").startswith("脉率")
