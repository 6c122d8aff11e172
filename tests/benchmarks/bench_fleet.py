"""Fleet benchmark (issue 14): N fires due at one instant, side by side with the limit
and with CronJob, in one run on one control plane.

For each N, the phases run one after another, each in a namespace of its own that is
deleted, and waited for, before the next phase starts (so that the garbage collector's
work for one phase does not land in the next); the limit is measured first and again
last, so that a change in what else runs on the machine shows as two different limits:

1. **The limit.** N bare batch/v1 Jobs created from an async client (the operator's own
   request path, ``almanac.kube.Kube.create_job``: plain JSON on the kubernetes client's
   pool; the client's generated API, used here before 2026-12-07, spent so much CPU of
   its own that the limit read 1.5-2.1 s instead of 1.2 s at N = 1,000) with 32 requests
   in flight. "created in" is the time from the
   first request to the last response; the lateness of each Job is measured as if all
   had been due at the instant of the first request.
2. **CronJob.** N CronJobs (`* * * * *`) created suspended within one minute, then
   unsuspended before the next whole minute T, so that each fires once, at T, and no
   missed fire is caught up on unsuspend (their creationTimestamp is after the previous
   whole minute). Each CronJob is suspended again as soon as its first Job is seen, so
   that T+1 min does not pile a second fire onto the tail of the first. The
   kube-controller-manager runs with its default client QPS (20, burst 30) unless the
   control plane sets another: reported as is. When a CronJob's fire for T is only
   processed after T+1 min, the controller creates the Job for the most recent minute
   instead; such Jobs still count (the first Job of that CronJob after T) and are
   reported as "fired for a later minute".
3. **Almanac.** N ScheduledJobs (one service each, `* * * * *` with a
   startTime/endTime window around T so that each fires once, as measure_fleet.py does),
   the real operator started with the integration tests' `Operator` helper (a subprocess,
   `almanac run --namespace ...`). Reported: lateness of each batch Job (label
   `almanac.dev/run`), the time from launching the operator until every ScheduledJob
   shows `status.nextScheduleTime`, the operator's RSS (/proc) once it has them all in
   hand and after the fire, and its CPU time over the fire window divided by N.
   With `--daily` each ScheduledJob fires once a day, at T, instead (`M H * * *`, no
   window): in the window set-up every ScheduledJob also reports, once T is past, that it
   will never fire again (a `NeverFires` Warning Event and a status patch), which is a
   cost of the window closing, not of the fire; `--daily` leaves it out.
   With `--fire-only` the Almanac phase ends when its last Job is seen: the CPU and the
   requests are the burst's (from T-2 s to that Job), not each fire's whole life, and
   namespaces are deleted in the background (their Jobs and Pods go at the
   controller-manager's QPS 20 while the next phase runs: about 20 requests a second
   beside the bench). At 5,000 waiting for the runs to end and the namespaces to go
   would take most of an hour.
   With `--calendar` every ScheduledJob refers to one Calendar (Romania's public
   holidays and 24 dates in 2027, none of them today), as a finance team's jobs do:
   each of their decisions builds the schedule with it.

**Lateness** is always the moment a watch (`kubectl get -w`, its lines time-stamped by a
separate small process, so the stamps do not wait on this script's event loop) first
shows a Job, minus the instant it was due. creationTimestamp is not used: it has
one-second resolution.

**The operator's API requests, and how they are isolated.** The API server's
`apiserver_request_total` has no user label: a delta of it over the fire window counts
the controller-manager's Job controller (which creates a Pod per Job and patches each
Job's status), kwok (which patches every Pod), the scheduler, and this script's watches,
and a baseline window without a fire subtracts none of that, since that work is caused
by the fire. So the operator runs under an identity of its own (a ServiceAccount token,
bound to cluster-admin), and one API Priority and Fairness FlowSchema per
(verb, resource[/subresource]) the operator may use, matching only that identity,
routes its requests to the `exempt` priority level, the level the admin identity used
by the other benchmarks and tests also lands in, so nothing is queued or throttled. The
API server's own `apiserver_flowcontrol_dispatched_requests_total{flow_schema}` then
counts exactly the operator's requests by verb and resource; two catch-all FlowSchemas
count anything else it sends (other resources, non-resource URLs such as discovery).
Each row's "all clients" column is the delta of `apiserver_request_total` over the
same window, for context, with the answers other than 2xx by code (a 409 on a create is
a repeated decision meeting its own earlier write; APF counts requests, not answers).
Both are read from the API server's /metrics just before T and once the operator has
gone quiet after the last run ended (its own request counters unchanged for 6 s), so a
fire's whole life is inside the window: the run, the Job, the Job's completion, the
run's and the ScheduledJob's status, the Events. The FlowSchemas, the ServiceAccount's
namespace and the ClusterRoleBinding are removed at the end.

Run against a running control plane (`make cluster-up`), from the repository:

    .venv/bin/python -m tests.benchmarks.bench_fleet [N ...] [--skip-cronjob] [--daily]

(default N: 100 1000). Progress lines go to stderr, the tables to stdout. The operator's
logs are kept in a temporary folder whose path is printed at the end.

How to read the figures
-----------------------
- "created in" of the limit rows is the physical limit of this control plane on this
  machine: no controller can put N Jobs into etcd faster from one client. Issue 14's
  goal is Almanac's "last" at most 2x (N=1,000) or 2.5x (N=5,000) this figure, with p99
  at most 3 s; "last / limit" is that ratio, against the limit measured before and the
  one measured after. When the two limits differ much, the machine was busier in one
  than in the other (the load average at each phase's start is in the progress lines):
  run again.
- p50, p99 and last are the lateness of the N Jobs (p99 with the inclusive method:
  for N=100 it lies between the 99th and the last Job).
- CronJob's figures are the kube-controller-manager's at its default client QPS: its
  fires queue behind its own client-side rate limiter (about 3 requests per fire at 20
  per second), not behind the API server.
- "next set" is from launching the operator process (interpreter start-up, imports, the
  initial LIST and watch of each kind included) until the last ScheduledJob shows
  status.nextScheduleTime.
- CPU ms per fire is the operator's user+system CPU over the fire window (from just
  before T until it went quiet after the last run ended, idle seconds included) divided
  by N. "idle rate ... of it" is how much of that its idle CPU rate (measured between
  having every job in hand and T) accounts for over a window as long.
- The burst's CPU: the CPU seconds of the operator and of each control-plane process
  from T until the last Job was seen, and their sum as a share of the machine's cores
  over that span (near 100 %: the burst is bound by the machine, not by a wait).
- Requests per fire: the operator's rows are exact counts of its own requests divided
  by N. The "all clients" column includes the consequences of a fire that are not the
  operator's (the Job controller's Pod and Job status writes, kwok's Pod status patches,
  the scheduler's bindings). Start-up requests (the initial LISTs and WATCHes) fall
  before the window; a WATCH inside it is a watch the operator re-opened.
- "failed decisions" in the log column are reconciles that raised and were retried
  (mostly a request that hit the operator's 20 s timeout); many of them mean the
  figures are those of a congested operator and API server: the 500 and 504 answers
  in the "all clients" column are the API server's side of the same timeouts, and
  per-fire counts then include the retries.
- Everything shares the machine (2 cores here): the control plane, kwok, the operator,
  this script, and possibly another session's tests. The load average is printed
  before and after; compare figures of one run, not across runs.

A measurement, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from kubernetes_asyncio import client, config
from prometheus_client.parser import text_string_to_metric_families
from tests.benchmarks.measure_fleet import KUBECONFIG, process_usage
from tests.integration.conftest import REPO, Operator
from tests.integration.objects import calendar, scheduled_job, service
from tests.kube import Kubectl, wait_until

from almanac.api.names import GROUP, LABEL_RUN, SCHEDULED_JOBS, VERSION
from almanac.kube import Kube
from hack.ports import free_port

IN_FLIGHT = 32
"""Requests in flight from this script's async client (the limit, and all set-up)."""

#: The Calendar of ``--calendar``: a bank's days off, none of them today.
BANK_HOLIDAYS = calendar(
    "bank-holidays",
    holidays=[{"country": "RO"}],
    holiday=[f"{day:02d}.{month:02d}.2027" for month in range(1, 13) for day in (2, 16)],
)

BENCH_LABEL = "bench.almanac.dev/fleet"
IDENTITY_NAMESPACE = "almanac-bench-identity"
IDENTITY_SA = "operator"
IDENTITY_BINDING = "almanac-bench-operator"
FLOW_PRECEDENCE = 50
"""Before every suggested FlowSchema that could match a ServiceAccount (the first is
`system-leader-election` at 100); 1 is reserved for `exempt`."""

# What the operator may touch (its ClusterRole in the chart, the leader election Role,
# the webhook's Secret), each as (API group, resource[/subresource]).
OPERATOR_RESOURCES = (
    (GROUP, "scheduledjobs"),
    (GROUP, "scheduledjobs/status"),
    (GROUP, "scheduledjobruns"),
    (GROUP, "scheduledjobruns/status"),
    (GROUP, "calendars"),
    ("batch", "jobs"),
    ("batch", "jobs/status"),
    ("", "pods"),
    ("", "events"),
    ("events.k8s.io", "events"),
    ("coordination.k8s.io", "leases"),
    ("", "secrets"),
    ("", "namespaces"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
)
# The API server's request verbs (APF's, RBAC's) and how apiserver_request_total says them.
VERBS = {
    "get": "GET",
    "list": "LIST",
    "watch": "WATCH",
    "create": "POST",
    "update": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
    "deletecollection": "DELETECOLLECTION",
}
WRITE_VERBS = {"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"}


def progress(message: str) -> None:
    print(f"==> {datetime.now():%H:%M:%S} {message}", file=sys.stderr, flush=True)


def clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%H:%M:%S")


# --- figures ----------------------------------------------------------------------------


@dataclass
class Lateness:
    """Seconds after the due instant at which each of the expected objects was seen."""

    values: list[float]
    expected: int

    @property
    def missing(self) -> int:
        return self.expected - len(self.values)

    def quantile(self, q: int) -> float:
        late = sorted(self.values)
        if len(late) == 1:
            return late[0]
        return statistics.quantiles(late, n=100, method="inclusive")[q - 1]

    def cells(self) -> list[str]:
        if not self.values:
            return ["-"] * 4
        late = sorted(self.values)
        last = f"{late[-1]:.2f} s" + (f" ({self.missing} never seen)" if self.missing else "")
        return [
            f"{late[0]:.2f} s",
            f"{self.quantile(50):.2f} s",
            f"{self.quantile(99):.2f} s",
            last,
        ]

    @property
    def last(self) -> float:
        return max(self.values) if self.values else math.nan


@dataclass
class LimitResult:
    created_in: float
    lateness: Lateness
    notes: list[str] = field(default_factory=list)


@dataclass
class CronResult:
    lateness: Lateness | None
    notes: list[str] = field(default_factory=list)


@dataclass
class Requests:
    """Requests over a window: (verb, resource) -> count."""

    operator: Counter[tuple[str, str]] = field(default_factory=Counter)
    all_clients: Counter[tuple[str, str]] = field(default_factory=Counter)
    refused: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """All clients' answers other than 2xx: (verb, resource, code) -> count."""


@dataclass
class AlmanacResult:
    lateness: Lateness
    next_set: float | None
    """None when not every ScheduledJob showed it before T (see the notes)."""
    rss_ready: float
    rss_after: float
    cpu_ms_per_fire: float
    idle_ms_per_fire: float | None
    """What the operator's idle CPU rate (measured before T) accounts for of the above."""
    window: float
    requests: Requests
    log: LogCounts
    burst_cpu: dict[str, float]
    """CPU seconds of the operator and of each control-plane process from T until the
    last Job was seen: where a 2-core machine's time went in the burst."""
    burst: float
    """That span's length in seconds."""
    decisions: Counter[str]
    """The operator's decisions in the fire window, by kind and ``failed`` (its
    almanac_decisions_total and almanac_decision_failures_total)."""
    notes: list[str] = field(default_factory=list)


@dataclass
class Round:
    """One N: the limit before and after the other phases, CronJob, Almanac."""

    n: int
    limit: LimitResult
    cron: CronResult | None
    alm: AlmanacResult
    limit_after: LimitResult

    def ratio(self) -> str:
        """Almanac's last Job over the bare-create time, against each limit measured."""
        last = self.alm.lateness.last
        return f"{last / self.limit.created_in:.1f}x / {last / self.limit_after.created_in:.1f}x"


# --- watches, time-stamped in a process of their own ------------------------------------


class Watch:
    """A watch on one collection (tests/benchmarks/watch_stamped.py, a process of its
    own that stamps each object as it arrives and reopens a watch the server ends);
    entering waits until the watch is open."""

    def __init__(
        self,
        workdir: Path,
        path: str,
        fields: Sequence[str],
        selector: str | None = None,
    ) -> None:
        self.path = path
        tag = f"{path.strip('/').replace('/', '_')}-{uuid.uuid4().hex[:4]}"
        self.out_path = workdir / f"{tag}.watch"
        self.err_path = workdir / f"{tag}.stderr"
        self.argv = [
            *(sys.executable, "-m", "tests.benchmarks.watch_stamped", str(KUBECONFIG), path),
            *(("--selector", selector) if selector else ()),
            *fields,
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self._rows: list[tuple[float, list[str]]] = []
        self._offset = 0
        self.reopened = 0
        self.relisted = 0

    def __enter__(self) -> Watch:
        with self.err_path.open("wb") as err, self.out_path.open("wb") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err, cwd=REPO)
        proc = self.proc
        wait_until(
            f"the watch on {self.path} to open",
            lambda: (
                "# open" in self.out_path.read_text(errors="replace") or proc.poll() is not None
            ),
            timeout=60,
            interval=0.1,
        )
        if proc.poll() is not None:
            raise RuntimeError(f"the watch exited: {self.err_path.read_text()[-2000:]}")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def rows(self) -> list[tuple[float, list[str]]]:
        """Every object shown so far: (when, field values)."""
        with self.out_path.open("rb") as out:
            out.seek(self._offset)
            data = out.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            if line.startswith("#"):
                self.reopened += line.startswith("# reopen")
                self.relisted += line.startswith("# relist")
                continue
            stamp, *fields = line.split()
            self._rows.append((float(stamp), fields))
        return self._rows

    def first_seen(
        self, key: int = 0, where: Callable[[list[str]], bool] | None = None
    ) -> dict[str, tuple[float, list[str]]]:
        """For each distinct value of field `key`, the first row (that passes `where`)."""
        first: dict[str, tuple[float, list[str]]] = {}
        for stamp, fields in self.rows():
            if len(fields) > key and (where is None or where(fields)):
                first.setdefault(fields[key], (stamp, fields))
        return first

    def note(self) -> str:
        """What a reader of the figures must know about this watch, if anything."""
        parts = []
        if self.reopened:
            parts.append(f"reopened {self.reopened}x by its client (no event lost)")
        if self.relisted:
            parts.append(f"listed again {self.relisted}x (objects first shown then seen late)")
        return f"watch on {self.path.rsplit('/', 1)[-1]}: {', '.join(parts)}" if parts else ""


# --- the API server's counters ------------------------------------------------------------

_SAMPLE = re.compile(r"^(\w+)\{(.*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(kube: Kubectl) -> str:
    return kube.run("get", "--raw", "/metrics", timeout=60).stdout


def samples(text: str, metric: str) -> Iterable[tuple[dict[str, str], float]]:
    for line in text.splitlines():
        if line.startswith(metric + "{"):
            match = _SAMPLE.match(line)
            if match and match.group(1) == metric:
                yield dict(_LABEL.findall(match.group(2))), float(match.group(3))


def resource_name(group: str, resource: str) -> str:
    """kubectl's spelling: `jobs.batch/status`, `events` (core)."""
    base, _, sub = resource.partition("/")
    name = f"{base}.{group}" if group else base
    return f"{name}/{sub}" if sub else name


def request_totals(text: str) -> Counter[tuple[str, str, str]]:
    """apiserver_request_total by (verb, resource, code)."""
    totals: Counter[tuple[str, str, str]] = Counter()
    for labels, value in samples(text, "apiserver_request_total"):
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        key = resource_name(labels.get("group", ""), resource) if resource else "(non-resource)"
        totals[(labels.get("verb", "?"), key, labels.get("code", "?"))] += value
    return totals


def dispatched(text: str) -> Counter[str]:
    """apiserver_flowcontrol_dispatched_requests_total by FlowSchema."""
    totals: Counter[str] = Counter()
    for labels, value in samples(text, "apiserver_flowcontrol_dispatched_requests_total"):
        totals[labels.get("flow_schema", "")] += value
    return totals


# --- the operator's identity ---------------------------------------------------------------


class OperatorIdentity:
    """A ServiceAccount bound to cluster-admin, a kubeconfig with its token, and
    FlowSchemas that count its requests by (verb, resource) (see the module docstring)."""

    def __init__(self, kube: Kubectl, workdir: Path) -> None:
        self.kube = kube
        self.kubeconfig = workdir / "operator.kubeconfig"
        self.flows: dict[str, tuple[str, str]] = {}
        """FlowSchema name -> (verb, resource) it counts."""

    def set_up(self) -> None:
        kube = self.kube
        kube.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": IDENTITY_NAMESPACE}}
        )
        sa = kube.in_namespace(IDENTITY_NAMESPACE)
        sa.run("create", "serviceaccount", IDENTITY_SA, check=False)
        kube.run("delete", "clusterrolebinding", IDENTITY_BINDING, "--ignore-not-found")
        kube.run(
            *("create", "clusterrolebinding", IDENTITY_BINDING, "--clusterrole=cluster-admin"),
            f"--serviceaccount={IDENTITY_NAMESPACE}:{IDENTITY_SA}",
        )
        token = sa.run("create", "token", IDENTITY_SA, "--duration=24h").stdout.strip()
        admin = yaml.safe_load(KUBECONFIG.read_text())
        context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
        cluster = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [cluster],
                    "users": [{"name": "almanac-bench", "user": {"token": token}}],
                    "contexts": [
                        {
                            "name": "almanac-bench",
                            "context": {"cluster": cluster["name"], "user": "almanac-bench"},
                        }
                    ],
                    "current-context": "almanac-bench",
                }
            )
        )
        self.kubeconfig.chmod(0o600)
        kube.apply(*self._flow_schemas())

    def _flow_schemas(self) -> list[dict[str, Any]]:
        subject = {
            "kind": "ServiceAccount",
            "serviceAccount": {"name": IDENTITY_SA, "namespace": IDENTITY_NAMESPACE},
        }

        def schema(name: str, precedence: int, rule: dict[str, Any]) -> dict[str, Any]:
            return {
                "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
                "kind": "FlowSchema",
                "metadata": {"name": name, "labels": {BENCH_LABEL: "true"}},
                "spec": {
                    "matchingPrecedence": precedence,
                    "priorityLevelConfiguration": {"name": "exempt"},
                    "rules": [{"subjects": [subject], **rule}],
                },
            }

        schemas = []
        for index, ((group, resource), verb) in enumerate(
            (target, verb) for target in OPERATOR_RESOURCES for verb in VERBS
        ):
            name = f"almanac-bench-{index:03d}"
            self.flows[name] = (VERBS[verb], resource_name(group, resource))
            rule = {
                "verbs": [verb],
                "apiGroups": [group],
                "resources": [resource],
                "clusterScope": True,
                "namespaces": ["*"],
            }
            schemas.append(schema(name, FLOW_PRECEDENCE, {"resourceRules": [rule]}))
        everything = {
            "verbs": ["*"],
            "apiGroups": ["*"],
            "resources": ["*"],
            "clusterScope": True,
            "namespaces": ["*"],
        }
        self.flows["almanac-bench-other"] = ("*", "(any other resource)")
        schemas.append(
            schema("almanac-bench-other", FLOW_PRECEDENCE + 1, {"resourceRules": [everything]})
        )
        self.flows["almanac-bench-non-resource"] = ("*", "(non-resource URLs)")
        non_resource = {"verbs": ["*"], "nonResourceURLs": ["*"]}
        schemas.append(
            schema(
                "almanac-bench-non-resource",
                FLOW_PRECEDENCE + 1,
                {"nonResourceRules": [non_resource]},
            )
        )
        return schemas

    def requests(self, text: str) -> Counter[tuple[str, str]]:
        """The operator's requests so far, by (verb, resource), from one /metrics text."""
        counts: Counter[tuple[str, str]] = Counter()
        for flow, value in dispatched(text).items():
            if flow in self.flows:
                counts[self.flows[flow]] += value
        return counts

    def tear_down(self) -> None:
        self.kube.run("delete", "flowschemas", "-l", f"{BENCH_LABEL}=true", "--ignore-not-found")
        self.kube.run("delete", "clusterrolebinding", IDENTITY_BINDING, "--ignore-not-found")
        self.kube.run(
            "delete", "namespace", IDENTITY_NAMESPACE, "--ignore-not-found", "--wait=false"
        )


# --- async requests, IN_FLIGHT at a time ----------------------------------------------------


async def bounded(calls: Sequence[Callable[[], Awaitable[Any]]]) -> list[float]:
    """Runs the calls with at most IN_FLIGHT at once; returns when each one's answer came."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(call: Callable[[], Awaitable[Any]]) -> float:
        async with gate:
            await call()
            return time.time()

    return list(await asyncio.gather(*(one(call) for call in calls)))


def job_spec() -> dict[str, Any]:
    """The Job spec of the services Almanac fires here (Pods kwok ends after 1 s)."""
    spec: dict[str, Any] = service("main")["jobTemplate"]["spec"]
    return spec


def control_plane_cpu() -> dict[str, float]:
    """CPU seconds so far of each process of the local control plane (etcd,
    kube-apiserver, kube-controller-manager, kube-scheduler, kwok), by name."""
    pids = sorted((KUBECONFIG.parent / "pids").glob("*.pid"))
    return {path.stem: process_usage(int(path.read_text().split()[0]))[1] for path in pids}


def collection(namespace: str, resource: str) -> str:
    """The API path of a namespaced collection."""
    group = {"jobs": "batch/v1", "cronjobs": "batch/v1"}.get(resource, f"{GROUP}/{VERSION}")
    return f"/apis/{group}/namespaces/{namespace}/{resource}"


class Bench:
    def __init__(
        self,
        api: client.ApiClient,
        lean: Kube,
        workdir: Path,
        *,
        fire_only: bool = False,
        with_calendar: bool = False,
    ) -> None:
        self.kube = Kubectl(KUBECONFIG)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.lean = lean
        self.workdir = workdir
        self.fire_only = fire_only
        """Measure a fire up to its last Job, not the runs' ends (see --fire-only)."""
        self.with_calendar = with_calendar
        """Every ScheduledJob refers to one Calendar (see --calendar)."""

    def namespace(self, phase: str, n: int) -> str:
        name = f"bench-{phase}-{n}-{uuid.uuid4().hex[:5]}"
        self.kube.run("create", "namespace", name)
        return name

    def delete_namespace(self, name: str) -> None:
        if self.fire_only:
            progress(f"deleting namespace {name} in the background (--fire-only)")
            self.kube.run("delete", "namespace", name, "--wait=false")
            return
        progress(f"deleting namespace {name} (and waiting until it is gone)")
        t0 = time.monotonic()
        self.kube.run("delete", "namespace", name, "--wait=true", "--timeout=1800s", timeout=1900)
        progress(f"namespace {name} gone after {time.monotonic() - t0:.0f} s")

    # --- 1. the limit --------------------------------------------------------------------

    async def limit(self, n: int) -> LimitResult:
        namespace = self.namespace("limit", n)
        jobs = [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": f"job-{i:05d}"},
                "spec": job_spec(),
            }
            for i in range(n)
        ]
        with Watch(self.workdir, collection(namespace, "jobs"), ["metadata.name"]) as watch:
            progress(f"creating {n} bare Jobs, {IN_FLIGHT} requests in flight")
            t0 = time.time()
            answered = await bounded(
                [lambda job=job: self.lean.create_job(namespace, job) for job in jobs]
            )
            created_in = max(answered) - t0
            progress(f"{n} Jobs created in {created_in:.2f} s; waiting for the watch to show them")
            await wait_async(lambda: len(watch.first_seen()) >= n, 120)
            seen = watch.first_seen()
        self.delete_namespace(namespace)
        notes = [note for note in [watch.note()] if note]
        return LimitResult(created_in, Lateness([at - t0 for at, _ in seen.values()], n), notes)

    # --- 2. CronJob ----------------------------------------------------------------------

    async def cronjob(self, n: int, setup_estimate: float) -> CronResult:
        # Created and unsuspended within one minute (after its start), so that the first
        # schedule after their creationTimestamp is the next whole minute T: N creates and
        # N patches, each about as fast as the limit's creates, and a margin. (When that
        # misses T anyway, the phase says so instead of measuring.)
        budget = min(58.0, 10 + 2 * setup_estimate)
        now = time.time()
        minute = now - now % 60
        if minute + 60 - now < budget:
            progress(f"waiting for {clock(minute + 61)} to create the CronJobs within a minute")
            await asyncio.sleep(minute + 61 - now)
            minute += 60
        fire = minute + 60
        namespace = self.namespace("cronjob", n)
        cronjobs = [
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": f"cron-{i:05d}"},
                "spec": {
                    "schedule": "* * * * *",
                    "timeZone": "UTC",
                    "suspend": True,
                    "jobTemplate": {"spec": job_spec()},
                },
            }
            for i in range(n)
        ]
        progress(f"creating {n} CronJobs (suspended), to fire at {clock(fire)}")
        await bounded(
            [lambda cj=cj: self.batch.create_namespaced_cron_job(namespace, cj) for cj in cronjobs]
        )
        fields = ["metadata.name", "metadata.ownerReferences.0.name"]
        with Watch(self.workdir, collection(namespace, "jobs"), fields) as watch:
            progress(f"unsuspending {n} CronJobs")
            names = [cj["metadata"]["name"] for cj in cronjobs]
            await bounded([self._suspend(namespace, name, False) for name in names])
            if time.time() >= fire - 1:
                late = f"unsuspended only at {clock(time.time())}, after {clock(fire - 1)}"
                self.delete_namespace(namespace)
                return CronResult(None, [late])
            progress(f"all unsuspended at {clock(time.time())}; waiting for the fires")
            timeout = min(1200.0, 180 + 0.3 * n)
            suspended: set[str] = set()
            tasks: list[asyncio.Task[list[float]]] = []
            first: dict[str, tuple[float, list[str]]] = {}
            reported = 0
            while time.time() < fire + timeout:
                await asyncio.sleep(0.5)
                first = watch.first_seen(key=1)
                fired = [owner for owner in first if owner not in suspended]
                if fired:  # no second fire at T+1 min on the tail of this one
                    suspended.update(fired)
                    calls = [self._suspend(namespace, owner, True) for owner in fired]
                    tasks.append(asyncio.create_task(bounded(calls)))
                if len(first) // max(1, n // 4) > reported:
                    reported = len(first) // max(1, n // 4)
                    after_t = time.time() - fire
                    progress(f"{len(first)} of {n} CronJobs fired, {after_t:.0f} s after T")
                if len(first) >= n:
                    break
            await asyncio.gather(*tasks)
        later = sum(
            1 for _, fields in first.values() if int(fields[0].rsplit("-", 1)[1]) * 60 > fire
        )
        self.delete_namespace(namespace)
        notes = [note for note in [watch.note()] if note]
        if later:
            notes.append(f"{later} fired for a later minute than T")
        return CronResult(Lateness([at - fire for at, _ in first.values()], n), notes)

    def _suspend(self, namespace: str, name: str, suspend: bool) -> Callable[[], Awaitable[Any]]:
        return lambda: self.batch.patch_namespaced_cron_job(
            name, namespace, {"spec": {"suspend": suspend}}
        )

    # --- 3. Almanac ----------------------------------------------------------------------

    async def almanac(self, n: int, identity: OperatorIdentity, daily: bool) -> AlmanacResult:
        namespace = self.namespace("almanac", n)
        notes: list[str] = []
        margin = 40 + 0.03 * n
        now = time.time()
        fire = now + margin - (now + margin) % 60 + 60
        stamp = datetime.fromtimestamp(fire, UTC)
        if daily:  # once a day, at T: the next fire is tomorrow
            when: dict[str, str] = {"schedule": f"{stamp.minute} {stamp.hour} * * *"}
        else:  # every minute, in a window that holds T alone
            when = {
                "schedule": "* * * * *",
                "startTime": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "endTime": datetime.fromtimestamp(fire + 30, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        refs: dict[str, Any] = {}
        if self.with_calendar:
            await self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "calendars", BANK_HOLIDAYS
            )
            refs["calendarRefs"] = [{"name": BANK_HOLIDAYS["metadata"]["name"]}]
        jobs = [
            scheduled_job(
                f"job-{i:05d}", timeZone="UTC", services=[service("main")], **when, **refs
            )
            for i in range(n)
        ]
        progress(f"creating {n} ScheduledJobs due at {clock(fire)}")
        await bounded(
            [
                lambda sj=sj: self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, SCHEDULED_JOBS, sj
                )
                for sj in jobs
            ]
        )
        log_dir = self.workdir / namespace
        log_dir.mkdir()
        watches = (
            Watch(self.workdir, collection(namespace, "jobs"), ["metadata.name"], LABEL_RUN),
            Watch(
                self.workdir,
                collection(namespace, "scheduledjobruns"),
                ["metadata.name", "status.phase"],
            ),
            Watch(
                self.workdir,
                collection(namespace, "scheduledjobs"),
                ["metadata.name", "status.nextScheduleTime"],
            ),
        )
        with watches[0] as job_watch, watches[1] as run_watch, watches[2] as sj_watch:
            operator = Operator(identity.kubeconfig, namespace, log_dir)
            progress("starting the operator (its own identity)")
            launched = time.time()
            metrics_port = free_port()
            operator.start("--metrics-port", str(metrics_port))
            assert operator.proc is not None
            pid = operator.proc.pid
            try:

                def next_set() -> dict[str, tuple[float, list[str]]]:
                    return sj_watch.first_seen(where=lambda f: f[1] != "<none>")

                def ended() -> dict[str, tuple[float, list[str]]]:
                    return run_watch.first_seen(where=lambda f: f[1] in ("Succeeded", "Failed"))

                in_hand: float | None = None
                if await wait_async(lambda: len(next_set()) >= n, fire - 3 - time.time()):
                    in_hand = max(at for at, _ in next_set().values()) - launched
                    progress(f"every nextScheduleTime set {in_hand:.1f} s after launch")
                else:
                    late = f"only {len(next_set())} of {n} showed status.nextScheduleTime"
                    notes.append(f"{late} by T-3 s ({fire - 3 - launched:.0f} s after launch)")
                    progress(notes[-1])
                rss_ready, cpu_ready = process_usage(pid)
                ready_at = time.time()
                await asyncio.sleep(max(0.0, fire - 2 - time.time()))
                before = scrape(self.kube)
                decided_before = operator_decisions(metrics_port)
                _, cpu_before = process_usage(pid)
                window_start = time.time()
                # The idle CPU rate, from having them all in hand until just before T.
                idle_rate = None
                if in_hand is not None and window_start - ready_at >= 5:
                    idle_rate = (cpu_before - cpu_ready) / (window_start - ready_at)
                progress(f"fire at {clock(fire)}: waiting for {n} Jobs")
                await asyncio.sleep(max(0.0, fire - time.time()))
                _, cpu_at_t = process_usage(pid)
                plane_at_t = control_plane_cpu()
                if not await wait_async(lambda: len(job_watch.first_seen()) >= n, 900):
                    notes.append(f"only {len(job_watch.first_seen())} Jobs within 900 s")
                _, cpu_burst = process_usage(pid)
                burst_cpu = {"operator": cpu_burst - cpu_at_t}
                burst_cpu.update(
                    (name, cpu - plane_at_t[name]) for name, cpu in control_plane_cpu().items()
                )
                burst = time.time() - fire
                seen = job_watch.first_seen()
                last = max((at for at, _ in seen.values()), default=math.nan) - fire
                progress(f"{len(seen)} Jobs seen, the last {last:.2f} s after T; runs ending")
                if self.fire_only:
                    notes.append(
                        "--fire-only: CPU and requests are the burst's, from T-2 s until "
                        "the last Job was seen, not the runs' whole lives"
                    )
                    after = scrape(self.kube)
                else:
                    if not await wait_async(lambda: len(ended()) >= n, 900):
                        late = f"only {len(ended())} runs ended within 900 s of the last Job"
                        notes.append(late)
                    progress(f"{len(ended())} runs ended; waiting for the operator to go quiet")
                    after = await self._quiet(identity)
                rss_after, cpu_after = process_usage(pid)
                decisions = operator_decisions(metrics_port) - decided_before
                window_end = time.time()
            finally:
                operator.stop()
        notes += [note for note in (w.note() for w in watches) if note]
        log = log_counts(operator.log(), window_start, window_end)
        by_code = request_totals(after) - request_totals(before)
        all_clients: Counter[tuple[str, str]] = Counter()
        for (verb, resource, _), value in by_code.items():
            all_clients[(verb, resource)] += value
        requests = Requests(
            operator=identity.requests(after) - identity.requests(before),
            all_clients=all_clients,
            refused=Counter({k: v for k, v in by_code.items() if not k[2].startswith("2")}),
        )
        window = window_end - window_start
        idle = None
        if idle_rate is not None:
            idle = idle_rate * window * 1000 / n
        self.delete_namespace(namespace)
        return AlmanacResult(
            lateness=Lateness([at - fire for at, _ in seen.values()], n),
            next_set=in_hand,
            rss_ready=rss_ready,
            rss_after=rss_after,
            cpu_ms_per_fire=(cpu_after - cpu_before) * 1000 / n,
            idle_ms_per_fire=idle,
            window=window,
            requests=requests,
            log=log,
            burst_cpu=burst_cpu,
            burst=burst,
            decisions=decisions,
            notes=notes,
        )

    async def _quiet(self, identity: OperatorIdentity, still: int = 3, every: float = 2.0) -> str:
        """The /metrics text once the operator's request counts stayed the same `still`
        scrapes in a row, `every` seconds apart (at most 2 minutes)."""
        text = scrape(self.kube)
        previous, same = identity.requests(text), 0
        deadline = time.monotonic() + 120
        while same < still and time.monotonic() < deadline:
            await asyncio.sleep(every)
            text = scrape(self.kube)
            counts = identity.requests(text)
            same = same + 1 if counts == previous else 0
            previous = counts
        return text


async def wait_async(check: Callable[[], bool], timeout: float) -> bool:
    """Polls check() until it is true (True) or `timeout` seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.25)
    return True


@dataclass
class LogCounts:
    lines: int = 0
    warnings: int = 0
    """WARNING and above."""
    failed_decisions: int = 0
    """Lines saying a decision failed: a reconcile that raised (a request that timed
    out, say) and is tried again."""


_LOG_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] \S+\s+\[(\w+)\s*\]")


def log_counts(log: str, start: float, end: float) -> LogCounts:
    """What the operator logged between start and end."""
    counts = LogCounts()
    for line in log.splitlines():
        match = _LOG_LINE.match(line)
        if not match:
            continue
        at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if start <= at <= end:
            counts.lines += 1
            counts.warnings += match.group(2) in ("WARNING", "ERROR", "CRITICAL")
            counts.failed_decisions += "decision failed" in line
    return counts


# --- the report -----------------------------------------------------------------------------


def controller_manager_qps() -> str:
    """The kube-controller-manager's --kube-api-qps, from the local control plane's pid."""
    pid_file = KUBECONFIG.parent / "pids" / "kube-controller-manager.pid"
    try:
        argv = Path(f"/proc/{pid_file.read_text().split()[0]}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return "unknown (not the local control plane)"
    for arg in argv:
        if arg.startswith(b"--kube-api-qps"):
            return arg.decode().partition("=")[2] + " (--kube-api-qps)"
    return "20 (the default)"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def phase_table(r: Round, qps: str) -> str:
    def notes(items: list[str]) -> str:
        return "; ".join(items)

    def limit_row(name: str, limit: LimitResult) -> str:
        created = (
            f"all {r.n} created (first request to last response) in **{limit.created_in:.2f} s**"
        )
        return (
            f"| {name} | {' | '.join(limit.lateness.cells())} | {notes([created, *limit.notes])} |"
        )

    rows = [
        f"### N = {r.n}",
        "",
        "| phase (in the order run) | first | p50 | p99 | last | notes |",
        "|---|---|---|---|---|---|",
        limit_row(f"the limit: bare async create, {IN_FLIGHT} in flight", r.limit),
    ]
    cron = r.cron
    if cron is None:
        rows.append("| CronJob | skipped | | | | --skip-cronjob |")
    elif cron.lateness is None:
        rows.append(f"| CronJob | - | - | - | - | not measured: {notes(cron.notes)} |")
    else:
        qps_note = f"kube-controller-manager client QPS {qps}"
        rows.append(
            "| CronJob | "
            + " | ".join(cron.lateness.cells())
            + f" | {notes([qps_note, *cron.notes])} |"
        )
    alm = r.alm
    ratio = f"last / limit (before / after) = **{r.ratio()}**"
    rows.append(f"| Almanac | {' | '.join(alm.lateness.cells())} | {notes([ratio, *alm.notes])} |")
    rows.append(limit_row("the limit again", r.limit_after))
    log = alm.log
    rows += [
        "",
        f"| Almanac, N = {r.n} | every nextScheduleTime set | RSS in hand → after the fire "
        "| CPU per fire | fire window | operator log in the window |",
        "|---|---|---|---|---|---|",
        f"| | {next_set_cell(alm)} | {alm.rss_ready:.0f} → {alm.rss_after:.0f} MB "
        f"| {cpu_cell(alm)} | {alm.window:.0f} s "
        f"| {log.lines / r.n:.1f} lines per fire; {log.warnings} warnings/errors, "
        f"{log.failed_decisions} of them failed decisions |",
        "",
        decisions_line(r.n, alm.decisions),
        "",
        burst_cpu_table(alm),
        "",
        requests_table(r.n, alm.requests),
    ]
    return "\n".join(rows)


def operator_decisions(port: int) -> Counter[str]:
    """The operator's decisions so far, by kind, and its failed ones (as ``failed``),
    from its own /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name == "almanac_decisions_total":
                counts[sample.labels["kind"]] += sample.value
            elif sample.name == "almanac_decision_failures_total":
                counts["failed"] += sample.value
    return counts


def decisions_line(n: int, decisions: Counter[str]) -> str:
    """Decisions per fire in the window, by kind: the operator's own unit of work."""
    kinds = sorted(k for k in decisions if k != "failed" and decisions[k])
    each = ", ".join(f"{k} {decisions[k] / n:.2f}" for k in kinds)
    total = sum(decisions[k] for k in kinds)
    return (
        f"Decisions per fire in the window: {total / n:.2f} ({each}); "
        f"{decisions['failed']:.0f} failed in all"
    )


def burst_cpu_table(alm: AlmanacResult) -> str:
    """Each process's CPU seconds over the burst, and what share of the machine's cores
    they add up to: near all of them, the burst is CPU-bound."""
    names = list(alm.burst_cpu)
    total = sum(alm.burst_cpu.values())
    cores = os.cpu_count() or 1
    return "\n".join(
        [
            f"CPU seconds from T until the last Job was seen ({alm.burst:.1f} s, "
            f"{cores} cores): all of them {total:.1f}, "
            f"{100 * total / (alm.burst * cores):.0f} % of the machine",
            "",
            "| " + " | ".join(names) + " |",
            "|" + "---|" * len(names),
            "| " + " | ".join(f"{alm.burst_cpu[name]:.2f}" for name in names) + " |",
        ]
    )


def next_set_cell(alm: AlmanacResult) -> str:
    return "not all before T" if alm.next_set is None else f"{alm.next_set:.1f} s after launch"


def cpu_cell(alm: AlmanacResult) -> str:
    cell = f"{alm.cpu_ms_per_fire:.1f} ms"
    if alm.idle_ms_per_fire is not None:
        cell += f" (idle rate over the window: {alm.idle_ms_per_fire:.1f} ms of it)"
    return cell


def requests_table(n: int, requests: Requests) -> str:
    keys = {key for key, value in requests.operator.items() if value}
    keys |= {key for key, value in requests.all_clients.items() if value / n >= 0.05}
    rows = [
        f"API requests per fire during the Almanac fire window (N = {n}): the operator's own "
        "(its identity's FlowSchemas), and every client's (apiserver_request_total)",
        "",
        "| verb | resource | operator | all clients (of them answered other than 2xx) |",
        "|---|---|---|---|",
    ]
    for verb, resource in sorted(keys, key=lambda k: (k[1], k[0])):
        mine = requests.operator.get((verb, resource), 0) / n
        everyone = f"{requests.all_clients.get((verb, resource), 0) / n:.2f}"
        refused = [
            f"{code}: {value / n:.2f}"
            for (v, r, code), value in sorted(requests.refused.items())
            if (v, r) == (verb, resource) and value
        ]
        if refused:
            everyone += f" ({', '.join(refused)})"
        rows.append(f"| {verb} | {resource} | {mine:.2f} | {everyone} |")
    ops = requests.operator
    total = sum(ops.values()) / n
    writes = sum(v for (verb, _), v in ops.items() if verb in WRITE_VERBS) / n
    lists = sum(v for (verb, _), v in ops.items() if verb == "LIST") / n
    events = sum(v for (verb, res), v in ops.items() if verb in WRITE_VERBS and is_event(res)) / n
    rows.append(
        f"| **all** | | **{total:.2f}** ({writes:.2f} writes, of them {events:.2f} on Events; "
        f"{lists:.2f} LISTs) | {sum(requests.all_clients.values()) / n:.2f} |"
    )
    return "\n".join(rows)


def is_event(resource: str) -> bool:
    return resource in ("events", "events.events.k8s.io")


def summary_table(rounds: list[Round]) -> str:
    rows = [
        "| N | limit: all created (before / after) | CronJob p50 / p99 / last "
        "| Almanac p50 / p99 / last | Almanac last / limit | next set | RSS in hand → after "
        "| CPU per fire | operator requests per fire (writes, LISTs) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        n, cron, alm = r.n, r.cron, r.alm
        if cron is None or cron.lateness is None:
            cron_cell = "skipped" if cron is None else "not measured"
        else:
            c = cron.lateness
            cron_cell = f"{c.quantile(50):.1f} / {c.quantile(99):.1f} / {c.last:.1f} s"
        a = alm.lateness
        ops = alm.requests.operator
        writes = sum(v for (verb, _), v in ops.items() if verb in WRITE_VERBS) / n
        lists = sum(v for (verb, _), v in ops.items() if verb == "LIST") / n
        rows.append(
            f"| {n} | {r.limit.created_in:.2f} / {r.limit_after.created_in:.2f} s | {cron_cell} "
            f"| {a.quantile(50):.2f} / {a.quantile(99):.2f} / {a.last:.2f} s "
            f"| {r.ratio()} | {next_set_cell(alm)} "
            f"| {alm.rss_ready:.0f} → {alm.rss_after:.0f} MB | {cpu_cell(alm)} "
            f"| {sum(ops.values()) / n:.1f} ({writes:.1f}, {lists:.1f}) |"
        )
    return "\n".join(rows)


# --- main -------------------------------------------------------------------------------------


def install_crds(kube: Kubectl) -> None:
    kube.run("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    for crd in sorted((REPO / "crds").glob("*.yaml")):
        name = yaml.safe_load(crd.read_text())["metadata"]["name"]
        kube.run("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")


async def run(
    sizes: list[int],
    skip_cronjob: bool,
    daily: bool,
    fire_only: bool,
    workdir: Path,
    with_calendar: bool = False,
) -> None:
    kube = Kubectl(KUBECONFIG)
    qps = controller_manager_qps()
    print(
        f"Fleet benchmark, {datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs, "
        f"load average before: {load()}; kube-controller-manager client QPS {qps}; "
        + (
            "ScheduledJobs: once a day, at T (--daily)\n"
            if daily
            else "ScheduledJobs: every minute in a window [T, T+30 s]\n"
        )
        + (
            "each referring to a Calendar of Romania's holidays (--calendar)\n"
            if with_calendar
            else ""
        ),
        flush=True,
    )
    install_crds(kube)
    identity = OperatorIdentity(kube, workdir)
    progress("the operator's identity and its FlowSchemas")
    identity.set_up()
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(KUBECONFIG), client_configuration=configuration)
    rounds: list[Round] = []
    lean, _ = await Kube.connect_kubeconfig(str(KUBECONFIG))
    try:
        async with client.ApiClient(configuration) as api:
            bench = Bench(api, lean, workdir, fire_only=fire_only, with_calendar=with_calendar)
            for n in sizes:
                progress(f"N = {n}: the limit (load average {load()})")
                limit = await bench.limit(n)
                cron = None
                if not skip_cronjob:
                    progress(f"N = {n}: CronJob (load average {load()})")
                    cron = await bench.cronjob(n, limit.created_in)
                progress(f"N = {n}: Almanac (load average {load()})")
                alm = await bench.almanac(n, identity, daily)
                progress(f"N = {n}: the limit again (load average {load()})")
                limit_after = await bench.limit(n)
                rounds.append(Round(n, limit, cron, alm, limit_after))
                print(phase_table(rounds[-1], qps) + "\n", flush=True)
    finally:
        await lean.close()
        identity.tear_down()
    if len(rounds) > 1:
        print(summary_table(rounds) + "\n")
    print(f"Load average after: {load()}. Operator logs: {workdir}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("sizes", nargs="*", type=int, default=[100, 1000], metavar="N")
    parser.add_argument(
        "--skip-cronjob", action="store_true", help="leave the CronJob phase out (it is slow)"
    )
    parser.add_argument(
        "--daily",
        action="store_true",
        help="ScheduledJobs fire once a day at T instead of every minute in a window "
        "holding T alone (no NeverFires Warning when the window closes)",
    )
    parser.add_argument(
        "--fire-only",
        action="store_true",
        help="measure Almanac's fire until its last Job is seen, without waiting for the "
        "runs to end, and delete namespaces in the background: at 5,000 the Job controller "
        "(client QPS 20) takes most of an hour to end the runs and delete the Jobs; tear "
        "the control plane down after (make cluster-down)",
    )
    parser.add_argument(
        "--calendar",
        action="store_true",
        help="every ScheduledJob refers to one Calendar, a bank's: Romania's public "
        "holidays and 24 dates in 2027 (none of them today), as a finance team's jobs do",
    )
    args = parser.parse_args()
    if shutil.which("kubectl") is None:
        sys.exit("kubectl is not on PATH")
    workdir = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    asyncio.run(
        run(args.sizes, args.skip_cronjob, args.daily, args.fire_only, workdir, args.calendar)
    )


if __name__ == "__main__":
    main()
