"""Faults of the control plane under a running operator: etcd, or the API server
itself, frozen past the client's request timeout, exactly when a fire is due."""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime, timedelta

import pytest

from almanac.kube import REQUEST_TIMEOUT
from tests.conftest import STATE
from tests.integration.conftest import Operator
from tests.integration.objects import scheduled_job, scheduled_job_run, service
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


def with_nested(obj: dict[str, object], depth: int) -> str:
    """``obj`` as JSON, its "NESTED" string replaced by a map ``depth`` levels deep
    (written as text: Python's json module stops at 1,000 levels)."""
    return json.dumps(obj).replace('"NESTED"', '{"a":' * depth + '"leaf"' + "}" * depth)


def test_objects_nested_2000_levels_deep_do_not_stop_the_operator(
    k: Kubectl, operator: Operator
) -> None:
    """A ScheduledJob and a ScheduledJobRun holding a map nested 2,000 levels deep: the
    API server refuses them, or the operator takes them like any other; either way it
    keeps serving and a canary fires on time."""
    deep = scheduled_job("deep")
    deep["spec"]["services"][0]["jobTemplate"]["spec"]["template"]["spec"]["x"] = "NESTED"
    run = scheduled_job_run("deep-run", "deep", services=deep["spec"]["services"])
    outcomes = []
    for obj in (deep, run):
        result = k.run("create", "-f", "-", stdin=with_nested(obj, 2000), check=False)
        outcomes.append("refused" if result.returncode else "accepted")
    print(f"nested objects: {outcomes}")
    k.apply(scheduled_job("canary", "* * * * *"))
    fire = utc(
        wait_until(
            "the canary's nextScheduleTime",
            lambda: k.get("sj", "canary").get("status", {}).get("nextScheduleTime"),
        )
    )
    name = f"canary-{int(fire.timestamp()) // 60}"
    created = wait_until("the canary's run", lambda: k.get("sjr", name), timeout=90)
    late = (utc(created["metadata"]["creationTimestamp"]) - fire).total_seconds()
    assert late <= 2.0, f"the canary fired {late:.0f}s late"
    assert operator.proc is not None and operator.proc.poll() is None
    assert "RecursionError" not in operator.log()
