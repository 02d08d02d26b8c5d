"""The project stands alone: what the code relies on is cited from public sources and
explained in this repository's docs/, never in files that live outside it.

The steering team keeps reference notes and a design card beside the repositories, not
in them; a maintainer holding only this repository cannot follow a citation of them.
Facts from specifications name their public source (standard, section, table, manual);
docs/protocols/ holds the protocol facts and docs/contracts.md the product's contracts.
These tests read every tracked file, so they also hold for files added later.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The reference notes by name, or their folder. `(?<![\w-])` lets a page such as
# docs/protocols/ble-vendor-formats.md exist without looking like one of them.
REFERENCE_NOTES = re.compile(
    rb"(?<![\w-])(devices|hl7-pcd|clinical|security-and-durability)\.md\b|shared[/\\]+reference"
)
# The design card and style guide: README.md and docs/ may say where they live (that is
# where a maintainer learns the contracts came from); code, tests and config cite
# docs/contracts.md instead.
DESIGN_CARD = re.compile(rb"\b(DESIGN|STYLE)\.md\b|\.\./shared\b")
# A docs page named in any tracked file: it must exist.
DOCS_PAGE = re.compile(rb"(?<![\w./-])docs/[\w./-]*\w\.md")


def tracked_files() -> list[str]:
    """The files git tracks here, or, outside a git checkout, every file but the venv's."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
        found = []
        for folder, dirs, files in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
            found += [str(Path(folder, f).relative_to(ROOT)) for f in files]
        return sorted(found)
    return sorted(name.decode() for name in out.split(b"\0") if name)


FILES = tracked_files()


def hits(pattern: re.Pattern[bytes], paths: list[str]) -> list[str]:
    found = []
    for path in paths:
        file = ROOT / path
        if not file.is_file():
            continue
        for number, line in enumerate(file.read_bytes().splitlines(), 1):
            if pattern.search(line):
                text = line.decode("utf-8", "replace").strip()
                found.append(f"{path}:{number}: {text[:120]}")
    return found


def test_the_check_sees_the_repository() -> None:
    assert "README.md" in FILES and "edge_agent/recorder.py" in FILES, FILES[:10]
    assert any(f.startswith("docs/protocols/") for f in FILES)


def test_the_patterns_catch_what_they_are_for() -> None:
    md = b".md"  # joined here, so that this file does not cite what it checks for
    caught = [
        b"devices" + md + b" \xc2\xa74.1",
        b"(hl7-pcd" + md + b": keep unknown ids)",
        b"." + b"./shared" + b'/reference/x.md "Units"',
        b"clinical" + md,
        b"reference security-and-durability" + md,
        b"shared\\" + b"reference",
    ]
    assert all(REFERENCE_NOTES.search(line) for line in caught)
    assert not REFERENCE_NOTES.search(b"docs/protocols/ble-vendor-formats.md")
    assert not REFERENCE_NOTES.search(b"docs/protocols/clinical-rules.md")
    assert DESIGN_CARD.search(b"(DESIGN" + md + b" \xc2\xa74)")
    assert DESIGN_CARD.search(b"STYLE" + md) and DESIGN_CARD.search(b"../" + b"shared/x")
    assert not DESIGN_CARD.search(b"docs/contracts.md")


def test_no_tracked_file_cites_the_reference_notes() -> None:
    found = hits(REFERENCE_NOTES, FILES)
    assert not found, (
        "cite the public source (standard, section, manual; docs/protocols/) instead of:\n"
        + "\n".join(found)
    )


def test_only_readme_and_docs_name_the_design_card() -> None:
    outside = [f for f in FILES if f != "README.md" and not f.startswith("docs/")]
    found = hits(DESIGN_CARD, outside)
    assert not found, "cite docs/contracts.md instead of:\n" + "\n".join(found)


def test_every_docs_page_a_file_names_exists() -> None:
    missing = []
    for path in FILES:
        file = ROOT / path
        if not file.is_file():
            continue
        for page in set(DOCS_PAGE.findall(file.read_bytes())):
            if not (ROOT / page.decode()).is_file():
                missing.append(f"{path}: {page.decode()}")
    assert not missing, "\n".join(sorted(missing))


def test_every_relative_link_in_the_docs_resolves() -> None:
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)")
    broken = []
    for path in FILES:
        if not path.endswith(".md"):
            continue
        page = ROOT / path
        for target in link.findall(page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{path}: {target}")
    assert not broken, "\n".join(broken)
