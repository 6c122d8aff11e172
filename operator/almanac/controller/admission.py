"""What the validating webhook says about a ScheduledJob or Calendar: pure review.

The CRD schema and its CEL rules refuse what they can (formats, impossible dates,
unique service names). The webhook adds what only the schedule engine knows, with the
same field-naming messages as `almanac next`:

- refused: a cron expression the engine rejects, an unknown time zone, an invalid
  window, any field the models refuse, and a ``spec.notifications.to`` item the operator
  would not mail (not a bare address, or outside its allow-list of recipient domains),
  and a ``spec.notifications.webhooks`` item the operator would not post to (any, while
  webhooks are off; an inline ``url`` that is not https, or not to an allowed host).
  An item already in the object being updated is not refused again (a stored object
  stays editable, e.g. by the operator consuming run-now, after the allow-list
  narrowed): the delivery checks it and fails that mail with a message instead;
- admitted with a warning (kubectl prints it): a calendarRef to a Calendar that does
  not exist yet (GitOps tools apply a folder in any order; the job stays Ready=False,
  CalendarNotFound, and fires nothing until it appears) or whose feed has not been
  fetched yet (CalendarNotFetched, the same way), a schedule that can never
  fire (it is valid, just useless; the operator reports it the same way), and a
  Calendar edit that would make a job referring to it never fire again (naming the job).

A Backfill is refused when its spec is invalid, its range reaches past now, or its
ScheduledJob's schedule fires more than 10,000 times in it (counted with the job's
Calendars, as the operator will); admitted with a warning when the job or a Calendar
does not exist yet or is invalid (the Backfill waits for it), or the range holds no fire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from almanac.api.feeds import check_url
from almanac.api.models import Backfill, Calendar, CalendarNotFetched, ScheduledJob
from almanac.api.names import ANNOTATION_RERUN, ANNOTATION_RUN_NOW
from almanac.api.resolve import parse_calendars, resolve
from almanac.errors import InvalidSpec, quote
from almanac.hosts import HostAllowList
from almanac.notifications.recipients import AllowList, check_recipients
from almanac.notifications.webhook import check_webhooks
from almanac.rules.backfill import TooManyInstants, range_instants
from almanac.schedule.engine import NeverFires
from almanac.times import timestamp


@dataclass
class Review:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.errors


def review_scheduled_job(
    body: Mapping[str, Any],
    calendars: Mapping[str, Mapping[str, Any]],
    *,
    default_time_zone: str,
    now: datetime,
    mail_domains: AllowList | None = None,
    notify_hosts: HostAllowList | None = None,
    old: Mapping[str, Any] | None = None,
) -> Review:
    """calendars: the Calendar bodies of the job's namespace, by name, and the
    ClusterCalendars as ``ClusterCalendar/<name>``; mail_domains: the
    operator's recipient allow-list (None: addresses are checked for their form only);
    notify_hosts: the hosts webhooks may post to (None: webhooks are off); old: the
    stored object of an UPDATE."""
    review = Review()
    # Before the model, which knows only "is not an e-mail address" (and still reads
    # stored objects that name a display name): the recipients' own words win.
    _, refused = check_recipients(_recipients(body), mail_domains, skip=_recipients(old))
    refused += check_webhooks(_webhooks(body), notify_hosts, skip=_webhooks(old))
    review.errors += [str(e) for e in refused]
    said = {e.path for e in refused}
    try:
        job = ScheduledJob.parse(body)
    except InvalidSpec as error:
        review.errors += [str(e) for e in error.errors if e.path not in said]
        return review
    if job.spec.notifications.on_late and job.spec.run_deadline is None:
        review.warnings.append(
            "spec.notifications.onLate: true has no effect without spec.runDeadline (a "
            "duration such as 2h): no run is ever late"
        )
    missing = _names(job) - calendars.keys()
    for i, ref in enumerate(job.spec.calendar_refs):
        if ref.key() in missing:
            review.warnings.append(
                f'spec.calendarRefs[{i}].name: {ref.kind} "{ref.name}" does not exist yet; '
                "the job will not fire until it does"
            )
    # The rest of the spec is still checked: a missing or invalid Calendar, or one whose
    # feed has not been fetched yet, counts as empty.
    parsed, problems = parse_calendars(job, calendars)
    review.warnings += [f"{p} (the job will not fire until it is fixed)" for p in problems]
    for i, ref in enumerate(job.spec.calendar_refs):
        calendar = parsed.get(ref.key())
        try:
            if calendar is not None:
                calendar.kept_text()
        except CalendarNotFetched as e:
            review.warnings.append(f"spec.calendarRefs[{i}]: {e}")
            del parsed[ref.key()]
    stand_ins = {n: _empty(n) for n in _names(job) - parsed.keys()}
    try:
        schedule = resolve(
            job, {**stand_ins, **{n: calendars[n] for n in parsed}}, default_time_zone
        )
    except InvalidSpec as error:
        review.errors += [str(e) for e in error.errors]
        return review
    upcoming = schedule.next_fire(now)
    if isinstance(upcoming, NeverFires) and not stand_ins:
        review.warnings.append(f"spec.schedule: the job can never fire: {upcoming.message}")
    return review


def review_backfill(
    body: Mapping[str, Any],
    job: Mapping[str, Any] | None,
    calendars: Mapping[str, Mapping[str, Any]],
    *,
    default_time_zone: str,
    now: datetime,
) -> Review:
    """A Backfill being created; ``job`` is its ScheduledJob (None: not there) and
    ``calendars`` the Calendar bodies of the namespace, by name."""
    review = Review()
    try:
        backfill = Backfill.parse(body)
    except InvalidSpec as error:
        review.errors += [str(e) for e in error.errors]
        return review
    spec = backfill.spec
    if spec.end > now:
        review.errors.append(
            f"spec.to: {quote(spec.to)} is later than now ({timestamp(now)}): a Backfill runs "
            "instants that have passed; the schedule fires the others"
        )
        return review
    name = quote(spec.scheduled_job)
    if job is None:
        review.warnings.append(
            f"spec.scheduledJob: ScheduledJob {name} does not exist yet; the Backfill waits for it"
        )
        return review
    try:
        schedule = resolve(ScheduledJob.parse(job), calendars, default_time_zone)
    except InvalidSpec as error:
        problems = "; ".join(str(e) for e in error.errors)
        review.warnings.append(
            f"spec.scheduledJob: ScheduledJob {name} is not valid ({problems}); the Backfill "
            "waits until it is"
        )
        return review
    try:
        instants = range_instants(schedule, spec.start, spec.end)
    except TooManyInstants as error:
        review.errors.append(f"spec: ScheduledJob {name}: {error}")
        return review
    if not instants:
        review.warnings.append(
            f"spec: ScheduledJob {name} fires no instant in [{spec.from_}, {spec.to}): the "
            "Backfill succeeds without a run"
        )
    return review


def needs_jobs_permission(
    kind: str, operation: str, old: Mapping[str, Any] | None, new: Mapping[str, Any]
) -> bool:
    """Whether this request makes Jobs run, so that its user must be allowed to create
    Jobs in the namespace (the rule CronJob's users live by): creating a ScheduledJob,
    changing its spec or asking for a run-now; asking for a rerun of a run; creating a
    Backfill."""
    if kind == "Backfill":
        return operation == "CREATE"
    annotation = ANNOTATION_RUN_NOW if kind == "ScheduledJob" else ANNOTATION_RERUN

    def asked(body: Mapping[str, Any] | None) -> Any:
        return ((body or {}).get("metadata", {}).get("annotations") or {}).get(annotation)

    if asked(new) is not None and asked(new) != asked(old):
        return True
    if kind != "ScheduledJob":
        return False
    return operation == "CREATE" or (old or {}).get("spec") != new.get("spec")


def jobs_permission_refusal(user: Mapping[str, Any], namespace: str) -> str:
    """What a user without the permission is told, and how to check it."""
    name = user.get("username") or "this user"
    return (
        f'{name} may not create Jobs in namespace "{namespace}": a ScheduledJob runs its '
        "services as Jobs, so creating or changing one, asking for a run-now or a "
        "rerun, or creating a Backfill, needs that permission (check: kubectl auth can-i "
        "create jobs.batch "
        f"-n {namespace} --as {name})"
    )


RUN_CREATE_REFUSAL = (
    "only the Almanac operator creates ScheduledJobRuns: annotate the ScheduledJob with "
    "almanac.dev/run-now=now for a run now, or a run with almanac.dev/rerun=now to rerun it"
)


def review_calendar(body: Mapping[str, Any]) -> Review:
    """Refuses an invalid Calendar or ClusterCalendar, naming every bad field. What the
    edit does to the jobs that refer to it is warned about apart
    (:func:`almanac.api.impact.never_fire_again`), page by page as they are listed."""
    review = Review()
    try:
        Calendar.parse(body)
    except InvalidSpec as error:
        review.errors += [str(e) for e in error.errors]
    return review


def feed_url_errors(
    body: Mapping[str, Any], allowed: HostAllowList | None, old: Mapping[str, Any] | None = None
) -> list[str]:
    """``spec.source.url: ...`` when the operator would not fetch a (Cluster)Calendar's
    URL (:func:`almanac.api.feeds.check_url`). A URL equal to the stored object's is not
    checked again: the object stays editable after the list narrowed, and its fetch says
    why it fails."""
    url = _feed_url(body)
    if url is None or url == _feed_url(old):
        return []
    try:
        check_url(url, allowed)
    except ValueError as error:
        return [f"spec.source.url: {error}"]
    return []


def _feed_url(body: Mapping[str, Any] | None) -> str | None:
    spec = (body or {}).get("spec")
    source = spec.get("source") if isinstance(spec, dict) else None
    url = source.get("url") if isinstance(source, dict) else None
    return url if isinstance(url, str) else None


def _recipients(body: Mapping[str, Any] | None) -> list[str]:
    """``spec.notifications.to`` of a body if it is a list of strings (else the model
    says what is wrong with it), or nothing."""
    to = (((body or {}).get("spec") or {}).get("notifications") or {}).get("to")
    if isinstance(to, list) and all(isinstance(t, str) for t in to):
        return to
    return []


def _webhooks(body: Mapping[str, Any] | None) -> object:
    """``spec.notifications.webhooks`` of a body, as written (checked item by item)."""
    return (((body or {}).get("spec") or {}).get("notifications") or {}).get("webhooks")


def _names(job: ScheduledJob) -> set[str]:
    """The keys of the job's calendars (:func:`~almanac.api.names.calendar_key`)."""
    return {ref.key() for ref in job.spec.calendar_refs}


def _empty(key: str) -> dict[str, Any]:
    """A stand-in for a Calendar not yet there (or invalid, or not fetched): excludes
    nothing."""
    kind, _, name = key.rpartition("/")
    return {"kind": kind or "Calendar", "metadata": {"name": name}, "spec": {}}
