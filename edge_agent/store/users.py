"""The box's users and their sign-in sessions (`app_user`, `user_session`, migration 10).

Written by edge_agent.users only; a PIN is never stored, only its scrypt hash, and a
session only as the digest of its token."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

_USER_COLUMNS = (
    "id, name, role, pin_hash, disabled, failed_attempts, locked_until_wall_ns, created_wall_ns"
)


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    name: str
    role: str
    pin_hash: str
    disabled: bool
    failed_attempts: int
    locked_until_wall_ns: int | None
    created_wall_ns: int


@dataclass(frozen=True, slots=True)
class SessionRow:
    token_hash: str
    user_id: int
    started_wall_ns: int
    last_used_mono_ns: int
    boot_id: str
    ended: bool


def _user(row: tuple[object, ...]) -> UserRow:
    return UserRow(
        id=int(row[0]),  # type: ignore[call-overload]
        name=str(row[1]),
        role=str(row[2]),
        pin_hash=str(row[3]),
        disabled=bool(row[4]),
        failed_attempts=int(row[5]),  # type: ignore[call-overload]
        locked_until_wall_ns=None if row[6] is None else int(row[6]),  # type: ignore[call-overload]
        created_wall_ns=int(row[7]),  # type: ignore[call-overload]
    )


class UsersReader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def by_name(self, name: str) -> UserRow | None:
        row = self._conn.execute(
            f"SELECT {_USER_COLUMNS} FROM app_user WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else _user(row)

    def get(self, user_id: int) -> UserRow | None:
        row = self._conn.execute(
            f"SELECT {_USER_COLUMNS} FROM app_user WHERE id = ?", (user_id,)
        ).fetchone()
        return None if row is None else _user(row)

    def all(self) -> list[UserRow]:
        rows = self._conn.execute(f"SELECT {_USER_COLUMNS} FROM app_user ORDER BY id").fetchall()
        return [_user(r) for r in rows]

    def session(self, token_hash: str) -> SessionRow | None:
        row = self._conn.execute(
            "SELECT token_hash, user_id, started_wall_ns, last_used_mono_ns, boot_id, ended"
            " FROM user_session WHERE token_hash = ?",
            (token_hash,),
        ).fetchone()
        if row is None:
            return None
        return SessionRow(
            token_hash=row[0],
            user_id=row[1],
            started_wall_ns=row[2],
            last_used_mono_ns=row[3],
            boot_id=row[4],
            ended=bool(row[5]),
        )


class Users(UsersReader):
    def add(self, name: str, role: str, pin_hash: str, wall_ns: int) -> int:
        cur = self._conn.execute(
            "INSERT INTO app_user (name, role, pin_hash, disabled, failed_attempts,"
            " created_wall_ns) VALUES (?, ?, ?, 0, 0, ?)",
            (name, role, pin_hash, wall_ns),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def set_disabled(self, user_id: int) -> None:
        self._conn.execute("UPDATE app_user SET disabled = 1 WHERE id = ?", (user_id,))
        self._conn.execute("UPDATE user_session SET ended = 1 WHERE user_id = ?", (user_id,))

    def set_pin(self, user_id: int, pin_hash: str) -> None:
        """A new PIN: the failure count and any lockout start again."""
        self._conn.execute(
            "UPDATE app_user SET pin_hash = ?, failed_attempts = 0, locked_until_wall_ns = NULL"
            " WHERE id = ?",
            (pin_hash, user_id),
        )
        self._conn.execute("UPDATE user_session SET ended = 1 WHERE user_id = ?", (user_id,))

    def record_failure(self, user_id: int, failed: int, locked_until_wall_ns: int | None) -> None:
        self._conn.execute(
            "UPDATE app_user SET failed_attempts = ?, locked_until_wall_ns = ? WHERE id = ?",
            (failed, locked_until_wall_ns, user_id),
        )

    def record_success(self, user_id: int) -> None:
        self._conn.execute(
            "UPDATE app_user SET failed_attempts = 0, locked_until_wall_ns = NULL WHERE id = ?",
            (user_id,),
        )

    def start_session(
        self, token_hash: str, user_id: int, *, wall_ns: int, mono_ns: int, boot_id: str
    ) -> None:
        self._conn.execute(
            "INSERT INTO user_session (token_hash, user_id, started_wall_ns, last_used_mono_ns,"
            " boot_id, ended) VALUES (?, ?, ?, ?, ?, 0)",
            (token_hash, user_id, wall_ns, mono_ns, boot_id),
        )

    def touch_session(self, token_hash: str, mono_ns: int) -> None:
        self._conn.execute(
            "UPDATE user_session SET last_used_mono_ns = ? WHERE token_hash = ?",
            (mono_ns, token_hash),
        )

    def end_session(self, token_hash: str) -> None:
        self._conn.execute("UPDATE user_session SET ended = 1 WHERE token_hash = ?", (token_hash,))
