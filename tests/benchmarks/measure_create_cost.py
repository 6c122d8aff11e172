"""What the API server needs for a fire's creates, with no operator: the floor under
issue 14's "last Job at most 2x the bare-create time".

A fire is two creates in a row: its ScheduledJobRun, then (the run's UID in its owner
reference) the service's batch Job. The limit bench_fleet.py measures is N bare Jobs.
This measures, on the local control plane, 32 requests in flight, each phase in a
namespace of its own:

1. N bare Jobs (bench_fleet.py's limit);
2. N bare ScheduledJobRuns, as the operator writes them (no operator runs: they stay);
3. N pairs, each a run and then its Job, owned by the run (what a fire's creates are).

For each: the wall time from the first request to the last answer, and the CPU seconds
of the client, kube-apiserver and etcd.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/measure_create_cost.py [N]

A measurement, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from tests.benchmarks.bench_fleet import IN_FLIGHT, bounded, job_spec, progress
from tests.benchmarks.bench_resident import KUBECONFIG, cpu_cells, server_cpu
from tests.integration.objects import scheduled_job_run
from tests.kube import Kubectl

from almanac.api.names import API_VERSION
from almanac.kube import Created, Kube

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


async def phase(
    name: str, kubectl: Kubectl, calls: Callable[[str], list[Callable[[], Awaitable[Any]]]]
) -> str:
    namespace = f"bench-create-{uuid.uuid4().hex[:5]}"
    kubectl.run("create", "namespace", namespace)
    try:
        todo = calls(namespace)
        progress(f"{name}: {len(todo)} calls, {IN_FLIGHT} in flight")
        servers = server_cpu()
        cpu, t0 = time.process_time(), time.time()
        answered = await bounded(todo)
        wall, cpu = max(answered) - t0, time.process_time() - cpu
        return f"| {name} | {wall:.2f} s | client {cpu:.1f}, {cpu_cells(servers, server_cpu())} |"
    finally:
        kubectl.run("delete", "namespace", namespace, "--wait=false")


async def main(n: int) -> None:
    kubectl = Kubectl(KUBECONFIG)
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
    finally:
        await kube.close()
    print("\n| phase | first request to last answer | CPU seconds |\n|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("n", nargs="?", type=int, default=1000, metavar="N")
    asyncio.run(main(parser.parse_args().n))
