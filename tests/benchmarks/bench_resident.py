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
- **idle CPU**: the operator's CPU time over that minute at rest, as a share of a core
  (``--rest 300``: five minutes instead, which take in the operator's resync of every
  job, and the largest RSS on the way);
- **CPU seconds** from launch until in hand, of the operator, kube-apiserver and etcd (on
  a machine of few cores the API server's share bounds the wall time), and the API
  server's requests on ScheduledJobs in that time by verb (apiserver_request_total: the
  operator's, and the watch's one WATCH);
- with ``--fire``, **N fires at one instant**: the ScheduledJobs are daily in UTC instead,
  at an instant T chosen when they are created, late enough for the measurements above
  to end before it (a note says so when they did not). After the rest, the operator is
  left running through T: the time from T until a watch on the runs' Jobs has shown all
  N, the operator's CPU milliseconds per fire over that time, and its RSS when the last
  Job was seen and again after a minute more (the issue's "RSS at most 200 MB after
  10,000 fires"). The Job controller, at its client QPS, takes most of an hour to run N
  = 10,000 Jobs to completion; the runs are measured while most are still running, which
  is when the operator holds the most (every run, every Job, their timers);
- **the limit**: after the operator has stopped, a bare async client (the operator's own
  request path, ``Kube.patch_status``, ``IN_FLIGHT`` requests at once) merge-patches
  ``status.nextScheduleTime`` of the N objects, one request each, as the operator's
  start does: its wall time and
  the CPU seconds of the client, kube-apiserver and etcd.

The bare cost of the same process, `almanac run` on an empty namespace, is measured
first, in the same run: it is the floor that N objects add to.

Run against a running control plane (`make cluster-up`), from the repository:

    .venv/bin/python -m tests.benchmarks.bench_resident [N] [--fire]

(default N: 10000). A measurement, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kubernetes_asyncio import client, config
from tests.benchmarks.bench_fleet import (
    IN_FLIGHT,
    KUBECONFIG,
    Bench,
    Watch,
    bounded,
    clock,
    collection,
    control_plane_cpu,
    install_crds,
    load,
    progress,
    request_totals,
    scrape,
    wait_async,
)
from tests.benchmarks.measure_fleet import process_usage
from tests.integration.conftest import Operator
from tests.integration.objects import scheduled_job, service
from tests.kube import Kubectl

from almanac.api.names import GROUP, LABEL_RUN, SCHEDULED_JOBS, VERSION
from almanac.kube import Kube

#: How long the operator is left at rest, with everything in hand, for idle CPU and RSS
#: (``--rest``; 300 s takes in the operator's 5-minute resync, which decides every job).
AT_REST = 60.0

#: The control plane's processes whose CPU is counted (hack/cluster.py's pid files).
SERVERS = ("kube-apiserver", "etcd")


def server_cpu() -> dict[str, float]:
    """CPU seconds so far of each of the control plane's SERVERS."""
    cpu = control_plane_cpu()
    return {name: cpu[name] for name in SERVERS}


def cpu_cells(before: dict[str, float], after: dict[str, float]) -> str:
    return ", ".join(f"{name} {after[name] - before[name]:.1f}" for name in SERVERS)


def job_requests(text: str) -> dict[str, float]:
    """apiserver_request_total on ScheduledJobs (and their status), by verb and resource."""
    totals: dict[str, float] = {}
    for (verb, resource, _), value in request_totals(text).items():
        if resource.startswith(f"{SCHEDULED_JOBS}."):
            name = f"{verb} {resource.split('/')[1] if '/' in resource else ''}".strip()
            totals[name] = totals.get(name, 0.0) + value
    return totals


def request_cells(before: dict[str, float], after: dict[str, float]) -> str:
    counts = {k: after[k] - before.get(k, 0.0) for k in after}
    return ", ".join(f"{k} {v:.0f}" for k, v in sorted(counts.items()) if v)


async def limit(bench: Bench, namespace: str, names: list[str]) -> tuple[float, float, str]:
    """What the N status patches of a start cost with nothing else around them: a bare
    client, IN_FLIGHT at once. (wall seconds, client CPU seconds, servers' CPU cells)"""
    status = {"nextScheduleTime": "2000-01-01T00:00:00Z"}
    servers = server_cpu()
    cpu, t0 = time.process_time(), time.monotonic()
    await bounded(  # through the operator's own lean request path, as bench_fleet's limit
        [
            lambda name=name: bench.lean.patch_status(SCHEDULED_JOBS, namespace, name, status)
            for name in names
        ]
    )
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu
    return wall, cpu, cpu_cells(servers, server_cpu())


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


def fire_instant(n: int, rest: float) -> float:
    """A whole minute late enough for creating N ScheduledJobs, having them in hand and
    the rest to end before it (10,000 took 25 s to create and 34 s to have in hand here:
    this leaves them 160 s)."""
    soon = time.time() + 60 + 0.01 * n + rest
    return soon - soon % 60 + 60


@dataclass
class Fired:
    """What N fires at one instant cost the operator (`--fire`)."""

    last_job: float  # seconds after T
    jobs: int
    cpu_ms: float  # operator CPU from T until the last Job, per fire
    rss_fired: float
    rss_later: float
    note: str

    def rows(self, n: int) -> str:
        seen = "" if self.jobs == n else f" (only {self.jobs} seen)"
        return (
            f"| {n:,} fires at one instant T | the last Job {self.last_job:.1f} s after T{seen} |"
            f" {self.rss_fired:.0f} MB at the last Job, {self.rss_later:.0f} MB"
            f" {AT_REST:.0f} s later | {self.cpu_ms:.1f} ms CPU per fire until the last Job"
            f"{'; ' + self.note if self.note else ''} |\n"
        )


async def fire(n: int, pid: int, at: float, jobs: Watch) -> Fired:
    """Leave the operator running through `at`, until the watch has shown N Jobs."""
    note = ""
    if time.time() > at - 2:
        note = f"the rest ended {time.time() - at + 2:.0f} s after T-2 s"
    progress(f"waiting for the fire at {clock(at)} (load average {load()})")
    await asyncio.sleep(max(0.0, at - 2 - time.time()))
    _, cpu_before = process_usage(pid)
    if not await wait_async(lambda: len(jobs.first_seen()) >= n, 900):
        progress(f"only {len(jobs.first_seen())} of {n} Jobs within 900 s")
    seen = jobs.first_seen()
    last = max((stamp for stamp, _ in seen.values()), default=at) - at
    rss_fired, cpu_fired = process_usage(pid)
    progress(f"{len(seen)} Jobs, the last {last:.1f} s after T; {AT_REST:.0f} s more")
    await asyncio.sleep(AT_REST)
    rss_later, _ = process_usage(pid)
    cpu_ms = (cpu_fired - cpu_before) * 1000 / max(1, len(seen))
    return Fired(last, len(seen), cpu_ms, rss_fired, rss_later, note)


async def at_rest(pid: int, seconds: float) -> tuple[float, float, float]:
    """The operator left alone for ``seconds``: its RSS and CPU seconds at the end, and
    its largest RSS on the way (sampled every half second)."""
    peak, end = 0.0, time.time() + seconds
    while time.time() < end:
        peak = max(peak, process_usage(pid)[0])
        await asyncio.sleep(min(0.5, max(0.0, end - time.time())))
    rss, cpu = process_usage(pid)
    return rss, cpu, max(peak, rss)


async def resident(n: int, workdir: Path, fires: bool, rest: float = AT_REST) -> None:
    kube = Kubectl(KUBECONFIG)
    install_crds(kube)
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(KUBECONFIG), client_configuration=configuration)
    lean, _ = await Kube.connect_kubeconfig(str(KUBECONFIG))
    fired: Fired | None = None
    async with client.ApiClient(configuration) as api:
        bench = Bench(api, lean, workdir)
        progress(f"the floor: the operator on an empty namespace (load average {load()})")
        floor_rss, floor_served = floor(workdir, bench)
        namespace = bench.namespace("resident", n)
        at = fire_instant(n, rest)
        if fires:  # once a day, at T
            stamp = datetime.fromtimestamp(at, UTC)
            when = {"schedule": f"{stamp.minute} {stamp.hour} * * *", "timeZone": "UTC"}
        else:  # once a day, at a time that is not now
            when = {"schedule": "0 3 * * *", "timeZone": "Europe/Bucharest"}
        try:
            jobs = [
                scheduled_job(f"job-{i:05d}", services=[service("main")], **when) for i in range(n)
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
            with contextlib.ExitStack() as stack:
                watch = stack.enter_context(Watch(workdir, path, fields))
                if fires:
                    job_path = collection(namespace, "jobs")
                    job_watch = stack.enter_context(
                        Watch(workdir, job_path, ["metadata.name"], LABEL_RUN)
                    )
                operator = Operator(KUBECONFIG, namespace, workdir)
                progress(f"starting the operator on {n} ScheduledJobs (load average {load()})")
                requests_before = job_requests(scrape(kube))
                servers_before = server_cpu()
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
                    servers_in_hand = cpu_cells(servers_before, server_cpu())
                    requests = request_cells(requests_before, job_requests(scrape(kube)))
                    progress(f"every nextScheduleTime set {in_hand:.1f} s after launch")
                    load_in_hand = load()
                    # the measurement: the operator at rest
                    rss_rest, cpu_rest, rss_peak = await at_rest(pid, rest)
                    if fires:
                        fired = await fire(n, pid, at, job_watch)
                finally:
                    operator.stop()
            progress(f"the limit: {n} status patches, {IN_FLIGHT} in flight (load {load()})")
            names = [sj["metadata"]["name"] for sj in jobs]
            limit_wall, limit_cpu, limit_servers = await limit(bench, namespace, names)
            idle = (cpu_rest - cpu_in_hand) / rest * 100
            print(
                f"Resident benchmark, N = {n}, load average after: {load()}\n\n"
                "| | serving after launch | every nextScheduleTime set | RSS | idle CPU |\n"
                "|---|---|---|---|---|\n"
                f"| the floor: empty namespace | {floor_served:.1f} s | | {floor_rss:.0f} MB | |\n"
                f"| {n:,} ScheduledJobs | | {in_hand:.1f} s after launch |"
                f" {rss_in_hand:.0f} MB in hand,"
                f" {rss_rest:.0f} MB after {rest:.0f} s at rest (at most {rss_peak:.0f} MB on"
                f" the way) | {idle:.1f} % of a core over the {rest:.0f} s |\n"
                + (fired.rows(n) if fired else "")
                + f"\nUntil in hand (load average then {load_in_hand}): CPU seconds: operator"
                f" {cpu_in_hand:.1f}, {servers_in_hand}; requests on ScheduledJobs: {requests}.\n"
                f"The limit: a bare client patching {n:,} statuses, {IN_FLIGHT} in flight:"
                f" {limit_wall:.1f} s; CPU seconds: client {limit_cpu:.1f}, {limit_servers}.\n\n"
                f"Operator log and watches: {workdir}",
                flush=True,
            )
        finally:
            bench.delete_namespace(namespace)
            await lean.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("n", nargs="?", type=int, default=10000, metavar="N")
    parser.add_argument(
        "--fire",
        action="store_true",
        help="then let all N fire at one instant and measure the operator through it",
    )
    parser.add_argument(
        "--rest",
        type=float,
        default=AT_REST,
        metavar="SECONDS",
        help=f"how long the operator is left at rest for idle CPU and RSS (default "
        f"{AT_REST:.0f}; 300 takes in its 5-minute resync of every job)",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-resident-"))
    asyncio.run(resident(args.n, workdir, args.fire, args.rest))


if __name__ == "__main__":
    main()
