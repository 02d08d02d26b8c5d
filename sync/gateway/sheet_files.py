"""Where the gateway puts a 12-lead's sheet files, and how it writes them.

A path is built from two things only: an agent id that passed edge_agent.identifiers
(the topic's, which the message's MSH-4 had to match) and the gateway store's own row
id of the message:

    <sheets_dir>/<agent>/<message row id>.png and .pdf

Nothing from the message body is part of a path. (A 12-lead whose MSH-10 was
`../../../../outside/PWNED` once made the gateway write PWNED.png outside its folder;
any box could do that on its own topic and overwrite another ambulance's sheet.) Row
ids are unique in the store, so two ambulances using the same MSH-10 get two sheets.

The disk is not trusted either. The agent's folder is opened with O_NOFOLLOW (a symlink
planted in its place is refused, not followed); the sheet is written to a new file
created exclusively (O_CREAT | O_EXCL | O_NOFOLLOW) under a temporary name in that
folder, synced, then renamed to its final name. rename(2) replaces a directory entry
and never follows a symlink found there, so a symlink or file already at the path is
never opened or written through, and the ER never opens a half-written sheet.

A sheet shows the patient's name and ID, so only the gateway's user and group read
them: folders 0750, files 0640, whatever the umask (the ER's viewer runs in the
gateway's group). A folder found wider (made by an older gateway, 0755) is narrowed
when the next sheet is written into it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from edge_agent.identifiers import AGENT_ID

SUFFIXES = (".png", ".pdf")
FOLDER_MODE = 0o750
FILE_MODE = 0o640

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class SheetPathError(ValueError):
    """A sheet that must not be written where it would go; one line naming why."""


def sheet_path(sheets_dir: Path, agent: str, message_id: int, suffix: str) -> Path:
    """The sheet's path, inside `sheets_dir` whatever the arguments (else an error).

    IdentifierError for an agent id that breaks its rule; SheetPathError for a row id
    that is not a positive integer, an unknown suffix, or a path that resolves outside
    `sheets_dir` (the agent's folder replaced by a symlink to elsewhere).
    """
    AGENT_ID.check(agent)
    if isinstance(message_id, bool) or not isinstance(message_id, int) or message_id < 1:
        raise SheetPathError(f"sheet: message row id {message_id!r} is not a positive integer")
    if suffix not in SUFFIXES:
        raise SheetPathError(f"sheet: suffix {suffix!r} is not one of {', '.join(SUFFIXES)}")
    root = sheets_dir.resolve()
    folder = root / agent
    # The parts above cannot leave `root`; a symlink on disk can: the agent's folder must
    # resolve to itself. (A symlink at the file's own name is replaced, never followed:
    # write_sheet renames over it.)
    if folder.resolve() != folder:
        raise SheetPathError(f"sheet: {folder} resolves outside {root} (a symlink?)")
    return folder / f"{message_id}{suffix}"


def write_sheet(sheets_dir: Path, agent: str, message_id: int, suffix: str, data: bytes) -> Path:
    """Write one sheet file (see the module docstring for how); its path."""
    path = sheet_path(sheets_dir, agent, message_id, suffix)
    root = path.parent.parent
    root.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        _narrow(root_fd, FOLDER_MODE)
        with contextlib.suppress(FileExistsError):
            os.mkdir(agent, FOLDER_MODE, dir_fd=root_fd)
        try:
            folder_fd = os.open(agent, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=root_fd)
        except OSError as exc:
            raise SheetPathError(
                f"sheet: {root / agent} is not a plain folder ({exc.strerror})"
            ) from None
        try:
            _narrow(folder_fd, FOLDER_MODE)
            _replace(folder_fd, path.name, data)
        finally:
            os.close(folder_fd)
    finally:
        os.close(root_fd)
    return path


def _replace(folder_fd: int, name: str, data: bytes) -> None:
    temporary = f".{name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(temporary, _NEW_FILE_FLAGS, FILE_MODE, dir_fd=folder_fd)
    try:
        os.fchmod(fd, FILE_MODE)  # the umask may have taken bits we want: exactly 0640
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.rename(temporary, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=folder_fd)
        raise
    os.fsync(folder_fd)  # the rename itself survives a power cut


def _narrow(fd: int, mode: int) -> None:
    """The folder open at `fd` at exactly `mode` (ours: the gateway created it)."""
    if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
        os.fchmod(fd, mode)
