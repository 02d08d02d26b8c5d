"""The 12-lead sheet (sync.gateway.ecg_sheet): paper geometry measured on the PNG's pixels,
the PDF's page and text, Chinese text with and without a CJK font, bad records."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
import re
import time
import zlib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import gateway_keys
import numpy as np
import pytest
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTFont
from PIL import Image

from device_drivers.ecg.record import EcgRecord, limb_lead_errors
from edge_agent.model import Statement
from sync.gateway import ecg_sheet

RATE = 500
UV_PER_UNIT = Decimal("4.88")
TITLE = "STEMI pre-alert · amb-017"
NAME = "王秀英"
STATEMENTS = ("窦性心律", "ACUTE MI / STEMI", "急性下壁心肌梗死")

# One beat every 0.8 s (75 bpm): Gaussian P, Q, R, S and T waves, amplitudes in µV.
LIMB_WAVES = {"I": (80, -50, 700, -100, 200), "II": (150, -80, 1200, -200, 300)}
CHEST_WAVES = {
    "V1": (60, 0, 250, -900, -100),
    "V2": (80, 0, 500, -1100, 300),
    "V3": (90, -30, 800, -700, 350),
    "V4": (100, -60, 1300, -400, 400),
    "V5": (100, -80, 1200, -200, 300),
    "V6": (90, -60, 900, -100, 250),
}


def beat_uv(t: float, p: float, q: float, r: float, s: float, tw: float) -> float:
    x = t % 0.8

    def g(centre: float, width: float) -> float:
        return math.exp(-0.5 * ((x - centre) / width) ** 2)

    return (
        p * g(0.2, 0.025)
        + q * g(0.31, 0.008)
        + r * g(0.33, 0.009)
        + s * g(0.355, 0.01)
        + tw * g(0.58, 0.045)
    )


def synthetic_leads(seconds: float) -> dict[str, tuple[int, ...]]:
    """12 leads; III, aVR, aVL, aVF derived from I and II as Einthoven and Goldberger do."""
    times = [n / RATE for n in range(round(seconds * RATE))]

    def units(waves: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(round(beat_uv(t, *waves) / float(UV_PER_UNIT)) for t in times)

    i, ii = units(LIMB_WAVES["I"]), units(LIMB_WAVES["II"])
    leads = {
        "I": i,
        "II": ii,
        "III": tuple(b - a for a, b in zip(i, ii, strict=True)),
        "aVR": tuple(round(-(a + b) / 2) for a, b in zip(i, ii, strict=True)),
        "aVL": tuple(round(a - b / 2) for a, b in zip(i, ii, strict=True)),
        "aVF": tuple(round(b - a / 2) for a, b in zip(i, ii, strict=True)),
    }
    leads.update({name: units(waves) for name, waves in CHEST_WAVES.items()})
    return leads


def make_record(
    seconds: float = 10.0, leads: dict[str, tuple[int, ...]] | None = None
) -> EcgRecord:
    return EcgRecord(
        leads=synthetic_leads(seconds) if leads is None else leads,
        rate_hz=Decimal(RATE),
        uv_per_unit=UV_PER_UNIT,
        start_time=dt.datetime(2024, 5, 1, 14, 32, 10),
        measurements={
            "heart_rate": Decimal(75),
            "pr": Decimal(160),
            "qrs": Decimal(92),
            "qt": Decimal(380),
            "qtc": Decimal("424.6"),
            "p_axis": Decimal(60),
            "qrs_axis": Decimal(45),
            "t_axis": Decimal(40),
        },
        statements=tuple(Statement(text) for text in STATEMENTS),
        patient_id="330102195003041234",
        patient_name=NAME,
        device="MAC 2000 SN 5512",
    )


# -- a font made for the test, so results do not depend on the fonts of the machine -------

TEST_CHARS = "".join(chr(c) for c in range(0x20, 0x7F)) + "—·°…"


def build_font(path: Path, chars: str) -> Path:
    """A TrueType font with a box glyph for each of `chars` (CJK ones 1 em wide)."""
    names = {ch: f"u{ord(ch):04X}" for ch in chars}
    widths = {".notdef": 500} | {
        name: 1000 if ord(ch) > 0x2E80 else 600 for ch, name in names.items()
    }

    def box(width: int) -> object:
        pen = TTGlyphPen(None)
        if width:
            pen.moveTo((50, 0))
            pen.lineTo((50, 700))
            pen.lineTo((width - 50, 700))
            pen.lineTo((width - 50, 0))
            pen.closePath()
        return pen.glyph()

    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder(list(widths))
    builder.setupCharacterMap({ord(ch): name for ch, name in names.items()})
    builder.setupGlyf({name: box(0 if name == "u0020" else w) for name, w in widths.items()})
    builder.setupHorizontalMetrics({name: (w, 50) for name, w in widths.items()})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": "Sheet Test", "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=800, sTypoDescender=-200, usWinAscent=800, usWinDescent=200)
    builder.setupPost()
    builder.save(str(path))
    return path


@pytest.fixture(scope="session")
def cjk_font(tmp_path_factory: pytest.TempPathFactory) -> Path:
    labels = "".join(ecg_sheet.LABELS["zh_CN"].values())  # the sheet's Chinese words
    chars = TEST_CHARS + NAME + "".join(STATEMENTS) + labels
    return build_font(tmp_path_factory.mktemp("fonts") / "sheet-cjk.ttf", chars)


@pytest.fixture(scope="session")
def latin_font(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_font(tmp_path_factory.mktemp("fonts") / "sheet-latin.ttf", TEST_CHARS)


@pytest.fixture
def use_font(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path | None], None]:
    def use(path: Path | None) -> None:
        monkeypatch.setattr(ecg_sheet, "font_path", lambda: None if path is None else str(path))

    return use


@pytest.fixture(autouse=True)
def _test_cjk_font(cjk_font: Path, use_font: Callable[[Path | None], None]) -> None:
    use_font(cjk_font)


@pytest.fixture(scope="module")
def record() -> EcgRecord:
    rec = make_record()
    assert limb_lead_errors(rec) == []
    return rec


# -- reading the outputs back ----------------------------------------------------------------


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def is_ink(image: np.ndarray) -> np.ndarray:
    # numpy's stubs give an array compared with a tuple as Any: say what it is here.
    ink: np.ndarray = np.all(image == ecg_sheet.INK, axis=-1)
    return ink


def mm_to_px(mm: float, dpi: int) -> int:
    return round(mm * dpi / 25.4)


def column_left_mm(column: int) -> float:
    return ecg_sheet.TRACE_LEFT_MM + column * ecg_sheet.COLUMN_S * ecg_sheet.MM_PER_S


def ink_in(
    image: np.ndarray, dpi: int, x_mm: tuple[float, float], y_mm: tuple[float, float]
) -> int:
    """Black pixels in a rectangle given in mm."""
    (x0, x1), (y0, y1) = x_mm, y_mm
    area = image[mm_to_px(y0, dpi) : mm_to_px(y1, dpi), mm_to_px(x0, dpi) : mm_to_px(x1, dpi)]
    return int(is_ink(area).sum())


def trace_zone(row: int, column: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Where only the trace of that row and column draws: clear of its label (top 8 mm)
    and of the column separators."""
    top, bottom = ecg_sheet.row_band_mm(row)
    left = column_left_mm(column)
    return (left + 5.0, left + 55.0), (top + 8.0, bottom)


def pdf_text(pdf: bytes) -> str:
    """The text the PDF shows, one line per text object: content streams decoded through
    the embedded font's ToUnicode map (fpdf2 writes 2-byte glyph codes), or as Latin-1
    for the core fonts."""
    streams = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            streams.append(zlib.decompress(match.group(1)))
        except zlib.error:
            streams.append(match.group(1))
    to_unicode: dict[bytes, str] = {}
    for stream in streams:
        for block in re.findall(rb"beginbfchar(.*?)endbfchar", stream, re.S):
            for code, uni in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
                to_unicode[bytes.fromhex(code.decode())] = bytes.fromhex(uni.decode()).decode(
                    "utf-16-be"
                )
    lines = []
    for stream in streams:
        for raw in re.findall(rb"\(((?:[^\\()]|\\.)*)\)\s*Tj", stream, re.S):
            data = unescape_pdf_string(raw)
            if to_unicode:
                lines.append(
                    "".join(
                        to_unicode.get(data[i : i + 2], "\ufffd") for i in range(0, len(data), 2)
                    )
                )
            else:
                lines.append(data.decode("latin-1"))
    return "\n".join(lines)


def unescape_pdf_string(raw: bytes) -> bytes:
    """A PDF literal string's bytes (ISO 32000-1 §7.3.4.2 escapes)."""
    simple = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("f"): 12}
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] != ord("\\"):
            out.append(raw[i])
            i += 1
            continue
        octal = re.match(rb"[0-7]{1,3}", raw[i + 1 : i + 4])
        if octal:
            out.append(int(octal.group(), 8) & 0xFF)
            i += 1 + len(octal.group())
        else:
            out.append(simple.get(raw[i + 1], raw[i + 1]))
            i += 2
    return bytes(out)


# -- PNG ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dpi", [100, 150, 300])
def test_png_is_an_a4_landscape_page_at_the_dpi(record: EcgRecord, dpi: int) -> None:
    png = ecg_sheet.render_png(record, title=TITLE, dpi=dpi)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    assert image.size == (round(297 * dpi / 25.4), round(210 * dpi / 25.4))
    # The dpi is stored (as pixels per metre), so printing at it keeps 25 mm/s.
    assert image.info["dpi"] == pytest.approx((dpi, dpi), abs=0.05)


def test_png_has_the_grid_and_a_trace_in_every_lead_box(record: EcgRecord) -> None:
    dpi = 150
    image = pixels(ecg_sheet.render_png(record, title=TITLE, dpi=dpi))
    assert np.all(image == ecg_sheet.MINOR_GRID, axis=-1).sum() > 10_000
    assert np.all(image == ecg_sheet.MAJOR_GRID, axis=-1).sum() > 10_000
    for row in range(3):
        for column in range(4):
            assert ink_in(image, dpi, *trace_zone(row, column)) > 50, (row, column)
    top, bottom = ecg_sheet.row_band_mm(3)
    rhythm = (ecg_sheet.TRACE_LEFT_MM + 5, ecg_sheet.TRACE_LEFT_MM + 245)
    assert ink_in(image, dpi, rhythm, (top + 8, bottom)) > 500


def test_png_major_grid_lines_are_5_mm_apart(record: EcgRecord) -> None:
    dpi = 254  # 10 px per mm
    image = pixels(ecg_sheet.render_png(record, dpi=dpi))
    y = mm_to_px(ecg_sheet.GRID_TOP_MM + 2.5, dpi)  # between two major horizontal lines
    row = np.all(image[y] == ecg_sheet.MAJOR_GRID, axis=-1)
    starts = [x for x in range(1, len(row)) if row[x] and not row[x - 1]]
    assert np.diff(starts).tolist() == [50] * (ecg_sheet.GRID_WIDTH_MM // 5)


@pytest.mark.parametrize("dpi", [100, 150, 300])
def test_calibration_pulse_is_10_mm_tall(record: EcgRecord, dpi: int) -> None:
    image = pixels(ecg_sheet.render_png(record, dpi=dpi))
    top, bottom = (mm_to_px(mm, dpi) for mm in ecg_sheet.row_band_mm(0))

    def line_centre(x_mm: float) -> float:
        column = is_ink(image[top:bottom, mm_to_px(x_mm, dpi)])
        rows = np.flatnonzero(column)
        assert 0 < len(rows) <= 4, rows  # one horizontal line crosses this column
        return float(rows.mean())

    baseline = line_centre(ecg_sheet.CALIBRATION_LEFT_MM + 0.5)  # before the pulse
    plateau = line_centre(ecg_sheet.CALIBRATION_LEFT_MM + 3.5)  # the middle of its top
    assert baseline - plateau == pytest.approx(10 * dpi / 25.4, abs=1.0)


def test_png_renders_fast_and_small(record: EcgRecord) -> None:
    started = time.perf_counter()
    png = ecg_sheet.render_png(record, title=TITLE)
    assert time.perf_counter() - started < 2.0
    assert len(png) < 1_000_000


# -- PDF ---------------------------------------------------------------------------------------


def test_pdf_is_one_a4_landscape_page_with_labels_and_header(record: EcgRecord) -> None:
    pdf = ecg_sheet.render_pdf(record, title=TITLE, language="en")
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1
    assert re.search(rb"/MediaBox\s*\[0 0 841\.89 595\.28\]", pdf)  # A4 landscape, pt
    lines = pdf_text(pdf).splitlines()
    for lead in ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"):
        assert lead in lines
    assert lines.count("II") == 2  # its 2.5 s box and the rhythm strip
    text = "\n".join(lines)
    for expected in (
        TITLE,
        "25 mm/s   10 mm/mV",
        f"Name {NAME}",
        "ID 330102195003041234",
        "Acquired 2024-05-01 14:32:10",
        "Device MAC 2000 SN 5512",
        "HR 75 bpm",
        "PR 160 ms",
        "QRS 92 ms",
        "QT/QTc 380/425 ms",
        "Axes P/QRS/T 60/45/40°",
        *STATEMENTS,
    ):
        assert expected in text


def test_pdf_stays_small(record: EcgRecord) -> None:
    started = time.perf_counter()
    pdf = ecg_sheet.render_pdf(record, title=TITLE, language="en")
    assert time.perf_counter() - started < 5.0
    assert len(pdf) < 1_000_000


# -- fonts and Chinese text ----------------------------------------------------------------------


def test_system_font_renders_a_chinese_name(
    record: EcgRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the real font_path(): whatever this machine has
    path = ecg_sheet.font_path()
    assert path is None or Path(path).is_file()
    assert ecg_sheet.render_png(record, title=TITLE).startswith(b"\x89PNG")
    text = pdf_text(ecg_sheet.render_pdf(record, title=TITLE, language="en"))
    assert "Name " in text  # 王秀英 itself, or ??? without a CJK font


@pytest.mark.parametrize(
    ("font", "shown_name", "missing_mark"),
    [
        ("cjk", NAME, "—"),  # a CJK font: the name as it is
        ("latin", "???", "—"),  # a Latin TrueType font: "?" for each glyph it lacks
        (None, "???", "-"),  # no font file: the PDF core font, ASCII only
    ],
)
def test_chinese_text_with_and_without_a_cjk_font(
    font: str | None,
    shown_name: str,
    missing_mark: str,
    cjk_font: Path,
    latin_font: Path,
    use_font: Callable[[Path | None], None],
) -> None:
    use_font({"cjk": cjk_font, "latin": latin_font, None: None}[font])
    leads = synthetic_leads(10.0)
    del leads["V3"]
    record = make_record(leads=leads)
    assert ecg_sheet.render_png(record, title=TITLE).startswith(b"\x89PNG")
    text = pdf_text(ecg_sheet.render_pdf(record, title=TITLE, language="en"))
    assert f"Name {shown_name} " in text
    assert f"V3 {missing_mark}" in text.splitlines()
    if font is None:
        assert "STEMI pre-alert - amb-017" in text


# -- records a cart did not fill -----------------------------------------------------------------


def test_missing_leads_leave_a_labelled_gap() -> None:
    dpi = 150
    leads = synthetic_leads(10.0)
    kept = {name: leads[name] for name in ("I", "V1")}
    record = make_record(leads=kept)
    image = pixels(ecg_sheet.render_png(record, dpi=dpi))
    assert ink_in(image, dpi, *trace_zone(0, 0)) > 50  # I
    assert ink_in(image, dpi, *trace_zone(0, 2)) > 50  # V1
    for row, column in [(0, 1), (0, 3), (1, 0), (1, 2), (2, 1), (2, 3)]:
        assert ink_in(image, dpi, *trace_zone(row, column)) == 0, (row, column)
    top, bottom = ecg_sheet.row_band_mm(3)
    rhythm = (ecg_sheet.TRACE_LEFT_MM + 5, ecg_sheet.TRACE_LEFT_MM + 245)
    assert ink_in(image, dpi, rhythm, (top + 8, bottom)) == 0
    lines = pdf_text(ecg_sheet.render_pdf(record)).splitlines()
    assert lines.count("II —") == 2
    assert "aVF —" in lines
    assert "I" in lines


def test_an_empty_record_still_gives_a_sheet() -> None:
    record = EcgRecord(leads={}, rate_hz=Decimal(0), uv_per_unit=Decimal(1))
    assert ecg_sheet.render_png(record).startswith(b"\x89PNG")
    assert "HR — bpm" in pdf_text(ecg_sheet.render_pdf(record, language="en"))


def test_a_3_second_record_draws_what_exists() -> None:
    dpi = 150
    image = pixels(ecg_sheet.render_png(make_record(seconds=3.0), dpi=dpi))
    for row in range(3):
        assert ink_in(image, dpi, *trace_zone(row, 0)) > 50
        # Column 1 is 2.5..5 s: half a second of trace, then nothing.
        (left, _), y_mm = trace_zone(row, 1)
        end = column_left_mm(1) + 0.5 * ecg_sheet.MM_PER_S
        assert ink_in(image, dpi, (left, end), y_mm) > 0
        assert ink_in(image, dpi, (end + 1, column_left_mm(2) - 1), y_mm) == 0
        for column in (2, 3):
            assert ink_in(image, dpi, *trace_zone(row, column)) == 0
    top, bottom = ecg_sheet.row_band_mm(3)
    end = ecg_sheet.TRACE_LEFT_MM + 3.0 * ecg_sheet.MM_PER_S
    assert ink_in(image, dpi, (ecg_sheet.TRACE_LEFT_MM, end), (top + 8, bottom)) > 0
    assert ink_in(image, dpi, (end + 1, end + 150), (top, bottom)) == 0
    assert ecg_sheet.render_pdf(make_record(seconds=3.0)).startswith(b"%PDF")


def test_a_huge_artefact_stays_in_its_row() -> None:
    dpi = 150
    # V2 (row 1, column 2) swinging ±1 V: 10 m of paper at 10 mm/mV.
    artefact = tuple(200_000 if (n // 50) % 2 else -200_000 for n in range(10 * RATE))
    record = make_record(leads={"V2": artefact})
    image = pixels(ecg_sheet.render_png(record, dpi=dpi))
    x_mm = (column_left_mm(2) + 12.0, column_left_mm(3) - 1.0)  # clear of labels and ticks
    top, bottom = ecg_sheet.row_band_mm(1)
    inside = is_ink(
        image[
            mm_to_px(top, dpi) : mm_to_px(bottom, dpi),
            mm_to_px(x_mm[0], dpi) : mm_to_px(x_mm[1], dpi),
        ]
    )
    assert inside.sum() > 0
    assert inside[:3].any() and inside[-3:].any()  # it runs along both band edges
    assert ink_in(image, dpi, x_mm, (ecg_sheet.GRID_TOP_MM, top)) == 0  # the header is above
    assert ink_in(image, dpi, x_mm, (bottom, ecg_sheet.PAGE_HEIGHT_MM)) == 0
    assert ecg_sheet.render_pdf(record).startswith(b"%PDF")


def test_dpi_out_of_range_is_refused(record: EcgRecord) -> None:
    with pytest.raises(ValueError, match="dpi 5000"):
        ecg_sheet.render_png(record, dpi=5000)


@pytest.mark.parametrize(
    ("start", "shown"),
    [
        (dt.datetime(2024, 5, 1, 14, 32, 10), "Acquired 2024-05-01 14:32:10 "),
        (dt.datetime(2024, 5, 1, 6, 32, 10, tzinfo=dt.UTC), "Acquired 2024-05-01 06:32:10 +00:00 "),
        (
            dt.datetime(2024, 5, 1, 14, 32, 10, tzinfo=dt.timezone(dt.timedelta(hours=8))),
            "Acquired 2024-05-01 14:32:10 +08:00 ",
        ),
        (None, "Acquired — "),
    ],
)
def test_acquisition_time_is_the_carts_wall_clock(start: dt.datetime | None, shown: str) -> None:
    record = dataclasses.replace(make_record(seconds=1.0), start_time=start)
    assert shown in pdf_text(ecg_sheet.render_pdf(record, language="en"))


def test_a_font_fpdf2_rejects_falls_back_to_the_core_font(
    tmp_path: Path, use_font: Callable[[Path | None], None], caplog: pytest.LogCaptureFixture
) -> None:
    # fontTools reads its character map, Pillow draws with it, fpdf2 wants an OS/2 table.
    path = build_font(tmp_path / "no-os2.ttf", TEST_CHARS + NAME)
    font = TTFont(str(path))
    del font["OS/2"]
    font.save(str(path))
    use_font(path)
    record = make_record(seconds=2.0)
    assert ecg_sheet.render_png(record).startswith(b"\x89PNG")
    text = pdf_text(ecg_sheet.render_pdf(record, title=TITLE, language="en"))
    assert "Name ??? " in text
    assert "not usable in PDF" in caplog.text


# -- the header's words: zh_CN by default, English on request ----------------------------------

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def header_texts(record: EcgRecord, language: str | None = None) -> list[str]:
    layout = (
        ecg_sheet.sheet_layout(record, title=TITLE)
        if language is None
        else ecg_sheet.sheet_layout(record, title=TITLE, language=language)
    )
    return [t.text for t in layout.texts if t.y < ecg_sheet.GRID_TOP_MM]


def test_header_in_chinese_by_default() -> None:
    record = dataclasses.replace(
        make_record(seconds=1.0),
        start_time=dt.datetime(2026, 12, 3, 16, 43, tzinfo=SHANGHAI),
        device="PageWriter TC",
        patient_sex="F",
        patient_age=75,
        patient_age_unit="MDC_DIM_YR",
    )
    assert header_texts(record) == [
        TITLE,
        "25 mm/s   10 mm/mV",
        f"姓名 {NAME}     编号 330102195003041234",
        "性别 女     年龄 75岁",
        "采集时间 2026-12-03 16:43:00 +08:00     设备 PageWriter TC",
        "心率 75 次/分     PR 160 ms     QRS 92 ms",
        "QT/QTc 380/425 ms     电轴 P/QRS/T 60/45/40°",
        "心电图机自动分析：",
        *STATEMENTS,
    ]


def test_header_in_english_with_the_switch() -> None:
    record = dataclasses.replace(
        make_record(seconds=1.0),
        start_time=dt.datetime(2026, 12, 3, 16, 43, tzinfo=SHANGHAI),
        patient_sex="M",
        patient_age=12,
        patient_age_unit="MDC_DIM_DAY",
    )
    texts = header_texts(record, "en")
    assert "Sex male     Age 12 d" in texts
    assert "Acquired 2026-12-03 16:43:00 +08:00     Device MAC 2000 SN 5512" in texts
    assert "HR 75 bpm     PR 160 ms     QRS 92 ms" in texts
    assert "Cart's interpretation:" in texts


@pytest.mark.parametrize(
    ("sex", "age", "unit", "zh", "en"),
    [
        (None, None, None, "性别 —     年龄 —", "Sex —     Age —"),
        ("O", 5, "MDC_DIM_HR", "性别 其他     年龄 5小时", "Sex other     Age 5 h"),
        ("M", 40, None, "性别 男     年龄 —", "Sex male     Age —"),  # an age needs its unit
    ],
)
def test_sex_and_age_when_known(
    sex: str | None, age: int | None, unit: str | None, zh: str, en: str
) -> None:
    record = dataclasses.replace(
        make_record(seconds=1.0), patient_sex=sex, patient_age=age, patient_age_unit=unit
    )
    assert zh in header_texts(record)
    assert en in header_texts(record, "en")


def test_more_statements_than_lines_say_how_many_more() -> None:
    record = dataclasses.replace(
        make_record(seconds=1.0), statements=tuple(Statement(f"S{n}") for n in range(7))
    )
    texts = header_texts(record)
    assert texts[-5:] == ["S0", "S1", "S2", "S3", "…另有 3 条"]
    assert header_texts(record, "en")[-1] == "... 3 more"
    none = header_texts(dataclasses.replace(record, statements=()))
    assert none[-2:] == ["心电图机自动分析：", "—"]


def test_header_stays_above_the_grid_and_inside_its_columns() -> None:
    layout = ecg_sheet.sheet_layout(make_record(seconds=1.0), title=TITLE)
    header = [t for t in layout.texts if t.y < ecg_sheet.GRID_TOP_MM]
    assert all(t.y + 1.0 < ecg_sheet.GRID_TOP_MM for t in header)  # descenders clear the grid
    right = ecg_sheet.GRID_LEFT_MM + ecg_sheet.GRID_WIDTH_MM
    assert all(t.x + t.max_width <= right + 0.01 for t in header if t.align == "left")


def test_titles_and_languages() -> None:
    assert ecg_sheet.sheet_title("amb-017", stemi=True) == "STEMI 预警 · amb-017"
    assert ecg_sheet.sheet_title("amb-017", stemi=False, language="en") == "12-lead ECG · amb-017"
    with pytest.raises(ValueError, match="language 'fr'"):
        ecg_sheet.render_png(make_record(seconds=1.0), language="fr")
    with pytest.raises(ValueError, match="language 'fr'"):
        ecg_sheet.render_pdf(make_record(seconds=1.0), language="fr")


@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_both_languages_give_one_standard_page(language: str, record: EcgRecord) -> None:
    png = ecg_sheet.render_png(record, title=TITLE, dpi=100, language=language)
    assert Image.open(io.BytesIO(png)).size == (round(297 / 25.4 * 100), round(210 / 25.4 * 100))
    pdf = ecg_sheet.render_pdf(record, title=TITLE, language=language)
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1
    assert "25 mm/s   10 mm/mV" in pdf_text(pdf)


def test_the_gateway_chooses_the_sheet_language(tmp_path: Path) -> None:
    from edge_agent.cli import build_parser
    from sync.gateway.service import SHEET_LANGUAGES, Gateway

    assert SHEET_LANGUAGES == ecg_sheet.LANGUAGES == tuple(ecg_sheet.LABELS)
    db = str(tmp_path / "gateway.db")
    assert Gateway("mqtt://127.0.0.1:1883", db).sheet_language == "zh_CN"
    assert Gateway("mqtt://127.0.0.1:1883", db, sheet_language="en").sheet_language == "en"
    with pytest.raises(ValueError, match="sheet language 'fr'"):
        gateway_keys.made(db)
        Gateway("mqtt://127.0.0.1:1883", db, sheet_language="fr")
    run = ["gateway", "run", "--broker", "mqtt://127.0.0.1:1883", "--db", db]
    assert build_parser().parse_args(run).sheet_language == "zh_CN"
    assert build_parser().parse_args([*run, "--sheet-language", "en"]).sheet_language == "en"
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*run, "--sheet-language", "fr"])
    assert exited.value.code == 2
