"""The key file (edge_agent.crypto.keyring): written 0600 in a 0700 folder, never
replaced by `init`, and refused in one line when missing, open to others, another
user's or not a keyring; the daemon will not start on such a file."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from box_keys import box_config
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.crypto import keyring
from edge_agent.crypto.keyring import KeyringError

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")


def test_init_writes_a_private_file_in_a_private_folder(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "keyring.json"
    keys = keyring.init(path, "intl")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["keyring.json"]  # no temp left
    loaded = keyring.load(path)
    assert loaded == keys
    assert loaded.active_id == "k1" and len(loaded.active.data_key) == 32
    assert len(loaded.mac_key) == 32 and len(loaded.active.index_key) == 32
    sm = keyring.init(tmp_path / "sm" / "keyring.json", "sm")
    assert sm.active.suite.name == "sm" and len(sm.active.data_key) == 16


def test_init_refuses_to_replace_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    first = keyring.init(path, "intl")
    before = path.read_bytes()
    with pytest.raises(KeyringError, match="exists already"):
        keyring.init(path, "sm")
    assert path.read_bytes() == before and keyring.load(path) == first


def test_rotate_adds_a_key_in_the_suite_asked_and_keeps_the_old(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    first = keyring.init(path, "intl")
    rotated = keyring.rotate(path, "sm")
    assert rotated.active_id == "k2" and rotated.active.suite.name == "sm"
    assert rotated.keys["k1"] == first.keys["k1"] and rotated.mac_key == first.mac_key
    assert keyring.load(path) == rotated
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.unlink(), "missing (run edge-agent keys init)"),
        (lambda p: p.chmod(0o640), "open to group or others (mode 0640); chmod 600 it"),
        (lambda p: p.chmod(0o604), "open to group or others (mode 0604)"),
        (lambda p: p.write_text("{not json"), "not a keyring (not JSON)"),
        (lambda p: p.write_text("[]"), "not a keyring"),
        (lambda p: p.write_bytes(b"\xff\xfe"), "not UTF-8"),
        (lambda p: p.write_text(""), "not a keyring (not JSON)"),
        (lambda p: _edit(p, active="k9"), "active: 'k9' is not one of the keys"),
        (lambda p: _edit(p, version=2), "keyring version 2"),
        (lambda p: _edit(p, mac_key="00"), "mac_key: must be 32 bytes of hex"),
        (lambda p: _edit_key(p, data_key="ab" * 16), "data_key: must be 32 bytes of hex for intl"),
        (lambda p: _edit_key(p, suite="des"), "keys[0].suite"),
        (lambda p: _edit_key(p, id="../x"), "keys[0].id"),
    ],
)
def test_a_wrong_key_file_is_one_clear_line(
    tmp_path: Path, damage: Callable[[Path], object], message: str
) -> None:
    path = tmp_path / "keys" / "keyring.json"
    keyring.init(path, "intl")
    damage(path)
    with pytest.raises(KeyringError) as caught:
        keyring.load(path)
    text = str(caught.value)
    assert message in text and str(path) in text and "\n" not in text


def test_a_key_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    keyring.init(path, "intl")
    if os.geteuid() == 0:
        os.chown(path, 4321, 4321)
        expected = "owned by uid 4321"
    else:  # as a user, another's file cannot be made: a symlink to one is refused too
        path.unlink()
        path.symlink_to("/etc/passwd")
        expected = "cannot open"
    with pytest.raises(KeyringError, match=expected):
        keyring.load(path)


def _edit(path: Path, **changes: object) -> None:
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def _edit_key(path: Path, **changes: object) -> None:
    raw = json.loads(path.read_text())
    raw["keys"][0].update(changes)
    path.write_text(json.dumps(raw))


@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_any_bytes_in_a_key_file_load_or_fail_in_one_line(data: bytes) -> None:
    # A boundary: what is in the file is whatever a disk or a person left there.
    with _private_file(data) as path:
        try:
            keys = keyring.load(path)
        except KeyringError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)
        else:  # only a whole keyring loads, and then it is one
            assert keys.active_id in keys.keys


@contextlib.contextmanager
def _private_file(data: bytes) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "keyring.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, data)
        os.close(fd)
        yield path


def _edge_agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EDGE_AGENT), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_daemon_does_not_start_without_its_key_file(tmp_path: Path) -> None:
    cfg = box_config(tmp_path)
    run = _edge_agent("run", "--config", str(cfg))
    assert run.returncode == 1
    lines = [line for line in run.stderr.splitlines() if "keys:" in line]
    assert len(lines) == 1 and "keyring.json: missing (run edge-agent keys init)" in lines[0]
    assert "Traceback" not in run.stderr


def test_the_daemon_does_not_start_on_a_key_file_open_to_others(tmp_path: Path) -> None:
    cfg = box_config(tmp_path)
    assert _edge_agent("keys", "init", "--config", str(cfg)).returncode == 0
    (tmp_path / "data" / "keys" / "keyring.json").chmod(0o644)
    run = _edge_agent("run", "--config", str(cfg))
    assert run.returncode == 1 and "open to group or others (mode 0644)" in run.stderr


def test_keys_cli_init_show_mac_and_refusals(tmp_path: Path) -> None:
    cfg = box_config(tmp_path)
    missing = _edge_agent("keys", "show-mac", "--config", str(cfg))
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: keys: ") and "missing" in missing.stderr
    made = _edge_agent("keys", "init", "--suite", "sm", "--config", str(cfg))
    assert made.returncode == 0, made.stderr
    answer = json.loads(made.stdout)
    assert answer["active"] == "k1" and answer["suite"] == "sm"
    mac = _edge_agent("keys", "show-mac", "--config", str(cfg))
    key = keyring.load(tmp_path / "data" / "keys" / "keyring.json")
    assert mac.returncode == 0 and mac.stdout.strip() == key.mac_key.hex()
    again = _edge_agent("keys", "init", "--config", str(cfg))
    assert again.returncode == 1 and again.stderr.count("\n") == 1
    assert "exists already" in again.stderr
