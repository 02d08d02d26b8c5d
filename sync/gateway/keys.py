"""The county gateway's key file: what opens the personal values in its store.

The same file as the box's (edge_agent.crypto.keyring: JSON, mode 0600 in a 0700
folder, written atomically; `init` never replaces one), made for the gateway by
`edge-agent gateway keys init --db DB [--key-file F] [--suite intl|sm]`. Its default
place is next to the store, in a folder of its own (so the store's folder keeps the
modes the sheets need):

    <folder of the db>/keys/<db file name>.keyring.json

The gateway's data keys seal what identifies a person in its store (sync.gateway.store:
the messages as received, the patient's ID and name, the pre-arrival notices, refused
messages' bytes) and the enrolled boxes' MAC keys; its index keys make the blind index
a person is looked up by. The file's MAC key is not used by the gateway (each box's own
key signs what goes to that box).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.crypto import keyring as keyring_file
from edge_agent.crypto.keyring import Keyring, KeyringError
from edge_agent.crypto.suites import INTL

FOLDER = "keys"


class GatewayKeysError(Exception):
    """The gateway's key file cannot be used: one line naming it and what is wrong."""


def default_key_file(db_path: Path) -> Path:
    return db_path.parent / FOLDER / f"{db_path.name}.keyring.json"


def key_file_for(db_path: Path, key_file: str | Path | None) -> Path:
    """The key file `--key-file` names, else the store's default one."""
    return Path(key_file) if key_file else default_key_file(db_path)


def load(path: Path) -> Keyring:
    """The keyring in `path`; GatewayKeysError (one line) when it is missing, open to
    others, another user's, or not a keyring."""
    try:
        return keyring_file.load(path)
    except KeyringError as exc:
        if not (path.exists() or path.is_symlink()):
            raise GatewayKeysError(
                f"gateway keys: {path}: missing (run edge-agent gateway keys init --db DB)"
            ) from None
        raise GatewayKeysError(f"gateway {exc}") from None


def init(path: Path, suite_name: str = INTL) -> Keyring:
    """A new key file at `path` (refused when one is there: its keys open the store)."""
    try:
        return keyring_file.init(path, suite_name)
    except KeyringError as exc:
        raise GatewayKeysError(f"gateway {exc}") from None


def init_for(db: str, key_file: str | None, suite_name: str = INTL) -> dict[str, Any]:
    """`gateway keys init`: the key file of gateway store `db` (a path or sqlite:///
    URL) made; where it is, its suite and key id (never a key). GatewayKeysError when
    it cannot be made or one is there."""
    # Imported here: the store imports this module to load its keys.
    from sync.gateway.store import GatewayStoreError, sqlite_path

    try:
        path = key_file_for(sqlite_path(db), key_file)
    except GatewayStoreError as exc:
        raise GatewayKeysError(str(exc)) from None
    made = init(path, suite_name)
    return {"key_file": str(path), "suite": made.active.suite.name, "active": made.active_id}


def rotate(path: Path, suite_name: str) -> Keyring:
    """The key file at `path` with a new active key in `suite_name`, written back
    atomically (the old keys stay: the values sealed under them name them)."""
    try:
        return keyring_file.rotate(path, suite_name)
    except KeyringError as exc:
        raise GatewayKeysError(f"gateway {exc}") from None
