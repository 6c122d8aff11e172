"""What a ScheduledJob does now: one pure function from the job, its runs, its Calendars
and the time to a :class:`JobPlan`.

The plan holds every run to create or delete, every Event, and the one status patch:
firing and missed fires (``policy.decide``), concurrencyPolicy, run-now, the Ready
condition, the next fire, and the history that follows from the runs (active, last run,
last success, pruning). One decision, one writer: nothing else writes a job's status, so
no later write can undo an earlier one (a Forbid job's ``missedSchedules`` counts every
missed fire).

A fire whose run already exists (a retry after a write failed, a restart) is not fired
again: the run's name, derived from job and instant, says it happened.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from almanac.api.models import ScheduledJob
from almanac.api.names import (
    ANNOTATION_RUN_NOW,
    API_VERSION,
    LABEL_JOB,
    TRIGGER_RUN_NOW,
    TRIGGER_SCHEDULE,
    manual_run_name,
    run_name,
)
from almanac.api.resolve import resolve
from almanac.errors import InvalidSpec
from almanac.rules import policy
from almanac.rules.deadlines import deadline_of, late_since
from almanac.rules.plans import (
    Body,
    Create,
    PlannedEvent,
    changed_fields,
    condition_message,
    ready_condition,
)
from almanac.schedule.engine import NeverFires, Schedule
from almanac.times import parse_time, timestamp

__all__ = [
    "JobPlan",
    "calendars_applied",
    "decide_job",
    "holds_a_fire_name",
    "owner_reference",
    "run_body",
]


@dataclass(frozen=True)
class JobPlan:
    """What to do for one ScheduledJob now."""

    status: Body = field(default_factory=dict)
    """The status fields that change (a merge patch); empty: write nothing."""
    creates: tuple[Create, ...] = ()
    """ScheduledJobRuns to create, in order, each with its RunCreated Event."""
    deletes: tuple[str, ...] = ()
    """Runs to delete: the active ones a Replace fire replaces, then those pruned."""
    events: tuple[PlannedEvent, ...] = ()
    consume_run_now: bool = False
    """Remove the run-now annotation (first, with the job's resourceVersion)."""
    wake_at: datetime | None = None
    """The next fire: decide again then."""
    fired: datetime | None = None
    """The latest scheduled instant started now (a catch-up may start several)."""
    missed: int = 0
    """Fires recorded as missed by this decision."""
    last_success: datetime | None = None


def owner_reference(owner: Body) -> Body:
    """Makes owner the controller of what it creates, for garbage collection."""
    return {
        "apiVersion": owner.get("apiVersion", API_VERSION),
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def run_body(
    job: Body,
    name: str,
    scheduled: datetime,
    trigger: str,
    services: list[Body],
    parent: str | None = None,
    *,
    time_zone: str | None = None,
    original: str | None = None,
    calendars: list[Body] | None = None,
) -> Body:
    """A ScheduledJobRun of ``job``: a snapshot of its services, owned by it, and of the
    calendars its fire obeyed (:func:`calendars_applied`), which the run's status
    repeats for audits.

    ``trigger`` is one of :data:`almanac.api.names.TRIGGERS`; a kind that creates runs
    (a rerun, a backfill) only chooses it. ``time_zone`` is the zone the run's local
    date is read in (the job's, resolved), ``original`` a rerun's inherited scheduled
    instant (:mod:`almanac.rules.rundate`)."""
    spec: Body = {
        "scheduledJob": job["metadata"]["name"],
        "scheduledTime": timestamp(scheduled),
        "trigger": trigger,
        "services": services,
    }
    if parent:
        spec["parentRun"] = parent
    if original:
        spec["originalScheduledTime"] = original
    if time_zone:
        spec["timeZone"] = time_zone
    if calendars:
        spec["calendars"] = calendars
    return {
        "apiVersion": API_VERSION,
        "kind": "ScheduledJobRun",
        "metadata": {
            "name": name,
            "namespace": job["metadata"]["namespace"],
            "labels": {LABEL_JOB: job["metadata"]["name"]},
            "ownerReferences": [owner_reference(job)],
        },
        "spec": spec,
    }


def calendars_applied(job: ScheduledJob, calendars: Mapping[str, Body]) -> list[Body]:
    """Each calendar the job's schedule was built with, and which version of it: its
    ``resourceVersion`` and, for a feed, the kept copy's content hash (``revision``),
    so that an audit can say which holiday list a fire obeyed."""
    applied: list[Body] = []
    for ref in job.spec.calendar_refs:
        body = calendars.get(ref.key())
        if body is None:
            continue
        item: Body = {
            "kind": ref.kind,
            "name": ref.name,
            "resourceVersion": body["metadata"].get("resourceVersion"),
        }
        if (body.get("spec") or {}).get("source"):
            kept = (body.get("status") or {}).get("source") or {}
            item["revision"] = kept.get("revision")
        applied.append(item)
    return applied


def holds_a_fire_name(run: Body, job: Body) -> bool:
    """Whether ``run`` bears the name ``job`` derives for one of its own fires (an
    instant from its creation on). A run of a deleted predecessor of the same name
    that does (the predecessor fired that instant on a cache that had not seen it
    deleted) is not ``job``'s run but takes that fire's name: RunNameTaken, as a
    squatted name. Its other runs, its history, name none of ``job``'s fires."""
    scheduled = _scheduled_time(run)
    created = parse_time(job["metadata"].get("creationTimestamp"))
    if scheduled is None or (created is not None and scheduled < created):
        return False
    return bool(run["metadata"]["name"] == run_name(job["metadata"]["name"], scheduled))


def _phase(run: Body) -> str:
    return str((run.get("status") or {}).get("phase") or "Pending")


def _scheduled_time(run: Body) -> datetime | None:
    """The run's ``spec.scheduledTime``; None if it has none that reads as a time."""
    value = (run.get("spec") or {}).get("scheduledTime")
    try:
        return parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None


class _Decision:
    """Accumulates one job's plan; :func:`decide_job` drives it."""

    def __init__(
        self,
        job: Body,
        runs: Sequence[Body],
        now: datetime,
        default_time_zone: str = "UTC",
        refused: Mapping[str, str] | None = None,
    ) -> None:
        self.job, self.now = job, now
        self.refused = refused or {}
        """Runs the API server refused to create, by name: their message."""
        self.default_time_zone = default_time_zone
        self.meta, self.spec = job["metadata"], job.get("spec") or {}
        self.status: Body = job.get("status") or {}
        self.generation = self.meta.get("generation")
        self.runs = {r["metadata"]["name"]: r for r in runs}
        self.desired: Body = {"observedGeneration": self.generation}
        self.creates: list[Create] = []
        self.deletes: list[str] = []
        self.events: list[PlannedEvent] = []
        self.missed_count = 0
        self.missed_latest: datetime | None = None
        self.missed_message = ""
        self.fired: datetime | None = None
        self.taken: list[str] = []
        self.calendars: list[Body] = []
        """What :func:`calendars_applied` says; recorded in each scheduled run."""
        self.model: ScheduledJob | None = None
        """The job as the models read it; None when its spec is invalid (then nothing is
        fired, and no run is pruned: the history limits may be what is invalid)."""

    # --- pieces -----------------------------------------------------------------------

    def condition(self, status: str, reason: str, message: str) -> None:
        previous = self.status.get("conditions") or []
        self.desired["conditions"] = [
            ready_condition(status, reason, message, self.generation, previous, self.now)
        ]

    def taken_condition(self) -> list[Body]:
        """RunNameTaken while runs that are not this job's carry its fires' names: runs
        the operator did not create, or a deleted predecessor's (which run on as orphans
        until the garbage collector takes them)."""
        if not self.taken:
            return []
        old = next(
            (c for c in self.status.get("conditions") or [] if c.get("type") == "RunNameTaken"),
            None,
        )
        names = ", ".join(self.taken[:10]) + (" ..." if len(self.taken) > 10 else "")
        return [
            {
                "type": "RunNameTaken",
                "status": "True",
                "reason": "RunNameTaken",
                "message": condition_message(
                    f"runs that are not this job's hold the names of its fires, which are "
                    f"not started: {names}; delete those Almanac did not create (a deleted "
                    "earlier ScheduledJob's runs go with it, by the garbage collector)"
                ),
                "observedGeneration": self.generation,
                "lastTransitionTime": (old or {}).get("lastTransitionTime") or timestamp(self.now),
            }
        ]

    def warn_once(self, reason: str, message: str) -> None:
        """One Warning per problem and generation (none again when the condition
        already says it: the Event may have expired). A suspended job's condition says
        Suspended and names the problem in its message, so there the message tells."""
        ready: Body = next(
            (c for c in self.status.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        now_said: Body = next(iter(self.desired.get("conditions") or []), {})
        said = ready.get("observedGeneration") == self.generation and (
            ready.get("reason") == reason
            or (ready.get("reason"), ready.get("message"))
            == (now_said.get("reason"), now_said.get("message"))
        )
        if not said:
            self.events.append(PlannedEvent("Warning", reason, message, f"{self.generation}"))

    def miss(self, instants: Sequence[datetime], message: str) -> None:
        self.missed_count += len(instants)
        self.missed_latest = max(instants)
        self.missed_message = message
        key = ",".join(timestamp(t) or "" for t in instants[-3:])
        self.events.append(PlannedEvent("Warning", "MissedSchedule", message, key))

    def refuse_run_now(self, why: str) -> None:
        """A run-now that does not run: a Warning saying why, never a missed fire (it is
        not a fire of the schedule, so ``missedSchedules`` and the missed-fires metric
        do not count it). One per annotation: keyed by the resourceVersion that set it."""
        self.events.append(
            PlannedEvent(
                "Warning",
                "RunNowRefused",
                f"not run: {why}",
                self.meta.get("resourceVersion") or "",
            )
        )

    def active(self, besides: str) -> list[str]:
        return [
            name
            for name, run in sorted(self.runs.items())
            if _phase(run) not in policy.TERMINAL and name != besides
        ]

    def lateness(self, active: Sequence[str]) -> str:
        """``; run X is late: ...`` for the active runs past their deadline, so that a
        wedged run is visible the first time it holds a Forbid job's slot."""
        assert self.model is not None
        run_deadline = self.model.spec.deadline()
        late = []
        for name in active:
            run = self.runs[name]
            deadline = deadline_of(run, run_deadline)
            since = late_since(run)
            if since is not None or (deadline is not None and deadline <= self.now):
                due = timestamp(deadline) if deadline is not None else timestamp(since)
                late.append(f"{name} (due by {due})")
        if not late:
            return ""
        return (
            f"; late past its runDeadline {self.model.spec.run_deadline}: {', '.join(late)}"
            if self.model.spec.run_deadline
            else f"; late: {', '.join(late)}"
        )

    def start(self, scheduled: datetime, trigger: str, name: str) -> bool:
        """Creates the run of one fire, honouring concurrencyPolicy; False if forbidden."""
        if name in self.runs:
            return True  # fired already (a retry, or a restart before status was written)
        if name in self.refused:  # its instant passes without a run: missed (api.md)
            why = f"the API server refused run {name}: {self.refused[name]}"
            if trigger == TRIGGER_RUN_NOW:
                self.refuse_run_now(why)
            else:
                self.miss([scheduled], f"fire {timestamp(scheduled)} not started: {why}")
            return False
        assert self.model is not None
        policy_name = self.model.spec.concurrency_policy.value
        active = self.active(besides=name) if policy_name != "Allow" else []
        if active and policy_name == "Forbid":
            why = (
                f"run {', '.join(active)} is still active (concurrencyPolicy Forbid)"
                f"{self.lateness(active)}"
            )
            if trigger == TRIGGER_RUN_NOW:
                self.refuse_run_now(why)
            else:
                self.miss([scheduled], f"fire {timestamp(scheduled)} not started: {why}")
            return False
        for old in active:  # Replace
            self.deletes.append(old)
            self.runs[old] = {**self.runs[old], "status": {"phase": "Deleted"}}
            self.events.append(
                PlannedEvent(
                    "Normal",
                    "RunReplaced",
                    f"deleted active run {old} (concurrencyPolicy Replace)",
                    old,
                )
            )
        body = run_body(
            self.job,
            name,
            scheduled,
            trigger,
            list(self.spec.get("services") or []),
            time_zone=self.model.spec.time_zone or self.default_time_zone,
            calendars=self.calendars if trigger == TRIGGER_SCHEDULE else None,
        )
        self.runs[name] = body
        how = trigger
        if trigger == TRIGGER_SCHEDULE:
            lateness = max(0.0, (self.now - scheduled).total_seconds())
            how = f"{trigger}, {lateness:.2f}s after it"
        message = f"created run {name} for {timestamp(scheduled)} ({how})"
        self.creates.append(Create(body, PlannedEvent("Normal", "RunCreated", message, name)))
        return True

    def unrecorded_fires(self, runs: Sequence[Body]) -> list[str]:
        """The runs of fires after the last one the job's *stored* status records.

        Such a run is the only record that its fire happened: the status saying so
        (``lastScheduleTime``, or the fire counted as missed) is in this decision's
        patch, or in an earlier one that did not land. Deleted, its fire would be due
        again and created a second time (api.md "ScheduledJobRun": a fire is never
        created twice). So it is not pruned until a decision reads a status that
        records it.

        Why not write the status first and delete after: that holds only while the
        executor keeps that order and nothing reads a status it wrote but the cache does
        not hold yet; this rule holds under every order of failures (a failed or lost
        status patch, a failed delete, a crash between them, a cache behind the API
        server's status only holds more runs back). Its cost: a finished run of a fire
        whose status had not landed stays past the limits until the job's next decision
        (a run ending, the next fire, the periodic resync)."""
        since = _fires_recorded_through(self.meta, self.status)
        held = []
        for run in runs:
            scheduled, name = _scheduled_time(run), run["metadata"]["name"]
            # A fire's name (a Backfill's run of an instant takes it too: the fire finds
            # its name taken and records it as started).
            if scheduled and scheduled > since and name == run_name(self.meta["name"], scheduled):
                held.append(name)
        return held

    def history(self) -> datetime | None:
        """active, lastRun and lastSuccessfulTime from the runs; prunes beyond the limits,
        except the runs that must stay: those of fires the status does not record yet
        (:meth:`unrecorded_fires`) and those with a notification still to deliver. A
        run's notification states live in its status and nowhere else (notifications.md,
        "Guarantee"): deleted while one is Pending (with the default
        failedRunsHistoryLimit of 1, the next failure would prune the run whose failure
        e-mail is still retrying), that e-mail would never be sent. The run is pruned
        once its notifications are final (at most a day after it ended)."""
        runs = [r for r in self.runs.values() if _phase(r) != "Deleted"]
        prune = []
        if self.model is not None:
            spec = self.model.spec
            notifying = [r["metadata"]["name"] for r in runs if policy.notifying(r)]
            prune = policy.to_prune(
                runs,
                spec.successful_runs_history_limit,
                spec.failed_runs_history_limit,
                held={*self.unrecorded_fires(runs), *notifying},
            )
        self.deletes += [name for name in prune if name not in self.deletes]
        # Summarised with the runs pruned now: a limit of 0 prunes the latest run.
        summary = policy.summarize(runs, self.now, self.status)
        self.desired |= summary.as_status()
        return parse_time(summary.last_successful_time)

    def plan(self, *, consume_run_now: bool = False, wake_at: datetime | None = None) -> JobPlan:
        if self.missed_count:
            previous = self.status.get("missedSchedules") or {}
            self.desired["missedSchedules"] = {
                "count": int(previous.get("count") or 0) + self.missed_count,
                "lastMissedTime": timestamp(self.missed_latest),
                "message": self.missed_message,
            }
        last_success = self.history()
        if "conditions" in self.desired:
            self.desired["conditions"] = [
                *(c for c in self.desired["conditions"] if c["type"] != "RunNameTaken"),
                *self.taken_condition(),
            ]
        return JobPlan(
            status=changed_fields(self.status, self.desired),
            creates=tuple(self.creates),
            deletes=tuple(self.deletes),
            events=tuple(self.events),
            consume_run_now=consume_run_now,
            wake_at=wake_at,
            fired=self.fired,
            missed=self.missed_count,
            last_success=last_success,
        )


def decide_job(
    job: Body,
    runs: Sequence[Body],
    calendars: Mapping[str, Body],
    now: datetime,
    *,
    default_time_zone: str = "UTC",
    taken: Sequence[str] = (),
    serving_since: datetime | None = None,
    refused: Mapping[str, str] | None = None,
) -> JobPlan:
    """Everything to do for ``job`` at ``now``, given its runs and the Calendars of its
    namespace (raw bodies, by name), and the names of runs that claim it but were not
    created by the operator (:mod:`almanac.rules.trust`), and when this operator began
    serving (``catchUp: None`` misses the fires before it). ``refused``: the runs the
    API server refused to create (a quota, a policy), by name, with its message: their
    fires are missed, as they pass without a run. Pure: the same inputs give the same
    plan."""
    if job["metadata"].get("deletionTimestamp"):
        # Being deleted (foreground: the garbage collector deletes its runs first): a run
        # started now would be deleted in turn, after its Job had started, as would each
        # waiting fire its deleted predecessor lets start. As a CronJob being deleted.
        return JobPlan()
    d = _Decision(job, runs, now, default_time_zone, refused)
    d.taken = sorted(taken)
    run_now = ANNOTATION_RUN_NOW in (d.meta.get("annotations") or {})
    # Read before the spec is checked: suspension must be known whatever else is wrong
    # with the job, since a Ready reason of Suspended is what tells the decision that
    # resumes it that the fires which fell meanwhile are all missed.
    suspended = d.spec.get("suspend") is True
    try:
        model = ScheduledJob.parse(job)
        schedule = resolve(model, calendars, default_time_zone)
    except InvalidSpec as error:
        reason = _reason(error)
        d.desired["nextScheduleTime"] = None
        if suspended:
            d.condition(
                "False",
                "Suspended",
                f"suspend is true: the job does not fire; nor could it ({reason}): {error}",
            )
        else:
            d.condition("False", reason, str(error))
        d.warn_once(reason, str(error))
        if run_now:
            d.refuse_run_now(f"the job is not Ready ({reason}): {error}")
        return d.plan(consume_run_now=run_now)

    d.model = model
    d.calendars = calendars_applied(model, calendars)
    if run_now:
        d.start(now.replace(microsecond=0), TRIGGER_RUN_NOW, manual_run_name(d.meta["name"], now))

    if model.spec.suspend:
        d.desired["nextScheduleTime"] = None
        d.condition("True", "Suspended", "suspend is true: the job does not fire")
        return d.plan(consume_run_now=run_now)

    _fire_due(d, schedule, serving_since)
    upcoming = schedule.next_fire(now)
    if isinstance(upcoming, NeverFires):
        d.desired["nextScheduleTime"] = None
        d.condition("False", upcoming.reason, upcoming.message)
        d.warn_once("NeverFires", upcoming.message)
        return d.plan(consume_run_now=run_now)
    d.desired["nextScheduleTime"] = timestamp(upcoming)
    d.condition("True", "Scheduled", f"next fire {timestamp(upcoming)}")
    return d.plan(consume_run_now=run_now, wake_at=upcoming)


def _reason(error: InvalidSpec) -> str:
    """The Ready condition's reason for a job that cannot be scheduled: a mistake in
    the spec (InvalidSchedule) wins; else a Calendar whose feed has no copy yet
    (CalendarNotFetched), else one that does not exist (CalendarNotFound)."""
    reasons = {e.reason for e in error.errors}
    if "" in reasons:
        return "InvalidSchedule"
    return "CalendarNotFetched" if "CalendarNotFetched" in reasons else "CalendarNotFound"


#: Due fires listed one by one after a downtime; past this many only the latest are
#: looked for (a `* * * * *` job down for a month has 43,200, a year 525,600).
DUE_LISTED = 1000
#: How far back from now the latest due fires are looked for, nearest first: a window
#: is searched only when the one before it held too few of them.
LOOKBACK = (
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=32),
    timedelta(days=366),
    timedelta(days=3660),
)


def due_fires(
    schedule: Schedule, since: datetime, now: datetime, latest: int = 1
) -> tuple[list[datetime], bool]:
    """The fires in (since, now], oldest first, and whether some of them may be left out:
    after DUE_LISTED of them, only those in the nearest LOOKBACK window that holds at
    least ``latest`` of them follow (or every one after the listed ones, when no window
    does). So the fires that start are never left out: the latest for ``catchUp:
    Latest``, the latest CATCH_UP_MAX for ``All`` (``latest``); the count of missed ones
    is then a lower bound. The work stays bounded: a window is searched only when the
    one before it, at most 32 times shorter, held fewer than ``latest``."""
    due: list[datetime] = []
    for instant in schedule.fires(since):
        if instant > now:
            return due, False
        if len(due) == DUE_LISTED:
            break
        due.append(instant)
    else:
        return due, False
    found: list[datetime] = []
    start = due[-1]
    for back in (*LOOKBACK, now - due[-1]):  # at last, everything after the listed ones
        start = max(now - back, due[-1])
        found = list(itertools.takewhile(lambda t: t <= now, schedule.fires(start)))
        if len(found) >= latest:
            break
    return due + found, start > due[-1]


def _fires_recorded_through(meta: Body, status: Body) -> datetime:
    """The last fire the job's status records as handled (started or missed), else its
    creation: the fires after it are due."""
    candidates = [
        parse_time(meta.get("creationTimestamp")),
        parse_time(status.get("lastScheduleTime")),
        parse_time((status.get("missedSchedules") or {}).get("lastMissedTime")),
    ]
    return max(c for c in candidates if c is not None)


def _fire_due(d: _Decision, schedule: Schedule, serving_since: datetime | None) -> None:
    """Starts the due fires ``catchUp`` asks for and records the others as missed
    (``policy.decide``).

    Due are the fires after the last one handled (started or recorded as missed, else
    the job's creation). Fires that fell while the job was suspended are all missed: the
    Ready condition says Suspended until this decision resumes the job. Otherwise, fires
    whose runs exist already (an earlier decision whose status write did not land, the
    API server away until after the next fire) count as started, whatever ``catchUp``
    is, and the fires before the latest of them that have no run were missed by that
    decision: both are recorded again, since its status did not say so (every missed
    fire is older than every started one).
    """
    since = _fires_recorded_through(d.meta, d.status)
    ready: Body = next(
        (c for c in d.status.get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    resumed = ready.get("reason") == "Suspended"
    assert d.model is not None
    spec = d.model.spec
    starting = policy.CATCH_UP_MAX if spec.catch_up == "All" and not resumed else 1
    due, uncounted = due_fires(schedule, since, d.now, starting)
    decide = functools.partial(
        policy.decide,
        now=d.now,
        deadline_seconds=spec.starting_deadline_seconds,
        resumed=resumed,
        catch_up=spec.catch_up.value,
        serving_since=serving_since,
        concurrency=spec.concurrency_policy.value,
    )
    started: list[datetime] = []
    passed_over: list[datetime] = []
    reason = ""
    if not resumed:
        started = [t for t in due if run_name(d.meta["name"], t) in d.runs]
    if started:
        before = [t for t in due if t <= started[-1]]
        passed_over = [t for t in before if t not in started]
        # Why the decision that started them missed these (it would say so again).
        reason = decide(before, busy=False).reason or "a later fire started"
        due = [t for t in due if t > started[-1]]
    decision = decide(due, busy=bool(d.active(besides="")))
    missed = passed_over + decision.missed
    if missed:
        times = ", ".join(timestamp(t) or "" for t in missed[-3:])
        count = f"more than {len(missed)}" if uncounted else str(len(missed))
        d.miss(missed, f"{count} fire(s) not started, latest {times}: {decision.reason or reason}")
    # lastScheduleTime is the latest fire that has a run, as a CronJob's: one that
    # Forbid or the API server turned down is missed (lastMissedTime), not scheduled.
    started += [
        instant
        for instant in decision.starts
        if d.start(instant, TRIGGER_SCHEDULE, run_name(d.meta["name"], instant))
    ]
    if started:
        d.fired = started[-1]
        d.desired["lastScheduleTime"] = timestamp(started[-1])
