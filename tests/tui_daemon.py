"""A real daemon (`edge-agent run` over a real store, its control socket) for the Pilot
tests of the terminal UI, with users added through the socket by an admin."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from box_keys import init_keys_in
from waiting import wait_until

from edge_agent import control

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")


@dataclass(frozen=True)
class Daemon:
    db: Path
    socket: Path
    admin: str  # the admin's session token
    data: Path  # the agent's data directory (the store, its keys, the logs)


@contextmanager
def running_daemon(
    tmp: Path,
    users: Sequence[tuple[str, str, str]],
    *,
    agent_id: str = "clinic-03",
    config: str = "",
    seed: Callable[[Path], None] | None = None,
) -> Iterator[Daemon]:
    """The daemon over a new store in `tmp`, with `users` (name, role, PIN) added;
    `config`: more TOML for the agent's file; `seed(db)`: what is recorded before the
    daemon takes the store (it makes the keys). On exit it is stopped with SIGTERM, must
    exit 0, and no user's PIN is in its log."""
    cfg = tmp / "agent.toml"
    data = tmp / "agent"
    cfg.write_text(
        f'[agent]\nid = "{agent_id}"\ndata_dir = "{data}"\n'
        '[uplink]\nbroker = "mqtt://127.0.0.1:1"\nallow_insecure = true\n' + config,
        encoding="utf-8",
    )
    data.mkdir()
    if seed is None:
        init_keys_in(data)
    else:
        seed(data / "edge-agent.sqlite3")
    proc = subprocess.Popen(
        [str(EDGE_AGENT), "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    sock = data / "run" / "control.sock"
    try:
        wait_until(
            lambda: sock.exists() or proc.poll() is not None, 30, "the daemon's control socket"
        )
        assert proc.poll() is None, "the daemon exited at start"
        control.call(sock, "users.add", {"name": "admin", "role": "admin", "pin": "9999"})
        admin = control.call(sock, "users.sign-in", {"name": "admin", "pin": "9999"})["session"]
        for name, role, pin in users:
            args = {"name": name, "role": role, "pin": pin}
            control.call(sock, "users.add", args, session=admin)
        yield Daemon(data / "edge-agent.sqlite3", sock, admin, data)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    for _name, _role, pin in users:
        assert f'"{pin}"' not in err  # no PIN in the daemon's log
