"""How long the admission webhook takes to answer a Calendar edit with N jobs referring.

A Calendar edit is reviewed against every ScheduledJob that refers to it (would the
edit make one never fire again?), and the API server waits only ``timeoutSeconds`` for
the answer (the chart's 5 s); with ``failurePolicy: Fail`` a late answer refuses the
edit. This creates N ScheduledJobs in a namespace of their own, each referring to one
Calendar (Romania's public holidays, weekends and 24 dated holidays, as a bank's would
be), starts the real operator with its webhook, registers the webhook for Calendars
with the chart's wait, waits until the operator has decided every job, and then applies
an edit of the Calendar (one more holiday) ``--rounds`` times with kubectl. Reported: the
wall time of each ``kubectl apply`` (the limit beside it: the same apply with no webhook
registered), and what kubectl printed as warnings.

Run against a running control plane (`make cluster-up`), from the repository:

    .venv/bin/python -m tests.benchmarks.measure_calendar_review [N] [--rounds R]

(default N: 10000). A measurement, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config
from tests.benchmarks.bench_fleet import KUBECONFIG, Bench, bounded, install_crds, load, progress
from tests.benchmarks.measure_fleet import process_usage
from tests.integration.conftest import Operator, register
from tests.integration.objects import calendar, scheduled_job
from tests.kube import Kubectl, KubectlError, wait_until

from almanac.api.names import GROUP, SCHEDULED_JOBS, VERSION
from almanac.kube import Kube
from hack.ports import free_port

#: The chart's ``webhook.timeoutSeconds``.
TIMEOUT_SECONDS = 5

HOLIDAYS = [f"{day:02d}.{month:02d}.2027" for month in range(1, 13) for day in (2, 16)]


def bank(extra: int) -> dict[str, Any]:
    """The Calendar, with ``extra`` more holidays in 2028 (each round's edit adds one)."""
    added = [f"{1 + d:02d}.03.2028" for d in range(extra)]
    return calendar(
        "bank",
        weekly=["Saturday", "Sunday"],
        holiday=HOLIDAYS + added,
        holidays=[{"country": "RO"}],
    )


def timed_apply(kube: Kubectl, body: dict[str, Any]) -> tuple[float, str]:
    """Seconds of one ``kubectl apply``, and its warnings or its refusal."""
    t0 = time.monotonic()
    try:
        said = kube.apply(body).stderr.strip()
    except KubectlError as error:
        said = f"REFUSED: {str(error).splitlines()[-1]}"
    return time.monotonic() - t0, said


async def measure(n: int, rounds: int, workdir: Path) -> None:
    kube = Kubectl(KUBECONFIG)
    install_crds(kube)
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(KUBECONFIG), client_configuration=configuration)
    lean, _ = await Kube.connect_kubeconfig(str(KUBECONFIG))
    async with client.ApiClient(configuration) as api:
        bench = Bench(api, lean, workdir)
        namespace = bench.namespace("calendar-review", n)
        k = kube.in_namespace(namespace)
        operator: Operator | None = None
        hook = f"almanac-review-{namespace}"
        try:
            k.apply(bank(0))
            refs = [{"name": "bank"}]
            progress(f"creating {n} ScheduledJobs (load average {load()})")
            await bounded(
                [
                    lambda i=i: bench.custom.create_namespaced_custom_object(
                        GROUP,
                        VERSION,
                        namespace,
                        SCHEDULED_JOBS,
                        scheduled_job(
                            f"job-{i:05d}",
                            f"{i % 60} {i % 24} * * *",
                            timeZone="Europe/Bucharest",
                            calendarRefs=refs,
                        ),
                    )
                    for i in range(n)
                ]
            )
            limit = [timed_apply(k, bank(r + 1))[0] for r in range(rounds)]
            listed = []
            for _ in range(rounds):
                t0 = time.monotonic()
                await lean.list_objects(SCHEDULED_JOBS, namespace)
                listed.append(time.monotonic() - t0)
            port = free_port()
            pki = KUBECONFIG.parent / "pki"
            operator = Operator(
                KUBECONFIG,
                namespace,
                workdir,
                args=("--webhook-port", str(port), "--webhook-cert-dir", str(pki / "webhook")),
            )
            progress(f"starting the operator and waiting for {n} jobs decided")
            operator.start()
            assert operator.proc is not None
            wait_until(
                "every job decided",
                lambda: all(
                    j.get("status", {}).get("nextScheduleTime") for j in k.items(SCHEDULED_JOBS)
                ),
                timeout=600,
                interval=5,
            )
            register(
                k,
                hook,
                port,
                (pki / "ca.crt").read_bytes(),
                [("calendars", "validate-calendar")],
                timeout_seconds=TIMEOUT_SECONDS,
            )
            reviewed = []
            for r in range(rounds):
                # An admitted edit has the operator decide every referring job again.
                idle(operator.proc.pid)
                progress(f"edit {r + 1} of {rounds} (load average {load()})")
                reviewed.append(timed_apply(k, bank(rounds + r + 1)))
        finally:
            kube.run("delete", "validatingwebhookconfiguration", hook, "--ignore-not-found")
            if operator is not None:
                operator.stop()
            bench.delete_namespace(namespace)
        await lean.close()
    print(
        f"\n{n:,} ScheduledJobs referring to the Calendar. The limit, the same edit with no"
        f" webhook: `kubectl apply` {cells(limit)}; the webhook's LIST of the {n:,} jobs"
        f" alone (the operator's request path): {cells(listed)}.\n\n"
        f"| edit | `kubectl apply` through the webhook (timeoutSeconds {TIMEOUT_SECONDS}) |"
        f" what kubectl said |\n|---|---|---|"
    )
    for r, (seconds, said) in enumerate(reviewed, 1):
        print(f"| {r} | {seconds:.2f} s | {summary(said)} |")


def idle(pid: int) -> None:
    """Waits until the operator has spent under 2 % of a core over a second."""
    wait_until("the operator idle", lambda: busy(pid) < 0.02, timeout=600, interval=0)


def busy(pid: int) -> float:
    """The operator's CPU seconds over the next second."""
    before = process_usage(pid)[1]
    time.sleep(1)
    return process_usage(pid)[1] - before


def cells(seconds: list[float]) -> str:
    return f"median {statistics.median(seconds):.2f} s ({', '.join(f'{t:.2f}' for t in seconds)})"


def summary(said: str) -> str:
    """What kubectl printed, without the object's own line."""
    return " / ".join(line for line in said.splitlines() if not line.endswith("configured")) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(measure(args.n, args.rounds, Path(workdir)))


if __name__ == "__main__":
    main()
