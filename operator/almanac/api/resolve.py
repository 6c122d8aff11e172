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

import hashlib
from collections.abc import Mapping
from typing import Any

from almanac import wire
from almanac.api.models import Calendar, ClusterCalendar, ScheduledJob
from almanac.errors import FieldError, InvalidSpec
from almanac.schedule.engine import Schedule
from almanac.shared import Kept

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
        try:
            calendars[key] = _parsed(
                ClusterCalendar if ref.kind == "ClusterCalendar" else Calendar, body
            )
        except InvalidSpec as error:
            errors += [
                FieldError(f"{ref.kind} {ref.name}: {e.path}", e.message) for e in error.errors
            ]
    return calendars, errors


#: Calendars parsed, by kind and content (a digest of the body): the last
#: ``PARSED_KEPT``.
PARSED_KEPT = 1024
_PARSED: Kept[tuple[str, bytes], Calendar] = Kept(PARSED_KEPT)


def _parsed(model: type[Calendar], body: Mapping[str, Any]) -> Calendar:
    """``model.parse(body)``, once per content. Every decision of a job builds its
    schedule, so a Calendar that a thousand jobs refer to was parsed, and its exclusions
    worked out, at each of their decisions: about 240 us more per decision for one with
    Romania's holidays, about 80 us with the parsed model kept (whose exclusions are worked
    out once, :meth:`Calendar.exclusions`). By content, not by UID and resourceVersion:
    an edit under review, or a file saved from the cluster and edited, still carries the
    stored version's. An invalid body is parsed each time (it raises)."""
    try:
        key = (model.__name__, hashlib.blake2b(wire.dumps(body), digest_size=16).digest())
    except TypeError:  # a YAML file's body that is not JSON (a number as a key, a date)
        return model.parse(body)
    return _PARSED.get(key, lambda: model.parse(body))


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
