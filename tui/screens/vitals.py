"""The vitals screen: newest value of every metric, device links, delivery to the county.

Used by the ambulance and clinic modes (and the demo). Refreshes once a second from the
local store in a worker thread; a newer snapshot replaces an older one that has not been
drawn yet, so a slow terminal never queues stale frames.

Every value shows its age. A value is drawn as stale when it is older than three of
its own intervals (the time between the last two values the screen saw for it), and
never sooner than STALE_MIN_S; every value is stale while the daemon is not running
(it cannot be live then), and the screen says so above the tiles.
"""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tui import i18n
from tui.snapshot import (
    AGENT_NOT_ANSWERING,
    AGENT_STOPPED,
    Snapshot,
    load,
)
from tui.widgets.tile import VitalTile

REFRESH_S = 1.0
STALE_MIN_S = 10.0
STALE_INTERVALS = 3


def clock_text(wall_ns: int | None, tz: str) -> str:
    """A box time as the clinic reads it: its local time in `agent.timezone`."""
    if not wall_ns:
        return "—"
    return dt.datetime.fromtimestamp(wall_ns / 1e9, zoneinfo.ZoneInfo(tz)).strftime(
        "%Y-%m-%d %H:%M:%S"
    )


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
        with Vertical(id="body"):
            yield Static("", id="agent-state")
            yield Static(self.t("vitals.title"), classes="section-title", id="vitals-title")
            yield Grid(id="tiles")
            yield Static(self.t("vitals.none"), id="empty")
            yield Static(self.t("devices.title"), classes="section-title", id="devices-title")
            yield Static("", id="devices")
            yield Static(self.t("alarms.title"), classes="section-title", id="alarms-title")
            yield Static("", id="alarms")
            yield Static(self.t("sync.title"), classes="section-title", id="sync-title")
            yield Static("", id="sync")
        yield Footer()

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
            empty.update(self.t("store.missing", path=self.db_path))
            empty.display = True
            return
        now_ns = time.time_ns()
        not_live = snapshot.agent in (AGENT_STOPPED, AGENT_NOT_ANSWERING)
        tiles = self.query_one("#tiles", Grid)
        existing = {tile.key: tile for tile in tiles.query(VitalTile)}
        for obs in snapshot.latest:
            key = f"{obs.device_id}/{obs.metric}"
            self.cadence.seen(key, obs.received_wall_ns)
            age_s = (now_ns - obs.received_wall_ns) / 1e9
            stale = not_live or age_s > self.cadence.stale_after_s(key)
            label = i18n.metric_label(obs.metric, self.language)
            value = obs.value if obs.value is not None else self.t("vitals.unavailable")
            unit = i18n.unit_label(obs.unit, self.language)
            caption = (
                f"{obs.device_id} · {clock_text(obs.received_wall_ns, self.timezone)[11:]}"
                f" · {age_text(age_s, self.language)}"
            )
            if stale:
                caption += f" · {self.t('vitals.stale')}"
            tile = existing.get(key)
            if tile is None:
                tile = VitalTile(key)
                tiles.mount(tile)
            tile.set_reading(label, value, unit, caption, stale=stale)
        empty.display = not snapshot.latest
        empty.update(self.t("vitals.none"))
        self.query_one("#devices", Static).update(self._devices_text(snapshot, now_ns))
        self.query_one("#alarms", Static).update(
            "\n".join(
                f"[{a['priority']}] {a['device_id']}: {a['text']}  {clock_text(a['raised_wall_ns'], self.timezone)}"
                for a in snapshot.alerts
            )
            or "—"
        )
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

    def _devices_text(self, snapshot: Snapshot, now_ns: int) -> str:
        if not snapshot.devices:
            return self.t("devices.none")
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
        return "\n".join(lines)
