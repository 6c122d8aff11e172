"""What the API server needs for a fire's creates, with no operator: the floor under
issue 14's "last Job at most 2x the bare-create time".

A fire is two creates in a row: its ScheduledJobRun, then (the run's UID in its owner
reference) the service's batch Job. The limit bench_fleet.py measures is N bare Jobs.
This measures, on the local control plane, 32 requests in flight, each phase in a
namespace of its own:

1. N bare Jobs (bench_fleet.py's limit);
2. N bare ScheduledJobRuns, as the operator writes them (no operator runs: they stay);
3. N pairs, each a run and then its Job, owned by the run (what a fire's creates are);
4. N fires' input and output with no decisions: for each of N ScheduledJobs, the nine
   requests a single-service fire makes (its run, its Job, two status patches each of
   the job and the run, three Events), sent through the operator's own client with the
   operator's own bodies, while three watches (ScheduledJobs, runs, batch Jobs) decode every
   event those writes and the Job controller's cause, until every Job has succeeded.
   The client's CPU over that, divided by N, is what the operator's CPU per fire
   (bench_fleet.py) would be if deciding cost nothing: the floor under issue 14's
   "4 ms per fire".

For each: the wall time from the first request to the last answer, and the CPU seconds
of the client, kube-apiserver and etcd.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/measure_create_cost.py [N] [--creates-only]

A measurement, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from tests.benchmarks.bench_fleet import IN_FLIGHT, bounded, install_crds, job_spec, progress
from tests.benchmarks.bench_resident import KUBECONFIG, cpu_cells, server_cpu
from tests.integration.objects import scheduled_job, scheduled_job_run
from tests.kube import Kubectl

from almanac.api.names import API_VERSION, LABEL_RUN
from almanac.kube import Collection, Created, Kube
from almanac.rules.jobs import run_body
from almanac.rules.rundate import RunDate
from almanac.rules.runs import batch_job_body
from almanac.times import timestamp

Body = dict[str, Any]


def bare_job(name: str, owner: Body | None = None) -> Body:
    metadata: Body = {"name": name}
    if owner is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": "ScheduledJobRun",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
            }
        ]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec()}


def run(i: int) -> Body:
    body = scheduled_job_run(f"job-{i:05d}-29000000", f"job-{i:05d}")
    body["spec"]["trigger"] = "Schedule"
    return body


@contextlib.contextmanager
def scratch_namespace(kubectl: Kubectl) -> Iterator[str]:
    """A namespace of its own for one phase, deleted in the background after it."""
    namespace = f"bench-create-{uuid.uuid4().hex[:5]}"
    kubectl.run("create", "namespace", namespace)
    try:
        yield namespace
    finally:
        kubectl.run("delete", "namespace", namespace, "--wait=false")


async def phase(
    name: str, kubectl: Kubectl, calls: Callable[[str], list[Callable[[], Awaitable[Any]]]]
) -> str:
    with scratch_namespace(kubectl) as namespace:
        todo = calls(namespace)
        progress(f"{name}: {len(todo)} calls, {IN_FLIGHT} in flight")
        servers = server_cpu()
        cpu, t0 = time.process_time(), time.time()
        answered = await bounded(todo)
        wall, cpu = max(answered) - t0, time.process_time() - cpu
        return f"| {name} | {wall:.2f} s | client {cpu:.1f}, {cpu_cells(servers, server_cpu())} |"


INSTANT = datetime(2027, 1, 1, tzinfo=UTC)


async def fire(kube: Kube, job: Body) -> None:
    """One single-service fire's nine requests, as the operator makes them (bodies from
    its own rules), with no decision around them."""
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    services = job["spec"]["services"]
    body = run_body(job, f"{name}-29000000", INSTANT, "Schedule", services, time_zone="UTC")
    created = await kube.create("scheduledjobruns", namespace, body)
    assert isinstance(created, Created), created
    run, run_name = created.body, created.body["metadata"]["name"]
    batch_job = batch_job_body(run, services[0], RunDate(INSTANT, "UTC"))
    assert isinstance(await kube.create_job(namespace, batch_job), Created)
    started = timestamp(datetime.now(UTC))
    await kube.patch_status(
        "scheduledjobs",
        namespace,
        name,
        {"lastScheduleTime": timestamp(INSTANT), "active": [run_name]},
    )
    await kube.event(job, "Normal", "RunCreated", f"created run {run_name}", key=run_name)
    service = {"name": "main", "phase": "Running", "jobName": batch_job["metadata"]["name"]}
    running = {"phase": "Running", "startTime": started, "services": [service]}
    await kube.patch_status("scheduledjobruns", namespace, run_name, running)
    await kube.event(run, "Normal", "ServiceStarted", "started service main", key="main")
    done = {**running, "phase": "Succeeded", "completionTime": timestamp(datetime.now(UTC))}
    done["services"] = [{**service, "phase": "Succeeded"}]
    await kube.patch_status("scheduledjobruns", namespace, run_name, done)
    await kube.patch_status(
        "scheduledjobs",
        namespace,
        name,
        {
            "active": None,
            "lastSuccessfulTime": done["completionTime"],
            "lastRun": {"name": run_name, "phase": "Succeeded"},
        },
    )
    await kube.event(job, "Normal", "RunSucceeded", f"run {run_name} succeeded", key=run_name)


async def fires_without_decisions(n: int, kubectl: Kubectl, kube: Kube) -> str:
    """Phase 4 (the module's docstring): returns its table row."""
    watches: list[asyncio.Task[None]] = []
    with scratch_namespace(kubectl) as namespace:
        try:
            progress(f"{n} fires without decisions: creating {n} ScheduledJobs first")
            jobs: list[Body] = []

            async def make(i: int) -> None:
                created = await kube.create(
                    "scheduledjobs", namespace, scheduled_job(f"job-{i:05d}")
                )
                assert isinstance(created, Created), created
                jobs.append(created.body)

            await bounded([lambda i=i: make(i) for i in range(n)])
            events: Counter[str] = Counter()
            succeeded: set[str] = set()

            async def follow(collection: Collection) -> None:
                version = [v async for _, v in kube.list_pages(collection)][-1]
                while True:
                    async for _, body in kube.watch(collection, version):
                        version = body["metadata"]["resourceVersion"]
                        events[collection.kind] += 1
                        status = body.get("status") or {}
                        if collection.kind == "Job" and status.get("completionTime"):  # Complete
                            succeeded.add(body["metadata"]["name"])

            watches = [
                asyncio.create_task(follow(Collection(kind, version, plural, namespace, selector)))
                for kind, version, plural, selector in (
                    ("ScheduledJob", API_VERSION, "scheduledjobs", ""),
                    ("ScheduledJobRun", API_VERSION, "scheduledjobruns", ""),
                    ("Job", "batch/v1", "jobs", LABEL_RUN),
                )
            ]
            await asyncio.sleep(1)  # the watches open; what they read before is not counted
            progress(f"{n} fires without decisions: {9 * n} requests, {IN_FLIGHT} in flight")
            servers = server_cpu()
            cpu, t0 = time.process_time(), time.time()
            answered = await bounded([lambda job=job: fire(kube, job) for job in jobs])
            wall, cpu_requests = max(answered) - t0, time.process_time() - cpu
            # The servers' CPU over the requests alone: during the wait below they also
            # serve the Job controller and the earlier phases' namespace deletions.
            on_servers = cpu_cells(servers, server_cpu())
            progress(f"requests answered in {wall:.1f} s; waiting for the {n} Jobs to succeed")
            deadline = time.time() + 1800
            while len(succeeded) < n and time.time() < deadline:
                await asyncio.sleep(0.5)
            cpu_all = time.process_time() - cpu
            seen = ", ".join(f"{kind} {count / n:.1f}" for kind, count in sorted(events.items()))
            return (
                f"| {n} fires' nine requests, then their watch events until every Job succeeded "
                f"({len(succeeded)} did; watch events per fire: {seen}) | {wall:.2f} s "
                f"| client {cpu_all:.1f} (**{cpu_all * 1000 / n:.1f} ms per fire**; the requests "
                f"alone {cpu_requests * 1000 / n:.1f}); over the requests: {on_servers} |"
            )
        finally:
            for watch in watches:
                watch.cancel()


async def main(n: int, fires: bool) -> None:
    kubectl = Kubectl(KUBECONFIG)
    install_crds(kubectl)
    kube, _ = await Kube.connect_kubeconfig(str(KUBECONFIG))
    try:

        def jobs(namespace: str) -> list[Callable[[], Awaitable[Any]]]:
            return [
                lambda i=i: kube.create_job(namespace, bare_job(f"job-{i:05d}")) for i in range(n)
            ]

        def runs(namespace: str) -> list[Callable[[], Awaitable[Any]]]:
            return [
                lambda i=i: kube.create("scheduledjobruns", namespace, run(i)) for i in range(n)
            ]

        def pairs(namespace: str) -> list[Callable[[], Awaitable[Any]]]:
            async def pair(i: int) -> None:
                created = await kube.create("scheduledjobruns", namespace, run(i))
                assert isinstance(created, Created), created
                await kube.create_job(namespace, bare_job(f"job-{i:05d}-main", created.body))

            return [lambda i=i: pair(i) for i in range(n)]

        rows = [
            await phase(f"{n} bare Jobs (the limit)", kubectl, jobs),
            await phase(f"{n} bare ScheduledJobRuns", kubectl, runs),
            await phase(f"{n} pairs: a run, then its Job", kubectl, pairs),
        ]
        if fires:
            rows.append(await fires_without_decisions(n, kubectl, kube))
    finally:
        await kube.close()
    print("\n| phase | first request to last answer | CPU seconds |\n|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("n", nargs="?", type=int, default=1000, metavar="N")
    parser.add_argument(
        "--creates-only",
        action="store_true",
        help="leave phase 4 out (it waits for the Job controller, at QPS 20, to end N Jobs: "
        "about 5 minutes at 1,000)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.n, not args.creates_only))
