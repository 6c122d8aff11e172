"""The e-mail about a finished or a late run: what happened (:class:`RunReport`) and
the message that tells it (:func:`compose_message`). A webhook's POST
(:mod:`almanac.notifications.webhook`) carries the same subject and text
(:func:`subject_of`, :func:`text_of`) and the same identity (:func:`notification_id`).

A late run's e-mail (``notifications.onLate``) says how late, which services are still
running, and how to look at them; the outcome's e-mail follows when the run ends, if
asked for. Their Message-IDs differ (``late`` instead of the outcome).

The subject names the outcome, the job and the scheduled time; the body gives the run's
times (in UTC and in the job's time zone), its services, the failed services' messages
and the ``kubectl`` commands to look at the failure and to rerun it. Headers carry the
run's identity (``X-Almanac-*``) and a deterministic ``Message-ID`` (run, namespace,
outcome and the run's uid), so that a message sent twice is recognised as one.

Pure: no network, no clock. Imports :mod:`almanac.times` (how instants and durations are
written) and the standard library; nothing else of Almanac.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from almanac.times import format_duration, format_instant

__all__ = [
    "LateReport",
    "RunReport",
    "ServiceReport",
    "Trigger",
    "compose_message",
    "notification_id",
    "outcome_of",
    "subject_of",
    "text_of",
]

RunPhase = Literal["Pending", "Running", "Succeeded", "Failed"]
ServicePhase = Literal["Pending", "Running", "Succeeded", "Failed", "Skipped"]
Trigger = Literal["Schedule", "RunNow", "Rerun", "Backfill"]

# A pod's termination message can be kilobytes long; the e-mail keeps its beginning.
_MAX_SERVICE_MESSAGE = 2000


# -- what happened: the input of the composer -----------------------------------------------


@dataclass(frozen=True)
class ServiceReport:
    """One service of a run, as in ``status.services[]``."""

    name: str
    phase: ServicePhase
    job_name: str | None = None
    message: str = ""


@dataclass(frozen=True)
class LateReport:
    """That a run is late: set on a report, it makes the e-mail the lateness e-mail."""

    since: datetime
    """When the run was found late (its Late condition's transition)."""
    message: str
    """The condition's message: the deadline and the runDeadline."""
    run_deadline: str
    """``spec.runDeadline`` as the job writes it (``2h``)."""


@dataclass(frozen=True)
class RunReport:
    """A finished run, as the e-mail tells it."""

    job: str
    """Name of the ScheduledJob."""
    namespace: str
    run: str
    """Name of the ScheduledJobRun."""
    run_uid: str
    """``metadata.uid`` of the run: makes the Message-ID unique across clusters that share
    namespace and job names (staging and production mailing the same team)."""
    scheduled_time: datetime
    trigger: Trigger
    phase: RunPhase
    services: tuple[ServiceReport, ...]
    parent_run: str | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    time_zone: str | None = None
    """The job's ``spec.timeZone``; the scheduled time is also shown in it."""
    late: LateReport | None = None
    """Set for the e-mail about lateness (``notifications.onLate``)."""

    @property
    def news_time(self) -> datetime | None:
        """When what the e-mail tells happened: the run became late, or it ended."""
        return self.late.since if self.late is not None else self.completion_time

    def __post_init__(self) -> None:
        for name in ("scheduled_time", "start_time", "completion_time"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"RunReport.{name} must be timezone-aware, got {value!r}")
        if not self.run_uid:
            raise ValueError("RunReport.run_uid is required (metadata.uid of the run)")


# -- the message ----------------------------------------------------------------------------


def outcome_of(report: RunReport) -> Literal["late", "failed", "succeeded"]:
    """What the notification tells: ``late``, ``failed`` or ``succeeded``."""
    return "late" if report.late else "failed" if report.phase == "Failed" else "succeeded"


def subject_of(report: RunReport) -> str:
    """The e-mail's Subject, also the first line of a webhook's message."""
    headline = {"late": "LATE", "failed": "FAILED", "succeeded": "Succeeded"}[outcome_of(report)]
    scheduled = report.scheduled_time.astimezone(ZoneInfo("UTC"))
    return (
        f"[Almanac] {headline} {report.namespace}/{report.job} "
        f"run {report.run} (scheduled {scheduled:%Y-%m-%d %H:%M} UTC)"
    )


def text_of(report: RunReport) -> str:
    """The e-mail's body, also the text of a webhook's message: one wording for both."""
    return _late_body(report, report.late) if report.late else _body(report)


def notification_id(report: RunReport) -> str:
    """Names one notification of one run (run, namespace, outcome, the run's uid), never
    the clock: the Message-ID's left part and a webhook's idempotency key, so a
    notification sent twice is recognised as one."""
    return f"{report.run}.{report.namespace}.{outcome_of(report)}.{report.run_uid}"


def compose_message(report: RunReport, *, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """The e-mail for a finished run. Pure: the same report gives the same message."""
    if not recipients:
        raise ValueError("compose_message needs at least one recipient")
    message = EmailMessage()
    message["Subject"] = subject_of(report)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    # The time the run ended, not the time of sending: a resent message is identical.
    message["Date"] = format_datetime(report.news_time or report.scheduled_time)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "almanac.dev"
    message["Message-ID"] = f"<{notification_id(report)}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    message["X-Almanac-Scheduled-Job"] = report.job
    message["X-Almanac-Namespace"] = report.namespace
    message["X-Almanac-Run"] = report.run
    message["X-Almanac-Phase"] = report.phase
    if report.late:
        message["X-Almanac-Late"] = "true"
    message["X-Almanac-Trigger"] = report.trigger
    message["X-Almanac-Scheduled-Time"] = format_instant(report.scheduled_time)
    if report.parent_run:
        message["X-Almanac-Parent-Run"] = report.parent_run
    text = text_of(report)
    # Plain 7bit when possible, so that the raw message (a mail log, an mbox) reads like
    # the mail, and long kubectl lines are not broken by quoted-printable soft breaks.
    plain = text.isascii() and max(map(len, text.splitlines())) <= 998
    message.set_content(text, cte="7bit" if plain else None)
    return message


def _body(report: RunReport) -> str:
    failed = report.phase == "Failed"
    ns, run = shlex.quote(report.namespace), shlex.quote(report.run)
    failures = [s for s in report.services if s.phase == "Failed"]
    lines = [
        f"Run {report.run} of ScheduledJob {report.namespace}/{report.job} "
        f"{'FAILED' if failed else 'succeeded'}.",
        "",
        f"  ScheduledJob:  {report.job}",
        f"  Namespace:     {report.namespace}",
        f"  Run:           {report.run}",
        f"  Trigger:       {_trigger(report)}",
        f"  Scheduled:     {_when(report.scheduled_time, report.time_zone)}",
    ]
    if report.start_time is not None:
        lines.append(f"  Started:       {_utc(report.start_time)}")
    if report.completion_time is not None:
        took = ""
        if report.start_time is not None:
            took = f"  (took {format_duration(report.completion_time - report.start_time)})"
        lines.append(f"  Finished:      {_utc(report.completion_time)}{took}")
    lines += ["", "Services:", *_table(report.services)]
    for service in failures:
        lines += ["", f"Service {service.name} failed:"]
        text = service.message.strip() or "(no message)"
        if len(text) > _MAX_SERVICE_MESSAGE:
            text = text[:_MAX_SERVICE_MESSAGE] + " … (cut; see the logs)"
        lines += [f"  {line}".rstrip() for line in text.splitlines()]
    if failed and not failures:
        lines += ["", "No service reported a failure; the run's events may tell why."]
    lines += ["", "What to do:"]
    for service in failures:
        if service.job_name:
            lines += [
                f"  See the logs of {service.name}:",
                f"    kubectl -n {ns} logs job/{shlex.quote(service.job_name)}",
            ]
        else:
            lines.append(f"  No Job was created for {service.name}; see the run's events.")
    lines += [
        "  See the run, its services and its events:",
        f"    kubectl -n {ns} describe sjr {run}",
    ]
    if failed:
        lines += [
            "  Rerun all its services:",
            f"    kubectl -n {ns} annotate sjr {run} almanac.dev/rerun=now",
            "  Rerun only the failed and skipped services:",
            f"    kubectl -n {ns} annotate sjr {run} almanac.dev/rerun=failed",
        ]
    flag = "onFailure" if failed else "onSuccess"
    lines += [
        "",
        "-- ",
        f"Sent by Almanac because spec.notifications.{flag} is true",
        f"on ScheduledJob {report.namespace}/{report.job}.",
    ]
    return "\n".join(lines) + "\n"


def _late_body(report: RunReport, late: LateReport) -> str:
    ns, run = shlex.quote(report.namespace), shlex.quote(report.run)
    lines = [
        f"Run {report.run} of ScheduledJob {report.namespace}/{report.job} is LATE: "
        f"{late.message}.",
        "",
        f"  ScheduledJob:  {report.job}",
        f"  Namespace:     {report.namespace}",
        f"  Run:           {report.run}",
        f"  Trigger:       {_trigger(report)}",
        f"  Scheduled:     {_when(report.scheduled_time, report.time_zone)}",
        f"  Deadline:      runDeadline {late.run_deadline}",
        f"  Late since:    {_utc(late.since)}",
        f"  Phase:         {report.phase}",
    ]
    if report.start_time is not None:
        lines.append(
            f"  Started:       {_utc(report.start_time)}"
            f"  (running {format_duration(late.since - report.start_time)})"
        )
    lines += ["", "Services:", *_table(report.services)]
    lines += ["", "What to do:"]
    for service in report.services:
        if service.phase == "Running" and service.job_name:
            lines += [
                f"  See the logs of {service.name}, still running:",
                f"    kubectl -n {ns} logs job/{shlex.quote(service.job_name)}",
            ]
    lines += [
        "  See the run, its services and its events:",
        f"    kubectl -n {ns} describe sjr {run}",
        "",
        "-- ",
        "Sent by Almanac because spec.notifications.onLate is true",
        f"on ScheduledJob {report.namespace}/{report.job}.",
    ]
    return "\n".join(lines) + "\n"


def _table(services: Sequence[ServiceReport]) -> list[str]:
    if not services:
        return ["  (none)"]
    rows = [("SERVICE", "PHASE", "JOB")] + [(s.name, s.phase, s.job_name or "-") for s in services]
    name_width = max(len(row[0]) for row in rows)
    phase_width = max(len(row[1]) for row in rows)
    return [f"  {n:<{name_width}}  {p:<{phase_width}}  {j}" for n, p, j in rows]


def _trigger(report: RunReport) -> str:
    if report.trigger == "Rerun":
        return f"Rerun of {report.parent_run}" if report.parent_run else "Rerun"
    if report.trigger == "RunNow":
        return "RunNow (run now, outside the schedule)"
    if report.trigger == "Backfill":
        return "Backfill (a past instant of the schedule, run later on purpose)"
    return report.trigger


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(ZoneInfo('UTC')):%Y-%m-%d %H:%M:%S} UTC"


def _when(moment: datetime, time_zone: str | None) -> str:
    text = _utc(moment)
    if time_zone and time_zone not in ("UTC", "Etc/UTC"):
        try:
            local = moment.astimezone(ZoneInfo(time_zone))
        except (ZoneInfoNotFoundError, ValueError, OSError):
            return text  # the job's zone is validated elsewhere; UTC alone is still right
        text += f"  ({local:%Y-%m-%d %H:%M:%S %Z}, {time_zone})"
    return text
