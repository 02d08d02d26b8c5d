"""The vitals screen: newest value of every metric, device links, delivery to the county.

Used by the ambulance and clinic modes (and the demo). Refreshes once a second from the
local store in a worker thread; a newer snapshot replaces an older one that has not been
drawn yet, so a slow terminal never queues stale frames.

Every value shows its age. A value is drawn as stale when it is older than three of
its own intervals (the time between the last two values the screen saw for it), and
never sooner than STALE_MIN_S; every value is stale while the daemon is not running
(it cannot be live then), and the screen says so above the tiles.

Layout (app.tcss): the open alarms are pinned under the header, most urgent first,
each with its age, and never scroll away; everything else (tiles, cleared alarms,
devices, delivery) is in one VerticalScroll, so on an 80x24 terminal every section is
reached with the arrow / Page keys. Texts that come from devices or the store are drawn
as rich `Text` (never parsed as markup), so an alarm reading "[high]" shows literally.
"""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from edge_agent.store import AlertRow
from tui import i18n, vitals_view
from tui.snapshot import (
    AGENT_NOT_ANSWERING,
    AGENT_STOPPED,
    Snapshot,
    load,
)
from tui.widgets.tile import VitalTile

REFRESH_S = 1.0
_PRIORITY_STYLE = {"high": "red", "medium": "yellow", "low": "cyan", "info": ""}
STALE_MIN_S = 10.0
STALE_INTERVALS = 3
CLEARED_SHOWN = 5  # the last cleared alarms listed below the tiles

# The cuff's readings name when the cuff measured (a NIBP value is minutes old by design).
NIBP_METRICS = frozenset(
    {
        "MDC_PRESS_BLD_NONINV",
        "MDC_PRESS_BLD_NONINV_SYS",
        "MDC_PRESS_BLD_NONINV_DIA",
        "MDC_PRESS_BLD_NONINV_MEAN",
        "MDC_PULS_RATE_NON_INV",
        "MDC_PRESS_CUFF_SYS",
        "MDC_PRESS_CUFF_DIA",
        "MDC_PRESS_CUFF_MEAN",
    }
)


def clock_text(wall_ns: int | None, tz: str) -> str:
    """A box time as the clinic reads it: its local time in `agent.timezone`."""
    if not wall_ns:
        return "—"
    return dt.datetime.fromtimestamp(wall_ns / 1e9, zoneinfo.ZoneInfo(tz)).strftime(
        "%Y-%m-%d %H:%M:%S"
    )


def device_clock_text(device_time: str | None, tz: str) -> str | None:
    """A device's own measurement time (ISO 8601) as HH:MM:SS in the clinic's zone."""
    if not device_time:
        return None
    try:
        when = dt.datetime.fromisoformat(device_time[:40])
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(zoneinfo.ZoneInfo(tz))
    return when.strftime("%H:%M:%S")


def age_text(age_s: float, language: str) -> str:
    """How old a value is, in the words of the screen's language (3 秒前, 2 min ago)."""
    seconds = max(0, int(age_s))
    if seconds < 60:
        return i18n.text("age.seconds", language, n=seconds)
    if seconds < 3600:
        return i18n.text("age.minutes", language, n=seconds // 60)
    if seconds < 86400:
        return i18n.text("age.hours", language, n=seconds // 3600)
    return i18n.text("age.days", language, n=seconds // 86400)


def _metric_device(key: str) -> tuple[str, str]:
    device, metric = key.split("/", 1)
    return metric, device


class Cadence:
    """Per tile: when its value last changed, and the interval before that."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._interval: dict[str, int] = {}

    def seen(self, key: str, received_wall_ns: int) -> None:
        last = self._last.get(key)
        if last is not None and received_wall_ns > last:
            self._interval[key] = received_wall_ns - last
        self._last[key] = received_wall_ns

    def stale_after_s(self, key: str) -> float:
        interval = self._interval.get(key)
        if interval is None:
            return STALE_MIN_S
        return max(STALE_MIN_S, STALE_INTERVALS * interval / 1e9)


class VitalsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "scroll_body(-1)", show=False),
        Binding("down", "scroll_body(1)", show=False),
        Binding("pageup", "scroll_body(-10)", show=False),
        Binding("pagedown", "scroll_body(10)", show=False),
        Binding("home", "scroll_body_home", show=False),
        Binding("end", "scroll_body_end", show=False),
    ]

    def __init__(self, db_path: Path, language: str, timezone: str = "Asia/Shanghai") -> None:
        super().__init__()
        self.db_path = db_path
        self.language = language
        self.timezone = timezone
        self.snapshot = Snapshot(exists=False)
        self.cadence = Cadence()

    def t(self, key: str, **values: object) -> str:
        return i18n.text(key, self.language, **values)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="agent-state")
        with Vertical(id="pinned"):
            yield Static(self.t("alarms.active"), classes="section-title", id="active-title")
            yield Static("", id="active-alarms")
        with VerticalScroll(id="body"):
            yield Static(self.t("vitals.title"), classes="section-title", id="vitals-title")
            yield Grid(id="tiles")
            yield Static(self.t("vitals.none"), id="empty")
            yield Static(self.t("alarms.cleared"), classes="section-title", id="alarms-title")
            yield Static("", id="alarms")
            yield Static(self.t("devices.title"), classes="section-title", id="devices-title")
            yield Static("", id="devices")
            yield Static(self.t("sync.title"), classes="section-title", id="sync-title")
            yield Static("", id="sync")
        yield Footer()

    def action_scroll_body(self, lines: int) -> None:
        self.query_one("#body", VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_scroll_body_home(self) -> None:
        self.query_one("#body", VerticalScroll).scroll_home(animate=False)

    def action_scroll_body_end(self) -> None:
        self.query_one("#body", VerticalScroll).scroll_end(animate=False)

    def on_mount(self) -> None:
        self.refresh_data()
        self.set_interval(REFRESH_S, self.refresh_data)

    @work(thread=True, exclusive=True, group="snapshot")
    def refresh_data(self) -> None:
        snapshot = load(self.db_path)
        self.app.call_from_thread(self.show, snapshot)

    def _show_agent_state(self, agent: str) -> None:
        banner = self.query_one("#agent-state", Static)
        words = {
            AGENT_STOPPED: "agent.stopped",
            AGENT_NOT_ANSWERING: "agent.not_answering",
        }.get(agent)
        banner.set_class(words is not None, "shown")
        banner.update(self.t(words) if words else "")

    def show(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._show_agent_state(snapshot.agent)
        empty = self.query_one("#empty", Static)
        if not snapshot.exists:
            empty.update(Text(self.t("store.missing", path=self.db_path)))
            empty.display = True
            return
        now_ns = time.time_ns()
        not_live = snapshot.agent in (AGENT_STOPPED, AGENT_NOT_ANSWERING)
        tiles = self.query_one("#tiles", Grid)
        existing = {tile.key: tile for tile in tiles.query(VitalTile)}
        ordered = sorted(
            snapshot.latest, key=lambda o: vitals_view.tile_order(o.metric, o.device_id)
        )
        placed = [tile.key for tile in tiles.query(VitalTile)]
        for obs in ordered:
            key = f"{obs.device_id}/{obs.metric}"
            self.cadence.seen(key, obs.received_wall_ns)
            age_s = (now_ns - obs.received_wall_ns) / 1e9
            stale = not_live or age_s > self.cadence.stale_after_s(key)
            label = i18n.metric_label(obs.metric, self.language)
            value = obs.value if obs.value is not None else self.t("vitals.unavailable")
            unit = i18n.unit_label(obs.unit, self.language)
            when = clock_text(obs.received_wall_ns, self.timezone)[11:]
            if obs.metric in NIBP_METRICS:
                measured = device_clock_text(obs.device_time, self.timezone) or when
                when = self.t("vitals.measured", time=measured)
            caption = f"{obs.device_id} · {when}\n{age_text(age_s, self.language)}"
            if stale:
                caption += f" · {self.t('vitals.stale')}"
            band = vitals_view.band_class(vitals_view.news2_score(obs.metric, obs.unit, obs.value))
            tile = existing.get(key)
            if tile is None:
                tile = VitalTile(key)
                after = [
                    k
                    for k in placed
                    if vitals_view.tile_order(*_metric_device(k))
                    > vitals_view.tile_order(obs.metric, obs.device_id)
                ]
                if after:
                    tiles.mount(tile, before=existing[after[0]])
                else:
                    tiles.mount(tile)
                existing[key] = tile
                placed.append(key)
                placed.sort(key=lambda k: vitals_view.tile_order(*_metric_device(k)))
            tile.set_reading(label, value, unit, caption, stale=stale, band=band)
        empty.display = not snapshot.latest
        empty.update(self.t("vitals.none"))
        self.query_one("#devices", Static).update(self._devices_text(snapshot, now_ns))
        self._show_alarms(snapshot, now_ns)
        counts = snapshot.outbox
        self.query_one("#sync", Static).update(
            self.t(
                "sync.line",
                delivered=counts.get("delivered", 0),
                pending=counts.get("pending", 0) + counts.get("sent", 0),
                rejected=counts.get("rejected", 0),
                quarantine=snapshot.quarantine,
            )
        )

    def _alarm_line(self, alert: AlertRow, now_ns: int) -> Text:
        """One alarm as literal text: priority, device, its words, how long ago."""
        words = alert.text_en if self.language == "en" and alert.text_en else alert.text
        priority = i18n.text(f"priority.{alert.priority}", self.language)
        if priority.startswith("priority."):
            priority = alert.priority
        line = Text(f"[{priority}] ", style=f"bold {_PRIORITY_STYLE.get(alert.priority, '')}")
        line.append(f"{alert.device_id or alert.source}: {words}")
        line.append(f"  {age_text((now_ns - alert.raised_wall_ns) / 1e9, self.language)}")
        if alert.state == "acknowledged":
            line.append(f" · {self.t('alarms.acknowledged')}")
        return line

    def _show_alarms(self, snapshot: Snapshot, now_ns: int) -> None:
        active = vitals_view.active_first(snapshot.open_alerts)
        pinned = self.query_one("#active-alarms", Static)
        pinned.set_class(bool(active), "alarming")
        pinned.update(
            Text("\n").join(self._alarm_line(a, now_ns) for a in active)
            if active
            else Text(self.t("alarms.none"))
        )
        cleared_all = [a for a in snapshot.recent_alerts if a.state == "cleared"]
        cleared = vitals_view.cleared_recent(cleared_all, CLEARED_SHOWN)
        lines = [self._alarm_line(a, now_ns) for a in cleared]
        if len(cleared_all) > len(cleared):
            lines.append(Text(self.t("alarms.more", n=len(cleared_all) - len(cleared))))
        self.query_one("#alarms", Static).update(
            Text("\n").join(lines) if lines else Text(self.t("alarms.cleared_none"))
        )

    def _devices_text(self, snapshot: Snapshot, now_ns: int) -> Text:
        if not snapshot.devices:
            return Text(self.t("devices.none"))
        lines = []
        for d in snapshot.devices:
            state = i18n.text(f"state.{d['state']}", self.language)
            where = d.get("port") or d.get("address") or ""
            line = f"{d['id']} ({d['driver']} {where}): {state} · {d['frames']} {self.t('frames')}"
            last_frame_wall_ns = d["last_frame_wall_ns"]
            if last_frame_wall_ns:
                age = age_text((now_ns - last_frame_wall_ns) / 1e9, self.language)
                line += f" · {self.t('devices.last', age=age)}"
            lines.append(line)
        return Text("\n".join(lines))
