"""What a Backfill does now: one pure function from the Backfill, its ScheduledJob, the
job's runs and the time to a :class:`BackfillPlan`.

A Backfill asks for the runs a ScheduledJob's schedule would have made in a past range
``[from, to)``: the same instants ``almanac next`` lists (:func:`range_instants` walks
the schedule that :func:`almanac.api.resolve.resolve` builds, exclusions, Calendars,
shifting and window included), each run named as its fire would be
(:func:`almanac.api.names.run_name`), so a run that is already there (made by the
schedule, or by this Backfill before a restart) is adopted instead of doubled.

Progress is kept in the Backfill's status, which only this decision writes:

- ``nextInstant`` is the cursor: the instants before it (after it, with ``order:
  Newest``) have their run. Runs are taken in order, so the cursor alone says what is
  done, even after the job's history limits have pruned the oldest runs;
- ``active`` names the runs not yet finished, at most ``parallelism``: the next instant
  gets its run only when one of them has finished;
- ``succeeded`` and ``failed`` count each run once, when it leaves ``active``. A run
  pruned before its outcome was seen is counted from ``gone`` (the last phase the store
  saw); one deleted while unfinished counts as failed.

The first decision counts the range (``total``; more than 10,000 is refused); later
ones walk the schedule from the cursor only, so a long Backfill does not compute its
whole range again for every run that finishes. A Calendar edited meanwhile moves the
instants still to come, not ``total``.

Creates come before the status write, so a restart between the two finds the runs and
adopts them: no instant is ever run twice by a Backfill.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from almanac.api.bounds import BACKFILL_MAX_INSTANTS
from almanac.api.models import Backfill, BackfillOrder, ScheduledJob
from almanac.api.names import LABEL_BACKFILL, run_name
from almanac.api.resolve import resolve
from almanac.errors import InvalidSpec
from almanac.rules import policy
from almanac.rules.jobs import calendars_applied, run_body
from almanac.rules.plans import Body, Create, PlannedEvent, changed_fields, condition_message
from almanac.schedule.engine import Schedule
from almanac.times import parse_time, timestamp

__all__ = [
    "TRIGGER",
    "BackfillPlan",
    "TooManyInstants",
    "decide_backfill",
    "fires_in",
    "range_instants",
]

TRIGGER = "Backfill"
"""``spec.trigger`` of the runs a Backfill creates."""

FINISHED = frozenset({"Succeeded", "Failed"})
"""A Backfill in one of these phases is done for good (its spec is immutable)."""


class TooManyInstants(ValueError):
    """The range holds more instants than a Backfill may run."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the range holds more than {limit:,} instants of the schedule; a Backfill runs "
            f"at most {limit:,}: split the range into several Backfills"
        )
        self.limit = limit


def fires_in(schedule: Schedule, start: datetime, end: datetime) -> Iterator[datetime]:
    """The instants ``schedule`` fires in ``[start, end)``, oldest first, as ``almanac
    next`` lists them (:meth:`Schedule.fires`), computed as they are consumed."""
    # fires() is strictly after its argument; a second back includes a fire at `start`.
    for instant in schedule.fires(start - timedelta(seconds=1)):
        if instant >= end:
            return
        if instant >= start:
            yield instant


def range_instants(
    schedule: Schedule, start: datetime, end: datetime, limit: int = BACKFILL_MAX_INSTANTS
) -> list[datetime]:
    """:func:`fires_in` as a list; :class:`TooManyInstants` past ``limit`` (the search
    stops at the first instant over it)."""
    instants: list[datetime] = []
    for instant in fires_in(schedule, start, end):
        if len(instants) == limit:
            raise TooManyInstants(limit)
        instants.append(instant)
    return instants


@dataclass(frozen=True)
class BackfillPlan:
    """What to do for one Backfill now."""

    status: Body = field(default_factory=dict)
    """The status fields that change (a merge patch); empty: write nothing."""
    creates: tuple[Create, ...] = ()
    """The runs to create, in order, each with its RunCreated Event (on the Backfill)."""
    events: tuple[PlannedEvent, ...] = ()
    """Events on the Backfill: started, finished, refused, waiting."""
    active: tuple[str, ...] = ()
    """The runs left unfinished after this plan (the store forgets the pruned others)."""


def _phase(run: Body) -> str:
    return str((run.get("status") or {}).get("phase") or "Pending")


class _Decision:
    """Accumulates one Backfill's plan; :func:`decide_backfill` drives it."""

    def __init__(self, backfill: Body, now: datetime) -> None:
        self.backfill, self.now = backfill, now
        self.meta = backfill["metadata"]
        self.status: Body = backfill.get("status") or {}
        self.generation = self.meta.get("generation")
        self.desired: Body = {"observedGeneration": self.generation}
        self.creates: list[Create] = []
        self.events: list[PlannedEvent] = []
        self.active: list[str] = list(self.status.get("active") or [])

    def warn_once(self, reason: str, message: str) -> None:
        """A Warning per problem and generation, unless the status already says it."""
        if self.status.get("reason") != reason:
            self.events.append(PlannedEvent("Warning", reason, message, f"{self.generation}"))

    def stop(self, phase: str, reason: str, message: str) -> BackfillPlan:
        """Refused or waiting: nothing created; the phase and message say why."""
        self.desired |= {"phase": phase, "reason": reason, "message": condition_message(message)}
        if phase in FINISHED:
            self.desired["completionTime"] = timestamp(self.now)
        self.warn_once(reason, message)
        return self.plan()

    def plan(self) -> BackfillPlan:
        return BackfillPlan(
            status=changed_fields(self.status, self.desired),
            creates=tuple(self.creates),
            events=tuple(self.events),
            active=tuple(self.active),
        )


def decide_backfill(
    backfill: Body,
    job: Body | None,
    runs: Sequence[Body],
    calendars: Mapping[str, Body],
    now: datetime,
    *,
    gone: Mapping[str, str] | None = None,
    taken: Sequence[str] = (),
    default_time_zone: str = "UTC",
) -> BackfillPlan:
    """Everything to do for ``backfill`` at ``now``.

    ``job`` is its ScheduledJob (None: not there), ``runs`` the job's runs the operator
    created, ``calendars`` the Calendar bodies of the namespace by name, ``gone`` the
    last phase of the Backfill's runs deleted since the last decision (by name), and
    ``taken`` the names of runs of the job the operator did not create (never executed,
    so the instant counts as failed). Pure: the same inputs give the same plan."""
    d = _Decision(backfill, now)
    if d.status.get("phase") in FINISHED:
        return BackfillPlan()
    try:
        model = Backfill.parse(backfill)
    except InvalidSpec as error:
        return d.stop("Failed", "InvalidSpec", f"not run: {error}")
    spec = model.spec
    if job is None:
        return d.stop(
            "Pending",
            "ScheduledJobNotFound",
            f"waiting for ScheduledJob {spec.scheduled_job!r} in this namespace",
        )
    if job["metadata"].get("deletionTimestamp"):
        # Being deleted (foreground): a run created now would be deleted in turn by the
        # garbage collector, perhaps after its Job had started; the job fires no more
        # either (decide_job).
        return d.stop(
            "Pending",
            "ScheduledJobDeleting",
            f"ScheduledJob {spec.scheduled_job!r} is being deleted: no run is created",
        )
    try:
        job_model = ScheduledJob.parse(job)
        schedule = resolve(job_model, calendars, default_time_zone)
    except InvalidSpec as error:
        return d.stop(
            "Pending",
            "ScheduledJobInvalid",
            f"waiting for ScheduledJob {spec.scheduled_job!r} to be valid: {error}",
        )
    if spec.end > now:
        return d.stop(
            "Failed",
            "RangeInFuture",
            f"not run: spec.to ({spec.to}) is later than now ({timestamp(now)}): a Backfill "
            "runs instants that have passed; the schedule fires the others",
        )
    newest_first = spec.order is BackfillOrder.NEWEST
    if not d.status.get("startTime"):
        # The first decision counts the whole range (and refuses one too long); later
        # ones walk the schedule from the cursor only: a 10,000-instant range is not
        # computed again for every run that finishes.
        try:
            instants = range_instants(schedule, spec.start, spec.end)
        except TooManyInstants as error:
            return d.stop("Failed", "TooManyInstants", f"not run: {error}")
        total = len(instants)
        remaining: Iterator[datetime] = iter(instants[::-1] if newest_first else instants)
    else:
        total = int(d.status.get("total") or 0)
        remaining = _from_cursor(schedule, spec.start, spec.end, d.status, newest_first)
    by_name = {r["metadata"]["name"]: r for r in runs}
    # Each run records the Calendars its instant obeyed, as a fire's run does (api.md
    # "ScheduledJobRun"): the instants are the schedule's, Calendars included.
    applied = calendars_applied(job_model, calendars)
    return _advance(
        d, model, job, total, remaining, by_name, gone, taken, schedule.zone.key, applied
    )


def _from_cursor(
    schedule: Schedule, start: datetime, end: datetime, status: Body, newest_first: bool
) -> Iterator[datetime]:
    """The instants from ``status.nextInstant`` on, in the Backfill's order; none once
    the cursor has passed the last one (no ``nextInstant``)."""
    cursor = parse_time(status.get("nextInstant"))
    if cursor is None:
        return iter(())
    if newest_first:  # the engine walks forwards: the instants up to the cursor, reversed
        return reversed(list(fires_in(schedule, start, cursor + timedelta(seconds=1))))
    return fires_in(schedule, cursor, end)


def _advance(
    d: _Decision,
    model: Backfill,
    job: Body,
    total: int,
    remaining: Iterator[datetime],
    runs: Mapping[str, Body],
    gone: Mapping[str, str] | None,
    taken: Sequence[str],
    time_zone: str,
    applied: list[Body],
) -> BackfillPlan:
    spec = model.spec
    gone = gone or {}
    name = d.meta["name"]
    succeeded = int(d.status.get("succeeded") or 0)
    failed = int(d.status.get("failed") or 0)
    created = int(d.status.get("created") or 0)
    lost: list[str] = []

    def outcome(run_name_: str) -> str | None:
        """The run's phase if it has finished (or is gone), None while it runs."""
        run = runs.get(run_name_)
        if run is not None:
            phase = _phase(run)
            return phase if phase in policy.TERMINAL else None
        if run_name_ in taken:
            return "Failed"
        last = gone.get(run_name_)
        if last not in policy.TERMINAL:
            lost.append(run_name_)
            return "Failed"
        return last

    still: list[str] = []
    for run in d.active:
        phase = outcome(run)
        if phase is None:
            still.append(run)
        elif phase == "Succeeded":
            succeeded += 1
        else:
            failed += 1
    d.active = still

    upcoming: datetime | None = None
    services = list((job.get("spec") or {}).get("services") or [])
    for instant in remaining:
        if len(d.active) >= spec.parallelism:
            upcoming = instant
            break
        run = run_name(spec.scheduled_job, instant)
        created += 1
        if run in runs or run in gone or run in taken:
            phase = outcome(run)  # already there: adopted, never doubled
            if phase is None:
                d.active.append(run)
            elif phase == "Succeeded":
                succeeded += 1
            else:
                failed += 1
            continue
        body = run_body(
            job, run, instant, TRIGGER, services, time_zone=time_zone, calendars=applied
        )
        body["metadata"]["labels"][LABEL_BACKFILL] = name
        message = f"created run {run} for {timestamp(instant)} ({TRIGGER} {name})"
        d.creates.append(Create(body, PlannedEvent("Normal", "RunCreated", message, run)))
        d.active.append(run)

    d.desired |= {
        "total": total,
        "created": created,
        "succeeded": succeeded,
        "failed": failed,
        "active": list(d.active),
        "nextInstant": timestamp(upcoming),
        "reason": None,
    }
    started = d.status.get("startTime")
    if not started:
        d.desired["startTime"] = timestamp(d.now)
        order = spec.order.value.lower()
        d.events.append(
            PlannedEvent(
                "Normal",
                "BackfillStarted",
                f"backfilling {total} instant(s) of ScheduledJob {spec.scheduled_job} in "
                f"[{timestamp(spec.start)}, {timestamp(spec.end)}), {order} first, at most "
                f"{spec.parallelism} run(s) at once",
                "started",
            )
        )
    counts = f"{created}/{total} run(s) created, {succeeded} succeeded, {failed} failed"
    if lost:
        counts += f" ({', '.join(lost[:5])}{' ...' if len(lost) > 5 else ''} deleted unfinished)"
    if upcoming is None and not d.active:
        phase = "Failed" if failed else "Succeeded"
        d.desired |= {"phase": phase, "completionTime": timestamp(d.now), "message": counts}
        d.events.append(
            PlannedEvent(
                "Warning" if failed else "Normal",
                f"Backfill{phase}",
                f"backfill of ScheduledJob {spec.scheduled_job} finished: {counts}",
                "finished",
            )
        )
    else:
        next_ = f"; next instant {timestamp(upcoming)}" if upcoming else ""
        d.desired |= {"phase": "Running", "message": counts + next_}
    return d.plan()
