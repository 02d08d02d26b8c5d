"""The control socket as a boundary: a real Unix socket, a real store, hostile input.

The server runs in its own thread with its own event loop (as the gateway runs it);
clients are plain blocking sockets, as the CLI's are.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import socket
import sqlite3
import stat
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from box_keys import KEYS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waiting import wait_until

from edge_agent import control, operations
from edge_agent.clock import SystemClock
from edge_agent.config import from_dict
from edge_agent.model import Decoded, Frame, Reading
from edge_agent.recorder import Recorder
from edge_agent.rules.engine import ClinicalRules
from edge_agent.store import StoreWriter

CLOCK = SystemClock(boot_id="control-test")
ME = pwd.getpwuid(os.getuid()).pw_name
RESIDENT = "11010519491231002X"  # GB 11643's worked example


class Served:
    """A ControlServer with the daemon's operations over a real store, in a thread."""

    def __init__(self, tmp: Path, **server_options: Any) -> None:
        self.db = tmp / "data" / "edge-agent.sqlite3"
        self.store = StoreWriter.open(self.db, KEYS)
        config = from_dict(
            {
                "agent": {"id": "box-1", "data_dir": str(tmp / "data")},
                "uplink": {"broker": "mqtt://127.0.0.1:9", "allow_insecure": True},
            }
        )
        self.woken = 0
        services = operations.Services(self.store, CLOCK, config, self._wake)
        self.path = tmp / "c.sock"
        self.server = control.ControlServer(
            self.path, operations.handler(services), **server_options
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.server.start()
            ready.set()
            await self._stop.wait()
            await self.server.close()

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        self._thread.start()
        assert ready.wait(10)

    def _wake(self) -> None:
        self.woken += 1

    def close(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self.store.close()


def seed(store: StoreWriter) -> int:
    """A resident, an open visit and one urgent-BP alert to act on; the alert's id."""
    from edge_agent import patients

    patients.register(store, CLOCK, national_id_number=RESIDENT, name="王秀英")
    patients.start_visit(store, CLOCK, national_id_number=RESIDENT)
    decoded = Decoded(
        readings=(
            Reading("MDC_PRESS_BLD_NONINV_SYS", Decimal(200), "MDC_DIM_MMHG"),
            Reading("MDC_PRESS_BLD_NONINV_DIA", Decimal(120), "MDC_DIM_MMHG"),
        )
    )
    frame = Frame("cuff-1", "ble-bp", b"bp", CLOCK.wall_ns(), CLOCK.mono_ns(), CLOCK.boot_id)
    Recorder(store, rules=ClinicalRules()).record(frame, lambda _: decoded)
    (alert,) = store.alerts.recent()
    return alert.id


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    try:
        yield s
    finally:
        s.close()


def dump(db: Path) -> dict[str, list[str]]:
    """Every row of every table: what "the store is unchanged" compares."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(repr(r) for r in conn.execute(f"SELECT * FROM {t}")) for t in tables}
    finally:
        conn.close()


def exchange(path: Path, data: bytes, timeout_s: float = 5.0) -> list[bytes]:
    """Send raw bytes, half-close, read what comes back until the server closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed on an oversize line before we finished
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks).splitlines()


# --- the protocol -----------------------------------------------------------------------


def test_an_operation_is_done_for_the_os_user_of_the_peer(served: Served) -> None:
    alert_id = seed(served.store)
    result = control.call(served.path, "alerts.ack", {"id": alert_id})
    assert (result["id"], result["ack_user"], result["state"]) == (alert_id, ME, "acknowledged")
    log = served.store.operation_log.recent()
    assert [(o["op"], o["user"], o["uid"], o["subject"]) for o in log] == [
        ("alerts.ack", ME, os.getuid(), f"alert:{alert_id}")
    ]


def test_a_session_token_reaches_the_operation_and_is_bounded(served: Served) -> None:
    seen: list[control.Caller] = []

    def handle(request: control.Request, caller: control.Caller) -> dict[str, Any]:
        seen.append(caller)
        return {}

    served.server._handle = handle
    control.call(served.path, "ping", {}, session="pin-session-1")
    assert seen == [control.Caller(ME, os.getuid(), "pin-session-1")]
    with pytest.raises(control.OpError, match="session") as refused:
        control.call(served.path, "ping", {}, session="x" * 1000)
    assert refused.value.status == control.STATUS_USAGE


def test_errors_are_one_line_with_the_cli_exit_status(served: Served) -> None:
    with pytest.raises(control.OpError) as unknown:
        control.call(served.path, "patients.drop", {})
    assert unknown.value.status == 2 and "unknown operation" in str(unknown.value)
    with pytest.raises(control.OpError) as bad:
        control.call(served.path, "alerts.ack", {"id": "seven"})
    assert bad.value.status == 2 and "whole number" in str(bad.value)
    with pytest.raises(control.OpError) as missing:
        control.call(served.path, "patients.add", {"national_id": RESIDENT, "name": "a\nb" * 600})
    assert missing.value.status == 2 and "\n" not in str(missing.value)


def test_the_socket_is_for_the_service_group_only(served: Served) -> None:
    mode = served.path.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660


def test_a_long_line_is_refused_and_the_connection_closed(served: Served) -> None:
    before = dump(served.db)
    answer = exchange(served.path, b"{" + b" " * (control.MAX_LINE + 10) + b"}\n")
    (line,) = answer
    body = json.loads(line)
    assert body["ok"] is False and "longer than" in body["error"]
    assert dump(served.db) == before


def test_a_silent_client_is_dropped_after_the_deadline(tmp_path: Path) -> None:
    s = Served(tmp_path, read_deadline_s=0.3)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(s.path))
            line = sock.makefile("rb").readline()
        assert "no request within" in json.loads(line)["error"]
    finally:
        s.close()


def test_connections_beyond_the_limit_are_told_to_come_back(tmp_path: Path) -> None:
    s = Served(tmp_path, max_connections=2)
    idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
    try:
        for sock in idle:
            sock.connect(str(s.path))
        wait_until(lambda: len(s.server._connections) == 2, 5, "both connections held")
        with pytest.raises(control.OpError, match="busy"):
            control.call(s.path, "ping", {})
        for sock in idle:
            sock.close()
        wait_until(lambda: not s.server._connections, 5, "the connections closed")
        assert control.call(s.path, "ping", {})["agent"] == "box-1"
    finally:
        for sock in idle:
            sock.close()
        s.close()


def test_a_stale_socket_file_is_replaced_but_nothing_else(tmp_path: Path) -> None:
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(stale))  # a daemon killed without unlinking it
    server = control.ControlServer(stale, lambda r, c: {})

    async def start_and_close() -> None:
        await server.start()
        await server.close()

    asyncio.run(start_and_close())
    assert not stale.exists()
    regular = tmp_path / "not-a-socket"
    regular.write_text("data")
    with pytest.raises(OSError, match="not a socket"):
        asyncio.run(control.ControlServer(regular, lambda r, c: {}).start())
    assert regular.read_text() == "data"


def test_a_socket_deeper_than_sun_path_allows_still_works(tmp_path: Path) -> None:
    """sockaddr_un holds 107 bytes of path; a deep data directory is reached through
    its /proc/self/fd entry, for serving and for connecting."""
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 5)
    deep.mkdir(parents=True)
    s = Served(deep)
    try:
        assert len(os.fsencode(s.path)) > control.MAX_SOCKET_PATH
        assert s.path.exists() and stat.S_IMODE(s.path.stat().st_mode) == 0o660
        assert control.call(s.path, "ping", {})["agent"] == "box-1"
    finally:
        s.close()
    assert control.check_socket_path(Path("relative/c.sock")) is not None


# --- hostile input: the store is unchanged unless an operation succeeded --------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_OPS = [*sorted(operations.OPERATIONS), "ping", "", "alerts.ack;", "../x"]
_REQUESTS = st.fixed_dictionaries(
    {"op": st.sampled_from(_OPS)},
    optional={
        "args": st.dictionaries(
            st.sampled_from(
                ["id", "national_id", "name", "device", "frames", "address", "stemi", "eta", "x"]
            ),
            _JSON,
            max_size=4,
        ),
        "session": _JSON,
        "extra": _JSON,
    },
)
_LINES = st.one_of(
    st.binary(max_size=300),
    _JSON.map(lambda v: json.dumps(v).encode()),
    _REQUESTS.map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_LINES, min_size=1, max_size=3))
def test_random_input_gets_one_answer_per_line_or_a_close(
    served: Served, lines: list[bytes]
) -> None:
    if not served.store.patients.all():
        seed(served.store)
    data = b"".join(line.replace(b"\n", b" ") + b"\n" for line in lines)
    before = dump(served.db)
    logged_before = len(served.store.operation_log.recent(10_000))
    answers = exchange(served.path, data)
    assert len(answers) == len(lines)  # one answer per line, none lost or doubled
    succeeded = 0
    for answer in answers:
        body = json.loads(answer)
        assert isinstance(body["ok"], bool)
        if body["ok"]:
            assert isinstance(body["result"], dict)
            succeeded += 1
        else:
            assert body["status"] in (1, 2) and "\n" not in body["error"]
    logged = len(served.store.operation_log.recent(10_000)) - logged_before
    after = dump(served.db)
    audited = after.pop("audit"), before.pop("audit")
    heads = after.pop("meta"), before.pop("meta")
    if not succeeded:
        # Nothing changed but the audit trail: at most a refused or failed row an answer.
        assert after == before
        new_rows = served.store.audit.find(limit=100_000)[len(audited[1]) :]
        assert len(new_rows) <= len(answers)
        assert all(r.outcome in ("refused", "failed") for r in new_rows)
        assert [h for h in heads[0] if "audit.head" not in h] == [
            h for h in heads[1] if "audit.head" not in h
        ]
    else:
        # Only operations that answered ok changed anything, each logged once (a ping
        # changes nothing and is not logged).
        assert logged <= succeeded


# --- the other boundaries: the lock file's record, the gateway's reply arguments ---------


@given(raw=st.one_of(st.binary(max_size=600), _JSON.map(lambda v: json.dumps(v).encode())))
def test_a_lock_file_record_is_read_or_refused_never_trusted(raw: bytes) -> None:
    import tempfile

    from edge_agent.writer_lock import Holder, read_holder

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "writer.lock"
        path.write_bytes(raw)
        holder = read_holder(path)
    if holder is not None:
        assert isinstance(holder, Holder)
        assert isinstance(holder.role, str) and isinstance(holder.pid, int)
        assert holder.socket is None or isinstance(holder.socket, str)
        body = json.loads(raw)
        assert (holder.role, holder.pid) == (body["role"], body["pid"])


_REPLY_ARGS = st.dictionaries(
    st.sampled_from(["agent", "ref", "status", "text", "by", "extra"]),
    st.one_of(
        _JSON,
        st.sampled_from(["amb-017", "amb/017", "received", "cath-lab-ready", "", " ", "导管室"]),
    ),
    max_size=6,
)


@given(args=_REPLY_ARGS)
def test_a_reply_from_the_socket_is_checked_or_refused(args: dict[str, Any]) -> None:
    from sync.gateway.reply import STATUSES, reply_op_args

    try:
        reply = reply_op_args(args, control.Caller(ME))
    except control.OpError as exc:
        assert exc.status == control.STATUS_USAGE and "\n" not in str(exc)
        return
    sent = json.loads(reply.payload)
    assert reply.status in STATUSES and sent["status"] == reply.status
    assert sent["ref"] == args["ref"].strip() and sent["ref"]
    assert sent["text"] == args.get("text") and sent["by"] == (args.get("by") or ME)
    assert reply.agent == args["agent"] and "/" not in reply.agent and "+" not in reply.agent
