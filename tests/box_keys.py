"""The box's keyring in tests: a real key file where the config says (as `edge-agent
keys init` writes it), or a keyring in memory for a store opened in the test."""

from __future__ import annotations

from pathlib import Path

from edge_agent.config import Config
from edge_agent.crypto import keyring
from edge_agent.crypto.keyring import Keyring


def box_config(tmp_path: Path) -> Path:
    """A box's config file: data_dir `tmp_path/data`, a broker nobody listens on."""
    cfg = tmp_path / "edge-agent.toml"
    cfg.write_text(
        f'[agent]\nid = "box-1"\ndata_dir = "{tmp_path / "data"}"\n'
        '[uplink]\nbroker = "mqtt://127.0.0.1:9"\nallow_insecure = true\n'
    )
    return cfg


# One keyring for the tests that need keys but not a file (a store opened in-process).
KEYS: Keyring = keyring.new_keyring("intl", "2026-01-01T00:00:00Z")


def init_keys_in(data_dir: Path, suite: str = "intl") -> Keyring:
    """The key file at the default place under `data_dir` (a config without key_file),
    created unless it is there (a test that starts its daemon twice)."""
    path = data_dir / "keys" / "keyring.json"
    return keyring.load(path) if path.exists() else keyring.init(path, suite)


def keys_of(config: Config) -> Keyring:
    """`config`'s key file, created unless it is there."""
    path = config.security.key_path(config.agent.data_dir)
    return keyring.load(path) if path.exists() else keyring.init(path, config.security.suite)


def enrolled(data_dir: Path, gateway_db: Path, agent_id: str, suite: str = "intl") -> Keyring:
    """The box's key file under `data_dir` (made unless there), its MAC key enrolled at
    the gateway store `gateway_db` (through its gateway when one runs; the gateway's key
    file made unless there), as a technician does with `keys show-mac` and `gateway
    enroll`."""
    from gateway_keys import made

    from sync.gateway.enrolment import enroll

    keys = init_keys_in(data_dir, suite)
    made(gateway_db)  # the gateway's own key file: its store opens only with it
    enroll(str(gateway_db), agent_id, keys.mac_key.hex(), suite)
    return keys
