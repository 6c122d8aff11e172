"""A ScheduledJob's schedule with the Calendars it refers to: one way to build it.

The controller, the webhook, ``almanac next`` and the plugin all need the same thing:
the job's cron, zone, window and exclusions plus those of every Calendar it names. They
hold Calendars as raw bodies (from the watch, the API or a file), so :func:`resolve`
takes them raw, parses each one it needs, and reports every problem in one
:class:`InvalidSpec`: a missing Calendar at ``spec.calendarRefs[i].name``, a malformed
one as ``Calendar NAME: <its field>``. Bodies are keyed by
:func:`~almanac.api.names.calendar_key`: a Calendar by its name, a ClusterCalendar as
``ClusterCalendar/<name>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from almanac.api.models import Calendar, ClusterCalendar, ScheduledJob
from almanac.errors import FieldError, InvalidSpec
from almanac.schedule.engine import Schedule

__all__ = ["parse_calendars", "resolve"]


def parse_calendars(
    job: ScheduledJob, bodies: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, Calendar], list[FieldError]]:
    """The job's referenced Calendars that parse, by name, and the errors of those that
    do not (a missing one is left to :meth:`ScheduledJobSpec.build_schedule`)."""
    calendars: dict[str, Calendar] = {}
    errors: list[FieldError] = []
    for ref in job.spec.calendar_refs:
        key = ref.key()
        body = bodies.get(key)
        if body is None or key in calendars:
            continue
        model = ClusterCalendar if ref.kind == "ClusterCalendar" else Calendar
        try:
            calendars[key] = model.parse(body)
        except InvalidSpec as error:
            errors += [
                FieldError(f"{ref.kind} {ref.name}: {e.path}", e.message) for e in error.errors
            ]
    return calendars, errors


def resolve(
    job: ScheduledJob, calendars: Mapping[str, Mapping[str, Any]], default_time_zone: str = "UTC"
) -> Schedule:
    """The engine's schedule for ``job`` given the Calendar bodies of its namespace and
    the ClusterCalendars (by :func:`~almanac.api.names.calendar_key`);
    :class:`InvalidSpec` names every field that stops it."""
    parsed, errors = parse_calendars(job, calendars)
    if errors:
        raise InvalidSpec(errors)
    return job.spec.build_schedule(parsed, default_time_zone=default_time_zone)
