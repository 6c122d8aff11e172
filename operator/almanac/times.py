"""How instants and durations are written and read: one module for all of Almanac.

Ground floor (imports nothing of Almanac): the engine, the decisions, the API gateway,
e-mails and the command lines all print ``2027-01-04T00:30:00Z`` and ``3m12s`` the same
way, and read Kubernetes times back with :func:`parse_time`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["format_duration", "format_instant", "parse_time", "timestamp"]


def format_instant(instant: datetime) -> str:
    """``2027-01-04T00:30:00Z``: how instants are printed and stored."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamp(when: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, as Kubernetes writes times; None stays None."""
    return None if when is None else format_instant(when)


def parse_time(value: str | None) -> datetime | None:
    """A Kubernetes time (``2027-01-04T00:30:00Z``) as an aware datetime; None for none."""
    return None if not value else datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_duration(delta: timedelta) -> str:
    """``45s``, ``3m12s``, ``1h02m05s``: how long a run or service took (exact seconds)."""
    seconds = max(0, round(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
