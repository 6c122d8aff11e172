"""How instants and durations are written and read: one module for all of Almanac.

Ground floor (imports nothing of Almanac): the engine, the decisions, the API gateway,
e-mails and the command lines all print ``2027-01-04T00:30:00Z`` and ``3m12s`` the same
way, read Kubernetes times back with :func:`parse_time`, and read the instants users
write (a Backfill's ``from`` and ``to``, ``almanac next --after``) with :func:`parse_instant`.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

__all__ = [
    "format_duration",
    "format_instant",
    "parse_duration",
    "parse_instant",
    "parse_time",
    "timestamp",
]

#: A duration as Kubernetes and Go write one, in whole hours, minutes and seconds, largest
#: first: ``2h``, ``90m``, ``1h30m``, ``45s``. Fractions and days are left out on purpose:
#: CEL's ``duration()`` (the CRD's bound check) has no days, and a deadline needs no
#: precision below a second.
DURATION_PATTERN = r"^([0-9]{1,4}h)?([0-9]{1,6}m)?([0-9]{1,7}s)?$"
_DURATION = re.compile(DURATION_PATTERN)


def format_instant(instant: datetime) -> str:
    """``2027-01-04T00:30:00Z``: how instants are printed and stored."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamp(when: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, as Kubernetes writes times; None stays None."""
    return None if when is None else format_instant(when)


def parse_time(value: str | None) -> datetime | None:
    """A Kubernetes time (``2027-01-04T00:30:00Z``) as an aware datetime; None for none."""
    return None if not value else datetime.fromisoformat(value.replace("Z", "+00:00"))


#: An RFC 3339 instant (section 5.6 ``date-time``): an offset is required, a fraction of a
#: second is allowed with any number of digits (as RFC 3339 and the CRDs' ``format:
#: date-time`` allow: Go's RFC3339Nano writes nine; past the microsecond they are dropped),
#: and ``T`` and ``Z`` may be lower case (the NOTE in section 5.6).
_RFC3339_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)
_INSTANT_EXAMPLES = '(e.g. "2027-01-04T00:00:00Z" or "2027-01-04T02:00:00+02:00")'


def parse_instant(text: str) -> datetime:
    """An instant a user wrote, RFC 3339 with an offset (``2027-01-04T00:00:00Z``,
    ``2027-01-04t02:00:00.5+02:00``), as an aware datetime, fraction kept. One reader for
    every such instant, so that what a Backfill accepts the command lines accept too.
    ValueError, saying what is expected, for anything else; years are the caller's to
    bound."""
    quoted = json.dumps(text, ensure_ascii=False)  # as almanac.errors.quote does
    if not _RFC3339_INSTANT.fullmatch(text):
        missing = " (it has no offset)" if _RFC3339_INSTANT.fullmatch(text + "Z") else ""
        raise ValueError(
            f"{quoted} is not an RFC 3339 instant with an offset{missing} {_INSTANT_EXAMPLES}"
        )
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{quoted} is not a valid date and time") from None


def format_duration(delta: timedelta) -> str:
    """``45s``, ``3m12s``, ``1h02m05s``: how long a run or service took (exact seconds)."""
    seconds = max(0, round(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def parse_duration(text: str) -> timedelta:
    """``2h``, ``90m``, ``1h30m``, ``45s`` (the form :data:`DURATION_PATTERN` fixes) as a
    timedelta; ValueError saying what is expected for anything else (``2 hours``,
    ``1.5h``, ``1d``, an empty string)."""
    m = _DURATION.fullmatch(text)
    if not text or m is None:
        raise ValueError(
            f'"{text}" is not a duration: write whole hours, minutes and seconds, largest '
            "first, such as 2h, 90m, 1h30m or 45s"
        )
    hours, minutes, seconds = (int(g[:-1]) if g else 0 for g in m.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)
