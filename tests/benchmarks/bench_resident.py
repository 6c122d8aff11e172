"""Resident benchmark (issue 14): N ScheduledJobs held by the operator, none firing.

What a large cluster costs the operator at rest: N ScheduledJobs (one service each, once
a day at 03:00 in their own zone, so none fires during the measurement) are created in
a namespace of their own with 32 requests in flight, then the real operator is started
on that namespace (`almanac run`, the integration tests' `Operator` helper). Reported:

- **in hand**: from launching the operator until a watch (a separate process that
  stamps each object as it arrives, tests/benchmarks/watch_stamped.py) has shown
  `status.nextScheduleTime` on every ScheduledJob; the issue's target is 20 s for 10,000;
- **RSS** of the operator (/proc) once it has them all in hand, and again after a minute
  at rest (the store, the timers and kopf's per-object state; target 200 MB);
- **idle CPU**: the operator's CPU time over that minute at rest, as a share of a core.

The bare cost of the same process, `almanac run` on an empty namespace, is measured
first, in the same run: it is the floor that N objects add to.

Run against a running control plane (`make cluster-up`), from the repository:

    .venv/bin/python -m tests.benchmarks.bench_resident [N]

(default N: 10000). A measurement, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from kubernetes_asyncio import client, config
from tests.benchmarks.bench_fleet import (
    KUBECONFIG,
    Bench,
    Watch,
    bounded,
    collection,
    install_crds,
    load,
    progress,
    wait_async,
)
from tests.benchmarks.measure_fleet import process_usage
from tests.integration.conftest import Operator
from tests.integration.objects import scheduled_job, service
from tests.kube import Kubectl

from almanac.api.names import GROUP, SCHEDULED_JOBS, VERSION

#: How long the operator is left at rest, with everything in hand, for idle CPU and RSS.
AT_REST = 60.0


def floor(workdir: Path, bench: Bench) -> tuple[float, float]:
    """RSS (MB) and seconds to serve of `almanac run` on an empty namespace."""
    namespace = bench.namespace("resident-empty", 0)
    operator = Operator(KUBECONFIG, namespace, workdir)
    launched = time.time()
    operator.start()
    served = time.time() - launched
    assert operator.proc is not None
    rss, _ = process_usage(operator.proc.pid)
    operator.stop()
    bench.delete_namespace(namespace)
    return rss, served


async def resident(n: int, workdir: Path) -> None:
    kube = Kubectl(KUBECONFIG)
    install_crds(kube)
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(KUBECONFIG), client_configuration=configuration)
    async with client.ApiClient(configuration) as api:
        bench = Bench(api, workdir)
        progress(f"the floor: the operator on an empty namespace (load average {load()})")
        floor_rss, floor_served = floor(workdir, bench)
        namespace = bench.namespace("resident", n)
        try:
            jobs = [
                scheduled_job(
                    f"job-{i:05d}",
                    "0 3 * * *",
                    timeZone="Europe/Bucharest",
                    services=[service("main")],
                )
                for i in range(n)
            ]
            progress(f"creating {n} ScheduledJobs (load average {load()})")
            await bounded(
                [
                    lambda sj=sj: bench.custom.create_namespaced_custom_object(
                        GROUP, VERSION, namespace, SCHEDULED_JOBS, sj
                    )
                    for sj in jobs
                ]
            )
            path = collection(namespace, "scheduledjobs")
            fields = ["metadata.name", "status.nextScheduleTime"]
            with Watch(workdir, path, fields) as watch:
                operator = Operator(KUBECONFIG, namespace, workdir)
                progress(f"starting the operator on {n} ScheduledJobs (load average {load()})")
                launched = time.time()
                operator.start()
                assert operator.proc is not None
                pid = operator.proc.pid
                try:

                    def next_set() -> int:
                        return len(watch.first_seen(where=lambda f: f[1] != "<none>"))

                    if not await wait_async(lambda: next_set() >= n, 900):
                        progress(f"only {next_set()} of {n} within 900 s")
                    rows = watch.first_seen(where=lambda f: f[1] != "<none>").values()
                    in_hand = max(at for at, _ in rows) - launched
                    rss_in_hand, cpu_in_hand = process_usage(pid)
                    progress(f"every nextScheduleTime set {in_hand:.1f} s after launch")
                    await asyncio.sleep(AT_REST)  # the measurement: the operator at rest
                    rss_rest, cpu_rest = process_usage(pid)
                finally:
                    operator.stop()
        finally:
            bench.delete_namespace(namespace)
    idle = (cpu_rest - cpu_in_hand) / AT_REST * 100
    print(
        f"Resident benchmark, N = {n}, load average after: {load()}\n\n"
        "| | serving after launch | every nextScheduleTime set | RSS | idle CPU |\n"
        "|---|---|---|---|---|\n"
        f"| the floor: empty namespace | {floor_served:.1f} s | | {floor_rss:.0f} MB | |\n"
        f"| {n:,} ScheduledJobs | | {in_hand:.1f} s after launch | {rss_in_hand:.0f} MB in hand,"
        f" {rss_rest:.0f} MB after {AT_REST:.0f} s at rest | {idle:.1f} % of a core |\n\n"
        f"Operator log and watches: {workdir}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("n", nargs="?", type=int, default=10000, metavar="N")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-resident-"))
    asyncio.run(resident(args.n, workdir))


if __name__ == "__main__":
    main()
