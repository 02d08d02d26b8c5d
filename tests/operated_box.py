"""A box on a real SQLite file whose operations tests run as the daemon does
(edge_agent.operations.run), with a clock the tests move by hand."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from box_keys import keys_of

from edge_agent import operations
from edge_agent.config import Config, from_dict
from edge_agent.control import Caller
from edge_agent.store import StoreWriter

RESIDENT = "11010519491231002X"  # GB 11643-1999's worked example
S = 1_000_000_000


@dataclass
class StepClock:
    """A clock tests move by hand: wall and monotonic time, one boot."""

    boot_id: str = "boot-1"
    wall: int = 1_800_000_000 * S
    mono: int = 5 * S

    def wall_ns(self) -> int:
        return self.wall

    def mono_ns(self) -> int:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += int(seconds * S)
        self.mono += int(seconds * S)


def box_config(tmp: Path, crew_idle_lock_s: float = 300) -> Config:
    return from_dict(
        {
            "agent": {"id": "amb-017", "data_dir": str(tmp / "data")},
            "uplink": {"broker": "mqtt://127.0.0.1:9", "allow_insecure": True},
            "users": {"crew_idle_lock_s": crew_idle_lock_s},
        }
    )


@dataclass
class Box:
    services: operations.Services
    clock: StepClock

    @property
    def store(self) -> StoreWriter:
        return self.services.store

    def run(self, op: str, args: dict[str, Any] | None = None, **caller: Any) -> dict[str, Any]:
        who = Caller(
            user=caller.get("user", "root"),
            uid=caller.get("uid", os.getuid()),
            session=caller.get("session"),
        )
        return operations.run(self.services, op, args or {}, who)

    def sign_in(self, name: str, pin: str) -> str:
        return str(self.run("users.sign-in", {"name": name, "pin": pin})["session"])


def open_box(tmp: Path, crew_idle_lock_s: float = 300) -> Box:
    """A box whose store is a new file under `tmp`; close its store when done."""
    config = box_config(tmp, crew_idle_lock_s)
    clock = StepClock()
    store = StoreWriter.open(config.agent.db_path, keys_of(config))
    return Box(operations.Services(store, clock, config), clock)


def with_users(box: Box) -> None:
    box.run("users.add", {"name": "admin", "role": "admin", "pin": "9999"})
    admin = box.sign_in("admin", "9999")
    box.run("users.add", {"name": "王医生", "role": "doctor", "pin": "1234"}, session=admin)
    box.run("users.add", {"name": "crew-1", "role": "crew", "pin": "5678"}, session=admin)
    box.run("users.add", {"name": "kiosk", "role": "kiosk", "pin": "0000"}, session=admin)
