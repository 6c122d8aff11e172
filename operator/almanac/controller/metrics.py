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
===================================================  ==========================================

The ScheduledJob's name is the label ``scheduledjob`` (as kube-state-metrics says
``cronjob``), not ``job``, which Prometheus keeps for the scrape target. The counters of a
job exist at 0 from the moment the operator sees it, so that ``increase()`` counts its
first failure too (a series born at 1 has no increase to show).

Observations are made by the operator instance that sees a transition happen, so a
restarted operator never counts a finished run twice (its phase is already recorded).
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram, start_http_server

# Run and service durations: seconds to hours (settlement chains run long).
_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
# Lateness of a fire: on time is well under a second; minutes mean trouble.
_LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)

RUNS = Counter(
    "almanac_runs", "Runs that finished, by result.", ["namespace", "scheduledjob", "result"]
)
RUN_DURATION = Histogram(
    "almanac_run_duration_seconds",
    "Run start to completion.",
    ["namespace", "scheduledjob"],
    buckets=_DURATION_BUCKETS,
)
SERVICE_DURATION = Histogram(
    "almanac_service_duration_seconds",
    "One service's Job, start to completion.",
    ["namespace", "scheduledjob", "service", "result"],
    buckets=_DURATION_BUCKETS,
)
FIRE_LATENESS = Histogram(
    "almanac_fire_lateness_seconds",
    "Run created minus its scheduled instant.",
    ["namespace", "scheduledjob"],
    buckets=_LATENESS_BUCKETS,
)
NEXT_FIRE = Gauge(
    "almanac_next_fire_timestamp_seconds", "Next fire of each job.", ["namespace", "scheduledjob"]
)
LAST_SUCCESS = Gauge(
    "almanac_last_success_timestamp_seconds",
    "Scheduled time of each job's latest successful run.",
    ["namespace", "scheduledjob"],
)
MISSED_FIRES = Counter(
    "almanac_missed_fires", "Fires that were not started.", ["namespace", "scheduledjob"]
)
UNTRUSTED_RUNS = Counter(
    "almanac_untrusted_runs",
    "Runs found that the operator did not create (squatted names, user-created runs): "
    "not executed.",
    ["namespace"],
)
RUNS_LATE = Counter(
    "almanac_runs_late",
    "Runs still unfinished runDeadline after they were due.",
    ["namespace", "scheduledjob"],
)
NOTIFICATION_FAILURES = Counter(
    "almanac_notification_failures", "Notifications given up on.", ["namespace", "scheduledjob"]
)
_PER_JOB: tuple[Counter | Gauge | Histogram, ...] = (
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
TIMER_TICK = Gauge(
    "almanac_timer_last_tick_timestamp_seconds", "When the timer queue last woke up."
)


def serve(port: int) -> None:
    """Serves /metrics on all interfaces (0 disables it)."""
    if port:
        start_http_server(port)


def set_time(gauge: Gauge, namespace: str, job: str, when: datetime | None) -> None:
    """Sets a per-job timestamp gauge; None removes the series (no next fire, no
    success yet), so that no stale value is ever shown."""
    if when is not None:
        gauge.labels(namespace, job).set(when.timestamp())
    else:
        gauge.remove_by_labels({"namespace": namespace, "scheduledjob": job})


def track_job(namespace: str, job: str) -> None:
    """Creates the job's counters at 0 (idempotent)."""
    for result in ("Succeeded", "Failed"):
        RUNS.labels(namespace, job, result)
    MISSED_FIRES.labels(namespace, job)
    RUNS_LATE.labels(namespace, job)
    NOTIFICATION_FAILURES.labels(namespace, job)


def forget_job(namespace: str, job: str) -> None:
    """A deleted job leaves no series behind, as kube-state-metrics does for a CronJob."""
    for metric in _PER_JOB:
        metric.remove_by_labels({"namespace": namespace, "scheduledjob": job})
