"""The vitals screen: newest value of every metric, device links, delivery to the county.

Used by the ambulance and clinic modes (and the demo). Refreshes once a second from the
local store in a worker thread; a newer snapshot replaces an older one that has not been
drawn yet, so a slow terminal never queues stale frames.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tui import i18n
from tui.snapshot import Snapshot, load
from tui.widgets.tile import VitalTile

REFRESH_S = 1.0


def _clock(wall_ns: int | None) -> str:
    if not wall_ns:
        return "—"
    return dt.datetime.fromtimestamp(wall_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


class VitalsScreen(Screen[None]):
    def __init__(self, db_path: Path, language: str) -> None:
        super().__init__()
        self.db_path = db_path
        self.language = language
        self.snapshot = Snapshot(exists=False)

    def t(self, key: str, **values: object) -> str:
        return i18n.text(key, self.language, **values)

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="body"):
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

    def show(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        empty = self.query_one("#empty", Static)
        if not snapshot.exists:
            empty.update(self.t("store.missing", path=self.db_path))
            empty.display = True
            return
        tiles = self.query_one("#tiles", Grid)
        existing = {tile.key: tile for tile in tiles.query(VitalTile)}
        for obs in snapshot.latest:
            key = f"{obs.device_id}/{obs.metric}"
            label = i18n.metric_label(obs.metric, self.language)
            value = obs.value if obs.value is not None else self.t("vitals.unavailable")
            unit = i18n.unit_label(obs.unit, self.language)
            caption = f"{obs.device_id} · {_clock(obs.received_wall_ns)[11:]}"
            if key in existing:
                existing[key].set_reading(label, value, unit, caption)
            else:
                tile = VitalTile(key)
                tiles.mount(tile)
                tile.set_reading(label, value, unit, caption)
        empty.display = not snapshot.latest
        empty.update(self.t("vitals.none"))
        self.query_one("#devices", Static).update(self._devices_text(snapshot))
        self.query_one("#alarms", Static).update(
            "\n".join(
                f"[{a['priority']}] {a['device_id']}: {a['text']}  {_clock(a['raised_wall_ns'])}"
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

    def _devices_text(self, snapshot: Snapshot) -> str:
        if not snapshot.devices:
            return self.t("devices.none")
        lines = []
        for d in snapshot.devices:
            state = i18n.text(f"state.{d['state']}", self.language)
            where = d.get("port") or d.get("address") or ""
            lines.append(
                f"{d['id']} ({d['driver']} {where}): {state} · {d['frames']} {self.t('frames')}"
            )
        return "\n".join(lines)
