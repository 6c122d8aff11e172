"""How much one asyncio task per ScheduledJob costs, against one shared timer queue.

Run: .venv/bin/python tests/benchmarks/measure_timers.py [N]. Prints resident memory
growth and setup time for N waiting timers each way (figures in docs/design.md).
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from datetime import UTC, datetime, timedelta

from almanac.controller.timers import TimerQueue


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


async def tasks(n: int) -> tuple[float, float]:
    before, start = rss_mb(), time.perf_counter()

    async def wait_for_fire() -> None:
        await asyncio.sleep(3600)

    running = [asyncio.create_task(wait_for_fire()) for _ in range(n)]
    await asyncio.sleep(0.1)
    grown, took = rss_mb() - before, time.perf_counter() - start
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    return grown, took


async def queue(n: int) -> tuple[float, float]:
    before, start = rss_mb(), time.perf_counter()
    timers = TimerQueue()
    later = datetime.now(UTC) + timedelta(hours=1)

    async def fire() -> None: ...

    for i in range(n):
        timers.set(("job", str(i)), later + timedelta(seconds=i), fire)
    server = asyncio.create_task(timers.run())
    await asyncio.sleep(0.1)
    grown, took = rss_mb() - before, time.perf_counter() - start
    server.cancel()
    return grown, took


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    # Queue first: memory freed by the tasks would otherwise be reused and hide its cost.
    q_mb, q_s = asyncio.run(queue(n))
    t_mb, t_s = asyncio.run(tasks(n))
    print(
        f"{n} timers: one shared queue +{q_mb:.1f} MB in {q_s:.2f}s; "
        f"one task each +{t_mb:.1f} MB in {t_s:.2f}s"
    )


if __name__ == "__main__":
    main()
