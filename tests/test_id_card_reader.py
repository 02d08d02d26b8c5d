"""The kiosk's daemon reads its own ID-card reader (edge_agent/id_card_reader.py): a pty
pair plays the reader's security module, answering the daemon's commands with the
frames the public sources print (tests/id_card_bytes.py, never made by our encoder);
`edge-agent run` is a real process with a simulated oximeter on another pty; the
kiosk's screen asks over the real control socket.

A card placed opens a session and is audited, the card taken off ends it, the reader
pulled out (its pty closed) leaves the oximeter recording and the reader loop trying
again, and a reader plugged back in signs the card in again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import id_card_bytes as b
import pytest
from box_keys import init_keys_in
from operated_box import RESIDENT, open_box
from waiting import until, wait_until

from device_drivers.simulators.pty import open_pty
from edge_agent import control, id_card_reader, operations
from edge_agent.config import Config, load
from edge_agent.kiosk_card import CardDesk
from edge_agent.store import open_readonly

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")
# Answers of the module that the public sources print the statuses of (GA/T 467 §7).
SELECT_FAILED = b.hx("AA AA AA 96 69 00 04 00 00 81 85")
READ_FAILED = b.hx("AA AA AA 96 69 00 04 00 00 41 45")
BAD_COMMAND = b.hx("AA AA AA 96 69 00 04 00 00 21 25")
COMMAND_BYTES = 10  # every command the daemon sends: preamble, 00 03, CMD, Para, CHK_SUM

_OXIMETER = """
import asyncio, sys
from device_drivers.simulators import masimo
asyncio.run(masimo.run(int(sys.argv[1]), model="rad-8", rate_hz=10, seed=5))
"""


class SimulatedSam:
    """A reader's security module on a pty reached through a symlink (the udev name):
    it answers find, select and read for the card lying on it (`card`: its 256 bytes of
    text, None for none). `unplug()` closes its end, as a pulled USB reader vanishes.
    `mode`: "ok"; "garbled" (a read answer whose checksum is wrong); "silent" (it reads
    the commands and answers nothing, as a module that hung)."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.card: bytes | None = None
        self.mode = "ok"
        self.commands: list[bytes] = []
        self._master: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.plug()

    def plug(self) -> None:
        master, slave = open_pty()
        tmp = self.link.with_suffix(".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(slave)
        tmp.replace(self.link)
        self._master, self._stop = master, threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(master, self._stop))
        self._thread.start()

    def unplug(self) -> None:
        assert self._thread is not None and self._master is not None
        self._stop.set()
        self._thread.join(10)
        os.close(self._master)
        self._master = None
        self.link.unlink(missing_ok=True)

    def close(self) -> None:
        if self._master is not None:
            self.unplug()

    def _answer(self, command: bytes) -> bytes:
        card = self.card
        if command == b.FIND:
            return b.NO_CARD if card is None else b.FOUND
        if command == b.SELECT:
            return SELECT_FAILED if card is None else b.SELECTED
        if command == b.READ:
            if card is None:
                return READ_FAILED
            answer = b.read_answer(card)
            return answer[:-1] + bytes([answer[-1] ^ 1]) if self.mode == "garbled" else answer
        return BAD_COMMAND

    def _serve(self, master: int, stop: threading.Event) -> None:
        pending = b""
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                pending += os.read(master, 4096)
            except OSError:  # EIO: nobody holds the slave open (the daemon reopening)
                stop.wait(0.05)
                continue
            start = pending.find(b.FIND[:5])
            pending = pending[start:] if start >= 0 else b""
            while len(pending) >= COMMAND_BYTES:
                command, pending = pending[:COMMAND_BYTES], pending[COMMAND_BYTES:]
                self.commands.append(command)
                if self.mode == "silent":
                    continue
                with contextlib.suppress(OSError):
                    os.write(master, self._answer(command))


class Oximeter:
    """A simulated Rad-8 in its own process on a pty: the other device."""

    def __init__(self, link: Path) -> None:
        master, slave = open_pty()
        link.symlink_to(slave)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _OXIMETER, str(master)], pass_fds=(master,)
        )
        os.close(master)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def kiosk_config(tmp_path: Path) -> Config:
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(
        f"""
[agent]
id = "hut-3"
role = "kiosk"
data_dir = "{tmp_path / "agent"}"
[uplink]
broker = "mqtt://127.0.0.1:9"
allow_insecure = true
[store]
commit_interval_ms = 50
[kiosk]
id_card_reader = "{tmp_path / "ttySAM"}"
id_card_baud = 115200
[[device]]
id = "spo2-1"
driver = "masimo-ascii"
port = "{tmp_path / "ttySPO2"}"
""",
        encoding="utf-8",
    )
    init_keys_in(tmp_path / "agent")
    return load(cfg)


def set_up_the_box(config: Config) -> None:
    """What the technician does before the kiosk opens (no daemon yet: the commands
    write the store themselves): an admin, the kiosk's screen account, a resident who
    consented."""
    perform = operations.perform
    perform(config, operations.AddUser(name="admin", role="admin", pin="9999"))
    admin = ("admin", "9999")
    perform(config, operations.AddUser(name="kiosk", role="kiosk", pin="0000"), as_user=admin)
    perform(config, operations.AddPatient(national_id=RESIDENT, name="张三"), as_user=admin)
    perform(config, operations.GiveConsent(national_id=RESIDENT, pin="2468"), as_user=admin)


class Screen:
    """The kiosk's screen on the control socket, signed in with its box account."""

    def __init__(self, config: Config) -> None:
        self.socket = operations.socket_path(config, environ={})
        self.session = ""

    def ask(self, op: str, args: dict[str, Any] | None = None, session: str = "") -> dict[str, Any]:
        return control.call(self.socket, op, args or {}, session=session or self.session)

    def up(self) -> bool:
        try:
            self.session = str(
                self.ask("users.sign-in", {"name": "kiosk", "pin": "0000"})["session"]
            )
        except (control.NotListening, control.OpError):
            return False
        return True

    def card(self) -> dict[str, Any]:
        return self.ask("kiosk.card-session")


def frames(config: Config) -> int:
    store = open_readonly(config.agent.db_path)
    try:
        return sum(d["frames"] for d in store.devices.all() if d["id"] == "spo2-1")
    finally:
        store.close()


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Config, SimulatedSam, Oximeter]]:
    config = kiosk_config(tmp_path)
    set_up_the_box(config)
    sam = SimulatedSam(tmp_path / "ttySAM")
    oximeter = Oximeter(tmp_path / "ttySPO2")
    yield config, sam, oximeter
    sam.close()
    oximeter.close()


def test_the_daemon_signs_a_card_in_ends_it_when_taken_off_and_outlives_its_reader(
    tmp_path: Path, parts: tuple[Config, SimulatedSam, Oximeter]
) -> None:
    config, sam, _oximeter = parts
    log = tmp_path / "agent.log"
    daemon = subprocess.Popen(
        [str(EDGE_AGENT), "run", "--config", str(tmp_path / "kiosk.toml")],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    screen = Screen(config)
    handed: list[dict[str, Any]] = []

    def signed_in(placed: int) -> bool:
        seen = screen.card()
        if seen["session"] is not None:
            handed.append(seen)
        return bool(seen["card"] == "signed-in" and seen["placed"] == placed)

    try:
        wait_until(screen.up, 30, "the daemon's control socket")
        wait_until(lambda: screen.card()["reader"] == "connected", 15, "the reader connected")
        assert screen.card()["card"] == "none"
        wait_until(lambda: b.FIND in sam.commands, 10, "the daemon polling the reader")

        sam.card = b.TEXT  # the resident lays their card on the reader
        wait_until(lambda: signed_in(1), 15, "the card signed in")
        (first,) = handed
        resident = first["user"]
        assert str(resident).startswith("resident:") and first["idle_lock_s"] == 120.0
        token = str(first["session"])
        assert screen.ask("users.session", session=token)["locked"] is False
        shown = screen.ask("consent.show", {"national_id": RESIDENT}, session=token)
        assert f"resident:{shown['patient']}" == resident
        assert {b.FIND, b.SELECT, b.READ} <= set(sam.commands)

        sam.card = None  # taken off
        wait_until(
            lambda: screen.ask("users.session", session=token)["locked"], 15, "the session ended"
        )
        assert screen.card()["card"] == "none"

        before = frames(config)
        sam.unplug()  # the reader pulled out: its pty's master closes
        wait_until(
            lambda: str(screen.card()["reader"]).startswith("disconnected"), 15, "reader gone"
        )
        wait_until(lambda: frames(config) > before + 10, 20, "the oximeter recorded on")
        assert daemon.poll() is None

        sam.card = b.TEXT
        sam.plug()  # plugged back in at the same udev name, the card still on it
        wait_until(lambda: signed_in(2), 20, "the card signed in again")
        assert len(handed) == 2 and handed[1]["session"] != token
    finally:
        daemon.send_signal(signal.SIGTERM)
        status = daemon.wait(20)
    assert status == 0

    admin = ("admin", "9999")
    rows = operations.perform(config, operations.ShowAudit(user=str(resident)), as_user=admin)
    trail = [(r["action"], r["op"], r["outcome"], r["reason"]) for r in rows["rows"]]
    assert trail[:2] == [
        ("sign-in", "kiosk.card", "ok", None),
        ("read", "consent.show", "ok", None),
    ]
    assert ("sign-out", "kiosk.card", "ok", "the card was taken off the reader") in trail
    assert trail.count(("sign-in", "kiosk.card", "ok", None)) == 2
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in text
    assert "ID card reader" in text and "device gone" in text  # one line, then retried
    assert RESIDENT not in text and "张三" not in text


# --- a reader that misbehaves, with the loop in this process ------------------------------


async def test_a_garbled_or_silent_reader_is_one_line_and_is_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = open_box(tmp_path)
    desk = CardDesk(box.store, box.clock, box.services.config)
    sam = SimulatedSam(tmp_path / "ttySAM")
    stop = asyncio.Event()
    loop = asyncio.create_task(id_card_reader.run(str(sam.link), 115200, desk, stop))
    try:
        await until(lambda: desk.reader == "connected", 10, "the reader connected")
        sam.mode, sam.card = "garbled", b.TEXT
        reads = sam.commands.count(b.READ)
        await until(lambda: sam.commands.count(b.READ) >= reads + 3, 10, "three garbled reads")
        checksums = [r for r in caplog.records if "checksum does not match" in r.getMessage()]
        assert len(checksums) == 1  # one line, however often it comes
        assert desk.view("kiosk").answer["card"] == "none"  # nothing read: nobody signed in
        sam.mode = "silent"  # a module that hung: the port is closed and opened again
        await until(lambda: desk.reader.startswith("disconnected"), 15, "the silent reader")
        assert "did not answer 3 polls in a row" in desk.reader
        sam.mode = "ok"
        await until(lambda: desk.reader == "connected", 10, "the reader reopened")
        # read whole now (and refused: nobody is registered on this box)
        await until(lambda: desk.view("kiosk").answer["card"] == "refused", 10, "the card read")
    finally:
        stop.set()
        await asyncio.wait_for(loop, 10)
        sam.close()
        box.store.close()
    assert loop.result() is None
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert RESIDENT not in said and "张三" not in said
