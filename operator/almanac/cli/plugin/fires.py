"""The ``next``, ``calendar`` and ``backfill --dry-run`` reports, as pure functions: a
live ScheduledJob's next fires, its month grids, and the instants a Backfill would run.

:func:`format_next` takes the job's and its Calendars' API dicts and ``now``, builds the
schedule the one way the operator does (:func:`almanac.api.resolve.resolve`), and
returns the lines to print, or raises :class:`PluginError` saying why the job does not
fire.

Pure: no client, no clock, no I/O. Imports :mod:`almanac.api` (models, names, resolve),
the engine, :mod:`almanac.errors`, the ``Body`` alias of :mod:`almanac.rules.plans` and
the range of :mod:`almanac.rules.backfill` (the operator's own, so the dry run lists
what the operator will run); of
the plugin, :mod:`.errors` and :mod:`.views`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from almanac.api.models import (
    API_VERSION,
    Backfill,
    BackfillOrder,
    Calendar,
    ScheduledJob,
)
from almanac.api.names import calendar_key, run_name
from almanac.api.resolve import resolve
from almanac.cli.plugin.errors import PluginError
from almanac.cli.plugin.views import NONE, api_time, format_table, name_of
from almanac.errors import InvalidSpec, quote
from almanac.rules.backfill import TooManyInstants, range_instants
from almanac.rules.plans import Body
from almanac.schedule.engine import NeverFires, OnExcludedDay, Schedule
from almanac.schedule.explain import Fire, SkippedDay, first_fires, format_local
from almanac.times import format_instant, parse_instant

if TYPE_CHECKING:
    from almanac.cli.monthgrid import MonthGrids

__all__ = ["backfill_body", "check_backfill", "format_backfill", "format_calendar", "format_next"]


def format_next(
    job_body: Body,
    calendar_bodies: Sequence[Body],
    now: datetime,
    count: int,
    default_time_zone: str = "UTC",
) -> list[str]:
    """``next``: the next ``count`` fires after ``now`` (UTC, and local time in the job's
    zone), and between them the days an exclusion skipped, with the rule and where it is
    written (``spec.exclusions...`` or ``Calendar <name>``).

    ``calendar_bodies`` are the Calendars found of those the job refers to. Raises
    :class:`PluginError` when the job or a Calendar is invalid (every bad field), a
    referenced Calendar is missing, the job is suspended, or it never fires.
    """
    name = name_of(job_body)
    job, schedule = _schedule(job_body, calendar_bodies, default_time_zone)
    if job.spec.suspend:
        patch = """'{"spec":{"suspend":false}}'"""
        namespace = job.metadata.namespace or ""
        resume = f"kubectl -n {namespace} patch sj {name} --type=merge -p {patch}"
        raise PluginError(
            f"scheduledjob {quote(name)} is suspended (spec.suspend: true): it does not fire "
            f"until it is resumed: {resume}"
        )

    kind = "fixed-time" if schedule.cron.fixed_time else "wildcard"
    zone = schedule.zone.key
    head = f"ScheduledJob {name}: {quote(schedule.cron.text)} ({kind}) in {zone}"
    if job.spec.time_zone is None:
        head += " (spec.timeZone not set: the default zone, see --default-timezone)"
    refs = [
        ref.name if ref.kind == "Calendar" else f"{ref.kind} {ref.name}"
        for ref in job.spec.calendar_refs
    ]
    if refs:
        head += f", calendars {', '.join(refs)}"
    if schedule.days.on_excluded is not OnExcludedDay.SKIP:
        head += (
            f", onExcludedDay {schedule.days.on_excluded.value} "
            f"(maxShiftDays {schedule.days.max_shift})"
        )
    start, end = schedule.window
    if start is not None or end is not None:
        head += (
            f", window [{NONE if start is None else format_instant(start)}, "
            f"{NONE if end is None else format_instant(end)}]"
        )

    rows: list[list[str]] = []
    fires: list[Fire] = []
    for item in first_fires(schedule.timeline(now), count):
        if isinstance(item, SkippedDay):
            rules = "; ".join(str(rule) for rule in item.excluded_by)
            note = f"; {item.note}" if item.note else ""
            rows.append(["skipped", _day(item.day), f"excluded by {rules}{note}"])
        else:
            fires.append(item)
            notes = "; ".join((*item.reasons, *item.notes))
            rows.append([format_instant(item.instant), format_local(item), notes])
    if not fires:
        never = schedule.next_fire(now)
        assert isinstance(never, NeverFires)
        when = "" if schedule.never_fires else f" after {format_instant(now)}"
        raise PluginError(f"scheduledjob {quote(name)} never fires{when}: {never.message}")

    lines = [head, *format_table(["UTC", f"LOCAL ({zone})", "NOTE"], rows)]
    if len(fires) < count and end is not None:
        lines.append(f"the window ends at {format_instant(end)} (spec.endTime): no fire after it")
    reported = api_time(job.status.next_schedule_time if job.status else None)
    if reported is not None and reported > now and reported != fires[0].instant:
        lines.append(
            f"note: the operator reports the next fire at {format_instant(reported)}; its "
            f"default time zone or its view of the Calendars may differ from this one"
        )
    return lines


def _schedule(
    job_body: Body, calendar_bodies: Sequence[Body], default_time_zone: str
) -> tuple[ScheduledJob, Schedule]:
    """The job and its schedule, built as the operator builds them; :class:`PluginError`
    naming every bad field of the job and of each Calendar."""
    name = name_of(job_body)
    problems: list[str] = []
    job: ScheduledJob | None = None
    try:
        job = ScheduledJob.parse(job_body)
    except InvalidSpec as e:
        problems.append(_invalid(f"scheduledjob {quote(name)}", e))
    # Each Calendar is checked here too, so that its problems read as its own.
    calendars: dict[str, Body] = {}
    for body in calendar_bodies:
        try:
            Calendar.parse(body)
        except InvalidSpec as e:
            problems.append(_invalid(f"calendar {quote(name_of(body))}", e))
        else:
            calendars[calendar_key(str(body.get("kind") or "Calendar"), name_of(body))] = body
    if job is not None and not problems:
        try:
            schedule = resolve(job, calendars, default_time_zone)
        except InvalidSpec as e:
            problems.append(_invalid(f"scheduledjob {quote(name)}", e))
    if problems:
        raise PluginError("\n".join(problems))
    assert job is not None
    return job, schedule


def format_calendar(
    job_body: Body,
    calendar_bodies: Sequence[Body],
    now: datetime,
    months: int,
    default_time_zone: str = "UTC",
    *,
    color: bool = False,
) -> MonthGrids:
    """``calendar``: ``months`` month grids from the current month in the job's zone
    (:mod:`almanac.cli.monthgrid`), the days it fires and the days it skips, and why.
    Raises :class:`PluginError` as :func:`format_next` does, but draws a suspended job
    (saying so) and one that never fires after ``now`` (the grid says why, and
    ``never`` tells the verb to exit 1, as ``almanac calendar`` does)."""
    from almanac.cli.monthgrid import render_months

    job, schedule = _schedule(job_body, calendar_bodies, default_time_zone)
    today = now.astimezone(schedule.zone)
    title = f"ScheduledJob {name_of(job_body)}"
    if job.spec.suspend:
        title += " (suspended: nothing fires until spec.suspend is false)"
    return render_months(schedule, title, today.year, today.month, months, now=now, color=color)


def _day(day: date) -> str:
    return f"{day:%a} {day.isoformat()}"


def _invalid(what: str, error: InvalidSpec) -> str:
    return f"{what} is invalid:\n" + "\n".join(f"  {e}" for e in error.errors)


def backfill_body(
    job: str, start: str, end: str, parallelism: int, order: str, name: str | None = None
) -> Body:
    """The Backfill that ``backfill`` creates; without ``name``, one derived from the job
    and the range (``settle-202701010000-202701080000``), so that running the same
    command twice finds the first Backfill instead of making a second."""
    if name is None:
        stamps = []
        for value in (start, end):
            try:
                stamps.append(parse_instant(value).astimezone(UTC).strftime("%Y%m%d%H%M"))
            except ValueError:
                stamps.append("invalid")  # the model names the field below
        name = f"{job}-{stamps[0]}-{stamps[1]}"
    return {
        "apiVersion": API_VERSION,
        "kind": "Backfill",
        "metadata": {"name": name},
        "spec": {
            "scheduledJob": job,
            "from": start,
            "to": end,
            "parallelism": parallelism,
            "order": order,
        },
    }


def check_backfill(body: Body, now: datetime) -> Backfill:
    """The Backfill as the webhook would take it; :class:`PluginError` naming each bad
    field (the range reaching past ``now`` too)."""
    try:
        backfill = Backfill.parse(body)
    except InvalidSpec as e:
        raise PluginError(_invalid(f"backfill {quote(name_of(body))}", e)) from None
    if backfill.spec.end > now:
        raise PluginError(
            f"--to {backfill.spec.to} is later than now ({format_instant(now)}): a backfill "
            "runs instants that have passed; the schedule fires the others"
        )
    return backfill


def format_backfill(
    job_body: Body,
    calendar_bodies: Sequence[Body],
    backfill_spec: Body,
    runs: Sequence[Body],
    now: datetime,
    default_time_zone: str = "UTC",
) -> list[str]:
    """``backfill --dry-run``: the instants the Backfill would run, in the order it would
    run them (UTC, local time, the run's name, and whether that run is already there and
    would be adopted rather than created). :class:`PluginError` when the job or the
    Backfill is invalid, or the range holds more than 10,000 instants."""
    backfill = check_backfill(backfill_spec, now)
    spec = backfill.spec
    name = name_of(job_body)
    _, schedule = _schedule(job_body, calendar_bodies, default_time_zone)
    try:
        instants = range_instants(schedule, spec.start, spec.end)
    except TooManyInstants as error:
        raise PluginError(f"scheduledjob {quote(name)}: {error}") from None
    if spec.order is BackfillOrder.NEWEST:
        instants.reverse()
    existing = {name_of(r): r for r in runs}
    zone = schedule.zone
    rows = []
    for i, instant in enumerate(instants, 1):
        run = run_name(name, instant)
        there = existing.get(run)
        phase = ((there or {}).get("status") or {}).get("phase") or "Pending"
        local = instant.astimezone(zone)
        rows.append(
            [
                str(i),
                format_instant(instant),
                f"{local:%a %Y-%m-%d %H:%M:%S} {local.tzname()}",
                run,
                f"exists ({phase}): not run again" if there else "",
            ]
        )
    head = (
        f"Backfill of ScheduledJob {name} over [{format_instant(spec.start)}, "
        f"{format_instant(spec.end)}): {len(instants)} instant(s), "
        f"{spec.order.value.lower()} first, at most {spec.parallelism} run(s) at once"
    )
    if not rows:
        return [head, "no instant of the schedule falls in the range: nothing to run"]
    return [head, *format_table(["#", "UTC", f"LOCAL ({zone.key})", "RUN", "NOTE"], rows)]
