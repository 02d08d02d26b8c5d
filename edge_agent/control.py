"""The control socket: how the CLI and the UI change state while the daemon is the writer.

A Unix stream socket, one JSON object per line each way (docs/contracts.md):

    request   {"op": "alerts.ack", "args": {"id": 7}, "session": null}
    answer    {"ok": true, "result": {...}}
              {"ok": false, "error": "alerts ack 7: no such alert", "status": 1}

`status` is the exit status the CLI ends with (2: bad usage or input, 1: it failed).
The caller's OS user comes from the kernel (SO_PEERCRED), never from the request; the
`session` token is carried for the signed-in person that PIN sign-in will add, and
reaches every operation as part of its `Caller`.

The socket is a boundary like a serial port: a request line is at most MAX_LINE bytes
and must arrive within the read deadline, at most MAX_CONNECTIONS are served at once,
and whatever arrives that is not a well-formed request gets one error line (or, when
the line is unbounded or never ends, the connection is closed) and changes nothing.
The same module serves the county gateway's socket (`gateway reply`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import pwd
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024
# An answer may be long (`patients list` of a clinic's thousands of residents, `audit
# show`); the client still bounds what it reads from the socket.
MAX_ANSWER = 16 * 1024 * 1024
READ_DEADLINE_S = 10.0
MAX_CONNECTIONS = 8
BUSY_READ_S = 0.5  # how long a refused connection may take to send its request
SOCKET_NAME = "control.sock"
SOCKET_MODE = 0o660  # the service's group (systemd/edge-agent.service) may connect
# sockaddr_un.sun_path is 108 bytes on Linux, one of them the terminating NUL. A longer
# path (a deep data directory) is reached through the directory's /proc/self/fd entry.
MAX_SOCKET_PATH = 107
_MAX_ERROR = 500
_MAX_SESSION = 256

STATUS_USAGE = 2
STATUS_FAILED = 1


class OpError(Exception):
    """An operation refused or failed: one line for the user, and the exit status."""

    def __init__(self, message: str, status: int = STATUS_FAILED) -> None:
        super().__init__(one_line(message))
        self.status = status if status in (STATUS_USAGE, STATUS_FAILED) else STATUS_FAILED


class NotListening(ConnectionError):
    """Nobody answers on the socket path (no daemon, or it is starting or stopping)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks: the OS user (from the kernel), and a sign-in session token if any."""

    user: str
    uid: int | None = None
    session: str | None = None

    @classmethod
    def this_process(cls) -> Caller:
        return cls(user=user_name(os.getuid()), uid=os.getuid())


@dataclass(frozen=True, slots=True)
class Request:
    op: str
    args: Mapping[str, Any]
    session: str | None = None


Handler = Callable[[Request, Caller], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]


def one_line(text: str, limit: int = _MAX_ERROR) -> str:
    """Errors are one printable line, whatever they quote."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


# --- the line protocol -----------------------------------------------------------------


def encode_request(request: Request) -> bytes:
    body = {"op": request.op, "args": dict(request.args), "session": request.session}
    return json.dumps(body, ensure_ascii=False).encode("utf-8") + b"\n"


def parse_request(line: bytes) -> Request:
    """A request line (without its newline); OpError (usage) naming what is wrong."""
    try:
        body = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise OpError(f"request is not UTF-8 (byte {exc.start})", STATUS_USAGE) from None
    except ValueError as exc:
        raise OpError(f"request is not JSON ({exc})", STATUS_USAGE) from None
    if not isinstance(body, dict):
        raise OpError("request must be a JSON object", STATUS_USAGE)
    unknown = sorted(set(body) - {"op", "args", "session"})
    if unknown:
        raise OpError(f"request has unknown fields {unknown}", STATUS_USAGE)
    op, args, session = body.get("op"), body.get("args", {}), body.get("session")
    if not isinstance(op, str) or not op:
        raise OpError('request needs "op": the operation\'s name', STATUS_USAGE)
    if not isinstance(args, dict):
        raise OpError('request "args" must be an object', STATUS_USAGE)
    if session is not None and (not isinstance(session, str) or len(session) > _MAX_SESSION):
        raise OpError(
            f'request "session" must be a token of at most {_MAX_SESSION} characters',
            STATUS_USAGE,
        )
    return Request(op=op, args=args, session=session)


def encode_result(result: Mapping[str, Any]) -> bytes:
    return json.dumps({"ok": True, "result": dict(result)}, ensure_ascii=False).encode() + b"\n"


def encode_error(message: str, status: int) -> bytes:
    body = {"ok": False, "error": one_line(message), "status": status}
    return json.dumps(body, ensure_ascii=False).encode("utf-8") + b"\n"


def parse_answer(line: bytes) -> dict[str, Any]:
    """The result of an answer line; OpError for an error answer or a garbled one."""
    try:
        body = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise OpError("the agent's answer is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("ok"), bool):
        raise OpError("the agent's answer is not a control-socket answer")
    if body["ok"]:
        result = body.get("result")
        if not isinstance(result, dict):
            raise OpError("the agent's answer has no result")
        return result
    status = body.get("status")
    raise OpError(
        str(body.get("error") or "the agent refused it"),
        status if isinstance(status, int) else STATUS_FAILED,
    )


# --- where the socket lives ------------------------------------------------------------


def check_socket_path(path: Path) -> str | None:
    """Why `path` cannot be a Unix socket address, or None."""
    if not path.is_absolute():
        return f"{path} must be an absolute path"
    if len(os.fsencode(_short_address(path, 999))) > MAX_SOCKET_PATH:
        return f"{path}: the socket's file name is too long"
    return None


def _short_address(path: Path, dir_fd: int) -> str:
    return f"/proc/self/fd/{dir_fd}/{path.name}"


def _at(path: Path, act: Callable[[str], None]) -> None:
    """bind or connect to `path`, however long its directory's name is."""
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        act(str(path))
        return
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        act(_short_address(path, dir_fd))
    finally:
        os.close(dir_fd)


def peer_caller(sock: socket.socket, session: str | None) -> Caller:
    """The connecting process's user, from the kernel (SO_PEERCRED: pid, uid, gid)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return Caller(user=user_name(uid), uid=uid, session=session)


# --- the server ------------------------------------------------------------------------


class ControlServer:
    """Serves `handle` on a Unix socket in the event loop it is started in.

    A handler runs on that loop between other work (the daemon's group commits), so an
    operation sees and leaves the store between two commits, never in the middle of one.
    """

    def __init__(
        self,
        path: Path,
        handle: Handler,
        *,
        max_line: int = MAX_LINE,
        read_deadline_s: float = READ_DEADLINE_S,
        max_connections: int = MAX_CONNECTIONS,
        mode: int = SOCKET_MODE,
    ) -> None:
        self.path = path
        self._handle = handle
        self._max_line = max_line
        self._deadline_s = read_deadline_s
        self._max_connections = max_connections
        self._mode = mode
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.served = 0
        self.refused = 0

    async def start(self) -> None:
        problem = check_socket_path(self.path)
        if problem:
            raise OSError(f"control socket {problem}")
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        _remove_stale(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _at(self.path, sock.bind)
            os.chmod(self.path, self._mode)
            self._server = await asyncio.start_unix_server(
                self._connected, sock=sock, limit=self._max_line + 1
            )
        except BaseException:
            sock.close()
            raise
        log.info("control socket %s", self.path)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        with contextlib.suppress(OSError):
            await asyncio.wait_for(server.wait_closed(), 1.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self._max_connections:
            self.refused += 1
            # The request is read (briefly) before the answer: a client still sending
            # would otherwise meet a closed socket (EPIPE) instead of "busy".
            with contextlib.suppress(
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ConnectionError,
                TimeoutError,
            ):
                await asyncio.wait_for(reader.readuntil(b"\n"), BUSY_READ_S)
            await _answer(writer, encode_error("the agent is busy: try again", STATUS_FAILED))
            await _close(writer)
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            await _close(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        while True:
            try:
                line = await asyncio.wait_for(reader.readuntil(b"\n"), self._deadline_s)
            except asyncio.IncompleteReadError as exc:
                if exc.partial.strip():
                    await _answer(writer, encode_error("request not ended by a newline", 2))
                return
            except asyncio.LimitOverrunError:
                # The line is too long to be a request; what follows it cannot be
                # trusted to start a new one, so the connection ends here.
                await _answer(
                    writer, encode_error(f"request longer than {self._max_line} bytes", 2)
                )
                return
            except TimeoutError:
                await _answer(writer, encode_error(f"no request within {self._deadline_s:g} s", 2))
                return
            if len(line) > self._max_line + 1:
                await _answer(
                    writer, encode_error(f"request longer than {self._max_line} bytes", 2)
                )
                return
            await _answer(writer, await self._one(line.rstrip(b"\r\n"), sock))

    async def _one(self, line: bytes, sock: socket.socket | None) -> bytes:
        try:
            request = parse_request(line)
            if sock is None:
                raise OpError("cannot tell who is asking (no peer credentials)")
            caller = peer_caller(sock, request.session)
            outcome = self._handle(request, caller)
            result = await outcome if inspect.isawaitable(outcome) else outcome
        except OpError as exc:
            return encode_error(str(exc), exc.status)
        except Exception as exc:  # an operation's bug must not end the daemon
            log.exception("control: operation failed")
            return encode_error(f"failed: {type(exc).__name__}: {exc}", STATUS_FAILED)
        self.served += 1
        return encode_result(result)


def _remove_stale(path: Path) -> None:
    """A socket file left by a daemon that was killed; never anything else."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"control socket {path}: exists and is not a socket; not replacing it")
    path.unlink()


async def _answer(writer: asyncio.StreamWriter, line: bytes) -> None:
    writer.write(line)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


# --- the client ------------------------------------------------------------------------


def call(
    path: Path,
    op: str,
    args: Mapping[str, Any],
    *,
    session: str | None = None,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """One operation through the socket at `path`; its result, or OpError.

    NotListening when nobody accepts the connection: then nothing was sent, and the
    caller may look again (a daemon still starting) or do the change itself."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        try:
            _at(path, sock.connect)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NotListening(f"{path}: {exc.strerror}") from None
        except PermissionError:
            raise OpError(
                f"control socket {path}: permission denied (is this user in the service's group?)"
            ) from None
        try:
            sock.sendall(encode_request(Request(op, args, session)))
            answer = _read_line(sock, MAX_ANSWER)
        except TimeoutError:
            raise OpError(f"the agent did not answer within {timeout_s:g} s") from None
        except OSError as exc:
            raise OpError(f"control socket {path}: {exc.strerror or exc}") from None
    finally:
        sock.close()
    return parse_answer(answer)


def _read_line(sock: socket.socket, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise OpError("the agent closed the connection without answering")
        end = chunk.find(b"\n")
        if end >= 0:
            chunks.append(chunk[:end])
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise OpError("the agent's answer is too long")
