"""The box's key file: the data keys that seal personal values, their blind-index keys,
and the per-box MAC key for ACKs and down notices.

One JSON file (default `<data_dir>/keys/keyring.json`), mode 0600 in a 0700 directory,
owned by the service user:

    {"format": "edge-agent keyring", "version": 1, "active": "k2",
     "mac_key": "<64 hex>",
     "keys": [{"id": "k1", "suite": "intl", "data_key": "<hex>", "index_key": "<64 hex>",
               "created": "2026-05-01T08:00:00Z"}, ...]}

A key id is `k<N>`; `rotate` adds `k<N+1>` in the suite asked for and makes it the
active one; old keys stay, so every value sealed under them still opens (each sealed
value names its key id, edge_agent.crypto.sealed). A data key is the suite's key size
(AES-256: 32 bytes, SM4: 16 bytes, GB/T 32907-2016); an index key and the MAC key are
32 bytes (HMAC keys of the hash's output size, RFC 2104 §3).

`load` refuses, in one line each, a file that is missing, readable or writable by group
or others, owned by another user, or not a keyring of this version: never an empty one.
Writes are atomic (a temporary file in the same directory, fsync, rename; `init` by
link, which refuses an existing file even if two run at once).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.crypto.suites import Suite, suite

FORMAT = "edge-agent keyring"
VERSION = 1
INDEX_KEY_BYTES = 32
MAC_KEY_BYTES = 32
KEY_ID = re.compile(r"k[1-9][0-9]{0,8}")
MAX_FILE_BYTES = 1 << 20  # a keyring of thousands of rotations is still far below


class KeyringError(Exception):
    """The key file cannot be used: one line naming the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class DataKey:
    id: str
    suite: Suite
    data_key: bytes
    index_key: bytes
    created: str  # ISO 8601 UTC, as written


@dataclass(frozen=True, slots=True)
class Keyring:
    active_id: str
    keys: Mapping[str, DataKey]  # by id, oldest first
    mac_key: bytes

    @property
    def active(self) -> DataKey:
        return self.keys[self.active_id]

    def key(self, key_id: str) -> DataKey | None:
        return self.keys.get(key_id)

    def with_new_key(self, suite_name: str, created: str) -> Keyring:
        """This keyring with a new active key `k<N+1>` in `suite_name`."""
        s = suite(suite_name)
        number = max(int(k[1:]) for k in self.keys) + 1
        new = _new_key(f"k{number}", s, created)
        return Keyring(new.id, {**self.keys, new.id: new}, self.mac_key)


def _new_key(key_id: str, s: Suite, created: str) -> DataKey:
    return DataKey(
        key_id, s, secrets.token_bytes(s.key_bytes), secrets.token_bytes(INDEX_KEY_BYTES), created
    )


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_keyring(suite_name: str, created: str) -> Keyring:
    first = _new_key("k1", suite(suite_name), created)
    return Keyring(first.id, {first.id: first}, secrets.token_bytes(MAC_KEY_BYTES))


# --- the file ---------------------------------------------------------------------------


def as_json(keyring: Keyring) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "active": keyring.active_id,
        "mac_key": keyring.mac_key.hex(),
        "keys": [
            {
                "id": k.id,
                "suite": k.suite.name,
                "data_key": k.data_key.hex(),
                "index_key": k.index_key.hex(),
                "created": k.created,
            }
            for k in keyring.keys.values()
        ],
    }


def from_json(path: Path, text: str) -> Keyring:
    """The keyring `text` holds; KeyringError naming `path` and the first problem."""

    def bad(what: str) -> KeyringError:
        return KeyringError(f"keys: {path}: {what}")

    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise bad("not a keyring (not JSON)") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise bad('not a keyring (no format "edge-agent keyring")')
    if raw.get("version") != VERSION:
        raise bad(f"keyring version {raw.get('version')!r}: this program reads {VERSION}")
    mac_key = _hex(raw.get("mac_key"), MAC_KEY_BYTES)
    if mac_key is None:
        raise bad(f"mac_key: must be {MAC_KEY_BYTES} bytes of hex")
    entries = raw.get("keys")
    if not isinstance(entries, list) or not entries:
        raise bad("keys: must be a non-empty list")
    keys: dict[str, DataKey] = {}
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise bad(f"keys[{n}]: must be an object")
        key_id = entry.get("id")
        if not isinstance(key_id, str) or not KEY_ID.fullmatch(key_id) or key_id in keys:
            raise bad(f"keys[{n}].id: must be a new k<N>, got {key_id!r}")
        try:
            s = suite(str(entry.get("suite")))
        except ValueError as exc:
            raise bad(f"keys[{n}].suite: {exc}") from None
        data_key = _hex(entry.get("data_key"), s.key_bytes)
        index_key = _hex(entry.get("index_key"), INDEX_KEY_BYTES)
        if data_key is None:
            raise bad(f"keys[{n}].data_key: must be {s.key_bytes} bytes of hex for {s.name}")
        if index_key is None:
            raise bad(f"keys[{n}].index_key: must be {INDEX_KEY_BYTES} bytes of hex")
        created = entry.get("created")
        keys[key_id] = DataKey(key_id, s, data_key, index_key, str(created or ""))
    active = raw.get("active")
    if not isinstance(active, str) or active not in keys:
        raise bad(f"active: {active!r} is not one of the keys")
    return Keyring(active, keys, mac_key)


def _hex(value: object, size: int) -> bytes | None:
    if not isinstance(value, str) or len(value) != 2 * size:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def load(path: Path) -> Keyring:
    """The keyring in `path`; KeyringError (one line) when it is missing, open to
    others, another user's, or not a keyring."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise KeyringError(f"keys: {path}: missing (run edge-agent keys init)") from None
    except PermissionError:
        raise KeyringError(
            f"keys: {path}: not readable by this user (uid {os.geteuid()});"
            " personal data is read by the service user"
        ) from None
    except OSError as exc:
        raise KeyringError(f"keys: {path}: cannot open ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeyringError(f"keys: {path}: not a regular file")
        if info.st_uid != os.geteuid():
            raise KeyringError(
                f"keys: {path}: owned by uid {info.st_uid}, not this user (uid {os.geteuid()})"
            )
        if info.st_mode & 0o077:
            mode = stat.S_IMODE(info.st_mode)
            raise KeyringError(
                f"keys: {path}: open to group or others (mode {mode:04o}); chmod 600 it"
            )
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise KeyringError(f"keys: {path}: larger than {MAX_FILE_BYTES} bytes, not a keyring")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyringError(f"keys: {path}: not a keyring (not UTF-8 text)") from None
    return from_json(path, text)


def init(path: Path, suite_name: str, created: str | None = None) -> Keyring:
    """A new keyring (one key in `suite_name`, a MAC key) written to `path`; refuses an
    existing file (its keys open what the store holds)."""
    keyring = new_keyring(suite_name, created or now_utc())
    _write(path, keyring, replace=False)
    return keyring


def rotate(path: Path, suite_name: str, created: str | None = None) -> Keyring:
    """The keyring in `path` with a new active key in `suite_name`, written back."""
    keyring = load(path).with_new_key(suite_name, created or now_utc())
    _write(path, keyring, replace=True)
    return keyring


def _write(path: Path, keyring: Keyring, *, replace: bool) -> None:
    if not replace and (path.exists() or path.is_symlink()):
        raise KeyringError(f"keys: {path}: exists already; its keys open the store (not replaced)")
    folder = path.parent
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if stat.S_IMODE(folder.stat().st_mode) & 0o077 and folder.stat().st_uid == os.geteuid():
            os.chmod(folder, 0o700)
        tmp = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise KeyringError(f"keys: {path}: cannot write ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(as_json(keyring), f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if the path appeared meanwhile
            except FileExistsError:
                raise KeyringError(
                    f"keys: {path}: exists already; its keys open the store (not replaced)"
                ) from None
    except OSError as exc:
        raise KeyringError(f"keys: {path}: cannot write ({exc.strerror})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
