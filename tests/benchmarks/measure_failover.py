"""Leader failover: how long two replicas are without an acting leader, on the real
control plane, beside the limit the Lease sets.

Two replicas of `almanac run --leader-elect` serve one namespace. The leader is stopped
with SIGTERM (a rolling update: it gives the Lease up) or SIGKILL (a crash: the Lease
must expire first), and the follower's "became the leader" line is timed from the
signal. The limits in the same run: after a clean stop, the follower's retry period
(it polls the Lease every 2 s); after a crash, the lease duration (15 s) counted from
the dead leader's last renewal, which is up to one retry period before the kill.

Run against a running control plane (`make cluster-up`), from the repository:

    .venv/bin/python -m tests.benchmarks.measure_failover [TRIALS]

A measurement, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import signal
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

from tests.benchmarks.measure_fleet import KUBECONFIG
from tests.integration.conftest import Operator
from tests.kube import Kubectl, wait_until

from almanac.controller.leader import Timing

LEADER_LINE = "became the leader"


def replica(namespace: str, log_dir: Path) -> Operator:
    log_dir.mkdir()
    election = ("--leader-elect", "--leader-election-namespace", namespace)
    return Operator(KUBECONFIG, namespace, log_dir, args=(*election, "--leader-election-id", "m"))


def became_leader_at(operator: Operator, after: float) -> float:
    """The epoch time of the operator's last "became the leader" line after `after`."""

    def line() -> float | None:
        for text in reversed(operator.log().splitlines()):
            if LEADER_LINE in text:
                stamp = datetime.strptime(text[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                return stamp if stamp >= after else None
        return None

    return wait_until("the follower to lead", line, timeout=60)


def trial(namespace: str, how: signal.Signals, logs: Path) -> float:
    """Seconds from the leader's signal to the follower leading."""
    run = uuid.uuid4().hex[:5]
    leader, follower = replica(namespace, logs / f"a-{run}"), replica(namespace, logs / f"b-{run}")
    try:
        leader.start()
        follower.start(until="waiting for leadership")
        assert leader.proc is not None
        sent = time.time()
        leader.proc.send_signal(how)
        leader.proc.wait(timeout=30)
        return became_leader_at(follower, sent) - sent
    finally:
        leader.stop()
        follower.stop()


def main(trials: int) -> None:
    kube = Kubectl(KUBECONFIG)
    namespace = f"failover-{uuid.uuid4().hex[:5]}"
    kube.run("create", "namespace", namespace)
    timing = Timing()
    try:
        with tempfile.TemporaryDirectory() as logs:
            print(f"{'stop':8} {'trials':>6} {'median':>8} {'max':>8}   limit")
            for how, limit in (
                (signal.SIGTERM, f"retry period {timing.retry_period:.0f} s"),
                (
                    signal.SIGKILL,
                    f"lease duration {timing.lease_duration:.0f} s after the last renewal "
                    f"({timing.lease_duration - timing.retry_period:.0f}-"
                    f"{timing.lease_duration:.0f} s after the kill)",
                ),
            ):
                gaps = [trial(namespace, how, Path(logs)) for _ in range(trials)]
                print(
                    f"{how.name:8} {trials:>6} {statistics.median(gaps):>7.2f}s"
                    f" {max(gaps):>7.2f}s   {limit}"
                )
    finally:
        kube.run("delete", "namespace", namespace, "--wait=false")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
