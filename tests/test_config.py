"""Configuration: the keys docs/contracts.md names, and one clear line per problem naming
the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent import config
from edge_agent.cli import main
from edge_agent.config import ConfigError, parse

GOOD = """
[agent]
id = "amb-017"
data_dir = "/var/lib/edge-agent"
[uplink]
broker = "mqtts://county.example:8883"
allow_insecure = false
[[device]]
id = "monitor-1"
driver = "masimo-ascii"
port = "/dev/ttyUSB0"
[[device]]
id = "cuff-1"
driver = "ble-bp"
address = "AA:BB:CC:DD:EE:FF"
"""


def test_design_example_parses() -> None:
    cfg = config.parse(GOOD)
    assert cfg.agent.id == "amb-017"
    assert cfg.agent.db_path == Path("/var/lib/edge-agent/edge-agent.sqlite3")
    assert cfg.uplink.tls and cfg.uplink.port == 8883 and cfg.uplink.host == "county.example"
    assert [d.transport for d in cfg.devices] == ["serial", "ble"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # docs/contracts.md: mqtt:// only with allow_insecure = true
        (
            ("mqtts://county.example:8883", "mqtt://county.example:1883"),
            "config uplink.broker: mqtt:// needs allow_insecure = true (use mqtts:// for the county broker)",
        ),
        (('"amb-017"', '"amb/017"'), "config agent.id: 'amb/017' must be letters"),
        (
            ('"masimo-ascii"', '"masimo"'),
            "config device[0] (monitor-1).driver: 'masimo' is not a device driver",
        ),
        (
            ('"masimo-ascii"', '"ecg-holter"'),
            "config device[0] (monitor-1).driver: 'ecg-holter' is not a device driver (known: ble-bp, ",
        ),
        (
            ('port = "/dev/ttyUSB0"', ""),
            "config device[0] (monitor-1).port: driver masimo-ascii reads a serial port",
        ),
        (
            ('"AA:BB:CC:DD:EE:FF"', '"AABBCC"'),
            "config device[1] (cuff-1).address: 'AABBCC' is not a BLE address",
        ),
        (
            ("allow_insecure = false", 'allow_insecure = "no"'),
            "config uplink.allow_insecure: must be true or false",
        ),
        (
            ("[uplink]", "[uplink]\nack_timeout_s = 0"),
            "config uplink.ack_timeout_s: must be between 1 and 3600",
        ),
        (("[uplink]", '[uplink]\nbrokr = "x"'), "config uplink.brokr: unknown key (typo?)"),
        (('"cuff-1"', '"monitor-1"'), "duplicate device id"),
        (
            ("[agent]", '[agent]\ntimezone = "Mars/Olympus"'),
            "config agent.timezone: 'Mars/Olympus' is not a known time zone",
        ),
    ],
)
def test_each_problem_names_its_key(change: tuple[str, str], expected: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        config.parse(GOOD.replace(*change))
    assert any(expected in p for p in err.value.problems), err.value.problems
    assert all("\n" not in p for p in err.value.problems)


def test_missing_tables_and_bad_toml() -> None:
    with pytest.raises(config.ConfigError) as err:
        config.parse("")
    assert "config agent: missing table" in err.value.problems
    assert "config uplink: missing table" in err.value.problems
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.parse("[agent\nid=1")


def test_config_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text(GOOD, encoding="utf-8")
    assert main(["config", "check", "--config", str(good)]) == 0
    assert "ok (agent amb-017, 2 device(s)" in capsys.readouterr().out

    bad = tmp_path / "bad.toml"
    bad.write_text(
        GOOD.replace("mqtts://county.example:8883", "mqtt://county.example"), encoding="utf-8"
    )
    assert main(["config", "check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: config uplink.broker: mqtt:// needs allow_insecure = true (use mqtts:// for the county broker)"
    ]

    assert main(["config", "check", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_device_drivers_are_the_registry() -> None:
    """Config check knows exactly the registry's drivers and treats each by its transport:
    the key each needs, and a port only for carts that can send files over RS-232."""
    from device_drivers.registry import DRIVERS

    head = GOOD.split("[[device]]", maxsplit=1)[0] + '[[device]]\nid = "d"\n'

    def problems(device: str) -> list[str]:
        try:
            parse(head + device)
        except ConfigError as exc:
            return [p for p in exc.problems if "needs the Python package" not in p]
        return []

    known = ", ".join(sorted(DRIVERS))
    assert problems('driver = "nope"') == [
        f"config device[0] (d).driver: 'nope' is not a device driver (known: {known})"
    ]
    by_transport = {"serial": "port", "ble": "address", "tcp": "listen", "folder": "folder"}
    also_serial = {"ecg-scp", "ecg-aecg", "ecg-philips-xml"}
    for spec in DRIVERS.values():
        needed = [p.partition(":")[0] for p in problems(f'driver = "{spec.id}"')]
        assert needed == [f"config device[0] (d).{by_transport[spec.transport]}"]
        if spec.transport == "folder":
            by_port = problems(f'driver = "{spec.id}"\nport = "/dev/ttyUSB0"')
            assert (by_port == []) == (spec.id in also_serial)


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        (
            'id = "mllp-1"\ndriver = "hl7-mllp"',
            'config device[0] (mllp-1).listen: driver hl7-mllp listens on the network: set listen = "0.0.0.0:2575"',
        ),
        (
            'id = "mllp-1"\ndriver = "hl7-mllp"\nlisten = "2575"',
            "config device[0] (mllp-1).listen: '2575' is not host:port (e.g. 0.0.0.0:2575)",
        ),
        (
            'id = "m"\ndriver = "masimo-ascii"\nport = "/dev/ttyUSB0"\nlisten = "0.0.0.0:2575"',
            "config device[0] (m).listen: driver masimo-ascii does not listen on the network",
        ),
        (
            'id = "s"\ndriver = "scale-ascii"\nport = "/dev/ttyUSB1"\nmodel = "acme"',
            "config device[0] (s).model: 'acme' is not a scale preset (known: ",
        ),
        (
            'id = "s"\ndriver = "scale-ascii"\nport = "/dev/ttyUSB1"\npattern = "W:(\\\\d+)"',
            "config device[0] (s).pattern: line pattern 'W:(\\\\d+)' has no (?P<weight>...) group",
        ),
        (
            'id = "m"\ndriver = "masimo-ascii"\nport = "/dev/ttyUSB0"\npattern = "x"',
            "config device[0] (m).pattern: only scale-ascii devices take a line pattern",
        ),
    ],
)
def test_device_options_are_checked(device: str, expected: str) -> None:
    text = '[agent]\nid = "a"\n[uplink]\nbroker = "mqtt://localhost"\nallow_insecure = true\n'
    with pytest.raises(ConfigError) as info:
        parse(text + "[[device]]\n" + device + "\n")
    assert any(line.startswith(expected) for line in info.value.problems), info.value.problems


def test_scale_with_a_preset_or_pattern_is_accepted() -> None:
    text = '[agent]\nid = "a"\n[uplink]\nbroker = "mqtt://localhost"\nallow_insecure = true\n'
    cfg = parse(
        text
        + '[[device]]\nid = "s"\ndriver = "scale-ascii"\nport = "/dev/ttyUSB1"\nmodel = "tanita"\n'
        + '[[device]]\nid = "t"\ndriver = "scale-ascii"\nport = "/dev/ttyUSB2"\n'
        + 'pattern = "W=(?P<weight>\\\\d+\\\\.\\\\d)kg"\n'
    )
    assert [d.model for d in cfg.devices] == ["tanita", None]
    from edge_agent.devices import runtime_for

    runtime = runtime_for(cfg.devices[1])
    decoded = runtime.decoder_for(None)(b"W=65.4kg")
    assert [(r.metric, str(r.value)) for r in decoded.readings] == [
        ("MDC_MASS_BODY_ACTUAL", "65.4")
    ]


def test_security_and_users_sections() -> None:
    base = '[agent]\nid = "box-1"\n[uplink]\nbroker = "mqtts://county.example:8883"\n'
    cfg = config.parse(base)
    assert cfg.security.suite == "intl"
    assert cfg.security.key_path(Path("/d")) == Path("/d/keys/keyring.json")
    assert cfg.users.crew_idle_lock_s == 300
    cfg = config.parse(
        base
        + '[security]\nsuite = "sm"\nkey_file = "/k/ring.json"\n[users]\ncrew_idle_lock_s = 60\n'
    )
    assert (cfg.security.suite, cfg.security.key_path(Path("/d"))) == ("sm", Path("/k/ring.json"))
    assert cfg.users.crew_idle_lock_s == 60
    with pytest.raises(config.ConfigError) as info:
        config.parse(base + '[security]\nsuite = "des"\nkey_file = "rel"\n[users]\nx = 1\n')
    text = str(info.value)
    assert "security.suite: 'des' is not one of intl, sm" in text
    assert "security.key_file: 'rel' must be an absolute path" in text
    assert "users" in text and "x" in text
