"""The API's names (group, plurals, labels, annotations), and names derived from what
things are: the lock against doing a thing twice.

Pure (no Kubernetes client, no clock): the operator, the plugin and the tests agree on
these names by importing them from here, and the command-line tools do so without
loading the operator.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

__all__ = [
    "ANNOTATION_RERUN",
    "ANNOTATION_RERUN_REQUEST",
    "ANNOTATION_RUN_NOW",
    "ANNOTATION_SCHEDULED_TIME",
    "API_VERSION",
    "BACKFILLS",
    "CALENDARS",
    "CALENDAR_KINDS",
    "CLUSTER_CALENDARS",
    "COMPONENT",
    "CONDITION_LATE",
    "GROUP",
    "LABEL_BACKFILL",
    "LABEL_JOB",
    "LABEL_RUN",
    "LABEL_SERVICE",
    "RERUN_MAX_DEPTH",
    "RUNS",
    "RUN_NOW_MARK",
    "RUN_NOW_RERUN_MARKS",
    "SCHEDULED_JOBS",
    "TRIGGERS",
    "TRIGGER_BACKFILL",
    "TRIGGER_RERUN",
    "TRIGGER_RUN_NOW",
    "TRIGGER_SCHEDULE",
    "VERSION",
    "calendar_key",
    "manual_run_name",
    "rerun_name",
    "run_name",
    "trigger_of",
]

GROUP: Final = "almanac.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
SCHEDULED_JOBS: Final = "scheduledjobs"
RUNS: Final = "scheduledjobruns"
CALENDARS: Final = "calendars"
BACKFILLS: Final = "backfills"
CLUSTER_CALENDARS: Final = "clustercalendars"
CALENDAR_KINDS: Final = ("Calendar", "ClusterCalendar")
"""What ``calendarRefs[].kind`` may name; the first is the default."""
COMPONENT: Final = "almanac-operator"
"""Who the operator is in Events (source, reportingComponent)."""

LABEL_JOB: Final = "almanac.dev/scheduled-job"
LABEL_RUN: Final = "almanac.dev/run"
LABEL_SERVICE: Final = "almanac.dev/service"
LABEL_BACKFILL: Final = "almanac.dev/backfill"
"""On a run a Backfill created: which one (``kubectl get sjr -l almanac.dev/backfill=X``)."""

ANNOTATION_RERUN = "almanac.dev/rerun"
ANNOTATION_RERUN_REQUEST: Final = "almanac.dev/rerun-request"
"""On a rerun: its parent's resourceVersion when it was asked for. A retry that meets
the child (the operator stopped, or an answer was lost, before the parent's annotation
was consumed) tells its own request from a second one by it."""
ANNOTATION_RUN_NOW = "almanac.dev/run-now"
ANNOTATION_SCHEDULED_TIME: Final = "almanac.dev/scheduled-time"
"""On every Job of a run: the run's scheduled instant (RFC 3339 UTC), as CronJob's
``batch.kubernetes.io/cronjob-scheduled-timestamp``."""

CONDITION_LATE: Final = "Late"
"""A run's condition once it is unfinished ``runDeadline`` after its scheduled time."""

# What created a run: its ``spec.trigger``, and ALMANAC_TRIGGER in its Jobs.
TRIGGER_SCHEDULE: Final = "Schedule"
TRIGGER_RUN_NOW: Final = "RunNow"
TRIGGER_RERUN: Final = "Rerun"
TRIGGER_BACKFILL: Final = "Backfill"
TRIGGERS: Final = (TRIGGER_SCHEDULE, TRIGGER_RUN_NOW, TRIGGER_RERUN, TRIGGER_BACKFILL)
LEGACY_RUN_NOW: Final = "Manual"
"""How runs made by ``almanac.dev/run-now`` were marked before ``RunNow``: read as it."""


def trigger_of(spec: dict[str, Any]) -> str:
    """A run's trigger from its spec: ``Schedule`` when unset (the CRD's default), and a
    run stored as ``Manual`` (before ``RunNow``) as ``RunNow``."""
    trigger = str(spec.get("trigger") or TRIGGER_SCHEDULE)
    return TRIGGER_RUN_NOW if trigger == LEGACY_RUN_NOW else trigger


def calendar_key(kind: str, name: str) -> str:
    """How a referenced calendar is looked up among a job's calendars: a Calendar (of
    the job's namespace) by its name, a ClusterCalendar as ``ClusterCalendar/<name>``.
    Object names hold no ``/``, so the two never meet, and every caller that already
    passes Calendars by name keeps doing so."""
    return name if kind == CALENDAR_KINDS[0] else f"{kind}/{name}"


def run_name(job: str, scheduled: datetime) -> str:
    """`<job>-<unix minutes>`, as CronJob names its Jobs: one name per fire."""
    return f"{job}-{int(scheduled.timestamp()) // 60}"


def manual_run_name(job: str, now: datetime) -> str:
    """`<job>-<unix minutes>-m<second><tenth>` (`-m375`: 37.5 s into the minute).

    A run-now never takes a scheduled fire's name, two run-nows a second apart do not
    collide, and the suffix fits the 5 characters the CRD leaves after the minutes
    (docs/crds.md)."""
    return f"{run_name(job, now)}-m{now.second:02d}{now.microsecond // 100_000}"


RERUN_MAX_DEPTH: Final = 999
"""A fire's reruns are ``-r1`` to ``-r999``: a deeper one would pass the 5 characters
the CRD leaves after the minutes (docs/crds.md)."""
RUN_NOW_MARK: Final = "m"
RUN_NOW_RERUN_MARKS: Final = "nopqstuvwxyz"
"""A run-now's reruns, one letter each deeper: the letters after ``m``, but ``r`` (a
fire's reruns')."""


def rerun_name(parent: str) -> str | None:
    """The child of a run, one rerun deeper than its parent; None when no name within
    the 5 characters after the minutes could tell it apart (docs/crds.md).

    A fire ``<job>-<minutes>`` is rerun as ``-r1``, then ``-r2`` ... ``-r999``; a run-now
    ``<job>-<minutes>-m480`` keeps its second and tenth, and its letter moves on:
    ``-n480``, then ``-o480`` ... ``-z480`` (``r`` skipped). So every lineage has names of
    its own: the reruns of a fire and of a run-now of the same minute never meet, nor
    those of two run-nows. Derived from the parent alone, so a second rerun annotation
    (or a restart between creating the child and consuming the annotation) finds the
    child already there.
    """
    base, _, suffix = parent.rpartition("-")
    mark, digits = suffix[:1], suffix[1:]
    if base and digits.isdigit():
        if mark == "r":
            depth = int(digits) + 1
            return f"{base}-r{depth}" if depth <= RERUN_MAX_DEPTH else None
        marks = RUN_NOW_MARK + RUN_NOW_RERUN_MARKS
        if mark in marks:
            deeper = marks.index(mark) + 1
            return f"{base}-{marks[deeper]}{digits}" if deeper < len(marks) else None
    return f"{parent}-r1"
