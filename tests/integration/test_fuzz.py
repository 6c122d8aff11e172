"""Hostile and extreme ScheduledJobs, generated from every field's edge values (seeded):
each one is refused by the API server with a field path, or accepted and reported in its
status by the operator; a canary in another namespace keeps firing on time throughout,
and the operator's log shows no failed decision."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Operator
from tests.integration.objects import scheduled_job, service
from tests.integration.test_operator import utc
from tests.kube import Kubectl, wait_until

SEED = 20261205
COUNT = 240

#: field path -> edge values (valid, boundary and hostile alike).
EDGES: dict[str, list[Any]] = {
    "schedule": [
        "* * * * *",
        "0 18 LB * *",
        "0 9 1B,LB-2 * *",
        "0 0 LW * *",
        "0 0 L-31 * *",
        "0 0 32B * *",
        "0 0 LB-1/2 * *",
        "0 0 * * MON#6",
        "@yearly",
        "0 0 30 2 *",
        "61 * * * *",
        "",
        " ",
        "* * * *",
        "0 0 29 2 1",
        "*/0 * * * *",
        "0-59/61 * * * *",
        "@every 5m",
        "x" * 300,
        "0 2 * * 0-7",
        "0 0 1 1 *",
        "59 23 31 12 *",
    ],
    "timeZone": [
        "UTC",
        "Europe/Bucharest",
        "America/Sao_Paulo",
        "Mars/Olympus",
        "",
        "utc",
        "+02:00",
        "Etc/GMT+12",
        "Pacific/Kiritimati",
        "A/" * 100,
    ],
    "startTime": [
        "0001-01-01T00:00:00",
        "1969-12-31T23:59:59",
        "1970-01-01T00:00:00",
        "2200-12-31T23:59:59",
        "2201-01-01T00:00:00",
        "9999-12-31T23:59:59",
        "2027-02-30T00:00:00",
        "not a time",
        "2027-01-01T00:00:00Z",
        "2027-01-01",
    ],
    "endTime": [
        "0001-01-01T00:00:00",
        "1970-01-01T00:00:00",
        "2000-01-01T00:00:00",
        "9999-12-31T23:59:59",
        "2027-01-01T24:00:00",
    ],
    "startingDeadlineSeconds": [0, 1, -1, 59, 31536000, 31536001, 2**31, 2**63 - 1, 10**14],
    "successfulRunsHistoryLimit": [0, 1, -1, 1000, 1001, 2**31],
    "failedRunsHistoryLimit": [0, -5, 1000, 10**9],
    "concurrencyPolicy": ["Allow", "Forbid", "Replace", "Sometimes", ""],
    "onExcludedDay": ["Skip", "NextBusinessDay", "PreviousBusinessDay", "Nearest", "", 1],
    "maxShiftDays": [1, 7, 31, 0, 32, -1, 2**31, "7"],
    "suspend": [True, False, "yes", 0],
    "exclusions.annual": [
        ["25.12"],
        ["31.02"],
        ["29.02"],
        ["1.1"],
        ["01.13"],
        ["00.01"],
        ["25/12"],
        [""],
        [f"{d:02d}.{m:02d}" for m in range(1, 13) for d in range(1, 29)],
    ],
    "exclusions.monthly": [["01"], ["1"], [1], [0], [32], ["31"], ["-1"], list(range(1, 32))],
    "exclusions.weekly": [
        ["Saturday", "Sunday"],
        ["sat"],
        ["Funday"],
        [""],
        ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    ],
    "exclusions.holiday": [
        ["25.12.2027"],
        ["31.12.9999"],
        ["01.01.0001"],
        ["29.02.2027"],
        ["29.02.2028"],
        ["31.12.2200"],
        ["01.01.2201"],
        ["1.1.2027"],
        [f"{d:02d}.{m:02d}.{y}" for y in range(2027, 2043) for m in range(1, 13) for d in (1, 15)],
    ],
    "calendarRefs": [[{"name": "missing"}], [{"name": ""}], [{"name": "a" * 300}], []],
    "notifications": [
        {"onFailure": True},
        {"onSuccess": True, "to": ["ops@example.com"]},
        {"onFailure": True, "to": ["Ops <ops@example.com>"]},
        {"onFailure": True, "to": ["root@[169.254.169.254]"]},
        {"onFailure": True, "to": ["a@b.c\r\nBcc: x@y.z"]},
        {"onFailure": True, "to": [""]},
    ],
    "services": [
        [],
        [service("a"), service("a")],
        [service("A_b")],
        [service("x" * 70)],
        [service(f"s{i}") for i in range(60)],
        [{"name": "nojob"}],
        [{"name": "notemplate", "jobTemplate": {"spec": {}}}],
    ],
}


def manifests(rng: random.Random) -> list[dict[str, Any]]:
    """COUNT jobs, each with one or two fields set to an edge value."""
    paths = sorted(EDGES)
    out = []
    for i in range(COUNT):
        job = scheduled_job(f"fz-{i:03d}", "0 3 * * *")
        for path in rng.sample(paths, rng.choice((1, 2))):
            target = job["spec"]
            *parents, last = path.split(".")
            for part in parents:
                target = target.setdefault(part, {})
            target[last] = rng.choice(EDGES[path])
        out.append(job)
    return out


def refusals(stderr: str) -> dict[str, str]:
    """kubectl apply's per-object errors, by object name."""
    found: dict[str, str] = {}
    for line in stderr.splitlines():
        m = re.search(r'"(fz-\d{3})"', line)
        if m and ("invalid" in line.lower() or "denied" in line.lower() or "error" in line.lower()):
            found[m.group(1)] = found.get(m.group(1), "") + line
    return found


@pytest.fixture
def canary(kube: Kubectl) -> Iterator[Kubectl]:
    """kubectl bound to a namespace of the canary's own, which the operator serves too:
    a stall caused by the fuzz's namespace must show in another user's job."""
    name = f"t-fuzz-canary-{uuid.uuid4().hex[:5]}"
    kube.run("create", "namespace", name)
    yield kube.in_namespace(name)
    kube.run("delete", "namespace", name, "--wait=false", check=False)


def test_hostile_and_extreme_jobs_are_refused_with_a_field_or_reported(
    k: Kubectl, canary: Kubectl, start_operator: Callable[..., Operator]
) -> None:
    operator = start_operator("--namespace", canary.namespace or "")
    canary.apply(scheduled_job("canary", "* * * * *"))
    started = datetime.now(UTC)
    jobs = manifests(random.Random(SEED))
    result = k.run(
        "apply", "-f", "-", stdin="\n---\n".join(yaml.safe_dump(j) for j in jobs), check=False
    )
    refused = refusals(result.stderr)
    accepted = [j["metadata"]["name"] for j in jobs if j["metadata"]["name"] not in refused]
    print(f"fuzz: {len(refused)} refused at apply time, {len(accepted)} accepted")
    for name, message in refused.items():
        assert "spec." in message, f"{name} refused without a field path: {message}"

    def unreported() -> list[str]:
        items = {j["metadata"]["name"]: j for j in k.items("sj")}
        return [n for n in accepted if n not in items or not _ready(items[n])]

    wait_until("every accepted job reported in its status", lambda: not unreported(), 120)
    # The canary fired every minute since, on time.
    wait_until(
        "a canary fire after the fuzz",
        lambda: datetime.now(UTC) > started.replace(second=0, microsecond=0) + timedelta(minutes=2),
        150,
    )
    fires = [
        r
        for r in canary.items("sjr", "-l", "almanac.dev/scheduled-job=canary")
        if utc(r["spec"]["scheduledTime"]) > started
    ]
    assert fires, "the canary did not fire during the fuzz"
    for run in fires:
        late = utc(run["metadata"]["creationTimestamp"]) - utc(run["spec"]["scheduledTime"])
        assert late <= timedelta(seconds=2), f"{run['metadata']['name']} {late} late"
    log = operator.log()
    assert "decision failed" not in log, log[-4000:]
    assert "could not be handled" not in log, log[-4000:]


def _ready(job: dict[str, Any]) -> bool:
    conditions = {c["type"]: c for c in (job.get("status") or {}).get("conditions") or []}
    ready = conditions.get("Ready") or {}
    return ready.get("status") in ("True", "False") and bool(ready.get("message"))
