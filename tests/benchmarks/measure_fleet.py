"""Fire lateness of many ScheduledJobs due at the same instant, on the real control plane.

The worst minute of a real cluster is midnight, when every nightly job is due at once.
This creates N ScheduledJobs (one service each) that all fire once, at the same whole
minute T, starts the real operator on them, and watches the runs arrive with
`kubectl get -w`: lateness is the moment a run is seen minus T. It also reports how long
the operator took to take the N jobs in hand, and its memory and CPU.

Run against a running control plane (`make cluster-up`), from the repository:

    .venv/bin/python -m tests.benchmarks.measure_fleet [N ...]

Figures are in docs/design.md. A measurement, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from tests.integration.conftest import REPO, Operator
from tests.integration.objects import scheduled_job, service
from tests.kube import Kubectl, wait_until

KUBECONFIG = Path(os.environ.get("KUBECONFIG", REPO / ".cluster" / "kubeconfig"))


def process_usage(pid: int) -> tuple[float, float]:
    """(resident MB, CPU seconds) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss_kb / 1024, (int(fields[11]) + int(fields[12])) / ticks


def watch_runs(kubeconfig: Path, namespace: str, seen: dict[str, float]) -> subprocess.Popen[str]:
    """Records, for each run name, when the watch first showed it."""
    proc = subprocess.Popen(
        [
            *("kubectl", "--kubeconfig", str(kubeconfig), "-n", namespace, "get", "sjr", "-w"),
            *("--no-headers", "-o", "custom-columns=NAME:.metadata.name"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.setdefault(line.strip(), time.time())

    threading.Thread(target=read, daemon=True).start()
    return proc


def measure(n: int, margin: float) -> None:
    kube = Kubectl(KUBECONFIG)
    namespace = f"fleet-{n}-{uuid.uuid4().hex[:5]}"
    kube.run("create", "namespace", namespace)
    k = kube.in_namespace(namespace)
    fire = (datetime.now(UTC) + timedelta(seconds=margin)).replace(second=0, microsecond=0)
    fire += timedelta(minutes=1)
    jobs = [
        scheduled_job(
            f"job-{i:05d}",
            "* * * * *",
            timeZone="UTC",
            startTime=fire.strftime("%Y-%m-%dT%H:%M:%SZ"),
            endTime=(fire + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            services=[service("main")],
        )
        for i in range(n)
    ]
    t0 = time.monotonic()
    k.run("create", "-f", "-", stdin=yaml.safe_dump_all(jobs), timeout=900)
    created = time.monotonic() - t0

    seen: dict[str, float] = {}
    watcher = watch_runs(KUBECONFIG, namespace, seen)
    with tempfile.TemporaryDirectory() as logs:
        operator = Operator(KUBECONFIG, namespace, Path(logs))
        t0 = time.monotonic()
        operator.start()
        assert operator.proc is not None
        wait_until(
            f"all {n} jobs to show their next fire",
            lambda: all(
                (sj.get("status") or {}).get("nextScheduleTime")
                for sj in k.json("get", "sj")["items"]
            ),
            timeout=600,
            interval=2,
        )
        in_hand = time.monotonic() - t0
        rss_ready, cpu_ready = process_usage(operator.proc.pid)
        if datetime.now(UTC) >= fire:
            sys.exit(f"the jobs were not ready before {fire:%H:%M}: rerun with a larger margin")
        wait_until(f"{n} runs", lambda: len(seen) >= n or None, timeout=600, interval=1)
        rss_after, cpu_after = process_usage(operator.proc.pid)
        operator.stop()
    watcher.terminate()
    kube.run("delete", "namespace", namespace, "--wait=false")

    late = sorted(at - fire.timestamp() for at in seen.values())
    quantiles = statistics.quantiles(late, n=100, method="inclusive") if n > 1 else late * 99
    print(
        f"| {n} | {created:.0f} s | {in_hand:.0f} s | {late[0]:.2f} s | {quantiles[49]:.2f} s "
        f"| {quantiles[94]:.2f} s | {late[-1]:.2f} s | {rss_ready:.0f} → {rss_after:.0f} MB "
        f"| {cpu_after - cpu_ready:.1f} s |",
        flush=True,
    )


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100, 1000]
    print(
        "| jobs | kubectl create | operator takes them in hand | first run seen | p50 | p95 "
        "| last | operator RSS ready → after | operator CPU for the fire |\n"
        "|---|---|---|---|---|---|---|---|---|",
        flush=True,
    )
    for n in sizes:
        measure(n, margin=60 + n * 0.1)


if __name__ == "__main__":
    main()
