"""The terminal UI driven for real with Textual's Pilot, over a real store file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from textual.widgets import Label, Static

from edge_agent.clock import SystemClock
from edge_agent.model import Decoded, DeviceAlarm, Frame, Reading
from edge_agent.recorder import Recorder
from edge_agent.store import Store
from tui import i18n
from tui.app import EdgeAgentApp, app_for
from tui.screens.vitals import VitalsScreen
from tui.widgets.tile import VitalTile

CLOCK = SystemClock(boot_id="tui-boot")


def seeded_store(path: Path) -> None:
    store = Store.open(path)
    with store.transaction():
        store.upsert_device(
            "monitor-1", driver="masimo-ascii", transport="serial", port="/dev/ttyUSB0"
        )
        store.set_device_state("monitor-1", "connected", "", CLOCK.wall_ns())
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


def tile_texts(screen: VitalsScreen) -> list[str]:
    return [
        " | ".join(str(label.render()) for label in tile.query(Label))
        for tile in screen.query(VitalTile)
    ]


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
        assert "SpO2 low" in str(screen.query_one("#alarms", Static).render())
        # the readings and the alarm's ORU^R40 wait for the uplink
        assert "待发送 2" in str(screen.query_one("#sync", Static).render())
        assert app.sub_title == "救护车"
        await pilot.press("l")  # switch to English
        await pilot.pause(0.5)
        texts = tile_texts(app.screen)  # type: ignore[arg-type]
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
