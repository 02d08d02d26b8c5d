"""The terminal UI driven for real with Textual's Pilot, over a real store file."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

from box_keys import init_keys_in
from textual.widgets import Static

from edge_agent.clock import SystemClock
from edge_agent.model import Decoded, DeviceAlarm, Frame, Reading
from edge_agent.recorder import Recorder
from edge_agent.store import StoreWriter
from tui import i18n
from tui.app import EdgeAgentApp, app_for
from tui.screens.vitals import VitalsScreen
from tui.widgets.tile import VitalTile

CLOCK = SystemClock(boot_id="tui-boot")


def seeded_store(path: Path) -> None:
    store = StoreWriter.open(path)
    with store.transaction():
        store.devices.upsert(
            "monitor-1", driver="masimo-ascii", transport="serial", port="/dev/ttyUSB0"
        )
        store.devices.set_state("monitor-1", "connected", "", CLOCK.wall_ns())
    decoded = Decoded(
        readings=(
            Reading("MDC_PULS_OXIM_SAT_O2", Decimal("97"), "MDC_DIM_PERCENT"),
            Reading(
                "MDC_PULS_OXIM_PULS_RATE", None, "MDC_DIM_BEAT_PER_MIN", flags=("unavailable",)
            ),
        ),
        alarms=(DeviceAlarm("low-spo2", "high", "SpO2 low"),),
    )
    frame = Frame(
        "monitor-1", "masimo-ascii", b"line", CLOCK.wall_ns(), CLOCK.mono_ns(), CLOCK.boot_id
    )
    Recorder(store).record(frame, lambda _: decoded)
    store.close()


def vitals(app: EdgeAgentApp) -> VitalsScreen:
    """The app's current screen, which these tests expect to be the vitals screen."""
    screen = app.screen
    assert isinstance(screen, VitalsScreen), screen
    return screen


def tile_texts(screen: VitalsScreen) -> list[str]:
    return [tile.text for tile in screen.query(VitalTile)]


async def test_vitals_screen_shows_store_in_chinese_by_default(tmp_path: Path) -> None:
    db = tmp_path / "agent.sqlite3"
    seeded_store(db)
    app = EdgeAgentApp(mode="ambulance", db_path=db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.5)
        screen = app.screen
        assert isinstance(screen, VitalsScreen)
        texts = tile_texts(screen)
        assert any("血氧饱和度" in t and "97 %" in t for t in texts), texts
        assert any("脉率" in t and "无法测量" in t for t in texts), texts
        devices = str(screen.query_one("#devices", Static).render())
        assert "monitor-1" in devices and "已连接" in devices
        assert "SpO2 low" in str(screen.query_one("#active-alarms", Static).render())
        # the readings and the alarm's ORU^R40 wait for the uplink
        assert "待发送 2" in str(screen.query_one("#sync", Static).render())
        assert app.sub_title == "救护车"
        await pilot.press("l")  # switch to English
        await pilot.pause(0.5)
        texts = tile_texts(vitals(app))
        assert any("SpO₂" in t for t in texts), texts
        await pilot.press("q")
    assert app.return_value == 0


async def test_missing_store_is_said_not_crashed(tmp_path: Path) -> None:
    app = EdgeAgentApp(mode="clinic", db_path=tmp_path / "none.sqlite3", language="en")
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        assert "does not exist yet" in str(app.screen.query_one("#empty", Static).render())


async def test_kiosk_cannot_be_quit_by_residents(tmp_path: Path) -> None:
    db = tmp_path / "agent.sqlite3"
    seeded_store(db)
    app = app_for("kiosk", db)
    assert not app.ENABLE_COMMAND_PALETTE
    async with app.run_test() as pilot:
        await pilot.press("q")
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
        assert app.is_running
        assert app.sub_title == "健康小屋"


def test_every_text_has_both_languages() -> None:
    for key, entry in i18n.table().items():
        assert set(entry) == set(i18n.LANGUAGES), key
    assert i18n.unit_label("MDC_DIM_MILLI_MOLE_PER_L", "zh_CN") == "mmol/L"
    assert i18n.unit_label("MDC_DIM_BEAT_PER_MIN", "zh_CN") == "次/分"


# --- what the screen shows when values are old, or nobody keeps them live ---------------


class RunningAgent:
    """What the screen looks for to call the agent running: the writer lock on the data
    directory held by a daemon, and its control socket answering (a real ControlServer
    with the daemon's operations, in a thread of its own)."""

    def __init__(self, data_dir: Path) -> None:
        import asyncio
        import threading

        from edge_agent import control, operations
        from edge_agent.config import from_dict
        from edge_agent.writer_lock import Holder, WriterLock

        self.socket = data_dir / "run" / "control.sock"
        self.lock = WriterLock(data_dir)
        holder = Holder(role="daemon", pid=os.getpid(), socket=str(self.socket))
        assert self.lock.try_acquire(holder)
        config = from_dict(
            {
                "agent": {"id": "box-1", "data_dir": str(data_dir)},
                "uplink": {"broker": "mqtt://127.0.0.1:9", "allow_insecure": True},
            }
        )
        self.store = StoreWriter.open(data_dir / "edge-agent.sqlite3", init_keys_in(data_dir))
        services = operations.Services(self.store, CLOCK, config)
        server = control.ControlServer(self.socket, operations.handler(services))
        ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

        async def serve() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            await server.start()
            ready.set()
            await self._stop.wait()
            await server.close()

        self._thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
        self._thread.start()
        assert ready.wait(10)

    def stop(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self.store.close()
        self.lock.release()


def store_with_a_fresh_and_an_old_value(path: Path) -> None:
    """SpO2 just now; a cuff's BP two minutes ago."""
    store = StoreWriter.open(path)
    recorder = Recorder(store)
    now = CLOCK.wall_ns()
    for device, driver, when, reading in [
        ("monitor-1", "masimo-ascii", now, Reading("MDC_PULS_OXIM_SAT_O2", Decimal("97"), "MDC_DIM_PERCENT")),
        ("cuff-1", "ble-bp", now - 125 * 10**9, Reading("MDC_PRESS_BLD_NONINV_SYS", Decimal("128"), "MDC_DIM_MMHG")),
    ]:  # fmt: skip
        frame = Frame(device, driver, b"x", when, CLOCK.mono_ns(), CLOCK.boot_id)

        def decode(_data: bytes, reading: Reading = reading) -> Decoded:
            return Decoded(readings=(reading,))

        recorder.record(frame, decode)
    store.close()


def tiles(screen: VitalsScreen) -> dict[str, tuple[bool, str]]:
    return {tile.key: (tile.stale, tile.caption_text) for tile in screen.query(VitalTile)}


async def test_every_value_shows_its_age_and_an_old_one_is_drawn_stale(tmp_path: Path) -> None:
    db = tmp_path / "edge-agent.sqlite3"
    store_with_a_fresh_and_an_old_value(db)
    agent = RunningAgent(tmp_path)
    try:
        app = EdgeAgentApp(mode="ambulance", db_path=db)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.pause(0.5)
            screen = app.screen
            assert isinstance(screen, VitalsScreen)
            shown = tiles(screen)
            fresh, fresh_caption = shown["monitor-1/MDC_PULS_OXIM_SAT_O2"]
            old, old_caption = shown["cuff-1/MDC_PRESS_BLD_NONINV_SYS"]
            assert not fresh and "秒前" in fresh_caption and "非实时" not in fresh_caption
            assert old and "2 分钟前" in old_caption and "非实时" in old_caption
            banner = screen.query_one("#agent-state", Static)
            assert not banner.has_class("shown")
            await pilot.press("l")
            await pilot.pause(0.5)
            shown = tiles(vitals(app))
            assert "2 min ago" in shown["cuff-1/MDC_PRESS_BLD_NONINV_SYS"][1]
            assert "not live" in shown["cuff-1/MDC_PRESS_BLD_NONINV_SYS"][1]
    finally:
        agent.stop()


async def test_when_the_agent_is_not_running_the_screen_says_so(tmp_path: Path) -> None:
    db = tmp_path / "edge-agent.sqlite3"
    store_with_a_fresh_and_an_old_value(db)
    app = EdgeAgentApp(mode="ambulance", db_path=db)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause(0.5)
        screen = app.screen
        assert isinstance(screen, VitalsScreen)
        banner = screen.query_one("#agent-state", Static)
        assert banner.has_class("shown") and "采集程序未运行" in str(banner.render())
        # Nothing is live without the agent, however new it is.
        assert all(stale for stale, _caption in tiles(screen).values())


async def test_an_agent_that_holds_the_store_but_does_not_answer_is_said(tmp_path: Path) -> None:
    from edge_agent.writer_lock import Holder, WriterLock

    db = tmp_path / "edge-agent.sqlite3"
    store_with_a_fresh_and_an_old_value(db)
    lock = WriterLock(tmp_path)  # a daemon wedged before it serves its socket
    assert lock.try_acquire(Holder("daemon", os.getpid(), socket=str(tmp_path / "none.sock")))
    try:
        app = EdgeAgentApp(mode="clinic", db_path=db, language="en")
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.pause(0.5)
            banner = app.screen.query_one("#agent-state", Static)
            assert "not answering" in str(banner.render())
            assert all(stale for stale, _c in tiles(vitals(app)).values())
    finally:
        lock.release()


def test_a_value_is_stale_after_three_of_its_own_intervals_and_never_before_10_s() -> None:
    from tui.screens.vitals import STALE_MIN_S, Cadence, age_text

    cadence = Cadence()
    cadence.seen("nibp", 0)
    assert cadence.stale_after_s("nibp") == STALE_MIN_S  # one value: no interval known
    cadence.seen("nibp", 30 * 10**9)  # a cuff cycling every 30 s
    assert cadence.stale_after_s("nibp") == 90
    cadence.seen("spo2", 0)
    cadence.seen("spo2", 10**9)  # 1 Hz
    assert cadence.stale_after_s("spo2") == STALE_MIN_S
    assert [age_text(s, "zh_CN") for s in (3.9, 61, 7300, 90000)] == [
        "3 秒前",
        "1 分钟前",
        "2 小时前",
        "1 天前",
    ]


# --- every text the UI can show exists in Chinese and English -----------------------------

ROOT = Path(__file__).resolve().parent.parent


def _literal_keys(folder: Path, callee: set[str]) -> set[str]:
    """First string arguments of calls to `callee` (t, text, on_state ...) in `folder`."""
    import ast

    found = set()
    for source in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            if name not in callee:
                continue
            first = node.args[1] if name == "_report" and len(node.args) > 1 else node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
    return found


def test_every_key_the_ui_uses_has_both_languages() -> None:
    from edge_agent import mdc
    from edge_agent.daemon import STATE_FAILED
    from tui.app import MODES

    table = i18n.table()

    def both(key: str) -> bool:
        return key in table and all(table[key].get(lang) is not None for lang in i18n.LANGUAGES)

    used = _literal_keys(ROOT / "tui", {"t", "text"})
    # Device states: whatever a transport reports (on_state), what the supervisor sets,
    # and the store's default for a device that has not reported yet.
    states = _literal_keys(ROOT / "device_drivers", {"on_state", "_report"})
    states |= {STATE_FAILED, "configured"}
    assert {"connected", "disconnected", "listening", "client", "stopped"} <= states
    used |= {f"state.{s}" for s in states} | {f"mode.{m}" for m in MODES}
    missing = sorted(k for k in used if not both(k))
    assert not missing, missing
    terms = [t for t in mdc.BY_REFID.values() if t.code >> 16 in (mdc.PART_SCADA, mdc.PART_DIM)]
    metrics = [t.refid for t in terms if t.code >> 16 == mdc.PART_SCADA]
    units = i18n.units()
    no_label = [m for m in metrics if not both(m)]
    no_unit = [
        t.refid
        for t in terms
        if t.code >> 16 == mdc.PART_DIM and set(units.get(t.refid, {})) != set(i18n.LANGUAGES)
    ]
    assert not no_label and not no_unit, (no_label, no_unit)


async def test_times_are_shown_in_the_clinics_zone_not_the_machines(tmp_path: Path) -> None:
    # A Pi left on UTC in a Shanghai clinic: a value taken at 08:46 UTC is read as 16:46.
    import time

    from tui.screens.vitals import clock_text

    at = 1_796_287_560 * 10**9  # 2026-12-03 08:46:00 UTC
    assert clock_text(at, "Asia/Shanghai") == "2026-12-03 16:46:00"
    assert clock_text(at, "UTC") == "2026-12-03 08:46:00"
    db = tmp_path / "agent.sqlite3"
    seeded_store(db)
    store = StoreWriter.open(db)
    taken = store.frames.latest_observations(1)[0].received_wall_ns
    store.close()
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        for zone in ("Asia/Shanghai", "America/New_York"):
            shown = clock_text(taken, zone)[11:]  # HH:MM:SS of the reading, in the zone
            app = EdgeAgentApp(mode="clinic", db_path=db, timezone=zone)
            async with app.run_test(size=(120, 40)) as pilot:
                texts: list[str] = []
                # Until a refresh has drawn the tiles with their values (the tiles appear
                # first, their labels are filled in after): at most 5 s.
                for _ in range(100):
                    await pilot.pause(0.05)
                    texts = tile_texts(vitals(app))
                    if any("97 %" in t for t in texts):
                        break
                assert any(f" · {shown}\n" in t for t in texts), (zone, shown, texts)
    finally:
        if previous is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = previous
        time.tzset()
