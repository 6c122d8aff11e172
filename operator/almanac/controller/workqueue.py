"""The queue of objects to decide about: one decision at a time per object, none lost.

A watch event, a timer or a write that affects another object adds that object's key.
Keys are served concurrently, but one key never twice at once: a key added while its
decision runs is marked dirty and decided again right after, from the then newest state
in the store. A decision that fails (the API server away, a timeout) is retried after 1,
2, 4, then every 5 seconds (:meth:`TimerQueue.retry_delay`), so nothing waits for an
event that may never come, and work resumes within seconds of the API server's return.
Like the timers, a lasting failure is logged at the 1st, 2nd, 4th, 8th... time in a row.

At most ``CONCURRENCY`` decisions of each lane run at once (controller-runtime's
MaxConcurrentReconciles, per controller): at a start with 10,000 objects, or 1,000 fires
at one instant, every key is queued at once, and 10,000 decisions in flight would hold
10,000 requests' buffers in memory while only ``IN_FLIGHT`` (32) requests go out at once
anyway. The operator's lanes are its kinds: a thousand ScheduledJobs firing
at once never keep their runs (which create the Jobs) waiting for a slot.

A decision that must wait for a gate before it writes (the burst's creates go first,
:class:`~almanac.controller.controller.CreatesFirst`) returns the rest of its work
instead of waiting: the queue parks the rest as data, its key still taken (added again
meanwhile, it is decided again after the rest), and resumes the parked rests in order,
a slot's worth at a time, once the gate opens. 10,000 fires at one instant left 20,000
decisions waiting as tasks, each suspended six coroutines deep: 118,379 coroutines and
20,032 tasks alive a minute after the burst (issue 14).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import TypeAlias

from almanac.controller.timers import TimerQueue
from almanac.kube import NotLeader, transient_failure

log = logging.getLogger(__name__)


#: Decisions of one lane that may run at once (each holds at most one request in flight
#: at a time). A decision that waits for something other than its own work gives its
#: slot up meanwhile (:func:`slot_released`): with 5,000 fires at one instant, the first
#: 1,000 job decisions created their runs and then held every slot waiting to write
#: their bookkeeping behind the Job creates (CreatesFirst), and the other 4,000 runs
#: were created in a trickle (the last Job at 82 s, 8x the limit). Each decision holds
#: the bodies it decides from until its creates are answered: 1,000 per lane held about
#: 16 MB at once in a burst (tracemalloc), where 200 keep 32 requests busy.
CONCURRENCY = 200


Rest: TypeAlias = Callable[[], Awaitable["Rest | None"]]
"""What a decision leaves to do once the gate is open (and what that leaves, if the
gate closed again)."""


class _Slot:
    """The slot a decision holds, and whether it holds it right now."""

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self.semaphore = semaphore
        self.held = False


_current: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar("slot", default=None)


@contextlib.asynccontextmanager
async def slot_released() -> AsyncIterator[None]:
    """Within a decision: its slot serves another decision while this one waits (the
    block must only wait, not work), and is taken back after. Outside one: nothing."""
    slot = _current.get()
    if slot is None or not slot.held:
        yield
        return
    slot.held = False
    slot.semaphore.release()
    try:
        yield
    finally:
        await slot.semaphore.acquire()  # cancelled here: not held, not released again
        slot.held = True


class WorkQueue:
    """Calls ``work(key)`` for every key added, one call per key at a time."""

    def __init__(
        self,
        work: Callable[[Hashable], Awaitable[Rest | None]],
        timers: TimerQueue,
        concurrency: int = CONCURRENCY,
        lane: Callable[[Hashable], Hashable] = lambda key: None,
        gate: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._work = work
        self._gate = gate
        self._timers = timers
        self._concurrency = concurrency
        self._lane = lane
        self._slots: dict[Hashable, asyncio.Semaphore] = {}
        self._running: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._parked: deque[tuple[Hashable, Rest]] = deque()
        self._resumer: asyncio.Task[None] | None = None
        self.stopped = False  # leadership lost: no more work

    def add(self, key: Hashable) -> None:
        if self.stopped:
            return
        if key in self._running:
            self._dirty.add(key)
            return
        self._running.add(key)
        self._spawn(key, None)

    def _spawn(self, key: Hashable, rest: Rest | None) -> None:
        task = asyncio.create_task(self._serve(key, rest))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget(self, key: Hashable) -> None:
        """The object is gone: no retry of it, no count of its failures."""
        self._failures.pop(key, None)
        self._timers.cancel(("retry", key))

    def stop(self) -> None:
        """No more work (the operator stops): the decisions on their way are cancelled and
        the parked ones dropped, before the client they would write with is closed. What
        they left undone, a restarted operator decides again from the cluster."""
        self.stopped = True
        for key, _ in self._parked:
            self._running.discard(key)
        self._parked.clear()
        for task in self._busy():
            task.cancel()

    def __len__(self) -> int:
        return len(self._running)

    async def idle(self) -> None:
        """Returns when no decision runs or waits parked (tests, and a clean stop)."""
        while busy := self._busy():
            await asyncio.gather(*busy, return_exceptions=True)

    def _busy(self) -> list[asyncio.Task[None]]:
        """The decisions on their way, and the task that resumes the parked ones."""
        return [*self._tasks, *([self._resumer] if self._resumer else [])]

    def _park(self, key: Hashable, rest: Rest) -> None:
        """Keeps a decision's rest until the gate opens; its key stays taken."""
        self._parked.append((key, rest))
        if self._resumer is None:
            self._resumer = asyncio.create_task(self._resume())

    async def _resume(self) -> None:
        """Serves the parked rests, in the order parked, once the gate is open, with at
        most ``concurrency`` decisions on their way (a rest waits for its lane's slot)."""
        try:
            while self._parked and not self.stopped:
                if self._gate is not None:
                    await self._gate()
                while self._parked and len(self._tasks) < self._concurrency:
                    self._spawn(*self._parked.popleft())
                if self._parked:
                    await asyncio.wait(list(self._tasks), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._resumer = None

    async def _serve(self, key: Hashable, rest: Rest | None = None) -> None:
        parked = False
        try:
            while not self.stopped:
                try:
                    lane = self._lane(key)
                    if lane not in self._slots:
                        self._slots[lane] = asyncio.Semaphore(self._concurrency)
                    slot = _Slot(self._slots[lane])
                    await slot.semaphore.acquire()
                    slot.held = True
                    _current.set(slot)  # this task's own context
                    try:
                        if rest is None:
                            # Added again while waiting for a slot: this decision sees it.
                            self._dirty.discard(key)
                            rest = await self._work(key)
                        else:  # a parked rest; added again since, the key is decided after
                            rest = await rest()
                    finally:
                        if slot.held:
                            slot.semaphore.release()
                            slot.held = False
                except NotLeader:
                    self.stopped = True
                    log.warning("leadership lost: %s and all further work not done", key)
                    return
                except Exception as error:
                    self._retry_later(key, error)
                    self._dirty.discard(key)  # the retry decides from the newest state
                    return
                if rest is not None:
                    self._park(key, rest)
                    parked = True
                    return
                if self._failures.pop(key, 0):
                    log.info("%s: decided again after failures", key)
                if key not in self._dirty:
                    return
        finally:
            if not parked:
                self._running.discard(key)

    def _retry_later(self, key: Hashable, error: Exception) -> None:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = self._timers.retry_delay(failures)
        transient = transient_failure(error)
        if failures == 1 and transient is not None:  # no traceback: it says nothing more
            log.warning(
                "%s: decision failed: %s; trying again in %.0fs",
                key,
                transient,
                delay.total_seconds(),
            )
        elif failures == 1:
            log.error(
                "%s: decision failed; trying again in %.0fs",
                key,
                delay.total_seconds(),
                exc_info=error,
            )
        elif failures & (failures - 1) == 0:  # a power of two
            log.warning(
                "%s: decision failed again (%d times in a row): %s; trying again in %.0fs",
                key,
                failures,
                transient or repr(error),
                delay.total_seconds(),
            )

        async def again() -> None:
            self.add(key)

        self._timers.set(("retry", key), self._timers.now() + delay, again)
