"""Keeping the daemon's tasks alive: a task that fails is reported and started again.

One device's failure never stops another device, the recorder or the uplink (docs/contracts.md,
data path). Each device's transport, the uplink, the strips and the BLE advertisement watcher
run under the supervisor: an exception ends only that task, which is logged, reported
(its device's state, or the `tasks` the daemon keeps in the store's meta for
`edge-agent status`) and started again after a back-off that doubles with every
failure in a row (1 s, 2 s, 4 s ... at most a minute), so a broken device costs a line
a minute, not a busy loop. A task that ran for a while before failing starts again
from the shortest back-off. A task that returns has finished on purpose (stopping, or
nothing to do: strips switched off) and is not started again.

The recorder is not supervised: a commit that failed cannot be retried as if it had
worked (the daemon stops, docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edge_agent.control import one_line

log = logging.getLogger(__name__)

# The store's meta key where the daemon keeps its non-device tasks' last reports.
META_TASKS = "tasks"
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
# A task that ran this long before it failed was working: its next restart is quick.
STEADY_S = 60.0


@dataclass(frozen=True, slots=True)
class TaskReport:
    """What became of a supervised task, as the daemon records and shows it."""

    name: str
    state: str  # running | restarting
    restarts: int
    error: str | None = None
    retry_in_s: float | None = None
    wall_ns: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "state": self.state,
            "restarts": self.restarts,
            "error": self.error,
            "retry_in_s": self.retry_in_s,
            "wall_ns": self.wall_ns,
        }


class Supervisor:
    def __init__(
        self,
        stop: asyncio.Event,
        *,
        first_backoff_s: float = FIRST_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        steady_s: float = STEADY_S,
    ) -> None:
        self._stop = stop
        self._first = first_backoff_s
        self._max = max_backoff_s
        self._steady = steady_s
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        report: Callable[[TaskReport], None],
    ) -> asyncio.Task[None]:
        """Run `run()` until stop, again after each failure; `report` hears of each."""
        task = asyncio.create_task(self._keep(name, run, report), name=name)
        self.tasks[name] = task
        return task

    async def _keep(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        report: Callable[[TaskReport], None],
    ) -> None:
        loop = asyncio.get_running_loop()
        backoff = self._first
        restarts = 0
        while not self._stop.is_set():
            started = loop.time()
            try:
                await run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = one_line(f"{type(exc).__name__}: {exc}")
                if self._stop.is_set():
                    log.warning("task %s failed while stopping: %s", name, error)
                    return
                if loop.time() - started >= self._steady:
                    backoff = self._first
                restarts += 1
                log.error("task %s failed: %s; starting it again in %g s", name, error, backoff)
                log.debug("task %s failed", name, exc_info=exc)
                _safe_report(report, TaskReport(name, "restarting", restarts, error, backoff))
                await _sleep_unless(self._stop, backoff)
                backoff = min(self._max, backoff * 2)
                if not self._stop.is_set():
                    _safe_report(report, TaskReport(name, "running", restarts, error))
                continue
            return


def _safe_report(sink: Callable[[TaskReport], None], report: TaskReport) -> None:
    stamped = TaskReport(
        report.name, report.state, report.restarts, report.error, report.retry_in_s, time.time_ns()
    )
    try:
        sink(stamped)
    except Exception as exc:  # reporting must not turn one failure into two
        log.error("task %s: could not record its state: %s", report.name, exc)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
