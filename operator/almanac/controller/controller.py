"""The operator's service layer: reacts to what the handlers saw, executes decisions.

The handlers (``handlers.py``) hand every event here. The controller keeps the latest
body of each ScheduledJob, run and Calendar, one timer queue for every wake-up, and a
lock per object so that an event and a timer never act on one object at once. Each
``reconcile_*`` method reads state, asks the pure modules (``schedule``, ``policy``,
``orchestration``) what to do, and does it through ``kube``. Nothing here must be
remembered across restarts: what matters is in the cluster (status fields, objects
whose names say what they are), so a restarted operator makes the same decisions.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from almanac import kube as k
from almanac.api import names as api
from almanac.api.models import Calendar, ScheduledJob
from almanac.api.names import (
    ANNOTATION_RERUN,
    ANNOTATION_RUN_NOW,
    manual_run_name,
    rerun_name,
    run_name,
)
from almanac.controller import metrics
from almanac.controller.settings import Settings
from almanac.controller.timers import TimerQueue
from almanac.errors import InvalidSpec
from almanac.kube import Body, Created, Exists, Kube, Refused
from almanac.notifications import email as notify
from almanac.rules import orchestration as orch
from almanac.rules import policy
from almanac.schedule.engine import NeverFires, Schedule

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)


def key_of(body: Body) -> Key:
    return body["metadata"]["namespace"], body["metadata"]["name"]


def _condition(
    status: str, reason: str, message: str, generation: int | None, previous: list[Body]
) -> Body:
    old = next((c for c in previous if c.get("type") == "Ready"), None)
    changed = old is None or old.get("status") != status
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": k.timestamp(datetime.now(UTC))
        if changed
        else old.get("lastTransitionTime")
        if old
        else None,
    }


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
                k.parse_time(status.get("startTime")),
                k.parse_time(status.get("completionTime")),
            )
        if condition.get("type") == "Failed":
            message = condition.get("message") or condition.get("reason") or "failed"
            return orch.JobState(
                orch.Phase.FAILED,
                message,
                k.parse_time(status.get("startTime")),
                k.parse_time(condition.get("lastTransitionTime")),
            )
    return orch.JobState(orch.Phase.RUNNING, "", k.parse_time(status.get("startTime")))


class _Service:
    """A service of a run's snapshot, as orchestration reads it."""

    def __init__(self, raw: Body) -> None:
        self.raw = raw
        self.name: str = raw["name"]
        self.mandatory: bool = bool(raw.get("mandatory", False))
        self.async_: bool = bool(raw.get("async", False))


class Controller:
    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        clock: Callable[[], datetime] = k.now,
        smtp: notify.SmtpSettings | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.clock = clock
        self.smtp = smtp
        self.timers = TimerQueue(clock)
        self.jobs: dict[Key, Body] = {}
        self.runs: dict[Key, Body] = {}
        self.calendars: dict[Key, Body] = {}
        self.suspended: set[Key] = set()
        self.fired: dict[Key, datetime] = {}  # latest fire handled, ahead of the watch
        self._locks: defaultdict[Any, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warned: dict[Key, tuple[str, int | None]] = {}

    # --- events from the handlers -------------------------------------------------------

    async def scheduled_job_event(self, event_type: str | None, body: Body) -> None:
        key = key_of(body)
        if event_type == "DELETED":
            self.jobs.pop(key, None)
            self.timers.cancel(("job", key))
            self.suspended.discard(key)
            metrics.forget_job(*key)
            return
        self.jobs[key] = body
        metrics.track_job(*key)
        annotations = body["metadata"].get("annotations") or {}
        if ANNOTATION_RUN_NOW in annotations:
            await self.run_now(key, body)
        await self.reconcile_scheduled_job(key)

    async def calendar_event(self, event_type: str | None, body: Body) -> None:
        key = key_of(body)
        if event_type == "DELETED":
            self.calendars.pop(key, None)
        else:
            old = self.calendars.get(key)
            self.calendars[key] = body
            if old is not None and old.get("spec") == body.get("spec"):
                return
        namespace, name = key
        for job_key, job in list(self.jobs.items()):
            refs = [r.get("name") for r in job.get("spec", {}).get("calendarRefs") or []]
            if job_key[0] == namespace and name in refs:
                await self.reconcile_scheduled_job(job_key)

    async def run_event(self, event_type: str | None, body: Body) -> None:
        key = key_of(body)
        if event_type == "DELETED":
            self.runs.pop(key, None)
            self.timers.cancel(("run", key))
            job = body.get("spec", {}).get("scheduledJob")
            if job:
                await self.update_job_history(key[0], job)
            return
        self.runs[key] = body
        annotations = body["metadata"].get("annotations") or {}
        if ANNOTATION_RERUN in annotations:
            await self.rerun(key, body, annotations[ANNOTATION_RERUN])
        await self.reconcile_run(key)

    async def batch_job_event(self, body: Body) -> None:
        labels = body["metadata"].get("labels") or {}
        run = labels.get(api.LABEL_RUN)
        if run:
            await self.reconcile_run((body["metadata"]["namespace"], run))

    # --- ScheduledJobs: firing ------------------------------------------------------------

    def _compile(self, body: Body) -> Schedule:
        """The job's schedule with the Calendars it refers to; InvalidSpec names what is
        wrong, including a referenced Calendar that is missing or malformed."""
        job = ScheduledJob.parse(body)
        namespace = body["metadata"]["namespace"]
        calendars: dict[str, Calendar] = {}
        for ref in job.spec.calendar_refs:
            raw = self.calendars.get((namespace, ref.name))
            if raw is None:
                continue  # build_schedule reports it, naming the field
            try:
                calendars[ref.name] = Calendar.parse(raw)
            except InvalidSpec as error:
                raise InvalidSpec(
                    [(f"Calendar {ref.name}: {e.path}", e.message) for e in error.errors]
                ) from None
        return job.spec.build_schedule(calendars, default_time_zone=self.settings.default_timezone)

    async def reconcile_scheduled_job(self, key: Key) -> None:
        """Fires what is due, records what was missed, and sets the next wake-up."""
        async with self._locks[("job", key)]:
            body = self.jobs.get(key)
            if body is None:
                return
            spec, status = body.get("spec") or {}, body.get("status") or {}
            generation = body["metadata"].get("generation")
            conditions = status.get("conditions") or []
            try:
                schedule = self._compile(body)
            except InvalidSpec as error:
                self.timers.cancel(("job", key))
                missing = all(e.path.startswith("spec.calendarRefs") for e in error.errors)
                await self._not_ready(
                    body, "CalendarNotFound" if missing else "InvalidSchedule", str(error)
                )
                return
            if spec.get("suspend"):
                self.timers.cancel(("job", key))
                self.suspended.add(key)
                await self._set_job_status(
                    body,
                    {
                        "nextScheduleTime": None,
                        "conditions": [
                            _condition(
                                "True",
                                "Suspended",
                                "suspend is true: the job does not fire",
                                generation,
                                conditions,
                            )
                        ],
                    },
                )
                return
            resumed = key in self.suspended
            self.suspended.discard(key)
            self._warned.pop(key, None)

            now = self.clock()
            since = self._since(key, body)
            due = self._due(schedule, since, now)
            decision = policy.decide(due, now, spec.get("startingDeadlineSeconds"), resumed=resumed)
            patch: Body = {}
            if decision.missed:
                patch["missedSchedules"] = await self._record_missed(
                    body, decision.missed, decision.reason
                )
            if decision.start is not None:
                await self.fire(body, decision.start)
                self.fired[key] = decision.start
                patch["lastScheduleTime"] = k.timestamp(decision.start)
            upcoming = schedule.next_fire(now)
            metrics.set_time(
                metrics.NEXT_FIRE, *key, None if isinstance(upcoming, NeverFires) else upcoming
            )
            if isinstance(upcoming, NeverFires):
                self.timers.cancel(("job", key))
                patch["nextScheduleTime"] = None
                patch["conditions"] = [
                    _condition("False", upcoming.reason, upcoming.message, generation, conditions)
                ]
                await self._warn_once(body, "NeverFires", upcoming.message)
            else:
                self.timers.set(("job", key), upcoming, lambda: self.reconcile_scheduled_job(key))
                patch["nextScheduleTime"] = k.timestamp(upcoming)
                patch["conditions"] = [
                    _condition(
                        "True",
                        "Scheduled",
                        f"next fire {k.timestamp(upcoming)}",
                        generation,
                        conditions,
                    )
                ]
            await self._set_job_status(body, patch)

    def _since(self, key: Key, body: Body) -> datetime:
        """The latest instant whose fire was handled: started, or recorded as missed."""
        status = body.get("status") or {}
        candidates = [
            k.parse_time(body["metadata"].get("creationTimestamp")),
            k.parse_time(status.get("lastScheduleTime")),
            k.parse_time((status.get("missedSchedules") or {}).get("lastMissedTime")),
            self.fired.get(key),
        ]
        return max(c for c in candidates if c is not None)

    @staticmethod
    def _due(schedule: Schedule, since: datetime, now: datetime) -> list[datetime]:
        """Fires in (since, now], oldest first. After a long outage this may be many
        (a `* * * * *` job down for a week has 10,080); the engine walks days, not
        minutes, so even a year of them takes about a second."""
        due: list[datetime] = []
        for instant in schedule.fires(since):
            if instant > now:
                break
            due.append(instant)
        return due

    async def _record_missed(self, body: Body, missed: list[datetime], reason: str) -> Body:
        previous = (body.get("status") or {}).get("missedSchedules") or {}
        count = int(previous.get("count") or 0) + len(missed)
        times = ", ".join(k.timestamp(t) or "" for t in missed[-3:])
        message = f"{len(missed)} fire(s) not started, latest {times}: {reason}"
        await self.kube.event(body, "Warning", "MissedSchedule", message)
        metrics.MISSED_FIRES.labels(*key_of(body)).inc(len(missed))
        return {"count": count, "lastMissedTime": k.timestamp(missed[-1]), "message": message}

    async def fire(
        self, body: Body, scheduled: datetime, *, trigger: str = "Schedule", name: str | None = None
    ) -> str | None:
        """Creates the run of one fire, honouring concurrencyPolicy. Returns its name,
        or None when the policy forbade it."""
        namespace, job = key_of(body)
        spec = body.get("spec") or {}
        name = name or run_name(job, scheduled)
        policy_name = spec.get("concurrencyPolicy") or "Allow"
        active = []
        if policy_name != "Allow":  # Allow needs no look at the other runs: create first
            runs = await self.kube.list_objects(api.RUNS, namespace, f"{api.LABEL_JOB}={job}")
            active = [
                r
                for r in runs
                if (r.get("status") or {}).get("phase") not in policy.TERMINAL
                and r["metadata"]["name"] != name
            ]
        if active and policy_name == "Forbid":
            names = ", ".join(r["metadata"]["name"] for r in active)
            await self._record_missed_forbid(body, scheduled, names)
            return None
        if active and policy_name == "Replace":
            for run in active:
                await self.kube.delete(api.RUNS, namespace, run["metadata"]["name"])
                await self.kube.event(
                    body,
                    "Normal",
                    "RunReplaced",
                    f"deleted active run {run['metadata']['name']} (concurrencyPolicy Replace)",
                )
        result = await self.kube.create(
            api.RUNS,
            namespace,
            self._run_body(body, name, scheduled, trigger, spec.get("services") or []),
        )
        if isinstance(result, Created):
            how = trigger
            if trigger == "Schedule":
                lateness = max(0.0, (self.clock() - scheduled).total_seconds())
                metrics.FIRE_LATENESS.labels(namespace, job).observe(lateness)
                how = f"{trigger}, {lateness:.2f}s after it"
            await self.kube.event(
                body,
                "Normal",
                "RunCreated",
                f"created run {name} for {k.timestamp(scheduled)} ({how})",
            )
            # The job's status.active follows when the run's first reconcile sets its
            # phase (update_job_history): not here, so that a minute when thousands of
            # jobs fire creates every run before any bookkeeping.
        elif isinstance(result, Refused):
            await self.kube.event(
                body,
                "Warning",
                "RunRefused",
                f"the API server refused run {name}: {result.message}",
            )
        elif trigger == "Manual":  # Exists: two requests within a tenth of a second
            await self.kube.event(
                body,
                "Warning",
                "RunNowIgnored",
                f"run {name} was created for a request a moment ago",
            )
        return name

    async def _record_missed_forbid(self, body: Body, scheduled: datetime, names: str) -> None:
        status = body.get("status") or {}
        previous = status.get("missedSchedules") or {}
        message = (
            f"fire {k.timestamp(scheduled)} not started: run {names} is still active "
            "(concurrencyPolicy Forbid)"
        )
        await self.kube.event(body, "Warning", "MissedSchedule", message)
        metrics.MISSED_FIRES.labels(*key_of(body)).inc()
        await self._set_job_status(
            body,
            {
                "missedSchedules": {
                    "count": int(previous.get("count") or 0) + 1,
                    "lastMissedTime": k.timestamp(scheduled),
                    "message": message,
                }
            },
        )

    def _run_body(
        self,
        job: Body,
        name: str,
        scheduled: datetime,
        trigger: str,
        services: list[Body],
        parent: str | None = None,
    ) -> Body:
        namespace, job_name = key_of(job)
        spec: Body = {
            "scheduledJob": job_name,
            "scheduledTime": k.timestamp(scheduled),
            "trigger": trigger,
            "services": services,
        }
        if parent:
            spec["parentRun"] = parent
        return {
            "apiVersion": api.API_VERSION,
            "kind": "ScheduledJobRun",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {api.LABEL_JOB: job_name},
                "ownerReferences": [k.owner_reference(job)],
            },
            "spec": spec,
        }

    # --- manual runs and reruns -------------------------------------------------------

    async def run_now(self, key: Key, body: Body) -> None:
        """`almanac.dev/run-now`: consume the annotation, then fire once, now."""
        consumed = await self.kube.patch_annotations(
            api.SCHEDULED_JOBS,
            key[0],
            key[1],
            {ANNOTATION_RUN_NOW: None},
            body["metadata"].get("resourceVersion"),
        )
        if consumed is None:
            # Changed since this event (or gone): the next event carries the newer body.
            log.debug(
                "run-now on %s/%s: the job changed meanwhile; retrying on its next event", *key
            )
            return
        self.jobs[key] = consumed
        now = self.clock()
        await self.fire(
            consumed,
            now.replace(microsecond=0),
            trigger="Manual",
            name=manual_run_name(key[1], now),
        )

    async def rerun(self, key: Key, body: Body, value: str) -> None:
        """`almanac.dev/rerun`: create the child run, then consume the annotation.

        In that order, and with the child's name derived from the parent
        (:func:`rerun_name`), a restart in between or a second annotation still yields
        exactly one child; to try again, rerun the child.
        """
        await self.create_rerun(body, only_failed=value.strip().lower() == "failed")
        consumed = await self.kube.patch_annotations(
            api.RUNS, key[0], key[1], {ANNOTATION_RERUN: None}
        )
        if consumed is not None:
            self.runs[key] = consumed

    async def create_rerun(self, parent: Body, *, only_failed: bool) -> str | None:
        namespace, parent_name = key_of(parent)
        spec, status = parent.get("spec") or {}, parent.get("status") or {}
        phase = status.get("phase")
        if phase not in policy.TERMINAL:
            await self.kube.event(
                parent,
                "Warning",
                "RerunRefused",
                f"run {parent_name} is {phase or 'Pending'}: only a finished run can be rerun",
            )
            return None
        services = list(spec.get("services") or [])
        if only_failed:
            redo = {
                s["name"]
                for s in status.get("services") or []
                if s.get("phase") in ("Failed", "Skipped")
            }
            services = [s for s in services if s["name"] in redo]
            if not services:
                await self.kube.event(
                    parent,
                    "Warning",
                    "RerunRefused",
                    f"run {parent_name} has no failed or skipped service to rerun",
                )
                return None
        job = self.jobs.get((namespace, spec.get("scheduledJob", "")))
        if job is None:
            job = await self.kube.get(api.SCHEDULED_JOBS, namespace, spec.get("scheduledJob", ""))
        if job is None:
            await self.kube.event(
                parent,
                "Warning",
                "RerunRefused",
                f"ScheduledJob {spec.get('scheduledJob')} no longer exists",
            )
            return None
        when = self.clock().replace(microsecond=0) + self.settings.rerun_delay
        name = rerun_name(parent_name)
        body = self._run_body(job, name, when, "Rerun", services, parent=parent_name)
        result = await self.kube.create(api.RUNS, namespace, body)
        if isinstance(result, Created):
            which = "failed and skipped services" if only_failed else "all services"
            await self.kube.event(
                parent,
                "Normal",
                "RerunCreated",
                f"created rerun {name} of {which}, starting {k.timestamp(when)}",
            )
        elif isinstance(result, Exists):
            await self.kube.event(
                parent,
                "Warning",
                "RerunRefused",
                f"run {parent_name} was already rerun as {name}; rerun {name} to try again",
            )
        else:
            await self.kube.event(parent, "Warning", "RerunRefused", result.message)
        return name

    # --- runs: orchestration ------------------------------------------------------------

    async def reconcile_run(self, key: Key) -> None:
        """Starts the services that are due and keeps the run's status current."""
        async with self._locks[("run", key)]:
            body = self.runs.get(key)
            if body is None:
                return
            spec, status = body.get("spec") or {}, body.get("status") or {}
            if status.get("phase") in policy.TERMINAL:
                self._notify_later(key, body)
                return
            services = [_Service(s) for s in spec.get("services") or []]
            by_name = {s.name: s for s in services}
            jobs = {
                (j["metadata"].get("labels") or {}).get(api.LABEL_SERVICE, ""): job_state(j)
                for j in await self.kube.list_jobs(*key)
            }
            recorded = {
                s["name"]: orch.ServiceStatus(
                    s["name"],
                    orch.Phase(s.get("phase") or "Pending"),
                    s.get("jobName"),
                    s.get("message") or "",
                )
                for s in status.get("services") or []
            }
            scheduled = k.parse_time(spec.get("scheduledTime")) or self.clock()
            for _ in range(len(services) + 1):  # a refused Job changes the plan: replan
                plan = orch.plan(
                    orch.RunState(
                        key[1],
                        services,
                        scheduled,
                        self.clock(),
                        jobs,
                        recorded,
                        k.parse_time(status.get("startTime")),
                        k.parse_time(status.get("completionTime")),
                    )
                )
                refused = False
                for name in plan.create:
                    result = await self.kube.create_job(key[0], self._job_body(body, by_name[name]))
                    if isinstance(result, Refused):
                        recorded[name] = orch.ServiceStatus(
                            name,
                            orch.Phase.FAILED,
                            orch.job_name(key[1], name),
                            f"the API server refused the Job: {result.message}",
                        )
                        refused = True
                if not refused:
                    break
            if plan.wake_at is not None:
                self.timers.set(("run", key), plan.wake_at, lambda: self.reconcile_run(key))
            new_status: Body = {
                "phase": plan.phase.value,
                "startTime": k.timestamp(plan.start_time),
                "completionTime": k.timestamp(plan.completion_time),
                "services": [_service_status(s) for s in plan.services],
            }
            old_services = {s["name"]: s for s in status.get("services") or []}
            notification_event = None
            if plan.finished:
                # Written with the final phase: a restart then knows whether it is due.
                notification, notification_event = self._initial_notification(body, plan)
                new_status["notification"] = notification.model_dump(by_alias=True, mode="json")
            if any(status.get(f) != v for f, v in new_status.items()):
                patched = await self.kube.patch_status(api.RUNS, key[0], key[1], new_status)
                if patched is None:
                    return  # the run was deleted meanwhile
                self.runs[key] = patched
                await self._run_events(patched, old_services, status.get("phase"))
                if notification_event is not None:
                    metrics.NOTIFICATION_FAILURES.labels(key[0], spec["scheduledJob"]).inc()
                    await self.kube.event(
                        patched,
                        notification_event.type,
                        notification_event.reason,
                        notification_event.message,
                    )
                if plan.finished:
                    _observe_finished(patched)
                    self._notify_later(key, patched)
            if status.get("phase") != plan.phase.value:
                await self.update_job_history(key[0], spec.get("scheduledJob", ""))

    # --- runs: notifications ------------------------------------------------------------

    def _notifications_spec(self, run: Body) -> Body:
        job = self.jobs.get((run["metadata"]["namespace"], run["spec"]["scheduledJob"]))
        return ((job or {}).get("spec") or {}).get("notifications") or {}

    def _initial_notification(
        self, run: Body, plan: orch.Plan
    ) -> tuple[notify.NotificationStatus, notify.NotificationEvent | None]:
        wanted = self._notifications_spec(run)
        return notify.initial_status(
            plan.phase.value,
            on_success=bool(wanted.get("onSuccess")),
            on_failure=bool(wanted.get("onFailure")),
            to=wanted.get("to"),
            settings=self.smtp,
        )

    def _notify_later(self, key: Key, run: Body) -> None:
        """Delivers a due notification in a task of its own: SMTP never holds up firing
        or orchestration. A Pending state not yet due is put on the timer queue."""
        raw = (run.get("status") or {}).get("notification")
        if not raw:
            return
        status = notify.NotificationStatus.model_validate(raw)
        plan = notify.plan_notification(status, self.clock())
        if isinstance(plan, notify.Wait):
            self.timers.set(
                ("notify", key),
                self.clock() + timedelta(seconds=plan.seconds),
                lambda: self._deliver(key),
            )
        elif isinstance(plan, notify.Send) and not self._locks[("notify", key)].locked():
            task = asyncio.create_task(self._deliver(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, key: Key) -> None:
        async with self._locks[("notify", key)]:
            run = self.runs.get(key)
            raw = ((run or {}).get("status") or {}).get("notification")
            if run is None or not raw:
                return
            status = notify.NotificationStatus.model_validate(raw)
            if not isinstance(notify.plan_notification(status, self.clock()), notify.Send):
                return  # sent meanwhile, or not yet due
            wanted = self._notifications_spec(run)
            new, event = await notify.send_notification(
                status, self._report(run), to=wanted.get("to"), settings=self.smtp, now=self.clock()
            )
            patched = await self.kube.patch_status(
                api.RUNS,
                key[0],
                key[1],
                {"notification": new.model_dump(by_alias=True, mode="json")},
            )
            if patched is None:
                return
            self.runs[key] = patched
            await self.kube.event(patched, event.type, event.reason, event.message)
            if new.state == "Failed":
                metrics.NOTIFICATION_FAILURES.labels(key[0], run["spec"]["scheduledJob"]).inc()
        self._notify_later(key, patched)

    def _report(self, run: Body) -> notify.RunReport:
        spec, status = run["spec"], run.get("status") or {}
        job = self.jobs.get((run["metadata"]["namespace"], spec["scheduledJob"])) or {}
        return notify.RunReport(
            job=spec["scheduledJob"],
            namespace=run["metadata"]["namespace"],
            run=run["metadata"]["name"],
            run_uid=run["metadata"]["uid"],
            scheduled_time=k.parse_time(spec["scheduledTime"]) or self.clock(),
            trigger=spec.get("trigger") or "Schedule",
            phase=status["phase"],
            services=tuple(
                notify.ServiceReport(
                    s["name"], s["phase"], s.get("jobName"), s.get("message") or ""
                )
                for s in status.get("services") or []
            ),
            parent_run=spec.get("parentRun"),
            start_time=k.parse_time(status.get("startTime")),
            completion_time=k.parse_time(status.get("completionTime")),
            time_zone=(job.get("spec") or {}).get("timeZone") or self.settings.default_timezone,
        )

    def _job_body(self, run: Body, service: _Service) -> Body:
        namespace, run_name_ = key_of(run)
        template = service.raw.get("jobTemplate") or {}
        meta = template.get("metadata") or {}
        labels = {
            **(meta.get("labels") or {}),
            api.LABEL_JOB: run["spec"]["scheduledJob"],
            api.LABEL_RUN: run_name_,
            api.LABEL_SERVICE: service.name,
        }
        job_spec = dict(template.get("spec") or {})
        pod = dict(job_spec.get("template") or {})
        pod_meta = dict(pod.get("metadata") or {})
        pod_meta["labels"] = {
            **(pod_meta.get("labels") or {}),
            api.LABEL_JOB: labels[api.LABEL_JOB],
            api.LABEL_RUN: run_name_,
            api.LABEL_SERVICE: service.name,
        }
        pod["metadata"] = pod_meta
        job_spec["template"] = pod
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": orch.job_name(run_name_, service.name),
                "namespace": namespace,
                "labels": labels,
                "annotations": meta.get("annotations") or {},
                "ownerReferences": [k.owner_reference(run)],
            },
            "spec": job_spec,
        }

    async def _run_events(self, run: Body, old: dict[str, Body], old_phase: str | None) -> None:
        status = run.get("status") or {}
        for service in status.get("services") or []:
            before = (old.get(service["name"]) or {}).get("phase")
            if service["phase"] == before:
                continue
            if service["phase"] == "Failed":
                await self.kube.event(
                    run,
                    "Warning",
                    "ServiceFailed",
                    f"service {service['name']} failed: {service.get('message') or 'no message'}",
                )
            elif service["phase"] == "Skipped":
                await self.kube.event(
                    run,
                    "Normal",
                    "ServiceSkipped",
                    f"service {service['name']} skipped: {service.get('message')}",
                )
            elif service["phase"] == "Succeeded":
                await self.kube.event(
                    run,
                    "Normal",
                    "ServiceSucceeded",
                    f"service {service['name']} succeeded: Job {service.get('jobName')}",
                )
            elif service["phase"] == "Running" and before in (None, "Pending"):
                await self.kube.event(
                    run,
                    "Normal",
                    "ServiceStarted",
                    f"service {service['name']}: Job {service.get('jobName')}",
                )
        phase = status.get("phase")
        if phase == old_phase:
            return
        job = self.jobs.get((run["metadata"]["namespace"], run["spec"]["scheduledJob"]))
        if phase == "Succeeded":
            message = f"run {run['metadata']['name']} succeeded"
            targets = [run, job] if job else [run]
            for target in targets:
                await self.kube.event(target, "Normal", "RunSucceeded", message)
        elif phase == "Failed":
            failed = [s["name"] for s in status.get("services") or [] if s["phase"] == "Failed"]
            message = f"run {run['metadata']['name']} failed: service(s) {', '.join(failed)}"
            for target in [run, job] if job else [run]:
                await self.kube.event(target, "Warning", "RunFailed", message)
        elif phase == "Running":
            await self.kube.event(
                run,
                "Normal",
                "RunStarted",
                f"run started (scheduled {run['spec']['scheduledTime']})",
            )

    async def update_job_history(self, namespace: str, job: str) -> None:
        """Refreshes the job's active/lastRun/lastSuccessfulTime and prunes old runs."""
        body = self.jobs.get((namespace, job))
        if body is None:
            return
        runs = await self.kube.list_objects(api.RUNS, namespace, f"{api.LABEL_JOB}={job}")
        spec = body.get("spec") or {}
        prune = policy.to_prune(
            runs,
            int(spec.get("successfulRunsHistoryLimit", 3)),
            int(spec.get("failedRunsHistoryLimit", 1)),
        )
        for name in prune:
            await self.kube.delete(api.RUNS, namespace, name)
        kept = [r for r in runs if r["metadata"]["name"] not in prune]
        summary = policy.summarize(kept)
        metrics.set_time(
            metrics.LAST_SUCCESS, namespace, job, k.parse_time(summary.last_successful_time)
        )
        await self._set_job_status(body, summary.as_status())

    # --- status and conditions --------------------------------------------------------

    async def _set_job_status(self, body: Body, patch: Body) -> None:
        """Merges patch into the job's status if it changes anything."""
        key = key_of(body)
        current = (self.jobs.get(key) or body).get("status") or {}
        patch = {**patch, "observedGeneration": body["metadata"].get("generation")}
        if all(current.get(f) == v for f, v in patch.items()):
            return
        patched = await self.kube.patch_status(api.SCHEDULED_JOBS, key[0], key[1], patch)
        if patched is not None and key in self.jobs:
            self.jobs[key] = patched

    async def _not_ready(self, body: Body, reason: str, message: str) -> None:
        status = body.get("status") or {}
        await self._set_job_status(
            body,
            {
                "nextScheduleTime": None,
                "conditions": [
                    _condition(
                        "False",
                        reason,
                        message,
                        body["metadata"].get("generation"),
                        status.get("conditions") or [],
                    )
                ],
            },
        )
        await self._warn_once(body, reason, message)

    async def _warn_once(self, body: Body, reason: str, message: str) -> None:
        """One Warning Event per problem and generation: no storm, and none again after
        a restart when the condition already says it."""
        key = key_of(body)
        generation = body["metadata"].get("generation")
        if self._warned.get(key) == (reason, generation):
            return
        self._warned[key] = (reason, generation)
        ready: Body = next(
            (
                c
                for c in (body.get("status") or {}).get("conditions") or []
                if c.get("type") == "Ready"
            ),
            {},
        )
        if (ready.get("reason"), ready.get("observedGeneration")) == (reason, generation):
            return
        await self.kube.event(body, "Warning", reason, message)


def _observe_finished(run: Body) -> None:
    """Counts a run that just finished, with its duration and its services'."""
    namespace, job = run["metadata"]["namespace"], run["spec"]["scheduledJob"]
    status = run.get("status") or {}
    metrics.RUNS.labels(namespace, job, status["phase"]).inc()
    start, end = k.parse_time(status.get("startTime")), k.parse_time(status.get("completionTime"))
    if start and end:
        metrics.RUN_DURATION.labels(namespace, job).observe((end - start).total_seconds())
    for service in status.get("services") or []:
        start, end = (
            k.parse_time(service.get("startTime")),
            k.parse_time(service.get("completionTime")),
        )
        if start and end:
            metrics.SERVICE_DURATION.labels(
                namespace, job, service["name"], service["phase"]
            ).observe((end - start).total_seconds())


def _service_status(s: orch.ServiceStatus) -> Body:
    """A status.services item; unset fields are left out (a merge patch replaces lists
    whole, and the schema has no nulls)."""
    item = {
        "name": s.name,
        "phase": s.phase.value,
        "jobName": s.job_name,
        "message": s.message or None,
        "startTime": k.timestamp(s.start_time),
        "completionTime": k.timestamp(s.completion_time),
    }
    return {f: v for f, v in item.items() if v is not None}


__all__ = ["Controller", "job_state"]
