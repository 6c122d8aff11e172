"""One timer queue for every timed wake-up of the operator.

Each ScheduledJob's next fire (and each run waiting for its scheduled time) is one entry
in a heap served by a single asyncio task, instead of one kopf timer or daemon per
object: kopf's timers have one fixed interval for all objects and put a finalizer on
each, and a task per object costs memory that grows with the number of jobs (see
docs/design.md for the figures). Setting an entry replaces the key's previous one.

The queue sleeps on the event loop but fires by the wall clock: it never sleeps more
than ``MAX_SLEEP`` at a time, so a clock step or a suspended machine delays a fire by at
most that much.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Hashable
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)

MAX_SLEEP = 30.0  # seconds: bounds the error when the wall clock moves under us
# After a callback failed: 1 s, then doubling to at most 5 s, so that a fire resumes within
# 5 s of the API server's return however long it was away.
RETRY = timedelta(seconds=1)
MAX_RETRY = timedelta(seconds=5)

Callback = Callable[[], Awaitable[None]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TimerQueue:
    """Calls callbacks at wall-clock instants, each in a task of its own."""

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock
        self._heap: list[tuple[datetime, int, Hashable]] = []
        self._entries: dict[Hashable, tuple[datetime, int, Callback]] = {}
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures: dict[Hashable, int] = {}  # failures in a row, per key
        self.last_tick: datetime | None = None  # for the liveness probe

    def __len__(self) -> int:
        return len(self._entries)

    def now(self) -> datetime:
        """The queue's clock (injected in tests)."""
        return self._clock()

    def when(self, key: Hashable) -> datetime | None:
        entry = self._entries.get(key)
        return entry[0] if entry else None

    def set(self, key: Hashable, when: datetime, callback: Callback) -> None:
        seq = next(self._seq)
        self._entries[key] = (when, seq, callback)
        heapq.heappush(self._heap, (when, seq, key))
        self._changed.set()

    def cancel(self, key: Hashable) -> None:
        self._entries.pop(key, None)  # its heap item is skipped when it surfaces
        self._failures.pop(key, None)
        if len(self._heap) > 2 * len(self._entries) + 64:  # mostly cancelled: compact
            self._heap = [item for item in self._heap if self._live(item)]
            heapq.heapify(self._heap)

    def _live(self, item: tuple[datetime, int, Hashable]) -> bool:
        entry = self._entries.get(item[2])
        return entry is not None and entry[1] == item[1]

    def _pop_due(self, now: datetime) -> list[tuple[Hashable, Callback]]:
        due = []
        while self._heap and self._heap[0][0] <= now:
            _, seq, key = heapq.heappop(self._heap)
            entry = self._entries.get(key)
            if entry is not None and entry[1] == seq:
                del self._entries[key]
                due.append((key, entry[2]))
        return due

    def _next_delay(self, now: datetime) -> float:
        while self._heap:
            when, seq, key = self._heap[0]
            entry = self._entries.get(key)
            if entry is not None and entry[1] == seq:
                return min(MAX_SLEEP, max(0.0, (when - now).total_seconds()))
            heapq.heappop(self._heap)  # stale: replaced or cancelled
        return MAX_SLEEP

    async def run(self) -> None:
        """Serves the queue until cancelled."""
        while True:
            now = self._clock()
            self.last_tick = now
            for key, callback in self._pop_due(now):
                task = asyncio.create_task(self._call(key, callback))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self._next_delay(self._clock()))

    def retry_delay(self, failures: int) -> timedelta:
        """``RETRY`` after the first failure in a row, doubling up to ``MAX_RETRY``."""
        doubled: timedelta = RETRY * 2 ** min(failures - 1, 30)
        return min(doubled, MAX_RETRY)

    async def _call(self, key: Hashable, callback: Callback) -> None:
        """Calls back; a failure (the API server unreachable for a moment) is tried again
        (:meth:`retry_delay`) unless the key was set anew meanwhile: otherwise a job whose
        fire failed would not fire again until something else woke it. The first failure
        is logged with its traceback; after that only the 2nd, 4th, 8th, ... failure in a
        row, in one line: a lasting fault writes ever more rarely, not every few seconds."""
        try:
            await callback()
        except Exception as error:
            failures = self._failures.get(key, 0) + 1
            delay = self.retry_delay(failures)
            if failures == 1:
                log.exception("timer %s failed; trying again in %.0fs", key, delay.total_seconds())
            elif failures & (failures - 1) == 0:  # a power of two
                log.warning(
                    "timer %s failed again (%d times in a row): %s; trying again in %.0fs",
                    key,
                    failures,
                    error,
                    delay.total_seconds(),
                )
            if key in self._entries:  # set anew by the callback: that is its next wake-up
                self._failures.pop(key, None)
            else:
                self._failures[key] = failures
                self.set(key, self._clock() + delay, callback)
        else:
            if self._failures.pop(key, 0):
                log.info("timer %s succeeded again", key)
