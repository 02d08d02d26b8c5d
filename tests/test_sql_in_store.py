"""SQL lives in the stores only (docs/architecture.md, one writer): edge_agent/store/ for the box, and the
county gateway's own store (sync/gateway/store.py, SQLite or PostgreSQL). Everything
else asks a repository, so a table can change in one package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge_agent", "sync", "device_drivers", "tui")
STORES = (ROOT / "edge_agent" / "store", ROOT / "sync" / "gateway" / "store.py")

# Statements as they are written here: upper-case keywords in their usual shape. Prose
# in docstrings ("updates the device") does not match.
SQL = re.compile(
    r"\b(SELECT\b.+\bFROM|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE (TABLE|INDEX)"
    r"|DROP TABLE|ALTER TABLE|PRAGMA \w+)\b"
)
CURSOR_CALLS = {"execute", "executemany", "executescript"}
DRIVERS_OF_SQLITE = {"sqlite_utils"}


def problems(source: str) -> list[str]:
    """What in this module's text talks to a database itself, one line per finding."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in CURSOR_CALLS
        ):
            found.append(f"line {node.lineno}: .{node.func.attr}(...)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if SQL.search(node.value):
                found.append(f"line {node.lineno}: SQL text {node.value[:40]!r}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            if any((n or "").split(".")[0] in DRIVERS_OF_SQLITE for n in names):
                found.append(f"line {node.lineno}: imports {', '.join(n or '' for n in names)}")
    return found


def outside_the_stores() -> list[Path]:
    files = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if not any(path == s or s in path.parents for s in STORES):
                files.append(path)
    return files


def test_no_module_outside_the_stores_writes_sql() -> None:
    files = outside_the_stores()
    assert len(files) > 100  # the scan sees the code base, not an empty folder
    found = {
        str(path.relative_to(ROOT)): hits
        for path in files
        if (hits := problems(path.read_text(encoding="utf-8")))
    }
    assert found == {}


@pytest.mark.parametrize(
    "source",
    [
        'conn.execute("SELECT 1")',
        "rows = store.conn.executemany(sql, [])",
        'QUERY = "SELECT id FROM outbox WHERE status = ?"',
        'x = f"UPDATE device SET state = {s!r}"',
        'DDL = "CREATE TABLE t (x)"',
        "from sqlite_utils import Database",
    ],
)
def test_the_scan_finds_sql_where_it_is(source: str) -> None:
    assert problems(source)


def test_the_scan_leaves_prose_alone() -> None:
    source = '"""Select the newest reading from the window; update the device state."""\n'
    assert problems(source) == []
