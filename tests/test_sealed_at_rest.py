"""Personal data at rest, with the real programs: `keys rotate` SIGKILLed half-way is
finished by the daemon with nothing lost; after registrations, a restart and a crash no
national id, name or phone is in any file under data_dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from box_keys import box_config, init_keys_in
from residents import Resident, residents
from waiting import wait_until

from edge_agent.crypto import keyring
from edge_agent.store import StoreWriter, open_readonly

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")


def _cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EDGE_AGENT), *args, "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _add(cfg: Path, people: list[Resident]) -> None:
    for r in people:
        done = _cli(
            cfg,
            "patients",
            "add",
            "--national-id",
            r.national_id,
            "--name",
            r.name,
            "--phone",
            r.phone,
        )
        assert done.returncode == 0, done.stderr


def _daemon(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(EDGE_AGENT), "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _key_status(cfg: Path) -> dict[str, object]:
    done = _cli(cfg, "keys", "status", "--json")
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def _socket_up(tmp_path: Path) -> bool:
    return (tmp_path / "data" / "run" / "control.sock").exists()


def test_a_rotation_killed_half_way_is_finished_by_the_daemon_losing_nothing(
    tmp_path: Path,
) -> None:
    cfg = box_config(tmp_path)
    data = tmp_path / "data"
    keys = init_keys_in(data)
    everyone = residents(2000)
    store = StoreWriter.open(data / "edge-agent.sqlite3", keys)
    with store.transaction():
        for r in everyone:
            store.patients.add(
                national_id=r.national_id,
                name=r.name,
                phone=r.phone,
                sex=None,
                birth_date=None,
                wall_ns=1,
            )
    store.close()

    # One resident per transaction, each fsync'd: killed after the first few.
    rotate = subprocess.Popen(
        [str(EDGE_AGENT), "keys", "rotate", "--batch", "1", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert rotate.stderr is not None
    line = rotate.stderr.readline()
    assert line.startswith("keys: re-sealed "), line
    os.kill(rotate.pid, signal.SIGKILL)
    rotate.wait(10)
    assert rotate.returncode == -signal.SIGKILL

    half = _key_status(cfg)
    values = half["values"]
    assert isinstance(values, dict) and half["active"] == "k2" and half["resealing"] is True
    assert values["k1"] > 0 and values["k2"] > 0 and values["k1"] + values["k2"] == 6000
    rotated = keyring.load(data / "keys" / "keyring.json")
    reader = open_readonly(data / "edge-agent.sqlite3", rotated)
    try:  # half sealed under each key, every value opens, nothing is lost
        assert [(p.national_id, p.name, p.phone) for p in reader.patients.all()] == [
            (r.national_id, r.name, r.phone) for r in everyone
        ]
    finally:
        reader.close()

    daemon = _daemon(cfg)
    try:
        wait_until(lambda: _key_status(cfg)["rows_left"] == 0, timeout_s=60)
        assert _key_status(cfg)["values"] == {"k2": 6000}
        # While it runs, a look-up by national id goes through its keys (a command as
        # the service user) and finds residents sealed by the command and by the daemon.
        for r in (everyone[0], everyone[1999]):
            shown = _cli(
                cfg, "followup", "--national-id", r.national_id, "--disease", "hypertension"
            )
            assert "not registered" not in shown.stderr, shown.stderr
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "keys: 2000 resident(s) re-sealed under key k2" in err or "re-sealed under key k2" in err
    reader = open_readonly(data / "edge-agent.sqlite3", rotated)
    try:
        assert [(p.national_id, p.name, p.phone) for p in reader.patients.all()] == [
            (r.national_id, r.name, r.phone) for r in everyone
        ]
    finally:
        reader.close()


def _plain_values_in(data: Path, count: int) -> list[tuple[str, str]]:
    """(file, value) for every resident's value found as UTF-8 bytes in a file."""
    found = []
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        content = path.read_bytes()
        for r in residents(count):
            for value in (r.national_id, r.name, r.phone):
                if value.encode("utf-8") in content:
                    found.append((path.name, value))
    return found


def test_no_national_id_name_or_phone_is_in_any_file_under_data_dir(tmp_path: Path) -> None:
    cfg = box_config(tmp_path)
    data = tmp_path / "data"
    assert _cli(cfg, "keys", "init").returncode == 0
    everyone = residents(12)
    # Some registered with no daemon running (the command writes the store itself) ...
    _add(cfg, everyone[:3])
    # ... the rest through the daemon; a visit; a clean restart; then a crash.
    daemon = _daemon(cfg)
    try:
        wait_until(lambda: _socket_up(tmp_path), timeout_s=30)
        _add(cfg, everyone[3:9])
        assert _cli(cfg, "visit", "start", "--national-id", everyone[4].national_id).returncode == 0
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)
    daemon = _daemon(cfg)
    try:
        wait_until(
            lambda: _socket_up(tmp_path) and _cli(cfg, "status").returncode == 0, timeout_s=30
        )
        _add(cfg, everyone[9:])
        time.sleep(0.5)
    finally:
        daemon.kill()
        daemon.communicate(timeout=30)
    files = {p.name for p in data.rglob("*") if p.is_file()}
    assert {"edge-agent.sqlite3", "edge-agent.sqlite3-wal"} <= files
    listed = _cli(cfg, "patients", "list")
    assert [json.loads(line)["name"] for line in listed.stdout.splitlines()] == [
        r.name for r in everyone
    ]
    # The test sees what it looks for: the names are in what `patients list` printed.
    assert everyone[0].name.encode() in listed.stdout.encode()
    assert _plain_values_in(data, 12) == []
