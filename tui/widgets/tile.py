"""One vital-sign tile: clinical name, the number in big digits, unit, where and when.

The number is a Textual `Digits` (readable across a cabin); a value that is not a
number (a device's "not available") is written in words instead. The tile carries the
value's NEWS2 band as a class (band-0 / band-1 / band-3, tui.vitals_view) and is drawn
as stale (the `stale` class, app.tcss) when it is no longer live, never as if current.
"""

from __future__ import annotations

import re

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Digits, Label

from tui.vitals_view import BAND_CLASSES

_NUMBER = re.compile(r"-?\d{1,7}(\.\d{1,4})?")


class VitalTile(Vertical):
    def __init__(self, key: str) -> None:
        super().__init__(classes="tile")
        self.key = key
        self.label_text = ""
        self.value_text = ""
        self.unit_text = ""
        self.caption_text = ""
        self.drawn_text: str | None = None  # `text` as last put on screen

    def compose(self) -> ComposeResult:
        yield Label("", classes="tile-label")
        with Horizontal(classes="tile-row"):
            yield Digits("", classes="tile-digits")
            yield Label("", classes="tile-value")
            yield Label("", classes="tile-unit")
        yield Label("", classes="tile-caption")

    def set_reading(
        self,
        label: str,
        value: str,
        unit: str,
        caption: str,
        *,
        stale: bool = False,
        band: str | None = None,
    ) -> None:
        self.label_text, self.value_text, self.unit_text, self.caption_text = (
            label,
            value,
            unit,
            caption,
        )
        self.set_class(stale, "stale")
        for name in BAND_CLASSES:
            self.set_class(name == band, name)
        if not self.is_mounted or not self.query(Digits):
            self.call_after_refresh(self._draw)
            return
        self._draw()

    def _draw(self) -> None:
        digits = self.query(Digits)
        if not digits:
            return
        numeric = _NUMBER.fullmatch(self.value_text) is not None
        digits.first().update(self.value_text if numeric else "")
        digits.first().display = numeric
        words = self.query_one(".tile-value", Label)
        words.update(Text(self.value_text if not numeric else ""))
        words.display = not numeric
        self.query_one(".tile-label", Label).update(Text(self.label_text))
        self.query_one(".tile-unit", Label).update(Text(self.unit_text))
        self.query_one(".tile-caption", Label).update(Text(self.caption_text))
        self.drawn_text = self.text

    @property
    def text(self) -> str:
        """What the tile says, in words: name | value unit | caption."""
        return f"{self.label_text} | {self.value_text} {self.unit_text} | {self.caption_text}"

    @property
    def stale(self) -> bool:
        return self.has_class("stale")

    @property
    def band(self) -> str | None:
        return next((name for name in BAND_CLASSES if self.has_class(name)), None)
