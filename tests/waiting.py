"""How a test waits for something to happen: a condition polled until a deadline.

A test that needs another task, thread or process to have done something waits for
exactly that: an event when the code under test sets one, else a condition checked
here every `every_s` until it holds, failing the test (naming what it waited for)
when `timeout_s` passes first. The deadline only bounds a failure; a passing test
waits as long as the thing takes. A sleep left in a test is time itself under test (a
timeout, an idle limit, a rate, nothing happening for a while) and says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# What the failure message says was awaited; a callable is asked at the deadline, so it
# can show the state that did not come (device states, the tail of a log).
What = str | Callable[[], str]

POLL_S = 0.05


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float = 10.0,
    what: What = "the condition",
    *,
    every_s: float = POLL_S,
) -> None:
    """Block until `condition()` holds (threads, processes, files, another store)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(timeout_s, what))
        time.sleep(every_s)


async def until(
    condition: Callable[[], bool],
    timeout_s: float = 10.0,
    what: What = "the condition",
    *,
    every_s: float = POLL_S,
) -> None:
    """Wait, without blocking the event loop, until `condition()` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(_timed_out(timeout_s, what))
        await asyncio.sleep(every_s)


def _timed_out(timeout_s: float, what: What) -> str:
    return f"timed out after {timeout_s} s waiting for {what() if callable(what) else what}"
