"""The roles table: one in the code (edge_agent/roles.py), the same in docs/security.md,
and every control-socket operation says which permission it needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge_agent import operations, roles

DOC = (Path(__file__).resolve().parents[1] / "docs" / "security.md").read_text(encoding="utf-8")


def _table(after: str) -> list[list[str]]:
    """The first Markdown table after the line starting `after`, as cells, header first."""
    lines = DOC[DOC.index(after) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not all(re.fullmatch(r"-+", c) for c in cells):
            rows.append(cells)
    return rows


def test_the_doc_table_of_roles_is_the_code_table() -> None:
    header, *rows = _table("## Users and roles")
    assert header == ["permission", *roles.BOX_ROLES, *roles.GATEWAY_ROLES]
    documented = {
        role: frozenset(roles.Permission(row[0].strip("`")) for row in rows if row[i] == "✓")
        for i, role in enumerate(header[1:], start=1)
    }
    assert documented == roles.ROLES
    assert [row[0].strip("`") for row in rows] == [p.value for p in roles.Permission]


def test_the_doc_table_of_operations_is_the_code_table() -> None:
    header, *rows = _table("What each operation of the control socket needs")
    assert header == ["operation", "permission"]
    documented = {
        op.strip("`"): None if need == "anyone connected" else roles.Permission(need.strip("`"))
        for op, need in rows
    }
    assert documented == roles.OPERATION_PERMISSION


def test_every_operation_names_its_permission() -> None:
    assert set(operations.OPERATIONS) | {operations.PING} == set(roles.OPERATION_PERMISSION)


@pytest.mark.parametrize(
    ("role", "op", "allowed"),
    [
        ("doctor", "patients.list", True),
        ("crew", "prealert", True),
        ("doctor", "prealert", False),
        ("doctor", "users.add", False),
        ("crew", "audit.show", False),
        ("kiosk", "patients.list", False),
        ("kiosk", "visit.start", False),
        ("admin", "users.reset-pin", True),
        ("er", "patients.add", False),
        ("kiosk", "ping", True),
    ],
)
def test_who_may_do_what(role: str, op: str, allowed: bool) -> None:
    assert roles.may(role, roles.needed_for(op)) is allowed


def test_box_and_gateway_roles_are_apart_and_unknown_roles_hold_nothing() -> None:
    assert set(roles.BOX_ROLES) | set(roles.GATEWAY_ROLES) == set(roles.ROLES)
    assert not set(roles.BOX_ROLES) & set(roles.GATEWAY_ROLES)
    assert not roles.may("root", roles.Permission.READ_PERSON)
    with pytest.raises(ValueError, match="one of admin, doctor, crew, kiosk"):
        roles.check_role("er")
    with pytest.raises(KeyError):
        roles.needed_for("patients.delete")


def test_the_doc_table_of_gateway_operations_is_the_code_table() -> None:
    header, *rows = _table("What each operation of the county gateway's control socket needs")
    assert header == ["gateway operation", "permission"]
    documented = {
        op.strip("`"): None if need == "anyone connected" else roles.Permission(need.strip("`"))
        for op, need in rows
    }
    assert documented == roles.GATEWAY_OPERATION_PERMISSION


def test_every_gateway_operation_names_its_permission() -> None:
    from sync.gateway import operations as gateway_operations

    assert set(gateway_operations.OPERATIONS) | {"ping"} == set(roles.GATEWAY_OPERATION_PERMISSION)


@pytest.mark.parametrize(
    ("role", "op", "allowed"),
    [
        ("er", "reply", True),
        ("county-it", "reply", False),
        ("er", "enroll", False),
        ("county-it", "enroll", True),
        ("er", "users.add", False),
        ("county-it", "keys.rotate", True),
        ("er", "status", True),
        ("admin", "enroll", False),  # a box's role holds nothing at the gateway's socket
        ("admin", "reply", False),
    ],
)
def test_who_may_do_what_at_the_gateway(role: str, op: str, allowed: bool) -> None:
    assert roles.may(role, roles.needed_for(op, on_box=False)) is allowed
