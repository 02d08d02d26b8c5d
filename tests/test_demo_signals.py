"""`edge-agent demo` ends cleanly however it is asked to: SIGTERM, SIGINT, SIGHUP (the
terminal closed). Its private Mosquitto is stopped, its temporary directories are gone,
it exits 0; with the terminal UI its log went to a file, not over the screen. Run as the
real console script, with its temporary files in a directory of the test's own."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from waiting import wait_until

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")


def processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and int(pid) != os.getpid():
            found.append(cmdline)
    return found


def wait_for_line(path: Path, pattern: str, timeout_s: float) -> None:
    def text() -> str:
        return path.read_text(encoding="utf-8", errors="replace")

    wait_until(
        lambda: re.search(pattern, text()) is not None,
        timeout_s,
        lambda: f"{pattern!r} in {text()[-2000:]}",
        every_s=0.1,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_headless_demo_stops_cleanly_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "demo.out"
    demo = subprocess.Popen(
        [str(EDGE_AGENT), "demo", "--headless", "--duration", "300"],
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
        env=dict(os.environ, TMPDIR=str(tmp)),
    )
    try:
        wait_for_line(out, r"running 300 s", 60)
        wait_for_line(out, r"gateway: STEMI 12-lead", 60)  # the chain is really running
        assert processes_mentioning(str(tmp)), "no private broker?"
        demo.send_signal(sig)
        status = demo.wait(30)
    finally:
        if demo.poll() is None:
            demo.kill()
    text = out.read_text(encoding="utf-8", errors="replace")
    assert status == 0, text[-2000:]
    assert "stopped by a signal" in text and text.rstrip().endswith("}")
    assert "Traceback" not in text and "Event loop is closed" not in text
    assert list(tmp.iterdir()) == []  # the work dir, the ECG cart's folder: gone
    assert processes_mentioning(str(tmp)) == []  # the private Mosquitto: stopped


def test_the_terminal_ui_demo_logs_to_a_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    """On a real terminal (a pty): log lines never reach the screen, the file has them."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    master, slave = os.openpty()
    demo = subprocess.Popen(
        [str(EDGE_AGENT), "demo", "--duration", "300"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        env=dict(os.environ, TMPDIR=str(tmp), TERM="xterm-256color", COLUMNS="160", LINES="50"),
    )
    os.close(slave)
    screen = bytearray()

    def read_screen() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            screen.extend(data)

    reader = threading.Thread(target=read_screen, daemon=True)
    reader.start()
    try:

        def stemi_logged() -> bool:
            logs = list(tmp.glob("edge-agent-demo-*.log"))
            return bool(logs) and "STEMI 12-lead" in logs[0].read_text(errors="replace")

        wait_until(stemi_logged, 60, "the STEMI 12-lead in the demo's log", every_s=0.2)
        logs = list(tmp.glob("edge-agent-demo-*.log"))
        assert logs, "no log file"
        assert "生命体征".encode() in screen  # the UI is up, in Chinese
        demo.send_signal(signal.SIGTERM)
        status = demo.wait(30)
    finally:
        if demo.poll() is None:
            demo.kill()
        reader.join(5)
        os.close(master)
    drawn = bytes(screen).decode("utf-8", errors="replace")
    assert status == 0, drawn[-2000:]
    log_text = logs[0].read_text(encoding="utf-8")
    assert " INFO " in log_text and "gateway: STEMI 12-lead" in log_text
    assert " INFO " not in drawn and " WARNING " not in drawn  # nothing over the UI
    assert f"demo: log in {logs[0]}" in drawn.replace("\r\n", "\n").replace("\r", "")
    assert "Traceback" not in drawn
    assert [p.name for p in tmp.iterdir()] == [logs[0].name]  # only the log is left
    assert processes_mentioning(str(tmp)) == []
