"""The operator's service layer: the store, the queue, and the one writer per object.

Every watch event goes into the :class:`~almanac.controller.store.Store` (an older body
never replaces a newer one) and puts the keys of the objects it affects on the
:class:`~almanac.controller.workqueue.WorkQueue`; an event that only echoes our own
write changes nothing and causes no work. Serving a key means: read the object and
what it depends on from the store (never a LIST), ask the pure decision
(:func:`~almanac.rules.jobs.decide_job`, :func:`~almanac.rules.runs.decide_run`,
:func:`~almanac.rules.backfill.decide_backfill`) for a
plan, and apply it in one order:

1. consume an annotation (run-now, rerun) with the object's resourceVersion;
2. deletes, then creates (derived names: AlreadyExists means done), each answer put
   in the store at once;
3. Events, named after what they tell (a repeat is AlreadyExists, not a duplicate);
4. at most one status patch, with the resourceVersion the plan was decided from as a
   precondition. On a conflict the object is read again and decided again; a stale
   decision never overwrites a newer status.

Nothing here must be remembered across restarts: what matters is in the cluster, so a
restarted operator makes the same decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from almanac import kube as k
from almanac import wire
from almanac.api import names as api
from almanac.api.bounds import truncate
from almanac.api.feeds import location as feed_location
from almanac.api.names import ANNOTATION_RERUN, ANNOTATION_RERUN_REQUEST, ANNOTATION_RUN_NOW
from almanac.controller import feeds, metrics
from almanac.controller.delivery import Delivery, channels_of
from almanac.controller.settings import Settings
from almanac.controller.store import CALENDAR_KINDS, Body, Key, Kind, Store, key_of, slim
from almanac.controller.timers import TimerQueue
from almanac.controller.workqueue import Rest, WorkQueue, slot_released
from almanac.kube import Conflict, Created, Exists, Kube, Refused
from almanac.notifications.smtp import SmtpSettings
from almanac.rules import calendars, policy
from almanac.rules.backfill import FINISHED as BACKFILL_FINISHED
from almanac.rules.backfill import decide_backfill
from almanac.rules.jobs import decide_job, holds_a_fire_name
from almanac.rules.orchestration import Phase
from almanac.rules.plans import Create, PlannedEvent
from almanac.rules.runs import (
    decide_run,
    job_ended_by_events,
    job_state,
    job_view,
    jobs_not_in_view,
    jobs_without_pods,
)
from almanac.rules.trust import of_an_earlier_job, untrusted
from almanac.times import parse_time

Item = tuple[Kind, Key]
"""What the work queue decides: one object of one kind."""

log = logging.getLogger(__name__)

#: Every object is decided again this often, even with no event: what a lost watch
#: event would otherwise leave undone is done within this period.
RESYNC = timedelta(minutes=5)
#: Decisions in a row for one key before giving the conflict up to the retry timer.
ATTEMPTS = 5

PLURALS = {
    Kind.JOB: api.SCHEDULED_JOBS,
    Kind.RUN: api.RUNS,
    Kind.CALENDAR: api.CALENDARS,
    Kind.BACKFILL: api.BACKFILLS,
    Kind.CLUSTER_CALENDAR: api.CLUSTER_CALENDARS,
}


class CreatesFirst:
    """Creates (runs, Jobs) go out before Events and status patches.

    When hundreds of fires fall on one instant, each fire's bookkeeping (its Events, the
    job's and the run's status) would otherwise share the connections with the other
    fires' creates, and the last Job would wait behind a few hundred Events. While any
    create is on its way, Events and status patches wait; they trail the creates by the
    burst's length (issue 14: "status patches may trail the creates"). A decision that
    must wait is parked by the work queue, as data (:class:`Bookkeeping`), and resumed
    when the creates are out (``bookkeeping`` is the queue's gate). Outside bursts
    nothing waits."""

    def __init__(self) -> None:
        self._creating = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def open(self) -> bool:
        """No create is on its way: bookkeeping may be written now."""
        return self._idle.is_set()

    @contextlib.asynccontextmanager
    async def create(self) -> AsyncIterator[None]:
        self._creating += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._creating -= 1
            if not self._creating:
                self._idle.set()

    async def bookkeeping(self) -> None:
        """Returns once no create is on its way; the decision's slot serves another
        decision meanwhile (5,000 fires at once would otherwise hold every slot here)."""
        if self._idle.is_set():
            return
        async with slot_released():
            await self._idle.wait()


def _phase(body: Body | None) -> str | None:
    return ((body or {}).get("status") or {}).get("phase")


def _deadline(job: Body) -> object:
    return (job.get("spec") or {}).get("runDeadline")


def _content(body: Body | None) -> tuple[Any, ...]:
    """What of a Calendar its jobs' decisions read: the spec, which kept copy of its feed,
    and, while it has none from its source, why (the held jobs' condition says it). A
    status write that only records a fetch's time moves no job. "None from its source":
    after a change of ``url`` or ``configMapKeyRef`` the old copy's revision stays in the
    status, yet the jobs are held and name the new source's error."""
    spec = (body or {}).get("spec")
    kept = (((body or {}).get("status") or {}).get("source")) or {}
    source = (spec or {}).get("source") if isinstance(spec, dict) else None
    ours = (
        kept.get("revision")
        and isinstance(source, dict)
        and kept.get("location") == feed_location(source)
    )
    why = None if ours else (kept.get("lastError") or {}).get("message")
    return spec, kept.get("revision"), kept.get("location"), why


#: The metadata fields of :func:`identity`.
IDENTITY = ("name", "namespace", "uid", "resourceVersion")


def identity(body: Body) -> Body:
    """What an Event names and a status patch is conditional on: an object's kind and
    metadata identity (name, namespace, uid, resourceVersion), none of its content."""
    meta = body["metadata"]
    kept: Body = {f: body[f] for f in ("apiVersion", "kind") if f in body}
    return {**kept, "metadata": {f: meta[f] for f in IDENTITY if f in meta}}


def _nothing() -> None:
    pass


@dataclass(frozen=True, slots=True)
class Bookkeeping:
    """What a decision writes once no create is on its way (:class:`CreatesFirst`): its
    Events, its one status patch, then ``done`` (timers, metrics), which reads the store
    and small values, never the decision's bodies.

    Thousands wait at once (10,000 fires at one instant park 20,000 decisions, a job's
    and a run's per fire), so it is kept as one compact JSON document: the
    :func:`identity` of the object and of the job its Events may be posted on, the
    status patch, and the Events. As dicts it held about 3 KB per decision, 60 MB in
    all at the burst's end (issue 14); before that, each waiting decision held the
    bodies it decided from, about 80 KB per fire (RSS 989 MB)."""

    kind: Kind
    data: bytes
    done: Callable[[], None] = _nothing

    @classmethod
    def of(
        cls,
        kind: Kind,
        target: Body,
        status: Body,
        events: Iterable[PlannedEvent] = (),
        *,
        job: Body | None = None,
        done: Callable[[], None] = _nothing,
    ) -> Bookkeeping:
        """Packs a decision's writes: ``status`` on ``target``, and each Event on
        ``target``, or on ``job`` when the plan puts it there (none without a job)."""
        planned = [
            (1 if e.on_job else 0, e.type, e.reason, e.message, e.key)
            for e in events
            if job is not None or not e.on_job
        ]
        identities = [identity(target)]
        if job is not None and any(on for on, *_ in planned):
            identities.append(identity(job))
        data = wire.dumps((identities, status, planned))
        return cls(kind, data, done)

    def unpack(self) -> tuple[Body, Body, list[tuple[Body, str, str, str, str]]]:
        """(target, status, Events as (on, type, reason, message, key))."""
        identities, status, planned = wire.loads(self.data)
        events = [
            (identities[on], type_, reason, message, key)
            for on, type_, reason, message, key in planned
        ]
        return identities[0], status, events


class Controller:
    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        clock: Callable[[], datetime] = k.now,
        smtp: SmtpSettings | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.clock = clock
        self.smtp = smtp
        self.webhooks = settings.webhooks
        self.store = Store()
        self.timers = TimerQueue(clock)
        self.lanes = CreatesFirst()
        self.queue = WorkQueue(
            self._decide,
            self.timers,
            lane=lambda item: item[0],  # type: ignore[index]
            gate=self.lanes.bookkeeping,
        )
        metrics.track_kinds([kind.value for kind in PLURALS])  # the kinds decided about
        self.delivery = Delivery(self)
        self._untrusted: set[Key] = set()  # runs reported as not ours
        self._ended_jobs: dict[Key, dict[str, Body]] = {}
        self._runs_checked: set[Key] = set()
        """Runs this process created, or whose Jobs not in view it has looked up once
        in the Job controller's Events (:meth:`_ended_unseen`): a run that another
        process (this one before a restart, another replica) created may have had a
        Job created whose start its status never recorded."""
        """By run: the last body of each of its Jobs that finished and was deleted
        (``ttlSecondsAfterFinished: 0``) before the run's decision saw it finish. The
        run is decided with it, so the service is recorded done, not created again."""
        self.serving_since = clock()
        """When this operator began serving (it is built once it holds the Lease): with
        ``catchUp: None``, fires due before it fell while nobody served."""

    # --- what the watches saw -----------------------------------------------------------

    def observe(self, kind: Kind, event_type: str | None, body: Body) -> None:
        """A watch event: into the store, and what it affects onto the queue."""
        key = key_of(body)
        if event_type == "DELETED":
            old = self.store.delete(kind, key)
            # A batch Job's DELETED event carries its last state (finished or not),
            # which the store may not have seen.
            last = body if kind is Kind.BATCH_JOB and body.get("status") else old or body
            self._forget(kind, key, last)
            return
        change = self.store.put(kind, body)
        if change.changed:
            self._follow(kind, key, body, change.old, own=False)

    def own(self, kind: Kind, body: Body, *, by: Item | None = None) -> None:
        """A body the API server answered one of our writes with: into the store, so
        the watch event that echoes it is no news; its dependents are enqueued, except
        ``by``, the decision that wrote it and planned with it already (a job that
        created its run: deciding it again at once changed nothing, at a cost of a
        tenth or so of the operator's CPU in a burst of fires)."""
        change = self.store.put(kind, body)
        if change.changed:
            self._follow(kind, key_of(body), body, change.old, own=True, by=by)

    def _follow(
        self,
        kind: Kind,
        key: Key,
        body: Body,
        old: Body | None,
        *,
        own: bool,
        by: Item | None = None,
    ) -> None:
        namespace = key[0]
        if kind is Kind.JOB:
            metrics.track_job(*key)
            if not own:
                self.queue.add((Kind.JOB, key))
                self._backfills_follow(*key)  # one waiting for the job to exist or be valid
            if old is not None and _deadline(old) != _deadline(body):
                # Its unfinished runs' timers were set for the old deadline.
                for each in self.store.runs_of(*key):
                    if _phase(each) not in policy.TERMINAL:
                        self.queue.add((Kind.RUN, key_of(each)))
        elif kind is Kind.BACKFILL:
            if not own:
                self.queue.add((Kind.BACKFILL, key))
        elif kind is Kind.RUN:
            if not own:
                self.queue.add((Kind.RUN, key))
            if (
                old is None
                or _phase(old) != _phase(body)
                or policy.notifying(old) != policy.notifying(body)
            ):
                job = (body.get("spec") or {}).get("scheduledJob")
                if job and by != (Kind.JOB, (namespace, job)):
                    # its active runs, last run and history follow from the runs (a run
                    # whose notifications became final may be pruned now)
                    self.queue.add((Kind.JOB, (namespace, job)))
                backfill = (body["metadata"].get("labels") or {}).get(api.LABEL_BACKFILL)
                if backfill and by != (Kind.BACKFILL, (namespace, backfill)):
                    self.queue.add((Kind.BACKFILL, (namespace, backfill)))  # a slot may be free
        elif kind is Kind.BATCH_JOB:
            run = (body["metadata"].get("labels") or {}).get(api.LABEL_RUN)
            if run and not own and (old is None or job_view(old) != job_view(body)):
                self.queue.add((Kind.RUN, (namespace, run)))
        elif kind in CALENDAR_KINDS:
            if old is None or _content(old) != _content(body):
                for job in self.store.jobs_referring_to(kind, *key):
                    self.queue.add((Kind.JOB, job))
            spec = body.get("spec") or {}
            if not own and (spec.get("source") or ((body.get("status") or {}).get("source"))):
                self.queue.add((kind, key))  # its feed: fetched now if the spec changed

    def _forget(self, kind: Kind, key: Key, body: Body) -> None:
        """An object was deleted: nothing of it stays behind (timers, retries, series)."""
        self.queue.forget((kind, key))
        self._untrusted.discard(key)
        if kind is Kind.JOB:
            self.timers.cancel(("job", key))
            metrics.forget_job(*key)
        elif kind is Kind.RUN:
            self.timers.cancel(("run", key))
            self._ended_jobs.pop(key, None)
            self._runs_checked.discard(key)
            for channel in channels_of(body):
                self.timers.cancel(("notify", key, channel.name))
            job = (body.get("spec") or {}).get("scheduledJob")
            if job:
                self.queue.add((Kind.JOB, (key[0], job)))
            backfill = (body["metadata"].get("labels") or {}).get(api.LABEL_BACKFILL)
            if backfill:  # counted from the phase the store remembers (Store.delete)
                self.queue.add((Kind.BACKFILL, (key[0], backfill)))
        elif kind in CALENDAR_KINDS:
            self.timers.cancel(("feed", (kind, key)))
            for job in self.store.jobs_referring_to(kind, *key):
                self.queue.add((Kind.JOB, job))
        elif kind is Kind.BATCH_JOB:
            # A service's Job deleted while it runs is created again now, as a Job
            # controller replaces a deleted Pod (api.md); a finished run has nothing to
            # redo (its Jobs go when history pruning deletes it).
            name = (body["metadata"].get("labels") or {}).get(api.LABEL_RUN)
            run = self.store.get(Kind.RUN, (key[0], name)) if name else None
            if run is not None and _phase(run) not in policy.TERMINAL:
                if job_state(body).phase is not Phase.RUNNING:
                    self._ended_jobs.setdefault(key_of(run), {})[key[1]] = slim(kind, body)
                self.queue.add((Kind.RUN, key_of(run)))

    def _backfills_follow(self, namespace: str, job: str) -> None:
        """Enqueues the unfinished Backfills of a job."""
        for key in self.store.backfills_of(namespace, job):
            if _phase(self.store.get(Kind.BACKFILL, key)) not in BACKFILL_FINISHED:
                self.queue.add((Kind.BACKFILL, key))

    async def resync(self) -> None:
        """Decides everything that may still need work again, every ``RESYNC``."""
        while True:
            await asyncio.sleep(RESYNC.total_seconds())
            self.decide_all()

    def decide_all(self) -> None:
        """Enqueues every job, every unfinished run or Backfill, every run with an
        e-mail due and every run asked to be rerun (annotated while no operator ran, or
        before one that stopped consumed it): at start-up (the store was filled by a
        LIST, so the watch's first events are no news) and at every resync."""
        for key in self.store.keys(Kind.JOB):
            metrics.track_job(*key)
            self.queue.add((Kind.JOB, key))
        for key in self.store.keys(Kind.RUN):
            run = self.store.get(Kind.RUN, key) or {}
            rerun = ANNOTATION_RERUN in ((run.get("metadata") or {}).get("annotations") or {})
            if _phase(run) not in policy.TERMINAL or policy.notifying(run) or rerun:
                self.queue.add((Kind.RUN, key))
        for key in self.store.keys(Kind.BACKFILL):
            if _phase(self.store.get(Kind.BACKFILL, key)) not in BACKFILL_FINISHED:
                self.queue.add((Kind.BACKFILL, key))
        for kind in CALENDAR_KINDS:  # their feeds: each fetched when it is due
            for key in self.store.keys(kind):
                if ((self.store.get(kind, key) or {}).get("spec") or {}).get("source"):
                    self.queue.add((kind, key))

    def _wake(self, timer: Hashable, when: datetime | None, item: tuple[Kind, Key]) -> None:
        if when is None:
            self.timers.cancel(timer)
            return

        async def wake() -> None:
            self.queue.add(item)

        self.timers.set(timer, when, wake)

    async def refresh(self, kind: Kind, key: Key) -> Body | None:
        """Reads one object again (after a conflict): the store then holds the newest."""
        body = await self.kube.get(PLURALS[kind], *key)
        if body is None:
            old = self.store.delete(kind, key)
            if old is not None:
                self._forget(kind, key, old)
        else:
            self.store.put(kind, body)
        return body

    async def _decide(self, item: Hashable) -> Rest | None:
        kind, key = cast(tuple[Kind, Key], item)
        return await self._settle(kind, key)

    async def _settle(
        self, kind: Kind, key: Key, first: int = 0, work: Bookkeeping | None = None
    ) -> Rest | None:
        """A decision until settled (:meth:`_decide_until_settled`), or a parked one's rest
        (``first``, ``work``): a failure that is not the API server's is reported."""
        try:
            return await self._decide_until_settled(kind, key, first, work)
        except k.NotLeader:
            raise  # not ours to act: no failure
        except k.API_ERRORS:
            metrics.DECISION_FAILURES.labels(kind.value).inc()
            raise  # the API server away or refusing: the queue retries quietly
        except Exception as error:  # a bug or an input we did not foresee: say so
            metrics.DECISION_FAILURES.labels(kind.value).inc()
            await self._report_failure(kind, key, error)
            raise

    async def _report_failure(self, kind: Kind, key: Key, error: Exception) -> None:
        """An object we could not handle: its timer is disarmed (it would act on the
        state that failed) and a Warning Event on it says why, once per distinct error;
        the queue retries with back-off."""
        self.timers.cancel(_timer(kind, key))
        body = self.store.get(kind, key)
        if body is None:
            return
        text = truncate(f"{type(error).__name__}: {error}", 400)
        message = f"could not be handled, retrying with back-off: {text}"
        with contextlib.suppress(Exception):  # reporting must not hide the failure
            await self.kube.event(body, "Warning", "ReconcileFailed", message, key=text)

    async def _decide_until_settled(
        self, kind: Kind, key: Key, first: int = 0, work: Bookkeeping | None = None
    ) -> Rest | None:
        """Decides and writes until the object's status is written from its newest
        version. A decision whose writes must wait for the burst's creates
        (:class:`CreatesFirst`) returns the rest instead of waiting: the work queue parks
        it, as data, until they are out."""
        for attempt in range(first, ATTEMPTS):
            step = work if work is not None else await self._decide_once(kind, key)
            work = None
            if isinstance(step, Bookkeeping):
                if not self.lanes.open:
                    return self._rest(kind, key, attempt, step)
                done = await self._bookkeep(step)
            else:
                done = step
            if done:
                return None
        raise RuntimeError(f"{kind} {key[0]}/{key[1]} kept changing under {ATTEMPTS} decisions")

    def _rest(self, kind: Kind, key: Key, attempt: int, work: Bookkeeping) -> Rest:
        return functools.partial(self._settle, kind, key, attempt, work)

    async def _decide_once(self, kind: Kind, key: Key) -> Bookkeeping | bool:
        """One decision up to its creates: what is left to write, or whether it is done."""
        metrics.DECISIONS.labels(kind.value).inc()
        if kind is Kind.JOB:
            return await self._fire_job(key)
        if kind is Kind.BACKFILL:
            return await self._backfill_runs(key)
        if kind in CALENDAR_KINDS:
            return await self._reconcile_feed(kind, key)
        return await self._start_services(key)

    async def _bookkeep(self, work: Bookkeeping) -> bool:
        """Writes a decision's Events and status once no create is on its way, then runs
        its ``done``. False: the object changed meanwhile (read again; decide again)."""
        await self.lanes.bookkeeping()
        target, status, events = work.unpack()
        for on, type_, reason, message, key in events:
            await self.kube.event(on, type_, reason, message, key=key)
        if not await self._write_status(work.kind, target, status):
            return False
        work.done()
        return True

    async def _write_status(self, kind: Kind, body: Body, status: Body) -> bool:
        """The one status patch, conditional on the version decided from. False: the
        object changed meanwhile (read again; decide again)."""
        if not status:
            return True
        key = key_of(body)
        rv = body["metadata"].get("resourceVersion")
        patched = await self.kube.patch_status(PLURALS[kind], *key, status, rv)
        if isinstance(patched, Conflict):
            await self.refresh(kind, key)
            return False
        if patched is None:
            old = self.store.delete(kind, key)
            if old is not None:
                self._forget(kind, key, old)
            return True
        self.own(kind, patched)
        return True

    # --- ScheduledJobs ---------------------------------------------------------------------

    async def _fire_job(self, key: Key) -> Bookkeeping | bool:
        """Fires what is due, records misses, keeps history: a job's decision up to its
        creates; what is left to write (or True when done, False to decide again)."""
        body = self.store.get(Kind.JOB, key)
        if body is None:
            self.timers.cancel(("job", key))
            return True
        now = self.clock()
        # A run the API server refuses makes its fire a missed one: decided again with
        # it (the runs created meanwhile are in the store, so none is created twice).
        refused: dict[str, str] = {}
        run_events: list[PlannedEvent] = []
        while True:
            runs, taken = self._trusted_runs(body)
            plan = decide_job(
                body,
                runs,
                self.store.calendars_in(key[0]),
                now,
                default_time_zone=self.settings.default_timezone,
                taken=taken,
                serving_since=self.serving_since,
                refused=refused,
            )
            if plan.consume_run_now:
                rv = body["metadata"].get("resourceVersion")
                consumed = await self.kube.patch_annotations(
                    api.SCHEDULED_JOBS, *key, {ANNOTATION_RUN_NOW: None}, rv
                )
                if consumed is None:  # changed (or gone) since: decide from the newer body
                    return await self.refresh(Kind.JOB, key) is None
                self.own(Kind.JOB, consumed)
                body = consumed
            for name in plan.deletes:
                await self.kube.delete(api.RUNS, key[0], name)
                old = self.store.delete(Kind.RUN, (key[0], name))
                if old is not None:
                    self.timers.cancel(("run", (key[0], name)))
            created, events = await self._create_runs(body, body, plan.creates, refused)
            run_events += events
            for run in created:
                # Each run from its own instant: a catch-up creates several at once.
                scheduled = parse_time(run["spec"].get("scheduledTime"))
                if scheduled is not None and run["spec"]["trigger"] == api.TRIGGER_SCHEDULE:
                    lateness = max(0.0, (self.clock() - scheduled).total_seconds())
                    metrics.FIRE_LATENESS.labels(*key).observe(lateness)
            if not any(create.body["metadata"]["name"] in refused for create in plan.creates):
                break
            # What was done stays said: the Events of the runs deleted (RunReplaced, keyed
            # by the run), which the next decision no longer sees.
            run_events += [e for e in plan.events if e.key in plan.deletes]
        missed, wake_at, last_success = plan.missed, plan.wake_at, plan.last_success

        def done() -> None:
            if not self.store.holds(Kind.JOB, key):
                return  # deleted meanwhile (forgotten): no series, no timer brought back
            if missed:
                metrics.MISSED_FIRES.labels(*key).inc(missed)
            metrics.set_time(metrics.NEXT_FIRE, *key, wake_at)
            metrics.set_time(metrics.LAST_SUCCESS, *key, last_success)
            self._wake(("job", key), wake_at, (Kind.JOB, key))

        return Bookkeeping.of(Kind.JOB, body, plan.status, (*run_events, *plan.events), done=done)

    async def _create_runs(
        self,
        owner: Body,
        job: Body,
        creates: Iterable[Create],
        refused: dict[str, str] | None = None,
    ) -> tuple[list[Body], list[PlannedEvent]]:
        """Creates ``job``'s planned runs; returns those created now and their Events,
        to be posted on ``owner`` (the job, or the Backfill that asked) with its status.
        A run that exists already (a restart between the create and the status write)
        is adopted: its Event is posted again, under the same key, so at most once; one
        this operator did not create (a name squatted) runs nothing and is reported. A
        refusal is an Event (and goes into ``refused``, by name, with the API server's
        message) and the next run is still created."""
        namespace = key_of(owner)[0]
        created: list[Body] = []
        planned: list[PlannedEvent] = []
        for create in creates:
            run = create.body
            name = run["metadata"]["name"]
            # Ours if created: known before the answer, as the run's watch event may come
            # first and its decision must not look its Jobs up (_ended_unseen).
            self._runs_checked.add((namespace, name))
            async with self.lanes.create():
                result = await self.kube.create(api.RUNS, namespace, run)
            if not isinstance(result, Created):  # another's, or another process's
                self._runs_checked.discard((namespace, name))
            if isinstance(result, Refused):
                message = f"the API server refused run {name}: {result.message}"
                await self.kube.event(owner, "Warning", "RunRefused", message, key=name)
                if refused is not None:
                    refused[name] = result.message
                continue
            if isinstance(result, Exists):
                existing = await self.refresh(Kind.RUN, (namespace, name))
                if existing is not None and of_an_earlier_job(existing, job):
                    # Ours, of a deleted job of the same name: not an untrusted run (no
                    # metric, no alert), and it runs on as an orphan; this fire does not.
                    message = (
                        f"run {name} is a deleted earlier ScheduledJob {key_of(job)[1]}'s, "
                        "and goes with it; this fire of the same name is not started"
                    )
                    await self.kube.event(owner, "Warning", "RunNameTaken", message, key=name)
                    continue
                why = untrusted(existing, job, self._run_lookup(namespace)) if existing else None
                if why is not None:
                    await self._report_untrusted(owner, name, why)
                    continue
                # Ours, from an attempt whose answer was lost: decided now, because its
                # watch event, if it comes after this read, finds nothing new.
                self.queue.add((Kind.RUN, (namespace, name)))
            if isinstance(result, Created):
                self.own(Kind.RUN, result.body, by=(Kind(owner["kind"]), key_of(owner)))
                self.queue.add((Kind.RUN, (namespace, name)))
                created.append(result.body)
            if create.event is not None:
                planned.append(create.event)
        return created, planned

    def _trusted_runs(self, job: Body) -> tuple[list[Body], list[str]]:
        """The job's runs the operator created, and the names of those it did not."""
        key = key_of(job)
        lookup = self._run_lookup(key[0])
        runs: list[Body] = []
        taken: list[Body] = []
        for run in self.store.runs_of(*key):
            if of_an_earlier_job(run, job):  # a predecessor's, on its way out: not ours
                if holds_a_fire_name(run, job):
                    taken.append(run)
                continue
            (taken if untrusted(run, job, lookup) else runs).append(run)
        return runs, [r["metadata"]["name"] for r in taken]

    def _run_lookup(self, namespace: str) -> Callable[[str], Body | None]:
        return lambda name: self.store.get(Kind.RUN, (namespace, name))

    async def _report_untrusted(self, on: Body, run: str, why: str) -> None:
        """Once per run: a Warning Event on ``on`` (its job, or itself) and the metric
        an alert watches."""
        reported = (key_of(on)[0], run)
        if reported in self._untrusted:
            return
        self._untrusted.add(reported)
        metrics.UNTRUSTED_RUNS.labels(reported[0]).inc()
        reason = "RunNameTaken" if on.get("kind") == "ScheduledJob" else "RunNotTrusted"
        message = f"{why}: not executed; the operator runs only runs it created"
        log.warning("%s/%s: %s: %s", *key_of(on), reason, message)
        await self.kube.event(on, "Warning", reason, message, key=run)

    # --- Backfills ---------------------------------------------------------------------------

    async def _backfill_runs(self, key: Key) -> Bookkeeping | bool:
        """Creates the runs of the next instants a Backfill's slots allow and keeps its
        status: its decision up to the creates; what is left to write. Creates first: a
        restart before the status write finds the runs and adopts them (their names are
        derived from job and instant)."""
        body = self.store.get(Kind.BACKFILL, key)
        if body is None:
            return True
        job_name = (body.get("spec") or {}).get("scheduledJob")
        job = self.store.get(Kind.JOB, (key[0], job_name)) if isinstance(job_name, str) else None
        runs, taken = self._trusted_runs(job) if job is not None else ([], [])
        plan = decide_backfill(
            body,
            job,
            runs,
            self.store.calendars_in(key[0]),
            self.clock(),
            gone=self.store.gone_runs_of(key),
            taken=taken,
            default_time_zone=self.settings.default_timezone,
        )
        run_events: list[PlannedEvent] = []
        if job is not None:
            _, run_events = await self._create_runs(body, job, plan.creates)
        active = plan.active

        def done() -> None:
            self.store.forget_gone(key, active)

        events = (*run_events, *plan.events)
        return Bookkeeping.of(Kind.BACKFILL, body, plan.status, events, done=done)

    # --- Calendar feeds ----------------------------------------------------------------

    async def _reconcile_feed(self, kind: Kind, key: Key) -> bool:
        """Fetches a Calendar's ``spec.source`` when it is due and writes what came of it
        (:func:`~almanac.rules.calendars.decide_feed`); True when done."""
        timer = _timer(kind, key)
        body = self.store.get(kind, key)
        if body is None:
            self.timers.cancel(timer)
            return True
        source = calendars.source_of(body)
        if source is None:  # none (any more), or an invalid spec: nothing to fetch
            self.timers.cancel(timer)
            return await self._bookkeep(Bookkeeping.of(kind, body, calendars.without_source(body)))
        due = calendars.fetch_due(body, source, self.clock())
        if due > self.clock():
            self._wake(timer, due, (kind, key))
            return True
        outcome = await feeds.fetch(self.kube, key[0], source, self.settings.feed_allowed_hosts)
        now = self.clock()
        # Off the event loop: the decision parses and checks the whole feed (up to
        # FEED_MAX_BYTES) and expands its next year, seconds for a large one, during
        # which no job would fire and no webhook answer. It reads only its arguments
        # (the store's bodies are replaced, never changed in place) and the iCalendar
        # caches, which are thread-safe.
        plan = await asyncio.to_thread(calendars.decide_feed, body, source, outcome, now)
        # Its Events are the log lines (a failure once per distinct error), in the
        # fetcher's own words: never the URL.
        again = now + source.interval()

        def done() -> None:
            self._wake(timer, again, (kind, key))

        return await self._bookkeep(Bookkeeping.of(kind, body, plan.status, plan.events, done=done))

    # --- ScheduledJobRuns ------------------------------------------------------------------

    async def _start_services(self, key: Key) -> Bookkeeping | bool:
        """Starts the services that are due and keeps the run's status: its decision up
        to the creates (its Jobs, a rerun); what is left to write."""
        body = self.store.get(Kind.RUN, key)
        if body is None:
            return True
        job_name = (body.get("spec") or {}).get("scheduledJob", "")
        job = self.store.get(Kind.JOB, (key[0], job_name))
        why = untrusted(body, job, self._run_lookup(key[0]))
        if why is not None:
            await self._report_untrusted(body, key[1], why)
            return True
        if job is not None and of_an_earlier_job(body, job):
            job = None  # a deleted predecessor's: decided as before its name was reused
        refused: dict[str, str] = {}
        no_pods = await self._pod_refusals(key[0], self.store.batch_jobs_of(*key))
        ended = dict(self._ended_jobs.get(key) or {})  # a Job in the store is newer
        live = self.store.batch_jobs_of(*key)
        ended |= await self._ended_unseen(key[0], body, [*live, *ended.values()])
        self._runs_checked.add(key)
        while True:
            live = self.store.batch_jobs_of(*key)
            ended = {n: j for n, j in ended.items() if n not in {key_of(b)[1] for b in live}}
            plan = decide_run(
                body,
                [*live, *ended.values()],
                job,
                self.clock(),
                smtp=self.smtp,
                webhooks=self.webhooks,
                rerun_delay=self.settings.rerun_delay,
                refused=refused,
                no_pods=no_pods,
                default_time_zone=self.settings.default_timezone,
            )
            if self._recreates(body, plan.creates):
                # A Job deleted while its service ran is created again, unless its run
                # is gone too (kubectl delete sjr: the collector deletes the Jobs, and
                # the Job watch may show that before the run watch shows the run's
                # deletion): a Job created then would be the service's second.
                fresh = await self.refresh(Kind.RUN, key)
                if fresh is None:
                    return True
                if fresh["metadata"].get("resourceVersion") != body["metadata"].get(
                    "resourceVersion"
                ):
                    return False  # changed meanwhile: decided again from the newer body
            newly = False
            for batch_job in plan.creates:
                async with self.lanes.create():
                    result = await self.kube.create_job(key[0], batch_job)
                if isinstance(result, Created):
                    self.own(Kind.BATCH_JOB, result.body)
                elif isinstance(result, Refused):
                    service = batch_job["metadata"]["labels"][api.LABEL_SERVICE]
                    refused[service] = result.message
                    newly = True
            if not newly:  # a refused Job fails its service: decide again with that
                break
        events = plan.events
        if plan.rerun is not None:
            child = (key[0], plan.rerun["metadata"]["name"])
            self._runs_checked.add(child)  # before the answer, as in _create_runs
            result = await self.kube.create(api.RUNS, key[0], plan.rerun)
            if not isinstance(result, Created):
                self._runs_checked.discard(child)
            if isinstance(result, Created):
                self.own(Kind.RUN, result.body)
                self.queue.add((Kind.RUN, key_of(result.body)))
            elif not (isinstance(result, Exists) and await self._rerun_answered(key, plan.rerun)):
                child = plan.rerun["metadata"]["name"]
                message = (
                    f"run {key[1]} was already rerun as {child}; rerun {child} to try again"
                    if isinstance(result, Exists)
                    else result.message
                )
                rv = body["metadata"].get("resourceVersion") or ""
                events = (
                    *(e for e in events if e.reason != "RerunCreated"),
                    PlannedEvent("Warning", "RerunRefused", message, f"rerun-{rv}"),
                )
        if plan.consume_rerun:
            consumed = await self._consume_rerun(body)
            if consumed is None:
                return True  # the run is gone
            body = consumed
        status, wake_at, late_now = plan.status, plan.wake_at, plan.late_now
        counted = plan.finished_now and bool(status.get("phase"))
        # Notifications that failed before any attempt (not configured, webhooks off).
        failed = 0
        if plan.finished_now or late_now:
            failed = sum(
                (channel.read({"status": status}) or {}).get("state") == "Failed"
                for channel in channels_of({"status": status})
            )

        recorded = tuple(ended)

        def done() -> None:  # small values only: it may be parked (Bookkeeping)
            kept = self._ended_jobs.get(key) or {}
            for name in recorded:  # the status written records how they ended
                kept.pop(name, None)
            if not kept:
                self._ended_jobs.pop(key, None)
            run = self.store.get(Kind.RUN, key)
            if run is None:  # deleted meanwhile: nothing to count, wake or deliver
                return
            if counted:
                _observe_finished(run)
            if late_now:
                metrics.RUNS_LATE.labels(key[0], job_name).inc()
            if failed:
                metrics.NOTIFICATION_FAILURES.labels(key[0], job_name).inc(failed)
            self._wake(("run", key), wake_at, (Kind.RUN, key))
            self.delivery.consider(key, run)

        return Bookkeeping.of(Kind.RUN, body, status, events, job=job, done=done)

    @staticmethod
    def _recreates(run: Body, creates: Iterable[Body]) -> bool:
        """Whether one of the Jobs to create is one the run's status records as
        created already (deleted since): the rare case worth a GET of the run."""
        started = {s.get("jobName") for s in (run.get("status") or {}).get("services") or []}
        return any(job["metadata"]["name"] in started for job in creates)

    async def _ended_unseen(
        self, namespace: str, run: Body, batch_jobs: list[Body]
    ) -> dict[str, Body]:
        """By Job name: stand-ins for the Jobs of the run's services that are gone and
        that the Job controller's Events say ended (finished and removed while no
        operator watched; :func:`job_ended_by_events`). Looked up for a service the run
        records as started whose Job is not in view and, the first time this process
        decides a run it did not create, for every unfinished one (its Job may have been
        created by a process that stopped before recording it). Never on a fire's way:
        this process's own runs and Jobs are in view."""
        found = {}
        unstarted = key_of(run) not in self._runs_checked
        for service, job in jobs_not_in_view(run, batch_jobs, unstarted=unstarted).items():
            events = await self.kube.list_events(namespace, job, "Job")
            stand_in = job_ended_by_events(run, service, job, events)
            if stand_in is not None:
                found[job] = stand_in
        return found

    async def _pod_refusals(self, namespace: str, batch_jobs: list[Body]) -> dict[str, str]:
        """Why Jobs that made no Pod in time make none: the Job controller's latest
        FailedCreate Event on each (Pod Security, quota, an admission webhook)."""
        found = {}
        for service, job in jobs_without_pods(batch_jobs, self.clock()).items():
            events = await self.kube.list_events(namespace, job, "Job")
            refusals = [e for e in events if e.get("reason") == "FailedCreate"]
            if refusals:
                latest = max(refusals, key=lambda e: str(e.get("lastTimestamp") or ""))
                found[service] = truncate(str(latest.get("message") or ""), 1000)
        return found

    async def _rerun_answered(self, key: Key, rerun: Body) -> bool:
        """Whether the rerun that exists already is the one this request asked for
        (created by a decision that stopped, or lost an answer, before it consumed the
        annotation): then it is decided now, and the request is not refused as a second
        one (:data:`~almanac.api.names.ANNOTATION_RERUN_REQUEST`)."""
        child = await self.refresh(Kind.RUN, (key[0], rerun["metadata"]["name"]))
        if child is None:
            return False
        asked = (rerun["metadata"].get("annotations") or {}).get(ANNOTATION_RERUN_REQUEST)
        made = (child["metadata"].get("annotations") or {}).get(ANNOTATION_RERUN_REQUEST)
        if not asked or made != asked or (child.get("spec") or {}).get("parentRun") != key[1]:
            return False
        self.queue.add((Kind.RUN, key_of(child)))
        return True

    async def _consume_rerun(self, run: Body) -> Body | None:
        """Removes the rerun annotation once its child exists (or was refused). Not by
        deciding again on a conflict: the child is made, and a second decision would
        report it as made by an earlier request."""
        key = key_of(run)
        for _ in range(ATTEMPTS):
            rv = run["metadata"].get("resourceVersion")
            consumed = await self.kube.patch_annotations(
                api.RUNS, *key, {ANNOTATION_RERUN: None}, rv
            )
            if consumed is not None:
                self.own(Kind.RUN, consumed)
                return consumed
            fresh = await self.refresh(Kind.RUN, key)
            if fresh is None:
                return None
            if ANNOTATION_RERUN not in (fresh["metadata"].get("annotations") or {}):
                return fresh
            run = fresh
        raise RuntimeError(f"run {key[0]}/{key[1]}: the rerun annotation kept changing")


def _timer(kind: Kind, key: Key) -> Hashable:
    """The one timer of an object: a job's next fire, a run's next check, a feed's next
    fetch."""
    if kind is Kind.JOB:
        return ("job", key)
    if kind in CALENDAR_KINDS:
        return ("feed", (kind, key))
    return ("run", key)


def _observe_finished(run: Body) -> None:
    """Counts a run that just finished, with its duration and its services'."""
    namespace, job = run["metadata"]["namespace"], run["spec"]["scheduledJob"]
    status: dict[str, Any] = run.get("status") or {}
    metrics.RUNS.labels(namespace, job, status["phase"]).inc()
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    if start and end:
        metrics.RUN_DURATION.labels(namespace, job).observe((end - start).total_seconds())
    for service in status.get("services") or []:
        start = parse_time(service.get("startTime"))
        end = parse_time(service.get("completionTime"))
        if start and end:
            metrics.SERVICE_DURATION.labels(
                namespace, job, service["name"], service["phase"]
            ).observe((end - start).total_seconds())


__all__ = ["Controller"]
