"""A private Mosquitto broker on a free loopback port, for `edge-agent demo` and tests.

The box never relies on the machine's own broker (it may already be running on 1883
with someone else's settings): it starts its own process with its own config, data
directory and port, and stops it when done. Persistence is on, so a restarted broker
keeps persistent sessions and queued QoS 1 messages like a real county broker does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


class BrokerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_mosquitto() -> str:
    for candidate in (
        shutil.which("mosquitto"),
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    raise BrokerError(
        "mosquitto is not installed: run `sudo apt-get install mosquitto` (the README's set-up"
        " command does this)"
    )


@dataclass
class LocalBroker:
    workdir: Path
    port: int = 0
    binary: str = ""
    extra_config: tuple[str, ...] = ()  # e.g. an acl_file line for authorisation tests
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> LocalBroker:
        if self._proc is not None and self._proc.poll() is None:
            return self
        self.binary = self.binary or find_mosquitto()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous true",
                    "persistence true",
                    f"persistence_location {self.workdir}/",
                    "autosave_interval 1",
                    f"log_dest file {self.workdir}/mosquitto.log",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "max_queued_messages 100000",
                    # Started as root (CI containers), mosquitto would switch to the
                    # "mosquitto" user and lose access to this private work directory.
                    *(["user root"] if os.geteuid() == 0 else []),
                    *self.extra_config,
                    "",
                ]
            ),
            encoding="utf-8",
        )
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise BrokerError(f"mosquitto exited at start (port {self.port}): {err.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on port {self.port} within {timeout_s} s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stderr:
            proc.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None
