"""Prometheus metrics: what the operator did, for dashboards and alerts.

The series (names are part of the chart's dashboard and alert rules; keep them stable):

===================================================  ==========================================
almanac_runs_total{namespace,scheduledjob,result}    runs that finished, by result
almanac_run_duration_seconds{namespace,scheduledjob} start to completion of finished runs
almanac_service_duration_seconds{...,service,result} one service's Job, by service and result
almanac_fire_lateness_seconds{namespace,scheduledjob} run created minus the scheduled instant
almanac_next_fire_timestamp_seconds                  the next fire of each job (unix seconds)
almanac_last_success_timestamp_seconds               scheduled time of each job's last success
almanac_missed_fires_total{namespace,scheduledjob}   fires that were not started
almanac_runs_late_total{namespace,scheduledjob}      runs still unfinished runDeadline after
                                                     they were due (condition Late)
almanac_notification_failures_total                  e-mails and webhook POSTs given up on (Failed)
almanac_timer_last_tick_timestamp_seconds            when the timer queue last woke (liveness)
almanac_decisions_total{kind}                        decisions made, by kind of object
almanac_decision_failures_total{kind}                decisions that failed (retried with back-off)
===================================================  ==========================================

The ScheduledJob's name is the label ``scheduledjob`` (as kube-state-metrics says
``cronjob``), not ``job``, which Prometheus keeps for the scrape target. The counters of a
job exist at 0 from the moment the operator sees it, so that ``increase()`` counts its
first failure too (a series born at 1 has no increase to show).

Observations are made by the operator instance that sees a transition happen, so a
restarted operator never counts a finished run twice (its phase is already recorded).

The per-job series are kept compactly (:class:`PerJob`: one array of floats per label
set) and turned into samples only when Prometheus scrapes. prometheus_client's own
metric objects keep a lock and a value object per sample: 3.9 KB per job at rest and
14 KB once it has run (its three histograms), 179 MB for 10,000 jobs, more than the
store that holds the jobs themselves (issue 14's budget is 200 MB for all of it).
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Literal

from prometheus_client import REGISTRY, Gauge, start_http_server
from prometheus_client import Counter as _Counter
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

# Run and service durations: seconds to hours (settlement chains run long).
_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
# Lateness of a fire: on time is well under a second; minutes mean trouble.
_LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)

_JOB = ("namespace", "scheduledjob")

#: One (namespace, name) tuple per job, shared by every family's series of the job
#: (nine families each kept a tuple of their own: 2.8 MB more for 10,000 jobs).
_JOB_KEYS: dict[tuple[str, str], tuple[str, str]] = {}


class PerJob:
    """One family of per-job series, as compact as a float per sample.

    The first two labels are always the job's (namespace, scheduledjob); a job's label
    sets are kept together, so that forgetting a job is one dictionary removal. Each
    label set holds one ``array('d')``: a counter its value and creation time, a gauge
    its value, a histogram its bucket counts, its sum and its count. ``labels()``
    returns a short-lived handle with prometheus_client's verbs (``inc``, ``set``,
    ``observe``), so that call sites read as they would with the library's metrics.
    Registered with the default registry, it renders its samples at scrape time; the
    scrape runs in the HTTP server's thread, hence the lock."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        kind: Literal["counter", "gauge", "histogram"],
        buckets: Sequence[float] = (),
    ) -> None:
        assert tuple(labelnames[:2]) == _JOB, "a job's series start with its labels"
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(labelnames)
        self.kind = kind
        self.buckets = tuple(float(b) for b in buckets)
        self._bounds = tuple(repr(b) for b in self.buckets)  # "le" as the library writes it
        self._size = {"counter": 2, "gauge": 1, "histogram": len(self.buckets) + 2}[kind]
        # A job's values: one array, or with more labels than the job's, one per set.
        self._jobs: dict[tuple[str, str], array[float] | dict[tuple[str, ...], array[float]]] = {}
        self._more_labels = len(self.labelnames) > len(_JOB)
        self._lock = threading.Lock()
        REGISTRY.register(self)

    def labels(self, *values: str) -> _Handle:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        return _Handle(self, (values[0], values[1]), values[2:])

    def _get(self, job: tuple[str, str], rest: tuple[str, ...]) -> array[float]:
        """The label set's values, created at zero (the caller holds the lock)."""
        found = self._jobs.get(job)
        if found is None:
            job = _JOB_KEYS.setdefault(job, job)
        if not self._more_labels:
            if found is None:
                found = self._jobs[job] = self._zero()
            assert isinstance(found, array)
            return found
        if found is None:
            found = self._jobs[job] = {}
        assert isinstance(found, dict)
        values = found.get(rest)
        if values is None:
            values = found[rest] = self._zero()
        return values

    def _zero(self) -> array[float]:
        values = array("d", bytes(8 * self._size))
        if self.kind == "counter":
            values[1] = time.time()
        return values

    def _sets(self) -> Iterator[tuple[tuple[str, ...], array[float]]]:
        """Every label set with its values (the caller holds the lock)."""
        for job, found in self._jobs.items():
            if isinstance(found, array):
                yield job, found
            else:
                for rest, values in found.items():
                    yield job + rest, values

    def forget(self, namespace: str, job: str) -> None:
        """Drops every series of the job."""
        with self._lock:
            self._jobs.pop((namespace, job), None)

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = [(key, values.tolist()) for key, values in self._sets()]
        family = self._family()
        for key, values in snapshot:
            if isinstance(family, CounterMetricFamily):
                family.add_metric(key, values[0], created=values[1])
            elif isinstance(family, GaugeMetricFamily):
                family.add_metric(key, values[0])
            elif isinstance(family, HistogramMetricFamily):
                cumulative, running = [], 0.0
                for bound, n in zip(self._bounds, values, strict=False):
                    running += n
                    cumulative.append((bound, running))
                cumulative.append(("+Inf", values[-1]))
                family.add_metric(key, cumulative, values[-2])
        yield family

    def _family(self) -> Metric:
        labels = list(self.labelnames)
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.documentation, labels=labels)
        if self.kind == "gauge":
            return GaugeMetricFamily(self.name, self.documentation, labels=labels)
        return HistogramMetricFamily(self.name, self.documentation, labels=labels)


class _Handle:
    """One label set of a :class:`PerJob` family, for one call."""

    __slots__ = ("_family", "_job", "_rest")

    def __init__(self, family: PerJob, job: tuple[str, str], rest: tuple[str, ...]) -> None:
        self._family, self._job, self._rest = family, job, rest

    def _values(self) -> array[float]:
        return self._family._get(self._job, self._rest)

    def touch(self) -> None:
        """Creates the series at zero (a counter that can show its first increase)."""
        with self._family._lock:
            self._values()

    def inc(self, amount: float = 1) -> None:
        with self._family._lock:
            self._values()[0] += amount

    def set(self, value: float) -> None:
        with self._family._lock:
            self._values()[0] = value

    def remove(self) -> None:
        """Drops this series (a gauge with nothing to show)."""
        jobs = self._family._jobs
        with self._family._lock:
            found = jobs.get(self._job)
            if isinstance(found, dict):
                found.pop(self._rest, None)
                if found:
                    return  # the job's other label sets stay
            jobs.pop(self._job, None)

    def observe(self, value: float) -> None:
        family = self._family
        with family._lock:
            values = self._values()
            for i, bound in enumerate(family.buckets):
                if value <= bound:
                    values[i] += 1
                    break
            values[-2] += value
            values[-1] += 1


RUNS = PerJob("almanac_runs", "Runs that finished, by result.", [*_JOB, "result"], "counter")
RUN_DURATION = PerJob(
    "almanac_run_duration_seconds",
    "Run start to completion.",
    _JOB,
    "histogram",
    _DURATION_BUCKETS,
)
SERVICE_DURATION = PerJob(
    "almanac_service_duration_seconds",
    "One service's Job, start to completion.",
    [*_JOB, "service", "result"],
    "histogram",
    _DURATION_BUCKETS,
)
FIRE_LATENESS = PerJob(
    "almanac_fire_lateness_seconds",
    "Run created minus its scheduled instant.",
    _JOB,
    "histogram",
    _LATENESS_BUCKETS,
)
NEXT_FIRE = PerJob("almanac_next_fire_timestamp_seconds", "Next fire of each job.", _JOB, "gauge")
LAST_SUCCESS = PerJob(
    "almanac_last_success_timestamp_seconds",
    "Scheduled time of each job's latest successful run.",
    _JOB,
    "gauge",
)
MISSED_FIRES = PerJob("almanac_missed_fires", "Fires that were not started.", _JOB, "counter")
RUNS_LATE = PerJob(
    "almanac_runs_late", "Runs still unfinished runDeadline after they were due.", _JOB, "counter"
)
NOTIFICATION_FAILURES = PerJob(
    "almanac_notification_failures", "Notifications given up on.", _JOB, "counter"
)
_PER_JOB = (
    RUNS,
    RUN_DURATION,
    SERVICE_DURATION,
    FIRE_LATENESS,
    NEXT_FIRE,
    LAST_SUCCESS,
    MISSED_FIRES,
    RUNS_LATE,
    NOTIFICATION_FAILURES,
)
#: Per namespace (few series): the library's own counter.
UNTRUSTED_RUNS = _Counter(
    "almanac_untrusted_runs",
    "Runs found that the operator did not create (squatted names, user-created runs): "
    "not executed.",
    ["namespace"],
)
TIMER_TICK = Gauge(
    "almanac_timer_last_tick_timestamp_seconds", "When the timer queue last woke up."
)
#: Per kind of object (a handful of series), as controller-runtime's
#: ``controller_runtime_reconcile_total`` counts per controller: how much work the
#: operator does (a single-service fire is six decisions) and whether it keeps failing.
DECISIONS = _Counter(
    "almanac_decisions",
    "Decisions made: an object's newest state read and what to write about it worked out.",
    ["kind"],
)
DECISION_FAILURES = _Counter(
    "almanac_decision_failures",
    "Decisions that failed (the API server away or refusing, or an error the operator did "
    "not foresee); each is retried with back-off.",
    ["kind"],
)


def exported() -> dict[str, set[str]]:
    """Each series name the operator exports (counters with ``_total``), with its label
    names: the contract with the chart's alerts and dashboard."""
    names = {
        m.name + ("_total" if m.kind == "counter" else ""): set(m.labelnames) for m in _PER_JOB
    }
    names["almanac_untrusted_runs_total"] = {"namespace"}
    names["almanac_timer_last_tick_timestamp_seconds"] = set()
    names["almanac_decisions_total"] = {"kind"}
    names["almanac_decision_failures_total"] = {"kind"}
    return names


def track_kinds(kinds: Sequence[str]) -> None:
    """Creates the per-kind counters at 0, so that ``increase()`` counts the first
    failure too."""
    for kind in kinds:
        DECISIONS.labels(kind)
        DECISION_FAILURES.labels(kind)


def serve(port: int) -> None:
    """Serves /metrics on all interfaces (0 disables it)."""
    if port:
        start_http_server(port)


def set_time(gauge: PerJob, namespace: str, job: str, when: datetime | None) -> None:
    """Sets a per-job timestamp gauge; None removes the series (no next fire, no
    success yet), so that no stale value is ever shown."""
    if when is not None:
        gauge.labels(namespace, job).set(when.timestamp())
    else:
        gauge.labels(namespace, job).remove()


def track_job(namespace: str, job: str) -> None:
    """Creates the job's counters at 0 (idempotent)."""
    for result in ("Succeeded", "Failed"):
        RUNS.labels(namespace, job, result).touch()
    MISSED_FIRES.labels(namespace, job).touch()
    RUNS_LATE.labels(namespace, job).touch()
    NOTIFICATION_FAILURES.labels(namespace, job).touch()


def forget_job(namespace: str, job: str) -> None:
    """A deleted job leaves no series behind, as kube-state-metrics does for a CronJob."""
    for metric in _PER_JOB:
        metric.forget(namespace, job)
    _JOB_KEYS.pop((namespace, job), None)
