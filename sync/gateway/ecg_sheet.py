"""A 12-lead ECG as the printed sheet every ER doctor reads, as PNG or PDF.

The sheet keeps the paper conventions of an ECG cart, so a doctor can measure on it as on
paper (and a PNG printed at its stored dpi, or the PDF printed at actual size, keeps them):

* paper speed 25 mm/s: 1 mm (small box) = 40 ms, 5 mm (large box) = 200 ms;
* gain 10 mm/mV: 1 mm = 0.1 mV, a large box = 0.5 mV;
* a 1 mm minor and a 5 mm major grid, light red, the major lines darker;
* at the start of every row a 1 mV calibration pulse, 10 mm tall and 200 ms (5 mm) wide,
  which proves the gain on the sheet itself;
* "3 x 4 + rhythm": rows I/aVR/V1/V4, II/aVL/V2/V5, III/aVF/V3/V6, where column k shows
  seconds 2.5k..2.5(k+1) of its own leads (the window a cart prints there, so one beat
  lines up down a column), then a fourth row with 10 s of lead II as the rhythm strip.

Geometry is worked out once in millimetres on a 297 x 210 mm page (A4 landscape) and
drawn by two thin back ends: Pillow for a PNG at a chosen dpi, fpdf2 for a vector PDF.
A sample becomes µV = offset_uv + uv_per_unit x sample, then y = µV / 1000 x 10 mm above
the row's baseline and x = t x 25 mm. Each trace is held inside its row band (an artefact
of many mV runs flat along the band edge, as a cart's pen would, instead of over the other
rows), and thinned to the lowest and highest sample of each output pixel (PNG) or 0.1 mm
(PDF), which keeps every peak while drawing at most two points per pixel.

Text may be Chinese (patient names, statements): the first CJK-capable font the system has
is used (`font_path()` tells which); without one, a Latin font, and a character it cannot
show is printed as "?" rather than failing the sheet.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import logging
import math
import os
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal

from fontTools.ttLib import TTCollection, TTFont
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

from device_drivers.ecg.record import EcgRecord

log = logging.getLogger(__name__)
# fpdf2 subsets the Chinese font with fontTools, which logs every table it touches at
# INFO: twenty lines a sheet in the gateway's journal, saying nothing an operator needs.
logging.getLogger("fontTools").setLevel(logging.WARNING)

Point = tuple[float, float]

PAGE_WIDTH_MM = 297.0
PAGE_HEIGHT_MM = 210.0
MM_PER_S = 25.0
MM_PER_MV = 10.0

# Grid: 54 x 32 large boxes, centred across the page, under a 44 mm header.
GRID_LEFT_MM = 13.5
GRID_WIDTH_MM = 270
GRID_TOP_MM = 44.0
ROW_HEIGHT_MM = 40
ROWS = 4
GRID_HEIGHT_MM = ROW_HEIGHT_MM * ROWS
# The calibration pulse takes the first 10 mm of each row; the traces start after it.
CALIBRATION_LEFT_MM = GRID_LEFT_MM + 2.0
TRACE_LEFT_MM = GRID_LEFT_MM + 10.0
# Baseline 24 mm under the row's top: QRS complexes reach further up than down.
BASELINE_MM = 24.0
COLUMN_S = 2.5
RHYTHM_S = 10.0

SHEET_ROWS: tuple[tuple[str, ...], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
)
RHYTHM_LEAD = "II"
MISSING = "—"  # after a lead's label when the record does not carry that lead

# Header: a left column (patient, time, cart, measurements) and, from
# _STATEMENTS_LEFT_MM, the cart's statements; lines 5 mm apart from 17 mm down to 37 mm.
_HEADER_TOP_MM = 17.0
_LINE_MM = 5.0
_HEADER_TEXT_MM = 3.4
_STATEMENTS_LEFT_MM = 138.0
_STATEMENT_LINES = 4  # under the heading; then a line saying how many more there are

# The sheet's words: zh_CN first (the ER doctors are Chinese), English on request.
LANGUAGES = ("zh_CN", "en")
DEFAULT_LANGUAGE = "zh_CN"
LABELS: dict[str, dict[str, str]] = {
    "zh_CN": {
        "title": "12导联心电图",
        "title_stemi": "STEMI 预警",
        "name": "姓名",
        "id": "编号",
        "sex": "性别",
        "age": "年龄",
        "acquired": "采集时间",
        "device": "设备",
        "hr": "心率",
        "bpm": "次/分",
        "axes": "电轴",
        "statements": "心电图机自动分析：",
        "more": "…另有 {n} 条",
        "sex_M": "男",
        "sex_F": "女",
        "sex_O": "其他",
        "age_MDC_DIM_YR": "{n}岁",
        "age_MDC_DIM_DAY": "{n}天",
        "age_MDC_DIM_HR": "{n}小时",
    },
    "en": {
        "title": "12-lead ECG",
        "title_stemi": "STEMI pre-alert",
        "name": "Name",
        "id": "ID",
        "sex": "Sex",
        "age": "Age",
        "acquired": "Acquired",
        "device": "Device",
        "hr": "HR",
        "bpm": "bpm",
        "axes": "Axes",
        "statements": "Cart's interpretation:",
        "more": "... {n} more",
        "sex_M": "male",
        "sex_F": "female",
        "sex_O": "other",
        "age_MDC_DIM_YR": "{n} y",
        "age_MDC_DIM_DAY": "{n} d",
        "age_MDC_DIM_HR": "{n} h",
    },
}


def _labels(language: str) -> Mapping[str, str]:
    try:
        return LABELS[language]
    except KeyError:
        raise ValueError(
            f"ECG sheet language {language!r}: one of {', '.join(LANGUAGES)}"
        ) from None


def sheet_title(agent: str, *, stemi: bool, language: str = DEFAULT_LANGUAGE) -> str:
    """The sheet's title line: what it is and which box sent it."""
    labels = _labels(language)
    return f"{labels['title_stemi'] if stemi else labels['title']} · {agent}"


PAPER = (255, 255, 255)
MINOR_GRID = (250, 208, 208)
MAJOR_GRID = (232, 138, 138)
INK = (0, 0, 0)

_MINOR_LINE_MM = 0.08
_MAJOR_LINE_MM = 0.18
_TRACE_LINE_MM = 0.3
_SEPARATOR_LINE_MM = 0.2
_PDF_RESOLUTION_MM = 0.1
_PT_PER_MM = 72 / 25.4

_DPI_RANGE = (50, 600)

# Characters a Chinese font has and a Latin one lacks; a font is "CJK-capable" with all.
_CJK_PROBE = "心电图王秀英"
_CJK_FONT_PATHS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/wqy-microhei/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
_LATIN_FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
)
# Both Pillow (FreeType) and fpdf2 (fontTools) read these; not Type 1 or bitmap fonts.
_FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
# What to print for a character the font lacks, before falling back to "?".
_STAND_INS = {"—": "-", "–": "-", "·": "-", "…": "...", "°": " deg", "µ": "u", "×": "x"}


# -- fonts ---------------------------------------------------------------------------------


def font_path() -> str | None:
    """The font file the sheet's text is set in: the first CJK-capable one of fontconfig's
    choice for zh-CN, the fonts fontconfig lists for Chinese and the usual Debian/Fedora
    paths; else a Latin sans (DejaVu); None when there is neither and the built-in fonts
    of Pillow and of PDF (ASCII only) are used. Searched once per process."""
    return _find_font()


@functools.cache
def _find_font() -> str | None:
    cjk = [
        *_fontconfig("fc-match", "-f", "%{file}", "sans:lang=zh-cn"),
        *sorted(_fontconfig("fc-list", "-f", "%{file}\n", ":lang=zh")),
        *_CJK_FONT_PATHS,
    ]
    for path in dict.fromkeys(cjk):
        if _covers(path, _CJK_PROBE):
            return path
    for path in dict.fromkeys(
        [*_LATIN_FONT_PATHS, *_fontconfig("fc-match", "-f", "%{file}", "sans")]
    ):
        if _covers(path, "ECG aVR 0123456789"):
            return path
    return None


def _fontconfig(*command: str) -> list[str]:
    """fontconfig's answer, one path a line; nothing when fontconfig is not installed."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def _covers(path: str, text: str) -> bool:
    if not path.lower().endswith(_FONT_SUFFIXES) or not os.path.isfile(path):
        return False
    coverage = _coverage(path, _face_index(path))
    return coverage is not None and all(ord(ch) in coverage for ch in text)


@functools.lru_cache(maxsize=16)
def _face_index(path: str) -> int:
    """The face of a font collection to use: the Simplified Chinese one of a Noto CJK
    collection (its faces are JP, KR, SC, TC, HK), else the first."""
    if not path.lower().endswith((".ttc", ".otc")):
        return 0
    try:
        faces = TTCollection(path, lazy=True).fonts
        names = [str(face["name"].getDebugName(1) or "") for face in faces]
    except Exception:  # a damaged font file must not take the sheet down
        return 0
    for index, name in enumerate(names):
        if name.endswith((" SC", " CN", " GB")) or " SC " in name:
            return index
    return 0


@functools.lru_cache(maxsize=16)
def _coverage(path: str, index: int) -> frozenset[int] | None:
    """The code points the font has glyphs for; None when it cannot be read."""
    try:
        cmap = TTFont(path, fontNumber=index, lazy=True).getBestCmap()
    except Exception:  # a damaged font file must not take the sheet down
        return None
    return frozenset(cmap) if cmap else None


@dataclass(frozen=True, slots=True)
class _Font:
    """The sheet's font: a file and face, or (path None) the back end's built-in font."""

    path: str | None
    index: int = 0
    coverage: frozenset[int] | None = None

    def can_show(self, ch: str) -> bool:
        if self.coverage is None:
            return " " <= ch <= "~"  # the built-in fonts: printable ASCII
        return ord(ch) in self.coverage

    def show(self, text: str) -> str:
        """`text` with what the font cannot draw replaced (stand-in or "?")."""
        out = []
        for ch in text:
            if ch.isspace():
                out.append(" ")
            elif self.can_show(ch):
                out.append(ch)
            elif ch in _STAND_INS and all(self.can_show(c) for c in _STAND_INS[ch]):
                out.append(_STAND_INS[ch])
            else:
                out.append("?")
        return "".join(out)


_BUILTIN_FONT = _Font(None)


def _sheet_font() -> _Font:
    path = font_path()
    if path is None:
        return _BUILTIN_FONT
    index = _face_index(path)
    coverage = _coverage(path, index)
    return _BUILTIN_FONT if coverage is None else _Font(path, index, coverage)


def _fit(text: str, max_width: float, width: Callable[[str], float], ellipsis: str) -> str:
    """`text`, cut and ended with `ellipsis` when it is wider than `max_width`."""
    if width(text) <= max_width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if width(text[:mid].rstrip() + ellipsis) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + ellipsis


# -- layout, in millimetres ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SheetText:
    """One text item of the sheet, in mm on the page (y is its baseline)."""

    x: float
    y: float  # baseline
    text: str
    size: float  # em height, mm
    max_width: float
    align: Literal["left", "right"] = "left"


@dataclass(frozen=True, slots=True)
class SheetLayout:
    """What the sheet draws, in mm: what both back ends draw, and what tests inspect."""

    traces: tuple[tuple[Point, ...], ...]  # signals and calibration pulses
    separators: tuple[tuple[Point, Point], ...]
    texts: tuple[SheetText, ...]


@dataclass(frozen=True, slots=True)
class _Band:
    """One row of the sheet: where its traces may draw and their zero line."""

    top: float
    pad: float  # half a line and a bit: a held trace stays inside the band

    @property
    def baseline(self) -> float:
        return self.top + BASELINE_MM

    def hold(self, y: float) -> float:
        return min(self.top + ROW_HEIGHT_MM - self.pad, max(self.top + self.pad, y))


def row_band_mm(row: int) -> tuple[float, float]:
    """Top and bottom (mm from the page's top edge) of sheet row 0..3 (3: rhythm strip)."""
    if not 0 <= row < ROWS:
        raise ValueError(f"sheet row {row} out of range 0..{ROWS - 1}")
    top = GRID_TOP_MM + row * ROW_HEIGHT_MM
    return top, top + ROW_HEIGHT_MM


def sheet_layout(
    record: EcgRecord,
    *,
    title: str = "",
    language: str = DEFAULT_LANGUAGE,
    resolution_mm: float = _PDF_RESOLUTION_MM,
) -> SheetLayout:
    """The sheet's layout (traces, separators, texts in mm), as render_png/render_pdf
    draw it; ValueError for a language the sheet has no labels in."""
    return _layout(record, title, resolution_mm, _labels(language))


def _layout(
    record: EcgRecord, title: str, resolution_mm: float, labels: Mapping[str, str]
) -> SheetLayout:
    traces: list[tuple[Point, ...]] = []
    separators: list[tuple[Point, Point]] = []
    texts: list[SheetText] = []
    pad = _TRACE_LINE_MM / 2 + resolution_mm
    rows: list[list[tuple[str, float, float]]] = [
        [(lead, k * COLUMN_S, COLUMN_S) for k, lead in enumerate(leads)] for leads in SHEET_ROWS
    ]
    rows.append([(RHYTHM_LEAD, 0.0, RHYTHM_S)])
    for row, columns in enumerate(rows):
        band = _Band(row_band_mm(row)[0], pad)
        traces.append(_calibration_pulse(band))
        for lead, start_s, seconds in columns:
            x0 = TRACE_LEFT_MM + start_s * MM_PER_S
            points = _trace(record, lead, start_s, seconds, x0, band, resolution_mm)
            if len(points) >= 2:
                traces.append(points)
            label = lead if record.leads.get(lead) else f"{lead} {MISSING}"
            texts.append(SheetText(x0 + 1.0, band.top + 5.5, label, 4.0, 30.0))
            if start_s > 0:
                separators.append(((x0, band.baseline - 3.0), (x0, band.baseline + 3.0)))
    texts.extend(_header(record, title, labels))
    return SheetLayout(tuple(traces), tuple(separators), tuple(texts))


def _calibration_pulse(band: _Band) -> tuple[Point, ...]:
    """1 mV for 200 ms: 10 mm up, 5 mm across, with a little baseline either side."""
    x, y = CALIBRATION_LEFT_MM, band.baseline
    top = y - MM_PER_MV
    return ((x, y), (x + 1, y), (x + 1, top), (x + 6, top), (x + 6, y), (x + 7, y))


def _trace(
    record: EcgRecord,
    lead: str,
    start_s: float,
    seconds: float,
    x0: float,
    band: _Band,
    resolution_mm: float,
) -> tuple[Point, ...]:
    """Seconds `start_s`..`start_s + seconds` of `lead`, drawn from `x0` in `band`."""
    samples = record.leads.get(lead)
    rate = float(record.rate_hz)
    if not samples or not rate > 0:
        return ()
    # The first sample at or after start_s and the last one before its end (the next
    # column starts there); 1e-9 forgives the float error of 2.5 x rate.
    first = max(0, math.ceil(start_s * rate - 1e-9))
    stop = min(len(samples), math.ceil((start_s + seconds) * rate - 1e-9))
    if stop - first < 2:
        return ()
    scale, offset = float(record.uv_per_unit), float(record.offset_uv)
    if not (math.isfinite(scale) and math.isfinite(offset)):
        return ()
    mm_per_sample = MM_PER_S / rate
    mm_per_uv = MM_PER_MV / 1000
    return tuple(
        (
            x0 + (n / rate - start_s) * MM_PER_S,
            band.hold(band.baseline - (offset + scale * samples[n]) * mm_per_uv),
        )
        for n in _peaks_kept(samples, first, stop, resolution_mm / mm_per_sample)
    )


def _peaks_kept(samples: Sequence[int], first: int, stop: int, per_bucket: float) -> Iterable[int]:
    """Indexes to draw: all of them when there are at most two a bucket (pixel), else the
    lowest and the highest of each bucket in time order, so no QRS peak is lost."""
    if per_bucket <= 2:
        return range(first, stop)
    kept: list[int] = []
    bucket = 0
    while (start := first + int(bucket * per_bucket)) < stop:
        end = min(stop, first + int((bucket + 1) * per_bucket))
        chunk = samples[start:end]
        low = start + chunk.index(min(chunk))
        high = start + chunk.index(max(chunk))
        kept.extend(sorted({low, high}))
        bucket += 1
    return kept


def _header(record: EcgRecord, title: str, labels: Mapping[str, str]) -> list[SheetText]:
    """Left: who, when, which cart, the cart's measurements. Right: the cart's
    interpretation, one statement a line."""
    right = GRID_LEFT_MM + float(GRID_WIDTH_MM)
    left_width = _STATEMENTS_LEFT_MM - GRID_LEFT_MM - 3.0
    gap = "     "
    lines = [
        f"{labels['name']} {_field(record.patient_name)}{gap}"
        f"{labels['id']} {_field(record.patient_id)}",
        f"{labels['sex']} {_sex(record.patient_sex, labels)}{gap}"
        f"{labels['age']} {_age(record, labels)}",
        f"{labels['acquired']} {_acquired(record.start_time)}{gap}"
        f"{labels['device']} {_field(record.device)}",
        *_measurement_lines(record.measurements, labels),
    ]
    texts = [
        SheetText(GRID_LEFT_MM, 10.5, title.strip(), 5.0, right - GRID_LEFT_MM - 50.0),
        SheetText(right, 10.5, f"{MM_PER_S:g} mm/s   {MM_PER_MV:g} mm/mV", 3.6, 45.0, "right"),
    ]
    texts += [
        SheetText(GRID_LEFT_MM, _HEADER_TOP_MM + _LINE_MM * i, line, _HEADER_TEXT_MM, left_width)
        for i, line in enumerate(lines)
    ]
    statements = [s.text.strip() for s in record.statements if s.text.strip()]
    shown = statements[:_STATEMENT_LINES] or [MISSING]
    if len(statements) > _STATEMENT_LINES:
        shown.append(labels["more"].format(n=len(statements) - _STATEMENT_LINES))
    texts += [
        SheetText(
            _STATEMENTS_LEFT_MM,
            _HEADER_TOP_MM + _LINE_MM * i,
            line,
            _HEADER_TEXT_MM,
            right - _STATEMENTS_LEFT_MM,
        )
        for i, line in enumerate([labels["statements"], *shown])
    ]
    return texts


def _acquired(when: dt.datetime | None) -> str:
    """Local time with its UTC offset, as the message gave it (the box's zone), so the
    ER reads the time of day the crew saw: `2026-12-03 16:43:00 +08:00`. A time without
    an offset (a file drawn directly: the cart's own wall clock) is printed as it is."""
    if when is None:
        return MISSING
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    offset = when.utcoffset()
    if offset is None:
        return text
    zone = when.strftime("%z")  # +0800
    return f"{text} {zone[:3]}:{zone[3:5]}"


def _field(value: str | None) -> str:
    return value.strip() if value and value.strip() else MISSING


def _sex(code: str | None, labels: Mapping[str, str]) -> str:
    return labels.get(f"sex_{code}", MISSING) if code else MISSING


def _age(record: EcgRecord, labels: Mapping[str, str]) -> str:
    unit = labels.get(f"age_{record.patient_age_unit}")
    if record.patient_age is None or unit is None:
        return MISSING
    return unit.format(n=record.patient_age)


def _measurement_lines(measurements: Mapping[str, Decimal], labels: Mapping[str, str]) -> list[str]:
    def value(key: str) -> str:
        v = measurements.get(key)
        if v is None or not v.is_finite():
            return MISSING
        try:
            return str(v.quantize(Decimal(1), ROUND_HALF_UP))
        except InvalidOperation:  # more digits than the context holds: a nonsense value
            return f"{v:.0f}"

    gap = "     "
    return [
        f"{labels['hr']} {value('heart_rate')} {labels['bpm']}{gap}PR {value('pr')} ms{gap}"
        f"QRS {value('qrs')} ms",
        f"QT/QTc {value('qt')}/{value('qtc')} ms{gap}"
        f"{labels['axes']} P/QRS/T {value('p_axis')}/{value('qrs_axis')}/{value('t_axis')}°",
    ]


# -- PNG -----------------------------------------------------------------------------------


def render_png(
    record: EcgRecord, *, title: str = "", dpi: int = 150, language: str = DEFAULT_LANGUAGE
) -> bytes:
    """The sheet as a PNG of 297 x 210 mm at `dpi` (stored in the file, so printing it at
    that resolution keeps 25 mm/s and 10 mm/mV), labelled in `language` (LANGUAGES)."""
    if not _DPI_RANGE[0] <= dpi <= _DPI_RANGE[1]:
        raise ValueError(f"ECG sheet dpi {dpi}: must be {_DPI_RANGE[0]}..{_DPI_RANGE[1]}")
    labels = _labels(language)
    px = dpi / 25.4  # pixels per mm
    font = _sheet_font()
    sheet = _layout(record, title, 1 / px, labels)
    image = Image.new("RGB", (round(PAGE_WIDTH_MM * px), round(PAGE_HEIGHT_MM * px)), PAPER)
    draw = ImageDraw.Draw(image)
    _png_grid(draw, px)
    trace_width = max(1, round(_TRACE_LINE_MM * px))
    joint = "curve" if trace_width > 2 else None
    for points in sheet.traces:
        draw.line([(x * px, y * px) for x, y in points], fill=INK, width=trace_width, joint=joint)
    separator_width = max(1, round(_SEPARATOR_LINE_MM * px))
    for (x1, y1), (x2, y2) in sheet.separators:
        draw.line([(x1 * px, y1 * px), (x2 * px, y2 * px)], fill=INK, width=separator_width)
    for text in sheet.texts:
        _png_text(draw, font, text, px)
    out = io.BytesIO()
    image.save(out, "PNG", dpi=(dpi, dpi))
    return out.getvalue()


def _png_grid(draw: ImageDraw.ImageDraw, px: float) -> None:
    top, bottom = GRID_TOP_MM * px, (GRID_TOP_MM + GRID_HEIGHT_MM) * px
    left, right = GRID_LEFT_MM * px, (GRID_LEFT_MM + GRID_WIDTH_MM) * px
    for major, colour, line_mm in (
        (False, MINOR_GRID, _MINOR_LINE_MM),
        (True, MAJOR_GRID, _MAJOR_LINE_MM),
    ):
        width = max(1, round(line_mm * px))
        for mm in range(GRID_WIDTH_MM + 1):
            if (mm % 5 == 0) == major:
                x = round((GRID_LEFT_MM + mm) * px)
                draw.line([(x, top), (x, bottom)], fill=colour, width=width)
        for mm in range(GRID_HEIGHT_MM + 1):
            if (mm % 5 == 0) == major:
                y = round((GRID_TOP_MM + mm) * px)
                draw.line([(left, y), (right, y)], fill=colour, width=width)


def _png_text(draw: ImageDraw.ImageDraw, font: _Font, text: SheetText, px: float) -> None:
    face = _pil_font(font.path, font.index, max(6, round(text.size * px)))
    shown = _fit(font.show(text.text), text.max_width * px, face.getlength, font.show("…"))
    if not shown:
        return
    if isinstance(face, ImageFont.FreeTypeFont):
        anchor = "rs" if text.align == "right" else "ls"
        draw.text((text.x * px, text.y * px), shown, fill=INK, font=face, anchor=anchor)
        return
    # Pillow without FreeType: a bitmap font, placed by its top-left corner.
    x = text.x * px - (face.getlength(shown) if text.align == "right" else 0)
    draw.text((x, text.y * px - text.size * px * 0.8), shown, fill=INK, font=face)


@functools.lru_cache(maxsize=32)
def _pil_font(
    path: str | None, index: int, size: int
) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if path is not None:
        try:
            return ImageFont.truetype(path, size, index=index)
        except OSError as exc:
            # Unreadable after all: the built-in font, ASCII via _Font.show (Chinese "?").
            log.warning("ECG sheet: font %s unreadable (%s): built-in font", path, exc)
    return ImageFont.load_default(size)


# -- PDF -----------------------------------------------------------------------------------


def render_pdf(record: EcgRecord, *, title: str = "", language: str = DEFAULT_LANGUAGE) -> bytes:
    """The sheet as a one-page A4 landscape PDF, vector lines (print at actual size),
    labelled in `language` (LANGUAGES)."""
    sheet = _layout(record, title, _PDF_RESOLUTION_MM, _labels(language))
    font = _sheet_font()
    if font.path is None:
        return _pdf_document(sheet, title, _BUILTIN_FONT)
    try:
        return _pdf_document(sheet, title, font)
    except Exception:  # fpdf2 cannot embed or subset some font files: no reason to lose the sheet
        log.warning(
            "ECG sheet: font %s not usable in PDF, using Helvetica", font.path, exc_info=True
        )
        return _pdf_document(sheet, title, _BUILTIN_FONT)


def _pdf_document(sheet: SheetLayout, title: str, font: _Font) -> bytes:
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_margin(0)
    pdf.set_title(title.strip() or "12-lead ECG")
    pdf.set_creator("Edge Agent county gateway")
    pdf.add_page()
    family = "helvetica"  # a PDF core font: nothing embedded, ASCII (see _Font.can_show)
    if font.path is not None:
        family = "sheet"
        pdf.add_font(family, fname=font.path, collection_font_number=font.index)  # subset on output
    _pdf_grid(pdf)
    pdf.set_draw_color(*INK)
    pdf.set_line_width(_TRACE_LINE_MM)
    for points in sheet.traces:
        pdf.polyline(points)
    pdf.set_line_width(_SEPARATOR_LINE_MM)
    for (x1, y1), (x2, y2) in sheet.separators:
        pdf.line(x1, y1, x2, y2)
    pdf.set_text_color(*INK)
    for text in sheet.texts:
        pdf.set_font(family, size=text.size * _PT_PER_MM)
        shown = _fit(font.show(text.text), text.max_width, pdf.get_string_width, font.show("…"))
        if shown:
            x = text.x - (pdf.get_string_width(shown) if text.align == "right" else 0)
            pdf.text(x, text.y, shown)
    return bytes(pdf.output())


def _pdf_grid(pdf: FPDF) -> None:
    top, bottom = GRID_TOP_MM, GRID_TOP_MM + GRID_HEIGHT_MM
    left, right = GRID_LEFT_MM, GRID_LEFT_MM + GRID_WIDTH_MM
    for major, colour, line_mm in (
        (False, MINOR_GRID, _MINOR_LINE_MM),
        (True, MAJOR_GRID, _MAJOR_LINE_MM),
    ):
        pdf.set_draw_color(*colour)
        pdf.set_line_width(line_mm)
        for mm in range(GRID_WIDTH_MM + 1):
            if (mm % 5 == 0) == major:
                pdf.line(left + mm, top, left + mm, bottom)
        for mm in range(GRID_HEIGHT_MM + 1):
            if (mm % 5 == 0) == major:
                pdf.line(left, top + mm, right, top + mm)
