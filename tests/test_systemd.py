"""systemd/ files are real: the unit runs our CLI, the daemon speaks sd_notify for real,
the config example is valid apart from the certificates a real box must be given."""

from __future__ import annotations

import configparser
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from box_keys import init_keys_in

from edge_agent import config as agent_config
from edge_agent.cli import build_parser

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"


class _UnitFile(configparser.ConfigParser):
    """A systemd unit read as INI: repeated keys allowed, key case kept."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def unit(name: str) -> configparser.ConfigParser:
    parser = _UnitFile(strict=False, interpolation=None)
    parser.read(SYSTEMD / name, encoding="utf-8")
    return parser


def test_agent_unit_is_a_notify_service_with_watchdog() -> None:
    service = unit("edge-agent.service")["Service"]
    assert service["Type"] == "notify"
    assert service["ExecStart"].endswith("edge-agent run")
    assert int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "always"
    assert "/var/lib/edge-agent" in service["ReadWritePaths"]


def test_the_control_socket_directory_is_the_units_runtime_directory() -> None:
    """The daemon serves its socket in systemd's RuntimeDirectory ($RUNTIME_DIRECTORY);
    the CLI, which systemd does not start, finds it through agent.runtime_dir."""
    service = unit("edge-agent.service")["Service"]
    raw = (SYSTEMD / "edge-agent.toml.example").read_text(encoding="utf-8")
    runtime_dir = re.search(r'^runtime_dir = "([^"]+)"', raw, re.MULTILINE)
    assert runtime_dir is not None
    assert runtime_dir.group(1) == f"/run/{service['RuntimeDirectory']}"
    assert service["RuntimeDirectoryMode"] == "0750"
    gateway = unit("edge-agent-gateway.service")["Service"]
    assert gateway["RuntimeDirectory"] == "edge-agent-gateway"


def test_unit_commands_parse_with_our_cli() -> None:
    for name in ("edge-agent.service", "edge-agent-gateway.service"):
        service = unit(name)["Service"]
        for key in ("ExecStartPre", "ExecStart"):
            if key in service:
                argv = service[key].split()[1:]  # drop the venv's edge-agent path
                args = build_parser().parse_args(argv)
                assert callable(args.func), (name, key)


def test_config_example_is_valid_except_for_site_certificates() -> None:
    raw = (SYSTEMD / "edge-agent.toml.example").read_text(encoding="utf-8")
    try:
        agent_config.parse(raw, source="edge-agent.toml.example")
    except agent_config.ConfigError as exc:
        problems = exc.problems
    else:
        problems = []
    # Only the per-box TLS files, which install.sh cannot invent, may be missing.
    assert problems, "the example names certificate files that do not exist here"
    assert all("does not exist" in p for p in problems), problems
    assert {p.split(":")[0] for p in problems} <= {
        "config uplink.ca_file",
        "config uplink.client_cert",
        "config uplink.client_key",
    }


def test_udev_rules_give_stable_names_in_dialout() -> None:
    rules = [
        line
        for line in (SYSTEMD / "99-edge-agent-serial.rules").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules
    for rule in rules:
        assert (
            'SUBSYSTEM=="tty"' in rule and 'SYMLINK+="edge/' in rule and 'GROUP="dialout"' in rule
        )
        assert re.search(r'ATTRS\{idVendor\}=="[0-9a-f]{4}"', rule)


def test_install_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(SYSTEMD / "install.sh")], check=True)


def test_daemon_reports_ready_to_systemd_and_stops_on_sigterm(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f"""
[agent]
id = "box-1"
data_dir = "{tmp_path / "data"}"
[uplink]
broker = "mqtt://127.0.0.1:9"
allow_insecure = true
""",
        encoding="utf-8",
    )
    init_keys_in(tmp_path / "data")
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(20)
    env = dict(os.environ, NOTIFY_SOCKET=str(notify_path), WATCHDOG_USEC="1000000")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(cfg)],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        messages = []
        while "READY=1" not in messages:
            messages.append(sock.recv(256).decode())
        while "WATCHDOG=1" not in messages:
            messages.append(sock.recv(256).decode())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        while "STOPPING=1" not in messages:
            messages.append(sock.recv(256).decode())
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    assert proc.stderr is not None
    assert b"Traceback" not in proc.stderr.read()
