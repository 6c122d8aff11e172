"""Faults of the control plane under a running operator: etcd, or the API server
itself, frozen past the client's request timeout, exactly when a fire is due."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta

import pytest

from almanac.kube import REQUEST_TIMEOUT
from tests.conftest import STATE
from tests.integration.conftest import Operator
from tests.integration.objects import scheduled_job, service
from tests.integration.test_operator import finished_run, utc
from tests.kube import Kubectl, wait_until


@pytest.mark.parametrize("component", ["etcd", "kube-apiserver"])
def test_a_fire_during_an_outage_runs_within_seconds_of_its_return(
    k: Kubectl, operator: Operator, component: str
) -> None:
    """etcd frozen: the API server answers with timeouts. The API server frozen: every
    request and the watches hang, then resume on the same connections or time out."""
    k.apply(scheduled_job("outage", "* * * * *", services=[service("a"), service("b")]))
    fire = utc(
        wait_until(
            "nextScheduleTime",
            lambda: k.get("sj", "outage").get("status", {}).get("nextScheduleTime"),
        )
    )
    frozen = int((STATE / "pids" / f"{component}.pid").read_text().split()[0])  # "pid path"
    wait_until(
        "two seconds before the fire", lambda: datetime.now(UTC) > fire - timedelta(seconds=2), 70
    )
    os.kill(frozen, signal.SIGSTOP)
    try:
        # Away past the operator's request timeout: its writes of this fire fail.
        away_until = fire + timedelta(seconds=REQUEST_TIMEOUT + 5)
        wait_until(
            f"{component} away", lambda: datetime.now(UTC) > away_until, REQUEST_TIMEOUT + 15
        )
    finally:
        os.kill(frozen, signal.SIGCONT)
    back = datetime.now(UTC)
    name = f"outage-{int(fire.timestamp()) // 60}"
    run = finished_run(k, name, timeout=60)
    assert run["status"]["phase"] == "Succeeded"
    first_job = k.get("job", f"{name}-a")
    created = utc(first_job["metadata"]["creationTimestamp"])
    resumed = (created - back).total_seconds()
    print(f"first Job of the fire created {resumed:.1f}s after {component} returned")
    assert resumed <= 6.0, f"the fire's first Job came {resumed:.1f}s after {component} returned"
    assert [r["metadata"]["name"] for r in k.items("sjr")].count(name) == 1
