"""What a ScheduledJobRun does now: one pure function from the run, its batch Jobs, its
ScheduledJob and the time to a :class:`RunPlan`.

The plan holds the Jobs to create (``orchestration.plan`` says which), a rerun to create
when the run carries ``almanac.dev/rerun``, every Event (a service started, succeeded,
failed or was skipped; the run started or ended), and the one status patch: phase,
times, services and, when the run ends, the notification state that a delivery then
claims. A Job the API server refused is passed back in ``refused`` and the run is
decided again with that service Failed.

A run whose ``spec.scheduledTime`` is not an instant in the bounds
(:func:`almanac.api.bounds.instant_error`: year 1, 9999, no offset) starts nothing: it
is Failed at once, with a message naming the field and an ``InvalidRun`` Warning Event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from almanac.api.bounds import instant_error
from almanac.api.names import (
    ANNOTATION_RERUN,
    ANNOTATION_RERUN_REQUEST,
    ANNOTATION_SCHEDULED_TIME,
    LABEL_JOB,
    LABEL_RUN,
    LABEL_SERVICE,
    RERUN_MAX_DEPTH,
    TRIGGER_RERUN,
    rerun_name,
)
from almanac.notifications.smtp import SmtpSettings
from almanac.notifications.state import (
    initial_status,
    requested_status,
    should_notify,
    webhook_requested_status,
)
from almanac.notifications.webhook import OFF, WebhookSettings
from almanac.rules import orchestration as orch
from almanac.rules import policy
from almanac.rules.deadlines import deadline_of, job_deadline, late_condition, late_since
from almanac.rules.jobs import owner_reference, run_body
from almanac.rules.plans import Body, PlannedEvent, changed_fields, condition_message
from almanac.rules.policy import (
    LATE_NOTIFICATION,
    LATE_WEBHOOK_NOTIFICATIONS,
    NOTIFICATION,
    WEBHOOK_NOTIFICATIONS,
)
from almanac.rules.rundate import RunDate, run_date, run_variables, with_variables
from almanac.times import format_instant, parse_time, timestamp

__all__ = [
    "RunPlan",
    "batch_job_body",
    "decide_run",
    "invalid_run",
    "job_ended_by_events",
    "job_state",
    "job_view",
    "jobs_not_in_view",
    "jobs_without_pods",
]

#: A Job that has made no Pod this long after its creation is looked into: the Job
#: controller's FailedCreate Events say why (Pod Security, quota, a webhook).
PODS_EXPECTED_WITHIN = timedelta(seconds=10)
#: While a Job still has no Pod, its reason is read again this often.
PODS_RECHECK = timedelta(seconds=30)


@dataclass(frozen=True)
class RunPlan:
    """What to do for one ScheduledJobRun now."""

    status: Body
    """The status fields that change (a merge patch); empty: write nothing."""
    creates: tuple[Body, ...] = ()
    """batch/v1 Jobs to create, in order."""
    rerun: Body | None = None
    """A child run to create (then the annotation is consumed)."""
    consume_rerun: bool = False
    events: tuple[PlannedEvent, ...] = ()
    wake_at: datetime | None = None
    finished_now: bool = False
    """The run ends with this plan (count it, time it)."""
    late_now: bool = False
    """The run becomes Late with this plan (count it)."""


@dataclass(frozen=True)
class _Service:
    name: str
    mandatory: bool
    async_: bool
    raw: Body


def job_state(job: Body) -> orch.JobState:
    """A batch/v1 Job's outcome as orchestration sees it."""
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return orch.JobState(
                orch.Phase.SUCCEEDED,
                "",
                parse_time(status.get("startTime")),
                parse_time(status.get("completionTime")),
            )
        if condition.get("type") == "Failed":
            message = condition.get("message") or condition.get("reason") or "failed"
            return orch.JobState(
                orch.Phase.FAILED,
                message,
                parse_time(status.get("startTime")),
                parse_time(condition.get("lastTransitionTime")),
            )
    return orch.JobState(orch.Phase.RUNNING, "", parse_time(status.get("startTime")))


def job_view(job: Body) -> tuple[object, ...]:
    """What a run's decision reads of one of its batch Jobs: its service, creation time,
    outcome and whether it has made a Pod yet. A change of the Job outside this (the
    Job controller counting ready Pods, or moving a finished one from uncounted to
    counted) decides nothing: of the three status writes the Job controller makes for a
    Job that succeeds, it skips the middle one."""
    meta = job["metadata"]
    return (
        (meta.get("labels") or {}).get(LABEL_SERVICE),
        meta.get("creationTimestamp"),
        job_state(job),
        _without_pods(job),
    )


def _without_pods(job: Body) -> bool:
    """The Job controller has synced the Job (its first sync sets ``startTime`` and
    writes the status, with ``active`` counting the Pods it made) and it has no Pod.
    A Job the controller has not reached yet (a busy controller at its client QPS,
    hundreds of fires at once) is not looked into: that is a queue, not a refusal,
    and reading Events for each such Job would be a LIST per Job on the hot path."""
    status = job.get("status") or {}
    finished = job_state(job).phase is not orch.Phase.RUNNING
    counted = ("active", "ready", "succeeded", "failed", "terminating")
    uncounted = status.get("uncountedTerminatedPods") or {}
    pods = (
        any(status.get(f) for f in counted)
        or any(uncounted.get(f) for f in ("succeeded", "failed"))
        # SuccessCriteriaMet, FailureTarget: its Pods ended, the Job is finishing
        or any(c.get("status") == "True" for c in status.get("conditions") or [])
    )
    return bool(status.get("startTime")) and not finished and not pods


def jobs_without_pods(batch_jobs: Sequence[Body], now: datetime) -> dict[str, str]:
    """The unfinished Jobs that made no Pod within PODS_EXPECTED_WITHIN of their
    creation: service name -> Job name (whose Events the executor then reads)."""
    return {
        (j["metadata"].get("labels") or {}).get(LABEL_SERVICE, ""): j["metadata"]["name"]
        for j in batch_jobs
        if _without_pods(j)
        and (created := parse_time(j["metadata"].get("creationTimestamp"))) is not None
        and now - created >= PODS_EXPECTED_WITHIN
    }


#: Who posts a Job's Events about how it ended, and the reasons of its Warning for a Job
#: that failed for good (its Failed condition's reason; Kubernetes' job controller,
#: ``recordJobFinished``). A success is one Normal ``Completed``.
JOB_CONTROLLER = "job-controller"
JOB_FAILED_REASONS = frozenset(
    {
        "BackoffLimitExceeded",
        "DeadlineExceeded",
        "FailedIndexes",
        "MaxFailedIndexesExceeded",
        "PodFailurePolicy",
    }
)


def jobs_not_in_view(
    run: Body, batch_jobs: Sequence[Body], *, unstarted: bool = False
) -> dict[str, str]:
    """The services the run records as started (Running), and with ``unstarted`` also
    those it records as nothing yet (Pending, or no status), whose Job is not among
    ``batch_jobs``: service name -> Job name. Deleted while it ran (to be created
    again), never created, or finished and removed (``ttlSecondsAfterFinished``) while
    no operator watched: only the Job controller's Events can tell which."""
    seen = {(j["metadata"].get("labels") or {}).get(LABEL_SERVICE) for j in batch_jobs}
    recorded = {s["name"]: s.get("phase") for s in (run.get("status") or {}).get("services") or []}
    wanted = {"Running", "Pending", None} if unstarted else {"Running"}
    return {
        name: orch.job_name(run["metadata"]["name"], name)
        for name in (s["name"] for s in (run.get("spec") or {}).get("services") or [])
        if recorded.get(name) in wanted and name not in seen
    }


def job_ended_by_events(
    run: Body, service: str, job_name: str, events: Sequence[Body]
) -> Body | None:
    """A stand-in for the Job ``job_name`` of ``run``'s ``service`` that the Job
    controller's Events (on it, read by name) say ended, with its outcome; None when
    they say nothing of an end (it was deleted while it ran).

    Why: a Job that finished and was removed while no operator ran (an upgrade, an
    outage, with ``ttlSecondsAfterFinished: 0``) is gone with its status, and a service
    recorded Running whose Job is gone is created again: the service would run twice.
    The Job controller posts how every Job ended (``Completed``, or a Warning with the
    Failed condition's reason), and Events outlive their object (an hour by default):
    the latest such Event decides. Past that hour the Job is created again, as api.md
    says."""
    ends = [
        e
        for e in events
        if JOB_CONTROLLER in ((e.get("source") or {}).get("component"), e.get("reportingComponent"))
        and (e.get("involvedObject") or {}).get("kind") == "Job"
        and (e.get("involvedObject") or {}).get("name") == job_name
        and (
            (e.get("type") == "Normal" and e.get("reason") == "Completed")
            or (e.get("type") == "Warning" and e.get("reason") in JOB_FAILED_REASONS)
        )
    ]
    if not ends:
        return None
    last = max(ends, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
    when = last.get("lastTimestamp") or last.get("eventTime")
    started = next(
        (
            s.get("startTime")
            for s in (run.get("status") or {}).get("services") or []
            if s.get("name") == service
        ),
        None,
    )
    ok = last.get("reason") == "Completed"
    condition = {
        "type": "Complete" if ok else "Failed",
        "status": "True",
        "reason": last.get("reason"),
        "message": (
            f"{last.get('message') or last.get('reason')} (the Job was removed; "
            "its end is read from the Job controller's Event)"
        ),
        "lastTransitionTime": when,
    }
    return {
        "metadata": {
            "name": job_name,
            "labels": {LABEL_RUN: run["metadata"]["name"], LABEL_SERVICE: service},
        },
        "status": {
            "startTime": started,
            **({"completionTime": when} if ok else {}),
            "conditions": [condition],
        },
    }


def _pods_check_at(batch_jobs: Sequence[Body], now: datetime) -> datetime | None:
    """When to look again at Jobs without Pods (young ones when they come of age)."""
    times = []
    for j in batch_jobs:
        created = parse_time(j["metadata"].get("creationTimestamp"))
        if created is not None and _without_pods(j):
            due = created + PODS_EXPECTED_WITHIN
            times.append(due if due > now else now + PODS_RECHECK)
    return min(times, default=None)


def batch_job_body(run: Body, service: Body, when: RunDate | None = None) -> Body:
    """The Job of one service of a run: its template, labelled and owned by the run, and
    (given the run's date) told which run and date it is (:mod:`almanac.rules.rundate`)."""
    run_name = run["metadata"]["name"]
    job = run["spec"]["scheduledJob"]
    template = service.get("jobTemplate") or {}
    meta = template.get("metadata") or {}
    ours = {LABEL_JOB: job, LABEL_RUN: run_name, LABEL_SERVICE: service["name"]}
    job_spec = dict(template.get("spec") or {})
    pod = dict(job_spec.get("template") or {})
    pod_meta = dict(pod.get("metadata") or {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **ours}
    pod["metadata"] = pod_meta
    annotations = dict(meta.get("annotations") or {})
    if when is not None:
        variables = run_variables(run, service["name"], when)
        pod["spec"] = with_variables(pod.get("spec") or {}, variables)
        annotations[ANNOTATION_SCHEDULED_TIME] = format_instant(when.instant)
    job_spec["template"] = pod
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": orch.job_name(run_name, service["name"]),
            "namespace": run["metadata"]["namespace"],
            "labels": {**(meta.get("labels") or {}), **ours},
            "annotations": annotations,
            "ownerReferences": [owner_reference(run)],
        },
        "spec": job_spec,
    }


def _service_status(s: orch.ServiceStatus) -> Body:
    """A status.services item; unset fields are left out (a merge patch replaces lists
    whole, and the schema has no nulls)."""
    item = {
        "name": s.name,
        "phase": s.phase.value,
        "jobName": s.job_name,
        "message": condition_message(s.message) if s.message else None,
        "startTime": timestamp(s.start_time),
        "completionTime": timestamp(s.completion_time),
    }
    return {f: v for f, v in item.items() if v is not None}


def _service_events(old: Mapping[str, Body], new: Sequence[Body]) -> list[PlannedEvent]:
    """A service's start (its Job's name) and its failure or skip. A success is in
    ``status.services`` and in the next service's start or the run's end: an Event for
    it would cost a write per service and tell nothing new (issue 14's budget)."""
    events = []
    for service in new:
        name, phase = service["name"], service["phase"]
        before = (old.get(name) or {}).get("phase")
        if phase == before:
            continue
        job = service.get("jobName")
        if phase == "Failed":
            message = f"service {name} failed: {service.get('message') or 'no message'}"
            events.append(PlannedEvent("Warning", "ServiceFailed", message, name))
        elif phase == "Skipped":
            message = f"service {name} skipped: {service.get('message')}"
            events.append(PlannedEvent("Normal", "ServiceSkipped", message, name))
        elif phase == "Running" and before in (None, "Pending"):
            events.append(
                PlannedEvent("Normal", "ServiceStarted", f"service {name}: Job {job}", name)
            )
    return events


def _run_events(run: Body, status: Body, old_phase: str | None) -> list[PlannedEvent]:
    """How the run ended, on its ScheduledJob (where `kubectl describe sj` shows the
    history, as CronJob's SawCompletedJob). Its start is the job's RunCreated Event."""
    phase, name = status["phase"], run["metadata"]["name"]
    if phase == old_phase:
        return []
    if phase == "Succeeded":
        message = f"run {name} succeeded"
        return [PlannedEvent("Normal", "RunSucceeded", message, name, on_job=True)]
    if phase == "Failed":
        failed = [s["name"] for s in status["services"] if s["phase"] == "Failed"]
        message = f"run {name} failed: service(s) {', '.join(failed)}"
        return [PlannedEvent("Warning", "RunFailed", message, name, on_job=True)]
    return []


def _rerun(
    run: Body, job: Body | None, now: datetime, delay: timedelta, default_time_zone: str
) -> tuple[Body | None, PlannedEvent]:
    """The child run that ``almanac.dev/rerun`` asks for, or why there is none.

    The child's name is derived from the parent (:func:`rerun_name`): a second request,
    or a restart between creating the child and consuming the annotation, still yields
    exactly one child; to try again, rerun the child.
    """
    name, spec = run["metadata"]["name"], run.get("spec") or {}
    status = run.get("status") or {}
    value = (run["metadata"].get("annotations") or {}).get(ANNOTATION_RERUN, "")
    key = f"rerun-{run['metadata'].get('resourceVersion')}"
    phase = status.get("phase")
    if phase not in policy.TERMINAL:
        message = f"run {name} is {phase or 'Pending'}: only a finished run can be rerun"
        return None, PlannedEvent("Warning", "RerunRefused", message, key)
    services = list(spec.get("services") or [])
    only_failed = value.strip().lower() == "failed"
    if only_failed:
        redo = {
            s["name"]
            for s in status.get("services") or []
            if s.get("phase") in ("Failed", "Skipped")
        }
        services = [s for s in services if s["name"] in redo]
        if not services:
            message = f"run {name} has no failed or skipped service to rerun"
            return None, PlannedEvent("Warning", "RerunRefused", message, key)
    if job is None:
        message = f"ScheduledJob {spec.get('scheduledJob')} no longer exists"
        return None, PlannedEvent("Warning", "RerunRefused", message, key)
    child = rerun_name(name)
    if child is None:
        message = (
            f"run {name} is as deep a rerun as a run's name can tell (a run-now's reruns "
            f"end at -z, a fire's at -r{RERUN_MAX_DEPTH}): run the job again instead "
            f"(almanac.dev/run-now)"
        )
        return None, PlannedEvent("Warning", "RerunRefused", message, key)
    when = now.replace(microsecond=0) + delay
    which = "failed and skipped services" if only_failed else "all services"
    # The child stands for the parent's instant and date (rundate), however late it
    # runs, and records the calendars that fire obeyed.
    date = run_date(run, job, default_time_zone)
    body = run_body(
        job,
        child,
        when,
        TRIGGER_RERUN,
        services,
        parent=name,
        time_zone=date.time_zone if date else None,
        original=timestamp(date.instant) if date else None,
        calendars=spec.get("calendars"),  # the calendars the parent's fire obeyed
    )
    body["metadata"]["annotations"] = {
        ANNOTATION_RERUN_REQUEST: str(run["metadata"].get("resourceVersion") or "")
    }
    message = f"created rerun {child} of {which}, starting {timestamp(when)}"
    return body, PlannedEvent("Normal", "RerunCreated", message, child)


def invalid_run(run: Body) -> str | None:
    """Why the run's spec cannot be executed (``path: reason``), or None. The API server
    checks the form of ``spec.scheduledTime`` (RFC 3339); the operator needs an instant
    it can compute with, within a day of the years of :mod:`almanac.api.bounds`."""
    value = (run.get("spec") or {}).get("scheduledTime")
    path = "spec.scheduledTime"
    if not isinstance(value, str):
        return f"{path}: is required (an RFC 3339 instant, e.g. 2027-01-04T00:30:00Z)"
    try:
        scheduled = parse_time(value)
    except ValueError:
        scheduled = None
    if scheduled is None or scheduled.utcoffset() is None:
        return f"{path}: {value!r} is not an RFC 3339 instant (e.g. 2027-01-04T00:30:00Z)"
    problem = instant_error(scheduled)
    return None if problem is None else f"{path}: {problem}"


def _invalid(
    run: Body, status: Body, problem: str, now: datetime, events: list[PlannedEvent]
) -> Body:
    """The status of a run that cannot be executed: Failed now, saying why."""
    name = run["metadata"]["name"]
    events.append(
        PlannedEvent("Warning", "InvalidRun", f"run {name} not executed: {problem}", "invalid")
    )
    desired = {
        "phase": "Failed",
        "message": condition_message(f"not executed: {problem}"),
        "startTime": status.get("startTime") or timestamp(now),
        "completionTime": timestamp(now),
    }
    return changed_fields(status, desired)


def decide_run(
    run: Body,
    batch_jobs: Sequence[Body],
    job: Body | None,
    now: datetime,
    *,
    smtp: SmtpSettings | None = None,
    webhooks: WebhookSettings | None = None,
    rerun_delay: timedelta = timedelta(minutes=1),
    refused: Mapping[str, str] | None = None,
    no_pods: Mapping[str, str] | None = None,
    default_time_zone: str = "UTC",
) -> RunPlan:
    """Everything to do for ``run`` at ``now``, given its Jobs (from the store), its
    ScheduledJob (None when gone), the services whose Job the API server refused and
    those whose Job could not create its Pods (by service name, with the message; see
    :func:`jobs_without_pods`). Pure: the same inputs give the same plan."""
    meta, spec = run["metadata"], run.get("spec") or {}
    status: Body = run.get("status") or {}
    old_phase = status.get("phase")
    if meta.get("deletionTimestamp"):
        # Being deleted (foreground: the garbage collector deletes its Jobs first): a
        # Job gone now was not deleted while its service ran, and one created again
        # would be the service's second (api.md "ScheduledJobRun").
        return RunPlan({})
    rerun, events, consume = None, [], False
    if ANNOTATION_RERUN in (meta.get("annotations") or {}):
        rerun, event = _rerun(run, job, now, rerun_delay, default_time_zone)
        events.append(event)
        consume = True
    if old_phase in policy.TERMINAL:
        return RunPlan({}, (), rerun, consume, tuple(events))
    invalid = invalid_run(run)
    if invalid is not None:
        failed = _invalid(run, status, invalid, now, events)
        return RunPlan(failed, (), rerun, consume, tuple(events), finished_now=True)

    services = [
        _Service(s["name"], bool(s.get("mandatory")), bool(s.get("async")), s)
        for s in spec.get("services") or []
    ]
    jobs = {
        (j["metadata"].get("labels") or {}).get(LABEL_SERVICE, ""): job_state(j) for j in batch_jobs
    }
    recorded = {
        s["name"]: orch.ServiceStatus(
            s["name"],
            orch.Phase(s.get("phase") or "Pending"),
            s.get("jobName"),
            s.get("message") or "",
            parse_time(s.get("startTime")),
        )
        for s in status.get("services") or []
    }
    for name, message in (refused or {}).items():
        recorded[name] = orch.ServiceStatus(
            name,
            orch.Phase.FAILED,
            orch.job_name(meta["name"], name),
            f"the API server refused the Job: {message}",
        )
        jobs.pop(name, None)
    plan = orch.plan(
        orch.RunState(
            meta["name"],
            services,
            parse_time(spec.get("scheduledTime")) or now,
            now,
            jobs,
            recorded,
            parse_time(status.get("startTime")),
            parse_time(status.get("completionTime")),
        )
    )
    by_name = {s.name: s.raw for s in services}
    desired: Body = {
        "phase": plan.phase.value,
        "startTime": timestamp(plan.start_time),
        "completionTime": timestamp(plan.completion_time),
        "services": [_service_status(s) for s in plan.services],
    }
    if spec.get("calendars"):  # the audit record, with the run's first status write
        desired["calendars"] = spec["calendars"]
    for item in desired["services"]:
        refusal = (no_pods or {}).get(item["name"])
        if refusal and item["phase"] == "Running":
            item["message"] = f"no Pod created yet: {refusal}"
            text = f"service {item['name']}: Job {item.get('jobName')} creates no Pod: {refusal}"
            events.append(PlannedEvent("Warning", "ServicePodsRefused", text, text))
    old_services = {s["name"]: s for s in status.get("services") or []}
    events += _service_events(old_services, desired["services"])
    events += _run_events(run, desired, old_phase)
    if plan.finished:
        # Written with the final phase: a restart then knows whether a mail is due.
        wanted = ((job or {}).get("spec") or {}).get("notifications") or {}
        mail = _mails(wanted, smtp)
        notification, problem = initial_status(
            plan.phase.value,
            on_success=mail and bool(wanted.get("onSuccess")),
            on_failure=mail and bool(wanted.get("onFailure")),
            to=wanted.get("to"),
            settings=smtp,
        )
        desired[NOTIFICATION] = notification.model_dump(by_alias=True, mode="json")
        if problem is not None:
            events.append(PlannedEvent(problem.type, problem.reason, problem.message, "initial"))
        asked = should_notify(
            bool(wanted.get("onSuccess")), bool(wanted.get("onFailure")), plan.phase.value
        )
        events += _webhook_states(
            WEBHOOK_NOTIFICATIONS, asked, wanted, webhooks, desired, "initial"
        )
    deadline, late_now = deadline_of(run, job_deadline(job)), False
    if late_since(run) is not None:
        deadline = None  # late once: nothing more to wait for
    if deadline is not None:
        # When its last service ended, as its Jobs say (the run's completionTime is when
        # the operator saw it, which after a downtime is later).
        ended = (
            max((s.completion_time for s in plan.services if s.completion_time), default=None)
            or plan.completion_time
            if plan.finished
            else None
        )
        # A run that ended is late if it ended after the deadline (the operator was down
        # when it passed); one still going is late from the deadline on.
        if (ended > deadline) if ended is not None else (now >= deadline):
            late_now = True
            desired["conditions"] = [
                *(status.get("conditions") or []),
                late_condition(deadline, str((job or {})["spec"]["runDeadline"]), now),
            ]
            events += _late(run, job or {}, deadline, smtp, webhooks, desired)
    wake_deadline = None if plan.finished or late_now else deadline
    return RunPlan(
        status=changed_fields(status, desired),
        creates=tuple(
            batch_job_body(run, by_name[name], run_date(run, job, default_time_zone))
            for name in plan.create
        ),
        rerun=rerun,
        consume_rerun=consume,
        events=tuple(events),
        wake_at=min(
            (
                t
                for t in (plan.wake_at, _pods_check_at(batch_jobs, now), wake_deadline)
                if t is not None
            ),
            default=None,
        ),
        finished_now=plan.finished,
        late_now=late_now,
    )


def _late(
    run: Body,
    job: Body,
    deadline: datetime,
    smtp: SmtpSettings | None,
    webhooks: WebhookSettings | None,
    desired: Body,
) -> list[PlannedEvent]:
    """A run that just became late: its RunLate Event (on the job, beside RunFailed,
    once: keyed by the run) and, in ``desired``, the state of the e-mail about it,
    written with the condition so that a restart cannot forget it (as for the outcome's
    e-mail, :mod:`almanac.notifications.state`)."""
    name, spec = run["metadata"]["name"], run.get("spec") or {}
    written = job["spec"]["runDeadline"]
    message = (
        f"run {name} is late: not finished by {timestamp(deadline)}, runDeadline {written} "
        f"after {spec.get('scheduledTime')}"
    )
    events = [PlannedEvent("Warning", "RunLate", message, name, on_job=True)]
    wanted = job["spec"].get("notifications") or {}
    notification, problem = requested_status(
        _mails(wanted, smtp) and bool(wanted.get("onLate")), to=wanted.get("to"), settings=smtp
    )
    desired[LATE_NOTIFICATION] = notification.model_dump(by_alias=True, mode="json")
    if problem is not None:
        events.append(PlannedEvent(problem.type, problem.reason, problem.message, "late"))
    asked = bool(wanted.get("onLate"))
    events += _webhook_states(LATE_WEBHOOK_NOTIFICATIONS, asked, wanted, webhooks, desired, "late")
    return events


def _mails(wanted: Body, smtp: SmtpSettings | None) -> bool:
    """Whether the switches of ``spec.notifications`` ask for an e-mail as well: always,
    unless the job has webhooks, names no recipient, and the operator has no SMTP server
    (it is notified by its webhooks; an e-mail it never asked for would only add a
    NotificationNotConfigured warning to every run)."""
    return not wanted.get("webhooks") or bool(wanted.get("to")) or smtp is not None


def _webhook_states(
    field: str,
    asked: bool,
    wanted: Body,
    settings: WebhookSettings | None,
    desired: Body,
    key: str,
) -> list[PlannedEvent]:
    """The first state of each of the job's webhooks for one event, in ``desired[field]``
    (item ``i`` is ``spec.notifications.webhooks[i]``'s), written with what it tells so
    that a restart cannot forget it; nothing when the job has no webhook. Webhooks off:
    one Event says so (the states say it for each)."""
    webhooks = wanted.get("webhooks") or []
    if not isinstance(webhooks, list) or not webhooks:
        return []
    states: list[Body] = []
    events: list[PlannedEvent] = []
    for index in range(len(webhooks)):
        state, problem = webhook_requested_status(asked, index=index, settings=settings)
        states.append(state.model_dump(by_alias=True, mode="json", exclude_none=True))
        if problem is not None and not events:
            message = f"Not sent to spec.notifications.webhooks: {OFF}."
            events.append(PlannedEvent(problem.type, problem.reason, message, f"{key}-webhooks"))
    desired[field] = states
    return events
