"""The patient banner widget: one line naming who a screen is about (tui/patient_banner.py
makes the line; this only shows it, as plain text, never markup: a name is not markup).
Of class `personal`: hidden while a screen is locked (tui/session_keeper.py)."""

from __future__ import annotations

from textual.widgets import Static

from tui.patient_banner import PatientBanner, banner_line
from tui.session_keeper import PERSONAL_CLASS


class PatientBannerView(Static):
    DEFAULT_CSS = """
    PatientBannerView {
        height: 1;
        background: $primary-darken-2;
        color: $text;
        text-style: bold;
        padding: 0 1;
    }
    """

    def __init__(self, banner: PatientBanner, language: str, *, id: str | None = None) -> None:
        super().__init__(banner_line(banner, language), markup=False, id=id, classes=PERSONAL_CLASS)
        self.banner = banner

    def relabel(self, language: str) -> None:
        self.update(banner_line(self.banner, language))
