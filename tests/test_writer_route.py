"""A change goes to whoever writes the store now (edge_agent.writer_route): this process
under the lock when nobody holds it, else the holder's socket; never both, never twice.
Real flocks and a real control socket (a server in a thread, as the daemon's)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from edge_agent import control, writer_route
from edge_agent.control import Caller, OpError, Request
from edge_agent.writer_lock import Holder, WriterLock


class Writer:
    """A process that holds the lock and answers on its socket (the daemon's part)."""

    def __init__(self, directory: Path, *, refuse: bool = False) -> None:
        self.lock = WriterLock(directory)
        self.socket = directory / "w.sock"
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self._refuse = refuse
        assert self.lock.try_acquire(Holder(role="daemon", pid=1, socket=str(self.socket)))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        ready = threading.Event()

        def handle(request: Request, caller: Caller) -> Mapping[str, Any]:
            if self._refuse:
                raise OpError("no such alert", control.STATUS_USAGE)
            self.seen.append((request.op, dict(request.args)))
            return {"done": "by the writer"}

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            server = control.ControlServer(self.socket, handle)
            await server.start()
            ready.set()
            await self._stop.wait()
            await server.close()

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        self._thread.start()
        assert ready.wait(10)

    def close(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self.lock.release()


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


def route(directory: Path, **changes: Any) -> writer_route.Route:
    fields: dict[str, Any] = {
        "lock": WriterLock(directory),
        "store": f"the store in {directory}",
        "socket": directory / "nobody.sock",
        "command": "alerts.ack",
        "wait_s": 0.3,
    }
    fields.update(changes)
    return writer_route.Route(**fields)


@pytest.fixture
def writer(directory: Path) -> Iterator[Writer]:
    w = Writer(directory)
    yield w
    w.close()


def test_with_nobody_writing_the_change_is_made_here_under_the_lock(directory: Path) -> None:
    held_while_here: list[bool] = []

    def here() -> dict[str, Any]:
        other = WriterLock(directory)  # another command at the same moment
        held_while_here.append(not other.try_acquire(Holder(role="cli", pid=2)))
        return {"done": "here"}

    assert writer_route.change(route(directory), "alerts.ack", {"id": 7}, here) == {"done": "here"}
    assert held_while_here == [True]
    assert WriterLock(directory).try_acquire(Holder(role="cli", pid=3))  # and released


def test_with_a_writer_running_the_change_goes_to_it_and_only_to_it(
    directory: Path, writer: Writer
) -> None:
    def here() -> dict[str, Any]:
        raise AssertionError("made here although a writer holds the store")

    result = writer_route.change(route(directory), "alerts.ack", {"id": 7}, here)
    assert result == {"done": "by the writer"}
    assert writer.seen == [("alerts.ack", {"id": 7})]


def test_the_writers_refusal_is_said_as_the_writer_said_it(directory: Path) -> None:
    refusing = Writer(directory, refuse=True)
    try:
        with pytest.raises(OpError) as plain:
            writer_route.change(route(directory), "alerts.ack", {"id": 7}, dict)
        assert str(plain.value) == "no such alert" and plain.value.status == control.STATUS_USAGE
        with pytest.raises(OpError) as named:
            writer_route.change(route(directory, refused_by="gateway reply: "), "reply", {}, dict)
        assert str(named.value) == "gateway reply: no such alert"
    finally:
        refusing.close()


def test_a_held_store_nobody_answers_for_is_one_line_after_the_wait(directory: Path) -> None:
    silent = WriterLock(directory)  # holds the lock, names no socket, serves none
    assert silent.try_acquire(Holder(role="cli", pid=4242, command="patients.add"))
    try:
        with pytest.raises(OpError) as caught:
            writer_route.change(route(directory), "alerts.ack", {"id": 7}, dict)
    finally:
        silent.release()
    message = str(caught.value)
    assert message.startswith(f"alerts.ack: the store in {directory} is held by patients.add")
    assert "(pid 4242)" in message and "nobody answers on" in message
    assert "\n" not in message and caught.value.status == control.STATUS_FAILED
