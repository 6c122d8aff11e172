"""What a Calendar with ``spec.source`` does now: when to fetch its feed, and what a
fetch's outcome makes of its status. Pure, like :mod:`almanac.rules.jobs`: the executor
(:mod:`almanac.controller.controller`) fetches (:mod:`almanac.controller.feeds`), asks
:func:`decide_feed` for a plan and writes its one status patch.

A failed fetch never drops the kept copy: the jobs that refer to the Calendar keep
excluding its last good dates (firing on a bank holiday is worse than firing on a stale
calendar), and the status says the copy is stale and why. Text that is not iCalendar, or
too big to keep, is a failed fetch too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from almanac.api import bounds, feeds
from almanac.api.models import Calendar, CalendarSource
from almanac.errors import InvalidSpec
from almanac.rules.plans import Body, PlannedEvent, condition_message, ready_condition
from almanac.schedule import ical
from almanac.times import parse_time, timestamp

__all__ = [
    "FeedPlan",
    "FetchFailed",
    "Fetched",
    "Outcome",
    "decide_feed",
    "fetch_due",
    "source_of",
    "without_source",
]


@dataclass(frozen=True)
class Fetched:
    """The feed's text, as read."""

    text: str


@dataclass(frozen=True)
class FetchFailed:
    """Why the feed could not be read, in words that name neither the URL nor a
    credential (``HTTP 503``, ``timed out after 10 s``)."""

    message: str


Outcome = Fetched | FetchFailed


@dataclass(frozen=True)
class FeedPlan:
    """What to write after one fetch."""

    status: Body = field(default_factory=dict)
    """The status fields that change (a merge patch; ``source`` holds only its own
    changed fields, so an unchanged copy is not sent again)."""
    events: tuple[PlannedEvent, ...] = ()
    revision_changed: bool = False
    """A new copy: the referring jobs decide again (the store's echo says so too)."""


def source_of(body: Body) -> CalendarSource | None:
    """The Calendar's ``spec.source`` if the Calendar is valid and has one."""
    try:
        return Calendar.parse(body).spec.source
    except InvalidSpec:
        return None


def fetch_due(body: Body, source: CalendarSource, now: datetime) -> datetime:
    """When to fetch next: now for a source never fetched or whose spec changed since
    (a new URL is read at once), else ``refreshInterval`` after the last attempt."""
    kept: Body = (body.get("status") or {}).get("source") or {}
    generation = body["metadata"].get("generation")
    last = parse_time(kept.get("lastAttemptTime"))
    if last is None or kept.get("observedGeneration") != generation:
        return now
    return last + source.interval()


def _checked(text: str) -> tuple[int, str] | FetchFailed:
    """(events, packed copy) of a fetched text, or why it cannot be kept."""
    try:
        events, _ = ical.check(
            text,
            max_events=bounds.ICAL_MAX_EVENTS,
            max_recurring=bounds.ICAL_MAX_RECURRING_EVENTS,
            max_components=bounds.ICAL_MAX_COMPONENTS,
            max_lines=bounds.ICAL_MAX_CONTENT_LINES,
        )
    except ical.ICalendarProblem as e:
        return FetchFailed(f"not valid iCalendar (RFC 5545): {e}")
    except ical.ICalendarTooBig as e:
        return FetchFailed(f"the feed {e}")
    packed = feeds.pack(text)
    if len(packed) > bounds.FEED_KEPT_MAX_LENGTH:
        return FetchFailed(
            f"the feed is {len(packed):,} bytes compressed; at most "
            f"{bounds.FEED_KEPT_MAX_LENGTH:,} can be kept in the Calendar's status"
        )
    return events, packed


def decide_feed(body: Body, source: CalendarSource, outcome: Outcome, now: datetime) -> FeedPlan:
    """The status after a fetch of ``body``'s ``source`` at ``now``, and its Events."""
    status: Body = body.get("status") or {}
    kept: Body = status.get("source") or {}
    where = feeds.location(source.model_dump(by_alias=True, exclude_none=True))
    desired: Body = {
        "lastAttemptTime": timestamp(now),
        "observedGeneration": body["metadata"].get("generation"),
    }
    checked = _checked(outcome.text) if isinstance(outcome, Fetched) else outcome
    events: list[PlannedEvent] = []
    if isinstance(checked, FetchFailed):
        desired["lastError"] = {"time": timestamp(now), "message": checked.message}
        has_copy = kept.get("content") is not None and kept.get("location") == where
        if has_copy:
            reason, ready = "FetchFailed", "True"
            message = (
                f"the last fetch failed ({checked.message}); the copy fetched at "
                f"{kept.get('lastFetchTime')} ({kept.get('revision')}) is used"
            )
        else:
            reason, ready = "NotFetched", "False"
            message = (
                f"not fetched yet ({checked.message}); the ScheduledJobs that refer to it "
                "do not fire until it is"
            )
        previous = (kept.get("lastError") or {}).get("message")
        if previous != checked.message:  # once per distinct error, not at every retry
            # The Event says what happened (a fetch failed), whether or not a copy is
            # kept; the condition's reason says the state (NotFetched: no copy yet), so
            # one field selector (reason=FetchFailed) finds every failed fetch.
            events.append(
                PlannedEvent("Warning", "FetchFailed", condition_message(message), checked.message)
            )
    else:
        count, packed = checked
        assert isinstance(outcome, Fetched)
        text = outcome.text
        desired |= {
            "location": where,
            "revision": feeds.revision(text),
            "content": packed,
            "events": count,
            "dates": feeds.count_dates(text, now.date()),
            "lastFetchTime": timestamp(now),
            "lastError": None,
        }
        reason, ready = "Fetched", "True"
        message = (
            f"fetched {desired['revision']}: {count} events, {desired['dates']} dates in "
            "the next 365 days"
        )
        if kept.get("revision") != desired["revision"] or kept.get("location") != where:
            events.append(PlannedEvent("Normal", "Fetched", message, str(desired["revision"])))
    changed = {k: v for k, v in desired.items() if kept.get(k) != v}
    patch: Body = {"source": changed} if changed else {}
    condition = ready_condition(
        ready,
        reason,
        message,
        body["metadata"].get("generation"),
        status.get("conditions") or [],
        now,
    )
    old_ready: Any = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None
    )
    if old_ready != condition:
        patch["conditions"] = [condition]
    return FeedPlan(
        status=patch,
        events=tuple(events),
        revision_changed="revision" in changed or "location" in changed,
    )


def without_source(body: Body) -> Body:
    """The status patch for a Calendar whose ``spec.source`` was removed: its copy and
    condition go (its jobs no longer read them)."""
    status: Body = body.get("status") or {}
    return {"source": None, "conditions": None} if status.get("source") else {}
