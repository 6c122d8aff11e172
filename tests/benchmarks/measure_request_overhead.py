"""The client's cost per API request, with aiohttp's environment lookups on and off.

aiohttp's ``trust_env`` looks up a proxy and a netrc entry for every request, each in a
worker thread; :class:`almanac.kube._ApiClient` switches it off where the environment
holds neither. This sends the same small GET N times each way, on the local control
plane, and prints the process CPU and wall time per request (median of 5 rounds).

    .venv/bin/python -m tests.benchmarks.measure_request_overhead [N]

A measurement, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
# Before the client is imported: it reads the variable then.
os.environ.setdefault("KUBECONFIG", str(REPO / ".cluster" / "kubeconfig"))

from almanac.kube import Kube  # noqa: E402


async def round_trip(kube: Kube, n: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        await kube._json("GET", "/api/v1/namespaces/default")
    return (time.process_time() - cpu) / n, (time.perf_counter() - wall) / n


async def main(n: int) -> None:
    kube = await Kube.connect()
    session = kube.api.rest_client.pool_manager
    results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    try:
        await round_trip(kube, 20)  # connections open, caches warm
        for _ in range(5):
            for trust in (True, False):
                session._trust_env = trust
                results[trust].append(await round_trip(kube, n))
    finally:
        await kube.close()
    print(f"| environment lookups | CPU per request | wall per request | ({n} GETs x 5) |")
    print("|---|---|---|---|")
    for trust, label in ((True, "on (aiohttp's trust_env)"), (False, "off (Almanac's client)")):
        cpu = statistics.median(c for c, _ in results[trust]) * 1000
        wall = statistics.median(w for _, w in results[trust]) * 1000
        print(f"| {label} | {cpu:.2f} ms | {wall:.2f} ms | |")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
