"""A change made by whoever writes a store now (docs/architecture.md, "One writer").

The running process (the box's daemon, the county gateway) holds its store's writer lock
and serves a control socket next to it: a command sends it the change. When nobody holds
the lock, the command takes it and makes the change itself, holding it while it writes.
Between the two (another command writing for a moment, a daemon starting or stopping)
it looks again until `wait_s` has passed. The request is sent only once a connection is
accepted, so nothing is done twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent import control
from edge_agent.control import OpError
from edge_agent.writer_lock import Holder, WriterLock, read_holder


@dataclass(frozen=True, slots=True)
class Route:
    """Where a change to one store goes."""

    lock: WriterLock
    store: str  # how errors name the store: "the store in /var/lib/edge-agent"
    socket: Path  # where to ask when the lock's holder names no socket of its own
    command: str  # what this process is doing, written into the lock file while it holds it
    wait_s: float
    # Put before the writer's own refusals, so the user sees who refused ("gateway reply: ").
    refused_by: str = ""


def change(
    route: Route,
    op: str,
    args: Mapping[str, Any],
    here: Callable[[], dict[str, Any]],
    *,
    session: str | None = None,
) -> dict[str, Any]:
    """`op` with `args` done by the store's writer, or by `here()` under the lock;
    `session`: a sign-in's token, sent with the request.

    OpError (one line, the exit status) when it cannot be done: the lock cannot be
    taken and nobody answers, or the writer refused it."""
    deadline = time.monotonic() + route.wait_s
    while True:
        try:
            mine = route.lock.try_acquire(
                Holder(role="cli", pid=os.getpid(), command=route.command)
            )
        except OSError as exc:
            # A lock file this user may not open is another user's running writer:
            # its socket may still take the change (the socket's group decides).
            if not route.lock.path.exists():
                raise OpError(f"{route.store}: cannot take its writer lock ({exc})") from None
            mine = False
        if mine:
            try:
                return here()
            finally:
                route.lock.release()
        holder = read_holder(route.lock.path)
        path = Path(holder.socket) if holder and holder.socket else route.socket
        try:
            return control.call(path, op, args, session=session)
        except control.NotListening:
            pass  # another command writing, or the writer starting or stopping
        except OpError as exc:
            if not route.refused_by:
                raise
            raise OpError(f"{route.refused_by}{exc}", exc.status) from None
        if time.monotonic() >= deadline:
            who = holder.describe() if holder else "another process"
            raise OpError(
                f"{op}: {route.store} is held by {who}, and nobody answers on {path};"
                " try again when it has finished"
            )
        time.sleep(0.05)
