"""One vital-sign tile: label, big value, unit, where and when it came from.

A value that is no longer live (older than its tile's threshold, or the daemon is not
running) is drawn as stale (the `stale` class, app.tcss), never as if it were current.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label


class VitalTile(Vertical):
    def __init__(self, key: str) -> None:
        super().__init__(classes="tile")
        self.key = key

    def compose(self) -> ComposeResult:
        yield Label("", classes="tile-label")
        yield Label("", classes="tile-value")
        yield Label("", classes="tile-caption")

    def set_reading(
        self, label: str, value: str, unit: str, caption: str, *, stale: bool = False
    ) -> None:
        labels = list(self.query(Label))
        if len(labels) < 3:
            self.call_after_refresh(self.set_reading, label, value, unit, caption, stale=stale)
            return
        self.set_class(stale, "stale")
        labels[0].update(label)
        labels[1].update(f"{value} {unit}".strip())
        labels[2].update(caption)

    @property
    def stale(self) -> bool:
        return self.has_class("stale")
