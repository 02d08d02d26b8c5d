"""systemd's notify protocol (sd_notify(3)) without libsystemd: one datagram per state.

READY=1 once the store is open and the devices are started; WATCHDOG=1 from the main
loop (not a side thread), so a wedged event loop is what the watchdog catches.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send `state` to $NOTIFY_SOCKET; False when not running under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall(state.encode())
        except OSError:
            return False
    return True


def watchdog_interval_s() -> float | None:
    """Half the unit's WatchdogSec, as systemd recommends; None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None
